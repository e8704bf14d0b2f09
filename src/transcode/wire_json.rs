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
pub(super) mod tests;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost_reflect::{MessageDescriptor, SerializeOptions};

use super::Codec;

/// The writer cannot write this response exactly; the reflective path can.
#[derive(Debug)]
pub(crate) struct Bail;

/// How a route's responses are written directly. Resolved once at load.
#[derive(Clone)]
pub(crate) struct WirePlan {
    /// The table of the [`Planner`] that made the plan, filled when it is
    /// done.
    table: Arc<OnceLock<plan::Table>>,
    /// The response type's index in it.
    root: u32,
    /// `response_body`: the singular message field written instead of the
    /// whole message.
    select: Option<u32>,
}

/// Makes [`WirePlan`]s that share one table, so each message type is
/// planned once however many routes answer with it. The plans work once
/// the planner is dropped; until then they leave every response to the
/// reflective path.
#[derive(Debug, Default)]
pub(crate) struct Planner {
    builder: plan::Builder,
    table: Arc<OnceLock<plan::Table>>,
}

/// What the writer needs besides the codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nested<'a> {
    /// The options prost-reflect writes well-known types with.
    pub(crate) options: &'a SerializeOptions,
    /// Whether those go through [`FloatSafe`](super::float_safe::FloatSafe).
    pub(crate) float_safe: bool,
}

impl std::fmt::Debug for WirePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the table: it is shared by every route of the pool.
        f.debug_struct("WirePlan")
            .field("root", &self.root)
            .field("select", &self.select)
            .finish_non_exhaustive()
    }
}

impl Planner {
    /// The plan for responses of type `root`, writing the top-level message
    /// field `select` if given. `None` when the type is not one the writer
    /// follows (a well-known type, or one with groups).
    pub(crate) fn plan(
        &mut self,
        root: &MessageDescriptor,
        select: Option<u32>,
    ) -> Option<WirePlan> {
        let root = self.builder.root(root)?;
        Some(WirePlan {
            table: self.table.clone(),
            root,
            select,
        })
    }
}

impl Drop for Planner {
    fn drop(&mut self) {
        let table = std::mem::take(&mut self.builder).finish();
        // Only this planner fills the cell, once.
        let _ = self.table.set(table);
    }
}

impl WirePlan {
    /// Writes `data` as JSON; `None` when it must be written the
    /// reflective way. With `select`, `Some(None)` means the field is unset.
    pub(crate) fn write(
        &self,
        data: &Bytes,
        codec: &Codec,
        nested: Nested<'_>,
    ) -> Option<Option<Bytes>> {
        let table = self.table.get()?;
        let settings = write::Settings {
            proto_names: codec.use_proto_names,
            emit_unpopulated: codec.emit_unpopulated,
            enums_as_ints: codec.enums_as_ints,
            options: nested.options,
            float_safe: nested.float_safe,
            select: self.select,
        };
        let mut writer = write::Writer::new(table, data, settings);
        writer.message(self.root, 0, data.len(), 0).ok()?;
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
