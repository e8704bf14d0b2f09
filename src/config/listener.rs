//! TLS on the main listener: the server's certificate and key, and the CA
//! that client certificates are verified against (mTLS).

use std::path::PathBuf;

use serde::Deserialize;

/// TLS on the main listener: HTTPS for REST clients (HTTP/1.1 and HTTP/2
/// by ALPN) and gRPC over TLS on the same port. The files are read again
/// on every reload.
///
/// # Examples
///
/// ```
/// use protogate::config::ClientAuth;
///
/// let config = protogate::Config::from_yaml(
///     "tls: { cert_file: server.pem, key_file: server.key, client_ca_file: ca.pem }",
/// )?;
/// let tls = config.tls.expect("tls is set");
/// // With a client CA, clients must show a certificate unless told otherwise.
/// assert_eq!(tls.client_verification(), Some(ClientAuth::Required));
/// # Ok::<(), protogate::config::YamlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 RSA or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates are verified against;
    /// without it, clients are not asked for one.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client must show a certificate (`required`, the default
    /// with `client_ca_file`) or may go without (`optional`); one it shows
    /// must verify either way.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// PEM certificate revocation lists (`BEGIN X509 CRL`) of the client
    /// CAs: a client certificate listed in one is refused. With it, every
    /// CA that issues in a client's chain needs its list in the file.
    #[serde(default)]
    pub client_crl_file: Option<PathBuf>,
    /// More certificates, each served to clients that ask for one of the
    /// DNS names in it (SNI); the first listed wins a name two have.
    /// `cert_file` serves the rest, and clients that name no host.
    #[serde(default)]
    pub certificates: Vec<NamedCertificate>,
}

/// A certificate served by name: the names are the DNS names in it
/// (`subjectAltName`, wildcards included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCertificate {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub key_file: PathBuf,
}

/// Whether clients of the TLS listener must show a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A client without a certificate is served; one with a certificate
    /// that does not verify is refused.
    Optional,
    /// A client without a valid certificate is refused.
    Required,
}

impl ListenerTls {
    /// TLS with the certificate chain and key in these PEM files, without
    /// client certificates.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> ListenerTls {
        ListenerTls {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            client_auth: None,
            client_crl_file: None,
            certificates: Vec::new(),
        }
    }

    /// Verifies client certificates against the CAs in `ca_file`, asking
    /// for them as `auth` says.
    pub fn with_client_ca(mut self, ca_file: impl Into<PathBuf>, auth: ClientAuth) -> Self {
        self.client_ca_file = Some(ca_file.into());
        self.client_auth = Some(auth);
        self
    }

    /// Refuses client certificates revoked by the lists in `crl_file`.
    pub fn with_client_crl(mut self, crl_file: impl Into<PathBuf>) -> Self {
        self.client_crl_file = Some(crl_file.into());
        self
    }

    /// Also serves the certificate in `cert_file` (with its key in
    /// `key_file`) to clients asking for one of its names.
    pub fn with_named_certificate(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.certificates.push(NamedCertificate {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        });
        self
    }

    /// How client certificates are asked for: not at all (no
    /// `client_ca_file`), or as `client_auth` says (`required` unless set).
    pub fn client_verification(&self) -> Option<ClientAuth> {
        self.client_ca_file
            .as_ref()
            .map(|_| self.client_auth.unwrap_or(ClientAuth::Required))
    }

    /// The files, for the reload watcher.
    pub(crate) fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert_file, &self.key_file]
            .into_iter()
            .chain(&self.client_ca_file)
            .chain(&self.client_crl_file)
            .chain(
                self.certificates
                    .iter()
                    .flat_map(|c| [&c.cert_file, &c.key_file]),
            )
    }

    /// Makes relative paths relative to `base`.
    pub(super) fn rebase(&mut self, base: &std::path::Path) {
        for path in [&mut self.cert_file, &mut self.key_file]
            .into_iter()
            .chain(&mut self.client_ca_file)
            .chain(&mut self.client_crl_file)
            .chain(
                self.certificates
                    .iter_mut()
                    .flat_map(|c| [&mut c.cert_file, &mut c.key_file]),
            )
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}
