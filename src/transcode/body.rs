//! Request bodies: JSON into the whole message or into one field, and raw
//! bodies into `google.api.HttpBody`.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess};

use super::empty_any;
use super::kind::reaches;
use super::lenient;
use super::request::MAX_MESSAGE_DEPTH;
use super::strict::{self, Strict};
use super::writable::ANY;
use super::{Codec, RequestError};

mod json_path;
mod refusal;

/// The UTF-8 byte-order mark. RFC 8259 §8.1 lets a parser ignore one
/// before a JSON text; editors on Windows write it.
pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `json` without a leading byte-order mark, which every face reading
/// JSON (REST bodies, streamed messages, WebSocket frames, Connect)
/// ignores.
pub(super) fn strip_bom(json: &[u8]) -> &[u8] {
    json.strip_prefix(BOM).unwrap_or(json)
}

/// Whether the body holds no JSON value at all (treated as `{}`).
fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Whether the body is the JSON `null` (unset: an empty message).
fn is_null(body: &[u8]) -> bool {
    body.trim_ascii() == b"null"
}

/// How deep objects and arrays nest (strings skipped), counting no further
/// than `max + 1`.
fn json_depth(body: &[u8], max: usize) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > max {
                    return deepest;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A parsed body and how deep its JSON nests.
pub(super) struct Parsed {
    pub(super) message: DynamicMessage,
    pub(super) depth: usize,
}

/// Parses `body` as the whole request message.
pub(super) fn decode_message(
    desc: &MessageDescriptor,
    body: &[u8],
    codec: &Codec,
) -> Result<Parsed, RequestError> {
    decode(desc, None, body, codec)
}

/// Parses `body` as the JSON value of `field` of the request message.
pub(super) fn decode_field(
    desc: &MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
    codec: &Codec,
) -> Result<Parsed, RequestError> {
    decode(desc, Some(field), body, codec)
}

fn decode(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    body: &[u8],
    codec: &Codec,
) -> Result<Parsed, RequestError> {
    let body = strip_bom(body);
    // What is wrong with the body as a whole comes before what the parser
    // met in it.
    parse_body(desc, field, body, codec)
        .map_err(|err| refusal::whole_body(target(desc, field, codec), body).unwrap_or(err))
}

/// [`decode`] of a body without a byte-order mark.
fn parse_body(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    body: &[u8],
    codec: &Codec,
) -> Result<Parsed, RequestError> {
    // `null` leaves the message unset, or the list or map a `body` field
    // names (also one of `Value`, whose single values read `null`).
    let unset = |f: &FieldDescriptor| f.is_list() || f.is_map();
    if is_blank(body) || (field.is_none_or(unset) && is_null(body)) {
        return Ok(Parsed {
            message: DynamicMessage::new(desc.clone()),
            depth: 0,
        });
    }
    let depth = json_depth(body, codec.max_depth);
    if depth > codec.max_depth {
        return Err(RequestError::TooDeep(codec.max_depth));
    }
    let message = if codec.case_insensitive_fields || codec.case_insensitive_enums {
        decode_lenient(desc, field, body, codec)?
    } else {
        let mut de = serde_json::Deserializer::from_slice(body);
        strict::reset_recheck();
        let parsed = parse(desc, field, Strict(&mut de), codec);
        match parsed.and_then(|message| de.end().map(|()| message)) {
            // Two keys that may name one field (`page_size`, `pageSize`,
            // or any two where a field is renamed), or an `Any` with
            // `@type` late: the tree path checks with the descriptors.
            Ok(_) if strict::needs_recheck() || codec.renamed_fields => {
                decode_lenient(desc, field, body, codec)?
            }
            Ok(message) => message,
            Err(err) if past_recursion_limit(&err) => {
                return Err(RequestError::TooDeepMessage(MAX_MESSAGE_DEPTH));
            }
            // An `Any` with `@type` late is buffered by the parser and read
            // without this layer's checks and number forms (`"1e3"` for an
            // integer fails there and nowhere else): the tree path, which
            // moves `@type` first, judges it.
            Err(_) if strict::needs_recheck() => decode_lenient(desc, field, body, codec)?,
            // An empty `Any` (`{}`), which the parser refuses: the tree
            // path, which knows where an `Any` stands, reads it.
            Err(_) if strict::met_empty_object() && may_hold_any(desc, field) => {
                decode_lenient(desc, field, body, codec)?
            }
            Err(err) => return Err(explain(desc, field, body, codec, err)),
        }
    };
    Ok(Parsed { message, depth })
}

/// Whether the body (the message `desc`, or its `field`) can hold an `Any`.
fn may_hold_any(desc: &MessageDescriptor, field: Option<&FieldDescriptor>) -> bool {
    match field.map(FieldDescriptor::kind) {
        None => reaches(desc, &[ANY]),
        Some(Kind::Message(message)) => reaches(&message, &[ANY]),
        Some(_) => false,
    }
}

/// The opt-in path with case-insensitive names: through a JSON tree.
fn decode_lenient(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    body: &[u8],
    codec: &Codec,
) -> Result<DynamicMessage, RequestError> {
    let json_error = |err: serde_json::Error| RequestError::Json {
        at: None,
        reason: refusal::reason(target(desc, field, codec), body, None, &err),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut value: serde_json::Value =
        serde::Deserialize::deserialize(Strict(&mut de)).map_err(json_error)?;
    de.end().map_err(json_error)?;
    let renamed = match (field, &mut value) {
        (None, serde_json::Value::Object(object)) => lenient::normalize(desc, object, codec),
        // Not an object: the parser says what is wrong.
        (None, _) => Ok(lenient::Normalized::default()),
        (Some(field), value) => lenient::normalize_field(desc, field, value, codec),
    };
    let normalized = renamed.map_err(|e| RequestError::Json {
        at: Some(e.at).filter(|at| !at.is_empty()),
        reason: e.reason,
    })?;
    let mut track = serde_path_to_error::Track::new();
    let tracked = Strict(serde_path_to_error::Deserializer::new(&value, &mut track));
    let mut message = parse(desc, field, tracked, codec).map_err(|err| {
        if past_recursion_limit(&err) {
            return RequestError::TooDeepMessage(MAX_MESSAGE_DEPTH);
        }
        let path = clean_path(&track.path().to_string());
        RequestError::Json {
            reason: refusal::reason(target(desc, field, codec), body, Some(&path), &err),
            at: (!path.is_empty()).then_some(path),
        }
    })?;
    if normalized.empty_any {
        empty_any::restore(&mut message);
    }
    Ok(message)
}

/// How the JSON body `json` (the message `desc`, or its `field`) spells
/// the field named `name` (its proto name) in the object that `parents`
/// lead to, when it sets it: for a refusal in the client's spelling.
pub(super) fn spelling(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    json: &[u8],
    parents: &[FieldDescriptor],
    name: &str,
    codec: &Codec,
) -> Option<String> {
    refusal::spelling(target(desc, field, codec), strip_bom(json), parents, name)
}

/// What a refusal says the body is read as.
fn target<'a>(
    desc: &'a MessageDescriptor,
    field: Option<&'a FieldDescriptor>,
    codec: &Codec,
) -> refusal::Target<'a> {
    refusal::Target {
        desc,
        field,
        case_insensitive: codec.case_insensitive_fields,
    }
}

