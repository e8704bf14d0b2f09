//! The proto3 JSON mapping both ways: names, null, enums, Any, well-known
//! types, duplicate keys, FieldMask, output options and the
//! case-insensitive options (numbers are in `numbers.rs`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{assert_bad_request, fixture, fixture_with};
use crate::support;

/// The FieldMask paths the backend received.
fn mask_paths(f: &crate::fixture::Fixture) -> String {
    let sent = f.backend.last().message;
    let mask = sent.get_field_by_name("mask").unwrap();
    let paths = mask
        .as_message()
        .unwrap()
        .get_field_by_name("paths")
        .unwrap();
    format!("{paths:?}")
}

// ---------------------------------------------------------------- names

/// proto3 JSON: parsers accept the lowerCamelCase name, the `json_name`
/// and the proto field name; output uses the JSON name.
#[tokio::test]
async fn field_names_in_and_out() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"name_wrapper": "a", "customJSON": "b", "choice_b": 2, "i32Wrapper": 3, "by_id": {"1": "x"}}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"nameWrapper": "a", "choiceB": 2, "customJSON": "b", "i32Wrapper": 3, "byId": {"1": "x"}})
        )
    );
    // `custom_json`'s JSON name is customJSON, so `customJson` is unknown.
    assert_bad_request(
        f.post("/v1/echo", r#"{"customJson": "b"}"#).await,
        "unknown field `customJson`",
    );
}

