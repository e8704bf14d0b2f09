//! The Connect protocol (connect-es, connect-go clients), translated to
//! gRPC toward the backend.
//!
//! A request is Connect when it carries `Connect-Protocol-Version` or an
//! `application/connect+*` type — even on a `/package.Service/Method` path,
//! where other JSON POSTs are the REST fallback route.
//!
//! - Unary: `application/json` or `application/proto` in and out; errors
//!   are `{"code": "not_found", "message", "details"}` with the HTTP status
//!   of the code; backend headers come back as they are, trailers as
//!   `Trailer-<k>`; `Connect-Timeout-Ms` sets the deadline.
//! - Server streaming: `application/connect+json` or `+proto`; one
//!   enveloped request message in; the backend's headers as response
//!   headers, enveloped messages out, then an end-of-stream envelope
//!   (`{}` or `{"error": ...}`, with the backend's trailers as
//!   `"metadata"`); HTTP 200 always.
//! - Unary GET (the spec's form for methods marked
//!   `idempotency_level = NO_SIDE_EFFECTS`): the message in the query
//!   (`message`, `encoding`, optional `base64=1` and `compression`), the
//!   answer as for POST. Other methods answer 405 with `Allow: POST`.
//! - Client and bidirectional streaming answer `unimplemented`.
//! - `Connect-Protocol-Version` other than `1` is `invalid_argument`.
//! - Error statuses follow Connect's code → HTTP table (which differs from
//!   REST's in places: `resource_exhausted` is 429).
//! - `grpc.health.v1.Health/Check` is the gateway's own health, as over
//!   gRPC; the other own services (`Watch`, reflection) stream and are
//!   served over gRPC and gRPC-Web only (`unimplemented`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use tokio::time::Instant;

use crate::auth::Auth;
use crate::error::GatewayError;
use crate::route::{Rpc, RpcKind};
use crate::snapshot::Snapshot;
use crate::transcode::{self, RequestError, json_number, response};
use crate::upstream::codec::Outgoing;
use crate::upstream::{Call, Upstream, metadata};

use super::body;
use super::coding::Coding;
use super::rest::{ClientAddr, Deadline};
use super::stream::{Framing, Start, StreamBody, StreamSetup, Streamed};

mod get;
mod own_services;

/// Whether a request speaks Connect: a POST with `Connect-Protocol-Version`
/// or an `application/connect+*` type, or a GET with
/// `Connect-Protocol-Version` or the spec's `connect` query parameter.
pub(crate) fn is_connect(request: &Request<Body>) -> bool {
    let headers = request.headers();
    let versioned = headers.contains_key("connect-protocol-version");
    match *request.method() {
        http::Method::POST => {
            versioned
                || headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/connect+"))
        }
        http::Method::GET => versioned || query(request.uri()).any(|(key, _)| key == "connect"),
        _ => false,
    }
}

/// The query's parameters, form-decoded: names as text, values as bytes
/// (a binary message may be sent unencoded).
fn query(uri: &http::Uri) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let decode = |text: &str| -> Vec<u8> {
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).collect()
    };
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                String::from_utf8_lossy(&decode(key)).into_owned(),
                decode(value),
            )
        })
}

/// The one protocol version this gateway speaks.
fn check_version(headers: &HeaderMap) -> Result<(), GatewayError> {
    match headers.get("connect-protocol-version") {
        None => Ok(()),
        Some(v) if v.as_bytes() == b"1" => Ok(()),
        Some(v) => Err(GatewayError::BadRequest(RequestError::Header {
            name: "connect-protocol-version".to_owned(),
            reason: format!(
                "unsupported Connect protocol version `{}`: this gateway speaks version 1",
                shortened(&String::from_utf8_lossy(v.as_bytes()))
            ),
        })),
    }
}

/// `text` cut to 32 characters: client-chosen tokens echoed in messages.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(32) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// The message encoding of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Proto,
}

