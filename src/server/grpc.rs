//! gRPC and gRPC-Web on the REST port.
//!
//! `application/grpc` and `application/grpc+<codec>` requests are passed
//! through unchanged to the upstream that serves their service — any
//! service, streaming included, trailers intact — so one listener serves
//! REST and gRPC clients. `application/grpc-web` (binary) and
//! `application/grpc-web-text` (base64, decoded first by `web_text`)
//! requests are translated to gRPC by tonic-web, passed through the same
//! way, and their responses translated back (trailers become the last
//! frame of the body). Calls to the
//! gateway's own services — server reflection and health (see `own`) —
//! are answered by the gateway itself, in either flavor.
//!
//! Who is at fault stays visible: a request body the gateway cannot read
//! or translate (gRPC-Web text that is not base64) fails the call with
//! the client's status, not as an upstream failure; the client's
//! `grpc-timeout` passing is DEADLINE_EXCEEDED. Request messages larger
//! than `limits.max_body_bytes`, or framed as no gRPC server takes them,
//! end the call with RESOURCE_EXHAUSTED or INTERNAL before they reach the
//! upstream; response messages larger than `limits.max_response_bytes`
//! end it with RESOURCE_EXHAUSTED (`frame` reads the length prefixes as
//! they stream by; nothing is held).
//!
//! This module takes the calls in: it tells the flavors apart, refuses
//! what no gRPC server could take and readies gRPC-Web for tonic-web;
//! `passthrough` forwards a call to its upstream and relays the answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use tonic::Status;
use tower::{Layer as _, Service, ServiceExt as _};

use crate::metrics::Face;
use crate::snapshot::Snapshot;

pub(super) mod frame;
mod outcome;
use outcome::Counting;
mod passthrough;
use passthrough::Passthrough;
mod web_text;
use web_text::WebText;

/// How a request speaks gRPC, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `application/grpc` or `application/grpc+<codec>`.
    Grpc,
    /// `application/grpc-web*`.
    GrpcWeb,
}

impl Flavor {
    /// How the metrics name a client of this flavor.
    pub(crate) fn face(self) -> Face {
        match self {
            Flavor::Grpc => Face::Grpc,
            Flavor::GrpcWeb => Face::GrpcWeb,
        }
    }

    /// The flavor a request's content type names; media types are
    /// case-insensitive (`Application/GRPC` is gRPC).
    pub(crate) fn of(request: &Request<Body>) -> Option<Flavor> {
        Flavor::of_headers(request.headers())
    }

    /// The flavor the `Content-Type` in `headers` names.
    pub(crate) fn of_headers(headers: &http::HeaderMap) -> Option<Flavor> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let begins = |prefix: &str| {
            media
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        };
        if begins("application/grpc-web") {
            Some(Flavor::GrpcWeb)
        } else if media.eq_ignore_ascii_case("application/grpc") || begins("application/grpc+") {
            Some(Flavor::Grpc)
        } else {
            None
        }
    }
}

/// Serves a gRPC or gRPC-Web request.
pub(crate) async fn handle(
    snapshot: Arc<Snapshot>,
    flavor: Flavor,
    mut request: Request<Body>,
) -> Response<Body> {
    let face = flavor.face();
    let refused = refuse(flavor, &request, &snapshot.limits)
        .or_else(|| rate_limited(&snapshot, &request))
        .or_else(|| admit(&snapshot, &mut request));
    if let Some(refused) = refused {
        snapshot.metrics.record_grpc(face, refused.code() as i32);
        let mut response = refused.into_http::<tonic::body::Body>().map(Body::new);
        if flavor == Flavor::Grpc
            && let Some(sent) = request.headers().get(header::CONTENT_TYPE)
            && media(sent.to_str().unwrap_or_default()).starts_with("application/grpc+")
        {
            // In the codec the call was sent in (`application/grpc+json`).
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, sent.clone());
        }
        if flavor == Flavor::GrpcWeb {
            // In the mode the call would have been answered in.
            let sent_text = sent_media(request.headers()).starts_with(WEB_TEXT);
            let answer = if answers_in_text(request.headers(), sent_text) {
                "application/grpc-web-text+proto"
            } else {
                "application/grpc-web+proto"
            };
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(answer));
        }
        return response;
    }
    let metrics = Arc::clone(&snapshot.metrics);
    let traced = crate::trace::SpanNotes::of(&snapshot, request.extensions());
    match super::own::find(&snapshot, &request) {
        Some(inner) => {
            let counting = Counting {
                inner,
                metrics,
                face,
                traced,
            };
            serve(counting, flavor, request).await
        }
        None => {
            let inner = Passthrough { snapshot };
            let counting = Counting {
                inner,
                metrics,
                face,
                traced,
            };
            serve(counting, flavor, request).await
        }
    }
}

