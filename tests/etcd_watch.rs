//! Acceptance test for streaming over REST with a real client nobody here
//! wrote: PyPI's `etcd3gw`, unchanged, watches a key through protogate in
//! front of Debian's etcd and must see the PUT and then the DELETE of that
//! key as they happen.
//!
//! Pieces: a throwaway etcd on free loopback ports (`etcd/server.rs`, as
//! `tests/etcd.rs` uses it); the built `protogate` binary serving our
//! `tests/protos/etcd/rpc.proto` (KV and the bidirectional `Watch` at
//! `POST /v3/watch`) with proto field names, as etcd's own gateway writes
//! them; and `etcd/watch_client.py`, which drives etcd3gw: it writes and
//! reads a marker key for a start revision, opens `client.watch(key)`,
//! puts the key, waits for the PUT event, only then deletes the key, waits
//! for the DELETE event, and cancels. Every request it makes (range, put,
//! deleterange, watch) goes through protogate; it is created with
//! `api_path="/v3/"`, so it never asks `GET /version` (not an etcd gRPC
//! method, so not something protogate serves).
//!
//! What this holds protogate to, as etcd3gw uses the API:
//! - the watch's request body (one JSON object with a `Content-Length`)
//!   ends at once: that half-close must not end the watch;
//! - the watch idles [`QUIET_SECS`] before the put, longer than the
//!   gateway's idle timeout ([`GATEWAY_IDLE`]): an open stream is not idle;
//! - every response message is one HTTP chunk holding one complete
//!   `{"result": ...}\n` line, sent when etcd sends it (etcd3gw parses
//!   each chunk as one JSON document), even though etcd3gw sends
//!   `Accept-Encoding: gzip, deflate`;
//! - when etcd3gw cancels (it shuts its socket down), protogate cancels the
//!   upstream call: etcd's watch stream count returns to zero.
//!
//! The same script runs first against etcd's own gateway as a control, so
//! a failure there points at the script or the environment, not at
//! protogate. Last, a raw HTTP/1.1 watch with etcd3gw's headers checks the
//! chunk framing byte by byte, so that a failure of etcd3gw can be told
//! from a framing fault. Both runs must exit 0 within [`CLIENT_BOUND`]. Every process
//! started here is killed by its PID when its guard drops, panics
//! included. A missing `etcd`, `python3` or `etcd3gw` fails the test
//! (never skips) with the line that installs it.

mod support;

#[path = "etcd/server.rs"]
mod server;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use server::Etcd;
use support::BinGateway;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The whole client run, start to exit.
const CLIENT_BOUND: Duration = Duration::from_secs(30);
/// How long the client waits for each event.
const EVENT_WAIT_SECS: &str = "10";
/// How long etcd may take to drop a watch stream whose client left.
const CANCEL_BOUND: Duration = Duration::from_secs(10);

/// How long the watch sits idle before the put: longer than the gateway's
/// idle timeout ([`GATEWAY_IDLE`]), which must not cut an open stream.
const QUIET_SECS: &str = "2.5";
const GATEWAY_IDLE: &str = "1s";

const INSTALL: &str = "Install it with `python3 -m pip install etcd3gw` \
     (./scripts/test.sh does), or set PYTHON to an interpreter that has it";

/// The Python interpreter: `$PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    support::repo().join("tests/etcd/watch_client.py")
}

