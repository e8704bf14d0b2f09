//! The snapshot: everything derived from descriptors and config — pool,
//! route table with per-route plans, upstreams, JSON policy — built off the
//! request path, checked whole, and immutable once built.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use prost_reflect::DescriptorPool;

use crate::config::{Config, ConfigError, Limits};
use crate::descriptor::{self, DescriptorError, Sources};
use crate::metrics::{Metrics, Stats};
use crate::route::{Conflict, MethodSettings, RouteError, RouteTable, TableOptions};
use crate::transcode::Codec;
use crate::upstream::metadata::HeaderPolicy;
use crate::upstream::{ChannelSettings, Upstream, UpstreamError};

mod fleet;
mod rows;
mod separate;

pub use fleet::Fleet;
pub use rows::{RouteRow, route_rows};

/// Everything a request needs, resolved at load.
#[derive(Debug)]
pub struct Snapshot {
    /// All descriptors.
    pub pool: DescriptorPool,
    /// The pool's files as their original bytes, an encoded
    /// `FileDescriptorSet` (what the gateway's own reflection serves).
    pub descriptor_set: Bytes,
    /// The fleet as the descriptors describe it: versions, who serves what.
    pub fleet: Fleet,
    /// The routes.
    pub routes: RouteTable,
    /// Upstreams, indexed by `Rpc::upstream`.
    pub upstreams: Vec<Upstream>,
    /// Which upstream serves a gRPC service, for calls passed through.
    pub services: ServiceMap,
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
    /// Path prefixes with their own upstream and stack of layers.
    pub(crate) groups: crate::server::Groups,
    /// The route table as `protogate routes` and `/admin/routes` show it.
    pub route_rows: Vec<RouteRow>,
    /// The gateway's own gRPC services (reflection over the pool, health).
    pub(crate) own: crate::server::OwnServices,
    /// Reflecting upstreams that have not answered yet, as text for the
    /// 404 of a path their routes may hold (empty when none).
    pub(crate) waiting_for: String,
    /// The metrics registry: the previous snapshot's, so that counts carry
    /// over reloads.
    pub(crate) metrics: Arc<Metrics>,
    /// Each route's metrics handles, by route index, made on its first
    /// request.
    pub(crate) route_stats: Box<[OnceLock<Stats>]>,
    /// The `rate_limits` rules with their buckets (kept from the previous
    /// snapshot's rules that did not change).
    pub(crate) rate_limits: crate::rate_limit::RateLimits,
    /// Bearer token checks, when `auth` is configured.
    pub(crate) auth: Option<crate::auth::Auth>,
    /// Spans of requests, when `tracing` is configured (the previous
    /// snapshot's while its settings stay the same).
    pub(crate) tracing: Option<Arc<crate::trace::Tracing>>,
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
    /// The build did not finish (the runtime is shutting down).
    #[error("building the snapshot stopped: {0}")]
    Stopped(String),
    /// A route group cannot be set up.
    #[error("{0}")]
    Group(String),
    /// The listener's TLS files are unusable.
    #[error("listener {0}")]
    ListenerTls(String),
    /// No upstream to send calls to: every route would answer 503.
    #[error("no upstream: pass --upstream URL or configure `upstreams`")]
    NoUpstream,
    /// Routes conflict and `strict_routes` is set.
    #[error("route conflicts (strict_routes is set):\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Conflicts(Vec<Conflict>),
}

impl Snapshot {
    /// Loads descriptors and builds routes without setting up upstream
    /// channels (for `protogate routes`); config and TLS files are checked
    /// and reported as `serve` would.
    pub fn routes_only(config: &Config) -> Result<(DescriptorPool, RouteTable), SnapshotError> {
        Snapshot::routes_only_from(config, config.sources())
    }

    /// [`Snapshot::routes_only`] from `sources` (with what reflecting
    /// upstreams sent).
    pub fn routes_only_from(
        config: &Config,
        mut sources: Sources,
    ) -> Result<(DescriptorPool, RouteTable), SnapshotError> {
        config.validate()?;
        for (name, upstream) in &config.upstreams {
            crate::upstream::check(name, upstream)?;
        }
        if let Some(tls) = &config.tls {
            crate::tls::ServerTls::load(tls).map_err(SnapshotError::ListenerTls)?;
        }
        let (loaded, fleet) = load(&mut sources)?;
        let pool = loaded.pool;
        let names: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
        let routes = build_routes(config, &pool, &names, &fleet)?;
        warn_odd_routes(&routes);
        crate::auth::Auth::of(config, &routes, &pool, None)?;
        // Proxied prefixes' URLs and TLS files are checked too.
        let groups = crate::server::Groups::build(config, &names).map_err(SnapshotError::Group)?;
        warn_hidden_routes(&routes, &groups);
        Ok((pool, routes))
    }

