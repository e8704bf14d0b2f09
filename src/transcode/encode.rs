//! Protobuf encoding of `DynamicMessage`s that sizes each nested message
//! once.
//!
//! prost writes a length-delimited field by asking the nested message for
//! its length first, and a `DynamicMessage` answers by walking everything
//! below it. Every level of nesting walks its whole subtree again, so
//! `encode_to_vec` costs depth × size, most of it in `encoded_len`.
//!
//! Here one walk over the message plans the output as a list of steps
//! (a key and a scalar, a key and a length, ...) in output order, filling
//! each length in once everything under it is planned; then the steps are
//! written, with no further look at values or descriptors, into one buffer
//! of the exact final size. The walk reads each field's descriptor once:
//! prost-reflect's field iteration (`has`, `default_value`, `kind`) is most
//! of what is left of the cost, and a second walk would pay it again. The
//! price is the list: 32 bytes a field, list element or map entry, which
//! is less than the values take in the message.
//!
//! The bytes are those of prost-reflect 0.16's own encoding: fields in
//! number order with extensions and unknown fields among them, and the
//! same packing, presence and default decisions, taken from the same
//! descriptor methods (`is_packed`, `supports_presence`, `default_value`).

use bytes::Bytes;
use prost::Message as _;
use prost::encoding::{WireType, encode_varint, encoded_len_varint};
use prost_reflect::{
    Cardinality, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, UnknownField, Value,
};

mod entries;
pub(super) mod scalar;

use entries::Entry;
use scalar::{Scalar, ScalarKind, is_default_key};

/// How many message levels the encoder descends before leaving a message to
/// prost-reflect. Requests are at most `MAX_MESSAGE_DEPTH` (100) levels
/// deep, so only messages built some other way go there; the bound keeps
/// the recursion within any thread's stack.
const MAX_DEPTH: usize = 128;

/// A message holding a value of the wrong type for its field: a gateway
/// bug, as messages built from requests hold only values their fields take.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the request message: field `{0}` holds a value of the wrong type")]
pub struct EncodeError(String);

/// Encodes `message` to protobuf bytes, the same bytes as
/// `message.encode_to_vec()`.
///
/// prost-reflect panics on a value of the wrong type; this returns an
/// error instead.
pub(super) fn encode(message: &DynamicMessage) -> Result<Bytes, EncodeError> {
    match encode_planned(message) {
        Ok(bytes) => Ok(bytes.into()),
        Err(Stop::Mismatch(field)) => Err(EncodeError(field.unwrap_or_default())),
        // A message deeper than `MAX_DEPTH` (none built from a request is)
        // is left to prost-reflect, with its cost and its panic on a value
        // of the wrong type.
        Err(Stop::Fallback) => Ok(message.encode_to_vec().into()),
    }
}

/// Why planning stopped.
#[derive(Debug)]
enum Stop {
    /// Too deep, or a length past `u32`: prost-reflect encodes the message
    /// instead.
    Fallback,
    /// A value of the wrong type, in the field named once known.
    Mismatch(Option<String>),
}

impl Stop {
    /// Names the field of a mismatch, unless a nested field already is.
    fn within(self, field: &str) -> Stop {
        match self {
            Stop::Mismatch(None) => Stop::Mismatch(Some(field.to_owned())),
            stop => stop,
        }
    }
}

/// Plans, then writes; `Fallback` when the fast path does not apply.
fn encode_planned(message: &DynamicMessage) -> Result<Vec<u8>, Stop> {
    let mut plan = Plan { steps: Vec::new() };
    let total = plan.message(message, 0)?;
    let mut buf = Vec::with_capacity(total);
    for step in &plan.steps {
        step.put(&mut buf)?;
    }
    // Lengths already written would be wrong if the plan were.
    if buf.len() != total {
        return Err(Stop::Fallback);
    }
    Ok(buf)
}

