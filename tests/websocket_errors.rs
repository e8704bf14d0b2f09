//! What goes wrong on a WebSocket, with a real client (tokio-tungstenite)
//! and a real tonic backend: the client's own mistakes close the socket
//! with their own code every time (never with the upstream reset they
//! cause), malformed upgrades are refused in the google.rpc.Status shape,
//! frames a route cannot take are refused rather than ignored, and frames
//! that break the WebSocket protocol close with its own codes.

mod support;

use std::time::Duration;

use futures_util::SinkExt as _;
use protogate::Config;
use serde_json::{Value, json};
use support::ws::{connect, next, text};
use support::{EchoBackend, TestGateway};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

/// Iterations of the tests that look for a race: enough to lose it often
/// before the fix, bounded so the test stays quick.
const ROUNDS: usize = 20;

async fn setup(tweak: impl FnOnce(&mut Config)) -> (EchoBackend, TestGateway) {
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    );
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

/// A frame over `limits.max_body_bytes` closes with 4008
/// (RESOURCE_EXHAUSTED, the 413 of WebSocket) naming the limit — before
/// the call is answered and in the middle of it, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_large_frames_close_with_their_own_code_every_time() {
    let (_backend, gateway) = setup(|c| c.limits.max_body_bytes = 1000).await;
    let large = json!({"s": "x".repeat(2000)});
    for round in 0..ROUNDS {
        let mut socket = connect(&gateway, "/v1/chat", &[]).await;
        if round % 2 == 1 {
            socket.send(text(json!({"s": "fine"}))).await.unwrap();
            assert_eq!(next(&mut socket).await, Ok(json!({"s": "fine"})));
        }
        socket.send(text(large.clone())).await.unwrap();
        assert_eq!(
            next(&mut socket).await,
            Err((4008, "request body is larger than 1000 bytes".to_owned())),
            "round {round}"
        );
    }
}

/// A frame whose header declares more than `limits.max_body_bytes` is
/// refused on its header: the gateway closes with 4008 without waiting
/// for (or buffering) the payload, which here never comes.
#[tokio::test]
async fn a_frame_declared_too_large_is_refused_on_its_header() {
    let (_backend, gateway) = setup(|c| c.limits.max_body_bytes = 1000).await;
    // FIN + text, masked, 64-bit length of 8 MiB, the mask; no payload.
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&(8u64 << 20).to_be_bytes());
    head.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    assert_eq!(close_code_after(&gateway, &head).await, Some(4008));
}

/// A frame that is not a JSON object (`[1]`, `7`, `"s"`, broken JSON)
/// closes with 4003 (INVALID_ARGUMENT), never with the upstream reset the
/// cancelled call causes, every time; the backend's call is cancelled.
/// The sockets run at once on several threads, where the two would race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_frames_close_with_invalid_argument_every_time() {
    let (backend, gateway) = setup(|_| {}).await;
    let bad = ["[1]", "7", "\"s\"", "{\"s\":"];
    let rounds = (0..ROUNDS).map(|round| {
        let gateway = &gateway;
        async move {
            let mut socket = connect(gateway, "/v1/chat", &[]).await;
            if round % 2 == 1 {
                socket.send(text(json!({"s": "fine"}))).await.unwrap();
                assert_eq!(next(&mut socket).await, Ok(json!({"s": "fine"})));
            }
            let frame = bad[round % bad.len()];
            socket.send(Message::text(frame)).await.unwrap();
            let (code, reason) = next(&mut socket).await.unwrap_err();
            assert_eq!(code, 4003, "round {round}, {frame}: {reason}");
            assert!(!reason.contains("upstream"), "{frame}: {reason}");
        }
    });
    futures_util::future::join_all(rounds).await;
    wait_for(|| backend.cancelled() >= ROUNDS / 2).await;
}

