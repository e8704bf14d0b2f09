//! One upstream's settings: where it is, how to reach it (TLS,
//! compression), where its endpoints and descriptors come from, and the
//! policies of its pool.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::validate::is_hop_by_hop;
use super::{
    Balance, BalancePolicy, Canary, CircuitBreaker, Config, EndpointConfig, OutlierDetection,
    RetryPolicy,
};

/// One backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` (HTTP/2 cleartext) or `https://host:port` (TLS);
    /// no path, as gRPC calls go to `/package.Service/Method`.
    #[serde(deserialize_with = "de::grpc_url")]
    pub url: String,
    /// Services it serves: full names (`pkg.Service`) or `pkg.*`. Empty:
    /// every service no other upstream claims.
    #[serde(default, deserialize_with = "de::services")]
    pub services: Vec<String>,
    /// Timeout of unary calls to it, overriding `timeouts.unary`.
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub timeout: Option<Duration>,
    /// TLS settings (implied by `https://`).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Compress request messages to it (`gzip` or `zstd`). Compressed
    /// responses are always accepted and decoded.
    #[serde(default)]
    pub compression: Option<GrpcCompression>,
    /// Where its descriptors come from: the configured files (default) or
    /// its server reflection.
    #[serde(default)]
    pub descriptors: DescriptorSource,
    /// More addresses of the same service, besides `url` (same scheme and
    /// TLS settings), each a URL or `{url, weight, zone}`: calls are
    /// balanced over all of them. A URL listed here and as `url` takes its
    /// weight and zone from here.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Resolve host names again this often (every address of a name is an
    /// endpoint). Default with `endpoints` or `health_check`: 30s.
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub dns_refresh: Option<Duration>,
    /// Active health checks (`grpc.health.v1.Health/Check`) of every
    /// endpoint; failing ones leave the rotation until they pass again.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// How calls pick an endpoint (default: least requests of two).
    #[serde(default)]
    pub balance: Balance,
    /// Passive ejection of endpoints that fail calls in a row (on by
    /// default; `consecutive_failures: 0` turns it off).
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    /// Limits on calls in flight and waiting (none unless set).
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Retries of unary calls.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// A share of calls sent to another upstream.
    #[serde(default)]
    pub canary: Option<Canary>,
    /// A pool closes an endpoint's connection after this long without
    /// calls; the next call opens a new one. Default 5m.
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// Where the pool's endpoints come from instead of `url` and
    /// `endpoints` (`url` then gives the scheme and the TLS name).
    #[serde(default)]
    pub discovery: Option<DiscoveryConfig>,
}

/// A service registry an upstream's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum DiscoveryConfig {
    /// Keys under a prefix in etcd, watched.
    Etcd(EtcdDiscovery),
}

impl UpstreamConfig {
    /// Whether it is a pool of endpoints (found and checked by the
    /// gateway) rather than one address.
    pub fn is_pool(&self) -> bool {
        !self.endpoints.is_empty()
            || self.health_check.is_some()
            || self.dns_refresh.is_some()
            || self.discovery.is_some()
    }
}

/// Active health checking of an upstream's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// The service name asked about (`""`: the server as a whole).
    pub service: String,
    /// Time between checks of an endpoint.
    #[serde(deserialize_with = "de::duration")]
    pub interval: Duration,
    /// Longest wait for an answer.
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Failed checks in a row that take an endpoint out of the rotation.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that bring it back.
    pub healthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            service: String::new(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// Service discovery from etcd (v3 API): every key under `prefix` is one
/// instance of the service; see [`crate::upstream::discovery::etcd`] for
/// the values it takes.
///
/// # Examples
///
/// ```
/// use protogate::config::EtcdDiscovery;
///
/// let orders = EtcdDiscovery::new(vec!["http://127.0.0.1:2379".into()], "/services/orders/");
/// assert_eq!(orders.dial_timeout, std::time::Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdDiscovery {
    /// Client URLs of etcd members (`http://host:port`), tried in turn.
    #[serde(deserialize_with = "de::grpc_urls")]
    pub endpoints: Vec<String>,
    /// The key prefix the instances are registered under, usually ending
    /// in `/` (`/services/orders/`).
    pub prefix: String,
    /// Time allowed to connect to one member before trying the next.
    #[serde(
        default = "EtcdDiscovery::default_dial_timeout",
        deserialize_with = "de::duration"
    )]
    pub dial_timeout: Duration,
}

