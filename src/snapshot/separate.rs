//! Files of the same name from different reflecting upstreams.
//!
//! Two backends each built from their own `api.proto` send two files
//! named `api.proto`; a descriptor pool holds one file per name, so the
//! second backend's services would vanish. When the two files are of
//! different packages (different APIs that happen to share a file name),
//! the later upstream's file is renamed `<upstream>/<name>`, along with
//! the imports of it among that upstream's files, and both are served.
//! Files of the same package are versions of one API: the first is kept,
//! and `Fleet` reports the services the upstreams disagree on.
//!
//! Files are rewritten on the wire, field by field, so that everything
//! else in them — custom options such as `google.api.http` included —
//! stays byte for byte.

use std::collections::HashMap;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

use crate::descriptor::{RawFile, Reflected};

/// `FileDescriptorProto` fields read or rewritten.
const NAME: u32 = 1;
const PACKAGE: u32 = 2;
const DEPENDENCY: u32 = 3;

/// Renames files of `reflected` whose names an earlier upstream's files
/// of another package hold; returns one note per renamed file.
pub(super) fn separate(reflected: &mut [Reflected]) -> Vec<String> {
    // Name → (bytes, package) of the first file of that name.
    let mut first: HashMap<String, (Bytes, String)> = HashMap::new();
    let mut notes = Vec::new();
    for upstream in reflected.iter_mut() {
        let mut renamed: HashMap<String, String> = HashMap::new();
        for file in &upstream.files {
            let package = package_of(&file.bytes).unwrap_or_default();
            match first.get(&file.name) {
                Some((bytes, first_package))
                    if *bytes != file.bytes && *first_package != package =>
                {
                    renamed.insert(
                        file.name.clone(),
                        format!("{}/{}", upstream.upstream, file.name),
                    );
                }
                Some(_) => {}
                None => {
                    first.insert(file.name.clone(), (file.bytes.clone(), package));
                }
            }
        }
        if renamed.is_empty() {
            continue;
        }
        for file in &mut upstream.files {
            let touched = renamed.contains_key(&file.name)
                || file.imports.iter().any(|i| renamed.contains_key(i));
            if !touched {
                continue;
            }
            // Unreadable: left as it is, for the pool to report.
            let Some(bytes) = rewrite(&file.bytes, &renamed) else {
                continue;
            };
            let renamed_to =
                |name: &String| renamed.get(name).cloned().unwrap_or_else(|| name.clone());
            if let Some(new) = renamed.get(&file.name) {
                notes.push(format!(
                    "upstream `{}`: its `{}` is served as `{new}`: another upstream has a different file of that name",
                    upstream.upstream, file.name
                ));
            }
            *file = RawFile {
                name: renamed_to(&file.name),
                imports: file.imports.iter().map(renamed_to).collect(),
                unsupported: file.unsupported.clone(),
                bytes,
            };
        }
    }
    notes
}

/// The package a file declares.
fn package_of(mut bytes: &[u8]) -> Option<String> {
    let mut package = None;
    while bytes.has_remaining() {
        let (tag, wire_type) = decode_key(&mut bytes).ok()?;
        let start = bytes;
        skip(&mut bytes, wire_type)?;
        if tag == PACKAGE && wire_type == WireType::LengthDelimited {
            let mut value = &start[..start.len() - bytes.len()];
            let len = decode_varint(&mut value).ok()?;
            let text = value.get(..usize::try_from(len).ok()?)?;
            package = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    package
}

/// `bytes` with the name and imports that `renamed` lists replaced; every
/// other field copied as it is.
fn rewrite(mut bytes: &[u8], renamed: &HashMap<String, String>) -> Option<Bytes> {
    let mut out = BytesMut::with_capacity(bytes.len() + 64);
    while bytes.has_remaining() {
        let field_start = bytes;
        let (tag, wire_type) = decode_key(&mut bytes).ok()?;
        let value_start = bytes;
        skip(&mut bytes, wire_type)?;
        let field = &field_start[..field_start.len() - bytes.len()];
        if matches!(tag, NAME | DEPENDENCY) && wire_type == WireType::LengthDelimited {
            let mut value = &value_start[..value_start.len() - bytes.len()];
            let len = usize::try_from(decode_varint(&mut value).ok()?).ok()?;
            let text = std::str::from_utf8(value.get(..len)?).unwrap_or_default();
            if let Some(new) = renamed.get(text) {
                encode_key(tag, WireType::LengthDelimited, &mut out);
                encode_varint(new.len() as u64, &mut out);
                out.put_slice(new.as_bytes());
                continue;
            }
        }
        out.put_slice(field);
    }
    Some(out.freeze())
}

/// Moves past one field value of `wire_type`; `None` when the bytes end
/// early (or hold a group, which `FileDescriptorProto` has none of).
fn skip(bytes: &mut &[u8], wire_type: WireType) -> Option<()> {
    let len = match wire_type {
        WireType::Varint => {
            decode_varint(bytes).ok()?;
            return Some(());
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => usize::try_from(decode_varint(bytes).ok()?).ok()?,
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    if bytes.len() < len {
        return None;
    }
    bytes.advance(len);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn file(name: &str, package: &str, deps: &[&str]) -> RawFile {
        let proto = prost_types::FileDescriptorProto {
            name: Some(name.to_owned()),
            package: Some(package.to_owned()),
            dependency: deps.iter().map(|d| (*d).to_owned()).collect(),
            syntax: Some("proto3".to_owned()),
            ..Default::default()
        };
        RawFile::decode(proto.encode_to_vec().into()).unwrap()
    }

    fn reflected(upstream: &str, files: Vec<RawFile>) -> Reflected {
        Reflected {
            upstream: upstream.to_owned(),
            services: Vec::new(),
            files,
            skipped: Vec::new(),
        }
    }

    #[test]
    fn other_packages_are_renamed_with_their_importers() {
        let mut fleet = vec![
            reflected("a", vec![file("api.proto", "a.v1", &[])]),
            reflected(
                "b",
                vec![
                    file("api.proto", "b.v1", &[]),
                    file(
                        "svc.proto",
                        "b.v1",
                        &["api.proto", "google/api/annotations.proto"],
                    ),
                ],
            ),
        ];
        let notes = separate(&mut fleet);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(fleet[0].files[0].name, "api.proto");
        let b = &fleet[1].files;
        assert_eq!(b[0].name, "b/api.proto");
        assert_eq!(
            b[1].imports,
            ["b/api.proto", "google/api/annotations.proto"]
        );
        // The bytes say so too, the rest intact.
        let renamed = prost_types::FileDescriptorProto::decode(b[0].bytes.clone()).unwrap();
        assert_eq!(renamed.name(), "b/api.proto");
        assert_eq!(renamed.package(), "b.v1");
        assert_eq!(renamed.syntax(), "proto3");
        let importer = prost_types::FileDescriptorProto::decode(b[1].bytes.clone()).unwrap();
        assert_eq!(
            importer.dependency,
            ["b/api.proto", "google/api/annotations.proto"]
        );
    }

    #[test]
    fn same_package_or_same_bytes_is_left_alone() {
        let mut fleet = vec![
            reflected("a", vec![file("api.proto", "shop.v1", &[])]),
            reflected("b", vec![file("api.proto", "shop.v1", &["x.proto"])]),
            reflected("c", vec![file("api.proto", "shop.v1", &[])]),
        ];
        assert!(separate(&mut fleet).is_empty());
        assert!(fleet.iter().all(|r| r.files[0].name == "api.proto"));
    }
}
