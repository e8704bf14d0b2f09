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
    /// A backslash (also when written `%5C`), which some servers read as
    /// `/`: refused on paths proxied to them.
    #[error("the path has a backslash (`\\` or `%5C`)")]
    Backslash,
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
    let is_dots = |segment: &str| segment == "." || segment == "..";
    if normalized.contains('.')
        && (normalized.split('/').any(is_dots)
            // The last segment as a route with a verb sees it: `..:cancel`.
            || normalized
                .rsplit('/')
                .next()
                .and_then(|last| last.rsplit_once(':'))
                .is_some_and(|(before, _)| is_dots(before)))
    {
        return Err(PathError::DotSegment);
    }
    Ok(normalized)
}

/// Checks every escape and decodes those of unreserved characters, as
/// [`normalize`] does, without refusing dot segments.
pub fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, PathError> {
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
/// client must escape are escaped (upper-case hex), escapes written in the
/// literal are read as [`normalize`] reads a path's (`%7E` is `~`), and a
/// `%` that starts no escape is itself escaped.
pub fn encode_literal(literal: &str) -> Cow<'_, str> {
    let keep = |b: u8| is_unreserved(b) || b"!$&'()*+,;=:@".contains(&b);
    if literal.bytes().all(keep) {
        return Cow::Borrowed(literal);
    }
    let bytes = literal.as_bytes();
    let mut out = String::with_capacity(literal.len() * 3);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Ok(decoded) = escape_at(bytes, i)
        {
            push_escaped(&mut out, decoded, is_unreserved);
            i += 3;
        } else {
            push_escaped(&mut out, bytes[i], keep);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// A path segment's escapes as [`encode_literal`] writes them, upper-case
/// hex and raw non-ASCII bytes escaped (RFC 3986 §6.2.2.1: `%c3%a9` and
/// `%C3%A9` are one text), to find a literal by; `None` when the segment
/// is written so already. The segment is normalised: its escapes are
/// valid.
pub fn literal_form(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let lower_escape = |i: usize| bytes[i + 1..].iter().take(2).any(u8::is_ascii_lowercase);
    let odd = (0..bytes.len()).any(|i| !bytes[i].is_ascii() || bytes[i] == b'%' && lower_escape(i));
    if !odd {
        return None;
    }
    let mut out = String::with_capacity(segment.len() * 3);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Ok(decoded) = escape_at(bytes, i)
        {
            push_escaped(&mut out, decoded, |_| false);
            i += 3;
        } else {
            push_escaped(&mut out, bytes[i], |b| b.is_ascii());
            i += 1;
        }
    }
    Some(out)
}

/// Pushes `b` as itself when `plain` says so, else as an upper-case escape.
fn push_escaped(out: &mut String, b: u8, plain: impl Fn(u8) -> bool) {
    if plain(b) {
        out.push(b as char);
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push('%');
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
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

    #[test]
    fn escapes_in_literals_read_as_in_paths() {
        assert_eq!(encode_literal("%7E"), "~");
        assert_eq!(encode_literal("a%2fb"), "a%2Fb");
        assert_eq!(encode_literal("100%"), "100%25");
        assert_eq!(encode_literal("%zz"), "%25zz");
    }

    #[test]
    fn segments_find_literals_whatever_the_case_of_their_escapes() {
        assert_eq!(literal_form("caf%c3%a9").as_deref(), Some("caf%C3%A9"));
        assert_eq!(literal_form("café").as_deref(), Some("caf%C3%A9"));
        assert_eq!(literal_form("a%2fb").as_deref(), Some("a%2Fb"));
        assert_eq!(literal_form("caf%C3%A9"), None);
        assert_eq!(literal_form("plain"), None);
        assert_eq!(literal_form("%2F"), None);
    }

    #[test]
    fn normalize_refuses_dot_segments_before_a_verb() {
        for bad in [
            "/v1/x/..:cancel",
            "/v1/x/.:cancel",
            "/v1/x/%2E%2E:cancel",
            "/..:a",
        ] {
            assert_eq!(normalize(bad), Err(PathError::DotSegment), "{bad}");
        }
        for ok in [
            "/v1/x/...:cancel",
            "/v1/x/a..:cancel",
            "/v1/..%3Acancel",
            "/v1/x/a:..",
            "/v1/..:a/b",
        ] {
            assert!(normalize(ok).is_ok(), "{ok}");
        }
    }
}
