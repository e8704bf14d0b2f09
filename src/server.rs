//! The listener: accepts connections (HTTP/1.1 and HTTP/2 cleartext on one
//! port) and serves every request against the current snapshot.

mod body;
pub mod rest;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

use crate::snapshot::Snapshot;
use rest::ClientAddr;

/// The gateway's shared state: the current snapshot, swapped atomically.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
}

impl Gateway {
    /// A gateway serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Arc<Gateway> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
        })
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
    /// Request bodies in gzip, br or zstd are decoded on the fly (the body
    /// limit counts decoded bytes, so a small bomb cannot grow past it);
    /// responses are compressed as the client's `Accept-Encoding` allows.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .fallback(serve_rest)
            .with_state(self.clone())
            .layer(CompressionLayer::new().no_deflate())
            .layer(
                RequestDecompressionLayer::new()
                    .no_deflate()
                    .pass_through_unaccepted(true),
            )
    }
}

async fn serve_rest(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let snapshot = gateway.snapshot();
    rest::handle(&snapshot, request).await
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Largest request header block (HTTP/1.1 and HTTP/2).
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            max_header_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A running listener.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts serving `gateway` on `listener`.
    pub fn start(
        listener: TcpListener,
        gateway: Arc<Gateway>,
        options: ListenerOptions,
    ) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, gateway.router(), options, rx));
        tracing::info!(addr = %local_addr, "Listening");
        Ok(Server {
            local_addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, waits for in-flight requests (up to the grace
    /// period), then returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
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
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    options: ListenerOptions,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(options.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %err, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr(addr));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(client = %addr, error = %err, "Connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Shutdown grace period over; closing remaining connections");
    }
}