/// Fails (never skips) when there is no Python or no etcd3gw.
async fn require_etcd3gw() {
    let python = python();
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import etcd3gw"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), probe)
        .await
        .unwrap_or_else(|_| panic!("`{python} -c 'import etcd3gw'` did not finish in 20 s"))
        .unwrap_or_else(|e| {
            panic!(
                "the etcd3gw watch test needs Python 3 with PyPI's etcd3gw; cannot run `{python}`: {e}. \
                 Install Python 3 (`apt-get install -y python3 python3-pip`), then etcd3gw: \
                 `python3 -m pip install etcd3gw` (./scripts/test.sh does)"
            )
        });
    assert!(
        output.status.success(),
        "the etcd3gw watch test needs PyPI's etcd3gw, and `{python}` cannot import it: {}. {INSTALL}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// What one run of the client printed.
struct ClientRun {
    events: Vec<Value>,
    stderr: String,
}

/// Runs the client against `port` on its own key prefix; panics unless
/// it exits 0 within [`CLIENT_BOUND`]. The child is killed (by its PID)
/// when the bound passes or the test panics.
async fn run_client(side: &str, port: u16, prefix: &str, value: &str) -> ClientRun {
    let started = Instant::now();
    let run = tokio::process::Command::new(python())
        .arg(script())
        .args(["--port", &port.to_string()])
        .args(["--prefix", prefix])
        .args(["--value", value])
        .args(["--timeout", EVENT_WAIT_SECS])
        .args(["--quiet", QUIET_SECS])
        .stdin(Stdio::null())
        .env("PYTHONUNBUFFERED", "1")
        // etcd3gw reads its API path from here when none is given; the
        // script gives one, keep a stray setting from interfering anyway.
        .env_remove("ETCD3GW_API_PATH")
        // Loopback only: no proxy in between.
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLIENT_BOUND, run)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{side}: the etcd3gw client did not exit within {CLIENT_BOUND:?} (killed); \
                 run protogate with RUST_LOG=protogate=debug to see where the watch stalls"
            )
        })
        .unwrap_or_else(|e| panic!("{side}: cannot run {}: {e}", script().display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{side}: the etcd3gw client failed ({}) after {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status,
        started.elapsed()
    );
    let events = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{side}: client printed a line that is not JSON `{line}`: {e}\n{stderr}")
            })
        })
        .collect();
    ClientRun { events, stderr }
}

/// Exactly a PUT of `value`, then a DELETE, of `<prefix>key`, in order.
fn assert_put_then_delete(side: &str, run: &ClientRun, prefix: &str, value: &str) {
    let key = format!("{prefix}key");
    let expected = vec![
        json!({"type": "PUT", "key": key, "value": value}),
        json!({"type": "DELETE", "key": key, "value": null}),
    ];
    assert_eq!(
        run.events, expected,
        "{side}: etcd3gw's watch saw other events (left) than a PUT then a DELETE (right); \
         client log:\n{}",
        run.stderr
    );
}

/// etcd's count of open watch streams (gRPC `Watch` calls), from its
/// Prometheus metrics on the client port.
async fn watch_streams(client: &reqwest::Client, etcd: &Etcd) -> u64 {
    let text = client
        .get(format!("{}/metrics", etcd.url))
        .send()
        .await
        .expect("GET etcd /metrics")
        .text()
        .await
        .expect("etcd /metrics body");
    let line = text
        .lines()
        .find(|l| l.starts_with("etcd_debugging_mvcc_watch_stream_total "))
        .unwrap_or_else(|| panic!("etcd's /metrics has no etcd_debugging_mvcc_watch_stream_total"));
    let value = line.rsplit(' ').next().unwrap_or_default();
    value
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("metric line `{line}`: {e}")) as u64
}

/// Waits (bounded) until etcd has no watch stream open.
async fn assert_watches_closed(side: &str, client: &reqwest::Client, etcd: &Etcd) {
    let deadline = Instant::now() + CANCEL_BOUND;
    loop {
        let open = watch_streams(client, etcd).await;
        if open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{side}: etcd still has {open} watch stream(s) open {CANCEL_BOUND:?} after \
             etcd3gw cancelled its watch: the upstream call was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// protogate (the built binary) in front of `etcd`, loading our etcd
/// protos from `.proto` at startup, with the JSON options etcd's gateway
/// uses (proto field names, unknown request members ignored) and a short
/// idle timeout for client connections. The config file lives as long as
/// the second value.
fn gateway_for(etcd: &Etcd) -> (BinGateway, support::TempFile) {
    let protos = support::repo().join("tests/protos");
    let quoted = |text: String| serde_json::to_string(&text).unwrap();
    let config = format!(
        "protos: [{}]\n\
         include_paths: [{}]\n\
         upstreams:\n  etcd:\n    url: {}\n\
         json:\n  use_proto_names: true\n  ignore_unknown_fields: true\n\
         timeouts:\n  idle: {GATEWAY_IDLE}\n",
        quoted(protos.join("etcd/rpc.proto").display().to_string()),
        quoted(protos.display().to_string()),
        quoted(etcd.url.clone()),
    );
    let path = support::TempFile::new("etcd-gateway.yaml", config);
    let gateway =
        BinGateway::spawn(&["serve", "--config", path.to_str().expect("UTF-8 temp path")]);
    (gateway, path)
}

/// Reads an HTTP/1.1 response from a raw socket, chunk by chunk, each
/// read bounded.
struct RawResponse {
    reader: BufReader<TcpStream>,
}

impl RawResponse {
    const WAIT: Duration = Duration::from_secs(10);

    /// The status line and headers, lower-cased.
    async fn head(&mut self) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(Self::WAIT, self.reader.read_line(&mut line))
                .await
                .expect("response head within 10 s")
                .expect("read response head");
            assert!(read > 0, "connection closed in the response head: {head}");
            if line == "\r\n" {
                return head.to_ascii_lowercase();
            }
            head.push_str(&line);
        }
    }

    /// The next chunk's data, exactly as framed on the wire.
    async fn chunk(&mut self) -> String {
        let read = async {
            let mut size = String::new();
            self.reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim_end(), 16)
                .unwrap_or_else(|e| panic!("chunk size line `{size:?}`: {e}"));
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).await?;
            assert!(data.ends_with(b"\r\n"), "chunk not followed by CRLF");
            data.truncate(size);
            Ok::<_, std::io::Error>(String::from_utf8(data).expect("UTF-8 chunk"))
        };
        tokio::time::timeout(Self::WAIT, read)
            .await
            .expect("a chunk within 10 s")
            .expect("read chunk")
    }
}

