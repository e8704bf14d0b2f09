//! Upstreams as pools of endpoints: calls balanced over real backends,
//! active health checks taking endpoints out of the rotation and back,
//! host names resolved to every address, and a fast 503 when no endpoint
//! is left.

mod support;

/// The longest wait for calls to spread as a test wants.
const SETTLE: Duration = Duration::from_secs(20);

use std::time::{Duration, Instant};

use protogate::config::{EndpointConfig, HealthCheck};
use protogate::{Config, UpstreamConfig};
use reqwest::StatusCode;
use serde_json::Value;
use support::spread::{spread, until_spread};
use support::{EchoBackend, TestGateway};

use support::kitchen;

/// A quick health check: every 200 ms (each waiting as long for its
/// answer), out after one failure, back after one pass.
fn quick_check() -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        unhealthy_threshold: 1,
        healthy_threshold: 1,
        ..HealthCheck::default()
    }
}

async fn gateway(upstream: UpstreamConfig) -> TestGateway {
    let mut config = Config {
        embedded_descriptors: vec![kitchen()],
        ..Config::default()
    };
    config.upstreams.insert("default".to_owned(), upstream);
    TestGateway::start(config).await
}

#[tokio::test]
async fn calls_are_balanced_over_every_endpoint() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    let b = EchoBackend::start(support::pool(&set)).await;
    let mut upstream = UpstreamConfig::new(a.url());
    upstream.endpoints = vec![EndpointConfig::new(b.url())];
    let gateway = gateway(upstream).await;
    let got = spread(&gateway, &[&a, &b], 60).await;
    assert!(got.iter().all(|n| *n >= 5), "both endpoints serve: {got:?}");
    assert_eq!(got.iter().sum::<usize>(), 60);
}

#[tokio::test]
async fn health_checks_take_endpoints_out_and_back() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    let b = EchoBackend::start(support::pool(&set)).await;
    a.set_serving(true).await;
    b.set_serving(true).await;
    let mut upstream = UpstreamConfig::new(a.url());
    upstream.endpoints = vec![EndpointConfig::new(b.url())];
    upstream.health_check = Some(quick_check());
    let gateway = gateway(upstream).await;
    until_spread(&gateway, &[&a, &b], SETTLE, |got| {
        got.iter().all(|n| *n > 0)
    })
    .await;

    // `a` says it is not serving: every call goes to `b`, none fails.
    a.set_serving(false).await;
    until_spread(&gateway, &[&a, &b], SETTLE, |got| got[0] == 0).await;
    let got = spread(&gateway, &[&a, &b], 40).await;
    assert_eq!(got, [0, 40]);

    // And back.
    a.set_serving(true).await;
    until_spread(&gateway, &[&a, &b], SETTLE, |got| got[0] > 0).await;
}

#[tokio::test]
async fn no_endpoint_left_is_a_fast_503() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    a.set_serving(true).await;
    let mut upstream = UpstreamConfig::new(a.url());
    upstream.health_check = Some(quick_check());
    let gateway = gateway(upstream).await;
    until_spread(&gateway, &[&a], SETTLE, |got| got[0] == 20).await;

    a.set_serving(false).await;
    let client = support::http1();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response.json::<Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "never taken out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["code"], 14);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("no endpoint in the rotation")
            && message.contains("none passing its checks"),
        "{message}"
    );
    // At once, not after the deadline.
    let started = Instant::now();
    let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(2));

    // gRPC clients passed through get the same answer.
    let response = support::http2()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(support::envelope(0, b""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "14");
    let message = response.headers()["grpc-message"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("no%20endpoint") || message.contains("no endpoint"),
        "{message}"
    );
}

/// A host name is resolved to every address; an address that does not
/// answer its health check stays out (here `localhost` may also be `::1`,
/// where nothing listens).
#[tokio::test]
async fn host_names_are_resolved_and_checked() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    a.set_serving(true).await;
    let mut upstream = UpstreamConfig::new(format!("http://localhost:{}", a.addr().port()));
    upstream.health_check = Some(quick_check());
    upstream.dns_refresh = Some(Duration::from_millis(200));
    let gateway = gateway(upstream).await;
    until_spread(&gateway, &[&a], SETTLE, |got| got[0] == 20).await;
    let got = spread(&gateway, &[&a], 40).await;
    assert_eq!(got, [40]);
}

/// Without `health_check`, an endpoint that refuses connections leaves the
/// rotation by the connection probe, and a unary call that could not
/// connect is tried again on another endpoint: no call fails.
#[tokio::test]
async fn a_dead_endpoint_fails_no_call() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let mut upstream = UpstreamConfig::new(a.url());
    upstream.endpoints = vec![EndpointConfig::new(format!("http://{dead}"))];
    let gateway = gateway(upstream).await;
    let got = spread(&gateway, &[&a], 60).await;
    assert_eq!(got, [60]);
}

/// `/admin/status` lists each pool's endpoints and whether they take calls.
#[tokio::test]
async fn admin_status_shows_pool_endpoints() {
    let set = kitchen();
    let a = EchoBackend::start(support::pool(&set)).await;
    let b = EchoBackend::start(support::pool(&set)).await;
    a.set_serving(true).await;
    b.set_serving(false).await;
    let mut upstream = UpstreamConfig::new(a.url());
    upstream.endpoints = vec![EndpointConfig::new(b.url())];
    upstream.health_check = Some(quick_check());
    let mut config = Config {
        embedded_descriptors: vec![kitchen()],
        ..Config::default()
    };
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    config.upstreams.insert("default".to_owned(), upstream);
    let gateway = TestGateway::start(config).await;
    let admin = gateway.server.admin_addr().unwrap();
    let client = support::http1();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: Value = client
            .get(format!("http://{admin}/admin/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let endpoints = status["pools"]["default"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let state = |addr: std::net::SocketAddr| {
            endpoints
                .iter()
                .find(|e| e["address"] == addr.to_string())
                .map(|e| e["in_rotation"].clone())
        };
        if state(a.addr()) == Some(Value::Bool(true)) && state(b.addr()) == Some(Value::Bool(false))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