/// proto3 JSON: a field given under its proto name and its JSON name in
/// one object is given twice; the reference parsers reject it.
#[tokio::test]
async fn one_field_under_two_names_is_400() {
    let f = fixture().await;
    assert_bad_request(
        f.post("/v1/echo", r#"{"name_wrapper": "a", "nameWrapper": "b"}"#)
            .await,
        "nameWrapper",
    );
    assert!(f.backend.records().is_empty());
}

/// The same with a `json_name` that is not the proto name in another case
/// (`json_name = "nickname"` for `alias`): the key check alone cannot see
/// the two are one field, the descriptors can, on every path a body takes
/// (whole body, a body field, nested, a streamed message, Connect).
#[tokio::test]
async fn one_renamed_field_under_two_names_is_400() {
    let set = support::compile_source(
        "renamed.proto",
        "syntax = \"proto3\"; package renamed.v1;\n\
         import \"google/api/annotations.proto\";\n\
         message Person { string alias = 1 [json_name = \"nickname\"]; Person friend = 2; }\n\
         message Wrap { Person person = 1; }\n\
         service People {\n\
           rpc Put(Person) returns (Person) { option (google.api.http) = { post: \"/v1/people\" body: \"*\" }; }\n\
           rpc Wrapped(Wrap) returns (Wrap) { option (google.api.http) = { post: \"/v1/wrapped\" body: \"person\" }; }\n\
         }\n",
    );
    let backend = support::EchoBackend::start(support::pool(&set)).await;
    let gateway = support::TestGateway::start(support::gateway::config(&set, &backend.url())).await;
    let client = support::http1();
    let post = |path: &str, body: &'static str| {
        client
            .post(gateway.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body) in [
        ("/v1/people", r#"{"alias": "a", "nickname": "b"}"#),
        ("/v1/people", r#"{"nickname": "b", "alias": "a"}"#),
        (
            "/v1/people",
            r#"{"friend": {"nickname": "b", "alias": "a"}}"#,
        ),
        ("/v1/wrapped", r#"{"alias": "a", "nickname": "b"}"#),
    ] {
        let got = crate::fixture::read(post(path, body).await.unwrap()).await;
        assert_bad_request(got, "given twice");
    }
    let connect = client
        .post(gateway.url("/renamed.v1.People/Put"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"alias": "a", "nickname": "b"}"#)
        .send()
        .await
        .unwrap();
    let (status, error) = crate::fixture::read(connect).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], "invalid_argument", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("given twice"),
        "{error}"
    );
    assert!(backend.records().is_empty());
    // Either name alone is fine.
    for body in [r#"{"alias": "a"}"#, r#"{"nickname": "a"}"#] {
        let (status, echoed) = crate::fixture::read(post("/v1/people", body).await.unwrap()).await;
        assert_eq!((status, echoed), (StatusCode::OK, json!({"nickname": "a"})));
    }
}

// ---------------------------------------------------------------- well-known types

/// proto3 JSON: each well-known type has its own JSON form (Timestamp and
/// Duration strings, FieldMask string, Struct object, Value any JSON,
/// Any with `@type`, wrappers as their scalar).
#[tokio::test]
async fn well_known_types_in_the_body() {
    let f = fixture().await;
    let request = json!({
        "at": "2024-01-02T03:04:05Z", "ttl": "-1.5s", "mask": "inner.label,nameWrapper",
        "attrs": {"a": [1, "x", null, {"b": true}]}, "anyValue": null,
        "detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "in any"},
        "big": "-12", "labels": {"k": "v"}, "fl": "Infinity", "db": 2.5e3
    });
    let (status, body) = f.post("/v1/echo", &request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "fl": "Infinity", "db": 2500, "labels": {"k": "v"}, "at": "2024-01-02T03:04:05Z", "ttl": "-1.500s",
            "mask": "inner.label,nameWrapper", "big": "-12", "attrs": {"a": [1, "x", null, {"b": true}]},
            "anyValue": null, "detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "in any"}
        })
    );
}

/// proto3 JSON: Timestamps are written in UTC with 0, 3, 6 or 9 fraction
/// digits; any offset is accepted on input. Durations likewise.
#[tokio::test]
async fn timestamp_and_duration_output_forms() {
    let f = fixture().await;
    for (at, out) in [
        ("2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.100Z"),
        ("2024-01-02T03:04:05.000001Z", "2024-01-02T03:04:05.000001Z"),
        (
            "2024-01-02T03:04:05.000000001Z",
            "2024-01-02T03:04:05.000000001Z",
        ),
        ("2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05-02:30", "2024-01-02T05:34:05Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
    ] {
        let (status, body) = f.post("/v1/echo", &json!({"at": at}).to_string()).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"at": out})), "{at}");
    }
    for (ttl, out) in [
        ("1.000000001s", "1.000000001s"),
        ("0.5s", "0.500s"),
        ("-0.000001s", "-0.000001s"),
        ("315576000000s", "315576000000s"),
    ] {
        let (status, body) = f.post("/v1/echo", &json!({"ttl": ttl}).to_string()).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"ttl": out})),
            "{ttl}"
        );
    }
    for bad in [
        r#"{"at": "2024-01-02 03:04:05Z"}"#,
        r#"{"at": 1704164645}"#,
        r#"{"ttl": "1"}"#,
        r#"{"ttl": "315576000001s"}"#,
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, "invalid JSON body at `");
    }
}

