//! `body: "field"` and `response_body`: one field is the whole body.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};

// ---------------------------------------------------------------- body "field"

/// http.proto: `body: "field"` fills one top-level field; the other fields
/// come from the path and the query.
#[tokio::test]
async fn body_field_binds_one_field_and_the_rest_comes_from_path_and_query() {
    let f = fixture().await;
    let (status, body) = f
        .send(
            "PUT",
            "/v1/echo/x/-5/GREEN?tags=a&tags=b",
            Some("application/json"),
            r#"{"label": "l", "count": 2}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"s": "x", "i64": "-5", "color": "GREEN", "tags": ["a", "b"], "inner": {"label": "l", "count": 2}})
    );
}

/// http.proto: the body field may be of any shape; the body is that
/// field's JSON value: a list, a Struct, a Value, a map, a Timestamp, a
/// string; null and empty leave it unset (a Value takes null).
#[tokio::test]
async fn body_field_of_every_shape() {
    let f = fixture().await;
    for (path, body, expected) in [
        (
            "/v1/echo/tags",
            r#"["a", "b"]"#,
            json!({"tags": ["a", "b"]}),
        ),
        (
            "/v1/echo/attrs",
            r#"{"x": null}"#,
            json!({"attrs": {"x": null}}),
        ),
        ("/v1/echo/value", "null", json!({"anyValue": null})),
        ("/v1/echo/value", "[1, {}]", json!({"anyValue": [1, {}]})),
        (
            "/v1/echo/labels",
            r#"{"k": "v"}"#,
            json!({"labels": {"k": "v"}}),
        ),
        (
            "/v1/echo/at",
            r#""2024-01-02T03:04:05Z""#,
            json!({"at": "2024-01-02T03:04:05Z"}),
        ),
        ("/v1/echo/s", r#""text""#, json!({"s": "text"})),
        ("/v1/echo/s", "null", json!({})),
        ("/v1/echo/tags", "", json!({})),
        (
            "/v1/echo/inner",
            r#"{"label": "l"}"#,
            json!({"inner": {"label": "l"}}),
        ),
        (
            "/v1/echo/colors",
            r#"["RED", 2]"#,
            json!({"colors": ["RED", "GREEN"]}),
        ),
        ("/v1/echo/mask", r#""a.bC,d""#, json!({"mask": "a.bC,d"})),
        (
            "/v1/echo/i64",
            "9007199254740993",
            json!({"i64": "9007199254740993"}),
        ),
        ("/v1/echo/i64", r#""-7""#, json!({"i64": "-7"})),
        ("/v1/echo/wrapper", "0", json!({"big": "0"})),
    ] {
        let (status, got) = f.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {got}");
        assert_eq!(got, expected, "{path} {body}");
    }
    // A body field cannot smuggle in other fields.
    assert_bad_request(
        f.post("/v1/echo/s", r#""a", "i32": 5"#).await,
        "invalid JSON body",
    );
    // README: the JSON path is relative to the body as sent.
    assert_bad_request(
        f.post("/v1/echo/tags", r#"["a", 1]"#).await,
        "invalid JSON body at `[1]`: ",
    );
}

/// http.proto: when `body` names a repeated message field, the body is a
/// JSON array of those messages; the query fills the rest.
#[tokio::test]
async fn hc10_neighbour_repeated_message_body_is_an_array() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo/items?s=batch",
            r#"[{"label": "a", "count": 1}, {"child": {"label": "b"}}, {}]"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"s": "batch", "items": [{"label": "a", "count": 1}, {"child": {"label": "b"}}, {}]})
        )
    );
    let (status, body) = f.post("/v1/echo/items", "[]").await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

/// http.proto: the body of a repeated field must be an array: an object
/// or a scalar is a 400, a bad element one at its index (README: JSON
/// paths are relative to the body as sent).
#[tokio::test]
async fn hc10_neighbour_repeated_body_must_be_an_array() {
    let f = fixture().await;
    assert_error(
        f.post("/v1/echo/items", r#"{"label": "a"}"#).await,
        400,
        3,
        "invalid JSON body: expected a JSON array (for repeated field `items`), not an object at line 1 column 1",
    );
    assert_error(
        f.post("/v1/echo/tags", r#""a""#).await,
        400,
        3,
        "invalid JSON body: expected a JSON array (for repeated field `tags`), not a string at line 1 column 1",
    );
    assert_bad_request(
        f.post("/v1/echo/items", r#"[{"label": "a"}, {"nope": 1}]"#)
            .await,
        "invalid JSON body at `[1]`: unknown field `nope`",
    );
    assert_bad_request(
        f.post("/v1/echo/colors", r#"["RED", "BLUE"]"#).await,
        "invalid JSON body at `[1]`: ",
    );
    assert!(f.backend.records().is_empty());
}

/// DECISIONS.md: the query may not set the field the body binds (nor its
/// elements), but may set every other field.
#[tokio::test]
async fn hc10_neighbour_query_cannot_reach_into_the_body_field() {
    let f = fixture().await;
    assert_bad_request(
        f.post("/v1/echo/items?items[0].label=x", "[]").await,
        "`items[0].label` sets a field that this route binds",
    );
    assert_bad_request(
        f.post("/v1/echo/tags?tags=x", "[]").await,
        "`tags` sets a field that this route binds",
    );
    let (status, body) = f
        .post("/v1/echo/colors?tags=x&inner.label=y", r#"["GREEN"]"#)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"tags": ["x"], "colors": ["GREEN"], "inner": {"label": "y"}})
        )
    );
}

/// http.proto: a map body field takes a JSON object whose values have the
/// map's value type.
#[tokio::test]
async fn hc10_neighbour_map_body_field() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/echo/labels", r#"{"a": "1", "b c": ""}"#).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"labels": {"a": "1", "b c": ""}}))
    );
    assert_error(
        f.post("/v1/echo/labels", r#"["a"]"#).await,
        400,
        3,
        "invalid JSON body: expected a JSON object (for map field `labels`), not an array at line 1 column 1",
    );
}

// ---------------------------------------------------------------- response_body

/// http.proto: `response_body` writes just that field; README: an empty
/// repeated field is `[]`, a zero scalar `0`, an empty message `{}`, an
/// unset message `null` (never a value the backend did not send: an unset
/// Timestamp is not the epoch).
#[tokio::test]
async fn response_body_writes_one_field() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/tags?tags=a&tags=b").await;
    assert_eq!(body, json!(["a", "b"]));
    let (_, body) = f.get("/v1/tags").await;
    assert_eq!(body, json!([]), "an empty list is [], not nothing");
    let (_, body) = f.get("/v1/count?i64=5").await;
    assert_eq!(body, json!("5"));
    let (_, body) = f.get("/v1/count").await;
    assert_eq!(body, json!("0"));
    let (_, body) = f.get("/v1/inner?inner.label=x").await;
    assert_eq!(body, json!({"label": "x"}));
    let (_, body) = f.get("/v1/inner").await;
    assert_eq!(body, json!(null));
    let (_, body) = f.get("/v1/inner?inner.label=").await;
    assert_eq!(body, json!({}), "set but empty");
    let (_, body) = f.get("/v1/when?at=2024-01-02T03:04:05Z").await;
    assert_eq!(body, json!("2024-01-02T03:04:05Z"));
    let (_, body) = f.get("/v1/when").await;
    assert_eq!(body, json!(null));
    let (_, body) = f.get("/v1/labels").await;
    assert_eq!(body, json!({}));
}