/// A server-streaming route without a body takes its request from the
/// path and query: a message from the client is refused with 4003 saying
/// so, and the backend's call is cancelled; an empty frame (the
/// half-close) is harmless.
#[tokio::test]
async fn messages_to_a_route_without_a_body_are_refused() {
    let (backend, gateway) = setup(|_| {}).await;
    let streaming = [
        ("grpc-metadata-x-echo-count", "1000"),
        ("grpc-metadata-x-echo-interval-ms", "50"),
    ];
    let mut socket = connect(&gateway, "/v1/watch?s=w", &streaming).await;
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "w"})));
    socket.send(Message::text("")).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "w"})));
    socket.send(text(json!({"s": "ignored?"}))).await.unwrap();
    let (code, reason) = loop {
        match next(&mut socket).await {
            Ok(message) => assert_eq!(message, json!({"s": "w"})),
            Err(close) => break close,
        }
    };
    assert_eq!(code, 4003, "{reason}");
    assert_eq!(
        reason,
        "this route takes its request from the path and query; send no messages"
    );
    wait_for(|| backend.cancelled() >= 1).await;
}

/// A Close from the client cancels a server stream without a body at
/// once, not at the next message.
#[tokio::test]
async fn client_close_cancels_a_server_stream() {
    let (backend, gateway) = setup(|_| {}).await;
    let slow = [
        ("grpc-metadata-x-echo-count", "3"),
        ("grpc-metadata-x-echo-interval-ms", "30000"),
    ];
    let mut socket = connect(&gateway, "/v1/watch?s=w", &slow).await;
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "w"})));
    socket
        .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    wait_for(|| backend.cancelled() >= 1).await;
}

/// One raw HTTP/1.1 exchange: the status, the headers and the body.
async fn raw(gateway: &TestGateway, head: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    let answer = support::client::raw_exchange(gateway.addr(), head.as_bytes()).await;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let text = std::str::from_utf8(&answer[..end]).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    (status.parse().unwrap(), headers, answer[end + 4..].to_vec())
}

fn upgrade(headers: &[&str]) -> String {
    let mut head = String::from("GET /v1/chat HTTP/1.1\r\nhost: gateway\r\nupgrade: websocket\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    head
}

/// Malformed upgrades get the gateway's google.rpc.Status JSON, not the
/// HTTP library's plain text: a version other than 13 → 426 with
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4); no key, no version, no
/// `Connection: upgrade` → 400.
#[tokio::test]
async fn malformed_upgrades_are_status_json() {
    let (_backend, gateway) = setup(|_| {}).await;
    let key = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==";
    let cases: [(&[&str], u16, &str); 6] = [
        (
            &[key, "sec-websocket-version: 99", "connection: upgrade"],
            426,
            "sec-websocket-version",
        ),
        (
            &["sec-websocket-version: 13", "connection: upgrade"],
            400,
            "sec-websocket-key",
        ),
        (&[key, "connection: upgrade"], 400, "sec-websocket-version"),
        (&[key, "sec-websocket-version: 13"], 400, "connection"),
        (
            &[
                "sec-websocket-key: short",
                "sec-websocket-version: 13",
                "connection: upgrade",
            ],
            400,
            "sec-websocket-key",
        ),
        (
            &[key, key, "sec-websocket-version: 13", "connection: upgrade"],
            400,
            "sec-websocket-key",
        ),
    ];
    for (headers, want, named) in cases {
        // `connection: close` is added last; with `upgrade` it is a list.
        let head = upgrade(headers).replace(
            "connection: upgrade\r\nconnection: close",
            "connection: upgrade, close",
        );
        let (status, response_headers, body) = raw(&gateway, &head).await;
        assert_eq!(status, want, "{headers:?}");
        assert_eq!(
            response_headers["content-type"], "application/json",
            "{headers:?}"
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], 3, "{body}");
        assert_eq!(body["details"], json!([]), "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(named), "{headers:?}: {message}");
        if want == 426 || named == "sec-websocket-version" {
            assert_eq!(response_headers["sec-websocket-version"], "13");
        }
    }
}

