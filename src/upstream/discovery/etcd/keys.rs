//! The keys under the prefix as last read, each with the instances its
//! value gives, and the set of instances they make together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use super::super::Instance;
use super::pb::{KeyValue, event::EventType};
use super::value::{Host, Registration};

/// Longest wait for one host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Host names resolved at once.
const RESOLVE_AT_ONCE: usize = 16;

/// One key.
#[derive(Debug)]
struct Entry {
    /// The revision of the value read.
    revision: i64,
    /// The value read.
    value: Vec<u8>,
    /// What the value says (None: not an instance).
    registration: Option<Registration>,
    /// Its instances as last resolved: empty until a host name first
    /// resolves, kept when a later resolution fails.
    instances: Vec<Instance>,
}

impl Entry {
    /// Whether it registers a host name.
    fn is_named(&self) -> bool {
        matches!(
            self.registration,
            Some(Registration {
                host: Host::Name(_),
                ..
            })
        )
    }
}

/// The keys under the prefix.
#[derive(Debug)]
pub(super) struct Keys {
    /// For logs.
    prefix: Arc<str>,
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Keys warned about, with the revision warned about: a bad value, or
    /// a host name that does not resolve. Each is warned once per revision
    /// (a later read of the same revision logs at debug).
    bad: HashMap<Vec<u8>, i64>,
    unresolved: HashMap<Vec<u8>, i64>,
}

impl Keys {
    pub(super) fn new(prefix: Arc<str>) -> Keys {
        Keys {
            prefix,
            entries: BTreeMap::new(),
            bad: HashMap::new(),
            unresolved: HashMap::new(),
        }
    }