/// A call a `rate_limits` rule refuses, as `RESOURCE_EXHAUSTED` (the
/// gateway's own services are never limited: health checks must answer).
fn rate_limited(snapshot: &Snapshot, request: &Request<Body>) -> Option<tonic::Status> {
    let path = request.uri().path();
    if snapshot.rate_limits.is_empty() || super::own::is_own(path) {
        return None;
    }
    let (headers, extensions) = (request.headers(), request.extensions());
    // The path is all a passed-through call says of its method: one map
    // lookup, made only when there are rules.
    let checked = match snapshot.routes.rpc(path) {
        Some(rpc) => snapshot
            .rate_limits
            .check(&rpc.rate_limits, headers, extensions),
        None => snapshot
            .rate_limits
            .check_unknown(path, headers, extensions),
    };
    let err = checked.err()?;
    Some(tonic::Status::new(err.status().1, err.to_string()))
}

/// The bearer token check (see `crate::auth`), the gateway's own
/// services included: a refusal as the call's status; else the claims
/// the backend is to see are set on the request.
fn admit(snapshot: &Snapshot, request: &mut Request<Body>) -> Option<tonic::Status> {
    let path = request.uri().path();
    match crate::auth::Auth::path(snapshot.auth.as_ref(), path, request.headers()) {
        Ok(admitted) => {
            admitted.apply(request.headers_mut());
            None
        }
        Err(err) => Some(tonic::Status::new(err.status().1, err.to_string())),
    }
}

