//! The HTTP service a listener serves: the gateway's handler, with
//! response compression for clients that ask for it and CORS when
//! configured.
//!
//! Written out by hand rather than as an axum `Router` with one fallback:
//! the router boxed every response body once more and wrapped it in the
//! compression layer's body even when the client accepts no encoding,
//! and every frame of every response paid for both. Here a request
//! without `Accept-Encoding` goes straight to the handler.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower::{Layer as _, Service};
use tower_http::compression::predicate::{And, DefaultPredicate, Predicate};
use tower_http::compression::{Compression, CompressionLayer};
use tower_http::cors::{Cors, CorsLayer};

use super::leftover::Leftover;
use super::websocket::origin::{self, Origins};
use super::{Gateway, stream};
use crate::config::CorsOptions;
use crate::error::GatewayError;
use crate::transcode::RequestError;

/// A listener's HTTP service ([`Gateway::service`]).
#[derive(Debug, Clone)]
pub struct HttpService {
    gateway: Arc<Gateway>,
    inner: Inner,
    /// Who may open WebSockets (CORS does not cover them).
    origins: Origins,
}

#[derive(Debug, Clone)]
enum Inner {
    Plain(Dispatch),
    /// Boxed: the CORS settings are much larger than the plain service.
    Cors(Box<Cors<Dispatch>>),
}

impl HttpService {
    pub(super) fn new(gateway: Arc<Gateway>, cors: Option<&CorsOptions>) -> HttpService {
        let handler = Handler(Arc::clone(&gateway));
        let dispatch = Dispatch {
            compressed: CompressionLayer::new()
                .no_deflate()
                .compress_when(compressible())
                .layer(handler.clone()),
            handler,
            behind_cors: cors.is_some(),
        };
        let inner = match cors {
            Some(cors) => Inner::Cors(Box::new(cors_layer(cors).layer(dispatch))),
            None => Inner::Plain(dispatch),
        };
        HttpService {
            gateway,
            inner,
            origins: Origins::of(cors),
        }
    }
}

impl Service<Request> for HttpService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every layer below is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let head = request.method() == Method::HEAD;
        let checked = check_transfer_coding(request.headers())
            .and_then(|()| one_host(&mut request))
            .and_then(|()| {
                if origin::asks_for_websocket(request.headers()) {
                    self.origins.check_upgrade(request.headers())?;
                }
                Ok(())
            });
        if let Err(err) = checked {
            tracing::debug!(method = %request.method(), path = %request.uri().path(), error = %err, "Request refused");
            let snapshot = self.gateway.snapshot();
            let mut response = err.into_response(&snapshot.pool, &snapshot.codec);
            // The body (or an upgraded protocol's first frames) may follow
            // unread: on HTTP/1 the connection cannot go on.
            if request.version() < http::Version::HTTP_2 {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return std::future::ready(Ok(finish(response, head))).boxed();
        }
        let uncompressed = !accepts_encoding(&request);
        let leftover = Leftover::watch(&mut request);
        let response = match &mut self.inner {
            Inner::Plain(dispatch) => dispatch.call(request),
            Inner::Cors(cors) => {
                // tower-http's CORS layer answers every OPTIONS as a
                // preflight. One that is not (Fetch: a preflight carries
                // `Origin` and `Access-Control-Request-Method`) is the
                // routes' to answer (REST's `Allow`, a proxied service's
                // own OPTIONS): it crosses the layer as a GET, getting
                // the headers of an actual request, and `Dispatch` gives
                // it its method back.
                if request.method() == Method::OPTIONS && !super::is_preflight(request.headers()) {
                    *request.method_mut() = Method::GET;
                    request.extensions_mut().insert(OptionsNotPreflight);
                }
                cors.call(request).boxed()
            }
        };
        response
            .map(move |response| {
                let mut response = response.unwrap_or_else(|e| match e {});
                // Uncompressed for this client, but another one's answer
                // may differ: caches are told so, as the compression layer
                // does for the clients it sees.
                if uncompressed {
                    response = vary_on_encoding(response);
                }
                if let Some(leftover) = leftover {
                    leftover.close_if_unread(&mut response);
                }
                Ok(finish(response, head))
            })
            .boxed()
    }
}

