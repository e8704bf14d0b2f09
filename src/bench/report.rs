//! The bench's results: one row per run, the descriptor scale test, and
//! how they print — a table for people, JSON (`--json`) for tools.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{Measured, Options, mib};

/// Everything one bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How it ran.
    pub settings: Settings,
    /// What each scenario name stands for.
    pub scenarios: Vec<Label>,
    /// One row per scenario, target, protocol and concurrency.
    pub results: Vec<Row>,
    /// Why the etcd comparison did not run, when it did not.
    pub etcd_skipped: Option<String>,
    /// The descriptor scale test, when it ran.
    pub scale: Option<ScaleResult>,
    /// What was left out or should be known to read the numbers.
    pub notes: Vec<String>,
}

/// How a bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `release` or `debug`: a debug build's numbers say little.
    pub build: &'static str,
    /// CPUs this process may use (load generator, backend and gateway share them).
    pub cpus: usize,
    /// `/proc/loadavg` when the bench started: other work on the machine.
    pub load_average: Option<String>,
    /// Time each run sends new requests, in milliseconds.
    pub duration_ms: u64,
    /// Request cap of each run, if any.
    pub requests: Option<u64>,
    /// The concurrency levels asked for.
    pub concurrency: Vec<usize>,
    /// HTTP/2 connections and gRPC channels the workers share.
    pub connections: usize,
    /// Whether this was the `--quick` smoke run.
    pub quick: bool,
    /// The gateway's runtime worker threads.
    pub gateway_workers: u16,
    /// The bench gateway's resident memory before any load, in MiB.
    pub gateway_idle_rss_mib: Option<f64>,
}

impl Settings {
    pub(super) fn of(options: &Options) -> Settings {
        Settings {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
            duration_ms: u64::try_from(options.duration.as_millis()).unwrap_or(u64::MAX),
            requests: options.requests,
            concurrency: options.concurrency.clone(),
            connections: options.connections,
            quick: options.quick,
            gateway_workers: options.gateway_workers,
            gateway_idle_rss_mib: None,
        }
    }
}

/// A scenario name and what it sends.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    /// As `--scenario` takes it.
    pub name: String,
    /// The request and its answer.
    pub description: String,
}

/// One run: a scenario through one target, protocol and concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario's name.
    pub scenario: String,
    /// `protogate`, `direct` (gRPC to the backend) or `etcd-gateway`.
    pub target: String,
    /// `http1`, `http2` or `grpc`.
    pub protocol: String,
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// Requests answered right.
    pub requests: u64,
    /// Requests that failed (not in the latencies).
    pub errors: u64,
    /// The first failure, as an example.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Length of the measured part, in seconds.
    pub seconds: f64,
    /// Requests answered right per second.
    pub rps: f64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, in microseconds.
    pub p999_us: f64,
    /// The gateway's CPU time (user + system) per request, in microseconds.
    pub gateway_cpu_us: Option<f64>,
    /// The gateway's largest resident memory during the run, in MiB.
    pub gateway_rss_mib: Option<f64>,
    /// How much its resident memory grew from the start of the measured
    /// part to its end, in MiB (negative: it shrank).
    pub gateway_rss_growth_mib: Option<f64>,
    /// etcd's CPU time per request, in microseconds (etcd runs only).
    pub upstream_cpu_us: Option<f64>,
    /// Requests per second as a share of the direct gRPC run's.
    pub vs_direct: Option<f64>,
    /// Requests per second as a share of etcd's own gateway's.
    pub vs_etcd_gateway: Option<f64>,
}

impl Row {
    pub(super) fn new(
        scenario: &str,
        target: &str,
        protocol: &str,
        concurrency: usize,
        measured: &Measured,
    ) -> Row {
        let outcome = &measured.outcome;
        let seconds = outcome.elapsed.as_secs_f64();
        let done = outcome.ok + outcome.errors;
        let per_request = |cpu: Option<Duration>| {
            cpu.filter(|_| done > 0)
                .map(|cpu| cpu.as_secs_f64() * 1e6 / done as f64)
        };
        let us = |q: f64| outcome.latency.quantile(q).as_secs_f64() * 1e6;
        Row {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            protocol: protocol.to_owned(),
            concurrency,
            requests: outcome.ok,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            seconds,
            rps: if seconds > 0.0 {
                outcome.ok as f64 / seconds
            } else {
                0.0
            },
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            gateway_cpu_us: per_request(measured.gateway_cpu),
            gateway_rss_mib: measured.gateway_rss.map(mib),
            gateway_rss_growth_mib: measured
                .gateway_rss_growth
                .map(|bytes| bytes as f64 / f64::from(1 << 20)),
            upstream_cpu_us: per_request(measured.upstream_cpu),
            vs_direct: None,
            vs_etcd_gateway: None,
        }
    }
}

/// Time and memory to load a large descriptor set.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// Generated services.
    pub services: usize,
    /// Annotated methods in all.
    pub methods: usize,
    /// Messages in all.
    pub messages: usize,
    /// Routes the gateway built from them.
    pub routes: usize,
    /// Size of the encoded descriptor set, in KiB.
    pub descriptor_set_kib: f64,
    /// `.proto` text to descriptor pool (protox), in this process, in ms.
    pub compile_ms: f64,
    /// Encoded descriptor set to snapshot (pool, routes, upstreams) — what
    /// `serve --descriptor-set` does at start — in this process, in ms.
    pub snapshot_ms: f64,
    /// `protogate serve --descriptor-set` from spawn until listening, in ms.
    pub startup_ms: f64,
    /// That gateway's resident memory once listening, in MiB.
    pub rss_mib: Option<f64>,
    /// Its memory above the bench gateway's when idle, in MiB.
    pub rss_growth_mib: Option<f64>,
}

