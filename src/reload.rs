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
//! What the listener itself was set up with (`listen`, connection and
//! header limits, `cors`, `admin`) stays as it was until a restart; a
//! reload that finds it changed says so (once per change).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Config;
use crate::descriptor::Reflected;
use crate::descriptor::reflection;
use crate::server::Gateway;
use crate::snapshot::{Snapshot, SnapshotError};
use crate::upstream::{ChannelSettings, Upstream};

/// Produces the config to load: the file read again, flags applied.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Longest wait between attempts to reach an upstream that never answered.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Reloads the gateway's snapshot.
pub struct Reloader {
    gateway: Arc<Gateway>,
    source: ConfigSource,
    /// Held while a reload runs, so reloads never overlap.
    running: tokio::sync::Mutex<Cache>,
    status: Mutex<Status>,
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
    /// The listener's settings, as running and as last warned about.
    listener: String,
    warned_listener: String,
}

/// The settings that take a restart, as text to compare.
fn listener_settings(config: &Config) -> String {
    format!(
        "{} {:?} {:?}",
        config.listen,
        crate::server::ListenerOptions::of(config),
        config.admin
    )
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
    /// Services that upstreams describe differently.
    pub conflicts: Vec<String>,
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
}

impl Reloader {
    /// A reloader for `gateway`, reading its config from `source`.
    pub fn new(gateway: Arc<Gateway>, source: ConfigSource) -> Arc<Reloader> {
        Arc::new(Reloader {
            gateway,
            source,
            running: tokio::sync::Mutex::new(Cache::default()),
            status: Mutex::new(Status::default()),
        })
    }

    /// The first snapshot, for `config`: the gateway does not exist yet.
    /// Reflecting upstreams that do not answer are left out (and retried
    /// once the gateway runs).
    pub async fn first_snapshot(
        config: &Config,
    ) -> Result<(Snapshot, Vec<Reflected>), SnapshotError> {
        let reflected = reflect(config, None, &BTreeMap::new()).await;
        let mut sources = config.sources();
        sources.reflected = reflected.clone();
        let snapshot = build(config.clone(), sources, None).await?;
        Ok((snapshot, reflected))
    }

    /// Records what the first snapshot was built from.
    pub fn started(&self, config: &Config, reflected: Vec<Reflected>) {
        let snapshot = self.gateway.snapshot();
        if let Ok(mut cache) = self.running.try_lock() {
            cache.listener = listener_settings(config);
            cache.reflected = reflected
                .into_iter()
                .map(|r| (r.upstream.clone(), r))
                .collect();
            let waiting = waiting_for(config, &cache);
            self.settle(&snapshot, waiting);
        }
    }

    /// Reloads now; `why` is logged.
    pub async fn reload(&self, why: &str) -> Result<Status, ReloadError> {
        let mut cache = self.running.lock().await;
        let result = self.reload_locked(&mut cache, why).await;
        if let Err(err) = &result {
            tracing::warn!(reason = why, error = %err, "Reload failed; keeping the current routes");
            self.status.lock().last_error = Some(err.to_string());
        }
        result.map(|()| self.status())
    }

