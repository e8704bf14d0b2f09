//! Streamed responses over HTTP: each gRPC response message becomes one
//! chunk, framed as the client asked.
//!
//! | framing | `Accept` | one message | failure |
//! |---|---|---|---|
//! | envelope (default) | anything else | `{"result": m}\n` | `{"error": {...}}\n` |
//! | event stream | `text/event-stream` | `data: m\n\n` | `event: error\ndata: {...}\n\n` |
//! | NDJSON | `application/x-ndjson` | `m\n` | `{"error": {...}}\n` |
//! | JSON array | (configured per method) | `[m`, `,m` … `]` | `,{"error": {...}}]` |
//! | raw | (`google.api.HttpBody` messages) | the bytes | (stream ends) |
//!
//! The body pulls the next message only when the client takes the last
//! one, so a slow reader slows the backend (HTTP/2 flow control does the
//! rest) and memory stays bounded. Dropping the body — the client went
//! away — cancels the call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::error::GatewayError;
use crate::metrics::Face;
use crate::snapshot::Snapshot;
use crate::trace::SpanNotes;
use crate::transcode::{ResponsePlan, json_number};
use crate::upstream::{CallError, Opened, Responses, Upstream, metadata};

/// How a stream is framed, chosen per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// grpc-gateway's `{"result": ...}` lines.
    Envelope,
    /// Server-Sent Events.
    EventStream,
    /// Bare messages, one per line.
    Ndjson,
    /// One JSON array.
    JsonArray,
    /// Raw `google.api.HttpBody` bytes.
    Raw,
    /// The Connect protocol's enveloped messages, JSON.
    ConnectJson,
    /// The Connect protocol's enveloped messages, binary protobuf.
    ConnectProto,
}

/// The framing configured for a method (`streams.framing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFraming {
    /// grpc-gateway's envelope, or what `Accept` asks for.
    #[default]
    Auto,
    /// One JSON array (Envoy's framing).
    JsonArray,
}

const EVENT_STREAM: &str = "text/event-stream";
const NDJSON: &str = "application/x-ndjson";
const JSONL: &str = "application/jsonl";

/// Marks a streamed response: never compressed, so each message stays one
/// chunk for line-oriented clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streamed;

impl Framing {
    /// The framing for a request: raw for `HttpBody` messages, else what
    /// the method is configured for, else what `Accept` prefers (a type
    /// weighted `q=0` is refused, never chosen).
    pub(crate) fn choose(headers: &HeaderMap, configured: StreamFraming, raw: bool) -> Framing {
        if raw {
            return Framing::Raw;
        }
        if configured == StreamFraming::JsonArray {
            return Framing::JsonArray;
        }
        let ranges = super::accept::ranges(headers);
        // Known shortcoming (README, Limits): a client that refuses JSON
        // too (`application/json;q=0`, `*/*;q=0`) still gets the JSON
        // envelope; there is no 406, since nothing else is left to send.
        match super::accept::preferred(&ranges, &[EVENT_STREAM, NDJSON, JSONL]) {
            Some(EVENT_STREAM) => Framing::EventStream,
            Some(_) => Framing::Ndjson,
            None => Framing::Envelope,
        }
    }

    /// The response `Content-Type`.
    pub(crate) fn content_type(self, raw_type: Option<HeaderValue>) -> HeaderValue {
        match self {
            Framing::Envelope | Framing::JsonArray => HeaderValue::from_static("application/json"),
            Framing::EventStream => HeaderValue::from_static("text/event-stream"),
            Framing::Ndjson => HeaderValue::from_static("application/x-ndjson"),
            Framing::Raw => {
                raw_type.unwrap_or(HeaderValue::from_static("application/octet-stream"))
            }
            Framing::ConnectJson => HeaderValue::from_static("application/connect+json"),
            Framing::ConnectProto => HeaderValue::from_static("application/connect+proto"),
        }
    }

    fn message(self, json: &[u8], first: bool) -> Bytes {
        let mut out = BytesMut::with_capacity(json.len() + 16);
        match self {
            Framing::Envelope => {
                out.put_slice(b"{\"result\":");
                out.put_slice(json);
                out.put_slice(b"}\n");
            }
            Framing::EventStream => {
                out.put_slice(b"data: ");
                out.put_slice(json);
                out.put_slice(b"\n\n");
            }
            Framing::Ndjson => {
                out.put_slice(json);
                out.put_u8(b'\n');
            }
            Framing::JsonArray => {
                out.put_u8(if first { b'[' } else { b',' });
                out.put_slice(json);
            }
            Framing::Raw => out.put_slice(json),
            Framing::ConnectJson | Framing::ConnectProto => envelope(&mut out, 0, json),
        }
        out.freeze()
    }

