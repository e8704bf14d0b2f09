//! protogate next to etcd's own gateway: a single-member etcd on free
//! loopback ports, one key written, then the same serializable
//! `POST /v3/kv/range` to etcd's gateway (grpc-gateway, in etcd's
//! process), to protogate in front of that etcd (loaded with etcd's KV
//! API and the HTTP bindings of etcd's gateway), and as a gRPC `Range`
//! straight to etcd. etcd 3.4 serves its gateway over HTTP/1.1 only, so
//! both gateways are driven over HTTP/1.1.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{Method, StatusCode};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;
use tokio::time::Instant;

use super::child::{Gateway, TempDir};
use super::grpc::GrpcRequest;
use super::http::{RestRequest, send_once};
use super::report::{Label, Report, Row};
use super::{BenchError, Options, Via, Watched};

/// etcd's KV API with its gateway's HTTP bindings (`tests/protos/etcd`).
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench_etcd.bin"));

const SCENARIO: &str = "etcd-range";
const KEY: &[u8] = b"bench/key";
/// The value read back: 100 bytes.
const VALUE: &[u8] = &[b'v'; 100];

/// The `etcd` binary: `$ETCD_BIN`, else `etcd` on `PATH`; why not, when
/// there is none.
pub(super) fn find_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ETCD_BIN={} is not a file", path.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no `etcd` on PATH (Debian: apt-get install etcd-server; or set ETCD_BIN)".to_owned()
        })
}

/// Runs the comparison at each concurrency level and adds its rows.
pub(super) async fn compare(
    binary: &Path,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(&Row),
) -> Result<(), BenchError> {
    let etcd = Etcd::start(binary).await?;
    let body = json!({"key": B64.encode(KEY), "serializable": true});
    let range = RestRequest {
        method: Method::POST,
        target: "/v3/kv/range".to_owned(),
        body: Bytes::from(body.to_string()),
        lines: None,
    };
    let grpc = GrpcRequest {
        path: "/etcdserverpb.KV/Range".to_owned(),
        message: encode_range(&body)?,
        messages: None,
    };
    // The JSON options of etcd's gateway: proto field names, unknown
    // fields ignored.
    let config = format!(
        "descriptor_sets: [etcd.pb]\n\
         json:\n  use_proto_names: true\n  ignore_unknown_fields: true\n\
         upstreams:\n  etcd:\n    url: {}\n",
        etcd.url()
    );
    let gateway = Gateway::spawn(
        &options.gateway_binary,
        &options.gateway_args(),
        &config,
        &[("etcd.pb", DESCRIPTOR_SET)],
    )
    .await?;
    check_same_answer(&etcd, &gateway, &range).await?;
    report.scenarios.push(Label {
        name: SCENARIO.to_owned(),
        description: format!(
            "POST /v3/kv/range {body}, serializable read of one {}-byte value; \
             etcd cpu = etcd's whole process (server, and its gateway when used)",
            VALUE.len()
        ),
    });
    let upstream = Some(etcd.pid());
    let etcd_url = etcd.url();
    for &concurrency in &options.concurrency {
        let runs = [
            (
                "protogate",
                Via::Http1(gateway.addr(), &range),
                Watched {
                    gateway: Some(gateway.pid()),
                    upstream,
                },
            ),
            (
                "etcd-gateway",
                Via::Http1(etcd.addr, &range),
                Watched {
                    gateway: None,
                    upstream,
                },
            ),
            (
                "direct",
                Via::Grpc(&etcd_url, &grpc),
                Watched {
                    gateway: None,
                    upstream,
                },
            ),
        ];
        for (target, via, watched) in runs {
            let measured = via.load(concurrency, options, watched).await?;
            let row = Row::new(SCENARIO, target, via.protocol(), concurrency, &measured);
            progress(&row);
            report.results.push(row);
        }
    }
    Ok(())
}

