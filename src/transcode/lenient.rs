//! Request JSON through a tree: case-insensitive names (opt-in,
//! `json.case_insensitive_*`) and the checks the streaming parse cannot
//! make (a field given under both its names, an `Any` with `@type` last,
//! an empty `Any`).
//!
//! The body is read into a JSON tree (duplicate keys still rejected), field
//! and enum names are rewritten to the descriptor's spelling, each `Any`
//! gets its `@type` first (an empty one, `{}`, the mark it is read with),
//! and the tree is then parsed like any body, with every check. The tree
//! costs an allocation per value, so the default path comes here only when
//! the streaming parse says it must.

use std::cell::OnceCell;
use std::collections::HashMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::field_path::find_field_with;
use super::{Codec, empty_any};

/// A name problem found while rewriting: the JSON path and what is wrong.
#[derive(Debug)]
pub(super) struct NameError {
    pub(super) at: String,
    pub(super) reason: String,
}

/// What rewriting did besides names.
#[derive(Debug, Default)]
pub(super) struct Normalized {
    /// An empty `Any` (`{}`) was marked to be read (see
    /// [`empty_any`](super::empty_any)): the parsed message is to be
    /// restored.
    pub(super) empty_any: bool,
}

/// Rewrites the names in `object`, a JSON object for message `desc`.
pub(super) fn normalize(
    desc: &MessageDescriptor,
    object: &mut Map<String, Value>,
    codec: &Codec,
) -> Result<Normalized, NameError> {
    let names = Names::new(desc, codec);
    names.message(desc, object, "")?;
    Ok(names.done())
}

/// Rewrites the names in `value`, the JSON value of `field` of message
/// `desc` (the body of a `body: "field"` route); paths are relative to
/// the value.
pub(super) fn normalize_field(
    desc: &MessageDescriptor,
    field: &FieldDescriptor,
    value: &mut Value,
    codec: &Codec,
) -> Result<Normalized, NameError> {
    let names = Names::new(desc, codec);
    names.field(field, value, "")?;
    Ok(names.done())
}

struct Names<'c> {
    codec: &'c Codec,
    /// The request message type, whose pool an empty `Any` is read from.
    root: &'c MessageDescriptor,
    /// The type URL an empty `Any` is read with, once one is met.
    empty_url: OnceCell<Option<String>>,
}

impl<'c> Names<'c> {
    fn new(root: &'c MessageDescriptor, codec: &'c Codec) -> Self {
        Names {
            codec,
            root,
            empty_url: OnceCell::new(),
        }
    }

    fn done(self) -> Normalized {
        Normalized {
            empty_any: self.empty_url.into_inner().flatten().is_some(),
        }
    }
}