/// Whether `path` is `/<service>/<method>` as gRPC writes it: a service's
/// full name (identifiers joined by dots) and a method's name. Anything
/// else (`//`, `..`, a trailing `/`, `%` escapes, and a query, which the
/// caller looks for) names no method, and is
/// refused before the rate limits and bearer tokens are checked against
/// it: a backend or a proxy behind that normalised such a path would
/// otherwise serve a method the checks never saw.
fn is_method_path(path: &str) -> bool {
    let identifier = |name: &str| {
        let mut bytes = name.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let Some((service, method)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    identifier(method) && service.split('.').all(identifier)
}

/// Calls that no gRPC server could take, answered here as a gRPC status
/// rather than passed on (where a backend's reset would read as the
/// backend's failure) or left to tonic-web (which answers a bare 400).
fn refuse(
    flavor: Flavor,
    request: &Request<Body>,
    limits: &crate::config::Limits,
) -> Option<tonic::Status> {
    if request.method() != http::Method::POST {
        return Some(tonic::Status::unimplemented(format!(
            "gRPC calls are POST requests, not {}",
            request.method()
        )));
    }
    if let Err(err) = super::check_header_block(limits, request.headers()) {
        return Some(tonic::Status::resource_exhausted(err.to_string()));
    }
    if request.uri().query().is_some() || !is_method_path(request.uri().path()) {
        let shown: String = request
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .chars()
            .take(64)
            .collect();
        return Some(tonic::Status::unimplemented(format!(
            "`{shown}` is not a gRPC method path (/package.Service/Method)"
        )));
    }
    // Over HTTP/1.1 the status can only come as a trailer, and a client
    // that does not say it reads them would see a failed call end like a
    // successful one.
    if flavor == Flavor::Grpc
        && request.version() < http::Version::HTTP_2
        && !super::rest::wants_trailers(request.headers())
    {
        return Some(tonic::Status::unimplemented(
            "gRPC over HTTP/1.1 needs `TE: trailers` (the call's status is a trailer): send it, or use HTTP/2 or gRPC-Web",
        ));
    }
    if flavor == Flavor::GrpcWeb {
        let media = sent_media(request.headers());
        let known = matches!(
            media.as_str(),
            "application/grpc-web"
                | "application/grpc-web+proto"
                | "application/grpc-web-text"
                | "application/grpc-web-text+proto"
        );
        if !known {
            return Some(tonic::Status::unimplemented(format!(
                "content type `{}` is not a gRPC-Web type the gateway translates: send application/grpc-web or application/grpc-web-text (+proto)",
                bounded(&media, 100)
            )));
        }
    }
    None
}

/// Serves a request of either flavor with a gRPC `service`.
async fn serve<S>(service: S, flavor: Flavor, mut request: Request<Body>) -> Response<Body>
where
    S: Service<
            Request<tonic::body::Body>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    let unread = Unread::default();
    let response = match flavor {
        Flavor::Grpc => {
            let body = |inner| tonic::body::Body::new(ClientBody { inner, unread });
            service.oneshot(request.map(body)).await
        }
        Flavor::GrpcWeb => {
            request.extensions_mut().insert(Web);
            let text = web_modes(request.headers_mut());
            let client = Arc::clone(&unread);
            let not_base64 = web_text::Failure::default();
            let failure = Arc::clone(&not_base64);
            let body = |inner| {
                let client = ClientBody {
                    inner,
                    unread: client,
                };
                if text {
                    tonic::body::Body::new(WebText::new(client, failure))
                } else {
                    tonic::body::Body::new(client)
                }
            };
            let service = Translated {
                inner: service,
                text,
                unread,
                not_base64,
            };
            tonic_web::GrpcWebLayer::new()
                .layer(service)
                .oneshot(request.map(body))
                .await
        }
    };
    match response {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The exact gRPC-Web media types tonic-web translates.
const WEB_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

/// A media type without parameters, in lowercase.
fn media(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// How much a client's `Accept` wants an answer in one mode, least first.
#[derive(Debug, PartialEq, PartialOrd)]
enum Want {
    /// Named with `q=0`.
    Refused,
    /// Not named.
    Unsaid,
    /// Named with this weight.
    Weighted(f32),
}

impl Want {
    fn of(weight: Option<f32>) -> Want {
        match weight {
            None => Want::Unsaid,
            Some(w) if w > 0.0 => Want::Weighted(w),
            Some(_) => Want::Refused,
        }
    }
}

/// Readies a gRPC-Web request for tonic-web, which knows only the exact
/// media types: the content type loses its parameters, and `Accept` is
/// set to the mode of the answer: the one `Accept` wants more (a mode it
/// names with `q=0` is refused, so the other one wins), else the
/// request's own (text is base64). Returns whether the request is text.
/// Whether a gRPC-Web call sent in text mode (`sent_text`) or not is
/// answered in text: the mode its `Accept` weighs more, else its own.
fn answers_in_text(headers: &HeaderMap, sent_text: bool) -> bool {
    let ranges = super::accept::ranges(headers);
    let as_text = Want::of(super::accept::weight(&ranges, &WEB_TYPES[2..]));
    let as_binary = Want::of(super::accept::weight(&ranges, &WEB_TYPES[..2]));
    match as_text.partial_cmp(&as_binary) {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Less) => false,
        _ => sent_text,
    }
}

/// gRPC-Web's text mode, as its content types begin.
const WEB_TEXT: &str = "application/grpc-web-text";

/// The request's media type, lower case, without parameters.
fn sent_media(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media)
        .unwrap_or_default()
}

fn web_modes(headers: &mut HeaderMap) -> bool {
    let sent = sent_media(headers);
    let text = sent.starts_with(WEB_TEXT);
    if text {
        // Decoded here ([`WebText`]): tonic-web reads binary.
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc-web+proto"),
        );
    } else if let Some(exact) = WEB_TYPES.iter().find(|t| **t == sent) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(exact));
    }
    let accept = if answers_in_text(headers, text) {
        "application/grpc-web-text"
    } else {
        "application/grpc-web"
    };
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    text
}

