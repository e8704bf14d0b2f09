//! Repeated keys, maps and repeated messages in the query.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, fixture};

// ---------------------------------------------------------------- repeated fields

/// http.proto: a repeated primitive is given by repeating the key; the
/// values are appended in order, the same as a JSON array would give.
#[tokio::test]
async fn hc05_neighbour_query_and_body_build_the_same_message() {
    let f = fixture().await;
    let (status, _) = f
        .get(
            "/v1/echo?tags=red&tags=blue&ids=7&ids=8&colors=GREEN&colors=RED&blobs=AAE&samples=1.5",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let from_query = f.backend.last().message;
    let (status, _) = f
        .post(
            "/v1/echo",
            r#"{"tags": ["red", "blue"], "ids": ["7", 8], "colors": ["GREEN", 1], "blobs": ["AAE="], "samples": [1.5]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(from_query, f.backend.last().message);
}

/// http.proto: repeated enums take one value per key, by name or number.
#[tokio::test]
async fn hc05_neighbour_repeated_enums() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?colors=GREEN&colors=1&colors=COLOR_UNSPECIFIED&colors=GREEN")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"colors": ["GREEN", "RED", "COLOR_UNSPECIFIED", "GREEN"]})
        )
    );
    assert_bad_request(
        f.get("/v1/echo?colors=RED&colors=BLUE").await,
        "query parameter `colors`",
    );
}

/// http.proto: repeated bytes take one base64 value per key.
#[tokio::test]
async fn hc05_neighbour_repeated_bytes() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?blobs=AAE&blobs=_w&blobs=&blobs=AQID").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"blobs": ["AAE=", "/w==", "", "AQID"]})
        )
    );
}

/// proto3 JSON: repeated int64 values keep every digit (no float
/// rounding) and are written back as strings.
#[tokio::test]
async fn hc05_neighbour_repeated_int64_precision() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?ids=9007199254740993&ids=-9223372036854775808&ids=9223372036854775807&ids=0")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"ids": ["9007199254740993", "-9223372036854775808", "9223372036854775807", "0"]})
        )
    );
    assert_eq!(
        f.backend.last().json["ids"],
        json!([
            "9007199254740993",
            "-9223372036854775808",
            "9223372036854775807",
            "0"
        ])
    );
}

/// DECISIONS.md: a comma is part of the value, never a list separator.
#[tokio::test]
async fn hc05_neighbour_comma_is_part_of_the_value() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?tags=a,b&tags=c&tags=").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tags": ["a,b", "c", ""]}))
    );
    assert_bad_request(f.get("/v1/echo?ids=1,2").await, "query parameter `ids`");
    assert_bad_request(
        f.get("/v1/echo?colors=RED,GREEN").await,
        "query parameter `colors`",
    );
}

/// http.proto: only repeated fields may repeat; a singular field given
/// under its proto name and its JSON name is still given twice.
#[tokio::test]
async fn hc05_neighbour_singular_field_under_two_names_is_given_twice() {
    let f = fixture().await;
    assert_bad_request(
        f.get("/v1/echo?name_wrapper=a&nameWrapper=b").await,
        "`nameWrapper` is given more than once",
    );
    assert_bad_request(
        f.get("/v1/echo?custom_json=a&customJSON=b").await,
        "`customJSON` is given more than once",
    );
    assert_bad_request(
        f.get("/v1/echo?inner.label=a&inner.label=b").await,
        "`inner.label` is given more than once",
    );
}

/// proto3 JSON: repeated doubles keep their order, and `NaN`/`Infinity`
/// are values like any other.
#[tokio::test]
async fn hc05_neighbour_repeated_doubles_with_special_values() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?samples=1.5&samples=NaN&samples=-Infinity&samples=2e3")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"samples": [1.5, "NaN", "-Infinity", 2000]})
        )
    );
}

// ---------------------------------------------------------------- maps and repeated messages

/// DECISIONS.md: maps are set per entry (`m[key]=v`) and repeated messages
/// per element (`items[0].f=v`, indices in order); misuse is a 400.
#[tokio::test]
async fn maps_and_repeated_messages_in_the_query() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?labels[a]=1&labels[b.c]=x+y&items[0].label=first&items[0].count=2&items[1].label=second&items[1].child.label=deep")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "labels": {"a": "1", "b.c": "x y"},
            "items": [{"label": "first", "count": 2}, {"label": "second", "child": {"label": "deep"}}]
        })
    );
    for (query, needle) in [
        ("labels[a]=1&labels[a]=2", "given more than once"),
        (
            "items[1].label=x",
            "index 1 skips ahead; give `items[0]` first",
        ),
        ("items[0].label=x&items[0].label=y", "given more than once"),
        // One element however its index is spelled.
        ("items[0].label=x&items[00].label=y", "given more than once"),
        (
            "items[0].label=x&items[%2B0].label=y",
            "given more than once",
        ),
        ("items[0]=x", "set its fields as `items[0].field`"),
        ("items[x].label=1", "`x` is not a list index"),
        ("tags[0]=x", "`tags` is not a map or a repeated message"),
        ("s[0]=x", "`s` is not a map or a repeated message"),
        ("labels=x", "a map is set one entry at a time"),
        (
            "items.label=x",
            "`items` is a list; name an element, as `items[0].label`",
        ),
        ("labels[a", "not a field path"),
        ("items[0].nope=1", "unknown query parameter `items[0].nope`"),
    ] {
        assert_bad_request(f.get(&format!("/v1/echo?{query}")).await, needle);
    }
}

/// DECISIONS.md: map keys of integer type are parsed as their type; map
/// values that are messages are set per field (`m[k].f=v`).
#[tokio::test]
async fn maps_with_integer_keys_and_message_values() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?by_id[7]=seven&byId[-1]=minus&inners[k].label=x&inners[k].count=2&inners[j].child.label=y")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "byId": {"7": "seven", "-1": "minus"},
            "inners": {"k": {"label": "x", "count": 2}, "j": {"child": {"label": "y"}}}
        })
    );
    for (query, needle) in [
        ("by_id[x]=1", "query parameter `by_id[x]`: map key"),
        ("by_id[7]=a&by_id[07]=b", "given more than once"),
        ("by_id[7]=a&by_id[%2B7]=b", "given more than once"),
        ("inners[k]=x", "set their fields as `m[key].field`"),
        ("labels[k].x=1", "the map's values are not messages"),
    ] {
        assert_bad_request(f.get(&format!("/v1/echo?{query}")).await, needle);
    }
}
