//! The tables the direct encoder follows: one per message type a request
//! can hold, built once when the routes load, so encoding a request never
//! looks a field or an enum value up in the descriptors.

use std::cmp::Ordering;

use prost_reflect::{Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use crate::transcode::kind::{NULL_VALUE, ValueKind};
use crate::transcode::type_index::{Indexed, TypeIndex};

/// The kind of one value; enums and messages by index in the [`Table`].
pub(super) type ValueType = ValueKind<u32, u32>;

/// The plans of message and enum types, by index.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) messages: Vec<MessagePlan>,
    pub(super) enums: Vec<EnumPlan>,
}

/// One message type; `None` when the encoder leaves it to prost-reflect (a
/// well-known type with a JSON form of its own, a type with groups, or one
/// where a name could mean two fields).
#[derive(Debug)]
pub(super) struct MessagePlan {
    pub(super) layout: Option<Layout>,
}

/// The fields of a message type the encoder handles itself.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) fields: Box<[FieldPlan]>,
    /// Every JSON name and proto name with its field's index, sorted
    /// [`by_length`].
    names: Box<[(Box<str>, u16)]>,
}

/// One field.
#[derive(Debug)]
pub(super) struct FieldPlan {
    /// The key of one value: the field number and its wire type (for a
    /// packed list, of the whole list).
    pub(super) key: u64,
    pub(super) shape: Shape,
    /// The value's kind (the element's for lists, the value's for maps).
    pub(super) kind: ValueType,
    /// Written when it holds its default (proto2 `optional`, proto3
    /// `optional`, oneof members, messages).
    pub(super) presence: bool,
    /// The oneof holding the field, by index among the message's oneofs.
    pub(super) oneof: Option<u8>,
    /// The number an implicit enum field (or map value) holds when unset.
    pub(super) enum_default: i32,
}

/// How a field holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Single,
    /// Repeated; `packed` lists are one length-delimited record.
    List {
        packed: bool,
    },
    /// A map, with its entry's key and value keys and the key's kind.
    /// Values without presence are left out when they are the default, as
    /// prost-reflect does (which turns `-0.0` into `0.0`).
    Map {
        key: ValueType,
        key_key: u64,
        value_key: u64,
        value_presence: bool,
    },
}

/// One enum type.
#[derive(Debug)]
pub(super) struct EnumPlan {
    /// Value names and numbers, sorted [`by_length`].
    names: Box<[(Box<str>, i32)]>,
    /// `google.protobuf.NullValue`, whose JSON `null` is a value: left to
    /// prost-reflect.
    pub(super) null: bool,
}

/// Names of a message up to this many are looked through in order, not
/// searched: lengths mostly differ, and a scan of them is cheaper than the
/// search's unpredictable branches.
const SCANNED: usize = 8;

impl Layout {
    /// The field a JSON key names, with its index: its JSON name, or else its
    /// proto name (prost-reflect looks in that order; no name of a planned
    /// type means two fields, so one table does).
    pub(super) fn find(&self, key: &str) -> Option<(usize, &FieldPlan)> {
        let at = if self.names.len() <= SCANNED {
            self.names
                .iter()
                .position(|(name, _)| name.len() == key.len() && **name == *key)?
        } else {
            self.names
                .binary_search_by(|(name, _)| by_length(name, key))
                .ok()?
        };
        let index = usize::from(self.names.get(at)?.1);
        Some((index, self.fields.get(index)?))
    }
}

/// The order names are kept and looked up in: by length, then by bytes.
/// A lookup compares the bytes only of names as long as the key, most
/// often just the one it finds (a byte order called `memcmp` at every step
/// of the search, a good part of reading a large body).
fn by_length(name: &str, key: &str) -> Ordering {
    name.len().cmp(&key.len()).then_with(|| name.cmp(key))
}

impl EnumPlan {
    /// The number of the value named `name`.
    pub(super) fn number(&self, name: &str) -> Option<i32> {
        let at = self
            .names
            .binary_search_by(|(n, _)| by_length(n, name))
            .ok()?;
        self.names.get(at).map(|(_, number)| *number)
    }
}

/// Plans message types as request plans ask for them, each once, into one
/// [`Table`] they then share.
#[derive(Debug, Default)]
pub(super) struct Builder {
    table: Table,
    index: TypeIndex,
}

