//! Request JSON through a tree: case-insensitive names (opt-in,
//! `json.case_insensitive_*`) and the checks the streaming parse cannot
//! make (a field given under both its names, an `Any` with `@type` last).
//!
//! The body is read into a JSON tree (duplicate keys still rejected), field
//! and enum names are rewritten to the descriptor's spelling, each `Any`
//! gets its `@type` first, and the tree is then parsed like any body, with
//! every check. The tree costs an allocation per value, so the default path
//! comes here only when the streaming parse says it must.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::Codec;
use super::field_path::find_field_with;

/// A name problem found while rewriting: the JSON path and what is wrong.
#[derive(Debug)]
pub(super) struct NameError {
    pub(super) at: String,
    pub(super) reason: String,
}

/// Rewrites the names in `object`, a JSON object for message `desc`.
pub(super) fn normalize(
    desc: &MessageDescriptor,
    object: &mut Map<String, Value>,
    codec: &Codec,
) -> Result<(), NameError> {
    Names { codec }.message(desc, object, "")
}

struct Names<'c> {
    codec: &'c Codec,
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
        for (key, mut value) in fields {
            let Some(field) = find_field_with(desc, &key, self.codec.case_insensitive_fields)
            else {
                // Unknown: the parser rejects or drops it, as configured.
                object.insert(key, value);
                continue;
            };
            let name = field.name().to_owned();
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            if object.contains_key(&name) {
                return Err(NameError {
                    at: path,
                    reason: format!(
                        "field `{name}` is given twice (as `{key}` and under another name)"
                    ),
                });
            }
            self.field(&field, &mut value, &path)?;
            object.insert(name, value);
        }
        Ok(())
    }

    /// An `Any`: `@type` moved first, so the parser reads the packed
    /// message with every check instead of buffering it, and the packed
    /// message's names rewritten like any other. A missing or unknown type
    /// is left for the parser to report.
    fn any(
        &self,
        desc: &MessageDescriptor,
        object: &mut Map<String, Value>,
        at: &str,
    ) -> Result<(), NameError> {
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
            if let Value::Object(entries) = value {
                for (key, v) in entries.iter_mut() {
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
