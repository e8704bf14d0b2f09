//! A passed-through call's response body on its way to the client, with
//! each message's prefix checked as it streams by.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use tonic::{Code, Status};

use super::Slot;
use crate::server::grpc::frame::Prefixes;
use crate::server::grpc::trailers;

/// A passthrough response body on its way to the client. It reads each
/// message's prefix as the bytes stream by and ends the call with a
/// status in trailers — instead of a broken stream — when a message is
/// larger than `limits.max_response_bytes` (RESOURCE_EXHAUSTED; the limit
/// counts the message as sent, compressed or not), when the channel
/// finds the backend broke gRPC (INTERNAL: a message cut short or
/// flagged as none can be, a status missing, repeated or not a number),
/// or when the body fails (the client's status if its request failed
/// first, else the upstream's).
///
/// For a gRPC client nothing is held but a prefix split between two
/// chunks: its trailers travel apart from the messages. A gRPC-Web
/// client's trailers are a frame of the body, so for it a message goes
/// on only once whole: after a part of one, the trailers frame would be
/// read as the rest of it. Such a message is at most `limit` bytes.
pub(super) struct Relay {
    inner: tonic::body::Body,
    upstream: Box<str>,
    limit: usize,
    request_failed: Slot,
    /// Where the messages start, read as the bytes go by.
    prefixes: Prefixes,
    /// The length of the message last begun.
    length: usize,
    /// For a gRPC-Web client, the part of a message that has come so far
    /// (held until whole); `None` for a gRPC client.
    partial: Option<BytesMut>,
    /// The status to end with, after the data already due.
    ending: Option<Status>,
    done: bool,
    /// The call's endpoint and place in the breaker, held until the
    /// response ends.
    _passage: crate::upstream::Passage,
}

impl Relay {
    /// Relays `inner`, the response of a call to `upstream` whose request
    /// body's failure (if any) is kept in `request_failed`, to a gRPC-Web
    /// client (`web`) or a gRPC one.
    pub(super) fn new(
        inner: tonic::body::Body,
        upstream: &str,
        limits: Limits,
        request_failed: Slot,
        passage: crate::upstream::Passage,
    ) -> Relay {
        Relay {
            inner,
            upstream: upstream.into(),
            limit: limits.max_message_bytes,
            request_failed,
            prefixes: Prefixes::default(),
            length: 0,
            partial: limits.web.then(BytesMut::new),
            ending: None,
            done: false,
            _passage: passage,
        }
    }

    /// The part of `data` that may go on, and the status to end with when
    /// a message is refused.
    fn scan(&mut self, data: Bytes) -> (Bytes, Option<Status>) {
        let (upstream, limit) = (&self.upstream, self.limit);
        let last = &mut self.length;
        // The channel has checked the flags (`MessageBounds`).
        let (out, refused) = self.prefixes.scan(data, |[_, a, b, c, d]| {
            let length = u32::from_be_bytes([a, b, c, d]) as usize;
            if length > limit {
                return Err(Status::resource_exhausted(format!(
                    "upstream `{upstream}` sent a response message of {length} bytes, larger than the gateway's limit of {limit} bytes (limits.max_response_bytes)"
                )));
            }
            *last = length;
            Ok(length)
        });
        (self.whole(out), refused)
    }

    /// For a gRPC-Web client, the whole messages of `out` and those held
    /// before it; the start of a message not yet whole is held.
    fn whole(&mut self, out: Bytes) -> Bytes {
        let Some(partial) = &mut self.partial else {
            return out;
        };
        let remaining = self.prefixes.remaining();
        if partial.is_empty() && remaining == 0 {
            return out;
        }
        partial.extend_from_slice(&out);
        if remaining == 0 {
            return partial.split().freeze();
        }
        // The unfinished message's prefix and what came of it are the
        // tail of what is held.
        let begun = 5 + self.length - remaining;
        partial.split_to(partial.len() - begun).freeze()
    }
}

/// How a [`Relay`] checks what it relays.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// `limits.max_response_bytes`.
    pub(super) max_message_bytes: usize,
    /// Whether the client speaks gRPC-Web.
    pub(super) web: bool,
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
                        // The channel's own checks of the answer.
                        if let Some(violation) = crate::upstream::violation(&status) {
                            return Status::internal(format!(
                                "upstream `{}`: {violation}",
                                this.upstream
                            ));
                        }
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
                // The channel has checked that the body ends with a status
                // and not inside a message: a fault came as an error.
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
        // as gRPC clients built on grpc-core require. (The channel's body
        // does not claim its end while a check there would fail.)
        self.done || (self.ending.is_none() && self.inner.is_end_stream())
    }
}