/// Serves a Connect request, logging it at debug as the REST face does.
pub(crate) async fn handle(snapshot: Arc<Snapshot>, request: Request<Body>) -> Response<Body> {
    let started = std::time::Instant::now();
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = respond(snapshot, request).await;
    tracing::debug!(
        %method,
        path = %uri.path(),
        protocol = "connect",
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "Request"
    );
    response
}

async fn respond(snapshot: Arc<Snapshot>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    if let Err(err) = super::check_header_block(&snapshot.limits, &parts.headers) {
        return error_response(&err);
    }
    // Other calls are checked where their method is found (`prepare`).
    if super::own::is_own(parts.uri.path())
        && let Err(err) = Auth::path(snapshot.auth.as_ref(), parts.uri.path(), &parts.headers)
    {
        return error_response(&err);
    }
    if parts.method == http::Method::GET {
        return get::get(&snapshot, &parts)
            .await
            .unwrap_or_else(|err| error_response(&err));
    }
    let media = match body::media_type(&parts.headers) {
        Ok(media) => media.unwrap_or_default().to_ascii_lowercase(),
        Err(GatewayError::UnsupportedMediaType(sent)) => return unsupported_media(&sent),
        Err(err) => return error_response(&err),
    };
    let (streaming, encoding) = match media.as_str() {
        "application/json" => (false, Encoding::Json),
        "application/proto" => (false, Encoding::Proto),
        "application/connect+json" => (true, Encoding::Json),
        "application/connect+proto" => (true, Encoding::Proto),
        other => return unsupported_media(other),
    };
    let result = match check_version(&parts.headers) {
        Err(err) => Err(err),
        Ok(()) if super::own::is_own(parts.uri.path()) => {
            own_services::own(&snapshot, &parts, body, streaming, encoding).await
        }
        Ok(()) => match prepare(&snapshot, &parts) {
            Ok((rpc, upstream, metadata)) if streaming => {
                server_stream(&snapshot, &parts, body, rpc, upstream, metadata, encoding).await
            }
            Ok((rpc, upstream, metadata)) => {
                let read = read_body(&snapshot, &parts, body).await;
                match read {
                    Ok(read) => {
                        unary(&snapshot, &parts, read, rpc, upstream, metadata, encoding).await
                    }
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        },
    };
    result.unwrap_or_else(|err| {
        if streaming {
            // Streams answer 200 and put the error in the last envelope:
            // its head says nothing, so the end is counted.
            snapshot
                .metrics
                .record_stream_end(crate::metrics::Face::Connect, err.status().1);
            stream_error_response(&err, encoding)
        } else {
            error_response(&err)
        }
    })
}

fn prepare<'s>(
    snapshot: &'s Snapshot,
    parts: &Parts,
) -> Result<(&'s Arc<Rpc>, Upstream, tonic::metadata::MetadataMap), GatewayError> {
    let path = parts.uri.path();
    let rpc = snapshot
        .routes
        .rpc(path)
        .ok_or_else(|| GatewayError::NotFound {
            method: parts.method.clone(),
            path: path.to_owned(),
        })?;
    // As on every face: the rate limits first, so that a flood is
    // refused without verifying its tokens.
    snapshot
        .rate_limits
        .check(&rpc.rate_limits, &parts.headers, &parts.extensions)?;
    let admitted = Auth::path(snapshot.auth.as_ref(), path, &parts.headers)?;
    let upstream = snapshot
        .upstream_of(rpc, parts.extensions.get())
        .cloned()
        .ok_or_else(|| GatewayError::NoUpstream(rpc.name.to_string()))?;
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let mut metadata = metadata::rpc_metadata(
        &parts.headers,
        client,
        parts.uri.authority().map(|a| a.as_str()),
        &snapshot.headers,
    )?;
    admitted.apply_metadata(&mut metadata);
    Ok((rpc, upstream, metadata))
}

/// `Connect-Timeout-Ms`, if any, bounded by the method's own timeout.
fn deadline(headers: &HeaderMap, own: Option<Duration>) -> Result<Deadline, GatewayError> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(Deadline::of(own, None));
    };
    let ms: u64 = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            GatewayError::BadRequest(RequestError::Header {
                name: "connect-timeout-ms".to_owned(),
                reason: "not a number of milliseconds (at most 10 digits)".to_owned(),
            })
        })?;
    Ok(Deadline::of(own, Some(Duration::from_millis(ms))))
}

