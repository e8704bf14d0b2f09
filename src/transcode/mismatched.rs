//! Fields sent with another wire type than their declared one, read as
//! unknown fields, as the protobuf runtimes of Go, C++ and Java read them.
//!
//! A backend built from an older `.proto` (a field that was an `int32` and
//! is now a `string`) sends such fields. prost-reflect refuses the whole
//! message for one of them; the other runtimes keep the field as unknown,
//! and unknown fields are left out of the JSON. When a response does not
//! decode, [`drop_mismatched`] copies it without those fields, at every
//! depth, and the caller decodes the copy. Only failed decodes pay for the
//! walk.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, decode_varint};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::kind::ValueKind;

/// As deep as prost's decoder goes: a deeper message is refused anyway.
const MAX_DEPTH: u32 = 100;

/// `bytes` as a `desc` message without its fields of a mismatched wire
/// type, or `None` when it has none (or is malformed past reading, which
/// the decoder then reports).
pub(crate) fn drop_mismatched(desc: &MessageDescriptor, bytes: &[u8]) -> Option<Bytes> {
    let mut out = BytesMut::with_capacity(bytes.len());
    match copy(desc, bytes, &mut out, MAX_DEPTH) {
        Some(true) => Some(out.freeze()),
        Some(false) | None => None,
    }
}

/// Copies the fields of one message into `out`; `Some(true)` when some
/// were left out.
fn copy(desc: &MessageDescriptor, mut buf: &[u8], out: &mut BytesMut, depth: u32) -> Option<bool> {
    let depth = depth.checked_sub(1)?;
    let mut dropped = false;
    while !buf.is_empty() {
        let start = buf;
        let key = decode_varint(&mut buf).ok()?;
        let number = u32::try_from(key >> 3).ok()?;
        let wire = WireType::try_from(key & 7).ok()?;
        let field = desc.get_field(number);
        match (wire, field) {
            (WireType::LengthDelimited, Some(field)) if expects(&field, wire) => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                let value = buf.get(..len)?;
                buf = &buf[len..];
                let Kind::Message(inner) = field.kind() else {
                    out.put_slice(&start[..start.len() - buf.len()]);
                    continue;
                };
                let mut nested = BytesMut::with_capacity(len);
                dropped |= copy(&inner, value, &mut nested, depth)?;
                prost::encoding::encode_key(number, wire, out);
                prost::encoding::encode_varint(nested.len() as u64, out);
                out.put_slice(&nested);
            }
            (_, Some(field)) if !expects(&field, wire) => {
                skip(wire, number, &mut buf, depth)?;
                dropped = true;
            }
            _ => {
                skip(wire, number, &mut buf, depth)?;
                out.put_slice(&start[..start.len() - buf.len()]);
            }
        }
    }
    Some(dropped)
}

/// Whether `field` may come with `wire`: its kind's own wire type, a
/// group's start, or, for a list of numbers, length-delimited (packed or
/// not, whatever the `.proto` says; a single number may not come so).
fn expects(field: &FieldDescriptor, wire: WireType) -> bool {
    let kind = ValueKind::of(&field.kind(), |_| (), |_| ());
    if matches!(kind, ValueKind::Message(())) && field.is_group() {
        return wire == WireType::StartGroup;
    }
    let own = kind.wire_type();
    wire == own
        || (wire == WireType::LengthDelimited
            && field.is_list()
            && own != WireType::LengthDelimited)
}

/// Moves `buf` past one value of `wire` (a group up to its end).
fn skip(wire: WireType, number: u32, buf: &mut &[u8], depth: u32) -> Option<()> {
    let len = match wire {
        WireType::Varint => {
            decode_varint(buf).ok()?;
            0
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => usize::try_from(decode_varint(buf).ok()?).ok()?,
        WireType::StartGroup => {
            let depth = depth.checked_sub(1)?;
            loop {
                let key = decode_varint(buf).ok()?;
                let inner = WireType::try_from(key & 7).ok()?;
                let inner_number = u32::try_from(key >> 3).ok()?;
                if inner == WireType::EndGroup {
                    return (inner_number == number).then_some(());
                }
                skip(inner, inner_number, buf, depth)?;
            }
        }
        WireType::EndGroup => return None,
    };
    *buf = buf.get(len..)?;
    Some(())
}

#[cfg(test)]
mod tests;
