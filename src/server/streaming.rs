//! Streaming calls over HTTP.
//!
//! - Server streaming: the request is built as for a unary call; the
//!   response streams back (see [`super::stream`]).
//! - Client streaming and bidirectional: the request body is a sequence of
//!   JSON messages (newline-delimited or concatenated), each sent to the
//!   backend as soon as it is complete; path variables apply to every
//!   message. A bidirectional response streams back while the body is
//!   still being read (full duplex, HTTP/1.1 chunked and HTTP/2).
//!
//! The status line is held until the first response message, the call's
//! end, or one second: a failure before any message keeps its own HTTP
//! status; a later one ends the stream with an error in its framing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::GatewayError;
use crate::http_rule::Found;
use crate::route::RpcKind;
use crate::snapshot::Snapshot;
use crate::transcode::splitter::{SplitError, Splitter};
use crate::transcode::{RawRequest, RequestError, response};
use crate::upstream::codec::Outgoing;
use crate::upstream::{CallError, Opened, Reply, metadata};

use super::rest::{self, Matched};
use super::stream::{Aborted, Framing, Opening, Start, StreamBody, StreamSetup, Streamed};

/// How long the status line waits for the first message.
const HOLD: Duration = Duration::from_secs(1);

/// Request messages buffered between the body reader and the backend.
const IN_FLIGHT_MESSAGES: usize = 8;

/// One request message in, a stream of messages out.
pub(crate) async fn server_stream(
    call: Matched<'_>,
    request_body: Body,
) -> Result<Response<Body>, GatewayError> {
    let Matched {
        parts,
        route,
        upstream,
        ..
    } = &call;
    let (request, share) = rest::encoded_request(&call, request_body).await?;
    let rest::Deadline {
        timeout,
        client: client_deadline,
    } = rest::deadline(&parts.headers, route.rpc.stream_timeout)?;
    let deadline = timeout.map(|t| (t, Instant::now() + t));
    let hints = upstream.hints(&parts.headers);
    let upstream = (*upstream).clone();
    let (path, metadata) = (route.rpc.path.clone(), call.metadata.clone());
    let request = tokio_stream::once(Outgoing::Message(request));
    let opening: Opening = Box::pin(async move {
        // The request message stays counted until the backend has it.
        let _share = share;
        upstream.open(path, metadata, timeout, hints, request).await
    });
    respond(&call, opening, deadline, client_deadline, None).await
}