    /// Builds a snapshot. Must run inside a Tokio runtime (channels spawn
    /// their workers there).
    pub fn build(config: &Config) -> Result<Snapshot, SnapshotError> {
        Snapshot::build_from(config, config.sources())
    }

    /// Builds a snapshot from `sources`: the config's, with what the
    /// reflecting upstreams sent.
    pub fn build_from(config: &Config, sources: Sources) -> Result<Snapshot, SnapshotError> {
        Snapshot::build_after(config, sources, None, &[])
    }

    /// [`Snapshot::build_from`], keeping the channels (and connections)
    /// of the upstreams in `made` (those just asked for their descriptors)
    /// and of `previous`'s, where their settings did not change.
    pub fn build_after(
        config: &Config,
        mut sources: Sources,
        previous: Option<&Snapshot>,
        made: &[Upstream],
    ) -> Result<Snapshot, SnapshotError> {
        config.validate()?;
        // Refused at start (`serve`) and so on a reload too: a config
        // caught half-written before its `upstreams` would otherwise turn
        // every call into a 503.
        if config.upstreams.is_empty() {
            return Err(SnapshotError::NoUpstream);
        }
        let (loaded, fleet) = load(&mut sources)?;
        let pool = loaded.pool;
        let settings = ChannelSettings::of(config);
        let mut upstreams = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let old = made
                    .iter()
                    .chain(previous.iter().flat_map(|p| &p.upstreams))
                    .find(|u| u.name() == name);
                Upstream::reuse_or_new(old, name, upstream, &settings)
            })
            .collect::<Result<Vec<_>, _>>()?;
        link_canaries(config, &mut upstreams);
        let names: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
        let routes = build_routes(config, &pool, &names, &fleet)?;
        warn_odd_routes(&routes);
        if config.strict_routes && !routes.conflicts().is_empty() {
            return Err(SnapshotError::Conflicts(routes.conflicts().to_vec()));
        }
        for conflict in routes.conflicts() {
            tracing::warn!(%conflict, "Route conflict; the first declared route wins");
        }
        let previous_auth = previous.and_then(|p| p.auth.as_ref());
        let auth = crate::auth::Auth::of(config, &routes, &pool, previous_auth)?;
        let services = ServiceMap::new(config, &pool, &names, &fleet);
        let groups = crate::server::Groups::build(config, &names).map_err(SnapshotError::Group)?;
        warn_hidden_routes(&routes, &groups);
        let waiting: Vec<String> = sources
            .reflecting
            .iter()
            .filter(|name| !sources.reflected.iter().any(|r| &r.upstream == *name))
            .map(|name| format!("`{name}`"))
            .collect();
        let waiting_for = match waiting.len() {
            0 => String::new(),
            1 => format!("upstream {} has", waiting[0]),
            _ => format!("upstreams {} have", waiting.join(", ")),
        };
        let route_rows = route_rows(config, &routes);
        let metrics = previous.map_or_else(Arc::default, |p| p.metrics.clone());
        let tracing = crate::trace::Tracing::of(
            config.tracing.as_ref(),
            previous.and_then(|p| p.tracing.as_ref()),
            &metrics,
        )
        .map_err(|(key, message)| ConfigError::Setting {
            origin: config.origin.clone(),
            key,
            message,
        })?;
        Ok(Snapshot {
            tracing,
            route_rows,
            waiting_for,
            rate_limits: crate::rate_limit::RateLimits::build(
                &config.rate_limits,
                previous.map(|p| &p.rate_limits),
                &metrics,
            ),
            metrics,
            route_stats: routes.routes().iter().map(|_| OnceLock::new()).collect(),
            auth,
            // Before `pool` and the set move in.
            own: crate::server::OwnServices::new(&pool, &loaded.set),
            codec: Codec::new(
                &config.json,
                config.unknown_query_params,
                config.limits.max_query_params,
            )
            .for_pool(&pool),
            pool,
            descriptor_set: loaded.set,
            fleet,
            routes,
            upstreams,
            services,
            headers: HeaderPolicy {
                forward: config.headers.forward.clone(),
                max_bytes: config.limits.max_metadata_bytes,
            },
            limits: config.limits.clone(),
            unary_timeout: config.timeouts.unary,
            body_timeout: config.timeouts.request_body,
            stream_keepalive: config.streams.keepalive,
            body_budget: crate::server::BodyBudget::new(config.limits.max_buffered_body_bytes),
            groups,
        })
    }
}

