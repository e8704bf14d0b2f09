//! Streaming over REST with a real tonic backend and raw HTTP/1.1 and
//! HTTP/2 clients: every framing, errors before and during a stream,
//! client streams, full-duplex bidirectional calls, cancellation, and a
//! long stream through a slow reader in bounded memory.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use support::client::{self, Conn};
use support::{EchoBackend, Script, TestGateway};

const WAIT: Duration = Duration::from_secs(10);

use support::kitchen;

use support::gateway::kitchen as setup;

fn get(
    gateway: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<client::RequestBody> {
    let mut request = Request::get(gateway.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(client::full(Bytes::new())).unwrap()
}

/// DECISIONS.md (streams): by default one `{"result": m}` line per message,
/// each its own chunk, `Content-Type: application/json`.
#[tokio::test]
async fn server_stream_default_envelope_one_line_per_chunk() {
    let (_backend, gateway) = setup(|_| {}).await;
    for mut conn in [
        Conn::http1(gateway.addr()).await,
        Conn::http2(gateway.addr()).await,
    ] {
        let response = conn
            .send(get(
                &gateway,
                "/v1/watch?s=x&i32=7",
                &[("grpc-metadata-x-echo-count", "3")],
            ))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.headers().get("content-encoding").is_none());
        let chunks = client::all_data(response.into_body()).await;
        assert_eq!(
            chunks,
            vec!["{\"result\":{\"s\":\"x\",\"i32\":7}}\n"; 3],
            "one line per chunk"
        );
    }
}

/// DECISIONS.md (streams): a failure before any message keeps its real
/// status. A first message the gateway cannot write (undecodable bytes
/// from the backend) is a 502, not an error line after a 200.
#[tokio::test]
async fn an_unwritable_first_message_is_a_502() {
    let (backend, gateway) = setup(|_| {}).await;
    backend.script(Script {
        raw_response: Some(Bytes::from_static(b"\xff\xff")),
        count: Some(2),
        ..Script::default()
    });
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn.send(get(&gateway, "/v1/watch?s=x", &[])).await;
    assert_eq!(response.status(), 502);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], 13, "{body}");
}

/// DECISIONS.md (streams): `Accept: text/event-stream` gives Server-Sent
/// Events; a failure is an `error` event with the google.rpc.Status.
#[tokio::test]
async fn server_sent_events_with_an_error_event() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=e",
            &[
                ("accept", "text/event-stream"),
                ("grpc-metadata-x-echo-count", "5"),
                ("grpc-metadata-x-echo-fail-after", "2"),
                ("grpc-metadata-x-echo-status", "5"),
                ("grpc-metadata-x-echo-message", "gone"),
            ],
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = client::all_data(response.into_body()).await;
    assert_eq!(
        chunks,
        [
            "data: {\"s\":\"e\"}\n\n",
            "data: {\"s\":\"e\"}\n\n",
            "event: error\ndata: {\"code\":5,\"message\":\"gone\",\"details\":[]}\n\n",
        ]
    );
}

