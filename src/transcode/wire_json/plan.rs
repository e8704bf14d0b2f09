//! The tables the direct writer follows: one per message type the response
//! can hold, built once when the route loads, so writing a response never
//! looks a field, an enum value or a JSON name up by name.

use prost_reflect::{Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::wire;
use crate::transcode::kind::{NULL_VALUE, ValueKind};
use crate::transcode::type_index::{Indexed, TypeIndex};

/// Field numbers up to this may be found through a dense index.
const DENSE_LIMIT: u32 = 256;

/// The plans of message types, by index.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) messages: Vec<MessagePlan>,
    pub(super) enums: Vec<EnumPlan>,
}

/// One message type.
#[derive(Debug)]
pub(super) struct MessagePlan {
    /// For the values the writer hands to prost-reflect.
    pub(super) descriptor: MessageDescriptor,
    /// `None`: the type is written by prost-reflect (a well-known type, or
    /// one with groups or too many oneofs for the writer's bookkeeping).
    pub(super) layout: Option<Layout>,
}

/// The fields of a message type the writer handles itself.
#[derive(Debug)]
pub(super) struct Layout {
    /// By field number, which is also the order prost-reflect writes them.
    pub(super) fields: Box<[FieldPlan]>,
    /// Field number -> index + 1 (0: no such field), when numbers are small.
    dense: Box<[u16]>,
    /// Numbers of extensions of this type: the writer leaves those to
    /// prost-reflect, which writes them after the fields.
    extensions: Box<[u32]>,
}

/// One field.
#[derive(Debug)]
pub(super) struct FieldPlan {
    pub(super) number: u32,
    /// `"jsonName":` and `"proto_name":`, indexed by `use_proto_names`.
    pub(super) keys: [Box<[u8]>; 2],
    pub(super) shape: Shape,
    /// The value's kind (the element's for lists, the value's for maps).
    pub(super) kind: Scalar,
    /// The oneof holding the field (proto3 `optional` has one of its own).
    pub(super) oneof: Option<u8>,
    /// Written when set even if it holds its default.
    pub(super) presence: bool,
}

/// How a field holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Single,
    List,
    /// A map, with the key's kind.
    Map(Scalar),
}

/// The kind of one value; messages and enums by index in the [`Table`].
pub(super) type Scalar = ValueKind<EnumRef, u32>;

/// An enum type of a [`Scalar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnumRef {
    /// By index in the [`Table`].
    Index(u32),
    /// `google.protobuf.NullValue`, written as `null` whatever its number.
    Null,
}

/// One enum type: names by number, pre-rendered as JSON strings.
#[derive(Debug)]
pub(super) struct EnumPlan {
    values: Box<[(i32, Box<[u8]>)]>,
    /// The number an implicit field holds when unset.
    pub(super) default: i32,
}

impl Scalar {
    /// The wire type of one value of this kind.
    pub(super) fn wire(self) -> u8 {
        self.wire_type() as u8
    }
}

impl FieldPlan {
    /// Whether a value of this field may come with `wire` type; anything
    /// else is a decode error prost-reflect reports.
    pub(super) fn accepts(&self, wire: u8) -> bool {
        match self.shape {
            Shape::Map(_) => wire == wire::LEN,
            // Packed: any list of varint or fixed-size values.
            Shape::List if wire == wire::LEN => true,
            _ => wire == self.kind.wire(),
        }
    }
}

impl Layout {
    /// The index of field `number`.
    pub(super) fn find(&self, number: u32) -> Option<usize> {
        if let Some(&slot) = usize::try_from(number).ok().and_then(|n| self.dense.get(n)) {
            return usize::from(slot).checked_sub(1);
        }
        if !self.dense.is_empty() {
            return None;
        }
        self.fields.binary_search_by_key(&number, |f| f.number).ok()
    }

    /// Whether `number` is an extension of this type.
    pub(super) fn is_extension(&self, number: u32) -> bool {
        self.extensions.binary_search(&number).is_ok()
    }
}

impl EnumPlan {
    /// The quoted name of `number`, if the enum has one.
    pub(super) fn name(&self, number: i32) -> Option<&[u8]> {
        let at = self.values.binary_search_by_key(&number, |v| v.0).ok()?;
        self.values.get(at).map(|v| &*v.1)
    }
}

