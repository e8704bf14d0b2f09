//! Upstreams: one pooled, lazily connected HTTP/2 channel per upstream,
//! reused by every route and request.

mod balance;
mod breaker;
pub mod codec;
pub mod discovery;
pub mod metadata;
mod pool;
mod resolve;
mod retry;

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
use balance::{Balancer, Lease, Outcome, Rotation};
use breaker::{Breaker, InFlight, Pending};
use codec::{CallCodec, Outgoing};
use retry::{Failure, Retry};

pub use resolve::{ResolveError, Resolver};

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
    /// Its discovery settings cannot be used.
    #[error("upstream `{name}`: discovery: {reason}")]
    Discovery {
        /// The upstream.
        name: String,
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
    /// This gateway's zone: pools prefer endpoints in it.
    pub zone: Option<Arc<str>>,
    /// Resolves pools' host names (shared by the pools made with these
    /// settings).
    pub resolver: Resolver,
}

impl ChannelSettings {
    /// The settings `config` gives every upstream; `PROTOGATE_ZONE` in
    /// the environment overrides `zone` (one config for gateways in
    /// several zones).
    pub fn of(config: &crate::config::Config) -> ChannelSettings {
        let zone = std::env::var("PROTOGATE_ZONE")
            .ok()
            .filter(|z| !z.is_empty())
            .or_else(|| config.zone.clone());
        // Answers are cached no longer than the shortest refresh, so each
        // pool sees a change within its own. The bound is not in the
        // resolver's `Debug` text: a pool kept by a reload keeps its
        // resolver, whose bound was at most its (unchanged) refresh.
        let fresh_for = config
            .upstreams
            .values()
            .filter_map(|u| u.dns_refresh)
            .fold(pool::DNS_REFRESH, Duration::min);
        ChannelSettings {
            connect_timeout: config.timeouts.connect,
            max_message_bytes: config.limits.max_response_bytes,
            zone: zone.map(Into::into),
            resolver: Resolver::new(&config.dns.servers, fresh_for),
        }
    }
}

/// One backend service: a single address, or a pool of endpoints, with
/// its policies (balancing, breaker, retries, canary).
#[derive(Debug, Clone)]
pub struct Upstream {
    name: Box<str>,
    url: Box<str>,
    way: Way,
    max_message_bytes: usize,
    send_compressed: Option<CompressionEncoding>,
    /// The settings it was made from, to tell whether a reload may keep
    /// its channel (and connections).
    made_from: Arc<str>,
    breaker: Option<Arc<Breaker>>,
    retry: Arc<Retry>,
    /// `consistent_hash`'s header.
    hash_header: Option<http::HeaderName>,
    /// Another upstream taking a share of the calls.
    canary: Option<Arc<CanaryLink>>,
    /// Whether a call has gone through: a connection breaking after that
    /// is a backend going away, before it more likely a backend that does
    /// not speak gRPC as the URL says.
    answered: Arc<std::sync::atomic::AtomicBool>,
}

/// How calls reach an upstream.
#[derive(Debug, Clone)]
enum Way {
    /// One address, one channel.
    One(Channel),
    /// A pool: the balancer picks, the keeper task fills its rotation.
    Pool(Arc<Balancer>, Arc<pool::Pool>),
}

/// An upstream's canary.
#[derive(Debug)]
struct CanaryLink {
    upstream: Upstream,
    /// Percent of calls.
    weight: u32,
    header: http::HeaderName,
}

