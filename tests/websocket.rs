//! Streaming methods over WebSocket with a real client (tokio-tungstenite)
//! and a real tonic backend: frames in and out, the empty-frame
//! half-close, close codes carrying the gRPC status, cancellation.

mod support;

use std::time::Duration;

use futures_util::SinkExt as _;
use serde_json::{Value, json};
use support::ws::{connect, next, text};
use support::{EchoBackend, TestGateway};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

async fn setup() -> (EchoBackend, TestGateway) {
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    );
    let backend = EchoBackend::start(support::pool(&set)).await;
    let gateway = TestGateway::for_set(&set, &backend.url()).await;
    (backend, gateway)
}

/// Bidirectional: each frame is answered as it comes; the empty frame
/// half-closes; the call's end closes the socket with 1000.
#[tokio::test]
async fn bidirectional_frames_and_half_close() {
    let (backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(text(json!({"s": "one"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "one"})));
    socket
        .send(text(json!({"s": "two", "i32": 2})))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "two", "i32": 2})));
    socket.send(Message::text("")).await.unwrap();
    assert_eq!(next(&mut socket).await, Err((1000, "OK".to_owned())));
    assert_eq!(backend.records().len(), 2);
    assert_eq!(backend.cancelled(), 0);
}

/// Client streaming: messages until the half-close, then the one reply;
/// path variables apply to every message.
#[tokio::test]
async fn client_stream_over_websocket() {
    let (backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/collect/from-path", &[]).await;
    for i in 1..=3 {
        socket.send(text(json!({"i32": i}))).await.unwrap();
    }
    socket.send(Message::text("  \n")).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Ok(json!({"s": "from-path", "i32": 3}))
    );
    assert_eq!(next(&mut socket).await, Err((1000, "OK".to_owned())));
    let sent: Vec<Value> = backend.records().into_iter().map(|r| r.json).collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|m| m["s"] == "from-path"));
}

/// Server streaming without a body: the request is the path and query;
/// each reply a frame.
#[tokio::test]
async fn server_stream_over_websocket() {
    let (_backend, gateway) = setup().await;
    let mut socket = connect(
        &gateway,
        "/v1/watch?s=w",
        &[("grpc-metadata-x-echo-count", "3")],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(next(&mut socket).await, Ok(json!({"s": "w"})));
    }
    assert_eq!(next(&mut socket).await, Err((1000, "OK".to_owned())));
}

/// An `Upgrade` that offers WebSocket among other protocols (RFC 9110
/// §7.8 allows a list) is a WebSocket upgrade.
#[tokio::test]
async fn an_upgrade_listing_websocket_among_others_is_taken() {
    let (_backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/watch?s=w", &[("upgrade", "h2c, WebSocket")]).await;
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "w"})));
}

/// A failed call closes with 4000 + the gRPC code and its message.
#[tokio::test]
async fn errors_close_with_the_grpc_status() {
    let (_backend, gateway) = setup().await;
    let mut socket = connect(
        &gateway,
        "/v1/chat",
        &[
            ("grpc-metadata-x-echo-status", "5"),
            ("grpc-metadata-x-echo-message", "nothing here"),
            ("grpc-metadata-x-echo-fail-after", "1"),
        ],
    )
    .await;
    socket.send(text(json!({"s": "x"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "x"})));
    socket.send(text(json!({"s": "y"}))).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Err((4005, "nothing here".to_owned()))
    );
}

/// A frame that is not a valid message ends the call with 4003
/// (INVALID_ARGUMENT) naming the field; the backend's call is cancelled.
#[tokio::test]
async fn bad_frames_close_with_invalid_argument() {
    let (backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(text(json!({"s": "fine"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "fine"})));
    socket.send(text(json!({"i32": "many"}))).await.unwrap();
    let (code, reason) = next(&mut socket).await.unwrap_err();
    assert_eq!(code, 4003);
    assert!(reason.contains("i32"), "{reason}");
    wait_for(|| backend.cancelled() >= 1).await;
}

/// A byte-order mark before a frame's JSON is skipped, as before a body
/// (RFC 8259 §8.1).
#[tokio::test]
async fn a_byte_order_mark_before_a_frame_is_skipped() {
    let (_backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket
        .send(Message::text("\u{feff}{\"s\": \"text\"}"))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "text"})));
    socket
        .send(Message::binary(b"\xEF\xBB\xBF{\"s\": \"binary\"}".to_vec()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "binary"})));
}

/// A frame is read as a body is, and refused in the same words.
#[tokio::test]
async fn bad_frames_are_refused_as_bodies_are() {
    let (_backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(Message::text("[1, 2]")).await.unwrap();
    let (code, reason) = next(&mut socket).await.unwrap_err();
    assert_eq!(code, 4003);
    assert!(
        reason.starts_with("invalid JSON body: expected a JSON object (for message `kitchen.v1.Sink`), not an array"),
        "{reason}"
    );
}

/// A Close from the client cancels the call (no data may follow a Close).
#[tokio::test]
async fn client_close_cancels_the_call() {
    let (backend, gateway) = setup().await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(text(json!({"s": "hello"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "hello"})));
    socket
        .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    wait_for(|| backend.cancelled() >= 1).await;
}

/// Only streaming methods are offered over WebSocket.
#[tokio::test]
async fn unary_paths_refuse_the_upgrade() {
    let (_backend, gateway) = setup().await;
    let request = format!("ws://{}/v1/echo", gateway.addr())
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 400);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], 3);
        }
        other => panic!("expected an HTTP refusal, got {other}"),
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

/// Kitchen's gateway with `edit` applied to its config.
async fn setup_with(edit: impl FnOnce(&mut protogate::Config)) -> (EchoBackend, TestGateway) {
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    edit(&mut config);
    (backend, TestGateway::start(config).await)
}

/// An open WebSocket holds its connection's slot under
/// `limits.max_connections` (the HTTP connection ends at the upgrade):
/// the next client waits until the socket closes.
#[tokio::test]
async fn a_websocket_holds_its_connection_slot() {
    let (_backend, gateway) = setup_with(|c| c.limits.max_connections = 1).await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    socket.send(text(json!({"s": "one"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "one"})));
    let url = gateway.url("/v1/echo?s=next");
    let waiting = tokio::spawn(async move { support::http1().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served past the limit");
    socket.send(Message::text("")).await.unwrap();
    assert_eq!(next(&mut socket).await, Err((1000, "OK".to_owned())));
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once the socket closed")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Shutdown waits for an open WebSocket call as for any request in
/// flight, up to `timeouts.shutdown`, and then closes it with 1001
/// ("going away") rather than dropping the connection.
#[tokio::test]
async fn shutdown_gives_a_websocket_its_grace_then_closes_it_going_away() {
    let grace = Duration::from_millis(1500);
    let (_backend, gateway) = setup_with(|c| c.timeouts.shutdown = grace).await;
    let mut socket = connect(&gateway, "/v1/chat", &[]).await;
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(gateway.server.shutdown());
    // Within the grace period the call goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.send(text(json!({"s": "still"}))).await.unwrap();
    assert_eq!(next(&mut socket).await, Ok(json!({"s": "still"})));
    let closed = next(&mut socket).await;
    assert_eq!(
        closed.as_ref().map_err(|(code, _)| *code),
        Err(1001),
        "{closed:?}"
    );
    assert!(started.elapsed() >= grace / 2, "{:?}", started.elapsed());
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends")
        .unwrap();
}
