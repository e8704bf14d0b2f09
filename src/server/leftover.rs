//! Request bodies left unread on HTTP/1.1. A refusal made before the body
//! is read (a 401, a 429, a 404 for a POST) leaves it on the connection,
//! and the HTTP layer then closes the connection after the answer, since
//! it cannot tell where the next request starts; but it does not say so,
//! and a client that sends its next request on the connection meets a
//! reset. Such answers say `Connection: close` instead, so that clients
//! open a new connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::{Frame, SizeHint};

/// Whether a request's body has been read to its end.
#[derive(Debug, Clone, Default)]
pub(super) struct Leftover(Arc<AtomicBool>);

impl Leftover {
    /// Follows the body of an HTTP/1.x `request` that has one; `None` for
    /// HTTP/2 (a stream ends on its own) and bodiless requests (the common
    /// `GET`, which pays nothing).
    pub(super) fn watch(request: &mut Request<Body>) -> Option<Leftover> {
        if request.version() >= http::Version::HTTP_2 || !has_body(request.headers()) {
            return None;
        }
        let leftover = Leftover::default();
        let read = leftover.clone();
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = Body::new(Watched { inner: body, read });
        Some(leftover)
    }

    /// Marks `response` to close its connection when the body was not
    /// read to its end by the time the response head was ready.
    pub(super) fn close_if_unread<B>(&self, response: &mut Response<B>) {
        if !self.0.load(Ordering::Acquire) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Whether an HTTP/1.x request carries a body: a non-zero
/// `Content-Length`, or a transfer coding (`chunked`).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// A request body that says when it has been read to its end.
struct Watched {
    inner: Body,
    read: Leftover,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.read.0.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
