//! How calls to an upstream are spread and protected: endpoints with
//! weights and zones, the balancing policy, passive outlier ejection, the
//! circuit breaker, retries, and a canary split.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use tonic::Code;

use super::de as parse;

/// One more address of an upstream: a URL, or a URL with a weight and a
/// zone (`{url: http://b:50051, weight: 3, zone: eu-1b}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// `http://host:port` or `https://host:port`; every address the host
    /// resolves to is an endpoint with these settings.
    pub url: String,
    /// Relative share of calls under weighted policies (at least 1).
    pub weight: u32,
    /// Zone, for [`Config::zone`](super::Config::zone) preference.
    pub zone: Option<String>,
}

impl EndpointConfig {
    /// An endpoint of weight 1 in no zone.
    pub fn new(url: impl Into<String>) -> EndpointConfig {
        EndpointConfig {
            url: url.into(),
            weight: 1,
            zone: None,
        }
    }
}

impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Endpoint;

        impl<'de> Visitor<'de> for Endpoint {
            type Value = EndpointConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL, or a map with `url` and optional `weight` and `zone`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<EndpointConfig, E> {
                parse::check_grpc_url(text).map_err(E::custom)?;
                Ok(EndpointConfig::new(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointConfig, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Full {
                    url: String,
                    #[serde(default = "one")]
                    weight: u32,
                    #[serde(default)]
                    zone: Option<String>,
                }
                fn one() -> u32 {
                    1
                }
                let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                parse::check_grpc_url(&full.url).map_err(de::Error::custom)?;
                if full.weight == 0 {
                    return Err(de::Error::custom("`weight` must be at least 1"));
                }
                Ok(EndpointConfig {
                    url: full.url,
                    weight: full.weight,
                    zone: full.zone,
                })
            }
        }

        de.deserialize_any(Endpoint)
    }
}

/// How a call picks one of an upstream's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Balance {
    /// The policy.
    pub policy: BalancePolicy,
    /// `consistent_hash`: the request header whose value picks the
    /// endpoint (calls without it are balanced by least requests).
    #[serde(deserialize_with = "parse::opt_header_name")]
    pub hash_header: Option<HeaderName>,
}

/// Balancing policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancePolicy {
    /// Of two endpoints drawn at random, the one with fewer calls in
    /// flight for its weight.
    #[default]
    LeastRequest,
    /// Each endpoint in turn, weights ignored.
    RoundRobin,
    /// Each endpoint in turn as often as its weight says, interleaved
    /// (smooth weighted round robin).
    WeightedRoundRobin,
    /// The same header value goes to the same endpoint while it is in the
    /// rotation (weighted rendezvous hashing: an endpoint leaving moves
    /// only its own share).
    ConsistentHash,
}

/// Passive outlier ejection: an endpoint that fails calls in a row leaves
/// the rotation for a while, longer each time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierDetection {
    /// Failures in a row that eject an endpoint (0: never). A failure is a
    /// call that could not reach it, or an `UNAVAILABLE`, `INTERNAL`,
    /// `UNKNOWN` or `DATA_LOSS` answer.
    pub consecutive_failures: u32,
    /// Time out of the rotation after the first ejection; doubled for each
    /// ejection since the endpoint last stayed in for `max_ejection_time`.
    #[serde(deserialize_with = "parse::duration")]
    pub base_ejection_time: Duration,
    /// Longest time out of the rotation.
    #[serde(deserialize_with = "parse::duration")]
    pub max_ejection_time: Duration,
    /// At most this share of the endpoints is ejected at once (at least
    /// one endpoint always stays).
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Limits past which calls to an upstream fail at once with 503 instead of
/// queueing behind a struggling backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Calls in flight at once (streams count until they end).
    pub max_requests: usize,
    /// Calls waiting for the backend's first answer (response headers).
    pub max_pending: usize,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            max_requests: 1024,
            max_pending: 1024,
        }
    }
}

/// Retries of unary calls.
///
/// A call that never reached a backend (no connection, stream refused) is
/// tried again on another endpoint whatever it is. A call a backend
/// answered with one of `on` is tried again only when it is idempotent: an
/// HTTP `GET` or `HEAD`, or a method marked `idempotency_level` in its
/// proto. Retries draw on a budget so that an outage does not multiply the
/// load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retries).
    pub attempts: u32,
    /// Status codes of idempotent calls that are tried again.
    #[serde(deserialize_with = "codes")]
    pub on: Vec<Code>,
    /// First backoff; each next one doubles, up to `backoff_max`, and the
    /// wait is drawn at random below it (full jitter).
    #[serde(deserialize_with = "parse::duration")]
    pub backoff_base: Duration,
    /// Longest backoff.
    #[serde(deserialize_with = "parse::duration")]
    pub backoff_max: Duration,
    /// Retries allowed as a share of calls, in percent, over ten seconds.
    pub budget_percent: u32,
    /// Retries allowed per second whatever the share.
    pub budget_min_per_second: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            on: vec![Code::Unavailable],
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_percent: 20,
            budget_min_per_second: 10,
        }
    }
}

/// A share of an upstream's calls sent to another upstream (a canary
/// version), and a header that picks a side outright.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The upstream that takes the share.
    pub upstream: String,
    /// Percent of calls sent to it (0 to 100).
    pub weight: u32,
    /// A request with this header set to `always` goes to the canary, with
    /// `never` to this upstream. Default `x-canary`.
    #[serde(default = "canary_header", deserialize_with = "parse::header_name")]
    pub header: HeaderName,
}

fn canary_header() -> HeaderName {
    HeaderName::from_static("x-canary")
}

/// gRPC status codes by their names (`UNAVAILABLE` or `unavailable`).
fn codes<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Code>, D::Error> {
    let names = Vec::<String>::deserialize(de)?;
    names
        .iter()
        .map(|name| {
            code_named(name).ok_or_else(|| {
                de::Error::custom(format!(
                    "`{name}` is not a gRPC status code name such as UNAVAILABLE"
                ))
            })
        })
        .collect()
}

/// The code named `name`, in any case.
pub fn code_named(name: &str) -> Option<Code> {
    const CODES: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];
    let wanted: String = name.chars().filter(|c| *c != '_').collect();
    CODES.into_iter().find(|code| {
        let debug = format!("{code:?}");
        debug.eq_ignore_ascii_case(&wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_name() {
        assert_eq!(code_named("UNAVAILABLE"), Some(Code::Unavailable));
        assert_eq!(
            code_named("resource_exhausted"),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            code_named("DEADLINE_EXCEEDED"),
            Some(Code::DeadlineExceeded)
        );
        assert_eq!(code_named("unavail"), None);
    }
}
