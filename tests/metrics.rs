//! `GET /metrics` on the admin listener: requests counted by face and
//! status class, per REST route, with durations, in the Prometheus text
//! format, across a reload.

mod support;

use serde_json::json;
use support::{EchoBackend, TestGateway};

/// The value of the sample `name` (with its labels, as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let response = support::http1()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_face_route_and_status_class() {
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = TestGateway::start(config).await;
    let admin = gateway.server.admin_addr().unwrap();
    let client = support::http1();
    for _ in 0..3 {
        let response = client
            .post(gateway.url("/v1/echo"))
            .json(&json!({"s": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = client
        .post(gateway.url("/v1/echo"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client.get(gateway.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo")).await;
    assert_eq!(status, "0");

    let text = scrape(admin).await;
    let rest = |code: &str| {
        sample(
            &text,
            &format!(r#"protogate_requests_total{{face="rest",code="{code}"}}"#),
        )
    };
    assert_eq!(rest("2xx"), Some(3.0), "{text}");
    assert_eq!(rest("4xx"), Some(2.0), "{text}");
    assert_eq!(rest("5xx"), Some(0.0), "{text}");
    assert!(text.contains("# HELP protogate_requests_total "), "{text}");
    assert_eq!(
        sample(&text, r#"protogate_requests_total{face="grpc",code="2xx"}"#),
        Some(1.0),
        "{text}"
    );
    // Per route: the two answers of the matched route, not the 404.
    let route = r#"method="POST",route="/v1/echo",rpc="kitchen.v1.Kitchen/Echo""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"protogate_route_requests_total{{{route},code="2xx"}}"#)
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"protogate_route_requests_total{{{route},code="4xx"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    // Durations, once the samples are folded in (at most 5 s later).
    let mut folded = text;
    for _ in 0..60 {
        if sample(
            &folded,
            &format!("protogate_route_request_duration_seconds_count{{{route}}}"),
        ) == Some(4.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        folded = scrape(admin).await;
    }
    assert_eq!(
        sample(
            &folded,
            &format!("protogate_route_request_duration_seconds_count{{{route}}}")
        ),
        Some(4.0),
        "{folded}"
    );
    assert!(
        sample(
            &folded,
            &format!(r#"protogate_route_request_duration_seconds_bucket{{{route},le="+Inf"}}"#)
        ) == Some(4.0),
        "{folded}"
    );
    assert_eq!(sample(&folded, "protogate_ready"), Some(1.0), "{folded}");
    assert!(sample(&folded, "protogate_routes").unwrap_or_default() > 1.0);

    // A reload keeps the counts.
    let reloaded = support::http1()
        .post(format!("http://{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    client
        .post(gateway.url("/v1/echo"))
        .json(&json!({"s": "x"}))
        .send()
        .await
        .unwrap();
    let text = scrape(admin).await;
    assert_eq!(
        sample(
            &text,
            &format!(r#"protogate_route_requests_total{{{route},code="2xx"}}"#)
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "protogate_snapshot_loads_total"),
        Some(2.0),
        "{text}"
    );
}
