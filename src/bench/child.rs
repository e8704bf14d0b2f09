//! The gateway under load, run as its own process (`protogate serve`),
//! so that its CPU time and memory can be read from `/proc/<pid>` apart
//! from the load generator's and the backend's, which share the bench's
//! process.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::BenchError;

/// Log lines kept to explain a gateway that failed.
const TAIL: usize = 20;

/// A gateway process, killed (by its PID) and its files removed on drop.
#[derive(Debug)]
pub(super) struct Gateway {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// From spawn until it logged its address.
    pub(super) startup: Duration,
}

impl Gateway {
    /// Writes `files` and `config` (YAML; relative paths in it are the
    /// files') to a fresh folder and runs `binary serve --config` on a free
    /// loopback port; waits (bounded) until it logs its address.
    pub(super) async fn spawn(
        binary: &Path,
        args: &[String],
        config: &str,
        files: &[(&str, &[u8])],
    ) -> Result<Gateway, BenchError> {
        let dir = TempDir::new()?;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.0.join(name), bytes)
                .map_err(|e| BenchError::Setup(format!("cannot write {name}: {e}")))
        };
        for (name, bytes) in files {
            write(name, bytes)?;
        }
        write("config.yaml", config.as_bytes())?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(dir.0.join("config.yaml"))
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                BenchError::Setup(format!("cannot run {} serve: {e}", binary.display()))
            })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        if let Some(stderr) = child.stderr.take() {
            let tail = tail.clone();
            // Reads the log to its end, so the gateway never blocks on a
            // full pipe; the first address it logs is where it listens.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = logged_addr(&line).filter(|_| line.contains("Listening")) {
                        let _ = tx.send(addr);
                    }
                    let mut tail = tail.lock();
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let mut gateway = Gateway {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
            tail,
            startup: Duration::ZERO,
        };
        let waited = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        match waited {
            Ok(Some(addr)) => {
                gateway.addr = addr;
                gateway.startup = started.elapsed();
                Ok(gateway)
            }
            Ok(None) | Err(_) => {
                // The reader may still be on the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(BenchError::Setup(format!(
                    "the gateway did not start; its log ends:\n{}",
                    gateway.log_tail()
                )))
            }
        }
    }

    /// Where it listens.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines it logged.
    pub(super) fn log_tail(&self) -> String {
        let tail = self.tail.lock();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Child::kill signals exactly the PID spawned above.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr=` field of a log line.
fn logged_addr(line: &str) -> Option<SocketAddr> {
    line.split("addr=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A folder of the bench's own under the system's temp folder, removed
/// when dropped.
#[derive(Debug)]
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Result<TempDir, BenchError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "protogate-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_log_line() {
        let line = "2026-12-04T23:00:00Z  INFO protogate::server: Listening addr=127.0.0.1:40123 tls=false";
        assert_eq!(logged_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(logged_addr("Listening"), None);
    }
}
