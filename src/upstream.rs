//! Upstreams: one pooled, lazily connected HTTP/2 channel per upstream,
//! reused by every route and request.

mod balance;
mod breaker;
mod call;
mod causes;
mod channel;
pub mod codec;
pub mod discovery;
mod endpoint;
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
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::config::{GrpcCompression, UpstreamConfig};
use balance::{Balancer, Lease, Outcome, Rotation};
use breaker::{Breaker, InFlight, Pending};
use call::Hold;
use causes::broken;
use codec::{CallCodec, Outgoing};
use endpoint::{endpoint, made_from, target};
use retry::{Failure, Retry};

pub use call::{Call, CallError, EndpointStatus, Hints, Opened, Passage, Reply, Responses};
pub(crate) use causes::{append_causes, caused_by, causes, chain, under};
pub use channel::Channel;
pub(crate) use channel::{strip_connection_headers, strip_connection_options};
pub use endpoint::check;

/// The message of a try whose deadline passed (told apart from a
/// backend's own `DEADLINE_EXCEEDED`).
const EXPIRED: &str = "the call's deadline passed before the upstream answered";

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

impl Upstream {
    /// Sets up the channel (connecting lazily, on first use), or for a
    /// pool the task that finds and checks its endpoints.
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        settings: &ChannelSettings,
    ) -> Result<Upstream, UpstreamError> {
        // Every URL once, `url` first; a URL listed in `endpoints` too
        // takes its (explicit) weight and zone from there.
        let mut urls = vec![crate::config::EndpointConfig::new(&config.url)];
        for endpoint in &config.endpoints {
            match urls.iter_mut().find(|u| u.url == endpoint.url) {
                Some(listed) => *listed = endpoint.clone(),
                None => urls.push(endpoint.clone()),
            }
        }
        let way = if config.is_pool() {
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
            if config.balance != crate::config::Balance::default() {
                tracing::warn!(
                    upstream = name,
                    "Balancing is set on an upstream of one address, so it has nothing to choose among; list `endpoints` or set `dns_refresh` to make it a pool"
                );
            }
            // Limitation: this channel resolves a host name itself, through
            // the system resolver, whatever `dns.servers` says; a pool's
            // keeper uses `settings.resolver`. A cleartext channel tries
            // the name's addresses one after another, so an address that
            // never answers can take the whole connect timeout.
            Way::One(endpoint(name, config, settings, &config.url, None)?.connect_lazy())
        };
        Ok(Upstream {
            made_from: made_from(config, settings).into(),
            name: name.into(),
            // Named in messages: a pool by all its URLs, as which endpoint a
            // call went to is the balancer's secret.
            url: urls
                .iter()
                .map(|u| u.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
                .into(),
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
        // Taken before `within` starts its timer, so that the try's own
        // timer (which records the endpoint's failure) fires first.
        let deadline = timeout.map(|t| Instant::now() + t);
        // Boxed once here: the tries' state runs to KiBs, and every layer
        // that awaits it (this one, the timeout, the REST handler) would
        // otherwise copy it along.
        let tries = Box::pin(upstream.unary_tries(call, deadline));
        match upstream.within(timeout, tries).await {
            Err(CallError::Status(status)) if status.message() == EXPIRED => {
                Err(CallError::DeadlineExceeded(timeout.unwrap_or_default()))
            }
            other => other,
        }
    }

    /// A unary call's tries: on another endpoint when one could not be
    /// reached, again when an idempotent call failed as the policy names,
    /// within the retry budget.
    async fn unary_tries(&self, call: Call, deadline: Option<Instant>) -> Result<Reply, Status> {
        let Call {
            path,
            message,
            metadata,
            timeout: _,
            hints,
            idempotent,
        } = call;
        let _admitted = self.admit()?;
        self.retry.deposit();
        let mut attempt = 1;
        let mut tried = Vec::new();
        loop {
            let lease = self.lease(hints.hash, &tried).await?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let exchange = self.exchange(
                &lease,
                path.clone(),
                metadata.clone(),
                left,
                message.clone(),
            );
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(result) => result,
                    Err(_) => {
                        // No answer in time: a hung backend looks like
                        // this, and counts against its endpoint.
                        self.record(&lease, Outcome::Failed);
                        return Err(Status::deadline_exceeded(EXPIRED));
                    }
                },
                None => exchange.await,
            };
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
            } else if caused_by::<tonic::TimeoutExpired>(&status) {
                // The channel's own timer for the `grpc-timeout` sent.
                self.record(&lease, Outcome::Failed);
                return Err(status);
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
        let Way::Pool(_, pool) = &self.way else {
            return None;
        };
        let now = balance::now();
        Some(
            pool.shown
                .endpoints
                .lock()
                .iter()
                .map(|(member, in_rotation)| EndpointStatus {
                    address: member.address,
                    in_rotation: *in_rotation,
                    ejected: member.is_ejected(now),
                    weight: member.weight(),
                    zone: member.zone().map(str::to_owned),
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
                    Some(registry)
                        if !pool
                            .shown
                            .registry_answered
                            .load(std::sync::atomic::Ordering::Relaxed) =>
                    {
                        format!("{registry} has not answered yet")
                    }
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
            && let Ok(mut value) = MetadataValue::try_from(metadata::format_grpc_timeout(timeout))
        {
            // The time left differs on every call: indexed, each value
            // would take a new slot in both sides' HPACK tables and push
            // out the headers that do repeat.
            value.set_sensitive(true);
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
}