/// Where one request's call goes, decided from its headers once: to the
/// canary or not, and its consistent-hash key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints {
    canary: bool,
    hash: Option<u64>,
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
    /// Deadline for the whole call, retries included; each try sends the
    /// time left as `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// Where it goes ([`Upstream::hints`]).
    pub hints: Hints,
    /// Whether it may be sent twice when a backend failed it (an HTTP GET,
    /// or a method marked idempotent).
    pub idempotent: bool,
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
    /// Sets up the channel (connecting lazily, on first use), or for a
    /// pool the task that finds and checks its endpoints.
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        settings: &ChannelSettings,
    ) -> Result<Upstream, UpstreamError> {
        let way = if config.is_pool() {
            let mut urls: Vec<crate::config::EndpointConfig> = Vec::new();
            for endpoint in std::iter::once(crate::config::EndpointConfig::new(&config.url))
                .chain(config.endpoints.iter().cloned())
            {
                // A URL listed twice takes the later (explicit) settings.
                urls.retain(|u| u.url != endpoint.url);
                urls.push(endpoint);
            }
            let source = match &config.discovery {
                Some(crate::config::DiscoveryConfig::Etcd(etcd)) => {
                    let etcd =
                        discovery::etcd::Etcd::new(etcd).map_err(|e| UpstreamError::Discovery {
                            name: name.to_owned(),
                            reason: e.to_string(),
                        })?;
                    let target = target(name, config, settings, &urls[0])?;
                    pool::Source::Discovered(target, Box::new(etcd))
                }
                None => pool::Source::Dns(
                    urls.iter()
                        .map(|endpoint| target(name, config, settings, endpoint))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let balancer = Arc::new(Balancer::new(
                name,
                config.balance.policy,
                config.outlier_detection.clone(),
                Rotation::default(),
            ));
            let pool = pool::start(
                name,
                config,
                settings.zone.clone(),
                settings.resolver.clone(),
                source,
                balancer.clone(),
            );
            Way::Pool(balancer, pool)
        } else {
            // Limitation: this channel resolves a host name itself, through
            // the system resolver, whatever `dns.servers` says; a pool's
            // keeper uses `settings.resolver`.
            Way::One(endpoint(name, config, settings, &config.url, None)?.connect_lazy())
        };
        Ok(Upstream {
            made_from: made_from(config, settings).into(),
            name: name.into(),
            // Named in messages: a pool by all its URLs, as which endpoint a
            // call went to is the balancer's secret.
            url: {
                let mut urls = vec![config.url.as_str()];
                for endpoint in &config.endpoints {
                    if !urls.contains(&endpoint.url.as_str()) {
                        urls.push(&endpoint.url);
                    }
                }
                urls.join(", ").into()
            },
            way,
            max_message_bytes: settings.max_message_bytes,
            send_compressed: config.compression.map(|c| match c {
                GrpcCompression::Gzip => CompressionEncoding::Gzip,
                GrpcCompression::Zstd => CompressionEncoding::Zstd,
            }),
            breaker: config.circuit_breaker.clone().map(Breaker::new),
            retry: Retry::new(config.retry.clone()),
            hash_header: config.balance.hash_header.clone(),
            canary: None,
            answered: Arc::default(),
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
                let mut kept = old.clone();
                kept.canary = None;
                Ok(kept)
            }
            _ => Upstream::new(name, config, settings),
        }
    }

    /// Sends `weight` percent of this upstream's calls (and those asking
    /// with `header: always`) to `canary`.
    pub fn set_canary(&mut self, canary: Upstream, weight: u32, header: http::HeaderName) {
        self.canary = Some(Arc::new(CanaryLink {
            upstream: canary,
            weight,
            header,
        }));
    }

    /// The upstream's name in config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upstream's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where a request with `headers` goes: the canary's share (or its
    /// header) and the consistent-hash key.
    pub fn hints(&self, headers: &http::HeaderMap) -> Hints {
        let canary = self.canary.as_ref().is_some_and(|link| {
            match headers.get(&link.header).map(|v| v.as_bytes()) {
                Some(v) if v.eq_ignore_ascii_case(b"always") => true,
                Some(v) if v.eq_ignore_ascii_case(b"never") => false,
                _ => fastrand::u32(..100) < link.weight,
            }
        });
        let target = self.target(Hints { canary, hash: None });
        let hash = target
            .hash_header
            .as_ref()
            .and_then(|name| headers.get(name))
            .map(|value| balance::fnv(value.as_bytes()));
        Hints { canary, hash }
    }

    /// The upstream calls with `hints` go to: this one or its canary.
    pub fn target(&self, hints: Hints) -> &Upstream {
        match &self.canary {
            Some(link) if hints.canary => &link.upstream,
            _ => self,
        }
    }

    /// Makes a unary call, keeping response headers and trailers apart.
    /// The deadline covers the whole call, retries included.
    pub async fn unary(&self, call: Call) -> Result<Reply, CallError> {
        let upstream = self.target(call.hints);
        let timeout = call.timeout;
        upstream.within(timeout, upstream.unary_tries(call)).await
    }

    /// A unary call's tries: on another endpoint when one could not be
    /// reached, again when an idempotent call failed as the policy names,
    /// within the retry budget.
    async fn unary_tries(&self, call: Call) -> Result<Reply, Status> {
        let Call {
            path,
            message,
            metadata,
            timeout,
            hints,
            idempotent,
        } = call;
        let _admitted = self.admit()?;
        self.retry.deposit();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut attempt = 1;
        let mut tried = Vec::new();
        loop {
            let lease = self.lease(hints.hash, &tried).await?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let result = self
                .exchange(
                    &lease,
                    path.clone(),
                    metadata.clone(),
                    left,
                    message.clone(),
                )
                .await;
            let status = match result {
                Ok(reply) => {
                    self.record(&lease, Outcome::Answered);
                    return Ok(reply);
                }
                Err(status) => status,
            };
            let failure = if caused_by::<tonic::ConnectError>(&status) {
                self.record(&lease, Outcome::Failed);
                Failure::NotSent
            } else if broken(&status) {
                self.record(&lease, Outcome::Failed);
                Failure::Broken
            } else {
                self.record(&lease, Outcome::of(status.code()));
                Failure::Answered(status.code())
            };
            tried.extend(lease.address());
            drop(lease);
            let Some(wait) = self.retry.next(attempt, failure, idempotent) else {
                return Err(status);
            };
            tracing::debug!(upstream = %self.name, attempt, ?failure, ?wait, "Trying the call again");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One unary exchange on `lease`'s endpoint.
    async fn exchange(
        &self,
        lease: &Lease,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        message: Bytes,
    ) -> Result<Reply, Status> {
        let request = tokio_stream::once(Outgoing::Message(message));
        let (headers, mut stream) = self
            .start(lease.channel(), path, metadata, timeout, request)
            .await?;
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
    /// A streamed call is not tried again: its requests are gone once
    /// sent.
    pub async fn open<S>(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        hints: Hints,
        requests: S,
    ) -> Result<Opened, CallError>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        let upstream = self.target(hints);
        upstream
            .within(
                timeout,
                upstream.open_here(path, metadata, timeout, hints, requests),
            )
            .await
    }

    async fn open_here<S>(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        hints: Hints,
        requests: S,
    ) -> Result<Opened, Status>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        let (in_flight, mut pending) = self.admit()?;
        let lease = self.lease(hints.hash, &[]).await?;
        let opened = self
            .start(lease.channel(), path, metadata, timeout, requests)
            .await;
        pending.answered();
        match opened {
            Ok((headers, stream)) => {
                self.record(&lease, Outcome::Answered);
                Ok(Opened {
                    headers,
                    stream: Responses {
                        inner: stream,
                        _hold: Hold {
                            _lease: lease,
                            _in_flight: in_flight,
                        },
                    },
                })
            }
            Err(status) => {
                let outcome = if caused_by::<tonic::ConnectError>(&status) {
                    Outcome::Failed
                } else {
                    Outcome::of(status.code())
                };
                self.record(&lease, outcome);
                Err(status)
            }
        }
    }

    /// A way for one call passed through as it is (a gRPC client's own
    /// call): an endpoint, held with the breaker's count until the
    /// returned [`Passage`] is dropped.
    pub async fn passage(&self, hints: Hints) -> Result<Passage, Status> {
        let (in_flight, pending) = self.admit()?;
        let lease = self.lease(hints.hash, &[]).await?;
        Ok(Passage {
            upstream: self.clone(),
            pending,
            hold: Hold {
                _lease: lease,
                _in_flight: in_flight,
            },
        })
    }

    /// A channel to one endpoint, for the gateway's own calls (reflection),
    /// waiting for a pool's first round.
    pub async fn any_channel(&self) -> Result<Channel, Status> {
        Ok(self.lease(None, &[]).await?.channel())
    }

    /// A pool's endpoints as of its last round (`None` when the upstream
    /// is one address).
    pub fn endpoints(&self) -> Option<Vec<EndpointStatus>> {
        let Way::Pool(balancer, pool) = &self.way else {
            return None;
        };
        let now = balance::now();
        let rotation = balancer.rotation();
        let ejected: Vec<std::net::SocketAddr> = rotation
            .members()
            .iter()
            .filter(|m| m.is_ejected(now))
            .map(|m| m.address)
            .collect();
        Some(
            pool.shown
                .endpoints
                .lock()
                .iter()
                .map(|(address, in_rotation)| EndpointStatus {
                    address: *address,
                    in_rotation: *in_rotation,
                    ejected: ejected.contains(address),
                })
                .collect(),
        )
    }

    /// The breaker's admission of one call (nothing to count without one).
    fn admit(&self) -> Result<(Option<InFlight>, Pending), Status> {
        match &self.breaker {
            Some(breaker) => breaker
                .admit(&self.name)
                .map(|(in_flight, pending)| (Some(in_flight), pending)),
            None => Ok((None, Pending::default())),
        }
    }

    /// An endpoint for one call: a pool with no endpoint in the rotation
    /// fails it at once.
    async fn lease(
        &self,
        hash: Option<u64>,
        avoid: &[std::net::SocketAddr],
    ) -> Result<Lease, Status> {
        let (balancer, pool) = match &self.way {
            Way::One(channel) => return Ok(Lease::single(channel.clone())),
            Way::Pool(balancer, pool) => (balancer, pool),
        };
        if !pool.is_settled() {
            pool.settled().await;
        }
        balancer.pick(hash, avoid).ok_or_else(|| {
            let known = pool.shown.known.load(std::sync::atomic::Ordering::Relaxed);
            let why = if known == 0 {
                match &pool.registry {
                    Some(registry) => format!("{registry} lists no instance"),
                    None => "its host names resolve to no address".to_owned(),
                }
            } else {
                format!("{known} known, none passing its checks")
            };
            Status::unavailable(format!(
                "upstream `{}` has no endpoint in the rotation ({why})",
                self.name
            ))
        })
    }

    /// Tells the balancer how a call on `lease` went.
    fn record(&self, lease: &Lease, outcome: Outcome) {
        // Read first: a store on every call would bounce the cache line
        // between cores.
        if outcome == Outcome::Answered && !self.answered.load(std::sync::atomic::Ordering::Relaxed)
        {
            self.answered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Way::Pool(balancer, _) = &self.way {
            balancer.record(lease, outcome);
        }
    }

    async fn start<S>(
        &self,
        channel: Channel,
        path: PathAndQuery,
        mut metadata: MetadataMap,
        timeout: Option<Duration>,
        requests: S,
    ) -> Result<(MetadataMap, Streaming<Bytes>), Status>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        if let Some(timeout) = timeout
            && let Ok(value) = metadata::format_grpc_timeout(timeout).parse()
        {
            metadata.insert("grpc-timeout", value);
        }
        let request = tonic::Request::from_parts(metadata, Default::default(), requests);
        let mut grpc = tonic::client::Grpc::new(channel)
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
        Ok((headers, stream))
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
        if made_by_channel
            && self.answered.load(std::sync::atomic::Ordering::Relaxed)
            && broken(&status)
        {
            return CallError::Status(Status::unavailable(format!(
                "upstream `{}` ({}): the connection broke during the call: {}",
                self.name,
                self.url,
                causes(&status)
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
    pub stream: Responses,
}

/// A call's response messages and trailers; the call stays counted on its
/// endpoint and in the breaker until this is dropped.
#[derive(Debug)]
pub struct Responses {
    inner: Streaming<Bytes>,
    _hold: Hold,
}

impl std::ops::Deref for Responses {
    type Target = Streaming<Bytes>;

    fn deref(&self) -> &Streaming<Bytes> {
        &self.inner
    }
}

impl std::ops::DerefMut for Responses {
    fn deref_mut(&mut self) -> &mut Streaming<Bytes> {
        &mut self.inner
    }
}

impl Stream for Responses {
    type Item = Result<Bytes, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// What a call holds while it runs: its endpoint and its place in the
/// breaker.
#[derive(Debug)]
struct Hold {
    _lease: Lease,
    _in_flight: Option<InFlight>,
}

/// One passed-through call's endpoint and counts ([`Upstream::passage`]).
#[derive(Debug)]
pub struct Passage {
    upstream: Upstream,
    pending: Pending,
    hold: Hold,
}

impl Passage {
    /// The endpoint's channel.
    pub fn channel(&self) -> Channel {
        self.hold._lease.channel()
    }

    /// The response head came (or the call failed before it): `code` is
    /// the status it carried, if it ended there; `None` for a failure to
    /// reach the endpoint.
    pub fn answered(&mut self, code: Option<Code>) {
        self.pending.answered();
        let outcome = code.map_or(Outcome::Failed, Outcome::of);
        self.upstream.record(&self.hold._lease, outcome);
    }
}

/// One endpoint of a pool, for `/admin/status`.
#[derive(Debug, Clone, Copy)]
pub struct EndpointStatus {
    /// Its address.
    pub address: std::net::SocketAddr,
    /// Whether it passes its checks.
    pub in_rotation: bool,
    /// Whether passive detection has it out for a while.
    pub ejected: bool,
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
        zone: None,
        resolver: Resolver::system(),
    };
    for url in std::iter::once(&config.url).chain(config.endpoints.iter().map(|e| &e.url)) {
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

/// Whether the connection under a call broke while it was in flight (the
/// backend died or reset it): the call may or may not have been acted on.
fn broken(status: &Status) -> bool {
    use std::io::ErrorKind;
    let mut cause = std::error::Error::source(status);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        // h2 keeps the I/O error to itself and says what it was.
        let text = err.to_string();
        if text.contains("broken pipe") || text.contains("connection reset") {
            return true;
        }
        cause = err.source();
    }
    false
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
