//! Single values: decoding them from the wire and writing them as
//! prost-reflect's serializer writes them through serde_json.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::Bail;
use super::plan::{EnumRef, Scalar, Table};
use super::wire;
use crate::transcode::json_number;

/// One decoded value that is not a message.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'b> {
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// A string (not yet checked to be UTF-8) or bytes.
    Text(&'b [u8]),
    Enum(i32),
}

/// Reads one varint or fixed-size value of `kind` at `*pos`, converted as
/// prost converts it (an `int32` varint is truncated, not refused).
pub(super) fn read(kind: Scalar, data: &[u8], pos: &mut usize) -> Result<Val<'static>, Bail> {
    Ok(match kind {
        Scalar::Int32 => Val::I32(wire::varint(data, pos)? as i32),
        Scalar::Int64 => Val::I64(wire::varint(data, pos)? as i64),
        Scalar::Uint32 => Val::U32(wire::varint(data, pos)? as u32),
        Scalar::Uint64 => Val::U64(wire::varint(data, pos)?),
        Scalar::Sint32 => {
            let v = wire::varint(data, pos)? as u32;
            Val::I32(((v >> 1) as i32) ^ (-((v & 1) as i32)))
        }
        Scalar::Sint64 => {
            let v = wire::varint(data, pos)?;
            Val::I64(((v >> 1) as i64) ^ (-((v & 1) as i64)))
        }
        Scalar::Bool => Val::Bool(wire::varint(data, pos)? != 0),
        Scalar::Enum(_) => Val::Enum(wire::varint(data, pos)? as i32),
        Scalar::Fixed32 => Val::U32(u32::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::Sfixed32 => Val::I32(i32::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::Float => Val::F32(f32::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::Fixed64 => Val::U64(u64::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::Sfixed64 => Val::I64(i64::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::Double => Val::F64(f64::from_le_bytes(wire::fixed(data, pos)?)),
        Scalar::String | Scalar::Bytes | Scalar::Message(_) => return Err(Bail),
    })
}

/// The one value of `kind` in `data[start..end]` (a varint, a fixed-size
/// value or a length-delimited payload).
pub(super) fn single(kind: Scalar, data: &[u8], start: usize, end: usize) -> Result<Val<'_>, Bail> {
    match kind {
        Scalar::String | Scalar::Bytes => Ok(Val::Text(data.get(start..end).ok_or(Bail)?)),
        _ => {
            let mut pos = start;
            let value = read(kind, data.get(..end).ok_or(Bail)?, &mut pos)?;
            if pos != end {
                return Err(Bail);
            }
            Ok(value)
        }
    }
}

/// The value an unset field of `kind` holds.
pub(super) fn zero(table: &Table, kind: Scalar) -> Result<Val<'static>, Bail> {
    Ok(match kind {
        Scalar::Int32 | Scalar::Sint32 | Scalar::Sfixed32 => Val::I32(0),
        Scalar::Int64 | Scalar::Sint64 | Scalar::Sfixed64 => Val::I64(0),
        Scalar::Uint32 | Scalar::Fixed32 => Val::U32(0),
        Scalar::Uint64 | Scalar::Fixed64 => Val::U64(0),
        Scalar::Float => Val::F32(0.0),
        Scalar::Double => Val::F64(0.0),
        Scalar::Bool => Val::Bool(false),
        Scalar::String | Scalar::Bytes => Val::Text(&[]),
        Scalar::Enum(EnumRef::Index(e)) => {
            Val::Enum(table.enums.get(e as usize).ok_or(Bail)?.default)
        }
        Scalar::Enum(EnumRef::Null) => Val::Enum(0),
        Scalar::Message(_) => return Err(Bail),
    })
}

/// Whether `value` is its kind's default, which an implicit-presence
/// field leaves out (by value: `-0.0` is a default, NaN is not).
pub(super) fn is_zero(table: &Table, kind: Scalar, value: Val<'_>) -> Result<bool, Bail> {
    Ok(match value {
        Val::I32(v) => v == 0,
        Val::I64(v) => v == 0,
        Val::U32(v) => v == 0,
        Val::U64(v) => v == 0,
        Val::F32(v) => v == 0.0,
        Val::F64(v) => v == 0.0,
        Val::Bool(v) => !v,
        Val::Text(v) => v.is_empty(),
        Val::Enum(v) => match zero(table, kind)? {
            Val::Enum(default) => v == default,
            _ => return Err(Bail),
        },
    })
}

/// How enums are written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub(super) enums_as_ints: bool,
}

/// Writes `value` of `kind` to `out`.
pub(super) fn write(
    out: &mut Vec<u8>,
    table: &Table,
    style: Style,
    kind: Scalar,
    value: Val<'_>,
) -> Result<(), Bail> {
    match value {
        Val::I32(v) => json(out, &v),
        Val::U32(v) => json(out, &v),
        // 64-bit integers as strings: the codec always asks for that.
        Val::I64(v) => quoted(out, &v),
        Val::U64(v) => quoted(out, &v),
        Val::F32(v) if v.is_finite() => json(out, &v),
        Val::F64(v) if v.is_finite() => json(out, &v),
        Val::F32(v) => special(out, f64::from(v)),
        Val::F64(v) => special(out, v),
        Val::Bool(v) => json(out, &v),
        Val::Text(v) if kind == Scalar::String => text(out, v),
        Val::Text(v) => base64(out, v),
        Val::Enum(_) if kind == Scalar::Enum(EnumRef::Null) => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        Val::Enum(v) => {
            let name = match kind {
                Scalar::Enum(EnumRef::Index(e)) if !style.enums_as_ints => {
                    table.enums.get(e as usize).ok_or(Bail)?.name(v)
                }
                _ => None,
            };
            match name {
                Some(name) => {
                    out.extend_from_slice(name);
                    Ok(())
                }
                None => json(out, &v),
            }
        }
    }
}

/// Writes `value` of `kind` as a map key: always a JSON string.
pub(super) fn write_key(out: &mut Vec<u8>, kind: Scalar, value: Val<'_>) -> Result<(), Bail> {
    match value {
        Val::Text(v) if kind == Scalar::String => text(out, v),
        Val::Bool(v) => quoted(out, &v),
        Val::I32(v) => quoted(out, &v),
        Val::U32(v) => quoted(out, &v),
        Val::I64(v) => quoted(out, &v),
        Val::U64(v) => quoted(out, &v),
        Val::F32(_) | Val::F64(_) | Val::Text(_) | Val::Enum(_) => Err(Bail),
    }
}

/// A string field's bytes as a JSON string; not UTF-8 is the decoder's
/// error. Printable ASCII without `"` or `\` (most text) needs no
/// escape, and goes out as it is in one look at each byte; anything else
/// takes serde_json's check and escapes.
fn text(out: &mut Vec<u8>, v: &[u8]) -> Result<(), Bail> {
    if v.iter()
        .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
    {
        out.reserve(v.len() + 2);
        out.push(b'"');
        out.extend_from_slice(v);
        out.push(b'"');
        return Ok(());
    }
    json(out, std::str::from_utf8(v).map_err(|_| Bail)?)
}

/// `value` as serde_json writes it.
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Bail> {
    value
        .serialize(&mut json_number::serializer(out))
        .map_err(|_| Bail)
}

/// `value` (a number or bool) in quotes, as serde_json writes what it is
/// given through `collect_str`.
fn quoted<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Bail> {
    out.push(b'"');
    json(out, value)?;
    out.push(b'"');
    Ok(())
}

/// NaN and the infinities, which JSON numbers cannot hold.
fn special(out: &mut Vec<u8>, v: f64) -> Result<(), Bail> {
    let text: &[u8] = if v.is_nan() {
        b"\"NaN\""
    } else if v > 0.0 {
        b"\"Infinity\""
    } else {
        b"\"-Infinity\""
    };
    out.extend_from_slice(text);
    Ok(())
}

/// Standard base64 with padding, as a JSON string.
fn base64(out: &mut Vec<u8>, data: &[u8]) -> Result<(), Bail> {
    let len = base64::encoded_len(data.len(), true).ok_or(Bail)?;
    out.push(b'"');
    let start = out.len();
    out.resize(start.checked_add(len).ok_or(Bail)?, 0);
    let tail = out.get_mut(start..).ok_or(Bail)?;
    STANDARD.encode_slice(data, tail).map_err(|_| Bail)?;
    out.push(b'"');
    Ok(())
}
