//! Compressed request bodies (`Content-Encoding`): gzip, br and zstd.
//!
//! Bodies are read whole first and decoded here, so the limits apply to
//! both sides: the compressed bytes count against `max_body_bytes` while
//! they arrive, and decoding stops at `max_body_bytes` of output (413), so
//! a small bomb cannot grow past it. Every byte must belong to the
//! compressed data: a truncated stream or anything after its end is a 400,
//! never silently dropped. gzip bodies may hold several members (RFC 1952
//! §2.2), zstd bodies several frames; both are decoded whole.
//!
//! Request streams (client and bidirectional streaming over HTTP) are not
//! decoded: a compressor holds messages back until its block is full,
//! which a live stream cannot wait for, so they are refused with 415.

use std::io::{self, Write as _};

use bytes::Bytes;
use http::{HeaderMap, header};

use crate::error::GatewayError;

/// Bodies up to this size are decoded on the runtime; larger ones on the
/// blocking pool, so decoding never stalls other connections.
const INLINE_DECODE_BYTES: usize = 64 << 10;

/// A content coding the gateway decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Identity,
    Gzip,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding of a request body. One not decoded here, or several
    /// stacked, is a 415.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Coding, GatewayError> {
        let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
        let Some(value) = values.next() else {
            return Ok(Coding::Identity);
        };
        let text = value.to_str().unwrap_or("?").trim();
        if values.next().is_some() || text.contains(',') {
            return Err(GatewayError::UnsupportedEncoding {
                header: "Content-Encoding",
                coding: "several stacked codings".to_owned(),
            });
        }
        match text.to_ascii_lowercase().as_str() {
            "identity" | "" => Ok(Coding::Identity),
            "gzip" | "x-gzip" => Ok(Coding::Gzip),
            "br" => Ok(Coding::Brotli),
            "zstd" => Ok(Coding::Zstd),
            _ => Err(GatewayError::UnsupportedEncoding {
                header: "Content-Encoding",
                coding: text.to_owned(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// Decodes `data`, giving at most `limit` bytes (413 past it); corrupt,
    /// truncated or trailing data is a 400.
    pub(crate) async fn decode(self, data: Bytes, limit: usize) -> Result<Bytes, GatewayError> {
        if self == Coding::Identity {
            return Ok(data);
        }
        if data.len() <= INLINE_DECODE_BYTES {
            return self.decode_now(&data, limit);
        }
        tokio::task::spawn_blocking(move || self.decode_now(&data, limit))
            .await
            .map_err(|e| GatewayError::BodyRead(format!("decoding stopped: {e}")))?
    }

    /// [`Coding::decode`] on the calling thread.
    pub(crate) fn decode_now(self, data: &[u8], limit: usize) -> Result<Bytes, GatewayError> {
        let mut out = Limited {
            out: Vec::with_capacity(data.len().saturating_mul(4).min(limit)),
            limit,
        };
        let decoded = match self {
            Coding::Identity => out.write_all(data),
            Coding::Gzip => {
                io::copy(&mut flate2::read::MultiGzDecoder::new(data), &mut out).map(drop)
            }
            Coding::Zstd => zstd::stream::read::Decoder::with_buffer(data)
                .and_then(|mut decoder| io::copy(&mut decoder, &mut out))
                .map(drop),
            Coding::Brotli => brotli_decode(data, &mut out),
        };
        match decoded {
            Ok(()) => Ok(out.out.into()),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                Err(GatewayError::PayloadTooLarge(limit))
            }
            Err(e) => Err(GatewayError::BadEncoding {
                coding: self.name(),
                reason: e.to_string(),
            }),
        }
    }
}

/// brotli has no framing of its own to find trailing bytes by, so the
/// decoder is fed the whole body and must consume all of it.
fn brotli_decode(data: &[u8], out: &mut Limited) -> io::Result<()> {
    let mut decoder = brotli_decompressor::DecompressorWriter::new(out, 8 << 10);
    let consumed = decoder.write(data)?;
    if consumed < data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "data after the end of the compressed stream",
        ));
    }
    decoder.close()
}

/// Output that refuses to grow past `limit`.
struct Limited {
    out: Vec<u8>,
    limit: usize,
}

impl io::Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        e.write_all(data).unwrap();
        drop(e);
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    fn coding(value: &str) -> Result<Coding, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, value.parse().unwrap());
        Coding::of(&headers)
    }

    #[test]
    fn codings_by_name() {
        assert_eq!(Coding::of(&HeaderMap::new()).unwrap(), Coding::Identity);
        assert_eq!(coding("GZIP").unwrap(), Coding::Gzip);
        assert_eq!(coding("x-gzip").unwrap(), Coding::Gzip);
        assert_eq!(coding("br").unwrap(), Coding::Brotli);
        assert_eq!(coding(" zstd ").unwrap(), Coding::Zstd);
        assert_eq!(coding("identity").unwrap(), Coding::Identity);
        for bad in ["deflate", "compress", "gzip, br", "gzip,gzip"] {
            assert!(
                matches!(coding(bad), Err(GatewayError::UnsupportedEncoding { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn round_trips() {
        let data = b"{\"s\": \"hello\"}".repeat(100);
        for (c, packed) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Brotli, brotli(&data)),
            (Coding::Zstd, zstd(&data)),
        ] {
            assert_eq!(c.decode_now(&packed, 1 << 20).unwrap(), data, "{c:?}");
        }
    }

    #[test]
    fn every_gzip_member_and_zstd_frame_counts() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(
            Coding::Gzip.decode_now(&two, 100).unwrap(),
            &b"first second"[..]
        );
        let mut two = zstd(b"first ");
        two.extend(zstd(b"second"));
        assert_eq!(
            Coding::Zstd.decode_now(&two, 100).unwrap(),
            &b"first second"[..]
        );
    }

    #[test]
    fn trailing_and_truncated_data_is_refused() {
        let data = b"some body".repeat(20);
        for (c, packed) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Brotli, brotli(&data)),
            (Coding::Zstd, zstd(&data)),
        ] {
            let mut trailing = packed.clone();
            trailing.extend_from_slice(b"garbage");
            let truncated = &packed[..packed.len() - 3];
            for bad in [&trailing[..], truncated, b"not compressed at all"] {
                assert!(
                    matches!(
                        c.decode_now(bad, 1 << 20),
                        Err(GatewayError::BadEncoding { .. })
                    ),
                    "{c:?} accepted {bad:?}"
                );
            }
        }
    }

    #[test]
    fn output_is_limited() {
        let data = vec![b'a'; 10_000];
        for (c, packed) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Brotli, brotli(&data)),
            (Coding::Zstd, zstd(&data)),
        ] {
            assert!(
                matches!(
                    c.decode_now(&packed, 9_999),
                    Err(GatewayError::PayloadTooLarge(9_999))
                ),
                "{c:?}"
            );
            assert_eq!(c.decode_now(&packed, 10_000).unwrap().len(), 10_000);
        }
    }
}