/// One chunk holding exactly one `{"result": ...}` line; its result.
fn one_result_line(what: &str, chunk: &str) -> Value {
    let line = chunk
        .strip_suffix('\n')
        .filter(|l| !l.contains('\n'))
        .unwrap_or_else(|| panic!("{what}: chunk is not exactly one line: {chunk:?}"));
    let mut value: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{what}: chunk is not one JSON document ({e}): {chunk:?}"));
    value
        .get_mut("result")
        .map(Value::take)
        .unwrap_or_else(|| panic!("{what}: no `result` envelope: {chunk}"))
}

/// What etcd3gw relies on, checked on the wire with its request headers:
/// an uncompressed chunked response despite `Accept-Encoding: gzip,
/// deflate`, and each watch response alone in its own chunk as one
/// `{"result": ...}\n` line, the event's chunk sent when the put happens.
async fn assert_one_message_per_chunk(client: &reqwest::Client, gateway: &BinGateway, key: &str) {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let body = json!({"create_request": {"key": key}}).to_string();
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    let request = format!(
        "POST /v3/watch HTTP/1.1\r\nHost: {}\r\nUser-Agent: python-requests\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        gateway.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = RawResponse {
        reader: BufReader::new(stream),
    };
    let head = response.head().await;
    assert!(head.starts_with("http/1.1 200"), "watch answered: {head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n")
            && !head.contains("content-encoding")
            && head.contains("\r\ncontent-type: application/json\r\n"),
        "watch response head: {head}"
    );
    let created = one_result_line("created", &response.chunk().await);
    assert_eq!(created["created"], json!(true), "first message: {created}");
    let put = client
        .post(gateway.url("/v3/kv/put"))
        .body(json!({"key": key, "value": "d2lyZQ=="}).to_string())
        .send()
        .await
        .expect("put through protogate");
    assert_eq!(put.status(), 200);
    let event = one_result_line("event", &response.chunk().await);
    assert_eq!(
        event["events"],
        json!([{"kv": {
            "key": key,
            "create_revision": event["header"]["revision"],
            "mod_revision": event["header"]["revision"],
            "version": "1",
            "value": "d2lyZQ==",
        }}]),
        "event message: {event}"
    );
    // Dropping the socket leaves the watch; etcd must see it end.
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

#[tokio::test]
async fn etcd3gw_watch_sees_put_and_delete_through_protogate() {
    require_etcd3gw().await;
    protogate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let etcd = Etcd::start(&client).await;
    let (gateway, _config) = gateway_for(&etcd);
    let run_id = std::process::id();

    // Control: the same client straight against etcd's own gateway.
    let prefix = format!("/watch/etcd/{run_id}/");
    let value = "through etcd's gateway";
    let control = run_client("etcd's gateway", port_of(&etcd.url), &prefix, value).await;
    assert_put_then_delete("etcd's gateway", &control, &prefix, value);
    assert_watches_closed("etcd's gateway", &client, &etcd).await;

    // The test proper: through protogate.
    let prefix = format!("/watch/pgw/{run_id}/");
    let value = "through protogate";
    let run = run_client("protogate", gateway.addr.port(), &prefix, value).await;
    assert_put_then_delete("protogate", &run, &prefix, value);
    assert_watches_closed("protogate", &client, &etcd).await;

    // Why it works, on the wire.
    let key = format!("/watch/wire/{run_id}/key");
    assert_one_message_per_chunk(&client, &gateway, &key).await;
    assert_watches_closed("raw HTTP/1.1 watch", &client, &etcd).await;

    drop(gateway);
    drop(etcd);
}
