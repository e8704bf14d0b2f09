//! What a call carries in and out: the request ([`Call`], [`Hints`]),
//! the answers ([`Reply`], [`Opened`], [`Responses`]), the failures
//! ([`CallError`]), and what a call holds on its endpoint while it runs.

use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio_stream::Stream;
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::balance::{Lease, Outcome};
use super::breaker::{InFlight, Pending};
use super::{Channel, Upstream};

/// Where one request's call goes, decided from its headers once: to the
/// canary or not, and its consistent-hash key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints {
    pub(super) canary: bool,
    pub(super) hash: Option<u64>,
}

/// One unary call.
#[derive(Debug)]
pub struct Call {
    /// `/package.Service/Method`.
    pub path: PathAndQuery,
    /// The encoded request message.
    pub message: Bytes,
    /// Request metadata.
    pub metadata: MetadataMap,
    /// Deadline for the whole call, retries included; each try sends the
    /// time left as `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// Whether `timeout` is the client's own (its `grpc-timeout` or
    /// `Connect-Timeout-Ms`, shorter than the gateway's): a try it cuts
    /// short says nothing about the endpoint, and outlier detection does
    /// not count it (or any client could have healthy endpoints ejected).
    pub client_deadline: bool,
    /// Where it goes ([`Upstream::hints`]).
    pub hints: Hints,
    /// Whether it may be sent twice when a backend failed it (an HTTP GET,
    /// or a method marked idempotent).
    pub idempotent: bool,
}

/// A successful unary reply.
#[derive(Debug)]
pub struct Reply {
    /// Response headers.
    pub headers: MetadataMap,
    /// The encoded response message.
    pub message: Bytes,
    /// Trailers (without `grpc-status`).
    pub trailers: MetadataMap,
}

impl Reply {
    /// Reads the one response message of a call that answers once (unary
    /// and client-streaming), then its trailers. None, or a second, is the
    /// backend's protocol error: a second answer is not dropped unseen.
    ///
    /// A failure comes with the response headers, which the client gets
    /// with the error.
    pub(crate) async fn read(
        headers: MetadataMap,
        stream: &mut Streaming<Bytes>,
    ) -> Result<Reply, (Status, Option<MetadataMap>)> {
        let read = async {
            let violation = |what: &'static str| {
                Status::from_error(Box::new(super::channel::Violation(what.into())))
            };
            let message = stream.message().await?.ok_or_else(|| {
                violation("the backend ended its call without a response message")
            })?;
            if stream.message().await?.is_some() {
                return Err(violation(
                    "the backend sent more than one response message to a call that answers once",
                ));
            }
            let trailers = stream.trailers().await?.unwrap_or_default();
            Ok((message, trailers))
        };
        match read.await {
            Ok((message, trailers)) => Ok(Reply {
                headers,
                message,
                trailers,
            }),
            Err(status) => Err((status, Some(headers))),
        }
    }
}

/// A failed call.
#[derive(Debug)]
pub enum CallError {
    /// The backend (or the channel) answered with a status.
    Status(Status),
    /// The backend answered a unary call with a status after its
    /// response headers, which go to the client with it.
    Answered(Status, MetadataMap),
    /// The deadline passed before the call finished; after a failed try,
    /// why that try failed.
    DeadlineExceeded(Duration, Option<String>),
    /// The backend's message is larger than the gateway accepts.
    TooLarge(usize),
    /// The channel failed in a way that is neither the backend's answer
    /// nor plain unreachability: the peer does not speak gRPC over HTTP/2
    /// as the URL says (a TLS port called with `http://`, an HTTP/1.1
    /// server), or reset the call. Explained, with a hint.
    Protocol(String),
}

/// An open call.
#[derive(Debug)]
pub struct Opened {
    /// Response headers.
    pub headers: MetadataMap,
    /// Response messages, then trailers.
    pub stream: Responses,
}

/// A call's response messages and trailers; the call stays counted on its
/// endpoint and in the breaker until this is dropped.
#[derive(Debug)]
pub struct Responses {
    pub(super) inner: Streaming<Bytes>,
    pub(super) _hold: Hold,
}

impl std::ops::Deref for Responses {
    type Target = Streaming<Bytes>;

    fn deref(&self) -> &Streaming<Bytes> {
        &self.inner
    }
}

impl std::ops::DerefMut for Responses {
    fn deref_mut(&mut self) -> &mut Streaming<Bytes> {
        &mut self.inner
    }
}

impl Stream for Responses {
    type Item = Result<Bytes, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// What a call holds while it runs: its endpoint and its place in the
/// breaker.
#[derive(Debug)]
pub(super) struct Hold {
    pub(super) _lease: Lease,
    pub(super) _in_flight: Option<InFlight>,
}

/// One passed-through call's endpoint and counts ([`Upstream::passage`]).
#[derive(Debug)]
pub struct Passage {
    pub(super) upstream: Upstream,
    pub(super) pending: Pending,
    pub(super) hold: Hold,
}

impl Passage {
    /// The endpoint's channel.
    pub fn channel(&self) -> Channel {
        self.hold._lease.channel()
    }

    /// The response head came (or the call failed before it): `code` is
    /// the status it carried, if it ended there; `None` for a failure to
    /// reach the endpoint.
    pub fn answered(&mut self, code: Option<Code>) {
        self.pending.answered();
        let outcome = code.map_or(Outcome::Failed, Outcome::of);
        self.upstream.record(&self.hold._lease, outcome);
    }

    /// The call ended in a way that says nothing about the endpoint (the
    /// client's own body or deadline): no longer pending, not recorded.
    pub fn unjudged(&mut self) {
        self.pending.answered();
    }
}

/// One endpoint of a pool, for `/admin/status`.
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// Its address.
    pub address: std::net::SocketAddr,
    /// Whether it passes its checks.
    pub in_rotation: bool,
    /// Whether passive detection has it out for a while (it may pass its
    /// checks meanwhile).
    pub ejected: bool,
    /// Its weight.
    pub weight: u32,
    /// Its zone.
    pub zone: Option<String>,
}
