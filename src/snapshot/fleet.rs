//! What the descriptors say about the fleet of upstreams: who serves
//! which service, each one's descriptor version, and where they disagree.

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::Config;
use crate::descriptor::{self, Sources};

/// What the descriptors say about the fleet: which upstream serves which
/// service (learned from server reflection), the version of each
/// upstream's descriptors, and where upstreams disagree.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Service → the first reflecting upstream that lists it.
    learned: HashMap<String, String>,
    /// Upstream (or `files` for the configured sources, `all` for the
    /// whole pool) → a hash of its descriptors' bytes.
    pub versions: Vec<(String, String)>,
    /// Services two upstreams list with different descriptors.
    pub conflicts: Vec<String>,
    /// Files served under another name, as a file of the same name from
    /// another upstream is a different one.
    pub renamed: Vec<String>,
}

impl Fleet {
    pub(super) fn learn(sources: &Sources, set: &Bytes) -> Fleet {
        let mut fleet = Fleet::default();
        // The file each upstream defines each service in, to compare.
        let mut defined: HashMap<&str, (&str, &Bytes)> = HashMap::new();
        for reflected in &sources.reflected {
            for service in &reflected.services {
                fleet
                    .learned
                    .entry(service.clone())
                    .or_insert_with(|| reflected.upstream.clone());
                let package_file = reflected.files.iter().find(|f| defines(f, service));
                let Some(file) = package_file else { continue };
                match defined.get(service.as_str()) {
                    Some((first, bytes)) if **bytes != file.bytes => {
                        fleet.conflicts.push(format!(
                            "{service}: upstreams `{first}` and `{}` serve different descriptors (routed to `{first}`)",
                            reflected.upstream
                        ));
                    }
                    Some(_) => {}
                    None => {
                        defined.insert(service, (&reflected.upstream, &file.bytes));
                    }
                }
            }
            let bytes = reflected.files.iter().map(|f| &f.bytes[..]);
            fleet
                .versions
                .push((reflected.upstream.clone(), version(bytes)));
        }
        fleet
            .versions
            .push(("all".to_owned(), version(std::iter::once(&set[..]))));
        fleet
    }

    /// The upstream serving `service`: one whose `services` claim it, else
    /// the reflecting upstream that lists it, else the default upstream.
    pub fn upstream_for<'a>(&'a self, config: &'a Config, service: &str) -> Option<&'a str> {
        config
            .claimed_by(service)
            .or_else(|| self.learned.get(service).map(String::as_str))
            .or_else(|| config.default_upstream())
    }
}

/// Whether `file` defines `service` (its package plus a service name);
/// read from the file's bytes without a pool.
fn defines(file: &descriptor::RawFile, service: &str) -> bool {
    use prost::Message as _;
    prost_types::FileDescriptorProto::decode(file.bytes.clone()).is_ok_and(|proto| {
        proto.service.iter().any(|s| {
            let name = s.name();
            match proto.package() {
                "" => service == name,
                package => service
                    .strip_prefix(package)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| rest == name),
            }
        })
    })
}

/// A short hash naming a version of some descriptors (stable within one
/// build of protogate).
fn version<'a>(parts: impl Iterator<Item = &'a [u8]>) -> String {
    use std::hash::Hasher as _;
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        hasher.write(part);
    }
    format!("{:016x}", hasher.finish())
}