    fn error(self, err: &GatewayError, snapshot: &Snapshot, first: bool) -> Option<Bytes> {
        let (pool, codec) = (&snapshot.pool, &snapshot.codec);
        // Through `json_number`, as every message of the stream: details
        // hold floats too.
        let json = |value: &serde_json::Value| {
            json_number::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
        };
        let mut out = BytesMut::new();
        match self {
            Framing::Envelope | Framing::Ndjson => {
                out.put_slice(b"{\"error\":");
                out.put_slice(&json(&err.stream_error(pool, codec)));
                out.put_slice(b"}\n");
            }
            Framing::EventStream => {
                out.put_slice(b"event: error\ndata: ");
                out.put_slice(&json(&err.status_json(pool, codec)));
                out.put_slice(b"\n\n");
            }
            Framing::JsonArray => {
                out.put_slice(if first { b"[" } else { b"," });
                out.put_slice(b"{\"error\":");
                out.put_slice(&json(&err.stream_error(pool, codec)));
                out.put_slice(b"}]");
            }
            Framing::Raw => return None,
            Framing::ConnectJson | Framing::ConnectProto => {
                let mut end = serde_json::json!({"error": err.connect_json()});
                if let GatewayError::Upstream(status, _) = err {
                    add_connect_metadata(&mut end, status.metadata());
                }
                envelope(&mut out, END_STREAM, &json(&end));
            }
        }
        Some(out.freeze())
    }

    fn end(self, first: bool) -> Option<Bytes> {
        match self {
            Framing::JsonArray if first => Some(Bytes::from_static(b"[]")),
            Framing::JsonArray => Some(Bytes::from_static(b"]")),
            _ => None,
        }
    }

    fn is_connect(self) -> bool {
        matches!(self, Framing::ConnectJson | Framing::ConnectProto)
    }
}

/// The end of a Connect stream that succeeded: the backend's trailers as
/// its `metadata`.
fn connect_end(trailers: Option<&MetadataMap>) -> Bytes {
    let mut end = serde_json::json!({});
    if let Some(trailers) = trailers {
        add_connect_metadata(&mut end, trailers);
    }
    let payload = serde_json::to_vec(&end).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = BytesMut::new();
    envelope(&mut out, END_STREAM, &payload);
    out.freeze()
}

/// Adds `metadata` (less the gRPC protocol's own keys) to a Connect
/// end-of-stream message as `"metadata": {"key": ["value", ...]}`, binary
/// values in base64 as they came.
pub(crate) fn add_connect_metadata(end: &mut serde_json::Value, metadata: &MetadataMap) {
    let mut headers = HeaderMap::new();
    metadata::to_headers(metadata, "", &mut headers);
    if headers.is_empty() {
        return;
    }
    let mut object = serde_json::Map::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        object.insert(name.as_str().to_owned(), serde_json::Value::Array(values));
    }
    end["metadata"] = serde_json::Value::Object(object);
}

/// The Connect envelope flag of the last message: the end of the stream.
pub(crate) const END_STREAM: u8 = 0x02;

/// A Connect (and gRPC-like) envelope: flags, big-endian length, payload.
pub(crate) fn envelope(out: &mut BytesMut, flags: u8, payload: &[u8]) {
    out.put_u8(flags);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
}

type TrailersFuture = Pin<Box<dyn Future<Output = Result<Option<MetadataMap>, Status>> + Send>>;

/// A call being opened: resolves once the backend sends its headers.
pub(crate) type Opening = Pin<Box<dyn Future<Output = Result<Opened, CallError>> + Send>>;

enum Source {
    /// Waiting for the backend's headers (the status line went out first).
    Opening(Opening),
    Messages(Box<Responses>),
    Trailers(TrailersFuture),
    Done,
}

/// A failure on the request side of a call (the call itself was told to
/// cancel through its request stream).
#[derive(Debug)]
pub(crate) struct Aborted {
    pub(crate) error: GatewayError,
}

