//! How deep a request message nests, messages packed in `Any` included,
//! against the limit protobuf decoders keep.

use prost_reflect::{DynamicMessage, ReflectMessage as _, Value};

use crate::transcode::RequestError;
use crate::transcode::writable::{ANY, packed_type};

#[cfg(test)]
mod tests;

/// How deep messages may nest: protobuf decoders (prost, upb, the C++
/// runtime) refuse more than 100 levels, so deeper requests are refused
/// here with a 400 instead of failing at the backend.
pub const MAX_MESSAGE_DEPTH: usize = 100;

/// Refuses a message that nests past [`MAX_MESSAGE_DEPTH`]; `json_depth`
/// is how deep the JSON it was built from went.
pub(crate) fn check_depth(message: &DynamicMessage, json_depth: usize) -> Result<(), RequestError> {
    // A struct spends three message levels per JSON level, and an `Any`
    // two (itself and the message it packs), so JSON up to this depth
    // cannot exceed the protobuf nesting limit.
    const SAFE_JSON_DEPTH: usize = MAX_MESSAGE_DEPTH / 3;
    if json_depth > SAFE_JSON_DEPTH && exceeds_message_depth(message, MAX_MESSAGE_DEPTH) {
        return Err(RequestError::TooDeepMessage(MAX_MESSAGE_DEPTH));
    }
    Ok(())
}

/// Whether messages nest more than `max` levels below `message`; stops
/// descending once past `max`. The message an `Any` packs is one level
/// below the `Any`, as a backend unpacking it meets it.
pub(crate) fn exceeds_message_depth(message: &DynamicMessage, max: usize) -> bool {
    if message.descriptor().full_name() == ANY {
        return packed_exceeds(message, max);
    }
    if max == 0 {
        return message.fields().any(|(_, v)| holds_message(v));
    }
    message.fields().any(|(_, value)| match value {
        Value::Message(m) => exceeds_message_depth(m, max - 1),
        Value::List(items) => items.iter().any(|v| match v {
            Value::Message(m) => exceeds_message_depth(m, max - 1),
            _ => false,
        }),
        Value::Map(entries) => entries.values().any(|v| match v {
            // A map entry is a message level of its own on the wire.
            Value::Message(m) => max < 2 || exceeds_message_depth(m, max - 2),
            _ => false,
        }),
        _ => false,
    })
}

/// [`exceeds_message_depth`] for an `Any`: only the message it packs can
/// nest. A type outside the pool is left to the backend; the JSON parser
/// accepts none.
fn packed_exceeds(any: &DynamicMessage, max: usize) -> bool {
    let Some((packed, bytes)) = packed_type(any) else {
        return false;
    };
    if max == 0 {
        return true;
    }
    // The bytes were encoded from the request's own JSON, so the only
    // thing the decoder refuses in them is its nesting limit: 100 levels
    // below the packed message, never fewer than are left here.
    match DynamicMessage::decode(packed, bytes) {
        Ok(inner) => exceeds_message_depth(&inner, max - 1),
        Err(_) => true,
    }
}

fn holds_message(value: &Value) -> bool {
    match value {
        Value::Message(_) => true,
        Value::List(items) => items.iter().any(holds_message),
        Value::Map(entries) => !entries.is_empty(),
        _ => false,
    }
}
