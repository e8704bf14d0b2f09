//! The descriptors protogate ships: its own copies of `google/api` and
//! `google/rpc`, and the well-known types.

use protox::file::{File, FileResolver};

/// Encoded `FileDescriptorSet` of every bundled file (built by `build.rs`).
pub(super) const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bundled.bin"));

/// Files merged into every pool even when no source imports them, so the
/// `google.api.http` option and error details always resolve.
pub(super) const ALWAYS: &[&str] = &[
    "google/api/annotations.proto",
    "google/api/httpbody.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

/// Sources of the bundled `google/api` and `google/rpc` files, for `--proto`
/// users who import them without having them.
const SOURCES: &[(&str, &str)] = &[
    (
        "google/api/annotations.proto",
        include_str!("../../proto/google/api/annotations.proto"),
    ),
    (
        "google/api/http.proto",
        include_str!("../../proto/google/api/http.proto"),
    ),
    (
        "google/api/httpbody.proto",
        include_str!("../../proto/google/api/httpbody.proto"),
    ),
    (
        "google/rpc/code.proto",
        include_str!("../../proto/google/rpc/code.proto"),
    ),
    (
        "google/rpc/error_details.proto",
        include_str!("../../proto/google/rpc/error_details.proto"),
    ),
    (
        "google/rpc/status.proto",
        include_str!("../../proto/google/rpc/status.proto"),
    ),
];

/// Resolves imports of the bundled files for protox.
#[derive(Debug, Default)]
pub(super) struct BundledResolver;

impl FileResolver for BundledResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match SOURCES.iter().find(|(n, _)| *n == name) {
            Some((name, source)) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}
