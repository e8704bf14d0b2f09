//! Descriptors that change while the gateway runs: reloads under load lose
//! nothing, failed reloads keep the routes, files are watched, reflecting
//! upstreams are asked (and retried while down), the admin listener tells
//! what happened, and the binary reloads on SIGHUP.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use protogate::config::DescriptorSource;
use protogate::{Config, UpstreamConfig};
use serde_json::Value;
use support::{BinGateway, EchoBackend};

/// Every service the backends serve; the gateway is given subsets.
const ALL: &str = r#"
syntax = "proto3";
package reload.v1;
import "google/api/annotations.proto";
message Item { string id = 1; string note = 2; }
service Stable { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }
service Old { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/old/{id}" }; } }
service New { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/new/{id}" }; } }
service Plain { rpc Get(Item) returns (Item); }
"#;

/// A version of the API: `Stable` plus the services named.
fn api(services: &[&str]) -> Bytes {
    let mut source = String::from(
        r#"
syntax = "proto3";
package reload.v1;
import "google/api/annotations.proto";
message Item { string id = 1; string note = 2; }
service Stable { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }
"#,
    );
    for service in services {
        let line = match *service {
            "Old" => {
                r#"service Old { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/old/{id}" }; } }"#
            }
            "New" => {
                r#"service New { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/new/{id}" }; } }"#
            }
            "Plain" => "service Plain { rpc Get(Item) returns (Item); }",
            // A second method on the stable route: a conflict.
            "Clash" => {
                r#"service Clash { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }"#
            }
            other => panic!("no service {other}"),
        };
        source.push_str(line);
        source.push('\n');
    }
    support::compile_source("reload.proto", &source)
}

async fn backend() -> EchoBackend {
    EchoBackend::start(support::pool(&support::compile_source("all.proto", ALL))).await
}

fn reflecting(url: &str) -> UpstreamConfig {
    let mut upstream = UpstreamConfig::new(url);
    upstream.descriptors = DescriptorSource::Reflection;
    upstream
}

/// A config with the admin listener on a free port and `upstreams`.
fn config(upstreams: &[(&str, UpstreamConfig)]) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    for (name, upstream) in upstreams {
        config
            .upstreams
            .insert((*name).to_owned(), upstream.clone());
    }
    config
}

/// The gateway with reloading, its client and its addresses.
struct Running {
    server: protogate::Server,
    client: reqwest::Client,
}

impl Running {
    async fn start(config: Config) -> Running {
        Running::start_with(Box::new(move || Ok(config.clone()))).await
    }

    async fn start_with(source: protogate::reload::ConfigSource) -> Running {
        let server = protogate::start_with(source).await.expect("gateway starts");
        Running {
            server,
            client: support::http1(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }

    fn admin(&self, path: &str) -> String {
        let admin: SocketAddr = self.server.admin_addr().expect("admin listener");
        format!("http://{admin}{path}")
    }

    async fn status_of(&self, path: &str) -> u16 {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("gateway answers")
            .status()
            .as_u16()
    }

    async fn admin_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.admin(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.expect("admin answers JSON"))
    }

    async fn reload(&self) -> (u16, Value) {
        let response = self
            .client
            .post(self.admin("/admin/reload"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.expect("admin answers JSON"))
    }

    /// Waits (bounded) until `path` answers `status`.
    async fn until(&self, path: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.status_of(path).await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {now}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let backend = backend().await;
    let old = api(&["Old"]);
    let new = api(&["New"]);
    let current = Arc::new(Mutex::new(old.clone()));
    let mut base = config(&[("default", UpstreamConfig::new(backend.url()))]);
    base.admin.listen = None;
    let source = {
        let current = current.clone();
        Box::new(move || {
            let mut config = base.clone();
            config.embedded_descriptors = vec![current.lock().clone()];
            Ok(config)
        })
    };
    let gateway = Arc::new(Running::start_with(source).await);
    let reloader = gateway.server.reloader().expect("reloading").clone();

    // A bounded load on the route every version has, over HTTP/1.1 and
    // HTTP/2, until the reloads are done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let client = if worker % 2 == 0 {
            support::http1()
        } else {
            support::http2()
        };
        let url = gateway.url(&format!("/v1/stable/w{worker}"));
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body: Value = response.json().await.unwrap();
                        if body["id"] != format!("w{worker}") {
                            failures.lock().push(format!("wrong answer {body}"));
                        }
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failures.lock().push(format!("{status}: {body}"));
                    }
                    Err(err) => failures.lock().push(err.to_string()),
                }
            }
        }));
    }

    for round in 0..50 {
        let (now, added, removed) = if round % 2 == 0 {
            (&new, "/v1/new/x", "/v1/old/x")
        } else {
            (&old, "/v1/old/x", "/v1/new/x")
        };
        *current.lock() = now.clone();
        reloader.reload("test").await.expect("reload succeeds");
        assert_eq!(gateway.status_of(added).await, 200, "round {round}");
        assert_eq!(gateway.status_of(removed).await, 404, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failures = failures.lock();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent >= 100, "the load ran beside the reloads ({sent} sent)");
    // The first load and fifty reloads.
    assert_eq!(reloader.status().loads, 51);
}

