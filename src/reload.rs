//! Keeping the snapshot current without a restart.
//!
//! A reload reads the config again, asks the reflecting upstreams for
//! their descriptors, builds a whole new snapshot off the request path and
//! swaps it in atomically: a request in flight finishes on the snapshot it
//! started with, and a reload that fails — a bad file, a conflict under
//! `strict_routes` — keeps the old snapshot, logs why and reports it on the
//! admin listener. Reloads run one at a time.
//!
//! They are triggered by `SIGHUP`, `POST /admin/reload`, a change to the
//! config file, a descriptor set or a `.proto` file (watched on disk), the
//! `reflection.refresh` interval, and — with backoff — while a reflecting
//! upstream has never answered. An upstream that does not answer a later
//! reload keeps the descriptors it sent last.
//!
//! The listener's TLS files (`tls.cert_file`, `key_file`,
//! `client_ca_file`) are watched and read again on every reload; new
//! handshakes use what they hold once the reload succeeds, and a reload
//! whose files are unusable keeps the certificates in use with the
//! routes. What the listener itself was set up with (`listen`, TLS on or
//! off, connection and header limits, `cors`, `admin`) stays as it was
//! until a restart; a reload that finds it changed says so (once per
//! change).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Config;
use crate::descriptor::Reflected;
use crate::server::Gateway;
use crate::snapshot::{Snapshot, SnapshotError};
use crate::tls::{ServerTls, Staged};
use crate::upstream::Upstream;

mod reflect;
mod watching;
pub use reflect::sources_now;
use reflect::{Asked, reflect};

/// Produces the config to load: the file read again, flags applied.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Longest wait between attempts to reach an upstream that never answered.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Longest wait for reflecting upstreams before the listener opens.
const STARTUP_WAIT: Duration = Duration::from_secs(2);

/// Reloads the gateway's snapshot.
pub struct Reloader {
    gateway: Arc<Gateway>,
    source: ConfigSource,
    /// Held while a reload runs, so reloads never overlap.
    running: tokio::sync::Mutex<Cache>,
    status: Mutex<Status>,
    /// `reflection.refresh` of the config last loaded.
    refresh: tokio::sync::watch::Sender<Option<Duration>>,
    /// The files of the config last loaded, for the watcher.
    files: tokio::sync::watch::Sender<Vec<PathBuf>>,
    /// The listener's TLS config, when it serves TLS.
    listener_tls: OnceLock<Arc<ServerTls>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("status", &*self.status.lock())
            .finish_non_exhaustive()
    }
}

/// What the last reload left for the next.
#[derive(Default)]
struct Cache {
    /// What reflecting upstreams sent last, by upstream name.
    reflected: BTreeMap<String, Reflected>,
    /// Reflecting upstreams whose failure was logged as a warning (until
    /// they answer again), with the error logged, so that retries repeat
    /// it only when it changes.
    warned: BTreeMap<String, String>,
    /// The listener's settings, as running and as last warned about.
    listener: ListenerSettings,
    warned_listener: ListenerSettings,
}

/// What the first snapshot's reflecting upstreams answered, for
/// [`Reloader::started`].
#[derive(Debug)]
pub struct FirstAnswers(Asked);

/// The reason a reload of the refresh interval gives.
const REFRESH: &str = "refresh interval";

/// Which reflecting upstreams a reload asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Every one (SIGHUP, `POST /admin/reload`, the refresh interval).
    All,
    /// Those that have not answered yet; nothing is rebuilt unless one
    /// does (the retry loop).
    Waiting,
    /// None: what they sent last is used (a watched file changed).
    None,
}

