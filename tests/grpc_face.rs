//! The gRPC face of the gateway under bad input and at its limits, over
//! raw HTTP/2 and HTTP/1.1 on 127.0.0.1: deadlines, gRPC-Web text that is
//! not base64, malformed calls to the gateway's own services, the size
//! limits and frame checks on passed-through messages, and the forwarding
//! headers.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use prost::Message as _;
use support::client::{self, Conn};

use support::gateway::kitchen as setup;

/// What a gRPC call ended with: the status and message (from the headers
/// of a trailers-only answer, else from the trailers) and the body.
#[derive(Debug)]
struct Outcome {
    status: Option<String>,
    message: String,
    body: Bytes,
}

async fn outcome(response: http::Response<hyper::body::Incoming>) -> Outcome {
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("the answer ends in time")
        .expect("the body reads");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let body = collected.to_bytes();
    let from = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Outcome {
        status: from("grpc-status"),
        message: from("grpc-message").unwrap_or_default(),
        body,
    }
}

/// A gRPC request with `body` to `path`, with extra headers.
fn grpc_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: client::RequestBody,
) -> http::Request<client::RequestBody> {
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).unwrap()
}

async fn call(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Outcome {
    let mut conn = Conn::http2(addr).await;
    let request = grpc_request(addr, path, headers, client::full(body));
    outcome(conn.send(request).await).await
}

/// A `kitchen.v1.Sink` with `s` set.
fn sink(s: &str) -> Vec<u8> {
    let mut out = vec![0x0a, u8::try_from(s.len()).unwrap_or(0x80)];
    if s.len() >= 0x80 {
        out.truncate(1);
        prost::encoding::encode_varint(s.len() as u64, &mut out);
    }
    out.extend_from_slice(s.as_bytes());
    out
}

/// The client's `grpc-timeout` passing is DEADLINE_EXCEEDED with a clear
/// message, for gRPC and gRPC-Web alike — never UNAVAILABLE.
#[tokio::test]
async fn client_deadline_is_deadline_exceeded() {
    let (_backend, gateway) = setup(|_| {}).await;
    let slow = [("grpc-timeout", "200m"), ("x-echo-delay-ms", "5000")];
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &slow,
        support::envelope(0, &sink("hi")),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("4"), "{got:?}");
    assert!(got.message.contains("grpc-timeout"), "{got:?}");

    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .header("grpc-timeout", "200m")
        .header("x-echo-delay-ms", "5000")
        .body(support::envelope(0, &sink("hi")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
}

/// A malformed `grpc-timeout` on a passed-through call is the client's
/// mistake, answered INVALID_ARGUMENT for gRPC and gRPC-Web alike, and
/// never sent on: the upstream connection is shared, and grpcio, meeting
/// one on it, went on refusing the valid deadlines of later calls.
#[tokio::test]
async fn malformed_client_deadline_stops_at_the_gateway() {
    let (backend, gateway) = setup(|_| {}).await;
    for bad in ["1x", "soon", "123456789S", "-5m", "5"] {
        let got = call(
            gateway.addr(),
            "/kitchen.v1.Kitchen/Echo",
            &[("grpc-timeout", bad)],
            support::envelope(0, &sink("hi")),
        )
        .await;
        assert_eq!(got.status.as_deref(), Some("3"), "{bad}: {got:?}");
        assert!(got.message.contains("grpc-timeout"), "{bad}: {got:?}");

        let response = support::http1()
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web+proto")
            .header("grpc-timeout", bad)
            .body(support::envelope(0, &sink("hi")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{bad}");
        assert_eq!(response.headers()["grpc-status"], "3", "{bad}");
    }
    // Given twice, the second one would go on unchecked.
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[("grpc-timeout", "5S"), ("grpc-timeout", "xyz")],
        support::envelope(0, &sink("hi")),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("3"), "{got:?}");
    assert!(got.message.contains("more%20than%20once"), "{got:?}");
    assert!(backend.records().is_empty(), "{:?}", backend.records());

    // A well-formed deadline goes on, and the call succeeds.
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[("grpc-timeout", "5S")],
        support::envelope(0, &sink("hi")),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("0"), "{got:?}");
    let sent = backend.last();
    let sent = sent
        .metadata
        .get("grpc-timeout")
        .expect("the deadline went on");
    assert!(
        sent.to_str().unwrap().ends_with(['S', 'm', 'u', 'n']),
        "{sent:?}"
    );
}

/// A gRPC-Web call over HTTP/1.1 loses its hop-by-hop headers on the
/// way, those its `Connection` names included; `TE: Trailers` in any case
/// does not fail the call.
#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_gateway() {
    let (backend, gateway) = setup(|_| {}).await;
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "Trailers")
        .header("x-kept", "1")
        .body(support::envelope(0, &sink("hi")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Its trailers are in the body: no HTTP trailers are announced.
    assert!(response.headers().get("trailer").is_none(), "{response:?}");
    let body = response.bytes().await.unwrap();
    let trailer = String::from_utf8_lossy(&body);
    assert!(trailer.contains("grpc-status:0"), "{trailer}");
    let seen = backend.last().metadata;
    assert!(seen.get("x-hop").is_none(), "{seen:?}");
    assert!(seen.get("keep-alive").is_none(), "{seen:?}");
    assert_eq!(seen.get("x-kept").unwrap(), "1");
}

/// gRPC-Web text that is not base64 is the client's mistake:
/// INVALID_ARGUMENT naming base64, nothing blamed on the backend.
#[tokio::test]
async fn grpc_web_text_that_is_not_base64() {
    let (backend, gateway) = setup(|_| {}).await;
    for http in [support::http1(), support::http2()] {
        let response = http
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web-text")
            .body("AAAA!!!=")
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        let status = headers.get("grpc-status").map(|v| v.to_str().unwrap());
        assert_eq!(status, Some("3"), "{headers:?} {body:?}");
        let message = headers["grpc-message"].to_str().unwrap();
        assert!(message.contains("base64"), "{message}");
        // The place and the character, not the library's debug text.
        assert!(message.contains("character%204"), "{message}");
        assert!(!message.contains("source"), "{message}");
    }
    assert!(
        backend.records().is_empty(),
        "no message reached the backend"
    );
}

/// A gRPC-Web text body is a run of base64 chunks, each padded on its
/// own, as clients write one per message and the gateway writes its own
/// answers: padding inside the body ends a chunk, not the body.
#[tokio::test]
async fn grpc_web_text_chunks_padded_on_their_own() {
    let (backend, gateway) = setup(|_| {}).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let envelope = support::envelope(0, &sink("hi"));
    let (head, message) = envelope.split_at(5);
    let body = format!("{}{}", b64.encode(head), b64.encode(message));
    assert!(body.trim_end_matches('=').contains('='), "{body}");
    for http in [support::http1(), support::http2()] {
        let response = http
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web-text")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let answer = response.bytes().await.unwrap();
        let trailer: Vec<u8> = answer
            .chunks(4)
            .flat_map(|group| b64.decode(group).expect("base64"))
            .collect();
        let trailer = String::from_utf8_lossy(&trailer).into_owned();
        assert!(trailer.contains("grpc-status:0"), "{trailer:?}");
        assert_eq!(backend.last().json["s"], "hi");
    }
}

/// A gRPC-Web text body may have whitespace around and inside its base64
/// (a trailing newline, as `echo` or a saved file gives, CRLF-wrapped
/// lines), as base64 decoders commonly skip line breaks; other bytes that
/// are not base64 are still INVALID_ARGUMENT, placed in the body as sent.
#[tokio::test]
async fn grpc_web_text_with_line_breaks() {
    let (backend, gateway) = setup(|_| {}).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = b64.encode(support::envelope(0, &sink("lines")));
    let wrapped: Vec<&str> = text
        .as_bytes()
        .chunks(6)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    let post = |http: &reqwest::Client, body: String| {
        http.post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web-text")
            .body(body)
            .send()
    };
    for http in [support::http1(), support::http2()] {
        for body in [
            format!("{text}\n"),
            format!("{}\r\n", wrapped.join("\r\n")),
            format!(" {text}\t"),
        ] {
            let response = post(&http, body.clone()).await.unwrap();
            let answer = response.bytes().await.unwrap();
            let trailer: Vec<u8> = answer
                .chunks(4)
                .flat_map(|group| b64.decode(group).expect("base64"))
                .collect();
            let trailer = String::from_utf8_lossy(&trailer).into_owned();
            assert!(trailer.contains("grpc-status:0"), "{body:?}: {trailer:?}");
            assert_eq!(backend.last().json["s"], "lines");
        }
    }
    backend.clear();
    let response = post(
        &support::http1(),
        format!("\n\n{}*{}", &text[..4], &text[4..]),
    )
    .await
    .unwrap();
    let status = response.headers().get("grpc-status").cloned();
    let message = response.headers()["grpc-message"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(status.as_ref().map(|v| v.to_str().unwrap()), Some("3"));
    assert!(message.contains("character%206%20('*')"), "{message}");
    assert!(backend.records().is_empty());
}

/// A text-mode request is answered in text mode unless the client's
/// `Accept` prefers binary or refuses text (`q=0`); `Accept` lists and
/// weights are understood.
#[tokio::test]
async fn grpc_web_text_is_answered_in_text() {
    let (_backend, gateway) = setup(|_| {}).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(support::envelope(0, &sink("hi")));
    let cases = [
        (None, "application/grpc-web-text+proto"),
        (Some("*/*"), "application/grpc-web-text+proto"),
        (
            Some("application/grpc-web-text, */*;q=0.5"),
            "application/grpc-web-text+proto",
        ),
        (
            Some("application/grpc-web+proto"),
            "application/grpc-web+proto",
        ),
        // RFC 9110 §12.4.2: `q=0` refuses a mode; the other one answers.
        (
            Some("application/grpc-web-text;q=0"),
            "application/grpc-web+proto",
        ),
        (
            Some("application/grpc-web-text;q=0, application/grpc-web"),
            "application/grpc-web+proto",
        ),
        (
            Some("application/grpc-web-text, application/grpc-web;q=0"),
            "application/grpc-web-text+proto",
        ),
        (
            Some("application/grpc-web-text;q=0.2, application/grpc-web;q=0.9"),
            "application/grpc-web+proto",
        ),
    ];
    for (accept, expected) in cases {
        let mut request = support::http1()
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web-text")
            .body(body.clone());
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["content-type"], expected, "{accept:?}");
        let answer = response.bytes().await.unwrap();
        let frames = if expected.contains("text") {
            answer
                .chunks(4)
                .flat_map(|group| b64.decode(group).expect("base64"))
                .collect()
        } else {
            answer.to_vec()
        };
        assert_eq!(
            &frames[..support::envelope(0, &sink("hi")).len()],
            &support::envelope(0, &sink("hi"))[..]
        );
    }
}

const ECHO: &str = "/kitchen.v1.Kitchen/Echo";
const COLLECT: &str = "/kitchen.v1.Kitchen/Collect";
const REFLECT: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// A malformed call: what it is, extra headers, its body, the status due.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Bytes,
    &'static str,
);

/// Malformed calls to the gateway's own services end with the status gRPC
/// gives each fault, over a raw HTTP/2 client — never OK.
#[tokio::test]
async fn own_services_refuse_malformed_calls() {
    let (_backend, gateway) = setup(|_| {}).await;
    let mut huge = vec![0u8, 0x7f, 0xff, 0xff, 0xff];
    huge.push(0x0a);
    let mut truncated = support::envelope(0, b"\x0a\x05hello").to_vec();
    truncated.truncate(8);
    let cases: [Case; 5] = [
        (
            "undecodable",
            &[],
            support::envelope(0, b"\xff\xff\xff\xff"),
            "13",
        ),
        ("huge length", &[], Bytes::from(huge), "8"),
        ("truncated", &[], Bytes::from(truncated), "13"),
        (
            "compressed without grpc-encoding",
            &[],
            support::envelope(1, b"\x0a\x00"),
            "13",
        ),
        (
            "json codec",
            &[("content-type", "application/grpc+json")],
            support::envelope(0, b"{}"),
            "12",
        ),
    ];
    for path in [REFLECT, CHECK] {
        for (what, headers, body, code) in &cases {
            let mut conn = Conn::http2(gateway.addr()).await;
            let mut request = grpc_request(gateway.addr(), path, &[], client::full(body.clone()));
            for (name, value) in *headers {
                request
                    .headers_mut()
                    .insert(*name, http::HeaderValue::from_static(value));
            }
            let got = outcome(conn.send(request).await).await;
            assert_eq!(got.status.as_deref(), Some(*code), "{path} {what}: {got:?}");
            assert!(!got.message.is_empty(), "{path} {what}: a message says why");
        }
    }
}

/// Names the client chose come back cut short in `grpc-message`, so a
/// 100 KB name is NOT_FOUND, not a header block too large to take.
#[tokio::test]
async fn own_services_bound_echoed_names() {
    let (_backend, gateway) = setup(|_| {}).await;
    let name = "x".repeat(100_000);
    let request = tonic_health::pb::HealthCheckRequest {
        service: name.clone(),
    };
    let got = call(
        gateway.addr(),
        CHECK,
        &[],
        support::envelope(0, &request.encode_to_vec()),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("5"), "{}", got.message.len());
    assert!(got.message.len() < 1000, "{}", got.message.len());

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(name)),
    };
    let got = call(
        gateway.addr(),
        REFLECT,
        &[],
        support::envelope(0, &request.encode_to_vec()),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("5"), "{}", got.message.len());
    assert!(got.message.len() < 1000, "{}", got.message.len());
}

