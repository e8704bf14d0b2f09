//! Well-known types in the query: Timestamp, Duration, FieldMask and wrappers.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, fixture};

// ---------------------------------------------------------------- well-known types

/// DECISIONS.md and proto3 JSON: Timestamp (RFC 3339, any offset,
/// normalised to Z), Duration (`<seconds>s`) and FieldMask take their
/// JSON string forms in the query.
#[tokio::test]
async fn well_known_types_take_their_json_string_forms() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?at=2024-01-02T03:04:05.123456789-02:30&ttl=-0.000000001s&mask=a,b.cD")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"at": "2024-01-02T05:34:05.123456789Z", "ttl": "-0.000000001s", "mask": "a,b.cD"})
        )
    );
    for (query, name) in [
        ("at=2024-13-01T00:00:00Z", "at"),
        ("at=2024-01-02", "at"),
        ("ttl=1m", "ttl"),
        ("ttl=1.5", "ttl"),
    ] {
        assert_bad_request(
            f.get(&format!("/v1/echo?{query}")).await,
            &format!("query parameter `{name}`"),
        );
    }
}

/// proto3 JSON: FieldMask paths are lowerCamelCase; the query also takes
/// snake_case, and the backend gets snake_case paths.
#[tokio::test]
async fn field_mask_query_accepts_camel_and_snake_case() {
    let f = fixture().await;
    f.get("/v1/echo?mask=inner.childCount,name_wrapper").await;
    let sent = f.backend.last().message;
    let mask = sent.get_field_by_name("mask").unwrap();
    let paths = mask
        .as_message()
        .unwrap()
        .get_field_by_name("paths")
        .unwrap();
    assert_eq!(
        format!("{paths:?}"),
        r#"List([String("inner.child_count"), String("name_wrapper")])"#
    );
}

/// proto3 JSON: a FieldMask is one comma-separated string; an empty value
/// is a set, empty mask; giving it twice is an error (it is not repeated).
#[tokio::test]
async fn hc07_neighbour_field_mask_is_one_value() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?mask=").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mask": ""})));
    assert!(f.backend.last().message.has_field_by_name("mask"));
    assert_bad_request(
        f.get("/v1/echo?mask=a&mask=b").await,
        "`mask` is given more than once",
    );
    // An empty path is refused, as in a body, not dropped.
    for bad in ["a,,b", "a,", ",a", "a%20b"] {
        let (status, body) = f.get(&format!("/v1/echo?mask={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

/// proto3 JSON: the camelCase paths of a FieldMask map to snake_case,
/// nested segments included, and are written back in camelCase.
#[tokio::test]
async fn hc07_neighbour_field_mask_nested_paths_round_trip() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?mask=inner.child.label,nameWrapper,items.childCount")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"mask": "inner.child.label,nameWrapper,items.childCount"})
        )
    );
    assert_eq!(
        f.backend.last().json["mask"],
        "inner.child.label,nameWrapper,items.childCount",
        "the backend's proto3 JSON writes the snake_case paths back as camelCase"
    );
    let sent = f.backend.last().message;
    let mask = sent.get_field_by_name("mask").unwrap();
    let paths = mask
        .as_message()
        .unwrap()
        .get_field_by_name("paths")
        .unwrap();
    assert_eq!(
        format!("{paths:?}"),
        r#"List([String("inner.child.label"), String("name_wrapper"), String("items.child_count")])"#
    );
}

/// DECISIONS.md: Timestamp and Duration come from one query value, like
/// FieldMask; a Timestamp offset's `+` must be sent as `%2B` (a bare `+`
/// is a space in form encoding and the value no longer parses).
#[tokio::test]
async fn hc07_neighbour_timestamp_offsets_in_the_query() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?at=2024-01-02T03:04:05%2B01:00").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"at": "2024-01-02T02:04:05Z"}))
    );
    assert_bad_request(
        f.get("/v1/echo?at=2024-01-02T03:04:05+01:00").await,
        "query parameter `at`",
    );
}

