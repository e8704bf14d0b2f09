//! Bounding log lines that every failing request would write: an open
//! circuit breaker, a backend that is down, a client retrying in a loop.
//! Past the bound, lines are only counted, and the next one let through
//! says how many were held back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The failed-request warnings of one kind: ten a second, then counted.
pub(crate) fn failures() -> Throttle {
    Throttle::new(10, Duration::from_secs(1))
}

/// At most `limit` lines per `window`.
#[derive(Debug)]
pub(crate) struct Throttle {
    since: Instant,
    window: Duration,
    limit: u32,
    /// The current window's number (high half) and lines let through in
    /// it (low half).
    state: AtomicU64,
    /// Lines held back since the last one let through.
    held: AtomicU64,
}

impl Throttle {
    pub(crate) fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            since: Instant::now(),
            window,
            limit,
            state: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; if so, how many were held back
    /// since the last one.
    pub(crate) fn allow(&self) -> Option<u64> {
        let window =
            u64::try_from(self.since.elapsed().as_nanos() / self.window.as_nanos().max(1) + 1)
                .unwrap_or(u64::MAX >> 32)
                & (u64::MAX >> 32);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (current, count) = (state >> 32, state & u64::from(u32::MAX));
            let count = if current == window { count + 1 } else { 1 };
            if count > u64::from(self.limit) {
                self.held.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                window << 32 | count,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.held.swap(0, Ordering::Relaxed)),
                Err(now) => state = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_the_limit_through_per_window_and_counts_the_rest() {
        let throttle = Throttle::new(2, Duration::from_millis(200));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..50 {
            assert_eq!(throttle.allow(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.allow(), Some(50), "the held ones, counted");
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
    }
}
