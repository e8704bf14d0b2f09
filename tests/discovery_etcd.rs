//! Service discovery from a real etcd (`protogate::upstream::discovery::
//! etcd`): keys are written through etcd's own JSON gateway, and the set
//! the source publishes must follow them, through an etcd restart too.
//!
//! Each test starts its own single-member etcd on free loopback ports with
//! a fresh data dir (`etcd/server.rs`) and kills it by PID when done. A
//! missing `etcd` binary fails the tests: install Debian's `etcd-server`
//! or point `ETCD_BIN` at one. Every wait is bounded.

mod support;

#[path = "etcd/server.rs"]
mod server;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protogate::config::EtcdDiscovery;
use protogate::upstream::discovery::etcd::Etcd as Source;
use protogate::upstream::discovery::{Discovery, Instance};
use serde_json::json;
use server::Etcd;
use tokio::sync::watch;

/// The longest wait for the set to reflect a change.
const WAIT: Duration = Duration::from_secs(5);

/// An HTTP/1.1 client for etcd's gateway; also shows the gateway's logs
/// (at debug) with a failing test's output.
fn client() -> reqwest::Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("protogate=debug")
        .with_test_writer()
        .try_init();
    protogate::install_crypto_provider();
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Writes `key` through etcd's gateway.
async fn put(client: &reqwest::Client, etcd: &Etcd, key: &str, value: &str) {
    let body = json!({"key": B64.encode(key), "value": B64.encode(value)});
    send(client, etcd, "/v3/kv/put", body).await;
}

/// Removes `key` through etcd's gateway.
async fn delete(client: &reqwest::Client, etcd: &Etcd, key: &str) {
    let body = json!({"key": B64.encode(key)});
    send(client, etcd, "/v3/kv/deleterange", body).await;
}

async fn send(client: &reqwest::Client, etcd: &Etcd, path: &str, body: serde_json::Value) {
    let response = client
        .post(format!("{}{path}", etcd.url))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path} {body}: {e}"));
    assert_eq!(response.status(), 200, "POST {path} {body}");
}

/// Starts the source; the set arrives on the receiver.
fn discover(
    endpoints: Vec<String>,
    prefix: &str,
) -> (
    watch::Receiver<Option<Vec<Instance>>>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = EtcdDiscovery::new(endpoints, prefix);
    config.dial_timeout = Duration::from_secs(1);
    let source = Box::new(Source::new(&config).expect("valid etcd discovery"));
    let (out, instances) = watch::channel(None);
    (instances, tokio::spawn(source.run(out, Default::default())))
}

/// An instance as a line: `address weight zone server_name`.
fn line(i: &Instance) -> String {
    format!(
        "{} w{} zone={} name={}",
        i.address,
        i.weight,
        i.zone.as_deref().unwrap_or("-"),
        i.server_name.as_deref().unwrap_or("-")
    )
}

fn lines(set: &[Instance]) -> BTreeSet<String> {
    set.iter().map(line).collect()
}

