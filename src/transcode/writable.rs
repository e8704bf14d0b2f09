//! What prost-reflect's JSON writer must not be handed as it is: a value
//! it would recurse into without end, or write as another value.
//!
//! Decoding a response is bounded by the decoder's nesting limit, but an
//! `Any` holds its message as bytes, decoded only while writing JSON: a
//! backend (or a status detail) nesting `Any` in `Any` would otherwise
//! recurse until the stack runs out. The price is decoding each packed
//! message twice, paid only by responses that can hold an `Any`. Packed
//! messages of types outside the pool are left to the writer, which
//! refuses them.
//!
//! proto3 JSON has a form only for a valid `Duration` or `Timestamp`.
//! prost-reflect checks their seconds' range, but writes a `Duration`
//! whose seconds and nanos differ in sign with its sign flipped (5 s less
//! 5 ns as `"-4.999999995s"`), and folds a `Timestamp`'s nanos past a
//! second into its seconds. The mapping calls such a value an error; the
//! gateway answers it as a bad response from the backend, as it does a
//! `Duration` out of range. So is a `FieldMask` path that does not come
//! back the same from its JSON name (`foo_` written as `foo`, `fooBar`,
//! `foo_1`): the mapping allows only paths that do, and the client would
//! read another path.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage as _, Value};

use super::empty_any;

/// The full name of `google.protobuf.Any`.
pub(crate) const ANY: &str = "google.protobuf.Any";
const DURATION: &str = "google.protobuf.Duration";
const TIMESTAMP: &str = "google.protobuf.Timestamp";
const FIELD_MASK: &str = "google.protobuf.FieldMask";

/// The types whose values [`check`] looks into: a message that can hold
/// none of them needs no check.
pub(crate) const CHECKED: [&str; 4] = [ANY, DURATION, TIMESTAMP, FIELD_MASK];

/// ±10,000 years, as the `Duration` type documents.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;
const MAX_NANOS: i32 = 999_999_999;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Why a message cannot be written as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unwritable {
    /// Messages packed in `Any` nest deeper than the limit.
    #[error("messages packed in Any nest more than {0} levels")]
    TooDeep(usize),
    /// A `Duration` or `Timestamp` that has no JSON form.
    #[error("{0}")]
    Invalid(&'static str),
}

/// What [`check`] found in a message that can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checked {
    /// It holds an empty `Any` (no type URL, no bytes), which only
    /// [`empty_any::serialize`] writes.
    pub(crate) empty_any: bool,
}

/// Checks that `message` and every message in it can be written, with at
/// most `max` levels of nesting below it through `Any` values.
pub(crate) fn check(message: &DynamicMessage, max: usize) -> Result<Checked, Unwritable> {
    let mut checked = Checked::default();
    walk(message, max, &mut checked).map_err(|fault| match fault {
        Fault::TooDeep => Unwritable::TooDeep(max),
        Fault::Invalid(why) => Unwritable::Invalid(why),
    })?;
    Ok(checked)
}

enum Fault {
    TooDeep,
    Invalid(&'static str),
}

fn walk(message: &DynamicMessage, left: usize, checked: &mut Checked) -> Result<(), Fault> {
    let descriptor = message.descriptor();
    match descriptor.full_name() {
        DURATION => return duration(message).map_err(Fault::Invalid),
        TIMESTAMP => return timestamp(message).map_err(Fault::Invalid),
        FIELD_MASK => return field_mask(message).map_err(Fault::Invalid),
        ANY => return packed(message, left, checked),
        _ => {}
    }
    let mut nested = |value: &Value| match value {
        Value::Message(_) if left == 0 => Err(Fault::TooDeep),
        Value::Message(m) => walk(m, left - 1, checked),
        _ => Ok(()),
    };
    for (_, value) in message.fields() {
        match value {
            Value::List(items) => items.iter().try_for_each(&mut nested)?,
            Value::Map(entries) => entries.values().try_for_each(&mut nested)?,
            other => nested(other)?,
        }
    }
    Ok(())
}

/// The message an `Any` packs, when its type is in the pool.
fn packed(any: &DynamicMessage, left: usize, checked: &mut Checked) -> Result<(), Fault> {
    let Some((packed, bytes)) = packed_type(any) else {
        checked.empty_any |= empty_any::is_empty(any);
        return Ok(());
    };
    if left == 0 {
        return Err(Fault::TooDeep);
    }
    match DynamicMessage::decode(packed, bytes) {
        Ok(inner) => walk(&inner, left - 1, checked),
        Err(_) => Ok(()),
    }
}

/// The type of the message the `Any` `any` packs, from `any`'s pool, and
/// its bytes; `None` when no type URL is set or the pool has no such type.
/// The request side counts nesting through `Any` with it too.
pub(crate) fn packed_type(any: &DynamicMessage) -> Option<(MessageDescriptor, Bytes)> {
    let (url, bytes) = (any.get_field_by_number(1)?, any.get_field_by_number(2)?);
    let (Value::String(url), Value::Bytes(bytes)) = (url.as_ref(), bytes.as_ref()) else {
        return None;
    };
    let name = url.rsplit('/').next().unwrap_or_default();
    let packed = any.descriptor().parent_pool().get_message_by_name(name)?;
    Some((packed, bytes.clone()))
}

/// Seconds and nanos: fields 1 and 2 of both `Duration` and `Timestamp`.
fn seconds_and_nanos(message: &DynamicMessage) -> (i64, i32) {
    let seconds = message
        .get_field_by_number(1)
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = message
        .get_field_by_number(2)
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    (seconds, nanos)
}

fn duration(message: &DynamicMessage) -> Result<(), &'static str> {
    let (seconds, nanos) = seconds_and_nanos(message);
    if seconds.unsigned_abs() > MAX_DURATION_SECONDS.unsigned_abs() {
        return Err("google.protobuf.Duration out of range: beyond ±10,000 years");
    }
    if nanos.unsigned_abs() > MAX_NANOS.unsigned_abs() {
        return Err("google.protobuf.Duration out of range: nanos beyond ±999,999,999");
    }
    if (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0) {
        return Err("invalid google.protobuf.Duration: seconds and nanos of different signs");
    }
    Ok(())
}

