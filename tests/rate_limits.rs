//! `rate_limits`: calls over a rule get 429 (REST, Connect) or
//! RESOURCE_EXHAUSTED (gRPC), per client, per header value or for all,
//! only on the methods the rule names; buckets refill, survive reloads of
//! an unchanged rule, and bad rules are refused naming file and line.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use protogate::Config;
use protogate::config::RateLimitRule;
use serde_json::Value;

const ECHO: &str = "kitchen.v1.Kitchen/Echo";

/// A rule parsed from YAML, as a user writes it.
fn rule(yaml: &str) -> RateLimitRule {
    let config = Config::from_yaml(&format!("rate_limits:\n  - {yaml}\n"))
        .unwrap_or_else(|e| panic!("rule parses: {e}"));
    config.rate_limits[0].clone()
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address
/// reaches the gateway on 127.0.0.1).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    protogate::install_crypto_provider();
    reqwest::Client::builder()
        .http1_only()
        .local_address(IpAddr::V4(ip))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The status of `GET path` with `headers`.
async fn get(
    client: &reqwest::Client,
    gateway: &support::TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client.get(gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("gateway answers")
}

async fn status(
    client: &reqwest::Client,
    gateway: &support::TestGateway,
    headers: &[(&str, &str)],
) -> u16 {
    get(client, gateway, "/v1/echo", headers)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_a_status_body() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule(&format!(
            "{{name: echo-all, methods: [{ECHO}], per: all, rate: 1/h, burst: 2}}"
        ))];
    })
    .await;
    let client = support::http1();
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    let refused = get(&client, &gateway, "/v1/echo", &[]).await;
    assert_eq!(refused.status().as_u16(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds");
    // One call's worth of 1/h: about an hour, rounded up.
    assert!((3590..=3600).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 8, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("echo-all"),
        "{body}"
    );
    assert_eq!(body["details"], serde_json::json!([]), "{body}");
    // Another binding of the same method shares the bucket.
    let other = client
        .post(gateway.url("/v1/echo"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 429);
}

#[tokio::test]
async fn methods_the_rule_does_not_name_are_not_limited() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule(&format!(
            "{{name: echo, methods: [{ECHO}], per: all, rate: 1/h, burst: 1}}"
        ))];
    })
    .await;
    let client = support::http1();
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    assert_eq!(status(&client, &gateway, &[]).await, 429);
    for _ in 0..5 {
        let tags = get(&client, &gateway, "/v1/tags", &[]).await;
        assert_eq!(tags.status().as_u16(), 200);
    }
}

#[tokio::test]
async fn each_header_value_has_its_own_bucket_and_calls_without_it_share_one() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule(
            "{name: per-key, per: {header: X-Api-Key}, rate: 1/h, burst: 1}",
        )];
    })
    .await;
    let client = support::http1();
    let key = |value: &'static str| [("x-api-key", value)];
    assert_eq!(status(&client, &gateway, &key("alpha-secret")).await, 200);
    let refused = get(&client, &gateway, "/v1/echo", &key("alpha-secret")).await;
    assert_eq!(refused.status().as_u16(), 429);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("per-key") && !text.contains("alpha-secret"),
        "{text}"
    );
    assert_eq!(status(&client, &gateway, &key("beta-secret")).await, 200);
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    assert_eq!(status(&client, &gateway, &[]).await, 429);
    assert_eq!(status(&client, &gateway, &key("beta-secret")).await, 429);
}

#[tokio::test]
async fn each_client_address_has_its_own_bucket_and_x_forwarded_for_is_not_trusted() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule("{name: per-client, per: client, rate: 1/h, burst: 1}")];
    })
    .await;
    let one = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let two = client_from(Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(status(&one, &gateway, &[]).await, 200);
    assert_eq!(status(&one, &gateway, &[]).await, 429);
    // A header anyone can write does not make another client.
    let forged = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(status(&one, &gateway, &forged).await, 429);
    assert_eq!(status(&two, &gateway, &[]).await, 200);
    assert_eq!(status(&two, &gateway, &[]).await, 429);
}

