//! One accepted connection: HTTP/1.1 or HTTP/2 served until the client
//! leaves, the connection idles too long, or the server shuts down. The
//! stream is TCP, or TLS over TCP once the listener's handshake is done.
//!
//! A connection counts as idle when no request is in flight — from the
//! moment its request reaches the router until its response body is done
//! or dropped. That closes connections that never send a request, send one
//! too slowly, or sit unused between requests, without cutting long
//! streaming responses.
//!
//! A client that stops reading is another matter: its responses stay in
//! flight (or sit unflushed after them) for as long as it likes. A response
//! body whose frame was taken but which the HTTP layer has not come back
//! to for the idle timeout is stuck on the client, and the connection is
//! dropped; so is one that does not finish closing within the idle timeout
//! (a graceful close waits for unflushed bytes). A stream with nothing to
//! send is not stuck: the HTTP layer is waiting on it, not on the client.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tower::Service as _;

use super::HttpService;
use super::rest::ClientAddr;
use short_reads::ShortReads;

mod short_reads;

/// In-flight requests and the last time that count changed; response
/// bodies waiting on the client and the last time one was polled.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start`.
    last_change: AtomicU64,
    /// Bodies that gave a frame and have not been polled since.
    owed: AtomicUsize,
    /// Milliseconds after `start`.
    last_poll: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_change: AtomicU64::new(0),
            owed: AtomicUsize::new(0),
            last_poll: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_change.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long a response body has waited for the HTTP layer to take its
    /// next frame (zero when none is waiting).
    fn stalled_for(&self) -> Duration {
        if self.owed.load(Ordering::Relaxed) == 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_poll.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(since)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// How long the connection has had nothing in flight (zero while a
    /// request is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_change.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(since)
    }
}

/// One request in flight; ends when dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body that keeps its request in flight until it is done,
/// and tells the connection whether the client is taking its frames.
struct Tracked {
    body: Body,
    in_flight: InFlight,
    /// A frame was given and the body has not been polled since.
    owed: bool,
}

impl Tracked {
    fn settle(&mut self) {
        if std::mem::take(&mut self.owed) {
            self.in_flight.0.owed.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.settle();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let activity = &self.in_flight.0;
        activity
            .last_poll
            .store(activity.now_ms(), Ordering::Relaxed);
        self.settle();
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.owed = true;
            self.in_flight.0.owed.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How the client reached the listener: put in each request's extensions
/// beside [`ClientAddr`], for `X-Forwarded-Proto`. A client's own
/// `:scheme` or absolute-form target is not trusted for this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Cleartext TCP.
    Tcp,
    /// TLS over TCP, the handshake done by the listener.
    Tls,
}

impl Transport {
    /// The URI scheme a client uses to reach the listener this way.
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Transport::Tcp => "http",
            Transport::Tls => "https",
        }
    }
}

/// An accepted connection: what serving it takes besides its stream.
#[derive(Debug)]
pub(super) struct Accepted {
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) client: SocketAddr,
    pub(super) transport: Transport,
    pub(super) service: HttpService,
    pub(super) idle_timeout: Duration,
    /// Turns true when the server shuts down.
    pub(super) shutdown: watch::Receiver<bool>,
    /// Its slot under the connection limit, released when it closes.
    pub(super) permit: OwnedSemaphorePermit,
    /// How long shutdown waits for what is in flight.
    pub(super) grace: Duration,
}

/// What a connection upgraded to a WebSocket keeps of the one it came
/// from, given to each request that asks for an upgrade: the slot under
/// the connection limit, held until the socket closes (the HTTP
/// connection ends at the upgrade), and the server's shutdown, which the
/// socket is given the grace period to finish in.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    _slot: Arc<OwnedSemaphorePermit>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
}

impl Lease {
    /// Time to say "going away" before the grace period ends, so that the
    /// Close frame goes out before the process does.
    const MARGIN: Duration = Duration::from_millis(250);

    /// Ends when shutdown has started and the socket's grace is over.
    pub(crate) async fn going_away(&mut self) {
        while !*self.shutdown.borrow_and_update() {
            if self.shutdown.changed().await.is_err() {
                // The listener is gone: so is any grace.
                return;
            }
        }
        tokio::time::sleep(self.grace.saturating_sub(Self::MARGIN)).await;
    }
}

/// Serves one connection over `stream` (TCP, or TLS over it) to the end.
pub(super) async fn serve<I>(accepted: Accepted, stream: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        builder,
        client,
        transport,
        mut service,
        idle_timeout,
        mut shutdown,
        permit,
        grace,
    } = accepted;
    let activity = Activity::new();
    let lease = Lease {
        _slot: Arc::new(permit),
        shutdown: shutdown.clone(),
        grace,
    };
    let service = {
        let activity = activity.clone();
        let lease = lease.clone();
        tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            let upgrade = request.headers().contains_key(http::header::UPGRADE);
            let extensions = request.extensions_mut();
            extensions.insert(ClientAddr(client));
            extensions.insert(transport);
            if upgrade {
                extensions.insert(lease.clone());
            }
            let in_flight = activity.begin();
            // Always ready (see `HttpService::poll_ready`).
            let call = service.call(request.map(Body::new));
            async move {
                let response = call.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        body,
                        in_flight,
                        owed: false,
                    })
                }))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(
        TokioIo::new(ShortReads(stream)),
        TowerToHyperService::new(service),
    );
    tokio::pin!(connection);
    // One timer for the connection's life: a fresh sleep on each pass of
    // the loop below would be set and cancelled on every request.
    let mut check = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(100)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    // When a graceful close started.
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%client, error = %err, "Connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = check.tick() => {
                if activity.stalled_for() >= idle_timeout {
                    tracing::debug!(%client, "Dropping connection: the client stopped reading");
                    break;
                }
                match closing {
                    Some(since) if since.elapsed() >= idle_timeout => {
                        tracing::debug!(%client, "Dropping connection: it did not finish closing");
                        break;
                    }
                    Some(_) => {}
                    None if activity.idle_for() >= idle_timeout => {
                        tracing::debug!(%client, "Closing idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    None => {}
                }
            }
        }
    }
    // The slot is free once an upgraded socket's lease is dropped too.
    drop(lease);
}