/// proto3 JSON: bytes are base64; parsers accept the standard and the
/// URL-safe alphabet, with or without padding; output is standard, padded.
#[tokio::test]
async fn bytes_in_json() {
    let f = fixture().await;
    for value in ["AAECA/8=", "AAECA/8", "AAECA_8", "AAECA_8="] {
        let (status, body) = f.post("/v1/echo", &json!({"b": value}).to_string()).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"b": "AAECA/8="})),
            "{value}"
        );
    }
    assert_bad_request(f.post("/v1/echo", r#"{"b": "*"}"#).await, "at `b`");
}

/// proto3 JSON (README "Errors"): bytes that are not base64 are a 400
/// naming the field's path, the character at fault and its offset in the
/// string, in plain words, and pointing at the string; for a repeated
/// field's element and a `BytesValue` alike.
#[tokio::test]
async fn bytes_that_are_not_base64_name_the_character_and_its_offset() {
    let f = fixture().await;
    let neither = "is in neither the standard nor the URL-safe alphabet";
    for (json, expected) in [
        (
            r#"{"b": "not base64!"}"#,
            format!("at `b`: not base64 (character ' ' at offset 3 {neither}) at line 1 column 7"),
        ),
        (
            r#"{"blobs": ["AA==", "a!"]}"#,
            format!(
                "at `blobs[1]`: not base64 (character '!' at offset 1 {neither}) at line 1 column 20"
            ),
        ),
        (
            r#"{"blob": "abcde"}"#,
            "at `blob`: not base64 (its 5 characters leave one over after the last group of four, which base64 never does) at line 1 column 10".to_owned(),
        ),
        (
            r#"{"b": "ab+_"}"#,
            "at `b`: not base64 (it mixes the standard alphabet (`+` at offset 2) with the URL-safe one (`_` at offset 3)) at line 1 column 7".to_owned(),
        ),
    ] {
        let (status, body) = f.post("/v1/echo", json).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"code": 3, "message": format!("invalid JSON body {expected}"), "details": []})
            )
        );
    }
    assert!(f.backend.records().is_empty());
}

/// proto3 JSON: an Any is `@type` plus the message's fields, or `@type`
/// plus `value` for a well-known type with a special form; an Any whose
/// type is unknown cannot be read and is a 400.
#[tokio::test]
async fn any_with_known_and_unknown_types() {
    let f = fixture().await;
    let detail = json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.5s"});
    let (status, body) = f
        .post("/v1/echo", &json!({"detail": detail}).to_string())
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"detail": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"}})
        )
    );
    for bad in [
        r#"{"detail": {"@type": "type.googleapis.com/no.Such", "x": 1}}"#,
        r#"{"detail": {"@type": "type.googleapis.com/no.Such"}}"#,
        r#"{"detail": {"label": "no type"}}"#,
        r#"{"detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "nope": 1}}"#,
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, "at `detail");
    }
    assert_eq!(f.backend.records().len(), 1);
}

