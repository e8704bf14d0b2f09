//! Client connections: idle ones are closed, a client that stops reading
//! does not keep its connection (and its slot under
//! `limits.max_connections`) for ever, and a body framed in a transfer
//! coding the gateway cannot read is refused.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use protogate::Config;
use support::{EchoBackend, Script, TestGateway};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const IDLE: Duration = Duration::from_millis(800);

async fn setup(tweak: impl FnOnce(&mut Config)) -> (EchoBackend, TestGateway) {
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    );
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    config.timeouts.idle = IDLE;
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

/// Reads until the gateway closes the connection; how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = vec![0; 64 << 10];
    let wait = tokio::time::timeout(Duration::from_secs(10), async {
        // An error (a reset) is a close too.
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    wait.await.expect("the gateway closes the connection");
    started.elapsed()
}

/// `timeouts.idle`: a connection that never sends a request, and one that
/// sits unused after its request, is closed after the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut silent = TcpStream::connect(gateway.addr()).await.unwrap();
    let took = closed_after(&mut silent).await;
    assert!(took >= IDLE / 2, "closed after {took:?}");

    let mut used = TcpStream::connect(gateway.addr()).await.unwrap();
    used.write_all(b"GET /v1/echo?s=x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0; 12];
    used.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    closed_after(&mut used).await;
}

/// A client that asks for a large response and reads none of it holds no
/// slot for ever: once the response has waited on it for the idle timeout,
/// the connection is dropped and the next client (waiting for the one
/// slot) is served.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    let (backend, gateway) = setup(|c| c.limits.max_connections = 1).await;
    // A Sink whose `b` (field 2) holds 12 MB: more than the socket buffers.
    let mut message = Vec::new();
    prost::encoding::bytes::encode(2, &Bytes::from(vec![7u8; 12 << 20]), &mut message);
    backend.script(Script {
        raw_response: Some(message.into()),
        ..Script::default()
    });
    let mut stuck = TcpStream::connect(gateway.addr()).await.unwrap();
    stuck
        .write_all(b"GET /v1/echo HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Let the response fill the buffers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.script(Script::default());
    let started = Instant::now();
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        support::http1().get(gateway.url("/v1/echo?s=next")).send(),
    )
    .await
    .expect("the next client is served")
    .unwrap();
    assert_eq!(next.status(), 200);
    assert!(started.elapsed() >= IDLE / 2, "{:?}", started.elapsed());
    drop(stuck);
}

/// RFC 9112 §6.1: a transfer coding the gateway does not decode (anything
/// but `chunked`, which the HTTP layer reads) is 501 with code 12 in the
/// google.rpc.Status shape, and the connection is closed, since the body
/// stays unread; `chunked` applied twice is 400, and a last coding other
/// than `chunked` the HTTP layer's 400. The backend never sees the
/// request. Plain `chunked` is read as usual.
#[tokio::test]
async fn transfer_codings_other_than_chunked_are_501() {
    let (backend, gateway) = setup(|_| {}).await;
    let request = |coding: &str| {
        format!(
            "POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             transfer-encoding: {coding}\r\nconnection: close\r\n\r\n\
             9\r\n{{\"s\":\"x\"}}\r\n0\r\n\r\n"
        )
    };
    let answer = support::client::raw_text(gateway.addr(), &request("chunked")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"s":"x"}"#), "{answer}");
    let records = backend.records().len();
    for (coding, named) in [
        ("gzip, chunked", "gzip"),
        ("GZIP,chunked", "GZIP"),
        ("x-custom , chunked", "x-custom"),
        ("identity, chunked", "identity"),
        ("deflate;level=1, chunked", "deflate;level=1"),
    ] {
        let answer = support::client::raw_text(gateway.addr(), &request(coding)).await;
        assert!(answer.starts_with("HTTP/1.1 501"), "{coding}: {answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase().contains("\r\nconnection: close"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(body["code"], 12, "{coding}: {body}");
        assert_eq!(body["details"], serde_json::json!([]));
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("Transfer-Encoding `{named}` is not implemented")),
            "{message}"
        );
    }
    let answer = support::client::raw_text(gateway.addr(), &request("chunked, chunked")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("chunked is applied more than once"),
        "{answer}"
    );
    // Not ending in `chunked`, the body's length is unknown: the HTTP
    // layer's bare 400 (RFC 9112 §6.3).
    let answer = support::client::raw_text(gateway.addr(), &request("gzip")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        backend.records().len(),
        records,
        "refused before the backend"
    );
}

/// A connection limit past any the config allows (a library caller may
/// hand the listener one unchecked) still serves, and shutdown still waits
/// for a request in flight: past the semaphore's range the accept loop
/// used to panic, and past `u32::MAX` the wait for the slots back ended at
/// once.
#[tokio::test]
async fn an_out_of_range_connection_limit_serves_and_drains() {
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let config = support::gateway::config(&set, &backend.url());
    for limit in [usize::MAX >> 2, (1 << 32) + 1] {
        backend.script(Script {
            delay: Some(Duration::from_millis(1500)),
            ..Script::default()
        });
        let before = backend.records().len();
        let gateway = protogate::Gateway::new(protogate::Snapshot::build(&config).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = protogate::ListenerOptions {
            max_connections: limit,
            ..protogate::ListenerOptions::default()
        };
        let server = protogate::Server::start(listener, gateway, options).unwrap();
        let addr = server.local_addr();
        let call = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /v1/echo?s=x HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut first = [0; 12];
            stream.read_exact(&mut first).await.map(|_| first)
        });
        // The request reaches the backend before shutdown starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while backend.records().len() == before {
            assert!(Instant::now() < deadline, "limit {limit}: no call arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        server.shutdown().await;
        let waited = started.elapsed();
        let first = call.await.unwrap().expect("an answer");
        assert_eq!(&first, b"HTTP/1.1 200", "limit {limit}");
        assert!(
            waited >= Duration::from_millis(900),
            "limit {limit}: shutdown waited only {waited:?}"
        );
    }
}

/// A running server prints as its address and state: the gateway inside
/// holds descriptors whose recursive types (the kitchen's
/// `google.protobuf.Struct`) printed without end, overflowing the stack
/// of a test that showed a server it did not expect.
#[tokio::test]
async fn a_server_prints_in_a_line() {
    let (_backend, gateway) = support::gateway::kitchen(|_| {}).await;
    let shown = format!("{:?}", gateway.server);
    assert!(shown.contains(&gateway.addr().to_string()), "{shown}");
    assert!(shown.len() < 200, "{shown}");
}

/// An HTTP/1.1 request refused before its body is read (no route, here)
/// leaves the body on the connection, which cannot go on: the answer says
/// `Connection: close` rather than the next request meeting a reset. A
/// request whose body was read keeps its connection.
#[tokio::test]
async fn a_refusal_that_leaves_the_body_unread_closes_the_connection_saying_so() {
    use support::client::{Conn, full};
    let (_backend, gateway) = setup(|_| {}).await;
    let post = |path: &str, body: &'static str| {
        http::Request::post(gateway.url(path))
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap()
    };
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn.send(post("/nowhere", "{\"s\": \"x\"}")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["connection"], "close");

    let mut conn = Conn::http1(gateway.addr()).await;
    for _ in 0..2 {
        let response = conn.send(post("/v1/echo", "{\"s\": \"x\"}")).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("connection").is_none());
        let _ = support::client::all_data(response.into_body()).await;
    }
    // Without a body there is nothing left over.
    let request = http::Request::get(gateway.url("/nowhere"))
        .body(full(""))
        .unwrap();
    let response = conn.send(request).await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("connection").is_none());
}
