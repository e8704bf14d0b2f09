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

use super::coding::Coding;
use crate::error::GatewayError;

/// Memory for request bodies shared by all requests in flight, so a burst
/// of large bodies is refused (503) instead of exhausting memory. Counted
/// in bytes: what a request holds, as it arrives, never what it declares.
///
/// A request holds its share from the first byte read until the call is
/// done: the body while it is read and decoded, then the encoded request
/// message while the backend works on it. The decoded message in between
/// exists only during synchronous parsing, so at most one per worker
/// thread is alive at a time and it is not counted. Responses are not
/// counted: they are bounded by `limits.max_response_bytes` each and
/// released as they are written.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }
}

/// A request's share of the [`BodyBudget`], returned on drop.
#[derive(Debug, Default)]
pub(crate) struct Share(Option<OwnedSemaphorePermit>);

impl Share {
    fn size(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Grows or shrinks the share to `bytes`; 503 when the budget cannot
    /// give the growth.
    pub(crate) fn resize(&mut self, bytes: usize, budget: &BodyBudget) -> Result<(), GatewayError> {
        let have = self.size();
        if bytes < have {
            if let Some(held) = &mut self.0 {
                drop(held.split(have - bytes));
            }
            return Ok(());
        }
        let more = u32::try_from(bytes - have).map_err(|_| GatewayError::Busy)?;
        if more == 0 {
            return Ok(());
        }
        let permit = budget
            .0
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| GatewayError::Busy)?;
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
        Ok(())
    }
}

/// A body read whole (and decoded), with its share of the budget.
#[derive(Debug)]
pub(crate) struct ReadBody {
    pub(crate) bytes: Bytes,
    pub(crate) share: Share,
}

/// What the gateway allocates ahead for a body of declared length: more
/// only as bytes arrive, so a false `Content-Length` costs nothing.
const FIRST_ALLOCATION: usize = 64 << 10;

/// Reads the whole body and decodes its `Content-Encoding`, refusing more
/// than `limit` bytes on either side (413) and more than the shared budget
/// allows (503).
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    budget: &BodyBudget,
) -> Result<ReadBody, GatewayError> {
    let coding = Coding::of(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    let declared = declared.map_or(0, |len| len as usize);
    let mut share = Share::default();
    let mut body = body;
    // A body that comes in one frame (the usual case) is kept as it came,
    // without a copy; the second frame starts the copy.
    let mut first: Option<Bytes> = None;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::BodyRead(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len);
        let size = held + out.len() + data.len();
        if size > limit {
            return Err(GatewayError::PayloadTooLarge(limit));
        }
        share.resize(size, budget)?;
        match first.take() {
            None if out.is_empty() => first = Some(data),
            None => out.extend_from_slice(&data),
            Some(earlier) => {
                out.reserve(declared.clamp(size, FIRST_ALLOCATION.max(size)));
                out.extend_from_slice(&earlier);
                out.extend_from_slice(&data);
            }
        }
    }
    let mut bytes = first.unwrap_or_else(|| out.freeze());
    if coding != Coding::Identity {
        // The compressed bytes stay counted while they are decoded.
        let decoded = coding.decode(bytes, limit).await?;
        share.resize(decoded.len(), budget)?;
        bytes = decoded;
    }
    Ok(ReadBody { bytes, share })
}

/// The media type `Content-Type` declares: the part before `;`, trimmed;
/// `None` without the header. A declared type that is not `type/subtype`
/// (RFC 9110 §8.3.1) — empty, `;;;`, `json`, not ASCII — is unsupported
/// (415) whatever the route takes, named as sent: it is never read as
/// "no type".
pub(crate) fn media_type(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let media = bytes.split(|&b| b == b';').next().unwrap_or_default();
    match std::str::from_utf8(media.trim_ascii()) {
        Ok(media) if is_media_type(media) => Ok(Some(media)),
        _ => Err(GatewayError::UnsupportedMediaType(
            String::from_utf8_lossy(bytes).into_owned(),
        )),
    }
}

/// `type/subtype`, both tokens (RFC 9110 §5.6.2).
fn is_media_type(media: &str) -> bool {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    media
        .split_once('/')
        .is_some_and(|(kind, sub)| is_token(kind) && is_token(sub))
}

/// Whether a body of this media type is read as JSON: JSON itself, any
/// `+json` type, what command-line tools send by default (`text/plain`,
/// form encoding from `curl -d`), and none (`""`: no `Content-Type`).
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

    #[test]
    fn declared_media_types_must_be_type_and_subtype() {
        let declared = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            let value = http::HeaderValue::from_bytes(value).unwrap();
            headers.insert(header::CONTENT_TYPE, value);
            media_type(&headers).map(|m| m.map(str::to_owned))
        };
        assert!(matches!(media_type(&HeaderMap::new()), Ok(None)));
        for (value, media) in [
            (&b"application/json"[..], "application/json"),
            (b" Application/JSON ; charset=utf-8", "Application/JSON"),
            (
                b"application/vnd.api+json;v=\"\xe9\"",
                "application/vnd.api+json",
            ),
            (b"*/*", "*/*"),
        ] {
            assert_eq!(declared(value).unwrap().as_deref(), Some(media));
        }
        for bad in [
            &b""[..],
            b";;;",
            b" ; charset=utf-8",
            b"json",
            b"application/",
            b"/json",
            b"application/json/x",
            b"application json",
            b"application/json, text/plain",
            b"application/\xe9",
        ] {
            let err = declared(bad).unwrap_err();
            let sent = String::from_utf8_lossy(bad).into_owned();
            assert!(
                matches!(&err, GatewayError::UnsupportedMediaType(named) if *named == sent),
                "{sent:?}: {err}"
            );
        }
    }
}
