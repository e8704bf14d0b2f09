//! Passing a gRPC call through to the upstream that serves its service:
//! the request readied for it (hop-by-hop headers dropped, `x-forwarded-*`
//! set), its body checked message by message (`inbound`) and watched for
//! the client's own failure, and the answer when no response head came;
//! `relay` carries the response back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use parking_lot::Mutex;
use tonic::Status;
use tower::{Service, ServiceExt as _};

use crate::error::GatewayError;
use crate::server::rest::ClientAddr;
use crate::snapshot::Snapshot;
use crate::upstream::{CallError, Upstream, metadata};

mod inbound;
mod relay;
use inbound::Inbound;
use relay::Relay;

/// Forwards a gRPC request to its service's upstream.
#[derive(Debug, Clone)]
pub(super) struct Passthrough {
    pub(super) snapshot: Arc<Snapshot>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The first failure of a request body, kept for the call's answer.
type Slot = Arc<Mutex<Option<Status>>>;

impl Service<Request<tonic::body::Body>> for Passthrough {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<tonic::body::Body>) -> Self::Future {
        let snapshot = Arc::clone(&self.snapshot);
        // gRPC over HTTP/1.1 with trailers (gRPC-Web, translated, carries
        // its trailers in the body and is marked so).
        let web = request.extensions().get::<super::Web>().is_some();
        let http1 = request.version() < http::Version::HTTP_2
            && !web
            && crate::server::rest::wants_trailers(request.headers());
        Box::pin(async move {
            let service = request
                .uri()
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            // A group's upstream, else the one serving the service.
            let group = request
                .extensions()
                .get::<crate::server::group::GroupPolicy>()
                .map(|p| p.upstream);
            let Some(upstream) = group
                .or_else(|| snapshot.services.find(&service))
                .map(|i| &snapshot.upstreams[i])
            else {
                let status = Status::unimplemented(format!("no upstream serves {service}"));
                return Ok(status.into_http());
            };
            let timeout = match deadline(&mut request) {
                Ok(timeout) => timeout,
                Err(status) => return Ok(status.into_http()),
            };
            if let Err(status) = check_metadata(request.headers_mut()) {
                return Ok(status.into_http());
            }
            let expires = timeout.map(|t| tokio::time::Instant::now() + t);
            prepare(&mut request);
            let failed = Slot::default();
            let encoded = metadata::is_encoded(request.headers());
            let limit = snapshot.limits.max_body_bytes;
            let request = request.map(|inner| {
                let inner = tonic::body::Body::new(Inbound::new(inner, encoded, limit));
                tonic::body::Body::new(Watched {
                    inner,
                    slot: Arc::clone(&failed),
                })
            });
            let hints = upstream.hints(request.headers());
            let upstream = upstream.target(hints);
            // A deadline already gone (`grpc-timeout: 0S`) sends nothing:
            // the backend could not answer in time, but could act on it.
            let gone = || {
                Status::deadline_exceeded(format!(
                    "deadline exceeded: the call's grpc-timeout of {:?} had passed before it could be sent",
                    timeout.unwrap_or_default()
                ))
                .into_http()
            };
            if expires.is_some_and(|at| at <= tokio::time::Instant::now()) {
                return Ok(gone());
            }
            let mut passage = match upstream.passage(hints, expires).await {
                Ok(passage) => passage,
                // The channel's failure to reach any endpoint, said as
                // a failed call's.
                Err(status) if std::error::Error::source(&status).is_some() => {
                    return Ok(reported(upstream, &service, status));
                }
                Err(status) => return Ok(status.into_http()),
            };
            let started = tokio::time::Instant::now();
            if expires.is_some_and(|at| at <= started) {
                return Ok(gone());
            }
            let result = passage.channel().oneshot(request).await;
            tracing::debug!(%service, upstream = upstream.name(), micros = started.elapsed().as_micros() as u64, ok = result.is_ok(), "gRPC passthrough");
            let response = match result {
                Ok(response) => {
                    // An HTTP answer that is not gRPC, made a status by
                    // the channel: named with the upstream, as on REST.
                    if response
                        .extensions()
                        .get::<crate::upstream::HttpAnswer>()
                        .is_some()
                        && let Some(status) = Status::from_header_map(response.headers())
                    {
                        passage.answered(Some(status.code()));
                        return Ok(upstream_status(upstream, status).into_http());
                    }
                    // A status in the head ends the call there
                    // (trailers-only); otherwise the backend answered.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from);
                    // Every deadline here is the client's: a backend
                    // saying it passed says nothing about the endpoint.
                    if code == tonic::Code::DeadlineExceeded && timeout.is_some() {
                        passage.unjudged();
                    } else {
                        passage.answered(Some(code));
                    }
                    response
                }
                Err(err) => {
                    // The client's own failures (its body, its deadline)
                    // say nothing about the endpoint.
                    let theirs = failed.lock().is_some() || expired(&*err);
                    if theirs {
                        passage.unjudged();
                    } else {
                        passage.answered(None);
                    }
                    return Ok(failure(upstream, &service, &failed, timeout, err));
                }
            };
            let limits = relay::Limits {
                max_message_bytes: snapshot.limits.max_response_bytes,
                web,
            };
            let mut response = response.map(|inner| {
                tonic::body::Body::new(Relay::new(inner, upstream.name(), limits, failed, passage))
            });
            if http1 && !response.headers().contains_key("grpc-status") {
                // HTTP/1.1 sends only the trailers named up front.
                response.headers_mut().insert(
                    http::header::TRAILER,
                    http::HeaderValue::from_static(super::STATUS_TRAILERS),
                );
            }
            Ok(response)
        })
    }
}