/// Plans message types as response plans ask for them, each once, into
/// one [`Table`] they then share.
#[derive(Debug, Default)]
pub(super) struct Builder {
    table: Table,
    index: TypeIndex,
}

impl Builder {
    /// Plans `root` and every type it reaches; its index, or `None` when
    /// the writer leaves the type to prost-reflect (or it comes from
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
            self.table.messages.push(MessagePlan {
                descriptor: desc.clone(),
                layout: None,
            });
        }
        indexed.index()
    }

    fn enumeration(&mut self, desc: &EnumDescriptor) -> Scalar {
        if desc.full_name() == NULL_VALUE {
            return Scalar::Enum(EnumRef::Null);
        }
        let indexed = self.index.enumeration(desc);
        if let Indexed::New(_) = indexed {
            let mut values: Vec<(i32, Box<[u8]>)> = Vec::new();
            // A set, not a scan of `values`: enums run to many thousands
            // of values, and a scan per value made their plans quadratic.
            let mut seen = std::collections::HashSet::new();
            for value in desc.values() {
                let number = value.number();
                if !seen.insert(number) {
                    continue;
                }
                // The name prost-reflect picks for the number (the first of
                // aliases).
                let name = desc.get_value(number).map_or(value, |v| v);
                values.push((number, quoted(name.name()).into()));
            }
            values.sort_by_key(|v| v.0);
            self.table.enums.push(EnumPlan {
                values: values.into(),
                default: desc.default_value().number(),
            });
        }
        Scalar::Enum(EnumRef::Index(indexed.index()))
    }

    /// The layout of `desc`, or `None` for a type the writer leaves to
    /// prost-reflect.
    fn layout(&mut self, desc: &MessageDescriptor) -> Option<Layout> {
        // A bit per oneof tracks which are set.
        if desc.oneofs().len() > 64 {
            return None;
        }
        let mut fields = Vec::with_capacity(desc.fields().len());
        // `fields()` runs in field-number order.
        for field in desc.fields() {
            fields.push(self.field(&field)?);
        }
        let max = fields.last().map_or(0, |f| f.number);
        // Dense when that wastes little: numbers small and mostly used.
        let dense = if max <= DENSE_LIMIT && max as usize <= 4 * fields.len() + 16 {
            let mut dense = vec![0u16; max as usize + 1];
            for (index, field) in fields.iter().enumerate() {
                let slot = u16::try_from(index + 1).ok()?;
                *dense.get_mut(field.number as usize)? = slot;
            }
            dense
        } else {
            Vec::new()
        };
        let mut extensions: Vec<u32> = desc.extensions().map(|e| e.number()).collect();
        extensions.sort_unstable();
        Some(Layout {
            fields: fields.into(),
            dense: dense.into(),
            extensions: extensions.into(),
        })
    }

    fn field(&mut self, field: &FieldDescriptor) -> Option<FieldPlan> {
        if field.is_group() {
            return None;
        }
        let (shape, kind) = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return None;
            };
            let key = self.scalar(&entry.map_entry_key_field().kind());
            let value = self.scalar(&entry.map_entry_value_field().kind());
            (Shape::Map(key), value)
        } else if field.cardinality() == Cardinality::Repeated {
            (Shape::List, self.scalar(&field.kind()))
        } else {
            (Shape::Single, self.scalar(&field.kind()))
        };
        let presence = field.supports_presence();
        // Message fields always have presence; one without it would need a
        // default message written, which the writer does not do.
        if shape == Shape::Single && !presence && matches!(kind, Scalar::Message(_)) {
            return None;
        }
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
        Some(FieldPlan {
            number: field.number(),
            keys: [key(field.json_name()), key(field.name())],
            shape,
            kind,
            oneof,
            presence,
        })
    }

    fn scalar(&mut self, kind: &Kind) -> Scalar {
        match kind {
            Kind::Enum(e) => self.enumeration(e),
            Kind::Message(m) => Scalar::Message(self.message(m)),
            // The namers are not called: enums and messages are above.
            _ => ValueKind::of(kind, |_| EnumRef::Null, |_| 0),
        }
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it.
fn quoted(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    // Writing a string into a Vec cannot fail.
    let _ = serde::Serializer::serialize_str(&mut serde_json::Serializer::new(&mut out), text);
    out
}

/// `"name":`.
fn key(name: &str) -> Box<[u8]> {
    let mut out = quoted(name);
    out.push(b':');
    out.into()
}
