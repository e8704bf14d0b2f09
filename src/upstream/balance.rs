//! Picking an endpoint for each call: the rotation (the endpoints that
//! may take calls now), the policies, and passive outlier ejection.
//!
//! The rotation is swapped whole when endpoints come, go, pass or fail
//! their checks; a call reads it without a lock. Each member keeps its
//! count of calls in flight and its failure record across rotations, so a
//! member that stays stays as it was.

use std::borrow::Borrow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tonic::Code;

use super::Channel;
use crate::config::{BalancePolicy, OutlierDetection};

/// One endpoint that may take calls: its own HTTP/2 connection
/// (multiplexed), weight, zone and record.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) address: SocketAddr,
    channel: Channel,
    weight: u32,
    zone: Option<Arc<str>>,
    /// Its place on the hash ring (from its address).
    key: u64,
    in_flight: AtomicUsize,
    /// Smooth weighted round robin's running score.
    current: AtomicI64,
    /// Failures in a row.
    failures: AtomicU32,
    /// Ejections since it last stayed in for the longest ejection time.
    ejections: AtomicU32,
    /// Ejected until this time ([`now`]); 0 when never ejected.
    ejected_until: AtomicU64,
    /// When a call last took it ([`now`]); 0 when none has.
    last_used: AtomicU64,
}

impl Member {
    pub(crate) fn new(
        address: SocketAddr,
        channel: Channel,
        weight: u32,
        zone: Option<Arc<str>>,
    ) -> Member {
        Member {
            key: mix(fnv(address.to_string().as_bytes())),
            address,
            channel,
            weight: weight.max(1),
            zone,
            in_flight: AtomicUsize::new(0),
            current: AtomicI64::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
        }
    }

    /// The same endpoint on a new channel (not connected until used), its
    /// record kept: the old channel's connection closes when its last
    /// call ends.
    pub(crate) fn reconnected(&self, channel: Channel) -> Member {
        let copy = |n: &AtomicU32| AtomicU32::new(n.load(Ordering::Relaxed));
        Member {
            address: self.address,
            channel,
            weight: self.weight,
            zone: self.zone.clone(),
            key: self.key,
            in_flight: AtomicUsize::new(0),
            current: AtomicI64::new(0),
            failures: copy(&self.failures),
            ejections: copy(&self.ejections),
            ejected_until: AtomicU64::new(self.ejected_until.load(Ordering::Relaxed)),
            last_used: AtomicU64::new(0),
        }
    }

    /// The same endpoint on the same channel with a new weight and zone
    /// (its registry entry changed), its record kept.
    pub(crate) fn reweighted(&self, weight: u32, zone: Option<Arc<str>>) -> Member {
        let mut member = self.reconnected(self.channel.clone());
        member.weight = weight.max(1);
        member.zone = zone;
        member
    }

    /// Whether it has taken calls but none for `idle` (and has none in
    /// flight) at `now`.
    pub(crate) fn is_idle(&self, idle: Duration, now: u64) -> bool {
        let last = self.last_used.load(Ordering::Relaxed);
        last != 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && now.saturating_sub(last) >= millis(idle)
    }

    /// Whether passive detection has it out of the rotation at `now`.
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    pub(crate) fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    pub(crate) fn weight(&self) -> u32 {
        self.weight
    }
}

/// The members that may take calls, and those of them in this gateway's
/// zone.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    all: Vec<Arc<Member>>,
    local: Vec<Arc<Member>>,
    /// No member is ejected at or after this time ([`now`]): calls skip
    /// the ejection filter.
    ejected_until: AtomicU64,
    /// Round robin's position.
    next: AtomicUsize,
    /// Serialises smooth weighted round robin's update of the scores.
    weighted: parking_lot::Mutex<()>,
}

