//! Refusals against bodies the parser underneath fails on.

use super::*;

fn target() -> Target<'static> {
    static SINK: std::sync::OnceLock<MessageDescriptor> = std::sync::OnceLock::new();
    Target {
        desc: SINK.get_or_init(|| crate::transcode::test_protos::descriptor("kitchen.v1.Sink")),
        field: None,
        case_insensitive: false,
    }
}

fn parse_error(json: &[u8]) -> serde_json::Error {
    serde_json::from_slice::<serde_json::Value>(json).unwrap_err()
}

#[test]
fn bytes_that_are_not_utf8_are_named_with_their_place() {
    assert_eq!(
        not_utf8(b"{\"s\": \"a\xFFb\"}").as_deref(),
        Some("the body is not valid UTF-8 (byte 0xFF at offset 8, line 1 column 9)")
    );
    assert_eq!(
        not_utf8(b"{\n\"s\": \"caf\xE9\"}").as_deref(),
        Some("the body is not valid UTF-8 (byte 0xE9 at offset 11, line 2 column 10)")
    );
    assert_eq!(not_utf8("{\"s\": \"café\"}".as_bytes()), None);
}

#[test]
fn unpaired_surrogates_are_named_as_written() {
    let high = "the string holds an unpaired UTF-16 surrogate escape `\\ud800` at line 1 column 8: a high surrogate";
    let low = "the string holds an unpaired UTF-16 surrogate escape `\\uDC00` at line 1 column 8: a low surrogate";
    for (json, expected) in [
        (r#"{"s": "\ud800"}"#, high),
        (r#"{"s": "\ud800x"}"#, high),
        (r#"{"s": "\ud800\u0041"}"#, high),
        (r#"{"s": "\ud800\n"}"#, high),
        (r#"{"s": "\uDC00"}"#, low),
    ] {
        let reason = reason(
            target(),
            json.as_bytes(),
            None,
            &parse_error(json.as_bytes()),
        );
        assert!(reason.starts_with(expected), "{json}: {reason}");
    }
    // The one the parser stopped at, not an earlier pair or escape.
    let json = br#"{"a": "\ud83d\ude00 \\u", "s": "x\ud800\ud800"}"#;
    let reason = reason(target(), json, None, &parse_error(json));
    assert!(reason.contains("`\\ud800` at line 1 column 34"), "{reason}");
}

#[test]
fn json_types_are_read_from_the_first_token() {
    for (json, expected) in [
        (&b"{\"a\": 1"[..], Some(JsonType::Object)),
        (b"[1", Some(JsonType::Array)),
        (b"\"x", Some(JsonType::String)),
        (b"-1.5e3,", Some(JsonType::Number)),
        (b"0", Some(JsonType::Number)),
        (b"true", Some(JsonType::Boolean)),
        (b"false ", Some(JsonType::Boolean)),
        (b"null", Some(JsonType::Null)),
        (b"name=x&n=1", None),
        (b"true=1", None),
        (b"01", None),
        (b"1x", None),
        (b"NaN", None),
        (b"", None),
    ] {
        assert_eq!(
            JsonType::of(json),
            expected,
            "{}",
            String::from_utf8_lossy(json)
        );
    }
}

#[test]
fn type_errors_are_said_in_json_words_where_the_value_starts() {
    let error = |json: &str, at: Option<&str>| {
        let mut de = serde_json::Deserializer::from_str(json);
        let err = serde::Deserialize::deserialize(&mut de)
            .map(|_: std::collections::BTreeMap<String, Vec<bool>>| ())
            .unwrap_err();
        reason(target(), json.as_bytes(), at, &err)
    };
    assert_eq!(
        error(r#"{"a": {}}"#, Some("a")),
        "expected a sequence, not an object at line 1 column 7"
    );
    assert_eq!(
        error(r#"{"a": [true, "x"]}"#, Some("a[1]")),
        "expected a boolean, not a string at line 1 column 14"
    );
    assert_eq!(
        error(r#"{"a": [true, "x"]}"#, Some("elsewhere")),
        "expected a boolean, not a string at line 1 column 16",
        "the parser's place when the path leads nowhere"
    );
    assert_eq!(
        error(" [1]", None),
        "expected a JSON object, not an array at line 1 column 2"
    );
}

#[test]
fn the_base64_decoders_words_are_made_plain() {
    assert_eq!(
        engine_fault("invalid base64: Invalid symbol 33, offset 1.").as_deref(),
        Some("character '!' at offset 1 is in neither the standard nor the URL-safe alphabet")
    );
    assert_eq!(
        engine_fault("invalid base64: Invalid symbol 61, offset 2.").as_deref(),
        Some("padding `=` at offset 2 comes before its end")
    );
    assert_eq!(
        engine_fault("invalid base64: Invalid symbol 195, offset 0.").as_deref(),
        Some("byte 0xC3 at offset 0 is in neither the standard nor the URL-safe alphabet")
    );
    assert_eq!(engine_fault("invalid base64: Invalid padding"), None);
}

#[test]
fn places_count_lines_and_bytes_from_one() {
    assert_eq!(place(b"{}", 0), "line 1 column 1");
    assert_eq!(place(b"{\n  \"a\"", 4), "line 2 column 3");
    let json = b"{\n\n  x}";
    let err = parse_error(json);
    assert_eq!(offset(json, &err), 6, "just past the `x`");
}
