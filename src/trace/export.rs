//! Spans on their way to the collector: a bounded queue the request path
//! hands finished spans to without waiting, and a task of the gateway's
//! runtime that sends them in batches.
//!
//! Written here rather than taken from the SDK's batch processors: those
//! run the export on a thread of their own (where the OTLP/gRPC client,
//! which needs the runtime's reactor, cannot run) or block the caller on
//! shutdown, and a snapshot (with its tracer) may be dropped on any of the
//! runtime's threads after a reload.

use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::{Notify, mpsc};

use super::TracingConfig;
use crate::metrics::{Metrics, SpanOutcome};

/// Most spans in one export.
const MAX_BATCH: usize = 512;
/// How long a batch waits to fill after its first span.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Where spans go once ended: the queue.
#[derive(Debug)]
pub(super) struct Queue {
    spans: mpsc::Sender<SpanData>,
    stop: Arc<Notify>,
    dropped: Counter,
}

/// What the tracer keeps of the export task.
#[derive(Debug)]
pub(super) struct Handle {
    flush: mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    pub(super) health: Arc<Health>,
}

/// Whether the collector takes spans, as the last export found (for
/// `/admin/status`).
#[derive(Debug, Default)]
pub(super) struct Health {
    /// `None` before the first export.
    answering: parking_lot::Mutex<Option<Result<(), String>>>,
}

impl Health {
    /// `None` before the first export; then whether the last one went
    /// through, or why not.
    pub(super) fn last(&self) -> Option<Result<(), String>> {
        self.answering.lock().clone()
    }

    fn set(&self, outcome: Result<(), String>) {
        *self.answering.lock() = Some(outcome);
    }
}

/// Starts the export task for `config`, with the queue feeding it.
pub(super) fn start(
    config: &TracingConfig,
    metrics: &Metrics,
) -> Result<(Queue, Handle), (String, String)> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (name, value) in &config.headers {
        // Checked with the config: lowercase names, printable values.
        let (Ok(key), Ok(value)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()),
            value.parse(),
        ) else {
            return Err((
                "tracing.headers".to_owned(),
                format!("`{name}` cannot be sent as metadata"),
            ));
        };
        metadata.insert(key, value);
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(config.timeout)
        .with_metadata(metadata);
    if config.otlp_endpoint.starts_with("https:") {
        builder =
            builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots());
    }
    let mut exporter = builder
        .build()
        .map_err(|e| ("tracing.otlp_endpoint".to_owned(), e.to_string()))?;
    exporter.set_resource(&super::resource::resource(&config.service_name));
    let (spans, queued) = mpsc::channel(config.max_queued_spans);
    let (flush, flushes) = mpsc::channel(1);
    let stop = Arc::new(Notify::new());
    let health = Arc::new(Health::default());
    let counts = Counts {
        exported: metrics.trace_spans(SpanOutcome::Exported),
        failed: metrics.trace_spans(SpanOutcome::Failed),
        health: Arc::clone(&health),
    };
    tokio::spawn(run(
        queued,
        flushes,
        Arc::clone(&stop),
        exporter,
        counts,
        config.timeout,
    ));
    Ok((
        Queue {
            spans,
            stop,
            dropped: metrics.trace_spans(SpanOutcome::Dropped),
        },
        Handle { flush, health },
    ))
}

impl Handle {
    /// Has the task send what it holds now; true once it has, false
    /// when `timeout` passed first.
    pub(super) async fn flush(&self, timeout: Duration) -> bool {
        let (done, sent) = tokio::sync::oneshot::channel();
        let asked = tokio::time::timeout(timeout, self.flush.send(done)).await;
        matches!(asked, Ok(Ok(())))
            && matches!(tokio::time::timeout(timeout, sent).await, Ok(Ok(())))
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        // A full queue (the collector is slow or down) drops the span
        // rather than hold the request or grow without end.
        if self.spans.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Nothing waits here: [`Handle::flush`] is the awaitable flush.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    /// Tells the task to send what it holds and stop; it does so on its
    /// own time, without blocking the caller (a runtime thread).
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        self.stop.notify_one();
        Ok(())
    }
}

struct Counts {
    exported: Counter,
    failed: Counter,
    health: Arc<Health>,
}

/// The export task: a batch goes out when it is full, a second after its
/// first span, on a flush, and at the stop.
async fn run(
    mut queued: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<tokio::sync::oneshot::Sender<()>>,
    stop: Arc<Notify>,
    exporter: opentelemetry_otlp::SpanExporter,
    counts: Counts,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    loop {
        let mut flushed = None;
        let mut stopping = false;
        tokio::select! {
            biased;
            () = stop.notified() => stopping = true,
            // Disabled once the tracer is gone (no more flushes).
            Some(done) = flushes.recv() => flushed = Some(done),
            received = queued.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    stopping = true;
                } else {
                    let deadline = tokio::time::Instant::now() + BATCH_DELAY;
                    while batch.len() < MAX_BATCH {
                        let room = MAX_BATCH - batch.len();
                        tokio::select! {
                            () = tokio::time::sleep_until(deadline) => break,
                            () = stop.notified() => {
                                stopping = true;
                                break;
                            }
                            more = queued.recv_many(&mut batch, room) => {
                                if more == 0 {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        // A flush or the stop takes everything queued, in full batches,
        // while the collector takes them: after a failure the rest are
        // counted failed at once, so that a tracer replaced (or a
        // shutdown) waits at most one `timeout` on a collector that hangs.
        loop {
            if flushed.is_some() || stopping {
                while batch.len() < MAX_BATCH
                    && let Ok(span) = queued.try_recv()
                {
                    batch.push(span);
                }
            }
            if batch.is_empty() {
                break;
            }
            let sent = send(&exporter, &mut batch, &counts, timeout, &mut failing).await;
            if flushed.is_none() && !stopping {
                break;
            }
            if !sent {
                let mut lost = 0;
                while queued.try_recv().is_ok() {
                    lost += 1;
                }
                counts.failed.increment(lost);
                break;
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if stopping {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Sends one batch, counting its spans as exported or failed; a collector
/// that stops answering is warned about once, and its return noted.
/// Whether the collector took them.
async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    counts: &Counts,
    timeout: Duration,
    failing: &mut bool,
) -> bool {
    let spans = batch.len() as u64;
    let spans_out = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    match tokio::time::timeout(timeout, exporter.export(spans_out)).await {
        Ok(Ok(())) => {
            counts.exported.increment(spans);
            counts.health.set(Ok(()));
            if std::mem::take(failing) {
                tracing::info!("The trace collector takes spans again");
            }
            true
        }
        outcome => {
            counts.failed.increment(spans);
            let error = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {}", humantime::format_duration(timeout)),
            };
            counts.health.set(Err(error.clone()));
            if !std::mem::replace(failing, true) {
                tracing::warn!(%error, spans, "Cannot export spans to the trace collector; counting them as failed until it answers");
            } else {
                tracing::debug!(%error, spans, "Spans not exported");
            }
            false
        }
    }
}
