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
//! - a field mask with an empty path or field (`a..b`, `a,,b`) is refused;
//! - a timestamp or duration with more than nine fractional digits is
//!   refused instead of truncated, a timestamp on a leap second (`:60`)
//!   instead of moved to the next second.
//!
//! It wraps a deserializer and every nested one, remembers the keys of each
//! object while it is read (borrowed from the input where possible), and
//! asks a visitor what it expects only for the rare values that need it.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_char(char),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        check_number(&self.0, v)?;
        if let Some(max) = float_max_spelling(&self.0, v) {
            return self.0.visit_f64(max);
        }
        self.0.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Some(max) = check_text(&self.0, v)? {
            return self.0.visit_f64(max);
        }
        self.0.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        if let Some(max) = check_text(&self.0, v)? {
            return self.0.visit_f64(max);
        }
        self.0.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        if let Some(max) = check_text(&self.0, &v)? {
            return self.0.visit_f64(max);
        }
        self.0.visit_string(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
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
        self.0.visit_map(Map {
            inner: map,
            keys: Keys::Few(Vec::new()),
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // JSON has no enums; serde_json only offers strings and maps here.
        self.0.visit_enum(data)
    }
}

/// What a visitor says it expects, e.g. "a 64-bit signed integer".
fn expecting<'de, V: Visitor<'de>>(visitor: &V) -> String {
    struct Expecting<'v, V>(&'v V);
    impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }
    }
    Expecting(visitor).to_string()
}

/// Below this, every integer is exact as an `f64`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A number read as a float: refused for an integer field when it may have
/// lost digits already.
fn check_number<'de, V: Visitor<'de>, E: de::Error>(visitor: &V, v: f64) -> Result<(), E> {
    if v.abs() >= EXACT_INTEGERS && expecting(visitor).contains("integer") {
        return Err(E::custom(
            "an integer of 2^53 or more must be written without fraction or exponent, or as a string, to be exact",
        ));
    }
    Ok(())
}

/// The largest `float` as written in short (`3.4028235e38`, which the
/// gateway itself writes): past `f32::MAX` as a 64-bit number, but it
/// rounds to it. The parser underneath compares before rounding and would
/// refuse it; this gives it `±f32::MAX` instead. `None` for anything else
/// (the visitor is asked what it expects only for such numbers).
fn float_max_spelling<'de, V: Visitor<'de>>(visitor: &V, v: f64) -> Option<f64> {
    let rounded = rounded_f32_max(v)?;
    (expecting(visitor) == "a 32-bit floating point value").then_some(rounded)
}

/// `±f32::MAX` for a finite number past it that rounds to it.
pub(crate) fn rounded_f32_max(v: f64) -> Option<f64> {
    let rounded = v as f32;
    (v.is_finite() && v.abs() > f64::from(f32::MAX) && rounded.is_finite())
        .then_some(f64::from(rounded))
}

/// A string for a float, timestamp or duration field, checked where the
/// parser underneath would accept it loosely; `Some` is the number to give
/// the parser instead (the largest `float`, spelled short: see
/// [`float_max_spelling`]).
fn check_text<'de, V: Visitor<'de>, E: de::Error>(visitor: &V, v: &str) -> Result<Option<f64>, E> {
    let first = v.bytes().next().unwrap_or(b' ');
    if (first.is_ascii_digit() || b"+-.iInN".contains(&first))
        && !matches!(v, "NaN" | "Infinity" | "-Infinity")
        && let Ok(number) = v.parse::<f64>()
        && (!number.is_finite() || number.abs() > f64::from(f32::MAX))
    {
        let expected = expecting(visitor);
        let float32 = expected == "a 32-bit floating point value";
        if float32 && let Some(max) = rounded_f32_max(number) {
            return Ok(Some(max));
        }
        if expected == "a 64-bit floating point value" && !number.is_finite() || float32 {
            return Err(E::custom(format_args!(
                "`{v}` is not a number this field can hold (special values are \"NaN\", \"Infinity\" and \"-Infinity\")"
            )));
        }
    }
    if !v.is_empty() && expecting(visitor) == "a field mask string" {
        let empty = v.split(',').any(|path| path.split('.').any(str::is_empty));
        if empty {
            return Err(E::custom(format_args!(
                "`{v}` is not a field mask: paths are separated by `,`, their fields by `.`, and none may be empty"
            )));
        }
    }
    if is_leap_second(v) && expecting(visitor).contains("timestamp") {
        return Err(E::custom(format_args!(
            "`{v}` names a leap second (:60), which a Timestamp cannot hold (protobuf time smears leap seconds)"
        )));
    }
    if has_long_fraction(v) {
        let expected = expecting(visitor);
        if expected.contains("timestamp") || expected.contains("duration") {
            return Err(E::custom(format_args!(
                "`{v}` has more than nine fractional digits (nanosecond precision)"
            )));
        }
    }
    Ok(None)
}

/// Whether an RFC 3339 time has 60 seconds (`2016-12-31T23:59:60Z`).
fn is_leap_second(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 19 && b[13] == b':' && b[16] == b':' && &b[17..19] == b"60"
}

/// Whether a `.` is followed by more than nine digits.
fn has_long_fraction(v: &str) -> bool {
    v.split('.')
        .skip(1)
        .any(|after| after.bytes().take_while(u8::is_ascii_digit).count() > 9)
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

/// Past this many keys, duplicates are looked up in a hash set.
const LINEAR_KEYS: usize = 16;

struct Map<'de, A> {
    inner: A,
    keys: Keys<'de>,
}