#[tokio::test]
async fn grpc_clients_get_resource_exhausted_and_connect_clients_429() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule(
            "{name: rpc, methods: [kitchen.v1.Kitchen/*], per: all, rate: 1/h, burst: 1}",
        )];
    })
    .await;
    let url = gateway.url(&format!("/{ECHO}"));
    let (code, _, _) = support::client::grpc_call(gateway.addr(), &url).await;
    assert_eq!(code, "0");
    let (code, message, _) = support::client::grpc_call(gateway.addr(), &url).await;
    assert_eq!(code, "8", "{message}");
    assert!(message.contains("rpc"), "{message}");
    // Connect shares the method's bucket, and answers in its own shape.
    let connect = support::http1()
        .post(&url)
        .header("connect-protocol-version", "1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status().as_u16(), 429);
    assert!(connect.headers().contains_key("retry-after"));
    let body: Value = connect.json().await.unwrap();
    assert_eq!(body["code"], "resource_exhausted", "{body}");
}

#[tokio::test]
async fn grpc_health_checks_are_never_limited() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule("{name: all, per: all, rate: 1/h, burst: 1}")];
    })
    .await;
    let url = gateway.url("/grpc.health.v1.Health/Check");
    for _ in 0..3 {
        let (code, message, _) = support::client::grpc_call(gateway.addr(), &url).await;
        assert_eq!(code, "0", "{message}");
    }
}

/// A tight rule refuses a quick second call, and lets one through again
/// once a few of its periods passed. Only the refill waits on the clock,
/// and waiting longer can only help it; a slow machine at most takes more
/// tries to see the first refusal.
#[tokio::test]
async fn a_bucket_refills() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule("{name: quick, per: all, rate: 20/s, burst: 1}")];
    })
    .await;
    let client = support::http1();
    let mut refused = None;
    for _ in 0..50 {
        let response = get(&client, &gateway, "/v1/echo", &[]).await;
        if response.status().as_u16() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("two calls within 50ms at least once in 50 tries");
    // Under a second's wait, rounded up.
    assert_eq!(refused.headers()["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&client, &gateway, &[]).await, 200);
}

#[tokio::test]
async fn a_reload_keeps_the_buckets_of_unchanged_rules_and_counts_in_metrics() {
    let set = support::kitchen();
    let backend = support::EchoBackend::start(support::pool(&set)).await;
    let mut first = support::gateway::config(&set, &backend.url());
    first.listen = "127.0.0.1:0".parse().unwrap();
    first.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    first.rate_limits = vec![rule(&format!(
        "{{name: kept, methods: [{ECHO}], per: all, rate: 1/h, burst: 1}}"
    ))];
    let current = Arc::new(Mutex::new(first));
    let source = current.clone();
    let server = protogate::start_with(Box::new(move || Ok(source.lock().clone())))
        .await
        .expect("gateway starts");
    let gateway = support::TestGateway {
        base: format!("http://{}", server.local_addr()),
        server,
    };
    let client = support::http1();
    let reload = || async {
        let reloader = gateway.server.reloader().expect("started with a source");
        reloader.reload("test").await.expect("reloads");
    };
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    assert_eq!(status(&client, &gateway, &[]).await, 429);
    // Only the methods change: the same bucket, still empty.
    current.lock().rate_limits[0]
        .methods
        .push("kitchen.v1.Kitchen/Tags".into());
    reload().await;
    assert_eq!(status(&client, &gateway, &[]).await, 429);
    let tags = get(&client, &gateway, "/v1/tags", &[]).await;
    assert_eq!(tags.status().as_u16(), 429, "the new method shares it");
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains("protogate_rate_limited_total{rule=\"kept\"} 3"),
        "{metrics}"
    );
    // A new rate is a new bucket.
    current.lock().rate_limits[0].rate = rule("{name: x, per: all, rate: 2/h}").rate;
    reload().await;
    assert_eq!(status(&client, &gateway, &[]).await, 200);
    // No rule, no limit.
    current.lock().rate_limits.clear();
    reload().await;
    for _ in 0..3 {
        assert_eq!(status(&client, &gateway, &[]).await, 200);
    }
}

/// What `Config::from_file` says of a config file with `text`.
fn file_error(text: &str) -> String {
    let file = support::TempFile::new("gateway.yaml", text);
    match Config::from_file(&file) {
        Ok(config) => match config.validate() {
            Ok(()) => panic!("config should be refused:\n{text}"),
            Err(err) => err.to_string(),
        },
        Err(err) => err.to_string(),
    }
}

#[test]
fn bad_rules_are_refused_naming_file_line_and_key() {
    let head = "upstreams:\n  default: {url: \"http://127.0.0.1:1\"}\nrate_limits:\n";
    for (rule, says) in [
        ("  - {name: a, per: all, rate: 0/s}\n", "above zero"),
        ("  - {name: a, per: all, rate: 10/d}\n", "not a rate"),
        (
            "  - {name: a, per: all, rate: 5000000/s}\n",
            "above 1000000",
        ),
        ("  - {name: a, per: everyone, rate: 1/s}\n", "everyone"),
        ("  - {name: a, per: all, rate: 1/s, brust: 3}\n", "brust"),
        (
            "  - {name: a, per: {header: \"bad header\"}, rate: 1/s}\n",
            "not a header name",
        ),
        (
            "  - {name: a, per: {header: \":authority\"}, rate: 1/s}\n",
            "pseudo-header",
        ),
    ] {
        let err = file_error(&format!("{head}{rule}"));
        assert!(err.contains("gateway.yaml:4"), "{err}");
        assert!(err.contains("rate_limits"), "{err}");
        assert!(err.contains(says), "{says}: {err}");
    }
    for (rule, says) in [
        ("  - {name: a, per: all, rate: 1/s, burst: 0}\n", "burst 0"),
        (
            "  - {name: a, per: all, rate: 1/s, burst: 2000000}\n",
            "above",
        ),
        (
            "  - {name: a, per: all, rate: 1/s, max_keys: 0}\n",
            "max_keys",
        ),
        (
            "  - {name: a, per: {header: connection}, rate: 1/s}\n",
            "connection",
        ),
        ("  - {name: a, per: {header: te}, rate: 1/s}\n", "te"),
        (
            "  - {name: a, methods: [\"not a method\"], per: all, rate: 1/s}\n",
            "methods",
        ),
        ("  - {name: \"\", per: all, rate: 1/s}\n", "needs a `name`"),
    ] {
        let err = file_error(&format!("{head}{rule}"));
        assert!(err.contains("gateway.yaml:4: rate_limits[0]"), "{err}");
        assert!(err.contains(says), "{says}: {err}");
    }
    let twice = "  - {name: a, per: all, rate: 1/s}\n  - {name: a, per: client, rate: 1/s}\n";
    let err = file_error(&format!("{head}{twice}"));
    assert!(
        err.contains("gateway.yaml:5: rate_limits[1]") && err.contains("earlier rule"),
        "{err}"
    );
}

/// A server stream of three messages counts once; so does a WebSocket,
/// at its upgrade, however many frames follow.
#[tokio::test]
async fn a_stream_and_a_websocket_count_once() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![rule(
            "{name: watch, methods: [kitchen.v1.Kitchen/Watch], per: all, rate: 1/h, burst: 2}",
        )];
    })
    .await;
    let client = support::http1();
    let stream = get(&client, &gateway, "/v1/watch", &[]).await;
    assert_eq!(stream.status().as_u16(), 200);
    let text = support::client::stream_text(stream).await;
    assert_eq!(text.lines().count(), 3, "{text}");
    let mut socket = support::ws::connect(&gateway, "/v1/watch", &[]).await;
    // GET /v1/watch takes its request from the query: no message to send.
    for _ in 0..3 {
        support::ws::next(&mut socket).await.expect("a message");
    }
    let url = format!("ws://{}/v1/watch", gateway.addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("the third call should be refused: {other:?}"),
    }
}