/// The Range request as gRPC: the same JSON, encoded with etcd's API.
fn encode_range(body: &serde_json::Value) -> Result<Bytes, BenchError> {
    let bad = |why: String| BenchError::Setup(format!("etcd Range request: {why}"));
    let pool = DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| bad(e.to_string()))?;
    let input = pool
        .get_message_by_name("etcdserverpb.RangeRequest")
        .ok_or_else(|| bad("no RangeRequest in the descriptors".to_owned()))?;
    let message =
        DynamicMessage::deserialize(input, body.clone()).map_err(|e| bad(e.to_string()))?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Both gateways must answer 200 with the key before they are compared.
async fn check_same_answer(
    etcd: &Etcd,
    gateway: &Gateway,
    range: &RestRequest,
) -> Result<(), BenchError> {
    let key = B64.encode(KEY);
    for (who, addr) in [("etcd's gateway", etcd.addr), ("protogate", gateway.addr())] {
        let (status, body) = send_once(addr, range).await.map_err(BenchError::Setup)?;
        let text = String::from_utf8_lossy(&body);
        if status != StatusCode::OK || !text.contains(&key) {
            return Err(BenchError::Setup(format!(
                "{who} does not read the bench key back: {status} {text}"
            )));
        }
    }
    Ok(())
}

/// A throwaway single-member etcd, killed (by its PID) when dropped.
#[derive(Debug)]
struct Etcd {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Etcd {
    /// Starts etcd on free loopback ports with a fresh data folder, waits
    /// (bounded) until its gateway answers, and writes the bench key.
    async fn start(binary: &Path) -> Result<Etcd, BenchError> {
        let dir = TempDir::new()?;
        let [client, peer] = free_ports()?;
        let client_url = format!("http://{client}");
        let peer_url = format!("http://{peer}");
        let log = std::fs::File::create(dir.0.join("etcd.log"))
            .map_err(|e| BenchError::Setup(format!("cannot create etcd's log: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| BenchError::Setup(format!("cannot share etcd's log: {e}")))?;
        let mut command = Command::new(binary);
        command
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.0.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // etcd reads every ETCD_* variable as a flag.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        let child = command
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot run {}: {e}", binary.display())))?;
        let mut etcd = Etcd {
            child,
            addr: client,
            _dir: dir,
        };
        etcd.wait_ready().await?;
        let put = RestRequest {
            method: Method::POST,
            target: "/v3/kv/put".to_owned(),
            body: Bytes::from(
                json!({"key": B64.encode(KEY), "value": B64.encode(VALUE)}).to_string(),
            ),
            lines: None,
        };
        match send_once(etcd.addr, &put).await {
            Ok((StatusCode::OK, _)) => Ok(etcd),
            Ok((status, body)) => Err(BenchError::Setup(format!(
                "etcd refused the bench key: {status} {}",
                String::from_utf8_lossy(&body)
            ))),
            Err(err) => Err(BenchError::Setup(format!("etcd: {err}"))),
        }
    }

    /// Polls a read through etcd's gateway until it answers 200, for at
    /// most 20 s.
    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        let probe = RestRequest {
            method: Method::POST,
            target: "/v3/kv/range".to_owned(),
            body: Bytes::from_static(br#"{"key":"AA=="}"#),
            lines: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Setup(format!(
                    "etcd exited at start ({status})"
                )));
            }
            let answer = tokio::time::timeout(Duration::from_secs(2), send_once(self.addr, &probe));
            if let Ok(Ok((StatusCode::OK, _))) = answer.await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Setup(
            "etcd did not answer within 20 s".to_owned(),
        ))
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Child::kill signals exactly the PID spawned above.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct free loopback ports: bound together (so they differ),
/// then released for etcd to take.
fn free_ports() -> Result<[SocketAddr; 2], BenchError> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|e| BenchError::Setup(format!("no free loopback port: {e}")))
    };
    let (a, _held_a) = bind()?;
    let (b, _held_b) = bind()?;
    Ok([a, b])
}
