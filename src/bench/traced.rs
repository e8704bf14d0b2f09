//! `get-traced`: the `get` requests through a second gateway that traces
//! every one of them (`sample_ratio: 1`), its spans exported over
//! OTLP/gRPC to a collector in the bench's process that counts and drops
//! them. Next to `get`, the table shows what tracing costs a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::task::JoinHandle;

use super::report::{Report, Row};
use super::{BenchError, Options, Targets, child, gateway_config, run_scenario, scenario};

/// Runs `get` through a tracing gateway, with `backend` as its upstream.
pub(super) async fn run(
    options: &Options,
    backend: &str,
    report: &mut Report,
    progress: &mut dyn FnMut(&Row),
) -> Result<(), BenchError> {
    let sink = Sink::start().await?;
    let config = format!(
        "{}tracing:\n  otlp_endpoint: http://{}\n  sample_ratio: 1\n",
        gateway_config(backend),
        sink.addr
    );
    let gateway = child::Gateway::spawn(
        &options.gateway_binary,
        &options.gateway_args(),
        &config,
        &[("bench.pb", scenario::DESCRIPTOR_SET)],
    )
    .await?;
    let mut get = scenario::all()?
        .into_iter()
        .find(|s| s.name == "get")
        .ok_or_else(|| BenchError::Setup("no `get` scenario".to_owned()))?;
    get.name = "get-traced";
    get.label = format!(
        "{}; every request traced (a span each, exported over OTLP/gRPC to a collector in the bench)",
        get.label
    );
    let targets = Targets {
        gateway: &gateway,
        backend,
    };
    run_scenario(&get, targets, options, report, progress).await?;
    // The last batch goes a second after its first span.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(gateway);
    // Measured requests only: warm-up requests are traced too.
    let measured: u64 = report
        .results
        .iter()
        .filter(|r| r.scenario == get.name && r.target == "protogate")
        .map(|r| r.requests)
        .sum();
    report.notes.push(format!(
        "get-traced: {} spans reached the bench's collector, for {measured} measured requests",
        sink.spans.load(Ordering::Relaxed)
    ));
    Ok(())
}

/// An OTLP/gRPC trace collector on loopback that counts the spans it is
/// sent; it stops when dropped.
struct Sink {
    addr: SocketAddr,
    spans: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Sink {
    async fn start() -> Result<Sink, BenchError> {
        let setup =
            |e: std::io::Error| BenchError::Setup(format!("cannot start the trace collector: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(setup)?;
        let addr = listener.local_addr().map_err(setup)?;
        let spans = Arc::new(AtomicU64::new(0));
        let counting = Counting(Arc::clone(&spans));
        let serving = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(counting))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(async move {
            if let Err(err) = serving.await {
                tracing::warn!(error = %err, "The bench's trace collector stopped");
            }
        });
        Ok(Sink { addr, spans, task })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Counting(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
