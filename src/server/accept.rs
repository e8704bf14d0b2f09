//! The media ranges a client's `Accept` header allows, with their weights
//! (RFC 9110 §12.5.1). A range weighted `q=0` is "not acceptable"
//! (§12.4.2) and is never chosen; every reader of `Accept` goes through
//! here so that holds everywhere.

use http::{HeaderMap, header};

/// One media range: lowercase, without parameters, and its weight (0 to
/// 1; 0 is a refusal).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    pub(crate) media: String,
    pub(crate) weight: f32,
}

/// The ranges `headers` name, in the order sent, refusals (`q=0`)
/// included. A weight that does not parse is ignored (the range counts as
/// `q=1`), as most servers do.
pub(crate) fn ranges(headers: &HeaderMap) -> Vec<Range> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(range)
        .collect()
}

/// The most preferred of `wanted` that `ranges` accept (the first one sent
/// among equal weights), or `None` when none is acceptable.
pub(crate) fn preferred<'a>(ranges: &[Range], wanted: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(&'a str, f32)> = None;
    for range in ranges.iter().filter(|r| r.weight > 0.0) {
        let Some(found) = wanted.iter().find(|w| **w == range.media) else {
            continue;
        };
        if best.is_none_or(|(_, weight)| range.weight > weight) {
            best = Some((found, range.weight));
        }
    }
    best.map(|(media, _)| media)
}

/// The largest weight `ranges` give any of `wanted` (0: refused), or
/// `None` when they name none of them.
pub(crate) fn weight(ranges: &[Range], wanted: &[&str]) -> Option<f32> {
    ranges
        .iter()
        .filter(|r| wanted.contains(&r.media.as_str()))
        .map(|r| r.weight)
        .reduce(f32::max)
}

fn range(element: &str) -> Option<Range> {
    let mut parts = element.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if media.is_empty() {
        return None;
    }
    let mut weight = 1.0;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            weight = qvalue(value.trim()).unwrap_or(1.0);
        }
    }
    Some(Range { media, weight })
}

/// A weight: `0` to `1`, digits and one `.` (more decimals than the three
/// the grammar allows are read anyway, so `0.0000` is still 0).
fn qvalue(text: &str) -> Option<f32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    text.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn weights(headers: &HeaderMap) -> Vec<(String, f32)> {
        ranges(headers)
            .into_iter()
            .map(|r| (r.media, r.weight))
            .collect()
    }

    #[test]
    fn weights_are_read_and_zero_is_a_refusal() {
        for zero in [
            "text/event-stream;q=0",
            "text/event-stream; q=0.0",
            "Text/Event-Stream ;Q=0.000",
            "text/event-stream;charset=utf-8;q=0",
            "text/event-stream;q=0.0000",
        ] {
            let ranges = ranges(&accept(&[zero]));
            assert_eq!(
                weights(&accept(&[zero])),
                [("text/event-stream".into(), 0.0)]
            );
            assert_eq!(preferred(&ranges, &["text/event-stream"]), None, "{zero}");
            assert_eq!(weight(&ranges, &["text/event-stream"]), Some(0.0), "{zero}");
        }
        assert_eq!(
            weights(&accept(&[
                "text/event-stream;q=0.001",
                "a/b;q=1, c/d;q=x, ,"
            ])),
            [
                ("text/event-stream".into(), 0.001),
                ("a/b".into(), 1.0),
                ("c/d".into(), 1.0)
            ]
        );
        let ranges = ranges(&accept(&["a/b;q=0.2, c/d, a/b;q=0.5"]));
        assert_eq!(weight(&ranges, &["a/b"]), Some(0.5));
        assert_eq!(weight(&ranges, &["e/f"]), None);
    }

    #[test]
    fn the_heaviest_wanted_range_wins() {
        let wanted = ["text/event-stream", "application/x-ndjson"];
        let cases = [
            ("text/event-stream, application/x-ndjson", Some(wanted[0])),
            ("application/x-ndjson, text/event-stream", Some(wanted[1])),
            (
                "text/event-stream;q=0.5, application/x-ndjson",
                Some(wanted[1]),
            ),
            ("text/event-stream;q=0, application/x-ndjson;q=0", None),
            ("text/event-stream;q=0, */*", None),
            ("", None),
        ];
        for (value, expected) in cases {
            let ranges = ranges(&accept(&[value]));
            assert_eq!(preferred(&ranges, &wanted), expected, "{value}");
        }
    }
}
