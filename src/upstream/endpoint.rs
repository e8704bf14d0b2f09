//! Connecting to an upstream: how to dial a URL with the upstream's TLS
//! and timeouts, a pool's targets, and what an upstream's
//! channel depends on (to keep it across reloads).

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::causes::append_causes;
use super::channel::Dial;
use super::{ChannelSettings, Resolver, UpstreamError, pool};
use crate::config::{DescriptorSource, UpstreamConfig, UpstreamTls};

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
/// name to verify when `url` holds an address rather than the name.
pub(super) fn endpoint(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    url: &str,
    server_name: Option<&str>,
) -> Result<Dial, UpstreamError> {
    crate::install_crypto_provider();
    let url_error = |reason: String| UpstreamError::Url {
        name: name.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| url_error(e.to_string()))?;
    let tls = config.url.starts_with("https://") || config.tls.is_some();
    if !tls && endpoint.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
        let user_agent = http::HeaderValue::from_static(USER_AGENT);
        return Dial::plain(endpoint.uri(), settings.connect_timeout, user_agent)
            .map_err(url_error);
    }
    let mut endpoint = endpoint
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .http2_max_header_list_size(super::channel::MAX_RESPONSE_HEADER_LIST)
        .user_agent(USER_AGENT)
        .map_err(|e| url_error(e.to_string()))?;
    if tls {
        let tls_error = |reason: String| UpstreamError::Tls {
            name: name.to_owned(),
            reason,
        };
        let mut tls = tls_config(config.tls.as_ref()).map_err(tls_error)?;
        if let Some(host) = server_name
            && config.tls.as_ref().is_none_or(|t| t.server_name.is_none())
        {
            tls = tls.domain_name(host);
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            let mut reason = String::new();
            append_causes(&mut reason, Some(&e));
            tls_error(reason)
        })?;
    }
    Ok(Dial::Tonic(Box::new(endpoint)))
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
    // Checked now, so that a bad setting fails the snapshot, not the task.
    endpoint(name, config, settings, url, None)?;
    let (name, config, settings) = (name.to_owned(), config.clone(), settings.clone());
    let server_name = (host.parse::<std::net::IpAddr>().is_err()).then(|| host.clone());
    Ok(pool::Target {
        scheme: if https { "https" } else { "http" },
        host,
        port,
        weight: endpoint_config.weight,
        zone: endpoint_config.zone.as_deref().map(Into::into),
        make: Arc::new(move |address_url: &str, registered: Option<&str>| {
            endpoint(
                &name,
                &config,
                &settings,
                address_url,
                registered.or(server_name.as_deref()),
            )
            .map_err(|e| e.to_string())
        }),
    })
}

fn tls_config(tls: Option<&UpstreamTls>) -> Result<ClientTlsConfig, String> {
    let mut config = ClientTlsConfig::new().with_enabled_roots();
    let Some(tls) = tls else {
        return Ok(config);
    };
    let loaded = crate::tls::ClientTls::load(tls)?;
    if let Some(ca) = loaded.ca_pem {
        config = config.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = loaded.identity_pem {
        config = config.identity(Identity::from_pem(cert, key));
    }
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
