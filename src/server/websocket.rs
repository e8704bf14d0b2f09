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

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts as _;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Method, Request, Response, header};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;

use crate::error::GatewayError;
use crate::http_rule::{Found, Miss, path};
use crate::route::{Route, RpcKind};
use crate::snapshot::Snapshot;
use crate::transcode::{RawRequest, RequestError, response};
use crate::upstream::codec::Outgoing;
use crate::upstream::{Upstream, metadata};

use super::rest::ClientAddr;

/// Whether a request asks to switch to WebSocket.
pub(crate) fn is_upgrade(request: &Request<Body>) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upgrades the connection and runs the call on the socket.
pub(crate) async fn handle(snapshot: Arc<Snapshot>, request: Request<Body>) -> Response<Body> {
    let (mut parts, _body) = request.into_parts();
    let prepared = match prepare(&snapshot, &parts) {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(&snapshot.pool, &snapshot.codec),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return axum::response::IntoResponse::into_response(rejection),
    };
    let limit = snapshot.limits.max_body_bytes;
    upgrade
        .max_message_size(limit)
        .on_upgrade(move |socket| session(socket, snapshot, prepared))
}

/// What the session needs from the HTTP request.
struct Prepared {
    route_id: usize,
    found: Found,
    path: String,
    query: Option<String>,
    metadata: MetadataMap,
    upstream: Upstream,
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
    let upstream = snapshot
        .upstream_of(&route.rpc, parts.extensions.get())
        .cloned()
        .ok_or_else(|| GatewayError::NoUpstream(route.rpc.name.to_string()))?;
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let metadata = metadata::to_metadata(
        &parts.headers,
        client,
        parts.uri.authority().map(|a| a.as_str()),
        &snapshot.headers,
    )?;
    Ok(Prepared {
        route_id: found.route,
        found,
        path: normalized.into_owned(),
        query: parts.uri.query().map(str::to_owned),
        metadata,
        upstream,
    })
}

/// The close frame for a finished call.
fn close_frame(result: Result<(), GatewayError>) -> CloseFrame {
    match result {
        Ok(()) => CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("OK"),
        },
        Err(err) => {
            let (_, code) = err.status();
            let message = match &err {
                GatewayError::Upstream(status, _) => status.message().to_owned(),
                other => other.to_string(),
            };
            let mut end = message.len().min(123);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            CloseFrame {
                code: 4000 + code as u16,
                reason: Utf8Bytes::from(message[..end].to_owned()),
            }
        }
    }
}

async fn session(socket: WebSocket, snapshot: Arc<Snapshot>, prepared: Prepared) {
    let route = &snapshot.routes.routes()[prepared.route_id];
    let (mut sink, frames) = socket.split();
    let result = run(&snapshot, route, &prepared, &mut sink, frames).await;
    if let Err(err) = &result {
        tracing::debug!(rpc = %route.rpc.name, error = %err, "WebSocket call failed");
    }
    // After the client's own Close, this send fails: nothing to add.
    let _ = sink.send(Message::Close(Some(close_frame(result)))).await;
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Frames = futures_util::stream::SplitStream<WebSocket>;

async fn run(
    snapshot: &Arc<Snapshot>,
    route: &Route,
    prepared: &Prepared,
    sink: &mut Sink,
    mut frames: Frames,
) -> Result<(), GatewayError> {
    let codec = &snapshot.codec;
    let (requests, outgoing) = mpsc::channel::<Outgoing>(8);
    let (abort_tx, abort_rx) = oneshot::channel::<GatewayError>();
    let mut abort = Some(abort_rx);
    let reader = Reader {
        snapshot: Arc::clone(snapshot),
        route_id: prepared.route_id,
        found: prepared.found.clone(),
        path: prepared.path.clone(),
        query: prepared.query.clone(),
    };
    if route.rpc.kind == RpcKind::ServerStreaming && !route.request.takes_body() {
        // The request is the path and query alone.
        let message = route.request.decode(reader.raw(), codec)?;
        let _ = requests
            .send(Outgoing::Message(response::to_bytes(&message)))
            .await;
        drop(requests);
        // Still watch for the client's Close.
        tokio::spawn(async move {
            while let Some(Ok(frame)) = frames.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        });
    } else {
        // The reader runs beside the writer: neither side's pace can block
        // the other.
        let single = route.rpc.kind == RpcKind::ServerStreaming;
        tokio::spawn(reader.run(frames, requests, abort_tx, single));
    }
    let opened = tokio::select! {
        opened = prepared.upstream.open(
            route.rpc.path.clone(),
            prepared.metadata.clone(),
            None,
            ReceiverStream::new(outgoing),
        ) => opened?,
        err = failed(&mut abort) => return Err(err),
    };
    let mut stream = opened.stream;
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            err = failed(&mut abort) => return Err(err),
        };
        match next {
            Ok(Some(message)) => {
                let encoded = route.response.encode(message, codec)?;
                let frame = if route.response.is_raw() {
                    Message::Binary(encoded.body)
                } else {
                    Message::text(String::from_utf8_lossy(&encoded.body).into_owned())
                };
                if sink.send(frame).await.is_err() {
                    // The client is gone; dropping the stream cancels.
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(status) => return Err(GatewayError::from(prepared.upstream.classify(status))),
        }
    }
}

/// Waits for the reader's failure; never resolves once it finished
/// without one.
async fn failed(abort: &mut Option<oneshot::Receiver<GatewayError>>) -> GatewayError {
    if let Some(receiver) = abort.as_mut()
        && let Ok(err) = receiver.await
    {
        return err;
    }
    *abort = None;
    std::future::pending().await
}

/// Reads request frames into messages for the backend.
struct Reader {
    snapshot: Arc<Snapshot>,
    route_id: usize,
    found: Found,
    path: String,
    query: Option<String>,
}

impl Reader {
    fn raw(&self) -> RawRequest<'_> {
        RawRequest {
            path: &self.path,
            found: &self.found,
            query: self.query.as_deref(),
            content_type: "application/json",
            body: Bytes::new(),
        }
    }

    /// `single`: one message is all the call takes (server streaming).
    async fn run(
        self,
        mut frames: Frames,
        requests: mpsc::Sender<Outgoing>,
        abort: oneshot::Sender<GatewayError>,
        single: bool,
    ) {
        let route = &self.snapshot.routes.routes()[self.route_id];
        let raw = self.raw();
        while let Some(frame) = frames.next().await {
            let data = match frame {
                Ok(Message::Text(text)) => Bytes::from(text),
                Ok(Message::Binary(data)) => data,
                Ok(Message::Close(_)) | Err(_) => {
                    // No half-close after Close (RFC 6455): cancel.
                    let _ = requests.send(Outgoing::Cancel).await;
                    return;
                }
                Ok(_) => continue,
            };
            if data.iter().all(u8::is_ascii_whitespace) {
                // The client's half-close.
                return;
            }
            match route
                .request
                .decode_streamed(&raw, &data, &self.snapshot.codec)
            {
                Ok(message) => {
                    let message = Outgoing::Message(response::to_bytes(&message));
                    if requests.send(message).await.is_err() || single {
                        return;
                    }
                }
                Err(err) => {
                    let _ = requests.send(Outgoing::Cancel).await;
                    let _ = abort.send(err.into());
                    return;
                }
            }
        }
        // The socket ended without a Close frame: the client is gone.
        let _ = requests.send(Outgoing::Cancel).await;
    }
}