/// RFC 3339 allows a leap second (`:60`); protobuf time smears them, so a
/// Timestamp cannot hold one and moving it to the next second would change
/// the client's value: 400, in the query and in the body.
#[tokio::test]
async fn leap_seconds_are_refused() {
    let f = fixture().await;
    assert_bad_request(
        f.get("/v1/echo?at=2016-12-31T23:59:60Z").await,
        "leap second",
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"at": "2016-12-31T23:59:60.5Z"}"#)
            .await,
        "leap second",
    );
    let (status, body) = f.get("/v1/echo?at=2016-12-31T23:59:59Z").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(f.backend.records().len() == 1);
}

/// proto3 JSON: FieldMask paths are lowerCamelCase in JSON; snake_case is
/// accepted only where it converts back to the same name, so what reaches
/// the backend is what the client meant.
#[tokio::test]
async fn field_mask_segments_must_round_trip() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?mask=page_size,a.b_c,_x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mask"], "pageSize,a.bC,X");
    for bad in ["a__b", "a_", "a_1", "a._", "page_Size"] {
        assert_bad_request(
            f.get(&format!("/v1/echo?mask={bad}")).await,
            "is not a field mask path",
        );
    }
}

// ---------------------------------------------------------------- wrappers

/// DECISIONS.md: wrappers are bound like their scalar, with presence: a
/// zero value is set, not absent.
#[tokio::test]
async fn wrappers_have_presence() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/echo?on=false&big=0").await;
    assert_eq!(body, json!({"big": "0", "on": false}));
}

/// DECISIONS.md: every wrapper type is bound from the query like its
/// scalar, and zero values are present (`""`, `0`, `false`).
#[tokio::test]
async fn hc09_neighbour_every_wrapper_in_the_query_with_zero_values() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?name_wrapper=&big=0&on=false&ratio=0&blob=&small=0&fl_wrapper=0&i32_wrapper=0&u64_wrapper=0")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "nameWrapper": "", "big": "0", "on": false, "ratio": 0, "blob": "", "small": 0,
            "flWrapper": 0, "i32Wrapper": 0, "u64Wrapper": "0"
        })
    );
    let sent = f.backend.last().message;
    for name in [
        "name_wrapper",
        "big",
        "on",
        "ratio",
        "blob",
        "small",
        "fl_wrapper",
        "i32_wrapper",
        "u64_wrapper",
    ] {
        assert!(sent.has_field_by_name(name), "{name} is present");
    }
}

/// DECISIONS.md: wrappers take the full range of their scalar; wrappers
/// that were not given stay unset (absent, not zero).
#[tokio::test]
async fn hc09_neighbour_wrapper_ranges_and_absence() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?u64Wrapper=18446744073709551615&i32Wrapper=-2147483648&flWrapper=-1.5&big=-9223372036854775808")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({
                "big": "-9223372036854775808", "flWrapper": -1.5,
                "i32Wrapper": -2147483648_i64, "u64Wrapper": "18446744073709551615"
            })
        )
    );
    let sent = f.backend.last().message;
    for name in ["name_wrapper", "on", "ratio", "blob", "small"] {
        assert!(!sent.has_field_by_name(name), "{name} stays unset");
    }
}

/// DECISIONS.md: a wrapper value that does not fit the wrapped scalar is a
/// 400 naming the parameter.
#[tokio::test]
async fn hc09_neighbour_bad_wrapper_values_name_the_parameter() {
    let f = fixture().await;
    for (query, name) in [
        ("big=x", "big"),
        ("on=yes", "on"),
        ("small=-1", "small"),
        ("i32_wrapper=2147483648", "i32_wrapper"),
        ("fl_wrapper=1e39", "fl_wrapper"),
        ("u64_wrapper=-1", "u64_wrapper"),
        ("blob=%21%21", "blob"),
        ("ratio=nan", "ratio"),
    ] {
        assert_bad_request(
            f.get(&format!("/v1/echo?{query}")).await,
            &format!("query parameter `{name}`"),
        );
    }
    assert!(f.backend.records().is_empty());
}