/// The request body's transfer codings (HTTP/1.1 only: HTTP/2 has none).
/// The HTTP layer reads `chunked` and refuses a body whose last coding is
/// not `chunked` (its length is unknown), but passes any coding before it
/// on in the header: the body would be read still encoded. So a coding
/// other than `chunked` is refused with 501 (RFC 9112 §6.1), and
/// `chunked` applied twice (§6.1 forbids it) with 400.
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), GatewayError> {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Err(GatewayError::UnsupportedTransferCoding(coding.to_owned()));
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err(GatewayError::BadRequest(RequestError::Header {
            name: header::TRANSFER_ENCODING.as_str().to_owned(),
            reason: "chunked is applied more than once".to_owned(),
        }));
    }
    Ok(())
}

/// The host a request names, made one: an HTTP/1.1 request needs exactly
/// one `Host` (RFC 9112 §3.2), and where the target names its authority
/// (an absolute-form target, HTTP/2's `:authority`) that authority is the
/// host and a `Host` saying otherwise is replaced (RFC 9112 §3.2.2, RFC
/// 9113 §8.3.1), so that what is passed on as `X-Forwarded-Host` is what
/// the request was routed by.
fn one_host(request: &mut Request) -> Result<(), GatewayError> {
    let bad = |reason: String| {
        GatewayError::BadRequest(RequestError::Header {
            name: header::HOST.as_str().to_owned(),
            reason,
        })
    };
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(bad("a request must have at most one Host header".to_owned()));
    }
    if request.version() == http::Version::HTTP_11 && hosts == 0 {
        return Err(bad("an HTTP/1.1 request must have a Host header".to_owned()));
    }
    if let Some(host) = request.headers().get(header::HOST)
        && !is_host(host.as_bytes())
    {
        let shown = String::from_utf8_lossy(host.as_bytes())
            .chars()
            .take(64)
            .collect::<String>();
        return Err(bad(format!(
            "`{shown}` is not a host[:port] (RFC 9112 §3.2)"
        )));
    }
    // RFC 9110 §4.2.4, RFC 9113 §8.3.1: no `user:password@` in the target.
    if let Some(authority) = request.uri().authority()
        && !is_host(authority.as_str().as_bytes())
    {
        return Err(GatewayError::BadRequest(RequestError::Header {
            name: ":authority".to_owned(),
            reason:
                "the request target's authority must be a host[:port], without user information"
                    .to_owned(),
        }));
    }
    // Without a `Host` the authority is read where it is needed.
    if hosts > 0
        && let Some(authority) = request.uri().authority()
        && request
            .headers()
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            != Some(authority.as_str().as_bytes())
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    Ok(())
}

/// Whether `value` is a `host[:port]` (or empty): an authority without
/// user information, with a port that fits 16 bits. Checked by hand: the
/// `http` crate's parser copies the value first, on every request.
fn is_host(value: &[u8]) -> bool {
    // Empty is what a client sends for a target without an authority.
    if value.is_empty() {
        return true;
    }
    let (host, port) = match value.strip_prefix(b"[") {
        // An IP literal: `[v6]` or `[v6]:port`.
        Some(rest) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &rest[..end];
            // IPv6 (with a zone, `%25eth0`) or IPvFuture (`v1.x`).
            if literal.is_empty()
                || !literal
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b":.%-_~".contains(b))
            {
                return false;
            }
            match &rest[end + 1..] {
                [] => return true,
                [b':', port @ ..] => (&b"x"[..], port),
                _ => return false,
            }
        }
        None => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &b""[..]),
        },
    };
    // RFC 3986 reg-name or IPv4: unreserved, percent-escapes, sub-delims.
    let host_ok = !host.is_empty()
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b));
    let port_ok = port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && (port.is_empty() || std::str::from_utf8(port).is_ok_and(|p| p.parse::<u16>().is_ok()));
    host_ok && port_ok
}

