//! The resource the spans are exported with: `service.name` from config,
//! `service.version`, the SDK's own attributes, and those of
//! `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! The environment variable is read here rather than by the SDK's
//! detector, which takes its values as written: the OpenTelemetry
//! specification has them percent-encoded (`,` and `=` in a value must
//! be), and a value that does not decode voids the whole variable.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{SdkProvidedResourceDetector, TelemetryResourceDetector};

/// The variable's name.
const ENV: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The resource for spans of service `service_name`.
pub(super) fn resource(service_name: &str) -> Resource {
    let from_env = match std::env::var(ENV) {
        Ok(raw) => attributes(&raw).unwrap_or_else(|reason| {
            tracing::warn!(variable = ENV, %reason, "Resource attributes ignored");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    Resource::builder_empty()
        .with_detectors(&[
            Box::new(SdkProvidedResourceDetector),
            Box::new(TelemetryResourceDetector),
        ])
        .with_attributes(from_env)
        .with_service_name(service_name.to_owned())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The `key=value` pairs of `raw`, comma-separated, blanks around each
/// trimmed, values percent-decoded; entries without `=` or with an empty
/// key are skipped. A value that does not decode (a `%` not followed by
/// two hex digits, or bytes that are not UTF-8) voids them all, as the
/// specification asks.
fn attributes(raw: &str) -> Result<Vec<KeyValue>, String> {
    let mut found = Vec::new();
    for entry in raw.split(',') {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = decode(value.trim()).map_err(|why| format!("the value of `{key}` {why}"))?;
        found.push(KeyValue::new(key.to_owned(), value));
    }
    Ok(found)
}

/// `value` percent-decoded.
fn decode(value: &str) -> Result<String, &'static str> {
    let bytes = value.as_bytes();
    for (at, _) in value.match_indices('%') {
        let hex = bytes.get(at + 1..at + 3);
        if !hex.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
            return Err("has a `%` not followed by two hex digits");
        }
    }
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "is not UTF-8 once decoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        attributes(raw)
            .unwrap()
            .into_iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn values_are_percent_decoded() {
        assert_eq!(
            pairs("deployment.environment=prod, team = a%2Cb%3Dc ,note=caf%C3%A9%20bar"),
            [
                ("deployment.environment".into(), "prod".into()),
                ("team".into(), "a,b=c".into()),
                ("note".into(), "café bar".into()),
            ]
        );
    }

    #[test]
    fn entries_without_a_key_or_value_are_skipped() {
        assert_eq!(pairs("alone,=x,,k=v,"), [("k".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn a_value_that_does_not_decode_voids_the_variable() {
        for raw in ["a=1,b=50%", "a=1,b=%zz", "a=1,b=%ff%fe"] {
            let err = attributes(raw).unwrap_err();
            assert!(err.contains("`b`"), "{raw}: {err}");
        }
    }
}
