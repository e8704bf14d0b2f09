//! `protogate serve` running as a process in front of real tonic backends:
//! port 0, conflicts, fallback routes, and config settings taking effect
//! with flags on top.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::Served;
use crate::support::{self, EchoBackend, Script};
use crate::{arg, fixture, fixtures, write_config};

/// A backend serving every fixture service.
async fn backend() -> EchoBackend {
    let set = support::compile(
        &fixtures(),
        &["greeter.proto", "plain.proto", "clash.proto"],
    );
    EchoBackend::start(support::pool(&set)).await
}

fn answer(response: Value) -> Script {
    Script {
        response: Some(response),
        ..Script::default()
    }
}

/// `POST /cli.plain.v1.Counter/Bump` with `{"key": "visits"}`.
async fn bump(served: &Served) -> reqwest::Response {
    support::http1()
        .post(served.url("/cli.plain.v1.Counter/Bump"))
        .json(&json!({"key": "visits"}))
        .send()
        .await
        .expect("POST")
}

/// `serve <args> --listen 127.0.0.1:0` (with RUST_LOG unset, so the
/// address must be logged at the default level), on a blocking thread:
/// the wait for its address is a polling loop.
async fn serve(args: Vec<String>) -> Served {
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<&str> = vec!["serve"];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--listen", "127.0.0.1:0"]);
        Served::start(&all)
    })
    .await
    .expect("serve starts")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn get(url: &str) -> (u16, Value) {
    let response = support::http1().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_binds_a_free_port_that_answers() {
    let backend = backend().await;
    backend.script(answer(json!({"message": "hello ada", "greeting_count": 2})));
    let served = serve(args(&[
        "--proto",
        &fixture("greeter.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    assert_ne!(served.addr.port(), 0);
    let (status, body) = get(&served.url("/v1/greetings/ada")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"message": "hello ada", "greetingCount": 2}));
    assert_eq!(backend.last().json, json!({"name": "ada"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_routes_serve_the_first_method_and_warn_naming_both() {
    let backend = backend().await;
    let mut served = serve(args(&[
        "--proto",
        &fixture("clash.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let warning = served
        .process
        .stderr_line(Duration::from_secs(5), |l| l.contains("WARN"));
    assert!(
        warning.contains("cli.clash.v1.Lockers/OpenLocker"),
        "{warning}"
    );
    assert!(
        warning.contains("cli.clash.v1.Lockers/InspectLocker"),
        "{warning}"
    );
    let (status, body) = get(&served.url("/v1/lockers/7")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend.last().method, "/cli.clash.v1.Lockers/OpenLocker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_method_answers_at_its_grpc_path() {
    let backend = backend().await;
    let served = serve(args(&[
        "--proto",
        &fixture("plain.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let response = bump(&served).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(backend.last().method, "/cli.plain.v1.Counter/Bump");
    assert_eq!(backend.last().json, json!({"key": "visits"}));
}

/// A backend's error message is logged on one line: a line break in it
/// (backends echo request data into their messages) cannot start a
/// made-up log line after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_message_cannot_forge_log_lines() {
    let backend = backend().await;
    backend.script(Script {
        error: Some((
            tonic::Code::Internal,
            "boom\n2026-12-05T00:00:00Z  INFO protogate: forged\r\nmore".into(),
            vec![],
        )),
        ..Script::default()
    });
    let mut served = serve(args(&[
        "--proto",
        &fixture("plain.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let response = bump(&served).await;
    assert_eq!(response.status().as_u16(), 500);
    let line = served
        .process
        .stderr_line(Duration::from_secs(5), |l| l.contains("Request failed"));
    assert!(
        line.contains(r"boom\n2026-12-05T00:00:00Z  INFO protogate: forged\r\nmore"),
        "{line}"
    );
    let stderr = served.process.stderr();
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("2026-12-05T00:00:00Z") || l == "more"),
        "{stderr}"
    );
}

/// A backend failing every call does not write a warning per call: ten a
/// second, then a count of those held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_warn_ten_a_second_then_count() {
    let backend = backend().await;
    backend.script(Script {
        error: Some((tonic::Code::Internal, "down".into(), vec![])),
        ..Script::default()
    });
    let mut served = serve(args(&[
        "--proto",
        &fixture("plain.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    // One client, one connection: the 40 calls fit in one second.
    let client = support::http1();
    let bump = || {
        client
            .post(served.url("/cli.plain.v1.Counter/Bump"))
            .json(&json!({"key": "visits"}))
            .send()
    };
    let started = Instant::now();
    for _ in 0..40 {
        let response = bump().await.expect("POST");
        assert_eq!(response.status().as_u16(), 500);
    }
    let quick = started.elapsed() < Duration::from_millis(900);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = bump().await.expect("POST");
    assert_eq!(response.status().as_u16(), 500);
    let last = served.process.stderr_line(Duration::from_secs(5), |l| {
        l.contains("Request failed") && l.contains("held=")
    });
    let stderr = served.process.stderr();
    let warned = stderr
        .lines()
        .filter(|l| l.contains("Request failed"))
        .count();
    if quick {
        // All 40 within one window: ten, then the one saying 30 were held.
        assert_eq!(warned, 11, "{stderr}");
        assert!(last.contains("held=30"), "{last}");
        // A line after none were held back does not say `held=0`.
        assert!(!stderr.contains("held=0"), "{stderr}");
    } else {
        assert!(warned < 41, "{stderr}");
    }
}

/// At debug, every request is one line, whichever face it came by: REST,
/// Connect, a WebSocket upgrade (here refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_line_at_debug() {
    let backend = backend().await;
    let mut served = serve(args(&[
        "--log",
        "protogate=debug",
        "--proto",
        &fixture("plain.proto"),
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let client = support::http1();
    let rest = client
        .post(served.url("/cli.plain.v1.Counter/Bump"))
        .json(&json!({"key": "visits"}))
        .send()
        .await
        .expect("REST");
    assert_eq!(rest.status().as_u16(), 200);
    let connect = client
        .post(served.url("/cli.plain.v1.Counter/Bump"))
        .header("connect-protocol-version", "1")
        .json(&json!({"key": "visits"}))
        .send()
        .await
        .expect("Connect");
    assert_eq!(connect.status().as_u16(), 200);
    let websocket = client
        .get(served.url("/v1/counts/visits"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .expect("WebSocket upgrade");
    assert_eq!(websocket.status().as_u16(), 400, "no Sec-WebSocket-Key");
    for (face, status) in [("connect", 200), ("websocket", 400)] {
        let line = served.process.stderr_line(Duration::from_secs(5), |l| {
            l.contains(&format!("protocol=\"{face}\"")) || l.contains(&format!("protocol={face}"))
        });
        assert!(line.contains(&format!("status={status}")), "{line}");
    }
    let stderr = served.process.stderr();
    let lines = |needle: &str| stderr.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("path=/cli.plain.v1.Counter/Bump"), 2, "{stderr}");
    assert_eq!(lines("path=/v1/counts/visits"), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_routes_false_leaves_the_grpc_path_unrouted() {
    let backend = backend().await;
    let config = write_config("fallback_routes: false\n");
    let plain = fixture("plain.proto");
    let served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &plain,
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let response = bump(&served).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(backend.records().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_listen_and_default_upstream_of_the_file() {
    let (from_file, from_flag) = (backend().await, backend().await);
    // Binding the file's address would fail: it is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(&format!(
        "listen: {}\nupstreams:\n  main:\n    url: {}\n",
        taken.local_addr().unwrap(),
        from_file.url()
    ));
    let greeter = fixture("greeter.proto");
    let served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &greeter,
        "--upstream",
        &from_flag.url(),
    ]))
    .await;
    let (status, _) = get(&served.url("/v1/greetings/ada")).await;
    assert_eq!(status, 200);
    assert_eq!(from_flag.records().len(), 1);
    assert!(from_file.records().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_serve_the_services_the_config_gives_them() {
    let (greeters, rest) = (backend().await, backend().await);
    let config = write_config(&format!(
        "protos: [{}, {}]\nupstreams:\n  greeters:\n    url: {}\n    services: [cli.greet.v1.Greeter]\n  \
         rest:\n    url: {}\n",
        fixture("greeter.proto"),
        fixture("plain.proto"),
        greeters.url(),
        rest.url()
    ));
    let served = serve(args(&["--config", &arg(&config)])).await;
    assert_eq!(get(&served.url("/v1/greetings/ada")).await.0, 200);
    assert_eq!(get(&served.url("/v1/counts/visits")).await.0, 200);
    assert_eq!(greeters.last().method, "/cli.greet.v1.Greeter/SayHello");
    assert_eq!(rest.last().method, "/cli.plain.v1.Counter/ReadCount");
    assert_eq!((greeters.records().len(), rest.records().len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_options_of_the_config_shape_responses() {
    let backend = backend().await;
    backend.script(answer(json!({"message": "hi", "greeting_count": 0})));
    let config = write_config("json:\n  use_proto_names: true\n  emit_unpopulated: true\n");
    let greeter = fixture("greeter.proto");
    let served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &greeter,
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let (status, body) = get(&served.url("/v1/greetings/ada")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"message": "hi", "greeting_count": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_allow_list_of_the_config_forwards_only_listed_headers() {
    let backend = backend().await;
    let config = write_config("headers:\n  forward: [X-Tenant]\n");
    let greeter = fixture("greeter.proto");
    let served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &greeter,
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let response = support::http1()
        .get(served.url("/v1/greetings/ada"))
        .header("X-Tenant", "blue")
        .header("X-Unlisted", "red")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let metadata = backend.last().metadata;
    assert_eq!(
        metadata.get("x-tenant").and_then(|v| v.to_str().ok()),
        Some("blue")
    );
    assert!(metadata.get("x-unlisted").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_timeout_of_the_config_cuts_a_slow_call() {
    let backend = backend().await;
    let config = write_config("timeouts:\n  methods:\n    cli.greet.v1.Greeter/SayHello: 200ms\n");
    let greeter = fixture("greeter.proto");
    let served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &greeter,
        "--upstream",
        &backend.url(),
    ]))
    .await;
    let started = Instant::now();
    let response = support::http1()
        .get(served.url("/v1/greetings/ada"))
        .header("Grpc-Metadata-X-Echo-Delay-Ms", "5000")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Balancing on a one-address upstream has nothing to choose among: the
/// gateway says so at startup, and serves anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_a_single_address_warns_and_serves() {
    let backend = backend().await;
    backend.script(answer(json!({"message": "hi"})));
    let config = write_config(&format!(
        "upstreams:\n  main:\n    url: {}\n    balance: {{policy: round_robin}}\n",
        backend.url()
    ));
    let mut served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &fixture("greeter.proto"),
    ]))
    .await;
    let warning = served
        .process
        .stderr_line(Duration::from_secs(5), |l| l.contains("WARN"));
    assert!(
        warning.contains("Balancing is set on an upstream of one address")
            && warning.contains("upstream=\"main\""),
        "{warning}"
    );
    let (status, body) = get(&served.url("/v1/greetings/ada")).await;
    assert_eq!(status, 200, "{body}");
}

/// A reload that is refused changes nothing, so it says nothing about the
/// listener's settings; the config that then loads with them changed gets
/// the warning that they take effect on restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_changes_are_told_of_configs_that_load() {
    let backend = backend().await;
    let yaml = |extra: &str| {
        format!(
            "upstreams:\n  main:\n    url: {}\nlimits: {{max_connections: 100}}\n{extra}",
            backend.url()
        )
    };
    let config = write_config(&yaml(""));
    let mut served = serve(args(&[
        "--config",
        &arg(&config),
        "--proto",
        &fixture("greeter.proto"),
    ]))
    .await;
    let restart = |l: &str| l.contains("take effect on restart");
    // Read, then refused (no upstreams), with the connection limit changed.
    std::fs::write(&config, "limits: {max_connections: 50}\n").unwrap();
    served
        .process
        .stderr_line(Duration::from_secs(10), |l| l.contains("Reload failed"));
    assert!(
        !served.process.stderr().lines().any(restart),
        "{}",
        served.process.stderr()
    );
    // TLS turned on with files that do not exist: refused now, as the
    // restart would refuse it, not told to take effect then.
    std::fs::write(
        &config,
        yaml("tls: {cert_file: nope.pem, key_file: nope.key}\n"),
    )
    .unwrap();
    served.process.stderr_line(Duration::from_secs(10), |l| {
        l.contains("Reload failed") && l.contains("nope.pem")
    });
    assert!(
        !served.process.stderr().lines().any(restart),
        "{}",
        served.process.stderr()
    );
    // Loads, with the same change: now it is said.
    std::fs::write(
        &config,
        yaml("").replace("max_connections: 100", "max_connections: 50"),
    )
    .unwrap();
    let line = served.process.stderr_line(Duration::from_secs(10), restart);
    // Naming what changed.
    assert!(line.contains("limits.max_connections 100 -> 50"), "{line}");
}

/// `--log trace` with the log written into the watched config folder: the
/// file watcher's library would log every event it sees, each line being
/// an event of its own, without end. It is held to `info` unless named.
#[test]
fn trace_logs_into_a_watched_folder_stay_bounded() {
    let dir = crate::support::tempdir();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        "upstreams:\n  default: {url: \"http://127.0.0.1:1\"}\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_protogate"))
        .args([
            "serve",
            "--config",
            &arg(&config),
            "--proto",
            &fixture("greeter.proto"),
        ])
        .args(["--listen", "127.0.0.1:0", "--log", "trace"])
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    let lines = std::fs::read_to_string(dir.join("gateway.log"))
        .unwrap_or_default()
        .lines()
        .count();
    assert!(lines > 0 && lines < 2000, "{lines} log lines in 2 s");
}
