//! Interop with a Connect client we did not write: connect-es for Node.js
//! (npm's `@connectrpc/connect-node`, pinned in tests/connect_es). Its
//! script `client.mjs` calls the demo bookshop through the gateway over
//! HTTP/1.1 — unary in JSON and binary, server streams, errors with
//! details — building the service from a descriptor set at run time.
//!
//! Needs Node.js 20+ and npm; fails (never skips) without them. Installs
//! the pinned packages with `npm ci` when `node_modules` is missing or
//! differs from the lockfile.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestGateway;

/// How long `npm ci` may take (it downloads three small packages).
const INSTALL_BOUND: Duration = Duration::from_secs(180);
/// How long the client script may run (it bounds itself to 40 s).
const CLIENT_BOUND: Duration = Duration::from_secs(45);
/// How long `node --version` or `npm --version` may take.
const PROBE_BOUND: Duration = Duration::from_secs(30);

const NODE_HINT: &str = "the connect-es interop test needs Node.js 20 or newer with npm \
     (this project's machines come with them; Debian 12's own `nodejs` is 18, too old \
     for connect-es 2)";

fn dir() -> PathBuf {
    support::repo().join("tests/connect_es")
}

/// Runs `program args` in `cwd` within `bound`; the child is killed when
/// the bound passes or the test panics (`kill_on_drop`, by its PID).
async fn run(
    program: &str,
    args: &[&str],
    cwd: &Path,
    bound: Duration,
) -> std::io::Result<Option<std::process::Output>> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(bound, child.wait_with_output()).await {
        Ok(output) => output.map(Some),
        Err(_) => Ok(None),
    }
}

/// `program --version`, or a panic naming what is missing.
async fn version(program: &str) -> String {
    let output = run(program, &["--version"], &dir(), PROBE_BOUND)
        .await
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}; {NODE_HINT}"))
        .unwrap_or_else(|| panic!("`{program} --version` did not finish in {PROBE_BOUND:?}"));
    assert!(
        output.status.success(),
        "`{program} --version` failed ({}): {}; {NODE_HINT}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Fails unless Node.js 20+ and npm are there.
async fn require_node() {
    let node = version("node").await;
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("`node --version` printed `{node}`, not vMAJOR.MINOR.PATCH"));
    assert!(major >= 20, "node is {node}; {NODE_HINT}");
    version("npm").await;
}

/// Whether every package of the lockfile is installed at its version.
fn installed() -> bool {
    let lock: Value = serde_json::from_slice(
        &std::fs::read(dir().join("package-lock.json"))
            .expect("tests/connect_es/package-lock.json"),
    )
    .expect("package-lock.json is JSON");
    let packages = lock["packages"]
        .as_object()
        .expect("lockfile v3 `packages`");
    packages
        .iter()
        .filter(|(path, _)| path.starts_with("node_modules/"))
        .all(|(path, entry)| {
            let manifest = dir().join(path).join("package.json");
            std::fs::read(&manifest)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .is_some_and(|found| found["version"] == entry["version"])
        })
}

/// `npm ci` in tests/connect_es unless the lockfile's packages are there.
async fn install() {
    if installed() {
        return;
    }
    let started = Instant::now();
    let output = run(
        "npm",
        &["ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        &dir(),
        INSTALL_BOUND,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot run `npm ci`: {e}; {NODE_HINT}"))
    .unwrap_or_else(|| {
        panic!("`npm ci` in tests/connect_es did not finish in {INSTALL_BOUND:?} (killed)")
    });
    assert!(
        output.status.success(),
        "`npm ci` in tests/connect_es failed ({}) after {:?}:\n{}",
        output.status,
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        installed(),
        "`npm ci` succeeded but node_modules does not match package-lock.json"
    );
}

/// The connect-es client against the demo bookshop behind the gateway:
/// every check of `client.mjs` passes, and its results are the books the
/// demo holds.
#[tokio::test]
async fn connect_es_client_talks_to_the_gateway() {
    require_node().await;
    install().await;

    let backend = protogate::demo::Backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = protogate::demo::config("127.0.0.1:0".parse().unwrap(), backend.addr());
    let gateway = TestGateway::start(config).await;

    // The demo's own descriptor set (with imports), as the client loads it.
    let set = support::TempFile::new("bookshop.pb", protogate::demo::DESCRIPTOR_SET);

    let started = Instant::now();
    let output = run(
        "node",
        &["client.mjs", &gateway.base, set.to_str().unwrap()],
        &dir(),
        CLIENT_BOUND,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot run node: {e}; {NODE_HINT}"))
    .unwrap_or_else(|| panic!("client.mjs did not exit within {CLIENT_BOUND:?} (killed)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "client.mjs ({}, after {:?}) printed no JSON result line\n--- stdout\n{stdout}--- stderr\n{stderr}",
                output.status,
                started.elapsed()
            )
        });
    assert!(
        output.status.success() && report["ok"] == true,
        "connect-es disagrees with the gateway ({}):\n{}\n--- stderr\n{stderr}",
        output.status,
        serde_json::to_string_pretty(&report["failures"]).unwrap()
    );

    // The script checks each value; spot-check its report here too, so a
    // script that checks nothing cannot pass.
    let results = &report["results"];
    assert_eq!(results["unary_json"]["title"], "Dune");
    assert_eq!(results["unary_json"]["sku"], "9780441013593");
    assert_eq!(results["unary_json"]["contentType"], "application/json");
    assert_eq!(results["unary_binary"]["author"], "Carl Sagan");
    assert_eq!(results["unary_binary"]["contentType"], "application/proto");
    assert_eq!(results["unannotated_json"]["count"], "3");
    assert_eq!(
        results["stream_json"]["titles"],
        serde_json::json!(["Dune", "Emma", "The Odyssey"])
    );
    assert_eq!(
        results["stream_json"]["contentType"],
        "application/connect+json"
    );
    assert_eq!(
        results["stream_binary"]["titles"],
        serde_json::json!(["Cosmos", "On the Origin of Species", "Cosmos"])
    );
    for name in ["error_json", "error_binary"] {
        assert_eq!(results[name]["code"], "NotFound", "{name}");
        assert_eq!(
            results[name]["message"], "book `shelves/fiction/books/none` not found",
            "{name}"
        );
        assert_eq!(
            results[name]["details"],
            serde_json::json!(["google.rpc.ResourceInfo"]),
            "{name}"
        );
    }
    for name in ["stream_error_json", "stream_error_binary"] {
        assert_eq!(results[name]["code"], "NotFound", "{name}");
        assert_eq!(results[name]["message"], "shelf `shelves/none` not found");
    }
    assert_eq!(
        results["invalid_argument_binary"]["code"],
        "InvalidArgument"
    );
    assert_eq!(
        results["create_json_read_binary"]["name"],
        "shelves/science/books/brief-history"
    );
    assert_eq!(results["create_json_read_binary"]["sku"], "9780553380163");
    for coding in ["gzip", "br"] {
        let name = format!("compressed_{coding}");
        assert_eq!(results[&name]["title"], "Emma", "{name}");
        assert_eq!(
            results[&name]["names"],
            serde_json::json!(["shelves/fiction/books/dune", "shelves/fiction/books/emma"]),
            "{name}"
        );
    }
    let checks = results.as_object().map_or(0, |r| r.len());
    assert_eq!(checks, 15, "every check of client.mjs reported: {results}");
}
