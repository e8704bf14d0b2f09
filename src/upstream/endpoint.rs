//! Connecting to an upstream: how to dial a URL with the upstream's TLS
//! and timeouts, a pool's targets, and what an upstream's
//! channel depends on (to keep it across reloads).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::channel::{Dial, Tls};
use super::{ChannelSettings, Resolver, UpstreamError, pool};
use crate::config::{DescriptorSource, UpstreamConfig};

/// What an upstream's channel depends on, as text to compare: its
/// settings, and what its TLS files hold now (a certificate rotated under
/// the same name needs a new channel). Not what a reload may change and
/// keep the upstream, with its connections, ejections and breaker counts:
/// the services it serves, where their descriptors come from, its unary
/// timeout (read per call) and its canary split (set on every snapshot).
pub(super) fn made_from(config: &UpstreamConfig, settings: &ChannelSettings) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let config = UpstreamConfig {
        services: Vec::new(),
        descriptors: DescriptorSource::default(),
        timeout: None,
        canary: None,
        ..config.clone()
    };
    let mut files = std::hash::DefaultHasher::new();
    if let Some(tls) = &config.tls {
        for path in [&tls.ca_file, &tls.cert_file, &tls.key_file]
            .into_iter()
            .flatten()
        {
            // Read as loading reads it: a file it would refuse hashes as
            // missing, and loading says why.
            crate::files::read(path, crate::files::MAX_TEXT_BYTES, "a TLS file")
                .ok()
                .hash(&mut files);
        }
    }
    format!("{config:?} {settings:?} {:x}", files.finish())
}

/// Checks an upstream's URL and TLS files without connecting.
pub fn check(name: &str, config: &UpstreamConfig) -> Result<(), UpstreamError> {
    let settings = ChannelSettings {
        connect_timeout: Duration::from_secs(5),
        max_message_bytes: 4 << 20,
        zone: None,
        resolver: Resolver::system(),
    };
    for url in std::iter::once(&config.url).chain(config.endpoints.iter().map(|e| &e.url)) {
        endpoint(name, config, &settings, url, None)?;
    }
    Ok(())
}

/// How to dial `url` with `config`'s settings; `server_name` is the TLS
/// name to verify when `url` holds an address rather than the name. Reads
/// the TLS files: for a pool's many addresses, [`target`] reads them once.
pub(super) fn endpoint(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    url: &str,
    server_name: Option<&str>,
) -> Result<Dial, UpstreamError> {
    let tls = client_tls(name, config)?;
    dial(name, config, settings, url, tls.as_ref(), server_name)
}

