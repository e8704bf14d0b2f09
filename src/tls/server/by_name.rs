//! The listener's certificates chosen by the name a client asks for
//! (SNI): `tls.cert_file` for clients that name no host or one no other
//! certificate has, `tls.certificates` for their own names.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _};
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::tls::{certificates, private_key, read, shown};

/// A certificate with its key, read and checked, and why it is out of
/// date when it is.
pub(super) struct Loaded {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) dated: Option<String>,
}

/// Reads the chain in `cert_file` and the key in `key_file` (the settings
/// `{setting}.cert_file` and `{setting}.key_file` in errors), adding what
/// was read to `hash`.
pub(super) fn load(
    setting: &str,
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
    hash: &mut DefaultHasher,
) -> Result<Loaded, String> {
    let (cert_key, key_key) = (
        format!("{setting}.cert_file"),
        format!("{setting}.key_file"),
    );
    let cert_pem = read(&cert_key, cert_file)?;
    let key_pem = read(&key_key, key_file)?;
    cert_pem.hash(hash);
    key_pem.hash(hash);
    let chain = certificates(&cert_key, cert_file, &cert_pem)?;
    let key = private_key(&key_key, key_file, &key_pem)?;
    let dated = chain.first().and_then(super::out_of_date);
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{key_key} {}: {e}", shown(key_file)))?;
    let several = chain.len() > 1;
    let certified = CertifiedKey::new(chain, signing);
    // Fails when the key does not belong to the first certificate: the
    // wrong key, or a chain written in another order. (A key whose
    // public half cannot be derived cannot be compared: taken.)
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            let order = if several {
                " (the key must belong to the file's first certificate: the server's own, then the ones that issued it)"
            } else {
                ""
            };
            return Err(format!(
                "{cert_key} {} and {key_key} {}: {e}{order}",
                shown(cert_file),
                shown(key_file)
            ));
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        dated,
    })
}

/// The DNS names a certificate is served for: its `subjectAltName` DNS
/// entries, lowercased (wildcards as `*.example.com`).
pub(super) fn names(key: &CertifiedKey) -> Vec<String> {
    key.end_entity_cert()
        .ok()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
        .map(|cert| {
            cert.valid_dns_names()
                .map(|name| name.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Picks the certificate for a handshake by the client's server name.
#[derive(Debug)]
pub(super) struct ByName {
    default: Arc<CertifiedKey>,
    /// Exact names, and wildcards under the name they cover one label
    /// below (`*.example.com` as `example.com`).
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl ByName {
    pub(super) fn new(default: Arc<CertifiedKey>) -> ByName {
        ByName {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }

    /// Serves `key` for `names`, except those an earlier one has: those
    /// are given back. A name written fully qualified (`host.example.`)
    /// is the same name as without its dot, as a client asks for it.
    pub(super) fn add(&mut self, names: &[String], key: &Arc<CertifiedKey>) -> Vec<String> {
        let mut taken = Vec::new();
        for name in names {
            let bare = name.strip_suffix('.').unwrap_or(name);
            let (map, bare) = match bare.strip_prefix("*.") {
                Some(parent) => (&mut self.wildcard, parent),
                None => (&mut self.exact, bare),
            };
            match map.entry(bare.to_owned()) {
                std::collections::hash_map::Entry::Occupied(_) => taken.push(name.clone()),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(key.clone());
                }
            }
        }
        taken
    }

    fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(name.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        let name = name.as_ref();
        if let Some(key) = self.exact.get(name) {
            return key;
        }
        // A wildcard covers one label (RFC 6125 §6.4.3).
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Arc<CertifiedKey> {
        // Only the identity matters here: a one-byte "chain" and any key.
        let provider = rustls::crypto::ring::default_provider();
        let der = rcgen::KeyPair::generate().unwrap().serialize_der();
        let der = rustls::pki_types::PrivateKeyDer::try_from(der).unwrap();
        let signing = provider.key_provider.load_private_key(der).unwrap();
        Arc::new(CertifiedKey::new(
            vec![rustls::pki_types::CertificateDer::from(vec![n])],
            signing,
        ))
    }

    #[test]
    fn names_pick_their_certificate() {
        let (default, api, any) = (key(0), key(1), key(2));
        let mut by_name = ByName::new(default.clone());
        assert!(by_name.add(&["api.example.com".into()], &api).is_empty());
        let taken = by_name.add(&["*.example.com".into(), "api.example.com.".into()], &any);
        assert_eq!(
            taken,
            ["api.example.com."],
            "a fully qualified name is the same name"
        );
        let dotted = key(3);
        by_name.add(&["dot.example.net.".into()], &dotted);
        let pick = |name| Arc::as_ptr(by_name.pick(name));
        assert_eq!(pick(None), Arc::as_ptr(&default));
        assert_eq!(pick(Some("api.example.com")), Arc::as_ptr(&api));
        assert_eq!(pick(Some("API.Example.com.")), Arc::as_ptr(&api));
        assert_eq!(pick(Some("www.example.com")), Arc::as_ptr(&any));
        // One label only, and not the parent itself.
        assert_eq!(pick(Some("a.b.example.com")), Arc::as_ptr(&default));
        assert_eq!(pick(Some("example.com")), Arc::as_ptr(&default));
        assert_eq!(pick(Some("other.org")), Arc::as_ptr(&default));
        assert_eq!(pick(Some("dot.example.net")), Arc::as_ptr(&dotted));
        assert_eq!(pick(Some("dot.example.net.")), Arc::as_ptr(&dotted));
    }
}