/// RFC 9110 §12.4.2 and §12.5.1: `Accept` weights pick the framing; a
/// type weighted `q=0` is not acceptable and is never chosen, whatever
/// the spelling of the zero.
#[tokio::test]
async fn accept_weights_pick_the_framing_and_zero_refuses() {
    let (_backend, gateway) = setup(|_| {}).await;
    let cases = [
        ("text/event-stream;q=0", "application/json"),
        ("text/event-stream; Q=0.000", "application/json"),
        ("text/event-stream;charset=utf-8;q=0", "application/json"),
        (
            "application/x-ndjson;q=0, text/event-stream;q=0",
            "application/json",
        ),
        (
            "text/event-stream;q=0, application/x-ndjson",
            "application/x-ndjson",
        ),
        (
            "application/jsonl;q=0, text/event-stream;q=0.1",
            "text/event-stream",
        ),
        (
            "application/x-ndjson;q=0.5, text/event-stream",
            "text/event-stream",
        ),
        ("text/event-stream;q=0.001", "text/event-stream"),
    ];
    let mut conn = Conn::http1(gateway.addr()).await;
    for (accept, framing) in cases {
        let response = conn
            .send(get(
                &gateway,
                "/v1/watch?s=q",
                &[("accept", accept), ("grpc-metadata-x-echo-count", "1")],
            ))
            .await;
        assert_eq!(response.status(), 200, "{accept}");
        assert_eq!(response.headers()["content-type"], framing, "{accept}");
        let chunks = client::all_data(response.into_body()).await;
        let line = match framing {
            "application/json" => "{\"result\":{\"s\":\"q\"}}\n",
            "text/event-stream" => "data: {\"s\":\"q\"}\n\n",
            _ => "{\"s\":\"q\"}\n",
        };
        assert_eq!(chunks, [line], "{accept}");
    }
}

/// Idle event streams get comment lines so proxies keep them open.
#[tokio::test]
async fn idle_event_streams_get_keep_alive_comments() {
    let (_backend, gateway) = setup(|c| c.streams.keepalive = Duration::from_secs(1)).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=k",
            &[
                ("accept", "text/event-stream"),
                ("grpc-metadata-x-echo-count", "2"),
                ("grpc-metadata-x-echo-interval-ms", "2500"),
            ],
        ))
        .await;
    let chunks = client::all_data(response.into_body()).await;
    let messages = chunks.iter().filter(|c| c.starts_with("data: ")).count();
    let comments = chunks.iter().filter(|c| *c == ": keep-alive\n\n").count();
    assert_eq!(messages, 2);
    assert!(comments >= 2, "keep-alive comments while idle: {chunks:?}");
}

/// A backend slow to answer at all: the comments start before the first
/// message, once the status line is out.
#[tokio::test]
async fn keep_alive_comments_before_the_first_message() {
    let (_backend, gateway) = setup(|c| c.streams.keepalive = Duration::from_secs(1)).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=k",
            &[
                ("accept", "text/event-stream"),
                ("grpc-metadata-x-echo-count", "1"),
                ("grpc-metadata-x-echo-delay-ms", "3500"),
            ],
        ))
        .await;
    let chunks = client::all_data(response.into_body()).await;
    let first = chunks
        .iter()
        .position(|c| c.starts_with("data: "))
        .expect("the message");
    let before = chunks[..first]
        .iter()
        .filter(|c| *c == ": keep-alive\n\n")
        .count();
    assert!(before >= 2, "comments before the first message: {chunks:?}");
}

/// DECISIONS.md (streams): `Accept: application/x-ndjson` gives bare
/// messages; a failure is an `{"error": ...}` line.
#[tokio::test]
async fn ndjson_with_a_mid_stream_error() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http2(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=n",
            &[
                ("accept", "application/x-ndjson"),
                ("grpc-metadata-x-echo-fail-after", "1"),
                ("grpc-metadata-x-echo-status", "7"),
                ("grpc-metadata-x-echo-message", "denied"),
            ],
        ))
        .await;
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let chunks = client::all_data(response.into_body()).await;
    assert_eq!(chunks[0], "{\"s\":\"n\"}\n");
    let error: Value = serde_json::from_str(&chunks[1]).unwrap();
    assert_eq!(
        error,
        json!({"error": {"code": 7, "message": "denied", "details": [], "grpc_code": 7, "http_code": 403, "http_status": "Forbidden"}})
    );
    assert_eq!(chunks.len(), 2);
}

