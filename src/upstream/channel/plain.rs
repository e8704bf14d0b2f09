//! Our HTTP/2 client for cleartext endpoints, on the `h2` crate.
//!
//! One connection per channel, opened by the first call and again by the
//! first call after it ends; the calls that arrive while it opens wait for
//! that one attempt (a task of its own) and share its outcome. A request
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
//! reading of a status serves both kinds of channel: a connection that
//! cannot be made, that ended before the call's stream opened, or whose
//! peer closed it without sending a byte, is a [`tonic::ConnectError`]
//! (UNAVAILABLE, and not sent); the `grpc-timeout`
//! a request carries running out is a [`tonic::TimeoutExpired`]; a call in
//! flight on a connection dropped for an unanswered ping is UNAVAILABLE,
//! naming the ping; everything else is the `h2` error.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use h2::client::{Connection, SendRequest};
use h2::{Ping, PingPong, RecvStream, SendStream};
use http::header;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tonic::body::Body;
use tower::ServiceExt as _;

use super::BoxError;
use crate::upstream::metadata::parse_grpc_timeout;
use coalesce::Coalesce;
use heard::Heard;

/// How often an open connection is pinged, and how long the answer may
/// take before the connection counts as dead.
#[derive(Debug, Clone, Copy)]
struct KeepAlive {
    interval: Duration,
    timeout: Duration,
}

const KEEP_ALIVE: KeepAlive = KeepAlive {
    interval: Duration::from_secs(30),
    timeout: Duration::from_secs(10),
};

/// HTTP/2 settings, as hyper's client (tonic's default) has them.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
const MAX_HEADER_LIST: u32 = 16 << 10;
const MAX_SEND_BUFFER: usize = 1 << 20;
/// Streams opened before the peer's SETTINGS say how many it takes.
const INITIAL_MAX_STREAMS: usize = 100;

/// Where a cleartext channel connects, and what its requests carry.
#[derive(Clone)]
pub(crate) struct Target {
    /// `http://` and the authority: what the connector dials.
    uri: Uri,
    authority: Authority,
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
        write!(f, "http://{}", self.authority)
    }
}

impl Target {
    pub(super) fn new(
        uri: &Uri,
        connect_timeout: Duration,
        user_agent: HeaderValue,
    ) -> Result<Target, String> {
        let authority = uri
            .authority()
            .ok_or_else(|| "the URL has no host".to_owned())?
            .clone();
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
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
            connector,
            connect_timeout,
            user_agent,
            keep_alive: KEEP_ALIVE,
        })
    }
}

/// A cleartext HTTP/2 channel to one endpoint.
#[derive(Clone)]
pub struct PlainChannel {
    inner: Arc<Inner>,
}

impl fmt::Debug for PlainChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PlainChannel")
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
}

/// One call counted on its connection until dropped.
struct InFlight(Arc<Vitals>);