/// proto3 JSON puts no order on an Any's keys. With `@type` after the
/// packed fields the message is read the same, with every check a field
/// gets elsewhere: exact integers, nanosecond precision, one name per
/// field, no repeated key.
#[tokio::test]
async fn any_with_type_last_is_checked_like_any_other() {
    let f = fixture().await;
    let sink = "type.googleapis.com/kitchen.v1.Sink";
    let (status, body) = f
        .post(
            "/v1/echo",
            &format!(r#"{{"detail": {{"s": "x", "i64": "9007199254740993", "@type": "{sink}"}}}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"detail": {"@type": sink, "s": "x", "i64": "9007199254740993"}})
    );
    // Nested: an Any in a well-known Any, both with the type last.
    let (status, body) = f
        .post(
            "/v1/echo",
            &format!(
                r#"{{"detail": {{"value": {{"s": "y", "@type": "{sink}"}}, "@type": "type.googleapis.com/google.protobuf.Any"}}}}"#
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"]["value"], json!({"@type": sink, "s": "y"}));
    for (bad, reason) in [
        (r#""i64": 1e18"#, "2^53 or more"),
        (
            r#""at": "2020-01-01T00:00:00.1234567891Z""#,
            "nine fractional digits",
        ),
        (r#""fl": "1e400""#, "not a number this field can hold"),
        (r#""customJSON": "a", "custom_json": "b""#, "given twice"),
        (r#""s": "a", "s": "b""#, "duplicate key"),
        (
            r#""detail": {"i64": 1e18, "@type": "type.googleapis.com/kitchen.v1.Sink"}"#,
            "2^53 or more",
        ),
    ] {
        let body = format!(r#"{{"detail": {{{bad}, "@type": "{sink}"}}}}"#);
        assert_bad_request(f.post("/v1/echo", &body).await, reason);
    }
    assert_eq!(f.backend.records().len(), 2);
    // The number forms a field takes elsewhere, whichever key comes first.
    for (given, read) in [(r#""1e3""#, "1000"), (r#""1.0""#, "1"), ("2.5e1", "25")] {
        for body in [
            format!(r#"{{"detail": {{"i64": {given}, "@type": "{sink}"}}}}"#),
            format!(r#"{{"detail": {{"@type": "{sink}", "i64": {given}}}}}"#),
            format!(
                r#"{{"detail": {{"value": "{}", "@type": "type.googleapis.com/google.protobuf.Int64Value"}}}}"#,
                given.trim_matches('"')
            ),
        ] {
            let (status, echoed) = f.post("/v1/echo", &body).await;
            assert_eq!(status, StatusCode::OK, "{body}: {echoed}");
            let value = &echoed["detail"];
            let got = value.get("i64").unwrap_or(&value["value"]);
            assert_eq!(got, read, "{body}: {echoed}");
        }
    }
}

/// proto3 JSON: the keys of an integer map are the integers' text; `1`,
/// `01` and `+1` are one key, so giving it twice is a 400 as a repeated
/// field would be, never a silent last-wins.
#[tokio::test]
async fn integer_map_keys_given_twice() {
    let f = fixture().await;
    for (body, key) in [
        (r#"{"byId": {"1": "a", "01": "b"}}"#, "01"),
        (r#"{"byId": {"+7": "a", "7": "b"}}"#, "7"),
        (r#"{"byId": {"0": "a", "-0": "b"}}"#, "-0"),
    ] {
        assert_bad_request(f.post("/v1/echo", body).await, &format!("at `byId[{key}]`"));
    }
    let (status, body) = f
        .post("/v1/echo", r#"{"byId": {"1": "a", "10": "b", "-1": "c"}}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"byId": {"1": "a", "10": "b", "-1": "c"}}));
}

/// Bodies that need the descriptor-driven second look (a late `@type`, a
/// field under two names) report errors like any other: the path relative
/// to the body as sent, both spellings of a field given twice.
#[tokio::test]
async fn second_look_errors_read_like_first_look_errors() {
    let f = fixture().await;
    assert_bad_request(
        f.post("/v1/echo", r#"{"custom_json": "a", "customJSON": "b"}"#)
            .await,
        "at `customJSON`: field `custom_json` is given twice, as `custom_json` and as `customJSON`",
    );
    // `body: "inner"`: paths start inside the body, not at `inner`.
    assert_bad_request(
        f.post(
            "/v1/echo/inner",
            r#"{"label": 5, "child": {"x": 1, "@type": "t"}}"#,
        )
        .await,
        "at `label`",
    );
}

// ---------------------------------------------------------------- null

/// proto3 JSON: null means the default (unset) for every field except a
/// `google.protobuf.Value`, which takes `null_value`; inside Struct nulls
/// are values.
#[tokio::test]
async fn null_means_unset_except_for_value() {
    let f = fixture().await;
    let (_, body) = f
        .post(
            "/v1/echo",
            r#"{"s": null, "inner": null, "tags": null, "anyValue": null, "attrs": {"n": null}}"#,
        )
        .await;
    assert_eq!(body, json!({"attrs": {"n": null}, "anyValue": null}));
}

/// proto3 JSON: inside a ListValue (a field or a list in a Struct) a null
/// is a `null_value` element and keeps its place.
#[tokio::test]
async fn hc17_neighbour_null_in_lists() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"list": [1, null, "a", [null], {"x": null}], "attrs": {"l": [null, null]}}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"attrs": {"l": [null, null]}, "list": [1, null, "a", [null], {"x": null}]})
        )
    );
}

/// proto3 JSON: nulls nested at any depth in Struct values are kept.
#[tokio::test]
async fn hc17_neighbour_nested_struct_nulls() {
    let f = fixture().await;
    let nested = json!({"a": {"b": {"c": null, "d": [{"e": null}]}}, "f": null});
    let (status, body) = f
        .post(
            "/v1/echo",
            &json!({"attrs": nested, "anyValue": {"g": null}}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"attrs": nested, "anyValue": {"g": null}})
        )
    );
    assert_eq!(f.backend.last().json["attrs"], nested);
}

/// proto3 JSON: null for a repeated or map field is the empty list or map
/// (unset), not an error.
#[tokio::test]
async fn hc17_neighbour_null_for_repeated_and_map_fields() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"tags": null, "ids": null, "items": null, "colors": null, "labels": null, "inners": null, "byId": null, "s": "x"}"#,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "x"})));
}

/// proto3 JSON: null for wrappers, Timestamp, Duration, FieldMask, Any,
/// Struct, ListValue and enums is unset (only Value is special).
#[tokio::test]
async fn hc17_neighbour_null_for_wrappers_and_well_known_types() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"big": null, "on": null, "nameWrapper": null, "at": null, "ttl": null, "mask": null, "detail": null, "attrs": null, "list": null, "color": null, "i32": null}"#,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let sent = f.backend.last().message;
    for name in ["big", "on", "name_wrapper", "at", "attrs", "list", "detail"] {
        assert!(!sent.has_field_by_name(name), "{name} stays unset");
    }
}

/// proto3 JSON: a null Value field is present (set to `null_value`); an
/// absent one is not.
#[tokio::test]
async fn hc17_neighbour_value_null_is_present_absent_is_not() {
    let f = fixture().await;
    f.post("/v1/echo", r#"{"anyValue": null}"#).await;
    assert!(f.backend.last().message.has_field_by_name("any_value"));
    f.post("/v1/echo", r#"{}"#).await;
    assert!(!f.backend.last().message.has_field_by_name("any_value"));
}

/// proto3 JSON: a null element of a list of scalars or messages, or a null
/// map value, has no meaning (only Value elements can be null): 400.
#[tokio::test]
async fn hc17_neighbour_null_elements_outside_struct_are_400() {
    let f = fixture().await;
    for (body, at) in [
        (r#"{"tags": ["a", null]}"#, "at `tags"),
        (r#"{"items": [null]}"#, "at `items"),
        (r#"{"labels": {"k": null}}"#, "at `labels"),
    ] {
        assert_bad_request(f.post("/v1/echo", body).await, at);
    }
    assert!(f.backend.records().is_empty());
}

// ---------------------------------------------------------------- enums

/// proto3 JSON: an unknown enum number is kept as the number (in and out);
/// an unknown enum name is a 400.
#[tokio::test]
async fn unknown_enum_numbers_are_kept_unknown_names_are_400() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"color": 7, "colors": [1, 9, "GREEN"]}"#)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"color": 7, "colors": ["RED", 9, "GREEN"]})
        )
    );
    assert_eq!(
        f.backend
            .last()
            .message
            .get_field_by_name("color")
            .unwrap()
            .as_enum_number(),
        Some(7)
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"colors": ["RED", "BLUE"]}"#).await,
        "at `colors[1]`",
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"color": "green"}"#).await,
        "at `color`",
    );
}

/// proto3 JSON: with `ignore_unknown_fields`, parsers also drop unknown
/// enum names (README "Limits"); unknown numbers are still kept.
#[tokio::test]
async fn ignore_unknown_fields_drops_unknown_enum_names_too() {
    let f = fixture_with(|c| c.json.ignore_unknown_fields = true).await;
    let (status, body) = f
        .post("/v1/echo", r#"{"color": "BLUE", "s": "x", "colors": [5]}"#)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "x", "colors": [5]}))
    );
}

// ---------------------------------------------------------------- errors in JSON

/// proto3 JSON: a body that does not parse or does not fit the message is
/// rejected; DECISIONS.md: the 400 names the JSON path, duplicate keys
/// included.
#[tokio::test]
async fn json_errors_point_at_the_field() {
    let f = fixture().await;
    for (body, needle) in [
        (r#"{"inner": {"count": "many"}}"#, "at `inner.count`"),
        (r#"{"inner": {"nope": 1}}"#, "at `inner`"),
        (r#"{"nope": 1}"#, "unknown field `nope`"),
        (
            r#"{"inner": {"lable": "x"}}"#,
            "unknown field `lable` at line 1 column 18 (did you mean `label`?)",
        ),
        (r#"{"color": "PINK"}"#, "unknown enum value `PINK`"),
        (r#"{"tags": [1]}"#, "at `tags[0]`"),
        (r#"{"color": "BLUE"}"#, "at `color`"),
        (r#"{"i32": 1.5}"#, "at `i32`"),
        (r#"{"i32": 4294967296}"#, "at `i32`"),
        (
            r#"{"detail": {"@type": "type.googleapis.com/no.Such", "x": 1}}"#,
            "at `detail`",
        ),
        (r#"{"at": "tomorrow"}"#, "at `at`"),
        ("{", "invalid JSON body"),
        ("[]", "invalid JSON body"),
        (r#"{"s": "x"} trailing"#, "invalid JSON body"),
        ("\u{1}", "invalid JSON body"),
        (r#"{"s": "x", "s": "y"}"#, "duplicate key `s`"),
        (
            r#"{"inner": {"label": "x", "label": "y"}}"#,
            "at `inner`: duplicate key `label`",
        ),
        (r#"{"labels": {"k": "1", "k": "2"}}"#, "duplicate key `k`"),
    ] {
        assert_bad_request(f.post("/v1/echo", body).await, needle);
    }
    assert!(f.backend.records().is_empty());
}

/// DECISIONS.md (duplicate keys rejected, as the reference parsers do):
/// keys that are equal once their escapes are decoded are duplicates,
/// inside Struct values and list elements too.
#[tokio::test]
async fn duplicate_keys_after_unescaping_and_in_struct() {
    let f = fixture().await;
    for (body, needle) in [
        (r#"{"s": "a", "\u0073": "b"}"#, "duplicate key `s`"),
        (r#"{"attrs": {"k": 1, "k": 2}}"#, "duplicate key `k`"),
        (
            r#"{"items": [{"label": "a", "label": "b"}]}"#,
            "duplicate key `label`",
        ),
        (r#"{"list": [{"x": 1, "x": 1}]}"#, "duplicate key `x`"),
    ] {
        assert_bad_request(f.post("/v1/echo", body).await, needle);
    }
}

/// proto3 JSON: `ignore_unknown_fields` drops unknown fields of any shape
/// instead of a 400.
#[tokio::test]
async fn unknown_body_fields_can_be_ignored() {
    let f = fixture_with(|c| c.json.ignore_unknown_fields = true).await;
    let (status, body) = f
        .post("/v1/echo", r#"{"nope": {"deep": [1]}, "s": "x"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"s": "x"}));
}

// ---------------------------------------------------------------- FieldMask

/// proto3 JSON: a FieldMask is one string of comma-separated lowerCamelCase
/// paths; each segment, nested ones included, becomes snake_case.
#[tokio::test]
async fn hc29_neighbour_nested_camel_case_paths() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"mask": "inner.child.label,nameWrapper,inner.childCount,flWrapper"}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"mask": "inner.child.label,nameWrapper,inner.childCount,flWrapper"})
        )
    );
    assert_eq!(
        mask_paths(&f),
        r#"List([String("inner.child.label"), String("name_wrapper"), String("inner.child_count"), String("fl_wrapper")])"#
    );
}

/// proto3 JSON: the FieldMask as the body field itself reads the same
/// string form.
#[tokio::test]
async fn hc29_neighbour_mask_as_the_body_field() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/echo/mask?s=x", r#""a.bC,dE""#).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "x", "mask": "a.bC,dE"}))
    );
    assert_eq!(mask_paths(&f), r#"List([String("a.b_c"), String("d_e")])"#);
}

/// proto3 JSON: the object form `{"paths": [...]}` is not the FieldMask
/// JSON form and is a 400 at the field; an empty string is an empty mask.
#[tokio::test]
async fn hc29_neighbour_object_form_is_400_and_empty_string_is_empty() {
    let f = fixture().await;
    assert_bad_request(
        f.post("/v1/echo", r#"{"mask": {"paths": ["a"]}}"#).await,
        "at `mask`",
    );
    assert_bad_request(f.post("/v1/echo", r#"{"mask": ["a"]}"#).await, "at `mask`");
    let (status, body) = f.post("/v1/echo", r#"{"mask": ""}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mask": ""})));
    assert_eq!(mask_paths(&f), "List([])");
}

/// proto3 JSON: snake_case paths from the backend are written back as
/// lowerCamelCase.
#[tokio::test]
async fn hc29_neighbour_mask_output_is_camel_case() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?mask=page_count,author.display_name,a.b_c_d")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"mask": "pageCount,author.displayName,a.bCD"})
        )
    );
}

/// A path segment starting with `_` is written with a capital (`_a` is
/// `A` in lowerCamelCase), and what the gateway writes it reads back: the
/// query's `_a` and the body's `A` reach the backend alike.
#[tokio::test]
async fn mask_paths_with_a_leading_underscore_round_trip() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?mask=_a,b._c").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mask": "A,b.C"})));
    let (status, body) = f.post("/v1/echo", r#"{"mask": "A,b.C"}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mask": "A,b.C"})));
    assert_eq!(mask_paths(&f), r#"List([String("_a"), String("b._c")])"#);
}

// ---------------------------------------------------------------- output

/// proto3 JSON: the output options (proto names, enums as numbers,
/// emitting unpopulated fields as `0`, `false`, `[]`, `{}`, the zero enum
/// name).
#[tokio::test]
async fn output_options() {
    let query = "/v1/echo?name_wrapper=n&color=GREEN&inner.label=x";
    let f = fixture_with(|c| c.json.use_proto_names = true).await;
    assert_eq!(
        f.get(query).await.1,
        json!({"color": "GREEN", "inner": {"label": "x"}, "name_wrapper": "n"})
    );

    let f = fixture_with(|c| c.json.enums_as_ints = true).await;
    assert_eq!(
        f.get(query).await.1,
        json!({"color": 2, "inner": {"label": "x"}, "nameWrapper": "n"})
    );

    let f = fixture_with(|c| c.json.emit_unpopulated = true).await;
    let body = f.get("/v1/echo?s=x").await.1;
    assert_eq!(body["i64"], "0");
    assert_eq!(body["flag"], false);
    assert_eq!(body["tags"], json!([]));
    assert_eq!(body["labels"], json!({}));
    assert_eq!(body["color"], "COLOR_UNSPECIFIED");
    assert_eq!(body["s"], "x");
}

/// proto3 JSON: output options reach nested messages, lists and maps;
/// unset message fields and oneofs are never written.
#[tokio::test]
async fn output_options_apply_everywhere() {
    let f = fixture_with(|c| {
        c.json.use_proto_names = true;
        c.json.enums_as_ints = true;
    })
    .await;
    let (status, body) = f
        .get("/v1/echo?colors=GREEN&inners[k].child.label=x&items[0].count=1&custom_json=c")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({
                "colors": [2], "custom_json": "c", "items": [{"count": 1}],
                "inners": {"k": {"child": {"label": "x"}}}
            })
        )
    );
    let f = fixture_with(|c| c.json.emit_unpopulated = true).await;
    let body = f.get("/v1/echo").await.1;
    for unset in ["inner", "at", "nameWrapper", "attrs", "anyValue", "detail"] {
        assert!(
            body.get(unset).is_none_or(Value::is_null),
            "{unset}: {}",
            body[unset]
        );
    }
    assert_eq!(body["choiceA"], Value::Null, "no oneof member is invented");
}

/// proto3 JSON: output writes fields in field-number order, compact
/// (DECISIONS.md output defaults).
#[tokio::test]
async fn fields_are_written_in_field_number_order() {
    let f = fixture().await;
    let response = f
        .client
        .get(
            f.gateway
                .url("/v1/echo?small=1&s=a&tags=t&i32=2&customJSON=z"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"s":"a","i32":2,"tags":["t"],"small":1,"customJSON":"z"}"#
    );
}

// ---------------------------------------------------------------- case-insensitive options

/// proto3 JSON: names are case-sensitive by default; the opt-in
/// `json.case_insensitive_enums`/`_fields` match them ignoring case in
/// body, path and query, and one field under two spellings is an error.
#[tokio::test]
async fn case_insensitive_names_are_opt_in() {
    let f = fixture().await;
    assert_bad_request(f.get("/v1/echo?color=green").await, "`color`");
    assert_bad_request(f.post("/v1/echo", r#"{"COLOR": "GREEN"}"#).await, "COLOR");

    let f = fixture_with(|c| {
        c.json.case_insensitive_enums = true;
        c.json.case_insensitive_fields = true;
    })
    .await;
    let (status, body) = f.get("/v1/echo?Color=green&COLORS=red&Inner.LABEL=x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"color": "GREEN", "colors": ["RED"], "inner": {"label": "x"}})
    );
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"COLOR": "green", "Inner": {"Label": "y", "CHILD": {"count": 1}}, "items": [{"LABEL": "i"}], "nameWRAPPER": "w"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"color": "GREEN", "inner": {"label": "y", "child": {"count": 1}}, "nameWrapper": "w", "items": [{"label": "i"}]})
    );
    // One field under two names is an error here, duplicates too.
    assert_bad_request(
        f.post("/v1/echo", r#"{"color": "RED", "Color": "GREEN"}"#)
            .await,
        "given twice",
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"s": "a", "s": "b"}"#).await,
        "duplicate key",
    );
    // Unknown names still fail, and path variables take enum names too.
    assert_bad_request(f.post("/v1/echo", r#"{"nope": 1}"#).await, "nope");
    let (status, body) = f
        .send("PUT", "/v1/echo/x/1/green", Some("application/json"), "{}")
        .await;
    assert_eq!(
        (status, body["color"].clone()),
        (StatusCode::OK, json!("GREEN"))
    );
}

/// proto3 JSON: Struct and map keys are data, so the case-insensitive
/// options never touch them; each option works alone (enums without
/// field names, and the reverse).
#[tokio::test]
async fn case_insensitive_options_leave_data_alone() {
    let f = fixture_with(|c| c.json.case_insensitive_enums = true).await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"color": "gReEn", "labels": {"KEY": "V"}, "attrs": {"Mixed": 1}}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"color": "GREEN", "labels": {"KEY": "V"}, "attrs": {"Mixed": 1}})
        )
    );
    // Field names stay case-sensitive with only the enum option.
    assert_bad_request(f.post("/v1/echo", r#"{"Color": "RED"}"#).await, "Color");
    let (status, body) = f.get("/v1/echo?colors=red&colors=Green").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"colors": ["RED", "GREEN"]}))
    );

    let f = fixture_with(|c| c.json.case_insensitive_fields = true).await;
    assert_bad_request(
        f.post("/v1/echo", r#"{"COLOR": "green"}"#).await,
        "at `color`",
    );
    let (status, body) = f.post("/v1/echo", r#"{"COLOR": "GREEN"}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"color": "GREEN"})));
}
