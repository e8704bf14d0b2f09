//! Why a JSON body was refused, said in the client's terms: the parser
//! underneath names what it met in its own words (`invalid unicode code
//! point`, `unexpected end of hex escape`), so a refusal looks at the body
//! again to say what is wrong and where. Only failed requests come here.

use std::ops::Range;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::json_path;
use crate::transcode::{RequestError, text};

/// A refusal of the body as a whole, which comes before anything the
/// parser says about a value in it: bytes that are not UTF-8, or a JSON
/// value of another type than the message (or body field) is written as.
pub(super) fn whole_body(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    json: &[u8],
) -> Option<RequestError> {
    let reason = not_utf8(json).or_else(|| wrong_type(desc, field, json))?;
    Some(RequestError::Json { at: None, reason })
}

/// The parser's error `err` about the value at the JSON path `at` (the
/// body itself when `None`), in the client's terms.
pub(super) fn reason(json: &[u8], at: Option<&str>, err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.contains("hex escape")
        && let Some(reason) = unpaired_surrogate(json, offset(json, err))
    {
        return reason;
    }
    // The position the parser appends, kept for the message made plain.
    let (message, position) = match err.line() {
        0 => (text.as_str(), String::new()),
        line => {
            let position = format!(" at line {line} column {}", err.column());
            (text.strip_suffix(&position).unwrap_or(&text), position)
        }
    };
    // The value the parser refused, found again from its path, and where
    // it starts (the parser points past it or before it, depending on how
    // far it had read).
    let value = || json_path::find(json, at.unwrap_or_default());
    let start = |value: &Option<Range<usize>>| match value {
        Some(value) => format!(" at {}", place(json, value.start)),
        None => position.clone(),
    };
    if message.starts_with("invalid base64") {
        let value = value();
        let position = start(&value);
        let fault = value
            .and_then(|value| serde_json::from_slice::<String>(&json[value]).ok())
            .and_then(|text| text::base64_fault(&text))
            .or_else(|| engine_fault(message))
            .unwrap_or_else(|| "standard or URL-safe alphabet, padding optional".to_owned());
        return format!("not base64 ({fault}){position}");
    }
    if let Some(found) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = found.rsplit_once(", expected ")
    {
        let position = start(&value());
        return format!(
            "expected {}, not {}{position}",
            json_expected(expected),
            json_found(found)
        );
    }
    plain_reason(text)
}

/// What the base64 decoder's own words (`Invalid symbol 32, offset 3.`)
/// say, for when the value cannot be found again (a path through names
/// rewritten by the case-insensitive options).
fn engine_fault(message: &str) -> Option<String> {
    let (byte, offset) = message
        .split_once("Invalid symbol ")?
        .1
        .trim_end_matches('.')
        .split_once(", offset ")?;
    let byte: u8 = byte.parse().ok()?;
    let what = match byte {
        b'=' => {
            return Some(format!(
                "padding `=` at offset {offset} comes before its end"
            ));
        }
        0x20..=0x7E => format!("character {:?}", char::from(byte)),
        _ => format!("byte 0x{byte:02X}"),
    };
    Some(format!(
        "{what} at offset {offset} is in neither the standard nor the URL-safe alphabet"
    ))
}

/// The JSON types, as a refusal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    /// The type of the JSON value `json` begins with, if it begins with
    /// one (`{`, `[` and `"` are taken at their word, as a value cut
    /// short is still of that type; a form body `name=x` is none).
    fn of(json: &[u8]) -> Option<JsonType> {
        let token = json.split(|b| b" \t\r\n,:]}".contains(b)).next()?;
        Some(match token.first()? {
            b'{' => JsonType::Object,
            b'[' => JsonType::Array,
            b'"' => JsonType::String,
            _ if token == b"true" || token == b"false" => JsonType::Boolean,
            _ if token == b"null" => JsonType::Null,
            _ if std::str::from_utf8(token).is_ok_and(is_number) => JsonType::Number,
            _ => return None,
        })
    }

    fn with_article(self) -> &'static str {
        match self {
            JsonType::Object => "an object",
            JsonType::Array => "an array",
            JsonType::String => "a string",
            JsonType::Number => "a number",
            JsonType::Boolean => "a boolean",
            JsonType::Null => "null",
        }
    }
}

/// Whether `token` is a JSON number (`-0.5e3`; not `+1`, `.5` or `01`).
fn is_number(token: &str) -> bool {
    let digits = token.strip_prefix('-').unwrap_or(token);
    let first = digits.as_bytes().first();
    first.is_some_and(u8::is_ascii_digit)
        && !(digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit())
        && token.parse::<f64>().is_ok()
        && !token.contains(['i', 'I', 'n', 'N'])
}

/// The body's value when it is not of the type its target is written as:
/// an object for a message or a map, an array for a repeated field, where
/// the target decides it (not for scalars or well-known types with forms
/// of their own). `null` is left to the parser (it unsets a field).
fn wrong_type(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    json: &[u8],
) -> Option<String> {
    let start = json.iter().position(|b| !b.is_ascii_whitespace())?;
    let found = JsonType::of(&json[start..])?;
    let (expected, target) = match field {
        None => (JsonType::Object, format!("message `{}`", desc.full_name())),
        Some(field) if field.is_map() => {
            (JsonType::Object, format!("map field `{}`", field.name()))
        }
        Some(field) if field.is_list() => (
            JsonType::Array,
            format!("repeated field `{}`", field.name()),
        ),
        Some(field) => match field.kind() {
            Kind::Message(message) => match message.full_name() {
                "google.protobuf.ListValue" => {
                    (JsonType::Array, format!("field `{}`", field.name()))
                }
                "google.protobuf.Struct" | "google.protobuf.Any" | "google.protobuf.Empty" => {
                    (JsonType::Object, format!("field `{}`", field.name()))
                }
                name if name.starts_with("google.protobuf.") => return None,
                name => (JsonType::Object, format!("message `{name}`")),
            },
            _ => return None,
        },
    };
    if found == expected || found == JsonType::Null {
        return None;
    }
    let what = match expected {
        JsonType::Array => "a JSON array",
        _ => "a JSON object",
    };
    Some(format!(
        "expected {what} (for {target}), not {} at {}",
        found.with_article(),
        place(json, start)
    ))
}