/// Gives each upstream with a `canary` its canary (validation made sure
/// it exists and has none of its own).
fn link_canaries(config: &Config, upstreams: &mut [Upstream]) {
    for (index, upstream) in config.upstreams.values().enumerate() {
        let Some(canary) = &upstream.canary else {
            continue;
        };
        let Some(other) = upstreams
            .iter()
            .find(|u| u.name() == canary.upstream)
            .cloned()
        else {
            continue;
        };
        upstreams[index].set_canary(other, canary.weight, canary.header.clone());
    }
}

/// The name of `names` that `given` likely meant, for a warning's
/// `did_you_mean` field (left out when none is close).
fn meant<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    crate::transcode::suggest::closest(given, names).map(str::to_owned)
}

/// The route table with each method's settings from config (`upstreams`
/// are the configured names, in index order). Warns about config that
/// names services or methods the descriptors do not have.
fn build_routes(
    config: &Config,
    pool: &DescriptorPool,
    upstreams: &[&str],
    fleet: &Fleet,
) -> Result<RouteTable, SnapshotError> {
    let mut unserved: Vec<String> = Vec::new();
    let routes = RouteTable::build(pool, &table_options(config), |service, method| {
        let upstream_name = fleet.upstream_for(config, service.full_name());
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
            rate_limits: crate::rate_limit::applying(
                &config.rate_limits,
                service.full_name(),
                method.name(),
            ),
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
    // Close names for the warnings: only names config got wrong look.
    let method_meant = |given: &str| {
        let names: Vec<String> = pool
            .services()
            .flat_map(|s| {
                s.methods()
                    .map(|m| format!("{}/{}", s.full_name(), m.name()))
                    .collect::<Vec<_>>()
            })
            .collect();
        meant(given, names.iter().map(String::as_str))
    };
    for method in config.timeouts.methods.keys() {
        if !known_method(method) {
            let did_you_mean = method_meant(method);
            tracing::warn!(%method, did_you_mean = did_you_mean.as_deref(), "timeouts.methods names a method the descriptors do not have");
        }
    }
    for method in config.ignore_query_params.keys().filter(|k| *k != "*") {
        if !known_method(method) {
            let did_you_mean = method_meant(method);
            tracing::warn!(%method, did_you_mean = did_you_mean.as_deref(), "ignore_query_params names a method the descriptors do not have");
        }
    }
    for rule in &config.rate_limits {
        for method in rule.methods.iter().filter(|m| !covers_any(pool, m)) {
            let did_you_mean = method_meant(method);
            tracing::warn!(rule = %rule.name, %method, did_you_mean = did_you_mean.as_deref(), "rate_limits names a method the descriptors do not have");
        }
    }
    for (method, framing) in &config.streams.framing {
        let Some(found) = method.split_once('/').and_then(|(service, name)| {
            pool.get_service_by_name(service)
                .and_then(|s| s.methods().find(|m| m.name() == name))
        }) else {
            let did_you_mean = method_meant(method);
            tracing::warn!(%method, did_you_mean = did_you_mean.as_deref(), "streams.framing names a method the descriptors do not have");
            continue;
        };
        if !found.is_server_streaming() && *framing != crate::server::StreamFraming::default() {
            tracing::warn!(%method, "streams.framing applies to server-streaming methods; this one answers one message");
        }
    }
    for (name, upstream) in &config.upstreams {
        for service in &upstream.services {
            let known = match service.strip_suffix('*') {
                Some(prefix) => pool.services().any(|s| s.full_name().starts_with(prefix)),
                None => pool.get_service_by_name(service).is_some(),
            };
            // Reflecting upstreams bring their services later.
            let reflecting = upstream.descriptors == crate::config::DescriptorSource::Reflection;
            if !known && !reflecting {
                let services: Vec<String> =
                    pool.services().map(|s| s.full_name().to_owned()).collect();
                let did_you_mean = meant(service, services.iter().map(String::as_str));
                tracing::warn!(upstream = %name, %service, did_you_mean = did_you_mean.as_deref(), "Upstream lists a service the descriptors do not have");
            }
        }
    }
    Ok(routes)
}

/// Whether a `rate_limits` pattern covers some method in `pool`.
fn covers_any(pool: &DescriptorPool, pattern: &str) -> bool {
    pool.services().any(|s| {
        s.methods()
            .any(|m| crate::config::method_covers(pattern, s.full_name(), m.name()))
    })
}

/// Which upstream serves a gRPC service: resolved once for every service
/// in the descriptors; any other name (a service the gateway has no
/// descriptors for, passed through unchanged) by the same rules as config
/// (full name, then the longest `pkg.*`, then the default upstream).
#[derive(Debug, Default)]
pub struct ServiceMap {
    known: HashMap<Box<str>, usize>,
    patterns: Vec<(Box<str>, usize)>,
    default: Option<usize>,
}

impl ServiceMap {
    fn new(config: &Config, pool: &DescriptorPool, names: &[&str], fleet: &Fleet) -> ServiceMap {
        let index = |name: &str| names.iter().position(|n| *n == name);
        let known = pool
            .services()
            .filter_map(|s| {
                let upstream = fleet.upstream_for(config, s.full_name()).and_then(index)?;
                Some((s.full_name().into(), upstream))
            })
            .collect();
        let mut patterns = Vec::new();
        let mut default = None;
        for (name, upstream) in &config.upstreams {
            let Some(i) = index(name) else { continue };
            if upstream.services.is_empty() {
                default = Some(i);
            }
            for pattern in &upstream.services {
                patterns.push((pattern.as_str().into(), i));
            }
        }
        ServiceMap {
            known,
            patterns,
            default,
        }
    }

    /// The upstream index for `service`.
    pub fn find(&self, service: &str) -> Option<usize> {
        if let Some(&i) = self.known.get(service) {
            return Some(i);
        }
        let mut best: Option<(usize, usize)> = None;
        for (pattern, i) in &self.patterns {
            let score = crate::config::service_score(pattern, service);
            if score > best.map_or(0, |(_, s)| s) {
                best = Some((*i, score));
            }
        }
        best.map(|(i, _)| i).or(self.default)
    }
}

fn table_options(config: &Config) -> TableOptions {
    TableOptions {
        fallback_routes: config.fallback_routes,
    }
}

/// Routes that work but will surprise someone: a body on GET or DELETE,
/// which many clients and proxies drop, and a custom method with lower
/// case, which clients rarely send (methods are case-sensitive).
fn warn_odd_routes(routes: &RouteTable) {
    for route in routes.routes() {
        let method = route.method.as_str();
        if matches!(method, "GET" | "DELETE") && !route.body.is_empty() {
            tracing::warn!(
                method,
                template = %route.template,
                rpc = %route.rpc.name,
                "Route takes a body on GET or DELETE; many clients and proxies drop such bodies"
            );
        }
        if method.bytes().any(|b| b.is_ascii_lowercase()) {
            tracing::warn!(
                method,
                template = %route.template,
                rpc = %route.rpc.name,
                usual = %method.to_ascii_uppercase(),
                "Custom method has lower case; HTTP methods are case-sensitive and clients usually send upper case"
            );
        }
    }
}

/// Transcoded routes under a proxied prefix are never reached.
fn warn_hidden_routes(routes: &RouteTable, groups: &crate::server::Groups) {
    for route in routes.routes() {
        let template = route.template.to_string();
        if let Some(prefix) = groups.hiding(&template) {
            // Kept without its trailing `/`: `/` itself is empty.
            let prefix = if prefix.is_empty() { "/" } else { prefix };
            tracing::warn!(
                prefix,
                template,
                rpc = %route.rpc.name,
                "Route is under a proxied prefix and is never reached"
            );
        }
    }
}

/// Loads the descriptors of `sources` (clashing reflected files renamed
/// first) and learns the fleet from them, logging renames and
/// disagreements.
fn load(sources: &mut Sources) -> Result<(descriptor::Loaded, Fleet), SnapshotError> {
    let renamed = separate::separate(&mut sources.reflected);
    for note in &renamed {
        tracing::info!(%note, "Descriptor file renamed");
    }
    let loaded = descriptor::load_files(sources)?;
    let mut fleet = Fleet::learn(sources, &loaded.set);
    fleet.renamed = renamed;
    for conflict in &fleet.conflicts {
        tracing::warn!(%conflict, "Upstreams disagree on a service");
    }
    Ok((loaded, fleet))
}
