//! `protogate bench --quick --json` through the built binary: the bench
//! keeps working — every scenario runs, the etcd comparison and the scale
//! test included, with no failed request — and its JSON has the shape
//! BENCHMARKS.md describes. Nothing here judges speed: a debug build on a
//! shared machine says nothing about it.
//!
//! Like the other etcd tests, the full run needs an `etcd` binary and fails
//! without one (`./scripts/test.sh` installs Debian's `etcd-server`); the
//! bench itself skips the comparison with a message, checked apart.

mod support;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `protogate bench --quick --json <args>` with the environment
/// changed by `env`, for at most two minutes; its exit status and JSON.
fn bench(args: &[&str], env: impl FnOnce(&mut Command)) -> (bool, Value) {
    let mut command = support::gateway::binary();
    command
        .args(["bench", "--quick", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env(&mut command);
    let mut child = command.spawn().expect("run protogate bench");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the bench") {
            break status;
        }
        if Instant::now() > deadline {
            // Kills exactly the PID spawned above.
            let _ = child.kill();
            let _ = child.wait();
            panic!("protogate bench --quick ran past two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap().expect("read the bench's output");
    let stderr = err.join().unwrap().expect("read the bench's log");
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("the bench's output is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    assert!(
        status.success() || !stderr.is_empty(),
        "a failed bench says why on stderr"
    );
    if !status.success() {
        eprintln!("bench stderr:\n{stderr}");
    }
    (status.success(), json)
}

fn number(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {row}"))
}

#[test]
fn the_quick_bench_measures_every_scenario() {
    let (ok, report) = bench(&[], |_| {});
    assert!(ok, "the bench failed: {report:#}");
    assert_eq!(report["settings"]["quick"], true);
    assert!(number(&report["settings"], "gateway_idle_rss_mib") > 0.0);

    let rows = report["results"].as_array().expect("results is a list");
    let scenarios = [
        "get",
        "get-traced",
        "post-1k",
        "post-64k",
        "list-100",
        "stream-10k",
        "etcd-range",
    ];
    for scenario in scenarios {
        let described = report["scenarios"].as_array().unwrap().iter().any(|s| {
            s["name"] == scenario && s["description"].as_str().is_some_and(|d| !d.is_empty())
        });
        assert!(described, "{scenario} is not described");
        let targets: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| r["scenario"] == scenario)
            .map(|r| {
                (
                    r["target"].as_str().unwrap(),
                    r["protocol"].as_str().unwrap(),
                )
            })
            .collect();
        let want: &[(&str, &str)] = if scenario == "etcd-range" {
            &[
                ("protogate", "http1"),
                ("etcd-gateway", "http1"),
                ("direct", "grpc"),
            ]
        } else {
            &[
                ("protogate", "http1"),
                ("protogate", "http2"),
                ("direct", "grpc"),
            ]
        };
        for pair in want {
            assert!(
                targets.contains(pair),
                "{scenario}: no {pair:?} row in {targets:?}"
            );
        }
    }

    let mut gateway_cpu = 0.0;
    for row in rows {
        assert_eq!(number(row, "errors"), 0.0, "failed requests: {row}");
        assert!(number(row, "concurrency") >= 1.0, "{row}");
        for key in ["requests", "seconds", "rps", "p50_us", "p99_us", "p999_us"] {
            assert!(number(row, key) > 0.0, "`{key}` is not above 0 in {row}");
        }
        assert!(number(row, "p50_us") <= number(row, "p99_us"), "{row}");
        assert!(number(row, "p99_us") <= number(row, "p999_us"), "{row}");
        if row["target"] == "protogate" {
            assert!(number(row, "gateway_rss_mib") > 0.0, "{row}");
            // Growth may be negative: memory can be given back.
            number(row, "gateway_rss_growth_mib");
            assert!(number(row, "vs_direct") > 0.0, "{row}");
            // /proc counts CPU time in 10 ms ticks: a short run may show none.
            gateway_cpu += number(row, "gateway_cpu_us");
        } else {
            assert!(row["gateway_cpu_us"].is_null(), "{row}");
        }
        if row["scenario"] == "etcd-range" {
            assert!(number(row, "upstream_cpu_us") >= 0.0, "{row}");
            if row["target"] == "protogate" {
                assert!(number(row, "vs_etcd_gateway") > 0.0, "{row}");
            }
        }
    }
    assert!(gateway_cpu > 0.0, "no gateway CPU time was read");
    assert!(report["etcd_skipped"].is_null());

    let scale = &report["scale"];
    assert_eq!(number(scale, "methods"), 1000.0, "{scale}");
    assert_eq!(number(scale, "routes"), 1000.0, "{scale}");
    assert!(number(scale, "messages") >= 2000.0, "{scale}");
    for key in [
        "descriptor_set_kib",
        "compile_ms",
        "snapshot_ms",
        "startup_ms",
        "rss_mib",
    ] {
        assert!(
            number(scale, key) > 0.0,
            "`{key}` is not above 0 in {scale}"
        );
    }
}

#[test]
fn without_etcd_the_comparison_is_skipped_with_the_reason() {
    let (ok, report) = bench(&["--scenario", "etcd"], |command| {
        command.env("PATH", "/nonexistent").env_remove("ETCD_BIN");
    });
    assert!(ok, "the bench failed: {report:#}");
    let why = report["etcd_skipped"].as_str().expect("a reason");
    assert!(why.contains("no `etcd` on PATH"), "{why}");
    assert_eq!(report["results"], Value::Array(Vec::new()));
}
