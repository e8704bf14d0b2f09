//! Reading the JSON: serde visitors driven by serde_json, as prost-reflect's
//! are, each writing the protobuf bytes of what it reads as it goes.
//!
//! They make the same deserializer calls prost-reflect makes for each
//! field (`deserialize_option` for a field, `deserialize_map` for a
//! message, `deserialize_any` for a list, ...), so serde_json hands them
//! the same values. What they cannot settle the way the reflective path
//! would, they fail on: a key naming no field (unknown, an extension), a
//! field or map key given twice, two members of one oneof, a type left to
//! prost-reflect.

mod map;

use std::fmt;

use prost::encoding::encode_varint;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::buf;
use super::plan::{FieldPlan, Layout, Shape, Table, ValueType};
use super::scalar::ScalarSeed;
use crate::transcode::kind::ValueKind as K;

/// The failure every visitor reports: the reflective path takes over and
/// says what is wrong, so no reason is kept here.
pub(super) fn fail<E: de::Error>() -> E {
    E::custom("left to the reflective path")
}

/// The state of one encoding.
#[derive(Debug)]
pub(super) struct Encoder<'t> {
    pub(super) table: &'t Table,
    pub(super) out: Vec<u8>,
    /// Unknown enum names leave their field unset instead of failing.
    pub(super) ignore_unknown: bool,
    /// The deepest JSON nesting accepted, and the nesting now.
    max_depth: usize,
    depth: usize,
    /// The deepest message level written (a map entry is a level).
    pub(super) levels: usize,
    /// Hashes of the keys of the maps being read, for repeats.
    pub(super) keys: Vec<u64>,
}

impl<'t> Encoder<'t> {
    pub(super) fn new(table: &'t Table, capacity: usize, ignore: bool, max_depth: usize) -> Self {
        Encoder {
            table,
            out: Vec::with_capacity(capacity),
            ignore_unknown: ignore,
            max_depth,
            depth: 0,
            levels: 0,
            keys: Vec::new(),
        }
    }

    /// Enters a JSON object or array.
    pub(super) fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(fail());
        }
        Ok(())
    }

    pub(super) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(super) fn level(&mut self, level: usize) {
        self.levels = self.levels.max(level);
    }

    /// The layout of message type `index`, if the encoder writes it.
    pub(super) fn layout<E: de::Error>(&self, index: u32) -> Result<&'t Layout, E> {
        let table: &'t Table = self.table;
        let plan = table.messages.get(index as usize).ok_or_else(fail)?;
        plan.layout.as_ref().ok_or_else(fail)
    }

    /// Whether values of `kind` are the encoder's to write.
    fn handles(&self, kind: ValueType) -> bool {
        match kind {
            K::Message(index) => self
                .table
                .messages
                .get(index as usize)
                .is_some_and(|m| m.layout.is_some()),
            K::Enum(index) => self
                .table
                .enums
                .get(index as usize)
                .is_some_and(|e| !e.null),
            _ => true,
        }
    }
}

/// The fields of one message, without its key or length. Its value: the
/// oneofs it set, a bit each.
pub(super) struct MessageSeed<'e, 't> {
    pub(super) enc: &'e mut Encoder<'t>,
    pub(super) layout: &'t Layout,
    pub(super) level: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let MessageSeed { enc, layout, level } = self;
        enc.enter()?;
        enc.level(level);
        let mut seen = Seen::new(layout.fields.len());
        let mut oneofs = 0u64;
        while let Some((index, field)) = map.next_key_seed(KeySeed(layout))? {
            if !seen.insert(index) {
                return Err(fail());
            }
            let set = map.next_value_seed(FieldSeed {
                enc: &mut *enc,
                field,
                level,
            })?;
            if let Some(oneof) = field.oneof.filter(|_| set) {
                let bit = 1u64 << oneof;
                if oneofs & bit != 0 {
                    return Err(fail());
                }
                oneofs |= bit;
            }
        }
        enc.leave();
        Ok(oneofs)
    }
}

/// The fields of one object seen so far, a bit each.
struct Seen {
    small: u64,
    /// For messages of more than 64 fields.
    large: Vec<u64>,
}

impl Seen {
    fn new(fields: usize) -> Seen {
        let large = if fields > 64 {
            vec![0; fields.div_ceil(64)]
        } else {
            Vec::new()
        };
        Seen { small: 0, large }
    }