/// The request message as protobuf bytes.
fn request_message(
    snapshot: &Snapshot,
    rpc: &Rpc,
    payload: &[u8],
    encoding: Encoding,
) -> Result<Bytes, GatewayError> {
    Ok(match encoding {
        Encoding::Proto => Bytes::copy_from_slice(payload),
        Encoding::Json => {
            let message =
                transcode::decode_json(&rpc.descriptor.input(), payload, &snapshot.codec)?;
            response::to_bytes(&message)?
        }
    })
}

/// The encoded request `message` takes the place of the body `read` in
/// the body budget.
fn in_place_of(
    read: body::ReadBody,
    message: Bytes,
    snapshot: &Snapshot,
) -> Result<(Bytes, body::Share), GatewayError> {
    let mut share = read.share;
    share.resize(message.len(), &snapshot.body_budget)?;
    Ok((message, share))
}

async fn read_body(
    snapshot: &Snapshot,
    parts: &Parts,
    body: Body,
) -> Result<body::ReadBody, GatewayError> {
    let read = body::read(
        body,
        &parts.headers,
        snapshot.limits.max_body_bytes,
        &snapshot.body_budget,
    );
    tokio::time::timeout(snapshot.body_timeout, read)
        .await
        .map_err(|_| GatewayError::RequestTimeout(snapshot.body_timeout))?
}

