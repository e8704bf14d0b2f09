//! `rate_limits`: rules that cap how often calls may come, by client
//! address, by a header's value, or for everyone together.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{Deserializer, Error, Visitor};

use super::{Config, de};

/// One rate limit rule.
///
/// # Examples
///
/// ```
/// let yaml = "rate_limits:\n  - {name: search, methods: [shop.v1.Books/Search], per: client, rate: 10/s}\n";
/// let config = protogate::Config::from_yaml(yaml).unwrap();
/// let rule = &config.rate_limits[0];
/// assert_eq!(rule.rate.per_second(), 10.0);
/// assert_eq!(rule.burst(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// The rule's name: in the refusal's message, the logs and the
    /// `protogate_rate_limited_total{rule}` metric.
    pub name: String,
    /// The methods it covers (`pkg.Service/Method`, `pkg.Service`,
    /// `pkg.Service/*`, `pkg.*`, `*`); empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// What a bucket belongs to.
    pub per: RateKey,
    /// How fast a bucket refills.
    pub rate: Rate,
    /// How many calls a full bucket holds; by default one second's worth
    /// of `rate` (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// The most buckets the rule keeps (`per: client` and `per: header`);
    /// calls under a key first seen while that many are kept share one
    /// overflow bucket until idle buckets are dropped.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl RateLimitRule {
    /// The most `burst` may be.
    pub const MAX_BURST: u32 = 1_000_000;
    /// The most `max_keys` may be.
    pub const MAX_KEYS: usize = 10_000_000;

    /// `burst`, or one second's worth of `rate` (at least 1).
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| (self.rate.per_second().ceil() as u32).clamp(1, Self::MAX_BURST))
    }
}

fn default_max_keys() -> usize {
    100_000
}

/// What a rule's buckets belong to: `client`, `all`, or `{header: name}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKey {
    /// The client's IP address, as the connection gives it (never
    /// `X-Forwarded-For`, which any client can write).
    Client,
    /// One bucket for every call.
    All,
    /// The value of a request header (an API key, say); calls without it
    /// share one bucket.
    Header(#[serde(deserialize_with = "de::header_name")] HeaderName),
}

/// Calls per unit of time: `100/s`, `6000/m`, `10/h`, or a bare number
/// (per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls per `unit`, at least 1.
    pub count: u32,
    /// One second, minute or hour.
    pub unit: Duration,
}

impl Rate {
    /// The most calls a second a rule may allow.
    pub const MAX_PER_SECOND: u32 = 1_000_000;

    /// Calls per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.unit.as_secs_f64()
    }

    /// The time one call's worth of the bucket takes to refill.
    pub fn period(&self) -> Duration {
        self.unit / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Parses `100/s`, `6000/m`, `10/h` or `100`.
fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || {
        format!(
            "`{text}` is not a rate: write calls per second, minute or hour as 100/s, 6000/m or 10/h"
        )
    };
    let (count, unit) = match text.trim().split_once('/') {
        Some((count, unit)) => (count.trim(), unit.trim()),
        None => (text.trim(), "s"),
    };
    let unit = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    let count: u64 = count.parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!(
            "`{text}` allows no call at all: give a rate above zero (or drop the rule)"
        ));
    }
    let most = u64::from(Rate::MAX_PER_SECOND) * unit.as_secs();
    match u32::try_from(count) {
        Ok(count) if u64::from(count) <= most => Ok(Rate { count, unit }),
        _ => Err(format!(
            "`{text}` is above {} calls a second, more than one gateway serves",
            Rate::MAX_PER_SECOND
        )),
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Rate, D::Error> {
        struct Rates;

        impl Visitor<'_> for Rates {
            type Value = Rate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate like 100/s, 6000/m or 10/h")
            }

            fn visit_u64<E: Error>(self, n: u64) -> Result<Rate, E> {
                parse_rate(&n.to_string()).map_err(E::custom)
            }

            fn visit_i64<E: Error>(self, n: i64) -> Result<Rate, E> {
                parse_rate(&n.to_string()).map_err(E::custom)
            }

            fn visit_str<E: Error>(self, text: &str) -> Result<Rate, E> {
                parse_rate(text).map_err(E::custom)
            }
        }

        de.deserialize_any(Rates)
    }
}

/// `pkg.Service/Method`, `pkg.Service/*`, or a service pattern.
fn is_method_pattern(pattern: &str) -> bool {
    match pattern.split_once('/') {
        Some((service, "*")) => de::is_service_pattern(service) && service != "*",
        Some(_) => de::is_method_name(pattern),
        None => de::is_service_pattern(pattern),
    }
}

impl Config {
    /// `rate_limits`: names, patterns, bounds and headers that can key.
    pub(super) fn check_rate_limits(&self) -> Result<(), (String, String)> {
        for (index, rule) in self.rate_limits.iter().enumerate() {
            let fail = |message: String| Err((format!("rate_limits[{index}]"), message));
            if rule.name.trim().is_empty() {
                return fail(
                    "a rule needs a `name` (the refusal, logs and metrics say which rule refused)"
                        .to_owned(),
                );
            }
            if let Some(other) = self.rate_limits[..index]
                .iter()
                .find(|r| r.name == rule.name)
            {
                return fail(format!(
                    "`{}` is the name of an earlier rule too; names tell rules apart",
                    other.name
                ));
            }
            if let Some(bad) = rule.methods.iter().find(|m| !is_method_pattern(m)) {
                return fail(format!(
                    "methods: `{bad}` is not a method (pkg.Service/Method) or pattern (pkg.Service, pkg.Service/*, pkg.*, *)"
                ));
            }
            match rule.burst {
                Some(0) => {
                    return fail("burst 0 would refuse every call; give at least 1".to_owned());
                }
                Some(burst) if burst > RateLimitRule::MAX_BURST => {
                    return fail(format!(
                        "burst {burst} is above {}",
                        RateLimitRule::MAX_BURST
                    ));
                }
                _ => {}
            }
            if rule.max_keys == 0 || rule.max_keys > RateLimitRule::MAX_KEYS {
                return fail(format!(
                    "max_keys {} is out of range (1 to {}): each key kept costs memory",
                    rule.max_keys,
                    RateLimitRule::MAX_KEYS
                ));
            }
            if let RateKey::Header(name) = &rule.per
                && (super::validate::is_hop_by_hop(name.as_str())
                    || *name == http::header::HOST
                    || crate::upstream::metadata::is_reserved(name.as_str()))
            {
                return fail(format!(
                    "per: header `{name}` belongs to the connection or the protocol, not to a client's call; name a header clients set, such as x-api-key"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_rate("100/s").unwrap().per_second(), 100.0);
        assert_eq!(parse_rate("6000/m").unwrap().per_second(), 100.0);
        assert_eq!(parse_rate("36/h").unwrap().per_second(), 0.01);
        assert_eq!(parse_rate("7").unwrap().to_string(), "7/s");
        assert_eq!(
            parse_rate("6000/m").unwrap().period(),
            Duration::from_millis(10)
        );
        for bad in ["", "0/s", "10/d", "ten/s", "-1/s", "1.5/s", "2000000/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