/// A stream of request messages in; one message (client streaming) or a
/// stream (bidirectional) out.
pub(crate) async fn request_stream(
    call: Matched<'_>,
    request_body: Body,
) -> Result<Response<Body>, GatewayError> {
    let Matched {
        snapshot,
        parts,
        route,
        upstream,
        ..
    } = &call;
    if parts.headers.contains_key(header::CONTENT_TYPE) {
        rest::check_media_type(parts, route)?;
    }
    let (messages, requests) = mpsc::channel(IN_FLIGHT_MESSAGES);
    let (abort_tx, abort_rx) = oneshot::channel::<Aborted>();
    let pump = Pump {
        snapshot: Arc::clone(snapshot),
        route_id: call.route_id,
        path: call.path.to_owned(),
        found: call.found.clone(),
        query: parts.uri.query().map(str::to_owned),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    tokio::spawn(pump.run(request_body, messages, abort_tx));

    let rest::Deadline {
        timeout,
        client: client_deadline,
    } = rest::deadline(&parts.headers, route.rpc.stream_timeout)?;
    let deadline = timeout.map(|t| (t, Instant::now() + t));
    let mut abort = Some(abort_rx);
    let opening: Opening = {
        let hints = upstream.hints(&parts.headers);
        let upstream = (*upstream).clone();
        let (path, metadata) = (route.rpc.path.clone(), call.metadata.clone());
        Box::pin(async move {
            upstream
                .open(
                    path,
                    metadata,
                    timeout,
                    hints,
                    ReceiverStream::new(requests),
                )
                .await
        })
    };
    if route.rpc.kind == RpcKind::Bidi {
        return respond(&call, opening, deadline, client_deadline, abort).await;
    }
    // The request side's verdict first: once the body failed, the call's
    // own failure is only its consequence.
    let opened = tokio::select! {
        biased;
        aborted = aborted(&mut abort) => return Err(aborted.error),
        opened = opening => opened.map_err(|err| {
            already_aborted(&mut abort)
                .unwrap_or_else(|| GatewayError::from_call(err, client_deadline))
        })?,
    };
    let Opened {
        headers,
        mut stream,
    } = opened;
    let reply = Reply::read(headers, &mut stream);
    let until = async {
        match deadline {
            Some((_, at)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let reply = tokio::select! {
        biased;
        aborted = aborted(&mut abort) => return Err(aborted.error),
        reply = reply => reply.map_err(|(status, headers)| {
            already_aborted(&mut abort).unwrap_or_else(|| match upstream.classify(status) {
                CallError::Status(status) => GatewayError::Upstream(status, headers),
                other => other.into(),
            })
        })?,
        () = until => {
            let timeout = timeout.unwrap_or_default();
            return Err(GatewayError::deadline_exceeded(timeout, None, client_deadline));
        }
    };
    rest::message_response(snapshot, parts, route, reply)
}

/// Waits for a failure on the request side; never resolves once the body
/// was read to the end without one. The caller drops the call before the
/// returned [`Aborted`], so the backend sees a cancellation.
async fn aborted(abort: &mut Option<oneshot::Receiver<Aborted>>) -> Aborted {
    if let Some(receiver) = abort.as_mut()
        && let Ok(err) = receiver.await
    {
        return err;
    }
    *abort = None;
    std::future::pending().await
}

/// The request side's failure, if it has happened by now.
///
/// Asked again when the call fails: the selects look at the abort before
/// the call, but the pump runs on another thread, so between those two
/// looks it can report the client's mistake and cancel the call, and the
/// call's failure (only the consequence) would otherwise be the answer.
pub(crate) fn already_aborted(
    abort: &mut Option<oneshot::Receiver<Aborted>>,
) -> Option<GatewayError> {
    abort.as_mut()?.try_recv().ok().map(|aborted| aborted.error)
}

/// Holds the status line until the first message, the call's failure or
/// one second after the call started, then streams.
async fn respond(
    call: &Matched<'_>,
    mut opening: Opening,
    deadline: Option<(Duration, Instant)>,
    client_deadline: bool,
    mut abort: Option<oneshot::Receiver<Aborted>>,
) -> Result<Response<Body>, GatewayError> {
    let Matched {
        snapshot,
        parts,
        route,
        upstream,
        ..
    } = call;
    let hold = tokio::time::sleep(HOLD);
    tokio::pin!(hold);
    let mut backend_headers = None;
    // The content type of a first message read while the headers are held.
    let mut first_type = None;
    let start = tokio::select! {
        biased;
        aborted = aborted(&mut abort) => return Err(aborted.error),
        opened = &mut opening => {
            let Opened { headers, mut stream } = opened.map_err(|err| {
                already_aborted(&mut abort)
                    .unwrap_or_else(|| GatewayError::from_call(err, client_deadline))
            })?;
            let first = tokio::select! {
                biased;
                aborted = aborted(&mut abort) => return Err(aborted.error),
                first = stream.message() => match first {
                    Ok(first) => first,
                    Err(status) => {
                        if let Some(aborted) = already_aborted(&mut abort) {
                            return Err(aborted);
                        }
                        return Err(match upstream.classify(status) {
                            CallError::Status(status) => GatewayError::Upstream(status, Some(headers)),
                            other => other.into(),
                        });
                    }
                },
                () = &mut hold => None,
            };
            backend_headers = Some(headers);
            // Encoded now, before the status line goes out: a first message
            // that cannot be written is the call's failure with its real
            // status (502), not an error line after a 200.
            let first = match first {
                Some(message) => {
                    let encoded = route.response.encode(message, &snapshot.codec)?;
                    first_type = Some(encoded.content_type);
                    Some(encoded.body)
                }
                None => None,
            };
            Start::Open(Box::new(stream), first)
        }
        () = &mut hold => Start::Opening(opening),
    };
    let framing = Framing::choose(&parts.headers, route.rpc.framing, route.response.is_raw());
    let raw_type = first_type.filter(|_| framing == Framing::Raw);
    let http1_trailers =
        parts.version < http::Version::HTTP_2 && rest::wants_trailers(&parts.headers);
    let body = StreamBody::new(
        start,
        StreamSetup {
            snapshot: Arc::clone(snapshot),
            plan: route.response.clone(),
            upstream: (*upstream).clone(),
            framing,
            deadline,
            keepalive: Some(snapshot.stream_keepalive),
            abort,
            trailers: http1_trailers || parts.version == http::Version::HTTP_2,
            notes: crate::trace::SpanNotes::of(snapshot, &parts.extensions),
        },
    );
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if http1_trailers && framing == Framing::Raw {
        // HTTP/1.1 sends only the trailers named up front (RFC 9110
        // §6.6.2). Raw bytes have no place for a failure, which comes as
        // status trailers, so those are named; the backend's own are not
        // known yet (README Limits), and other framings say a failure in
        // their body.
        headers.insert(
            header::TRAILER,
            HeaderValue::from_static(super::grpc::STATUS_TRAILERS),
        );
    }
    headers.insert(header::CONTENT_TYPE, framing.content_type(raw_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(backend_headers) = &backend_headers {
        metadata::to_headers(backend_headers, "grpc-metadata-", headers);
    }
    response.extensions_mut().insert(Streamed);
    Ok(response)
}

/// Reads the request body into messages for the backend.
struct Pump {
    snapshot: Arc<Snapshot>,
    route_id: usize,
    path: String,
    found: Found,
    query: Option<String>,
    content_type: String,
}

impl Pump {
    async fn run(
        self,
        body: Body,
        messages: mpsc::Sender<Outgoing>,
        abort: oneshot::Sender<Aborted>,
    ) {
        let mut sent = 0;
        if let Err(error) = self.read(body, &messages, &mut sent).await {
            let error = match sent {
                0 => error,
                sent => GatewayError::InStream {
                    sent,
                    error: Box::new(error),
                },
            };
            // Tell the handler why first, so that the client's mistake is
            // what it answers (its selects look at this before the call),
            // then fail the request stream so the backend sees a
            // cancellation, not a clean half-close.
            let _ = abort.send(Aborted { error });
            let _ = messages.send(Outgoing::Cancel).await;
        }
    }

    /// Reads the body, counting in `sent` the messages sent on.
    async fn read(
        &self,
        mut body: Body,
        messages: &mpsc::Sender<Outgoing>,
        sent: &mut usize,
    ) -> Result<(), GatewayError> {
        let route = &self.snapshot.routes.routes()[self.route_id];
        let codec = &self.snapshot.codec;
        let raw = RawRequest {
            path: &self.path,
            found: &self.found,
            query: self.query.as_deref(),
            content_type: &self.content_type,
            body: Bytes::new(),
        };
        let mut splitter = Splitter::new(self.snapshot.limits.max_body_bytes);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| GatewayError::BodyRead(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if route.request.takes_raw_body() {
                // Raw bodies (`google.api.HttpBody`): each chunk a message.
                let message = route.request.decode(
                    RawRequest {
                        body: data,
                        ..raw.clone()
                    },
                    codec,
                )?;
                if messages
                    .send(Outgoing::Message(response::to_bytes(&message)?))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                *sent += 1;
                continue;
            }
            splitter.push(&data);
            while let Some(json) = splitter.next_value().map_err(split_error)? {
                let message = route.request.encode_streamed(&raw, &json, codec)?;
                if messages.send(Outgoing::Message(message)).await.is_err() {
                    // The call is over; the rest of the body is not needed.
                    return Ok(());
                }
                *sent += 1;
            }
        }
        if let Some(json) = splitter.finish().map_err(split_error)? {
            let message = route.request.encode_streamed(&raw, &json, codec)?;
            let _ = messages.send(Outgoing::Message(message)).await;
        }
        Ok(())
    }
}

fn split_error(err: SplitError) -> GatewayError {
    match err {
        SplitError::TooLarge(limit) => GatewayError::PayloadTooLarge(limit),
        other => GatewayError::BadRequest(RequestError::Json {
            at: None,
            reason: other.to_string(),
        }),
    }
}