/// `limits.max_response_bytes` bounds passed-through messages too: a
/// larger one ends the call with RESOURCE_EXHAUSTED after the messages
/// before it, for gRPC and gRPC-Web; smaller ones pass.
#[tokio::test]
async fn passthrough_response_limit() {
    let (backend, gateway) = setup(|c| c.limits.max_response_bytes = 1024).await;
    let small = support::envelope(0, &sink("hi"));
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[],
        small.clone(),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("0"), "{got:?}");
    assert_eq!(got.body, small);

    let large = support::envelope(0, &sink(&"x".repeat(2048)));
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[],
        large.clone(),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("8"), "{got:?}");
    assert!(got.message.contains("max_response_bytes"), "{got:?}");
    assert!(got.body.is_empty(), "no part of the message went out");

    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .body(large)
        .send()
        .await
        .unwrap();
    let body = response.bytes().await.unwrap();
    let trailer = String::from_utf8_lossy(&body);
    assert!(trailer.contains("grpc-status:8"), "{trailer}");

    // A server stream whose message is too large.
    backend.script(support::Script {
        raw_response: Some(Bytes::from(sink(&"y".repeat(4096)))),
        count: Some(1),
        ..Default::default()
    });
    let got = call(gateway.addr(), "/kitchen.v1.Kitchen/Watch", &[], small).await;
    assert_eq!(got.status.as_deref(), Some("8"), "{got:?}");
}

