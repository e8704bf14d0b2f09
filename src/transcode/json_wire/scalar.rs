//! Scalar JSON values into wire values, with exactly the conversions
//! prost-reflect's parser makes behind the strict adapter
//! ([`strict`](crate::transcode::strict)): which JSON types each kind
//! takes, which numbers fit, which strings are numbers, base64 and enum
//! names. Anything else fails, and the request takes the reflective path.

use std::fmt;

use base64::{DecodeError, Engine as _};
use prost::encoding::encode_varint;
use prost_reflect::Value;
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::buf;
use super::plan::ValueType;
use super::read::{Encoder, fail};
use crate::transcode::encode::scalar::Scalar;
use crate::transcode::kind::ValueKind as K;
use crate::transcode::strict::{IntegerText, integer_text, rounded_f32_max};
use crate::transcode::text::{BASE64, BASE64_URL};

/// Below this, every integer is exact as an `f64`; the strict adapter
/// refuses integer fields a float at or above it.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// One scalar or enum value, written with `key` (none inside a packed
/// list). Its value says whether the field is set: an unknown enum name
/// that the options ignore leaves it unset.
pub(super) struct ScalarSeed<'e, 't> {
    pub(super) enc: &'e mut Encoder<'t>,
    pub(super) kind: ValueType,
    pub(super) key: Option<u64>,
    /// Leave the value out when it is the default (implicit presence).
    pub(super) skip_default: bool,
    /// The default of an implicit enum field.
    pub(super) enum_default: i32,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // The deserializer calls prost-reflect makes for each kind.
        match self.kind {
            K::String => deserializer.deserialize_string(self),
            K::Bytes => deserializer.deserialize_str(self),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl ScalarSeed<'_, '_> {
    /// Writes `value` (of this seed's kind, as the conversions below make
    /// it), unless it is a default left out.
    fn put<E: de::Error>(self, value: Option<Value>) -> Result<bool, E> {
        let value = value.ok_or_else(fail)?;
        if self.skip_default && is_default(&value, self.enum_default) {
            return Ok(true);
        }
        let scalar = Scalar::of(&value, self.kind.plain()).ok_or_else(fail)?;
        if let Some(key) = self.key {
            encode_varint(key, &mut self.enc.out);
        }
        scalar.put(&mut self.enc.out);
        Ok(true)
    }

    fn bytes<E: de::Error>(self, text: &str) -> Result<bool, E> {
        let out = &mut self.enc.out;
        let start = out.len();
        if let Some(key) = self.key {
            encode_varint(key, out);
        }
        let at = buf::open(out);
        let decoded = match BASE64.decode_vec(text, out) {
            Err(DecodeError::InvalidByte(_, b'-' | b'_')) => {
                out.truncate(at + 1);
                BASE64_URL.decode_vec(text, out)
            }
            other => other,
        };
        decoded.map_err(|_| fail())?;
        if self.skip_default && out.len() == at + 1 {
            out.truncate(start);
        } else {
            buf::close(out, at);
        }
        Ok(true)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value of the field's kind")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        let value = (self.kind == K::Bool).then_some(Value::Bool(v));
        self.put(value)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        let value = from_u64(self.kind, v);
        self.put(value)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        let value = from_i64(self.kind, v);
        self.put(value)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        let value = from_f64(self.kind, v);
        self.put(value)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match self.kind {
            K::String => {
                if !(self.skip_default && v.is_empty()) {
                    let out = &mut self.enc.out;
                    if let Some(key) = self.key {
                        encode_varint(key, out);
                    }
                    encode_varint(v.len() as u64, out);
                    out.extend_from_slice(v.as_bytes());
                }
                Ok(true)
            }
            K::Bytes => self.bytes(v),
            K::Enum(index) => {
                let plan = self.enc.table.enums.get(index as usize).ok_or_else(fail)?;
                match plan.number(v) {
                    Some(number) => self.put(Some(Value::EnumNumber(number))),
                    None if self.enc.ignore_unknown => Ok(false),
                    None => Err(fail()),
                }
            }
            kind => self.put(from_str(kind, v)),
        }
    }
}

/// Whether an implicit-presence field holding `value` is left out, as
/// prost-reflect decides (by `==`, so `-0.0` is a default too).
fn is_default(value: &Value, enum_default: i32) -> bool {
    match value {
        Value::Bool(v) => !v,
        Value::I32(v) => *v == 0,
        Value::I64(v) => *v == 0,
        Value::U32(v) => *v == 0,
        Value::U64(v) => *v == 0,
        Value::F32(v) => *v == 0.0,
        Value::F64(v) => *v == 0.0,
        Value::EnumNumber(v) => *v == enum_default,
        _ => false,
    }
}

/// A JSON integer of 0 or more.
fn from_u64(kind: ValueType, v: u64) -> Option<Value> {
    Some(match kind {
        K::Double => Value::F64(v as f64),
        K::Float => Value::F32(v as f32),
        K::Int32 | K::Sint32 | K::Sfixed32 => Value::I32(v.try_into().ok()?),
        K::Int64 | K::Sint64 | K::Sfixed64 => Value::I64(v.try_into().ok()?),
        K::Uint32 | K::Fixed32 => Value::U32(v.try_into().ok()?),
        K::Uint64 | K::Fixed64 => Value::U64(v),
        K::Enum(_) => Value::EnumNumber(v.try_into().ok()?),
        K::Bool | K::String | K::Bytes | K::Message(_) => return None,
    })
}

/// A negative JSON integer.
fn from_i64(kind: ValueType, v: i64) -> Option<Value> {
    Some(match kind {
        K::Double => Value::F64(v as f64),
        K::Float => Value::F32(v as f32),
        K::Int32 | K::Sint32 | K::Sfixed32 => Value::I32(v.try_into().ok()?),
        K::Int64 | K::Sint64 | K::Sfixed64 => Value::I64(v),
        K::Uint32 | K::Fixed32 => Value::U32(v.try_into().ok()?),
        K::Uint64 | K::Fixed64 => Value::U64(v.try_into().ok()?),
        K::Enum(_) => Value::EnumNumber(v.try_into().ok()?),
        K::Bool | K::String | K::Bytes | K::Message(_) => return None,
    })
}

/// A JSON number with a fraction or exponent, one too large for 64 bits,
/// or `-0`.
fn from_f64(kind: ValueType, v: f64) -> Option<Value> {
    // Integer fields: whole, in range, and below 2^53 (the strict rule).
    // Asked only for those: most numbers with a fraction are doubles.
    let whole = || v.abs() < EXACT_INTEGERS && v.fract() == 0.0;
    let within = |min: f64, max: f64| whole() && v >= min && v <= max;
    Some(match kind {
        K::Double => Value::F64(v),
        K::Float if v >= f64::from(f32::MIN) && v <= f64::from(f32::MAX) => Value::F32(v as f32),
        // `3.4028235e38`: past `f32::MAX` until rounded (as `strict` says).
        K::Float => Value::F32(rounded_f32_max(v)? as f32),
        K::Int32 | K::Sint32 | K::Sfixed32 if within(i32::MIN.into(), i32::MAX.into()) => {
            Value::I32(v as i32)
        }
        K::Int64 | K::Sint64 | K::Sfixed64 if whole() => Value::I64(v as i64),
        K::Uint32 | K::Fixed32 if within(0.0, u32::MAX.into()) => Value::U32(v as u32),
        K::Uint64 | K::Fixed64 if whole() && v >= 0.0 => Value::U64(v as u64),
        _ => return None,
    })
}

/// A JSON string for a number field.
fn from_str(kind: ValueType, v: &str) -> Option<Value> {
    const SPECIAL: [&str; 3] = ["NaN", "Infinity", "-Infinity"];
    Some(match kind {
        K::Double => {
            // Rust's parser also takes `inf`, `nan` and overflow to
            // infinity; the strict adapter takes only the three names.
            let n: f64 = v.parse().ok()?;
            if !n.is_finite() && !SPECIAL.contains(&v) {
                return None;
            }
            Value::F64(n)
        }
        K::Float => {
            if let Ok(n) = v.parse::<f64>()
                && let Some(max) = rounded_f32_max(n)
            {
                return Some(Value::F32(max as f32));
            }
            if let Ok(n) = v.parse::<f64>()
                && (!n.is_finite() || n.abs() > f64::from(f32::MAX))
                && !SPECIAL.contains(&v)
            {
                return None;
            }
            Value::F32(v.parse().ok()?)
        }
        // `"1e3"`: read as the number it writes, as the strict parse does.
        K::Int32
        | K::Sint32
        | K::Sfixed32
        | K::Int64
        | K::Sint64
        | K::Sfixed64
        | K::Uint32
        | K::Fixed32
        | K::Uint64
        | K::Fixed64
            if let Some(text) = integer_text(v) =>
        {
            // The whole number it writes, as the strict parse reads it.
            let IntegerText::Whole(n) = text else {
                return None;
            };
            return match kind {
                K::Int32 | K::Sint32 | K::Sfixed32 => i32::try_from(n).ok().map(Value::I32),
                K::Int64 | K::Sint64 | K::Sfixed64 => i64::try_from(n).ok().map(Value::I64),
                K::Uint32 | K::Fixed32 => u32::try_from(n).ok().map(Value::U32),
                _ => u64::try_from(n).ok().map(Value::U64),
            };
        }
        K::Int32 | K::Sint32 | K::Sfixed32 => Value::I32(v.parse().ok()?),
        K::Int64 | K::Sint64 | K::Sfixed64 => Value::I64(v.parse().ok()?),
        K::Uint32 | K::Fixed32 => Value::U32(v.parse().ok()?),
        K::Uint64 | K::Fixed64 => Value::U64(v.parse().ok()?),
        K::Bool | K::String | K::Bytes | K::Enum(_) | K::Message(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_for_integers_must_be_whole_exact_and_in_range() {
        assert_eq!(from_f64(K::Int32, 12.0), Some(Value::I32(12)));
        assert_eq!(from_f64(K::Int32, -0.0), Some(Value::I32(0)));
        assert_eq!(from_f64(K::Uint32, -0.0), Some(Value::U32(0)));
        assert_eq!(from_f64(K::Int32, 1.5), None);
        assert_eq!(from_f64(K::Int32, 3e9), None);
        assert_eq!(from_f64(K::Uint64, -1.0), None);
        assert_eq!(from_f64(K::Int64, 9_007_199_254_740_992.0), None);
        assert_eq!(
            from_f64(K::Int64, 9_007_199_254_740_991.0),
            Some(Value::I64(9_007_199_254_740_991))
        );
        assert_eq!(from_f64(K::Enum(0), 1.0), None);
        assert_eq!(from_f64(K::Float, 3.5e38), None);
        assert_eq!(from_f64(K::Float, 1.5), Some(Value::F32(1.5)));
        assert_eq!(from_f64(K::Float, 1e30), Some(Value::F32(1e30)));
    }

    #[test]
    fn strings_for_floats_take_only_the_three_names() {
        for bad in ["inf", "nan", "1e400", "+Infinity", "infinity", " 1", ""] {
            assert_eq!(from_str(K::Double, bad), None, "{bad}");
        }
        assert!(matches!(from_str(K::Double, "NaN"), Some(Value::F64(v)) if v.is_nan()));
        assert_eq!(
            from_str(K::Double, "-Infinity"),
            Some(Value::F64(f64::NEG_INFINITY))
        );
        assert_eq!(from_str(K::Float, "3.5e38"), None);
        assert_eq!(from_str(K::Float, "1e-50"), Some(Value::F32(0.0)));
        assert_eq!(from_str(K::Int64, "+5"), Some(Value::I64(5)));
        assert_eq!(from_str(K::Bool, "true"), None);
    }

    #[test]
    fn strings_for_integers_may_use_exponent_or_fraction() {
        assert_eq!(from_str(K::Int64, "5.0"), Some(Value::I64(5)));
        assert_eq!(from_str(K::Int32, "1e3"), Some(Value::I32(1000)));
        assert_eq!(from_str(K::Sint32, "-1E2"), Some(Value::I32(-100)));
        assert_eq!(from_str(K::Uint64, "2.5e1"), Some(Value::U64(25)));
        assert_eq!(from_str(K::Int32, "-0.0"), Some(Value::I32(0)));
        // Read exactly: whole and in range, however written.
        for bad in [
            "1.5", "1e-2", "3e9", "1e16", "1e400", "1e", ".5", "1e3x", " 1e3", "1e-400",
        ] {
            assert_eq!(from_str(K::Int32, bad), None, "{bad}");
        }
        let exact = [
            (
                K::Int64,
                "1e18",
                Some(Value::I64(1_000_000_000_000_000_000)),
            ),
            (K::Int64, "0.99999999999999999999", None),
            (K::Int64, "1.00000000000000000001", None),
            (
                K::Uint64,
                "1.8446744073709551615e19",
                Some(Value::U64(u64::MAX)),
            ),
            (K::Uint64, "1.8446744073709551616e19", None),
            (K::Uint32, "-1e0", None),
            (K::Uint32, "-0", Some(Value::U32(0))),
            (K::Fixed64, "-0.0e5", Some(Value::U64(0))),
        ];
        for (kind, text, value) in exact {
            assert_eq!(from_str(kind, text), value, "{text}");
        }
    }
}