fn expect(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

/// Waits (at most `within`) until the published set, as lines, equals
/// `want`; panics with the last set seen otherwise.
async fn wait_for_set(
    instances: &mut watch::Receiver<Option<Vec<Instance>>>,
    within: Duration,
    want: &BTreeSet<String>,
) {
    let reached = tokio::time::timeout(
        within,
        instances.wait_for(|set| set.as_deref().is_some_and(|s| &lines(s) == want)),
    )
    .await;
    match reached.map(|r| r.map(drop)) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the discovery task ended; wanted {want:#?}"),
        Err(_) => panic!(
            "set not reached within {within:?}\nwanted: {want:#?}\nlast: {:#?}",
            instances.borrow().as_deref().map(lines)
        ),
    }
}

/// Every address `localhost:port` resolves to here.
async fn localhost(port: u16) -> Vec<SocketAddr> {
    let found: BTreeSet<SocketAddr> = tokio::net::lookup_host(("localhost", port))
        .await
        .expect("localhost resolves")
        .collect();
    assert!(!found.is_empty(), "localhost has no address");
    found.into_iter().collect()
}

#[tokio::test]
async fn instances_follow_puts_and_deletes() {
    let client = client();
    let etcd = Etcd::start(&client).await;
    put(
        &client,
        &etcd,
        "/svc/orders/a",
        r#"{"address": "127.0.0.1:7001", "weight": 2, "zone": "eu-1a"}"#,
    )
    .await;
    put(&client, &etcd, "/svc/orders/b", "127.0.0.2:7002").await;
    put(&client, &etcd, "/svc/orders/bad", "no port here").await;
    // Next to the prefix but not under it.
    put(&client, &etcd, "/svc/orders0", "127.0.0.9:7009").await;
    put(&client, &etcd, "/svc/orders", "127.0.0.9:7010").await;
    put(&client, &etcd, "/svc/other/x", "127.0.0.9:7011").await;

    let (mut instances, task) = discover(vec![etcd.url.clone()], "/svc/orders/");
    let mut want = expect(&[
        "127.0.0.1:7001 w2 zone=eu-1a name=-",
        "127.0.0.2:7002 w1 zone=- name=-",
    ]);
    wait_for_set(&mut instances, WAIT, &want).await;

    // A put adds an instance as it happens; a host name gives every
    // address it resolves to, each with the name to verify.
    put(&client, &etcd, "/svc/orders/c", "localhost:7003").await;
    let resolved = localhost(7003).await;
    for address in &resolved {
        want.insert(format!("{address} w1 zone=- name=localhost"));
    }
    wait_for_set(&mut instances, WAIT, &want).await;

    // A bad value is skipped, the others stay; a JSON value with an IPv6
    // literal comes after it (so the bad one was seen first).
    put(
        &client,
        &etcd,
        "/svc/orders/bad2",
        r#"{"address": "127.0.0.4"}"#,
    )
    .await;
    put(
        &client,
        &etcd,
        "/svc/orders/d",
        r#"{"address": "[::1]:7004", "zone": "eu-1b", "owner": "team-x"}"#,
    )
    .await;
    want.insert("[::1]:7004 w1 zone=eu-1b name=-".to_owned());
    wait_for_set(&mut instances, WAIT, &want).await;

    // An update replaces the instance's weight; a delete removes one.
    put(
        &client,
        &etcd,
        "/svc/orders/a",
        r#"{"address": "127.0.0.1:7001", "weight": 5}"#,
    )
    .await;
    delete(&client, &etcd, "/svc/orders/b").await;
    want.remove("127.0.0.1:7001 w2 zone=eu-1a name=-");
    want.remove("127.0.0.2:7002 w1 zone=- name=-");
    want.insert("127.0.0.1:7001 w5 zone=- name=-".to_owned());
    wait_for_set(&mut instances, WAIT, &want).await;

    // A bad value replacing a good one takes that instance out.
    put(&client, &etcd, "/svc/orders/c", "localhost:http").await;
    want.retain(|l| !l.ends_with("name=localhost"));
    wait_for_set(&mut instances, WAIT, &want).await;

    // The task ends once nobody listens.
    drop(instances);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the discovery task ends when its receiver is gone")
        .expect("the discovery task does not panic");
}

#[tokio::test]
async fn an_etcd_restart_is_survived() {
    let client = client();
    let mut etcd = Etcd::start(&client).await;
    put(&client, &etcd, "/svc/pay/a", "127.0.0.1:8001").await;

    // The first endpoint refuses connections: the next one is tried.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let (mut instances, task) = discover(vec![refused, etcd.url.clone()], "/svc/pay/");
    let first = expect(&["127.0.0.1:8001 w1 zone=- name=-"]);
    wait_for_set(&mut instances, WAIT, &first).await;

    // While etcd is down, the last set stays.
    etcd.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        instances.borrow_and_update().as_deref().map(lines),
        Some(first.clone()),
        "the last set is kept while etcd is down"
    );
    assert!(!task.is_finished(), "the discovery task keeps going");

    // Changes made as soon as etcd is back are caught up (by the fresh
    // read, or by the new watch, whichever comes first).
    etcd.start_again(&client).await;
    put(&client, &etcd, "/svc/pay/b", "127.0.0.2:8002").await;
    delete(&client, &etcd, "/svc/pay/a").await;
    let caught_up = expect(&["127.0.0.2:8002 w1 zone=- name=-"]);
    wait_for_set(&mut instances, Duration::from_secs(10), &caught_up).await;

    // And the watch goes on after.
    put(&client, &etcd, "/svc/pay/c", "127.0.0.3:8003").await;
    let after = expect(&[
        "127.0.0.2:8002 w1 zone=- name=-",
        "127.0.0.3:8003 w1 zone=- name=-",
    ]);
    wait_for_set(&mut instances, WAIT, &after).await;
    task.abort();
}

