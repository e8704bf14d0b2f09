//! The listener: accepts connections (HTTP/1.1 and HTTP/2 on one port, in
//! cleartext or over TLS) and serves every request against the current
//! snapshot.

mod accept;
mod body;
mod coding;
mod connect;
mod grpc;
pub(crate) use body::BodyBudget;
pub(crate) use group::Groups;
pub(crate) use own::{OwnServices, is_own_method};
mod connection;
mod group;
mod leftover;
mod listener;
mod own;
mod proxy;
pub mod rest;
mod service;
mod stream;
mod streaming;
mod websocket;

pub(crate) use connection::Transport;
pub use service::HttpService;
pub use stream::StreamFraming;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::CorsOptions;
use crate::metrics::Face;

use crate::snapshot::Snapshot;
use crate::tls::ServerTls;

/// The gateway's shared state: the current snapshot, swapped atomically,
/// and whether it is ready to serve.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    /// Set once the descriptors are complete (every reflecting upstream
    /// has answered at least once); `/readyz` and the gateway's own
    /// `grpc.health.v1` report it.
    ready: std::sync::atomic::AtomicBool,
    /// Set once shutdown starts: the listener takes no new connections
    /// and finishes what is in flight, so the gateway is no longer ready.
    draining: std::sync::atomic::AtomicBool,
}

impl Gateway {
    /// A gateway serving `snapshot`, ready.
    pub fn new(snapshot: Snapshot) -> Arc<Gateway> {
        Gateway::with_readiness(snapshot, true)
    }

    /// A gateway serving `snapshot`, ready or not yet.
    pub fn with_readiness(snapshot: Snapshot, ready: bool) -> Arc<Gateway> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            ready: ready.into(),
            draining: false.into(),
        })
    }

    /// Whether the gateway is ready to serve: its descriptors are
    /// complete and it is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire) && !self.is_draining()
    }

    /// Whether shutdown has started: new connections are refused while
    /// the requests in flight finish.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the gateway as shutting down, for good: what it answers
    /// about readiness says so from now on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Marks the gateway ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready
            .store(ready, std::sync::atomic::Ordering::Release);
    }

    /// The current snapshot; a request keeps the one it started with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot for new requests.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The HTTP service.
    ///
    /// Request bodies in gzip, br or zstd are decoded where they are read
    /// (see `coding`); responses are compressed as the client's `Accept-Encoding` allows.
    /// With `cors`, browsers' cross-origin requests and preflights are
    /// answered as configured.
    pub fn service(self: &Arc<Self>, cors: Option<&CorsOptions>) -> HttpService {
        HttpService::new(self.clone(), cors)
    }
}

/// Folds the metrics' histogram samples into their buckets every few
/// seconds, whether or not anything scrapes them (they would pile up),
/// and drops rate limit buckets whose keys went idle.
async fn metrics_upkeep(gateway: Arc<Gateway>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let snapshot = gateway.snapshot();
        snapshot.metrics.run_upkeep();
        snapshot.rate_limits.upkeep();
    }
}

/// Serves one request, in its span when the gateway traces.
async fn serve(gateway: Arc<Gateway>, mut request: Request) -> Response {
    own::attach(&gateway, &mut request);
    let snapshot = gateway.snapshot();
    let Some(tracing) = &snapshot.tracing else {
        return dispatch(snapshot, request).await;
    };
    let span = tracing.start(&snapshot, &mut request);
    let response = Box::pin(dispatch(Arc::clone(&snapshot), request)).await;
    span.finish(response)
}

/// A route group's stack when the request's path is in one, else the
/// gateway's own handling.
async fn dispatch(snapshot: Arc<Snapshot>, request: Request) -> Response {
    if let Some((group, proxied)) = snapshot.groups.find(request.uri().path()) {
        let group = group.clone();
        if proxied {
            note_face(&snapshot, &request, Face::Proxy);
            let started = tokio::time::Instant::now();
            let metrics = snapshot.metrics.clone();
            let response = match check_header_block(&snapshot.limits, request.headers()) {
                Ok(()) => group::serve(&group, snapshot, request).await,
                Err(err) => err.into_response(&snapshot.pool, &snapshot.codec),
            };
            metrics.record(Face::Proxy, response.status(), started.elapsed());
            return response;
        }
        return group::serve(&group, snapshot, request).await;
    }
    handle(snapshot, request).await
}

/// Tells the request's span (when it records) how the client spoke.
fn note_face(snapshot: &Snapshot, request: &Request, face: Face) {
    if let Some(notes) = crate::trace::SpanNotes::of(snapshot, request.extensions()) {
        notes.face(face);
    }
}

/// The gateway's own handling of a request: gRPC, Connect, WebSocket or
/// REST, told apart by its headers.
///
/// Each kind's future is boxed on its own: held inline, this one would be
/// as large as the largest of them (8 KiB), and the layers above move it
/// by value several times per request.
async fn handle(snapshot: Arc<Snapshot>, request: Request) -> Response {
    let started = tokio::time::Instant::now();
    let metrics = snapshot.metrics.clone();
    let flavor = grpc::Flavor::of(&request);
    let face = match flavor {
        Some(flavor) => flavor.face(),
        None if connect::is_connect(&request) => Face::Connect,
        None if websocket::is_upgrade(&request) => Face::WebSocket,
        None => Face::Rest,
    };
    note_face(&snapshot, &request, face);
    let response = match (face, flavor) {
        (_, Some(flavor)) => Box::pin(grpc::handle(snapshot, flavor, request)).await,
        (Face::Connect, None) => Box::pin(connect::handle(snapshot, request)).await,
        (Face::WebSocket, None) => Box::pin(websocket::handle(snapshot, request)).await,
        (_, None) => Box::pin(rest::handle(snapshot, request)).await,
    };
    metrics.record(face, response.status(), started.elapsed());
    response
}