impl EtcdDiscovery {
    /// Discovery of the instances under `prefix` from the etcd members at
    /// `endpoints`, with the default dial timeout (5 s).
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdDiscovery {
        EtcdDiscovery {
            endpoints,
            prefix: prefix.into(),
            dial_timeout: EtcdDiscovery::default_dial_timeout(),
        }
    }

    fn default_dial_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

/// Where an upstream's descriptors come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DescriptorSource {
    /// The descriptor sets and `.proto` files in the config.
    #[default]
    Files,
    /// Its `grpc.reflection.v1` (or `v1alpha`) service.
    Reflection,
}

/// A gRPC message compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpcCompression {
    /// `grpc-encoding: gzip`.
    Gzip,
    /// `grpc-encoding: zstd`.
    Zstd,
}

impl UpstreamConfig {
    /// An upstream at `url` serving every unclaimed service.
    pub fn new(url: impl Into<String>) -> UpstreamConfig {
        UpstreamConfig {
            url: url.into(),
            services: Vec::new(),
            timeout: None,
            tls: None,
            compression: None,
            descriptors: DescriptorSource::Files,
            endpoints: Vec::new(),
            dns_refresh: None,
            health_check: None,
            balance: Balance::default(),
            outlier_detection: OutlierDetection::default(),
            circuit_breaker: None,
            retry: RetryPolicy::default(),
            canary: None,
            idle_timeout: None,
            discovery: None,
        }
    }
}

/// TLS toward one upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM file of CA certificates to trust (besides the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mTLS.
    pub cert_file: Option<PathBuf>,
    /// PEM client key, for mTLS.
    pub key_file: Option<PathBuf>,
    /// Server name to verify, when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// The most tries a call gets, the first included.
const MAX_ATTEMPTS: u32 = 10;

/// The shortest time between health checks of an endpoint.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The shortest time between resolutions of an upstream's host names.
const MIN_DNS_REFRESH: Duration = Duration::from_millis(100);

