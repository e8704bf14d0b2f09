//! Our HTTP/2 client for cleartext endpoints, on the `h2` crate.
//!
//! One connection per channel, opened by the first call and again by the
//! first call after it ends; the calls that arrive while it opens wait for
//! that one attempt and share its outcome. A request body that is already
//! complete when the call starts (every unary call) is queued with its
//! headers, so the connection's task writes them, and whatever other calls
//! came meanwhile, together; a body still arriving (a client stream, a
//! passed-through call) is sent by a task of its own as the peer's flow
//! control allows.
//!
//! Failures keep the shapes tonic's channel gives them, so that one
//! reading of a status serves both kinds of channel: a connection that
//! cannot be made is a [`tonic::ConnectError`] (UNAVAILABLE), the
//! `grpc-timeout` a request carries running out is a
//! [`tonic::TimeoutExpired`], and everything else is the `h2` error.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use h2::client::{Connection, SendRequest};
use h2::{Ping, PingPong, RecvStream, SendStream};
use http::header::{self, HeaderName};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tonic::body::Body;

use super::BoxError;
use crate::upstream::metadata::parse_grpc_timeout;

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

/// Where a cleartext channel connects, and what its requests carry.
#[derive(Clone)]
pub(crate) struct Target {
    host: Arc<str>,
    port: u16,
    authority: Authority,
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
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .into();
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority,
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

/// One attempt to connect, awaited by every call that needs it.
type Attempt = Shared<BoxFuture<'static, Result<SendRequest<Bytes>, Arc<ConnectFailed>>>>;

enum State {
    /// No connection: the next call opens one.
    Idle,
    Connecting(u64, Attempt),
    Open(u64, SendRequest<Bytes>),
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
        let mut sender = self.ready_sender().await?;
        let end = body.is_end_stream();
        let (response, stream) = sender
            .send_request(Request::from_parts(head, ()), end)
            .map_err(BoxError::from)?;
        if !end {
            send_body(body, stream);
        }
        let response = response.await?;
        Ok(response.map(|stream| {
            Body::new(Incoming {
                stream,
                data_done: false,
            })
        }))
    }

    /// A sender that may open a stream now. A connection that ended before
    /// this call's stream began is replaced once: nothing was sent on it.
    async fn ready_sender(self: &Arc<Self>) -> Result<SendRequest<Bytes>, BoxError> {
        let (generation, sender) = self.sender().await?;
        match sender.ready().await {
            Ok(sender) => Ok(sender),
            Err(_) => {
                self.forget(generation);
                let (_, sender) = self.sender().await?;
                Ok(sender.ready().await?)
            }
        }
    }

