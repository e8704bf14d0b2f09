//! The checks every call to the gateway's own services passes first.
//!
//! Every call to them is checked before tonic sees it, since a failure
//! inside a bidirectional stream would otherwise end it with OK: the
//! content type (protobuf only: other codecs are UNIMPLEMENTED), each
//! message's flags (compressed without `grpc-encoding`: INTERNAL) and
//! length (past `MAX_MESSAGE`: RESOURCE_EXHAUSTED), that each message
//! decodes and that the body does not end inside one (INTERNAL). A
//! `grpc-message` echoes client-chosen names cut to `MAX_ECHO` characters.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use parking_lot::Mutex;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt as _;

use super::{MAX_ECHO, OwnService};
use crate::server::grpc;
use crate::server::grpc::frame::{Prefix, request_prefix};
use crate::upstream::metadata::is_encoded;

/// Largest request message the gateway's own services take (gRPC's usual
/// default); a larger one is RESOURCE_EXHAUSTED.
const MAX_MESSAGE: usize = 4 << 20;

/// Whether bytes decode as a service's request message.
pub(super) type Decodes = fn(&[u8]) -> Result<(), prost::DecodeError>;

pub(super) fn decodes<M: prost::Message + Default>(bytes: &[u8]) -> Result<(), prost::DecodeError> {
    M::decode(bytes).map(drop)
}

/// An own service behind the checks of the module's header.
#[derive(Clone)]
pub(super) struct Guarded {
    pub(super) inner: OwnService,
    pub(super) decodes: Decodes,
}

impl tower::Service<Request<Body>> for Guarded {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let decodes = self.decodes;
        Box::pin(async move {
            let media = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if media != "application/grpc" && media != "application/grpc+proto" {
                let status = Status::unimplemented(format!(
                    "the gateway's own services speak protobuf (application/grpc or application/grpc+proto), not `{}`",
                    grpc::bounded(&media, MAX_ECHO)
                ));
                return Ok(status.into_http());
            }
            let encoded = is_encoded(request.headers());
            let failed = Arc::new(Mutex::new(None));
            let request = request.map(|inner| {
                Body::new(Checked {
                    inner,
                    buf: BytesMut::new(),
                    encoded,
                    decodes,
                    failed: Arc::clone(&failed),
                    done: false,
                })
            });
            let Ok(mut response) = inner.oneshot(request).await;
            bound_message(response.headers_mut());
            Ok(response.map(|inner| Body::new(Finished { inner, failed })))
        })
    }
}

/// A request body to an own service, checked message by message: each
/// goes on once it is whole and sound; the first fault ends the body with
/// its status, kept in `failed` for the response's trailers.
struct Checked {
    inner: Body,
    buf: BytesMut,
    /// Whether `grpc-encoding` names a compression (tonic refuses those
    /// the own services lack before reading any message).
    encoded: bool,
    decodes: Decodes,
    failed: Arc<Mutex<Option<Status>>>,
    done: bool,
}

impl Checked {
    /// The whole messages at the front of `buf`, or the fault of the first
    /// unsound one.
    fn whole(&mut self) -> Result<Bytes, Status> {
        let mut at = 0;
        // Each turn passes one whole message.
        while let Some(&[flags, a, b, c, d]) = self.buf.get(at..at + 5) {
            let Prefix { compressed, length } = request_prefix([flags, a, b, c, d], self.encoded)?;
            if length > MAX_MESSAGE {
                return Err(Status::resource_exhausted(format!(
                    "a request message of {length} bytes is larger than the {MAX_MESSAGE} bytes the gateway's own services take"
                )));
            }
            let Some(message) = self.buf.get(at + 5..at + 5 + length) else {
                break;
            };
            if !compressed {
                (self.decodes)(message).map_err(|err| {
                    Status::internal(format!("the request message does not decode: {err}"))
                })?;
            }
            at += 5 + length;
        }
        Ok(self.buf.split_to(at).freeze())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        self.failed.lock().get_or_insert_with(|| status.clone());
        Poll::Ready(Some(Err(status)))
    }
}

impl http_body::Body for Checked {
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
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.buf.extend_from_slice(&data);
                        match this.whole() {
                            Ok(whole) if whole.is_empty() => continue,
                            Ok(whole) => return Poll::Ready(Some(Ok(Frame::data(whole)))),
                            Err(status) => return this.fail(status),
                        }
                    }
                    Err(trailers) if this.buf.is_empty() => {
                        return Poll::Ready(Some(Ok(trailers)));
                    }
                    Err(_) => return this.fail(cut_short(this.buf.len())),
                },
                Some(Err(status)) => return this.fail(status),
                None if this.buf.is_empty() => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                None => return this.fail(cut_short(this.buf.len())),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

fn cut_short(left: usize) -> Status {
    Status::internal(format!(
        "the request ended inside a message ({left} bytes of it came)"
    ))
}

/// An own service's response body: its end carries the request's fault
/// when the service ended with OK all the same (a bidirectional stream
/// stops at a bad request message without saying why), and its
/// `grpc-message` is bounded.
struct Finished {
    inner: Body,
    failed: Arc<Mutex<Option<Status>>>,
}

impl http_body::Body for Finished {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let mut trailers = match frame.into_trailers() {
            Ok(trailers) => trailers,
            Err(data) => return Poll::Ready(Some(Ok(data))),
        };
        let ok = trailers
            .get(Status::GRPC_STATUS)
            .is_none_or(|v| v.as_bytes() == b"0");
        if ok && let Some(status) = self.failed.lock().take() {
            trailers.clear();
            if status.add_header(&mut trailers).is_err() {
                trailers.insert(
                    Status::GRPC_STATUS,
                    HeaderValue::from(Code::Internal as i32),
                );
            }
        }
        bound_message(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Cuts the `grpc-message` in `headers` to `MAX_ECHO` characters.
fn bound_message(headers: &mut HeaderMap) {
    let Some(value) = headers.get(Status::GRPC_MESSAGE) else {
        return;
    };
    if value.len() <= MAX_ECHO {
        return;
    }
    let text = percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy();
    let cut = Status::new(Code::Ok, grpc::bounded(&text, MAX_ECHO));
    let mut encoded = HeaderMap::new();
    if cut.add_header(&mut encoded).is_ok()
        && let Some(message) = encoded.remove(Status::GRPC_MESSAGE)
    {
        headers.insert(Status::GRPC_MESSAGE, message);
    }
}
