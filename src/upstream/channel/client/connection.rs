//! Opening an HTTP/2 connection (over TLS for a TLS endpoint), and the
//! task that drives it until it ends, its peer stops answering pings, or
//! no one holds it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use h2::client::Connection;
use h2::{Ping, PingPong};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt as _;

use super::coalesce::Coalesce;
use super::heard::{Heard, closed_unheard};
use super::tls::Failed as TlsFailed;
use super::{BoxError, Conn, Inner, Target, Vitals};

/// How often an open connection is pinged, and how long the answer may
/// take before the connection counts as dead.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeepAlive {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
}

pub(super) const KEEP_ALIVE: KeepAlive = KeepAlive {
    interval: Duration::from_secs(30),
    timeout: Duration::from_secs(10),
};

/// HTTP/2 settings, as hyper's client (tonic's default) has them.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
const MAX_SEND_BUFFER: usize = 1 << 20;
/// Streams opened before the peer's SETTINGS say how many it takes.
const INITIAL_MAX_STREAMS: usize = 100;

/// Why a connection could not be made.
#[derive(Debug)]
pub(super) enum ConnectFailed {
    /// The name lookup or every TCP connect failed: it says which.
    Dial(BoxError),
    Timeout(Duration),
    /// The TLS handshake failed, or the server refused the client's
    /// certificate after it (TLS 1.3 says so after the handshake, before
    /// the server's first HTTP/2 frame), or did not agree on HTTP/2.
    Tls(TlsFailed),
    /// No TLS handshake within the connect timeout.
    TlsTimeout(Duration),
    Handshake(h2::Error),
    /// The peer accepted the connection but sent no SETTINGS in time.
    Silent(Duration),
    /// The connection ended before the peer's SETTINGS, after the peer
    /// sent something (`heard`) or nothing.
    Ended {
        heard: bool,
        tls: bool,
        cause: BoxError,
    },
    /// The runtime stopped the attempt (it is shutting down).
    Stopped,
}

impl ConnectFailed {
    /// The error a call waiting for this attempt fails with. Most are
    /// tonic's [`tonic::ConnectError`]: UNAVAILABLE, the call never sent
    /// and the endpoint failed, as for a refused connection. A connection
    /// that ended before the peer's SETTINGS fails its calls as it did
    /// when they went out before the SETTINGS came (see `heard`): a peer
    /// that closed without a byte is UNAVAILABLE but counts as a broken
    /// connection (tried again only when idempotent), one that spoke
    /// another protocol is that protocol's error (502).
    pub(super) fn into_call_error(failed: Arc<ConnectFailed>) -> BoxError {
        match &*failed {
            ConnectFailed::Ended {
                heard: false, tls, ..
            } => {
                let mut status = tonic::Status::unavailable(closed_unheard(*tls));
                status.set_source(failed);
                Box::new(status)
            }
            ConnectFailed::Ended { heard: true, .. } => Box::new(failed),
            _ => Box::new(tonic::ConnectError(Box::new(failed))),
        }
    }
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailed::Dial(err) => err.fmt(f),
            ConnectFailed::Timeout(after) => write!(f, "no connection within {after:?}"),
            ConnectFailed::Tls(failed) => failed.fmt(f),
            ConnectFailed::TlsTimeout(after) => write!(
                f,
                "the upstream accepted the connection but the TLS handshake did not end within {after:?} (timeouts.connect)"
            ),
            ConnectFailed::Handshake(_) => f.write_str("HTTP/2 handshake failed"),
            ConnectFailed::Silent(after) => write!(
                f,
                "the upstream accepted the connection but sent no HTTP/2 SETTINGS within {after:?} (timeouts.connect): is it an HTTP/2 server?"
            ),
            ConnectFailed::Ended {
                heard: false, tls, ..
            } => f.write_str(closed_unheard(*tls)),
            ConnectFailed::Ended { heard: true, .. } => {
                f.write_str("the upstream answered the HTTP/2 handshake with something else")
            }
            ConnectFailed::Stopped => f.write_str("the connection attempt was stopped"),
        }
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectFailed::Dial(err) => err.source(),
            ConnectFailed::Timeout(_)
            | ConnectFailed::TlsTimeout(_)
            | ConnectFailed::Silent(_)
            | ConnectFailed::Stopped => None,
            ConnectFailed::Tls(failed) => failed.source(),
            ConnectFailed::Handshake(err) => Some(err),
            ConnectFailed::Ended { cause, .. } => Some(&**cause),
        }
    }
}

