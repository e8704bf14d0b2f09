//! Our HTTP/2 client for every endpoint, cleartext or TLS, on the `h2`
//! crate.
//!
//! One connection per channel, opened by the first call and again by the
//! first call after it ends; the calls that arrive while it opens wait for
//! that one attempt (a task of its own) and share its outcome. A TLS
//! endpoint's connection is the same one over a rustls handshake that must
//! agree on `h2` by ALPN ([`tls`]). A request
//! body that is already complete when the call starts (every unary call)
//! is queued with its headers, so the connection's task writes them, and
//! whatever other calls came meanwhile, together; a body still arriving (a
//! client stream, a passed-through call) is sent by a task of its own as
//! the peer's flow control allows, and that stream is reset if the call
//! is dropped before its response ends. The connection is pinged
//! every 30 s while calls are in flight and dropped when a ping goes
//! unanswered for 10 s; unlike hyper, it pings even when frames arrived
//! meanwhile (one ping per 30 s of a busy connection).
//!
//! Failures keep the shapes tonic's channel gives them, so that one
//! reading of a status serves every call: a connection that
//! cannot be made — the TLS handshake and the peer's SETTINGS, which end
//! the HTTP/2 handshake, not come within the connect timeout included — or
//! that ended before the call's stream opened, is a [`tonic::ConnectError`]
//! (UNAVAILABLE, and not sent); the `grpc-timeout`
//! a request carries running out is a [`tonic::TimeoutExpired`]; a call in
//! flight on a connection dropped for an unanswered ping, or closed by a
//! peer that never sent a byte, is UNAVAILABLE saying so; everything else
//! is the `h2` error.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use h2::RecvStream;
use h2::client::SendRequest;
use http::header;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame};
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use tonic::body::Body;

use super::{BoxError, MessageBounds};
use crate::upstream::metadata::parse_grpc_timeout;
use connection::{ConnectFailed, KEEP_ALIVE, KeepAlive, connect};
use heard::closed_unheard;
use request_body::{Abandon, send_body};
pub(crate) use tls::{ALPN_H2, Tls};

/// Where a channel connects, how (in cleartext or over TLS), and what its
/// requests carry.
#[derive(Clone)]
pub(crate) struct Target {
    /// `http://`, the host and the port: what the connector dials (over
    /// TLS too: it only opens the TCP connection).
    uri: Uri,
    authority: Authority,
    /// The requests' `:scheme`: `https` over TLS.
    scheme: Scheme,
    tls: Option<Tls>,
    /// Tries every address a host name has, racing IPv6 and IPv4 (Happy
    /// Eyeballs, as tonic's channel does), each within its share of the
    /// connect timeout.
    connector: HttpConnector,
    connect_timeout: Duration,
    user_agent: HeaderValue,
    keep_alive: KeepAlive,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl Target {
    pub(super) fn new(
        uri: &Uri,
        connect_timeout: Duration,
        user_agent: HeaderValue,
        tls: Option<Tls>,
    ) -> Result<Target, String> {
        let authority = uri
            .authority()
            .ok_or_else(|| "the URL has no host".to_owned())?
            .clone();
        // The connector dials `http://`, which means port 80 when none is
        // given: a TLS endpoint's default is 443.
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(format!("{}:{port}", authority.host()))
            .path_and_query("/")
            .build()
            .map_err(|e| e.to_string())?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        // Small calls go out at once.
        connector.set_nodelay(true);
        Ok(Target {
            uri,
            authority,
            scheme: if tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            tls,
            connector,
            connect_timeout,
            user_agent,
            keep_alive: KEEP_ALIVE,
        })
    }
}

/// An HTTP/2 channel to one endpoint.
#[derive(Clone)]
pub(crate) struct H2Channel {
    inner: Arc<Inner>,
}

impl fmt::Debug for H2Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("H2Channel")
            .field(&self.inner.target)
            .finish()
    }
}

struct Inner {
    target: Target,
    state: Mutex<State>,
    generations: AtomicU64,
}

/// One attempt to connect, awaited by every call that needs it. It runs
/// as a task of its own, so that it goes on (and its timeout runs) when
/// every call waiting for it has gone.
type Attempt = Shared<BoxFuture<'static, Result<Conn, Arc<ConnectFailed>>>>;

enum State {
    /// No connection: the next call opens one.
    Idle,
    /// Attempt number `.0` is under way.
    Connecting(u64, Attempt),
    /// Connection number `.0` is open (as far as anyone knows yet).
    Open(u64, Conn),
}

/// An open connection: its sender, and what its calls share with the
/// task that drives it.
#[derive(Clone)]
struct Conn {
    sender: SendRequest<Bytes>,
    vitals: Arc<Vitals>,
}

