//! Upstreams: one pooled, lazily connected HTTP/2 channel per upstream,
//! reused by every route and request.

pub mod codec;
pub mod discovery;
pub mod metadata;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::codec::CompressionEncoding;
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use crate::config::{GrpcCompression, UpstreamConfig, UpstreamTls};
use codec::{CallCodec, Outgoing};

/// An upstream that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL is not a valid `http://` or `https://` URL.
    #[error("upstream `{name}`: invalid URL `{url}`: {reason}")]
    Url {
        /// The upstream.
        name: String,
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A TLS file cannot be read or used.
    #[error("upstream `{name}`: TLS: {reason}")]
    Tls {
        /// The upstream.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Channel settings shared by all upstreams.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Largest response message accepted.
    pub max_message_bytes: usize,
}

impl ChannelSettings {
    /// The settings `config` gives every upstream.
    pub fn of(config: &crate::config::Config) -> ChannelSettings {
        ChannelSettings {
            connect_timeout: config.timeouts.connect,
            max_message_bytes: config.limits.max_response_bytes,
        }
    }
}

/// One backend service address with its channel.
#[derive(Debug, Clone)]
pub struct Upstream {
    name: Box<str>,
    url: Box<str>,
    channel: Channel,
    max_message_bytes: usize,
    send_compressed: Option<CompressionEncoding>,
    /// The settings it was made from, to tell whether a reload may keep
    /// its channel (and connections).
    made_from: Arc<str>,
    /// Its endpoints, when it is a pool (`endpoints`, `health_check`,
    /// `dns_refresh`).
    pool: Option<Arc<pool::Pool>>,
}

/// One unary call.
#[derive(Debug)]
pub struct Call {
    /// `/package.Service/Method`.
    pub path: PathAndQuery,
    /// The encoded request message.
    pub message: Bytes,
    /// Request metadata.
    pub metadata: MetadataMap,
    /// Deadline for the whole call.
    pub timeout: Option<Duration>,
}

/// A successful unary reply.
#[derive(Debug)]
pub struct Reply {
    /// Response headers.
    pub headers: MetadataMap,
    /// The encoded response message.
    pub message: Bytes,
    /// Trailers (without `grpc-status`).
    pub trailers: MetadataMap,
}

/// A failed call.
#[derive(Debug)]
pub enum CallError {
    /// The backend (or the channel) answered with a status.
    Status(Status),
    /// The deadline passed before the call finished.
    DeadlineExceeded(Duration),
    /// The backend's message is larger than the gateway accepts.
    TooLarge(usize),
    /// The channel failed in a way that is neither the backend's answer
    /// nor plain unreachability: the peer does not speak gRPC over HTTP/2
    /// as the URL says (a TLS port called with `http://`, an HTTP/1.1
    /// server), or reset the call. Explained, with a hint.
    Protocol(String),
}

impl Upstream {
    /// Sets up the channel (connecting lazily, on first use).
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        settings: &ChannelSettings,
    ) -> Result<Upstream, UpstreamError> {
        let (channel, pool) = if config.is_pool() {
            let targets = std::iter::once(&config.url)
                .chain(&config.endpoints)
                .map(|url| target(name, config, settings, url))
                .collect::<Result<Vec<_>, _>>()?;
            let (channel, pool) = pool::start(name, config, targets);
            (channel, Some(pool))
        } else {
            (
                endpoint(name, config, settings, &config.url, None)?.connect_lazy(),
                None,
            )
        };
        Ok(Upstream {
            made_from: made_from(config, settings).into(),
            name: name.into(),
            // Named in messages: a pool by all its URLs, as which endpoint a
            // call went to is the balancer's secret.
            url: if config.endpoints.is_empty() {
                config.url.as_str().into()
            } else {
                std::iter::once(&config.url)
                    .chain(&config.endpoints)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
                    .into()
            },
            channel,
            pool,
            max_message_bytes: settings.max_message_bytes,
            send_compressed: config.compression.map(|c| match c {
                GrpcCompression::Gzip => CompressionEncoding::Gzip,
                GrpcCompression::Zstd => CompressionEncoding::Zstd,
            }),
        })
    }

    /// This upstream if it was made from the same settings, keeping its
    /// channel and connections across a reload; else a new one.
    pub fn reuse_or_new(
        previous: Option<&Upstream>,
        name: &str,
        config: &UpstreamConfig,
        settings: &ChannelSettings,
    ) -> Result<Upstream, UpstreamError> {
        match previous {
            Some(old) if *old.name == *name && *old.made_from == made_from(config, settings) => {
                Ok(old.clone())
            }
            _ => Upstream::new(name, config, settings),
        }
    }

    /// The upstream's name in config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pooled channel, for requests passed through unchanged.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The upstream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes a unary call, keeping response headers and trailers apart.
    /// The deadline covers the whole call.
    pub async fn unary(&self, call: Call) -> Result<Reply, CallError> {
        self.admit().map_err(CallError::Status)?;
        let Call {
            path,
            message,
            metadata,
            timeout,
        } = call;
        // In a pool, a call that could not connect never reached a
        // backend: it is tried again (the balancer picks again, and the
        // probe takes the dead endpoint out), a few times at most.
        let attempts = self.pool.as_ref().map_or(1, |_| 3);
        let exchange = async move {
            if attempts == 1 {
                return self.exchange(path, metadata, timeout, message).await;
            }
            let mut attempt = 1;
            loop {
                let result = self
                    .exchange(path.clone(), metadata.clone(), timeout, message.clone())
                    .await;
                match result {
                    Err(status)
                        if attempt < attempts && caused_by::<tonic::ConnectError>(&status) =>
                    {
                        tracing::debug!(upstream = %self.name, attempt, "Could not connect; trying another endpoint");
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        };
        self.within(timeout, exchange).await
    }

    /// One unary exchange.
    async fn exchange(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        message: Bytes,
    ) -> Result<Reply, Status> {
        let request = tokio_stream::once(Outgoing::Message(message));
        let opened = self.start(path, metadata, timeout, request).await?;
        let Opened {
            headers,
            mut stream,
        } = opened;
        let message = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("upstream sent no response message"))?;
        let trailers = stream.trailers().await?.unwrap_or_default();
        Ok(Reply {
            headers,
            message,
            trailers,
        })
    }

    /// Opens a call of any shape: `requests` are sent as they come (the
    /// call half-closes when they end); the response headers are awaited
    /// (within the deadline) and the response messages left to the caller.
    pub async fn open<S>(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        requests: S,
    ) -> Result<Opened, CallError>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        self.admit().map_err(CallError::Status)?;
        self.within(timeout, self.start(path, metadata, timeout, requests))
            .await
    }

    /// A pool's endpoints and whether each is in the rotation (`None`
    /// when the upstream is one address).
    pub fn endpoints(&self) -> Option<Vec<(std::net::SocketAddr, bool)>> {
        self.pool.as_ref().map(|pool| pool.endpoints.lock().clone())
    }

    /// Whether a call may go out now: a pool with no endpoint in the
    /// rotation fails it at once (the balancer would hold it until an
    /// endpoint comes, or the deadline).
    pub fn admit(&self) -> Result<(), Status> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        if pool.healthy.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            let known = pool.known.load(std::sync::atomic::Ordering::Relaxed);
            let why = if known == 0 {
                "its host names resolve to no address".to_owned()
            } else {
                format!("{known} known, none passing its checks")
            };
            return Err(Status::unavailable(format!(
                "upstream `{}` has no endpoint in the rotation ({why})",
                self.name
            )));
        }
        Ok(())
    }

    async fn start<S>(
        &self,
        path: PathAndQuery,
        mut metadata: MetadataMap,
        timeout: Option<Duration>,
        requests: S,
    ) -> Result<Opened, Status>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        if let Some(timeout) = timeout
            && let Ok(value) = metadata::format_grpc_timeout(timeout).parse()
        {
            metadata.insert("grpc-timeout", value);
        }
        let request = tonic::Request::from_parts(metadata, Default::default(), requests);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(self.max_message_bytes);
        if let Some(encoding) = self.send_compressed {
            grpc = grpc.send_compressed(encoding);
        }
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("upstream is not ready: {e}")))?;
        // The streaming call keeps headers and trailers apart (tonic's
        // unary call merges them); on the wire every shape is the same.
        let response = grpc.streaming(request, path, CallCodec).await?;
        let (headers, stream, _) = response.into_parts();
        Ok(Opened { headers, stream })
    }

    /// Runs `exchange` within `timeout`, classifying its failure.
    async fn within<T>(
        &self,
        timeout: Option<Duration>,
        exchange: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, CallError> {
        let Some(timeout) = timeout else {
            return exchange.await.map_err(|s| self.classify(s));
        };
        let start = Instant::now();
        match tokio::time::timeout(timeout, exchange).await {
            // tonic reports its own expiry of `grpc-timeout` as CANCELLED.
            Ok(Err(status)) if status.code() == Code::Cancelled && start.elapsed() >= timeout => {
                Err(CallError::DeadlineExceeded(timeout))
            }
            Ok(result) => result.map_err(|s| self.classify(s)),
            Err(_) => Err(CallError::DeadlineExceeded(timeout)),
        }
    }

    /// What a failed status means: the gateway's own size limit, a channel
    /// failure (explained), or the backend's answer.
    pub fn classify(&self, status: Status) -> CallError {
        // tonic's own refusal of an oversized message: the gateway's
        // limit, not the client's mistake (tonic says OUT_OF_RANGE).
        if status.code() == Code::OutOfRange
            && status
                .message()
                .starts_with("Error, decoded message length too large")
        {
            return CallError::TooLarge(self.max_message_bytes);
        }
        let made_by_channel = std::error::Error::source(&status).is_some();
        // The channel's own timer (the client's `grpc-timeout` on a
        // passed-through call) ran out: the deadline, not an outage.
        if caused_by::<tonic::TimeoutExpired>(&status) {
            return CallError::Status(Status::deadline_exceeded(format!(
                "upstream `{}` ({}): the deadline passed before it answered",
                self.name, self.url
            )));
        }
        let code = status.code();
        if !made_by_channel && status.message().is_empty() {
            // The backend said nothing: say who answered what.
            return CallError::Status(Status::with_details_and_metadata(
                code,
                format!(
                    "upstream `{}` ({}) answered {code:?} without a message",
                    self.name, self.url
                ),
                status.details().to_vec().into(),
                status.metadata().clone(),
            ));
        }
        let explained = explain(status, &self.name, &self.url);
        if made_by_channel && !matches!(code, Code::Unavailable | Code::DeadlineExceeded) {
            let hint = if self.url.starts_with("http://") {
                "is it a gRPC server? A TLS backend needs an https:// URL"
            } else {
                "is it a gRPC server?"
            };
            return CallError::Protocol(format!("{} ({hint})", explained.message()));
        }
        // A TLS handshake answered by a cleartext server: rustls sees a
        // record that is not TLS.
        if made_by_channel
            && self.url.starts_with("https://")
            && explained.message().contains("InvalidContentType")
        {
            return CallError::Status(Status::new(
                code,
                format!(
                    "{} (the backend does not speak TLS? A cleartext backend needs an http:// URL)",
                    explained.message()
                ),
            ));
        }
        CallError::Status(explained)
    }
}