/// Browsers apply no CORS to WebSockets, so the gateway checks `Origin`:
/// a page of another origin is refused with 403 (cross-site WebSocket
/// hijacking); the gateway's own origin, a listed one, and a client that
/// sends none (not a page) are let through.
#[tokio::test]
async fn upgrades_from_other_origins_are_refused() {
    let (_backend, gateway) = setup(|_| {}).await;
    let head = |origin: &str| {
        upgrade(&[
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
            origin,
        ])
        .replace("connection: close", "connection: upgrade")
        .replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
    };
    for origin in [
        "origin: https://evil.example",
        "origin: null",
        "origin: http://gateway:8080",
    ] {
        let (status, headers, body) = raw(&gateway, &head(origin)).await;
        assert_eq!(status, 403, "{origin}");
        assert_eq!(headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], 7, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("origin"),
            "{body}"
        );
    }
    // Two origins: refused (400), whichever comes first.
    let (status, _, body) = raw(
        &gateway,
        &head("origin: http://gateway\r\norigin: https://evil.example"),
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("more than one Origin"),
        "{body}"
    );
    // Any request a proxy on the way could take for an upgrade is held to
    // the same origins: another method, `websocket` among other tokens.
    let odd = head("origin: https://evil.example")
        .replace("GET /v1/chat", "POST /v1/chat")
        .replace("upgrade: websocket", "upgrade: foo, WebSocket");
    let (status, _, _) = raw(&gateway, &odd).await;
    assert_eq!(status, 403);
    let own = format!("http://{}", gateway.addr());
    let mut socket = connect(&gateway, "/v1/chat", &[("origin", &own)]).await;
    socket.send(text(json!({"s": "mine"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "mine"})));
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(text(json!({"s": "program"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "program"})));

    let (_backend, listed) = setup(|c| {
        c.cors = Some(protogate::config::CorsOptions {
            allowed_origins: vec!["https://app.example".to_owned()],
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: Duration::from_secs(60),
        });
    })
    .await;
    let mut socket = connect(&listed, "/v1/chat", &[("origin", "https://app.example")]).await;
    socket.send(text(json!({"s": "app"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "app"})));
    let (status, _, _) = raw(&listed, &head("origin: https://evil.example")).await;
    assert_eq!(status, 403);
}

/// The path and query are read before the upgrade: a query the route
/// does not take is a 400 the client can read, not a close after a 101.
#[tokio::test]
async fn a_bad_query_is_refused_before_the_upgrade() {
    let (backend, gateway) = setup(|_| {}).await;
    let head = upgrade(&[
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version: 13",
    ])
    .replace("GET /v1/chat ", "GET /v1/watch?bogus=1 ")
    .replace("connection: close", "connection: upgrade, close");
    let (status, _, body) = raw(&gateway, &head).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("bogus"),
        "{body}"
    );
    assert!(backend.records().is_empty());
}

/// A `grpc-timeout` on the upgrade bounds the call, as on a REST stream:
/// the socket closes with 4004 (DEADLINE_EXCEEDED) when it runs out.
#[tokio::test]
async fn grpc_timeout_bounds_the_call() {
    let (_backend, gateway) = setup(|_| {}).await;
    let started = std::time::Instant::now();
    let mut socket = connect(
        &gateway,
        "/v1/watch",
        &[
            ("grpc-timeout", "300m"),
            ("grpc-metadata-x-echo-count", "100"),
            ("grpc-metadata-x-echo-interval-ms", "100"),
        ],
    )
    .await;
    let code = loop {
        match next(&mut socket).await {
            Ok(_) => continue,
            Err((code, _)) => break code,
        }
    };
    assert_eq!(code, 4004);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Limits on the header block hold for upgrades as for REST: 431.
#[tokio::test]
async fn oversized_upgrade_headers_are_431() {
    let (_backend, gateway) = setup(|c| c.limits.max_header_bytes = 8 << 10).await;
    let big = format!("x-big: {}", "a".repeat(10 << 10));
    let head = upgrade(&[
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version: 13",
        &big,
    ])
    .replace("connection: close", "connection: upgrade, close");
    let (status, _, body) = raw(&gateway, &head).await;
    assert_eq!(status, 431);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], 8, "{body}");
}