/// One step of the output.
enum Step<'a> {
    /// A key, then a scalar.
    Scalar(u32, Scalar<'a>),
    /// A key and a length; the steps after it are the content.
    Delimited(u32, u32),
    /// A key alone: a group's start or end.
    Key(u32),
    /// The elements of a packed list, after their `Delimited` step.
    Packed(&'a [Value], ScalarKind),
    /// An unknown field, as it was read.
    Unknown(&'a UnknownField),
}

impl Step<'_> {
    fn put(&self, buf: &mut Vec<u8>) -> Result<(), Stop> {
        match *self {
            Step::Scalar(key, scalar) => {
                encode_varint(u64::from(key), buf);
                scalar.put(buf);
            }
            Step::Delimited(key, len) => {
                encode_varint(u64::from(key), buf);
                encode_varint(u64::from(len), buf);
            }
            Step::Key(key) => encode_varint(u64::from(key), buf),
            Step::Packed(values, kind) => {
                for value in values {
                    // Planning checked every element.
                    Scalar::packed(value, kind).ok_or(Stop::Fallback)?.put(buf);
                }
            }
            Step::Unknown(field) => field.encode(buf),
        }
        Ok(())
    }
}

/// A field key as prost writes it: the number, then the wire type.
fn key(number: u32, wire_type: WireType) -> u32 {
    (number << 3) | wire_type as u32
}

fn key_len(key: u32) -> usize {
    encoded_len_varint(u64::from(key))
}

/// What encoding needs of a field or extension, read once per visit.
struct Field {
    number: u32,
    kind: Kind,
    /// `None` for messages.
    scalar: Option<ScalarKind>,
    presence: bool,
    list: bool,
    map: bool,
    packed: bool,
    group: bool,
}

impl Field {
    fn of(desc: &FieldDescriptor) -> Field {
        Field::new(
            desc.number(),
            desc.kind(),
            desc.cardinality(),
            desc.supports_presence(),
            desc.is_packed(),
            desc.is_group(),
        )
    }

    fn of_extension(desc: &ExtensionDescriptor) -> Field {
        Field::new(
            desc.number(),
            desc.kind(),
            desc.cardinality(),
            desc.supports_presence(),
            desc.is_packed(),
            desc.is_group(),
        )
    }

    /// `is_list` and `is_map` as the descriptors define them, without
    /// their own calls to `kind()`.
    fn new(
        number: u32,
        kind: Kind,
        cardinality: Cardinality,
        presence: bool,
        packed: bool,
        group: bool,
    ) -> Field {
        let repeated = cardinality == Cardinality::Repeated;
        let map = repeated && matches!(&kind, Kind::Message(m) if m.is_map_entry());
        Field {
            number,
            scalar: ScalarKind::scalar(&kind),
            kind,
            presence,
            list: repeated && !map,
            map,
            packed,
            group,
        }
    }
}

/// The key and value fields of a map's entry message.
struct MapFields {
    key: Field,
    value: Field,
    /// The value field's default, for a value field without presence:
    /// such values are left out when they equal it.
    value_default: Option<Value>,
}

impl MapFields {
    fn of(entry: &MessageDescriptor) -> Result<MapFields, Stop> {
        let (Some(key), Some(value)) = (entry.get_field(1), entry.get_field(2)) else {
            return Err(Stop::Mismatch(None));
        };
        let value_default = (!value.supports_presence()).then(|| value.default_value());
        Ok(MapFields {
            key: Field::of(&key),
            value: Field::of(&value),
            value_default,
        })
    }

    /// The scalar of `key`, or `None` when it is left out as a default.
    fn key<'k>(&self, key: &'k MapKey) -> Result<Option<Scalar<'k>>, Stop> {
        let kind = self.key.scalar.ok_or(Stop::Mismatch(None))?;
        if !self.key.presence && is_default_key(key, kind).ok_or(Stop::Mismatch(None))? {
            return Ok(None);
        }
        Scalar::of_key(key, kind)
            .map(Some)
            .ok_or(Stop::Mismatch(None))
    }

    fn skips_value(&self, value: &Value) -> bool {
        self.value_default.as_ref() == Some(value)
    }
}

/// The walk: the steps so far. Every method returns the encoded length of
/// what it planned.
struct Plan<'a> {
    steps: Vec<Step<'a>>,
}

