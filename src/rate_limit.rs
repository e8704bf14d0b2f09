//! Rate limits (`rate_limits:`): each rule's buckets, checked once per call
//! (a stream, a WebSocket at its upgrade) before it goes upstream, on
//! every face. Which rules cover a method is resolved when the snapshot is
//! built (`Rpc::rate_limits`); a refusal is
//! [`GatewayError::RateLimited`].
//!
//! Buckets are governor's GCRA. A rule keeps them across reloads while
//! its `per`, `rate` and `burst` stay the same, so a reload does not
//! refill an abuser's bucket.

mod store;

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::{Quota, RateLimiter};
use http::{Extensions, HeaderMap};

use crate::config::{RateKey, RateLimitRule};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::server::rest::ClientAddr;
use store::{Bounds, Store};

type Limiter = RateLimiter<u64, Store, MonotonicClock>;

/// The rules of one snapshot, in config order.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    rules: Box<[Rule]>,
}

/// One rule as calls meet it.
#[derive(Debug)]
struct Rule {
    name: Box<str>,
    per: RateKey,
    /// The `methods` patterns, for calls passed through to methods the
    /// descriptors do not have (the others are resolved at load).
    methods: Box<[Box<str>]>,
    buckets: Arc<Buckets>,
    refused: ::metrics::Counter,
}

/// A rule's buckets and what they were made for, kept over reloads.
#[derive(Debug)]
struct Buckets {
    limiter: Limiter,
    bounds: Arc<Bounds>,
    /// Keys the buckets: kept with them, so a key keeps its bucket.
    hasher: std::hash::RandomState,
    made_for: (RateKey, crate::config::Rate, u32),
}

impl Buckets {
    fn new(rule: &RateLimitRule, burst: u32) -> Buckets {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rule.rate.period())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let bounds = Arc::new(Bounds::new(rule.max_keys));
        Buckets {
            limiter: RateLimiter::new(quota, Store::new(bounds.clone()), MonotonicClock),
            bounds,
            hasher: std::hash::RandomState::new(),
            made_for: (rule.per.clone(), rule.rate, burst.get()),
        }
    }
}

impl RateLimits {
    /// The rules of `config`, with the buckets of `previous`'s rules of
    /// the same name, `per`, `rate` and `burst`.
    pub(crate) fn build(
        config: &[RateLimitRule],
        previous: Option<&RateLimits>,
        metrics: &Metrics,
    ) -> RateLimits {
        let rules = config
            .iter()
            .map(|rule| {
                let burst = rule.burst();
                let made_for = (rule.per.clone(), rule.rate, burst);
                let kept = previous
                    .and_then(|p| p.rules.iter().find(|r| *r.name == *rule.name))
                    .filter(|r| r.buckets.made_for == made_for)
                    .map(|r| r.buckets.clone());
                let buckets = match kept {
                    Some(buckets) => {
                        buckets.bounds.set_max_keys(rule.max_keys);
                        buckets
                    }
                    None => Arc::new(Buckets::new(rule, burst)),
                };
                Rule {
                    name: rule.name.as_str().into(),
                    per: rule.per.clone(),
                    methods: rule.methods.iter().map(|m| m.as_str().into()).collect(),
                    buckets,
                    refused: metrics.rate_limited(&rule.name),
                }
            })
            .collect();
        RateLimits { rules }
    }

    /// Whether there are no rules (nothing to check).
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks a call against the rules `applying` (indices, from
    /// [`applying`]); the first that refuses says how long to wait.
    pub(crate) fn check(
        &self,
        applying: &[usize],
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), GatewayError> {
        for &index in applying {
            if let Some(rule) = self.rules.get(index) {
                rule.check(headers, extensions)?;
            }
        }
        Ok(())
    }

    /// [`RateLimits::check`] for a call to a method the descriptors do not
    /// have (passed through by its gRPC path), matching the rules'
    /// patterns against its name.
    pub(crate) fn check_unknown(
        &self,
        path: &str,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), GatewayError> {
        let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
            return Ok(());
        };
        for rule in &self.rules {
            if covers(&rule.methods, service, method) {
                rule.check(headers, extensions)?;
            }
        }
        Ok(())
    }

    /// Drops buckets that are full again (their keys idle), and says when
    /// a rule ran out of keys since the last upkeep.
    pub(crate) fn upkeep(&self) {
        for rule in &self.rules {
            rule.buckets.limiter.retain_recent();
            if rule.buckets.bounds.take_overflowed() {
                tracing::warn!(
                    rule = %rule.name,
                    "Rate limit rule holds max_keys keys; calls under new keys share one bucket"
                );
            }
        }
    }
}

impl Rule {
    /// Takes one call from the bucket of the call's key, or refuses it
    /// with the time until the bucket holds one again.
    fn check(&self, headers: &HeaderMap, extensions: &Extensions) -> Result<(), GatewayError> {
        let buckets = &self.buckets;
        let key = match &self.per {
            RateKey::All => 0,
            RateKey::Client => {
                let ip = extensions
                    .get::<ClientAddr>()
                    .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip());
                // One key for an IPv4 client however its address came.
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                buckets.hasher.hash_one(ip)
            }
            RateKey::Header(name) => match headers.get(name) {
                Some(value) => buckets.hasher.hash_one((1u8, value.as_bytes())),
                None => buckets.hasher.hash_one(0u8),
            },
        };
        let limiter = &buckets.limiter;
        match limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                self.refused.increment(1);
                tracing::debug!(rule = %self.name, wait_ms = wait.as_millis() as u64, "Rate limited");
                Err(GatewayError::RateLimited {
                    rule: self.name.to_string(),
                    retry_after: retry_after(wait),
                })
            }
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The indices of the rules in `rules` that cover `service`/`method`.
pub(crate) fn applying(rules: &[RateLimitRule], service: &str, method: &str) -> Box<[usize]> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| covers(&rule.methods, service, method))
        .map(|(index, _)| index)
        .collect()
}

/// Whether a rule's `methods` cover `service`/`method` (an empty list
/// covers every method).
fn covers<P: AsRef<str>>(methods: &[P], service: &str, method: &str) -> bool {
    methods.is_empty()
        || methods
            .iter()
            .any(|p| crate::config::method_covers(p.as_ref(), service, method))
}

#[cfg(test)]
mod tests;
