//! Upstreams: one pooled, lazily connected HTTP/2 channel per upstream,
//! reused by every route and request.
//!
//! An [`Upstream`] is made here from its config (and kept across a reload
//! that left that config as it was), and says where a call goes: to it or
//! its canary, with which hash key. The calls themselves are made in
//! `dispatch`.

mod balance;
mod breaker;
mod call;
mod causes;
mod channel;
pub mod codec;
pub mod discovery;
mod dispatch;
mod endpoint;
pub mod metadata;
mod pool;
mod resolve;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use tonic::codec::CompressionEncoding;

use crate::config::{GrpcCompression, UpstreamConfig};
use balance::{Balancer, Rotation};
use breaker::Breaker;
use endpoint::{endpoint, made_from, target};
use retry::Retry;

pub use call::{Call, CallError, EndpointStatus, Hints, Opened, Passage, Reply, Responses};
pub(crate) use causes::{append_causes, caused_by, causes, chain, under, violation};
pub use channel::Channel;
pub(crate) use channel::{
    HTTP_ANSWER, HttpAnswer, strip_connection_headers, strip_connection_options,
};
pub use endpoint::check;
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
    /// Whether a call has gone through: after that, a status that is not
    /// UNAVAILABLE is that call's fault, not a backend that does not speak
    /// gRPC as the URL says, and a connection that broke while connecting
    /// is the backend going away. (The channel calls only after the
    /// peer's HTTP/2 SETTINGS, so a break once connected is always the
    /// backend going away.)
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

impl CanaryLink {
    /// Whether the canary can take its share now: not a pool whose first
    /// round is over with no endpoint in the rotation. Says so, at most
    /// ten times a second, when not.
    fn takes_calls(&self, stable: &str) -> bool {
        let Way::Pool(balancer, pool) = &self.upstream.way else {
            return true;
        };
        if !pool.is_settled() || balancer.rotation().len() > 0 {
            return true;
        }
        static WARNINGS: std::sync::LazyLock<crate::throttle::Throttle> =
            std::sync::LazyLock::new(crate::throttle::failures);
        if let Some(held) = WARNINGS.allow() {
            tracing::warn!(
                canary = %self.upstream.name,
                upstream = stable,
                held,
                "Canary has no endpoint in the rotation; its share goes to the stable upstream"
            );
        }
        false
    }
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
            // keeper uses `settings.resolver`. The channel tries
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
            // `reuse_or_new` carries the counts of a reloaded one over.
            breaker: config
                .circuit_breaker
                .clone()
                .map(|limits| Breaker::new(limits, None)),
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
            Some(old) if *old.name == *name => {
                let mut new = Upstream::new(name, config, settings)?;
                // Calls still in flight on the old upstream count against
                // the new limits until they end.
                if let (Some(breaker), Some(before)) = (&mut new.breaker, &old.breaker) {
                    *breaker = Breaker::new(breaker.limits().clone(), Some(before));
                }
                Ok(new)
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
    ///
    /// A canary whose pool has no endpoint in the rotation takes none of
    /// the share: those calls go to this upstream (nothing was sent yet,
    /// so any call may). A client that asks for the canary by its header
    /// still gets it, and its error.
    pub fn hints(&self, headers: &http::HeaderMap) -> Hints {
        let canary = self.canary.as_ref().is_some_and(|link| {
            match headers.get(&link.header).map(|v| v.as_bytes()) {
                Some(v) if v.eq_ignore_ascii_case(b"always") => true,
                Some(v) if v.eq_ignore_ascii_case(b"never") => false,
                _ => fastrand::u32(..100) < link.weight && link.takes_calls(&self.name),
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

    /// Where a pool's endpoints come from, when a registry lists them
    /// (`None` for addresses from the config or DNS).
    pub fn discovery(&self) -> Option<DiscoveryStatus> {
        let Way::Pool(_, pool) = &self.way else {
            return None;
        };
        let source = pool.registry.clone()?;
        Some(DiscoveryStatus {
            source,
            answered: pool
                .shown
                .registry_answered
                .load(std::sync::atomic::Ordering::Relaxed),
            last_error: pool.shown.registry_trouble.get(),
        })
    }
}

/// A pool's registry, for `/admin/status`.
#[derive(Debug, Clone)]
pub struct DiscoveryStatus {
    /// What is watched (`etcd http://127.0.0.1:2379 prefix /services/orders/`).
    pub source: String,
    /// Whether the registry has answered since the pool started.
    pub answered: bool,
    /// Why the registry cannot be read now, if it cannot (the last
    /// endpoint tried and its error); the pool keeps its last instances
    /// meanwhile.
    pub last_error: Option<Arc<str>>,
}
