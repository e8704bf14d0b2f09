//! `protogate bench`: its flags, and the bench run they set up (the
//! bench itself is the library's `protogate::bench`).

use std::process::ExitCode;

use clap::Args;

use super::{BAD_INPUT, fail};

#[derive(Debug, Clone, Args)]
pub(super) struct BenchArgs {
    /// How long each run sends requests, e.g. `5s` or `500ms`.
    #[arg(long, value_parser = protogate::config::parse_duration, allow_hyphen_values = true)]
    duration: Option<std::time::Duration>,
    /// At most this many measured requests per run.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Concurrency levels, e.g. `1,16,256`.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    concurrency: Vec<usize>,
    /// HTTP/2 connections and gRPC channels the workers share.
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// Run only these: get, post-1k, post-64k, list-100, stream-10k, etcd (or etcd-range), scale.
    #[arg(long = "scenario", value_delimiter = ',', value_name = "NAME,...")]
    scenarios: Vec<String>,
    /// Methods in the generated descriptor set of the scale test.
    #[arg(long, value_name = "N")]
    scale_methods: Option<usize>,
    /// A short smoke run (tiny durations, low concurrency); numbers say nothing.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The gateway's runtime worker threads (default: half the CPUs, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    gateway_workers: Option<u16>,
}

pub(super) async fn bench(args: BenchArgs) -> ExitCode {
    let binary = match std::env::current_exe() {
        Ok(path) => path,
        Err(err) => return fail(1, format!("cannot find the protogate binary: {err}")),
    };
    let mut options = if args.quick {
        protogate::bench::Options::quick(binary)
    } else {
        protogate::bench::Options::new(binary)
    };
    if let Some(duration) = args.duration {
        if duration.is_zero() {
            return fail(BAD_INPUT, "--duration: must be above zero, e.g. 2s");
        }
        options.duration = duration;
    }
    if args.requests == Some(0) {
        return fail(BAD_INPUT, "--requests: must be at least 1");
    }
    options.requests = args.requests;
    if !args.concurrency.is_empty() {
        if args.concurrency.contains(&0) {
            return fail(BAD_INPUT, "--concurrency: levels start at 1");
        }
        options.concurrency = args.concurrency;
    }
    if let Some(connections) = args.connections {
        options.connections = connections.max(1);
    }
    if let Some(methods) = args.scale_methods {
        options.scale_methods = methods;
    }
    // The etcd comparison's rows and heading say `etcd-range`.
    options.only = args
        .scenarios
        .into_iter()
        .map(|name| match name.as_str() {
            "etcd-range" => "etcd".to_owned(),
            _ => name,
        })
        .collect();
    if let Some(workers) = args.gateway_workers {
        options.gateway_workers = workers;
    }
    let mut progress = |row: &protogate::bench::Row| {
        eprintln!(
            "{:<11} {:<12} {:<5} c={:<4} {:>9.0} req/s  p99 {:>9.3} ms  errors {}",
            row.scenario,
            row.target,
            row.protocol,
            row.concurrency,
            row.rps,
            row.p99_us / 1e3,
            row.errors
        );
    };
    let report = match protogate::bench::run(&options, &mut progress).await {
        Ok(report) => report,
        Err(err @ protogate::bench::BenchError::UnknownScenario(_)) => {
            return fail(BAD_INPUT, format!("--scenario: {err}"));
        }
        Err(err) => return fail(1, err),
    };
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => json,
            Err(err) => return fail(1, format!("cannot write the results as JSON: {err}")),
        }
    } else {
        report.table()
    };
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A reader that went away (`protogate bench | head`) is no failure.
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            return fail(1, format!("cannot write the results: {err}"));
        }
        _ => {}
    }
    for row in report.results.iter().filter(|r| r.errors > 0) {
        eprintln!(
            "error: {} {} {} at concurrency {}: {} failed requests, first: {}",
            row.scenario,
            row.target,
            row.protocol,
            row.concurrency,
            row.errors,
            row.first_error.as_deref().unwrap_or("unknown")
        );
    }
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
