//! The client's request body on its way to the upstream: streamed, held
//! to `limits.max_body_bytes`, and its failures marked as the client's,
//! so that a body that is cut, badly framed or too large is answered as
//! the client's fault (4xx) and never as the upstream's.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};

use crate::error::GatewayError;

/// Why the client's body did not make it; found in the chain of the
/// upstream client's error, which only says the body stream failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// More than `limits.max_body_bytes`.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
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
            BodyError::Read(err) => GatewayError::BodyRead(err.to_string()),
        }
    }
}

/// The request body as the upstream client reads it.
pub(super) struct Outgoing {
    inner: Limited<Body>,
    limit: usize,
}

impl Outgoing {
    /// `body`, held to `limit` bytes.
    pub(super) fn new(body: Body, limit: usize) -> Outgoing {
        Outgoing {
            inner: Limited::new(body, limit),
            limit,
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
        let limit = self.limit;
        let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(polled.map(|frame| {
            frame.map_err(|err| match err.downcast::<LengthLimitError>() {
                Ok(_) => BodyError::TooLarge(limit),
                Err(err) => BodyError::Read(err),
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
