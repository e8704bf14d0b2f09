//! Retries of unary calls: what may be tried again, how long to wait, and
//! the budget that keeps retries a small share of the load.
//!
//! A call that never reached a backend (no connection could be made) is
//! safe to try again whatever it does. A call a backend answered is tried
//! again only when it is idempotent and the answer's code is one the
//! policy names: a non-idempotent call that may have reached a backend is
//! never sent twice.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tower::retry::budget::{Budget as _, TpsBudget};

use crate::config::RetryPolicy;

/// How a try failed, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It never reached a backend.
    NotSent,
    /// The connection broke while it was in flight: it may have been
    /// acted on.
    Broken,
    /// A backend (or the way to it) answered with this code.
    Answered(Code),
}

/// One upstream's retry policy and budget, shared by its handles.
#[derive(Debug)]
pub(crate) struct Retry {
    policy: RetryPolicy,
    budget: TpsBudget,
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy) -> Arc<Retry> {
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            policy.budget_min_per_second,
            policy.budget_percent as f32 / 100.0,
        );
        Arc::new(Retry { policy, budget })
    }

    /// Counts a call toward the budget.
    pub(crate) fn deposit(&self) {
        self.budget.deposit();
    }

    /// Whether try number `attempt` (from 1) that failed so may be
    /// followed by another, and after what wait.
    pub(crate) fn next(
        &self,
        attempt: u32,
        failure: Failure,
        idempotent: bool,
    ) -> Option<Duration> {
        if attempt >= self.policy.attempts {
            return None;
        }
        let allowed = match failure {
            Failure::NotSent => true,
            Failure::Broken => idempotent,
            Failure::Answered(code) => idempotent && self.policy.on.contains(&code),
        };
        if !allowed {
            return None;
        }
        if !self.budget.withdraw() {
            tracing::debug!(attempt, "Retry budget spent; not trying again");
            return None;
        }
        Some(self.backoff(attempt))
    }

    /// Full jitter: a wait drawn at random below the exponential backoff.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.policy.backoff_max);
        ceiling.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: u32) -> Arc<Retry> {
        Retry::new(RetryPolicy {
            attempts,
            ..RetryPolicy::default()
        })
    }

    #[test]
    fn only_idempotent_calls_are_sent_twice() {
        let retry = retry(3);
        assert!(retry.next(1, Failure::NotSent, false).is_some());
        assert!(
            retry
                .next(1, Failure::Answered(Code::Unavailable), false)
                .is_none()
        );
        assert!(
            retry
                .next(1, Failure::Answered(Code::Unavailable), true)
                .is_some()
        );
        assert!(
            retry
                .next(1, Failure::Answered(Code::Internal), true)
                .is_none()
        );
        assert!(retry.next(3, Failure::NotSent, true).is_none());
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let retry = retry(10);
        for attempt in 1..10 {
            let wait = retry.backoff(attempt);
            assert!(wait <= Duration::from_millis(250), "{wait:?}");
        }
        let waits: std::collections::HashSet<Duration> =
            (0..20).map(|_| retry.backoff(3)).collect();
        assert!(waits.len() > 1, "no jitter");
    }

    #[test]
    fn the_budget_runs_out() {
        let retry = Retry::new(RetryPolicy {
            budget_percent: 0,
            budget_min_per_second: 1,
            ..RetryPolicy::default()
        });
        let granted = (0..100)
            .filter(|_| retry.next(1, Failure::NotSent, true).is_some())
            .count();
        // One per second for the ten-second window, nothing from calls.
        assert!((1..=10).contains(&granted), "{granted} retries granted");
    }
}