/// An open call.
#[derive(Debug)]
pub struct Opened {
    /// Response headers.
    pub headers: MetadataMap,
    /// Response messages, then trailers.
    pub stream: Streaming<Bytes>,
}

/// What an upstream's channel depends on, as text to compare: its
/// settings, and what its TLS files hold now (a certificate rotated under
/// the same name needs a new channel).
fn made_from(config: &UpstreamConfig, settings: &ChannelSettings) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut files = std::hash::DefaultHasher::new();
    if let Some(tls) = &config.tls {
        for path in [&tls.ca_file, &tls.cert_file, &tls.key_file]
            .into_iter()
            .flatten()
        {
            std::fs::read(path).ok().hash(&mut files);
        }
    }
    format!("{config:?} {settings:?} {:x}", files.finish())
}

/// Checks an upstream's URL and TLS files without connecting.
pub fn check(name: &str, config: &UpstreamConfig) -> Result<(), UpstreamError> {
    let settings = ChannelSettings {
        connect_timeout: Duration::from_secs(5),
        max_message_bytes: 4 << 20,
    };
    for url in std::iter::once(&config.url).chain(&config.endpoints) {
        endpoint(name, config, &settings, url, None)?;
    }
    Ok(())
}

/// The endpoint for `url` with `config`'s settings; `server_name` is the
/// TLS name to verify when `url` holds an address rather than the name.
fn endpoint(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    url: &str,
    server_name: Option<&str>,
) -> Result<Endpoint, UpstreamError> {
    crate::install_crypto_provider();
    let url_error = |reason: String| UpstreamError::Url {
        name: name.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| url_error(e.to_string()))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .user_agent(concat!("protogate/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| url_error(e.to_string()))?;
    if config.url.starts_with("https://") || config.tls.is_some() {
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
    Ok(endpoint)
}

/// One URL of a pool: its host and port to resolve, and how to make an
/// endpoint for each address found.
fn target(
    name: &str,
    config: &UpstreamConfig,
    settings: &ChannelSettings,
    url: &str,
) -> Result<pool::Target, UpstreamError> {
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
        make: Arc::new(move |address_url: &str| {
            endpoint(
                &name,
                &config,
                &settings,
                address_url,
                server_name.as_deref(),
            )
            .map_err(|e| e.to_string())
        }),
    })
}

/// A status's message with the causes tonic keeps only in its error chain
/// (`tcp connect error: ... Connection refused`), and a hint when a TLS
/// handshake met a cleartext server.
pub(crate) fn causes(status: &Status) -> String {
    let mut message = status.message().to_owned();
    append_causes(&mut message, std::error::Error::source(status));
    if message.contains("InvalidContentType") {
        message
            .push_str(" (the upstream does not speak TLS? A cleartext one needs an http:// URL)");
    }
    message
}

/// Appends `cause` and its sources to `message`, skipping what it says
/// already.
fn append_causes(message: &mut String, mut cause: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(err) = cause {
        let text = err.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = err.source();
    }
}

/// Whether an `E` is in `status`'s chain of causes.
pub(crate) fn caused_by<E: std::error::Error + 'static>(status: &Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(err) = cause {
        if err.is::<E>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A status the channel made up (it could not reach the backend): its
/// message gains the upstream and the underlying causes, which tonic keeps
/// only in the error chain.
fn explain(status: Status, name: &str, url: &str) -> Status {
    let Some(source) = std::error::Error::source(&status) else {
        return status;
    };
    let mut message = format!("upstream `{name}` ({url}): {}", status.message());
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(err) = cause {
        let text = err.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = err.source();
    }
    Status::new(status.code(), message)
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
        };
        let before = made_from(&config, &settings);
        assert_eq!(made_from(&config, &settings), before);
        std::fs::write(&ca, "second").unwrap();
        assert_ne!(made_from(&config, &settings), before);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
