//! protogate's speed targets next to what a bench measured. They are
//! ratios and per-request costs taken in the same run on the same
//! machine, so they hold or fail on that machine; a debug build or a busy
//! machine says little about them.

use std::fmt::Write as _;

use super::report::{Report, Row};

/// The level the targets are read at, when it ran; else the highest.
const LEVEL: usize = 16;

/// The gateway's own CPU time per small unary request, at most (µs).
const MAX_CPU_US: f64 = 30.0;
/// Throughput through the gateway as a share of direct gRPC, at least.
const MIN_VS_DIRECT: f64 = 0.5;
/// Resident memory at 256 concurrent requests, below (MiB).
const MAX_RSS_MIB: f64 = 64.0;
/// Throughput in front of etcd as a multiple of etcd's own gateway, at least.
const MIN_VS_ETCD_GATEWAY: f64 = 1.5;
/// The same as a share of direct gRPC to etcd, at least.
const MIN_ETCD_VS_DIRECT: f64 = 0.7;
/// Loading 10,000 methods' routes, below (ms).
const MAX_SCALE_MS: f64 = 1000.0;

pub(super) fn write(out: &mut String, report: &Report) {
    let mut lines = Vec::new();
    let rows = &report.results;
    let level = |scenario: &str| {
        let levels = rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .map(|r| r.concurrency);
        if levels.clone().any(|c| c == LEVEL) {
            Some(LEVEL)
        } else {
            levels.max()
        }
    };
    let find = |scenario: &str, target: &str, protocol: &str, level: usize| {
        rows.iter().find(|r| {
            r.scenario == scenario
                && r.target == target
                && r.protocol == protocol
                && r.concurrency == level
        })
    };
    if let Some(c) = level("get") {
        for protocol in ["http1", "http2"] {
            let Some(row) = find("get", "protogate", protocol, c) else {
                continue;
            };
            if let Some(cpu) = row.gateway_cpu_us {
                lines.push(line(
                    cpu <= MAX_CPU_US,
                    format!(
                        "get over {protocol} at concurrency {c}: gateway CPU {cpu:.1} µs per request (target ≤ {MAX_CPU_US} µs)"
                    ),
                ));
            }
            if let Some(ratio) = row.vs_direct {
                lines.push(line(
                    ratio >= MIN_VS_DIRECT,
                    format!(
                        "get over {protocol} at concurrency {c}: {ratio:.2}× the requests/s of direct gRPC (target ≥ {MIN_VS_DIRECT}×)"
                    ),
                ));
            }
        }
    }
    let busiest = rows
        .iter()
        .filter(|r| r.concurrency == 256)
        .filter_map(|r| r.gateway_rss_mib.map(|m| (m, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((rss, row)) = busiest {
        lines.push(line(
            rss < MAX_RSS_MIB,
            format!(
                "largest gateway RSS at concurrency 256: {rss:.1} MiB ({} over {}) (target < {MAX_RSS_MIB} MiB)",
                row.scenario, row.protocol
            ),
        ));
    }
    if let Some(c) = level("etcd-range") {
        etcd(
            &mut lines,
            [
                find("etcd-range", "protogate", "http1", c),
                find("etcd-range", "etcd-gateway", "http1", c),
                find("etcd-range", "direct", "grpc", c),
            ],
        );
    }
    if let Some(scale) = &report.scale {
        // The target is for 10,000 methods; a smaller run scales it down.
        let target = MAX_SCALE_MS * scale.methods as f64 / 10_000.0;
        lines.push(line(
            scale.snapshot_ms < target,
            format!(
                "{} methods: descriptor set to routes in {:.0} ms (target < {target:.0} ms)",
                scale.methods, scale.snapshot_ms
            ),
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ntargets (same run, same machine):");
    for text in lines {
        let _ = writeln!(out, "  {text}");
    }
    let _ = writeln!(
        out,
        "  (not measured here: no memory growth over a 60 s soak)"
    );
}

fn etcd(lines: &mut Vec<String>, [ours, theirs, direct]: [Option<&Row>; 3]) {
    let Some(ours) = ours else { return };
    let c = ours.concurrency;
    if let (Some(ratio), Some(theirs)) = (ours.vs_etcd_gateway, theirs) {
        lines.push(line(
            ratio >= MIN_VS_ETCD_GATEWAY,
            format!(
                "etcd Range at concurrency {c}: {:.0} req/s, {ratio:.2}× etcd's gateway ({:.0} req/s) (target ≥ {MIN_VS_ETCD_GATEWAY}×)",
                ours.rps, theirs.rps
            ),
        ));
        lines.push(line(
            ours.p99_us < theirs.p99_us,
            format!(
                "etcd Range at concurrency {c}: p99 {:.3} ms vs etcd's gateway {:.3} ms (target: lower)",
                ours.p99_us / 1e3,
                theirs.p99_us / 1e3
            ),
        ));
    }
    if let (Some(ratio), Some(direct)) = (ours.vs_direct, direct) {
        lines.push(line(
            ratio >= MIN_ETCD_VS_DIRECT,
            format!(
                "etcd Range at concurrency {c}: {ratio:.2}× direct gRPC to etcd ({:.0} req/s) (target ≥ {MIN_ETCD_VS_DIRECT}×)",
                direct.rps
            ),
        ));
    }
}

fn line(met: bool, text: String) -> String {
    format!("[{}] {text}", if met { "met" } else { "missed" })
}