impl<'a> Plan<'a> {
    /// The fields of `message`, without a key or length of its own.
    fn message(&mut self, message: &'a DynamicMessage, depth: usize) -> Result<usize, Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::Fallback);
        }
        let mut len = 0;
        for entry in entries::of(message) {
            len += match entry {
                Entry::Field(desc, value) => self
                    .value(value, &Field::of(&desc), depth)
                    .map_err(|stop| stop.within(desc.full_name()))?,
                Entry::Extension(desc, value) => self
                    .value(value, &Field::of_extension(&desc), depth)
                    .map_err(|stop| stop.within(desc.full_name()))?,
                Entry::Unknown(field) => {
                    self.steps.push(Step::Unknown(field));
                    field.encoded_len()
                }
            };
        }
        Ok(len)
    }

    /// `value` in `field`, keys included: the cases of prost-reflect's
    /// `Value::encode_field`, which writes a value of the wrong shape where
    /// it can (a lone value in a list field is one element) and panics
    /// where it cannot (here a mismatch).
    fn value(&mut self, value: &'a Value, field: &Field, depth: usize) -> Result<usize, Stop> {
        let number = field.number;
        match (value, &field.kind) {
            (Value::Message(message), Kind::Message(_)) if field.group => {
                let start = key(number, WireType::StartGroup);
                self.steps.push(Step::Key(start));
                let len = self.message(message, depth + 1)?;
                self.steps.push(Step::Key(key(number, WireType::EndGroup)));
                Ok(2 * key_len(start) + len)
            }
            (Value::Message(message), Kind::Message(_)) => {
                self.delimited(number, |plan| plan.message(message, depth + 1))
            }
            (Value::List(values), _) if field.list && field.packed => {
                let kind = field.scalar.ok_or(Stop::Mismatch(None))?;
                self.delimited(number, |plan| {
                    plan.steps.push(Step::Packed(values, kind));
                    let mut len = 0;
                    for value in values {
                        len += Scalar::packed(value, kind)
                            .ok_or(Stop::Mismatch(None))?
                            .len();
                    }
                    Ok(len)
                })
            }
            (Value::List(values), _) if field.list => {
                // Each element is written as the field itself would be, as
                // prost-reflect does: a list in the list is written element
                // by element. (prost-reflect leaves out an element equal to
                // the field's default, an empty list, which writes nothing
                // anyway.) Elements are at the list's level; only such a
                // list goes a level deeper.
                if depth > MAX_DEPTH {
                    return Err(Stop::Fallback);
                }
                let mut len = 0;
                for value in values {
                    let depth = depth + usize::from(matches!(value, Value::List(_)));
                    len += self.value(value, field, depth)?;
                }
                Ok(len)
            }
            (Value::Map(map), Kind::Message(entry)) if field.map => {
                // An entry is a message level of its own on the wire, so a
                // message value is two levels down.
                let fields = MapFields::of(entry)?;
                let mut len = 0;
                for (k, v) in map {
                    len += self.delimited(number, |plan| {
                        let mut len = 0;
                        if let Some(scalar) = fields.key(k)? {
                            let key = key(fields.key.number, scalar.wire_type());
                            plan.steps.push(Step::Scalar(key, scalar));
                            len += key_len(key) + scalar.len();
                        }
                        if !fields.skips_value(v) {
                            len += plan.value(v, &fields.value, depth + 1)?;
                        }
                        Ok(len)
                    })?;
                }
                Ok(len)
            }
            (value, _) => {
                let scalar = field
                    .scalar
                    .and_then(|kind| Scalar::of(value, kind))
                    .ok_or(Stop::Mismatch(None))?;
                let key = key(number, scalar.wire_type());
                self.steps.push(Step::Scalar(key, scalar));
                Ok(key_len(key) + scalar.len())
            }
        }
    }

    /// A length-delimited field whose content `content` plans; its length
    /// is filled in once known.
    fn delimited(
        &mut self,
        number: u32,
        content: impl FnOnce(&mut Self) -> Result<usize, Stop>,
    ) -> Result<usize, Stop> {
        let key = key(number, WireType::LengthDelimited);
        let at = self.steps.len();
        self.steps.push(Step::Delimited(key, 0));
        let len = content(self)?;
        let stored = u32::try_from(len).map_err(|_| Stop::Fallback)?;
        if let Some(Step::Delimited(_, slot)) = self.steps.get_mut(at) {
            *slot = stored;
        }
        Ok(key_len(key) + encoded_len_varint(len as u64) + len)
    }
}

#[cfg(test)]
mod tests;
