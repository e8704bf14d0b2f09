//! The length-prefixed messages of a gRPC body: each message's 5-byte
//! prefix (a flags byte, then its length, big-endian) found and checked
//! as the bytes stream by, for the gateway's own services and for calls
//! passed through, in either direction.

use bytes::{Bytes, BytesMut};
use tonic::Status;

/// A message's flags and length, as its prefix gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::server) struct Prefix {
    pub(in crate::server) compressed: bool,
    pub(in crate::server) length: usize,
}

/// Reads the prefix of a request message, refusing what no gRPC server
/// takes. Only the lowest bit of the flags has a meaning (compressed); a
/// request with any other bit set is malformed — `0x80` is gRPC-Web's
/// trailers frame, which only a response may carry — and so is a message
/// flagged compressed when `grpc-encoding` names no compression
/// (`encoded`). Both are INTERNAL, not INVALID_ARGUMENT: that is what
/// gRPC servers (grpc-go, tonic) answer a framing they cannot read, as it
/// is a fault of the client's gRPC library, not of the values its
/// application sent.
pub(in crate::server) fn request_prefix(head: [u8; 5], encoded: bool) -> Result<Prefix, Status> {
    let [flags, a, b, c, d] = head;
    if flags & !1 != 0 {
        return Err(Status::internal(format!(
            "a request message has unknown flags {flags:#04x}"
        )));
    }
    let compressed = flags & 1 == 1;
    if compressed && !encoded {
        return Err(Status::internal(
            "a request message is flagged compressed but no grpc-encoding names its compression",
        ));
    }
    Ok(Prefix {
        compressed,
        length: u32::from_be_bytes([a, b, c, d]) as usize,
    })
}

/// Finds the message prefixes in a body whose chunks pass by without
/// being held: only a prefix that a chunk boundary cut is kept back
/// until it is whole (at most 4 bytes).
#[derive(Debug, Default)]
pub(in crate::server) struct Prefixes {
    /// Bytes of the current message still to come.
    remaining: usize,
    /// The start of a prefix cut by the end of the last chunk.
    held: Vec<u8>,
}

impl Prefixes {
    /// The part of `data` that may go on (with a prefix held back from
    /// the chunk before), each prefix in it passed to `check`, which
    /// gives the message's length or refuses it. A refused message goes
    /// nowhere, not even its prefix: the bytes before it go on and the
    /// status comes back to end the body with.
    pub(in crate::server) fn scan(
        &mut self,
        data: Bytes,
        mut check: impl FnMut([u8; 5]) -> Result<usize, Status>,
    ) -> (Bytes, Option<Status>) {
        if data.is_empty() {
            return (data, None);
        }
        let carry = std::mem::take(&mut self.held);
        let mut emit_carry = false;
        let mut pos = 0;
        let mut end = data.len();
        let mut refused = None;
        // Each turn moves `pos` on, or stops.
        while pos < data.len() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len() - pos);
                self.remaining -= n;
                pos += n;
                continue;
            }
            let start = pos;
            let mut head = if start == 0 {
                carry.clone()
            } else {
                Vec::new()
            };
            let take = (5 - head.len()).min(data.len() - pos);
            head.extend_from_slice(&data[pos..pos + take]);
            pos += take;
            let Ok(head) = <[u8; 5]>::try_from(&head[..]) else {
                // Cut by the end of this chunk: held until the next.
                self.held = head;
                end = start;
                break;
            };
            match check(head) {
                Ok(length) => self.remaining = length,
                Err(status) => {
                    end = start;
                    refused = Some(status);
                    break;
                }
            }
            emit_carry |= start == 0 && !carry.is_empty();
        }
        let body = data.slice(..end);
        if !emit_carry {
            return (body, refused);
        }
        let mut out = BytesMut::with_capacity(carry.len() + body.len());
        out.extend_from_slice(&carry);
        out.extend_from_slice(&body);
        (out.freeze(), refused)
    }

    /// Bytes of the current message's payload still to come.
    pub(in crate::server) fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether the body so far ends inside a message (or its prefix).
    pub(in crate::server) fn is_inside_message(&self) -> bool {
        self.remaining > 0 || !self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flags];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Lengths up to 3 pass; a larger message is refused.
    fn up_to_3(head: [u8; 5]) -> Result<usize, Status> {
        let prefix = request_prefix(head, false)?;
        if prefix.length > 3 {
            return Err(Status::resource_exhausted("too large"));
        }
        Ok(prefix.length)
    }

    /// Scans `body` cut into chunks of `size`: what went on, and why it
    /// stopped.
    fn chunked(body: &[u8], size: usize) -> (Vec<u8>, Option<Status>) {
        let mut prefixes = Prefixes::default();
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            let (passed, refused) = prefixes.scan(Bytes::copy_from_slice(chunk), up_to_3);
            out.extend_from_slice(&passed);
            if refused.is_some() {
                return (out, refused);
            }
        }
        assert!(!prefixes.is_inside_message());
        (out, None)
    }

    #[test]
    fn messages_pass_whole_however_the_chunks_fall() {
        let body = [message(0, b"abc"), message(0, b""), message(0, b"x")].concat();
        for size in 1..=body.len() {
            let (out, refused) = chunked(&body, size);
            assert!(refused.is_none(), "{size}");
            assert_eq!(out, body, "{size}");
        }
    }

    #[test]
    fn a_refused_message_is_not_passed_not_even_its_prefix() {
        let first = message(0, b"ok");
        let cases = [
            (message(0, b"toolong"), tonic::Code::ResourceExhausted),
            (message(0x80, b"x"), tonic::Code::Internal),
            (message(0x7e, b""), tonic::Code::Internal),
            (message(1, b"x"), tonic::Code::Internal),
        ];
        for (bad, code) in cases {
            let body = [first.clone(), bad, message(0, b"z")].concat();
            for size in 1..=body.len() {
                let (out, refused) = chunked(&body, size);
                assert_eq!(refused.map(|s| s.code()), Some(code), "{size}");
                assert_eq!(out, first, "{size}");
            }
        }
    }

    #[test]
    fn compressed_messages_need_an_encoding() {
        let head = [1, 0, 0, 0, 2];
        assert!(request_prefix(head, false).is_err());
        let prefix = request_prefix(head, true).unwrap();
        assert!(prefix.compressed);
        assert_eq!(prefix.length, 2);
    }
}
