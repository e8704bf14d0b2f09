//! The value at a JSON path (`book.pages[2]`, as refusals write paths) in
//! a body's text, for a refusal that points at it or reads it again. Only
//! failed requests come here; the body is valid JSON up to the value.

use std::ops::Range;

/// The byte range of the value at `path` in `json`; `None` when the path
/// leads nowhere (a key spelt otherwise, an index past the end). A key
/// may hold `.` or `[`: the longest key the path goes on with is taken.
pub(super) fn find(json: &[u8], path: &str) -> Option<Range<usize>> {
    let mut at = skip_blank(json, 0);
    let mut rest = path;
    while !rest.is_empty() {
        match json.get(at)? {
            b'[' => {
                let inner = rest.strip_prefix('[')?;
                let close = inner.find(']')?;
                let index: usize = inner[..close].parse().ok()?;
                rest = &inner[close + 1..];
                at = element(json, at, index)?;
            }
            b'{' => {
                // Every key but the first comes after a `.`.
                if rest.len() < path.len() {
                    rest = rest.strip_prefix('.')?;
                }
                let (key_len, value) = member(json, at, rest)?;
                rest = &rest[key_len..];
                at = value;
            }
            _ => return None,
        }
    }
    Some(at..skip_value(json, at)?)
}

/// One member of an object.
#[derive(Debug)]
pub(super) struct Member {
    /// The key, unescaped.
    pub(super) key: String,
    /// Where the key starts (its opening quote).
    pub(super) at: usize,
    /// The value's bytes.
    pub(super) value: Range<usize>,
}

/// The members of the object starting at `at`, in the order written.
pub(super) fn members(json: &[u8], at: usize) -> Option<Vec<Member>> {
    if json.get(at) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_blank(json, at + 1);
    if json.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let key_start = i;
        let key_end = skip_value(json, i)?;
        let key: String = serde_json::from_slice(&json[i..key_end]).ok()?;
        i = skip_blank(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let value = skip_blank(json, i + 1);
        let value_end = skip_value(json, value)?;
        out.push(Member {
            key,
            at: key_start,
            value: value..value_end,
        });
        i = skip_blank(json, value_end);
        match json.get(i)? {
            b',' => i = skip_blank(json, i + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// The longest key of the object at `at` that `path` begins with (and
/// goes on after with `.` or `[`, or ends), and where its value starts.
fn member(json: &[u8], at: usize, path: &str) -> Option<(usize, usize)> {
    members(json, at)?
        .into_iter()
        .filter(|member| {
            path.strip_prefix(member.key.as_str())
                .is_some_and(|after| after.is_empty() || after.starts_with(['.', '[']))
        })
        .max_by_key(|member| member.key.len())
        .map(|member| (member.key.len(), member.value.start))
}

/// Where element `index` of the array starting at `at` starts.
fn element(json: &[u8], at: usize, index: usize) -> Option<usize> {
    let mut i = skip_blank(json, at + 1);
    for _ in 0..index {
        i = skip_blank(json, skip_value(json, i)?);
        if json.get(i) != Some(&b',') {
            return None;
        }
        i = skip_blank(json, i + 1);
    }
    (json.get(i) != Some(&b']')).then_some(i)
}

/// Where the value starting at `at` ends.
fn skip_value(json: &[u8], at: usize) -> Option<usize> {
    match json.get(at)? {
        b'"' => skip_string(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match json.get(i)? {
                    b'"' => i = skip_string(json, i)?,
                    b'{' | b'[' => {
                        depth += 1;
                        i += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        i += 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => i += 1,
                }
            }
        }
        _ => Some(
            json[at..]
                .iter()
                .position(|b| b" \t\r\n,:]}".contains(b))
                .map_or(json.len(), |end| at + end),
        ),
    }
}

/// Where the string starting at `at` (its opening quote) ends.
fn skip_string(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match json.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn skip_blank(json: &[u8], from: usize) -> usize {
    json[from.min(json.len())..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(json.len(), |n| from + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'j>(json: &'j str, path: &str) -> Option<&'j str> {
        find(json.as_bytes(), path).map(|range| &json[range])
    }

    #[test]
    fn paths_lead_to_values() {
        let json = r#" {"a": {"b": [1, {"c": "x]"}, [2]]}, "d.e": {"f": true}, "d": 0} "#;
        assert_eq!(value(json, ""), Some(&json[1..json.len() - 1]));
        assert_eq!(value(json, "a.b[0]"), Some("1"));
        assert_eq!(value(json, "a.b[1].c"), Some(r#""x]""#));
        assert_eq!(value(json, "a.b[2][0]"), Some("2"));
        assert_eq!(value(json, "d.e.f"), Some("true"), "the longer key");
        assert_eq!(value(json, "d"), Some("0"));
        assert_eq!(value("[[], {}]", "[1]"), Some("{}"));
        assert_eq!(value(r#"{"\u0061": 1}"#, "a"), Some("1"));
    }

    #[test]
    fn paths_that_lead_nowhere() {
        let json = r#"{"a": [1], "b": {}}"#;
        for path in ["x", "a[1]", "a.b", "b.c", "a[x]", ".a", "b[0]"] {
            assert_eq!(value(json, path), None, "{path}");
        }
        assert_eq!(value("[]", "[0]"), None);
        assert_eq!(value(r#"{"a": "#, "a"), None);
    }
}
