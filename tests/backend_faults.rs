//! Backends that break the gRPC protocol in their answers — a status
//! detail that is not base64, a message cut short before a clean status —
//! against every face: each gets a structured error, never a panic, an
//! empty reply or a success that lost data.
//!
//! The backend is scripted on the `h2` crate, since no gRPC server sends
//! such answers on purpose.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response};
use serde_json::{Value, json};
use support::TestGateway;

/// How the scripted backend answers every call.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// One message, then status 3 with a `grpc-status-details-bin` that
    /// is not base64.
    DetailsNotBase64,
    /// Status 3 with that detail in the head, no body (trailers-only).
    DetailsNotBase64Only,
    /// One message, then a message header announcing 100 bytes followed
    /// by 3, then status 0.
    CutShort,
    /// Only the cut message, then status 0.
    CutShortOnly,
    /// A web page: 200 with `Content-Type: text/html`.
    Html,
    /// A proxy's error page: 502 with `Content-Type: text/html`.
    HtmlError,
    /// A web server's 404 page: not a gRPC server at all.
    NotFoundPage,
    /// One message, then the end of the stream: no trailers at all.
    NoStatus,
    /// One message, then trailers without `grpc-status`.
    TrailersWithoutStatus,
    /// One message, then `grpc-status: abc`.
    StatusNotANumber,
    /// Status 7 with a 40 KB trailer before it.
    LargeTrailers,
    /// `grpc-encoding: gzip` and a message flagged compressed that is not
    /// gzip, then status 0.
    NotGzip,
    /// Two messages, then status 0: too many for a unary call.
    TwoAnswers,
    /// No message, status 0: too few for a unary call.
    NoAnswer,
    /// One message with flags `0x02`, which mean nothing, then status 0.
    UnknownFlags,
    /// One message flagged compressed with no `grpc-encoding`, then
    /// status 0.
    CompressedUnnamed,
    /// Answers the first call on a connection (`HI`, status 0), then
    /// resets every later one with PROTOCOL_ERROR.
    ResetAfterFirst,
    /// A head with `x-shard: s-3`, then status 5 with `x-cost: 12`.
    HeadersThenError,
    /// A trailers-only answer whose `grpc-status` is `abc`.
    OnlyStatusNotANumber,
    /// One message, then trailers with `grpc-status` 0 and 13.
    TwoStatuses,
    /// `Sink` from an older `.proto`: `s` (a string) as the number 7 and
    /// `i32: 5`, then status 0.
    OlderSchema,
}

/// `Sink { s: "hi" }` in a gRPC frame.
const HI: &[u8] = b"\x00\x00\x00\x00\x04\x0a\x02hi";

/// A scripted backend on a free loopback port; stops with the test.
async fn backend(fault: Fault) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else {
                    return;
                };
                let mut calls = 0;
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    calls += 1;
                    if matches!(fault, Fault::ResetAfterFirst) && calls > 1 {
                        respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                        continue;
                    }
                    tokio::spawn(answer(fault, request, respond));
                }
            });
        }
    });
    addr
}

