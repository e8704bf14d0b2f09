//! A passed-through call's response body on its way to the client, with
//! each message's size checked as it streams by.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::{Code, Status};

use super::Slot;
use crate::server::grpc::frame::Prefixes;
use crate::server::grpc::trailers;

/// A passthrough response body on its way to the client. It reads each
/// message's length prefix as the bytes stream by (nothing is held but a
/// prefix split between two chunks) and ends the call with a status in
/// trailers — instead of a broken stream — when a message is larger than
/// `limits.max_response_bytes` (RESOURCE_EXHAUSTED; the limit counts the
/// message as sent, compressed or not) or when the body fails (the
/// client's status if its request failed first, else the upstream's).
pub(super) struct Relay {
    inner: tonic::body::Body,
    upstream: Box<str>,
    limit: usize,
    request_failed: Slot,
    /// Where the messages start, read as the bytes go by.
    prefixes: Prefixes,
    /// The status to end with, after the data already due.
    ending: Option<Status>,
    done: bool,
    /// The call's endpoint and place in the breaker, held until the
    /// response ends.
    _passage: crate::upstream::Passage,
}

impl Relay {
    /// Relays `inner`, the response of a call to `upstream` whose request
    /// body's failure (if any) is kept in `request_failed`.
    pub(super) fn new(
        inner: tonic::body::Body,
        upstream: &str,
        limit: usize,
        request_failed: Slot,
        passage: crate::upstream::Passage,
    ) -> Relay {
        Relay {
            inner,
            upstream: upstream.into(),
            limit,
            request_failed,
            prefixes: Prefixes::default(),
            ending: None,
            done: false,
            _passage: passage,
        }
    }

    /// The part of `data` that may go on, and the status to end with when
    /// a message is too large.
    fn scan(&mut self, data: Bytes) -> (Bytes, Option<Status>) {
        let (upstream, limit) = (&self.upstream, self.limit);
        self.prefixes.scan(data, |[_, a, b, c, d]| {
            let length = u32::from_be_bytes([a, b, c, d]) as usize;
            if length > limit {
                return Err(Status::resource_exhausted(format!(
                    "upstream `{upstream}` sent a response message of {length} bytes, larger than the gateway's limit of {limit} bytes (limits.max_response_bytes)"
                )));
            }
            Ok(length)
        })
    }

    fn is_inside_message(&self) -> bool {
        self.prefixes.is_inside_message()
    }

    fn cut_short(&self) -> Status {
        Status::internal(format!(
            "upstream `{}` ended its response inside a message",
            self.upstream
        ))
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        // Each turn takes one frame of the upstream's body.
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(status) = this.ending.take() {
                this.done = true;
                // Dropping the upstream's body cancels its call.
                this.inner = tonic::body::Body::empty();
                return Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))));
            }
            let frame = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => {
                    let failed = this.request_failed.lock().take();
                    this.ending = Some(failed.unwrap_or_else(|| {
                        let code = match status.code() {
                            Code::Ok | Code::Unknown => Code::Unavailable,
                            code => code,
                        };
                        Status::new(
                            code,
                            format!(
                                "upstream `{}` broke off its response: {}",
                                this.upstream,
                                status.message()
                            ),
                        )
                    }));
                    continue;
                }
                None if this.is_inside_message() => {
                    this.ending = Some(this.cut_short());
                    continue;
                }
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let (out, refused) = this.scan(data);
                    this.ending = refused;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Err(_) if this.is_inside_message() => this.ending = Some(this.cut_short()),
                Err(frame) => {
                    this.done = true;
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A trailers-only answer (the backend's error) ends with the head:
        // said so, the head goes out as one HEADERS frame with END_STREAM,
        // as gRPC clients built on grpc-core require.
        self.done
            || (self.ending.is_none()
                && !self.prefixes.is_inside_message()
                && self.inner.is_end_stream())
    }
}
