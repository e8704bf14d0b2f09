//! The TLS handshake under a TLS endpoint's HTTP/2 connection, and what
//! its failures say.
//!
//! The rustls config comes made, trust and client identity included
//! (`upstream::endpoint` builds it once per upstream and snapshot, from
//! files read again on every snapshot so that rotated certificates are
//! taken); each connection only runs the handshake. gRPC needs HTTP/2, so
//! the handshake must agree on `h2` by ALPN: a server that agrees on
//! nothing, or on another protocol, is not connected to.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::BoxError;

/// The ALPN protocol of HTTP/2 over TLS.
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// How a TLS endpoint's connections are secured: the rustls config, which
/// must offer `h2` by ALPN, and the name its certificate is checked
/// against (sent as SNI when it is a DNS name; an IP address is checked
/// against the certificate's IP names and sends no SNI, as rustls does).
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// `config` with `h2` in its ALPN protocols, checking certificates
    /// against `name`.
    pub(crate) fn new(config: Arc<rustls::ClientConfig>, name: ServerName<'static>) -> Tls {
        debug_assert!(config.alpn_protocols.iter().any(|p| p == ALPN_H2));
        Tls {
            connector: TlsConnector::from(config),
            name,
        }
    }

    /// Runs the handshake on `tcp`; the connection is HTTP/2's only when
    /// the server agreed on `h2`.
    pub(super) async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Failed> {
        let stream = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|err| Failed::from_cause(Box::new(err)))?;
        let (_, session) = stream.get_ref();
        match session.alpn_protocol() {
            Some(ALPN_H2) => Ok(stream),
            other => Err(Failed::NoH2 {
                agreed: other.map(|p| String::from_utf8_lossy(p).into_owned()),
            }),
        }
    }
}

/// Why a TLS connection could not be made.
#[derive(Debug)]
pub(super) enum Failed {
    /// The handshake ended with an error, which `cause` holds (a rustls
    /// error in an I/O error, most often).
    Handshake(BoxError),
    /// The server did not agree on `h2` by ALPN: it agreed on `agreed`,
    /// on nothing, or refused (with a `no_application_protocol` alert,
    /// `agreed` then `None`).
    NoH2 { agreed: Option<String> },
}

impl Failed {
    /// The failure `cause` (an error on the handshake, or on the
    /// connection before its first HTTP/2 frame) stands for.
    pub(super) fn from_cause(cause: BoxError) -> Failed {
        match rustls_error(&*cause) {
            Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => {
                Failed::NoH2 { agreed: None }
            }
            _ => Failed::Handshake(cause),
        }
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Handshake(cause) => {
                write!(f, "TLS handshake failed: {cause}")?;
                if let Some(hint) = rustls_error(&**cause).and_then(hint) {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            Failed::NoH2 { agreed: None } => f.write_str(
                "the upstream did not agree on HTTP/2 by ALPN (h2) in the TLS handshake; gRPC needs HTTP/2: is it a gRPC server?",
            ),
            Failed::NoH2 {
                agreed: Some(protocol),
            } => write!(
                f,
                "the upstream agreed on `{protocol}`, not HTTP/2, by ALPN (h2) in the TLS handshake; gRPC needs HTTP/2: is it a gRPC server?"
            ),
        }
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The cause's text is in ours already.
            Failed::Handshake(cause) => cause.source(),
            Failed::NoH2 { .. } => None,
        }
    }
}

/// What the operator can do about a certificate the gateway refused.
fn hint(err: &rustls::Error) -> Option<&'static str> {
    use rustls::CertificateError as E;
    let rustls::Error::InvalidCertificate(err) = err else {
        return None;
    };
    match err {
        E::UnknownIssuer => Some(
            "the upstream's certificate is not issued by a CA the gateway trusts: set tls.ca_file to its CA",
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => Some(
            "the upstream's certificate does not name the host the gateway connects to: set tls.server_name to a name it holds",
        ),
        E::Expired | E::ExpiredContext { .. } => Some("the upstream's certificate has expired"),
        E::NotValidYet | E::NotValidYetContext { .. } => {
            Some("the upstream's certificate is not valid yet (is the clock right?)")
        }
        _ => None,
    }
}

/// The rustls error in `err`'s chain, where tokio-rustls puts it in an
/// I/O error too.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    crate::upstream::chain(err).find_map(|err| {
        err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<rustls::Error>()
        })
    })
}
