//! Map fields: a JSON object whose keys are data, each written as an
//! entry message of key and value.

use std::fmt;
use std::hash::{Hash as _, Hasher as _};

use prost::encoding::encode_varint;
use prost_reflect::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::super::buf;
use super::super::plan::{FieldPlan, Shape, ValueType};
use super::super::scalar::ScalarSeed;
use super::{Element, Encoder, fail};
use crate::transcode::encode::scalar::Scalar;
use crate::transcode::kind::ValueKind as K;
use crate::transcode::strict::odd_integer;

/// A map field's JSON object: one entry message per key.
pub(super) struct MapSeed<'e, 't> {
    pub(super) enc: &'e mut Encoder<'t>,
    pub(super) field: &'t FieldPlan,
    pub(super) level: usize,
}

impl<'de> Visitor<'de> for MapSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let MapSeed { enc, field, level } = self;
        let Shape::Map {
            key,
            key_key,
            value_key,
            value_presence,
        } = field.shape
        else {
            return Err(fail());
        };
        enc.enter()?;
        // An entry is a message level of its own; a message value is the
        // level below it.
        let level = level + 1;
        enc.level(level);
        let first_key = enc.keys.len();
        let entry = EntryKey {
            enc: &mut *enc,
            entry: field.key,
            kind: key,
            key: key_key,
        };
        let mut next = map.next_key_seed(entry)?;
        while let Some((start, at)) = next {
            let set = match field.kind {
                K::Message(index) => {
                    let layout = enc.layout(index)?;
                    let value = Element {
                        enc: &mut *enc,
                        key: value_key,
                        layout,
                        level: level + 1,
                    };
                    map.next_value_seed(value)?;
                    true
                }
                kind => map.next_value_seed(ScalarSeed {
                    enc: &mut *enc,
                    kind,
                    key: Some(value_key),
                    skip_default: !value_presence,
                    enum_default: field.enum_default,
                })?,
            };
            if set {
                buf::close(&mut enc.out, at);
            } else {
                // An unknown enum name, ignored: no entry.
                enc.out.truncate(start);
            }
            let entry = EntryKey {
                enc: &mut *enc,
                entry: field.key,
                kind: key,
                key: key_key,
            };
            next = map.next_key_seed(entry)?;
        }
        let keys = enc.keys.get_mut(first_key..).unwrap_or_default();
        keys.sort_unstable();
        let repeated = keys.windows(2).any(|w| w[0] == w[1]);
        enc.keys.truncate(first_key);
        if repeated {
            return Err(fail());
        }
        enc.leave();
        Ok(())
    }
}

/// A map key: starts the entry and writes the key field. Its value: where
/// the entry starts and where its length goes.
struct EntryKey<'e, 't> {
    enc: &'e mut Encoder<'t>,
    /// The map field's key.
    entry: u64,
    /// The key field's kind and key.
    kind: ValueType,
    key: u64,
}

impl<'de> DeserializeSeed<'de> for EntryKey<'_, '_> {
    type Value = (usize, usize);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for EntryKey<'_, '_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // Keys the strict parse has checked again on a JSON tree: spelled
        // unusually as integers (`01`, `+1`: one entry with `1`), or
        // `@type`.
        if v == "@type" || odd_integer(v) {
            return Err(fail());
        }
        let mut hasher = std::hash::DefaultHasher::new();
        v.hash(&mut hasher);
        self.enc.keys.push(hasher.finish());
        let value = match self.kind {
            K::String => None,
            K::Bool => Some(Value::Bool(v.parse().map_err(|_| fail())?)),
            K::Int32 | K::Sint32 | K::Sfixed32 => Some(Value::I32(v.parse().map_err(|_| fail())?)),
            K::Int64 | K::Sint64 | K::Sfixed64 => Some(Value::I64(v.parse().map_err(|_| fail())?)),
            K::Uint32 | K::Fixed32 => Some(Value::U32(v.parse().map_err(|_| fail())?)),
            K::Uint64 | K::Fixed64 => Some(Value::U64(v.parse().map_err(|_| fail())?)),
            _ => return Err(fail()),
        };
        let out = &mut self.enc.out;
        let start = out.len();
        encode_varint(self.entry, out);
        let at = buf::open(out);
        encode_varint(self.key, out);
        match value {
            None => {
                encode_varint(v.len() as u64, out);
                out.extend_from_slice(v.as_bytes());
            }
            Some(value) => Scalar::of(&value, self.kind.plain())
                .ok_or_else(fail)?
                .put(out),
        }
        Ok((start, at))
    }
}
