//! Where a rule's buckets live: a sharded map from key to bucket state
//! (governor's theoretical arrival time), bounded by a key count.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use parking_lot::Mutex;

/// Shards of the map: calls under different keys rarely wait on the same
/// lock.
const SHARDS: usize = 16;

/// Keys are already hashes (randomly keyed SipHash of the client's
/// address or the header's value), so the map takes them as they are.
#[derive(Debug, Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a `u64`); other input is
        // folded in rather than dropped.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, u64, BuildHasherDefault<PassThrough>>;

/// The store's bound and what it saw, shared with the rule that owns it
/// (governor keeps the store itself out of reach).
#[derive(Debug)]
pub(super) struct Bounds {
    /// Most keys the store holds (`max_keys`).
    max_keys: AtomicUsize,
    /// Keys held, over every shard.
    keys: AtomicUsize,
    /// Set when a call went to the overflow bucket since the last look.
    overflowed: AtomicBool,
}

impl Bounds {
    pub(super) fn new(max_keys: usize) -> Bounds {
        Bounds {
            max_keys: AtomicUsize::new(max_keys),
            keys: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Changes the bound (a reload); keys past it stay until idle.
    pub(super) fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
    }

    /// Takes room for one more key, if the bound leaves any.
    fn admit_key(&self) -> bool {
        let max = self.max_keys.load(Ordering::Relaxed);
        self.keys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < max).then_some(held + 1)
            })
            .is_ok()
    }

    /// Whether a call went to the overflow bucket since the last call.
    pub(super) fn take_overflowed(&self) -> bool {
        self.overflowed.swap(false, Ordering::Relaxed)
    }
}

/// Bucket states by key, at most `max_keys` of them; a key first seen
/// while the store is full is counted in the shared overflow bucket.
#[derive(Debug)]
pub(super) struct Store {
    shards: [Mutex<Shard>; SHARDS],
    overflow: Mutex<u64>,
    bounds: Arc<Bounds>,
}

impl Store {
    pub(super) fn new(bounds: Arc<Bounds>) -> Store {
        Store {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            overflow: Mutex::new(0),
            bounds,
        }
    }
}

/// One bucket's update, as governor asks for it: its state (0 for a fresh
/// bucket) through `f`, kept when the call conforms.
fn update<T, E>(
    state: &mut u64,
    f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let (outcome, next) = f(NonZeroU64::new(*state).map(|n| Nanos::new(n.get())))?;
    *state = next.as_u64();
    Ok(outcome)
}

impl StateStore for Store {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The low bits pick the shard; the map hashes with all of them.
        let mut shard = self.shards[(*key as usize) % SHARDS].lock();
        if let Some(state) = shard.get_mut(key) {
            return update(state, f);
        }
        if !self.bounds.admit_key() {
            drop(shard);
            self.bounds.overflowed.store(true, Ordering::Relaxed);
            return update(&mut self.overflow.lock(), f);
        }
        update(shard.entry(*key).or_insert(0), f)
    }
}

impl ShrinkableKeyedStateStore<u64> for Store {
    fn retain_recent(&self, drop_below: Nanos) {
        let below = drop_below.as_u64();
        for shard in &self.shards {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|_, state| *state > below);
            self.bounds
                .keys
                .fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }

    fn shrink_to_fit(&self) {
        for shard in &self.shards {
            shard.lock().shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.lock().is_empty())
    }
}
