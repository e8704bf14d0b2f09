//! Reloading when a watched file changes on disk.
//!
//! The config, descriptor and TLS files are watched through their
//! folders; after an event, a file counts as changed when it reads
//! differently from when last looked at.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::{Ask, Reloader};

impl Reloader {
    /// Reloads when a file of the config last loaded changes on disk
    /// (debounced); the set of files follows the config. The watcher is
    /// returned; dropping it stops watching.
    ///
    /// Folders are watched, not files: editors replace a file by renaming
    /// a new one over it, and Kubernetes swaps a symlink (`..data`) in the
    /// folder, both of which a watch on the old file would miss. Any event
    /// in a watched folder makes the files be looked at again; a reload
    /// follows only when one of them now reads differently (another
    /// target, size or modification time).
    pub fn watch(self: &Arc<Self>) -> Result<JoinHandle<()>, notify::Error> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.try_send(());
                }
            })?;
        let mut files = self.files.subscribe();
        let mut watching = Watching::default();
        watching.follow(&mut watcher, &files.borrow_and_update());
        let reloader = Arc::clone(self);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = rx.recv() => {
                        if event.is_none() {
                            return;
                        }
                        // Let a burst of writes settle.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        while rx.try_recv().is_ok() {}
                        if watching.changed(&files.borrow()) {
                            let _ = reloader.reload_asking("a watched file changed", Ask::None).await;
                        }
                    }
                    changed = files.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let list = files.borrow_and_update().clone();
                        watching.follow(&mut watcher, &list);
                    }
                }
            }
        }))
    }
}

/// The folders watched and how the files in them read.
#[derive(Default)]
struct Watching {
    folders: Vec<PathBuf>,
    seen: Vec<Option<Fingerprint>>,
}

/// How a file reads: where its symlinks lead, its size and modification
/// time.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    target: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl Fingerprint {
    fn of(file: &Path) -> Option<Fingerprint> {
        let target = std::fs::canonicalize(file).ok()?;
        let meta = std::fs::metadata(&target).ok()?;
        Some(Fingerprint {
            target,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

impl Watching {
    /// Watches the folders of `files` (and of where their symlinks lead),
    /// and no others.
    fn follow(&mut self, watcher: &mut notify::RecommendedWatcher, files: &[PathBuf]) {
        use notify::Watcher as _;
        let mut wanted: Vec<PathBuf> = files
            .iter()
            .flat_map(|file| {
                let named = file.parent().map(Path::to_path_buf);
                let real = std::fs::canonicalize(file)
                    .ok()
                    .and_then(|real| real.parent().map(Path::to_path_buf));
                named.into_iter().chain(real)
            })
            .map(|folder| {
                if folder.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    folder
                }
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        for gone in self.folders.iter().filter(|f| !wanted.contains(f)) {
            let _ = watcher.unwatch(gone);
        }
        for new in wanted.iter().filter(|f| !self.folders.contains(f)) {
            if let Err(err) = watcher.watch(new, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %new.display(), error = %err, "Cannot watch a folder of config or descriptor files; reload with SIGHUP or POST /admin/reload");
            }
        }
        self.folders = wanted;
        self.seen = files.iter().map(|f| Fingerprint::of(f)).collect();
    }

    /// Whether one of `files` reads differently from when last looked at.
    fn changed(&mut self, files: &[PathBuf]) -> bool {
        let now: Vec<Option<Fingerprint>> = files.iter().map(|f| Fingerprint::of(f)).collect();
        let changed = now != self.seen;
        self.seen = now;
        changed
    }
}
