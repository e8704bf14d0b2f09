//! The bounded store under governor, on a clock the tests move.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};

use super::retry_after;
use super::store::{Bounds, Store};

type TestLimiter = RateLimiter<u64, Store, FakeRelativeClock, NoOpMiddleware<Nanos>>;

/// A limiter of one call a second, burst 1, keeping at most `max_keys`.
fn limiter(max_keys: usize) -> (TestLimiter, Arc<Bounds>, FakeRelativeClock) {
    let bounds = Arc::new(Bounds::new(max_keys));
    let clock = FakeRelativeClock::default();
    let quota = Quota::per_second(NonZeroU32::MIN);
    let limiter = RateLimiter::new(quota, Store::new(bounds.clone()), clock.clone());
    (limiter, bounds, clock)
}

#[test]
fn keys_past_the_bound_share_the_overflow_bucket() {
    let (limiter, bounds, _clock) = limiter(16);
    let mut kept = Vec::new();
    for key in 0..16u64 {
        assert!(limiter.check_key(&key).is_ok());
        kept.push(key);
    }
    assert_eq!(limiter.len(), 16);
    assert!(!bounds.take_overflowed());
    // A new key in a full store: the overflow bucket, which then is empty.
    assert!(limiter.check_key(&16).is_ok());
    assert!(bounds.take_overflowed());
    assert!(limiter.check_key(&17).is_err(), "17 shares 16's bucket");
    assert_eq!(limiter.len(), 16, "no key was added");
    // The keys kept still have their own (empty) buckets.
    assert!(kept.iter().all(|key| limiter.check_key(key).is_err()));
}

/// The bound holds exactly, below the number of shards too (it was once
/// spread over them, rounding 2 up to 16).
#[test]
fn a_bound_under_the_shard_count_is_exact() {
    let (limiter, bounds, clock) = limiter(2);
    assert!(limiter.check_key(&7).is_ok());
    assert!(limiter.check_key(&100).is_ok());
    assert!(!bounds.take_overflowed());
    for key in 200..210u64 {
        let _ = limiter.check_key(&key);
    }
    assert!(bounds.take_overflowed());
    assert_eq!(limiter.len(), 2);
    assert!(
        limiter.check_key(&210).is_err(),
        "the overflow bucket is empty"
    );
    clock.advance(Duration::from_secs(2));
    limiter.retain_recent();
    assert_eq!(limiter.len(), 0);
    assert!(limiter.check_key(&300).is_ok());
    assert!(limiter.check_key(&301).is_ok());
    assert_eq!(limiter.len(), 2, "the room of dropped keys is given back");
}

#[test]
fn idle_keys_are_dropped_and_their_room_reused() {
    let (limiter, bounds, clock) = limiter(16);
    for key in 0..16u64 {
        assert!(limiter.check_key(&key).is_ok());
    }
    limiter.retain_recent();
    assert_eq!(limiter.len(), 16, "every bucket is still refilling");
    clock.advance(Duration::from_secs(2));
    limiter.retain_recent();
    assert_eq!(limiter.len(), 0, "full buckets again: dropped");
    assert!(limiter.check_key(&16).is_ok());
    assert!(!bounds.take_overflowed());
    assert_eq!(limiter.len(), 1);
}

#[test]
fn a_raised_bound_makes_room() {
    let (limiter, bounds, _clock) = limiter(16);
    for key in 0..16u64 {
        assert!(limiter.check_key(&key).is_ok());
    }
    bounds.set_max_keys(32);
    assert!(limiter.check_key(&16).is_ok());
    assert!(!bounds.take_overflowed());
    assert_eq!(limiter.len(), 17);
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    assert_eq!(retry_after(Duration::ZERO), 1);
    assert_eq!(retry_after(Duration::from_millis(1)), 1);
    assert_eq!(retry_after(Duration::from_secs(1)), 1);
    assert_eq!(retry_after(Duration::from_millis(1001)), 2);
    assert_eq!(retry_after(Duration::from_secs(3600)), 3600);
}
