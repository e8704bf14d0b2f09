//! A serde adapter that holds request JSON to the proto3 JSON mapping where
//! the message parser underneath is lenient, so that no value is silently
//! changed:
//!
//! - a key repeated in one object is refused (serde_json lets the last one
//!   win);
//! - an integer field given a number with a fraction or exponent of 2^53 or
//!   more is refused: as a float it may already have lost digits;
//! - a float field given a string must be a number that fits the field, or
//!   exactly `NaN`, `Infinity` or `-Infinity` (not `inf`, `1e400`);
//! - an integer field given a string in exponent or fraction notation
//!   (`"1e3"`, which proto3 JSON allows) or `"-0"` gets the whole number it
//!   writes, read exactly; one with a fractional part is refused (the
//!   parser underneath reads only digits);
//! - a field mask with an empty path or field (`a..b`, `a,,b`), or a name
//!   that is not lowerCamelCase (`a b`, `a_b`), is refused with the reason
//!   (a query also takes snake_case);
//! - a timestamp or duration with more than nine fractional digits is
//!   refused instead of truncated, a timestamp on a leap second (`:60`)
//!   instead of moved to the next second.
//!
//! It wraps a deserializer and every nested one, remembers the keys of each
//! object while it is read (borrowed from the input where possible), and
//! asks a visitor what it expects only for the rare values that need it.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

mod keys;
mod values;
use keys::Map;
pub(crate) use keys::odd_integer;
pub(super) use keys::{met_empty_object, needs_recheck, reset_recheck, same_loosely};
use values::{Instead, check_number, check_text, expects, float_max_spelling};
pub(crate) use values::{IntegerText, integer_text, rounded_f32_max};

/// Wraps `D`: objects anywhere inside fail on a repeated key.
#[derive(Debug)]
pub(super) struct Strict<D>(pub(super) D);

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Wrap(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested deserializers, sequences and maps are wrapped.
struct Wrap<V>(V);

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.0.$method(v)
            }
        )*
    };
}
// For the key visitor in `keys`, which forwards the same way.
use forward_visit;

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u128(u128),
        visit_f32(f32),
        visit_char(char),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if v == 0 && expects(&self.0, NULL_VALUE) {
            return self.0.visit_unit();
        }
        self.0.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if v == 0 && expects(&self.0, NULL_VALUE) {
            return self.0.visit_unit();
        }
        self.0.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        check_number(&self.0, v)?;
        if let Some(max) = float_max_spelling(&self.0, v) {
            return self.0.visit_f64(max);
        }
        self.0.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Some(instead) = check_text(&self.0, v)? {
            return visit_instead(self.0, instead);
        }
        self.0.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        if let Some(instead) = check_text(&self.0, v)? {
            return visit_instead(self.0, instead);
        }
        self.0.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        if let Some(instead) = check_text(&self.0, &v)? {
            return visit_instead(self.0, instead);
        }
        self.0.visit_string(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        // A field given `null` (the parser asks for an option only for a
        // field's value): prost-reflect reads it as one `NullValue` element
        // for a list or map of `Value` or `NullValue`, where `null` leaves
        // every list and map unset. The tree path knows the field.
        keys::recheck();
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Map::new(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // JSON has no enums; serde_json only offers strings and maps here.
        self.0.visit_enum(data)
    }
}

/// Gives `visitor` what [`check_text`] read instead of a string.
/// What prost-reflect's reader of a `google.protobuf.NullValue` expects.
/// It takes `null` and `"NULL_VALUE"`; `0`, the enum's number, is read as
/// `null` here, as Go and Python read it (any enum takes its numbers).
const NULL_VALUE: &str = "null";

fn visit_instead<'de, V: Visitor<'de>, E: de::Error>(
    visitor: V,
    instead: Instead,
) -> Result<V::Value, E> {
    match instead {
        Instead::Float(v) => visitor.visit_f64(v),
        Instead::Integer(n) => match (u64::try_from(n), i64::try_from(n)) {
            (Ok(n), _) => visitor.visit_u64(n),
            (_, Ok(n)) => visitor.visit_i64(n),
            _ => Err(E::custom(
                "the number is out of range for the field's integer type",
            )),
        },
    }
}