/// `limits.max_body_bytes` bounds each passed-through request message: a
/// larger one ends the call with RESOURCE_EXHAUSTED and never reaches the
/// backend (which would take it), for gRPC, gRPC-Web and gRPC-Web text.
/// The limit is per message: a client stream may carry more in all.
#[tokio::test]
async fn passthrough_request_limit() {
    let (backend, gateway) = setup(|c| c.limits.max_body_bytes = 1 << 20).await;
    let large = support::envelope(0, &sink(&"x".repeat(2 << 20)));
    let got = call(gateway.addr(), ECHO, &[], large.clone()).await;
    assert_eq!(got.status.as_deref(), Some("8"), "{}", got.message);
    assert!(got.message.contains("max_body_bytes"), "{got:?}");

    let b64 = base64::engine::general_purpose::STANDARD;
    let web = [
        ("application/grpc-web+proto", large.clone()),
        ("application/grpc-web-text", Bytes::from(b64.encode(&large))),
    ];
    for (content_type, body) in web {
        let response = support::http1()
            .post(gateway.url(ECHO))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.headers().get("grpc-status").cloned();
        assert_eq!(status.unwrap(), "8", "{content_type}");
    }
    assert!(
        backend.records().is_empty(),
        "{:?}",
        backend.records().len()
    );

    // A client stream: 1.8 MiB in three messages passes whole.
    let part = support::envelope(0, &sink(&"y".repeat(600 << 10)));
    let stream = [part.clone(), part.clone(), part.clone()].concat();
    let got = call(gateway.addr(), COLLECT, &[], stream).await;
    assert_eq!(got.status.as_deref(), Some("0"), "{}", got.message);
    assert_eq!(backend.records().len(), 3);

    // One message too large in a stream stops it there: the one before it
    // went on, it did not.
    backend.clear();
    let addr = gateway.addr();
    let (tx, body) = client::channel();
    let answer = tokio::spawn(async move {
        let mut conn = Conn::http2(addr).await;
        outcome(conn.send(grpc_request(addr, COLLECT, &[], body)).await).await
    });
    tx.send(support::envelope(0, &sink("first"))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while backend.records().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(large).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), answer)
        .await
        .expect("the call ends")
        .unwrap();
    assert_eq!(got.status.as_deref(), Some("8"), "{}", got.message);
    let seen: Vec<_> = backend.records().iter().map(|r| r.json.clone()).collect();
    assert_eq!(seen, [serde_json::json!({"s": "first"})], "only the first");
    drop(tx);
}

