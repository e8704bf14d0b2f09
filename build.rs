//! Compiles `proto/` at build time with protox, so a fresh machine needs no
//! `protoc`.
//!
//! Writes two encoded `FileDescriptorSet`s to `OUT_DIR` (encoded by protox
//! itself, so custom options such as `google.api.http` survive):
//! - `bundled.bin`: our copies of `google/api` and `google/rpc` plus every
//!   well-known type, merged into every descriptor pool at run time;
//! - `demo.bin`: the demo bookshop service behind `protogate demo`;
//! - `bench.bin`: the no-op service behind `protogate bench`;
//! - `bench_etcd.bin`: etcd's KV API with the HTTP bindings of etcd's own
//!   gateway, for the bench's comparison with it (the same files the etcd
//!   interop test loads, `tests/protos/etcd/`, so the two cannot drift);
//!
//! and the tonic/prost Rust code of the demo service, the bench service
//! and `google.rpc`, and the gRPC client of the etcd calls that discovery
//! makes (`proto/etcd/discovery.proto`, package `etcdserverpb`).

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

const BENCH: &str = "protogate/bench/v1/bench.proto";

/// Where etcd's KV API with HTTP bindings lives (`etcd/rpc.proto` under it).
const ETCD_HTTP_DIR: &str = "tests/protos";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed={ETCD_HTTP_DIR}/etcd");
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

    let mut bench = protox::Compiler::new(["proto"])?;
    bench.include_imports(true).open_file(BENCH)?;
    fs::write(out.join("bench.bin"), bench.encode_file_descriptor_set())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(bench.file_descriptor_set())?;

    let mut etcd_http = protox::Compiler::new([ETCD_HTTP_DIR, "proto"])?;
    etcd_http
        .include_imports(true)
        .open_file("etcd/rpc.proto")?;
    fs::write(
        out.join("bench_etcd.bin"),
        etcd_http.encode_file_descriptor_set(),
    )?;
    Ok(())
}
