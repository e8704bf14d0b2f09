//! The client's side of a WebSocket session: its frames read, checked
//! against what the route takes, and turned into request messages or a
//! verdict that stops the call.

use std::sync::Arc;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

use crate::error::GatewayError;
use crate::http_rule::Found;
use crate::route::{Route, RpcKind};
use crate::snapshot::Snapshot;
use crate::transcode::RawRequest;
use crate::upstream::codec::Outgoing;

use super::{Fault, Frames, Stop};

/// What the client's frames carry on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Request messages until the half-close (client and bidirectional
    /// streaming).
    Stream,
    /// The one request message (server streaming with a body).
    One,
    /// None: the request is the path and query (server streaming without
    /// a body).
    Nothing,
}

impl Expect {
    pub(super) fn of(route: &Route) -> Expect {
        match route.rpc.kind {
            RpcKind::ServerStreaming if route.request.takes_body() => Expect::One,
            RpcKind::ServerStreaming => Expect::Nothing,
            _ => Expect::Stream,
        }
    }

    /// Why a message is refused once no more are taken.
    fn refusal(self) -> &'static str {
        match self {
            Expect::Stream => {
                "the request stream was ended by an empty frame; send no more messages"
            }
            Expect::One => "this route takes one request message; send no more",
            Expect::Nothing => {
                "this route takes its request from the path and query; send no messages"
            }
        }
    }
}

/// What a failed read of a frame means: a frame over the size limit
/// (413's RESOURCE_EXHAUSTED), a connection that broke or ended without
/// a Close (the client is gone), or a frame that breaks the WebSocket protocol (RFC 6455 §7.4.1:
/// 1007 for a text frame that is not UTF-8, 1002 for the rest — an
/// unmasked frame, reserved bits, an unknown opcode, a fragmented or
/// oversized control frame, a malformed Close).
fn frame_error(err: &axum::Error, limit: usize) -> Stop {
    if crate::upstream::chain(err).any(|e| e.is::<std::io::Error>()) {
        return Stop::Gone;
    }
    let text = err.to_string();
    // Limitation: the WebSocket library's errors are told by their text
    // ("Space limit exceeded: Message too long: ...", "UTF-8 encoding
    // error: ..."); their type is not reachable without that library as
    // a direct dependency.
    if text.contains("Connection reset without closing handshake") {
        // The client closed its side of the connection without a Close
        // frame (a killed page or process): gone, not a protocol fault.
        return Stop::Gone;
    }
    if text.contains("Space limit exceeded") {
        // A 64-bit length with its most significant bit set (RFC 6455
        // §5.2: it must be 0) is no size at all but a broken header.
        if declared_size(&text).is_some_and(|size| size > i64::MAX as u64) {
            return Stop::Failed(Fault::Protocol {
                code: PROTOCOL_ERROR,
                reason: "frame length with its most significant bit set".to_owned(),
            });
        }
        return Stop::Failed(GatewayError::PayloadTooLarge(limit).into());
    }
    let code = if text.contains("UTF-8 encoding error") {
        INVALID_DATA
    } else {
        PROTOCOL_ERROR
    };
    Stop::Failed(Fault::Protocol { code, reason: text })
}

/// The size in the library's "Message too long: {size} > {limit}".
fn declared_size(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once("Message too long: ")?;
    rest.split(' ').next()?.parse().ok()
}

/// RFC 6455 §7.4.1 close codes.
const PROTOCOL_ERROR: u16 = 1002;
const INVALID_DATA: u16 = 1007;

/// Reads request frames into messages for the backend.
pub(super) struct Reader {
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) route_id: usize,
    pub(super) found: Found,
    pub(super) path: String,
    pub(super) query: Option<String>,
}

impl Reader {
    pub(super) fn raw(&self) -> RawRequest<'_> {
        RawRequest {
            path: &self.path,
            found: &self.found,
            query: self.query.as_deref(),
            content_type: "application/json",
            body: Bytes::new(),
        }
    }

    /// Reads until the socket's end, the client's mistake or the call's
    /// end. `requests` is `None` when the route takes no messages.
    pub(super) async fn run(
        self,
        mut frames: Frames,
        mut requests: Option<mpsc::Sender<Outgoing>>,
        stop: oneshot::Sender<Stop>,
        expect: Expect,
    ) {
        let route = &self.snapshot.routes.routes()[self.route_id];
        let raw = self.raw();
        let limit = self.snapshot.limits.max_body_bytes;
        let verdict = loop {
            // A socket that ends without a Close frame: the client is gone.
            let Some(frame) = frames.next().await else {
                break Stop::Gone;
            };
            let data = match frame {
                Ok(Message::Text(text)) => Bytes::from(text),
                Ok(Message::Binary(data)) => data,
                // No half-close after Close (RFC 6455): cancel.
                Ok(Message::Close(_)) => break Stop::Gone,
                Err(err) => break frame_error(&err, limit),
                Ok(_) => continue,
            };
            if data.iter().all(u8::is_ascii_whitespace) {
                // The client's half-close; a repeated one is harmless. On
                // a route that takes one message, none sent is an empty
                // one, as an empty REST body is.
                if expect == Expect::One
                    && let Some(sender) = requests.take()
                {
                    let empty = route
                        .request
                        .encode_streamed(&raw, b"{}", &self.snapshot.codec);
                    match empty {
                        Ok(bytes) => {
                            if sender.send(Outgoing::Message(bytes)).await.is_err() {
                                return;
                            }
                        }
                        Err(err) => break Stop::Failed(GatewayError::from(err).into()),
                    }
                }
                requests = None;
                continue;
            }
            let Some(sender) = &requests else {
                break Stop::Failed(Fault::Unexpected(expect.refusal()));
            };
            match route
                .request
                .encode_streamed(&raw, &data, &self.snapshot.codec)
            {
                Ok(bytes) => {
                    let message = Outgoing::Message(bytes);
                    if sender.send(message).await.is_err() {
                        // The call is over.
                        return;
                    }
                    if expect == Expect::One {
                        requests = None;
                    }
                }
                Err(err) => break Stop::Failed(GatewayError::from(err).into()),
            }
        };
        // The verdict first: the cancel below fails the upstream call too,
        // and the session must see the client's own reason.
        let _ = stop.send(verdict);
        if let Some(requests) = requests {
            let _ = requests.send(Outgoing::Cancel).await;
        }
    }
}
