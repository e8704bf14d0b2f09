//! Writing a response's protobuf bytes straight as JSON, in one pass over
//! the wire, with the same bytes out as decoding it into a
//! `DynamicMessage` and serializing that.
//!
//! Decoding builds a map of boxed values per message and serializing looks
//! every field's kind and defaults up again; for lists of nested messages
//! that was most of the gateway's work. Here a table built at load time
//! ([`plan`]) says, per message type and field number, what the bytes are
//! and how to write them.
//!
//! The writer handles the shape canonical encoders produce: each singular
//! field at most once, at most one member of each oneof. Fields may come in
//! any order (prost writes oneofs last); list values keep their wire
//! order. Anything else, and anything malformed, makes it give up
//! ([`Bail`]) and the caller writes the response the reflective way, which
//! then also reports any error exactly as before. Well-known types, whose
//! JSON is special, and types with groups are written by prost-reflect
//! from their own bytes, inside the same output.

mod plan;
mod value;
mod wire;
mod write;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use prost_reflect::{MessageDescriptor, SerializeOptions};

use super::Codec;

/// The writer cannot write this response exactly; the reflective path can.
#[derive(Debug)]
pub(crate) struct Bail;

/// How a route's responses are written directly. Resolved once at load.
#[derive(Debug)]
pub(crate) struct WirePlan {
    table: plan::Table,
    /// `response_body`: the singular message field written instead of the
    /// whole message.
    select: Option<u32>,
}

/// What the writer needs besides the codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nested<'a> {
    /// The options prost-reflect writes well-known types with.
    pub(crate) options: &'a SerializeOptions,
    /// Whether those go through [`FloatSafe`](super::float_safe::FloatSafe).
    pub(crate) float_safe: bool,
}

impl WirePlan {
    /// The plan for responses of type `root`, writing the top-level message
    /// field `select` if given. `None` when the type is not one the writer
    /// follows (a well-known type, or one with groups).
    pub(crate) fn new(root: &MessageDescriptor, select: Option<u32>) -> Option<WirePlan> {
        let table = plan::Table::new(root);
        table.messages.first()?.layout.as_ref()?;
        Some(WirePlan { table, select })
    }

    /// Writes `data` as JSON; `None` when it must be written the
    /// reflective way. With `select`, `Some(None)` means the field is unset.
    pub(crate) fn write(
        &self,
        data: &Bytes,
        codec: &Codec,
        nested: Nested<'_>,
    ) -> Option<Option<Bytes>> {
        let settings = write::Settings {
            proto_names: codec.use_proto_names,
            emit_unpopulated: codec.emit_unpopulated,
            enums_as_ints: codec.enums_as_ints,
            options: nested.options,
            float_safe: nested.float_safe,
            select: self.select,
        };
        let mut writer = write::Writer::new(&self.table, data, settings);
        writer.message(0, 0, data.len(), 0).ok()?;
        let selected = writer.selected;
        let body = Bytes::from(writer.out);
        match (self.select, selected) {
            (None, _) => Some(Some(body)),
            (Some(_), Some((start, end))) if start <= end && end <= body.len() => {
                Some(Some(body.slice(start..end)))
            }
            (Some(_), Some(_)) => None,
            (Some(_), None) => Some(None),
        }
    }
}
