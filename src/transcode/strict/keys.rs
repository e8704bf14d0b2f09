//! Keys of JSON objects: each checked against the ones before it in the
//! same object (a repeat is refused), and the flag for what only the
//! descriptors can settle (two spellings of one field, a late `@type`, an
//! integer map key spelled unusually).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::{Seed, forward_visit};

/// Past this many keys, duplicates are looked up in a hash set.
const LINEAR_KEYS: usize = 16;

/// An object's entries, each key checked against those before it.
pub(super) struct Map<'de, A> {
    inner: A,
    keys: Keys<'de>,
}

impl<A> Map<'_, A> {
    pub(super) fn new(inner: A) -> Self {
        Map {
            inner,
            keys: Keys::Few(Vec::new()),
        }
    }
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
    ///   an integer map it is one entry with its plain spelling;
    /// - a field was given `null`, which leaves a list or map unset however
    ///   its elements read `null`.
    ///
    /// Parsing is synchronous, so a thread-local flag is exact.
    static RECHECK: Cell<bool> = const { Cell::new(false) };

    /// Set when a parse met an empty object: an empty `Any` (`{}`), which
    /// the message parser underneath refuses, may be why it failed; the
    /// tree path reads one.
    static EMPTY_OBJECT: Cell<bool> = const { Cell::new(false) };
}

/// Asks for the tree check after this parse.
pub(crate) fn recheck() {
    RECHECK.set(true);
}

/// Clears the recheck and empty-object flags before a parse.
pub(crate) fn reset_recheck() {
    RECHECK.set(false);
    EMPTY_OBJECT.set(false);
}

/// Whether the last parse met an empty object (see [`EMPTY_OBJECT`]).
pub(crate) fn met_empty_object() -> bool {
    EMPTY_OBJECT.get()
}

/// Whether the last parse needs the tree check (see [`RECHECK`]).
pub(crate) fn needs_recheck() -> bool {
    RECHECK.get()
}

/// An integer with a sign or zeros the plain spelling does not have.
pub(crate) fn odd_integer(key: &str) -> bool {
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

/// Whether `a` and `b` differ only in case and underscores: the spellings
/// of one field the key check recognises as one.
pub(crate) fn same_loosely(a: &str, b: &str) -> bool {
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
        if value.is_none() && self.keys.is_empty() {
            EMPTY_OBJECT.set(true);
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