async fn answer(
    fault: Fault,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    // The request is read whole first, as a server does before a unary
    // answer.
    let mut body = request.into_body();
    while let Some(Ok(data)) = body.data().await {
        let _ = body.flow_control().release_capacity(data.len());
    }
    let head = |end: bool| {
        let mut response = Response::builder()
            .status(200)
            .header("content-type", "application/grpc");
        if end {
            response = response
                .header("grpc-status", "3")
                .header("grpc-message", "bad")
                .header("grpc-status-details-bin", "!!notb64");
        }
        response.body(()).unwrap()
    };
    let status = |code: &'static str, details: bool| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(code));
        if details {
            trailers.insert("grpc-message", HeaderValue::from_static("bad"));
            trailers.insert(
                "grpc-status-details-bin",
                HeaderValue::from_static("!!notb64"),
            );
        }
        trailers
    };
    let cut = {
        let mut out = BytesMut::new();
        out.put_u8(0);
        out.put_u32(100);
        out.put_slice(b"\x0a\x01h");
        out.freeze()
    };
    let (data, trailers) = match fault {
        Fault::DetailsNotBase64Only => {
            let _ = respond.send_response(head(true), true);
            return;
        }
        Fault::OnlyStatusNotANumber => {
            let mut only = head(false);
            only.headers_mut()
                .insert("grpc-status", HeaderValue::from_static("abc"));
            let _ = respond.send_response(only, true);
            return;
        }
        Fault::TwoStatuses => {
            let mut trailers = status("0", false);
            trailers.append("grpc-status", HeaderValue::from_static("13"));
            (Bytes::from_static(HI), trailers)
        }
        Fault::Html | Fault::HtmlError | Fault::NotFoundPage => {
            let code = match fault {
                Fault::Html => 200,
                Fault::HtmlError => 502,
                _ => 404,
            };
            let page = Response::builder()
                .status(code)
                .header("content-type", "text/html")
                .body(())
                .unwrap();
            if let Ok(mut stream) = respond.send_response(page, false) {
                let _ = stream.send_data(Bytes::from_static(b"<html>hello</html>"), true);
            }
            return;
        }
        Fault::DetailsNotBase64 => (Bytes::from_static(HI), status("3", true)),
        Fault::CutShort => ([HI, &cut].concat().into(), status("0", false)),
        Fault::CutShortOnly => (cut, status("0", false)),
        Fault::TwoAnswers => ([HI, HI].concat().into(), status("0", false)),
        Fault::OlderSchema => (
            Bytes::from_static(b"\x00\x00\x00\x00\x04\x08\x07\x20\x05"),
            status("0", false),
        ),
        Fault::NoAnswer => (Bytes::new(), status("0", false)),
        Fault::NoStatus
        | Fault::TrailersWithoutStatus
        | Fault::StatusNotANumber
        | Fault::LargeTrailers
        | Fault::NotGzip => (Bytes::new(), HeaderMap::new()),
        Fault::ResetAfterFirst => (Bytes::from_static(HI), status("0", false)),
        Fault::HeadersThenError => {
            let mut trailers = status("5", false);
            trailers.insert("x-cost", HeaderValue::from_static("12"));
            (Bytes::new(), trailers)
        }
        Fault::UnknownFlags => (
            Bytes::from_static(b"\x02\x00\x00\x00\x04\x0a\x02hi"),
            status("0", false),
        ),
        Fault::CompressedUnnamed => (
            Bytes::from_static(b"\x01\x00\x00\x00\x04\x0a\x02hi"),
            status("0", false),
        ),
    };
    let odd = |extra: Option<&'static str>| {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-a", HeaderValue::from_static("b"));
        if let Some(code) = extra {
            trailers.insert("grpc-status", HeaderValue::from_static(code));
        }
        trailers
    };
    let (data, trailers) = match fault {
        Fault::NoStatus => {
            if let Ok(mut stream) = respond.send_response(head(false), false) {
                let _ = stream.send_data(Bytes::from_static(HI), true);
            }
            return;
        }
        Fault::TrailersWithoutStatus => (Bytes::from_static(HI), odd(None)),
        Fault::StatusNotANumber => (Bytes::from_static(HI), odd(Some("abc"))),
        Fault::NotGzip => (
            Bytes::from_static(b"\x01\x00\x00\x00\x04nope"),
            status("0", false),
        ),
        Fault::LargeTrailers => {
            let mut trailers = HeaderMap::new();
            let big = HeaderValue::from_str(&"x".repeat(40_000)).unwrap();
            trailers.insert("x-big", big);
            trailers.insert("grpc-status", HeaderValue::from_static("7"));
            trailers.insert("grpc-message", HeaderValue::from_static("no"));
            (Bytes::from_static(HI), trailers)
        }
        _ => (data, trailers),
    };
    let mut head = head(false);
    if let Fault::NotGzip = fault {
        head.headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static("gzip"));
    }
    if let Fault::HeadersThenError = fault {
        head.headers_mut()
            .insert("x-shard", HeaderValue::from_static("s-3"));
    }
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let _ = stream.send_data(data, false);
    let _ = stream.send_trailers(trailers);
}

async fn gateway(fault: Fault) -> TestGateway {
    let addr = backend(fault).await;
    TestGateway::start(support::gateway::config(
        &support::kitchen(),
        &format!("http://{addr}"),
    ))
    .await
}