fn timestamp(message: &DynamicMessage) -> Result<(), &'static str> {
    let (seconds, nanos) = seconds_and_nanos(message);
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&seconds) {
        return Err("google.protobuf.Timestamp out of range: outside years 1 to 9999");
    }
    if !(0..=MAX_NANOS).contains(&nanos) {
        return Err("google.protobuf.Timestamp out of range: nanos outside 0 to 999,999,999");
    }
    Ok(())
}

fn field_mask(message: &DynamicMessage) -> Result<(), &'static str> {
    let Some(paths) = message.get_field_by_number(1) else {
        return Ok(());
    };
    let Value::List(paths) = paths.as_ref() else {
        return Ok(());
    };
    let round_trips = |path: &str| {
        // lowerCamelCase and back: `_x` is `X`, and `X` is `_x`.
        let mut back = String::with_capacity(path.len() + 4);
        let mut upper = false;
        for c in path.chars() {
            if c == '_' {
                upper = true;
                continue;
            }
            if c.is_ascii_uppercase() {
                return false;
            }
            if std::mem::take(&mut upper) {
                if !c.is_ascii_lowercase() {
                    return false;
                }
                back.push('_');
            }
            back.push(c);
        }
        !upper && back == path
    };
    // Each part of a path a field name: a letter or `_`, then letters,
    // digits and `_` (`a,b` would read back as two paths, `` as none).
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let all = paths
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|path| path.split('.'))
        .all(|part| identifier(part) && round_trips(part));
    if all {
        Ok(())
    } else {
        Err(
            "google.protobuf.FieldMask path has no JSON form: not field names that read back the same from lowerCamelCase",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_masks() {
        let pool = prost_reflect::DescriptorPool::global();
        let desc = pool.get_message_by_name(FIELD_MASK).unwrap();
        for (path, valid) in [
            ("foo", true),
            ("foo_bar.baz_qux", true),
            ("a1_b", true),
            ("foo_", false),
            ("_foo", true),
            ("foo__bar", false),
            ("foo_1", false),
            ("fooBar", false),
            ("a,b", false),
            ("", false),
            ("a b", false),
            ("a-b", false),
            ("1a", false),
            ("é", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
        ] {
            let mut message = DynamicMessage::new(desc.clone());
            message.set_field_by_number(1, Value::List(vec![Value::String(path.to_owned())]));
            assert_eq!(check(&message, 10).is_ok(), valid, "{path}");
        }
    }

    fn message(name: &str, seconds: i64, nanos: i32) -> DynamicMessage {
        let pool = prost_reflect::DescriptorPool::global();
        let mut message = DynamicMessage::new(pool.get_message_by_name(name).unwrap());
        message.set_field_by_number(1, Value::I64(seconds));
        message.set_field_by_number(2, Value::I32(nanos));
        message
    }

    #[test]
    fn durations() {
        for (seconds, nanos, valid) in [
            (5, 5, true),
            (-5, -5, true),
            (0, -5, true),
            (-5, 0, true),
            (5, -5, false),
            (-1, 999_999_999, false),
            (0, 1_000_000_000, false),
            (315_576_000_000, 0, true),
            (-315_576_000_001, 0, false),
        ] {
            let got = check(&message(DURATION, seconds, nanos), 10);
            assert_eq!(got.is_ok(), valid, "{seconds}s {nanos}ns: {got:?}");
        }
    }

    #[test]
    fn timestamps() {
        for (seconds, nanos, valid) in [
            (0, 0, true),
            (0, 999_999_999, true),
            (0, 1_000_000_000, false),
            (0, -1, false),
            (MIN_TIMESTAMP_SECONDS, 0, true),
            (MIN_TIMESTAMP_SECONDS - 1, 0, false),
            (MAX_TIMESTAMP_SECONDS + 1, 0, false),
        ] {
            let got = check(&message(TIMESTAMP, seconds, nanos), 10);
            assert_eq!(got.is_ok(), valid, "{seconds}s {nanos}ns: {got:?}");
        }
    }
}
