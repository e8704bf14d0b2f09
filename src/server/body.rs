//! Request bodies in, response bodies out.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;

/// Memory for request bodies shared by all requests in flight, so a burst
/// of large bodies is refused (503) instead of exhausting memory. Counted
/// in KiB.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> BodyBudget {
        let kib = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget(Arc::new(Semaphore::new(kib)))
    }

    fn take(
        &self,
        bytes: usize,
        held: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), GatewayError> {
        // Rounded up per call: a little generous, never short.
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if kib == 0 {
            return Ok(());
        }
        let permit = self
            .0
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| GatewayError::Busy)?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read whole, with its share of the budget (returned on drop).
#[derive(Debug)]
pub(crate) struct ReadBody {
    pub(crate) bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads the whole body, refusing more than `limit` bytes (413) and more
/// than the shared budget allows (503).
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    budget: &BodyBudget,
) -> Result<ReadBody, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    let declared = declared.map_or(0, |len| len as usize);
    let mut held = None;
    let mut reserved = 0;
    let mut body = body;
    let mut out = BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::BodyRead(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let size = out.len() + data.len();
        if size > limit {
            return Err(GatewayError::PayloadTooLarge(limit));
        }
        // Reserve what is (or is declared to be) buffered, before taking it.
        let needed = size.max(declared);
        if needed > reserved {
            budget.take(needed - reserved, &mut held)?;
            reserved = needed;
        }
        out.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: out.freeze(),
        _budget: held,
    })
}

/// The media type of a `Content-Type` value: the part before `;`, trimmed.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

/// Whether a body of this media type is read as JSON: JSON itself, any
/// `+json` type, and what command-line tools send by default (`text/plain`,
/// form encoding from `curl -d`).
pub(crate) fn is_json(media_type: &str) -> bool {
    let lower = media_type.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "" | "application/json" | "text/plain" | "application/x-www-form-urlencoded"
    ) || (lower.ends_with("+json") && lower.contains('/'))
}

/// A body of one data frame, then trailers.
#[derive(Debug)]
pub(crate) struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl WithTrailers {
    pub(crate) fn new(data: Bytes, trailers: HeaderMap) -> WithTrailers {
        WithTrailers {
            data: Some(data),
            trailers: Some(trailers),
        }
    }
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "",
            "application/json",
            "APPLICATION/JSON",
            "text/plain",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for no in [
            "text/csv",
            "application/xml",
            "application/octet-stream",
            "+json",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}
