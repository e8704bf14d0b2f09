//! Limits: body size (413, chunked and compressed bodies included), JSON
//! depth, path length (414), query parameter count and header size (431);
//! message nesting in its own module.

use std::io::Write as _;

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, chunks, fixture_with};
use crate::support::echo::Script;

#[path = "limits/nesting.rs"]
mod nesting;

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
