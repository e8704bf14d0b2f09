//! Reading the protobuf wire format: varints, keys and the extent of one
//! value. Everything prost refuses is refused here too (stricter is fine:
//! a refusal sends the response to prost-reflect, which reports it).

use super::Bail;

/// Wire type of varints.
pub(super) const VARINT: u8 = 0;
/// Wire type of 8-byte values.
pub(super) const I64: u8 = 1;
/// Wire type of length-delimited values.
pub(super) const LEN: u8 = 2;
/// Wire type of 4-byte values.
pub(super) const I32: u8 = 5;

/// Reads a varint at `*pos`: at most ten bytes, the tenth at most 1, as
/// prost reads them.
pub(super) fn varint(data: &[u8], pos: &mut usize) -> Result<u64, Bail> {
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *data.get(*pos).ok_or(Bail)?;
        *pos += 1;
        if shift == 9 && byte > 1 {
            return Err(Bail);
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Bail)
}

/// Reads a field key: its number and wire type. Groups (3, 4) and the
/// unused wire types are refused.
pub(super) fn key(data: &[u8], pos: &mut usize) -> Result<(u32, u8), Bail> {
    let key = u32::try_from(varint(data, pos)?).map_err(|_| Bail)?;
    let wire = (key & 7) as u8;
    let number = key >> 3;
    if number == 0 || !matches!(wire, VARINT | I64 | LEN | I32) {
        return Err(Bail);
    }
    Ok((number, wire))
}

/// Steps over the value of wire type `wire` at `*pos`; returns where its
/// bytes lie (a length-delimited value's without the length).
pub(super) fn extent(data: &[u8], pos: &mut usize, wire: u8) -> Result<(usize, usize), Bail> {
    let start = *pos;
    match wire {
        VARINT => {
            varint(data, pos)?;
        }
        I64 => advance(data, pos, 8)?,
        I32 => advance(data, pos, 4)?,
        LEN => {
            let len = usize::try_from(varint(data, pos)?).map_err(|_| Bail)?;
            let payload = *pos;
            advance(data, pos, len)?;
            return Ok((payload, *pos));
        }
        _ => return Err(Bail),
    }
    Ok((start, *pos))
}

fn advance(data: &[u8], pos: &mut usize, len: usize) -> Result<(), Bail> {
    let end = pos.checked_add(len).ok_or(Bail)?;
    if end > data.len() {
        return Err(Bail);
    }
    *pos = end;
    Ok(())
}

/// Reads `N` little-endian bytes.
pub(super) fn fixed<const N: usize>(data: &[u8], pos: &mut usize) -> Result<[u8; N], Bail> {
    let end = pos.checked_add(N).ok_or(Bail)?;
    let bytes = data.get(*pos..end).ok_or(Bail)?;
    *pos = end;
    bytes.try_into().map_err(|_| Bail)
}
