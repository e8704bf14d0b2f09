//! Shared test support: a real tonic echo backend, the gateway in process
//! or as the built binary, and helpers to compile `.proto` files.

#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

pub mod client;
pub mod echo;
pub mod gateway;
pub mod jwt;
pub mod plain;
pub mod spread;
pub mod tls;
pub mod ws;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost_reflect::DescriptorPool;

pub use echo::{EchoBackend, Record, Script};
pub use gateway::{BinGateway, TestGateway};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `files` (relative to `dir`) with protox into an encoded
/// `FileDescriptorSet` with imports, with `dir` and the repo's `proto/`
/// (our `google/api`, `google/rpc`) on the import path.
pub fn compile(dir: &Path, files: &[&str]) -> Bytes {
    let mut compiler =
        protox::Compiler::new([dir.to_path_buf(), repo().join("proto")]).expect("include paths");
    compiler.include_imports(true);
    for file in files {
        compiler
            .open_file(file)
            .unwrap_or_else(|e| panic!("compiling {file}: {e}"));
    }
    compiler.encode_file_descriptor_set().into()
}

/// The kitchen-sink test API (`tests/protos/kitchen/v1/kitchen.proto`),
/// compiled.
pub fn kitchen() -> Bytes {
    compile(&repo().join("tests/protos"), &["kitchen/v1/kitchen.proto"])
}

/// Compiles one proto source given as text.
pub fn compile_source(name: &str, source: &str) -> Bytes {
    let dir = tempdir();
    std::fs::write(dir.join(name), source).expect("write proto");
    compile(&dir, &[name])
}

/// The pool the gateway would build from `set` (bundled files merged).
pub fn pool(set: &Bytes) -> DescriptorPool {
    protogate::descriptor::load(&protogate::descriptor::Sources {
        embedded: vec![set.clone()],
        ..Default::default()
    })
    .expect("descriptor set loads")
}

/// One length-prefixed message as gRPC, gRPC-Web and Connect frame it:
/// a flags byte, a big-endian length, the payload.
pub fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(flags);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("small payload")
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out.into()
}

/// A fresh temporary folder, removed with all it holds when dropped: keep
/// it alive for as long as anything reads from it.
pub fn tempdir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("protogate-test-")
        .tempdir()
        .expect("create temp dir");
    TempDir(dir)
}

/// A temporary folder that reads as the [`Path`] it is.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// `contents` written to `name` in a fresh temporary folder; the file and
/// its folder are removed when this is dropped.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    _dir: TempDir,
}

impl TempFile {
    pub fn new(name: &str, contents: impl AsRef<[u8]>) -> TempFile {
        let dir = tempdir();
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { path, _dir: dir }
    }
}

impl std::ops::Deref for TempFile {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// An HTTP/1.1 client.
pub fn http1() -> reqwest::Client {
    protogate::install_crypto_provider();
    reqwest::Client::builder()
        .http1_only()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An HTTP/2 (prior knowledge, cleartext) client.
pub fn http2() -> reqwest::Client {
    protogate::install_crypto_provider();
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}
