//! The snapshot: everything derived from descriptors and config — pool,
//! route table with per-route plans, upstreams, JSON policy — built off the
//! request path, checked whole, and immutable once built.

use std::time::Duration;

use prost_reflect::DescriptorPool;

use crate::config::{Config, ConfigError, Limits};
use crate::descriptor::{self, DescriptorError};
use crate::route::{Conflict, MethodSettings, RouteError, RouteTable, TableOptions};
use crate::transcode::Codec;
use crate::upstream::metadata::HeaderPolicy;
use crate::upstream::{ChannelSettings, Upstream, UpstreamError};

/// Everything a request needs, resolved at load.
#[derive(Debug)]
pub struct Snapshot {
    /// All descriptors.
    pub pool: DescriptorPool,
    /// The routes.
    pub routes: RouteTable,
    /// Upstreams, indexed by `Rpc::upstream`.
    pub upstreams: Vec<Upstream>,
    /// The JSON policy.
    pub codec: Codec,
    /// Which headers become metadata.
    pub headers: HeaderPolicy,
    /// Size limits.
    pub limits: Limits,
    /// Default deadline of unary calls.
    pub unary_timeout: Duration,
    /// Time allowed to receive a request body.
    pub body_timeout: Duration,
    /// How often an idle event stream gets a keep-alive comment.
    pub stream_keepalive: Duration,
    /// Memory for request bodies of all requests in flight.
    pub(crate) body_budget: crate::server::BodyBudget,
}

/// A snapshot that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The config is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Descriptors cannot be loaded.
    #[error(transparent)]
    Descriptors(#[from] DescriptorError),
    /// Annotations cannot be served.
    #[error(transparent)]
    Routes(#[from] RouteError),
    /// An upstream cannot be set up.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Routes conflict and `strict_routes` is set.
    #[error("route conflicts (strict_routes is set):\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Conflicts(Vec<Conflict>),
}

impl Snapshot {
    /// Loads descriptors and builds routes without setting up upstream
    /// channels (for `protogate routes`); config and TLS files are checked
    /// and reported as `serve` would.
    pub fn routes_only(config: &Config) -> Result<(DescriptorPool, RouteTable), SnapshotError> {
        config.validate()?;
        for (name, upstream) in &config.upstreams {
            crate::upstream::check(name, upstream)?;
        }
        let pool = descriptor::load(&config.sources())?;
        let names: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
        let routes = build_routes(config, &pool, &names)?;
        Ok((pool, routes))
    }

    /// Builds a snapshot. Must run inside a Tokio runtime (channels spawn
    /// their workers there).
    pub fn build(config: &Config) -> Result<Snapshot, SnapshotError> {
        config.validate()?;
        let pool = descriptor::load(&config.sources())?;
        let settings = ChannelSettings {
            connect_timeout: config.timeouts.connect,
            max_message_bytes: config.limits.max_response_bytes,
        };
        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, upstream)| Upstream::new(name, upstream, &settings))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
        let routes = build_routes(config, &pool, &names)?;
        for conflict in routes.conflicts() {
            tracing::warn!(%conflict, "Route conflict; the first declared route wins");
        }
        if config.strict_routes && !routes.conflicts().is_empty() {
            return Err(SnapshotError::Conflicts(routes.conflicts().to_vec()));
        }
        Ok(Snapshot {
            pool,
            routes,
            upstreams,
            codec: Codec::new(
                &config.json,
                config.unknown_query_params,
                config.limits.max_query_params,
            ),
            headers: HeaderPolicy {
                forward: config.headers.forward.clone(),
                max_bytes: config.limits.max_metadata_bytes,
            },
            limits: config.limits.clone(),
            unary_timeout: config.timeouts.unary,
            body_timeout: config.timeouts.request_body,
            stream_keepalive: config.streams.keepalive,
            body_budget: crate::server::BodyBudget::new(config.limits.max_buffered_body_bytes),
        })
    }
}

/// The route table with each method's settings from config (`upstreams`
/// are the configured names, in index order). Warns about config that
/// names services or methods the descriptors do not have.
fn build_routes(
    config: &Config,
    pool: &DescriptorPool,
    upstreams: &[&str],
) -> Result<RouteTable, SnapshotError> {
    let mut unserved: Vec<String> = Vec::new();
    let routes = RouteTable::build(pool, &table_options(config), |service, method| {
        let upstream_name = config.upstream_for(service.full_name());
        let upstream = upstream_name.and_then(|name| upstreams.iter().position(|n| *n == name));
        if upstream.is_none() && !unserved.iter().any(|s| s == service.full_name()) {
            unserved.push(service.full_name().to_owned());
        }
        let full = format!("{}/{}", service.full_name(), method.name());
        let timeout = config
            .timeouts
            .methods
            .get(&full)
            .copied()
            .or_else(|| upstream_name.and_then(|n| config.upstreams[n].timeout))
            .unwrap_or(config.timeouts.unary);
        let ignored_query_params = ["*", full.as_str()]
            .iter()
            .filter_map(|key| config.ignore_query_params.get(*key))
            .flatten()
            .map(|name| name.as_str().into())
            .collect();
        MethodSettings {
            upstream,
            timeout: Some(timeout),
            ignored_query_params,
            stream_timeout: config.timeouts.methods.get(&full).copied(),
            framing: config
                .streams
                .framing
                .get(&full)
                .copied()
                .unwrap_or_default(),
        }
    })?;
    if !upstreams.is_empty() {
        for service in unserved {
            tracing::warn!(%service, "No upstream serves this service; its routes answer 503");
        }
    }
    let known_method = |name: &str| {
        name.split_once('/').is_some_and(|(service, method)| {
            pool.get_service_by_name(service)
                .is_some_and(|s| s.methods().any(|m| m.name() == method))
        })
    };
    for method in config.timeouts.methods.keys() {
        if !known_method(method) {
            tracing::warn!(%method, "timeouts.methods names a method the descriptors do not have");
        }
    }
    for method in config.ignore_query_params.keys().filter(|k| *k != "*") {
        if !known_method(method) {
            tracing::warn!(%method, "ignore_query_params names a method the descriptors do not have");
        }
    }
    for (name, upstream) in &config.upstreams {
        for service in upstream.services.iter().filter(|s| !s.ends_with('*')) {
            if pool.get_service_by_name(service).is_none() {
                tracing::warn!(upstream = %name, %service, "Upstream lists a service the descriptors do not have");
            }
        }
    }
    Ok(routes)
}

fn table_options(config: &Config) -> TableOptions {
    TableOptions {
        fallback_routes: config.fallback_routes,
    }
}