/// A status detail that is not base64 (tonic's client panics on reading
/// one) is dropped; the status and message stand, on every face, before
/// and after a stream's first message.
#[tokio::test]
async fn status_details_that_are_not_base64_keep_the_status() {
    for fault in [Fault::DetailsNotBase64, Fault::DetailsNotBase64Only] {
        let gateway = gateway(fault).await;
        let response = rest_echo(&gateway).await;
        assert_eq!(response.status(), 400, "{fault:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 3, "{fault:?}: {body}");
        assert_eq!(body["message"], "bad", "{fault:?}: {body}");

        let response = connect_echo(&gateway).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_argument", "{fault:?}: {body}");

        let response = support::http1()
            .get(gateway.url("/v1/watch"))
            .send()
            .await
            .unwrap();
        let text = support::client::stream_text(response).await;
        assert!(text.contains(r#""code":3"#), "{fault:?}: {text}");
    }
}

/// A message cut short before an OK status is the backend's protocol
/// error (502, INTERNAL), never a success that lost it: unary, and a
/// stream before its first message (its real status) and after it (an
/// error line); Connect too.
#[tokio::test]
async fn a_message_cut_short_is_an_error_not_a_success() {
    let gateway = gateway(Fault::CutShort).await;
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["result"]["s"], "hi", "{text}");
    assert_eq!(lines[1]["error"]["code"], 13, "{text}");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended inside a message"),
        "{text}"
    );

    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Watch"))
        .header("content-type", "application/connect+json")
        .body(support::envelope(0, b"{}"))
        .send()
        .await
        .unwrap();
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""code":"internal""#), "{text}");

    let gateway = self::gateway(Fault::CutShortOnly).await;
    let response = rest_echo(&gateway).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 13, "{body}");
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        502,
        "a stream failing before its first message"
    );
}

/// A web page where a gRPC answer belongs is the backend's fault, named
/// by its content type (502), not a message flag of `<` (500).
#[tokio::test]
async fn a_web_page_for_an_answer_is_a_bad_gateway() {
    let gateway = gateway(Fault::Html).await;
    let (status, message) = rest_failure(&gateway).await;
    assert_eq!(status, 502);
    assert!(
        message.contains("Content-Type `text/html`") && message.contains("is it a gRPC server?"),
        "{message}"
    );
}

/// A unary call answered with two messages, or none, is the backend's
/// protocol error (502), not its first message served (or a 500).
#[tokio::test]
async fn a_unary_call_takes_exactly_one_answer() {
    for (fault, what) in [
        (Fault::TwoAnswers, "more than one response message"),
        (Fault::NoAnswer, "without a response message"),
    ] {
        let gateway = gateway(fault).await;
        let response = rest_echo(&gateway).await;
        assert_eq!(response.status(), 502, "{fault:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(what),
            "{fault:?}: {body}"
        );
    }
}

/// A field the backend sends with another wire type than the gateway's
/// descriptor declares (the backend runs an older `.proto`) is an unknown
/// field, as the protobuf runtimes read it: left out, the rest of the
/// answer written, on the REST, stream and Connect faces alike.
#[tokio::test]
async fn a_field_of_another_wire_type_is_left_out_not_a_failure() {
    let gateway = gateway(Fault::OlderSchema).await;
    let response = rest_echo(&gateway).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"i32": 5}));

    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    let text = support::client::stream_text(response).await;
    assert_eq!(text.trim(), r#"{"result":{"i32":5}}"#);

    let response = connect_echo(&gateway).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"i32": 5}));
}

/// `Echo` with `{}` over Connect's unary JSON.
async fn connect_echo(gateway: &TestGateway) -> reqwest::Response {
    support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body("{}")
        .send()
        .await
        .unwrap()
}

/// `POST /v1/echo` with `{"s": "x"}`: the REST face's unary call.
async fn rest_echo(gateway: &TestGateway) -> reqwest::Response {
    support::http1()
        .post(gateway.url("/v1/echo"))
        .json(&json!({"s": "x"}))
        .send()
        .await
        .unwrap()
}

/// [`rest_echo`]'s HTTP status and error message.
async fn rest_failure(gateway: &TestGateway) -> (u16, String) {
    let response = rest_echo(gateway).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().expect("a message").to_owned();
    (status, message)
}

/// What a passed-through gRPC call ended with: its status, message and
/// the body's bytes.
async fn passthrough(gateway: &TestGateway, path: &str) -> (String, String, Bytes) {
    support::client::grpc_call(gateway.addr(), &gateway.url(path)).await
}

/// The same call as gRPC-Web: the body, whose last frame holds the
/// trailers.
async fn passthrough_web(gateway: &TestGateway, path: &str) -> Bytes {
    let response = support::http1()
        .post(gateway.url(path))
        .header("content-type", "application/grpc-web+proto")
        .body(support::envelope(0, b""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), response.bytes())
        .await
        .expect("the call ends in time")
        .unwrap()
}

