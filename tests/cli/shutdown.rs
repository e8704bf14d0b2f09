//! `serve` stopping on a signal: how long it waits for the requests in
//! flight (`timeouts.shutdown`), and a second signal that stops the wait.

use std::time::{Duration, Instant};

use crate::process::{Served, Spawned};
use crate::support::{self, EchoBackend};
use crate::{arg, fixture, fixtures, write_config};

/// Longer than every wait below: the backend's answer to the slow call.
const SLOW_MS: &str = "30000";

/// `serve --proto greeter.proto --upstream <backend>` with `extra` flags,
/// and a call it is still waiting on the backend for: the call's task
/// (to abort) once the backend has it.
async fn serving_a_slow_call(
    backend: &EchoBackend,
    extra: &[String],
) -> (Served, tokio::task::JoinHandle<()>) {
    let mut args = vec![
        "serve".to_owned(),
        "--proto".to_owned(),
        fixture("greeter.proto"),
        "--upstream".to_owned(),
        backend.url(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    args.extend_from_slice(extra);
    let served = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Served::start(&args)
    })
    .await
    .expect("serve starts");
    let url = served.url("/v1/greetings/ada");
    let call = tokio::spawn(async move {
        let _ = support::http1()
            .get(url)
            .header("Grpc-Metadata-X-Echo-Delay-Ms", SLOW_MS)
            .send()
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.records().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the call never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (served, call)
}

/// Sends `signal` (`TERM`, `INT`) to our own child, by its PID.
fn send(process: &Spawned, signal: &str) {
    let kill = format!("kill -{signal} {}", process.pid());
    let sent = std::process::Command::new("sh")
        .args(["-c", &kill])
        .status()
        .expect("run sh");
    assert!(sent.success(), "{kill}");
}

/// Waits (on a blocking thread) up to `limit` for `process` to exit; its
/// exit code, how long that took, and all it wrote to stderr.
async fn exit_within(mut process: Spawned, limit: Duration) -> (Option<i32>, Duration, String) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = process.wait(limit);
        let took = started.elapsed();
        let Some(status) = status else {
            panic!(
                "protogate still runs {limit:?} on; stderr:\n{}",
                process.stderr()
            );
        };
        (status.code(), took, process.finish().1)
    })
    .await
    .expect("wait")
}

/// A second signal while the gateway waits for a slow call ends the
/// process at once, not when the grace period (10 s by default) is over,
/// and says what was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_while_draining_exits_at_once() {
    let backend = EchoBackend::start(support::pool(&support::compile(
        &fixtures(),
        &["greeter.proto"],
    )))
    .await;
    let (mut served, call) = serving_a_slow_call(&backend, &[]).await;
    send(&served.process, "TERM");
    served
        .process
        .stderr_line(Duration::from_secs(10), |l| l.contains("Shutting down"));
    // Still waiting for the call: the first signal alone does not end it.
    assert!(
        served.process.wait(Duration::from_millis(500)).is_none(),
        "{}",
        served.process.stderr()
    );
    send(&served.process, "INT");
    let (code, took, stderr) = exit_within(served.process, Duration::from_secs(5)).await;
    call.abort();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("Second signal"))
        .unwrap_or_else(|| panic!("no line on the second signal:\n{stderr}"));
    assert!(
        line.contains("WARN") && line.contains("requests in flight are cut off"),
        "{line}"
    );
}

/// `timeouts.shutdown` of the config is how long the gateway waits for
/// a call that does not end: about that long, and not the default 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_grace_is_how_long_shutdown_waits() {
    let backend = EchoBackend::start(support::pool(&support::compile(
        &fixtures(),
        &["greeter.proto"],
    )))
    .await;
    let config = write_config("timeouts:\n  shutdown: 1s\n");
    let flags = ["--config".to_owned(), arg(&config)];
    let (mut served, call) = serving_a_slow_call(&backend, &flags).await;
    send(&served.process, "TERM");
    served
        .process
        .stderr_line(Duration::from_secs(10), |l| l.contains("Shutting down"));
    let (code, took, stderr) = exit_within(served.process, Duration::from_secs(8)).await;
    call.abort();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The grace ran out, as configured: a clean stop all the same.
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("Shutdown grace period over"), "{stderr}");
}

/// `timeouts.shutdown: 0` waits for nothing: the slow call is cut off as
/// the listener stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_of_zero_does_not_wait() {
    let backend = EchoBackend::start(support::pool(&support::compile(
        &fixtures(),
        &["greeter.proto"],
    )))
    .await;
    let config = write_config("timeouts:\n  shutdown: 0\n");
    let flags = ["--config".to_owned(), arg(&config)];
    let (served, call) = serving_a_slow_call(&backend, &flags).await;
    send(&served.process, "TERM");
    let (code, took, stderr) = exit_within(served.process, Duration::from_secs(5)).await;
    call.abort();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

/// A SIGHUP while `serve` is still starting (here, compiling 4,000
/// methods) is no reason to end: it was left to its default action, which
/// ends the process (exit 129), until the start was over. Now it waits
/// for the start and reloads, and the gateway serves.
#[test]
fn a_hangup_while_starting_is_a_reload_not_an_exit() {
    let dir = support::tempdir();
    let methods: String = (0..4000)
        .map(|i| {
            format!(
                "  rpc M{i}(R) returns (R) {{ option (google.api.http) = {{ get: \"/v1/m{i}/{{id}}\" }}; }}\n"
            )
        })
        .collect();
    std::fs::write(
        dir.join("big.proto"),
        format!(
            "syntax = \"proto3\";\npackage big.v1;\nimport \"google/api/annotations.proto\";\nmessage R {{ string id = 1; }}\nservice Big {{\n{methods}}}\n"
        ),
    )
    .unwrap();
    let mut process = Spawned::new(crate::process::command(
        &dir,
        &[
            "serve",
            "--proto",
            "big.proto",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
        ],
    ));
    // Past the signal handlers' setup (the first thing `serve` does once
    // its flags are read), well before 4,000 methods are compiled.
    std::thread::sleep(Duration::from_millis(300));
    let early = !process.stderr().contains("Listening");
    send(&process, "HUP");
    let listening = process.stderr_line(Duration::from_secs(120), |l| l.contains("Listening"));
    assert!(early, "the start was over before the signal: {listening}");
    // Still there, and the reload the signal asked for happens.
    process.stderr_line(Duration::from_secs(60), |l| l.contains("SIGHUP"));
    assert!(
        process.wait(Duration::from_millis(200)).is_none(),
        "{}",
        process.stderr()
    );
    send(&process, "TERM");
    let status = process.wait(Duration::from_secs(20));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        process.stderr()
    );
}
