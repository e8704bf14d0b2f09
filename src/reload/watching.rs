//! Which folders are watched for changed config, descriptor and TLS
//! files, and whether a file reads differently from when last looked at.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folders watched and how the files in them read.
#[derive(Default)]
pub(super) struct Watching {
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
    pub(super) fn follow(&mut self, watcher: &mut notify::RecommendedWatcher, files: &[PathBuf]) {
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
    pub(super) fn changed(&mut self, files: &[PathBuf]) -> bool {
        let now: Vec<Option<Fingerprint>> = files.iter().map(|f| Fingerprint::of(f)).collect();
        let changed = now != self.seen;
        self.seen = now;
        changed
    }
}
