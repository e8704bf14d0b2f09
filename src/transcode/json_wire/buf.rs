//! Length-delimited records whose length is known only once their content
//! is written.
//!
//! A record gets one byte for its length up front, which is enough below
//! 128 bytes; a longer one moves its content up by the bytes its length
//! needs beyond that. Each record is moved at most once, so the cost is a
//! copy of every byte per level of nesting above 127 bytes — in practice
//! one copy of the few large records (a request's body message, a long
//! list), against a second pass over the JSON or a scratch buffer per
//! level for the alternatives.

use prost::encoding::{encode_varint, encoded_len_varint};

/// Starts a record's content: reserves its length byte, whose position
/// [`close`] takes.
pub(super) fn open(buf: &mut Vec<u8>) -> usize {
    let at = buf.len();
    buf.push(0);
    at
}

/// Writes the length of the record opened at `at`, whose content runs to
/// the end of `buf`.
pub(super) fn close(buf: &mut Vec<u8>, at: usize) {
    let end = buf.len();
    let len = end.saturating_sub(at + 1);
    if len < 0x80 {
        if let Some(slot) = buf.get_mut(at) {
            *slot = len as u8;
        }
        return;
    }
    let width = encoded_len_varint(len as u64);
    buf.resize(end + width - 1, 0);
    buf.copy_within(at + 1..end, at + width);
    if let Some(mut slot) = buf.get_mut(at..at + width) {
        encode_varint(len as u64, &mut slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_every_width() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 2_097_152] {
            let mut buf = vec![0xaa];
            let at = open(&mut buf);
            buf.extend((0..len).map(|i| i as u8));
            close(&mut buf, at);
            let mut expected = vec![0xaa];
            encode_varint(len as u64, &mut expected);
            expected.extend((0..len).map(|i| i as u8));
            assert_eq!(buf, expected, "{len}");
        }
    }
}