#[tokio::test]
async fn admin_listener_reports_and_reloads() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&["Old", "Plain"])];
    let gateway = Running::start(config).await;

    let (status, body) = gateway.admin_json("/healthz").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));
    let (status, body) = gateway.admin_json("/readyz").await;
    assert_eq!((status, &body["ready"]), (200, &Value::from(true)));

    let (status, body) = gateway.admin_json("/admin/routes").await;
    assert_eq!(status, 200);
    let routes = body["routes"].as_array().unwrap();
    let stable = routes
        .iter()
        .find(|r| r["template"] == "/v1/stable/{id}")
        .expect("the stable route is listed");
    assert_eq!(stable["method"], "GET");
    assert_eq!(stable["rpc"], "reload.v1.Stable/Get");
    assert_eq!(stable["upstream"], "default");
    assert_eq!(stable["streams"], "unary");
    assert!(stable["group"].is_null());
    assert!(
        routes
            .iter()
            .any(|r| r["template"] == "/reload.v1.Plain/Get" && r["method"] == "POST"),
        "unannotated methods get their POST route: {routes:?}"
    );

    let (status, before) = gateway.admin_json("/admin/status").await;
    assert_eq!(status, 200);
    assert_eq!(before["loads"], 1);
    assert!(before["versions"]["all"].is_string(), "{before}");
    assert!(before["last_error"].is_null());

    let (status, after) = gateway.reload().await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["loads"], 2);
    // Same descriptors, same version.
    assert_eq!(after["versions"]["all"], before["versions"]["all"]);

    // Reload is a POST.
    let response = gateway
        .client
        .get(gateway.admin("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // The admin endpoints are not on the main port.
    assert_eq!(gateway.status_of("/admin/routes").await, 404);
}

#[tokio::test]
async fn failed_reloads_keep_the_routes_and_files_are_watched() {
    let backend = backend().await;
    let dir = support::tempdir();
    let file = dir.join("api.binpb");
    std::fs::write(&file, api(&["Old"])).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![file.clone()];
    config.strict_routes = true;
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    // A corrupt file: the reload fails and says why; the routes stay.
    std::fs::write(&file, b"\xff\xff not a descriptor set").unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["reloaded"], false);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("api.binpb"), "names the file: {error}");
    let (_, status) = gateway.admin_json("/admin/status").await;
    assert!(status["last_error"].is_string(), "{status}");
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    // A conflict under `strict_routes` fails the same way.
    std::fs::write(&file, api(&["Old", "Clash"])).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("conflict"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    // A good file is picked up by the watcher alone (no reload asked).
    // Written beside and renamed over, as editors and deploy tools do.
    let next = dir.join("api.binpb.tmp");
    std::fs::write(&next, api(&["New"])).unwrap();
    std::fs::rename(&next, &file).unwrap();
    gateway.until("/v1/new/x", 200).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 404);
    let (_, status) = gateway.admin_json("/admin/status").await;
    assert!(status["last_error"].is_null(), "{status}");

    // Written in place, too.
    std::fs::write(&file, api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;
    assert_eq!(gateway.status_of("/v1/new/x").await, 404);
}

