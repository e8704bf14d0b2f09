//! Server TLS on the main listener: the files of a `ListenerTls` read and
//! checked into a rustls config that every handshake takes afresh, so a
//! reload can put new certificates in place without touching connections
//! that are already open.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

mod by_name;
mod crl;

use by_name::ByName;

use super::{read, shown};
use crate::config::{ClientAuth, ListenerTls};

/// ALPN protocols offered, in the server's order of preference: gRPC
/// clients need `h2`, REST clients may take either.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The listener's TLS config, swapped on reload.
#[derive(Debug)]
pub(crate) struct ServerTls {
    config: ArcSwap<ServerConfig>,
    /// A hash of the settings and file contents the config was built from,
    /// to tell a reload that changed them from one that did not.
    loaded: Mutex<u64>,
}

/// A config built on reload, not yet in use.
#[derive(Debug)]
pub(crate) struct Staged {
    config: Arc<ServerConfig>,
    hash: u64,
}

impl ServerTls {
    /// Reads and checks `tls`'s files: the chain and a key that belongs
    /// to it, and the client CAs when given.
    pub(crate) fn load(tls: &ListenerTls) -> Result<ServerTls, String> {
        let (config, hash, warnings) = build(tls)?;
        warn(&warnings);
        Ok(ServerTls {
            config: ArcSwap::from_pointee(config),
            loaded: Mutex::new(hash),
        })
    }

    /// The config for the next handshake.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Reads `tls`'s files again; `None` when nothing changed since the
    /// config in use was built. Nothing is swapped until [`commit`].
    ///
    /// [`commit`]: ServerTls::commit
    pub(crate) fn stage(&self, tls: &ListenerTls) -> Result<Option<Staged>, String> {
        let (config, hash, warnings) = build(tls)?;
        if *self.loaded.lock() == hash {
            return Ok(None);
        }
        warn(&warnings);
        Ok(Some(Staged {
            config: Arc::new(config),
            hash,
        }))
    }

    /// Puts `staged` in place for new handshakes.
    pub(crate) fn commit(&self, staged: Staged) {
        self.config.store(staged.config);
        *self.loaded.lock() = staged.hash;
    }
}

/// The rustls config for `tls`, a hash of what went into it, and what
/// loaded but will not work for every client.
fn build(tls: &ListenerTls) -> Result<(ServerConfig, u64, Vec<Warning>), String> {
    let mut hash = DefaultHasher::new();
    tls.hash(&mut hash);
    // Explicitly ring, whatever provider the process has installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut warnings = Vec::new();
    let default = by_name::load("tls", &tls.cert_file, &tls.key_file, &provider, &mut hash)?;
    if let Some(why) = default.dated {
        warnings.push(Warning::Dated(tls.cert_file.clone(), why));
    }
    let mut certificates = ByName::new(default.key);
    for (index, named) in tls.certificates.iter().enumerate() {
        let setting = format!("tls.certificates[{index}]");
        let loaded = by_name::load(
            &setting,
            &named.cert_file,
            &named.key_file,
            &provider,
            &mut hash,
        )?;
        let names = by_name::names(&loaded.key);
        if names.is_empty() {
            return Err(format!(
                "{setting}.cert_file {}: the certificate has no DNS name (subjectAltName) for clients to ask for it by",
                shown(&named.cert_file)
            ));
        }
        let taken = certificates.add(&names, &loaded.key);
        if !taken.is_empty() {
            warnings.push(Warning::Shadowed(named.cert_file.clone(), taken));
        }
        if let Some(why) = loaded.dated {
            warnings.push(Warning::Dated(named.cert_file.clone(), why));
        }
    }

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match (&tls.client_ca_file, tls.client_verification()) {
        (Some(ca), Some(auth)) => {
            let ca_pem = read("tls.client_ca_file", ca)?;
            ca_pem.hash(&mut hash);
            let cas = super::certificates("tls.client_ca_file", ca, &ca_pem)?;
            warnings.extend(
                cas.iter()
                    .filter_map(not_a_ca)
                    .map(|subject| Warning::NotCa(ca.clone(), subject)),
            );
            let crls = match &tls.client_crl_file {
                Some(path) => {
                    let pem = read("tls.client_crl_file", path)?;
                    pem.hash(&mut hash);
                    let algorithms = provider.signature_verification_algorithms.all;
                    let lists = crl::load(path, &pem, ca, &cas, algorithms)?;
                    warnings.extend(lists.unlisted.into_iter().map(Warning::Unlisted));
                    lists.der
                }
                None => Vec::new(),
            };
            builder.with_client_cert_verifier(client_verifier(ca, cas, crls, auth, provider)?)
        }
        (None, None) => builder.with_no_client_auth(),
        // `Config::validate` refuses this; said again for callers that did
        // not validate.
        _ => {
            return Err(
                "tls.client_auth: client certificates need a CA to be verified against: set tls.client_ca_file"
                    .to_owned(),
            );
        }
    };
    if tls.client_crl_file.is_some() && tls.client_ca_file.is_none() {
        return Err(
            "tls.client_crl_file: revocation lists apply to client certificates, which are not asked for: set tls.client_ca_file"
                .to_owned(),
        );
    }
    let mut config = builder.with_cert_resolver(Arc::new(certificates));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok((config, hash.finish(), warnings))
}