/// What a connection's calls and its driving task share.
#[derive(Debug, Default)]
struct Vitals {
    /// Calls in flight: the connection is pinged only while there are
    /// some.
    calls: AtomicUsize,
    /// Why the driving task dropped the connection (its peer stopped
    /// answering pings), for the calls that fail with it.
    dropped: OnceLock<String>,
    /// The peer has sent at least one byte ([`heard`]).
    heard: AtomicBool,
    /// Notified when the peer's SETTINGS come ([`heard`]).
    settings: tokio::sync::Notify,
    /// The connection is over TLS (what a peer that closed it unheard
    /// most likely is differs).
    tls: bool,
    /// The TLS error read before the peer's first frame ([`heard`]).
    tls_refused: OnceLock<rustls::Error>,
}

/// One call counted on its connection until dropped.
struct InFlight(Arc<Vitals>);

impl InFlight {
    fn new(vitals: &Arc<Vitals>) -> InFlight {
        vitals.calls.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(vitals))
    }

    /// The error a call fails with: the connection's broken pipe reads as
    /// UNAVAILABLE with the reason, when the gateway dropped it or when
    /// the peer closed it without a byte ([`heard`]). Either way the call
    /// may have reached the backend, so it stays a broken connection, not
    /// one never made: retried only when it is idempotent.
    fn explain(&self, err: h2::Error) -> BoxError {
        let why = if let Some(why) = self.0.dropped.get() {
            format!("the upstream stopped answering: {why}")
        } else if err.is_io() && !self.0.heard.load(Ordering::Acquire) {
            closed_unheard(self.0.tls).to_owned()
        } else {
            return Box::new(err);
        };
        let mut status = tonic::Status::unavailable(why);
        status.set_source(Arc::new(err));
        Box::new(status)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

impl H2Channel {
    pub(super) fn new(target: Target) -> H2Channel {
        H2Channel {
            inner: Arc::new(Inner {
                target,
                state: Mutex::new(State::Idle),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// Waits for the channel's connection, opening one if it has none.
    pub(super) async fn connected(&self) -> Result<(), BoxError> {
        self.inner.conn().await.map(drop)
    }

    /// Sends `request`; the future resolves with the response head.
    pub(super) fn call(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, BoxError>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        // tonic's channel times a call out by the `grpc-timeout` it
        // carries, up to the response head; so does this one.
        let timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout);
        async move {
            match timeout {
                None => inner.send(request).await,
                Some(timeout) => match tokio::time::timeout(timeout, inner.send(request)).await {
                    Ok(result) => result,
                    Err(_) => Err(Box::new(tonic::TimeoutExpired(())) as BoxError),
                },
            }
        }
    }
}

impl Inner {
    async fn send(self: Arc<Self>, request: Request<Body>) -> Result<Response<Body>, BoxError> {
        let (mut head, body) = request.into_parts();
        self.prepare(&mut head);
        let (mut sender, in_flight) = self.ready_sender().await?;
        let end = body.is_end_stream();
        let (response, stream) = sender
            .send_request(Request::from_parts(head, ()), end)
            .map_err(not_sent)?;
        // Dropped with the call: a body still being piped then stops.
        let abandon = if end { None } else { send_body(body, stream) };
        let mut response = response.await.map_err(|err| in_flight.explain(err))?;
        super::check_content_type(&response)?;
        if let Some(answer) = super::http_status_answer(&response) {
            return Ok(answer);
        }
        super::check_status(response.headers())?;
        super::drop_undecodable_details(response.headers_mut());
        let bounds = MessageBounds::of(&response);
        Ok(response.map(|stream| {
            Body::new(Incoming {
                stream,
                data_done: false,
                bounds,
                in_flight,
                abandon,
            })
        }))
    }

    /// A sender that may open a stream now, with the call counted on its
    /// connection. A connection that ended before this call's stream began
    /// is replaced once: nothing was sent on it.
    async fn ready_sender(self: &Arc<Self>) -> Result<(SendRequest<Bytes>, InFlight), BoxError> {
        let (generation, conn) = self.conn().await?;
        let in_flight = InFlight::new(&conn.vitals);
        match conn.sender.ready().await {
            Ok(sender) => Ok((sender, in_flight)),
            Err(_) => {
                self.forget(generation);
                let (_, conn) = self.conn().await?;
                let in_flight = InFlight::new(&conn.vitals);
                let sender = conn.sender.ready().await.map_err(not_sent)?;
                Ok((sender, in_flight))
            }
        }
    }

    /// The open connection, connecting first if there is none.
    async fn conn(self: &Arc<Self>) -> Result<(u64, Conn), BoxError> {
        let (generation, attempt) = {
            let mut state = self.state.lock();
            match &*state {
                State::Open(generation, conn) => return Ok((*generation, conn.clone())),
                State::Connecting(generation, attempt) => (*generation, attempt.clone()),
                State::Idle => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                    let task = tokio::spawn(connect(
                        self.target.clone(),
                        Arc::downgrade(self),
                        generation,
                    ));
                    let attempt = async move {
                        task.await
                            .unwrap_or_else(|_| Err(Arc::new(ConnectFailed::Stopped)))
                    }
                    .boxed()
                    .shared();
                    *state = State::Connecting(generation, attempt.clone());
                    (generation, attempt)
                }
            }
        };
        let outcome = attempt.await;
        let mut state = self.state.lock();
        let current = matches!(&*state, State::Connecting(g, _) if *g == generation);
        match outcome {
            Ok(conn) => {
                if current {
                    *state = State::Open(generation, conn.clone());
                }
                Ok((generation, conn))
            }
            Err(failed) => {
                if current {
                    *state = State::Idle;
                }
                Err(ConnectFailed::into_call_error(failed))
            }
        }
    }

    /// The connection of `generation` ended: the next call opens another.
    fn forget(&self, generation: u64) {
        let mut state = self.state.lock();
        if matches!(&*state, State::Open(g, _) if *g == generation) {
            *state = State::Idle;
        }
    }

    /// Readies a request's head for the connection: the endpoint's scheme
    /// and authority, and the gateway's user agent. The headers HTTP/2
    /// forbids are not looked for on every call: tonic's client sets none,
    /// REST metadata never carries them (`metadata::is_reserved`), and the
    /// pass-through strips them once ([`super::strip_connection_headers`]).
    fn prepare(&self, head: &mut http::request::Parts) {
        let mut parts = std::mem::take(&mut head.uri).into_parts();
        parts.scheme = Some(self.target.scheme.clone());
        parts.authority = Some(self.target.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        // Scheme, authority and path are all set: the parts make a URI.
        head.uri = Uri::from_parts(parts).unwrap_or_default();
        head.version = http::Version::HTTP_2;
        add_user_agent(&mut head.headers, &self.target.user_agent);
    }
}

/// Sets the user agent, after the client's own if it sent one (as tonic's
/// channel does).
fn add_user_agent(headers: &mut HeaderMap, ours: &HeaderValue) {
    match headers.get(header::USER_AGENT) {
        None => {
            headers.insert(header::USER_AGENT, ours.clone());
        }
        Some(theirs) => {
            let mut both = Vec::with_capacity(theirs.len() + 1 + ours.len());
            both.extend_from_slice(theirs.as_bytes());
            both.push(b' ');
            both.extend_from_slice(ours.as_bytes());
            if let Ok(both) = HeaderValue::from_bytes(&both) {
                headers.insert(header::USER_AGENT, both);
            }
        }
    }
}

/// A response body: the stream's data (its flow-control window given
/// back as it is read), then its trailers.
struct Incoming {
    stream: RecvStream,
    data_done: bool,
    bounds: MessageBounds,
    in_flight: InFlight,
    abandon: Option<Abandon>,
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::task::{Poll, ready};
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    self.bounds.follow(&data)?;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(self.in_flight.explain(err)))),
                None => self.data_done = true,
            }
        }
        let trailers = ready!(self.stream.poll_trailers(cx));
        if let Some(abandon) = &mut self.abandon {
            abandon.disarm();
        }
        match trailers {
            Ok(Some(mut trailers)) => {
                self.bounds.check_trailers(&trailers)?;
                super::drop_undecodable_details(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(None) => {
                self.bounds.check_finish()?;
                Poll::Ready(None)
            }
            Err(err) => Poll::Ready(Some(Err(self.in_flight.explain(err)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not while a check at the end would fail: the error must be
        // polled for, or a relay would end the response without it.
        self.stream.is_end_stream() && self.bounds.check_finish().is_ok()
    }
}

/// A failure to open the call's stream. When the connection had ended (a
/// GOAWAY, a reset socket) nothing was sent, so it reads as a failure to
/// connect: the call may go to another endpoint.
fn not_sent(err: h2::Error) -> BoxError {
    if err.is_go_away() || err.is_io() {
        Box::new(tonic::ConnectError(Box::new(err)))
    } else {
        Box::new(err)
    }
}

mod coalesce;
mod connection;
mod heard;
mod request_body;
#[cfg(test)]
mod tests;
mod tls;