/// A seed whose deserializer is wrapped.
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<serde_json::Value, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        serde::Deserialize::deserialize(Strict(&mut de))
            .map_err(|e: serde_json::Error| e.to_string())
    }

    #[test]
    fn accepts_distinct_keys_and_rejects_repeats_at_any_depth() {
        assert!(parse(r#"{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}"#).is_ok());
        for bad in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": {"a": 1, "a": 2}}"#,
            r#"{"x": [{"a": 1, "b": 0, "a": 2}]}"#,
            r#"{"a": 1, "\u0061": 2}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("duplicate key `a`"), "{bad}: {err}");
        }
    }

    #[test]
    fn numbers_that_would_change_are_refused_only_where_they_change() {
        use prost_reflect::{DescriptorPool, DynamicMessage};
        let pool = DescriptorPool::global();
        let parse_as = |type_name: &str, json: &str| {
            let desc = pool.get_message_by_name(type_name).unwrap();
            let mut de = serde_json::Deserializer::from_str(json);
            DynamicMessage::deserialize(desc, Strict(&mut de)).map_err(|e| e.to_string())
        };
        // Int64Value and friends: the JSON value is the wrapped scalar.
        assert!(parse_as("google.protobuf.Int64Value", "9007199254740992.0").is_err());
        assert!(parse_as("google.protobuf.Int64Value", "9.3e18").is_err());
        assert!(parse_as("google.protobuf.Int64Value", "9007199254740993").is_ok());
        assert!(parse_as("google.protobuf.Int64Value", "12.0").is_ok());
        assert!(parse_as("google.protobuf.DoubleValue", "9007199254740993.0").is_ok());
        for bad in [
            "\"inf\"",
            "\"nan\"",
            "\"1e400\"",
            "\"+Infinity\"",
            "\"infinity\"",
        ] {
            assert!(
                parse_as("google.protobuf.DoubleValue", bad).is_err(),
                "{bad}"
            );
        }
        for ok in ["\"NaN\"", "\"-Infinity\"", "\"1e300\"", "\"0.25\""] {
            assert!(parse_as("google.protobuf.DoubleValue", ok).is_ok(), "{ok}");
        }
        assert!(parse_as("google.protobuf.FloatValue", "\"3.5e38\"").is_err());
        assert!(parse_as("google.protobuf.FloatValue", "\"3.4e38\"").is_ok());
        assert!(
            parse_as("google.protobuf.StringValue", "\"1e400\"").is_ok(),
            "strings are data"
        );
        assert!(parse_as("google.protobuf.Duration", "\"1.0000000001s\"").is_err());
        assert!(parse_as("google.protobuf.Duration", "\"1.000000001s\"").is_ok());
        for bad in [
            "\"a..b\"",
            "\"a,,b\"",
            "\".a\"",
            "\"a.\"",
            "\",\"",
            "\"a b\"",
            "\"a,\"",
            "\"a-b\"",
            "\"foo_bar\"",
            "\"fooBar,foo_bar\"",
        ] {
            assert!(parse_as("google.protobuf.FieldMask", bad).is_err(), "{bad}");
        }
        for ok in ["\"\"", "\"a\"", "\"a.b,cD\"", "\"Pages\""] {
            assert!(parse_as("google.protobuf.FieldMask", ok).is_ok(), "{ok}");
        }
        assert!(
            parse_as(
                "google.protobuf.Timestamp",
                "\"2024-01-01T00:00:00.1234567891Z\""
            )
            .is_err()
        );
        assert!(parse_as("google.protobuf.StringValue", "\"v1.1234567891\"").is_ok());
    }

    #[test]
    fn many_keys() {
        let distinct: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(parse(&format!("{{{}}}", distinct.join(","))).is_ok());
        let mut repeated = distinct.clone();
        repeated.push("\"k42\": 0".to_owned());
        assert!(parse(&format!("{{{}}}", repeated.join(","))).is_err());
    }
}
