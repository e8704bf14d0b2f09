//! Which request paths a proxied group passes on, and in what form.
//!
//! A path goes on as the group was found with it: escapes of unreserved
//! characters decoded (RFC 3986 §6.2.2.2), every other escape as sent.
//! What a service could resolve to a path outside the prefix is refused
//! rather than forwarded: dot segments, also percent-encoded (`%2e%2e`),
//! between encoded slashes (`..%2F`, for a service that decodes `%2F`
//! first) or followed by path parameters (`..;`, `..;jsessionid=1`,
//! which servlet containers strip before resolving), and backslashes,
//! raw or encoded (`\`, `%5C`), which some servers read as `/`.

use std::borrow::Cow;

use crate::http_rule::path::{self, PathError};

/// The path as the upstream gets it, or why it may not go on.
pub(super) fn checked(path: &str) -> Result<Cow<'_, str>, PathError> {
    let normalized = path::normalize(path)?;
    if normalized.contains('\\') || escapes(&normalized).any(|(_, byte)| byte == b'\\') {
        return Err(PathError::Backslash);
    }
    if normalized.contains('.') {
        let plain = decoded(&normalized, b"/;");
        let is_dots = |segment: &str| matches!(segment.split(';').next(), Some("." | ".."));
        if plain.split('/').any(is_dots) {
            return Err(PathError::DotSegment);
        }
    }
    Ok(normalized)
}

/// The escapes in `text`, valid ones only: where each starts and the byte
/// it stands for.
fn escapes(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    text.match_indices('%').filter_map(|(at, _)| {
        let hex = text
            .get(at + 1..at + 3)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some((at, u8::from_str_radix(hex, 16).ok()?))
    })
}

/// `text` with the escapes of the bytes in `set` decoded.
fn decoded<'a>(text: &'a str, set: &[u8]) -> Cow<'a, str> {
    let mut found = escapes(text)
        .filter(|(_, byte)| set.contains(byte))
        .peekable();
    if found.peek().is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (at, byte) in found {
        out.push_str(&text[from..at]);
        out.push(char::from(byte));
        from = at + 3;
    }
    out.push_str(&text[from..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_a_service_could_resolve_out_of_the_prefix_are_refused() {
        for (path, why) in [
            ("/legacy/a/../../admin", PathError::DotSegment),
            ("/legacy/%2e%2e/admin", PathError::DotSegment),
            ("/legacy/..%2f..%2fadmin", PathError::DotSegment),
            ("/legacy/x%2F..%2F..%2Fadmin", PathError::DotSegment),
            ("/legacy/..;/..;/internal", PathError::DotSegment),
            ("/legacy/..;jsessionid=1/admin", PathError::DotSegment),
            ("/legacy/%2E%2E;x/admin", PathError::DotSegment),
            ("/legacy/.;/x", PathError::DotSegment),
            ("/legacy/..%3B/admin", PathError::DotSegment),
            ("/legacy/x%2F..%3b", PathError::DotSegment),
            ("/legacy/..\\admin", PathError::Backslash),
            ("/legacy/a\\b", PathError::Backslash),
            ("/legacy/..%5Cadmin", PathError::Backslash),
            ("/legacy/..%5cadmin", PathError::Backslash),
        ] {
            assert_eq!(checked(path), Err(why), "{path}");
        }
    }

    #[test]
    fn other_paths_go_on_with_unreserved_escapes_decoded() {
        for (path, out) in [
            ("/legacy/a;v=1/x", "/legacy/a;v=1/x"),
            ("/legacy/..x;y", "/legacy/..x;y"),
            ("/legacy/x..;", "/legacy/x..;"),
            ("/legacy/a%3Bb/%2E%2Ex", "/legacy/a%3Bb/..x"),
            ("/legacy/%70rivate/x%7E1", "/legacy/private/x~1"),
            ("/legacy/a%2Fb/%25", "/legacy/a%2Fb/%25"),
            ("/legacy/caf%C3%A9", "/legacy/caf%C3%A9"),
        ] {
            assert_eq!(checked(path).as_deref(), Ok(out), "{path}");
        }
    }

    #[test]
    fn only_the_escapes_asked_for_are_decoded() {
        assert_eq!(decoded("a%2Fb%3bc%2e", b"/;"), "a/b;c%2e");
        assert!(matches!(decoded("a%2Eb", b"/"), Cow::Borrowed(_)));
        assert_eq!(escapes("%zz%4").count(), 0);
    }
}
