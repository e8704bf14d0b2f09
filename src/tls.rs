//! TLS files read and checked once, so that a wrong file is an error
//! naming it at startup (or on reload), not a failed handshake on the first
//! request: client TLS toward upstreams (`UpstreamTls`), for the gRPC
//! channels and the HTTP proxy alike, and server TLS on the main
//! listener (`ListenerTls`, in `server`).

mod server;

pub(crate) use server::{ServerTls, Staged};

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::UpstreamTls;

/// The PEM text of an upstream's TLS files, checked.
#[derive(Debug, Default)]
pub(crate) struct ClientTls {
    /// CA certificates to trust besides the system roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (mTLS).
    pub(crate) identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads and checks `tls`'s files: each must hold what its key says
    /// (certificates, a private key), and the key must belong to the
    /// certificate.
    pub(crate) fn load(tls: &UpstreamTls) -> Result<ClientTls, String> {
        let mut loaded = ClientTls::default();
        if let Some(ca) = &tls.ca_file {
            let pem = read("tls.ca_file", ca)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls.ca_file", ca, &pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file {}: {e}", shown(ca)))?;
            }
            loaded.ca_pem = Some(pem);
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let cert_pem = read("tls.cert_file", cert)?;
                let key_pem = read("tls.key_file", key)?;
                let chain = certificates("tls.cert_file", cert, &cert_pem)?;
                let private = private_key("tls.key_file", key, &key_pem)?;
                // Builds a config as the handshake would, which checks
                // that the key belongs to the certificate.
                rustls::ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| {
                        format!(
                            "tls.cert_file {} and tls.key_file {}: {e}",
                            shown(cert),
                            shown(key)
                        )
                    })?;
                loaded.identity_pem = Some((cert_pem, key_pem));
            }
            (None, None) => {}
            _ => return Err("tls: cert_file and key_file must be given together".to_owned()),
        }
        Ok(loaded)
    }

    /// A rustls client config: the system's roots and the webpki roots,
    /// the CA file's, and the client certificate.
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot use is skipped, as tonic
            // does.
            let _ = roots.add(cert);
        }
        if let Some(pem) = &self.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                roots.add(cert).map_err(|e| format!("tls.ca_file: {e}"))?;
            }
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        match &self.identity_pem {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("tls.cert_file: {e}"))?;
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key_file: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("tls client certificate: {e}"))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    crate::files::read(path, crate::files::MAX_TEXT_BYTES, "a TLS file")
        .map_err(|e| format!("{key} {}: cannot read it: {e}", shown(path)))
}

/// The certificates in a PEM file; none is an error.
fn certificates(
    key: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {}: not PEM: {}", shown(path), pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no certificate in it (a PEM `BEGIN CERTIFICATE` block is expected)",
            shown(path)
        ));
    }
    Ok(certs)
}

fn private_key(key: &str, path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    if pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(format!(
            "{key} {}: the key is encrypted, which is not supported: decrypt it (openssl pkey -in KEY -out PLAIN) and keep the file readable only by the gateway",
            shown(path)
        ));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        format!(
            "{key} {}: no private key in it (a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block is expected): {}",
            shown(path),
            pem_error(&e)
        )
    })
}

/// What is wrong with a PEM file, in words: the parser's own messages
/// show labels and lines as byte arrays.
fn pem_error(err: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    match err {
        Error::MissingSectionEnd { end_marker } => {
            let label = text(end_marker);
            format!(
                "a `-----BEGIN {label}-----` block has no `-----END {label}-----` line after it (is the file cut short?)"
            )
        }
        Error::IllegalSectionStart { line } => format!(
            "the line `{}` does not start a PEM block as `-----BEGIN LABEL-----` does",
            text(line)
        ),
        Error::Base64Decode(e) => format!("a PEM block is not valid base64: {e}"),
        other => other.to_string(),
    }
}

/// A path as the operator can find it: relative ones with the folder they
/// are relative to.
fn shown(path: &Path) -> String {
    match std::path::absolute(path) {
        Ok(absolute) if absolute != path => {
            format!("{} ({})", path.display(), absolute.display())
        }
        _ => path.display().to_string(),
    }
}
