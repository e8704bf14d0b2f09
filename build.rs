//! Compiles `proto/` at build time with protox, so a fresh machine needs no
//! `protoc`.
//!
//! Writes two encoded `FileDescriptorSet`s to `OUT_DIR` (encoded by protox
//! itself, so custom options such as `google.api.http` survive):
//! - `bundled.bin`: our copies of `google/api` and `google/rpc` plus every
//!   well-known type, merged into every descriptor pool at run time;
//! - `demo.bin`: the demo bookshop service behind `protogate demo`;
//!
//! and the tonic/prost Rust code of the demo service and `google.rpc`, and
//! the gRPC client of the etcd calls that discovery makes
//! (`proto/etcd/discovery.proto`, package `etcdserverpb`).

use std::{env, error::Error, fs, path::PathBuf};

/// The files protogate ships, relative to `proto/`.
const BUNDLED: &[&str] = &[
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
];

/// The well-known types (provided by protox itself).
const WELL_KNOWN: &[&str] = &[
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/type.proto",
    "google/protobuf/wrappers.proto",
];

const DEMO: &str = "protogate/demo/v1/bookshop.proto";

const ETCD: &str = "etcd/discovery.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    let mut bundled = protox::Compiler::new(["proto"])?;
    bundled
        .include_imports(true)
        .open_files(BUNDLED)?
        .open_files(WELL_KNOWN)?;
    fs::write(
        out.join("bundled.bin"),
        bundled.encode_file_descriptor_set(),
    )?;

    let mut demo = protox::Compiler::new(["proto"])?;
    demo.include_imports(true)
        .open_file(DEMO)?
        .open_files(["google/rpc/status.proto", "google/rpc/error_details.proto"])?;
    fs::write(out.join("demo.bin"), demo.encode_file_descriptor_set())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(demo.file_descriptor_set())?;

    let mut etcd = protox::Compiler::new(["proto"])?;
    etcd.include_imports(true).open_file(ETCD)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(etcd.file_descriptor_set())?;
    Ok(())
}
