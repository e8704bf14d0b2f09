//! `body: "*"`: the whole JSON body is the request message.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_error, fixture};

/// http.proto: `body: "*"` maps the whole JSON body to the request
/// message; proto3 JSON: field names may be proto or JSON names.
#[tokio::test]
async fn whole_body_json_with_proto_or_json_names() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"name_wrapper": "n", "customJSON": "c", "inner": {"label": "x", "child": {"count": 2}}, "i64": 9007199254740993}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"i64": "9007199254740993", "inner": {"label": "x", "child": {"count": 2}}, "nameWrapper": "n", "customJSON": "c"})
    );
}

/// http.proto: with `body: "*"`, fields bound by the path come from the
/// path; README: path variables are applied after the body and win.
#[tokio::test]
async fn path_variables_win_over_the_whole_body() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/things/t1:watch", r#"{"s": "from body", "i32": 3}"#)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "things/t1", "i32": 3}))
    );
}

/// proto3 JSON: a message is a JSON object. A body of another type is a
/// 400 saying so in JSON's words, naming the message and pointing at the
/// value's first character (column 1 for `[`, as for `{` where an array
/// is wanted); a value of the wrong type inside the body the same way, at
/// its path. Connect reads JSON with the same words.
#[tokio::test]
async fn a_body_that_is_not_an_object_is_named_in_json_words() {
    let f = fixture().await;
    for (json, found, place) in [
        ("[1,2]", "an array", "line 1 column 1"),
        ("\n  \"text\"", "a string", "line 2 column 3"),
        ("12", "a number", "line 1 column 1"),
        ("false", "a boolean", "line 1 column 1"),
    ] {
        assert_error(
            f.post("/v1/echo", json).await,
            400,
            3,
            &format!(
                "invalid JSON body: expected a JSON object (for message `kitchen.v1.Sink`), not {found} at {place}"
            ),
        );
    }
    assert_error(
        f.post("/v1/echo/inner", "[]").await,
        400,
        3,
        "invalid JSON body: expected a JSON object (for message `kitchen.v1.Inner`), not an array at line 1 column 1",
    );
    for (json, at, message) in [
        (
            r#"{"inner": [1]}"#,
            "inner",
            "expected a JSON object, not an array at line 1 column 11",
        ),
        (
            r#"{"tags": {}}"#,
            "tags",
            "expected a JSON array, not an object at line 1 column 10",
        ),
        (
            r#"{"items": [{}, "x"]}"#,
            "items[1]",
            "expected a JSON object, not a string at line 1 column 16",
        ),
        (
            r#"{"flag": "yes"}"#,
            "flag",
            "expected a boolean, not a string at line 1 column 10",
        ),
    ] {
        assert_error(
            f.post("/v1/echo", json).await,
            400,
            3,
            &format!("invalid JSON body at `{at}`: {message}"),
        );
    }
    let connect = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Plain",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            b"[1,2]".to_vec(),
        )
        .await
        .json();
    assert_eq!(
        connect["message"],
        "invalid JSON body: expected a JSON object (for message `kitchen.v1.Sink`), not an array at line 1 column 1"
    );
    assert!(f.backend.records().is_empty());
}
