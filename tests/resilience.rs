//! Pools that survive failure, against real backends on loopback: the
//! balancing policies, zones, passive ejection, retries by idempotency, a
//! backend killed mid-load, the circuit breaker, and canary splits
//! (measured, and changed by a reload).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use protogate::config::{
    Balance, BalancePolicy, Canary, CircuitBreaker, EndpointConfig, HealthCheck, OutlierDetection,
};
use protogate::{Config, UpstreamConfig};
use reqwest::StatusCode;
use support::{EchoBackend, Script, TestGateway};
use tonic::Code;

async fn backends(n: usize) -> Vec<EchoBackend> {
    let pool = support::pool(&support::kitchen());
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(EchoBackend::start(pool.clone()).await);
    }
    out
}

/// An upstream over `backends` with `weights` (and zones), tweaked.
fn pool_of(
    backends: &[EchoBackend],
    endpoints: impl Fn(usize, &EchoBackend) -> EndpointConfig,
) -> UpstreamConfig {
    let mut upstream = UpstreamConfig::new(backends[0].url());
    upstream.endpoints = backends
        .iter()
        .enumerate()
        .map(|(i, b)| endpoints(i, b))
        .collect();
    upstream
}

fn config(upstreams: Vec<(&str, UpstreamConfig)>) -> Config {
    let mut config = Config {
        embedded_descriptors: vec![support::kitchen()],
        ..Config::default()
    };
    for (name, upstream) in upstreams {
        config.upstreams.insert(name.to_owned(), upstream);
    }
    config
}

fn counts(backends: &[EchoBackend]) -> Vec<usize> {
    backends.iter().map(|b| b.records().len()).collect()
}

fn clear(backends: &[EchoBackend]) {
    for backend in backends {
        backend.clear();
    }
}

/// `n` sequential GETs with `headers`; every one must succeed.
async fn get_ok(gateway: &TestGateway, n: usize, headers: &[(&str, &str)]) {
    let client = support::http1();
    for _ in 0..n {
        let mut request = client.get(gateway.url("/v1/echo"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}",
            response.text().await
        );
    }
}

#[tokio::test]
async fn round_robin_and_smooth_weights_spread_calls_exactly() {
    let backends = backends(3).await;
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance.policy = BalancePolicy::RoundRobin;
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    get_ok(&gateway, 30, &[]).await;
    assert_eq!(counts(&backends), [10, 10, 10]);

    let mut upstream = pool_of(&backends, |i, b| EndpointConfig {
        weight: i as u32 + 1,
        ..EndpointConfig::new(b.url())
    });
    upstream.balance.policy = BalancePolicy::WeightedRoundRobin;
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    clear(&backends);
    get_ok(&gateway, 60, &[]).await;
    assert_eq!(counts(&backends), [10, 20, 30]);
}

#[tokio::test]
async fn consistent_hash_keeps_each_key_on_one_endpoint() {
    let backends = backends(3).await;
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance = Balance {
        policy: BalancePolicy::ConsistentHash,
        hash_header: Some("x-user".parse().unwrap()),
    };
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    let mut used = std::collections::BTreeSet::new();
    for user in 0..24 {
        let before = counts(&backends);
        get_ok(&gateway, 4, &[("x-user", &format!("user-{user}"))]).await;
        let after = counts(&backends);
        let took: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let home = took.iter().position(|n| *n == 4);
        assert!(home.is_some(), "user-{user}'s calls were spread: {took:?}");
        used.extend(home);
    }
    assert!(
        used.len() >= 2,
        "every key hashed to one endpoint: {used:?}"
    );
}