/// Through the gateway: an upstream whose endpoints come from etcd sends
/// calls to the backends registered there, follows registrations and
/// removals live, and fails no call while they change.
#[tokio::test]
async fn a_pool_follows_the_registry() {
    use protogate::config::{BalancePolicy, DiscoveryConfig};
    use support::{EchoBackend, TestGateway};

    let client = client();
    let etcd = Etcd::start(&client).await;
    let pool = support::pool(&support::kitchen());
    let a = EchoBackend::start(pool.clone()).await;
    let b = EchoBackend::start(pool.clone()).await;
    let c = EchoBackend::start(pool).await;
    put(&client, &etcd, "/svc/kitchen/a", &a.addr().to_string()).await;
    put(
        &client,
        &etcd,
        "/svc/kitchen/b",
        &json!({"address": b.addr().to_string(), "weight": 1}).to_string(),
    )
    .await;

    let mut config = support::gateway::config(&support::kitchen(), "http://kitchen.invalid:1");
    let upstream = config.upstreams.get_mut("default").unwrap();
    let mut etcd_config = EtcdDiscovery::new(vec![etcd.url.clone()], "/svc/kitchen/");
    etcd_config.dial_timeout = Duration::from_secs(1);
    upstream.discovery = Some(DiscoveryConfig::Etcd(etcd_config));
    upstream.balance.policy = BalancePolicy::WeightedRoundRobin;
    let gateway = TestGateway::start(config).await;

    let calls = |n: usize| {
        let (client, url) = (client.clone(), gateway.url("/v1/echo"));
        async move {
            for _ in 0..n {
                let response = client.get(&url).send().await.expect("gateway answers");
                assert_eq!(response.status(), 200, "{:?}", response.text().await);
            }
        }
    };
    let counts = || [a.records().len(), b.records().len(), c.records().len()];
    let reset = || {
        for backend in [&a, &b, &c] {
            backend.clear();
        }
    };
    calls(10).await;
    assert_eq!(counts(), [5, 5, 0]);
    // A round of `n` calls on fresh counts.
    let round = |n: usize| {
        reset();
        let calls = calls(n);
        async move {
            calls.await;
            counts()
        }
    };

    // Registered live: it takes calls without a reload.
    put(&client, &etcd, "/svc/kitchen/c", &c.addr().to_string()).await;
    until("c never joined", || round(9), |got| got == [3, 3, 3]).await;

    // Removed: no call reaches it, none fails.
    delete(&client, &etcd, "/svc/kitchen/a").await;
    until("a never left", || round(10), |got| got[0] == 0).await;
    // A batch that saw the rotation change midway may be uneven; the
    // next one runs on the new rotation throughout.
    assert_eq!(round(10).await, [0, 5, 5]);

    // A weight changed in place applies without a reload.
    put(
        &client,
        &etcd,
        "/svc/kitchen/b",
        &json!({"address": b.addr().to_string(), "weight": 4}).to_string(),
    )
    .await;
    until(
        "b's new weight never applied",
        || round(10),
        |got| got == [0, 8, 2],
    )
    .await;
}

/// Runs `round` until its counts satisfy `done`, for at most [`WAIT`].
async fn until<F: Future<Output = [usize; 3]>>(
    what: &str,
    round: impl Fn() -> F,
    done: impl Fn([usize; 3]) -> bool,
) {
    until_within(what, WAIT, round, |got| done(*got)).await;
}

/// Runs `round` until `done` holds of what it gives, for at most `wait`;
/// what it gave last.
async fn until_within<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    wait: Duration,
    round: impl Fn() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let got = round().await;
        if done(&got) {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/admin/status` shows each discovered pool's registry: that it
/// answered, and while it cannot be reached, why (cleared once it is read
/// again).
#[tokio::test]
async fn admin_status_shows_the_registrys_trouble_while_it_lasts() {
    use protogate::config::DiscoveryConfig;
    use support::TestGateway;

    let client = client();
    let mut etcd = Etcd::start(&client).await;
    put(&client, &etcd, "/svc/kitchen/a", "127.0.0.1:9").await;
    let mut config = support::gateway::config(&support::kitchen(), "http://kitchen.invalid:1");
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let upstream = config.upstreams.get_mut("default").unwrap();
    let mut etcd_config = EtcdDiscovery::new(vec![etcd.url.clone()], "/svc/kitchen/");
    etcd_config.dial_timeout = Duration::from_secs(1);
    upstream.discovery = Some(DiscoveryConfig::Etcd(etcd_config));
    let gateway = TestGateway::start(config).await;
    let admin = gateway.server.admin_addr().unwrap();
    let status = || {
        let client = client.clone();
        async move {
            let status: serde_json::Value = client
                .get(format!("http://{admin}/admin/status"))
                .send()
                .await
                .expect("admin answers")
                .json()
                .await
                .expect("JSON");
            status["discovery"]["default"].clone()
        }
    };
    // The pool's task reads the first answer as it comes.
    let shown = until_within("etcd never answered", WAIT, status, |shown| {
        shown["answered"] == true
    })
    .await;
    assert_eq!(shown["last_error"], serde_json::Value::Null, "{shown}");
    let source = shown["source"].as_str().unwrap_or_default().to_owned();
    assert!(
        source.starts_with("etcd ") && source.ends_with("prefix /svc/kitchen/"),
        "{shown}"
    );

    etcd.stop();
    // Noticed when the watch breaks, or at the latest by its keepalive.
    let trouble = until_within("the outage never showed", WAIT * 3, status, |shown| {
        shown["last_error"].is_string()
    })
    .await;
    let why = trouble["last_error"].as_str().unwrap_or_default();
    assert!(why.starts_with(&etcd.url), "names the endpoint: {trouble}");
    assert_eq!(trouble["answered"], true, "{trouble}");

    etcd.start_again(&client).await;
    // The retries back off to 5 s at most.
    until_within("the outage never cleared", WAIT * 3, status, |shown| {
        shown["last_error"].is_null()
    })
    .await;
}
