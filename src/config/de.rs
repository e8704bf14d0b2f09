//! Deserializers that validate while parsing, so YAML errors point at the
//! offending line.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use serde::de::{Deserializer, Error};
use serde::Deserialize;

/// A duration such as `5s`, `250ms` or `1m 30s`, or a number of seconds.
pub(super) fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Seconds(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        Raw::Seconds(s) => Err(D::Error::custom(format!("`{s}` is not a duration"))),
        Raw::Text(text) => parse_duration(&text).map_err(D::Error::custom),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration like 5s or 250ms ({e})"))
}

pub(super) fn opt_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}

pub(super) fn duration_map<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, Duration>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(de)?;
    raw.into_iter()
        .map(|(k, v)| parse_duration(&v).map(|d| (k, d)).map_err(D::Error::custom))
        .collect()
}

/// A byte size: a number, or a number with `KiB`, `MiB`, `GiB` (or `KB`,
/// `MB`, `GB`, powers of ten).
pub(super) fn size<'de, D: Deserializer<'de>>(de: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Bytes(n) => usize::try_from(n).map_err(D::Error::custom),
        Raw::Text(text) => parse_size(&text).ok_or_else(|| {
            D::Error::custom(format!("`{text}` is not a size like 4194304, 4MiB or 64KiB"))
        }),
    }
}

fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits.parse().ok()?;
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// An `http://` or `https://` URL with a host.
pub(super) fn url<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    let uri: http::Uri = text
        .parse()
        .map_err(|e| D::Error::custom(format!("`{text}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(text),
        _ => Err(D::Error::custom(format!(
            "`{text}` is not an http:// or https:// URL with a host"
        ))),
    }
}

/// HTTP header names, lower-cased.
pub(super) fn header_names<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<HeaderName>, D::Error> {
    Vec::<String>::deserialize(de)?
        .into_iter()
        .map(|name| {
            HeaderName::try_from(name.to_ascii_lowercase())
                .map_err(|_| D::Error::custom(format!("`{name}` is not a header name")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("4TiB"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
    }
}
