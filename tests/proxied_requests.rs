//! What a route group proxying a plain HTTP service makes of the client's
//! request: who asked (`X-Forwarded-*`, over cleartext and TLS), which
//! path may go on and to which group, and a request body that is bad,
//! cut or slow, which is the client's fault and never the service's.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use protogate::Config;
use protogate::config::{ListenerTls, RouteGroupConfig};
use reqwest::StatusCode;
use serde_json::Value;
use support::TestGateway;
use support::client::Conn;
use support::plain::{group, http_service};
use support::tls::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The gateway before the kitchen echo backend, with `/legacy` proxied to
/// a plain HTTP service, its config changed by `tweak` after (given the
/// service's address).
async fn gateway(
    tweak: impl FnOnce(&mut Config, SocketAddr),
) -> (support::EchoBackend, TestGateway) {
    let service = http_service().await;
    support::gateway::kitchen(|c| {
        c.routes
            .push(group("/legacy", &format!("http://{service}")));
        tweak(c, service);
    })
    .await
}

/// Status and google.rpc.Status body (or the request the service saw) of
/// `request` sent on a new HTTP/1.1 connection, as written.
async fn exchange(
    gateway: &TestGateway,
    request: http::Request<support::client::RequestBody>,
) -> (StatusCode, Value) {
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn.send(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The status line and body of a request written byte for byte (with
/// `Connection: close`), read until the gateway closes.
async fn raw(gateway: &TestGateway, request: &str) -> (String, Value) {
    let answer = support::client::raw_text(gateway.addr(), request).await;
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Over the TLS listener the service is told `X-Forwarded-Proto: https`.
#[tokio::test]
async fn forwarded_proto_is_https_over_tls() {
    let ca = TestCa::new("proxy test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let dir = support::tempdir();
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let (_backend, gateway) = gateway(|c, _| {
        c.tls = Some(ListenerTls::new(
            dir.join("server.pem"),
            dir.join("server.key"),
        ));
    })
    .await;
    protogate::install_crypto_provider();
    for http1 in [true, false] {
        let mut client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(10));
        if http1 {
            client = client.http1_only();
        }
        let response = client
            .build()
            .unwrap()
            .get(gateway.url("/legacy/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    }
}

/// Every `X-Forwarded-For` line the client sent reaches the service, in
/// order, with the client's address after them, in one header.
#[tokio::test]
async fn every_forwarded_for_line_is_kept() {
    let (_backend, gateway) = gateway(|_, _| {}).await;
    let request = http::Request::get("/legacy/x")
        .header("x-forwarded-for", "1.1.1.1")
        .header("x-forwarded-for", "2.2.2.2, 3.3.3.3")
        .body(support::client::full(Bytes::new()))
        .unwrap();
    let (status, seen) = exchange(&gateway, request).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        "1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"
    );
}

/// Segments that a service may resolve as `..` — with path parameters
/// (`..;`, as Tomcat and Spring strip them) or behind a backslash (`\`,
/// `%5C`, which some servers read as `/`) — are refused like plain dot
/// segments; look-alikes that are not dot segments pass.
#[tokio::test]
async fn traversal_variants_are_refused() {
    let (_backend, gateway) = gateway(|_, _| {}).await;
    for path in [
        "/legacy/..;/..;/internal",
        "/legacy/..;jsessionid=1/admin",
        "/legacy/.;/x",
        "/legacy/..%3B/admin",
        "/legacy/..%3b/admin",
        "/legacy/x/..;",
        "/legacy/..%5Cadmin",
        "/legacy/..%5cadmin",
        "/legacy/a%5Cb",
        "/legacy/..\\admin",
        "/legacy/a\\b",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
        let (status, body) = raw(&gateway, &request).await;
        assert!(status.contains(" 400 "), "{path}: {status} {body}");
        assert_eq!(body["code"], 3, "{path}: {body}");
    }
    for path in [
        "/legacy/a;v=1/x",
        "/legacy/..x;y",
        "/legacy/x..;",
        "/legacy/a%3Bb",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
        let (status, seen) = raw(&gateway, &request).await;
        assert!(status.contains(" 200 "), "{path}: {status} {seen}");
        assert_eq!(seen["uri"], path);
    }
}

/// Prefixes are matched with escapes of unreserved characters decoded
/// (RFC 3986 §6.2.2.2): `/api/%70rivate/x` is `/api/private/x` and goes
/// to that group, prefix stripped, not to the `/api/` group; the service
/// gets the path in that form.
#[tokio::test]
async fn prefixes_match_with_unreserved_escapes_decoded() {
    let (_backend, gateway) = gateway(|c, service| {
        c.routes
            .push(group("/api/", &format!("http://{service}/public")));
        c.routes.push(RouteGroupConfig {
            strip_prefix: true,
            ..group("/api/private/", &format!("http://{service}/private"))
        });
    })
    .await;
    for (path, uri) in [
        ("/api/private/x", "/private/x"),
        ("/api/%70rivate/x", "/private/x"),
        ("/%61pi/priv%61te/x%7E1?q=%70", "/private/x~1?q=%70"),
        ("/api/%70rivate", "/private"),
        ("/api/privatex", "/public/api/privatex"),
        ("/api/%2Fprivate/x", "/public/api/%2Fprivate/x"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
        let (status, seen) = raw(&gateway, &request).await;
        assert!(status.contains(" 200 "), "{path}: {status} {seen}");
        assert_eq!(seen["uri"], uri, "{path}");
    }
}

/// A chunked body that is not chunked coding is the client's mistake:
/// 400, not a 502 blaming the service.
#[tokio::test]
async fn a_malformed_chunked_body_is_400() {
    let (_backend, gateway) = gateway(|_, _| {}).await;
    let (status, body) = raw(
        &gateway,
        "POST /legacy/x HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nzz\r\n",
    )
    .await;
    assert!(status.contains(" 400 "), "{status} {body}");
    assert_eq!(body["code"], 3, "{body}");
}

/// A client that stops sending halfway through its body is answered
/// (when it can still hear) with a 400, never a 5xx blaming the service.
#[tokio::test]
async fn a_cut_body_is_not_the_services_fault() {
    let (_backend, gateway) = gateway(|_, _| {}).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /legacy/x HTTP/1.1\r\nhost: gw\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    // Let the request reach the service before the body stops.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.is_empty() || status.contains(" 400 "), "{answer}");
}

/// A body slower than `timeouts.request_body` is 408 at that timeout, as
/// on transcoded routes, not 504 at the group's longer `timeout`.
#[tokio::test]
async fn a_slow_body_is_408_at_the_body_timeout() {
    let (_backend, gateway) = gateway(|c, service| {
        c.timeouts.request_body = Duration::from_secs(1);
        c.routes.push(RouteGroupConfig {
            timeout: Some(Duration::from_secs(5)),
            ..group("/patient", &format!("http://{service}"))
        });
    })
    .await;
    let (tx, body) = support::client::channel();
    tx.send(Bytes::from_static(b"first part")).await.unwrap();
    let request = http::Request::post("/patient/x").body(body).unwrap();
    let started = Instant::now();
    let (status, body) = exchange(&gateway, request).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["code"], 4, "{body}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    drop(tx);
    // A body that keeps coming in time is not cut.
    let (tx, body) = support::client::channel();
    let request = http::Request::post("/patient/x").body(body).unwrap();
    let feed = tokio::spawn(async move {
        for part in ["a", "b", "c"] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Bytes::from_static(part.as_bytes())).await.unwrap();
        }
    });
    let (status, seen) = exchange(&gateway, request).await;
    feed.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["body"], "abc");
}
