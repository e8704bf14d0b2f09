use super::*;

mod dns;
mod durations;
mod headers;
mod limits;
mod parsing;
mod pools;
mod routes;
mod upstreams;

fn parse(yaml: &str) -> Config {
    Config::from_yaml(yaml).unwrap_or_else(|e| panic!("config parses: {e}"))
}

fn error(yaml: &str) -> YamlError {
    match Config::from_yaml(yaml) {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(err) => err,
    }
}

/// Asserts the error names `key` at `line` (and the key appears in the
/// message a user reads).
fn assert_at(err: &YamlError, key: &str, line: u64) {
    assert_eq!(err.key, key, "{err}");
    assert_eq!(err.line, Some(line), "{err}");
    assert!(err.to_string().contains(key), "{err}");
}

/// A fresh folder under the system temp folder, removed when dropped.
pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("protogate-config-")
        .tempdir()
        .expect("create temp dir")
}

pub(super) fn upstream(url: &str, services: &[&str]) -> UpstreamConfig {
    UpstreamConfig {
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        ..UpstreamConfig::new(url)
    }
}

/// What `validate` says of `yaml`, or that it passes.
fn validated(yaml: &str) -> Result<(), String> {
    let config = Config::from_yaml(yaml).expect("parses");
    config.validate().map_err(|e| e.to_string())
}

/// Asserts `validate` refuses `yaml` naming `key` and saying `says`.
fn assert_refused(yaml: &str, key: &str, says: &str) {
    let err = validated(yaml).unwrap_err();
    assert!(err.contains(key) && err.contains(says), "{err}");
}
