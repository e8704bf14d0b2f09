//! Calls whose requests cannot be sent twice (passed-through gRPC, REST
//! streams) against a pool with an endpoint that refuses connections:
//! nothing was sent to it, so the call goes to another endpoint as the
//! retry policy allows, and fails with `UNAVAILABLE` only when it allows
//! no other try. TLS endpoints alike: their connection, handshake
//! included, is made before the call starts too.

mod support;

use std::time::Duration;

use std::sync::Arc;

use protogate::config::{BalancePolicy, EndpointConfig, HealthCheck, UpstreamTls};
use protogate::{Config, UpstreamConfig};
use reqwest::StatusCode;
use support::tls::TestCa;
use support::{EchoBackend, TestGateway};

/// A round-robin pool of `backend` and another backend that is then
/// killed: it stays in the rotation (its health checks are a minute apart,
/// passive ejection is off), so every other call is balanced to an
/// endpoint that refuses connections. `attempts` tries in all.
async fn gateway(backend: &EchoBackend, attempts: u32) -> TestGateway {
    let dead = echo_backend().await;
    pool_gateway(dead, backend, attempts, None).await
}

/// The same pool over TLS: `backend` and the endpoint killed are TLS
/// backends (`tls_backend`), trusted through `tls`.
async fn tls_gateway(backend: &EchoBackend, tls: &TlsBackends) -> TestGateway {
    let dead = tls.backend().await;
    pool_gateway(dead, backend, 3, Some(tls.upstream())).await
}

async fn pool_gateway(
    dead: EchoBackend,
    backend: &EchoBackend,
    attempts: u32,
    tls: Option<UpstreamTls>,
) -> TestGateway {
    dead.set_serving(true).await;
    backend.set_serving(true).await;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = |backend: &EchoBackend| format!("{scheme}://{}", backend.addr());
    let mut upstream = UpstreamConfig::new(url(backend));
    upstream.endpoints = vec![
        EndpointConfig::new(url(&dead)),
        EndpointConfig::new(url(backend)),
    ];
    upstream.tls = tls;
    upstream.balance.policy = BalancePolicy::RoundRobin;
    upstream.outlier_detection.consecutive_failures = 0;
    upstream.health_check = Some(HealthCheck {
        interval: Duration::from_secs(60),
        ..HealthCheck::default()
    });
    upstream.retry.attempts = attempts;
    let mut config = Config {
        embedded_descriptors: vec![support::kitchen()],
        ..Config::default()
    };
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    config.upstreams.insert("default".to_owned(), upstream);
    let gateway = TestGateway::start(config).await;
    // Both in the rotation first: calls are balanced to the dead one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = gateway.admin_status().await;
        let endpoints = status["pools"]["default"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let in_rotation = endpoints
            .iter()
            .filter(|e| e["in_rotation"] == serde_json::Value::Bool(true))
            .count();
        if in_rotation == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dead.kill();
    drop(dead);
    gateway
}

async fn echo_backend() -> EchoBackend {
    EchoBackend::start(support::pool(&support::kitchen())).await
}

/// Echo backends behind TLS, with certificates for 127.0.0.1 from a
/// private CA, and the upstream TLS settings that trust it.
struct TlsBackends {
    server: Arc<rustls::ServerConfig>,
    ca_file: std::path::PathBuf,
    _dir: support::TempDir,
}

impl TlsBackends {
    fn new() -> TlsBackends {
        let ca = TestCa::new("protogate test CA");
        let (cert, key) = ca.issue(&["127.0.0.1"]);
        let dir = support::tempdir();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        TlsBackends {
            server: support::tls::server_config(&cert, &key, &[b"h2"]),
            ca_file,
            _dir: dir,
        }
    }

    async fn backend(&self) -> EchoBackend {
        let pool = support::pool(&support::kitchen());
        EchoBackend::start_tls(pool, Arc::clone(&self.server)).await
    }

    fn upstream(&self) -> UpstreamTls {
        UpstreamTls {
            ca_file: Some(self.ca_file.clone()),
            ..UpstreamTls::default()
        }
    }
}

/// Six passed-through gRPC calls, each of which must reach `backend`
/// once (the pool's other endpoint refuses connections).
async fn all_passed_through_calls_reach(backend: &EchoBackend, gateway: &TestGateway) {
    for _ in 0..6 {
        let (status, message, _) =
            support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo"))
                .await;
        assert_eq!((status.as_str(), message.as_str()), ("0", ""));
    }
    assert_eq!(
        backend.records().len(),
        6,
        "each call reached the backend once"
    );
}

/// Six streamed REST calls, each of which must reach `backend` and stream
/// its two messages back.
async fn all_streamed_calls_reach(backend: &EchoBackend, gateway: &TestGateway) {
    let client = support::http1();
    for i in 0..6 {
        let response = client
            .get(gateway.url(&format!("/v1/watch?s=w{i}")))
            .header("grpc-metadata-x-echo-count", "2")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = support::client::stream_text(response).await;
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(&format!("\"s\":\"w{i}\"")), "{text}");
    }
    assert_eq!(backend.records().len(), 6);
}

#[tokio::test]
async fn passed_through_grpc_calls_go_to_an_endpoint_that_takes_the_connection() {
    let backend = echo_backend().await;
    let gateway = gateway(&backend, 3).await;
    all_passed_through_calls_reach(&backend, &gateway).await;
}

#[tokio::test]
async fn streamed_rest_calls_go_to_an_endpoint_that_takes_the_connection() {
    let backend = echo_backend().await;
    let gateway = gateway(&backend, 3).await;
    all_streamed_calls_reach(&backend, &gateway).await;
}

/// With one try in all, a call balanced to the refusing endpoint fails:
/// the retries above are the policy's, not luck.
#[tokio::test]
async fn without_retries_the_refused_calls_fail_unavailable() {
    let backend = echo_backend().await;
    let gateway = gateway(&backend, 1).await;
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let (status, message, _) =
            support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo"))
                .await;
        if status != "0" {
            assert!(message.contains("upstream `default`"), "{message}");
        }
        outcomes.push(status);
    }
    let failed = outcomes.iter().filter(|s| *s == "14").count();
    assert_eq!(failed, 3, "every other call is refused: {outcomes:?}");
    assert_eq!(backend.records().len(), 3);

    let response = support::http1()
        .get(gateway.url("/v1/watch?s=x"))
        .send()
        .await
        .unwrap();
    let second = support::http1()
        .get(gateway.url("/v1/watch?s=x"))
        .send()
        .await
        .unwrap();
    let statuses = [response.status(), second.status()];
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE) && statuses.contains(&StatusCode::OK),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn passed_through_grpc_calls_go_to_a_tls_endpoint_that_takes_the_connection() {
    let tls = TlsBackends::new();
    let backend = tls.backend().await;
    let gateway = tls_gateway(&backend, &tls).await;
    all_passed_through_calls_reach(&backend, &gateway).await;
}

#[tokio::test]
async fn streamed_rest_calls_go_to_a_tls_endpoint_that_takes_the_connection() {
    let tls = TlsBackends::new();
    let backend = tls.backend().await;
    let gateway = tls_gateway(&backend, &tls).await;
    all_streamed_calls_reach(&backend, &gateway).await;
}
