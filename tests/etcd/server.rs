//! A throwaway single-member etcd for the etcd tests: free loopback
//! ports, a fresh data dir, a bounded wait until it serves, and a kill (of
//! the PID it spawned) on drop, panics included. It can also be killed and
//! started again on the same ports and data dir.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// The `etcd` binary: `$ETCD_BIN`, else `etcd` on `PATH`, else
/// `/usr/bin/etcd`. Panics (never skips) when there is none.
fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ETCD_BIN={} is not a file; point it at an etcd 3.4 server binary",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the etcd interop test needs an `etcd` server binary, found none on PATH or at /usr/bin/etcd. \
                 Install it with `apt-get install -y etcd-server` (Debian, etcd 3.4) or set ETCD_BIN=/path/to/etcd"
            )
        })
}

/// Two distinct free loopback ports: bound together (so they differ),
/// then released for etcd to take.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A single-member etcd on loopback, killed when dropped.
pub(crate) struct Etcd {
    /// None while stopped.
    child: Option<Child>,
    dir: crate::support::TempDir,
    binary: PathBuf,
    ports: (u16, u16),
    /// `http://127.0.0.1:<client port>`.
    pub(crate) url: String,
}

impl Etcd {
    /// Starts etcd and waits (bounded) until its KV API answers. Retries
    /// with other ports if the chosen ones were taken in between.
    pub(crate) async fn start(client: &reqwest::Client) -> Etcd {
        let binary = etcd_binary();
        let mut last_failure = String::new();
        for _ in 0..3 {
            let (client_port, peer_port) = free_ports();
            let dir = crate::support::tempdir();
            let mut etcd = Etcd::spawn(&binary, dir, client_port, peer_port);
            match etcd.wait_ready(client).await {
                Ok(()) => return etcd,
                Err(why) => last_failure = why, // dropped (killed) here
            }
        }
        panic!(
            "etcd ({}) did not become ready: {last_failure}",
            binary.display()
        );
    }

    fn spawn(
        binary: &Path,
        dir: crate::support::TempDir,
        client_port: u16,
        peer_port: u16,
    ) -> Etcd {
        let child = Etcd::spawn_child(binary, &dir, client_port, peer_port);
        Etcd {
            child: Some(child),
            dir,
            binary: binary.to_owned(),
            ports: (client_port, peer_port),
            url: format!("http://127.0.0.1:{client_port}"),
        }
    }

    fn spawn_child(binary: &Path, dir: &Path, client_port: u16, peer_port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("etcd.log"))
            .expect("open etcd log");
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(binary);
        command
            .arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // etcd reads every ETCD_* variable as a flag: keep ours (ETCD_BIN)
        // and any stray ones from configuring it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
    }

    /// Kills etcd (the PID it spawned) and waits until it is gone; its
    /// data dir stays.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill signals exactly the PID we spawned.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped etcd again on the same ports and data dir and
    /// waits (bounded) until it serves.
    #[allow(dead_code, reason = "not every etcd test restarts etcd")]
    pub(crate) async fn start_again(&mut self, client: &reqwest::Client) {
        assert!(self.child.is_none(), "etcd is still running");
        let (client_port, peer_port) = self.ports;
        let child = Etcd::spawn_child(&self.binary, &self.dir, client_port, peer_port);
        self.child = Some(child);
        if let Err(why) = self.wait_ready(client).await {
            panic!("etcd did not come back on port {client_port}: {why}");
        }
    }

    /// Polls a read through etcd's own gateway until it answers 200
    /// (member elected, gRPC and gateway up), for at most 20 s.
    async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child_exited = None;
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else {
                return Err("etcd is stopped".to_owned());
            };
            if let Ok(Some(status)) = child.try_wait() {
                child_exited = Some(format!("etcd exited early ({status})"));
                break;
            }
            let answer = client
                .post(format!("{}/v3/kv/range", self.url))
                .body(r#"{"key":"AA=="}"#)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{}; log tail:\n{}",
            child_exited.unwrap_or_else(|| "not ready after 20 s".to_owned()),
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let Ok(file) = std::fs::File::open(self.dir.join("etcd.log")) else {
            return "(no log)".to_owned();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
