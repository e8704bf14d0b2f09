//! Reflecting upstreams: asked, retried while down, refreshed, and their
//! answers checked and combined.

use super::*;

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

#[tokio::test]
async fn asking_and_serving_share_one_connection() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let shared = Arc::new(Mutex::new(config(&[("first", reflecting(&backend.url()))])));
    let source = shared.clone();
    let gateway = Running::start_with(Box::new(move || Ok(source.lock().clone()))).await;
    assert_eq!(gateway.status_of("/v1/old/b").await, 200);
    assert_eq!(
        backend.connections(),
        1,
        "the upstream asked at start is the one that serves"
    );

    // Settings that make a new channel: asked over it, and served over it.
    shared
        .lock()
        .upstreams
        .get_mut("first")
        .unwrap()
        .idle_timeout = Some(Duration::from_secs(300));
    assert_eq!(gateway.reload().await.0, 200);
    assert_eq!(gateway.status_of("/v1/old/c").await, 200);
    assert_eq!(
        backend.connections(),
        2,
        "one new connection for the new settings"
    );

    // Unchanged settings keep the channel, asking included.
    assert_eq!(gateway.reload().await.0, 200);
    assert_eq!(gateway.status_of("/v1/old/d").await, 200);
    assert_eq!(backend.connections(), 2);
}
