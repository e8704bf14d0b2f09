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
    /// target, file, size or modification or change time).
    ///
    /// A watch follows a folder, not its name: a folder renamed away and
    /// another renamed into its place, or removed and made again, would
    /// not be seen. The folders are looked at every few seconds and
    /// watched again when another stands at their name.
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
        let mut look = tokio::time::interval(FOLDER_LOOK);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = look.tick() => {
                        if watching.replaced_folders(&mut watcher)
                            && watching.changed(&files.borrow())
                        {
                            let _ = reloader.reload_asking("a watched folder was replaced", Ask::None).await;
                        }
                    }
                    event = rx.recv() => {
                        if event.is_none() {
                            return;
                        }
                        // Let a burst of writes settle: until the files
                        // have been quiet for a while (a writer that pauses
                        // mid-file is waited for), within a bound.
                        let started = tokio::time::Instant::now();
                        loop {
                            tokio::time::sleep(QUIET).await;
                            let mut more = false;
                            while rx.try_recv().is_ok() {
                                more = true;
                            }
                            if !more || started.elapsed() >= QUIET_AT_MOST {
                                break;
                            }
                        }
                        // A folder removed is noted now, so that one made
                        // again is watched even with the old inode number.
                        watching.replaced_folders(&mut watcher);
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

/// How long the watched files must go without an event before a reload
/// reads them, and how long a stream of events is waited out at most.
const QUIET: Duration = Duration::from_millis(200);
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// How often the watched folders are looked at for a replacement.
const FOLDER_LOOK: Duration = Duration::from_secs(2);

/// The folders watched and how the files in them read.
#[derive(Default)]
struct Watching {
    folders: Vec<PathBuf>,
    /// Which folder each of `folders` was when watched.
    identities: Vec<Option<Identity>>,
    seen: Vec<Option<Fingerprint>>,
}

/// Which file or folder a path names: device, inode and when it was made
/// (a folder removed and made again may get its inode number back), and
/// the time its inode last changed (a write, a rename, `touch -r` and
/// `cp -p` alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
    created: Option<SystemTime>,
    changed: (i64, i64),
}

impl Identity {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt as _;
        Identity {
            device: meta.dev(),
            inode: meta.ino(),
            created: meta.created().ok(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            device: 0,
            inode: 0,
            created: meta.created().ok(),
            changed: (0, 0),
        }
    }

    fn at(path: &Path) -> Option<Identity> {
        std::fs::metadata(path).ok().map(|meta| Identity::of(&meta))
    }
}

/// How a file reads: where its symlinks lead, which file that is, its size
/// and modification time. A file renamed over another with the same size
/// and modification time (`rsync -t`, `cp -p`) is another file.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    target: PathBuf,
    identity: Identity,
    len: u64,
    modified: Option<SystemTime>,
}

impl Fingerprint {
    fn of(file: &Path) -> Option<Fingerprint> {
        let target = std::fs::canonicalize(file).ok()?;
        let meta = std::fs::metadata(&target).ok()?;
        Some(Fingerprint {
            target,
            identity: Identity::of(&meta),
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
            watch(watcher, new);
        }
        self.identities = wanted.iter().map(|f| Identity::at(f)).collect();
        self.folders = wanted;
        self.seen = files.iter().map(|f| Fingerprint::of(f)).collect();
    }

    /// Watches again each folder whose name now names another folder (or
    /// one again, after it was gone); whether there was one.
    fn replaced_folders(&mut self, watcher: &mut notify::RecommendedWatcher) -> bool {
        use notify::Watcher as _;
        let mut replaced = false;
        for (folder, identity) in self.folders.iter().zip(&mut self.identities) {
            let now = Identity::at(folder);
            let same = match (now, *identity) {
                (Some(now), Some(then)) => {
                    (now.device, now.inode, now.created) == (then.device, then.inode, then.created)
                }
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            *identity = now;
            replaced = true;
            // The old watch may be gone with its folder already.
            let _ = watcher.unwatch(folder);
            if now.is_some() {
                tracing::info!(folder = %folder.display(), "A watched folder was replaced; watching the new one");
                watch(watcher, folder);
            }
        }
        replaced
    }

    /// Whether one of `files` reads differently from when last looked at.
    fn changed(&mut self, files: &[PathBuf]) -> bool {
        let now: Vec<Option<Fingerprint>> = files.iter().map(|f| Fingerprint::of(f)).collect();
        let changed = now != self.seen;
        self.seen = now;
        changed
    }
}

fn watch(watcher: &mut notify::RecommendedWatcher, folder: &Path) {
    use notify::Watcher as _;
    if let Err(err) = watcher.watch(folder, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(folder = %folder.display(), error = %err, "Cannot watch a folder of config or descriptor files; reload with SIGHUP or POST /admin/reload");
    }
}
