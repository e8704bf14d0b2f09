//! Why a JSON body was refused, said in the client's terms: the parser
//! underneath names what it met in its own words (`invalid unicode code
//! point`, `unexpected end of hex escape`), so a refusal looks at the body
//! again to say what is wrong and where. Only failed requests come here.

use crate::transcode::RequestError;

/// A refusal of the body as a whole, which comes before anything the
/// parser says about a value in it: bytes that are not UTF-8.
pub(super) fn whole_body(json: &[u8]) -> Option<RequestError> {
    let reason = not_utf8(json)?;
    Some(RequestError::Json { at: None, reason })
}

/// The parser's error `err`, in the client's terms.
pub(super) fn reason(json: &[u8], err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.contains("hex escape")
        && let Some(reason) = unpaired_surrogate(json, offset(json, err))
    {
        return reason;
    }
    plain_reason(text)
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
            let reason = reason(json.as_bytes(), &parse_error(json.as_bytes()));
            assert!(reason.starts_with(expected), "{json}: {reason}");
        }
        // The one the parser stopped at, not an earlier pair or escape.
        let json = br#"{"a": "\ud83d\ude00 \\u", "s": "x\ud800\ud800"}"#;
        let reason = reason(json, &parse_error(json));
        assert!(reason.contains("`\\ud800` at line 1 column 34"), "{reason}");
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
