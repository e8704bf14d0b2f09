//! The `protogate` command line and config file, exercised through the
//! built binary as outside test suites use it: exit codes, error messages,
//! the route table, `serve` with flags and YAML, how `serve` stops on a
//! signal, and `demo` with its curl lines run by the real `curl`.
//!
//! Fixtures: `tests/protos/cli/` (a valid service, a syntax error, a
//! missing import, two methods on one GET template, an unannotated method).

mod support;

#[path = "cli/bad_input.rs"]
mod bad_input;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/process.rs"]
mod process;
#[path = "cli/routes.rs"]
mod routes;
#[path = "cli/serve.rs"]
mod serve;
#[path = "cli/shutdown.rs"]
mod shutdown;

use std::path::{Path, PathBuf};

/// The fixtures folder.
fn fixtures() -> PathBuf {
    support::repo().join("tests/protos/cli")
}

/// A fixture's absolute path, as a flag value.
fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

/// A path as a flag value.
fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// `gateway.yaml` with `yaml` in a fresh folder; returns its path.
fn write_config(yaml: &str) -> support::TempFile {
    support::TempFile::new("gateway.yaml", yaml)
}