impl Rotation {
    /// The rotation of `members`, preferring those in `zone`.
    pub(crate) fn new(members: Vec<Arc<Member>>, zone: Option<&str>) -> Rotation {
        let local = match zone {
            Some(zone) => members
                .iter()
                .filter(|m| m.zone() == Some(zone))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let now = now();
        let ejected_until = members
            .iter()
            .map(|m| m.ejected_until.load(Ordering::Relaxed))
            .filter(|until| *until > now)
            .max()
            .unwrap_or(0);
        Rotation {
            all: members,
            local,
            ejected_until: AtomicU64::new(ejected_until),
            next: AtomicUsize::new(0),
            weighted: parking_lot::Mutex::new(()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn members(&self) -> &[Arc<Member>] {
        &self.all
    }
}

/// Picks members for calls by a policy, and ejects those that keep
/// failing.
#[derive(Debug)]
pub(crate) struct Balancer {
    rotation: ArcSwap<Rotation>,
    policy: BalancePolicy,
    outlier: OutlierDetection,
    /// Named in logs.
    upstream: Box<str>,
}

impl Balancer {
    pub(crate) fn new(
        upstream: &str,
        policy: BalancePolicy,
        outlier: OutlierDetection,
        rotation: Rotation,
    ) -> Balancer {
        Balancer {
            rotation: ArcSwap::from_pointee(rotation),
            policy,
            outlier,
            upstream: upstream.into(),
        }
    }

    /// Replaces the rotation for new calls.
    pub(crate) fn publish(&self, rotation: Rotation) {
        self.rotation.store(Arc::new(rotation));
    }

    pub(crate) fn rotation(&self) -> arc_swap::Guard<Arc<Rotation>> {
        self.rotation.load()
    }

    /// A member for one call (`hash`: the call's consistent-hash key), or
    /// none when the rotation is empty. Members of this gateway's zone
    /// first; ejected members only when every member is ejected.
    ///
    /// A retry passes the endpoints already tried in `avoid`: they are
    /// skipped while any other is left (a dead endpoint fails fast, and
    /// least-request would otherwise favour it).
    pub(crate) fn pick(&self, hash: Option<u64>, avoid: &[SocketAddr]) -> Option<Lease> {
        let rotation = self.rotation.load();
        let now = now();
        let ejections = rotation.ejected_until.load(Ordering::Relaxed) > now;
        for tier in [&rotation.local, &rotation.all] {
            if tier.is_empty() {
                continue;
            }
            if !ejections && avoid.is_empty() {
                return Some(Lease::new(self.choose(&rotation, tier, hash), now));
            }
            let live: Vec<&Arc<Member>> = tier
                .iter()
                .filter(|m| !m.is_ejected(now) && !avoid.contains(&m.address))
                .collect();
            if !live.is_empty() {
                return Some(Lease::new(self.choose(&rotation, &live, hash), now));
            }
        }
        // Everything ejected: better a member that may have recovered than
        // no call at all.
        (!rotation.all.is_empty())
            .then(|| Lease::new(self.choose(&rotation, &rotation.all, hash), now))
    }

    fn choose<M: Borrow<Arc<Member>>>(
        &self,
        rotation: &Rotation,
        candidates: &[M],
        hash: Option<u64>,
    ) -> Arc<Member> {
        let member = |i: usize| -> &Arc<Member> { candidates[i].borrow() };
        let n = candidates.len();
        if n == 1 {
            return member(0).clone();
        }
        let index = match (self.policy, hash) {
            (BalancePolicy::RoundRobin, _) => rotation.next.fetch_add(1, Ordering::Relaxed) % n,
            (BalancePolicy::WeightedRoundRobin, _) => {
                let _turn = rotation.weighted.lock();
                let mut total = 0i64;
                let mut best = 0;
                let mut best_score = i64::MIN;
                for i in 0..n {
                    let m = member(i);
                    let weight = i64::from(m.weight);
                    total += weight;
                    let score = m.current.fetch_add(weight, Ordering::Relaxed) + weight;
                    if score > best_score {
                        best_score = score;
                        best = i;
                    }
                }
                member(best).current.fetch_sub(total, Ordering::Relaxed);
                best
            }
            (BalancePolicy::ConsistentHash, Some(key)) => {
                // Weighted rendezvous: the highest weight / -ln(u) wins,
                // with u uniform in (0, 1) from the key and the member.
                let score = |m: &Member| {
                    let u = (mix(key ^ m.key) >> 11) as f64 / (1u64 << 53) as f64;
                    let u = u.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
                    f64::from(m.weight) / -u.ln()
                };
                (0..n)
                    .max_by(|a, b| score(member(*a)).total_cmp(&score(member(*b))))
                    .unwrap_or(0)
            }
            // Least requests of two drawn at random, for their weights.
            (BalancePolicy::LeastRequest | BalancePolicy::ConsistentHash, _) => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let load = |i: usize| {
                    let m = member(i);
                    (
                        m.in_flight.load(Ordering::Relaxed) as u64,
                        u64::from(m.weight),
                    )
                };
                let ((la, wa), (lb, wb)) = (load(a), load(b));
                if la * wb <= lb * wa { a } else { b }
            }
        };
        member(index).clone()
    }

    /// Records how a call on `lease` ended: a failure of the endpoint
    /// counts toward its ejection, anything else clears its record.
    pub(crate) fn record(&self, lease: &Lease, outcome: Outcome) {
        let Some(member) = &lease.member else {
            return;
        };
        let threshold = self.outlier.consecutive_failures;
        if outcome == Outcome::Answered || threshold == 0 {
            if member.failures.load(Ordering::Relaxed) != 0 {
                member.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let failures = member.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < threshold {
            return;
        }
        let now = now();
        if member.is_ejected(now) {
            return;
        }
        let rotation = self.rotation.load();
        let total = rotation.all.len();
        let ejected = rotation.all.iter().filter(|m| m.is_ejected(now)).count();
        let allowed = (total * self.outlier.max_ejection_percent as usize / 100).min(total - 1);
        if ejected >= allowed {
            tracing::debug!(upstream = %self.upstream, address = %member.address, failures, "Endpoint keeps failing, but no more endpoints may be ejected");
            return;
        }
        member.failures.store(0, Ordering::Relaxed);
        let max = self.outlier.max_ejection_time;
        let last_until = member.ejected_until.load(Ordering::Relaxed);
        // In long enough since the last ejection: start over.
        if last_until != 0 && now.saturating_sub(last_until) >= millis(max) {
            member.ejections.store(0, Ordering::Relaxed);
        }
        let ejections = member.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let time = self
            .outlier
            .base_ejection_time
            .saturating_mul(1u32 << (ejections - 1).min(16))
            .min(max);
        let until = now + millis(time);
        member.ejected_until.store(until, Ordering::Relaxed);
        rotation.ejected_until.fetch_max(until, Ordering::Relaxed);
        tracing::warn!(upstream = %self.upstream, address = %member.address, failures, ejected_for = ?time, "Endpoint fails calls in a row; ejected from the rotation");
    }
}

/// How a call on an endpoint ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The backend answered as a working backend does (any status but
    /// the failures below).
    Answered,
    /// It could not be reached, or answered that it is failing.
    Failed,
}

impl Outcome {
    /// The outcome of a call that ended with `code` from the backend.
    pub(crate) fn of(code: Code) -> Outcome {
        match code {
            Code::Unavailable
            | Code::Internal
            | Code::Unknown
            | Code::DataLoss
            | Code::DeadlineExceeded => Outcome::Failed,
            _ => Outcome::Answered,
        }
    }
}

/// One call's hold on a member: counted in flight until dropped. (An
/// upstream of one address has no members: its lease is just the
/// channel.)
#[derive(Debug)]
pub(crate) struct Lease {
    member: Option<Arc<Member>>,
    channel: Channel,
}

impl Lease {
    fn new(member: Arc<Member>, now: u64) -> Lease {
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        member.last_used.store(now, Ordering::Relaxed);
        Lease {
            channel: member.channel.clone(),
            member: Some(member),
        }
    }

    /// The lease of an upstream's only channel.
    pub(crate) fn single(channel: Channel) -> Lease {
        Lease {
            member: None,
            channel,
        }
    }

    /// The endpoint's channel.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The member's address (none for an upstream of one address).
    pub(crate) fn address(&self) -> Option<SocketAddr> {
        self.member.as_ref().map(|m| m.address)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(member) = &self.member {
            member.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Milliseconds since the first call, the clock of ejections.
pub(crate) fn now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // Starts at 1 so that 0 means "never".
    millis(START.get_or_init(Instant::now).elapsed()) + 1
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// FNV-1a: a stable hash of header values, the same in every gateway
/// process, so replicas agree on where a key goes.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads a hash's bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
