//! The circuit breaker: limits on an upstream's calls in flight and calls
//! waiting for their first answer. Past a limit a call fails at once with
//! `UNAVAILABLE` (503) instead of piling onto a struggling backend; the
//! breaker closes by itself as calls finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::Status;

use crate::config::CircuitBreaker;

/// One upstream's breaker, shared by its handles.
#[derive(Debug)]
pub(crate) struct Breaker {
    limits: CircuitBreaker,
    requests: AtomicUsize,
    pending: AtomicUsize,
    warnings: Warnings,
}

/// At most one warning per [`Warnings::EVERY`] about refused calls, with
/// how many were refused: an open breaker refuses every call, and a line
/// for each would bury the log.
#[derive(Debug)]
struct Warnings {
    since: Instant,
    /// Milliseconds after `since` of the last warning; `u64::MAX`: none yet.
    last: AtomicU64,
    /// Calls refused since then.
    refused: AtomicU64,
}

impl Warnings {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Warnings {
        Warnings {
            since: Instant::now(),
            last: AtomicU64::new(u64::MAX),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts one refusal; the number refused since the last warning when
    /// one is due now.
    fn refused(&self) -> Option<u64> {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= Self::EVERY.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.fetch_sub(refused, Ordering::Relaxed);
            return Some(refused);
        }
        None
    }
}

impl Breaker {
    pub(crate) fn new(limits: CircuitBreaker) -> Arc<Breaker> {
        Arc::new(Breaker {
            limits,
            requests: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            warnings: Warnings::new(),
        })
    }

    /// Admits one call, counted as in flight and pending until the
    /// returned guards are dropped; refuses it when a limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, upstream: &str) -> Result<(InFlight, Pending), Status> {
        let refuse = |what: &str, limit: usize, key: &str| {
            match self.warnings.refused() {
                Some(refused) => {
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
            Err(Status::unavailable(format!(
                "upstream `{upstream}` has {limit} calls {what} already (circuit_breaker.{key}); try again later"
            )))
        };
        if self.requests.fetch_add(1, Ordering::AcqRel) >= self.limits.max_requests {
            self.requests.fetch_sub(1, Ordering::AcqRel);
            return refuse("in flight", self.limits.max_requests, "max_requests");
        }
        let in_flight = InFlight(self.clone());
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.limits.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return refuse(
                "waiting for an answer",
                self.limits.max_pending,
                "max_pending",
            );
        }
        Ok((in_flight, Pending(Some(self.clone()))))
    }
}

/// A call counted in flight.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Breaker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call counted as waiting for its first answer.
#[derive(Debug, Default)]
pub(crate) struct Pending(Option<Arc<Breaker>>);

impl Pending {
    /// The answer came: no longer pending.
    pub(crate) fn answered(&mut self) {
        if let Some(breaker) = self.0.take() {
            breaker.pending.fetch_sub(1, Ordering::AcqRel);
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
        let breaker = Breaker::new(CircuitBreaker {
            max_requests: 2,
            max_pending: 1,
        });
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
    fn warnings_come_at_most_every_ten_seconds_with_the_count() {
        let warnings = Warnings::new();
        assert_eq!(warnings.refused(), Some(1), "the first warns");
        for _ in 0..500 {
            assert_eq!(warnings.refused(), None);
        }
        // Ten seconds on.
        warnings.last.store(0, Ordering::Relaxed);
        let aged = Warnings {
            since: Instant::now() - Warnings::EVERY,
            ..warnings
        };
        assert_eq!(aged.refused(), Some(501), "the 500 since and this one");
        assert_eq!(aged.refused(), None);
    }
}
