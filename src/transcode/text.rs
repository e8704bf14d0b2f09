//! Values given as text — path variables and query parameters — parsed for
//! a field's type.
//!
//! Scalars use their proto3 JSON text forms. Wrapper types are bound like
//! the scalar they wrap; `Timestamp` (RFC 3339), `Duration` (`1.5s`) and
//! `FieldMask` (comma-separated paths, lowerCamelCase or snake_case) use
//! their JSON string forms. Other messages cannot be set from text.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost_reflect::{DynamicMessage, EnumDescriptor, Kind, MessageDescriptor, Value};
use serde::de::IntoDeserializer;

/// Base64 as bytes fields read it everywhere (path, query and body, the
/// latter as prost-reflect and Go's protojson read it): padding optional,
/// trailing bits allowed (`YR==` is `a`).
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// The standard alphabet.
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
/// The URL-safe alphabet, for text with `-` or `_`.
pub(super) const BASE64_URL: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet, with or without padding.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let engine = if text.contains(['-', '_']) {
        &BASE64_URL
    } else {
        &BASE64
    };
    engine.decode(text).map_err(|e| {
        let fault = base64_fault(text).unwrap_or_else(|| e.to_string());
        format!("not base64 ({fault})")
    })
}

/// Why `text` is not base64 as bytes fields take it (either alphabet,
/// padding optional), in plain words: the decoder underneath names a
/// character by its number and takes one alphabet at a time. `None` when
/// it is base64. Offsets count characters from 0.
pub(crate) fn base64_fault(text: &str) -> Option<String> {
    let mut standard = None;
    let mut url_safe = None;
    let mut symbols = 0usize;
    // Where the padding starts, and how long it is.
    let mut padding: Option<(usize, usize)> = None;
    for (offset, c) in text.chars().enumerate() {
        if c == '=' {
            padding.get_or_insert((offset, 0)).1 += 1;
            continue;
        }
        if let Some((at, _)) = padding {
            return Some(format!(
                "padding `=` at offset {at} comes before its end; padding may only end it"
            ));
        }
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' => {}
            '+' | '/' => _ = standard.get_or_insert((offset, c)),
            '-' | '_' => _ = url_safe.get_or_insert((offset, c)),
            _ => {
                return Some(format!(
                    "character {c:?} at offset {offset} is in neither the standard nor the URL-safe alphabet"
                ));
            }
        }
        symbols += 1;
    }
    if let (Some((a, a_char)), Some((b, b_char))) = (standard, url_safe) {
        return Some(format!(
            "it mixes the standard alphabet (`{a_char}` at offset {a}) with the URL-safe one (`{b_char}` at offset {b})"
        ));
    }
    if symbols % 4 == 1 {
        return Some(format!(
            "its {symbols} characters leave one over after the last group of four, which base64 never does"
        ));
    }
    let (at, count) = padding?;
    // Two characters end in at most two `=`, three in at most one.
    let most = [0, 0, 2, 1][symbols % 4];
    (count > most).then(|| {
        let takes = match symbols % 4 {
            0 => "its characters fill whole groups of four, which take none".to_owned(),
            rest => format!("a last group of {rest} characters takes at most {most}"),
        };
        format!("it ends in {count} `=` (from offset {at}), but {takes}")
    })
}

/// Parses `text` as a value of `kind` (one element for repeated fields).
pub fn parse(kind: &Kind, text: &str) -> Result<Value, String> {
    parse_with(kind, text, false)
}