#[tokio::test]
async fn reflected_fleet_is_routed_by_service() {
    let first = backend().await;
    first.reflect(&api(&["Old", "Plain"]));
    let second = backend().await;
    second.reflect(&support::compile_source(
        "other.proto",
        r#"
syntax = "proto3";
package other.v1;
import "google/api/annotations.proto";
message Thing { string id = 1; }
service New { rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v1/new/{id}" }; } }
"#,
    ));
    let config = config(&[
        ("first", reflecting(&first.url())),
        ("second", reflecting(&second.url())),
    ]);
    let gateway = Running::start(config).await;

    assert_eq!(gateway.status_of("/v1/stable/a").await, 200);
    assert_eq!(gateway.status_of("/v1/old/b").await, 200);
    assert_eq!(gateway.status_of("/v1/new/c").await, 200);
    let plain = gateway
        .client
        .post(gateway.url("/reload.v1.Plain/Get"))
        .json(&serde_json::json!({"id": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let served = |backend: &EchoBackend| -> Vec<String> {
        backend.records().into_iter().map(|r| r.method).collect()
    };
    assert_eq!(
        served(&first),
        [
            "/reload.v1.Stable/Get",
            "/reload.v1.Old/Get",
            "/reload.v1.Plain/Get"
        ]
    );
    assert_eq!(served(&second), ["/other.v1.New/Get"]);

    // The reflection services never become routes.
    let (_, body) = gateway.admin_json("/admin/routes").await;
    let rpcs: Vec<&str> = body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rpc"].as_str().unwrap())
        .collect();
    assert!(rpcs.iter().all(|rpc| !rpc.starts_with("grpc.")), "{rpcs:?}");
    let (status, body) = gateway.admin_json("/admin/status").await;
    assert_eq!(status, 200);
    assert!(body["versions"]["first"].is_string(), "{body}");
    assert!(body["versions"]["second"].is_string(), "{body}");
    assert_eq!(body["conflicts"], serde_json::json!([]));
    assert_eq!(body["ready"], true);
}

#[tokio::test]
async fn upstreams_describing_a_service_differently_are_reported() {
    let first = backend().await;
    first.reflect(&api(&["Old"]));
    let second = backend().await;
    // `Stable` again, in a file of different content.
    second.reflect(&api(&["New"]));
    let config = config(&[
        ("first", reflecting(&first.url())),
        ("second", reflecting(&second.url())),
    ]);
    let gateway = Running::start(config).await;
    let (_, body) = gateway.admin_json("/admin/status").await;
    let conflicts = body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{body}");
    let conflict = conflicts[0].as_str().unwrap();
    assert!(
        conflict.contains("reload.v1.Stable") && conflict.contains("first"),
        "{conflict}"
    );
    // Routed to the first that listed it.
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
    assert_eq!(first.records().len(), 1);
    assert!(second.records().is_empty());
}

#[tokio::test]
async fn a_late_backend_brings_its_routes() {
    // A free port, nothing listening yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = config(&[("late", reflecting(&format!("http://{addr}")))]);
    let gateway = Running::start(config).await;

    let (status, body) = gateway.admin_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["waiting_for"], serde_json::json!(["late"]));
    let response = gateway
        .client
        .get(gateway.url("/v1/stable/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("yet") && message.contains("upstream `late` has not answered"),
        "{message}"
    );
    // Retries that find it still down rebuild nothing; the status says
    // why it is waited for.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (_, body) = gateway.admin_json("/admin/status").await;
    assert_eq!(body["loads"], 1, "{body}");
    let why = body["reflection_errors"]["late"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("refused"), "{body}");

    let backend = EchoBackend::start_on(support::pool(&api(&["Old"])), addr).await;
    backend.reflect(&api(&["Old"]));
    gateway.until("/v1/stable/x", 200).await;
    let (status, body) = gateway.admin_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = gateway.admin_json("/admin/status").await;
    assert_eq!(body["waiting_for"], serde_json::json!([]));
    assert_eq!(body["reflection_errors"], serde_json::json!({}));
    assert_eq!(body["loads"], 2, "{body}");
}

#[tokio::test]
async fn reflection_is_refreshed_on_an_interval() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let mut config = config(&[("default", reflecting(&backend.url()))]);
    config.reflection.refresh = Some(Duration::from_millis(200));
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    backend.reflect(&api(&["New"]));
    gateway.until("/v1/new/x", 200).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 404);

    // A backend that stops answering keeps its last descriptors, and the
    // status says they may be stale.
    backend.stop_reflecting();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, status) = gateway.admin_json("/admin/status").await;
        if status["stale"] == serde_json::json!(["default"]) {
            break;
        }
        assert!(Instant::now() < deadline, "never stale: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = gateway.admin_json("/admin/routes").await;
    assert!(
        body["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["template"] == "/v1/new/{id}"),
        "{body}"
    );
}

/// An answer that cannot be built (a type it names is missing) fails its
/// reload and is not kept: with the upstream down afterwards, reloads
/// use its last good descriptors instead of failing on the bad ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reflection_answer_is_not_kept() {
    use prost::Message as _;
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let gateway = Running::start(config(&[("default", reflecting(&backend.url()))])).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    let broken = prost_types::FileDescriptorSet {
        file: vec![prost_types::FileDescriptorProto {
            name: Some("broken.proto".to_owned()),
            package: Some("broken.v1".to_owned()),
            message_type: vec![prost_types::DescriptorProto {
                name: Some("M".to_owned()),
                field: vec![prost_types::FieldDescriptorProto {
                    name: Some("x".to_owned()),
                    number: Some(1),
                    label: Some(1),
                    r#type: Some(11),
                    type_name: Some(".nope.Missing".to_owned()),
                    json_name: Some("x".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            service: vec![prost_types::ServiceDescriptorProto {
                name: Some("S".to_owned()),
                method: vec![prost_types::MethodDescriptorProto {
                    name: Some("Get".to_owned()),
                    input_type: Some(".broken.v1.M".to_owned()),
                    output_type: Some(".broken.v1.M".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".to_owned()),
            ..Default::default()
        }],
    };
    backend.reflect_only(&broken.encode_to_vec().into());
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("nope.Missing"),
        "{body}"
    );

    backend.stop_reflecting();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 200, "the last good descriptors: {body}");
    assert_eq!(body["stale"], serde_json::json!(["default"]), "{body}");
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_sighup() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let url = backend.url();
    let gateway = tokio::task::spawn_blocking(move || {
        BinGateway::spawn(&["serve", "--upstream", &url, "--reflect"])
    })
    .await
    .unwrap();
    let client = support::http1();
    let status = async |path: &str| {
        let response = client.get(gateway.url(path)).send().await.unwrap();
        response.status().as_u16()
    };
    assert_eq!(status("/v1/old/x").await, 200);

    backend.reflect(&api(&["New"]));
    // No refresh interval and no files: only the signal reloads.
    assert_eq!(status("/v1/new/x").await, 404);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("/v1/new/x").await != 200 {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status("/v1/old/x").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_command_reflects_too() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let url = backend.url();
    let output = tokio::task::spawn_blocking(move || {
        support::gateway::binary()
            .args(["routes", "--upstream", &url, "--reflect"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("/v1/old/{id}"), "{stdout}");
    assert!(stdout.contains("reload.v1.Stable"), "{stdout}");
}

/// `reflection.refresh` follows the config: turned on, changed and off by
/// reloads.
#[tokio::test]
async fn refresh_interval_follows_the_config() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let refresh = Arc::new(Mutex::new(None));
    let base = config(&[("default", reflecting(&backend.url()))]);
    let source = {
        let refresh = refresh.clone();
        Box::new(move || {
            let mut config = base.clone();
            config.reflection.refresh = *refresh.lock();
            Ok(config)
        })
    };
    let gateway = Running::start_with(source).await;
    let reloader = gateway.server.reloader().unwrap().clone();

    // Off: a change on the backend stays unseen.
    backend.reflect(&api(&["New"]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.status_of("/v1/new/x").await, 404);

    // Turned on by a reload (which itself sees the change: undo it first).
    backend.reflect(&api(&["Old"]));
    *refresh.lock() = Some(Duration::from_millis(200));
    reloader.reload("test").await.unwrap();
    backend.reflect(&api(&["New"]));
    gateway.until("/v1/new/x", 200).await;

    // Off again.
    *refresh.lock() = None;
    reloader.reload("test").await.unwrap();
    let loads = reloader.status().loads;
    backend.reflect(&api(&["Old"]));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloader.status().loads, loads, "no refresh");
    assert_eq!(gateway.status_of("/v1/old/x").await, 404);
}

/// Kubernetes mounts a ConfigMap as `name -> ..data/name` with `..data` a
/// symlink to a timestamped folder, and swaps `..data` on every update:
/// each swap reloads.
#[tokio::test]
async fn symlink_swaps_as_kubernetes_does_reload_every_time() {
    let backend = backend().await;
    let dir = support::tempdir();
    let version = |n: u32, set: Bytes| {
        let folder = dir.join(format!("..v{n}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("api.pb"), set).unwrap();
        let tmp = dir.join("..tmp");
        std::os::unix::fs::symlink(format!("..v{n}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        if n > 1 {
            std::fs::remove_dir_all(dir.join(format!("..v{}", n - 1))).unwrap();
        }
    };
    version(1, api(&["Old"]));
    std::os::unix::fs::symlink("..data/api.pb", dir.join("api.pb")).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![dir.join("api.pb")];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    version(2, api(&["New"]));
    gateway.until("/v1/new/x", 200).await;
    version(3, api(&["Old"]));
    gateway.until("/v1/old/x", 200).await;
    assert_eq!(gateway.status_of("/v1/new/x").await, 404);
    version(4, api(&["New"]));
    gateway.until("/v1/new/x", 200).await;
}

/// A file the config names after a reload is watched from then on; the
/// config file itself is watched.
#[tokio::test]
async fn files_added_to_the_config_are_watched() {
    let b = r#"
syntax = "proto3";
package b.v1;
import "google/api/annotations.proto";
message Thing { string id = 1; }
service B { rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v1/b/{id}" }; } }
"#;
    // One backend serving both packages.
    let sources = support::tempdir();
    std::fs::write(sources.join("all.proto"), ALL).unwrap();
    std::fs::write(sources.join("b.proto"), b).unwrap();
    let backend = EchoBackend::start(support::pool(&support::compile(
        &sources,
        &["all.proto", "b.proto"],
    )))
    .await;
    let dir = support::tempdir();
    std::fs::write(dir.join("a.pb"), api(&[])).unwrap();
    std::fs::write(dir.join("b.pb"), support::compile_source("b.proto", b)).unwrap();
    let file = dir.join("gateway.yaml");
    let yaml = |sets: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\ndescriptor_sets: [{sets}]\nupstreams:\n  default: {{url: \"{}\"}}\n",
            backend.url()
        )
    };
    std::fs::write(&file, yaml("a.pb")).unwrap();
    let path = file.clone();
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
    assert_eq!(gateway.status_of("/v1/b/x").await, 404);

    // The config file changes: b.pb is loaded...
    std::fs::write(&file, yaml("a.pb, b.pb")).unwrap();
    gateway.until("/v1/b/x", 200).await;
    // ...and watched.
    std::fs::write(dir.join("a.pb"), api(&["New"])).unwrap();
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(
        dir.join("b.pb"),
        support::compile_source(
            "b.proto",
            r#"
syntax = "proto3";
package b.v1;
import "google/api/annotations.proto";
message Thing { string id = 1; }
service B { rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v2/b/{id}" }; } }
"#,
        ),
    )
    .unwrap();
    gateway.until("/v2/b/x", 200).await;
}

/// Files and folders replaced the ways deploy tools replace them are
/// seen: a file renamed over another with the same size and modification
/// time (`rsync -t`, `cp -p`), the config folder renamed away with a new
/// one renamed into its place, and the folder removed and made again.
#[tokio::test]
async fn replaced_files_and_folders_are_seen() {
    let backend = backend().await;
    let root = support::tempdir();
    let dir = root.join("conf");
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\ndescriptor_sets: [api.pb]\nupstreams:\n  default: {{url: \"{}\"}}\n",
        backend.url()
    );
    let fill = |dir: &std::path::Path, services: &[&str]| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("gateway.yaml"), &yaml).unwrap();
        std::fs::write(dir.join("api.pb"), api(services)).unwrap();
    };
    fill(&dir, &["New"]);
    let path = dir.join("gateway.yaml");
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    gateway.until("/v1/new/x", 200).await;

    // Same size, same modification time, another file.
    let file = dir.join("api.pb");
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let next = dir.join("api.pb.tmp");
    std::fs::write(&next, api(&["Old"])).unwrap();
    assert_eq!(
        std::fs::metadata(&next).unwrap().len(),
        std::fs::metadata(&file).unwrap().len()
    );
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&next, &file).unwrap();
    gateway.until("/v1/old/x", 200).await;

    // The folder swapped by renames; then a file in the new one edited.
    fill(&root.join("conf.new"), &["New"]);
    std::fs::rename(&dir, root.join("conf.old")).unwrap();
    std::fs::rename(root.join("conf.new"), &dir).unwrap();
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(dir.join("api.pb"), api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;

    // The folder removed and made again.
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fill(&dir, &["New"]);
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(dir.join("api.pb"), api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;
}

/// A config reloaded without `upstreams` (as a file caught half-written
/// can read) is refused as `serve` refuses it at start: the routes keep
/// calling the backend instead of all answering 503.
/// A descriptor set caught half-written at a file boundary is valid but
/// holds no service (imports come first): a reload to no routes, where
/// routes are served, is refused and the routes stay.
#[tokio::test]
async fn a_reload_to_no_routes_is_refused() {
    use prost::Message as _;
    let backend = backend().await;
    let dir = support::tempdir();
    let file = dir.join("api.binpb");
    let whole = api(&["Old"]);
    std::fs::write(&file, &whole).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![file.clone()];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    let mut set = prost_types::FileDescriptorSet::decode(whole.clone()).unwrap();
    let last = set.file.pop().unwrap();
    assert!(!last.service.is_empty(), "the services' file comes last");
    std::fs::write(&file, set.encode_to_vec()).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no routes"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    std::fs::write(&file, &whole).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
}

#[tokio::test]
async fn a_reload_without_upstreams_is_refused() {
    let backend = backend().await;
    let dir = support::tempdir();
    std::fs::write(dir.join("a.pb"), api(&[])).unwrap();
    let file = dir.join("gateway.yaml");
    let head = "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\ndescriptor_sets: [a.pb]\n";
    let whole = format!(
        "{head}upstreams:\n  default: {{url: \"{}\"}}\n",
        backend.url()
    );
    std::fs::write(&file, &whole).unwrap();
    let path = file.clone();
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    std::fs::write(&file, head).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no upstream"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    // The whole file again: it loads.
    std::fs::write(&file, &whole).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
}

/// Two backends built from files of the same name (`api.proto`) but of
/// different packages: both are served.
#[tokio::test]
async fn same_file_name_from_two_upstreams_serves_both() {
    let source = |package: &str, path: &str| {
        support::compile_source(
            "api.proto",
            &format!(
                r#"
syntax = "proto3";
package {package};
import "google/api/annotations.proto";
message Thing {{ string id = 1; }}
service S {{ rpc Get(Thing) returns (Thing) {{ option (google.api.http) = {{ get: "{path}" }}; }} }}
"#
            ),
        )
    };
    let first = backend().await;
    first.reflect(&source("a.v1", "/a/{id}"));
    let second = backend().await;
    second.reflect(&source("b.v1", "/b/{id}"));
    let config = config(&[
        ("first", reflecting(&first.url())),
        ("second", reflecting(&second.url())),
    ]);
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/a/x").await, 200);
    assert_eq!(gateway.status_of("/b/x").await, 200);
    assert_eq!(first.records().len(), 1);
    assert_eq!(second.records().len(), 1);
    let (_, body) = gateway.admin_json("/admin/status").await;
    let renamed = body["renamed"].as_array().unwrap();
    assert_eq!(renamed.len(), 1, "{body}");
    assert!(
        renamed[0].as_str().unwrap().contains("second/api.proto"),
        "{body}"
    );
}

/// A backend that accepts connections and never answers does not keep
/// the listener closed for the whole reflection timeout, and file reloads
/// do not wait for it.
#[tokio::test]
async fn a_silent_backend_delays_neither_start_nor_file_reloads() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        for _ in 0..64 {
            let Ok((stream, _)) = silent.accept().await else {
                return;
            };
            open.push(stream);
        }
    });
    let backend = backend().await;
    let dir = support::tempdir();
    let file = dir.join("api.pb");
    std::fs::write(&file, api(&["Old"])).unwrap();
    let mut config = config(&[
        ("default", UpstreamConfig::new(backend.url())),
        ("silent", reflecting(&format!("http://{addr}"))),
    ]);
    config.reflection.timeout = Duration::from_secs(30);
    config.descriptor_sets = vec![file.clone()];
    let started = Instant::now();
    let gateway = Running::start(config).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "start waited {:?}",
        started.elapsed()
    );
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
    let (status, _) = gateway.admin_json("/readyz").await;
    assert_eq!(status, 503);
    std::fs::write(&file, api(&["New"])).unwrap();
    let changed = Instant::now();
    gateway.until("/v1/new/x", 200).await;
    assert!(changed.elapsed() < Duration::from_secs(10));
    held.abort();
}

#[tokio::test]
async fn admin_errors_are_json() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&[])];
    let gateway = Running::start(config).await;
    for (method, path, status) in [
        (reqwest::Method::GET, "/nope", 404),
        (reqwest::Method::GET, "/admin/reload", 405),
        (reqwest::Method::POST, "/healthz", 405),
    ] {
        let response = gateway
            .client
            .request(method.clone(), gateway.admin(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: Value = response.json().await.expect("JSON");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["code"].is_number());
    }
}

/// A backend with only the older `v1alpha` reflection is asked with it.
#[tokio::test]
async fn v1alpha_only_backends_are_reflected() {
    let backend = backend().await;
    backend.reflect_v1alpha_only(&api(&["Old", "Plain"]));
    let gateway = Running::start(config(&[("default", reflecting(&backend.url()))])).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
    let (status, _) = gateway.admin_json("/readyz").await;
    assert_eq!(status, 200);
}

/// What reflection learned is overridden by `services` in config.
#[tokio::test]
async fn config_services_override_what_reflection_learned() {
    let first = backend().await;
    first.reflect(&api(&["Old"]));
    let second = backend().await;
    second.reflect(&api(&["Old"]));
    let mut claimed = reflecting(&second.url());
    claimed.services = vec!["reload.v1.Old".to_owned()];
    let gateway = Running::start(config(&[
        ("first", reflecting(&first.url())),
        ("second", claimed),
    ]))
    .await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
    let methods = |backend: &EchoBackend| -> Vec<String> {
        backend.records().into_iter().map(|r| r.method).collect()
    };
    assert_eq!(methods(&second), ["/reload.v1.Old/Get"]);
    assert_eq!(methods(&first), ["/reload.v1.Stable/Get"]);
}

/// `/admin/routes` names the upstream a route group sends a route to.
#[tokio::test]
async fn admin_routes_show_route_groups() {
    let backend = backend().await;
    let mut other = UpstreamConfig::new(backend.url());
    other.services = vec!["reload.v1.Plain".to_owned()];
    let mut config = config(&[
        ("default", UpstreamConfig::new(backend.url())),
        ("other", other),
    ]);
    config.embedded_descriptors = vec![api(&["Old"])];
    config.routes.push(protogate::config::RouteGroupConfig {
        prefix: "/v1/old/".to_owned(),
        upstream: "other".to_owned(),
        timeout: None,
        strip_prefix: false,
        tls: None,
    });
    let gateway = Running::start(config).await;
    let (_, body) = gateway.admin_json("/admin/routes").await;
    let routes = body["routes"].as_array().unwrap();
    let row = |template: &str| {
        routes
            .iter()
            .find(|r| r["template"] == template)
            .unwrap_or_else(|| panic!("{template}: {body}"))
            .clone()
    };
    let old = row("/v1/old/{id}");
    assert_eq!(old["upstream"], "other");
    assert_eq!(old["group"], "/v1/old/");
    let stable = row("/v1/stable/{id}");
    assert_eq!(stable["upstream"], "default");
    assert!(stable["group"].is_null());
}

/// Once shutdown starts, the main port refuses new connections while
/// requests in flight finish: `/readyz` says so (503) instead of 200, so
/// a load balancer stops sending there.
#[tokio::test]
async fn readyz_is_503_once_shutdown_starts() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&["Old"])];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.admin_json("/readyz").await.0, 200);
    backend.script(support::Script {
        delay: Some(Duration::from_secs(2)),
        ..support::Script::default()
    });
    let in_flight = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/old/x"));
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.records().is_empty() {
        assert!(Instant::now() < deadline, "the call did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readyz = gateway.admin("/readyz");
    let Running { server, client } = gateway;
    let drain = tokio::spawn(server.shutdown());
    let deadline = Instant::now() + Duration::from_secs(5);
    let body: Value = loop {
        let response = client.get(&readyz).send().await.expect("admin answers");
        if response.status() == 503 {
            break response.json().await.expect("JSON");
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stays {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["shutting_down"], true, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("shutting down"), "{body}");
    assert_eq!(in_flight.await.unwrap().expect("an answer"), 200);
    drain.await.unwrap();
}