/// Whether a parse failed on the protobuf decoder's nesting limit.
/// prost-reflect builds a `Struct`, `Value` or `ListValue` from JSON by
/// encoding it and decoding it again, and that decoder refuses more than
/// 100 levels below the value: the whole message nests deeper still, so
/// the failure is the documented [`RequestError::TooDeepMessage`], not a
/// library's wording. The decoder's error reaches here only as text.
fn past_recursion_limit(err: &serde_json::Error) -> bool {
    let text = err.to_string();
    text.starts_with("error decoding: failed to decode Protobuf message: ")
        && text.contains("recursion limit reached")
}

/// Reads the message (or one field of it) from `de`.
fn parse<'de, D: de::Deserializer<'de>>(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    de: D,
    codec: &Codec,
) -> Result<DynamicMessage, D::Error> {
    match field {
        None => DynamicMessage::deserialize_with_options(desc.clone(), de, &codec.deserialize),
        Some(field) => DynamicMessage::deserialize_with_options(
            desc.clone(),
            one_field(field, de),
            &codec.deserialize,
        ),
    }
}

/// Parses again with path tracking to say where the error is. Errors are
/// rare, so the fast path does not pay for tracking.
fn explain(
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    body: &[u8],
    codec: &Codec,
    first: serde_json::Error,
) -> RequestError {
    let mut track = serde_path_to_error::Track::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
    let result = parse(desc, field, Strict(tracked), codec);
    // Paths are relative to the body as sent, also on `body: "field"`
    // routes, where the body is that field's value.
    let path = clean_path(&track.path().to_string());
    let at = (!path.is_empty()).then_some(path);
    let err = result.as_ref().err().unwrap_or(&first);
    let reason = refusal::reason(target(desc, field, codec), body, at.as_deref(), err);
    RequestError::Json { at, reason }
}

