//! The accept loop: a bounded number of connections, each served on its
//! own task; on shutdown, stop accepting and let connections finish within
//! the grace period.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::Instant;

use super::ListenerOptions;
use super::connection;

pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    options: ListenerOptions,
    mut shutdown: oneshot::Receiver<()>,
) {
    let builder = builder(&options);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut backoff = Duration::from_millis(5);
    let mut last_warning: Option<Instant> = None;
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
        tokio::spawn(connection::serve(
            builder.clone(),
            stream,
            client,
            router.clone(),
            options.idle_timeout,
            closing_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection holds a slot until it closes: all slots back means
    // all connections are done.
    let all = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(options.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("Shutdown grace period over; closing remaining connections");
    }
}

fn builder(options: &ListenerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // Twice the limits: header blocks past a limit but within this
        // reach the gateway, which answers a JSON 431; only larger ones get
        // the HTTP layer's bare 431.
        .max_buf_size((options.max_header_bytes * 2).max(16 << 10))
        .max_headers(options.max_headers.saturating_mul(2));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(options.max_header_bytes * 2).unwrap_or(u32::MAX));
    builder
}
