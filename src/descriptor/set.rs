//! Splitting encoded `FileDescriptorSet`s into their files without decoding
//! them through `prost_types`, which would drop custom options such as
//! `google.api.http`. Only the name and imports of each file are read.

use bytes::Bytes;
use prost::Message;

/// A `FileDescriptorSet` with each file kept as its encoded bytes.
#[derive(Clone, PartialEq, Message)]
struct RawSet {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    file: Vec<Bytes>,
}

/// The fields of a `FileDescriptorProto` needed to order files and to
/// tell whether the descriptor library can take them.
#[derive(Clone, PartialEq, Message)]
struct FileHeader {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, repeated, tag = "3")]
    dependency: Vec<String>,
    #[prost(string, optional, tag = "12")]
    syntax: Option<String>,
    #[prost(int32, optional, tag = "14")]
    edition: Option<i32>,
}

/// One encoded file of a set.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// The file name, e.g. `google/api/http.proto`.
    pub name: String,
    /// The files it imports.
    pub imports: Vec<String>,
    /// Why the descriptor library cannot take it, if it cannot: a syntax
    /// other than proto2 and proto3 (Protobuf editions, a misspelling).
    pub unsupported: Option<String>,
    /// The encoded `FileDescriptorProto`.
    pub bytes: Bytes,
}

/// Splits an encoded `FileDescriptorSet`.
pub(super) fn split(set: Bytes) -> Result<Vec<RawFile>, prost::DecodeError> {
    let set = RawSet::decode(set)?;
    set.file.into_iter().map(RawFile::decode).collect()
}

/// Joins encoded files into an encoded `FileDescriptorSet`, bytes intact.
pub(super) fn join<'a>(files: impl IntoIterator<Item = &'a RawFile>) -> Bytes {
    RawSet {
        file: files.into_iter().map(|f| f.bytes.clone()).collect(),
    }
    .encode_to_vec()
    .into()
}

impl RawFile {
    /// One encoded `FileDescriptorProto` (as server reflection sends
    /// them), read for its name and imports only.
    pub fn decode(bytes: Bytes) -> Result<RawFile, prost::DecodeError> {
        let header = FileHeader::decode(bytes.clone())?;
        let editions = |which: &str| {
            format!(
                "it is a Protobuf editions file ({which}), which protogate does not read yet; \
                 write it with syntax = \"proto3\" (or \"proto2\")"
            )
        };
        let unsupported = match (header.syntax.as_deref(), header.edition) {
            (None | Some("proto2" | "proto3"), None) => None,
            (_, Some(edition)) => Some(editions(&edition_name(edition))),
            (Some("editions"), None) => Some(editions("no edition named")),
            (Some(other), None) => Some(format!(
                "its syntax is `{other}`; protogate reads \"proto2\" and \"proto3\""
            )),
        };
        Ok(RawFile {
            name: header.name.unwrap_or_default(),
            imports: header.dependency,
            unsupported,
            bytes,
        })
    }
}

/// An `Edition` value as `protoc` spells it in a file.
fn edition_name(edition: i32) -> String {
    match edition {
        998 => "edition proto2".to_owned(),
        999 => "edition proto3".to_owned(),
        1000 => "edition 2023".to_owned(),
        1001 => "edition 2024".to_owned(),
        other => format!("edition {other}"),
    }
}