/// On a server-streaming route with a body, a half-close before any
/// message sends the one request as an empty message, as an empty REST
/// body is; the backend never sees a call without its request.
#[tokio::test]
async fn half_close_before_the_one_message_sends_an_empty_one() {
    let (backend, gateway) = setup(|_| {}).await;
    let mut socket = connect(&gateway, "/v1/watch", &[]).await;
    socket.send(Message::text("")).await.unwrap();
    let mut got = Vec::new();
    loop {
        match next(&mut socket).await {
            Ok(message) => got.push(message),
            Err((code, reason)) => {
                assert_eq!(code, 1000, "{reason}");
                break;
            }
        }
    }
    assert!(!got.is_empty());
    assert_eq!(backend.last().json, json!({}));
}

/// A raw WebSocket frame from a client: `head` is the first byte (FIN,
/// reserved bits, opcode); masked unless `masked` is false.
fn frame(head: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let bit = if masked { 0x80 } else { 0 };
    let mut out = vec![head];
    if payload.len() < 126 {
        out.push(bit | payload.len() as u8);
    } else {
        out.push(bit | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Upgrades `/v1/chat` by hand, sends `bytes`, and reads what the gateway
/// sends until it closes the connection: the close code of its first
/// frame (None: no Close frame came first).
async fn close_code_after(gateway: &TestGateway, bytes: &[u8]) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    let head = "GET /v1/chat HTTP/1.1\r\nhost: gateway\r\nupgrade: websocket\r\n\
                connection: upgrade\r\nsec-websocket-version: 13\r\n\
                sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        answer.push(byte[0]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{answer:?}");
    stream.write_all(bytes).await.unwrap();
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut frames))
        .await
        .expect("the gateway closes the connection")
        .ok()?;
    // A server frame is unmasked: opcode, length, then the payload.
    (frames.len() >= 4 && frames[0] == 0x88).then(|| u16::from_be_bytes([frames[2], frames[3]]))
}

/// RFC 6455 §7.4.1: a frame that breaks the protocol closes the socket
/// with 1002 (protocol error), and a text frame that is not UTF-8 with
/// 1007, never with the gRPC codes (4003) meant for messages the route
/// cannot take. §7.4.2 and §5.5.1: a Close whose code may not be sent
/// (below 1000, 1004 to 1006, 1015, unassigned) is answered with a Close
/// of 1002 before the connection ends; a valid Close is echoed.
#[tokio::test]
async fn protocol_violations_close_with_the_protocol_codes() {
    let (_backend, gateway) = setup(|_| {}).await;
    let close = |code: u16| frame(0x88, &code.to_be_bytes(), true);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked frame", frame(0x81, b"{}", false), 1002),
        ("a reserved bit", frame(0xC1, b"{}", true), 1002),
        ("an unknown data opcode", frame(0x83, b"{}", true), 1002),
        ("an unknown control opcode", frame(0x8B, b"", true), 1002),
        ("a fragmented ping", frame(0x09, b"", true), 1002),
        ("a continuation of nothing", frame(0x80, b"{}", true), 1002),
        ("a ping of 126 bytes", frame(0x89, &[0; 126], true), 1002),
        ("a one-byte Close", frame(0x88, &[3], true), 1002),
        (
            "a 64-bit length with its top bit set",
            [
                &[0x81, 0x80 | 127][..],
                &[0x80, 0, 0, 0, 0, 0, 0, 2],
                &[0; 4],
            ]
            .concat(),
            1002,
        ),
        (
            "a text frame not UTF-8",
            frame(0x81, b"{\"s\": \"\xff\"}", true),
            1007,
        ),
        ("Close 999", close(999), 1002),
        ("Close 1004", close(1004), 1002),
        ("Close 1005", close(1005), 1002),
        ("Close 1006", close(1006), 1002),
        ("Close 1015", close(1015), 1002),
        ("Close 2999", close(2999), 1002),
        ("Close 5000", close(5000), 1002),
        ("Close 1000", close(1000), 1000),
        ("Close 4321", close(4321), 4321),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(
            close_code_after(&gateway, &bytes).await,
            Some(code),
            "{what}"
        );
    }
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5 s");
}