    /// Records field `index`; `false` when it was seen before.
    fn insert(&mut self, index: usize) -> bool {
        let bit = 1u64 << (index % 64);
        let word = if self.large.is_empty() {
            &mut self.small
        } else {
            match self.large.get_mut(index / 64) {
                Some(word) => word,
                None => return false,
            }
        };
        let new = *word & bit == 0;
        *word |= bit;
        new
    }
}

/// An object key naming a field of `layout`.
struct KeySeed<'t>(&'t Layout);

impl<'de, 't> DeserializeSeed<'de> for KeySeed<'t> {
    type Value = (usize, &'t FieldPlan);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 't> Visitor<'de> for KeySeed<'t> {
    type Value = (usize, &'t FieldPlan);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.0.find(v).ok_or_else(fail)
    }
}

/// The value of one field, written with its key. Its value says whether
/// the field is set (`null` leaves it unset).
pub(super) struct FieldSeed<'e, 't> {
    pub(super) enc: &'e mut Encoder<'t>,
    pub(super) field: &'t FieldPlan,
    /// The level of the message holding the field.
    pub(super) level: usize,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // `null` is a value of `google.protobuf.Value` and `NullValue`,
        // which are prost-reflect's; of lists and maps of other types too.
        if !self.enc.handles(self.field.kind) {
            return Err(fail());
        }
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        let FieldSeed { enc, field, level } = self;
        match field.shape {
            Shape::Single => match field.kind {
                K::Message(index) => {
                    let layout = enc.layout(index)?;
                    encode_varint(field.key, &mut enc.out);
                    let at = buf::open(&mut enc.out);
                    let level = level + 1;
                    MessageSeed { enc, layout, level }.deserialize(deserializer)?;
                    buf::close(&mut enc.out, at);
                    Ok(true)
                }
                kind => ScalarSeed {
                    enc,
                    kind,
                    key: Some(field.key),
                    skip_default: !field.presence,
                    enum_default: field.enum_default,
                }
                .deserialize(deserializer),
            },
            Shape::List { packed } => {
                let list = ListSeed {
                    enc,
                    field,
                    packed,
                    level,
                };
                deserializer.deserialize_any(list)?;
                Ok(true)
            }
            Shape::Map { .. } => {
                deserializer.deserialize_any(map::MapSeed { enc, field, level })?;
                Ok(true)
            }
        }
    }
}

/// A repeated field's JSON array.
struct ListSeed<'e, 't> {
    enc: &'e mut Encoder<'t>,
    field: &'t FieldPlan,
    packed: bool,
    level: usize,
}

impl<'de> Visitor<'de> for ListSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ListSeed {
            enc,
            field,
            packed,
            level,
        } = self;
        enc.enter()?;
        match field.kind {
            K::Message(index) => {
                let layout = enc.layout(index)?;
                let level = level + 1;
                let key = field.key;
                while let Some(()) = seq.next_element_seed(Element {
                    enc: &mut *enc,
                    key,
                    layout,
                    level,
                })? {}
            }
            kind if packed => {
                let start = enc.out.len();
                encode_varint(field.key, &mut enc.out);
                let at = buf::open(&mut enc.out);
                while seq.next_element_seed(element(enc, kind, None))?.is_some() {}
                if enc.out.len() == at + 1 {
                    enc.out.truncate(start);
                } else {
                    buf::close(&mut enc.out, at);
                }
            }
            kind => {
                let key = Some(field.key);
                while seq.next_element_seed(element(enc, kind, key))?.is_some() {}
            }
        }
        enc.leave();
        Ok(())
    }
}

/// A list element: never `null`, never left out.
fn element<'e, 't>(
    enc: &'e mut Encoder<'t>,
    kind: ValueType,
    key: Option<u64>,
) -> ScalarSeed<'e, 't> {
    ScalarSeed {
        enc,
        kind,
        key,
        skip_default: false,
        enum_default: 0,
    }
}

/// One message of a list, or a map's message value: its key, length and
/// fields.
pub(super) struct Element<'e, 't> {
    pub(super) enc: &'e mut Encoder<'t>,
    pub(super) key: u64,
    pub(super) layout: &'t Layout,
    pub(super) level: usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let Element {
            enc,
            key,
            layout,
            level,
        } = self;
        encode_varint(key, &mut enc.out);
        let at = buf::open(&mut enc.out);
        MessageSeed { enc, layout, level }.deserialize(deserializer)?;
        buf::close(&mut enc.out, at);
        Ok(())
    }
}
