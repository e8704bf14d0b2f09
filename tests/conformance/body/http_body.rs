//! HttpBody: raw bodies both ways, with their content types.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};
use crate::support::Script;

/// http.proto (with httpbody.proto): an HttpBody response is sent raw,
/// with its own content type.
#[tokio::test]
async fn http_body_response_is_raw() {
    let f = fixture().await;
    f.backend.script(Script {
        response: Some(
            json!({"content_type": "text/html; charset=utf-8", "data": "PGgxPmhpPC9oMT4="}),
        ),
        ..Script::default()
    });
    let response = f
        .client
        .get(f.gateway.url("/v1/docs/a/b.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "<h1>hi</h1>");
    assert_eq!(f.backend.last().json, json!({"name": "a/b.html"}));
}

/// http.proto (with httpbody.proto): an HttpBody request takes the raw
/// body and its content type, whatever they are.
#[tokio::test]
async fn http_body_request_takes_the_raw_body() {
    let f = fixture().await;
    let (status, _) = f
        .send(
            "POST",
            "/v1/upload",
            Some("image/png"),
            "\u{89}PNG not json",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sent = f.backend.last().json;
    assert_eq!(sent["content_type"], "image/png");
    assert_eq!(sent["data"], "wolQTkcgbm90IGpzb24=");
}

/// http.proto (with httpbody.proto): an HttpBody field takes the raw body
/// while the other fields come from the path and the query.
#[tokio::test]
async fn hc31_neighbour_http_body_field_with_path_and_query() {
    let f = fixture().await;
    let (status, body) = f
        .send(
            "POST",
            "/v1/parts/p1?part=3",
            Some("text/csv"),
            "id,score\n1,9\n",
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        f.backend.last().json,
        json!({"name": "p1", "content": {"content_type": "text/csv", "data": "aWQsc2NvcmUKMSw5Cg=="}, "part": 3})
    );
    assert_bad_request(
        f.send(
            "POST",
            "/v1/parts/p1?content.data=AA",
            Some("text/csv"),
            "x",
        )
        .await,
        "`content.data` sets a field that this route binds",
    );
}

/// DECISIONS.md: when HttpBody is the whole request (`body: "*"`), the
/// body binds every field, so the query has nothing left to set.
#[tokio::test]
async fn hc31_neighbour_whole_request_http_body_refuses_the_query() {
    let f = fixture().await;
    assert_error(
        f.send(
            "POST",
            "/v1/upload?content_type=text/csv",
            Some("text/plain"),
            "x",
        )
        .await,
        400,
        3,
        "query parameter `content_type` is not accepted: this route's body binds the whole request message",
    );
    assert!(f.backend.records().is_empty());
}

/// http.proto (with httpbody.proto): without a Content-Type the raw body
/// still goes through; `content_type` stays empty.
#[tokio::test]
async fn hc31_neighbour_empty_content_type() {
    let f = fixture().await;
    let reply = f
        .call("POST", "/v1/upload", None, &[], b"raw".to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(f.backend.last().json, json!({"data": "cmF3"}));
    let reply = f
        .call("POST", "/v1/parts/p2", None, &[], vec![0, 255, 254])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        f.backend.last().json,
        json!({"name": "p2", "content": {"data": "AP/+"}})
    );
}

/// http.proto (with httpbody.proto): the raw body is never parsed, even
/// when declared JSON (here not even valid JSON), and its content type is
/// kept verbatim, parameters included.
#[tokio::test]
async fn hc31_neighbour_json_declared_body_is_not_parsed() {
    let f = fixture().await;
    let (status, _) = f
        .send(
            "POST",
            "/v1/parts/p3",
            Some("application/json"),
            "{\"not\": json",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        f.backend.last().json["content"],
        json!({"content_type": "application/json", "data": "eyJub3QiOiBqc29u"})
    );
    let (status, _) = f
        .send(
            "POST",
            "/v1/parts/p4",
            Some("text/csv; charset=utf-8; header=present"),
            "a",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        f.backend.last().json["content"]["content_type"],
        "text/csv; charset=utf-8; header=present"
    );
}

/// RFC 9110 §8.3: an HttpBody response without a content type is sent as
/// `application/octet-stream`, its bytes untouched.
#[tokio::test]
async fn hc31_neighbour_http_body_response_without_content_type() {
    let f = fixture().await;
    f.backend.script(Script {
        response: Some(json!({"data": "AP/+"})),
        ..Script::default()
    });
    let response = f
        .client
        .get(f.gateway.url("/v1/docs/raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), [0, 255, 254]);
}
