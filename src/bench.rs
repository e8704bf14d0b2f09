//! `protogate bench`: measures the gateway against a no-op backend on
//! loopback — requests per second, latency percentiles, the gateway's own
//! CPU time per request and its memory — next to the same calls made
//! straight to the backend over gRPC (the floor), with tracing on, against etcd's own
//! gateway when an `etcd` binary is installed, and the time and memory to
//! load 10,000 annotated methods.
//!
//! The gateway runs as a child process (`protogate serve`, the same
//! binary) so that `/proc/<pid>` gives its CPU time and memory alone; the
//! backend and the closed-loop load generator share the bench's process.
//! Everything stays on 127.0.0.1 and every run ends by itself, bounded in
//! time and, with `--requests`, in requests. See `BENCHMARKS.md`.

mod backend;
mod child;
mod etcd;
mod grpc;
mod http;
mod load;
mod measure;
mod process;
mod report;
mod scale;
pub(crate) mod scenario;
mod targets;
mod traced;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use load::Budget;
use measure::{Measured, Watched, measure};

pub use report::{Report, Row, ScaleResult, Settings};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `protogate` binary to run the gateway with (`serve`).
    pub gateway_binary: PathBuf,
    /// How long each run sends new requests.
    pub duration: Duration,
    /// At most this many measured requests per run.
    pub requests: Option<u64>,
    /// The concurrency levels: workers, each with one request in flight.
    pub concurrency: Vec<usize>,
    /// HTTP/2 connections (and direct gRPC channels) the workers share.
    pub connections: usize,
    /// Scenario names to run (empty: all); see [`SCENARIOS`].
    pub only: Vec<String>,
    /// Methods in the generated descriptor set of the scale test.
    pub scale_methods: usize,
    /// Whether this is the short smoke run (`--quick`).
    pub quick: bool,
    /// Runtime worker threads of the gateway (`protogate --workers`).
    pub gateway_workers: u16,
}

/// Half the CPUs, at least one: the load generator and the backend run on
/// the same machine and need the rest. A gateway with a worker thread per
/// CPU here spends its time waking threads that have no CPU to run on: on two
/// CPUs, two workers cost about a third more CPU per request than one
/// (BENCHMARKS.md).
pub fn default_gateway_workers() -> u16 {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    u16::try_from(cpus / 2).unwrap_or(u16::MAX).max(1)
}

/// Every name `Options::only` takes: the load scenarios, then `get`
/// through a tracing gateway, the etcd comparison and the descriptor
/// scale test.
pub const SCENARIOS: [&str; 8] = [
    "get",
    "post-1k",
    "post-64k",
    "list-100",
    "stream-10k",
    "get-traced",
    "etcd",
    "scale",
];

impl Options {
    /// The full run: 5 s per run at concurrency 1, 16 and 256.
    pub fn new(gateway_binary: PathBuf) -> Options {
        Options {
            gateway_binary,
            duration: Duration::from_secs(5),
            requests: None,
            concurrency: vec![1, 16, 256],
            connections: 4,
            only: Vec::new(),
            scale_methods: 10_000,
            quick: false,
            gateway_workers: default_gateway_workers(),
        }
    }

    /// The smoke run: every part once, in a few seconds even in a debug
    /// build; its numbers say nothing about speed.
    pub fn quick(gateway_binary: PathBuf) -> Options {
        Options {
            duration: Duration::from_millis(100),
            concurrency: vec![1, 2],
            connections: 2,
            scale_methods: 1_000,
            quick: true,
            ..Options::new(gateway_binary)
        }
    }

    /// The arguments that start the gateway with these options.
    fn gateway_args(&self) -> [String; 2] {
        ["--workers".to_owned(), self.gateway_workers.to_string()]
    }

    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    fn budget(&self) -> Budget {
        Budget {
            duration: self.duration,
            requests: self.requests,
        }
    }
}

/// The bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A scenario name is unknown.
    #[error("unknown scenario `{0}` (known: {list})", list = SCENARIOS.join(", "))]
    UnknownScenario(String),
    /// The backend, the gateway or a client could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// Runs the bench; `progress` gets each row as it is measured.