/// The keys of one object seen so far.
enum Keys<'de> {
    Few(Vec<Cow<'de, str>>),
    /// Keys, and their loose forms (see [`loose`]).
    Many(HashSet<Cow<'de, str>>, HashSet<String>),
}

impl<'de> Keys<'de> {
    fn is_empty(&self) -> bool {
        match self {
            Keys::Few(keys) => keys.is_empty(),
            Keys::Many(keys, _) => keys.is_empty(),
        }
    }

    /// Records `key`, or gives it back when it was seen before. Notes a
    /// possible alias or a late `@type` (see [`RECHECK`]).
    fn insert(&mut self, key: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        if (key == "@type" && !self.is_empty()) || odd_integer(&key) {
            RECHECK.set(true);
        }
        match self {
            Keys::Few(keys) if keys.contains(&key) => return Err(key),
            Keys::Few(keys) => {
                if maybe_alias(&key) && keys.iter().any(|k| same_loosely(k, &key)) {
                    RECHECK.set(true);
                }
                if keys.len() < LINEAR_KEYS {
                    keys.push(key);
                } else {
                    let mut loose_forms: HashSet<String> = keys.iter().map(|k| loose(k)).collect();
                    loose_forms.insert(loose(&key));
                    let mut set: HashSet<_> = keys.drain(..).collect();
                    set.insert(key);
                    *self = Keys::Many(set, loose_forms);
                }
            }
            Keys::Many(set, _) if set.contains(&key) => return Err(key),
            Keys::Many(set, loose_forms) => {
                if !loose_forms.insert(loose(&key)) {
                    RECHECK.set(true);
                }
                set.insert(key);
            }
        }
        Ok(())
    }
}

thread_local! {
    /// Set when a parse met something only the descriptors can settle, so
    /// the caller checks again on a JSON tree:
    ///
    /// - an object had two keys that differ only in case and underscores,
    ///   the way a field's proto name (`page_size`) and JSON name
    ///   (`pageSize`) differ; the message parser underneath would keep the
    ///   last;
    /// - an object had `@type` after other keys: the parser then buffers
    ///   the `Any`'s fields and reads them past this adapter, unchecked;
    /// - a key spelled an integer unusually (`01`, `+1`, `-0`): as a key of
    ///   an integer map it is one entry with its plain spelling.
    ///
    /// Parsing is synchronous, so a thread-local flag is exact.
    static RECHECK: Cell<bool> = const { Cell::new(false) };
}

/// Clears the recheck flag before a parse.
pub(super) fn reset_recheck() {
    RECHECK.set(false);
}

/// Whether the last parse needs the tree check (see [`RECHECK`]).
pub(super) fn needs_recheck() -> bool {
    RECHECK.get()
}

/// An integer with a sign or zeros the plain spelling does not have.
pub(super) fn odd_integer(key: &str) -> bool {
    let digits = key.strip_prefix(['-', '+']).unwrap_or(key);
    let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    numeric
        && (key.starts_with('+')
            || (digits.starts_with('0') && (digits.len() > 1 || key.starts_with('-'))))
}

/// Only keys with `_` or capitals can be the other name of another key.
fn maybe_alias(key: &str) -> bool {
    key.bytes().any(|b| b == b'_' || b.is_ascii_uppercase())
}

/// A key without underscores, lower-cased.
fn loose(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn same_loosely(a: &str, b: &str) -> bool {
    let mut a = a.chars().filter(|c| *c != '_');
    let mut b = b.chars().filter(|c| *c != '_');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut key = None;
        let value = self.inner.next_key_seed(KeySeed {
            seed,
            key: &mut key,
        })?;
        if let Some(key) = key
            && let Err(key) = self.keys.insert(key)
        {
            return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
        }
        Ok(value)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Reads an object key and keeps a copy of it.
struct KeySeed<'k, 'de, S> {
    seed: S,
    key: &'k mut Option<Cow<'de, str>>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(KeyDeserializer {
            inner: deserializer,
            key: self.key,
        })
    }
}

struct KeyDeserializer<'k, 'de, D> {
    inner: D,
    key: &'k mut Option<Cow<'de, str>>,
}

macro_rules! forward_key {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method(KeyVisitor(visitor, self.key))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDeserializer<'_, 'de, D> {
    type Error = D::Error;

    forward_key!(
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
        self.inner
            .deserialize_unit_struct(name, KeyVisitor(visitor, self.key))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_newtype_struct(name, KeyVisitor(visitor, self.key))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple(len, KeyVisitor(visitor, self.key))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_tuple_struct(name, len, KeyVisitor(visitor, self.key))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_struct(name, fields, KeyVisitor(visitor, self.key))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner
            .deserialize_enum(name, variants, KeyVisitor(visitor, self.key))
    }
}

/// Forwards a key to the real visitor, keeping its text.
struct KeyVisitor<'k, 'de, V>(V, &'k mut Option<Cow<'de, str>>);

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        *self.1 = Some(Cow::Borrowed(v));
        self.0.visit_borrowed_str(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        *self.1 = Some(Cow::Owned(v.to_owned()));
        self.0.visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        *self.1 = Some(Cow::Owned(v.clone()));
        self.0.visit_string(v)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
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
        for bad in ["\"a..b\"", "\"a,,b\"", "\".a\"", "\"a.\"", "\",\""] {
            assert!(parse_as("google.protobuf.FieldMask", bad).is_err(), "{bad}");
        }
        for ok in ["\"\"", "\"a\"", "\"a.b,cD\""] {
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
