//! Request bodies: `body: "*"`, `body: "field"` of every shape, HttpBody
//! both ways, empty and null bodies, content types; and `response_body`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{assert_bad_request, assert_error, chunks, fixture};
use crate::support::Script;

// ---------------------------------------------------------------- body "*"

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

// ---------------------------------------------------------------- empty and null bodies

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

// ---------------------------------------------------------------- content types

/// DECISIONS.md: JSON whatever the declared type for application/json,
/// `*/*+json`, text/plain and form encoding (charset allowed); any other
/// declared type is 415 (code 3).
#[tokio::test]
async fn content_types() {
    let f = fixture().await;
    for ok in [
        "application/json",
        "application/json; charset=UTF-8",
        "Application/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
    ] {
        let (status, body) = f.send("POST", "/v1/echo", Some(ok), r#"{"s": "é"}"#).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
        assert_eq!(body["s"], "é");
    }
    for bad in [
        "text/csv",
        "application/xml",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = f.send("POST", "/v1/echo", Some(bad), r#"{"s": "x"}"#).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        assert_eq!(body["code"], 3);
    }
}

/// RFC 9110 §10.1.1: a body the route will refuse for its type is not
/// asked for. A client that waits for `100 Continue` gets the 415 and
/// sends nothing; an empty body with a stray type is still an empty
/// message.
#[tokio::test]
async fn a_refused_type_gets_no_100_continue() {
    let f = fixture().await;
    for framing in ["content-length: 4", "transfer-encoding: chunked"] {
        let head = format!(
            "POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/xml\r\n\
             {framing}\r\nexpect: 100-continue\r\n\r\n"
        );
        let answer = first_answer(f.gateway.addr(), head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 415 "), "{framing}: {answer}");
    }
    assert!(f.backend.records().is_empty());
    let (status, body) = f
        .send("POST", "/v1/echo", Some("application/xml"), "")
        .await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({})));
}

/// What the gateway answers first to a request `head` sent alone.
async fn first_answer(addr: std::net::SocketAddr, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(head).await.unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// RFC 9110 §8.3.1: a `Content-Type` that is present but whose media type
/// is not `type/subtype` (empty, `;;;`, a bare word) is a 415 naming it
/// as sent, never read as "no type" (JSON) — on unary routes and request
/// streams; a Connect call answers it as any type it does not take
/// (415 with `Accept-Post`, its code `invalid_argument`), naming it too.
/// Nothing reaches the backend.
#[tokio::test]
async fn malformed_content_types_are_415() {
    let f = fixture().await;
    let connect = [("connect-protocol-version", "1")];
    for bad in [
        ";;;",
        "",
        " ; charset=utf-8",
        "json",
        "application/",
        "/json",
    ] {
        for (path, headers, status) in [
            ("/v1/echo", &[][..], 415),
            ("/v1/echo/attrs", &[][..], 415),
            ("/v1/collect", &[][..], 415),
            ("/kitchen.v1.Kitchen/Echo", &connect[..], 415),
        ] {
            let body = br#"{"s": "x"}"#.to_vec();
            let reply = f.call("POST", path, Some(bad), headers, body).await;
            let json = reply.json();
            assert_eq!(reply.status, status, "{bad:?} on {path}: {json}");
            let message = json["message"].as_str().unwrap_or_default();
            assert!(
                // The HTTP layer drops a value's leading and trailing spaces.
                message.starts_with(&format!("unsupported content type `{}`", bad.trim())),
                "{bad:?} on {path}: {message}"
            );
        }
    }
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §8.3.1: the media type is the part before `;`; parameters
/// other than charset are allowed and ignored for JSON.
#[tokio::test]
async fn hc35_neighbour_other_parameters() {
    let f = fixture().await;
    for ct in [
        "application/json; charset=utf-8; profile=\"urn:x\"",
        "application/json;version=2",
        "application/json ; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
        "text/plain;charset=UTF-8",
        "application/vnd.api+json; charset=utf-8",
    ] {
        let (status, body) = f
            .send(
                "POST",
                "/v1/echo",
                Some(ct),
                r#"{"s": "Café über Ångström ✓"}"#,
            )
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"s": "Café über Ångström ✓"})),
            "{ct}"
        );
    }
}

/// RFC 9110 §8.3.1: type, subtype and the charset name are
/// case-insensitive.
#[tokio::test]
async fn hc35_neighbour_uppercase_type_and_charset() {
    let f = fixture().await;
    for ct in [
        "APPLICATION/JSON; CHARSET=UTF-8",
        "Application/Json; Charset=Utf-8",
        "TEXT/PLAIN",
        "APPLICATION/PROBLEM+JSON",
    ] {
        let (status, body) = f
            .send("POST", "/v1/echo", Some(ct), r#"{"s": "ü", "tags": ["✓"]}"#)
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"s": "ü", "tags": ["✓"]})),
            "{ct}"
        );
    }
}

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

/// DECISIONS.md: a charset does not make a non-JSON type acceptable; the
/// 415 names the media type.
#[tokio::test]
async fn hc35_neighbour_unsupported_type_with_charset() {
    let f = fixture().await;
    assert_error(
        f.send(
            "POST",
            "/v1/echo",
            Some("text/csv; charset=utf-8"),
            r#"{"s": "x"}"#,
        )
        .await,
        415,
        3,
        "unsupported content type `text/csv`: this route takes JSON (application/json)",
    );
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

// ---------------------------------------------------------------- HttpBody

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

/// Two common slips get a hint in the 400: a form body (what `curl -d`
/// sends without `-H 'Content-Type: application/json'`), and a body-field
/// route's value wrapped in an object named after the field.
#[tokio::test]
async fn common_body_mistakes_get_a_hint() {
    let f = fixture().await;
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/x-www-form-urlencoded"),
            &[],
            b"s=x&i32=1".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("sent as a form (as `curl -d` does)"),
        "{message}"
    );
    // Whatever letter the first key starts with (`t`, `f` and `n` start
    // JSON's literals too).
    for form in ["text=hello", "name=shelves/1", "flag=1", "n=5"] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/x-www-form-urlencoded"),
                &[],
                form.as_bytes().to_vec(),
            )
            .await;
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("sent as a form"), "{form}: {message}");
    }
    // A form-typed body that is JSON is read as JSON (curl's default type).
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/x-www-form-urlencoded"),
            &[],
            br#"{"s": "x"}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // JSON that fails for another reason (an unknown field, a syntax
    // error) gets no hint about the type: changing it would not help.
    for (body, named) in [(&br#"{"nope": "x"}"#[..], "nope"), (b"{bad json", "line 1")] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/x-www-form-urlencoded"),
                &[],
                body.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(named), "{message}");
        assert!(!message.contains("sent as a form"), "{message}");
    }
    assert_bad_request(
        f.post("/v1/echo/inner", r#"{"inner": {"label": "x"}}"#)
            .await,
        "this route's body is the value of `inner` itself",
    );
}