/// A mid-stream failure in the default envelope carries grpc-gateway's
/// v2 fields and the v1 ones (`grpc_code`, `http_code`, `http_status`).
#[tokio::test]
async fn envelope_error_line_has_both_generations_of_fields() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=v",
            &[
                ("grpc-metadata-x-echo-fail-after", "2"),
                ("grpc-metadata-x-echo-status", "14"),
                ("grpc-metadata-x-echo-message", "down"),
            ],
        ))
        .await;
    let chunks = client::all_data(response.into_body()).await;
    assert_eq!(chunks.len(), 3);
    let error: Value = serde_json::from_str(chunks[2].trim_end()).unwrap();
    assert_eq!(
        error,
        json!({"error": {"code": 14, "message": "down", "details": [], "grpc_code": 14, "http_code": 503, "http_status": "Service Unavailable"}})
    );
}

/// DECISIONS.md (streams): an error before any message keeps its HTTP
/// status; the same error after the status line is sent is a last line.
#[tokio::test]
async fn early_errors_keep_their_status_late_ones_end_the_stream() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=x",
            &[
                ("grpc-metadata-x-echo-status", "5"),
                ("grpc-metadata-x-echo-message", "no such thing"),
            ],
        ))
        .await;
    assert_eq!(response.status(), 404);
    let body = client::all_data(response.into_body()).await.concat();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"code": 5, "message": "no such thing", "details": []})
    );
    // The backend waits 1.5 s before failing: the status line (held for
    // at most 1 s) is already out.
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=x",
            &[
                ("grpc-metadata-x-echo-status", "5"),
                ("grpc-metadata-x-echo-delay-ms", "1500"),
            ],
        ))
        .await;
    assert_eq!(response.status(), 200);
    let chunks = client::all_data(response.into_body()).await;
    assert_eq!(chunks.len(), 1);
    assert!(
        chunks[0].starts_with("{\"error\":{\"code\":5,"),
        "{chunks:?}"
    );
}