impl Names<'_> {
    fn message(
        &self,
        desc: &MessageDescriptor,
        object: &mut Map<String, Value>,
        at: &str,
    ) -> Result<(), NameError> {
        if desc.full_name() == "google.protobuf.Any" {
            return self.any(desc, object, at);
        }
        if desc.full_name().starts_with("google.protobuf.") {
            // Well-known types have their own JSON forms with no field
            // names to fix (Struct keys are data, not names).
            return Ok(());
        }
        let fields = std::mem::take(object);
        // The key each field was first given under, by field number.
        let mut given: HashMap<u32, String> = HashMap::new();
        for (key, mut value) in fields {
            let Some(field) = find_field_with(desc, &key, self.codec.case_insensitive_fields)
            else {
                // Unknown: the parser rejects or drops it, as configured.
                object.insert(key, value);
                continue;
            };
            // Paths name keys as the client spelled them.
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if let Some(first) = given.get(&field.number()) {
                return Err(NameError {
                    at: path,
                    reason: format!(
                        "field `{}` is given twice, as `{first}` and as `{key}`",
                        field.name()
                    ),
                });
            }
            given.insert(field.number(), key.clone());
            // `null` leaves a list or map unset, also one of `Value` or
            // `NullValue`, whose elements read `null` as a value.
            if value.is_null() && (field.is_list() || field.is_map()) {
                continue;
            }
            self.field(&field, &mut value, &path)?;
            // The parser takes the proto and JSON names; other spellings
            // (case-insensitive matches) become the proto name.
            let key = if key == field.name() || key == field.json_name() {
                key
            } else {
                field.name().to_owned()
            };
            object.insert(key, value);
        }
        Ok(())
    }

    /// An `Any`: `@type` moved first, so the parser reads the packed
    /// message with every check instead of buffering it, and the packed
    /// message's names rewritten like any other. An empty one (`{}`), as
    /// proto3 JSON writes it, gets the type URL it is read with (see
    /// [`empty_any`](super::empty_any)). A missing or unknown type is left
    /// for the parser to report.
    ///
    /// Limitation (README, Limits): an empty `Any` stays refused, asking
    /// for `@type`, when the pool holds no message type but the well-known
    /// ones (none that reads from `{}` alone to carry the mark); every pool
    /// the gateway loads holds `google.rpc.Status`.
    fn any(
        &self,
        desc: &MessageDescriptor,
        object: &mut Map<String, Value>,
        at: &str,
    ) -> Result<(), NameError> {
        if object.is_empty() {
            let url = self
                .empty_url
                .get_or_init(|| empty_any::reading_url(self.root));
            if let Some(url) = url {
                object.insert("@type".to_owned(), Value::String(url.clone()));
            }
            return Ok(());
        }
        let Some(type_url) = object.remove("@type") else {
            return Ok(());
        };
        let packed = type_url
            .as_str()
            .and_then(|url| url.rsplit('/').next())
            .and_then(|name| desc.parent_pool().get_message_by_name(name));
        let mut rest = std::mem::take(object);
        if let Some(packed) = packed {
            if packed.full_name().starts_with("google.protobuf.") {
                // Well-known types sit under "value" in their own form.
                if let Some(value) = rest.get_mut("value") {
                    self.value(&Kind::Message(packed), value, &format!("{at}.value"))?;
                }
            } else {
                self.message(&packed, &mut rest, at)?;
            }
        }
        object.insert("@type".to_owned(), type_url);
        object.extend(rest);
        Ok(())
    }

    fn field(&self, field: &FieldDescriptor, value: &mut Value, at: &str) -> Result<(), NameError> {
        let kind = field.kind();
        if field.is_map() {
            let Some(entry) = kind.as_message() else {
                return Ok(());
            };
            let value_kind = entry.map_entry_value_field().kind();
            let integer_keys = matches!(
                entry.map_entry_key_field().kind(),
                Kind::Int32
                    | Kind::Int64
                    | Kind::Uint32
                    | Kind::Uint64
                    | Kind::Sint32
                    | Kind::Sint64
                    | Kind::Fixed32
                    | Kind::Fixed64
                    | Kind::Sfixed32
                    | Kind::Sfixed64
            );
            if let Value::Object(entries) = value {
                let mut seen = HashMap::with_capacity(if integer_keys { entries.len() } else { 0 });
                for (key, v) in entries.iter_mut() {
                    // `1` and `01` are one key of an integer map; the parser
                    // would keep the last.
                    if integer_keys
                        && let Ok(number) = key.parse::<i128>()
                        && let Some(first) = seen.insert(number, key.as_str())
                    {
                        return Err(NameError {
                            at: format!("{at}[{key}]"),
                            reason: format!(
                                "map key {number} is given twice (as `{first}` and `{key}`)"
                            ),
                        });
                    }
                    self.value(&value_kind, v, &format!("{at}[{key}]"))?;
                }
            }
        } else if field.is_list() {
            if let Value::Array(items) = value {
                for (i, v) in items.iter_mut().enumerate() {
                    self.value(&kind, v, &format!("{at}[{i}]"))?;
                }
            }
        } else {
            self.value(&kind, value, at)?;
        }
        Ok(())
    }

    fn value(&self, kind: &Kind, value: &mut Value, at: &str) -> Result<(), NameError> {
        match (kind, value) {
            (Kind::Enum(desc), Value::String(name)) if self.codec.case_insensitive_enums => {
                if desc.get_value_by_name(name).is_none()
                    && let Some(v) = desc.values().find(|v| v.name().eq_ignore_ascii_case(name))
                {
                    *name = v.name().to_owned();
                }
                Ok(())
            }
            (Kind::Message(desc), Value::Object(object)) => self.message(desc, object, at),
            _ => Ok(()),
        }
    }
}
