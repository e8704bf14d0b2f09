//! Limits: body size (413, chunked and compressed bodies included), JSON
//! depth, path length (414), query parameter count and header size (431).

use std::io::Write as _;

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, chunks, fixture_with};
use crate::support::echo::Script;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `{"s": "xxx..."}` of exactly `len` bytes.
fn body_of(len: usize) -> String {
    let body = format!(r#"{{"s": "{}"}}"#, "x".repeat(len - 9));
    assert_eq!(body.len(), len);
    body
}

/// `{"attrs": {"a": [[...]]}}` nesting `depth` levels deep.
fn nested(depth: usize) -> String {
    let arrays = depth - 2;
    format!(
        r#"{{"attrs": {{"a": {}{}}}}}"#,
        "[".repeat(arrays),
        "]".repeat(arrays)
    )
}

/// RFC 9110 §15.5.14 and DECISIONS.md: a body over `max_body_bytes` is
/// 413 (code 8), chunked bodies without Content-Length too; JSON nesting
/// past `json.max_depth` is 400.
#[tokio::test]
async fn limits_on_body_size_and_depth() {
    let f = fixture_with(|c| {
        c.limits.max_body_bytes = 1024;
        c.json.max_depth = 8;
    })
    .await;
    let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(2000));
    let (status, body) = f.post("/v1/echo", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 8);
    let deep = format!(
        "{}{}",
        r#"{"attrs": {"a": "#.to_owned() + &"[".repeat(10),
        "]".repeat(10) + "}}"
    );
    assert_bad_request(f.post("/v1/echo", &deep).await, "nests deeper than 8");
    // Chunked bodies (no Content-Length) are capped too.
    let response = f
        .client
        .post(f.gateway.url("/v1/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks(big.into_bytes())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// RFC 9110 §15.5.14: the limit is exact: a body of `max_body_bytes`
/// passes, one byte more is 413, declared or chunked.
#[tokio::test]
async fn body_limit_is_exact() {
    let f = fixture_with(|c| c.limits.max_body_bytes = 1024).await;
    let (status, body) = f.post("/v1/echo", &body_of(1024)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["s"].as_str().unwrap().len(), 1015);
    assert_error(
        f.post("/v1/echo", &body_of(1025)).await,
        413,
        8,
        "request body is larger than 1024 bytes",
    );
    for (len, status) in [
        (1024, StatusCode::OK),
        (1025, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let response = f
            .client
            .post(f.gateway.url("/v1/echo"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks(
                body_of(len).into_bytes(),
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "chunked {len}");
    }
    assert_eq!(f.backend.records().len(), 2);
}

/// DECISIONS.md (README "limits"): the body limit counts decoded bytes, so
/// a small gzip body that inflates past it is 413, one that stays within
/// it passes.
#[tokio::test]
async fn compressed_bodies_count_their_decoded_size() {
    let f = fixture_with(|c| c.limits.max_body_bytes = 4096).await;
    let fits = gzip(body_of(4000).as_bytes());
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[("content-encoding", "gzip")],
            fits,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let over = gzip(body_of(5000).as_bytes());
    assert!(over.len() < 200, "compressed to {} bytes", over.len());
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[("content-encoding", "gzip")],
            over.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json(),
        json!({"code": 8, "message": "request body is larger than 4096 bytes", "details": []})
    );
    // Chunked and compressed.
    let response = f
        .client
        .post(f.gateway.url("/v1/echo"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(chunks(over)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(f.backend.records().len(), 1);
}

/// DECISIONS.md (README `json.max_depth`): nesting up to the limit passes,
/// one level more is 400; brackets inside strings do not count; body-field
/// routes are limited the same way.
#[tokio::test]
async fn json_depth_limit_is_exact() {
    let f = fixture_with(|c| c.json.max_depth = 8).await;
    let (status, body) = f.post("/v1/echo", &nested(8)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        f.post("/v1/echo", &nested(9)).await,
        400,
        3,
        "JSON body nests deeper than 8 levels",
    );
    let in_string = format!(r#"{{"s": "{}"}}"#, "[{".repeat(50));
    let (status, _) = f.post("/v1/echo", &in_string).await;
    assert_eq!(status, StatusCode::OK);
    let value = format!("{}{}", "[".repeat(9), "]".repeat(9));
    assert_error(
        f.post("/v1/echo/value", &value).await,
        400,
        3,
        "JSON body nests deeper than 8 levels",
    );
}

/// RFC 9110 §15.5.15 and DECISIONS.md: a path longer than
/// `max_path_bytes` is 414 (code 3); a path of exactly the limit is routed
/// as usual; the query does not count.
#[tokio::test]
async fn path_length_limit_is_414() {
    let f = fixture_with(|c| c.limits.max_path_bytes = 32).await;
    let at_limit = format!("/v1/objects/{}/b", "a".repeat(32 - 14));
    assert_eq!(at_limit.len(), 32);
    let (status, body) = f.get(&format!("{at_limit}?tags={}", "q".repeat(200))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let over = format!("/v1/objects/{}/b", "a".repeat(33 - 14));
    assert_error(
        f.get(&over).await,
        414,
        3,
        "request path is longer than 32 bytes",
    );
    // Percent-escapes count as sent.
    let escaped = format!("/v1/objects/{}a/b", "%41".repeat(6));
    assert_eq!(escaped.len(), 33);
    assert_eq!(f.get(&escaped).await.0, StatusCode::URI_TOO_LONG);
    assert_eq!(f.backend.records().len(), 1);
}

/// DECISIONS.md (README `max_query_params`): more query parameters than
/// the limit is a 400; the limit itself passes, and empty pairs do not
/// count.
#[tokio::test]
async fn query_parameter_count_limit() {
    let f = fixture_with(|c| c.limits.max_query_params = 3).await;
    let (status, body) = f.get("/v1/echo?tags=a&&tags=b&tags=c&").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tags": ["a", "b", "c"]}))
    );
    assert_error(
        f.get("/v1/echo?tags=a&tags=b&tags=c&tags=d").await,
        400,
        3,
        "more than 3 query parameters",
    );
}

/// DECISIONS.md: a header block over `max_header_bytes` is refused with
/// 431 (RFC 6585 §5) before routing; the backend is never called.
#[tokio::test]
async fn oversized_headers_are_431() {
    let f = fixture_with(|c| c.limits.max_header_bytes = 8192).await;
    let big = "h".repeat(10_000);
    for client in [crate::support::http1(), crate::support::http2()] {
        let response = client
            .get(f.gateway.url("/v1/echo"))
            .header("x-big", &big)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{:?}",
            response.version()
        );
    }
    // Under the limit is fine.
    let reply = f
        .call(
            "GET",
            "/v1/echo?s=x",
            None,
            &[("x-big", &"h".repeat(4000))],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(f.backend.records().len(), 1);
}

/// DECISIONS.md: every gateway-raised error, 431 included (code 8), has
/// the google.rpc.Status JSON body.
#[tokio::test]
async fn oversized_headers_answer_a_status_body() {
    let f = fixture_with(|c| c.limits.max_header_bytes = 8192).await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("x-big", &"h".repeat(10_000))],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["code"], 8, "{body}");
    assert_eq!(body["details"], json!([]));
}

/// README `max_headers`: more header fields than the limit is a 431 with
/// the google.rpc.Status body (up to twice the limit; past that the HTTP
/// layer's own bare 431); the limit itself passes.
#[tokio::test]
async fn header_count_limit_is_431_with_a_status_body() {
    let f = fixture_with(|c| c.limits.max_headers = 20).await;
    let headers = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("x-h{i}"), "v".to_owned()))
            .collect()
    };
    let send = async |extra: Vec<(String, String)>| {
        let mut request = f.client.get(f.gateway.url("/v1/echo?s=x"));
        for (k, v) in extra {
            request = request.header(k, v);
        }
        request.send().await.unwrap()
    };
    // reqwest adds `accept` and `host`: 18 + 2 is the limit.
    assert_eq!(send(headers(18)).await.status(), StatusCode::OK);
    let response = send(headers(25)).await;
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 8, "message": "request has more than 20 header fields", "details": []})
    );
}

/// `Any` packed in `Any`, `levels` deep, around a zero `Duration`.
fn nested_any(levels: usize) -> prost_types::Any {
    use prost::Message as _;
    let mut any = prost_types::Any {
        type_url: "type.googleapis.com/google.protobuf.Duration".to_owned(),
        value: Vec::new(),
    };
    for _ in 0..levels {
        any = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Any".to_owned(),
            value: any.encode_to_vec(),
        };
    }
    any
}