impl InFlight {
    fn new(vitals: &Arc<Vitals>) -> InFlight {
        vitals.calls.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(vitals))
    }

    /// The error a call fails with: the connection's broken pipe reads as
    /// UNAVAILABLE with the reason, when the gateway dropped it; a
    /// connection that ended before the peer sent a byte took no call
    /// (see [`heard`]), so it reads as a failure to connect.
    fn explain(&self, err: h2::Error) -> BoxError {
        if let Some(why) = self.0.dropped.get() {
            let mut status =
                tonic::Status::unavailable(format!("the upstream stopped answering: {why}"));
            status.set_source(Arc::new(err));
            return Box::new(status);
        }
        if err.is_io() && !self.0.heard.load(Ordering::Acquire) {
            return Box::new(tonic::ConnectError(Box::new(ClosedUnheard(err))));
        }
        Box::new(err)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PlainChannel {
    pub(super) fn new(target: Target) -> PlainChannel {
        PlainChannel {
            inner: Arc::new(Inner {
                target,
                state: Mutex::new(State::Idle),
                generations: AtomicU64::new(0),
            }),
        }
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
        let response = response.await.map_err(|err| in_flight.explain(err))?;
        Ok(response.map(|stream| {
            Body::new(Incoming {
                stream,
                data_done: false,
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
                Err(Box::new(tonic::ConnectError(Box::new(failed))))
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
        parts.scheme = Some(Scheme::HTTP);
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

/// How much of a body that is ready at once is queued with the headers;
/// the rest goes through [`pipe`], which waits for flow control.
const INLINE_BUDGET: usize = 64 << 10;

/// Sends a request body on its stream: what is ready now (up to
/// [`INLINE_BUDGET`], or one message of any size) is queued with the
/// headers, the rest is sent by a task as it comes. Returns the handle
/// that stops that task (resetting the stream) when the call is dropped.
fn send_body(mut body: Body, mut stream: SendStream<Bytes>) -> Option<Abandon> {
    // Each data frame is held back until the next poll says whether it is
    // the last, so that it carries the end of the stream.
    let mut held: Option<Bytes> = None;
    let mut queued = 0;
    loop {
        let polled = if queued < INLINE_BUDGET {
            body.frame().now_or_never()
        } else {
            None
        };
        match polled {
            Some(None) => {
                let _ = stream.send_data(held.unwrap_or_default(), true);
                return None;
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    queued += data.len();
                    if let Some(data) = held.replace(data) {
                        let _ = stream.send_data(data, false);
                    }
                }
                Err(frame) => {
                    if let Some(data) = held.take() {
                        let _ = stream.send_data(data, false);
                    }
                    end_with(frame, &mut stream);
                    return None;
                }
            },
            Some(Some(Err(err))) => {
                stream.send_reset(reset_reason(&err));
                return None;
            }
            None => {
                if let Some(data) = held.take() {
                    let _ = stream.send_data(data, false);
                }
                let (abandon, abandoned) = oneshot::channel();
                tokio::spawn(pipe(body, stream, abandoned));
                return Some(Abandon(Some(abandon)));
            }
        }
    }
}

/// Ends a request stream with a frame that is not data: its trailers, or
/// (a kind of frame that should not exist) a reset.
fn end_with(frame: Frame<Bytes>, stream: &mut SendStream<Bytes>) {
    match frame.into_trailers() {
        Ok(trailers) => {
            let _ = stream.send_trailers(trailers);
        }
        Err(_) => stream.send_reset(h2::Reason::INTERNAL_ERROR),
    }
}

/// Held by a call whose body is being piped: dropped before the response
/// ended, it tells the pipe to reset the stream, as the stream
/// itself stays open while the pipe holds it; disarmed once the response
/// ended.
struct Abandon(Option<oneshot::Sender<()>>);

impl Abandon {
    /// The response ended: the call was not abandoned.
    fn disarm(&mut self) {
        if let Some(finished) = self.0.take() {
            let _ = finished.send(());
        }
    }
}

/// Sends the rest of a body as it arrives and as flow control allows;
/// stops when the peer resets the stream, and resets it when the call was
/// dropped (`abandoned` fails) or stops when its response ended.
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>, mut abandoned: oneshot::Receiver<()>) {
    loop {
        let next = tokio::select! {
            next = body.frame() => next,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
            ended = &mut abandoned => return stop(&mut stream, ended.is_ok()),
        };
        let frame = match next {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                stream.send_reset(reset_reason(&err));
                return;
            }
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return end_with(frame, &mut stream),
        };
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let granted = tokio::select! {
                granted = poll_fn(|cx| stream.poll_capacity(cx)) => granted,
                ended = &mut abandoned => return stop(&mut stream, ended.is_ok()),
            };
            let granted = match granted {
                Some(Ok(granted)) => granted,
                // The stream was reset or the connection ended; the
                // response says how.
                Some(Err(_)) | None => return,
            };
            let chunk = data.split_to(granted.min(data.len()));
            if stream.send_data(chunk, false).is_err() {
                return;
            }
        }
    }
}

/// Stops piping: a call dropped before its response ended is reset, so
/// the backend stops; after the response ended, the rest of the body is
/// moot. The reset says INTERNAL_ERROR, not CANCEL, for the reason
/// [`reset_reason`] gives: the request stream is unfinished here, and a
/// tonic server would take CANCEL for its end and act on the call.
fn stop(stream: &mut SendStream<Bytes>, response_ended: bool) {
    if !response_ended {
        stream.send_reset(h2::Reason::INTERNAL_ERROR);
    }
}

/// The reset for a request body that failed: the HTTP/2 reason it names,
/// else INTERNAL_ERROR. Never CANCEL for a body's own failure: a tonic
/// server reads a request stream reset with CANCEL as a clean end, and
/// would act on a call the gateway meant to abandon.
fn reset_reason(err: &tonic::Status) -> h2::Reason {
    let mut cause = std::error::Error::source(err);
    while let Some(err) = cause {
        if let Some(reason) = err.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return reason;
        }
        cause = err.source();
    }
    h2::Reason::INTERNAL_ERROR
}

/// A response body: the stream's data (its flow-control window given
/// back as it is read), then its trailers.
struct Incoming {
    stream: RecvStream,
    data_done: bool,
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
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(self.in_flight.explain(err)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
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

/// A connection that ended before the peer sent a byte of HTTP/2.
#[derive(Debug)]
struct ClosedUnheard(h2::Error);

impl fmt::Display for ClosedUnheard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A TLS server that gets our cleartext preface closes this way too.
        f.write_str(
            "the upstream closed the connection before it sent anything \
             (is it shutting down, or does it take TLS only? A TLS backend needs an https:// URL)",
        )
    }
}

impl std::error::Error for ClosedUnheard {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
enum ConnectFailed {
    /// The name lookup or every TCP connect failed: it says which.
    Dial(BoxError),
    Timeout(Duration),
    Handshake(h2::Error),
    /// The runtime stopped the attempt (it is shutting down).
    Stopped,
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailed::Dial(err) => err.fmt(f),
            ConnectFailed::Timeout(after) => write!(f, "no connection within {after:?}"),
            ConnectFailed::Handshake(_) => f.write_str("HTTP/2 handshake failed"),
            ConnectFailed::Stopped => f.write_str("the connection attempt was stopped"),
        }
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectFailed::Dial(err) => err.source(),
            ConnectFailed::Timeout(_) | ConnectFailed::Stopped => None,
            ConnectFailed::Handshake(err) => Some(err),
        }
    }
}

/// Opens a connection and starts the task that drives it.
async fn connect(
    target: Target,
    channel: Weak<Inner>,
    generation: u64,
) -> Result<Conn, Arc<ConnectFailed>> {
    // The connector times each address; this bounds the name lookup too.
    let dial = target.connector.clone().oneshot(target.uri.clone());
    let tcp = match tokio::time::timeout(target.connect_timeout, dial).await {
        Ok(Ok(tcp)) => tcp.into_inner(),
        Ok(Err(err)) => return Err(Arc::new(ConnectFailed::Dial(err.into()))),
        Err(_) => return Err(Arc::new(ConnectFailed::Timeout(target.connect_timeout))),
    };
    // The handshake only sends our preface; calls go out before the
    // peer's SETTINGS come, and whether it ever spoke tells how they
    // failed if it closes (`heard`).
    let vitals = Arc::new(Vitals::default());
    let tcp = Heard::new(tcp, Arc::clone(&vitals));
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|err| Arc::new(ConnectFailed::Handshake(err)))?;
    let keep_alive = keep_alive(
        connection.ping_pong(),
        target.keep_alive,
        Arc::clone(&vitals),
    );
    tokio::spawn(drive(
        connection,
        keep_alive,
        Arc::clone(&vitals),
        channel,
        generation,
    ));
    Ok(Conn { sender, vitals })
}

