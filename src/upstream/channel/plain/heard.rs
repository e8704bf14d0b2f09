//! Whether the peer of a connection has sent anything at all.
//!
//! The HTTP/2 handshake only sends our preface; calls go out before the
//! peer's SETTINGS arrive. When the connection then ends, what it means
//! depends on whether the peer ever spoke: an HTTP/2 server sends its
//! SETTINGS before it acts on any stream, so a peer that closed without a
//! byte (a server shutting down or over its connection limit, a balancer
//! with nothing behind it) took none of the calls, and they may go
//! elsewhere; a peer that sent bytes that were not HTTP/2 is another kind
//! of server. The connection's calls read the difference from
//! [`Vitals::heard`](super::Vitals).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Vitals;

/// A connection's stream that sets `vitals.heard` on the first byte read.
#[derive(Debug)]
pub(super) struct Heard<S> {
    inner: S,
    vitals: Arc<Vitals>,
    /// Set once the first byte came: later reads skip the atomic.
    heard: bool,
}

impl<S> Heard<S> {
    pub(super) fn new(inner: S, vitals: Arc<Vitals>) -> Heard<S> {
        Heard {
            inner,
            vitals,
            heard: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if !self.heard && buf.filled().len() > before {
            self.heard = true;
            self.vitals.heard.store(true, Ordering::Release);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection that ended before the peer sent a byte of HTTP/2.
#[derive(Debug)]
pub(super) struct ClosedUnheard(pub(super) h2::Error);

impl fmt::Display for ClosedUnheard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A TLS server that gets our cleartext preface closes this way too.
        f.write_str(
            "the upstream closed the connection before it sent anything \
             (is it shutting down, or does it take TLS only? A TLS backend needs an https:// URL)",
        )
    }
}

impl std::error::Error for ClosedUnheard {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
