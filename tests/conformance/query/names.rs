//! Query keys by name: proto or JSON names, empty, unknown, misspelt, ignored.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture, fixture_with};

/// DECISIONS.md: query keys match the proto name or the `json_name`; a
/// name that is neither is unknown.
#[tokio::test]
async fn query_keys_take_proto_or_json_names() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?name_wrapper=a&customJSON=b&custom_json_unused=1")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = f.get("/v1/echo?nameWrapper=a&custom_json=b").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"nameWrapper": "a", "customJSON": "b"}));
}

/// README "Query parameters": a parameter with nothing before its `=` names
/// no field; the 400 says its name is empty rather than calling an empty
/// string a malformed path (also on a route whose body binds everything).
#[tokio::test]
async fn a_parameter_with_an_empty_name_says_so() {
    let f = fixture().await;
    for query in ["=x", "=", "s=a&=1"] {
        assert_error(
            f.get(&format!("/v1/echo?{query}")).await,
            400,
            3,
            "a query parameter has an empty name",
        );
    }
    assert_error(
        f.post("/v1/echo?=x", "{}").await,
        400,
        3,
        "a query parameter has an empty name",
    );
    // An escaped `=` is a name.
    assert_bad_request(f.get("/v1/echo?%3D=1").await, "unknown query parameter `=`");
    assert!(f.backend.records().is_empty());
}

/// DECISIONS.md: unknown query parameters are 400 unless
/// `unknown_query_params: ignore`; values that do not fit still fail.
#[tokio::test]
async fn unknown_query_parameters_can_be_ignored() {
    let f = fixture_with(|c| c.unknown_query_params = protogate::transcode::UnknownParams::Ignore)
        .await;
    let (status, body) = f.get("/v1/echo?api_key=1&s=x&callback=y").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"s": "x"}));
    // An ignored key leaves nothing behind on its way to the unknown
    // name: no message made, no list element, no map entry.
    for query in [
        "inner.unknown=1",
        "inner.child.unknown=1",
        "items[0].unknown=1",
        "inners[k].unknown=1",
        "inners[k].child.unknown=1",
    ] {
        let (status, body) = f.get(&format!("/v1/echo?{query}&s=x")).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"s": "x"})),
            "{query}"
        );
    }
    // Values that do not fit are still errors.
    assert_bad_request(f.get("/v1/echo?i32=x").await, "`i32`");
    // On a whole-body route too (a cache buster), but a key naming a field
    // the body binds is still refused.
    let (status, body) = f.post("/v1/echo?_=123&cb.x=1", r#"{"s": "b"}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "b"})));
    assert_bad_request(
        f.post("/v1/echo?s=q", "{}").await,
        "body binds the whole request message",
    );
}

/// A misspelt name is refused with the name it likely meant, in the
/// client's own spelling, and an unknown enum value with the enum's
/// values: in the query, the path and the body (body fields of a
/// `body: "field"` route are looked up in that field's message).
#[tokio::test]
async fn misspelt_names_and_enum_values_say_what_was_meant() {
    let f = fixture().await;
    assert_bad_request(
        f.get("/v1/echo?custom_jsn=1").await,
        "unknown query parameter `custom_jsn` (did you mean `custom_json`?)",
    );
    assert_bad_request(
        f.get("/v1/echo?inner.lable=1").await,
        "unknown query parameter `inner.lable` (did you mean `inner.label`?)",
    );
    assert_error(
        f.get("/v1/echo?nothing_like_it=1").await,
        400,
        3,
        "unknown query parameter `nothing_like_it`",
    );
    let colors = "(one of COLOR_UNSPECIFIED, RED, GREEN)";
    assert_bad_request(f.get("/v1/echo?color=PINK").await, colors);
    assert_bad_request(
        f.send("PUT", "/v1/echo/a/1/PINK", Some("application/json"), "{}")
            .await,
        colors,
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"colors": ["RED", "PINK"]}"#).await,
        colors,
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"customJsn": "x"}"#).await,
        "(did you mean `customJSON`?)",
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"inners": {"k": {"lable": "x"}}}"#)
            .await,
        "(did you mean `label`?)",
    );
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/a/1/RED",
            Some("application/json"),
            r#"{"lable": "x"}"#,
        )
        .await,
        "(did you mean `label`?)",
    );
    // A list as the body (`body: "items"`), and Connect.
    assert_bad_request(
        f.post("/v1/echo/items", r#"[{}, {"lable": "x"}]"#).await,
        "(did you mean `label`?)",
    );
    let connect = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Echo",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            br#"{"customJsn": "x"}"#.to_vec(),
        )
        .await;
    assert_eq!(connect.status, StatusCode::BAD_REQUEST);
    let error = connect.json();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .ends_with("(did you mean `customJSON`?)"),
        "{error}"
    );
}

/// DECISIONS.md: unknown query parameters are 400 unless ignored by
/// config; `ignore_query_params` drops named ones for all methods (`*`) or
/// per method, before any other query rule.
#[tokio::test]
async fn ignored_query_parameters_globally_and_per_method() {
    let f = fixture_with(|c| {
        c.ignore_query_params
            .insert("*".into(), vec!["api_key".into()]);
        c.ignore_query_params.insert(
            "kitchen.v1.Kitchen/Echo".into(),
            vec!["callback".into(), "s".into()],
        );
        c.limits.max_query_params = 2;
    })
    .await;
    let (status, body) = f
        .get("/v1/echo?api_key=k&callback=cb&s=dropped&i32=1")
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"i32": 1})));
    // Other methods only ignore the global list.
    let (status, body) = f.get("/v1/tags?api_key=k&tags=a").await;
    assert_eq!((status, body), (StatusCode::OK, json!(["a"])));
    assert_bad_request(
        f.get("/v1/tags?callback=cb").await,
        "unknown query parameter `callback`",
    );
    // Ignored parameters do not count toward `limits.max_query_params`.
    let (status, body) = f
        .get("/v1/echo?api_key=1&api_key=2&api_key=3&i32=1&i64=2")
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"i32": 1, "i64": "2"}))
    );
    assert_bad_request(
        f.get("/v1/echo?api_key=1&i32=1&i64=2&u32=3").await,
        "more than 2 query parameters",
    );
    // Even on a whole-body route, ignored names pass.
    let (status, _) = f.post("/v1/echo?api_key=k", "{}").await;
    assert_eq!(status, StatusCode::OK);
}