/// What a router's top level does to every response: a `Content-Length`
/// where the body's size is known, and no body on an answer to `HEAD`.
///
/// An empty body on an answer to `HEAD`, or on a 304, says nothing about
/// the length (a proxied backend's answer has none to give): no
/// `Content-Length: 0` is made up for it. Nor on a gRPC answer: gRPC goes
/// over HTTP/2, which needs none, and a trailers-only answer's headers are
/// its trailers, which its client would read as the backend's metadata.
fn finish(mut response: Response, head: bool) -> Response {
    let bodiless = head || response.status() == http::StatusCode::NOT_MODIFIED;
    if !response.headers().contains_key(header::CONTENT_LENGTH)
        && super::grpc::Flavor::of_headers(response.headers()) != Some(super::grpc::Flavor::Grpc)
        && let Some(size) = http_body::Body::size_hint(response.body()).exact()
        && !(bodiless && size == 0)
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}

/// Sends a request through compression only when its client accepts an
/// encoding.
#[derive(Clone)]
struct Dispatch {
    handler: Handler,
    compressed: Compression<Handler, Compressible>,
    /// Behind the CORS layer: an OPTIONS that is not a preflight arrives
    /// as a GET marked [`OptionsNotPreflight`].
    behind_cors: bool,
}

/// Marks an OPTIONS request that crossed the CORS layer as a GET.
#[derive(Debug, Clone, Copy)]
struct OptionsNotPreflight;

/// Which responses are compressed (and so vary on `Accept-Encoding`).
type Compressible = And<DefaultPredicate, NotStreamed>;

fn compressible() -> Compressible {
    DefaultPredicate::new().and(NotStreamed)
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if self.behind_cors
            && request
                .extensions_mut()
                .remove::<OptionsNotPreflight>()
                .is_some()
        {
            *request.method_mut() = Method::OPTIONS;
        }
        let response = if accepts_encoding(&request) {
            self.compressed
                .call(request)
                .map(|response| response.map(|r| r.map(Body::new)))
                .boxed()
        } else {
            self.handler.call(request)
        };
        if !self.behind_cors {
            return response;
        }
        response
            .map(|response| {
                response.map(|mut response| {
                    drop_cors_headers(response.headers_mut());
                    response
                })
            })
            .boxed()
    }
}

/// Drops a proxied service's own CORS answer. With `cors` set the
/// gateway's policy is the one browsers see: its layer replaces some of
/// these headers and not others, so that a service's `*` would still let
/// through origins the gateway refuses.
fn drop_cors_headers(headers: &mut HeaderMap) {
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(name);
    }
}

/// Whether the request says which encodings its client takes: only then
/// does the compression layer see it.
fn accepts_encoding(request: &Request) -> bool {
    request.headers().contains_key(header::ACCEPT_ENCODING)
}

/// Adds `Vary: Accept-Encoding` to a response the compression layer would
/// have compressed for a client that asked.
fn vary_on_encoding(mut response: Response) -> Response {
    let headers = response.headers();
    let varies = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|name| {
            let name = name.trim_ascii();
            name.eq_ignore_ascii_case(b"accept-encoding") || name == b"*"
        })
    });
    if !varies
        && !headers.contains_key(header::CONTENT_ENCODING)
        && !headers.contains_key(header::CONTENT_RANGE)
        && compressible().should_compress(&response)
    {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The gateway's own handling of one request.
#[derive(Debug, Clone)]
struct Handler(Arc<Gateway>);

impl Service<Request> for Handler {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        super::serve(self.0.clone(), request).map(Ok).boxed()
    }
}

/// Streamed responses stay uncompressed: compression would merge and
/// split chunks that line-oriented clients read one message at a time.
#[derive(Debug, Clone, Copy)]
struct NotStreamed;

impl Predicate for NotStreamed {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        response.extensions().get::<stream::Streamed>().is_none()
    }
}

/// Headers gRPC-Web and Connect clients send and read.
const CORS_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "authorization",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "connect-protocol-version",
    "connect-timeout-ms",
    "traceparent",
    "tracestate",
];
/// `retry-after` (429, 503) and `www-authenticate` (401, 403) say what a
/// page should do next: shown to it too.
const CORS_RESPONSE_HEADERS: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "retry-after",
    "www-authenticate",
];

