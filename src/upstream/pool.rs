//! An upstream as a pool of endpoints: every address of every URL it
//! lists, found again by DNS on an interval, actively health-checked, and
//! balanced by the upstream's policy (see `balance`).
//!
//! One task per pool keeps the rotation current: it resolves the names,
//! checks each address with `grpc.health.v1.Health/Check`, and publishes
//! a new rotation as endpoints come, go, pass or fail. With health checks
//! an endpoint joins once it passes; without, when found, and a TCP
//! connection probe takes out those that refuse connections. Calls in
//! flight on a removed endpoint finish on their connection. The task ends
//! when the last handle of the upstream is dropped. The checks themselves
//! are in `checking`.
//!
//! Each endpoint has one HTTP/2 connection for calls (multiplexed, with
//! keepalive pings) and, when checked, one for its health checks, so a
//! check never queues behind calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::Channel;
use super::balance::{Balancer, Member, Rotation};
use super::channel::Dial;
use super::discovery::{Discovery, Instance};
use super::resolve::Resolver;
use crate::config::{HealthCheck, UpstreamConfig};

mod checking;
use checking::connect_probe;

/// Default interval of name resolution in a pool.
pub(super) const DNS_REFRESH: Duration = Duration::from_secs(30);

/// The live side of a pool, shared by the upstream's handles; the task
/// that keeps it ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct Pool {
    /// What the task shows of its last round.
    pub(crate) shown: Arc<Shown>,
    /// The registry the endpoints come from, described, if any.
    pub(crate) registry: Option<String>,
    /// Set once the first round of resolving and checking is done: until
    /// then an empty rotation means "not known yet", not "none".
    settled: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pool {
    /// Waits until the first round is done.
    pub(crate) async fn settled(&self) {
        let mut settled = self.settled.clone();
        let _ = settled.wait_for(|done| *done).await;
    }

    pub(crate) fn is_settled(&self) -> bool {
        *self.settled.borrow()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a pool's task shows of its last round.
#[derive(Debug, Default)]
pub(crate) struct Shown {
    /// Endpoints known (resolved), healthy or not.
    pub(crate) known: AtomicUsize,
    /// Each known endpoint and whether it is in the rotation.
    pub(crate) endpoints: parking_lot::Mutex<Vec<(Arc<Member>, bool)>>,
    /// Whether the registry (if any) has answered at least once.
    pub(crate) registry_answered: std::sync::atomic::AtomicBool,
    /// Why the registry (if any) cannot be read, while it cannot.
    pub(crate) registry_trouble: super::discovery::Trouble,
    /// Why the last round could not resolve a host name, if one failed.
    pub(crate) unresolved: parking_lot::Mutex<Option<String>>,
}

/// A registry the pool follows, and the task that watches it.
struct Registry {
    described: String,
    instances: watch::Receiver<Option<Vec<Instance>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes the endpoint for an address URL of a target, verifying TLS
/// against the given name (default: the target's host).
pub(crate) type MakeEndpoint =
    Arc<dyn Fn(&str, Option<&str>) -> Result<Dial, String> + Send + Sync>;

/// Where a pool's endpoints come from.
pub(crate) enum Source {
    /// The targets' host names, resolved every `dns_refresh`.
    Dns(Vec<Target>),
    /// A registry's instances, connected with the target's scheme and
    /// TLS settings.
    Discovered(Target, Box<dyn Discovery>),
}

/// The longest a round waits for one name to resolve.
const LOOKUP: Duration = Duration::from_secs(2);

/// How long the first round waits for a registry's first answer.
const FIRST_ANSWER: Duration = Duration::from_secs(5);

/// One URL of the pool: where to connect, and how to make an endpoint for
/// an address of it.
pub(crate) struct Target {
    /// Scheme, for the address URLs (`http` or `https`).
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) weight: u32,
    pub(crate) zone: Option<Arc<str>>,
    /// Makes the endpoint for an address URL; the TLS server name stays
    /// the host's.
    pub(crate) make: MakeEndpoint,
}

/// Starts the pool of `config`: the task that keeps `balancer`'s rotation
/// filled.
pub(crate) fn start(
    name: &str,
    config: &UpstreamConfig,
    zone: Option<Arc<str>>,
    resolver: Resolver,
    source: Source,
    balancer: Arc<Balancer>,
) -> Arc<Pool> {
    let refresh = config.dns_refresh.unwrap_or(DNS_REFRESH);
    let check = config.health_check.clone();
    let (settle, settled) = watch::channel(false);
    let shown = Arc::new(Shown::default());
    let (targets, registry) = match source {
        Source::Dns(targets) => (targets, None),
        Source::Discovered(target, discovery) => {
            let described = discovery.describe();
            let (tx, rx) = watch::channel(None);
            let task = tokio::spawn(discovery.run(tx, shown.registry_trouble.clone()));
            (
                vec![target],
                Some(Registry {
                    described,
                    instances: rx,
                    task,
                }),
            )
        }
    };
    let described = registry.as_ref().map(|r| r.described.clone());
    let keeper = Keeper {
        shown: shown.clone(),
        name: name.to_owned(),
        resolver,
        targets,
        registry,
        refresh,
        check,
        zone,
        balancer,
        settle,
        idle: config.idle_timeout.unwrap_or(IDLE),
        endpoints: BTreeMap::new(),
        unresolved: std::collections::HashSet::new(),
    };
    Arc::new(Pool {
        shown,
        registry: described,
        settled,
        task: tokio::spawn(keeper.run()),
    })
}

/// Default time after which an endpoint's connection without calls is
/// closed (a new one opens with the next call).
const IDLE: Duration = Duration::from_secs(300);

/// The state of one endpoint.
struct State {
    /// Which target found it.
    target: usize,
    /// How to connect to it again.
    endpoint: Dial,
    member: Arc<Member>,
    /// Its own channel for health checks (apart from the calls' one, so
    /// a check never queues behind calls).
    checker: Option<Channel>,
    in_rotation: bool,
    passes: u32,
    failures: u32,
    /// Whether the last resolution still returned it.
    seen: bool,
}

struct Keeper {
    name: String,
    shown: Arc<Shown>,
    resolver: Resolver,
    /// The URLs resolved by DNS; with a registry, the one whose scheme
    /// and TLS settings its instances are connected with.
    targets: Vec<Target>,
    registry: Option<Registry>,
    refresh: Duration,
    check: Option<HealthCheck>,
    /// This gateway's zone.
    zone: Option<Arc<str>>,
    balancer: Arc<Balancer>,
    settle: watch::Sender<bool>,
    /// Connections without calls for this long are closed.
    idle: Duration,
    endpoints: BTreeMap<SocketAddr, State>,
    /// Targets whose failure to resolve was warned about (until they
    /// resolve again).
    unresolved: std::collections::HashSet<usize>,
}

impl Keeper {
    async fn run(mut self) {
        let every = self
            .check
            .as_ref()
            .map_or(connect_probe().interval, |c| c.interval)
            .min(self.refresh);
        let mut resolved_at: Option<tokio::time::Instant> = None;
        if let Some(registry) = &mut self.registry {
            let first = registry.instances.wait_for(Option::is_some);
            if tokio::time::timeout(FIRST_ANSWER, first).await.is_err() {
                tracing::warn!(upstream = %self.name, registry = %registry.described, "No answer from the registry yet; the pool is empty until it answers");
            }
        }
        loop {
            if let Some(registry) = &mut self.registry {
                let instances = registry.instances.borrow_and_update().clone();
                if instances.is_some() {
                    self.shown.registry_answered.store(true, Ordering::Relaxed);
                }
                self.resolve();
                self.discovered(instances);
            } else if resolved_at.is_none_or(|at| at.elapsed() >= self.refresh) {
                self.resolve();
                self.lookup().await;
                resolved_at = Some(tokio::time::Instant::now());
            }
            self.check_all().await;
            self.close_idle();
            self.publish();
            self.shown
                .known
                .store(self.endpoints.len(), Ordering::Relaxed);
            *self.shown.endpoints.lock() = self
                .endpoints
                .values()
                .map(|state| (state.member.clone(), state.in_rotation))
                .collect();
            self.settle.send_replace(true);
            match &mut self.registry {
                // A registry's change is taken at once.
                Some(registry) => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = registry.instances.changed() => {}
                    }
                }
                None => tokio::time::sleep(every).await,
            }
        }
    }

    /// Takes the registry's set: new instances join, missing ones leave
    /// (nothing learned yet keeps what is there).
    fn discovered(&mut self, instances: Option<Vec<Instance>>) {
        let Some(instances) = instances else {
            for state in self.endpoints.values_mut() {
                state.seen = true;
            }
            return;
        };
        for instance in instances {
            self.found(
                0,
                instance.address,
                instance.weight,
                instance.zone.clone(),
                instance.server_name.as_deref(),
            );
        }
        self.remove_unseen("no longer registered");
    }

    /// Swaps the channels of endpoints idle for `idle_timeout` for
    /// unconnected ones, so that idle connections close.
    fn close_idle(&mut self) {
        let now = super::balance::now();
        for (address, state) in &mut self.endpoints {
            if state.member.is_idle(self.idle, now) {
                tracing::debug!(upstream = %self.name, %address, "Closing an idle connection");
                state.member = Arc::new(state.member.reconnected(state.endpoint.connect_lazy()));
            }
        }
    }

    /// Puts the endpoints in the rotation into the balancer.
    fn publish(&self) {
        let members: Vec<Arc<Member>> = self
            .endpoints
            .values()
            .filter(|s| s.in_rotation)
            .map(|s| s.member.clone())
            .collect();
        let current = self.balancer.rotation();
        let same = current.len() == members.len()
            && current
                .members()
                .iter()
                .zip(&members)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            self.balancer
                .publish(Rotation::new(members, self.zone.as_deref()));
        }
    }

    /// Marks every endpoint unseen before a round of lookups.
    fn resolve(&mut self) {
        for state in self.endpoints.values_mut() {
            state.seen = false;
        }
    }

    /// Resolves every target; new addresses join (unchecked ones at once,
    /// checked ones when they pass), vanished ones leave.
    async fn lookup(&mut self) {
        // All names at once, each within a bound: one slow DNS answer
        // must not hold up the others, nor the health checks after.
        let lookups = self.targets.iter().map(|target| {
            let resolver = &self.resolver;
            async move {
                match tokio::time::timeout(LOOKUP, resolver.lookup(&target.host, target.port)).await
                {
                    Ok(found) => found.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {LOOKUP:?}")),
                }
            }
        });
        let results = futures_util::future::join_all(lookups).await;
        let mut failed = None;
        for (index, found) in results.into_iter().enumerate() {
            let target = &self.targets[index];
            let host = target.host.clone();
            let addresses: Vec<SocketAddr> = match found {
                Ok(found) => {
                    if self.unresolved.remove(&index) {
                        tracing::info!(upstream = %self.name, %host, "Upstream host resolves again");
                    }
                    found
                }
                Err(err) => {
                    failed = Some(format!("{host}: {err}"));
                    // Keep what it resolved to before; warned once.
                    if self.unresolved.insert(index) {
                        if self.endpoints.values().any(|state| state.target == index) {
                            tracing::warn!(upstream = %self.name, %host, error = %err, "Cannot resolve an upstream host; keeping its addresses");
                        } else {
                            tracing::warn!(upstream = %self.name, %host, error = %err, "Cannot resolve an upstream host; it has no address until it resolves");
                        }
                    } else {
                        tracing::debug!(upstream = %self.name, %host, error = %err, "Upstream host still does not resolve");
                    }
                    for state in self.endpoints.values_mut() {
                        if state.target == index {
                            state.seen = true;
                        }
                    }
                    continue;
                }
            };
            let (weight, zone) = (target.weight, target.zone.clone());
            for address in addresses {
                self.found(index, address, weight, zone.clone(), None);
            }
        }
        *self.shown.unresolved.lock() = failed;
        self.remove_unseen("no longer resolved");
    }

    /// Removes the endpoints the last round did not see.
    fn remove_unseen(&mut self, why: &str) {
        let gone: Vec<SocketAddr> = self
            .endpoints
            .iter()
            .filter(|(_, s)| !s.seen)
            .map(|(a, _)| *a)
            .collect();
        for address in gone {
            tracing::info!(upstream = %self.name, %address, reason = why, "Endpoint removed");
            self.endpoints.remove(&address);
        }
    }

    /// An address of target `index` was found (again), with its weight,
    /// zone and TLS name (default: the target's host).
    fn found(
        &mut self,
        index: usize,
        address: SocketAddr,
        weight: u32,
        zone: Option<Arc<str>>,
        server_name: Option<&str>,
    ) {
        if let Some(state) = self.endpoints.get_mut(&address) {
            state.seen = true;
            // A registry entry may change its weight or zone in place.
            if state.member.weight() != weight.max(1) || state.member.zone() != zone.as_deref() {
                tracing::info!(upstream = %self.name, %address, weight, zone = zone.as_deref(), "Endpoint's weight or zone changed");
                state.member = Arc::new(state.member.reweighted(weight, zone));
            }
            return;
        }
        let target = &self.targets[index];
        let url = format!("{}://{}", target.scheme, address);
        let endpoint = match (target.make)(&url, server_name) {
            Ok(endpoint) => endpoint,
            Err(err) => {
                tracing::warn!(upstream = %self.name, %address, error = %err, "Cannot set up an endpoint");
                return;
            }
        };
        // Checked endpoints join once they pass; unchecked ones at once.
        let checker = self.check.as_ref().map(|_| endpoint.connect_lazy());
        tracing::info!(upstream = %self.name, %address, weight, zone = zone.as_deref(), "Endpoint found");
        let member = Member::new(address, endpoint.connect_lazy(), weight, zone);
        self.endpoints.insert(
            address,
            State {
                target: index,
                endpoint,
                member: Arc::new(member),
                in_rotation: checker.is_none(),
                checker,
                passes: 0,
                failures: 0,
                seen: true,
            },
        );
    }
}
