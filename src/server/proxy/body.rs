//! The client's request body on its way to the upstream: streamed, held
//! to `limits.max_body_bytes` and `timeouts.request_body`, and its
//! failures marked as the client's, so that a body that is cut, badly
//! framed, too large or too slow is answered as the client's fault (4xx)
//! and never as the upstream's.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// Why the client's body did not make it; found in the chain of the
/// upstream client's error, which only says the body stream failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// More than `limits.max_body_bytes`.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not all there within `timeouts.request_body`.
    #[error("the request body did not arrive within {0:?}")]
    TooSlow(Duration),
    /// The connection could not give it: bad framing, or a client that
    /// left halfway.
    #[error("cannot read request body: {0}")]
    Read(#[source] axum::BoxError),
}

impl BodyError {
    /// The answer, as a transcoded route gives for the same body.
    pub(super) fn to_gateway(&self) -> GatewayError {
        match self {
            BodyError::TooLarge(limit) => GatewayError::PayloadTooLarge(*limit),
            BodyError::TooSlow(timeout) => GatewayError::RequestTimeout(*timeout),
            BodyError::Read(err) => GatewayError::BodyRead(err.to_string()),
        }
    }
}

/// The request body as the upstream client reads it.
pub(super) struct Outgoing {
    inner: Limited<Body>,
    limit: usize,
    timeout: Duration,
    /// `None` when `timeout` reaches past what the clock can say.
    deadline: Option<Instant>,
    /// Set when the body first has to be waited for: most bodies are
    /// there at once and never need a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Outgoing {
    /// `body`, held to `limit` bytes and to arriving within `timeout` from
    /// now.
    pub(super) fn new(body: Body, limit: usize, timeout: Duration) -> Outgoing {
        Outgoing {
            inner: Limited::new(body, limit),
            limit,
            timeout,
            deadline: Instant::now().checked_add(timeout),
            timer: None,
        }
    }
}

impl http_body::Body for Outgoing {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(polled) = Pin::new(&mut this.inner).poll_frame(cx) {
            let limit = this.limit;
            return Poll::Ready(polled.map(|frame| {
                frame.map_err(|err| match err.downcast::<LengthLimitError>() {
                    Ok(_) => BodyError::TooLarge(limit),
                    Err(err) => BodyError::Read(err),
                })
            }));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        std::task::ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyError::TooSlow(this.timeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