fn cors_layer(options: &CorsOptions) -> CorsLayer {
    use tower_http::cors::{AllowOrigin, ExposeHeaders};
    let origins = if options.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            options
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(&origin::normalized(o)).ok()),
        )
    };
    let mut allowed: Vec<HeaderName> = CORS_REQUEST_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    allowed.extend(options.allowed_headers.iter().cloned());
    let mut exposed: Vec<HeaderName> = CORS_RESPONSE_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    exposed.extend(options.exposed_headers.iter().cloned());
    CorsLayer::new()
        .allow_origin(origins)
        // Whatever method the page asks for: the routes decide which
        // exist, custom verbs (`custom: {kind: "LOCK"}`) included, and a
        // fixed list left those out.
        .allow_methods(tower_http::cors::AllowMethods::mirror_request())
        .allow_headers(allowed)
        .expose_headers(ExposeHeaders::list(exposed))
        .allow_credentials(options.allow_credentials)
        .max_age(options.max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codings(values: &[&str]) -> Result<(), GatewayError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::TRANSFER_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        check_transfer_coding(&headers)
    }

    #[test]
    fn the_authority_is_the_host() {
        let request = |version, uri: &str, hosts: &[&str]| {
            let mut request = Request::new(Body::empty());
            *request.version_mut() = version;
            *request.uri_mut() = uri.parse().unwrap();
            for host in hosts {
                request
                    .headers_mut()
                    .append(header::HOST, HeaderValue::from_str(host).unwrap());
            }
            request
        };
        let host = |request: &Request| request.headers().get(header::HOST).cloned();
        // HTTP/2: `:authority` wins over a `Host` that differs.
        let mut h2 = request(http::Version::HTTP_2, "http://a.test/x", &["b.test"]);
        one_host(&mut h2).unwrap();
        assert_eq!(host(&h2).unwrap(), "a.test");
        // No `Host` is added where the authority says it already.
        let mut h2 = request(http::Version::HTTP_2, "http://a.test/x", &[]);
        one_host(&mut h2).unwrap();
        assert_eq!(host(&h2), None);
        let mut h1 = request(http::Version::HTTP_11, "/x", &["b.test"]);
        one_host(&mut h1).unwrap();
        assert_eq!(host(&h1).unwrap(), "b.test");
        for hosts in [
            &[][..],
            &["a.test", "a.test"],
            &["a, b"],
            &["a/b"],
            &["a b"],
            &["u:p@a.test"],
            &["a.test:99999"],
            &["[::1"],
            &["[z z]"],
        ] {
            let mut h1 = request(http::Version::HTTP_11, "/x", hosts);
            assert!(one_host(&mut h1).is_err(), "{hosts:?}");
        }
        for host in [
            "a.test:8080",
            "[::1]:80",
            "[::1]",
            "127.0.0.1",
            "[fe80::1%25eth0]:80",
            "[v1.fe80::a]",
        ] {
            let mut h1 = request(http::Version::HTTP_11, "/x", &[host]);
            assert!(one_host(&mut h1).is_ok(), "{host}");
        }
        let mut h2 = request(http::Version::HTTP_2, "http://u:p@a.test/x", &[]);
        assert!(one_host(&mut h2).is_err(), "userinfo in :authority");
        let mut h2 = request(http::Version::HTTP_2, "http://a.test/x", &["a", "b"]);
        assert!(one_host(&mut h2).is_err(), "two hosts on HTTP/2");
        let mut h10 = request(http::Version::HTTP_10, "/x", &[]);
        assert!(one_host(&mut h10).is_ok());
    }

    #[test]
    fn only_chunked_once_is_read() {
        for ok in [&[][..], &["chunked"], &["Chunked"], &[" chunked ,"]] {
            assert!(codings(ok).is_ok(), "{ok:?}");
        }
        for (values, named) in [
            (&["gzip, chunked"][..], "gzip"),
            (&["GZip,chunked"], "GZip"),
            (&["x-custom", "chunked"], "x-custom"),
            (&["identity, chunked"], "identity"),
            (&["chunked, gzip"], "gzip"),
        ] {
            let err = codings(values).unwrap_err();
            assert!(
                matches!(&err, GatewayError::UnsupportedTransferCoding(c) if c == named),
                "{values:?}: {err}"
            );
            assert_eq!(err.status().0, http::StatusCode::NOT_IMPLEMENTED);
        }
        for twice in [&["chunked, chunked"][..], &["chunked", "chunked"]] {
            let err = codings(twice).unwrap_err();
            assert_eq!(err.status().0, http::StatusCode::BAD_REQUEST, "{twice:?}");
        }
    }
}