pub async fn run(options: &Options, progress: &mut dyn FnMut(&Row)) -> Result<Report, BenchError> {
    if let Some(unknown) = options
        .only
        .iter()
        .find(|n| !SCENARIOS.contains(&n.as_str()))
    {
        return Err(BenchError::UnknownScenario(unknown.clone()));
    }
    let mut report = Report::new(Settings::of(options));
    let backend = backend::Backend::start()
        .await
        .map_err(|e| BenchError::Setup(format!("cannot start the backend: {e}")))?;
    let gateway = child::Gateway::spawn(
        &options.gateway_binary,
        &options.gateway_args(),
        &gateway_config(&backend.url()),
        &[("bench.pb", scenario::DESCRIPTOR_SET)],
    )
    .await?;
    let backend_url = backend.url();
    let idle_rss = process::rss_bytes(gateway.pid()).ok();
    report.settings.gateway_idle_rss_mib = idle_rss.map(mib);
    for scenario in scenario::all()? {
        if options.wants(scenario.name) {
            let targets = Targets {
                gateway: &gateway,
                backend: &backend_url,
            };
            run_scenario(&scenario, targets, options, &mut report, progress).await?;
        }
    }
    drop(gateway);
    if options.wants("get-traced") {
        traced::run(options, &backend_url, &mut report, progress).await?;
    }
    if options.wants("etcd") {
        match etcd::find_binary() {
            Ok(binary) => etcd::compare(&binary, options, &mut report, progress).await?,
            Err(why) => report.etcd_skipped = Some(why),
        }
    }
    if options.wants("scale") {
        report.scale = Some(scale::run(options, &backend_url, idle_rss).await?);
    }
    report.fill_ratios();
    Ok(report)
}

/// Where a scenario's requests go.
#[derive(Debug, Clone, Copy)]
struct Targets<'a> {
    gateway: &'a child::Gateway,
    /// The backend's URL, for the direct calls.
    backend: &'a str,
}

/// Runs one scenario at each concurrency level it takes, through the
/// gateway over HTTP/1.1 and HTTP/2 and straight to the backend.
async fn run_scenario(
    scenario: &scenario::Scenario,
    targets: Targets<'_>,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(&Row),
) -> Result<(), BenchError> {
    report.scenarios.push(report::Label {
        name: scenario.name.to_owned(),
        description: scenario.label.clone(),
    });
    // The smoke run keeps the costly scenarios to one worker.
    let max = match scenario.max_concurrency {
        Some(_) if options.quick => Some(1),
        max => max,
    };
    let levels: Vec<usize> = options
        .concurrency
        .iter()
        .copied()
        .filter(|&c| max.is_none_or(|max| c <= max))
        .collect();
    if let (true, Some(max)) = (levels.len() < options.concurrency.len(), max) {
        report.notes.push(format!(
            "{} runs at concurrency up to {max} only, to keep the bench short",
            scenario.name,
        ));
    }
    let gateway = targets.gateway;
    let watched = Watched::gateway(gateway.pid());
    for concurrency in levels {
        let runs = [
            (
                "protogate",
                Via::Http1(gateway.addr(), &scenario.rest),
                watched,
            ),
            (
                "protogate",
                Via::Http2(gateway.addr(), &scenario.rest),
                watched,
            ),
            (
                "direct",
                Via::Grpc(targets.backend, &scenario.grpc),
                Watched::none(),
            ),
        ];
        for (target, via, watched) in runs {
            let measured = via.load(concurrency, options, watched).await?;
            let row = Row::new(
                scenario.name,
                target,
                via.protocol(),
                concurrency,
                &measured,
            );
            progress(&row);
            report.results.push(row);
        }
    }
    Ok(())
}

/// The bench gateway's config: the bench descriptors, the backend as the
/// default upstream, defaults otherwise.
fn gateway_config(backend: &str) -> String {
    format!("descriptor_sets: [bench.pb]\nupstreams:\n  default:\n    url: {backend}\n")
}

/// How a run sends its requests.
#[derive(Debug, Clone, Copy)]
enum Via<'a> {
    /// REST over HTTP/1.1, a connection per worker.
    Http1(SocketAddr, &'a http::RestRequest),
    /// REST over shared HTTP/2 connections.
    Http2(SocketAddr, &'a http::RestRequest),
    /// gRPC over shared channels, to this URL.
    Grpc(&'a str, &'a grpc::GrpcRequest),
}

impl Via<'_> {
    fn protocol(&self) -> &'static str {
        match self {
            Via::Http1(..) => "http1",
            Via::Http2(..) => "http2",
            Via::Grpc(..) => "grpc",
        }
    }

    /// One run at `concurrency`.
    async fn load(
        self,
        concurrency: usize,
        options: &Options,
        watched: Watched,
    ) -> Result<Measured, BenchError> {
        let connections = options.connections.min(concurrency);
        let workers = 0..concurrency;
        let setup = |e: String| BenchError::Setup(e);
        match self {
            Via::Http1(addr, request) => {
                let calls = workers
                    .map(|_| http::Http1::new(addr, request.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(setup)?;
                Ok(measure(calls, options.budget(), watched).await)
            }
            Via::Http2(addr, request) => {
                let pool = http::Http2Pool::open(addr, connections)
                    .await
                    .map_err(setup)?;
                let calls = workers
                    .map(|i| pool.worker(i, addr, request.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(setup)?;
                Ok(measure(calls, options.budget(), watched).await)
            }
            Via::Grpc(url, request) => {
                let channels = grpc::channels(url, connections).await.map_err(setup)?;
                let calls = workers
                    .map(|i| grpc::Direct::new(&channels, i, request.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(setup)?;
                Ok(measure(calls, options.budget(), watched).await)
            }
        }
    }
}

/// Bytes in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