/// Opens a connection and starts the task that drives it.
pub(super) async fn connect(
    target: Target,
    channel: Weak<Inner>,
    generation: u64,
) -> Result<Conn, Arc<ConnectFailed>> {
    // The dial, the TLS handshake and the HTTP/2 handshake share
    // `timeouts.connect`.
    let deadline = tokio::time::Instant::now() + target.connect_timeout;
    // The connector times each address; this bounds the name lookup too.
    let dial = target.connector.clone().oneshot(target.uri.clone());
    let tcp = match tokio::time::timeout_at(deadline, dial).await {
        Ok(Ok(tcp)) => tcp.into_inner(),
        // The connector's own timer (every address ran out of its share)
        // says "deadline has elapsed", which reads like the call's.
        Ok(Err(err)) if timed_out(&err) => {
            return Err(Arc::new(ConnectFailed::Timeout(target.connect_timeout)));
        }
        Ok(Err(err)) => return Err(Arc::new(ConnectFailed::Dial(err.into()))),
        Err(_) => return Err(Arc::new(ConnectFailed::Timeout(target.connect_timeout))),
    };
    let Some(tls) = &target.tls else {
        return start(tcp, target, deadline, channel, generation).await;
    };
    let stream = match tokio::time::timeout_at(deadline, tls.handshake(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(failed)) => return Err(Arc::new(ConnectFailed::Tls(failed))),
        Err(_) => return Err(Arc::new(ConnectFailed::TlsTimeout(target.connect_timeout))),
    };
    start(stream, target, deadline, channel, generation).await
}

/// Runs the HTTP/2 handshake on `io` until the peer's SETTINGS come (by
/// `deadline`), then starts the task that drives the connection. Generic,
/// so that a cleartext connection stays a bare `TcpStream`.
async fn start<S>(
    io: S,
    target: Target,
    deadline: tokio::time::Instant,
    channel: Weak<Inner>,
    generation: u64,
) -> Result<Conn, Arc<ConnectFailed>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tls = target.tls.is_some();
    let vitals = Arc::new(Vitals {
        tls,
        ..Vitals::default()
    });
    let io = Heard::new(io, Arc::clone(&vitals));
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(crate::upstream::channel::MAX_RESPONSE_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|err| Arc::new(ConnectFailed::Handshake(err)))?;
    // `handshake` only queues our preface. The peer's SETTINGS end the
    // handshake: a peer that accepts and never sends them (a process
    // that hangs, a port that is not HTTP/2) is not connected to, so its
    // calls fail as unreachable at `timeouts.connect`, before anything
    // is sent, and are not left to a deadline or to the pings.
    let settled = async {
        tokio::select! {
            biased;
            () = vitals.settings.notified() => Ok(()),
            ended = &mut connection => Err(ended),
        }
    };
    match tokio::time::timeout_at(deadline, settled).await {
        Ok(Ok(())) => {}
        Ok(Err(ended)) => {
            let cause: BoxError = match ended {
                Err(err) => Box::new(err),
                Ok(()) => Box::new(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the connection closed",
                )),
            };
            let heard = vitals.heard.load(Ordering::Acquire);
            // A TLS 1.3 server refuses a client certificate after the
            // handshake, with an alert read here: still the handshake's
            // failure, the endpoint's and not the calls'.
            if let Some(refused) = vitals.tls_refused.get() {
                let cause = Box::new(refused.clone());
                return Err(Arc::new(ConnectFailed::Tls(TlsFailed::from_cause(cause))));
            }
            return Err(Arc::new(ConnectFailed::Ended { heard, tls, cause }));
        }
        Err(_) => return Err(Arc::new(ConnectFailed::Silent(target.connect_timeout))),
    }
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

/// Whether a dial failed because its time ran out.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    crate::upstream::chain(err).any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Runs a connection until it ends, its peer stops answering pings, or
/// every handle to it is gone; then lets the channel open another. A peer
/// that stopped answering is named to the calls in flight before they
/// fail with the dropped connection.
async fn drive<S>(
    connection: Connection<Heard<S>, Bytes>,
    keep_alive: impl Future<Output = String>,
    vitals: Arc<Vitals>,
    channel: Weak<Inner>,
    generation: u64,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
