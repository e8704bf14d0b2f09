//! The REST call, top to bottom: route match, request message, metadata and
//! deadline, upstream call, response. Each step is one function; failures
//! become a response in one place.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use tokio::time::Instant;

use crate::auth::Auth;
use crate::error::GatewayError;
use crate::http_rule::{Found, Miss, path};
use crate::route::{Route, RpcKind};
use crate::snapshot::Snapshot;
use crate::transcode::{RawRequest, RequestError};
use crate::upstream::{Call, Reply, Upstream, metadata};
use tonic::metadata::MetadataMap;

use super::coding::Coding;
use super::group::GroupPolicy;
use super::{body, streaming};

use std::sync::LazyLock;

use crate::throttle::{self, Throttle};
use crate::trace::SpanNotes;

/// The client's address, put in request extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Serves one REST request against `snapshot`.
pub(crate) async fn handle(
    snapshot: Arc<Snapshot>,
    request: http::Request<Body>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (response, hit) = match call(&snapshot, &parts, body).await {
        Ok((response, hit)) => {
            if hit.is_some() {
                note_end(&snapshot, &parts, tonic::Code::Ok);
            }
            (response, hit)
        }
        Err((err, hit)) => {
            let rpc = hit.map(|h| h.rpc);
            let (status, code) = err.status();
            if hit.is_some() {
                note_end(&snapshot, &parts, code);
            }
            if status.is_server_error() && !err.is_client_caused() {
                static WARNINGS: LazyLock<Throttle> = LazyLock::new(throttle::failures);
                match WARNINGS.allow() {
                    Some(held) => {
                        tracing::warn!(method = %parts.method, path = %parts.uri.path(), rpc, status = status.as_u16(), error = %err, held, "Request failed");
                    }
                    None => {
                        tracing::debug!(method = %parts.method, path = %parts.uri.path(), rpc, status = status.as_u16(), error = %err, "Request failed");
                    }
                }
            }
            (err.into_response(&snapshot.pool, &snapshot.codec), hit)
        }
    };
    let rpc = hit.map(|h| h.rpc);
    if let Some(hit) = hit {
        let route = &snapshot.routes.routes()[hit.route];
        snapshot
            .metrics
            .route(&snapshot.route_stats[hit.route], route)
            .record(response.status(), started.elapsed());
    }
    tracing::debug!(
        method = %parts.method,
        path = %parts.uri.path(),
        rpc,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "Request"
    );
    response
}

/// Tells the request's span (when it records) how its call ended so far:
/// a stream's own end may follow.
fn note_end(snapshot: &Snapshot, parts: &Parts, code: tonic::Code) {
    if let Some(notes) = SpanNotes::of(snapshot, &parts.extensions) {
        notes.ended(code as i32);
    }
}

/// A matched REST call, ready to go upstream.
pub(crate) struct Matched<'a> {
    pub(crate) snapshot: &'a Arc<Snapshot>,
    pub(crate) parts: &'a Parts,
    pub(crate) route: &'a Route,
    pub(crate) route_id: usize,
    pub(crate) upstream: &'a Upstream,
    pub(crate) path: &'a str,
    pub(crate) found: &'a Found,
    pub(crate) metadata: MetadataMap,
}

impl Matched<'_> {
    pub(crate) fn raw_request(&self, body: Bytes) -> RawRequest<'_> {
        RawRequest {
            path: self.path,
            found: self.found,
            query: self.parts.uri.query(),
            content_type: self
                .parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            body,
        }
    }
}

/// The route a request matched: its index and its method's name.
#[derive(Clone, Copy)]
struct Hit<'s> {
    route: usize,
    rpc: &'s str,
}

type Failure<'s> = (GatewayError, Option<Hit<'s>>);

