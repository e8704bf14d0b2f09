//! A passed-through call's request body on its way to the upstream, with
//! each message's prefix checked as it streams by.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::Status;

use crate::server::grpc::frame::{Prefixes, request_prefix};

/// A passthrough request body on its way to the upstream. It reads each
/// message's prefix as the bytes stream by (nothing is held but a prefix
/// split between two chunks) and fails the body — so the upstream gets a
/// reset and not the message — at the first message that no gRPC server
/// would take (see [`request_prefix`]) or that is larger than
/// `limits.max_body_bytes` (RESOURCE_EXHAUSTED). The limit is per
/// message, as for REST and WebSocket streams: a client stream may carry
/// more than that in all. It counts a message as sent, compressed or not.
pub(super) struct Inbound {
    inner: tonic::body::Body,
    /// Whether `grpc-encoding` names a compression.
    encoded: bool,
    limit: usize,
    prefixes: Prefixes,
    /// The status of a refused message, to fail with once the messages
    /// before it are gone.
    refused: Option<Status>,
    done: bool,
}

impl Inbound {
    pub(super) fn new(inner: tonic::body::Body, encoded: bool, limit: usize) -> Inbound {
        Inbound {
            inner,
            encoded,
            limit,
            prefixes: Prefixes::default(),
            refused: None,
            done: false,
        }
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl http_body::Body for Inbound {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        // Each turn takes one frame of the client's body.
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(status) = this.refused.take() {
                return this.fail(status);
            }
            let frame = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => return this.fail(status),
                None if this.prefixes.is_inside_message() => return this.fail(cut_short()),
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(_) if this.prefixes.is_inside_message() => return this.fail(cut_short()),
                // A gRPC request has no trailers, so none go on: the
                // upstream connection is shared, and a reserved name in
                // them (a malformed `grpc-timeout`) made grpcio fail every
                // later call on it, as in the headers.
                Err(_) => continue,
            };
            let (encoded, limit) = (this.encoded, this.limit);
            let (out, refused) = this.prefixes.scan(data, |head| {
                let length = request_prefix(head, encoded)?.length;
                if length > limit {
                    return Err(Status::resource_exhausted(format!(
                        "a request message of {length} bytes is larger than the gateway's limit of {limit} bytes (limits.max_body_bytes)"
                    )));
                }
                Ok(length)
            });
            // The messages before a refused one go on first; the refusal
            // comes with the next poll.
            this.refused = refused;
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
            || (self.refused.is_none()
                && !self.prefixes.is_inside_message()
                && self.inner.is_end_stream())
    }
}

/// INTERNAL, as a gRPC server answers a request that ends inside a
/// message: the upstream would otherwise see a clean end of the stream,
/// without the bytes of a prefix held back.
fn cut_short() -> Status {
    Status::internal("the request ended inside a message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, StreamBody};

    /// A gRPC request has no trailers: a client's are not sent on, and
    /// the message before them is.
    #[tokio::test]
    async fn request_trailers_stay_behind() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-timeout", http::HeaderValue::from_static("abc"));
        let message = Bytes::from_static(&[0, 0, 0, 0, 2, 0x0a, 0]);
        let frames = [
            Ok::<_, Status>(Frame::data(message.clone())),
            Ok(Frame::trailers(trailers)),
        ];
        let body = tonic::body::Body::new(StreamBody::new(tokio_stream::iter(frames)));
        let collected = Inbound::new(body, false, 1024).collect().await.unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), message);
    }
}