/// The client's `grpc-timeout`, checked before it goes on: the upstream
/// connection is shared, and a malformed value sent on it can do more
/// than fail this call (grpcio, meeting one, kept refusing the valid
/// deadlines of every later call on the connection). A valid one goes as
/// a never-indexed literal, as the gateway's own deadlines do: a value
/// that differs on every call only churns both sides' header tables.
fn deadline(
    request: &mut Request<tonic::body::Body>,
) -> Result<Option<std::time::Duration>, Status> {
    let headers = request.headers_mut();
    if headers.get_all("grpc-timeout").iter().nth(1).is_some() {
        return Err(Status::invalid_argument(
            "header `grpc-timeout`: given more than once",
        ));
    }
    let Some(value) = headers.get_mut("grpc-timeout") else {
        return Ok(None);
    };
    match metadata::parse_grpc_timeout(value) {
        Some(timeout) => {
            value.set_sensitive(true);
            Ok(Some(timeout))
        }
        None => Err(Status::invalid_argument(format!(
            "header `grpc-timeout`: {}",
            metadata::NOT_A_GRPC_TIMEOUT
        ))),
    }
}

/// The compressions a passed-through call may name in `grpc-encoding`:
/// those gRPC's own libraries implement.
const ENCODINGS: [&str; 4] = ["identity", "gzip", "deflate", "zstd"];

/// Checks the metadata that a backend parses before it reads the call,
/// and marks it never to be indexed on the way on.
///
/// The upstream connection is shared among the gateway's clients, and
/// grpcio, meeting a value it cannot parse, keeps the failure with the
/// entry of its HPACK table: every later call on the connection whose
/// header refers to that entry failed too (a gzip call after one client's
/// `grpc-encoding: GZIP`, say) — one client's mistake breaking others'
/// calls, as a malformed `grpc-timeout` did (see [`deadline`]). So:
///
/// - a `grpc-encoding` that is not one of [`ENCODINGS`], as written (the
///   names are lowercase), is UNIMPLEMENTED: a custom compression too,
///   since the gateway cannot tell one the backend knows;
/// - a `-bin` value that is not base64, or a `grpc-previous-rpc-attempts`
///   that is not a 32-bit count, is INVALID_ARGUMENT;
/// - what passes, in every header gRPC reserves (`grpc-*`) or that holds
///   bytes (`*-bin`), is sent as a never-indexed literal, so that no
///   entry of the backend's table holds a client's value that some
///   library parses and another does not (`zstd` to grpcio, a
///   load-balancing `-bin` field of the wrong length).
fn check_metadata(headers: &mut http::HeaderMap) -> Result<(), Status> {
    use base64::Engine as _;
    for value in headers.get_all("grpc-encoding") {
        if !ENCODINGS
            .iter()
            .any(|name| value.as_bytes() == name.as_bytes())
        {
            let name = super::bounded(&String::from_utf8_lossy(value.as_bytes()), 40).into_owned();
            return Err(Status::unimplemented(format!(
                "grpc-encoding `{name}` is not a compression the gateway passes on: send identity, gzip, deflate or zstd, lowercase"
            )));
        }
    }
    for value in headers.get_all("grpc-previous-rpc-attempts") {
        let count = std::str::from_utf8(value.as_bytes())
            .ok()
            .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u32>().ok());
        if count.is_none() {
            return Err(Status::invalid_argument(
                "header `grpc-previous-rpc-attempts`: not a count of attempts (a whole number below 2^32)",
            ));
        }
    }
    for (name, value) in headers.iter_mut() {
        let name = name.as_str();
        let bytes = name.ends_with("-bin");
        if bytes && metadata::BIN_BASE64.decode(value.as_bytes()).is_err() {
            return Err(Status::invalid_argument(format!(
                "header `{name}`: a `-bin` value is base64 (standard alphabet, padding optional)"
            )));
        }
        if bytes || name.starts_with("grpc-") {
            value.set_sensitive(true);
        }
    }
    Ok(())
}