/// What loads but will not work for every client, logged when the config
/// it is part of is put in use.
#[derive(Debug)]
enum Warning {
    /// A certificate file out of date, and why.
    Dated(std::path::PathBuf, String),
    /// A client CA without a revocation list.
    Unlisted(crl::Unlisted),
    /// A certificate in `tls.certificates` with names an earlier one has.
    Shadowed(std::path::PathBuf, Vec<String>),
    /// A certificate in `tls.client_ca_file` that is no CA's (its subject).
    NotCa(std::path::PathBuf, String),
}

/// The subject of `certificate` when it does not say it is a CA's (no
/// basic constraints with `CA:TRUE`): trusted as a client CA all the same,
/// as the TLS library takes any key as an anchor, but most likely a leaf
/// certificate put in the wrong file.
fn not_a_ca(certificate: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(certificate).ok()?;
    let ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|constraints| constraints.value.ca);
    (!ca).then(|| cert.subject().to_string())
}

/// Why `certificate` is not valid now (expired, or not yet valid), when it
/// is not. Loaded all the same (a clock may be wrong, and the files may be
/// about to be replaced), but every client will refuse it.
fn out_of_date(certificate: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(certificate).ok()?;
    let now = rustls::pki_types::UnixTime::now();
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    // Validity is the first thing checked, before any issuer is looked
    // for: with no trust anchors, any other outcome is "unknown issuer".
    let checked = cert.verify_for_usage(
        algorithms,
        &[],
        &[],
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    let days = |from: rustls::pki_types::UnixTime, to: rustls::pki_types::UnixTime| {
        to.as_secs().saturating_sub(from.as_secs()) / 86_400
    };
    match checked {
        Err(webpki::Error::CertExpired { time, not_after }) => {
            Some(format!("expired {} days ago", days(not_after, time)))
        }
        Err(webpki::Error::CertNotValidYet { time, not_before }) => Some(format!(
            "not valid for another {} days",
            days(time, not_before)
        )),
        _ => None,
    }
}

fn warn(warnings: &[Warning]) {
    for warning in warnings {
        match warning {
            Warning::Dated(file, why) => tracing::warn!(
                file = %file.display(),
                why,
                "The listener's certificate is out of date: clients will refuse it"
            ),
            Warning::Shadowed(file, names) => tracing::warn!(
                file = %file.display(),
                names = %names.join(", "),
                "A certificate in tls.certificates is not served for names an earlier one has"
            ),
            Warning::NotCa(file, subject) => tracing::warn!(
                file = %file.display(),
                subject,
                "A certificate in tls.client_ca_file is not a CA's (no CA:TRUE basic constraint); it is trusted as one all the same"
            ),
            Warning::Unlisted(unlisted) => tracing::warn!(
                file = %unlisted.file.display(),
                ca = %unlisted.ca,
                issued = %unlisted.issued,
                "A client CA has no revocation list: only clients whose chain ends at a client CA it issued are served"
            ),
        }
    }
}

/// Verifies client certificates against the CAs `cas` (from the file
/// `path`) and, when there are any, the revocation lists `crls`. With
/// lists, the whole chain is checked and a certificate whose issuer has no
/// list is refused, as one whose status cannot be told (`crl::load` checks
/// that each client CA has one); a list past its next update still applies
/// (nothing fetches newer ones: replacing the file is a reload).
fn client_verifier(
    path: &Path,
    cas: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in cas {
        roots
            .add(cert)
            .map_err(|e| format!("tls.client_ca_file {}: {e}", shown(path)))?;
    }
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).with_crls(crls);
    if auth == ClientAuth::Optional {
        verifier = verifier.allow_unauthenticated();
    }
    verifier
        .build()
        .map_err(|e| format!("tls.client_ca_file {}: {e}", shown(path)))
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    use super::{CertificateDer, not_a_ca};

    fn certificate(name: &str, ca: bool) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![format!("{name}.test")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_leaf_in_the_client_ca_file_is_named() {
        assert_eq!(not_a_ca(&certificate("root", true)), None);
        assert_eq!(
            not_a_ca(&certificate("alice", false)).as_deref(),
            Some("CN=alice")
        );
        // Not a certificate at all: left to the TLS library to refuse.
        assert_eq!(not_a_ca(&CertificateDer::from(vec![1, 2, 3])), None);
    }
}