async fn call<'s>(
    snapshot: &'s Arc<Snapshot>,
    parts: &Parts,
    body: Body,
) -> Result<(Response<Body>, Option<Hit<'s>>), Failure<'s>> {
    super::check_header_block(&snapshot.limits, &parts.headers).map_err(|err| (err, None))?;
    let (route, normalized, found) = match route(snapshot, parts) {
        Ok(matched) => matched,
        // OPTIONS on a path that exists: which methods it takes.
        Err(GatewayError::MethodNotAllowed { allow, .. }) if parts.method == Method::OPTIONS => {
            return Ok((options_response(&allow), None));
        }
        Err(err) => return Err((err, None)),
    };
    let rpc = &*route.rpc.name;
    let hit = Hit {
        route: found.route,
        rpc,
    };
    if let Some(notes) = SpanNotes::of(snapshot, &parts.extensions) {
        notes.matched(found.route);
    }
    let fail = |err: GatewayError| (err, Some(hit));
    snapshot
        .rate_limits
        .check(&route.rpc.rate_limits, &parts.headers, &parts.extensions)
        .map_err(fail)?;
    let admitted =
        Auth::route(snapshot.auth.as_ref(), found.route, &parts.headers).map_err(fail)?;
    let policy = parts.extensions.get::<GroupPolicy>();
    let upstream = snapshot.upstream_of(&route.rpc, policy).ok_or_else(|| {
        fail(GatewayError::NoUpstream(
            rpc.split('/').next().unwrap_or(rpc).to_owned(),
        ))
    })?;
    if route.request.takes_body() {
        check_encoding(parts, route.rpc.kind).map_err(fail)?;
    }
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let mut metadata = metadata::to_metadata(
        &parts.headers,
        client,
        parts.uri.authority().map(|a| a.as_str()),
        &snapshot.headers,
    )
    .map_err(|e| fail(e.into()))?;
    admitted.apply_metadata(&mut metadata);
    let matched = Matched {
        snapshot,
        parts,
        route,
        route_id: found.route,
        upstream,
        path: &normalized,
        found: &found,
        metadata,
    };
    let response = match route.rpc.kind {
        RpcKind::Unary => unary(matched, body).await,
        RpcKind::ServerStreaming => streaming::server_stream(matched, body).await,
        RpcKind::ClientStreaming | RpcKind::Bidi => streaming::request_stream(matched, body).await,
    };
    response.map(|r| (r, Some(hit))).map_err(fail)
}

/// A `Content-Encoding` the gateway does not decode is a 415 before the
/// body is read; so is any coding on a request stream (see `coding`).
fn check_encoding(parts: &Parts, kind: RpcKind) -> Result<(), GatewayError> {
    let coding = Coding::of(&parts.headers)?;
    let streamed = matches!(kind, RpcKind::ClientStreaming | RpcKind::Bidi);
    if streamed && coding != Coding::Identity {
        return Err(GatewayError::CompressedStream(
            parts
                .headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned(),
        ));
    }
    Ok(())
}

/// A body declared as something other than JSON on a JSON route, or
/// declared with a malformed type: 415. `google.api.HttpBody` routes take
/// any type, as sent.
pub(crate) fn check_media_type(parts: &Parts, route: &Route) -> Result<(), GatewayError> {
    if route.request.takes_raw_body() {
        return Ok(());
    }
    let media = body::media_type(&parts.headers)?.unwrap_or_default();
    if !body::is_json(media) {
        return Err(GatewayError::UnsupportedMediaType(media.to_owned()));
    }
    Ok(())
}

/// One request message, one response message.
async fn unary(call: Matched<'_>, body: Body) -> Result<Response<Body>, GatewayError> {
    let (request, _share) = encoded_request(&call, body).await?;
    let Matched {
        snapshot,
        parts,
        route,
        upstream,
        metadata,
        ..
    } = call;
    let deadline = deadline(
        &parts.headers,
        Some(snapshot.unary_timeout_of(&route.rpc, parts.extensions.get())),
    )?;
    let reply = upstream
        .unary(Call {
            path: route.rpc.path.clone(),
            message: request,
            metadata,
            timeout: deadline.timeout,
            client_deadline: deadline.client,
            hints: upstream.hints(&parts.headers),
            idempotent: matches!(parts.method, http::Method::GET | http::Method::HEAD)
                || route.rpc.idempotent,
        })
        .await
        .map_err(|err| GatewayError::from_call(err, deadline.client))?;
    message_response(snapshot, parts, route, reply)
}

/// Reads the body (when the route takes one), maps the request onto the
/// request message and encodes it. The body and the decoded message are
/// gone when this returns; the encoded message keeps its size in the body
/// budget until the returned share is dropped.
pub(crate) async fn encoded_request(
    call: &Matched<'_>,
    body: Body,
) -> Result<(Bytes, body::Share), GatewayError> {
    let Matched {
        snapshot,
        parts,
        route,
        ..
    } = call;
    let (bytes, mut share) = if route.request.takes_body() {
        // A declared body of a type the route refuses is refused before
        // it is read: no `100 Continue` asks the client to send it. A
        // client waiting for that has a body to send, whatever its
        // length says.
        let headers = &parts.headers;
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|len| len.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|len| len > 0)
            || headers
                .get(http::header::EXPECT)
                .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared {
            check_media_type(parts, route)?;
        }
        let read = body::read(
            body,
            &parts.headers,
            snapshot.limits.max_body_bytes,
            &snapshot.body_budget,
        );
        let read = tokio::time::timeout(snapshot.body_timeout, read)
            .await
            .map_err(|_| GatewayError::RequestTimeout(snapshot.body_timeout))??;
        // An empty body with a stray type is still an empty message.
        if !declared && !read.bytes.is_empty() {
            check_media_type(parts, route)?;
        }
        (read.bytes, Some(read.share))
    } else {
        (Bytes::new(), None)
    };
    let encoded = route
        .request
        .encode(call.raw_request(bytes), &snapshot.codec)?;
    // Bodiless requests are bounded by the path and query limits and are
    // not counted.
    let share = match share.as_mut() {
        Some(share) => {
            share.resize(encoded.len(), &snapshot.body_budget)?;
            std::mem::take(share)
        }
        None => body::Share::default(),
    };
    Ok((encoded, share))
}

