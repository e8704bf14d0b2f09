//! JSON text is UTF-8: `\u` escapes, lone surrogates, bad bytes, a BOM.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};

/// proto3 JSON: the text is UTF-8 JSON (RFC 8259 §8.1): `\u` escapes,
/// surrogate pairs too, decode to the same text; bytes that are not UTF-8
/// are a 400.
#[tokio::test]
async fn hc35_neighbour_escapes_and_invalid_utf8() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"s": "caf\u00e9 \ud83d\ude00"}"#)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "café 😀"})));
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json; charset=utf-8"),
            &[],
            b"{\"s\": \"caf\xe9\"}".to_vec(),
        )
        .await;
    assert_bad_request((reply.status, reply.json()), "invalid JSON body");
    assert_eq!(f.backend.records().len(), 1, "only the valid body arrived");
}

/// RFC 8259 §8.2: a `\u` escape of a UTF-16 surrogate must be one of a
/// pair; one alone is a 400 that names the escape as written and its
/// place (a high one at the end, before another character or before an
/// escape that is not a low surrogate; a low one alone), in a body field
/// and over Connect alike.
#[tokio::test]
async fn unpaired_surrogate_escapes_are_named() {
    let f = fixture().await;
    let high = ": a high surrogate (`\\ud800`-`\\udbff`) must be followed by a low one (`\\udc00`-`\\udfff`)";
    for (json, place) in [
        (r#"{"s": "\ud800"}"#, "line 1 column 8"),
        (r#"{"s": "\ud800x"}"#, "line 1 column 8"),
        (r#"{"s": "\ud800\u0041"}"#, "line 1 column 8"),
        (
            r#"{"s": "ok \ud83d\ude00",
            "tags": ["\ud800\ud800"]}"#,
            "line 2 column 23",
        ),
    ] {
        let message = format!("unpaired UTF-16 surrogate escape `\\ud800` at {place}{high}");
        assert_bad_request(f.post("/v1/echo", json).await, &message);
    }
    assert_error(
        f.post("/v1/echo", r#"{"s": "\uDC00"}"#).await,
        400,
        3,
        "invalid JSON body at `s`: the string holds an unpaired UTF-16 surrogate escape `\\uDC00` at line 1 column 8: a low surrogate (`\\udc00`-`\\udfff`) must follow a high one (`\\ud800`-`\\udbff`)",
    );
    assert_bad_request(
        f.post("/v1/echo/tags", r#"["a", "\udbff"]"#).await,
        "invalid JSON body at `[1]`: the string holds an unpaired UTF-16 surrogate escape `\\udbff` at line 1 column 8",
    );
    let connect = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Plain",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            br#"{"s": "\ud800"}"#.to_vec(),
        )
        .await
        .json();
    assert_eq!(
        connect["message"],
        format!(
            "invalid JSON body at `s`: the string holds an unpaired UTF-16 surrogate escape `\\ud800` at line 1 column 8{high}"
        )
    );
    assert!(f.backend.records().is_empty());
}

/// RFC 8259 §8.1: JSON text is UTF-8; a body that is not is a 400 saying
/// so, with the first byte that is not UTF-8 and its place, whether the
/// byte is in a string, a key or between values.
#[tokio::test]
async fn bytes_that_are_not_utf8_are_named() {
    let f = fixture().await;
    for (body, expected) in [
        (
            b"{\"s\": \"a\xFFb\"}".as_slice(),
            "byte 0xFF at offset 8, line 1 column 9",
        ),
        (b"{\"s\xFF\": 1}", "byte 0xFF at offset 3, line 1 column 4"),
        (
            b"{\"s\": \"x\"}\n\xC3",
            "byte 0xC3 at offset 11, line 2 column 1",
        ),
    ] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/json"),
                &[],
                body.to_vec(),
            )
            .await;
        assert_error(
            (reply.status, reply.json()),
            400,
            3,
            &format!("invalid JSON body: the body is not valid UTF-8 ({expected})"),
        );
    }
    assert!(f.backend.records().is_empty());
}

/// RFC 8259 §8.1 (README "Bodies"): a UTF-8 byte-order mark before the
/// JSON is ignored, as the spec lets a parser do: on a whole-message body,
/// a body field, a mark alone (an empty body) and over Connect. One
/// anywhere else is not JSON.
#[tokio::test]
async fn a_byte_order_mark_before_the_json_is_ignored() {
    let f = fixture().await;
    let bom = |json: &str| [b"\xEF\xBB\xBF".as_slice(), json.as_bytes()].concat();
    for (path, json, echoed) in [
        ("/v1/echo", r#"{"s": "x"}"#, json!({"s": "x"})),
        ("/v1/echo/tags", r#"["a"]"#, json!({"tags": ["a"]})),
        (
            "/v1/echo/inner",
            r#"{"label": "l"}"#,
            json!({"inner": {"label": "l"}}),
        ),
        ("/v1/echo", "", json!({})),
    ] {
        let reply = f
            .call("POST", path, Some("application/json"), &[], bom(json))
            .await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::OK, echoed),
            "{path} {json}"
        );
    }
    let reply = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Plain",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            bom(r#"{"s": "c"}"#),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::OK, json!({"s": "c"}))
    );
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[],
            [b"{\"s\": \"x\"}".as_slice(), b"\xEF\xBB\xBF"].concat(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
}
