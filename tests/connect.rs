//! The Connect protocol on the REST port, as connect-es and connect-go
//! clients speak it: unary JSON and binary, errors with details, server
//! streams in envelopes, deadlines, and the REST fallback route on the
//! same path.

mod support;

use base64::Engine as _;
use bytes::{Buf, Bytes};
use prost::Message as _;
use protogate::demo::pb;
use serde_json::{Value, json};
use support::TestGateway;

async fn demo() -> (protogate::demo::Backend, TestGateway) {
    let backend = protogate::demo::Backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = protogate::demo::config("127.0.0.1:0".parse().unwrap(), backend.addr());
    (backend, TestGateway::start(config).await)
}

fn connect_json(gateway: &TestGateway, method: &str, body: Value) -> reqwest::RequestBuilder {
    support::http1()
        .post(gateway.url(&format!("/protogate.demo.v1.Bookshop/{method}")))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(body.to_string())
}

fn envelopes(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while body.has_remaining() {
        let flags = body.get_u8();
        let len = body.get_u32() as usize;
        out.push((flags, body.split_to(len)));
    }
    out
}

/// Unary JSON: the message in, the message out.
#[tokio::test]
async fn unary_json() {
    let (_backend, gateway) = demo().await;
    let response = connect_json(
        &gateway,
        "GetBook",
        json!({"name": "shelves/fiction/books/dune"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let book: Value = response.json().await.unwrap();
    assert_eq!(book["title"], "Dune");
    assert_eq!(book["sku"], "9780441013593");
}

/// Unary binary: protobuf bytes in and out, untouched.
#[tokio::test]
async fn unary_proto() {
    let (_backend, gateway) = demo().await;
    let request = pb::GetBookRequest {
        name: "shelves/science/books/cosmos".into(),
    };
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/GetBook"))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/proto");
    let book = pb::Book::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(book.author, "Carl Sagan");
}

/// A server stream passes the backend's headers as response headers and
/// its trailers as the end-of-stream message's `metadata`, on success and
/// on failure, as a unary call passes them (Connect's places for them).
#[tokio::test]
async fn server_streams_carry_the_backends_metadata() {
    let (_backend, gateway) = support::gateway::kitchen(|_| {}).await;
    let watch = |extra: &[(&str, &str)]| {
        let mut request = support::http1()
            .post(gateway.url("/kitchen.v1.Kitchen/Watch"))
            .header("content-type", "application/connect+json")
            .header("x-echo-count", "2")
            .header("x-echo-header-a", "hv")
            .header("x-echo-trailer-b", "tv");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.body(support::envelope(0, br#"{"s":"x"}"#))
    };
    let response = watch(&[]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["a"], "hv");
    let frames = envelopes(response.bytes().await.unwrap());
    assert_eq!(frames.len(), 3, "{frames:?}");
    let (flags, end) = &frames[2];
    assert_eq!(*flags, 0x02);
    let end: Value = serde_json::from_slice(end).unwrap();
    assert_eq!(end, json!({"metadata": {"b": ["tv"]}}));

    let response = watch(&[("x-echo-fail-after", "1")]).send().await.unwrap();
    assert_eq!(response.headers()["a"], "hv");
    let frames = envelopes(response.bytes().await.unwrap());
    let end: Value = serde_json::from_slice(&frames.last().unwrap().1).unwrap();
    assert!(end["error"]["code"].is_string(), "{end}");
    assert_eq!(end["metadata"], json!({"b": ["tv"]}), "{end}");
}

/// A procedure the gateway does not serve is `unimplemented`, as a gRPC
/// client is told, with Connect's HTTP status for it (501), unary and
/// streaming alike.
#[tokio::test]
async fn unknown_procedures_are_unimplemented() {
    let (_backend, gateway) = demo().await;
    let response = connect_json(&gateway, "Nope", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "unimplemented", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("/protogate.demo.v1.Bookshop/Nope"),
        "{error}"
    );
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/Nope"))
        .header("content-type", "application/connect+json")
        .body(support::envelope(0, b"{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let frames = envelopes(response.bytes().await.unwrap());
    let end: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert_eq!(end["error"]["code"], "unimplemented", "{end}");
}

/// Errors: the HTTP status of the code, a string code, details as type
/// name and base64 bytes.
#[tokio::test]
async fn unary_errors_in_connect_shape() {
    let (_backend, gateway) = demo().await;
    let response = connect_json(
        &gateway,
        "GetBook",
        json!({"name": "shelves/fiction/books/none"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    // The backend's own response headers are not passed on as metadata.
    let passed: Vec<&str> = response
        .headers()
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("trailer-"))
        .collect();
    assert!(
        passed.iter().all(
            |name| !matches!(*name, "trailer-content-type" | "trailer-date")
                && !name.starts_with("trailer-grpc-")
        ),
        "{passed:?}"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "not_found");
    assert_eq!(
        error["message"],
        "book `shelves/fiction/books/none` not found"
    );
    assert_eq!(error["details"][0]["type"], "google.rpc.ResourceInfo");
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(error["details"][0]["value"].as_str().unwrap())
        .unwrap();
    let info = pb::google::rpc::ResourceInfo::decode(bytes.as_slice()).unwrap();
    assert_eq!(info.resource_name, "shelves/fiction/books/none");

    // A request the gateway cannot build is invalid_argument, 400.
    let response = connect_json(&gateway, "GetBook", json!({"name": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "invalid_argument"
    );
}

/// Server streaming: one envelope in, message envelopes out, then the
/// end-of-stream envelope.
#[tokio::test]
async fn server_stream_in_envelopes() {
    let (_backend, gateway) = demo().await;
    let request = json!({"shelf": "shelves/science", "intervalMs": 1}).to_string();
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
        .header("content-type", "application/connect+json")
        .header("connect-protocol-version", "1")
        .body(support::envelope(0, request.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/connect+json"
    );
    let frames = envelopes(response.bytes().await.unwrap());
    assert_eq!(frames.len(), 3);
    let titles: Vec<String> = frames[..2]
        .iter()
        .map(|(flags, payload)| {
            assert_eq!(*flags, 0);
            serde_json::from_slice::<Value>(payload).unwrap()["book"]["title"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(titles, ["Cosmos", "On the Origin of Species"]);
    assert_eq!(frames[2].0, 0x02);
    assert_eq!(
        serde_json::from_slice::<Value>(&frames[2].1).unwrap(),
        json!({})
    );

    // Binary too.
    let request = pb::WatchShelfRequest {
        shelf: "shelves/fiction".into(),
        interval_ms: 1,
        max_events: 1,
    };
    let body = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
        .header("content-type", "application/connect+proto")
        .body(support::envelope(0, &request.encode_to_vec()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let frames = envelopes(body);
    let event = pb::BookEvent::decode(frames[0].1.clone()).unwrap();
    assert_eq!(event.book.unwrap().title, "Dune");
    assert_eq!(frames.last().unwrap().0, 0x02);
}

/// A stream that fails is still HTTP 200: the error is in the last
/// envelope.
#[tokio::test]
async fn stream_errors_end_the_stream() {
    let (_backend, gateway) = demo().await;
    let request = json!({"shelf": "shelves/none"}).to_string();
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
        .header("content-type", "application/connect+json")
        .body(support::envelope(0, request.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let frames = envelopes(response.bytes().await.unwrap());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 0x02);
    let end: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert_eq!(end["error"]["code"], "not_found");
}

/// DECISIONS.md: on a `/package.Service/Method` path, a request with
/// `Connect-Protocol-Version` is Connect; other JSON POSTs are the REST
/// fallback route. The error shapes tell them apart.
#[tokio::test]
async fn connect_and_the_rest_fallback_share_a_path() {
    let (_backend, gateway) = demo().await;
    let url = gateway.url("/protogate.demo.v1.Bookshop/CountBooks");
    let client = support::http1();
    let rest: Value = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"parent": "shelves/fiction"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connect: Value = client
        .post(&url)
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"parent": "shelves/fiction"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest, json!({"count": "3"}));
    assert_eq!(connect, rest);
    let rest_error: Value = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"parent": 1}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connect_error: Value = client
        .post(&url)
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"parent": 1}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest_error["code"], 3);
    assert_eq!(connect_error["code"], "invalid_argument");
}

/// `Connect-Timeout-Ms` bounds the call: past it, deadline_exceeded (504).
#[tokio::test]
async fn connect_timeout() {
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    );
    let backend = support::EchoBackend::start(support::pool(&set)).await;
    let gateway = TestGateway::for_set(&set, &backend.url()).await;
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("connect-timeout-ms", "200")
        .header("x-echo-delay-ms", "3000")
        .body(r#"{"s": "slow"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "deadline_exceeded"
    );
    // Custom headers reach the backend as metadata under their own names.
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("x-tenant", "acme")
        .body(r#"{"s": "fast"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"s": "fast"})
    );
    let record = backend.last();
    assert_eq!(record.metadata.get("x-tenant").unwrap(), "acme");
    assert!(record.metadata.get("connect-protocol-version").is_none());
}

/// A server-stream request may come compressed (flag 0x01) in any coding
/// the gateway decodes, named by `Connect-Content-Encoding`, as connect-es
/// sends it with `sendCompression`.
#[tokio::test]
async fn compressed_stream_requests() {
    use std::io::Write as _;

    let (_backend, gateway) = demo().await;
    let request = json!({"shelf": "shelves/science", "intervalMs": 1}).to_string();
    let gzip = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(request.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let br = {
        let mut encoder = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        encoder.write_all(request.as_bytes()).unwrap();
        encoder.into_inner()
    };
    let zstd = zstd::encode_all(request.as_bytes(), 3).unwrap();
    for (coding, payload) in [("gzip", gzip), ("br", br), ("zstd", zstd)] {
        let response = support::http1()
            .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .header("connect-content-encoding", coding)
            .body(support::envelope(0x01, &payload))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{coding}");
        let frames = envelopes(response.bytes().await.unwrap());
        let last: Value = serde_json::from_slice(&frames.last().unwrap().1).unwrap();
        assert_eq!(last, json!({}), "{coding}: the stream ends cleanly");
        assert_eq!(frames.len(), 3, "{coding}: two books, then the end");
    }

    // A coding the gateway does not decode: an error that says so.
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
        .header("content-type", "application/connect+json")
        .header("connect-content-encoding", "snappy")
        .body(support::envelope(0x01, b"not snappy"))
        .send()
        .await
        .unwrap();
    let frames = envelopes(response.bytes().await.unwrap());
    assert_eq!(frames.len(), 1);
    let end: Value = serde_json::from_slice(&frames[0].1).unwrap();
    let message = end["error"]["message"].as_str().unwrap();
    assert!(message.contains("snappy"), "{message}");
    // The Connect protocol: an unsupported compression is `unimplemented`.
    assert_eq!(end["error"]["code"], "unimplemented");

    // Flagged compressed with no coding named: an error that says so.
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
        .header("content-type", "application/connect+json")
        .body(support::envelope(0x01, b"{}"))
        .send()
        .await
        .unwrap();
    let frames = envelopes(response.bytes().await.unwrap());
    let end: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert_eq!(end["error"]["code"], "invalid_argument");
    let message = end["error"]["message"].as_str().unwrap();
    assert!(message.contains("no Connect-Content-Encoding"), "{message}");

    // The request envelope is held to the request's rules, as on gRPC:
    // a coding it does not know is refused even on an uncompressed
    // message, flags other than 0x01 are no request's (also where the
    // body is bare JSON, not enveloped: its `{` is no flags byte, and its
    // next four characters no length), and a length past the body limit
    // is resource_exhausted.
    let request = json!({"shelf": "shelves/science"}).to_string();
    let mut huge = vec![0u8];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    let cases: [(Option<&str>, Vec<u8>, &str, &str); 5] = [
        (
            Some("lzw"),
            support::envelope(0, request.as_bytes()).to_vec(),
            "unimplemented",
            "Connect-Content-Encoding `lzw`",
        ),
        (
            None,
            support::envelope(0x02, request.as_bytes()).to_vec(),
            "invalid_argument",
            "flags",
        ),
        (
            None,
            support::envelope(0x80, request.as_bytes()).to_vec(),
            "invalid_argument",
            "flags",
        ),
        (None, huge, "resource_exhausted", "larger"),
        (
            None,
            request.as_bytes().to_vec(),
            "invalid_argument",
            "is the body enveloped?",
        ),
    ];
    for (coding, body, code, named) in cases {
        let mut request = support::http1()
            .post(gateway.url("/protogate.demo.v1.Bookshop/WatchShelf"))
            .header("content-type", "application/connect+json");
        if let Some(coding) = coding {
            request = request.header("connect-content-encoding", coding);
        }
        let response = request.body(body).send().await.unwrap();
        let frames = envelopes(response.bytes().await.unwrap());
        assert_eq!(frames.len(), 1, "{named}");
        let end: Value = serde_json::from_slice(&frames[0].1).unwrap();
        assert_eq!(end["error"]["code"], code, "{end}");
        let message = end["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
}

/// A proto with a side-effect-free method (GET-able) and a plain one,
/// served by the echo backend behind the gateway.
async fn echo_gateway(
    tweak: impl FnOnce(&mut protogate::Config),
) -> (support::EchoBackend, TestGateway) {
    let set = support::compile_source(
        "lookup.proto",
        "syntax = \"proto3\"; package lookup.v1;\n\
         message Key { string name = 1; }\n\
         service Lookup {\n\
           rpc Find(Key) returns (Key) { option idempotency_level = NO_SIDE_EFFECTS; }\n\
           rpc Put(Key) returns (Key);\n\
         }\n",
    );
    let backend = support::EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

/// The URL of a Connect GET of `method` with `query`, percent-encoded.
fn get_url(gateway: &TestGateway, method: &str, query: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let query: Vec<String> = query
        .iter()
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    gateway.url(&format!("/lookup.v1.Lookup/{method}?{}", query.join("&")))
}

/// Connect GET: each of Connect's parameters once (a second `message`
/// was taken over the first without a word), and `base64` as 1 or left
/// out (`base64=2` read the message as not base64).
#[tokio::test]
async fn unary_get_parameters_once_and_as_defined() {
    let (backend, gateway) = echo_gateway(|_| {}).await;
    for (query, needle) in [
        (
            &[
                ("connect", "v1"),
                ("encoding", "json"),
                ("message", "{}"),
                ("message", r#"{"name": "x"}"#),
            ][..],
            "`message`",
        ),
        (
            &[
                ("connect", "v1"),
                ("encoding", "json"),
                ("base64", "2"),
                ("message", "{}"),
            ][..],
            "`base64`",
        ),
    ] {
        let response = support::http1()
            .get(get_url(&gateway, "Find", query))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_argument", "{query:?}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query:?}: {message}");
    }
    assert!(backend.records().is_empty());
}

/// Connect GET: side-effect-free unary methods take the message from the
/// query (JSON or base64 protobuf); other methods answer 405 in Connect's
/// error shape; a GET without its message is `invalid_argument`.
#[tokio::test]
async fn unary_get() {
    let (_backend, gateway) = echo_gateway(|_| {}).await;
    let client = support::http1();
    let response = client
        .get(get_url(
            &gateway,
            "Find",
            &[
                ("connect", "v1"),
                ("encoding", "json"),
                ("message", r#"{"name": "a b+c"}"#),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"name": "a b+c"})
    );

    let message = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"\x0a\x02hi");
    let response = client
        .get(get_url(
            &gateway,
            "Find",
            &[
                ("encoding", "proto"),
                ("base64", "1"),
                ("message", &message),
            ],
        ))
        .header("connect-protocol-version", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"\x0a\x02hi");

    let response = client
        .get(get_url(
            &gateway,
            "Put",
            &[("connect", "v1"), ("encoding", "json"), ("message", "{}")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "unimplemented");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("NO_SIDE_EFFECTS"), "{message}");
    // The served method is named whole.
    assert!(
        message.contains("call /lookup.v1.Lookup/Put with POST"),
        "{message}"
    );

    let response = client
        .get(gateway.url("/lookup.v1.Lookup/Find"))
        .header("connect-protocol-version", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "invalid_argument");
}

/// Only Connect protocol version 1 is spoken; Connect's own code → HTTP
/// table applies (`resource_exhausted` is 429, not REST's 413).
#[tokio::test]
async fn protocol_version_and_http_statuses() {
    let (_backend, gateway) = echo_gateway(|c| c.limits.max_body_bytes = 64).await;
    let client = support::http1();
    let response = client
        .post(gateway.url("/lookup.v1.Lookup/Find"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "2")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "invalid_argument");
    assert!(error["message"].as_str().unwrap().contains("version"));

    let large = json!({"name": "x".repeat(100)}).to_string();
    let response = client
        .post(gateway.url("/lookup.v1.Lookup/Find"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "resource_exhausted");

    // A content type Connect does not define (also a malformed one, or
    // none): 415 with the ones it does, as connect-go answers it.
    for content_type in [Some("application/xml"), Some(";;;"), None] {
        let mut request = client
            .post(gateway.url("/lookup.v1.Lookup/Find"))
            .header("connect-protocol-version", "1")
            .body("{}");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let accept = response.headers()["accept-post"].to_str().unwrap();
        for media in [
            "application/json",
            "application/proto",
            "application/connect+json",
        ] {
            assert!(accept.contains(media), "{accept}");
        }
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_argument", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("application/proto"), "{message}");
    }
}

/// The gateway's own health answers Connect as it answers gRPC; its
/// streaming services say they are gRPC and gRPC-Web only.
#[tokio::test]
async fn own_services_over_connect() {
    let (_backend, gateway) = echo_gateway(|_| {}).await;
    let client = support::http1();
    let check = |body: &'static str| {
        client
            .post(gateway.url("/grpc.health.v1.Health/Check"))
            .header("content-type", "application/json")
            .header("connect-protocol-version", "1")
            .body(body)
    };
    let response = check("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "SERVING"})
    );
    let response = check(r#"{"service": "lookup.v1.Lookup"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "SERVING"})
    );
    let response = check(r#"{"service": "no.Such"}"#).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found");

    let response = client
        .post(gateway.url("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "unimplemented");
    assert!(error["message"].as_str().unwrap().contains("gRPC-Web"));
}

/// `limits.max_header_bytes` holds for Connect as for every face: a
/// larger header block is `resource_exhausted` (429), not sent on.
#[tokio::test]
async fn oversized_header_blocks_are_resource_exhausted() {
    let (_backend, gateway) = demo().await;
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/ListShelves"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("x-big", "a".repeat(70 << 10))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "resource_exhausted", "{body}");
}