#[tokio::test]
async fn grpc_web_and_methods_without_descriptors_are_limited_too() {
    let (_backend, gateway) = support::gateway::kitchen(|config| {
        config.rate_limits = vec![
            rule(&format!(
                "{{name: web, methods: [{ECHO}], per: all, rate: 1/h, burst: 1}}"
            )),
            rule("{name: unknown, methods: [other.v1.*], per: all, rate: 1/h, burst: 1}"),
        ];
    })
    .await;
    let web = || async {
        support::http1()
            .post(gateway.url(&format!("/{ECHO}")))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(support::envelope(0, b""))
            .send()
            .await
            .unwrap()
    };
    assert!(
        !web().await.headers().contains_key("grpc-status"),
        "a message comes first"
    );
    let refused = web().await;
    assert_eq!(refused.headers()["grpc-status"], "8");
    assert_eq!(
        refused.headers()["content-type"],
        "application/grpc-web+proto"
    );
    // Passed through by name: the backend does not know it, once.
    let url = gateway.url("/other.v1.Thing/Do");
    let (code, _, _) = support::client::grpc_call(gateway.addr(), &url).await;
    assert_eq!(code, "12");
    let (code, message, _) = support::client::grpc_call(gateway.addr(), &url).await;
    assert_eq!(code, "8", "{message}");
    assert!(message.contains("unknown"), "{message}");
}