/// The client's request body. It claims no size, whatever the one inside
/// knows: a translated body's length differs from the original's (text
/// mode is base64), but tonic-web passes the original length on as a size
/// hint, which HTTP/2 would send as content-length. A failure to read it
/// is kept in `unread`, to tell it from a translation error.
/// Marks a gRPC-Web request on its way through the translation: its
/// trailers go in the body, never as HTTP trailers.
#[derive(Debug, Clone, Copy)]
struct Web;

/// The status a client's body failed with, once it has.
type Unread = Arc<parking_lot::Mutex<Option<Status>>>;

struct ClientBody {
    inner: Body,
    unread: Unread,
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Err(err)) => {
                let status = unreadable(&err);
                *self.unread.lock() = Some(status.clone());
                Poll::Ready(Some(Err(status)))
            }
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The status for a request body that could not be read: its framing
/// broken (HTTP/1.1 chunks that are not chunks) is the client's mistake,
/// INVALID_ARGUMENT; a body cut off (the client gone, its stream reset)
/// is CANCELLED.
fn unreadable(err: &axum::Error) -> Status {
    let mut message = String::from("the request body could not be read");
    crate::upstream::append_causes(&mut message, Some(err));
    let malformed = crate::upstream::chain(err).take(32).any(|err| {
        err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            )
        })
    });
    if malformed {
        Status::invalid_argument(message)
    } else {
        Status::cancelled(message)
    }
}

/// The service behind tonic-web: the failures of the translated request
/// body become the client's statuses — INVALID_ARGUMENT for a body that
/// is not gRPC-Web (or, in text mode, not base64), the reading's own for
/// one that could not be read — never an upstream's.
struct Translated<S> {
    inner: S,
    text: bool,
    unread: Unread,
    not_base64: web_text::Failure,
}

impl<S> Service<Request<tonic::body::Body>> for Translated<S>
where
    S: Service<Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> S::Future {
        let (text, unread) = (self.text, Arc::clone(&self.unread));
        let not_base64 = Arc::clone(&self.not_base64);
        self.inner.call(request.map(|inner| {
            tonic::body::Body::new(TranslatedBody {
                inner,
                text,
                unread,
                not_base64,
            })
        }))
    }
}

struct TranslatedBody {
    inner: tonic::body::Body,
    text: bool,
    unread: Unread,
    not_base64: web_text::Failure,
}

impl http_body::Body for TranslatedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let status = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Err(status)) => status,
            other => return Poll::Ready(other),
        };
        let detail = status.message().trim_start_matches("tonic-web: ");
        let status = if let Some(unread) = self.unread.lock().take() {
            unread
        } else if let Some(why) = self.not_base64.lock().take() {
            Status::invalid_argument(format!(
                "the request body is not valid base64 (application/grpc-web-text): {why}"
            ))
        } else if self.text {
            Status::invalid_argument(format!(
                "the request body is not valid base64 (application/grpc-web-text): {detail}"
            ))
        } else {
            Status::invalid_argument(format!("the request body is not valid gRPC-Web: {detail}"))
        };
        Poll::Ready(Some(Err(status)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The names [`trailers`] may use, as a `Trailer` header lists them.
pub(super) const STATUS_TRAILERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";

/// `status` as gRPC trailers.
pub(super) fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        map.insert(Status::GRPC_STATUS, HeaderValue::from(status.code() as i32));
    }
    map
}

/// `text` cut to `max` characters (and `...`): client-chosen names
/// echoed into a `grpc-message`, which travels in a header block.
pub(super) fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_method_path;

    #[test]
    fn method_paths_are_service_and_method_names_only() {
        for good in [
            "/a.b.C/D",
            "/C/d_1",
            "/_x.Y/_z",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(is_method_path(good), "{good}");
        }
        for bad in [
            "/",
            "//",
            "/a.B",
            "/a.B/",
            "/a.B/C/",
            "/a.B//C",
            "//a.B/C",
            "/a.B/../C",
            "/a.B/C%69",
            "/a..B/C",
            "/.a.B/C",
            "/a.B./C",
            "/1a.B/C",
            "/a.B/1c",
            "a.B/C",
            "/a.B/C-d",
            "/a.B/C?x",
        ] {
            assert!(!is_method_path(bad), "{bad}");
        }
    }
}
