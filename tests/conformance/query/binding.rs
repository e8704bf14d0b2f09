//! What the query may set: one oneof member, no field the path or body binds.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};

// ---------------------------------------------------------------- oneofs

/// proto3 JSON: a oneof holds at most one member; one member alone is
/// fine, two are a 400 naming the oneof, whatever their order.
#[tokio::test]
async fn oneof_members_from_the_query() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?choice_b=5").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"choiceB": 5})));
    let (status, body) = f.get("/v1/echo?choiceA=").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"choiceA": ""})));
    assert_error(
        f.get("/v1/echo?choice_b=1&choice_a=x").await,
        400,
        3,
        "`choice_a` and `choice_b` are members of oneof `choice`; set at most one",
    );
    assert_bad_request(
        f.get("/v1/echo?choice_b=1&choice_b=2").await,
        "`choice_b` is given more than once",
    );
}

/// README "Errors": a oneof conflict names both members as the client
/// spelt them, JSON names or proto names, in the query and in the body
/// alike; a member set to `null` in a body sets nothing.
#[tokio::test]
async fn oneof_conflicts_in_the_clients_spelling() {
    let f = fixture().await;
    for (query, message) in [
        (
            "choiceA=a&choiceB=1",
            "`choiceB` and `choiceA` are members of oneof `choice`; set at most one",
        ),
        (
            "choice_a=a&s=x&choiceB=1",
            "`choiceB` and `choice_a` are members of oneof `choice`; set at most one",
        ),
    ] {
        assert_error(f.get(&format!("/v1/echo?{query}")).await, 400, 3, message);
    }
    assert_error(
        f.post("/v1/echo", r#"{"choiceA": "a", "choiceB": 1}"#)
            .await,
        400,
        3,
        "invalid JSON body: `choiceB` and `choiceA` are members of oneof `choice`; set at most one at line 1 column 18",
    );
    assert_error(
        f.post("/v1/echo", r#"{"choiceB": 1, "s": "x", "choice_a": "a"}"#)
            .await,
        400,
        3,
        "invalid JSON body: `choice_a` and `choiceB` are members of oneof `choice`; set at most one at line 1 column 26",
    );
    assert!(f.backend.records().is_empty());
    let (status, body) = f
        .post("/v1/echo", r#"{"choiceA": null, "choiceB": 1}"#)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"choiceB": 1})));
}

// ---------------------------------------------------------------- bound fields

/// http.proto: the query only reaches fields that the path and body leave
/// free; DECISIONS.md: touching a bound field, or any parameter on a
/// `body: "*"` route, is a 400.
#[tokio::test]
async fn query_cannot_touch_fields_the_path_or_body_binds() {
    let f = fixture().await;
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/x/1/RED?s=y",
            Some("application/json"),
            "{}",
        )
        .await,
        "`s` sets a field that this route binds",
    );
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/x/1/RED?inner.label=y",
            Some("application/json"),
            "{}",
        )
        .await,
        "`inner.label` sets a field that this route binds",
    );
    assert_bad_request(
        f.post("/v1/echo?s=x", "{}").await,
        "this route's body binds the whole request message",
    );
}

/// http.proto: a field bound by a nested path variable (`{inner.label}`)
/// is bound under its JSON name too; its siblings stay free.
#[tokio::test]
async fn bound_fields_by_any_name_and_their_free_siblings() {
    let f = fixture().await;
    let path = "/v1/path/x/AAE/true/1/1/1/1/1/RED/w/1/lbl/2024-01-02T03:04:05Z/1s";
    assert_bad_request(
        f.get(&format!("{path}?nameWrapper=q")).await,
        "`nameWrapper` sets a field that this route binds",
    );
    assert_bad_request(
        f.get(&format!("{path}?inner.label=q")).await,
        "`inner.label` sets a field that this route binds",
    );
    let (status, body) = f.get(&format!("{path}?inner.count=4")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["inner"], json!({"label": "lbl", "count": 4}));
}
