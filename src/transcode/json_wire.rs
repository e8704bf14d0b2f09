//! Encoding a request's JSON body straight into protobuf bytes, in one
//! pass, with the same message as parsing it into a `DynamicMessage` and
//! encoding that: the counterpart of [`wire_json`](super::wire_json).
//!
//! Parsing builds a map of boxed values per message and looks every key
//! up in the descriptors, and encoding then walks it all again; for bodies
//! with lists of nested messages that was most of the gateway's work. Here
//! a table built at load time ([`plan`]) says, per message type, which
//! field each JSON key names and how its values go on the wire, and serde
//! visitors ([`read`]) write the bytes as serde_json reads the body. Path
//! variables are appended after the body: protobuf merging (last scalar
//! wins, messages merge) gives the message setting them one by one gives.
//!
//! The encoder accepts only what the reflective path accepts, and for
//! that writes the same message; everything else it leaves to that path
//! ([`Bail`]), which then answers exactly as before — with the message or
//! the error. It leaves: unknown keys (refused or dropped, per the
//! options), extensions, a field given twice (also under its two names),
//! two members of one oneof, integer map keys spelled unusually, the
//! well-known types (`Timestamp`, `Struct`, wrappers, ...) and types with
//! groups wherever a body reaches them, and any JSON error. The caller
//! leaves it query strings and case-insensitive names.

mod buf;
mod plan;
mod read;
mod scalar;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::encoding::encode_varint;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Value};
use serde::de::DeserializeSeed as _;

use super::Codec;
use super::body::strip_bom;
use super::encode::scalar::Scalar;
use super::field_path::FieldPath;
use super::kind::ValueKind;
use super::request::MAX_MESSAGE_DEPTH;
use super::text;

/// The encoder cannot encode this request exactly; the reflective path
/// can, or reports why not.
#[derive(Debug)]
pub(crate) struct Bail;

/// Where the JSON body goes, for [`Planner::plan`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// No body.
    None,
    /// The whole message.
    Whole,
    /// One top-level field.
    Field(&'a FieldDescriptor),
}

/// How a route's requests are encoded directly. Resolved once at load.
#[derive(Clone)]
pub(crate) struct DirectPlan {
    /// The table of the [`Planner`] that made the plan, filled when it is
    /// done.
    table: Arc<OnceLock<plan::Table>>,
    /// The request type's index in it.
    root: u32,
    /// `None`: no body; `Some(None)`: the whole message; `Some(Some(i))`:
    /// the root's field `i`.
    body: Option<Option<usize>>,
    vars: Box<[VarPlan]>,
}

/// Makes [`DirectPlan`]s that share one table, so each message type is
/// planned once however many routes take it. The plans work once the
/// planner is dropped; until then they leave every request to the
/// reflective path.
#[derive(Debug, Default)]
pub(crate) struct Planner {
    builder: plan::Builder,
    table: Arc<OnceLock<plan::Table>>,
}

/// A request being encoded: the bytes so far, how deep they nest and the
/// top-level oneofs set.
#[derive(Debug)]
pub(crate) struct Written {
    out: Vec<u8>,
    levels: usize,
    oneofs: u64,
}

/// One path variable: the keys of the messages on its way and its leaf.
#[derive(Debug, Clone)]
struct VarPlan {
    /// Keys of the intermediate message fields, outermost first.
    path: Box<[u64]>,
    /// The leaf's key and kind (to parse the text with).
    key: u64,
    kind: Kind,
    /// For a message leaf (a wrapper, `Timestamp`, `Duration`): its fields'
    /// numbers, keys and kinds, all written, so that merging replaces what
    /// the body set as setting the field does.
    fields: Box<[(u32, u64, ValueKind)]>,
    /// The top-level oneof the variable sets a member of, when it has
    /// other members.
    oneof: Option<u8>,
    /// How many message levels it adds.
    levels: usize,
}

impl std::fmt::Debug for DirectPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the table: it is shared by every route of the pool.
        f.debug_struct("DirectPlan")
            .field("root", &self.root)
            .field("body", &self.body)
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

