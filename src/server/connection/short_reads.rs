//! Reads of at most [`MAX_READ`] bytes from a client connection.
//!
//! The HTTP/1.1 server grows its read buffer while reads fill it, up to its
//! maximum (twice `limits.max_header_bytes`, so that a large header block
//! fits), and never shrinks it. A request body is handed on as slices of
//! that buffer, so while the gateway holds one the next read needs a
//! buffer of its own. With 64 KiB bodies every connection came to hold two
//! buffers of 128 KiB: 64 MiB at 256 connections (BENCHMARKS.md). With
//! reads capped, the buffer stays at about twice the cap however large the
//! body, while a large header block still gets the room it needs over
//! several reads. HTTP/2 connections read through the same cap.
//!
//! 8 KiB measured best: 16 KiB held more memory, 4 KiB cost more CPU in
//! reads, and small requests never meet the cap.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most one read takes from the client.
const MAX_READ: usize = 8 << 10;

/// A client stream whose reads take at most [`MAX_READ`] bytes.
#[derive(Debug)]
pub(super) struct ShortReads<S>(pub(super) S);

impl<S: AsyncRead + Unpin> AsyncRead for ShortReads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= MAX_READ {
            return Pin::new(&mut self.0).poll_read(cx, buf);
        }
        // Without `unsafe` (forbidden here) a part of `buf` can only be
        // read into once it is initialised: zeroing 8 KiB costs far less
        // than the read that fills it.
        let part = buf.initialize_unfilled_to(MAX_READ);
        let mut part = ReadBuf::new(part);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut part))?;
        let read = part.filled().len();
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ShortReads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn large_reads_are_cut_and_small_ones_pass() {
        let (mut client, server) = tokio::io::duplex(256 << 10);
        let sent: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        client.write_all(&sent).await.unwrap();
        drop(client);
        let mut server = ShortReads(server);

        let mut big = vec![0u8; 64 << 10];
        let first = server.read(&mut big).await.unwrap();
        assert_eq!(first, MAX_READ);
        assert_eq!(big[..first], sent[..first]);

        let mut small = [0u8; 100];
        let second = server.read(&mut small).await.unwrap();
        assert_eq!(second, 100);
        assert_eq!(small[..], sent[first..first + 100]);

        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest[..], sent[first + 100..]);
    }
}