/// [`parse`], with enum names matched ignoring ASCII case when
/// `case_insensitive_enums` (after an exact match fails).
pub fn parse_with(kind: &Kind, text: &str, case_insensitive_enums: bool) -> Result<Value, String> {
    Ok(match kind {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => {
            // A `+` of standard base64 arrives as a space when the client
            // did not escape it in the query string.
            let text = if text.contains(' ') {
                text.replace(' ', "+")
            } else {
                text.to_owned()
            };
            Value::Bytes(decode_base64(&text)?.into())
        }
        Kind::Bool => Value::Bool(parse_bool(text)?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(parse_int(text)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(parse_int(text)?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(parse_int(text)?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(parse_int(text)?),
        Kind::Float => {
            let v = parse_float(text)?;
            let narrowed = v as f32;
            if v.is_finite() && narrowed.is_infinite() {
                return Err(format!("`{text}` is out of range for a float"));
            }
            Value::F32(narrowed)
        }
        Kind::Double => Value::F64(parse_float(text)?),
        Kind::Enum(desc) => Value::EnumNumber(parse_enum(desc, text, case_insensitive_enums)?),
        Kind::Message(desc) => Value::Message(parse_message(desc, text)?),
    })
}

/// Whether a field of this kind can be set from text.
pub fn is_text_kind(kind: &Kind) -> bool {
    match kind {
        Kind::Message(desc) => is_text_message(desc),
        _ => true,
    }
}

fn is_text_message(desc: &MessageDescriptor) -> bool {
    matches!(
        desc.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// A boolean in a path or query: `true` or `false` in the spellings Go's
/// `strconv.ParseBool` (and so grpc-gateway) takes for them, or `1`/`0`.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" | "True" | "TRUE" | "1" => Ok(true),
        "false" | "False" | "FALSE" | "0" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean (true, false, 1 or 0)")),
    }
}

fn parse_int<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse::<T>().map_err(|_| {
        let what = std::any::type_name::<T>();
        format!("`{text}` is not a valid {what} integer")
    })
}

fn parse_float(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => {
            // Rust also reads "inf" and "nan"; proto3 JSON spells them
            // only as above.
            if !text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            {
                return Err(format!("`{text}` is not a number"));
            }
            let v: f64 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            if v.is_infinite() {
                return Err(format!("`{text}` is out of range for a double"));
            }
            Ok(v)
        }
    }
}

fn parse_enum(desc: &EnumDescriptor, text: &str, case_insensitive: bool) -> Result<i32, String> {
    if let Some(value) = desc.get_value_by_name(text) {
        return Ok(value.number());
    }
    if case_insensitive
        && let Some(value) = desc.values().find(|v| v.name().eq_ignore_ascii_case(text))
    {
        return Ok(value.number());
    }
    text.parse::<i32>().map_err(|_| {
        format!(
            "`{text}` is not a value of enum {} ({})",
            desc.full_name(),
            super::suggest::enum_values(desc)
        )
    })
}

fn parse_message(desc: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    let name = desc.full_name();
    match name {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" => {
            let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                text.into_deserializer();
            DynamicMessage::deserialize(desc.clone(), super::strict::Strict(de))
                .map_err(|e| format!("`{text}`: {e}"))
        }
        "google.protobuf.FieldMask" => field_mask(desc, text),
        _ if is_text_message(desc) => {
            // A wrapper: field 1 holds the scalar.
            let mut message = DynamicMessage::new(desc.clone());
            if let Some(inner) = desc.get_field(1) {
                let value = parse(&inner.kind(), text)?;
                message.set_field(&inner, value);
            }
            Ok(message)
        }
        _ => Err(format!(
            "a {name} cannot be given as text; set its fields with `field.subfield=value`"
        )),
    }
}

/// A `FieldMask` from comma-separated paths ([`field_mask_paths`]).
fn field_mask(desc: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    let paths = field_mask_paths(text)?
        .into_iter()
        .map(Value::String)
        .collect();
    let mut message = DynamicMessage::new(desc.clone());
    if let Some(field) = desc.get_field(1) {
        message.set_field(&field, Value::List(paths));
    }
    Ok(message)
}

/// The paths of a `FieldMask` written as one string, the same in a query
/// and in a JSON body: comma-separated, each of names joined by `.`;
/// lowerCamelCase names are turned into snake_case, snake_case is kept. A
/// capital first letter is a field whose name starts with `_` (`Pages` is
/// `_pages`, as the gateway writes that name and as Go reads it back). A
/// name that is neither (`page_Count`, `a b`) or an empty path or name
/// (`a,,b`, `a.`) is refused rather than guessed at or dropped. `""` is
/// the empty mask.
pub(crate) fn field_mask_paths(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(snake_case_path).collect()
}

/// Whether a snake_case segment survives the trip to lowerCamelCase and
/// back: each `_` is followed by a lowercase letter (`a__b`, `a_`, `a_1`
/// would come back as something else).
fn round_trips(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'_' || bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase))
}