    /// The open connection's sender, connecting first if there is none.
    async fn sender(self: &Arc<Self>) -> Result<(u64, SendRequest<Bytes>), BoxError> {
        let (generation, attempt) = {
            let mut state = self.state.lock();
            match &*state {
                State::Open(generation, sender) => return Ok((*generation, sender.clone())),
                State::Connecting(generation, attempt) => (*generation, attempt.clone()),
                State::Idle => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                    let attempt = connect(self.target.clone(), Arc::downgrade(self), generation)
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
            Ok(sender) => {
                if current {
                    *state = State::Open(generation, sender.clone());
                }
                Ok((generation, sender))
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
    /// and authority, the gateway's user agent, and none of the
    /// connection-specific headers HTTP/2 forbids.
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
        strip_connection_headers(&mut head.headers);
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

/// Removes the headers that name HTTP/1.1 connection options, which an
/// HTTP/2 request must not carry (a gRPC-Web call from an HTTP/1.1 client
/// arrives with them); `te` stays only as `trailers`.
fn strip_connection_headers(headers: &mut HeaderMap) {
    const CONNECTION_SPECIFIC: [HeaderName; 4] = [
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ];
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(names) = connection.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Sends a request body on its stream: what is ready now is queued with
/// the headers, the rest (if any) is sent by a task as it comes.
fn send_body(mut body: Body, mut stream: SendStream<Bytes>) {
    // Each data frame is held back until the next poll says whether it is
    // the last, so that it carries the end of the stream.
    let mut held: Option<Bytes> = None;
    loop {
        match body.frame().now_or_never() {
            Some(None) => {
                let _ = stream.send_data(held.unwrap_or_default(), true);
                return;
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    if let Some(data) = held.replace(data) {
                        let _ = stream.send_data(data, false);
                    }
                }
                Err(frame) => {
                    if let Some(data) = held.take() {
                        let _ = stream.send_data(data, false);
                    }
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                    }
                    return;
                }
            },
            Some(Some(Err(err))) => {
                stream.send_reset(reset_reason(&err));
                return;
            }
            None => {
                if let Some(data) = held.take() {
                    let _ = stream.send_data(data, false);
                }
                tokio::spawn(pipe(body, stream));
                return;
            }
        }
    }
}

/// Sends the rest of a body as it arrives and as flow control allows;
/// stops when the peer resets the stream.
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>) {
    loop {
        let next = tokio::select! {
            next = body.frame() => next,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
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
        match frame.into_data() {
            Ok(mut data) => {
                while !data.is_empty() {
                    stream.reserve_capacity(data.len());
                    let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
                        Some(Ok(granted)) => granted,
                        // The stream was reset or the connection ended;
                        // the response says how.
                        Some(Err(_)) | None => return,
                    };
                    let chunk = data.split_to(granted.min(data.len()));
                    if stream.send_data(chunk, false).is_err() {
                        return;
                    }
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = stream.send_trailers(trailers);
                }
                return;
            }
        }
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
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        use std::task::{Poll, ready};
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
enum ConnectFailed {
    Tcp(std::io::Error),
    Timeout(Duration),
    Handshake(h2::Error),
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailed::Tcp(_) => f.write_str("tcp connect error"),
            ConnectFailed::Timeout(after) => write!(f, "no connection within {after:?}"),
            ConnectFailed::Handshake(_) => f.write_str("HTTP/2 handshake failed"),
        }
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectFailed::Tcp(err) => Some(err),
            ConnectFailed::Timeout(_) => None,
            ConnectFailed::Handshake(err) => Some(err),
        }
    }
}

/// Opens a connection and starts the task that drives it.
async fn connect(
    target: Target,
    channel: Weak<Inner>,
    generation: u64,
) -> Result<SendRequest<Bytes>, Arc<ConnectFailed>> {
    let tcp = TcpStream::connect((&*target.host, target.port));
    let tcp = match tokio::time::timeout(target.connect_timeout, tcp).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => return Err(Arc::new(ConnectFailed::Tcp(err))),
        Err(_) => return Err(Arc::new(ConnectFailed::Timeout(target.connect_timeout))),
    };
    // Small calls go out at once; a failure here only costs latency.
    let _ = tcp.set_nodelay(true);
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|err| Arc::new(ConnectFailed::Handshake(err)))?;
    let keep_alive = keep_alive(connection.ping_pong(), target.keep_alive);
    tokio::spawn(drive(connection, keep_alive, channel, generation));
    Ok(sender)
}

/// Runs a connection until it ends, its peer stops answering pings, or
/// every handle to it is gone; then lets the channel open another.
async fn drive(
    connection: Connection<TcpStream, Bytes>,
    keep_alive: impl Future<Output = String>,
    channel: Weak<Inner>,
    generation: u64,
) {
    let ended = tokio::select! {
        ended = connection => ended.err().map(|err| err.to_string()),
        silent = keep_alive => Some(silent),
    };
    if let Some(channel) = channel.upgrade() {
        if let Some(why) = ended {
            tracing::debug!(endpoint = ?channel.target, reason = %why, "Upstream connection ended");
        }
        channel.forget(generation);
    }
}

/// Pings the peer every `every.interval`; returns why the connection is
/// dead when a ping goes unanswered.
async fn keep_alive(ping_pong: Option<PingPong>, every: KeepAlive) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every.interval).await;
        match tokio::time::timeout(every.timeout, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return err.to_string(),
            Err(_) => return format!("no answer to a ping within {:?}", every.timeout),
        }
    }
}

#[cfg(test)]
mod tests;