    async fn reload_locked(&self, cache: &mut Cache, why: &str) -> Result<(), ReloadError> {
        let config = (self.source)().map_err(ReloadError::Config)?;
        let listener = listener_settings(&config);
        if listener != cache.listener && listener != cache.warned_listener {
            tracing::warn!(
                "The listener's settings changed (listen, connection or header limits, cors, admin); they take effect on restart"
            );
            cache.warned_listener = listener;
        }
        let previous = self.gateway.snapshot();
        for reflected in reflect(&config, Some(&previous), &cache.reflected).await {
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
        let snapshot = build(config, sources, Some(previous.clone())).await?;
        for (source, version) in &snapshot.fleet.versions {
            let before = previous.fleet.versions.iter().find(|(s, _)| s == source);
            if before.is_none_or(|(_, v)| v != version) {
                tracing::info!(source, version, "Descriptors changed");
            }
        }
        let routes = snapshot.routes.routes().len();
        self.gateway.swap(snapshot);
        tracing::info!(reason = why, routes, "Reloaded");
        self.settle(&self.gateway.snapshot(), waiting);
        Ok(())
    }

    /// Updates readiness and the status after a snapshot went in.
    fn settle(&self, snapshot: &Snapshot, waiting: Vec<String>) {
        let ready = waiting.is_empty();
        self.gateway.set_ready(ready);
        let mut status = self.status.lock();
        status.ready = ready;
        status.loads += 1;
        status.loaded_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        status.last_error = None;
        status.versions = snapshot.fleet.versions.iter().cloned().collect();
        status.waiting_for = waiting;
        status.conflicts = snapshot.fleet.conflicts.clone();
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
            let _ = self.reload("an upstream has not answered yet").await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    /// Reloads every `interval`.
    pub async fn refresh_every(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let _ = self.reload("refresh interval").await;
        }
    }

    /// Reloads when one of `files` changes on disk (debounced). The
    /// watcher is returned; dropping it stops watching.
    pub fn watch(
        self: &Arc<Self>,
        files: Vec<PathBuf>,
    ) -> Result<notify::RecommendedWatcher, notify::Error> {
        use notify::Watcher as _;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let watched: Vec<PathBuf> = files
            .iter()
            .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
            .collect();
        let names = watched.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                if event.paths.iter().any(|p| names.iter().any(|n| n == p)) {
                    let _ = tx.try_send(());
                }
            })?;
        // Folders, not files: editors replace a file by renaming a new one
        // over it, which a watch on the old file would miss.
        let mut folders: Vec<PathBuf> = watched
            .iter()
            .filter_map(|f| f.parent().map(PathBuf::from))
            .collect();
        folders.sort();
        folders.dedup();
        for folder in &folders {
            watcher.watch(folder, notify::RecursiveMode::NonRecursive)?;
        }
        let reloader = Arc::clone(self);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Let a burst of writes settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                let _ = reloader.reload("a watched file changed").await;
            }
        });
        Ok(watcher)
    }
}

/// `config`'s sources with what its reflecting upstreams send now (those
/// that do not answer are left out, with a warning).
pub async fn sources_now(config: &Config) -> crate::descriptor::Sources {
    let mut sources = config.sources();
    sources.reflected = reflect(config, None, &BTreeMap::new()).await;
    sources
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

/// Asks every reflecting upstream of `config` at once; those that do not
/// answer are logged (a warning the first time: `known` holds what each
/// sent before) and left out.
async fn reflect(
    config: &Config,
    previous: Option<&Snapshot>,
    known: &BTreeMap<String, Reflected>,
) -> Vec<Reflected> {
    // The snapshot's settings, so that the upstream's channel (and its
    // connection) is shared; the reflection client sets its own limit on
    // answer size.
    let settings = ChannelSettings::of(config);
    let asks = config.sources().reflecting.into_iter().map(|name| {
        let upstream_config = &config.upstreams[&name];
        let old = previous.and_then(|p| p.upstreams.iter().find(|u| u.name() == name));
        let upstream = Upstream::reuse_or_new(old, &name, upstream_config, &settings);
        let timeout = config.reflection.timeout;
        async move {
            let upstream = match upstream {
                Ok(upstream) => upstream,
                Err(err) => {
                    tracing::warn!(upstream = name, error = %err, "Cannot ask the upstream for its descriptors");
                    return None;
                }
            };
            match reflection::fetch(&name, upstream.channel().clone(), timeout).await {
                Ok(reflected) => Some(reflected),
                Err(err) => {
                    if known.contains_key(&name) {
                        tracing::debug!(upstream = name, error = %err, "Server reflection failed; keeping its last descriptors");
                    } else {
                        tracing::warn!(upstream = name, error = %err, "Server reflection failed; its routes come when it answers");
                    }
                    None
                }
            }
        }
    });
    join_all(asks).await.into_iter().flatten().collect()
}

/// Builds a snapshot on the blocking pool: compiling `.proto` files and
/// building routes is work the request path must not wait behind.
async fn build(
    config: Config,
    sources: crate::descriptor::Sources,
    previous: Option<Arc<Snapshot>>,
) -> Result<Snapshot, SnapshotError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // Channels are set up on the runtime.
        let _runtime = handle.enter();
        Snapshot::build_after(&config, sources, previous.as_deref())
    })
    .await
    .unwrap_or_else(|e| Err(SnapshotError::Stopped(e.to_string())))
}