impl Planner {
    /// The plan for requests of type `input` with the body at `body` and
    /// the path variables `vars`. `None` when the encoder leaves the type
    /// or a variable to the reflective path.
    pub(crate) fn plan(
        &mut self,
        input: &MessageDescriptor,
        body: Target<'_>,
        vars: &[FieldPath],
    ) -> Option<DirectPlan> {
        let root = self.builder.root(input)?;
        let body = match body {
            Target::None => None,
            Target::Whole => Some(None),
            Target::Field(field) => Some(Some(
                input.fields().position(|f| f.number() == field.number())?,
            )),
        };
        let vars = vars.iter().map(var).collect::<Option<Vec<_>>>()?;
        Some(DirectPlan {
            table: self.table.clone(),
            root,
            body,
            vars: vars.into(),
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

/// The plan of one path variable, or `None` when appending it could merge
/// differently from setting it: a member of a oneof below the top level
/// (setting it fails when another member is set), or a `FieldMask` leaf
/// (whose list would be appended to the body's instead of replacing it).
fn var(path: &FieldPath) -> Option<VarPlan> {
    let fields = path.fields();
    let (leaf, above) = fields.split_last()?;
    let real_oneof = |f: &FieldDescriptor| f.containing_oneof().filter(|o| o.fields().len() > 1);
    if fields.iter().skip(1).any(|f| real_oneof(f).is_some()) {
        return None;
    }
    let top = fields.first()?;
    let oneof = match real_oneof(top) {
        Some(oneof) => {
            let index = top
                .parent_message()
                .oneofs()
                .position(|o| o.name() == oneof.name())?;
            Some(u8::try_from(index).ok()?)
        }
        None => None,
    };
    let delimited = |f: &FieldDescriptor| u64::from(f.number()) << 3 | 2;
    let kind = leaf.kind();
    let (key, members) = match &kind {
        Kind::Message(message) => {
            let mut members = Vec::new();
            for field in message.fields() {
                let scalar = ValueKind::scalar(&field.kind())?;
                if field.is_list() || field.is_map() {
                    return None;
                }
                let key = u64::from(field.number()) << 3 | scalar.wire_type() as u64;
                members.push((field.number(), key, scalar));
            }
            (delimited(leaf), members)
        }
        other => {
            let scalar = ValueKind::scalar(other)?;
            let key = u64::from(leaf.number()) << 3 | scalar.wire_type() as u64;
            (key, Vec::new())
        }
    };
    let levels = above.len() + usize::from(kind.as_message().is_some());
    Some(VarPlan {
        path: above.iter().map(delimited).collect(),
        key,
        kind,
        fields: members.into(),
        oneof,
        levels,
    })
}

impl DirectPlan {
    /// Encodes the body: the JSON for the whole message or the body field,
    /// as the plan says.
    pub(crate) fn body(&self, json: &[u8], codec: &Codec) -> Result<Written, Bail> {
        match self.body {
            None => Ok(Written::empty(0)),
            Some(None) => self.message(json, codec),
            Some(Some(field)) => self.field(field, json, codec),
        }
    }

    /// Encodes `json` as the whole message (a streamed request's message).
    pub(crate) fn message(&self, json: &[u8], codec: &Codec) -> Result<Written, Bail> {
        let (table, layout) = self.root()?;
        let json = strip_bom(json);
        // Blank, or `null`: the empty message.
        if json.trim_ascii().is_empty() || json.trim_ascii() == b"null" {
            return Ok(Written::empty(0));
        }
        let mut enc = read::Encoder::new(
            table,
            json.len(),
            codec.ignore_unknown_fields,
            codec.max_depth,
        );
        let mut de = serde_json::Deserializer::from_str(whole_text(json)?);
        let seed = read::MessageSeed {
            enc: &mut enc,
            layout,
            level: 0,
        };
        let oneofs = seed.deserialize(&mut de).map_err(|_| Bail)?;
        de.end().map_err(|_| Bail)?;
        Ok(Written {
            out: enc.out,
            levels: enc.levels,
            oneofs,
        })
    }

    /// Encodes `json` as the value of the root's field `index`.
    fn field(&self, index: usize, json: &[u8], codec: &Codec) -> Result<Written, Bail> {
        let (table, layout) = self.root()?;
        let json = strip_bom(json);
        if json.trim_ascii().is_empty() {
            return Ok(Written::empty(0));
        }
        let field = layout.fields.get(index).ok_or(Bail)?;
        let mut enc = read::Encoder::new(
            table,
            json.len() + 8,
            codec.ignore_unknown_fields,
            codec.max_depth,
        );
        let mut de = serde_json::Deserializer::from_str(whole_text(json)?);
        let seed = read::FieldSeed {
            enc: &mut enc,
            field,
            level: 0,
        };
        let set = seed.deserialize(&mut de).map_err(|_| Bail)?;
        de.end().map_err(|_| Bail)?;
        let oneofs = match field.oneof {
            Some(oneof) if set => 1u64 << oneof,
            _ => 0,
        };
        Ok(Written {
            out: enc.out,
            levels: enc.levels,
            oneofs,
        })
    }

    fn root(&self) -> Result<(&plan::Table, &plan::Layout), Bail> {
        let table = self.table.get().ok_or(Bail)?;
        let root = table.messages.get(self.root as usize).ok_or(Bail)?;
        Ok((table, root.layout.as_ref().ok_or(Bail)?))
    }

    /// Appends path variable `index`, whose text is `text`.
    pub(crate) fn var(&self, index: usize, text: &str, written: &mut Written) -> Result<(), Bail> {
        let var = self.vars.get(index).ok_or(Bail)?;
        if let Some(oneof) = var.oneof {
            // Another member may be set: setting this one is then refused.
            let bit = 1u64 << oneof;
            if written.oneofs & bit != 0 {
                return Err(Bail);
            }
            written.oneofs |= bit;
        }
        let value = text::parse(&var.kind, text).map_err(|_| Bail)?;
        let out = &mut written.out;
        // Where each open record's length goes; no allocation for a
        // top-level scalar, the usual variable.
        let mut open = Vec::new();
        for key in &var.path {
            encode_varint(*key, out);
            open.push(buf::open(out));
        }
        encode_varint(var.key, out);
        match &value {
            Value::Message(message) => {
                open.push(buf::open(out));
                for (number, key, kind) in &var.fields {
                    let field = message.get_field_by_number(*number).ok_or(Bail)?;
                    let scalar = Scalar::of(&field, *kind).ok_or(Bail)?;
                    encode_varint(*key, out);
                    scalar.put(out);
                }
            }
            value => {
                let kind = ValueKind::scalar(&var.kind).ok_or(Bail)?;
                Scalar::of(value, kind).ok_or(Bail)?.put(out);
            }
        }
        while let Some(at) = open.pop() {
            buf::close(out, at);
        }
        written.levels = written.levels.max(var.levels);
        Ok(())
    }

    /// The encoded request, unless it nests too deep (which the reflective
    /// path refuses with its error).
    pub(crate) fn finish(&self, written: Written) -> Result<Bytes, Bail> {
        if written.levels > MAX_MESSAGE_DEPTH {
            return Err(Bail);
        }
        let mut out = written.out;
        // Sized for the JSON, which is usually larger: keep no more than
        // the body budget counts.
        if out.capacity() - out.len() > out.len() / 8 + 64 {
            out.shrink_to_fit();
        }
        Ok(Bytes::from(out))
    }
}

/// The body as text, checked once: serde_json then takes each string as
/// it is instead of checking it again (a good part of reading a body of
/// many short strings). Not UTF-8: the reflective path says where.
fn whole_text(json: &[u8]) -> Result<&str, Bail> {
    std::str::from_utf8(json).map_err(|_| Bail)
}

impl Written {
    fn empty(capacity: usize) -> Written {
        Written {
            out: Vec::with_capacity(capacity),
            levels: 0,
            oneofs: 0,
        }
    }
}
