//! Form encoding of the query string: empty pairs, `+` and percent escapes.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};

/// DECISIONS.md: the query string is form-encoded, so empty pairs (`&&`),
/// a key without `=` and a trailing `&` add nothing but their own key.
#[tokio::test]
async fn empty_pairs_and_keys_without_values() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?&&s=x&&tags&").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "x", "tags": [""]}))
    );
    let (status, body) = f.get("/v1/echo?").await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

/// DECISIONS.md: in the query `+` is a space, `%2B` a plus, `%20` a space,
/// in keys as in values: `na+me` is the unknown key `na me`.
#[tokio::test]
async fn hc21_neighbour_plus_in_keys_is_a_space() {
    let f = fixture().await;
    assert_error(
        f.get("/v1/echo?na+me=1").await,
        400,
        3,
        "unknown query parameter `na me`",
    );
    assert_error(
        f.get("/v1/echo?na%2Bme=1").await,
        400,
        3,
        "unknown query parameter `na+me`",
    );
    // Encoded key characters decode before the key is read.
    let (status, body) = f.get("/v1/echo?inner%2Elabel=x&labels%5Bk%5D=v").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"inner": {"label": "x"}, "labels": {"k": "v"}})
        )
    );
}

/// DECISIONS.md: `%2B` is a literal plus and `%20` a space in values; a
/// bare `+` is a space.
#[tokio::test]
async fn hc21_neighbour_encoded_plus_and_space_in_values() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?s=%2B1%20%2B2+3&tags=a+%2B+b&nameWrapper=%2B%2B")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"s": "+1 +2 3", "tags": ["a + b"], "nameWrapper": "++"})
        )
    );
}

/// DECISIONS.md: map keys are form-decoded like any key: `+` is a space,
/// `%2B` a plus, `%20` a space.
#[tokio::test]
async fn hc21_neighbour_plus_in_map_keys() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?labels[a+b]=1&labels[c%2Bd]=2&labels[e%20f]=3+4")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"labels": {"a b": "1", "c+d": "2", "e f": "3 4"}})
        )
    );
    assert_bad_request(
        f.get("/v1/echo?labels[a+b]=1&labels[a%20b]=2").await,
        "given more than once",
    );
}

/// DECISIONS.md: in the query `%2B` is a plus, so base64's `+` arrives
/// intact; a bare `+` (a space after form decoding) still reads as the
/// plus it must have been, and URL-safe base64 needs no escaping.
#[tokio::test]
async fn hc21_neighbour_plus_in_base64_values() {
    let f = fixture().await;
    for value in ["%2B%2F8%3D", "+/8=", "-_8"] {
        let (status, body) = f.get(&format!("/v1/echo?b={value}")).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"b": "+/8="})),
            "{value}"
        );
    }
}

/// DECISIONS.md: a malformed escape or bytes that are not UTF-8 in a key
/// or value are a 400.
#[tokio::test]
async fn hc21_neighbour_bad_escapes_in_keys_and_values() {
    let f = fixture().await;
    for query in ["s%ZZ=1", "s=%", "s=%2", "%C3=1", "s=%C3%28"] {
        assert_error(
            f.get(&format!("/v1/echo?{query}")).await,
            400,
            3,
            "query string is not valid percent-encoded UTF-8",
        );
    }
}
