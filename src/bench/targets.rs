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
/// A soak: a run at least this long (s) ...
const SOAK_SECONDS: f64 = 60.0;
/// ... in which the gateway's memory grows by no more than this (MiB; a
/// little allocator noise is no growth).
const MAX_SOAK_GROWTH_MIB: f64 = 1.0;

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
    let soaks: Vec<&Row> = rows
        .iter()
        .filter(|r| r.target == "protogate" && r.seconds >= SOAK_SECONDS)
        .collect();
    for row in &soaks {
        if let Some(growth) = row.gateway_rss_growth_mib {
            lines.push(line(
                growth <= MAX_SOAK_GROWTH_MIB,
                format!(
                    "{} over {} at concurrency {} for {:.0} s: gateway RSS grew {growth:.1} MiB after the first {:.0} s (target: none, ≤ {MAX_SOAK_GROWTH_MIB} MiB)",
                    row.scenario, row.protocol, row.concurrency, row.seconds, row.seconds / 6.0
                ),
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    // A smoke run's few requests say nothing about speed: its lines show
    // what a full run checks, not a verdict.
    if report.settings.quick {
        let _ = writeln!(
            out,
            "\ntargets (not judged: a --quick run only checks that every part works):"
        );
        for text in &lines {
            let text = text.split_once("] ").map_or(text.as_str(), |(_, t)| t);
            let _ = writeln!(out, "  [-] {text}");
        }
        return;
    }
    let _ = writeln!(out, "\ntargets (same run, same machine):");
    for text in lines {
        let _ = writeln!(out, "  {text}");
    }
    if soaks.is_empty() {
        let _ = writeln!(
            out,
            "  (no soak in this run; for one: protogate bench --scenario get --concurrency 256 --duration 60s)"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Settings;

    fn row(scenario: &str, target: &str, protocol: &str, rps: f64) -> Row {
        Row {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            protocol: protocol.to_owned(),
            concurrency: 16,
            requests: 1000,
            errors: 0,
            first_error: None,
            seconds: 2.0,
            rps,
            p50_us: 100.0,
            p99_us: 900.0,
            p999_us: 1000.0,
            gateway_cpu_us: (target == "protogate").then_some(25.0),
            gateway_rss_mib: (target == "protogate").then_some(20.0),
            gateway_rss_growth_mib: (target == "protogate").then_some(0.2),
            upstream_cpu_us: None,
            vs_direct: None,
            vs_etcd_gateway: None,
        }
    }

    fn settings() -> Settings {
        let options = crate::bench::Options::new("protogate".into());
        Settings::of(&options)
    }

    #[test]
    fn a_quick_run_is_not_judged() {
        let options = crate::bench::Options::quick("protogate".into());
        let mut report = Report::new(Settings::of(&options));
        report.results = vec![
            row("get", "protogate", "http1", 400.0),
            row("get", "direct", "grpc", 1000.0),
        ];
        report.fill_ratios();
        let mut out = String::new();
        write(&mut out, &report);
        assert!(out.contains("not judged"), "{out}");
        assert!(
            out.contains("[-] get over http1 at concurrency 16: 0.40×"),
            "{out}"
        );
        assert!(!out.contains("[missed]") && !out.contains("[met]"), "{out}");
    }

    #[test]
    fn targets_are_read_at_concurrency_16() {
        let mut report = Report::new(settings());
        report.results = vec![
            row("get", "protogate", "http1", 400.0),
            row("get", "direct", "grpc", 1000.0),
        ];
        report.fill_ratios();
        let mut out = String::new();
        write(&mut out, &report);
        assert!(
            out.contains("[met] get over http1 at concurrency 16: gateway CPU 25.0 µs"),
            "{out}"
        );
        assert!(
            out.contains("[missed] get over http1 at concurrency 16: 0.40×"),
            "{out}"
        );
        assert!(out.contains("no soak in this run"), "{out}");
    }

    #[test]
    fn a_long_run_is_a_soak() {
        let mut report = Report::new(settings());
        let mut soak = row("get", "protogate", "http2", 400.0);
        soak.seconds = 60.5;
        soak.concurrency = 256;
        report.results = vec![soak];
        let mut out = String::new();
        write(&mut out, &report);
        assert!(
            out.contains(
                "[met] get over http2 at concurrency 256 for 60 s: gateway RSS grew 0.2 MiB"
            ),
            "{out}"
        );
        assert!(
            out.contains("[met] largest gateway RSS at concurrency 256: 20.0 MiB"),
            "{out}"
        );
        assert!(!out.contains("no soak"), "{out}");
    }
}