/// A request frame whose flags no gRPC server takes — 0x80 (gRPC-Web's
/// trailers frame, which only a response may carry), 0x7e, compressed
/// without a `grpc-encoding` — ends a passed-through call with INTERNAL
/// (as gRPC servers answer a malformed frame) and is not forwarded, for
/// gRPC and gRPC-Web; so does a body that ends inside a prefix.
#[tokio::test]
async fn passthrough_refuses_malformed_request_frames() {
    let (backend, gateway) = setup(|_| {}).await;
    let mut cut = support::envelope(0, &sink("hi")).to_vec();
    cut.extend_from_slice(&[0, 0, 0]);
    let bodies = [
        support::envelope(0x80, &sink("hi")),
        support::envelope(0x7e, &sink("hi")),
        support::envelope(0x01, &sink("hi")),
        Bytes::from(cut),
    ];
    for body in bodies {
        let got = call(gateway.addr(), ECHO, &[], body.clone()).await;
        assert_eq!(got.status.as_deref(), Some("13"), "{body:?}: {got:?}");
        assert!(!got.message.is_empty(), "{body:?}: a message says why");

        let response = support::http1()
            .post(gateway.url(ECHO))
            .header("content-type", "application/grpc-web+proto")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.headers().get("grpc-status").cloned();
        assert_eq!(status.unwrap(), "13", "{body:?}");
    }
    let unknown = call(gateway.addr(), ECHO, &[], support::envelope(0x80, b"")).await;
    assert!(unknown.message.contains("0x80"), "{unknown:?}");
    assert!(backend.records().is_empty(), "{:?}", backend.records());
}

