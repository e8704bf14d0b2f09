//! Percent-encoding rules for request paths, as `google/api/http.proto`
//! states them.
//!
//! Routing works on the raw path, so an encoded `/` (`%2F`) never splits a
//! segment and an encoded `:` (`%3A`) never starts a verb. Before matching,
//! escapes of unreserved characters are decoded (RFC 3986 §6.2.2.2: they
//! are equivalent to the characters themselves); every other escape stays.
//! A single-segment variable is then fully decoded, `%2F` included; a
//! multi-segment variable is decoded except for `%2F`/`%2f`.

use std::borrow::Cow;

/// A malformed or undecodable percent-escape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("invalid percent-escape at byte {0} of the path")]
    InvalidEscape(usize),
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded path variable is not valid UTF-8")]
    InvalidUtf8,
    /// A `.` or `..` segment (also when written `%2E`).
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Reads the escape at `bytes[i]` (which is `%`).
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    match (
        bytes.get(i + 1).copied().and_then(hex),
        bytes.get(i + 2).copied().and_then(hex),
    ) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(PathError::InvalidEscape(i)),
    }
}

/// Checks every escape and decodes those of unreserved characters.
///
/// Dot segments (`.`, `..`, `%2E%2E`) are refused rather than resolved:
/// resolving them would let a name like `shelves/1/books/../../x` reach a
/// backend that authorises by resource name.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let normalized = decode_unreserved(path)?;
    if normalized.contains('.')
        && normalized
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(PathError::DotSegment);
    }
    Ok(normalized)
}

fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'%') else {
        return Ok(Cow::Borrowed(path));
    };
    let mut out = String::with_capacity(path.len());
    out.push_str(&path[..first]);
    let mut i = first;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let decoded = escape_at(bytes, i)?;
            if is_unreserved(decoded) {
                out.push(decoded as char);
            } else {
                out.push_str(&path[i..i + 3]);
            }
            i += 3;
        } else {
            let next = bytes[i + 1..]
                .iter()
                .position(|&b| b == b'%')
                .map_or(bytes.len(), |p| i + 1 + p);
            out.push_str(&path[i..next]);
            i = next;
        }
    }
    Ok(Cow::Owned(out))
}

/// The form a template literal takes in a normalised path: characters a
/// client must escape are escaped (upper-case hex).
pub fn encode_literal(literal: &str) -> Cow<'_, str> {
    let keep = |b: u8| is_unreserved(b) || b"!$&'()*+,;=:@%".contains(&b);
    if literal.bytes().all(keep) {
        return Cow::Borrowed(literal);
    }
    let mut out = String::with_capacity(literal.len() * 3);
    for b in literal.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// Decodes a single-segment variable: every escape, `%2F` included.
pub fn decode_segment(raw: &str) -> Result<Cow<'_, str>, PathError> {
    decode(raw, false)
}

/// Decodes a multi-segment variable: every escape except `%2F`/`%2f`.
pub fn decode_multi_segment(raw: &str) -> Result<Cow<'_, str>, PathError> {
    decode(raw, true)
}

fn decode(raw: &str, keep_slash: bool) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let decoded = escape_at(bytes, i)?;
            if keep_slash && decoded == b'/' {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(decoded);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_decodes_only_unreserved() {
        assert_eq!(normalize("/v1/a%2Fb").unwrap(), "/v1/a%2Fb");
        assert_eq!(normalize("/v1/%61%62c").unwrap(), "/v1/abc");
        assert_eq!(normalize("/v1/a%3Ab").unwrap(), "/v1/a%3Ab");
        assert_eq!(normalize("/v1/%7e%2d").unwrap(), "/v1/~-");
        assert!(matches!(normalize("/v1/plain"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn normalize_refuses_dot_segments() {
        for bad in [
            "/v1/../x",
            "/v1/./x",
            "/v1/%2E%2E/x",
            "/v1/%2e/x",
            "/v1/x/..",
            "/..",
        ] {
            assert_eq!(normalize(bad), Err(PathError::DotSegment), "{bad}");
        }
        for ok in ["/v1/a.b", "/v1/...", "/v1/.x", "/v1/x.", "/v1/a%2F..%2Fb"] {
            assert!(normalize(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn normalize_rejects_bad_escapes() {
        assert_eq!(normalize("/v1/%zz"), Err(PathError::InvalidEscape(4)));
        assert_eq!(normalize("/v1/%4"), Err(PathError::InvalidEscape(4)));
        assert_eq!(normalize("/v1/%"), Err(PathError::InvalidEscape(4)));
    }

    #[test]
    fn single_segment_decodes_slash() {
        assert_eq!(
            decode_segment("dir%2Fsub%2Ffile%20one.txt").unwrap(),
            "dir/sub/file one.txt"
        );
        assert_eq!(
            decode_segment("a+b").unwrap(),
            "a+b",
            "`+` in a path is a plus"
        );
    }

    #[test]
    fn multi_segment_keeps_encoded_slash() {
        assert_eq!(decode_multi_segment("a/b%2Fc%20d").unwrap(), "a/b%2Fc d");
        assert_eq!(decode_multi_segment("a%2fb").unwrap(), "a%2fb");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(decode_segment("%FF"), Err(PathError::InvalidUtf8));
    }

    #[test]
    fn literals_are_escaped_like_clients_do() {
        assert_eq!(encode_literal("v1"), "v1");
        assert_eq!(encode_literal("café"), "caf%C3%A9");
        assert_eq!(encode_literal("a b"), "a%20b");
    }
}