/// The settings that take a restart, as text to compare. TLS files and
/// client certificate settings are not among them: reloads apply those.
type ListenerSettings = Vec<(&'static str, String)>;

fn listener_settings(config: &Config) -> ListenerSettings {
    let options = crate::server::ListenerOptions::of(config);
    vec![
        ("listen", config.listen.to_string()),
        (
            "tls",
            if config.tls.is_some() { "on" } else { "off" }.to_owned(),
        ),
        (
            "limits.max_connections",
            options.max_connections.to_string(),
        ),
        (
            "limits.max_header_bytes",
            options.max_header_bytes.to_string(),
        ),
        ("limits.max_headers", options.max_headers.to_string()),
        ("timeouts.idle", format!("{:?}", options.idle_timeout)),
        ("timeouts.shutdown", format!("{:?}", options.shutdown_grace)),
        ("cors", format!("{:?}", options.cors)),
        ("admin", format!("{:?}", config.admin)),
    ]
}

/// What changed between `running` and `loaded`, as the warning names it:
/// `listen` and `tls` with their values, the rest by name.
fn listener_changes(running: &ListenerSettings, loaded: &ListenerSettings) -> String {
    running
        .iter()
        .zip(loaded)
        .filter(|(was, now)| was.1 != now.1)
        .map(|((name, was), (_, now))| match *name {
            "cors" | "admin" => (*name).to_owned(),
            // Also checked on each request against the loaded config,
            // which the reload changed at once; only the HTTP parsers'
            // own bounds, set per listener, wait.
            "limits.max_header_bytes" | "limits.max_headers" => format!(
                "{name} {was} -> {now} (for the HTTP parsers' own bound; requests are checked against it now)"
            ),
            _ => format!("{name} {was} -> {now}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The state of the descriptors, as the admin listener shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Every reflecting upstream has answered at least once.
    pub ready: bool,
    /// Successful loads, the first included.
    pub loads: u64,
    /// When the current snapshot was loaded (seconds since the epoch).
    pub loaded_at: Option<u64>,
    /// Why the last reload failed, when it did; cleared by a success.
    pub last_error: Option<String>,
    /// A version (hash) of the descriptors of each reflecting upstream,
    /// and of the whole pool (`all`).
    pub versions: BTreeMap<String, String>,
    /// Reflecting upstreams that have not answered yet.
    pub waiting_for: Vec<String>,
    /// Reflecting upstreams that did not answer the last time they were
    /// asked: their routes are from what they sent before.
    pub stale: Vec<String>,
    /// Why each upstream in `waiting_for` or `stale` did not answer, the
    /// last time it was asked.
    pub reflection_errors: BTreeMap<String, String>,
    /// Services reflecting upstreams list but would not describe (served
    /// without them): `upstream: service: code: message`.
    pub skipped_services: Vec<String>,
    /// Services that upstreams describe differently.
    pub conflicts: Vec<String>,
    /// Files of reflecting upstreams served under another name (another
    /// upstream has a different file of the same name).
    pub renamed: Vec<String>,
    /// Routes that conflict (the first declared is served).
    pub route_conflicts: Vec<String>,
    /// Routes in the current snapshot.
    pub routes: usize,
}

/// A reload that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config cannot be read.
    #[error("{0}")]
    Config(String),
    /// The snapshot cannot be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The snapshot would serve no routes where routes are served.
    #[error(
        "the new config and descriptors have no routes, where {0} are served (a descriptor file read while half-written?); the current routes stay. To serve none, restart with them"
    )]
    NoRoutes(usize),
}

impl Reloader {
    /// A reloader for `gateway`, reading its config from `source`.
    pub fn new(gateway: Arc<Gateway>, source: ConfigSource) -> Arc<Reloader> {
        Arc::new(Reloader {
            gateway,
            source,
            running: tokio::sync::Mutex::new(Cache::default()),
            status: Mutex::new(Status::default()),
            refresh: tokio::sync::watch::Sender::new(None),
            files: tokio::sync::watch::Sender::new(Vec::new()),
            listener_tls: OnceLock::new(),
        })
    }

    /// Makes reloads read the listener's TLS files again into `tls` (once;
    /// later calls are ignored).
    pub(crate) fn reload_listener_tls(&self, tls: Arc<ServerTls>) {
        let _ = self.listener_tls.set(tls);
    }

    /// The first snapshot, for `config`: the gateway does not exist yet.
    /// Reflecting upstreams that do not answer are left out (and retried
    /// once the gateway runs).
    pub async fn first_snapshot(
        config: &Config,
    ) -> Result<(Snapshot, FirstAnswers), SnapshotError> {
        // A backend that accepts connections and never answers must not
        // hold the listener closed for the whole reflection timeout: what
        // has not answered by then is asked again by the retry loop.
        let wait = config.reflection.timeout.min(STARTUP_WAIT);
        let mut asked = reflect(config, None, &config.sources().reflecting, wait).await;
        for (name, err) in &asked.failed {
            tracing::warn!(upstream = %name, error = %err, "Server reflection failed; its routes come when it answers");
        }
        for reflected in &asked.reflected {
            warn_skipped(reflected);
        }
        let mut sources = config.sources();
        sources.reflected = asked.reflected.clone();
        let asking = std::mem::take(&mut asked.upstreams);
        let snapshot = build(config.clone(), sources, None, asking).await?;
        Ok((snapshot, FirstAnswers(asked)))
    }

    /// Records what the first snapshot was built from.
    pub fn started(&self, config: &Config, first: FirstAnswers) {
        let snapshot = self.gateway.snapshot();
        if let Ok(mut cache) = self.running.try_lock() {
            let FirstAnswers(asked) = first;
            cache.listener = listener_settings(config);
            cache.reflected = asked
                .reflected
                .into_iter()
                .map(|r| (r.upstream.clone(), r))
                .collect();
            // `first_snapshot` warned about each.
            cache.warned = asked.failed.iter().cloned().collect();
            self.note_failures(&asked.failed);
            let waiting = waiting_for(config, &cache);
            self.settle(config, &snapshot, waiting, Vec::new());
            self.status.lock().skipped_services = skipped_services(&cache);
        }
    }

    /// Records why upstreams did not answer server reflection.
    fn note_failures(&self, failed: &[(String, String)]) {
        let mut status = self.status.lock();
        for (name, err) in failed {
            status.reflection_errors.insert(name.clone(), err.clone());
        }
    }

    /// Reloads now, asking every reflecting upstream; `why` is logged.
    pub async fn reload(&self, why: &str) -> Result<Status, ReloadError> {
        self.reload_asking(why, Ask::All).await
    }

    /// Reloads, asking the reflecting upstreams `ask` says.
    pub async fn reload_asking(&self, why: &str, ask: Ask) -> Result<Status, ReloadError> {
        let mut cache = self.running.lock().await;
        let result = self.reload_locked(&mut cache, why, ask).await;
        if let Err(err) = &result {
            tracing::warn!(reason = why, error = %err, "Reload failed; serving on with what was loaded before");
            self.status.lock().last_error = Some(err.to_string());
        }
        result.map(|()| self.status())
    }

    async fn reload_locked(
        &self,
        cache: &mut Cache,
        why: &str,
        ask: Ask,
    ) -> Result<(), ReloadError> {
        let config = (self.source)().map_err(ReloadError::Config)?;
        let previous = self.gateway.snapshot();
        let reflecting = config.sources().reflecting;
        let asking: Vec<String> = match ask {
            Ask::All => reflecting.clone(),
            Ask::Waiting => waiting_for(&config, cache),
            Ask::None => Vec::new(),
        };
        let mut asked = reflect(&config, Some(&previous), &asking, config.reflection.timeout).await;
        let asking = std::mem::take(&mut asked.upstreams);
        self.note_failures(&asked.failed);
        let mut stale = Vec::new();
        for (name, err) in &asked.failed {
            if cache.reflected.contains_key(name) {
                tracing::warn!(upstream = %name, error = %err, "Server reflection failed; keeping its last descriptors");
                stale.push(name.clone());
            } else if cache.warned.get(name) != Some(err) {
                // New, or failing another way than last warned about.
                tracing::warn!(upstream = %name, error = %err, "Server reflection failed; its routes come when it answers");
                cache.warned.insert(name.clone(), err.clone());
            } else {
                tracing::debug!(upstream = %name, error = %err, "Still no answer to server reflection");
            }
        }
        if ask == Ask::Waiting && asked.reflected.is_empty() {
            // Nobody new answered: nothing to rebuild.
            return Ok(());
        }
        // Answers become an upstream's last descriptors only with a
        // snapshot built from them: kept after a failed build, they would
        // fail every later reload while that upstream is down.
        let last_good = cache.reflected.clone();
        for reflected in asked.reflected {
            if cache.warned.remove(&reflected.upstream).is_some() {
                tracing::info!(upstream = %reflected.upstream, "Upstream answered server reflection");
            }
            let before = cache.reflected.get(&reflected.upstream);
            if before.is_none_or(|before| before.skipped != reflected.skipped) {
                warn_skipped(&reflected);
            }
            cache
                .reflected
                .insert(reflected.upstream.clone(), reflected);
        }
        // Upstreams no longer in the config are forgotten.
        cache
            .reflected
            .retain(|name, _| config.upstreams.contains_key(name));
        let mut sources = config.sources();
        sources.reflected = sources
            .reflecting
            .iter()
            .filter_map(|name| cache.reflected.get(name).cloned())
            .collect();
        let waiting = waiting_for(&config, cache);
        // Read before anything changes, put in place with the snapshot: a
        // reload that fails leaves both as they were.
        let staged = match self.stage_listener_tls(&config) {
            Ok(tls) => build(config.clone(), sources, Some(previous.clone()), asking)
                .await
                .map(|snapshot| (tls, snapshot))
                .map_err(ReloadError::from),
            Err(err) => Err(err),
        };
        let (tls, snapshot) = match staged {
            Ok(staged) => staged,
            Err(err) => {
                cache.reflected = last_good;
                return Err(err);
            }
        };
        let mut changed = snapshot.fleet.versions.len() != previous.fleet.versions.len();
        for (source, version) in &snapshot.fleet.versions {
            let before = previous.fleet.versions.iter().find(|(s, _)| s == source);
            if before.is_none_or(|(_, v)| v != version) {
                tracing::info!(source, version, "Descriptors changed");
                changed = true;
            }
        }
        let routes = snapshot.routes.routes().len();
        let before = previous.routes.routes().len();
        if routes == 0 && before > 0 {
            cache.reflected = last_good;
            return Err(ReloadError::NoRoutes(before));
        }
        let dropped = dropped_services(&previous, &snapshot);
        if !dropped.is_empty() {
            tracing::warn!(reason = why, services = %dropped.join(", "), "Reload drops the routes of services");
        }
        self.gateway.swap(snapshot);
        // Said of a config that loaded: a refused one changes nothing, and
        // must not use up the warning its fixed successor needs.
        let listener = listener_settings(&config);
        if listener == cache.listener {
            // Back to what runs: a change made again is told again.
            cache.warned_listener = listener;
        } else if listener != cache.warned_listener {
            let changed = listener_changes(&cache.listener, &listener);
            tracing::warn!(
                %changed,
                "The listener's settings changed; they take effect on restart"
            );
            cache.warned_listener = listener;
        }
        if let Some((running, staged)) = tls {
            running.commit(staged);
            tracing::info!(reason = why, "Listener TLS files reloaded");
        }
        // A refresh that found nothing new is routine: not an info line
        // every interval.
        if changed || why != REFRESH {
            tracing::info!(reason = why, routes, "Reloaded");
        } else {
            tracing::debug!(reason = why, routes, "Reloaded; nothing changed");
        }
        self.settle(&config, &self.gateway.snapshot(), waiting, stale);
        self.status.lock().skipped_services = skipped_services(cache);
        Ok(())
    }

    /// The listener's TLS config read from `config`'s files, when they
    /// changed; `None` as well when the listener runs without TLS or the
    /// config dropped `tls` (which takes a restart).
    fn stage_listener_tls(
        &self,
        config: &Config,
    ) -> Result<Option<(&ServerTls, Staged)>, ReloadError> {
        let (Some(running), Some(tls)) = (self.listener_tls.get(), &config.tls) else {
            // TLS turned on for a cleartext listener takes a restart; its
            // files are still read now, so that a config the restart would
            // refuse is refused here too, not told to take effect then.
            if let Some(tls) = &config.tls {
                ServerTls::load(tls).map_err(SnapshotError::ListenerTls)?;
            }
            return Ok(None);
        };
        let staged = running.stage(tls).map_err(SnapshotError::ListenerTls)?;
        Ok(staged.map(|staged| (running.as_ref(), staged)))
    }

    /// Updates readiness, the status and what the background tasks follow
    /// after a snapshot went in.
    fn settle(
        &self,
        config: &Config,
        snapshot: &Snapshot,
        waiting: Vec<String>,
        stale: Vec<String>,
    ) {
        let ready = waiting.is_empty();
        self.gateway.set_ready(ready);
        self.refresh.send_if_modified(|refresh| {
            let changed = *refresh != config.reflection.refresh;
            *refresh = config.reflection.refresh;
            changed
        });
        let files = config.watched_files();
        self.files.send_if_modified(|watched| {
            let changed = *watched != files;
            *watched = files;
            changed
        });
        let mut status = self.status.lock();
        status.ready = ready;
        status.loads += 1;
        status.loaded_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        status.last_error = None;
        status.versions = snapshot.fleet.versions.iter().cloned().collect();
        status
            .reflection_errors
            .retain(|name, _| waiting.contains(name) || stale.contains(name));
        status.waiting_for = waiting;
        status.stale = stale;
        status.conflicts = snapshot.fleet.conflicts.clone();
        status.renamed = snapshot.fleet.renamed.clone();
        status.route_conflicts = snapshot
            .routes
            .conflicts()
            .iter()
            .map(ToString::to_string)
            .collect();
        status.routes = snapshot.routes.routes().len();
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.lock().clone()
    }

    /// Retries, with backoff, while a reflecting upstream has not answered.
    pub async fn retry_missing(self: Arc<Self>) {
        let mut wait = Duration::from_millis(500);
        loop {
            tokio::time::sleep(wait).await;
            if self.status.lock().waiting_for.is_empty() {
                wait = Duration::from_millis(500);
                // Checked again later: a reload may add a new upstream.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let waiting = self.status.lock().waiting_for.join(", ");
            tracing::debug!(
                upstreams = waiting,
                "Asking upstreams that have not answered yet"
            );
            let _ = self
                .reload_asking("an upstream answered at last", Ask::Waiting)
                .await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    /// Reloads every `reflection.refresh` of the config last loaded (a
    /// reload that changes the interval restarts the count).
    pub async fn refresh(self: Arc<Self>) {
        let mut interval = self.refresh.subscribe();
        loop {
            let every = *interval.borrow_and_update();
            let Some(every) = every else {
                if interval.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep(every) => {
                    let _ = self.reload(REFRESH).await;
                }
                changed = interval.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Warns of the services `reflected` lists but would not describe.
fn warn_skipped(reflected: &Reflected) {
    for skipped in &reflected.skipped {
        tracing::warn!(upstream = %reflected.upstream, service = %skipped, "An upstream lists a service it does not describe by server reflection; serving its other services");
    }
}

/// [`Status::skipped_services`] of what reflecting upstreams sent last.
fn skipped_services(cache: &Cache) -> Vec<String> {
    cache
        .reflected
        .values()
        .flat_map(|r| {
            r.skipped
                .iter()
                .map(move |s| format!("{}: {s}", r.upstream))
        })
        .collect()
}

/// Reflecting upstreams in `config` that have never answered.
fn waiting_for(config: &Config, cache: &Cache) -> Vec<String> {
    config
        .sources()
        .reflecting
        .into_iter()
        .filter(|name| !cache.reflected.contains_key(name))
        .collect()
}

/// Builds a snapshot on the blocking pool: compiling `.proto` files and
/// building routes is work the request path must not wait behind.
/// The services with routes in `before` and none in `after`.
fn dropped_services(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let service = |route: &crate::route::Route| {
        let name = &*route.rpc.name;
        name.split_once('/')
            .map_or(name, |(service, _)| service)
            .to_owned()
    };
    let kept: std::collections::HashSet<String> =
        after.routes.routes().iter().map(service).collect();
    let mut dropped: Vec<String> = before
        .routes
        .routes()
        .iter()
        .map(service)
        .filter(|s| !kept.contains(s))
        .collect();
    dropped.sort();
    dropped.dedup();
    dropped
}

/// Builds a snapshot off the runtime's workers; `asking` are the
/// upstreams that were just asked for their descriptors, taken over
/// rather than made again (which would connect to each a second time).
async fn build(
    config: Config,
    sources: crate::descriptor::Sources,
    previous: Option<Arc<Snapshot>>,
    asking: Vec<Upstream>,
) -> Result<Snapshot, SnapshotError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // Channels are set up on the runtime.
        let _runtime = handle.enter();
        Snapshot::build_after(&config, sources, previous.as_deref(), &asking)
    })
    .await
    .unwrap_or_else(|e| Err(SnapshotError::Stopped(e.to_string())))
}
