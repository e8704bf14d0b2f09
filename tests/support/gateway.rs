//! The gateway under test: in process (library) or as the built binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protogate::{Config, UpstreamConfig};

/// A gateway running in this process.
#[derive(Debug)]
pub struct TestGateway {
    pub server: protogate::Server,
    pub base: String,
}

impl TestGateway {
    /// Starts the gateway for `config` (its `listen` is replaced by a free
    /// loopback port); `base` is `https://` when `config.tls` is set.
    pub async fn start(mut config: Config) -> TestGateway {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let server = protogate::start(&config).await.expect("gateway starts");
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", server.local_addr());
        TestGateway { server, base }
    }

    /// The gateway for one descriptor set and one upstream.
    pub async fn for_set(set: &Bytes, upstream: &str) -> TestGateway {
        TestGateway::start(config(set, upstream)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `GET /admin/status` on its admin listener, as JSON.
    pub async fn admin_status(&self) -> serde_json::Value {
        self.admin_get("/admin/status").await.json().await.unwrap()
    }

    /// `GET /metrics` on its admin listener, as text.
    pub async fn metrics_text(&self) -> String {
        self.admin_get("/metrics").await.text().await.unwrap()
    }

    async fn admin_get(&self, path: &str) -> reqwest::Response {
        let admin = self.server.admin_addr().expect("an admin listener");
        super::http1()
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap()
    }
}

/// An echo backend for the kitchen API and the gateway in front of it,
/// its config changed by `tweak` first.
pub async fn kitchen(tweak: impl FnOnce(&mut Config)) -> (super::EchoBackend, TestGateway) {
    let set = super::kitchen();
    let backend = super::EchoBackend::start(super::pool(&set)).await;
    let mut config = config(&set, &backend.url());
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

/// A config with one embedded descriptor set and a default upstream.
pub fn config(set: &Bytes, upstream: &str) -> Config {
    let mut config = Config {
        embedded_descriptors: vec![set.clone()],
        ..Config::default()
    };
    config
        .upstreams
        .insert("default".to_owned(), UpstreamConfig::new(upstream));
    config
}

/// The built `protogate` binary.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_protogate"))
}

/// The `protogate` binary running `serve`.
#[derive(Debug)]
pub struct BinGateway {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
}

impl BinGateway {
    /// Runs `protogate <args> --listen 127.0.0.1:0` and waits for the
    /// address it logs.
    pub fn spawn(args: &[&str]) -> BinGateway {
        let mut child = binary()
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn protogate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line.split("addr=").nth(1) {
                        let addr = addr
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = tx.send(Ok(addr));
                        sent = true;
                    } else if line.starts_with("error") {
                        let _ = tx.send(Err(line.clone()));
                        sent = true;
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(addr)) => break addr,
                Ok(Err(line)) => panic!("protogate failed to start: {line}"),
                Err(_) if Instant::now() > deadline => panic!("protogate did not log its address"),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("protogate exited early: {status}");
                    }
                }
            }
        };
        let addr: SocketAddr = addr.parse().expect("logged address parses");
        BinGateway {
            child,
            addr,
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BinGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
