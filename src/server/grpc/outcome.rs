//! Each gRPC (and gRPC-Web) call counted by the status it ends with, for
//! `protogate_grpc_calls_total`: read from the head of a trailers-only
//! answer, else from the trailers as the response body ends. A call
//! dropped before its end, head or body (the client went away, or reset
//! the call), counts as `CANCELLED`, and one that ends or breaks without a
//! status as `UNKNOWN`, as a client would read it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body as _, Frame};
use tonic::{Code, Status};
use tower::Service;

use crate::metrics::{Face, Metrics};
use crate::trace::SpanNotes;

/// Counts the calls `inner` answers.
pub(super) struct Counting<S> {
    pub(super) inner: S,
    pub(super) metrics: Arc<Metrics>,
    pub(super) face: Face,
    /// The call's span, told its status too (while tracing).
    pub(super) traced: Option<SpanNotes>,
}

impl<S> Service<Request<tonic::body::Body>> for Counting<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        Answer {
            inner: self.inner.call(request),
            count: Uncounted(Some(Count {
                metrics: Arc::clone(&self.metrics),
                face: self.face,
                traced: self.traced.clone(),
            })),
        }
    }
}

/// Where one call is counted.
struct Count {
    metrics: Arc<Metrics>,
    face: Face,
    /// The call's span, told the status too (while tracing).
    traced: Option<SpanNotes>,
}

impl Count {
    fn record(self, code: i32) {
        self.metrics.record_grpc(self.face, code);
        if let Some(traced) = self.traced {
            traced.ended(code);
        }
    }
}

/// A call not counted yet: counted `CANCELLED` if dropped so (the client
/// left, or reset the call, before its response head).
struct Uncounted(Option<Count>);

impl Drop for Uncounted {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            count.record(Code::Cancelled as i32);
        }
    }
}

pin_project_lite::pin_project! {
    /// A counted call's response head on its way.
    pub(super) struct Answer<F> {
        #[pin]
        inner: F,
        count: Uncounted,
    }
}

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<Response<tonic::body::Body>, E>>,
{
    type Output = Result<Response<tonic::body::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        // Polled once more only by a caller that broke the contract.
        let Some(count) = this.count.0.take() else {
            return Poll::Ready(Ok(response));
        };
        if let Some(code) = status_in(response.headers()) {
            count.record(code);
            return Poll::Ready(Ok(response));
        }
        // Neither a status nor a body to bring one: a broken answer.
        if response.body().is_end_stream() {
            count.record(Code::Unknown as i32);
            return Poll::Ready(Ok(response));
        }
        Poll::Ready(Ok(response.map(|inner| {
            tonic::body::Body::new(Counted {
                inner,
                count: Some(count),
            })
        })))
    }
}

/// A response body that counts its call when its trailers come.
struct Counted {
    inner: tonic::body::Body,
    /// `None` once counted.
    count: Option<Count>,
}

impl Counted {
    fn record(&mut self, code: i32) {
        if let Some(count) = self.count.take() {
            count.record(code);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = status_in(trailers).unwrap_or(Code::Unknown as i32);
                    self.record(code);
                }
            }
            Some(Err(_)) | None => self.record(Code::Unknown as i32),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.record(Code::Cancelled as i32);
    }
}

/// The `grpc-status` a header block carries, if any; one that is not a
/// number is `UNKNOWN`.
fn status_in(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(Code::Unknown as i32),
    )
}