/// Passed through, a response message cut short ends the call INTERNAL
/// (the backend broke the protocol; not UNAVAILABLE, which invites a
/// retry), and a gRPC-Web client gets only whole messages: a part of
/// one would swallow the trailers frame after it.
#[tokio::test]
async fn a_passed_through_message_cut_short_is_internal() {
    let gateway = gateway(Fault::CutShort).await;
    for path in ["/kitchen.v1.Kitchen/Watch", "/kitchen.v1.Kitchen/Echo"] {
        let (status, message, _) = passthrough(&gateway, path).await;
        assert_eq!(status, "13", "{path}: {message}");
        assert!(message.contains("inside a message"), "{path}: {message}");

        let body = passthrough_web(&gateway, path).await;
        assert!(body.starts_with(HI), "{path}: {body:?}");
        let trailers = &body[HI.len()..];
        assert_eq!(trailers.first(), Some(&0x80), "{path}: {body:?}");
        let trailers = String::from_utf8_lossy(&trailers[5..]);
        assert!(trailers.contains("grpc-status:13"), "{path}: {trailers}");
        assert!(
            trailers.contains("inside%20a%20message"),
            "{path}: {trailers}"
        );
    }
}

/// A response message whose flags the gRPC protocol does not allow —
/// bits without a meaning, or compressed with no `grpc-encoding` to say
/// how — is the backend's fault: INTERNAL when passed through (as a gRPC
/// client's own decoder would say, but naming the backend, and before
/// the message reaches the client), 502 when transcoded.
#[tokio::test]
async fn response_messages_with_flags_they_cannot_have() {
    for (fault, what) in [
        (Fault::UnknownFlags, "unknown flags 0x02"),
        (Fault::CompressedUnnamed, "flagged compressed"),
    ] {
        let gateway = gateway(fault).await;
        let (status, message, body) = passthrough(&gateway, "/kitchen.v1.Kitchen/Echo").await;
        assert_eq!(status, "13", "{fault:?}: {message}");
        assert!(message.contains(what), "{fault:?}: {message}");
        assert!(body.is_empty(), "{fault:?}: the message did not go on");

        let body = passthrough_web(&gateway, "/kitchen.v1.Kitchen/Echo").await;
        assert_eq!(body.first(), Some(&0x80), "{fault:?}: {body:?}");
        let trailers = String::from_utf8_lossy(&body[5..]);
        assert!(trailers.contains("grpc-status:13"), "{fault:?}: {trailers}");

        let response = rest_echo(&gateway).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 502, "{fault:?}: {body}");
    }
}

/// A proxy's error page (502, HTML) in front of the backend is told by
/// its HTTP status on every face, never read as gRPC messages (`<` is no
/// message flag).
#[tokio::test]
async fn an_error_page_is_told_by_its_status() {
    let gateway = gateway(Fault::HtmlError).await;
    let (status, message) = rest_failure(&gateway).await;
    assert_eq!(status, 503, "UNAVAILABLE, as gRPC maps a 502");
    assert!(
        message.contains("HTTP 502 Bad Gateway with Content-Type `text/html`"),
        "{message}"
    );
    let (status, message, _) = passthrough(&gateway, "/kitchen.v1.Kitchen/Echo").await;
    assert_eq!(status, "14", "{message}");
    assert!(message.contains("HTTP 502 Bad Gateway"), "{message}");
    assert!(message.starts_with("upstream `"), "{message}");
}

/// A web server's 404 for a gRPC call is UNIMPLEMENTED, as gRPC maps it,
/// named with the upstream and the likely cause: a URL that is not a gRPC
/// server's.
#[tokio::test]
async fn a_web_servers_not_found_names_the_upstream() {
    let gateway = gateway(Fault::NotFoundPage).await;
    let (status, message) = rest_failure(&gateway).await;
    assert_eq!(status, 501, "{message}");
    for message in [
        message,
        passthrough(&gateway, "/kitchen.v1.Kitchen/Echo").await.1,
    ] {
        assert!(message.starts_with("upstream `"), "{message}");
        assert!(message.contains("HTTP 404 Not Found"), "{message}");
        assert!(message.contains("is it a gRPC server"), "{message}");
    }
}

