//! A serde adapter that writes each marked `Any` as `{}`.
//!
//! prost-reflect writes an `Any` as a map whose first entry is `@type`.
//! The adapter holds each map back until its first entry says what it is:
//! a marked `Any` (see [`marker`](super::marker)) is written as `{}` and
//! its entries left out, unread; any other map goes on as it came.

use std::fmt;

use serde::ser::{
    self, Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct,
    SerializeStructVariant, SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
    Serializer,
};

use super::marker;

/// Wraps a serializer and every nested one.
#[derive(Debug)]
pub(crate) struct Collapse<S>(pub(crate) S);

/// A value serialized through [`Collapse`].
struct Value<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Value<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Collapse(serializer))
    }
}

/// A map held back until its first entry.
pub(crate) enum Map<S: Serializer> {
    /// No entry yet.
    Pending(S, Option<usize>),
    /// The first key was `@type`; its value tells.
    Typed(S, Option<usize>),
    /// Any other map, going on as it came.
    Open(S::SerializeMap),
    /// A marked `Any`: `{}`, its entries left out.
    Empty(S),
    /// Between two of the above.
    Moving,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method(self $(, $arg: $ty)*) -> Result<S::Ok, S::Error> {
                self.0.$method($($arg),*)
            }
        )*
    };
}

impl<S: Serializer> Serializer for Collapse<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Collapse<S::SerializeSeq>;
    type SerializeTuple = Collapse<S::SerializeTuple>;
    type SerializeTupleStruct = Collapse<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Collapse<S::SerializeTupleVariant>;
    type SerializeMap = Map<S>;
    type SerializeStruct = Collapse<S::SerializeStruct>;
    type SerializeStructVariant = Collapse<S::SerializeStructVariant>;

    forward!(
        serialize_bool(v: bool),
        serialize_i8(v: i8),
        serialize_i16(v: i16),
        serialize_i32(v: i32),
        serialize_i64(v: i64),
        serialize_i128(v: i128),
        serialize_u8(v: u8),
        serialize_u16(v: u16),
        serialize_u32(v: u32),
        serialize_u64(v: u64),
        serialize_u128(v: u128),
        serialize_f32(v: f32),
        serialize_f64(v: f64),
        serialize_char(v: char),
        serialize_str(v: &str),
        serialize_bytes(v: &[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(name: &'static str),
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Value(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Value(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Value(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Collapse)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Collapse)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Collapse)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Collapse)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Map<S>, S::Error> {
        Ok(Map::Pending(self.0, len))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Collapse)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Collapse)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: Serializer> SerializeMap for Map<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        match std::mem::replace(self, Map::Moving) {
            Map::Pending(serializer, len) if text(key).as_deref() == Some("@type") => {
                *self = Map::Typed(serializer, len);
                Ok(())
            }
            Map::Pending(serializer, len) => {
                let mut map = serializer.serialize_map(len)?;
                map.serialize_key(key)?;
                *self = Map::Open(map);
                Ok(())
            }
            Map::Open(mut map) => {
                map.serialize_key(key)?;
                *self = Map::Open(map);
                Ok(())
            }
            Map::Empty(serializer) => {
                *self = Map::Empty(serializer);
                Ok(())
            }
            Map::Typed(..) | Map::Moving => Err(ser::Error::custom("map key out of order")),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        match std::mem::replace(self, Map::Moving) {
            Map::Typed(serializer, _)
                if text(value).is_some_and(|url| url.starts_with(marker())) =>
            {
                *self = Map::Empty(serializer);
                Ok(())
            }
            Map::Typed(serializer, len) => {
                let mut map = serializer.serialize_map(len)?;
                map.serialize_key("@type")?;
                map.serialize_value(&Value(value))?;
                *self = Map::Open(map);
                Ok(())
            }
            Map::Open(mut map) => {
                map.serialize_value(&Value(value))?;
                *self = Map::Open(map);
                Ok(())
            }
            Map::Empty(serializer) => {
                *self = Map::Empty(serializer);
                Ok(())
            }
            Map::Pending(..) | Map::Moving => Err(ser::Error::custom("map value out of order")),
        }
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        match self {
            Map::Pending(serializer, _) | Map::Empty(serializer) => {
                serializer.serialize_map(Some(0))?.end()
            }
            Map::Open(map) => map.end(),
            Map::Typed(..) | Map::Moving => Err(ser::Error::custom("map ended out of order")),
        }
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident) => {
        impl<S: $trait> $trait for Collapse<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.0.$method(&Value(value))
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

macro_rules! named_compound {
    ($trait:ident) => {
        impl<S: $trait> $trait for Collapse<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), S::Error> {
                self.0.serialize_field(key, &Value(value))
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    };
}

named_compound!(SerializeStruct);
named_compound!(SerializeStructVariant);

/// The text `value` serializes as, when it is a string; nothing of any
/// other value is serialized.
fn text<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    value.serialize(Text).ok()
}

/// A serializer that takes only a string.
struct Text;

/// Not a string.
#[derive(Debug)]
struct NotText;

impl fmt::Display for NotText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a string")
    }
}

impl std::error::Error for NotText {}

impl ser::Error for NotText {
    fn custom<T: fmt::Display>(_: T) -> NotText {
        NotText
    }
}

macro_rules! refuse {
    ($($method:ident($($ty:ty),*)),* $(,)?) => {
        $(
            fn $method(self $(, _: $ty)*) -> Result<String, NotText> {
                Err(NotText)
            }
        )*
    };
}

impl Serializer for Text {
    type Ok = String;
    type Error = NotText;
    type SerializeSeq = Impossible<String, NotText>;
    type SerializeTuple = Impossible<String, NotText>;
    type SerializeTupleStruct = Impossible<String, NotText>;
    type SerializeTupleVariant = Impossible<String, NotText>;
    type SerializeMap = Impossible<String, NotText>;
    type SerializeStruct = Impossible<String, NotText>;
    type SerializeStructVariant = Impossible<String, NotText>;

    fn serialize_str(self, v: &str) -> Result<String, NotText> {
        Ok(v.to_owned())
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, NotText> {
        Err(NotText)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotText> {
        Err(NotText)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotText> {
        Err(NotText)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotText> {
        Err(NotText)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotText> {
        Err(NotText)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotText> {
        Err(NotText)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotText> {
        Err(NotText)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotText> {
        Err(NotText)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotText> {
        Err(NotText)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotText> {
        Err(NotText)
    }
}