/// Passed-through calls carry `x-forwarded-for` (appended to) and
/// `x-forwarded-host` (from the authority, the client's own value
/// replaced), as REST calls do.
#[tokio::test]
async fn passthrough_forwarding_headers() {
    let (backend, gateway) = setup(|_| {}).await;
    let mut conn = Conn::http2(gateway.addr()).await;
    let request = http::Request::post("http://books.example:8080/kitchen.v1.Kitchen/Echo")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-for", "203.0.113.7")
        .body(client::full(support::envelope(0, &sink("hi"))))
        .unwrap();
    let got = outcome(conn.send(request).await).await;
    assert_eq!(got.status.as_deref(), Some("0"), "{got:?}");
    let metadata = backend.last().metadata;
    assert_eq!(
        metadata.get("x-forwarded-host").unwrap(),
        "books.example:8080"
    );
    assert_eq!(
        metadata.get("x-forwarded-for").unwrap(),
        "203.0.113.7, 127.0.0.1"
    );
}

/// Calls no gRPC server could take — not a POST, a gRPC-Web type the
/// gateway does not translate — get a gRPC status from the gateway, never
/// a bare 400/405 or an UNAVAILABLE blamed on the backend.
#[tokio::test]
async fn impossible_calls_are_unimplemented() {
    let (backend, gateway) = setup(|_| {}).await;
    let cases = [
        (reqwest::Method::GET, "application/grpc", true),
        (reqwest::Method::PUT, "application/grpc+proto", true),
        (reqwest::Method::GET, "application/grpc-web", false),
        (reqwest::Method::POST, "application/grpc-web+json", false),
        (reqwest::Method::POST, "application/grpc-webx", false),
    ];
    for (method, content_type, h2) in cases {
        let client = if h2 {
            support::http2()
        } else {
            support::http1()
        };
        let response = client
            .request(method.clone(), gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(support::envelope(0, b""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {content_type}");
        assert_eq!(
            response.headers()["grpc-status"],
            "12",
            "{method} {content_type}"
        );
        // Answered in the codec it was sent in.
        if content_type.starts_with("application/grpc+") {
            assert_eq!(response.headers()["content-type"], content_type);
        }
    }
    assert!(backend.records().is_empty());
}

/// A backend's error answered trailers-only reaches the client the same
/// way: one HEADERS frame ending the stream, no empty DATA frame after it
/// (clients built on grpc-core read that as a broken stream, UNKNOWN), and
/// no `content-length` added.
#[tokio::test]
async fn a_trailers_only_answer_stays_trailers_only() {
    use http_body::Body as _;
    let (backend, gateway) = setup(|_| {}).await;
    backend.script(support::Script {
        error: Some((tonic::Code::NotFound, "no such sink".into(), vec![])),
        ..support::Script::default()
    });
    let mut conn = Conn::http2(gateway.addr()).await;
    let request = grpc_request(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[],
        client::full(support::envelope(0, &sink("hi"))),
    );
    let response = conn.send(request).await;
    assert_eq!(response.headers()["grpc-status"], "5");
    assert!(
        response.body().is_end_stream(),
        "the head did not end the stream"
    );
    // Its headers are its trailers, read by the client as the backend's
    // metadata: nothing the HTTP layer makes up, such as a length.
    assert!(
        !response.headers().contains_key("content-length"),
        "{:?}",
        response.headers()
    );
}

/// gRPC over HTTP/1.1 (not gRPC's transport, but some proxies speak it):
/// the status still comes as trailers, which HTTP/1.1 sends only when
/// named up front.
#[tokio::test]
async fn grpc_over_http1_gets_its_status_trailers() {
    let (_backend, gateway) = setup(|_| {}).await;
    let addr = gateway.addr();
    let mut conn = Conn::http1(addr).await;
    let request = grpc_request(
        addr,
        "/kitchen.v1.Kitchen/Echo",
        &[],
        client::full(support::envelope(0, &sink("hi"))),
    );
    let got = outcome(conn.send(request).await).await;
    assert_eq!(got.status.as_deref(), Some("0"), "{got:?}");
}

/// Without `TE: trailers` an HTTP/1.1 client cannot get the status (a
/// trailer): the call is refused up front, trailers-only, never sent on to
/// end like a success.
#[tokio::test]
async fn grpc_over_http1_without_te_trailers_is_refused() {
    let (backend, gateway) = setup(|_| {}).await;
    let addr = gateway.addr();
    let mut conn = Conn::http1(addr).await;
    let mut request = grpc_request(
        addr,
        "/kitchen.v1.Kitchen/Echo",
        &[],
        client::full(support::envelope(0, &sink("hi"))),
    );
    request.headers_mut().remove("te");
    let response = conn.send(request).await;
    assert_eq!(response.headers()["grpc-status"], "12");
    let message = response.headers()["grpc-message"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("TE"), "{message}");
    assert!(backend.records().is_empty());
}

/// `limits.max_header_bytes` holds for gRPC and gRPC-Web as for REST: the
/// gateway answers RESOURCE_EXHAUSTED instead of passing the metadata on.
#[tokio::test]
async fn oversized_header_blocks_are_resource_exhausted() {
    let (backend, gateway) = setup(|c| c.limits.max_header_bytes = 8 << 10).await;
    let big = "a".repeat(10 << 10);
    let got = call(
        gateway.addr(),
        "/kitchen.v1.Kitchen/Echo",
        &[("x-big", &big)],
        support::envelope(0, &sink("hi")),
    )
    .await;
    assert_eq!(got.status.as_deref(), Some("8"), "{got:?}");
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-big", &big)
        .body(support::envelope(0, &sink("hi")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "8");
    // Refused in the mode the call would have been answered in.
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web-text")
        .header("x-big", &big)
        .body("AAAAAAA=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "8");
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web-text+proto"
    );
    assert!(backend.records().is_empty());
}

/// A request body whose HTTP/1.1 chunks are not chunks is the client's
/// mistake: INVALID_ARGUMENT, saying what is wrong in words (not a
/// library's debug text) and not CANCELLED, which says the client went
/// away; for gRPC-Web and for gRPC over HTTP/1.1 alike.
#[tokio::test]
async fn malformed_chunked_request_bodies_are_invalid_argument() {
    let (_backend, gateway) = setup(|_| {}).await;
    for (kind, te) in [
        ("application/grpc-web+proto", ""),
        ("application/grpc-web-text", ""),
        ("application/grpc", "TE: trailers\r\n"),
    ] {
        let request = format!(
            "POST /kitchen.v1.Kitchen/Echo HTTP/1.1\r\nHost: gw\r\nContent-Type: {kind}\r\n{te}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n"
        );
        let answer = client::raw_text(gateway.addr(), &request).await;
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("grpc-status:3") || lower.contains("grpc-status: 3"),
            "{kind}: {answer}"
        );
        assert!(lower.contains("chunk"), "{kind}: {answer}");
        assert!(
            !answer.contains("MetadataMap") && !answer.contains("source:"),
            "{kind}: {answer}"
        );
    }
}

/// Metadata a backend parses before it reads the call is checked at the
/// gateway, which shares its backend connection among clients: a
/// `grpc-encoding` gRPC does not define is UNIMPLEMENTED, a `-bin` value
/// that is not base64 INVALID_ARGUMENT, and neither reaches the backend
/// (grpcio, meeting them on a shared connection, refused other clients'
/// compressed calls after). Valid ones pass.
#[tokio::test]
async fn passthrough_checks_metadata_the_backend_parses() {
    let (backend, gateway) = setup(|_| {}).await;
    let message = support::envelope(0, &sink("hi"));
    for (headers, code, needle) in [
        (
            &[("grpc-encoding", "snappy")][..],
            "12",
            "grpc-encoding%20%60snappy%60",
        ),
        (
            &[("grpc-encoding", "GZIP")][..],
            "12",
            "grpc-encoding%20%60GZIP%60",
        ),
        (&[("trace-bin", "!!!")][..], "3", "header%20%60trace-bin%60"),
        (
            &[("grpc-previous-rpc-attempts", "99999999999")][..],
            "3",
            "grpc-previous-rpc-attempts",
        ),
        (
            &[("grpc-previous-rpc-attempts", "zz")][..],
            "3",
            "grpc-previous-rpc-attempts",
        ),
        (
            &[
                ("trace-bin", "AQID"),
                ("x-bin", "AQI="),
                ("grpc-previous-rpc-attempts", "1"),
                ("grpc-status", "zz"),
            ][..],
            "0",
            "",
        ),
    ] {
        let got = call(
            gateway.addr(),
            "/kitchen.v1.Kitchen/Echo",
            headers,
            message.clone(),
        )
        .await;
        assert_eq!(got.status.as_deref(), Some(code), "{headers:?}: {got:?}");
        assert!(got.message.contains(needle), "{headers:?}: {got:?}");
    }
    assert_eq!(backend.records().len(), 1, "only the valid call went on");
    let sent = backend.last().metadata;
    assert!(
        sent.get("grpc-status").is_none(),
        "a request's grpc-status is not passed on: {sent:?}"
    );
    assert!(sent.get_bin("trace-bin").is_some(), "{sent:?}");
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .header("trace-bin", "!!!")
        .body(message)
        .send()
        .await
        .unwrap();
    let status = response.headers().get("grpc-status").cloned();
    assert_eq!(status.as_ref().map(|v| v.to_str().unwrap()), Some("3"));
    assert_eq!(backend.records().len(), 1);
}

/// Media types are case-insensitive: `Application/GRPC` is a gRPC call,
/// passed through (as the lowercase type backends compare), not a REST
/// request for an unknown path.
#[tokio::test]
async fn grpc_content_types_in_any_case() {
    let (backend, gateway) = setup(|_| {}).await;
    let addr = gateway.addr();
    let mut request = grpc_request(
        addr,
        "/kitchen.v1.Kitchen/Echo",
        &[],
        client::full(support::envelope(0, &sink("hi"))),
    );
    request.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("Application/GRPC"),
    );
    let got = outcome(Conn::http2(addr).await.send(request).await).await;
    assert_eq!(got.status.as_deref(), Some("0"), "{got:?}");
    assert_eq!(backend.records().len(), 1);
}