    /// Replaces every key with those of a fresh read of the prefix. Keys
    /// whose value did not change keep their addresses should their name
    /// not resolve now.
    pub(super) async fn replace(&mut self, kvs: Vec<KeyValue>) {
        let mut old = std::mem::take(&mut self.entries);
        let mut changed = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let previous = old.remove(&kv.key);
            let entry = match previous {
                Some(entry) if entry.revision == kv.mod_revision && entry.value == kv.value => {
                    entry
                }
                previous => {
                    let registration = self.parse(&kv);
                    entry(&kv, registration, previous.as_ref())
                }
            };
            changed.push(kv.key.clone());
            self.entries.insert(kv.key, entry);
        }
        self.bad.retain(|key, _| self.entries.contains_key(key));
        self.unresolved
            .retain(|key, _| self.entries.contains_key(key));
        self.resolve(changed).await;
    }

    /// Applies the events of one watch response, in order.
    pub(super) async fn apply(&mut self, events: Vec<super::pb::Event>) {
        let mut changed = HashSet::new();
        for event in events {
            let kind = event.r#type();
            let Some(kv) = event.kv else { continue };
            match kind {
                EventType::Put => {
                    let registration = self.parse(&kv);
                    let entry = entry(&kv, registration, self.entries.get(&kv.key));
                    changed.insert(kv.key.clone());
                    self.entries.insert(kv.key, entry);
                }
                EventType::Delete => {
                    changed.remove(&kv.key);
                    self.entries.remove(&kv.key);
                    self.bad.remove(&kv.key);
                    self.unresolved.remove(&kv.key);
                }
            }
        }
        self.resolve(changed.into_iter().collect()).await;
    }

    /// Resolves every host name again.
    pub(super) async fn refresh(&mut self) {
        let named = self
            .entries
            .iter()
            .filter(|(_, e)| e.is_named())
            .map(|(key, _)| key.clone())
            .collect();
        self.resolve(named).await;
    }

    /// The prefix the keys are under.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether any key names a host (so [`Keys::refresh`] has work).
    pub(super) fn has_names(&self) -> bool {
        self.entries.values().any(Entry::is_named)
    }

    /// The instances of every key, in key order, each address once.
    pub(super) fn instances(&self) -> Vec<Instance> {
        let mut seen = HashSet::new();
        self.entries
            .values()
            .flat_map(|e| &e.instances)
            .filter(|i| seen.insert(i.address))
            .cloned()
            .collect()
    }

    /// What the value of `kv` registers; a bad value is warned about
    /// (once per revision of its key) and gives None.
    fn parse(&mut self, kv: &KeyValue) -> Option<Registration> {
        match Registration::parse(&kv.value) {
            Ok(registration) => {
                self.bad.remove(&kv.key);
                Some(registration)
            }
            Err(err) => {
                let key = String::from_utf8_lossy(&kv.key);
                if self.bad.insert(kv.key.clone(), kv.mod_revision) != Some(kv.mod_revision) {
                    tracing::warn!(prefix = %self.prefix, %key, revision = kv.mod_revision, error = %err, "Skipping an etcd key whose value is not an instance");
                } else {
                    tracing::debug!(prefix = %self.prefix, %key, revision = kv.mod_revision, error = %err, "Skipping an etcd key whose value is not an instance");
                }
                None
            }
        }
    }

    /// Resolves the host names of `keys` (those that have one), a few at
    /// a time, and sets their instances.
    async fn resolve(&mut self, keys: Vec<Vec<u8>>) {
        let mut hosts = HashSet::new();
        let keys: Vec<(Vec<u8>, Arc<str>)> = keys
            .into_iter()
            .filter_map(|key| match &self.entries.get(&key)?.registration {
                Some(Registration {
                    host: Host::Name(name),
                    ..
                }) => {
                    hosts.insert(name.clone());
                    Some((key, name.clone()))
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return;
        }
        let found: HashMap<Arc<str>, Result<Vec<IpAddr>, String>> =
            futures_util::stream::iter(hosts)
                .map(|host| async move {
                    let found = lookup(&host).await;
                    (host, found)
                })
                .buffer_unordered(RESOLVE_AT_ONCE)
                .collect()
                .await;
        for (key, host) in keys {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            let Some(registration) = &entry.registration else {
                continue;
            };
            let Some(found) = found.get(&host) else {
                continue;
            };
            match found {
                Ok(addresses) => {
                    entry.instances = addresses
                        .iter()
                        .map(|&a| registration.instance(a))
                        .collect();
                    self.unresolved.remove(&key);
                }
                Err(err) => {
                    let first =
                        self.unresolved.insert(key.clone(), entry.revision) != Some(entry.revision);
                    let key = String::from_utf8_lossy(&key);
                    if first {
                        tracing::warn!(prefix = %self.prefix, %key, %host, error = %err, "Cannot resolve the host of an etcd instance; keeping its last addresses");
                    } else {
                        tracing::debug!(prefix = %self.prefix, %key, %host, error = %err, "Host of an etcd instance still does not resolve");
                    }
                }
            }
        }
    }
}

/// Every address of `host`, sorted, each once.
async fn lookup(host: &str) -> Result<Vec<IpAddr>, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| format!("no answer within {RESOLVE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let mut addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err("no addresses".to_owned());
    }
    Ok(addresses)
}

/// The entry of a key as read. Its instances are known at once for an IP
/// literal; for a name, after [`Keys::resolve`] (until then those of
/// `previous`, the key's entry before, if it registered the same).
fn entry(kv: &KeyValue, registration: Option<Registration>, previous: Option<&Entry>) -> Entry {
    let instances = match (&registration, previous) {
        (
            Some(
                r @ Registration {
                    host: Host::Ip(ip), ..
                },
            ),
            _,
        ) => vec![r.instance(*ip)],
        (Some(r), Some(previous)) if previous.registration.as_ref() == Some(r) => {
            previous.instances.clone()
        }
        _ => Vec::new(),
    };
    Entry {
        revision: kv.mod_revision,
        value: kv.value.clone(),
        registration,
        instances,
    }
}
