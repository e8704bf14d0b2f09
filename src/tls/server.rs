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
use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::{ServerConfig, WebPkiClientVerifier};

mod by_name;

use by_name::ByName;

use super::{certificates, read, shown};
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
        let (config, hash, dated) = build(tls)?;
        warn_if_dated(&dated);
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
        let (config, hash, dated) = build(tls)?;
        if *self.loaded.lock() == hash {
            return Ok(None);
        }
        warn_if_dated(&dated);
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

/// The rustls config for `tls`, a hash of what went into it, and for each
/// certificate out of date, its file and why.
fn build(tls: &ListenerTls) -> Result<(ServerConfig, u64, Vec<Dated>), String> {
    let mut hash = DefaultHasher::new();
    tls.hash(&mut hash);
    // Explicitly ring, whatever provider the process has installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut dated = Vec::new();
    let default = by_name::load("tls", &tls.cert_file, &tls.key_file, &provider, &mut hash)?;
    if let Some(why) = default.dated {
        dated.push((tls.cert_file.clone(), why));
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
        certificates.add(&names, &loaded.key);
        if let Some(why) = loaded.dated {
            dated.push((named.cert_file.clone(), why));
        }
    }

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match (&tls.client_ca_file, tls.client_verification()) {
        (Some(ca), Some(auth)) => {
            let ca_pem = read("tls.client_ca_file", ca)?;
            ca_pem.hash(&mut hash);
            let crls = match &tls.client_crl_file {
                Some(path) => {
                    let pem = read("tls.client_crl_file", path)?;
                    pem.hash(&mut hash);
                    revocation_lists(path, &pem)?
                }
                None => Vec::new(),
            };
            builder.with_client_cert_verifier(client_verifier(ca, &ca_pem, crls, auth, provider)?)
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
    Ok((config, hash.finish(), dated))
}

/// A certificate file out of date, and why.
type Dated = (std::path::PathBuf, String);

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

fn warn_if_dated(dated: &[Dated]) {
    for (file, why) in dated {
        tracing::warn!(
            file = %file.display(),
            why,
            "The listener's certificate is out of date: clients will refuse it"
        );
    }
}

/// The revocation lists in a PEM file, each checked to parse; none is an
/// error (an empty file is more likely a mistake than a CA that revoked
/// nothing, whose list still names it as issuer).
fn revocation_lists(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.client_crl_file {}: not PEM: {e}", shown(path)))?;
    if crls.is_empty() {
        return Err(format!(
            "tls.client_crl_file {}: no revocation list in it (a PEM `BEGIN X509 CRL` block is expected)",
            shown(path)
        ));
    }
    for (n, crl) in crls.iter().enumerate() {
        webpki::BorrowedCertRevocationList::from_der(crl).map_err(|e| {
            format!(
                "tls.client_crl_file {}: revocation list {} of {} is malformed: {e}",
                shown(path),
                n + 1,
                crls.len()
            )
        })?;
    }
    Ok(crls)
}

/// Verifies client certificates against the CAs in `pem` and, when there
/// are any, the revocation lists `crls`. With lists, the whole chain is
/// checked and a certificate whose issuer has no list is refused, as one
/// whose status cannot be told; a list past its next update still
/// applies (nothing fetches newer ones: replacing the file is a reload).
fn client_verifier(
    path: &Path,
    pem: &[u8],
    crls: Vec<CertificateRevocationListDer<'static>>,
    auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("tls.client_ca_file", path, pem)? {
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
