//! Whether the peer of a connection has sent anything at all, and whether
//! its first frame was its SETTINGS.
//!
//! Connecting waits for the peer's SETTINGS ([`Vitals::settings`]): a
//! peer that accepts the connection and says nothing is not connected to
//! (see `connection`). When the connection ends, what to tell the client
//! depends on whether the peer ever spoke. One that closed without a byte
//! (a server shutting down or over its connection limit, a balancer with
//! nothing behind it, a TLS server given our cleartext) is unreachable:
//! 503. One that sent bytes that were not HTTP/2 is another kind of
//! server: 502. The calls read the difference from
//! [`Vitals::heard`](super::Vitals). A TLS error read before the first
//! frame is kept for connecting, which reports it as the handshake's.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Vitals;

/// A connection's stream that sets `vitals.heard` on the first byte read
/// and notifies `vitals.settings` once the peer's first frame header
/// shows its SETTINGS, the end of the HTTP/2 handshake.
#[derive(Debug)]
pub(super) struct Heard<S> {
    inner: S,
    vitals: Arc<Vitals>,
    /// The first bytes read, until they make a frame header.
    head: Vec<u8>,
    /// Set once the first frame header came: later reads look no more.
    done: bool,
}

impl<S> Heard<S> {
    pub(super) fn new(inner: S, vitals: Arc<Vitals>) -> Heard<S> {
        Heard {
            inner,
            vitals,
            head: Vec::with_capacity(FRAME_HEADER),
            done: false,
        }
    }

    fn read(&mut self, data: &[u8]) {
        if self.head.is_empty() && !data.is_empty() {
            self.vitals.heard.store(true, Ordering::Release);
        }
        let take = (FRAME_HEADER - self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..take]);
        if let [_, _, _, kind, flags, a, b, c, d] = self.head[..] {
            self.done = true;
            let stream = u32::from_be_bytes([a, b, c, d]) & !(1 << 31);
            if kind == SETTINGS && flags & ACK == 0 && stream == 0 {
                self.vitals.settings.notify_one();
            }
        }
    }
}

impl<S> Heard<S> {
    /// Keeps a TLS failure read before the first frame (a TLS 1.3 server
    /// refusing the client's certificate after the handshake) for
    /// connecting to report: `h2` keeps only its text.
    fn failed(&self, err: &io::Error) {
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            let _ = self.vitals.tls_refused.set(tls.clone());
        }
    }
}

/// An HTTP/2 frame header's length, and the SETTINGS type and ACK flag.
const FRAME_HEADER: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if let Err(err) = ready!(Pin::new(&mut self.inner).poll_read(cx, buf)) {
            if !self.done {
                self.failed(&err);
            }
            return Poll::Ready(Err(err));
        }
        if !self.done {
            self.read(&buf.filled()[before..]);
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
/// byte (over TLS: a byte after the handshake). A TLS server that gets our
/// cleartext preface closes this way too, hence the hint in cleartext.
pub(super) fn closed_unheard(tls: bool) -> &'static str {
    if tls {
        "the upstream closed the connection without sending anything (is it shutting down?)"
    } else {
        "the upstream closed the connection without sending anything \
     (is it shutting down, or does it take TLS only? A TLS backend needs an https:// URL)"
    }
}