/// The HTTP response for one response message: JSON (or raw bytes), the
/// backend's headers as `Grpc-Metadata-*` and its trailers as
/// `Grpc-Trailer-*` (HTTP trailers when the client takes them).
pub(crate) fn message_response(
    snapshot: &Snapshot,
    parts: &Parts,
    route: &Route,
    reply: Reply,
) -> Result<Response<Body>, GatewayError> {
    let encoded = route.response.encode(reply.message, &snapshot.codec)?;
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(header::CONTENT_TYPE, encoded.content_type);
    metadata::to_headers(&reply.headers, "grpc-metadata-", &mut headers);
    let mut trailers = HeaderMap::new();
    metadata::to_headers(&reply.trailers, "grpc-trailer-", &mut trailers);
    let mut response = if !trailers.is_empty() && wants_trailers(&parts.headers) {
        let names: Vec<&str> = trailers.keys().map(HeaderName::as_str).collect();
        if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
            headers.insert(header::TRAILER, value);
        }
        Response::new(Body::new(body::WithTrailers::new(encoded.body, trailers)))
    } else {
        headers.extend(trailers);
        Response::new(Body::from(encoded.body))
    };
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Normalises the path and finds the route (404, 405, 414 or 400 here).
fn route<'s, 'p>(
    snapshot: &'s Snapshot,
    parts: &'p Parts,
) -> Result<(&'s Route, Cow<'p, str>, Found), GatewayError> {
    let raw = parts.uri.path();
    if raw.len() > snapshot.limits.max_path_bytes {
        return Err(GatewayError::UriTooLong(snapshot.limits.max_path_bytes));
    }
    // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7):
    // the methods its routes take.
    if parts.method == Method::OPTIONS && raw == "*" {
        return Err(GatewayError::MethodNotAllowed {
            method: Method::OPTIONS,
            path: raw.to_owned(),
            allow: with_head(snapshot.routes.methods()),
        });
    }
    let normalized = path::normalize(raw).map_err(RequestError::from)?;
    let result = snapshot.routes.find(&parts.method, &normalized);
    // CONNECT asks for a tunnel, which the gateway does not make.
    if result.is_err()
        && (!snapshot.routes.recognizes(&parts.method) || parts.method == Method::CONNECT)
    {
        return Err(GatewayError::UnknownMethod(parts.method.clone()));
    }
    match result {
        Ok((route, found)) => Ok((route, normalized, found)),
        Err(Miss::NotFound) if !snapshot.waiting_for.is_empty() => Err(GatewayError::NotFoundYet {
            method: parts.method.clone(),
            path: raw.to_owned(),
            waiting: snapshot.waiting_for.clone(),
        }),
        Err(Miss::NotFound) => Err(match served_elsewhere(snapshot, &parts.method, raw) {
            Some((rpc, served)) => GatewayError::ServedElsewhere {
                method: parts.method.clone(),
                path: raw.to_owned(),
                rpc,
                served,
            },
            None => GatewayError::NotFound {
                method: parts.method.clone(),
                path: raw.to_owned(),
            },
        }),
        Err(Miss::MethodNotAllowed(allow)) => Err(GatewayError::MethodNotAllowed {
            method: parts.method.clone(),
            path: raw.to_owned(),
            allow,
        }),
    }
}

