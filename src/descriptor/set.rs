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

/// The two fields of a `FileDescriptorProto` needed to order files.
#[derive(Clone, PartialEq, Message)]
struct FileHeader {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, repeated, tag = "3")]
    dependency: Vec<String>,
}

/// One encoded file of a set.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// The file name, e.g. `google/api/http.proto`.
    pub name: String,
    /// The files it imports.
    pub imports: Vec<String>,
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
        Ok(RawFile {
            name: header.name.unwrap_or_default(),
            imports: header.dependency,
            bytes,
        })
    }
}