#[tokio::test]
async fn the_local_zone_is_preferred_until_it_has_no_endpoint() {
    let backends = backends(2).await;
    let mut upstream = pool_of(&backends, |i, b| EndpointConfig {
        zone: Some(["eu-1a", "eu-1b"][i].to_owned()),
        ..EndpointConfig::new(b.url())
    });
    upstream.health_check = Some(HealthCheck {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        unhealthy_threshold: 1,
        healthy_threshold: 1,
        ..HealthCheck::default()
    });
    for backend in &backends {
        backend.set_serving(true).await;
    }
    let mut config = config(vec![("default", upstream)]);
    config.zone = Some("eu-1a".to_owned());
    let gateway = TestGateway::start(config).await;
    get_ok(&gateway, 20, &[]).await;
    assert_eq!(counts(&backends), [20, 0]);

    // The local endpoint fails its checks: the other zone takes over.
    backends[0].set_serving(false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        clear(&backends);
        get_ok(&gateway, 10, &[]).await;
        if counts(&backends) == [0, 10] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover: {:?}",
            counts(&backends)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And back when it passes again.
    backends[0].set_serving(true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        clear(&backends);
        get_ok(&gateway, 10, &[]).await;
        if counts(&backends) == [10, 0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back: {:?}",
            counts(&backends)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_endpoint_failing_in_a_row_is_ejected() {
    let backends = backends(2).await;
    backends[1].script(Script {
        error: Some((Code::Internal, "broken".into(), vec![])),
        ..Script::default()
    });
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance.policy = BalancePolicy::RoundRobin;
    upstream.outlier_detection = OutlierDetection {
        consecutive_failures: 3,
        ..OutlierDetection::default()
    };
    let mut config = config(vec![("default", upstream)]);
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = TestGateway::start(config).await;
    let client = support::http1();
    let mut failed = 0;
    for _ in 0..30 {
        let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
        if response.status() != StatusCode::OK {
            failed += 1;
        }
    }
    // Three failures (INTERNAL is not retried), then it is out.
    assert_eq!(backends[1].records().len(), 3);
    assert_eq!(failed, 3);
    assert_eq!(backends[0].records().len(), 27);

    let status = gateway.admin_status().await;
    let ejected: Vec<&str> = status["pools"]["default"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ejected"] == true)
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(ejected, [backends[1].addr().to_string()], "{status}");
}

#[tokio::test]
async fn only_idempotent_calls_are_sent_again_after_a_backend_failed_them() {
    let backends = backends(2).await;
    backends[1].script(Script {
        error: Some((Code::Unavailable, "draining".into(), vec![])),
        ..Script::default()
    });
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance.policy = BalancePolicy::RoundRobin;
    upstream.outlier_detection.consecutive_failures = 0;
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;

    // GET: retried on the other endpoint, no failure seen.
    get_ok(&gateway, 10, &[]).await;
    assert!(backends[1].records().len() >= 4, "{:?}", counts(&backends));
    assert_eq!(backends[0].records().len(), 10);

    // POST of a method not marked idempotent: the backend may have acted
    // on it, so it is never sent twice.
    clear(&backends);
    let client = support::http1();
    let mut failed = 0;
    for i in 0..10 {
        let response = client
            .post(gateway.url("/v1/echo"))
            .json(&serde_json::json!({"s": format!("order-{i}")}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        } else {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    assert_eq!(failed, 5);
    assert_eq!(
        counts(&backends),
        [5, 5],
        "each POST reached one backend once"
    );
}

#[tokio::test]
async fn a_backend_killed_mid_load_costs_no_call() {
    let backends = backends(3).await;
    let upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    let gateway = Arc::new(TestGateway::start(config(vec![("default", upstream)])).await);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let gateway = gateway.clone();
        let done = done.clone();
        workers.spawn(async move {
            let client = support::http2();
            let mut failures = Vec::new();
            for _ in 0..150 {
                let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
                if response.status() != StatusCode::OK {
                    failures.push(format!(
                        "{} {}",
                        response.status(),
                        response.text().await.unwrap()
                    ));
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            failures
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(std::sync::atomic::Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "load did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = backends[2].records().len();
    backends[2].kill();
    let mut failures = Vec::new();
    while let Some(result) = workers.join_next().await {
        failures.extend(result.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(killed_at > 0, "the killed backend took calls before");
    let survivors = backends[0].records().len() + backends[1].records().len();
    assert!(
        survivors + killed_at >= 1200,
        "calls lost: {survivors} + {killed_at}"
    );
}

/// Starts `count` GETs of `/v1/echo` that the backend holds (its script
/// delays them), and waits until it has them all.
async fn slow_calls(
    gateway: &Arc<TestGateway>,
    backend: &EchoBackend,
    count: usize,
) -> Vec<tokio::task::JoinHandle<StatusCode>> {
    let calls = (0..count)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                support::http1()
                    .get(gateway.url("/v1/echo"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.records().len() < count {
        assert!(Instant::now() < deadline, "slow calls did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    calls
}

#[tokio::test]
async fn the_breaker_opens_at_its_limit_and_closes_as_calls_end() {
    let backends = backends(1).await;
    backends[0].script(Script {
        delay: Some(Duration::from_millis(800)),
        ..Script::default()
    });
    let mut upstream = UpstreamConfig::new(backends[0].url());
    upstream.circuit_breaker = Some(CircuitBreaker {
        max_requests: 2,
        max_pending: 10,
    });
    let gateway = Arc::new(TestGateway::start(config(vec![("default", upstream)])).await);
    let slow = slow_calls(&gateway, &backends[0], 2).await;
    let started = Instant::now();
    let refused = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not refused at once"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 14);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("circuit_breaker.max_requests"),
        "{message}"
    );
    assert_eq!(
        backends[0].records().len(),
        2,
        "the refused call reached the backend"
    );
    for call in slow {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    backends[0].script(Script::default());
    get_ok(&gateway, 3, &[]).await;
}

fn canary_config(weight: u32, stable: &EchoBackend, canary: &EchoBackend) -> Config {
    let mut primary = UpstreamConfig::new(stable.url());
    primary.canary = Some(Canary {
        upstream: "canary".to_owned(),
        weight,
        header: "x-canary".parse().unwrap(),
    });
    // Without `services`: a canary claims none of its own.
    let canary = UpstreamConfig::new(canary.url());
    config(vec![("default", primary), ("canary", canary)])
}

#[tokio::test]
async fn a_canary_takes_its_share_within_three_percent() {
    let backends = backends(2).await;
    let gateway = Arc::new(TestGateway::start(canary_config(20, &backends[0], &backends[1])).await);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let gateway = gateway.clone();
        workers.spawn(async move {
            let client = support::http1();
            for _ in 0..625 {
                let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result.unwrap();
    }
    let [stable, canary] = counts(&backends)[..] else {
        unreachable!()
    };
    assert_eq!(stable + canary, 10_000);
    assert!(
        (1_700..=2_300).contains(&canary),
        "canary took {canary} of 10000"
    );

    clear(&backends);
    get_ok(&gateway, 50, &[("x-canary", "always")]).await;
    assert_eq!(counts(&backends), [0, 50]);
    clear(&backends);
    get_ok(&gateway, 50, &[("x-canary", "never")]).await;
    assert_eq!(counts(&backends), [50, 0]);
}

/// A canary whose pool has no endpoint in the rotation (every one fails
/// its health check) takes none of its share: those calls go to the
/// stable upstream, since nothing was sent. A client asking for the
/// canary by its header gets the canary's 503.
#[tokio::test]
async fn a_canary_with_no_endpoint_in_rotation_leaves_its_share_to_the_stable_side() {
    let backends = backends(1).await;
    let dead = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut config = canary_config(50, &backends[0], &backends[0]);
    let canary = config.upstreams.get_mut("canary").unwrap();
    canary.url = dead();
    canary.endpoints = vec![EndpointConfig::new(dead()), EndpointConfig::new(dead())];
    canary.health_check = Some(HealthCheck {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        unhealthy_threshold: 1,
        healthy_threshold: 1,
        ..HealthCheck::default()
    });
    let gateway = TestGateway::start(config).await;
    // Once the checks have run, every call is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let client = support::http1();
        let mut failed = 0;
        for _ in 0..40 {
            let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
            failed += usize::from(response.status() != StatusCode::OK);
        }
        if failed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{failed} of 40 still failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(counts(&backends)[0] >= 40);
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("x-canary", "always")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_reload_moves_the_canary_weight() {
    let backends = Arc::new(backends(2).await);
    let weight = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let source = {
        let (backends, weight) = (backends.clone(), weight.clone());
        Box::new(move || {
            let weight = weight.load(std::sync::atomic::Ordering::SeqCst);
            let mut config = canary_config(weight, &backends[0], &backends[1]);
            config.listen = "127.0.0.1:0".parse().unwrap();
            Ok(config)
        })
    };
    let server = protogate::start_with(source).await.unwrap();
    let gateway = TestGateway {
        base: format!("http://{}", server.local_addr()),
        server,
    };
    let reload_with = |to: u32| {
        weight.store(to, std::sync::atomic::Ordering::SeqCst);
        gateway.server.reloader().expect("reloading").reload("test")
    };
    get_ok(&gateway, 40, &[]).await;
    assert_eq!(counts(&backends), [40, 0]);

    reload_with(100).await.unwrap();
    clear(&backends);
    get_ok(&gateway, 40, &[]).await;
    assert_eq!(counts(&backends), [0, 40]);

    // And back: both sides kept their upstream, connection included (a
    // new one would also forget ejections and breaker counts).
    reload_with(0).await.unwrap();
    clear(&backends);
    get_ok(&gateway, 10, &[]).await;
    assert_eq!(counts(&backends), [10, 0]);
    assert_eq!(
        [backends[0].connections(), backends[1].connections()],
        [1, 1],
        "connections made"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_and_reopened_on_demand() {
    let backends = backends(1).await;
    backends[0].set_serving(true).await;
    let mut upstream = UpstreamConfig::new(backends[0].url());
    upstream.health_check = Some(HealthCheck {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        ..HealthCheck::default()
    });
    upstream.idle_timeout = Some(Duration::from_secs(2));
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    get_ok(&gateway, 5, &[]).await;
    // One connection for health checks, one shared by the calls.
    assert_eq!(backends[0].open_connections(), 2);
    let accepted = backends[0].connections();

    // Idle past the timeout: the calls' connection closes, the checks'
    // stays.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends[0].open_connections() != 1 {
        assert!(Instant::now() < deadline, "the idle connection stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next call opens a new one.
    get_ok(&gateway, 3, &[]).await;
    assert_eq!(backends[0].open_connections(), 2);
    assert_eq!(backends[0].connections(), accepted + 1);
}

#[tokio::test]
async fn a_hung_endpoint_is_ejected_by_its_timeouts() {
    let backends = backends(2).await;
    backends[1].script(Script {
        delay: Some(Duration::from_secs(5)),
        ..Script::default()
    });
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance.policy = BalancePolicy::RoundRobin;
    upstream.timeout = Some(Duration::from_millis(300));
    upstream.outlier_detection.consecutive_failures = 2;
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    let client = support::http1();
    let mut timed_out = 0;
    for _ in 0..20 {
        let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
        match response.status() {
            StatusCode::OK => {}
            StatusCode::GATEWAY_TIMEOUT => timed_out += 1,
            other => panic!("{other}: {:?}", response.text().await),
        }
    }
    // Two calls waited out their deadline on it, then it was out.
    assert_eq!(timed_out, 2);
    assert_eq!(backends[1].records().len(), 2);
    assert_eq!(backends[0].records().len(), 18);
}

/// A client's own deadline, shorter than the gateway's, says nothing
/// about the endpoint: calls it cuts short eject nothing (or any client
/// could have healthy endpoints taken out), over REST and Connect alike.
/// An already-passed deadline sends nothing at all.
#[tokio::test]
async fn a_clients_short_deadline_ejects_nothing() {
    let backends = backends(2).await;
    for backend in &backends {
        backend.script(Script {
            delay: Some(Duration::from_millis(300)),
            ..Script::default()
        });
    }
    let mut upstream = pool_of(&backends, |_, b| EndpointConfig::new(b.url()));
    upstream.balance.policy = BalancePolicy::RoundRobin;
    upstream.timeout = Some(Duration::from_secs(5));
    upstream.outlier_detection.consecutive_failures = 2;
    let mut config = config(vec![("default", upstream)]);
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = TestGateway::start(config).await;
    let client = support::http1();
    for i in 0..8 {
        let request = if i % 2 == 0 {
            client
                .get(gateway.url("/v1/echo"))
                .header("grpc-timeout", "50m")
        } else {
            client
                .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
                .header("connect-protocol-version", "1")
                .header("connect-timeout-ms", "50")
                .header("content-type", "application/json")
                .body("{}")
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT, "call {i}");
    }
    // The backend may say first that the deadline it was sent passed.
    for backend in &backends {
        backend.script(Script {
            error: Some((Code::DeadlineExceeded, "Deadline Exceeded".into(), vec![])),
            ..Script::default()
        });
    }
    for _ in 0..6 {
        let response = client
            .get(gateway.url("/v1/echo"))
            .header("grpc-timeout", "2S")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    // Passed through (gRPC-Web here): every deadline there is the client's.
    for _ in 0..4 {
        let response = client
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web+proto")
            .header("grpc-timeout", "2S")
            .body(support::envelope(0, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["grpc-status"], "4");
    }
    let status = gateway.admin_status().await;
    let pool = status["pools"]["default"].as_array().unwrap();
    assert_eq!(pool.len(), 2, "{status}");
    assert!(pool.iter().all(|e| e["ejected"] == false), "{status}");
    assert_eq!(counts(&backends), [9, 9]);

    clear(&backends);
    for timeout in ["0S", "0m", "1n"] {
        let response = client
            .get(gateway.url("/v1/echo"))
            .header("grpc-timeout", timeout)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT, "{timeout}");
    }
    assert_eq!(counts(&backends), [0, 0], "nothing sent past its deadline");
}

/// A call whose deadline passed while it was being tried again says how
/// the last try failed, also when the backend gave no message.
#[tokio::test]
async fn an_expired_retry_names_the_last_failure_without_a_message() {
    let backends = backends(1).await;
    backends[0].script(Script {
        error: Some((Code::Unavailable, String::new(), vec![])),
        delay: Some(Duration::from_millis(100)),
        ..Script::default()
    });
    let mut upstream = UpstreamConfig::new(backends[0].url());
    upstream.timeout = Some(Duration::from_millis(350));
    upstream.retry.attempts = 10;
    let gateway = TestGateway::start(config(vec![("default", upstream)])).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.ends_with("the last try failed: Unavailable without a message"),
        "{message}"
    );
}

/// An upstream of one address whose backend died and came back on the
/// same port is reached again: its connection is replaced, and the call
/// that found the old one broken is the only one lost (a GET is sent
/// again, so none is).
#[tokio::test]
async fn a_backend_restarted_on_its_port_is_reached_again() {
    let pool = support::pool(&support::kitchen());
    let first = EchoBackend::start(pool.clone()).await;
    let addr = first.addr();
    let gateway =
        TestGateway::start(config(vec![("default", UpstreamConfig::new(first.url()))])).await;
    get_ok(&gateway, 3, &[]).await;
    assert_eq!(first.connections(), 1, "the calls share one connection");

    first.kill();
    drop(first);
    // The aborted listener closes when its task is next polled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpListener::bind(addr).is_err() {
        assert!(Instant::now() < deadline, "the old listener stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = EchoBackend::start_on(pool, addr).await;
    get_ok(&gateway, 3, &[]).await;
    assert_eq!(second.connections(), 1, "one new connection");
    assert_eq!(second.records().len(), 3);
}

/// An endpoint that accepts connections and never speaks HTTP/2 (no
/// SETTINGS): a process that hangs, a port that is not HTTP/2.
async fn silent_endpoint() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: the tests open a few connections at most.
        for _ in 0..64 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            held.push(socket);
        }
        std::future::pending::<()>().await;
    });
    (addr, task)
}

/// The HTTP/2 handshake, up to the peer's SETTINGS, is part of
/// connecting: an endpoint that accepts and says nothing is unreachable
/// at `timeouts.connect` — 503 for a unary call and for a server stream
/// (before its 200, as for a refused connection), never a 504 at the
/// deadline or a stream held open until the pings give up — and its
/// calls count as never sent, so a POST goes to another endpoint.
#[tokio::test]
async fn an_endpoint_that_never_speaks_http2_is_unreachable_at_the_connect_timeout() {
    let (silent, task) = silent_endpoint().await;
    let mut alone = UpstreamConfig::new(format!("http://{silent}"));
    alone.timeout = Some(Duration::from_secs(2));
    // One try, to time one connect.
    alone.retry.attempts = 1;
    let mut lone = config(vec![("default", alone)]);
    lone.timeouts.connect = Duration::from_millis(500);
    let gateway = TestGateway::start(lone).await;
    let client = support::http1();
    for (path, accept) in [
        ("/v1/echo", "application/json"),
        ("/v1/watch", "text/event-stream"),
    ] {
        let started = Instant::now();
        let response = client
            .get(gateway.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(1500),
            "{path}: {elapsed:?}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], 14, "{path}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("SETTINGS"), "{path}: {message}");
    }

    // In a pool, its calls are tried again on the other endpoint, POSTs
    // included: nothing was sent.
    let backend = backends(1).await.remove(0);
    let mut pool = pool_of(std::slice::from_ref(&backend), |_, b| {
        EndpointConfig::new(b.url())
    });
    pool.endpoints
        .insert(0, EndpointConfig::new(format!("http://{silent}")));
    pool.balance.policy = BalancePolicy::RoundRobin;
    pool.timeout = Some(Duration::from_secs(2));
    let mut pooled = config(vec![("default", pool)]);
    pooled.timeouts.connect = Duration::from_millis(300);
    let gateway = TestGateway::start(pooled).await;
    for i in 0..4 {
        let response = client
            .post(gateway.url("/v1/echo"))
            .json(&serde_json::json!({"s": format!("call {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "call {i}");
    }
    assert_eq!(backend.records().len(), 4);

    // Tried again until the deadline runs out: 504, saying why the tries
    // failed rather than only that time ran out.
    let mut retried = UpstreamConfig::new(format!("http://{silent}"));
    retried.timeout = Some(Duration::from_millis(1100));
    let mut retrying = config(vec![("default", retried)]);
    retrying.timeouts.connect = Duration::from_millis(400);
    let gateway = TestGateway::start(retrying).await;
    let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("exceeded")
            && message.contains("the last try failed")
            && message.contains("SETTINGS"),
        "{message}"
    );
    task.abort();
}

/// A backend that dies with calls in flight, before any call of the
/// gateway's went through: 503 UNAVAILABLE saying the connection broke,
/// not a 502 asking whether it is a gRPC server (it finished the HTTP/2
/// handshake, so it spoke HTTP/2).
#[tokio::test]
async fn a_backend_dying_mid_call_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // One connection: the handshake, one request taken, then the
        // socket dropped as a killed process drops it.
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut connection) = h2::server::handshake(tcp).await else {
            return;
        };
        let _request = connection.accept().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let gateway = TestGateway::start(config(vec![(
        "default",
        UpstreamConfig::new(format!("http://{addr}")),
    )]))
    .await;
    let response = support::http1()
        .post(gateway.url("/v1/echo"))
        .json(&serde_json::json!({"s": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains("is it a gRPC server"), "{message}");
    server.abort();
}

#[tokio::test]
async fn calls_in_flight_count_against_a_reloaded_breaker() {
    let backends = Arc::new(backends(1).await);
    backends[0].script(Script {
        delay: Some(Duration::from_millis(1500)),
        ..Script::default()
    });
    let limit = Arc::new(std::sync::atomic::AtomicUsize::new(3));
    let source = {
        let (backends, limit) = (backends.clone(), limit.clone());
        Box::new(move || {
            let mut upstream = UpstreamConfig::new(backends[0].url());
            upstream.circuit_breaker = Some(CircuitBreaker {
                max_requests: limit.load(std::sync::atomic::Ordering::SeqCst),
                max_pending: 10,
            });
            let mut config = config(vec![("default", upstream)]);
            config.listen = "127.0.0.1:0".parse().unwrap();
            Ok(config)
        })
    };
    let server = protogate::start_with(source).await.unwrap();
    let gateway = Arc::new(TestGateway {
        base: format!("http://{}", server.local_addr()),
        server,
    });
    let slow = slow_calls(&gateway, &backends[0], 2).await;
    // Lowered to 2 while two calls are in flight on the old snapshot:
    // the new breaker is full.
    limit.store(2, std::sync::atomic::Ordering::SeqCst);
    gateway
        .server
        .reloader()
        .expect("reloading")
        .reload("test")
        .await
        .unwrap();
    let refused = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("circuit_breaker.max_requests"),
        "{body}"
    );
    assert_eq!(backends[0].records().len(), 2, "the refused call went out");
    for call in slow {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    backends[0].script(Script::default());
    get_ok(&gateway, 3, &[]).await;
}
