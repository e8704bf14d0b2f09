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

/// The sample of `metric`, a counter by `face` and `grpc_code`.
fn coded(text: &str, metric: &str, face: &str, code: &str) -> Option<f64> {
    sample(
        text,
        &format!(r#"{metric}{{face="{face}",grpc_code="{code}"}}"#),
    )
}

/// Scrapes until `ready` holds of the text (within 10 s: calls the client
/// left are counted as the gateway notices), failing with `what`.
async fn scrape_until(
    admin: std::net::SocketAddr,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(admin).await;
        if ready(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not yet {what}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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

/// A gRPC call on HTTP/2 to `path` with `headers`, its response head.
fn grpc_request(
    gateway: &TestGateway,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
) -> http::Request<support::client::RequestBody> {
    let mut request = http::Request::post(gateway.url(path))
        .header("content-type", content_type)
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(support::client::full(support::envelope(0, b"")))
        .unwrap()
}

#[tokio::test]
async fn grpc_calls_are_counted_by_the_status_they_end_with() {
    use http_body_util::BodyExt as _;
    use support::client::Conn;

    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = TestGateway::start(config).await;
    let admin = gateway.server.admin_addr().unwrap();
    let echo = "/kitchen.v1.Kitchen/Echo";

    // OK twice, and a backend's NOT_FOUND.
    for _ in 0..2 {
        let (status, _, _) = support::client::grpc_call(gateway.addr(), &gateway.url(echo)).await;
        assert_eq!(status, "0");
    }
    let mut conn = Conn::http2(gateway.addr()).await;
    let request = grpc_request(
        &gateway,
        echo,
        "application/grpc",
        &[("x-echo-status", "5")],
    );
    let (head, body) = conn.send(request).await.into_parts();
    let body = body.collect().await.unwrap();
    let trailers = body.trailers().unwrap_or(&head.headers);
    assert_eq!(trailers["grpc-status"], "5");
    // Refused by the gateway itself: a GET.
    let request = http::Request::get(gateway.url(echo))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(support::client::full(""))
        .unwrap();
    let response = conn.send(request).await;
    assert_eq!(response.headers()["grpc-status"], "12");
    // gRPC-Web, over HTTP/1.1: its trailers are a frame of the body.
    let mut web = Conn::http1(gateway.addr()).await;
    let response = web
        .send(grpc_request(
            &gateway,
            echo,
            "application/grpc-web+proto",
            &[],
        ))
        .await;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("grpc-status:0"),
        "{body:?}"
    );
    // A call the client gives up on before its head: a slow backend,
    // and a client that resets the stream after 200 ms.
    let request = grpc_request(
        &gateway,
        echo,
        "application/grpc",
        &[("x-echo-delay-ms", "3000")],
    );
    let given_up =
        tokio::time::timeout(std::time::Duration::from_millis(200), conn.send(request)).await;
    assert!(given_up.is_err(), "the backend was slow");
    // A stream the client walks away from after its first message.
    let request = grpc_request(
        &gateway,
        "/kitchen.v1.Kitchen/Watch",
        "application/grpc",
        &[("x-echo-count", "100"), ("x-echo-interval-ms", "50")],
    );
    let response = conn.send(request).await;
    let mut body = response.into_body();
    let first = support::client::next_data(&mut body, std::time::Duration::from_secs(10)).await;
    assert!(first.is_some());
    drop(body);

    let calls =
        |text: &str, face: &str, code: &str| coded(text, "protogate_grpc_calls_total", face, code);
    let text = scrape_until(admin, "the cancelled calls counted", |text| {
        calls(text, "grpc", "CANCELLED") == Some(2.0)
    })
    .await;
    assert_eq!(calls(&text, "grpc", "OK"), Some(2.0), "{text}");
    assert_eq!(calls(&text, "grpc", "NOT_FOUND"), Some(1.0), "{text}");
    assert_eq!(calls(&text, "grpc", "UNIMPLEMENTED"), Some(1.0), "{text}");
    assert_eq!(calls(&text, "grpc", "UNKNOWN"), Some(0.0), "{text}");
    assert_eq!(calls(&text, "grpc_web", "OK"), Some(1.0), "{text}");
    assert!(
        text.contains("# HELP protogate_grpc_calls_total "),
        "{text}"
    );
}

#[tokio::test]
async fn streams_are_counted_by_how_they_end() {
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = TestGateway::start(config).await;
    let admin = gateway.server.admin_addr().unwrap();
    let client = support::http1();
    let watch = |headers: &[(&'static str, &'static str)]| {
        let mut request = client.get(gateway.url("/v1/watch?s=x"));
        for (name, value) in headers {
            request = request.header(format!("grpc-metadata-{name}"), *value);
        }
        request
    };

    // REST: a stream that finishes, one that fails after its first
    // message (its head already said 200), and one the client leaves.
    let done = watch(&[("x-echo-count", "3")]).send().await.unwrap();
    assert_eq!(done.status(), 200);
    done.text().await.unwrap();
    let failed = watch(&[
        ("x-echo-count", "3"),
        ("x-echo-status", "14"),
        ("x-echo-fail-after", "1"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(failed.status(), 200);
    let text = failed.text().await.unwrap();
    assert!(text.contains("\"code\":14"), "{text}");
    let mut left = watch(&[("x-echo-count", "100"), ("x-echo-interval-ms", "50")])
        .send()
        .await
        .unwrap();
    assert!(left.chunk().await.unwrap().is_some());
    drop(left);

    // Connect: a server stream that finishes, and one the backend fails
    // before its first message (still a 200, the error in its end
    // message).
    for (name, value) in [("x-echo-count", "2"), ("x-echo-status", "9")] {
        let response = client
            .post(gateway.url("/kitchen.v1.Kitchen/Watch"))
            .header("content-type", "application/connect+json")
            .header(name, value)
            .body(support::envelope(0, b"{\"s\":\"x\"}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // A HEAD is answered without its body: no stream a client left.
    let head = client
        .head(gateway.url("/v1/watch?s=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);

    // WebSocket: one that finishes, one the backend fails after a message.
    let mut socket = support::ws::connect(
        &gateway,
        "/v1/watch?s=x",
        &[("grpc-metadata-x-echo-count", "2")],
    )
    .await;
    for _ in 0..2 {
        assert!(support::ws::next(&mut socket).await.is_ok());
    }
    assert_eq!(support::ws::next(&mut socket).await.unwrap_err().0, 1000);
    let mut socket = support::ws::connect(
        &gateway,
        "/v1/watch?s=x",
        &[
            ("grpc-metadata-x-echo-count", "2"),
            ("grpc-metadata-x-echo-status", "5"),
            ("grpc-metadata-x-echo-fail-after", "1"),
        ],
    )
    .await;
    assert!(support::ws::next(&mut socket).await.is_ok());
    assert_eq!(support::ws::next(&mut socket).await.unwrap_err().0, 4005);
    let _ = socket.close(None).await;
    // And one whose client goes away mid-stream without a Close frame
    // (its connection closed, as when a page or process is killed).
    let mut socket = support::ws::connect(
        &gateway,
        "/v1/watch?s=x",
        &[
            ("grpc-metadata-x-echo-count", "100"),
            ("grpc-metadata-x-echo-interval-ms", "50"),
        ],
    )
    .await;
    assert!(support::ws::next(&mut socket).await.is_ok());
    drop(socket);

    let ends =
        |text: &str, face: &str, code: &str| coded(text, "protogate_stream_ends_total", face, code);
    let text = scrape_until(admin, "the streams the clients left counted", |text| {
        ends(text, "rest", "CANCELLED") == Some(1.0)
            && ends(text, "websocket", "CANCELLED") == Some(1.0)
    })
    .await;
    assert_eq!(
        ends(&text, "websocket", "INVALID_ARGUMENT"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(ends(&text, "rest", "OK"), Some(1.0), "{text}");
    assert_eq!(ends(&text, "rest", "UNAVAILABLE"), Some(1.0), "{text}");
    assert_eq!(ends(&text, "connect", "OK"), Some(1.0), "{text}");
    assert_eq!(
        ends(&text, "connect", "FAILED_PRECONDITION"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(ends(&text, "websocket", "OK"), Some(1.0), "{text}");
    assert_eq!(ends(&text, "websocket", "NOT_FOUND"), Some(1.0), "{text}");
    // Their heads are counted as they went out: 200s and 101s.
    assert_eq!(
        sample(&text, r#"protogate_requests_total{face="rest",code="2xx"}"#),
        Some(4.0),
        "{text}"
    );
    assert!(
        text.contains("# HELP protogate_stream_ends_total "),
        "{text}"
    );
}