async fn unary(
    snapshot: &Snapshot,
    parts: &Parts,
    read: body::ReadBody,
    rpc: &Rpc,
    upstream: Upstream,
    metadata: tonic::metadata::MetadataMap,
    encoding: Encoding,
) -> Result<Response<Body>, GatewayError> {
    if rpc.kind != RpcKind::Unary {
        return Err(not_unary(rpc));
    }
    let (message, _share) = {
        let message = request_message(snapshot, rpc, &read.bytes, encoding)?;
        in_place_of(read, message, snapshot)?
    };
    let deadline = deadline(
        &parts.headers,
        Some(snapshot.unary_timeout_of(rpc, parts.extensions.get())),
    )?;
    let reply = upstream
        .unary(Call {
            path: rpc.path.clone(),
            message,
            metadata,
            timeout: deadline.timeout,
            client_deadline: deadline.client,
            hints: upstream.hints(&parts.headers),
            idempotent: parts.method == http::Method::GET || rpc.idempotent,
        })
        .await
        .map_err(|err| GatewayError::from_call(err, deadline.client))?;
    let (content_type, body) = match encoding {
        Encoding::Proto => (HeaderValue::from_static("application/proto"), reply.message),
        Encoding::Json => {
            let encoded = rpc.whole_response.encode(reply.message, &snapshot.codec)?;
            (HeaderValue::from_static("application/json"), encoded.body)
        }
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    metadata::to_headers(&reply.headers, "", headers);
    metadata::to_headers(&reply.trailers, "trailer-", headers);
    Ok(response)
}

fn not_unary(rpc: &Rpc) -> GatewayError {
    GatewayError::Upstream(
        tonic::Status::unimplemented(format!(
            "{} is a streaming method: call it with application/connect+json or +proto",
            rpc.name
        )),
        None,
    )
}

async fn server_stream(
    snapshot: &Arc<Snapshot>,
    parts: &Parts,
    body: Body,
    rpc: &Rpc,
    upstream: Upstream,
    metadata: tonic::metadata::MetadataMap,
    encoding: Encoding,
) -> Result<Response<Body>, GatewayError> {
    match rpc.kind {
        RpcKind::ServerStreaming => {}
        RpcKind::Unary => {
            return Err(GatewayError::Upstream(
                tonic::Status::unimplemented(format!(
                    "{} is a unary method: call it with application/json or application/proto",
                    rpc.name
                )),
                None,
            ));
        }
        RpcKind::ClientStreaming | RpcKind::Bidi => {
            // Limitation: client and bidirectional streams are not
            // offered over Connect; use gRPC, gRPC-Web or WebSocket.
            return Err(GatewayError::Upstream(
                tonic::Status::unimplemented(format!(
                    "{} streams requests, which this gateway serves over gRPC, gRPC-Web and WebSocket, not Connect",
                    rpc.name
                )),
                None,
            ));
        }
    }
    let (message, share) = {
        let read = read_body(snapshot, parts, body).await?;
        let payload =
            unenvelope(&read.bytes, &parts.headers, snapshot.limits.max_body_bytes).await?;
        let message = request_message(snapshot, rpc, &payload, encoding)?;
        in_place_of(read, message, snapshot)?
    };
    let timeout = deadline(&parts.headers, rpc.stream_timeout)?.timeout;
    let deadline = timeout.map(|t| (t, Instant::now() + t));
    let hints = upstream.hints(&parts.headers);
    // Opened before the response head goes out, so that it carries the
    // backend's headers (Connect's place for them); a failure to open is
    // answered as any stream's, with an end-of-stream error.
    let opened = upstream
        .open(
            rpc.path.clone(),
            metadata,
            timeout,
            hints,
            tokio_stream::once(Outgoing::Message(message)),
        )
        .await?;
    // The request message was counted until the backend had it.
    drop(share);
    let framing = match encoding {
        Encoding::Json => Framing::ConnectJson,
        Encoding::Proto => Framing::ConnectProto,
    };
    let body = StreamBody::new(
        Start::Open(Box::new(opened.stream), None),
        StreamSetup {
            snapshot: Arc::clone(snapshot),
            plan: rpc.whole_response.clone(),
            upstream,
            framing,
            deadline,
            keepalive: None,
            abort: None,
            trailers: false,
            notes: crate::trace::SpanNotes::of(snapshot, &parts.extensions),
        },
    );
    let mut response = Response::new(Body::new(body));
    metadata::to_headers(&opened.headers, "", response.headers_mut());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, framing.content_type(None));
    response.extensions_mut().insert(Streamed);
    Ok(response)
}

/// The payload of the one envelope of a server-streaming request;
/// compressed payloads are decoded (within the body limit) in any coding
/// the gateway decodes for `Content-Encoding`: `Connect-Content-Encoding`
/// gzip, br or zstd.
async fn unenvelope(
    body: &Bytes,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let bad = |reason: &str| GatewayError::BadRequest(RequestError::Envelope(reason.to_owned()));
    let mut buf = &body[..];
    if buf.len() < 5 {
        return Err(bad("a Connect stream request is one enveloped message"));
    }
    let flags = buf.get_u8();
    // A request envelope has one flag, compression; end-of-stream (0x02)
    // is for responses, the rest reserved. Checked first: a body that is
    // no envelope at all (bare JSON) fails here, not on a "length" made
    // of its first characters.
    if flags & !0x01 != 0 {
        return Err(bad(&format!(
            "the envelope's flags {flags:#04x} are not a request's (only 0x01, compressed); is the body enveloped?"
        )));
    }
    let length = buf.get_u32() as usize;
    if length > limit {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    if buf.len() != length {
        return Err(bad("the envelope's length does not match the body"));
    }
    // The coding is checked whether or not this message uses it, as on a
    // unary call: an unknown one is refused, not ignored.
    let coding = match headers.get("connect-content-encoding") {
        None => None,
        Some(value) => {
            let name = value.to_str().unwrap_or("?");
            match name.to_ascii_lowercase().as_str() {
                "identity" => None,
                "gzip" => Some(Coding::Gzip),
                "br" => Some(Coding::Brotli),
                "zstd" => Some(Coding::Zstd),
                _ => {
                    return Err(GatewayError::UnsupportedEncoding {
                        header: "Connect-Content-Encoding",
                        coding: shortened(name),
                    });
                }
            }
        }
    };
    let payload = body.slice(5..);
    if flags & 0x01 == 0 {
        return Ok(payload);
    }
    let Some(coding) = coding else {
        return Err(bad(
            "the message is flagged compressed but no Connect-Content-Encoding names its coding",
        ));
    };
    coding.decode(payload, limit).await
}

/// A unary error in Connect's shape, with the HTTP status of its code.
/// The content types a Connect POST may have, as `Accept-Post` lists them.
const ACCEPT_POST: &str =
    "application/json, application/proto, application/connect+json, application/connect+proto";

/// A POST whose content type Connect does not define: 415 with
/// `Accept-Post` (RFC 9110's status for it, and connect-go's answer), and a
/// Connect error body that says what to send.
fn unsupported_media(sent: &str) -> Response<Body> {
    let json = serde_json::json!({
        "code": "invalid_argument",
        "message": format!(
            "unsupported content type `{}`: Connect takes {ACCEPT_POST}",
            shortened(sent)
        ),
    });
    let mut response = Response::new(Body::from(json.to_string()));
    *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static(ACCEPT_POST),
    );
    response
}