impl Report {
    pub(super) fn new(settings: Settings) -> Report {
        Report {
            settings,
            scenarios: Vec::new(),
            results: Vec::new(),
            etcd_skipped: None,
            scale: None,
            notes: Vec::new(),
        }
    }

    /// Whether any run had failed requests.
    pub fn has_errors(&self) -> bool {
        self.results.iter().any(|r| r.errors > 0)
    }

    /// Fills in each row's ratios to the direct and etcd gateway runs of
    /// the same scenario and concurrency.
    pub(super) fn fill_ratios(&mut self) {
        let rps_of = |rows: &[Row], row: &Row, target: &str| {
            rows.iter()
                .find(|r| {
                    r.target == target
                        && r.scenario == row.scenario
                        && r.concurrency == row.concurrency
                })
                .map(|r| r.rps)
                .filter(|&rps| rps > 0.0)
        };
        let rows = self.results.clone();
        for row in self.results.iter_mut().filter(|r| r.target != "direct") {
            row.vs_direct = rps_of(&rows, row, "direct").map(|d| row.rps / d);
            if row.target == "protogate" {
                row.vs_etcd_gateway = rps_of(&rows, row, "etcd-gateway").map(|e| row.rps / e);
            }
        }
    }

    /// The results as a table, then the targets next to what was
    /// measured, then the notes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "protogate bench: {} build, {} CPUs (gateway: {} worker{}), load average {} at start, {} ms per run{}",
            s.build,
            s.cpus,
            s.gateway_workers,
            if s.gateway_workers == 1 { "" } else { "s" },
            s.load_average.as_deref().unwrap_or("unknown"),
            s.duration_ms,
            if s.quick { " (--quick)" } else { "" },
        );
        for label in &self.scenarios {
            let _ = writeln!(out, "\n{}: {}", label.name, label.description);
            table_rows(
                &mut out,
                self.results.iter().filter(|r| r.scenario == label.name),
            );
        }
        if let Some(why) = &self.etcd_skipped {
            let _ = writeln!(out, "\netcd comparison skipped: {why}");
        }
        if let Some(scale) = &self.scale {
            let _ = writeln!(
                out,
                "\nscale: {} services, {} annotated methods, {} messages ({:.0} KiB descriptor set) → {} routes\n  \
                 compile .proto {:.0} ms; descriptor set to snapshot {:.0} ms; \
                 `serve` start to listening {:.0} ms; RSS {} ({} over the bench gateway idle)",
                scale.services,
                scale.methods,
                scale.messages,
                scale.descriptor_set_kib,
                scale.routes,
                scale.compile_ms,
                scale.snapshot_ms,
                scale.startup_ms,
                opt(scale.rss_mib, "MiB"),
                opt(scale.rss_growth_mib, "MiB"),
            );
        }
        super::targets::write(&mut out, self);
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }
}

/// One column of the table: its heading and how a row fills it (`None`:
/// the row has no such number; a column no row fills is left out).
type Column = (&'static str, fn(&Row) -> Option<String>);

const COLUMNS: [Column; 13] = [
    ("target", |r| Some(r.target.clone())),
    ("proto", |r| Some(r.protocol.clone())),
    ("conc", |r| Some(r.concurrency.to_string())),
    ("req/s", |r| Some(format!("{:.0}", r.rps))),
    ("p50 ms", |r| Some(format!("{:.3}", r.p50_us / 1e3))),
    ("p99 ms", |r| Some(format!("{:.3}", r.p99_us / 1e3))),
    ("p999 ms", |r| Some(format!("{:.3}", r.p999_us / 1e3))),
    ("gw cpu µs/req", |r| {
        r.gateway_cpu_us.map(|c| format!("{c:.1}"))
    }),
    ("gw rss MiB", |r| {
        r.gateway_rss_mib.map(|m| format!("{m:.1}"))
    }),
    ("etcd cpu µs/req", |r| {
        r.upstream_cpu_us.map(|c| format!("{c:.1}"))
    }),
    ("×direct", |r| r.vs_direct.map(|x| format!("{x:.2}"))),
    ("×etcd-gw", |r| {
        r.vs_etcd_gateway.map(|x| format!("{x:.2}"))
    }),
    ("errors", |r| Some(r.errors.to_string())),
];

fn table_rows<'a>(out: &mut String, rows: impl Iterator<Item = &'a Row>) {
    let rows: Vec<&Row> = rows.collect();
    let columns: Vec<&Column> = COLUMNS
        .iter()
        .filter(|(_, cell)| rows.iter().any(|r| cell(r).is_some()))
        .collect();
    let mut lines = vec![
        columns
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect::<Vec<_>>(),
    ];
    for row in &rows {
        lines.push(
            columns
                .iter()
                .map(|(_, cell)| cell(row).unwrap_or_else(|| "-".to_owned()))
                .collect(),
        );
    }
    let mut widths = vec![0; columns.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in &lines {
        out.push(' ');
        for (i, (cell, &width)) in line.iter().zip(&widths).enumerate() {
            // Text left, numbers right.
            if i < 2 {
                let _ = write!(out, " {cell:<width$}");
            } else {
                let _ = write!(out, " {cell:>width$}");
            }
        }
        out.push('\n');
    }
}

fn opt(value: Option<f64>, unit: &str) -> String {
    value.map_or("unknown".to_owned(), |v| format!("{v:.1} {unit}"))
}