/// A streamed response body.
pub(crate) struct StreamBody {
    source: Source,
    /// A message already read and encoded while the headers were held.
    first: Option<Bytes>,
    snapshot: Arc<Snapshot>,
    plan: ResponsePlan,
    upstream: Upstream,
    framing: Framing,
    sent: usize,
    deadline: Option<(Duration, Pin<Box<Sleep>>)>,
    keepalive: Option<(Duration, Pin<Box<Sleep>>)>,
    /// A failure on the request side (bidirectional calls).
    abort: Option<oneshot::Receiver<Aborted>>,
    /// Send the backend's trailers as HTTP trailers.
    trailers: bool,
    /// The request's span, told how the stream ended (while tracing).
    notes: Option<SpanNotes>,
    /// Whether how the stream ended was recorded ([`StreamBody::ended`]).
    end_recorded: bool,
    /// Whether the body was ever read: the answer to a `HEAD` is not, and
    /// is no stream a client left.
    polled: bool,
}

/// What a [`StreamBody`] needs besides the stream.
pub(crate) struct StreamSetup {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) plan: ResponsePlan,
    pub(crate) upstream: Upstream,
    pub(crate) framing: Framing,
    pub(crate) deadline: Option<(Duration, Instant)>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) abort: Option<oneshot::Receiver<Aborted>>,
    pub(crate) trailers: bool,
    pub(crate) notes: Option<SpanNotes>,
}

/// Where a [`StreamBody`] starts.
pub(crate) enum Start {
    /// The call is open; `first` is a message already read, if any,
    /// encoded as the plan writes it (its JSON, or an `HttpBody`'s bytes).
    Open(Box<Responses>, Option<Bytes>),
    /// The call is still opening.
    Opening(Opening),
}

impl StreamBody {
    pub(crate) fn new(start: Start, setup: StreamSetup) -> StreamBody {
        let (source, first) = match start {
            Start::Open(stream, first) => (Source::Messages(stream), first),
            Start::Opening(opening) => (Source::Opening(opening), None),
        };
        let keepalive = setup
            .keepalive
            .filter(|_| setup.framing == Framing::EventStream)
            .map(|every| (every, Box::pin(tokio::time::sleep(every))));
        StreamBody {
            source,
            first,
            snapshot: setup.snapshot,
            plan: setup.plan,
            upstream: setup.upstream,
            framing: setup.framing,
            sent: 0,
            deadline: setup
                .deadline
                .map(|(timeout, at)| (timeout, Box::pin(tokio::time::sleep_until(at)))),
            keepalive,
            abort: setup.abort,
            trailers: setup.trailers,
            notes: setup.notes,
            end_recorded: false,
            polled: false,
        }
    }

    /// Records how the stream ended, once: in the metrics, and in the
    /// request's span when it records. The first end counts: a client
    /// that leaves while the trailers of a finished stream are read did
    /// not cancel it.
    fn ended(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.end_recorded, true) {
            return;
        }
        let face = if self.framing.is_connect() {
            Face::Connect
        } else {
            Face::Rest
        };
        self.snapshot.metrics.record_stream_end(face, code);
        if let Some(notes) = &self.notes {
            notes.ended(code as i32);
        }
    }

    fn message_frame(&mut self, message: Bytes) -> Result<Frame<Bytes>, GatewayError> {
        if self.framing == Framing::ConnectProto {
            return Ok(self.encoded_frame(&message));
        }
        let encoded = self.plan.encode(message, &self.snapshot.codec)?;
        Ok(self.encoded_frame(&encoded.body))
    }

    /// The frame of one message, encoded already.
    fn encoded_frame(&mut self, encoded: &[u8]) -> Frame<Bytes> {
        let frame = self.framing.message(encoded, self.sent == 0);
        self.sent += 1;
        if let Some((every, sleep)) = &mut self.keepalive {
            sleep.as_mut().reset(Instant::now() + *every);
        }
        Frame::data(frame)
    }

    /// While the backend is quiet: a keep-alive comment when one is due
    /// (Server-Sent Events), else pending.
    fn keep_alive(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        if let Some((every, sleep)) = &mut self.keepalive
            && sleep.as_mut().poll(cx).is_ready()
        {
            let every = *every;
            sleep.as_mut().reset(Instant::now() + every);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": keep-alive\n\n",
            )))));
        }
        Poll::Pending
    }

    /// Ends the stream with `err` in the framing (the status line is sent).
    fn fail(
        &mut self,
        err: GatewayError,
    ) -> Option<Result<Frame<Bytes>, std::convert::Infallible>> {
        tracing::debug!(error = %err, "Stream ended with an error");
        self.source = Source::Done;
        self.ended(err.status().1);
        match self.framing.error(&err, &self.snapshot, self.sent == 0) {
            Some(bytes) => Some(Ok(Frame::data(bytes))),
            // A framing with no place for an error (raw `HttpBody` bytes):
            // the status goes in trailers when the client takes them.
            None if self.trailers => {
                let (_, code) = err.status();
                // The backend's own message, as every other face passes it.
                let message = match &err {
                    GatewayError::Upstream(status, _) => status.message().to_owned(),
                    other => other.to_string(),
                };
                let status = Status::new(code, message);
                Some(Ok(Frame::trailers(super::grpc::trailers(&status))))
            }
            None => None,
        }
    }
}