/// How to dial `url` with `config`'s settings and its TLS client config
/// (`tls`, from [`client_tls`]).
fn dial(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    server_name: Option<&str>,
) -> Result<Dial, UpstreamError> {
    let url_error = |reason: String| UpstreamError::Url {
        name: name.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| url_error(e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(url_error(
            "an upstream URL starts with http:// or https://".to_owned(),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| url_error("the URL has no host".to_owned()))?;
    let tls = match tls {
        None => None,
        Some(config_tls) => {
            // The name the certificate must hold: the one set, else the
            // pool's host name for one of its addresses, else the URL's.
            let name_given = config.tls.as_ref().and_then(|t| t.server_name.as_deref());
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let checked = name_given.or(server_name).unwrap_or(host);
            let checked = ServerName::try_from(checked.to_owned()).map_err(|e| {
                UpstreamError::Tls {
                    name: name.to_owned(),
                    reason: format!(
                        "`{checked}` is not a DNS name or an IP address to check the certificate against: {e}"
                    ),
                }
            })?;
            Some(Tls::new(Arc::clone(config_tls), checked))
        }
    };
    let user_agent = http::HeaderValue::from_static(USER_AGENT);
    Dial::new(&uri, settings.connect_timeout, user_agent, tls).map_err(url_error)
}

/// The rustls config of `config`'s TLS connections, `None` in cleartext:
/// the system's roots and the webpki roots, `tls.ca_file`'s, the client
/// certificate, and `h2` by ALPN. Made from the files as they are now, once
/// per upstream made (see [`made_from`]), and shared by its connections.
fn client_tls(
    name: &str,
    config: &UpstreamConfig,
) -> Result<Option<Arc<rustls::ClientConfig>>, UpstreamError> {
    if !config.url.starts_with("https://") && config.tls.is_none() {
        return Ok(None);
    }
    crate::install_crypto_provider();
    let loaded = match &config.tls {
        Some(tls) => crate::tls::ClientTls::load(tls),
        None => Ok(crate::tls::ClientTls::default()),
    };
    let mut tls = loaded
        .and_then(|loaded| loaded.rustls_config())
        .map_err(|reason| UpstreamError::Tls {
            name: name.to_owned(),
            reason,
        })?;
    tls.alpn_protocols = vec![super::channel::ALPN_H2.to_vec()];
    Ok(Some(Arc::new(tls)))
}

impl super::Channel {
    /// A channel to `config`'s URL as the gateway makes one for an
    /// upstream of one address (its TLS settings, `settings`' connect
    /// timeout), for [`crate::descriptor::reflection::fetch`] outside the
    /// gateway; it connects on its first call. `name` names the upstream
    /// in errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use protogate::upstream::{Channel, ChannelSettings};
    ///
    /// let config = protogate::UpstreamConfig::new("http://127.0.0.1:50051");
    /// let settings = ChannelSettings::of(&protogate::Config::default());
    /// let channel = Channel::new("books", &config, &settings).unwrap();
    /// # drop(channel);
    /// ```
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        settings: &ChannelSettings,
    ) -> Result<super::Channel, UpstreamError> {
        Ok(endpoint(name, config, settings, &config.url, None)?.connect_lazy())
    }
}

/// The user agent of the gateway's calls.
const USER_AGENT: &str = concat!("protogate/", env!("CARGO_PKG_VERSION"));

/// One URL of a pool: its host and port to resolve, and how to make an
/// endpoint for each address found.
pub(super) fn target(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    endpoint_config: &crate::config::EndpointConfig,
) -> Result<pool::Target, UpstreamError> {
    let url = endpoint_config.url.as_str();
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| UpstreamError::Url {
            name: name.to_owned(),
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    // Read once for all the addresses the name will have.
    let tls = client_tls(name, config)?;
    // Checked now, so that a bad setting fails the snapshot, not the task.
    dial(name, config, settings, url, tls.as_ref(), None)?;
    let (name, config, settings) = (name.to_owned(), config.clone(), settings.clone());
    let server_name = (host.parse::<std::net::IpAddr>().is_err()).then(|| host.clone());
    Ok(pool::Target {
        scheme: if https { "https" } else { "http" },
        host,
        port,
        weight: endpoint_config.weight,
        zone: endpoint_config.zone.as_deref().map(Into::into),
        make: Arc::new(move |address_url: &str, registered: Option<&str>| {
            dial(
                &name,
                &config,
                &settings,
                address_url,
                tls.as_ref(),
                registered.or(server_name.as_deref()),
            )
            .map_err(|e| e.to_string())
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamTls;

    /// A certificate rotated under the same file name makes a new channel;
    /// nothing changed keeps the old one.
    #[test]
    fn channels_follow_tls_file_contents() {
        let dir = std::env::temp_dir().join(format!("protogate-upstream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "first").unwrap();
        let mut config = UpstreamConfig::new("https://127.0.0.1:1");
        config.tls = Some(UpstreamTls {
            ca_file: Some(ca.clone()),
            ..UpstreamTls::default()
        });
        let settings = ChannelSettings {
            connect_timeout: Duration::from_secs(1),
            max_message_bytes: 1 << 20,
            zone: None,
            resolver: Resolver::system(),
        };
        let before = made_from(&config, &settings);
        assert_eq!(made_from(&config, &settings), before);
        std::fs::write(&ca, "second").unwrap();
        assert_ne!(made_from(&config, &settings), before);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
