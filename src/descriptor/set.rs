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

/// Whether file `a` defines everything `b` does: each message with each
/// of its fields (by number and name), each enum with each of its values,
/// each service with each of its methods, and each extension. Two
/// versions of one shared file, where one only adds to the other (as
/// protobuf files evolve), are then kept as the fuller one. Unreadable
/// files cover nothing.
pub(super) fn covers(a: &RawFile, b: &RawFile) -> bool {
    use prost_types::FileDescriptorProto;
    let (Ok(a), Ok(b)) = (
        FileDescriptorProto::decode(a.bytes.clone()),
        FileDescriptorProto::decode(b.bytes.clone()),
    ) else {
        return false;
    };
    a.package == b.package
        && messages_cover(&a.message_type, &b.message_type)
        && enums_cover(&a.enum_type, &b.enum_type)
        && fields_cover(&a.extension, &b.extension)
        && b.service.iter().all(|theirs| {
            a.service.iter().any(|ours| {
                ours.name == theirs.name
                    && theirs.method.iter().all(|m| {
                        ours.method.iter().any(|o| {
                            o.name == m.name
                                && o.input_type == m.input_type
                                && o.output_type == m.output_type
                        })
                    })
            })
        })
}

fn messages_cover(a: &[prost_types::DescriptorProto], b: &[prost_types::DescriptorProto]) -> bool {
    b.iter().all(|theirs| {
        a.iter().any(|ours| {
            ours.name == theirs.name
                && fields_cover(&ours.field, &theirs.field)
                && fields_cover(&ours.extension, &theirs.extension)
                && messages_cover(&ours.nested_type, &theirs.nested_type)
                && enums_cover(&ours.enum_type, &theirs.enum_type)
        })
    })
}

fn fields_cover(
    a: &[prost_types::FieldDescriptorProto],
    b: &[prost_types::FieldDescriptorProto],
) -> bool {
    b.iter().all(|theirs| {
        a.iter().any(|ours| {
            ours.name == theirs.name
                && ours.number == theirs.number
                && ours.r#type == theirs.r#type
                && ours.type_name == theirs.type_name
                && ours.label == theirs.label
        })
    })
}

fn enums_cover(
    a: &[prost_types::EnumDescriptorProto],
    b: &[prost_types::EnumDescriptorProto],
) -> bool {
    b.iter().all(|theirs| {
        a.iter().any(|ours| {
            ours.name == theirs.name
                && theirs.value.iter().all(|v| {
                    ours.value
                        .iter()
                        .any(|o| o.name == v.name && o.number == v.number)
                })
        })
    })
}