/// A passed-through call whose backend sends no readable status — no
/// trailers, trailers without `grpc-status`, or one that is not a number —
/// ends INTERNAL saying so, for gRPC and gRPC-Web alike (a gRPC-Web
/// client, reading its status from the body, was left with none), the
/// message before it delivered and other trailers kept.
#[tokio::test]
async fn a_passed_through_call_always_ends_with_a_status() {
    for (fault, what) in [
        (Fault::NoStatus, "without a grpc-status"),
        (Fault::TrailersWithoutStatus, "without a grpc-status"),
        (Fault::StatusNotANumber, "grpc-status `abc`"),
        (Fault::OnlyStatusNotANumber, "grpc-status `abc`"),
        (Fault::TwoStatuses, "grpc-status more than once"),
    ] {
        let gateway = gateway(fault).await;
        let sent = if matches!(fault, Fault::OnlyStatusNotANumber) {
            &b""[..]
        } else {
            HI
        };
        let (status, message, body) = passthrough(&gateway, "/kitchen.v1.Kitchen/Echo").await;
        assert_eq!(status, "13", "{fault:?}: {message}");
        assert!(message.contains(what), "{fault:?}: {message}");
        assert_eq!(body, sent, "{fault:?}");

        // gRPC-Web: a trailers frame, or (trailers-only) the head.
        let response = support::http1()
            .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
            .header("content-type", "application/grpc-web+proto")
            .body(support::envelope(0, b""))
            .send()
            .await
            .unwrap();
        let head = response.headers().get("grpc-status").cloned();
        let body = response.bytes().await.unwrap();
        let trailers = String::from_utf8_lossy(&body);
        match head {
            Some(code) => assert_eq!(code, "13", "{fault:?}"),
            None => assert!(trailers.contains("grpc-status:13"), "{fault:?}: {trailers}"),
        }
        assert!(
            !trailers.contains("grpc-status:abc"),
            "{fault:?}: {trailers}"
        );

        // Transcoded: the backend's fault, named.
        let (status, message) = rest_failure(&gateway).await;
        assert_eq!(status, 502, "{fault:?}");
        assert!(message.contains(what), "{fault:?}: {message}");
    }
}

/// Trailers of 40 KB (a backend echoing large headers into them) arrive
/// whole: the status after them is read, not lost with them as past the
/// 16 KiB hyper's client takes, where the status went missing.
#[tokio::test]
async fn large_trailers_keep_their_status() {
    let gateway = gateway(Fault::LargeTrailers).await;
    let response = rest_echo(&gateway).await;
    assert_eq!(response.status(), 403);
    let big = response
        .headers()
        .get("grpc-trailer-x-big")
        .map(|v| v.len());
    assert_eq!(big, Some(40_000));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "no", "{body}");
    let body = passthrough_web(&gateway, "/kitchen.v1.Kitchen/Echo").await;
    let trailers = String::from_utf8_lossy(&body[HI.len() + 5..]);
    assert!(trailers.contains("grpc-status:7"), "{trailers:.200}");
}

/// A message that does not decompress as the backend's `grpc-encoding`
/// says is the backend's fault: a 502 naming it, not tonic's 500.
#[tokio::test]
async fn a_message_that_does_not_decompress_is_a_bad_gateway() {
    let gateway = gateway(Fault::NotGzip).await;
    let (status, message) = rest_failure(&gateway).await;
    assert_eq!(status, 502);
    assert!(
        message.contains("upstream `default`") && message.contains("does not decompress"),
        "{message}"
    );
}

/// A backend that has answered gRPC and then resets a call is a gRPC
/// server: the error names the reset, without asking whether it is one.
#[tokio::test]
async fn a_reset_after_answers_is_not_blamed_on_the_url() {
    let gateway = gateway(Fault::ResetAfterFirst).await;
    let call = || {
        support::http1()
            .post(gateway.url("/v1/echo"))
            .json(&json!({"s": "x"}))
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    let response = call().await.unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains("is it a gRPC server"), "{message}");
    assert!(message.contains("upstream `default`"), "{message}");
}

/// A unary call that fails after the backend's response headers keeps
/// them, as one that succeeds: REST as `Grpc-Metadata-*`, Connect under
/// their own names (the trailers as `Grpc-Trailer-*`, `trailer-*`).
#[tokio::test]
async fn a_failed_call_keeps_the_response_headers() {
    let gateway = gateway(Fault::HeadersThenError).await;
    let response = rest_echo(&gateway).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["grpc-metadata-x-shard"], "s-3");
    assert_eq!(response.headers()["grpc-trailer-x-cost"], "12");

    let response = connect_echo(&gateway).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-shard"], "s-3");
    assert_eq!(response.headers()["trailer-x-cost"], "12");
}