fn error_response(err: &GatewayError) -> Response<Body> {
    let json = err.connect_json();
    let status = http_status(json["code"].as_str().unwrap_or_default());
    let body = json_number::to_vec(&json).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let GatewayError::RateLimited { retry_after, .. } = err {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    if let GatewayError::Auth(why) = err {
        let (name, value) = match why.challenge() {
            Some(challenge) => (header::WWW_AUTHENTICATE, challenge),
            None => (header::RETRY_AFTER, HeaderValue::from_static("1")),
        };
        response.headers_mut().insert(name, value);
    }
    if let GatewayError::Upstream(status, headers) = err {
        // The backend's response headers as on success; its own
        // (content-type, date, grpc-*) are not metadata to pass on.
        if let Some(headers) = headers {
            metadata::to_headers(headers, "", response.headers_mut());
        }
        metadata::to_headers(status.metadata(), "trailer-", response.headers_mut());
    }
    response
}

/// A stream that fails before it starts: 200 and one end-of-stream
/// envelope with the error.
fn stream_error_response(err: &GatewayError, encoding: Encoding) -> Response<Body> {
    let framing = match encoding {
        Encoding::Json => Framing::ConnectJson,
        Encoding::Proto => Framing::ConnectProto,
    };
    let mut end = serde_json::json!({"error": err.connect_json()});
    if let GatewayError::Upstream(status, _) = err {
        super::stream::add_connect_metadata(&mut end, status.metadata());
    }
    let end = json_number::to_vec(&end).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = bytes::BytesMut::new();
    super::stream::envelope(&mut out, super::stream::END_STREAM, &end);
    let mut response = Response::new(Body::from(out.freeze()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, framing.content_type(None));
    response
}

/// The HTTP status of a Connect error code, as the Connect protocol's
/// table gives it.
fn http_status(code: &str) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        "canceled" => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        "invalid_argument" | "failed_precondition" | "out_of_range" => S::BAD_REQUEST,
        "deadline_exceeded" => S::GATEWAY_TIMEOUT,
        "not_found" => S::NOT_FOUND,
        "already_exists" | "aborted" => S::CONFLICT,
        "permission_denied" => S::FORBIDDEN,
        "resource_exhausted" => S::TOO_MANY_REQUESTS,
        "unimplemented" => S::NOT_IMPLEMENTED,
        "unavailable" => S::SERVICE_UNAVAILABLE,
        "unauthenticated" => S::UNAUTHORIZED,
        _ => S::INTERNAL_SERVER_ERROR,
    }
}
