//! The accept loop: a bounded number of connections, each served on its
//! own task; on shutdown, stop accepting and let connections finish within
//! the grace period.
//!
//! With TLS, each connection's task does the handshake first, with the
//! server config current at that moment (a reload swaps it for the next
//! handshakes) and within [`HANDSHAKE_TIMEOUT`]; the connection holds its
//! slot under the limit from the accept on. A handshake that fails closes
//! that connection only; a cleartext HTTP request gets a 400 saying to
//! use `https://`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::HttpService;
use super::ListenerOptions;
use super::connection::{self, Accepted, Transport};
use crate::config::Limits;
use crate::tls::ServerTls;

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn accept_loop(
    listener: TcpListener,
    service: HttpService,
    options: ListenerOptions,
    tls: Option<Arc<ServerTls>>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let builder = builder(&options);
    let limit = connection_limit(options.max_connections);
    let slots = Arc::new(Semaphore::new(limit as usize));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut backoff = Duration::from_millis(5);
    let mut last_warning: Option<Instant> = None;
    // The connections' tasks, so that those still open when the grace
    // period ends are cut here (not when the process ends after it).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // A free slot first: at the limit, new connections wait in the
        // kernel's queue instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, and
                    // say so at most once a second.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %err, "Accept failed; backing off");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        backoff = Duration::from_millis(5);
        let _ = stream.set_nodelay(true);
        let accepted = Accepted {
            builder: builder.clone(),
            client,
            transport: if tls.is_some() {
                Transport::Tls
            } else {
                Transport::Tcp
            },
            service: service.clone(),
            idle_timeout: options.idle_timeout,
            shutdown: closing_rx.clone(),
            permit,
            grace: options.shutdown_grace,
        };
        // Those that ended leave the set, which holds only open ones.
        while connections.try_join_next().is_some() {}
        match &tls {
            Some(tls) => connections.spawn(serve_tls(tls.current(), stream, accepted)),
            None => connections.spawn(connection::serve(accepted, stream)),
        };
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection holds a slot until it closes: all slots back means
    // all connections are done.
    if tokio::time::timeout(options.shutdown_grace, slots.acquire_many(limit))
        .await
        .is_err()
    {
        // Limitation (README, Limits): a REST or gRPC stream still running
        // is cut with its connection, without a last error line or status;
        // only the stream's own layer knows its framing, and it is not told
        // the grace period (WebSocket calls are: see `connection::Lease`).
        tracing::warn!("Shutdown grace period over; closing remaining connections");
        // Cut now, so that what they were serving ends before the server
        // says it has stopped (the spans of their requests among it).
        connections.abort_all();
        let cut = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(CUT_WAIT, cut).await;
    }
}

/// How long the connections cut at the end of the grace period are given
/// to drop what they hold.
const CUT_WAIT: Duration = Duration::from_millis(500);

/// The number of connection slots for `max_connections`: at least one,
/// and at most [`Limits::MAX_CONNECTIONS`], which the config enforces
/// (callers of the library may skip that check). One number sizes the
/// slots and counts them back on shutdown, so the wait cannot end while a
/// connection still holds one.
fn connection_limit(max_connections: usize) -> u32 {
    let most = u32::try_from(Limits::MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let limit = u32::try_from(max_connections).map_or(most, |n| n.clamp(1, most));
    if usize::try_from(limit).ok() != Some(max_connections) {
        tracing::warn!(
            max_connections,
            used = limit,
            "Connection limit out of range; using the nearest bound"
        );
    }
    limit
}

/// Serves `accepted` over TLS once the client's handshake with `config`
/// is done; one that fails, takes too long or is cut by shutdown closes
/// the connection.
async fn serve_tls(config: Arc<rustls::ServerConfig>, stream: TcpStream, accepted: Accepted) {
    let client = accepted.client;
    let mut closing = accepted.shutdown.clone();
    let shaking = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(config, stream, client));
    let stream = tokio::select! {
        result = shaking => match result {
            Ok(Some(stream)) => stream,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!(%client, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                return;
            }
        },
        _ = closing.changed() => return,
    };
    connection::serve(accepted, stream).await;
}

/// The server side of the handshake. A cleartext HTTP request gets a 400
/// that says to use `https://` instead of a TLS alert it cannot read.
async fn handshake(
    config: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    client: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    if is_cleartext_http(&stream).await {
        tracing::debug!(%client, "Cleartext HTTP request on the TLS listener");
        refuse_cleartext(stream).await;
        return None;
    }
    match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
        Ok(stream) => Some(stream),
        Err(err) => {
            tracing::debug!(%client, error = %err, "TLS handshake failed");
            None
        }
    }
}

/// Whether the client's first byte starts an HTTP method (or an empty
/// line before one, which RFC 9112 §2.2 lets a server skip); a TLS
/// client's starts a handshake record (22).
async fn is_cleartext_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase() || b"\r\n".contains(&first[0]))
}

/// Answers a cleartext request with a 400 (an HTTP/2 client, with a
/// GOAWAY saying the same) and closes, after the client does: closing on
/// bytes not read would reset the connection and could lose the answer.
async fn refuse_cleartext(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const MESSAGE: &str = "this port speaks TLS: use https://";
    // The preface's first bytes may come in more than one segment: waited
    // for a little while they still could be it.
    let mut start = [0u8; 4];
    for _ in 0..10 {
        match stream.peek(&mut start).await {
            Ok(n) if n > 0 && n < 4 && start[..n] == b"PRI "[..n] => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => break,
        }
    }
    let http2 = start == *b"PRI ";
    let answer = if http2 {
        goaway(MESSAGE)
    } else {
        let body = format!(r#"{{"code":3,"message":"{MESSAGE}","details":[]}}"#);
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    if stream.write_all(&answer).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
}

/// An HTTP/2 server's first frames refusing the connection: its SETTINGS
/// (which the client waits for) and a GOAWAY, PROTOCOL_ERROR, with `why`
/// as debug data (RFC 9113 §6.8).
fn goaway(why: &str) -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const PROTOCOL_ERROR: u32 = 0x1;
    let frame = |kind: u8, payload: &[u8]| {
        let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, 0, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let mut payload = Vec::with_capacity(8 + why.len());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(&PROTOCOL_ERROR.to_be_bytes());
    payload.extend_from_slice(why.as_bytes());
    let mut out = frame(SETTINGS, &[]);
    out.extend(frame(GOAWAY, &payload));
    out
}

fn builder(options: &ListenerOptions) -> auto::Builder<TokioExecutor> {
    // The config's bounds, for callers of the library that skip its
    // check: the parser allocates by these on every request.
    let header_bytes = options.max_header_bytes.min(Limits::MAX_HEADER_BYTES);
    let header_fields = options.max_headers.clamp(1, Limits::MAX_HEADERS);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // Twice the limits: header blocks past a limit but within this
        // reach the gateway, which answers a JSON 431; only larger ones get
        // the HTTP layer's bare 431.
        .max_buf_size(header_bytes.saturating_mul(2).max(16 << 10))
        .max_headers(header_fields.saturating_mul(2));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(header_bytes * 2).unwrap_or(u32::MAX));
    builder
}
