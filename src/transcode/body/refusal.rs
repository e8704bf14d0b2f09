//! Why a JSON body was refused, said in the client's terms: the parser
//! underneath names what it met in its own words (`invalid unicode code
//! point`, `unexpected end of hex escape`), so a refusal looks at the body
//! again to say what is wrong and where. Only failed requests come here.

use std::ops::Range;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::json_path;
use crate::transcode::field_path::{OneofConflict, find_field_with};
use crate::transcode::{RequestError, suggest, text};

/// What a body is read as: the request message, or one field of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) desc: &'a MessageDescriptor,
    pub(super) field: Option<&'a FieldDescriptor>,
    /// Whether names match ignoring ASCII case
    /// (`json.case_insensitive_fields`).
    pub(super) case_insensitive: bool,
}

/// A refusal of the body as a whole, which comes before anything the
/// parser says about a value in it: bytes that are not UTF-8, or a JSON
/// value of another type than the message (or body field) is written as.
pub(super) fn whole_body(target: Target<'_>, json: &[u8]) -> Option<RequestError> {
    let reason = not_utf8(json).or_else(|| wrong_type(target.desc, target.field, json))?;
    Some(RequestError::Json { at: None, reason })
}

/// The parser's error `err` about the value at the JSON path `at` (the
/// body itself when `None`), in the client's terms.
pub(super) fn reason(
    target: Target<'_>,
    json: &[u8],
    at: Option<&str>,
    err: &serde_json::Error,
) -> String {
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
    if let Some(oneof) = message
        .strip_prefix("multiple fields provided for oneof '")
        .and_then(|rest| rest.strip_suffix('\''))
        && let Some((conflict, later)) = oneof_members(target, json, at, oneof)
    {
        return format!("{conflict} at {}", place(json, later));
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

/// The two members of `oneof` that the object at the JSON path `at` sets,
/// as the client spelt them (the later one first, as the query says it),
/// and where the later one's key is. A member given `null` is unset, and
/// sets nothing.
fn oneof_members(
    target: Target<'_>,
    json: &[u8],
    at: Option<&str>,
    oneof: &str,
) -> Option<(OneofConflict, usize)> {
    let root = match target.field {
        None => Kind::Message(target.desc.clone()),
        Some(field) => field.kind(),
    };
    let Kind::Message(desc) = suggest::walk(&root, at)? else {
        return None;
    };
    let object = json_path::find(json, at.unwrap_or_default())?;
    let mut set = json_path::members(json, object.start)?
        .into_iter()
        .filter(|member| {
            json[member.value.clone()] != *b"null"
                && find_field_with(&desc, &member.key, target.case_insensitive)
                    .and_then(|field| field.containing_oneof())
                    .is_some_and(|o| o.name() == oneof)
        });
    let other = set.next()?;
    let later = set.next()?;
    let conflict = OneofConflict {
        field: later.key,
        other: other.key,
        oneof: oneof.to_owned(),
    };
    Some((conflict, later.at))
}

/// The keys that spell the field `name` (its proto name), set to
/// something other than `null`, in the object that the message fields
/// `parents` lead to from the body: `a.b.name` as the body spells them.
pub(super) fn spelling(
    target: Target<'_>,
    json: &[u8],
    parents: &[FieldDescriptor],
    name: &str,
) -> Option<String> {
    let mut desc = match target.field {
        None => target.desc.clone(),
        Some(field) => field.kind().as_message()?.clone(),
    };
    let mut spelt: Vec<String> = target
        .field
        .map(|f| f.name().to_owned())
        .into_iter()
        .collect();
    let mut object = json.iter().position(|b| !b.is_ascii_whitespace())?;
    for parent in parents.iter().map(Some).chain([None]) {
        let members = json_path::members(json, object)?;
        let member = members.into_iter().find(|member| {
            json[member.value.clone()] != *b"null"
                && find_field_with(&desc, &member.key, target.case_insensitive).is_some_and(
                    |field| match parent {
                        Some(parent) => field.number() == parent.number(),
                        None => field.name() == name,
                    },
                )
        })?;
        spelt.push(member.key);
        let Some(parent) = parent else {
            return Some(spelt.join("."));
        };
        desc = parent.kind().as_message()?.clone();
        object = member.value.start;
    }
    None
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

/// `reason` with the name quoted after `from` (`'name'`) given as `to`
/// and a closing backtick; `None` when `from` is not in it.
fn requote(reason: &str, from: &str, to: &str) -> Option<String> {
    let (before, rest) = reason.split_once(from)?;
    let (name, after) = rest.split_once('\'')?;
    Some(format!("{before}{to}{name}`{after}"))
}

/// The parser's wording, with library-internal phrases made plain and
/// names quoted as the gateway's own messages quote them.
fn plain_reason(reason: String) -> String {
    let reason = requote(&reason, "unrecognized field name '", "unknown field `")
        .or_else(|| requote(&reason, "unrecognized enum value '", "unknown enum value `"))
        .unwrap_or(reason);
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
mod tests;
