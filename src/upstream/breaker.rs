//! The circuit breaker: limits on an upstream's calls in flight and calls
//! waiting for their first answer. Past a limit a call fails at once with
//! `UNAVAILABLE` (503) instead of piling onto a struggling backend; the
//! breaker closes by itself as calls finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::Status;

use crate::config::CircuitBreaker;
use crate::throttle::Throttle;

/// One upstream's breaker, shared by its handles.
#[derive(Debug)]
pub(crate) struct Breaker {
    limits: CircuitBreaker,
    counts: Arc<Counts>,
    /// An open breaker refuses every call: a warning for each would bury
    /// the log, so one in ten seconds says how many were refused.
    warnings: Throttle,
}

/// The calls counted against an upstream's limits: shared by the breakers
/// its reloads make, so that calls still in flight on a previous snapshot
/// count against new limits until they end.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicUsize,
    pending: AtomicUsize,
    /// Held while a call is admitted: both counts are checked and then
    /// raised together, so that a call refused on one limit never counts
    /// against the other, even for a moment (guards lower them without it:
    /// a count only too low for a moment refuses nothing wrongly).
    admitting: parking_lot::Mutex<()>,
}

impl Breaker {
    /// A breaker with `limits`, counting on from `before` (the upstream's
    /// breaker in the previous snapshot) when there is one.
    pub(crate) fn new(limits: CircuitBreaker, before: Option<&Breaker>) -> Arc<Breaker> {
        Arc::new(Breaker {
            limits,
            counts: before.map_or_else(Arc::default, |b| Arc::clone(&b.counts)),
            warnings: Throttle::new(1, Duration::from_secs(10)),
        })
    }

    /// The limits it enforces.
    pub(crate) fn limits(&self) -> &CircuitBreaker {
        &self.limits
    }

    /// Admits one call, counted as in flight and pending until the
    /// returned guards are dropped; refuses it when a limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, upstream: &str) -> Result<(InFlight, Pending), Status> {
        let refuse = |what: &str, limit: usize, key: &str| {
            match self.warnings.allow() {
                Some(held) => {
                    let refused = held.unwrap_or(0) + 1;
                    tracing::warn!(
                        upstream,
                        limit,
                        calls = what,
                        refused,
                        "Circuit breaker open; refusing calls"
                    );
                }
                None => tracing::debug!(
                    upstream,
                    limit,
                    calls = what,
                    "Circuit breaker refused a call"
                ),
            }
            let calls = if limit == 1 { "call" } else { "calls" };
            Err(Status::unavailable(format!(
                "upstream `{upstream}` has {limit} {calls} {what} already (circuit_breaker.{key}); try again later"
            )))
        };
        let counts = &self.counts;
        let admitting = counts.admitting.lock();
        if counts.requests.load(Ordering::Acquire) >= self.limits.max_requests {
            drop(admitting);
            return refuse("in flight", self.limits.max_requests, "max_requests");
        }
        if counts.pending.load(Ordering::Acquire) >= self.limits.max_pending {
            drop(admitting);
            return refuse(
                "waiting for an answer",
                self.limits.max_pending,
                "max_pending",
            );
        }
        counts.requests.fetch_add(1, Ordering::AcqRel);
        counts.pending.fetch_add(1, Ordering::AcqRel);
        drop(admitting);
        Ok((
            InFlight(Arc::clone(counts)),
            Pending(Some(Arc::clone(counts))),
        ))
    }
}

/// A call counted in flight.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Counts>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call counted as waiting for its first answer.
#[derive(Debug, Default)]
pub(crate) struct Pending(Option<Arc<Counts>>);

impl Pending {
    /// The answer came: no longer pending.
    pub(crate) fn answered(&mut self) {
        if let Some(counts) = self.0.take() {
            counts.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.answered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_the_limit_and_closes_as_calls_end() {
        let breaker = Breaker::new(
            CircuitBreaker {
                max_requests: 2,
                max_pending: 1,
            },
            None,
        );
        let (first, mut waiting) = breaker.admit("a").unwrap();
        // One waits already: the second is refused for pending.
        let refused = breaker.admit("a").unwrap_err();
        assert!(
            refused.message().contains("max_pending"),
            "{}",
            refused.message()
        );
        waiting.answered();
        let second = breaker.admit("a").unwrap();
        let refused = breaker.admit("a").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(
            refused.message().contains("max_requests"),
            "{}",
            refused.message()
        );
        drop(first);
        drop(second);
        assert!(breaker.admit("a").is_ok());
    }

    #[test]
    fn a_new_breaker_counts_on_from_the_one_before() {
        let limits = |max_requests| CircuitBreaker {
            max_requests,
            max_pending: 10,
        };
        let before = Breaker::new(limits(3), None);
        let held: Vec<_> = (0..2).map(|_| before.admit("a").unwrap()).collect();
        // Reloaded with a lower limit: the two calls still in flight on
        // the old breaker fill it.
        let after = Breaker::new(limits(2), Some(&before));
        let refused = after.admit("a").unwrap_err();
        assert!(
            refused.message().contains("max_requests"),
            "{}",
            refused.message()
        );
        drop(before);
        drop(held);
        let _admitted = after.admit("a").unwrap();
        // A breaker of its own counts from zero.
        let alone = Breaker::new(limits(1), None);
        assert!(alone.admit("a").is_ok());
    }
}