/// Envoy's framing, configured per method: one JSON array; an error is
/// its last element.
#[tokio::test]
async fn json_array_framing_when_configured() {
    let (_backend, gateway) = setup(|c| {
        c.streams.framing.insert(
            "kitchen.v1.Kitchen/Watch".into(),
            protogate::server::StreamFraming::JsonArray,
        );
    })
    .await;
    let reqwest = support::http1();
    let text = reqwest
        .get(gateway.url("/v1/watch?s=a"))
        .header("grpc-metadata-x-echo-count", "3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([{"s": "a"}, {"s": "a"}, {"s": "a"}])
    );
    let text = reqwest
        .get(gateway.url("/v1/watch?s=a"))
        .header("grpc-metadata-x-echo-count", "0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "[]");
    let text = reqwest
        .get(gateway.url("/v1/watch?s=a"))
        .header("grpc-metadata-x-echo-fail-after", "1")
        .header("grpc-metadata-x-echo-status", "9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value[0], json!({"s": "a"}));
    assert_eq!(value[1]["error"]["code"], 9);
}

/// A stream of `google.api.HttpBody` messages is raw bytes with the first
/// message's content type.
#[tokio::test]
async fn http_body_streams_are_raw() {
    let (backend, gateway) = setup(|_| {}).await;
    backend.script(Script {
        response: Some(json!({"content_type": "text/csv", "data": "YSwxCg=="})),
        count: Some(3),
        ..Script::default()
    });
    let response = support::http1()
        .get(gateway.url("/v1/download/report"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(response.text().await.unwrap(), "a,1\na,1\na,1\n");
}

/// Client streaming: newline-delimited or concatenated JSON messages, each
/// sent on as it arrives; path variables apply to every message.
#[tokio::test]
async fn client_stream_of_json_messages() {
    let (backend, gateway) = setup(|_| {}).await;
    let response = support::http1()
        .post(gateway.url("/v1/collect/from-path"))
        .header("content-type", "application/json")
        .body("{\"i32\": 1}\n{\"i32\": 2}{\"i32\": 3,\n \"tags\": [\"t\"]}  ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"s": "from-path", "i32": 3, "tags": ["t"]}),
        "the last message is echoed"
    );
    let sent: Vec<Value> = backend.records().into_iter().map(|r| r.json).collect();
    assert_eq!(
        sent,
        [
            json!({"s": "from-path", "i32": 1}),
            json!({"s": "from-path", "i32": 2}),
            json!({"s": "from-path", "i32": 3, "tags": ["t"]}),
        ]
    );
}

/// A byte-order mark before a streamed message is skipped, as before a
/// body (RFC 8259 §8.1), also when a chunk ends inside it.
#[tokio::test]
async fn byte_order_marks_before_streamed_messages_are_skipped() {
    let (backend, gateway) = setup(|_| {}).await;
    let (tx, body) = client::channel();
    let mut conn = Conn::http1(gateway.addr()).await;
    let request = Request::post(gateway.url("/v1/collect"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { conn.send(request).await });
    for chunk in [
        b"\xEF\xBB\xBF{\"i32\": 1}\n\xEF".as_slice(),
        b"\xBB",
        b"\xBF{\"i32\": 2}\n",
    ] {
        tx.send(Bytes::from_static(chunk)).await.unwrap();
    }
    drop(tx);
    let response = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    let status = response.status();
    let body = client::all_data(response.into_body()).await.concat();
    assert_eq!(status, 200, "{body}");
    let sent: Vec<Value> = backend.records().into_iter().map(|r| r.json).collect();
    assert_eq!(sent, [json!({"i32": 1}), json!({"i32": 2})]);
}

/// A bad message in a client stream is a 400 naming the problem, and the
/// backend's call is cancelled rather than ended normally.
#[tokio::test]
async fn bad_message_in_a_client_stream_cancels_the_call() {
    let (backend, gateway) = setup(|_| {}).await;
    let (tx, body) = client::channel();
    let mut conn = Conn::http1(gateway.addr()).await;
    let request = Request::post(gateway.url("/v1/collect"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { conn.send(request).await });
    tx.send(Bytes::from_static(b"{\"i32\": 1}\n"))
        .await
        .unwrap();
    // The backend has the first message before the bad one comes.
    wait_for(|| backend.records().len() == 1).await;
    tx.send(Bytes::from_static(b"{\"i32\": \"many\"}\n"))
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(response.status(), 400);
    let body = client::all_data(response.into_body()).await.concat();
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], 3);
    assert!(
        error["message"].as_str().unwrap().contains("i32"),
        "{error}"
    );
    drop(tx);
    wait_for(|| backend.cancelled() >= 1).await;
    assert_eq!(backend.records().len(), 1);
}

/// A streamed message is read as a body is, and refused in the same
/// words: a message that is not a JSON object, an unpaired surrogate
/// escape, bytes that are not UTF-8.
#[tokio::test]
async fn bad_streamed_messages_are_refused_as_bodies_are() {
    let (backend, gateway) = setup(|_| {}).await;
    for (body, message) in [
        (
            b"[1, 2]\n".as_slice(),
            "invalid JSON body: expected a JSON object (for message `kitchen.v1.Sink`), not an array at line 1 column 1",
        ),
        (
            br#"{"s": "\udc00"}"#,
            "invalid JSON body at `s`: the string holds an unpaired UTF-16 surrogate escape `\\udc00` at line 1 column 8: a low surrogate (`\\udc00`-`\\udfff`) must follow a high one (`\\ud800`-`\\udbff`)",
        ),
        (
            b"{\"s\": \"\xFF\"}",
            "invalid JSON body: the body is not valid UTF-8 (byte 0xFF at offset 7, line 1 column 8)",
        ),
    ] {
        let response = support::http1()
            .post(gateway.url("/v1/collect"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["message"], message);
    }
    assert!(backend.records().is_empty());
}

/// Bidirectional over HTTP/1.1 chunked and over HTTP/2: each reply comes
/// back while the request body is still open (full duplex).
#[tokio::test]
async fn bidirectional_full_duplex() {
    let (backend, gateway) = setup(|_| {}).await;
    for mut conn in [
        Conn::http1(gateway.addr()).await,
        Conn::http2(gateway.addr()).await,
    ] {
        let (tx, body) = client::channel();
        let request = Request::post(gateway.url("/v1/chat"))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        tx.send(Bytes::from_static(b"{\"s\": \"one\"}\n"))
            .await
            .unwrap();
        let response = tokio::time::timeout(WAIT, conn.send(request))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = client::next_data(&mut body, WAIT).await.unwrap();
        assert_eq!(first, "{\"result\":{\"s\":\"one\"}}\n");
        tx.send(Bytes::from_static(b"{\"s\": \"two\"}"))
            .await
            .unwrap();
        let second = client::next_data(&mut body, WAIT).await.unwrap();
        assert_eq!(second, "{\"result\":{\"s\":\"two\"}}\n");
        drop(tx);
        assert_eq!(
            client::next_data(&mut body, WAIT).await,
            None,
            "the call ends with the body"
        );
    }
    assert_eq!(backend.cancelled(), 0);
}

/// A client that goes away mid-stream cancels the backend's call.
#[tokio::test]
async fn client_disconnect_cancels_the_stream() {
    let (backend, gateway) = setup(|_| {}).await;
    for http2 in [false, true] {
        let before = backend.cancelled();
        let mut conn = if http2 {
            Conn::http2(gateway.addr()).await
        } else {
            Conn::http1(gateway.addr()).await
        };
        let response = conn
            .send(get(
                &gateway,
                "/v1/watch?s=c",
                &[
                    ("grpc-metadata-x-echo-count", "1000"),
                    ("grpc-metadata-x-echo-interval-ms", "50"),
                ],
            ))
            .await;
        let mut body = response.into_body();
        assert!(client::next_data(&mut body, WAIT).await.is_some());
        drop(body);
        drop(conn);
        wait_for(|| backend.cancelled() > before).await;
    }
}

/// A client that goes away during a slow unary call cancels it too.
#[tokio::test]
async fn client_disconnect_cancels_a_unary_call() {
    let (backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let request = get(
        &gateway,
        "/v1/echo?s=slow",
        &[("grpc-metadata-x-echo-delay-ms", "5000")],
    );
    let pending = tokio::spawn(async move { conn.send(request).await });
    wait_for(|| !backend.records().is_empty()).await;
    pending.abort();
    wait_for(|| backend.cancelled() >= 1).await;
}

/// Streams have no deadline by default, but the client's `grpc-timeout`
/// bounds them: past it the stream ends with DEADLINE_EXCEEDED.
#[tokio::test]
async fn client_deadline_ends_a_stream() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http1(gateway.addr()).await;
    let response = conn
        .send(get(
            &gateway,
            "/v1/watch?s=d",
            &[
                ("grpc-timeout", "1500m"),
                ("grpc-metadata-x-echo-count", "100"),
                ("grpc-metadata-x-echo-interval-ms", "400"),
            ],
        ))
        .await;
    let chunks = client::all_data(response.into_body()).await;
    let last: Value = serde_json::from_str(chunks.last().unwrap().trim_end()).unwrap();
    assert_eq!(last["error"]["code"], 4, "{chunks:?}");
    assert!(chunks.len() < 10);
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

/// Backpressure end to end: 10,000 messages of 8 KiB (80 MB in all)
/// through a client that stops reading for a while. The gateway (the
/// built binary, measured from /proc) holds no more than flow-control
/// windows' worth: its resident memory grows by less than 24 MiB, far
/// below the stream's size, and every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_stream_through_a_slow_reader_in_bounded_memory() {
    let set = kitchen();
    let dir = support::tempdir();
    std::fs::write(dir.join("kitchen.pb"), &set).unwrap();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let gateway = support::BinGateway::spawn(&[
        "serve",
        "--descriptor-set",
        dir.join("kitchen.pb").to_str().unwrap(),
        "--upstream",
        &backend.url(),
    ]);
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", gateway.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let payload = "x".repeat(8 << 10);
    let mut conn = Conn::http1(gateway.addr).await;
    let request = Request::get(format!("{}/v1/watch?s={payload}", gateway.base))
        .header("grpc-metadata-x-echo-count", "10000")
        .header("accept", "application/x-ndjson")
        .body(client::full(Bytes::new()))
        .unwrap();
    let response = conn.send(request).await;
    let mut body = response.into_body();
    let mut received = 0usize;
    let mut bytes = 0usize;
    while received < 10 {
        let chunk = client::next_data(&mut body, WAIT).await.unwrap();
        bytes += chunk.len();
        received += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let before = rss();
    // The reader stalls; the backend can only fill the windows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = rss();
    while let Some(chunk) = client::next_data(&mut body, WAIT).await {
        bytes += chunk.len();
        received += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let after = rss();
    assert_eq!(received, 10_000);
    assert!(bytes > 80_000_000);
    let growth = stalled
        .saturating_sub(before)
        .max(after.saturating_sub(before));
    eprintln!(
        "rss before {} KiB, stalled {} KiB, after {} KiB",
        before >> 10,
        stalled >> 10,
        after >> 10
    );
    assert!(
        growth < 24 << 20,
        "RSS grew by {} KiB (before {} KiB)",
        growth >> 10,
        before >> 10
    );
}

/// A bad message in a request stream is the client's mistake every time:
/// the call the gateway cancels because of it never gets to answer first,
/// and the answer says how many messages before it were passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_stream_messages_are_always_the_clients_error() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let client = if i % 2 == 0 {
            support::http1()
        } else {
            support::http2()
        };
        let path = if i % 4 < 2 { "/v1/collect" } else { "/v1/chat" };
        let url = gateway.url(path);
        calls.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(r#"{"s":"a"} {"s":1}"#)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }));
    }
    for call in calls {
        let (status, body) = call.await.unwrap();
        // A bidi call may have answered before the bad message (200, with
        // an error line); never a 5xx.
        assert!(status == 400 || status == 200, "{status}: {body}");
        assert!(!body.contains("h2 protocol error"), "{body}");
        // The first message went on, and the backend may have acted on
        // it: the client is told so, whichever way the call ended.
        assert!(
            body.contains("1 request message was passed on"),
            "{status}: {body}"
        );
    }
}

/// A raw `HttpBody` stream has no place for an error in its bytes: a
/// failure after the first bytes comes as `grpc-status` trailers to a
/// client that takes trailers, over HTTP/1.1 too (which sends only the
/// trailers the response names up front).
#[tokio::test]
async fn failed_raw_streams_end_with_status_trailers() {
    let (_backend, gateway) = setup(|_| {}).await;
    for http2 in [false, true] {
        let mut conn = if http2 {
            Conn::http2(gateway.addr()).await
        } else {
            Conn::http1(gateway.addr()).await
        };
        failed_raw_stream(&gateway, &mut conn).await;
    }
}

async fn failed_raw_stream(gateway: &TestGateway, conn: &mut Conn) {
    let response = conn
        .send(get(
            gateway,
            "/v1/download/x",
            &[
                ("te", "trailers"),
                (
                    "grpc-metadata-x-echo-response",
                    r#"{"content_type":"text/plain","data":"aGkK"}"#,
                ),
                ("grpc-metadata-x-echo-fail-after", "1"),
                ("grpc-metadata-x-echo-status", "13"),
                ("grpc-metadata-x-echo-message", "disk on fire"),
            ],
        ))
        .await;
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(collected.to_bytes(), "hi\n");
    assert_eq!(trailers["grpc-status"], "13");
    // The backend's message as it sent it, as on every other face.
    assert_eq!(trailers["grpc-message"], "disk%20on%20fire");
}
