//! Streaming methods over WebSocket, on the same path as their REST route
//! (the upgrade is a `GET`; a `POST`, `PUT` or `PATCH` streaming route on
//! the path is found too).
//!
//! - Each text (or binary) frame from the client is one JSON request
//!   message; path variables and the query apply to every message.
//! - An empty (or whitespace-only) text frame ends the request stream: the
//!   half-close. RFC 6455 allows no data after a Close frame, so a Close
//!   from the client cancels the call instead.
//! - Each response message is one text frame (the bare message).
//! - The call's end closes the socket: code 1000 when it succeeded; code
//!   4000 + the gRPC code (4005 for NOT_FOUND, ...) when it failed, with
//!   the status message as the reason (cut to the 123 bytes a reason may
//!   hold).
//! - For a server-streaming method the request is the first frame (or the
//!   path and query alone, when the route takes no body).
//! - A message the route does not take — any on a route without a body,
//!   a second on a server-streaming route, one after the half-close —
//!   ends the call with 4003 saying so; it is never dropped unseen.
//! - The client's own mistakes (a frame over `limits.max_body_bytes`:
//!   4008; a frame that is not a valid message: 4003) close the socket
//!   with their own code, never with the upstream failure that cancelling
//!   the call causes. A frame that breaks the WebSocket protocol itself
//!   closes with the protocol's code (RFC 6455 §7.4.1): 1007 for a text
//!   frame that is not UTF-8, 1002 for the rest.
//! - A Close from the client is answered with a Close (RFC 6455 §5.5.1):
//!   its own code echoed, or 1002 for a code that may not be sent (below
//!   1000, 1004 to 1006, 1015, unassigned ones).
//! - A malformed upgrade is answered with the google.rpc.Status JSON of
//!   any other client error; a WebSocket version other than 13 with 426.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts as _;
use axum::extract::ws::rejection::WebSocketUpgradeRejection as Rejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;

use crate::auth::Auth;
use crate::error::GatewayError;
use crate::http_rule::{Found, Miss, path};
use crate::metrics::Face;
use crate::route::{Route, RpcKind};
use crate::snapshot::Snapshot;
use crate::transcode::{RequestError, response};
use crate::upstream::codec::Outgoing;
use crate::upstream::{Upstream, metadata};

use super::rest::ClientAddr;

pub(crate) mod origin;
mod reader;
use reader::{Expect, Reader};

use super::connection::Lease;

/// Whether a request asks to switch to WebSocket: a `GET` whose `Upgrade`
/// lists `websocket`, alone or among other protocols (RFC 9110 §7.8).
pub(crate) fn is_upgrade(request: &Request<Body>) -> bool {
    request.method() == Method::GET && origin::asks_for_websocket(request.headers())
}

/// Upgrades the connection and runs the call on the socket; logs the
/// upgrade request at debug as the REST face logs its requests (and a
/// call that fails after it, with why).
pub(crate) async fn handle(snapshot: Arc<Snapshot>, request: Request<Body>) -> Response<Body> {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = upgrade(snapshot, request).await;
    tracing::debug!(
        %method,
        path = %uri.path(),
        protocol = "websocket",
        status = response.status().as_u16(),
        "Request"
    );
    response
}

async fn upgrade(snapshot: Arc<Snapshot>, request: Request<Body>) -> Response<Body> {
    let (mut parts, _body) = request.into_parts();
    if let Err(err) = super::check_header_block(&snapshot.limits, &parts.headers) {
        return err.into_response(&snapshot.pool, &snapshot.codec);
    }
    let prepared = match prepare(&snapshot, &parts) {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(&snapshot.pool, &snapshot.codec),
    };
    // The upgrade is to WebSocket whatever else the client offered
    // (`Upgrade: h2c, websocket`); the extractor takes only that one.
    parts
        .headers
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return refuse(&snapshot, &parts.headers, &rejection),
    };
    // A frame is bounded as a whole message is, so one whose header
    // declares too much is refused before its payload is read.
    let limit = snapshot.limits.max_body_bytes;
    let lease = parts.extensions.remove::<Lease>();
    upgrade
        .max_frame_size(limit)
        .max_message_size(limit)
        .on_upgrade(move |socket| session(socket, snapshot, prepared, lease))
}