/// A stream dropped before its end: the client left (the call is
/// cancelled with it), and its metrics and span say so.
impl Drop for StreamBody {
    fn drop(&mut self) {
        if self.polled {
            self.ended(tonic::Code::Cancelled);
        }
    }
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.polled = true;
        if matches!(this.source, Source::Done) {
            return Poll::Ready(None);
        }
        if let Some(encoded) = this.first.take() {
            return Poll::Ready(Some(Ok(this.encoded_frame(&encoded))));
        }
        if let Some(abort) = &mut this.abort {
            match Pin::new(abort).poll(cx) {
                Poll::Ready(Ok(aborted)) => return Poll::Ready(this.fail(aborted.error)),
                // The request side finished cleanly.
                Poll::Ready(Err(_)) => this.abort = None,
                Poll::Pending => {}
            }
        }
        if let Some((timeout, sleep)) = &mut this.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let timeout = *timeout;
            return Poll::Ready(this.fail(GatewayError::DeadlineExceeded(timeout, None)));
        }
        loop {
            match &mut this.source {
                Source::Done => return Poll::Ready(None),
                Source::Opening(opening) => match opening.as_mut().poll(cx) {
                    Poll::Ready(Ok(opened)) => {
                        this.source = Source::Messages(Box::new(opened.stream));
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(this.fail(err.into())),
                    // An idle stream is kept alive before its first
                    // message too.
                    Poll::Pending => return this.keep_alive(cx),
                },
                Source::Messages(stream) => match Pin::new(&mut **stream).poll_next(cx) {
                    Poll::Ready(Some(Ok(message))) => {
                        return Poll::Ready(match this.message_frame(message) {
                            Ok(frame) => Some(Ok(frame)),
                            Err(err) => this.fail(err),
                        });
                    }
                    Poll::Ready(Some(Err(status))) => {
                        // The client's mistake, when it is why the call
                        // failed (see `already_aborted`).
                        let err = super::streaming::already_aborted(&mut this.abort)
                            .unwrap_or_else(|| this.upstream.classify(status).into());
                        return Poll::Ready(this.fail(err));
                    }
                    Poll::Ready(None) => {
                        let Source::Messages(mut stream) =
                            std::mem::replace(&mut this.source, Source::Done)
                        else {
                            unreachable!("matched above")
                        };
                        this.ended(tonic::Code::Ok);
                        if this.trailers || this.framing.is_connect() {
                            this.source =
                                Source::Trailers(Box::pin(async move { stream.trailers().await }));
                        }
                        if let Some(end) = this.framing.end(this.sent == 0) {
                            return Poll::Ready(Some(Ok(Frame::data(end))));
                        }
                    }
                    Poll::Pending => return this.keep_alive(cx),
                },
                Source::Trailers(future) => {
                    let result = ready!(future.as_mut().poll(cx));
                    this.source = Source::Done;
                    if this.framing.is_connect() {
                        let trailers = result.ok().flatten();
                        return Poll::Ready(Some(Ok(Frame::data(connect_end(trailers.as_ref())))));
                    }
                    let mut map = HeaderMap::new();
                    if let Ok(Some(trailers)) = result {
                        metadata::to_headers(&trailers, "grpc-trailer-", &mut map);
                    }
                    if map.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::trailers(map))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.source, Source::Done) && self.first.is_none()
    }
}
