//! The closed-loop load: `concurrency` workers, each sending its next
//! request as soon as the previous answer has been read whole, until the
//! run's time or request budget is spent.
//!
//! Every worker first sends one request that is not measured (it opens
//! connections on both sides of the gateway); then all start together.
//! Requests in flight when the time is up still finish and count, so the
//! run lasts a little longer than asked and every worker yields at least
//! one sample.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::time::Instant;

/// One side of the exchange a worker repeats: send the request, read the
/// whole answer, check it.
pub(super) trait Call: Send + 'static {
    /// One request; `Err` describes what was wrong with the answer.
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// No new request starts after this long.
    pub(super) duration: Duration,
    /// No more than this many measured requests in all.
    pub(super) requests: Option<u64>,
}

/// What a run measured.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Answers read whole and found right.
    pub(super) ok: u64,
    /// Failed requests (not in the latencies).
    pub(super) errors: u64,
    /// The first failure, as an example.
    pub(super) first_error: Option<String>,
    /// From the common start until the last worker stopped.
    pub(super) elapsed: Duration,
    /// Latencies of the good answers.
    pub(super) latency: Latency,
}

/// Runs `calls` (one per worker) against `budget`. `started` runs once
/// every worker is warm, right before the measured part, and `finished`
/// right after it: the caller's hooks for CPU readings.
pub(super) async fn run<C: Call>(
    calls: Vec<C>,
    budget: Budget,
    started: impl FnOnce(),
    finished: impl FnOnce(),
) -> Outcome {
    let workers = calls.len();
    let barrier = Arc::new(Barrier::new(workers + 1));
    let tickets = Arc::new(AtomicU64::new(budget.requests.unwrap_or(u64::MAX)));
    let mut tasks = Vec::with_capacity(workers);
    for mut call in calls {
        let barrier = barrier.clone();
        let tickets = tickets.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            // Warm-up: not measured, but a failure here is one to report.
            if let Err(err) = call.call().await {
                tally.fail(err);
            }
            barrier.wait().await;
            let deadline = Instant::now() + budget.duration;
            while Instant::now() < deadline && take(&tickets) {
                let sent = Instant::now();
                match call.call().await {
                    Ok(()) => tally.samples.push(nanos(sent.elapsed())),
                    Err(err) => tally.fail(err),
                }
            }
            tally
        }));
    }
    barrier.wait().await;
    started();
    let start = Instant::now();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => all.merge(tally),
            Err(err) => all.fail(format!("a load worker stopped: {err}")),
        }
    }
    let elapsed = start.elapsed();
    finished();
    Outcome {
        ok: all.samples.len() as u64,
        errors: all.errors,
        first_error: all.first_error,
        elapsed,
        latency: Latency::new(all.samples),
    }
}

/// Takes one request from the shared budget; false once it is spent.
fn take(tickets: &AtomicU64) -> bool {
    tickets
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// One worker's results.
#[derive(Debug, Default)]
struct Tally {
    samples: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, err: String) {
        self.errors += 1;
        self.first_error.get_or_insert(err);
    }

    fn merge(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Latencies, sorted: every sample kept, so percentiles are exact.
#[derive(Debug, Clone, Default)]
pub(super) struct Latency {
    sorted_nanos: Vec<u64>,
}

impl Latency {
    fn new(mut nanos: Vec<u64>) -> Latency {
        nanos.sort_unstable();
        Latency {
            sorted_nanos: nanos,
        }
    }

    /// The `q` quantile (0 < q ≤ 1) by nearest rank; zero when empty.
    pub(super) fn quantile(&self, q: f64) -> Duration {
        let n = self.sorted_nanos.len();
        if n == 0 {
            return Duration::ZERO;
        }
        // Nearest rank: the smallest sample with at least q·n at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Duration::from_nanos(self.sorted_nanos[rank - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let latency = Latency::new((1..=1000).rev().collect());
        assert_eq!(latency.quantile(0.5), Duration::from_nanos(500));
        assert_eq!(latency.quantile(0.99), Duration::from_nanos(990));
        assert_eq!(latency.quantile(0.999), Duration::from_nanos(999));
        assert_eq!(latency.quantile(1.0), Duration::from_nanos(1000));
        let one = Latency::new(vec![7]);
        assert_eq!(one.quantile(0.999), Duration::from_nanos(7));
        assert_eq!(Latency::default().quantile(0.5), Duration::ZERO);
    }

    struct Counter(Arc<AtomicU64>);

    impl Call for Counter {
        async fn call(&mut self) -> Result<(), String> {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            if n % 4 == 3 {
                Err(format!("call {n} fails"))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn a_request_budget_bounds_the_run() {
        let calls = Arc::new(AtomicU64::new(0));
        let workers = (0..3).map(|_| Counter(calls.clone())).collect();
        let budget = Budget {
            duration: Duration::from_secs(60),
            requests: Some(100),
        };
        let outcome = run(workers, budget, || {}, || {}).await;
        // 3 warm-up calls, then exactly the 100 measured ones.
        assert_eq!(calls.load(Ordering::Relaxed), 103);
        assert_eq!(outcome.ok + outcome.errors, 100);
        assert!(outcome.errors > 0);
        assert!(outcome.first_error.unwrap().ends_with("fails"));
    }
}
