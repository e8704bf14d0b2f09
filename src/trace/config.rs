//! The `tracing:` section of the config: where spans go and how many of
//! the traces started here are kept.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de;

/// Distributed tracing: a server span for each request, exported over
/// OTLP/gRPC, and the request's `traceparent` made to name it.
///
/// # Examples
///
/// ```
/// let config = protogate::Config::from_yaml(
///     "tracing:\n  otlp_endpoint: http://127.0.0.1:4317\n  sample_ratio: 0.25\n",
/// )
/// .unwrap();
/// let tracing = config.tracing.unwrap();
/// assert_eq!(tracing.sample_ratio, 0.25);
/// assert_eq!(tracing.service_name, "protogate");
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/gRPC address: `http://host:4317`, or
    /// `https://` (checked against the system's and Mozilla's roots).
    pub otlp_endpoint: String,
    /// The share of the traces begun here (requests without a valid
    /// `traceparent`) that are recorded, 0 to 1. A request that comes
    /// with one follows its caller's choice (the `sampled` flag).
    #[serde(default = "one")]
    pub sample_ratio: f64,
    /// `service.name` of the spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// How long one export to the collector may take.
    #[serde(default = "default_timeout", deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Metadata sent with each export, such as a collector's API key.
    /// Values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Spans held while they wait for export; past this, new spans are
    /// dropped (and counted in `protogate_trace_spans_total`).
    #[serde(default = "default_queue")]
    pub max_queued_spans: usize,
}

/// Header values left out: they may be credentials.
impl std::fmt::Debug for TracingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracingConfig")
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("sample_ratio", &self.sample_ratio)
            .field("service_name", &self.service_name)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("max_queued_spans", &self.max_queued_spans)
            .finish()
    }
}

fn one() -> f64 {
    1.0
}

fn default_service_name() -> String {
    "protogate".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_queue() -> usize {
    2048
}

/// The most spans `max_queued_spans` may hold: each is a few hundred
/// bytes to about 2 KiB (paths and `tracestate` are cut to fit), so
/// about 200 MiB at most.
const MAX_QUEUE: usize = 100_000;

impl TracingConfig {
    /// Settings that cannot work, as (key under `tracing.`, what is
    /// wrong).
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((format!("tracing.{key}"), message));
        if let Err(why) = de::check_grpc_url(&self.otlp_endpoint) {
            return fail("otlp_endpoint", why);
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return fail(
                "sample_ratio",
                format!(
                    "{} is not a share from 0 (none) to 1 (every trace)",
                    self.sample_ratio
                ),
            );
        }
        if self.service_name.trim().is_empty() {
            return fail(
                "service_name",
                "empty; leave it out for `protogate`".to_owned(),
            );
        }
        if !(1..=MAX_QUEUE).contains(&self.max_queued_spans) {
            return fail(
                "max_queued_spans",
                format!("{} is not from 1 to {MAX_QUEUE}", self.max_queued_spans),
            );
        }
        for (name, value) in &self.headers {
            let valid_name = crate::upstream::metadata::is_metadata_key(name)
                && !crate::upstream::metadata::is_reserved(name)
                && !name.ends_with("-bin");
            if !valid_name {
                return fail(
                    "headers",
                    format!(
                        "`{name}` is not a gRPC metadata name the exporter may set (lowercase letters, digits, `-`, `_` and `.`; not `grpc-*`, a reserved name or `-bin`)"
                    ),
                );
            }
            // The value itself is never shown: it may be a key.
            if !value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                return fail(
                    "headers",
                    format!("the value of `{name}` is not printable ASCII"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> TracingConfig {
        crate::Config::from_yaml(yaml).unwrap().tracing.unwrap()
    }

    #[test]
    fn bad_settings_are_named() {
        let base = "tracing:\n  otlp_endpoint: http://127.0.0.1:4317\n";
        assert!(config(base).check().is_ok());
        for (extra, key) in [
            ("  sample_ratio: 1.5\n", "tracing.sample_ratio"),
            ("  sample_ratio: -0.1\n", "tracing.sample_ratio"),
            ("  sample_ratio: .nan\n", "tracing.sample_ratio"),
            ("  service_name: ' '\n", "tracing.service_name"),
            ("  max_queued_spans: 0\n", "tracing.max_queued_spans"),
            ("  headers: {Api-Key: x}\n", "tracing.headers"),
            ("  headers: {grpc-timeout: 1S}\n", "tracing.headers"),
            ("  headers: {x-key: \"a\\nb\"}\n", "tracing.headers"),
        ] {
            let (named, _) = config(&format!("{base}{extra}")).check().unwrap_err();
            assert_eq!(named, key, "{extra}");
        }
        for endpoint in [
            "127.0.0.1:4317",
            "http://127.0.0.1:4317/v1/traces",
            "ftp://x",
        ] {
            let bad = config(&format!("tracing:\n  otlp_endpoint: {endpoint}\n"));
            assert_eq!(
                bad.check().unwrap_err().0,
                "tracing.otlp_endpoint",
                "{endpoint}"
            );
        }
    }

    #[test]
    fn header_values_stay_out_of_debug_output() {
        let config = config(
            "tracing:\n  otlp_endpoint: http://127.0.0.1:4317\n  headers: {x-api-key: s3cret}\n",
        );
        let shown = format!("{config:?}");
        assert!(
            shown.contains("x-api-key") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