/// The answer to a malformed upgrade: the google.rpc.Status JSON of every
/// other client error, naming the header at fault. A version other than
/// 13 is 426 Upgrade Required (RFC 6455 §4.4); every refusal about the
/// version says which one the gateway speaks.
fn refuse(snapshot: &Snapshot, headers: &HeaderMap, rejection: &Rejection) -> Response<Body> {
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    let (name, reason, status) = match rejection {
        Rejection::InvalidWebSocketVersionHeader(_) => match version {
            Some(given) => (
                header::SEC_WEBSOCKET_VERSION,
                format!(
                    "WebSocket version `{}` is not supported; this gateway speaks version 13",
                    String::from_utf8_lossy(given.as_bytes())
                ),
                StatusCode::UPGRADE_REQUIRED,
            ),
            None => (
                header::SEC_WEBSOCKET_VERSION,
                "missing; a WebSocket upgrade names version 13".to_owned(),
                StatusCode::BAD_REQUEST,
            ),
        },
        Rejection::WebSocketKeyHeaderMissing(_) => (
            header::SEC_WEBSOCKET_KEY,
            "missing; a WebSocket upgrade carries a key (RFC 6455 §4.1)".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        Rejection::InvalidConnectionHeader(_) => (
            header::CONNECTION,
            "a WebSocket upgrade has `Connection: Upgrade`".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        Rejection::ConnectionNotUpgradable(_) => (
            header::UPGRADE,
            "this connection cannot be upgraded; WebSocket needs HTTP/1.1".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        other => (header::UPGRADE, other.body_text(), StatusCode::BAD_REQUEST),
    };
    let versioned = name == header::SEC_WEBSOCKET_VERSION;
    let err = GatewayError::BadRequest(RequestError::Header {
        name: name.as_str().to_owned(),
        reason,
    });
    let mut response = err.into_response(&snapshot.pool, &snapshot.codec);
    *response.status_mut() = status;
    if versioned {
        let headers = response.headers_mut();
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        if status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
    }
    response
}

/// What the session needs from the HTTP request.
struct Prepared {
    route_id: usize,
    found: Found,
    path: String,
    query: Option<String>,
    metadata: MetadataMap,
    upstream: Upstream,
    hints: crate::upstream::Hints,
    /// The client's `grpc-timeout` and the route's stream timeout.
    timeout: Option<Duration>,
    /// The request, on a route that takes it from the path and query.
    request: Option<bytes::Bytes>,
}

fn prepare(snapshot: &Snapshot, parts: &http::request::Parts) -> Result<Prepared, GatewayError> {
    let raw = parts.uri.path();
    let normalized = path::normalize(raw).map_err(RequestError::from)?;
    let mut allowed = Vec::new();
    let mut found = None;
    for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH] {
        match snapshot.routes.find(&method, &normalized) {
            Ok((route, matched)) if route.rpc.kind != RpcKind::Unary => {
                found = Some((route, matched));
                break;
            }
            Ok((route, _)) => allowed.push(route.method.clone()),
            Err(Miss::MethodNotAllowed(methods)) => allowed.extend(methods),
            Err(Miss::NotFound) => {}
        }
    }
    let Some((route, found)) = found else {
        return Err(if allowed.is_empty() {
            GatewayError::NotFound {
                method: Method::GET,
                path: raw.to_owned(),
            }
        } else {
            GatewayError::BadRequest(RequestError::Header {
                name: "upgrade".to_owned(),
                reason: "WebSocket is offered on streaming methods only; this path has none"
                    .to_owned(),
            })
        });
    };
    if let Some(notes) = crate::trace::SpanNotes::of(snapshot, &parts.extensions) {
        notes.matched(found.route);
    }
    // Counted once, at the upgrade.
    snapshot
        .rate_limits
        .check(&route.rpc.rate_limits, &parts.headers, &parts.extensions)?;
    let admitted = Auth::route(snapshot.auth.as_ref(), found.route, &parts.headers)?;
    let upstream = snapshot
        .upstream_of(&route.rpc, parts.extensions.get())
        .cloned()
        .ok_or_else(|| GatewayError::NoUpstream(route.rpc.name.to_string()))?;
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let mut metadata = metadata::to_metadata(
        &parts.headers,
        client,
        parts.uri.authority().map(|a| a.as_str()),
        &snapshot.headers,
    )?;
    admitted.apply_metadata(&mut metadata);
    let timeout = super::rest::deadline(&parts.headers, route.rpc.stream_timeout)?.timeout;
    // The path and query, read before the upgrade: a bad query is a 400
    // the client can read, not a close after a 101. On a route without a
    // body they are the request.
    let alone = route.request.decode(
        crate::transcode::RawRequest {
            path: &normalized,
            found: &found,
            query: parts.uri.query(),
            content_type: "application/json",
            body: bytes::Bytes::new(),
        },
        &snapshot.codec,
    )?;
    let request = match Expect::of(route) {
        Expect::Nothing => Some(response::to_bytes(&alone)?),
        Expect::One | Expect::Stream => None,
    };
    Ok(Prepared {
        timeout,
        request,
        route_id: found.route,
        found,
        path: normalized.into_owned(),
        query: parts.uri.query().map(str::to_owned),
        metadata,
        hints: upstream.hints(&parts.headers),
        upstream,
    })
}

/// How long a finished session waits for the client's Close (the closing
/// handshake) before it drops the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a call ended without success.
#[derive(Debug)]
enum Fault {
    /// The call failed, or the client's request did: the gateway's error.
    Call(GatewayError),
    /// The client sent a message the route takes none of (INVALID_ARGUMENT).
    Unexpected(&'static str),
    /// The client broke the WebSocket protocol itself: closed with the
    /// protocol's own code (RFC 6455 §7.4.1), not a gRPC one.
    Protocol { code: u16, reason: String },
    /// The gateway is shutting down and the grace period is over: 1001.
    GoingAway,
    /// The client closed the socket or went away before the call ended:
    /// nobody to tell (the call is cancelled).
    Gone,
}

impl Fault {
    /// The gRPC status the call ended with, for the metrics.
    fn code(&self) -> tonic::Code {
        match self {
            Fault::Call(err) => err.status().1,
            Fault::Unexpected(_) | Fault::Protocol { .. } => tonic::Code::InvalidArgument,
            Fault::GoingAway => tonic::Code::Unavailable,
            Fault::Gone => tonic::Code::Cancelled,
        }
    }
}

impl From<GatewayError> for Fault {
    fn from(err: GatewayError) -> Self {
        Fault::Call(err)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Call(err) => err.fmt(f),
            Fault::Unexpected(reason) => f.write_str(reason),
            Fault::Protocol { reason, .. } => f.write_str(reason),
            Fault::GoingAway => f.write_str(GOING_AWAY),
            Fault::Gone => f.write_str("the client went away"),
        }
    }
}

/// The close frame for a finished call.
fn close_frame(result: Result<(), Fault>) -> CloseFrame {
    let (code, message) = match result {
        // Nobody reads it (a closing client has its own Close echoed).
        Ok(()) | Err(Fault::Gone) => {
            return CloseFrame {
                code: 1000,
                reason: Utf8Bytes::from_static("OK"),
            };
        }
        Err(Fault::Unexpected(reason)) => (tonic::Code::InvalidArgument, reason.to_owned()),
        Err(Fault::Protocol { code, reason }) => {
            return CloseFrame {
                code,
                reason: close_reason(reason),
            };
        }
        Err(Fault::GoingAway) => {
            return CloseFrame {
                code: 1001,
                reason: Utf8Bytes::from_static(GOING_AWAY),
            };
        }
        Err(Fault::Call(err)) => {
            let (_, code) = err.status();
            let message = match &err {
                GatewayError::Upstream(status, _) => status.message().to_owned(),
                other => other.to_string(),
            };
            (code, message)
        }
    };
    CloseFrame {
        code: 4000 + code as u16,
        reason: close_reason(message),
    }
}

/// The reason of a Close for shutdown (RFC 6455 §7.4.1: 1001, "going
/// away").
const GOING_AWAY: &str = "the gateway is shutting down";

/// `message` cut to the 123 bytes a close reason may hold.
fn close_reason(mut message: String) -> Utf8Bytes {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    Utf8Bytes::from(message)
}

/// Runs the call on the socket. The connection's `lease` (its slot under
/// the connection limit) is held to the end; on shutdown the call has the
/// grace period to finish, and is then closed as going away.
async fn session(
    socket: WebSocket,
    snapshot: Arc<Snapshot>,
    prepared: Prepared,
    mut lease: Option<Lease>,
) {
    let route = &snapshot.routes.routes()[prepared.route_id];
    let (mut sink, frames) = socket.split();
    let mut reading = None;
    let call = run(&snapshot, route, &prepared, &mut sink, frames, &mut reading);
    let result = match &mut lease {
        Some(lease) => tokio::select! {
            result = call => result,
            () = lease.going_away() => Err(Fault::GoingAway),
        },
        None => call.await,
    };
    let code = match &result {
        Ok(()) => tonic::Code::Ok,
        Err(fault) => fault.code(),
    };
    snapshot.metrics.record_stream_end(Face::WebSocket, code);
    if let Err(err) = &result
        && !matches!(err, Fault::Gone)
    {
        tracing::debug!(rpc = %route.rpc.name, error = %err, "WebSocket call failed");
    }
    // After the client's own Close, this send fails: nothing to add.
    let _ = sink.send(Message::Close(Some(close_frame(result)))).await;
    // The answer to the client's own Close (its code echoed, or 1002 for
    // a code that may not be sent) is queued by the WebSocket library and
    // goes out only with a flush; without one the client saw the TCP
    // close and no Close frame.
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.close()).await;
    if let Some(mut reading) = reading {
        // The reader ends at the client's Close; a client that never
        // sends one is not waited for long.
        if tokio::time::timeout(CLOSE_WAIT, &mut reading)
            .await
            .is_err()
        {
            reading.abort();
        }
    }
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Frames = futures_util::stream::SplitStream<WebSocket>;

async fn run(
    snapshot: &Arc<Snapshot>,
    route: &Route,
    prepared: &Prepared,
    sink: &mut Sink,
    frames: Frames,
    reading: &mut Option<JoinHandle<()>>,
) -> Result<(), Fault> {
    let codec = &snapshot.codec;
    let (requests, outgoing) = mpsc::channel::<Outgoing>(8);
    let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
    let mut stop = Some(stop_rx);
    let reader = Reader {
        snapshot: Arc::clone(snapshot),
        route_id: prepared.route_id,
        found: prepared.found.clone(),
        path: prepared.path.clone(),
        query: prepared.query.clone(),
    };
    let expect = Expect::of(route);
    let requests = match &prepared.request {
        // The request is the path and query alone; the channel is new,
        // so the message fits.
        Some(message) => {
            let _ = requests.try_send(Outgoing::Message(message.clone()));
            // The request stream ends with it.
            drop(requests);
            None
        }
        None => Some(requests),
    };
    // The reader runs beside the writer: neither side's pace can block the
    // other. It also watches for the client's Close and mistakes on
    // routes that take no messages.
    *reading = Some(tokio::spawn(reader.run(frames, requests, stop_tx, expect)));
    // The whole call runs within the deadline, as a REST stream does.
    let expired = async {
        match prepared.timeout {
            Some(timeout) => {
                tokio::time::sleep(timeout).await;
                Fault::Call(GatewayError::DeadlineExceeded(timeout, None))
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    // `biased`: the reader's verdict is looked at first, so the client's
    // own error wins over the upstream failure its cancel causes.
    let opened = tokio::select! {
        biased;
        verdict = stopped(&mut stop) => return verdict.into_result(),
        fault = &mut expired => return Err(fault),
        opened = prepared.upstream.open(
            route.rpc.path.clone(),
            prepared.metadata.clone(),
            prepared.timeout,
            prepared.hints,
            ReceiverStream::new(outgoing),
        ) => match opened {
            Ok(opened) => opened,
            Err(err) => return failed(&mut stop, GatewayError::from(err)),
        },
    };
    let mut stream = opened.stream;
    loop {
        let next = tokio::select! {
            biased;
            verdict = stopped(&mut stop) => return verdict.into_result(),
            fault = &mut expired => return Err(fault),
            next = stream.message() => next,
        };
        match next {
            Ok(Some(message)) => {
                let encoded = route
                    .response
                    .encode(message, codec)
                    .map_err(GatewayError::from)?;
                let frame = if route.response.is_raw() {
                    Message::Binary(encoded.body)
                } else {
                    Message::text(String::from_utf8_lossy(&encoded.body).into_owned())
                };
                if sink.send(frame).await.is_err() {
                    // Dropping the stream cancels the call.
                    return Err(Fault::Gone);
                }
            }
            Ok(None) => return Ok(()),
            Err(status) => {
                let err = GatewayError::from(prepared.upstream.classify(status));
                return failed(&mut stop, err);
            }
        }
    }
}

/// A failed call's result: the reader's verdict if it has one, since the
/// cancel that follows a client's mistake fails the call too (the verdict
/// may land between the `biased` look and the failure).
fn failed(stop: &mut Option<oneshot::Receiver<Stop>>, err: GatewayError) -> Result<(), Fault> {
    match stop.as_mut().and_then(|receiver| receiver.try_recv().ok()) {
        Some(verdict) => verdict.into_result(),
        None => Err(err.into()),
    }
}

/// Why the reader stopped the call.
#[derive(Debug)]
enum Stop {
    /// The client's mistake: the call ends with its code.
    Failed(Fault),
    /// The client closed the socket or went away: nobody to tell.
    Gone,
}

impl Stop {
    fn into_result(self) -> Result<(), Fault> {
        match self {
            Stop::Failed(fault) => Err(fault),
            // Returning drops the call's stream, which cancels it.
            Stop::Gone => Err(Fault::Gone),
        }
    }
}

/// Waits for the reader's verdict; never resolves once the reader
/// finished without one.
async fn stopped(stop: &mut Option<oneshot::Receiver<Stop>>) -> Stop {
    if let Some(receiver) = stop.as_mut()
        && let Ok(verdict) = receiver.await
    {
        return verdict;
    }
    *stop = None;
    std::future::pending().await
}
