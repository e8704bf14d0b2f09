//! Request bodies in, response bodies out.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::GatewayError;

/// Reads the whole body, refusing more than `limit` bytes (413).
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::PayloadTooLarge(limit))
        }
        Err(err) => Err(GatewayError::BodyRead(err.to_string())),
    }
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
