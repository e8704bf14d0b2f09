//! The empty `google.protobuf.Any` (no type URL, no bytes) through
//! prost-reflect's JSON reader and writer, neither of which takes one.
//!
//! proto3 JSON writes an empty `Any` as `{}`, and Go's and Python's
//! readers read `{}` back as one. prost-reflect refuses both ways, as it
//! must resolve a type URL. So an empty `Any` crosses it in disguise: an
//! `Any` whose type URL is this process's marker ([`marker`]), which
//! nothing else writes.
//!
//! - Reading, the request's JSON tree gives each `{}` standing for an `Any`
//!   the marker as `@type` (`lenient`), and [`restore`] turns each marked
//!   `Any` of the parsed message back into an empty one.
//! - Writing, [`mark`] turns each empty `Any` into a marked one, and
//!   [`Collapse`] writes a marked one as `{}`.
//!
//! Both walk into the messages other `Any` values pack, decoding and
//! encoding them again: the price is paid only by a message that holds an
//! empty `Any`.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage as _, SerializeOptions, Value,
};
use serde::Serializer;

use super::float_safe::FloatSafe;
use super::kind::WELL_KNOWN;
use super::request::MAX_MESSAGE_DEPTH;
use super::writable::{ANY, packed_type};

mod collapse;

pub(crate) use collapse::Collapse;

/// The start of a marked `Any`'s type URL: a reserved domain and a random
/// part chosen when the process starts, so that no client or backend can
/// send one by chance or on purpose.
pub(crate) fn marker() -> &'static str {
    static MARKER: OnceLock<String> = OnceLock::new();
    MARKER.get_or_init(|| {
        use std::hash::{BuildHasher as _, Hasher as _};
        // `RandomState` is seeded from the OS's randomness per instance.
        let random = |salt: u64| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(salt);
            hasher.finish()
        };
        format!(
            "empty-any.protogate.invalid/{:016x}{:016x}/",
            random(1),
            random(2)
        )
    })
}

/// Whether `any` (a `google.protobuf.Any`) holds neither a type URL nor
/// bytes.
pub(crate) fn is_empty(any: &DynamicMessage) -> bool {
    let empty = |number: u32| {
        any.get_field_by_number(number)
            .is_none_or(|value| match value.as_ref() {
                Value::String(text) => text.is_empty(),
                Value::Bytes(bytes) => bytes.is_empty(),
                _ => false,
            })
    };
    empty(1) && empty(2)
}

/// Whether `any` carries the marker.
fn is_marked(any: &DynamicMessage) -> bool {
    any.get_field_by_number(1)
        .is_some_and(|url| url.as_str().is_some_and(|url| url.starts_with(marker())))
}

/// The type URL an empty `Any` in a request to `root` is read with: the
/// marker and a message type of the pool that reads from `{}` alone (not a
/// well-known type, which wants a `value`). `None` when the pool has no
/// such type; the `Any` is then refused as before.
pub(super) fn reading_url(root: &MessageDescriptor) -> Option<String> {
    let plain = |desc: &MessageDescriptor| !WELL_KNOWN.contains(&desc.full_name());
    let name = if plain(root) {
        root.full_name().to_owned()
    } else {
        let pool: &DescriptorPool = root.parent_pool();
        pool.all_messages().find(plain)?.full_name().to_owned()
    };
    Some(format!("{}{name}", marker()))
}

/// Turns each marked `Any` in `message` (read from a `{}`) into an empty
/// one.
pub(super) fn restore(message: &mut DynamicMessage) {
    each_any(message, MAX_MESSAGE_DEPTH, &|any| {
        if !is_marked(any) {
            return false;
        }
        any.clear_field_by_number(1);
        any.clear_field_by_number(2);
        true
    });
}

/// Turns each empty `Any` in `message` into a marked one, for
/// [`Collapse`] to write as `{}`; whether there was one.
pub(crate) fn mark(message: &mut DynamicMessage) -> bool {
    let url = format!("{}{ANY}", marker());
    each_any(message, MAX_MESSAGE_DEPTH, &|any| {
        if !is_empty(any) {
            return false;
        }
        any.set_field_by_number(1, Value::String(url.clone()));
        true
    })
}

/// Writes `message` with prost-reflect's JSON writer, through
/// [`FloatSafe`] when `float_safe`; with `empty_any` (the message holds an
/// empty `Any`, as [`writable::check`](super::writable::check) tells),
/// each empty `Any` as `{}`.
pub(crate) fn serialize<S: Serializer>(
    message: &DynamicMessage,
    serializer: S,
    options: &SerializeOptions,
    float_safe: bool,
    empty_any: bool,
) -> Result<S::Ok, S::Error> {
    if !empty_any {
        return if float_safe {
            message.serialize_with_options(FloatSafe(serializer), options)
        } else {
            message.serialize_with_options(serializer, options)
        };
    }
    let mut marked = message.clone();
    mark(&mut marked);
    if float_safe {
        marked.serialize_with_options(Collapse(FloatSafe(serializer)), options)
    } else {
        marked.serialize_with_options(Collapse(serializer), options)
    }
}

/// Calls `visit` on each `Any` in `message`, and on those packed in the
/// `Any` values it does not change, at most `left` levels down; a packed
/// message changed is encoded again. Whether anything changed.
fn each_any(
    message: &mut DynamicMessage,
    left: usize,
    visit: &impl Fn(&mut DynamicMessage) -> bool,
) -> bool {
    if message.descriptor().full_name() == ANY {
        if visit(message) {
            return true;
        }
        let Some((packed, bytes)) = packed_type(message) else {
            return false;
        };
        let Some(left) = left.checked_sub(1) else {
            return false;
        };
        let Ok(mut inner) = DynamicMessage::decode(packed, bytes) else {
            return false;
        };
        if !each_any(&mut inner, left, visit) {
            return false;
        }
        message.set_field_by_number(2, Value::Bytes(inner.encode_to_vec().into()));
        return true;
    }
    let mut changed = false;
    let mut nested = |value: &mut Value| {
        if let Value::Message(inner) = value {
            changed |= each_any(inner, left, visit);
        }
    };
    for (_, value) in message.fields_mut() {
        match value {
            Value::List(items) => items.iter_mut().for_each(&mut nested),
            Value::Map(entries) => entries.values_mut().for_each(&mut nested),
            other => nested(other),
        }
    }
    changed
}

#[cfg(test)]
mod tests;