/// Runs a connection until it ends, its peer stops answering pings, or
/// every handle to it is gone; then lets the channel open another. A peer
/// that stopped answering is named to the calls in flight before they
/// fail with the dropped connection.
async fn drive(
    connection: Connection<Heard<TcpStream>, Bytes>,
    keep_alive: impl Future<Output = String>,
    vitals: Arc<Vitals>,
    channel: Weak<Inner>,
    generation: u64,
) {
    // The connection is dropped at the end of this block, after the
    // reason for dropping it is set: its calls fail then.
    let ended = {
        let mut connection = std::pin::pin!(Coalesce::new(connection, Arc::clone(&vitals)));
        tokio::select! {
            ended = &mut connection => ended.err().map(|err| err.to_string()),
            silent = keep_alive => {
                let _ = vitals.dropped.set(silent.clone());
                Some(silent)
            }
        }
    };
    if let Some(channel) = channel.upgrade() {
        if let Some(why) = ended {
            tracing::debug!(endpoint = ?channel.target, reason = %why, "Upstream connection ended");
        }
        channel.forget(generation);
    }
}

/// Pings the peer every `every.interval` while `calls` are in flight (as
/// hyper does by default: gRPC servers count pings on a connection without
/// calls as abuse, and grpc-go answers a few with GOAWAY); returns why the
/// connection is dead when a ping goes unanswered.
async fn keep_alive(ping_pong: Option<PingPong>, every: KeepAlive, vitals: Arc<Vitals>) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every.interval).await;
        if vitals.calls.load(Ordering::Relaxed) == 0 {
            continue;
        }
        match tokio::time::timeout(every.timeout, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return err.to_string(),
            Err(_) => return format!("no answer to a ping within {:?}", every.timeout),
        }
    }
}

mod coalesce;
mod heard;
#[cfg(test)]
mod tests;