/// A `Sink` whose `detail` (field 35) holds `any`.
fn sink_with_detail(any: &prost_types::Any) -> bytes::Bytes {
    let mut out = Vec::new();
    prost::encoding::message::encode(35, any, &mut out);
    out.into()
}

/// An `Any` holds its message as bytes, decoded only while writing JSON:
/// a backend nesting `Any` in `Any` thousands deep must get a 502, not
/// overflow the gateway's stack; nesting within the limit is written.
#[tokio::test]
async fn nested_any_in_responses_is_bounded() {
    let f = fixture_with(|_| {}).await;
    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&nested_any(20_000))),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("nest more than 100 levels"), "{body}");

    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&nested_any(3))),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let any = &body["detail"];
    assert_eq!(any["@type"], "type.googleapis.com/google.protobuf.Any");
    assert_eq!(
        any["value"]["value"]["value"]["@type"],
        "type.googleapis.com/google.protobuf.Duration"
    );

    // The same nesting in an error's details is written as bytes.
    f.backend.script(Script {
        error: Some((tonic::Code::NotFound, "gone".to_owned(), Vec::new())),
        raw_details: Some(nested_any(150)),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = &body["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.protobuf.Any");
    assert!(detail["value"].as_str().unwrap().len() > 5_000, "{body}");
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    e.write_all(bytes).unwrap();
    drop(e);
    out
}

/// RFC 9110 §8.4: the body is decoded whole. gzip members (RFC 1952 §2.2)
/// and zstd frames all count; a truncated stream or bytes after its end are
/// a 400, never dropped; a coding the gateway does not decode, or several
/// stacked, is a 415 (RFC 9110 §15.5.16).
#[tokio::test]
async fn compressed_bodies_are_decoded_whole_or_refused() {
    let f = fixture_with(|_| {}).await;
    let post = async |encoding: &str, body: Vec<u8>| {
        f.call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[("content-encoding", encoding)],
            body,
        )
        .await
    };
    // One JSON body split over two gzip members, and over two zstd frames.
    let mut members = gzip(br#"{"s": "first "#);
    members.extend(gzip(br#"second"}"#));
    let mut frames = zstd::encode_all(&br#"{"s": "first "#[..], 3).unwrap();
    frames.extend(zstd::encode_all(&br#"second"}"#[..], 3).unwrap());
    for (encoding, body) in [
        ("gzip", members),
        ("zstd", frames),
        ("br", brotli(br#"{"s": "first second"}"#)),
    ] {
        let reply = post(encoding, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{encoding}: {}", reply.text);
        assert_eq!(reply.json(), json!({"s": "first second"}), "{encoding}");
    }
    let whole = |encoding: &str| match encoding {
        "gzip" => gzip(br#"{"s": "x"}"#),
        "br" => brotli(br#"{"s": "x"}"#),
        _ => zstd::encode_all(&br#"{"s": "x"}"#[..], 3).unwrap(),
    };
    for encoding in ["gzip", "br", "zstd"] {
        let mut trailing = whole(encoding);
        trailing.extend_from_slice(b"{\"s\": \"smuggled\"}");
        let mut truncated = whole(encoding);
        truncated.truncate(truncated.len() - 4);
        for bad in [trailing, truncated, b"plain text".to_vec()] {
            let reply = post(encoding, bad).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{encoding}: {}",
                reply.text
            );
            let message = reply.json()["message"].as_str().unwrap().to_owned();
            assert!(
                message.starts_with(&format!("the request body is not valid {encoding}")),
                "{message}"
            );
        }
    }
    for encoding in ["compress", "deflate", "gzip, br"] {
        let reply = post(encoding, whole("gzip")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{encoding}"
        );
        assert_eq!(reply.json()["code"], 3);
    }
    assert_eq!(f.backend.records().len(), 3);
    // A request stream cannot wait for a compressor's blocks: 415.
    let reply = f
        .call(
            "POST",
            "/v1/collect",
            Some("application/json"),
            &[("content-encoding", "gzip")],
            whole("gzip"),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        reply.text
    );
    assert!(reply.text.contains("request stream"), "{}", reply.text);
    assert!(
        reply.text.contains("must be sent uncompressed") && !reply.text.contains("send gzip"),
        "{}",
        reply.text
    );
    assert_eq!(reply.headers["accept-encoding"], "identity");
}

/// The shared body budget (`limits.max_buffered_body_bytes`) counts the
/// bytes requests hold, as they arrive: a declared `Content-Length` holds
/// nothing, many small chunks hold their size, and a budget in use gives
/// 503 (code 14) until it is released.
#[tokio::test]
async fn body_budget_counts_bytes_held() {
    use tokio::io::AsyncWriteExt as _;
    let f = fixture_with(|c| {
        c.limits.max_body_bytes = 8000;
        c.limits.max_buffered_body_bytes = 10_000;
    })
    .await;
    // A client that declares a large body and sends a little of it.
    let mut slow = tokio::net::TcpStream::connect(f.gateway.addr())
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 8000\r\n\r\n{\"s\": \"",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // 7000 bytes in 1-byte chunks still fit beside it.
    let response = f
        .client
        .post(f.gateway.url("/v1/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            body_of(7000)
                .into_bytes()
                .into_iter()
                .map(|b| Ok::<_, std::io::Error>(vec![b])),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The slow client now holds 5007 bytes: 6000 more do not fit.
    slow.write_all(&[b'x'; 5000]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = f.post("/v1/echo", &body_of(6000)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 14);
    // Once it is gone, they do.
    drop(slow);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = f.post("/v1/echo", &body_of(6000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The answer to a request message nesting past protobuf's 100 levels.
const TOO_DEEP: &str =
    "request message nests deeper than 100 levels, which protobuf decoders refuse";

/// README (bodies): a message that would nest past protobuf's 100 levels
/// is a 400 with one message, however the nesting is reached: `Value`
/// and `ListValue` (two levels per JSON array), `Struct` (a map entry
/// more), a body field, an `Any` packing a `Value`, the case-insensitive
/// parser, a Connect call. Up to the limit the request goes through.
#[tokio::test]
async fn every_message_past_100_levels_gets_the_documented_400() {
    let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let any = "type.googleapis.com/google.protobuf.Value";
    // A body for `n` arrays, and how many levels below the request
    // message it nests (packed in an Any: the Any, then the Value).
    type Shape = (&'static str, fn(&str, &str) -> String, fn(usize) -> usize);
    let shapes: [Shape; 6] = [
        (
            "/v1/echo",
            |a, _| format!(r#"{{"anyValue": {a}}}"#),
            |n| 2 * n,
        ),
        (
            "/v1/echo",
            |a, _| format!(r#"{{"list": {a}}}"#),
            |n| 2 * n - 1,
        ),
        (
            "/v1/echo",
            |a, _| format!(r#"{{"attrs": {{"a": {a}}}}}"#),
            |n| 2 * n + 2,
        ),
        ("/v1/echo/value", |a, _| a.to_owned(), |n| 2 * n),
        (
            "/v1/echo/attrs",
            |a, _| format!(r#"{{"a": {a}}}"#),
            |n| 2 * n + 2,
        ),
        (
            "/v1/echo",
            |a, t| format!(r#"{{"detail": {{"@type": "{t}", "value": {a}}}}}"#),
            |n| 2 * n + 1,
        ),
    ];
    for lenient in [false, true] {
        let f = fixture_with(|c| {
            c.json.max_depth = 127;
            c.json.case_insensitive_fields = lenient;
        })
        .await;
        for n in (45..=60).chain([100, 120]) {
            for (path, body, levels) in &shapes {
                let body = body(&arrays(n), any);
                let reply = f
                    .call(
                        "POST",
                        path,
                        Some("application/json"),
                        &[],
                        body.into_bytes(),
                    )
                    .await;
                let past = levels(n) > 100;
                let case = format!("{path} {n} arrays (lenient: {lenient}): {}", reply.text);
                if past {
                    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
                    assert_eq!(
                        reply.json(),
                        json!({"code": 3, "message": TOO_DEEP, "details": []}),
                        "{case}"
                    );
                } else {
                    assert_eq!(reply.status, StatusCode::OK, "{case}");
                }
            }
        }
    }
    // Connect's JSON bodies keep the same limit.
    let f = fixture_with(|c| c.json.max_depth = 127).await;
    for (n, status) in [(49, 200), (50, 400), (60, 400)] {
        let body = format!(r#"{{"attrs": {{"a": {}}}}}"#, arrays(n));
        let reply = f
            .call(
                "POST",
                "/kitchen.v1.Kitchen/Echo",
                Some("application/json"),
                &[("connect-protocol-version", "1")],
                body.into_bytes(),
            )
            .await;
        assert_eq!(reply.status, status, "Connect, {n} arrays: {}", reply.text);
        if status == 400 {
            assert_eq!(
                reply.json(),
                json!({"code": "invalid_argument", "message": TOO_DEEP}),
                "Connect, {n} arrays"
            );
        }
    }
}

/// README (bodies): the messages an `Any` packs count toward the 100
/// levels, as they do when a backend unpacks them: a `Struct` 40 levels
/// deep is the documented 400 packed in `detail` as in `attrs`, and so is
/// a chain of `Any`, each packing a `Sink` whose `detail` holds the next,
/// past 50 links (the 50th packs its `Sink` at level 100) — on a REST
/// body with either parser, a Connect call and a streamed message. Within
/// the limit the request goes through and comes back as sent.
#[tokio::test]
async fn messages_packed_in_any_count_toward_the_100_levels() {
    let objects = |n: usize| format!("{}{{}}{}", r#"{"a": "#.repeat(n - 1), "}".repeat(n - 1));
    let in_any = |n: usize| {
        format!(
            r#"{{"detail": {{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}}}"#,
            objects(n)
        )
    };
    let chain = |n: usize| {
        let link = r#"{"@type": "type.googleapis.com/kitchen.v1.Sink", "detail": "#;
        format!(
            r#"{{"detail": {}{{"@type": "type.googleapis.com/kitchen.v1.Sink", "s": "end"}}{}}}"#,
            link.repeat(n - 1),
            "}".repeat(n - 1)
        )
    };
    let refused = [
        format!(r#"{{"attrs": {}}}"#, objects(40)),
        in_any(40),
        chain(51),
        chain(60),
    ];
    let passed = [in_any(10), chain(3), chain(50)];
    for lenient in [false, true] {
        let f = fixture_with(|c| c.json.case_insensitive_fields = lenient).await;
        for body in &refused {
            let reply = f
                .call(
                    "POST",
                    "/v1/echo",
                    Some("application/json"),
                    &[],
                    body.clone().into_bytes(),
                )
                .await;
            let case = format!("(lenient: {lenient}) {body}: {}", reply.text);
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
            assert_eq!(
                reply.json(),
                json!({"code": 3, "message": TOO_DEEP, "details": []}),
                "{case}"
            );
        }
        assert!(f.backend.records().is_empty(), "(lenient: {lenient})");
        for body in &passed {
            let (status, echoed) = f.post("/v1/echo", body).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "(lenient: {lenient}) {body}: {echoed}"
            );
            let sent: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(echoed, sent, "(lenient: {lenient})");
        }
    }
    // A Connect call and a message of a client stream keep the same limit.
    let f = fixture_with(|_| {}).await;
    for body in &refused[1..] {
        let reply = f
            .call(
                "POST",
                "/kitchen.v1.Kitchen/Echo",
                Some("application/json"),
                &[("connect-protocol-version", "1")],
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "Connect: {}",
            reply.text
        );
        assert_eq!(
            reply.json(),
            json!({"code": "invalid_argument", "message": TOO_DEEP}),
            "Connect"
        );
        let reply = f
            .call(
                "POST",
                "/v1/collect",
                Some("application/json"),
                &[],
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "stream: {}",
            reply.text
        );
        assert_eq!(
            reply.json(),
            json!({"code": 3, "message": TOO_DEEP, "details": []}),
            "stream"
        );
    }
    assert!(f.backend.records().is_empty());
    let reply = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Echo",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            chain(50).into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "Connect: {}", reply.text);
}

/// An `Any` set but empty (no type URL, no bytes) is written `{}`, as
/// Go's and Python's writers give it, not refused for its type URL.
#[tokio::test]
async fn an_empty_any_is_an_empty_object() {
    let f = fixture_with(|_| {}).await;
    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&prost_types::Any::default())),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], serde_json::json!({}), "{body}");

    // And among an error's details.
    f.backend.script(Script {
        error: Some((tonic::Code::NotFound, "gone".to_owned(), Vec::new())),
        raw_details: Some(prost_types::Any::default()),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["details"], serde_json::json!([{}]), "{body}");
}

/// A FieldMask path that does not read back the same from its JSON name
/// (`foo_` would be written `foo`, another path) is a bad response (502),
/// not silently another path; paths that do are written.
#[tokio::test]
async fn field_mask_paths_without_a_json_form_are_refused() {
    let f = fixture_with(|_| {}).await;
    let mask = |paths: &[&str]| {
        let mask = prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        let mut out = Vec::new();
        prost::encoding::message::encode(23, &mask, &mut out);
        bytes::Bytes::from(out)
    };
    f.backend.script(Script {
        raw_response: Some(mask(&["inner.label", "foo_"])),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("FieldMask"),
        "{body}"
    );
    f.backend.script(Script {
        raw_response: Some(mask(&["inner.label", "name_wrapper"])),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mask"], "inner.label,nameWrapper");
}
