//! Empty, whitespace-only and `null` bodies, chunked or not.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{assert_bad_request, chunks, fixture};

/// DECISIONS.md: an empty body (with or without a content type) is an
/// empty message; so is a body of whitespace.
#[tokio::test]
async fn empty_body_is_an_empty_message() {
    let f = fixture().await;
    for content_type in [Some("application/json"), None] {
        let (status, body) = f.send("POST", "/v1/echo", content_type, "").await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }
    let (status, _) = f
        .send("POST", "/v1/echo", Some("application/json"), " \n ")
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// DECISIONS.md: a body of whitespace only is empty: the message holds
/// just the path-bound field.
#[tokio::test]
async fn hc12_neighbour_whitespace_body() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/things/t1:watch", " \r\n\t ").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/t1"})));
}

/// proto3 JSON: `null` for a message means unset, so a `null` body on a
/// `body: "*"` route is the empty message.
#[tokio::test]
async fn hc12_neighbour_null_body() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/things/t1:watch", " null ").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/t1"})));
}

/// DECISIONS.md: an empty or `null` body on a `body: "field"` route leaves
/// that field unset (message, repeated and scalar fields alike).
#[tokio::test]
async fn hc12_neighbour_empty_body_on_a_body_field_route() {
    let f = fixture().await;
    for path in [
        "/v1/echo/inner",
        "/v1/echo/items",
        "/v1/echo/s",
        "/v1/echo/labels",
    ] {
        for body in ["", "null", "  "] {
            let (status, got) = f.post(&format!("{path}?i32=1"), body).await;
            assert_eq!(
                (status, got),
                (StatusCode::OK, json!({"i32": 1})),
                "{path} {body:?}"
            );
        }
    }
    let (status, body) = f.post("/v1/echo/attrs", "null").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({})),
        "a Struct field is unset by null (only Value keeps it)"
    );
}

/// DECISIONS.md: a chunked body with no data is empty too (no
/// Content-Length to tell).
#[tokio::test]
async fn hc12_neighbour_chunked_empty_body() {
    let f = fixture().await;
    let response = f
        .client
        .post(f.gateway.url("/v1/things/t1:watch"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks(Vec::new())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"s": "things/t1"})
    );
    // A chunked whitespace body as well.
    let response = f
        .client
        .post(f.gateway.url("/v1/things/t1:watch"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks(b"   \n".to_vec())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"s": "things/t1"})
    );
}

/// proto3 JSON: only an empty body is an empty message; a broken one is
/// still a 400 (the body is not silently dropped).
#[tokio::test]
async fn hc12_neighbour_broken_body_is_still_400() {
    let f = fixture().await;
    for body in ["{", "nul", "nullx", "{}{}", "\"\"", "0"] {
        assert_bad_request(
            f.post("/v1/things/t1:watch", body).await,
            "invalid JSON body",
        );
    }
    assert!(f.backend.records().is_empty());
}

/// DECISIONS.md: an empty body has no type to refuse, so even a declared
/// non-JSON type is fine when there is nothing to read.
#[tokio::test]
async fn hc12_neighbour_empty_body_with_a_non_json_type() {
    let f = fixture().await;
    let (status, body) = f
        .send("POST", "/v1/things/t1:watch", Some("application/xml"), "")
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/t1"})));
}
