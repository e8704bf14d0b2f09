//! Service discovery: sources that tell which instances of a service exist.
//!
//! A source implements [`Discovery`]. Its [`Discovery::run`] future lives as
//! long as someone listens: it publishes the complete set of instances on a
//! `watch` channel every time the set changes, and keeps the last set in
//! place while the source cannot be reached.
//!
//! Sources so far: [`etcd`] (every key under a prefix is an instance).
//!
//! # Adding a source
//!
//! To add another registry (Consul, Nacos, Kubernetes Endpoints, ...):
//!
//! 1. Write its config struct in `src/config/upstream.rs` beside
//!    [`EtcdDiscovery`](crate::config::EtcdDiscovery) (serde `Deserialize`,
//!    `deny_unknown_fields`, a doc comment on every field), and add a
//!    variant for it where the upstream config picks its discovery source.
//! 2. Add a submodule here (`discovery/consul.rs`) with a type built from
//!    that config (check what can be checked at startup in its `new`) and
//!    implement [`Discovery`] for it:
//!    - `run` sends `Some(set)` with the whole current set each time it
//!      changes (never a diff; sending an equal set again is harmless but
//!      wasteful, so prefer `send_if_modified`), `Some(vec![])` only when
//!      the registry says there are no instances, and nothing while it has
//!      learned nothing yet (the channel then still holds `None`);
//!    - on errors it keeps the last set, logs a warning once per outage
//!      (debug while it lasts, info when it is over), says why in its
//!      [`Trouble`] (cleared once it reads the registry again), and tries
//!      again after a delay from this module's `Backoff`;
//!    - it prefers the registry's change notifications (watches, blocking
//!      queries) to polling;
//!    - it returns when [`watch::Sender::closed`] resolves, including in
//!      the middle of a wait;
//!    - it fills [`Instance::server_name`] with the host name when an
//!      instance was registered by name, so TLS is verified against it.
//! 3. Give `describe` a short text naming the registry and what is watched.
//! 4. Test it end to end against the real registry started by the test
//!    (as `tests/discovery_etcd.rs` does with etcd).

pub mod etcd;

use std::future::Future;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// One instance of a service, as a discovery source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Where it listens.
    pub address: SocketAddr,
    /// TLS name to verify when the instance was registered by host name
    /// (None for IP literals).
    pub server_name: Option<Arc<str>>,
    /// Relative weight for weighted balancing, >= 1 (default 1).
    pub weight: u32,
    /// Zone for zone-aware balancing, if registered.
    pub zone: Option<Arc<str>>,
}

/// A source of instances. `run` sends the complete current set every time
/// it changes (never a diff) and returns only when the receiver is gone.
/// Errors are logged (warn once per outage, debug while it lasts) and
/// retried with backoff; the last known set stays in place during an
/// outage.
///
/// In the channel, `None` means nothing learned yet; `Some(vec![])` means
/// the source says there are no instances.
pub trait Discovery: Send + 'static {
    /// Watches the source and publishes its instances on `out` until every
    /// receiver of `out` is gone.
    /// `trouble` holds why the source last failed to reach its registry,
    /// while it cannot, for `/admin/status`.
    fn run(
        self: Box<Self>,
        out: watch::Sender<Option<Vec<Instance>>>,
        trouble: Trouble,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// What it watches, for logs and `/admin/status` (e.g. `etcd
    /// http://127.0.0.1:2379 prefix /services/orders/`).
    fn describe(&self) -> String;
}

/// Why a discovery source cannot reach its registry, while it cannot:
/// set by the source on each failure, cleared when it reads the registry
/// again, read by `/admin/status`. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Trouble(Arc<parking_lot::Mutex<Option<Arc<str>>>>);

impl Trouble {
    /// The source failed so.
    pub fn set(&self, why: String) {
        *self.0.lock() = Some(why.into());
    }

    /// The source reads its registry again.
    pub fn clear(&self) {
        *self.0.lock() = None;
    }

    /// Why the source last failed, while it has not read its registry
    /// since.
    pub fn get(&self) -> Option<Arc<str>> {
        self.0.lock().clone()
    }
}

/// Delays between attempts to reach a source: from 100 ms, doubling up to
/// 5 s, each drawn at random from its upper half so that gateways that
/// lost the source together do not come back in step.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// Starts again from the shortest delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay before the next attempt.
    pub(crate) fn delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (ceiling * 2).min(Self::MAX);
        ceiling.mul_f64(0.5 + 0.5 * random_fraction())
    }
}

/// A number in `[0, 1)`, random enough for jitter: each `RandomState` is
/// keyed afresh, so hashing a constant with it gives a new value each time.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(0u8) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        let mut backoff = Backoff::new();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            let ceiling = backoff.next;
            let delay = backoff.delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} of {ceiling:?}"
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        backoff.reset();
        assert!(backoff.delay() <= Backoff::FIRST);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::BTreeSet<u64> =
            (0..20).map(|_| random_fraction().to_bits()).collect();
        assert!(draws.len() > 10, "{draws:?}");
        assert!(
            draws
                .iter()
                .all(|&b| (0.0..1.0).contains(&f64::from_bits(b)))
        );
    }
}
