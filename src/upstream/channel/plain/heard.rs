//! Whether the peer of a connection has sent anything at all.
//!
//! The HTTP/2 handshake only sends our preface; calls go out before the
//! peer's SETTINGS arrive. When the connection then ends, what to tell the
//! client depends on whether the peer ever spoke. One that closed without
//! a byte (a server shutting down or over its connection limit, a
//! balancer with nothing behind it, a TLS server given our cleartext) is
//! unreachable: 503. One that sent bytes that were not HTTP/2 is another
//! kind of server: 502. Neither proves the call went unread (a relay in
//! between may have passed it on and lost the answer), so neither counts
//! as a call never sent. The connection's calls read the difference from
//! [`Vitals::heard`](super::Vitals).

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

/// What a call says when its connection ended before the peer sent a
/// byte. A TLS server that gets our cleartext preface closes this way too.
pub(super) const CLOSED_UNHEARD: &str = "the upstream closed the connection without sending anything \
     (is it shutting down, or does it take TLS only? A TLS backend needs an https:// URL)";