impl Builder {
    /// Plans `root` and every type it reaches; its index, or `None` when
    /// the encoder leaves the type to prost-reflect (or it comes from
    /// another pool than the types planned before).
    pub(super) fn root(&mut self, root: &MessageDescriptor) -> Option<u32> {
        if !self.index.admits(root) {
            return None;
        }
        let index = self.message(root);
        while let Some((pending, descriptor)) = self.index.next_pending() {
            let layout = self.layout(&descriptor);
            self.table.messages[pending].layout = layout;
        }
        self.table.messages.get(index as usize)?.layout.as_ref()?;
        Some(index)
    }

    /// The table of every type planned.
    pub(super) fn finish(self) -> Table {
        self.table
    }

    /// The index of `desc`, queued for its layout when new.
    fn message(&mut self, desc: &MessageDescriptor) -> u32 {
        let indexed = self.index.message(desc);
        if let Indexed::New(_) = indexed {
            self.table.messages.push(MessagePlan { layout: None });
        }
        indexed.index()
    }

    fn enumeration(&mut self, desc: &EnumDescriptor) -> u32 {
        let indexed = self.index.enumeration(desc);
        if let Indexed::New(_) = indexed {
            let mut names: Vec<(Box<str>, i32)> = desc
                .values()
                .map(|v| (v.name().into(), v.number()))
                .collect();
            names.sort_by(|a, b| by_length(&a.0, &b.0).then(a.1.cmp(&b.1)));
            self.table.enums.push(EnumPlan {
                names: names.into(),
                null: desc.full_name() == NULL_VALUE,
            });
        }
        indexed.index()
    }

    /// The layout of `desc`, or `None` for a type left to prost-reflect.
    fn layout(&mut self, desc: &MessageDescriptor) -> Option<Layout> {
        // A bit per oneof tracks which are set.
        if desc.oneofs().len() > 64 {
            return None;
        }
        let mut fields = Vec::with_capacity(desc.fields().len());
        let mut names: Vec<(Box<str>, u16)> = Vec::with_capacity(2 * desc.fields().len());
        for field in desc.fields() {
            let index = u16::try_from(fields.len()).ok()?;
            fields.push(self.field(&field)?);
            names.push((field.json_name().into(), index));
            if field.name() != field.json_name() {
                names.push((field.name().into(), index));
            }
        }
        names.sort_by(|a, b| by_length(&a.0, &b.0).then(a.1.cmp(&b.1)));
        // A name of two fields: prost-reflect and the name-rewriting parse
        // that strict bodies may take resolve it differently.
        if names.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(Layout {
            fields: fields.into(),
            names: names.into(),
        })
    }

    fn field(&mut self, field: &FieldDescriptor) -> Option<FieldPlan> {
        if field.is_group() {
            return None;
        }
        let number = u64::from(field.number());
        let mut default = field.default_value();
        let (shape, kind) = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return None;
            };
            let value_field = entry.map_entry_value_field();
            let key = self.kind(&entry.map_entry_key_field().kind());
            let value = self.kind(&value_field.kind());
            let shape = Shape::Map {
                key,
                key_key: 1 << 3 | key.wire_type() as u64,
                value_key: 2 << 3 | value.wire_type() as u64,
                value_presence: value_field.supports_presence(),
            };
            default = value_field.default_value();
            (shape, value)
        } else if field.cardinality() == Cardinality::Repeated {
            let packed = field.is_packed();
            (Shape::List { packed }, self.kind(&field.kind()))
        } else {
            (Shape::Single, self.kind(&field.kind()))
        };
        let wire = match shape {
            Shape::List { packed: true } | Shape::Map { .. } => 2,
            _ => kind.wire_type() as u64,
        };
        let oneof = match field.containing_oneof() {
            Some(oneof) => {
                let index = field
                    .parent_message()
                    .oneofs()
                    .position(|o| o.name() == oneof.name())?;
                Some(u8::try_from(index).ok()?)
            }
            None => None,
        };
        let enum_default = match default {
            prost_reflect::Value::EnumNumber(n) => n,
            _ => 0,
        };
        Some(FieldPlan {
            key: number << 3 | wire,
            shape,
            kind,
            presence: field.supports_presence(),
            oneof,
            enum_default,
        })
    }

    fn kind(&mut self, kind: &Kind) -> ValueType {
        match kind {
            Kind::Enum(e) => ValueKind::Enum(self.enumeration(e)),
            Kind::Message(m) => ValueKind::Message(self.message(m)),
            // The namers are not called: enums and messages are above.
            _ => ValueKind::of(kind, |_| 0, |_| 0),
        }
    }
}