/// The answer to a call whose response head never came: the client's own
/// failure (its body), its deadline passing, or the upstream's failure —
/// only the last is logged as a warning.
fn failure(
    upstream: &Upstream,
    service: &str,
    failed: &Slot,
    timeout: Option<std::time::Duration>,
    err: Box<dyn std::error::Error + Send + Sync>,
) -> Response<tonic::body::Body> {
    if let Some(status) = failed.lock().take() {
        tracing::debug!(%service, error = %status.message(), "gRPC request body failed");
        return status.into_http();
    }
    if expired(&*err) {
        let within = timeout.map_or_else(String::new, |t| format!(" of {t:?}"));
        let status = Status::deadline_exceeded(format!(
            "deadline exceeded: upstream `{}` did not answer within the call's grpc-timeout{within}",
            upstream.name()
        ));
        tracing::debug!(%service, upstream = upstream.name(), "gRPC passthrough deadline exceeded");
        return status.into_http();
    }
    reported(upstream, service, Status::from_error(err))
}

/// A call that failed on the way to the upstream, as the client sees it,
/// with a warning (throttled) for the operator.
fn reported(upstream: &Upstream, service: &str, status: Status) -> Response<tonic::body::Body> {
    let status = upstream_status(upstream, status);
    static WARNINGS: std::sync::LazyLock<crate::throttle::Throttle> =
        std::sync::LazyLock::new(crate::throttle::failures);
    match WARNINGS.allow() {
        Some(held) => {
            tracing::warn!(%service, upstream = upstream.name(), error = %status.message(), held, "gRPC passthrough failed");
        }
        None => {
            tracing::debug!(%service, upstream = upstream.name(), error = %status.message(), "gRPC passthrough failed");
        }
    }
    status.into_http()
}

/// Whether the channel gave up because the `grpc-timeout` passed.
fn expired(err: &(dyn std::error::Error + 'static)) -> bool {
    // Error chains are short; 32 links is far more than tonic builds.
    crate::upstream::chain(err)
        .take(32)
        .any(|err| err.is::<tonic::TimeoutExpired>())
}

/// A status the channel made up, as the client should see it.
fn upstream_status(upstream: &Upstream, status: Status) -> Status {
    // A backend that broke gRPC in its answer (its status unreadable,
    // say): INTERNAL, as a gRPC client reading it would say, not a
    // retry's invitation.
    if let Some(violation) = crate::upstream::violation(&status) {
        return Status::internal(format!("upstream `{}`: {violation}", upstream.name()));
    }
    match upstream.classify(status) {
        CallError::Status(status) | CallError::Answered(status, _) => status,
        // A peer that does not speak gRPC as configured: the call may
        // work against another replica, as with a refused connection.
        CallError::Protocol(message) => Status::unavailable(message),
        other => {
            let err = GatewayError::from(other);
            Status::new(err.status().1, err.to_string())
        }
    }
}

/// A passthrough request body: its first failure is kept in `slot`, so
/// the call ends with the client's status, not the reset that follows.
struct Watched {
    inner: tonic::body::Body,
    slot: Slot,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Err(status)) = &polled {
            self.slot.lock().get_or_insert_with(|| status.clone());
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The gRPC headers only a response carries.
const RESPONSE_ONLY: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-retry-pushback-ms",
];

/// Drops hop-by-hop headers (and the gRPC headers only a response
/// carries), appends the client to `x-forwarded-for` and
/// sets `x-forwarded-host` from `Host`, as for REST calls (a client's own
/// `x-forwarded-host` is not trusted).
fn prepare(request: &mut Request<tonic::body::Body>) {
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let host = metadata::forwarded_host(
        request.headers(),
        request.uri().authority().map(|a| a.as_str()),
    )
    .and_then(|h| HeaderValue::from_str(h).ok());
    let headers = request.headers_mut();
    crate::upstream::strip_connection_headers(headers);
    // Backends compare the gRPC content type as written in lowercase.
    if let Some(kind) = headers.get(http::header::CONTENT_TYPE)
        && kind.as_bytes().iter().any(u8::is_ascii_uppercase)
        && let Ok(lower) =
            HeaderValue::from_str(&kind.to_str().unwrap_or_default().to_ascii_lowercase())
    {
        headers.insert(http::header::CONTENT_TYPE, lower);
    }
    // The body may change length on the way (gRPC-Web text is base64):
    // HTTP/2 frames it anyway, so no content-length goes along.
    for name in ["host", "content-length", "x-forwarded-host"] {
        headers.remove(name);
    }
    // A response's headers, meaningless in a request; a backend still
    // parses them (grpcio as integers) on the shared connection.
    for name in RESPONSE_ONLY {
        headers.remove(name);
    }
    if let Some(host) = host {
        headers.insert("x-forwarded-host", host);
    }
    let list = metadata::forwarded_for(headers, client);
    if let Ok(value) = HeaderValue::from_str(&list)
        && !list.is_empty()
    {
        headers.insert("x-forwarded-for", value);
    }
}
