//! Bounding log lines that every failing request would write: an open
//! circuit breaker, a backend that is down, a client retrying in a loop.
//! Past the bound, lines are only counted, and the next one let through
//! says how many were held back.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The failed-request warnings of one kind: ten a second, then counted.
pub(crate) fn failures() -> Throttle {
    Throttle::new(10, Duration::from_secs(1))
}

/// At most `limit` lines in any `window` that starts with a line let
/// through. Only failing requests ask, so a lock is cheap enough.
#[derive(Debug)]
pub(crate) struct Throttle {
    window: Duration,
    limit: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the current window began (its first line), if any.
    began: Option<Instant>,
    /// Lines let through in it.
    let_through: u32,
    /// Lines held back since the last one let through.
    held: u64,
}

impl Throttle {
    pub(crate) fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            window,
            limit,
            state: Mutex::new(State {
                began: None,
                let_through: 0,
                held: 0,
            }),
        }
    }

    /// Whether a line may be written now; if so, how many were held back
    /// since the last one: `None` when none were, so that a line's `held`
    /// field shows only when it says something.
    pub(crate) fn allow(&self) -> Option<Option<u64>> {
        self.allow_at(Instant::now())
            .map(|held| (held > 0).then_some(held))
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        let open = state
            .began
            .is_some_and(|began| now.saturating_duration_since(began) < self.window);
        if !open {
            state.began = Some(now);
            state.let_through = 0;
        }
        if state.let_through >= self.limit {
            state.held += 1;
            return None;
        }
        state.let_through += 1;
        Some(std::mem::take(&mut state.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_the_limit_through_per_window_and_counts_the_rest() {
        let throttle = Throttle::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(throttle.allow_at(at(0)), Some(0));
        assert_eq!(throttle.allow_at(at(1)), Some(0));
        for ms in 2..52 {
            assert_eq!(throttle.allow_at(at(ms)), None);
        }
        // The window runs from its first line, however the clock is
        // divided: still closed just before ten seconds after it.
        assert_eq!(throttle.allow_at(at(9_999)), None);
        assert_eq!(throttle.allow_at(at(10_000)), Some(51), "the held ones");
        assert_eq!(throttle.allow_at(at(10_001)), Some(0));
        assert_eq!(throttle.allow_at(at(10_002)), None);
    }
}