impl Config {
    /// An upstream's balancing, retry, health check, breaker and canary
    /// settings: the key under the upstream and what is wrong.
    pub(super) fn check_policies(
        &self,
        name: &str,
        upstream: &UpstreamConfig,
    ) -> Result<(), (String, String)> {
        let fail = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        if upstream.discovery.is_some() && !upstream.endpoints.is_empty() {
            return fail(
                "endpoints",
                "the endpoints of an upstream with `discovery` come from the registry; list none",
            );
        }
        let mut urls = vec![upstream.url.as_str()];
        for endpoint in &upstream.endpoints {
            if urls[1..].contains(&endpoint.url.as_str()) {
                return Err((
                    "endpoints".to_owned(),
                    format!("`{}` is listed twice", endpoint.url),
                ));
            }
            urls.push(&endpoint.url);
        }
        if let Some(DiscoveryConfig::Etcd(etcd)) = &upstream.discovery
            && let Some(tls) = etcd.endpoints.iter().find(|e| !e.starts_with("http://"))
        {
            return Err((
                "discovery.etcd.endpoints".to_owned(),
                format!("`{tls}`: TLS to etcd is not supported yet; give an http:// URL"),
            ));
        }
        let balance = &upstream.balance;
        match (balance.policy, &balance.hash_header) {
            (BalancePolicy::ConsistentHash, None) => {
                return fail("balance", "`consistent_hash` needs a `hash_header` to hash");
            }
            (policy, Some(_)) if policy != BalancePolicy::ConsistentHash => {
                return fail(
                    "balance.hash_header",
                    "only `consistent_hash` hashes a header",
                );
            }
            (_, Some(name)) if is_hop_by_hop(name.as_str()) => {
                return Err((
                    "balance.hash_header".to_owned(),
                    format!(
                        "`{name}` is a hop-by-hop header: proxies on the way drop it and HTTP/2 refuses requests that carry it, so no value would arrive to hash; name a header the clients set, such as x-user-id"
                    ),
                ));
            }
            _ => {}
        }
        let retry = &upstream.retry;
        if retry.on.contains(&tonic::Code::Ok) {
            return fail("retry.on", "OK is a success, never retried");
        }
        if !(1..=MAX_ATTEMPTS).contains(&retry.attempts) {
            return Err((
                "retry.attempts".to_owned(),
                format!(
                    "{} is out of range: it counts the first try too, so 1 (no retries) to {MAX_ATTEMPTS}; \
                     a backend failing more tries than that is down, and more tries only add load",
                    retry.attempts
                ),
            ));
        }
        if retry.budget_percent > 100 * (MAX_ATTEMPTS - 1)
            || retry.budget_min_per_second > 1_000_000
        {
            return Err((
                "retry".to_owned(),
                format!(
                    "budget out of range: budget_percent at most {} (every call tried {MAX_ATTEMPTS} times), \
                     budget_min_per_second at most 1000000",
                    100 * (MAX_ATTEMPTS - 1)
                ),
            ));
        }
        if retry.backoff_base > retry.backoff_max {
            return fail("retry.backoff_base", "is longer than `backoff_max`");
        }
        if let Some(check) = &upstream.health_check
            && check.interval < MIN_CHECK_INTERVAL
        {
            return Err((
                "health_check.interval".to_owned(),
                format!(
                    "{:?} is below {MIN_CHECK_INTERVAL:?}: every endpoint is asked this often",
                    check.interval
                ),
            ));
        }
        if let Some(check) = &upstream.health_check
            && check.timeout > check.interval
        {
            return Err((
                "health_check.timeout".to_owned(),
                format!(
                    "{:?} is longer than the interval ({:?}): a check would still wait for its answer when the next one is due",
                    check.timeout, check.interval
                ),
            ));
        }
        if let Some(refresh) = upstream.dns_refresh
            && refresh < MIN_DNS_REFRESH
        {
            return Err((
                "dns_refresh".to_owned(),
                format!(
                    "{refresh:?} is below {MIN_DNS_REFRESH:?}: each refresh asks the DNS servers for every host name"
                ),
            ));
        }
        let outlier = &upstream.outlier_detection;
        if outlier.max_ejection_percent > 100 {
            return fail(
                "outlier_detection.max_ejection_percent",
                "is a percentage: 0 to 100",
            );
        }
        if outlier.base_ejection_time.is_zero()
            || outlier.base_ejection_time > outlier.max_ejection_time
        {
            return fail(
                "outlier_detection.base_ejection_time",
                "must be above zero and at most `max_ejection_time`",
            );
        }
        if let Some(breaker) = &upstream.circuit_breaker
            && (breaker.max_requests == 0 || breaker.max_pending == 0)
        {
            return fail("circuit_breaker", "limits must be at least 1");
        }
        if let Some(canary) = &upstream.canary {
            if canary.weight > 100 {
                return fail("canary.weight", "is a percentage: 0 to 100");
            }
            if canary.upstream == name {
                return fail("canary.upstream", "names this upstream itself");
            }
            let header = &canary.header;
            let never = if header == http::header::HOST {
                Some(
                    "names the server a request is for (HTTP/2 sends it as `:authority`), and proxies route on it",
                )
            } else if is_hop_by_hop(header.as_str()) {
                Some(
                    "is a hop-by-hop header: proxies on the way drop it and HTTP/2 refuses requests that carry it",
                )
            } else {
                None
            };
            if let Some(why) = never {
                return Err((
                    "canary.header".to_owned(),
                    format!(
                        "`{header}` {why}, so it cannot carry `always` or `never` to the gateway; name a header of your own, such as x-canary"
                    ),
                ));
            }
            match self.upstreams.get(&canary.upstream) {
                None => {
                    return Err((
                        "canary.upstream".to_owned(),
                        format!("`{}` is not an upstream", canary.upstream),
                    ));
                }
                Some(other) if other.canary.is_some() => {
                    return Err((
                        "canary.upstream".to_owned(),
                        format!(
                            "`{}` has a canary of its own; canaries do not chain",
                            canary.upstream
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
