//! The kinds of protobuf values, listed once for the message encoder and
//! both direct transcoders, and the well-known types they leave to
//! prost-reflect.

use prost::encoding::WireType;
use prost_reflect::{EnumDescriptor, Kind, MessageDescriptor};

/// Messages whose JSON form is not their fields (RFC 3339 text, bare
/// numbers, free-form objects): the direct transcoders leave them to
/// prost-reflect.
pub(super) const WELL_KNOWN: &[&str] = &[
    "google.protobuf.Any",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.FieldMask",
    "google.protobuf.Empty",
    "google.protobuf.FloatValue",
    "google.protobuf.DoubleValue",
    "google.protobuf.Int32Value",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// `google.protobuf.NullValue`, whose JSON is `null` whatever its number.
pub(super) const NULL_VALUE: &str = "google.protobuf.NullValue";

/// The kind of one protobuf value: a scalar, an enum or a message, without
/// the descriptor `prost_reflect::Kind` carries, so it is cheap to copy.
/// `E` and `M` are how the user names enum and message types (an index
/// into its own tables, or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueKind<E = (), M = ()> {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(E),
    Message(M),
}

impl<E, M> ValueKind<E, M> {
    /// `kind`, naming its enum or message type with `enumeration` or
    /// `message`.
    pub(super) fn of(
        kind: &Kind,
        enumeration: impl FnOnce(&EnumDescriptor) -> E,
        message: impl FnOnce(&MessageDescriptor) -> M,
    ) -> Self {
        match kind {
            Kind::Double => ValueKind::Double,
            Kind::Float => ValueKind::Float,
            Kind::Int32 => ValueKind::Int32,
            Kind::Int64 => ValueKind::Int64,
            Kind::Uint32 => ValueKind::Uint32,
            Kind::Uint64 => ValueKind::Uint64,
            Kind::Sint32 => ValueKind::Sint32,
            Kind::Sint64 => ValueKind::Sint64,
            Kind::Fixed32 => ValueKind::Fixed32,
            Kind::Fixed64 => ValueKind::Fixed64,
            Kind::Sfixed32 => ValueKind::Sfixed32,
            Kind::Sfixed64 => ValueKind::Sfixed64,
            Kind::Bool => ValueKind::Bool,
            Kind::String => ValueKind::String,
            Kind::Bytes => ValueKind::Bytes,
            Kind::Enum(e) => ValueKind::Enum(enumeration(e)),
            Kind::Message(m) => ValueKind::Message(message(m)),
        }
    }

    /// The same kind without its type names.
    pub(super) fn plain(&self) -> ValueKind {
        match self {
            ValueKind::Double => ValueKind::Double,
            ValueKind::Float => ValueKind::Float,
            ValueKind::Int32 => ValueKind::Int32,
            ValueKind::Int64 => ValueKind::Int64,
            ValueKind::Uint32 => ValueKind::Uint32,
            ValueKind::Uint64 => ValueKind::Uint64,
            ValueKind::Sint32 => ValueKind::Sint32,
            ValueKind::Sint64 => ValueKind::Sint64,
            ValueKind::Fixed32 => ValueKind::Fixed32,
            ValueKind::Fixed64 => ValueKind::Fixed64,
            ValueKind::Sfixed32 => ValueKind::Sfixed32,
            ValueKind::Sfixed64 => ValueKind::Sfixed64,
            ValueKind::Bool => ValueKind::Bool,
            ValueKind::String => ValueKind::String,
            ValueKind::Bytes => ValueKind::Bytes,
            ValueKind::Enum(_) => ValueKind::Enum(()),
            ValueKind::Message(_) => ValueKind::Message(()),
        }
    }

    /// The wire type of one value of this kind (outside a packed list).
    pub(super) fn wire_type(&self) -> WireType {
        match self {
            ValueKind::Int32
            | ValueKind::Int64
            | ValueKind::Uint32
            | ValueKind::Uint64
            | ValueKind::Sint32
            | ValueKind::Sint64
            | ValueKind::Bool
            | ValueKind::Enum(_) => WireType::Varint,
            ValueKind::Fixed32 | ValueKind::Sfixed32 | ValueKind::Float => WireType::ThirtyTwoBit,
            ValueKind::Fixed64 | ValueKind::Sfixed64 | ValueKind::Double => WireType::SixtyFourBit,
            ValueKind::String | ValueKind::Bytes | ValueKind::Message(_) => {
                WireType::LengthDelimited
            }
        }
    }
}

impl ValueKind {
    /// The kind of a field that is not a message; `None` for messages and
    /// groups.
    pub(super) fn scalar(kind: &Kind) -> Option<ValueKind> {
        match ValueKind::of(kind, |_| (), |_| ()) {
            ValueKind::Message(()) => None,
            scalar => Some(scalar),
        }
    }
}

/// Whether values of type `desc` can hold a message named in `names`.
pub(super) fn reaches(desc: &MessageDescriptor, names: &[&str]) -> bool {
    let mut seen = Vec::new();
    let mut stack = vec![desc.clone()];
    while let Some(message) = stack.pop() {
        if names.contains(&message.full_name()) {
            return true;
        }
        if seen.contains(&message) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(child) = field.kind() {
                stack.push(child);
            }
        }
        seen.push(message);
    }
    false
}