/// The tracked path without the `?` segments that stand for "unknown
/// position" (at the end of input, say), and without the root `.`.
fn clean_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let end = path
        .find(".?")
        .or_else(|| path.find("[?]"))
        .or_else(|| (path == "?").then_some(0));
    path[..end.unwrap_or(path.len())].to_owned()
}

/// Presents `value` as the JSON object `{"<field>": value}` without copying
/// the body, so the message parser treats it exactly like that field.
fn one_field<'a, 'de, D: de::Deserializer<'de>>(
    field: &'a FieldDescriptor,
    value: D,
) -> de::value::MapAccessDeserializer<OneField<'a, D>> {
    de::value::MapAccessDeserializer::new(OneField {
        name: Some(field.name()),
        value: Some(value),
    })
}

struct OneField<'a, D> {
    name: Option<&'a str>,
    value: Option<D>,
}

impl<'de, D: de::Deserializer<'de>> MapAccess<'de> for OneField<'_, D> {
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        match self.name.take() {
            Some(name) => seed.deserialize(name.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, D::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::custom("value requested twice")),
        }
    }
}

/// A `google.api.HttpBody` holding the raw body and its content type.
pub(super) fn http_body(
    desc: &MessageDescriptor,
    content_type: &str,
    data: bytes::Bytes,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    if !content_type.is_empty() {
        message.set_field_by_number(1, Value::String(content_type.to_owned()));
    }
    if !data.is_empty() {
        message.set_field_by_number(2, Value::Bytes(data));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_skips_strings() {
        assert_eq!(json_depth(br#"{"a": "[[[[[[["}"#, 2), 1);
        assert_eq!(json_depth(br#"{"a": [[1]]}"#, 2), 3);
        assert_eq!(json_depth(br#"{"a": "\"[[[["}"#, 1), 1);
        assert_eq!(json_depth(br#"[[[[[[[[[[[[[[[["#, 4), 5);
    }

    #[test]
    fn paths() {
        assert_eq!(clean_path("."), "");
        assert_eq!(clean_path("?"), "");
        assert_eq!(clean_path("member.?"), "member");
        assert_eq!(clean_path("tags[?]"), "tags");
        assert_eq!(clean_path("a.b[2].c"), "a.b[2].c");
    }

    #[test]
    fn null() {
        assert!(is_null(b" null\n"));
        assert!(!is_null(b"\"null\""));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBF{}"), b"{}");
        assert_eq!(strip_bom(b"\xEF\xBB{}"), b"\xEF\xBB{}");
        assert_eq!(strip_bom(b" \xEF\xBB\xBF{}"), b" \xEF\xBB\xBF{}");
    }

    #[test]
    fn blank() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \r\n\t"));
        assert!(!is_blank(b"{}"));
    }
}