fn snake_case_path(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len() + 4);
    for (i, segment) in path.split('.').enumerate() {
        let camel = segment.bytes().any(|b| b.is_ascii_uppercase());
        let valid = segment
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !(camel && segment.contains('_'))
            && round_trips(segment);
        if !valid {
            return Err(format!(
                "`{path}` is not a field mask path (lowerCamelCase or snake_case names joined by `.`)"
            ));
        }
        if i > 0 {
            out.push('.');
        }
        for c in segment.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets_any_padding() {
        assert_eq!(decode_base64("AAECA/8=").unwrap(), [0, 1, 2, 3, 255]);
        assert_eq!(decode_base64("AAECA/8").unwrap(), [0, 1, 2, 3, 255]);
        assert_eq!(decode_base64("AAECA_8").unwrap(), [0, 1, 2, 3, 255]);
        assert!(decode_base64("!!").is_err());
    }

    #[test]
    fn what_is_not_base64_is_said_plainly() {
        let fault = |text: &str| {
            assert!(decode_base64(text).is_err(), "{text} decodes");
            base64_fault(text).unwrap_or_else(|| panic!("no fault found in {text}"))
        };
        assert_eq!(
            fault("not base64!"),
            "character ' ' at offset 3 is in neither the standard nor the URL-safe alphabet"
        );
        assert_eq!(
            fault("caf\u{e9}"),
            "character 'é' at offset 3 is in neither the standard nor the URL-safe alphabet"
        );
        assert_eq!(
            fault("ab+_"),
            "it mixes the standard alphabet (`+` at offset 2) with the URL-safe one (`_` at offset 3)"
        );
        assert_eq!(
            fault("abcde"),
            "its 5 characters leave one over after the last group of four, which base64 never does"
        );
        assert_eq!(
            fault("ab=c"),
            "padding `=` at offset 2 comes before its end; padding may only end it"
        );
        assert_eq!(
            fault("abc=="),
            "it ends in 2 `=` (from offset 3), but a last group of 3 characters takes at most 1"
        );
        for bad in ["a===", "abcd=", "====", "a", "ab-+"] {
            fault(bad);
        }
        for good in ["", "ab=", "ab==", "abc=", "YR", "ab-_", "ab+/"] {
            assert!(decode_base64(good).is_ok(), "{good}");
            assert_eq!(base64_fault(good), None, "{good}");
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(parse(&Kind::Int32, "-7").unwrap(), Value::I32(-7));
        assert!(parse(&Kind::Int32, "2147483648").is_err());
        assert_eq!(
            parse(&Kind::Uint64, "18446744073709551615").unwrap(),
            Value::U64(u64::MAX)
        );
        assert!(parse(&Kind::Uint32, "-1").is_err());
        assert_eq!(parse(&Kind::Bool, "false").unwrap(), Value::Bool(false));
        assert!(parse(&Kind::Bool, "yes").is_err());
        assert!(parse(&Kind::Bool, "tRuE").is_err());
        assert_eq!(parse(&Kind::Bool, "TRUE").unwrap(), Value::Bool(true));
        assert_eq!(parse(&Kind::Bool, "False").unwrap(), Value::Bool(false));
        assert_eq!(parse(&Kind::Double, "2.5e3").unwrap(), Value::F64(2500.0));
        assert!(matches!(parse(&Kind::Double, "NaN").unwrap(), Value::F64(v) if v.is_nan()));
        assert!(parse(&Kind::Double, "inf").is_err());
        assert!(parse(&Kind::Double, "1e999").is_err());
        assert!(parse(&Kind::Float, "1e39").is_err());
        assert_eq!(
            parse(&Kind::Float, "-Infinity").unwrap(),
            Value::F32(f32::NEG_INFINITY)
        );
    }

    #[test]
    fn snake_case_paths() {
        assert_eq!(
            snake_case_path("author.displayName").unwrap(),
            "author.display_name"
        );
        assert_eq!(snake_case_path("page_count").unwrap(), "page_count");
        // `_pages` is written `Pages`, and read back so.
        assert_eq!(snake_case_path("Pages").unwrap(), "_pages");
        assert_eq!(snake_case_path("_pages").unwrap(), "_pages");
        for bad in ["page_Count", "_Pages", "a..b", "", "a.", "a-b", "1a"] {
            assert!(snake_case_path(bad).is_err(), "{bad}");
        }
    }
}
