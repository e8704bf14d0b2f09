//! Scalars as they go on the wire: which wire form each field kind takes,
//! and its length and bytes.

use prost::encoding::{WireType, encode_varint, encoded_len_varint};
use prost_reflect::{MapKey, Value};

use crate::transcode::kind::ValueKind;

/// A field kind that is not a message (never `Message` here).
pub(in crate::transcode) type ScalarKind = ValueKind;

/// A scalar in its wire form.
#[derive(Debug, Clone, Copy)]
pub(in crate::transcode) enum Scalar<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Delimited(&'a [u8]),
}

impl<'a> Scalar<'a> {
    /// `value` as a scalar of `kind`, or `None` if it is not one (a message,
    /// a list, a map, or the wrong type). Negative `int32`s and enum
    /// numbers are sign-extended to ten-byte varints, as protobuf
    /// specifies.
    pub(in crate::transcode) fn of(value: &'a Value, kind: ScalarKind) -> Option<Scalar<'a>> {
        Some(match (value, kind) {
            (Value::Bool(v), ScalarKind::Bool) => Scalar::Varint(u64::from(*v)),
            (Value::I32(v), ScalarKind::Int32) | (Value::EnumNumber(v), ScalarKind::Enum(())) => {
                Scalar::Varint(i64::from(*v) as u64)
            }
            (Value::I32(v), ScalarKind::Sint32) => Scalar::Varint(u64::from(zigzag32(*v))),
            (Value::I32(v), ScalarKind::Sfixed32) => Scalar::Fixed32(*v as u32),
            (Value::I64(v), ScalarKind::Int64) => Scalar::Varint(*v as u64),
            (Value::I64(v), ScalarKind::Sint64) => Scalar::Varint(zigzag64(*v)),
            (Value::I64(v), ScalarKind::Sfixed64) => Scalar::Fixed64(*v as u64),
            (Value::U32(v), ScalarKind::Uint32) => Scalar::Varint(u64::from(*v)),
            (Value::U32(v), ScalarKind::Fixed32) => Scalar::Fixed32(*v),
            (Value::U64(v), ScalarKind::Uint64) => Scalar::Varint(*v),
            (Value::U64(v), ScalarKind::Fixed64) => Scalar::Fixed64(*v),
            (Value::F32(v), ScalarKind::Float) => Scalar::Fixed32(v.to_bits()),
            (Value::F64(v), ScalarKind::Double) => Scalar::Fixed64(v.to_bits()),
            (Value::String(v), ScalarKind::String) => Scalar::Delimited(v.as_bytes()),
            (Value::Bytes(v), ScalarKind::Bytes) => Scalar::Delimited(v),
            _ => return None,
        })
    }

    /// An element of a packed list: a scalar with no length of its own.
    pub(in crate::transcode) fn packed(value: &'a Value, kind: ScalarKind) -> Option<Scalar<'a>> {
        Scalar::of(value, kind).filter(|s| !matches!(s, Scalar::Delimited(_)))
    }

    /// `key` as a scalar of `kind`, or `None` if it is not one.
    pub(in crate::transcode) fn of_key(key: &'a MapKey, kind: ScalarKind) -> Option<Scalar<'a>> {
        Some(match (key, kind) {
            (MapKey::Bool(v), ScalarKind::Bool) => Scalar::Varint(u64::from(*v)),
            (MapKey::I32(v), ScalarKind::Int32) => Scalar::Varint(i64::from(*v) as u64),
            (MapKey::I32(v), ScalarKind::Sint32) => Scalar::Varint(u64::from(zigzag32(*v))),
            (MapKey::I32(v), ScalarKind::Sfixed32) => Scalar::Fixed32(*v as u32),
            (MapKey::I64(v), ScalarKind::Int64) => Scalar::Varint(*v as u64),
            (MapKey::I64(v), ScalarKind::Sint64) => Scalar::Varint(zigzag64(*v)),
            (MapKey::I64(v), ScalarKind::Sfixed64) => Scalar::Fixed64(*v as u64),
            (MapKey::U32(v), ScalarKind::Uint32) => Scalar::Varint(u64::from(*v)),
            (MapKey::U32(v), ScalarKind::Fixed32) => Scalar::Fixed32(*v),
            (MapKey::U64(v), ScalarKind::Uint64) => Scalar::Varint(*v),
            (MapKey::U64(v), ScalarKind::Fixed64) => Scalar::Fixed64(*v),
            (MapKey::String(v), ScalarKind::String) => Scalar::Delimited(v.as_bytes()),
            _ => return None,
        })
    }

    pub(in crate::transcode) fn wire_type(self) -> WireType {
        match self {
            Scalar::Varint(_) => WireType::Varint,
            Scalar::Fixed32(_) => WireType::ThirtyTwoBit,
            Scalar::Fixed64(_) => WireType::SixtyFourBit,
            Scalar::Delimited(_) => WireType::LengthDelimited,
        }
    }

    /// The encoded length, without a key.
    pub(in crate::transcode) fn len(self) -> usize {
        match self {
            Scalar::Varint(v) => encoded_len_varint(v),
            Scalar::Fixed32(_) => 4,
            Scalar::Fixed64(_) => 8,
            Scalar::Delimited(b) => encoded_len_varint(b.len() as u64) + b.len(),
        }
    }

    pub(in crate::transcode) fn put(self, buf: &mut Vec<u8>) {
        match self {
            Scalar::Varint(v) => encode_varint(v, buf),
            Scalar::Fixed32(v) => buf.extend_from_slice(&v.to_le_bytes()),
            Scalar::Fixed64(v) => buf.extend_from_slice(&v.to_le_bytes()),
            Scalar::Delimited(b) => {
                encode_varint(b.len() as u64, buf);
                buf.extend_from_slice(b);
            }
        }
    }
}

/// Whether `key` is the zero of `kind`, as `MapKey::is_default` decides
/// (which panics for a kind no key has; `None` here).
pub(super) fn is_default_key(key: &MapKey, kind: ScalarKind) -> Option<bool> {
    use ScalarKind as K;
    Some(match kind {
        K::Int32 | K::Sint32 | K::Sfixed32 => *key == MapKey::I32(0),
        K::Int64 | K::Sint64 | K::Sfixed64 => *key == MapKey::I64(0),
        K::Uint32 | K::Fixed32 => *key == MapKey::U32(0),
        K::Uint64 | K::Fixed64 => *key == MapKey::U64(0),
        K::Bool => *key == MapKey::Bool(false),
        K::String => matches!(key, MapKey::String(s) if s.is_empty()),
        K::Double | K::Float | K::Bytes | K::Enum(()) | K::Message(()) => return None,
    })
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
