//! Headers to metadata: binary (`-bin`) values are base64 on HTTP and
//! bytes on gRPC; bad base64 is a 400 naming the header.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{fixture, fixture_with};

const BYTES: [u8; 5] = [0, 1, 2, 3, 255];

/// The binary metadata values the backend received under `key`.
fn bin_values(f: &crate::fixture::Fixture, key: &str) -> Vec<Vec<u8>> {
    f.backend
        .last()
        .metadata
        .get_all_bin(key)
        .iter()
        .map(|v| v.to_bytes().unwrap().to_vec())
        .collect()
}

/// gRPC PROTOCOL-HTTP2 (Binary-Header) and DECISIONS.md: a `-bin` header
/// is base64, padded or not; the backend gets the bytes, once decoded.
#[tokio::test]
async fn hc23_neighbour_padded_and_unpadded() {
    let f = fixture().await;
    for value in ["AAECA/8=", "AAECA/8"] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/json"),
                &[("grpc-metadata-trace-ctx-bin", value)],
                br#"{"s": "hi"}"#.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{value}: {}", reply.text);
        assert_eq!(bin_values(&f, "trace-ctx-bin"), [BYTES.to_vec()], "{value}");
    }
}

/// DECISIONS.md: the URL-safe alphabet (`-`, `_`) is accepted too, with or
/// without padding.
#[tokio::test]
async fn hc23_neighbour_url_safe() {
    let f = fixture().await;
    for value in ["AAECA_8", "AAECA_8=", "-_-_"] {
        let reply = f
            .call(
                "GET",
                "/v1/echo",
                None,
                &[("grpc-metadata-blob-bin", value)],
                Vec::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{value}: {}", reply.text);
        let expected = if value.starts_with('-') {
            vec![0xfb, 0xff, 0xbf]
        } else {
            BYTES.to_vec()
        };
        assert_eq!(bin_values(&f, "blob-bin"), [expected], "{value}");
    }
}

/// DECISIONS.md: a `-bin` value that is not base64 is a 400 naming the
/// header; the backend is not called.
#[tokio::test]
async fn hc23_neighbour_invalid_base64_is_400() {
    let f = fixture().await;
    for value in ["not base64!", "A", "AAECA/8*", "AA=A"] {
        let reply = f
            .call(
                "GET",
                "/v1/echo",
                None,
                &[("grpc-metadata-trace-ctx-bin", value)],
                Vec::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value}");
        let body = reply.json();
        assert_eq!(body["code"], 3, "{value}");
        assert_eq!(body["details"], json!([]));
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("header `grpc-metadata-trace-ctx-bin`: "),
            "{value}: {message}"
        );
    }
    assert!(f.backend.records().is_empty());
}

/// README "Errors": a `-bin` value that is not base64 says which
/// character at which offset, as a body or query value would.
#[tokio::test]
async fn invalid_base64_in_a_header_names_the_character() {
    let f = fixture().await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("grpc-metadata-trace-ctx-bin", "AAECA/8*")],
            Vec::new(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({
                "code": 3,
                "message": "header `grpc-metadata-trace-ctx-bin`: not base64 (character '*' at offset 7 is in neither the standard nor the URL-safe alphabet)",
                "details": []
            })
        )
    );
}

/// DECISIONS.md: only `-bin` values are base64; the same text under
/// another key is forwarded as text, unchanged.
#[tokio::test]
async fn hc23_neighbour_text_keys_stay_text() {
    let f = fixture().await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("grpc-metadata-trace-ctx", "AAECA/8=")],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let record = f.backend.last();
    assert_eq!(
        record
            .metadata
            .get("trace-ctx")
            .and_then(|v| v.to_str().ok()),
        Some("AAECA/8=")
    );
}

/// DECISIONS.md: every value of a repeated `-bin` header is decoded, in
/// order.
#[tokio::test]
async fn hc23_neighbour_repeated_binary_header() {
    let f = fixture().await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[
                ("grpc-metadata-ids-bin", "AQ=="),
                ("grpc-metadata-ids-bin", "Ag"),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(bin_values(&f, "ids-bin"), [vec![1], vec![2]]);
}

/// DECISIONS.md: headers on the `headers.forward` allow-list follow the
/// same rule: a `-bin` one is decoded from base64, a bad one is a 400.
#[tokio::test]
async fn hc23_neighbour_allow_listed_binary_header() {
    let f = fixture_with(|c| {
        c.headers.forward = vec![http::HeaderName::from_static("x-trace-bin")];
    })
    .await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("x-trace-bin", "AAECA/8")],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(bin_values(&f, "x-trace-bin"), [BYTES.to_vec()]);
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("x-trace-bin", "%%")],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("header `x-trace-bin`: "),
        "{}",
        reply.text
    );
}

/// DECISIONS.md: reserved names never become metadata, `-bin` or not
/// (`grpc-*` stays the gateway's own).
#[tokio::test]
async fn hc23_neighbour_reserved_binary_keys_are_dropped() {
    let f = fixture().await;
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[("grpc-metadata-grpc-status-details-bin", "AAECA/8=")],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(bin_values(&f, "grpc-status-details-bin").is_empty());
    assert!(f.backend.last().metadata.get("grpc-status").is_none());
}

/// README (headers to metadata): a `Grpc-Metadata-` header with nothing
/// after the prefix, or only `-bin`, has no key: a 400 naming the header
/// like every other invalid key (`Grpc-Metadata-Bad Key`'s kind), never
/// dropped unseen; the backend is not called.
#[tokio::test]
async fn empty_metadata_keys_are_400() {
    let f = fixture().await;
    for (header, value) in [
        ("grpc-metadata-", "x"),
        ("Grpc-Metadata-", ""),
        ("grpc-metadata--bin", "AAECA/8="),
        ("grpc-metadata-a%b", "x"),
    ] {
        let reply = f
            .call("GET", "/v1/echo", None, &[(header, value)], Vec::new())
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{header}");
        let body = reply.json();
        assert_eq!(body["code"], 3, "{header}");
        let message = body["message"].as_str().unwrap();
        let named = format!("header `{}`: ", header.to_ascii_lowercase());
        assert!(message.starts_with(&named), "{header}: {message}");
    }
    assert!(f.backend.records().is_empty());
}