/// For a path that names an annotated method (`/package.Service/Method`,
/// tried as gRPC or as the fallback route), that method and where it is
/// served (by a route of the same HTTP method when it has one). Looked up
/// only for a 404.
fn served_elsewhere(snapshot: &Snapshot, method: &Method, path: &str) -> Option<(String, String)> {
    let name = path.strip_prefix('/')?;
    let (service, rpc) = name.split_once('/')?;
    if service.is_empty() || rpc.is_empty() || rpc.contains('/') {
        return None;
    }
    // Routes a proxied prefix hides are never reached: not named.
    let routes = snapshot.routes.routes();
    let of_method = routes.iter().filter(|route| {
        &*route.rpc.name == name
            && snapshot
                .groups
                .hiding(&route.template.to_string())
                .is_none()
    });
    let route = of_method
        .clone()
        .find(|route| route.method == *method)
        .or_else(|| of_method.clone().next())?;
    Some((
        name.to_owned(),
        format!("{} {}", route.method, route.template),
    ))
}

/// `methods`, with HEAD where GET is (every GET route answers HEAD).
fn with_head(methods: &[Method]) -> Vec<Method> {
    let mut all = methods.to_vec();
    if all.contains(&Method::GET) && !all.contains(&Method::HEAD) {
        all.push(Method::HEAD);
    }
    all
}

/// `204 No Content` with `Allow` (OPTIONS included).
fn options_response(allow: &[Method]) -> Response<Body> {
    let mut list: Vec<&str> = allow.iter().map(Method::as_str).collect();
    if !list.contains(&"OPTIONS") {
        list.push("OPTIONS");
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A call's time limit, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// The smaller of the client's and the gateway's.
    pub(crate) timeout: Option<Duration>,
    /// Whether it is the client's (see `Call::client_deadline`).
    pub(crate) client: bool,
}

impl Deadline {
    /// The smaller of the gateway's `own` and the `client`'s; a tie is
    /// the gateway's.
    pub(crate) fn of(own: Option<Duration>, client: Option<Duration>) -> Deadline {
        match (own, client) {
            (Some(own), Some(client)) if own <= client => Deadline {
                timeout: Some(own),
                client: false,
            },
            (_, Some(client)) => Deadline {
                timeout: Some(client),
                client: true,
            },
            (own, None) => Deadline {
                timeout: own,
                client: false,
            },
        }
    }
}

/// The smaller of the client's `grpc-timeout` and the route's timeout.
pub(crate) fn deadline(
    headers: &HeaderMap,
    route: Option<Duration>,
) -> Result<Deadline, GatewayError> {
    let client = headers
        .get("grpc-timeout")
        .map(|value| {
            metadata::parse_grpc_timeout(value).ok_or_else(|| {
                GatewayError::BadRequest(RequestError::Header {
                    name: "grpc-timeout".to_owned(),
                    reason: metadata::NOT_A_GRPC_TIMEOUT.to_owned(),
                })
            })
        })
        .transpose()?;
    Ok(Deadline::of(route, client))
}

/// Whether the client accepts HTTP trailers (`TE: trailers`).
pub(crate) fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}