/// Whether `headers` are those of a CORS preflight (with the OPTIONS
/// method): they name an origin and the method the page means to use
/// (Fetch), and ask for no protocol upgrade.
pub(crate) fn is_preflight(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && !headers.contains_key(http::header::UPGRADE)
}

/// `limits.max_header_bytes` and `limits.max_headers`, on every face
/// (REST, gRPC, gRPC-Web, Connect, WebSocket upgrades, proxied route
/// groups): the HTTP layer's
/// own bounds are looser, and a header block past the limit would
/// otherwise reach the backend as metadata.
pub(crate) fn check_header_block(
    limits: &crate::config::Limits,
    headers: &http::HeaderMap,
) -> Result<(), crate::error::GatewayError> {
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(crate::error::GatewayError::HeadersTooLarge(
            limits.max_header_bytes,
        ));
    }
    if headers.len() > limits.max_headers {
        return Err(crate::error::GatewayError::TooManyHeaders(
            limits.max_headers,
        ));
    }
    Ok(())
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Largest request header block (HTTP/1.1 and HTTP/2).
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1.1 request.
    pub max_headers: usize,
    /// How long shutdown waits for in-flight requests (zero: not at
    /// all); those still running then are cut off.
    pub shutdown_grace: Duration,
    /// A connection with no request in flight for this long is closed
    /// (also one that never sends a request).
    pub idle_timeout: Duration,
    /// Most connections open at once; past it, new ones wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
    /// Cross-origin requests, if any are allowed.
    pub cors: Option<CorsOptions>,
}

impl ListenerOptions {
    /// The options `config` sets.
    pub fn of(config: &crate::Config) -> ListenerOptions {
        ListenerOptions {
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
            shutdown_grace: config.timeouts.shutdown,
            idle_timeout: config.timeouts.idle,
            max_connections: config.limits.max_connections,
            cors: config.cors.clone(),
        }
    }
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            max_header_bytes: 64 << 10,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            cors: None,
        }
    }
}

/// A running listener.
pub struct Server {
    local_addr: SocketAddr,
    /// Told when shutdown starts, for readiness.
    gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// What keeps the snapshot current, when the gateway reloads.
    reloading: Option<Reloading>,
}

/// Its address and state, not the gateway inside: the snapshot's
/// descriptors print without end (a recursive message type, such as
/// `google.protobuf.Struct`, prints its fields' types again and again).
impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("draining", &self.gateway.is_draining())
            .field("reloading", &self.reloading.is_some())
            .finish_non_exhaustive()
    }
}

/// A server's reloading machinery: stopped with the server.
#[derive(Debug)]
pub(crate) struct Reloading {
    pub(crate) reloader: Arc<crate::reload::Reloader>,
    pub(crate) admin_addr: Option<SocketAddr>,
    /// Background loops (the file watcher among them) and the admin
    /// listener.
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `gateway` on `listener`, in cleartext.
    pub fn start(
        listener: TcpListener,
        gateway: Arc<Gateway>,
        options: ListenerOptions,
    ) -> std::io::Result<Server> {
        Server::start_with_tls(listener, gateway, options, None)
    }

    /// [`Server::start`], with TLS when `tls` is given.
    pub(crate) fn start_with_tls(
        listener: TcpListener,
        gateway: Arc<Gateway>,
        options: ListenerOptions,
        tls: Option<Arc<ServerTls>>,
    ) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let secure = tls.is_some();
        let serving = listener::accept_loop(
            listener,
            gateway.service(options.cors.as_ref()),
            options,
            tls,
            rx,
        );
        let upkeep = metrics_upkeep(gateway.clone());
        // The upkeep runs as long as the listener: it never ends itself.
        let task = tokio::spawn(async move {
            tokio::select! {
                () = serving => {}
                () = upkeep => {}
            }
        });
        tracing::info!(addr = %local_addr, tls = secure, "Listening");
        Ok(Server {
            local_addr,
            gateway,
            shutdown: Some(tx),
            task,
            reloading: None,
        })
    }

    pub(crate) fn with_reloading(mut self, reloading: Reloading) -> Server {
        self.reloading = Some(reloading);
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.reloading.as_ref().and_then(|r| r.admin_addr)
    }

    /// What reloads the snapshot (when started with [`crate::start`]).
    pub fn reloader(&self) -> Option<&Arc<crate::reload::Reloader>> {
        self.reloading.as_ref().map(|r| &r.reloader)
    }

    /// Stops accepting, waits for in-flight requests (up to the grace
    /// period), then returns. From its start the gateway reports itself
    /// not ready (`/readyz` 503, `grpc.health.v1` `NOT_SERVING`).
    pub async fn shutdown(mut self) {
        self.gateway.start_draining();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        // The spans of the last requests, before the process ends.
        if let Some(tracing) = &self.gateway.snapshot().tracing {
            tracing.flush().await;
        }
    }

    /// Waits until the server stops.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.shutdown.is_some() {
            self.task.abort();
        }
        if let Some(reloading) = &self.reloading {
            for task in &reloading.tasks {
                task.abort();
            }
        }
    }
}