/// What the parser underneath expected, in JSON's words.
fn json_expected(expected: &str) -> &str {
    match expected {
        "a map" => "a JSON object",
        "an empty map" => "an empty JSON object",
        "a list" => "a JSON array",
        "a rfc3339 timestamp string" => "an RFC 3339 timestamp string",
        other => other,
    }
}

/// What the parser met, in JSON's words (serde names Rust's types).
fn json_found(found: &str) -> &str {
    match found {
        "sequence" => "an array",
        "map" => "an object",
        "unit value" => "null",
        _ if found.starts_with("string ") => "a string",
        _ if found.starts_with("integer `") || found.starts_with("floating point `") => "a number",
        _ if found.starts_with("boolean `") => "a boolean",
        other => other,
    }
}

/// Where `err` happened, as a byte offset into `json` (just past what the
/// parser had read); the end when the error has no position.
fn offset(json: &[u8], err: &serde_json::Error) -> usize {
    let line_start = match err.line() {
        0 => return json.len(),
        1 => 0,
        line => json
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(line - 2)
            .map_or(json.len(), |(at, _)| at + 1),
    };
    (line_start + err.column()).min(json.len())
}

/// `line L column C` of the byte at `offset`, counted as the parser
/// counts them (lines and bytes from 1).
fn place(json: &[u8], offset: usize) -> String {
    let before = &json[..offset.min(json.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    format!("line {line} column {}", offset - line_start + 1)
}

/// Where `json` stops being UTF-8, as a reason; `None` when it is UTF-8.
fn not_utf8(json: &[u8]) -> Option<String> {
    let err = std::str::from_utf8(json).err()?;
    let at = err.valid_up_to();
    Some(format!(
        "the body is not valid UTF-8 (byte 0x{:02X} at offset {at}, {})",
        json[at],
        place(json, at)
    ))
}

/// The `\u` escape of a UTF-16 surrogate that has no partner, the one
/// the parser stopped at (at most one escape later, at `stop`), as a
/// reason.
fn unpaired_surrogate(json: &[u8], stop: usize) -> Option<String> {
    let mut found = None;
    let mut in_string = false;
    let mut i = 0;
    while found.is_none() && i < stop.min(json.len()) {
        let b = json[i];
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' => match hex_escape(json, i) {
                Some(high @ 0xD800..=0xDBFF) => {
                    if matches!(hex_escape(json, i + 6), Some(0xDC00..=0xDFFF)) {
                        i += 12;
                        continue;
                    }
                    found = (i + 12 >= stop).then_some((i, high));
                    i += 6;
                }
                Some(low @ 0xDC00..=0xDFFF) => {
                    found = (i + 12 >= stop).then_some((i, low));
                    i += 6;
                }
                Some(_) => i += 6,
                None => i += 2,
            },
            _ => i += 1,
        }
    }
    let (at, unit) = found?;
    let escape = String::from_utf8_lossy(&json[at..at + 6]);
    let rule = if unit < 0xDC00 {
        "a high surrogate (`\\ud800`-`\\udbff`) must be followed by a low one (`\\udc00`-`\\udfff`)"
    } else {
        "a low surrogate (`\\udc00`-`\\udfff`) must follow a high one (`\\ud800`-`\\udbff`)"
    };
    Some(format!(
        "the string holds an unpaired UTF-16 surrogate escape `{escape}` at {}: {rule}",
        place(json, at)
    ))
}

/// The code unit of the `\uXXXX` escape starting at `at`, if one does.
fn hex_escape(json: &[u8], at: usize) -> Option<u16> {
    let escape = json.get(at..at + 6)?;
    if escape[..2] != *b"\\u" {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

/// The parser's wording, with library-internal phrases made plain.
fn plain_reason(reason: String) -> String {
    reason
        .replace(
            "out of range integral type conversion attempted",
            "the number is out of range for the field's integer type",
        )
        .replace(
            "float value out of range",
            "the number is out of range for the field's type",
        )
        // The standard library's, from a string for an integer field.
        .replace(
            "invalid digit found in string",
            "expected an integer: a number, or a string holding one",
        )
        .replace(
            "cannot parse integer from empty string",
            "expected an integer, not an empty string",
        )
        .replace(
            "number too large to fit in target type",
            "the number is out of range for the field's integer type",
        )
        .replace(
            "number too small to fit in target type",
            "the number is out of range for the field's integer type",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let reason = reason(json.as_bytes(), None, &parse_error(json.as_bytes()));
            assert!(reason.starts_with(expected), "{json}: {reason}");
        }
        // The one the parser stopped at, not an earlier pair or escape.
        let json = br#"{"a": "\ud83d\ude00 \\u", "s": "x\ud800\ud800"}"#;
        let reason = reason(json, None, &parse_error(json));
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
            reason(json.as_bytes(), at, &err)
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
}
