//! Interop with a real etcd: the same JSON requests go to etcd's own
//! gateway and to protogate (loaded from our `tests/protos/etcd/*.proto`
//! and forwarding to etcd over gRPC), and the answers must agree.
//!
//! etcd 3.4 serves gRPC and its grpc-gateway (v1) JSON API on one client
//! port, so one etcd gives both sides. The test starts its own member on
//! free loopback ports with a fresh data dir and kills it (by PID) when
//! done, panics included. A missing `etcd` binary fails the test: install
//! Debian's `etcd-server` or point `ETCD_BIN` at one.
//!
//! How answers are compared. Every request kind runs as a scripted
//! sequence of steps, once entirely against etcd's gateway and then once
//! entirely against protogate, each side on its own keys (`/<kind>/etcd/..`
//! vs `/<kind>/pgw/..`). Setup steps (writes that only prepare state) go
//! to etcd's gateway on both sides and are not compared. Before a side
//! runs, the store revision `B` is read; because nothing else writes while
//! it runs, every revision in its answers is `B + n` with the same `n` on
//! both sides. So instead of masking revisions away, the comparison
//! rewrites them as `"B+n"`, and rewrites keys to their text with the side
//! replaced by `SIDE`; everything else (values, versions, counts, `more`,
//! `succeeded`, `deleted`, `prev_kv(s)`, cluster/member ids, raft term, and
//! which keys are present at all) must be equal as is. Each compared step
//! also checks a few expected values, so two equally wrong answers fail.
//!
//! Member order is compared too.
//!
//! Known differences, left out on purpose (found against etcd 3.4.23):
//! - Error bodies: grpc-gateway v1 `{"error","message","code"}` vs our
//!   `{"code","message","details"}`; only status, code and message are
//!   compared (see `check_error`). etcd's 404/405 bodies are plain text.
//! - protogate follows the proto3 JSON mapping where etcd's Go decoder is
//!   stricter: it accepts URL-safe or unpadded base64 bytes, integers
//!   written as `1.0`/`1e0`; it rejects two members of one oneof (etcd
//!   takes them) and a top-level `null` body (etcd reads an empty message).
//! - With `ignore_unknown_fields` (needed to match etcd on unknown
//!   members), unknown enum names are ignored too; etcd rejects them.
//! - Query parameters on these `body: "*"` routes: etcd ignores them,
//!   protogate answers 400 (see DECISIONS: requests).
//!
//! `etcd/server.rs` runs etcd; `etcd/steps.rs` holds the requests.

mod support;

#[path = "etcd/server.rs"]
mod server;
#[path = "etcd/steps.rs"]
mod steps;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use server::Etcd;
use steps::{Expect, Script, Step};
use support::TestGateway;

// ----------------------------------------------------------- comparing --

/// One answer as compared: status and normalised body.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
}

/// Rewrites revisions as `B+n` and keys as text with the side replaced by
/// `SIDE`, everywhere in `value`.
fn normalise(value: &mut Value, side: &str, base: i64) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                match (name.as_str(), &*member) {
                    ("revision" | "create_revision" | "mod_revision", Value::String(text)) => {
                        let n: i64 = text
                            .parse()
                            .unwrap_or_else(|_| panic!("revision `{text}` is not an int64 string"));
                        *member = json!(format!("B+{}", n - base));
                    }
                    ("key", Value::String(text)) => {
                        let raw = B64
                            .decode(text)
                            .unwrap_or_else(|e| panic!("key `{text}` is not base64: {e}"));
                        let text = String::from_utf8(raw).expect("test keys are UTF-8");
                        *member = json!(text.replacen(&format!("/{side}/"), "/SIDE/", 1));
                    }
                    _ => normalise(member, side, base),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, side, base)),
        _ => {}
    }
}

async fn send(client: &reqwest::Client, base_url: &str, step: &Step) -> (u16, String, Value) {
    let response = client
        .post(format!("{base_url}{}", step.path))
        .header("content-type", "application/json")
        .body(step.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: POST {base_url}{} failed: {e}", step.name, step.path));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{}: {base_url} answered {status} with non-JSON `{text}`: {e}",
            step.name
        )
    });
    (status, content_type, body)
}

/// The store's current revision, read through etcd's gateway.
async fn current_revision(client: &reqwest::Client, etcd: &str) -> i64 {
    let read = Step {
        name: "read revision",
        path: "/v3/kv/range",
        body: r#"{"key":"AA=="}"#.to_owned(),
        expect: Expect::Setup,
    };
    let (_, _, body) = send(client, etcd, &read).await;
    body["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no header.revision in {body}"))
}

/// Runs one side's whole sequence; answers of compared steps, in order.
async fn run_side(
    client: &reqwest::Client,
    etcd: &str,
    target: &str,
    side: &'static str,
    script: Script,
) -> (Vec<Step>, Vec<Answer>) {
    let base = current_revision(client, etcd).await;
    let steps = script(side, base);
    let mut answers = Vec::new();
    for step in &steps {
        if let Expect::Setup = step.expect {
            let (status, _, body) = send(client, etcd, step).await;
            assert_eq!(status, 200, "{side} {}: setup failed: {body}", step.name);
            continue;
        }
        let (status, content_type, mut body) = send(client, target, step).await;
        assert!(
            content_type.starts_with("application/json"),
            "{side} {}: content-type `{content_type}`",
            step.name
        );
        normalise(&mut body, side, base);
        answers.push(Answer { status, body });
    }
    (steps, answers)
}

/// Runs one request kind on both sides (a fresh etcd and gateway) and
/// compares step by step; returns how many steps were compared.
async fn compare(kind: &str, script: Script) -> usize {
    let client = client();
    let etcd = Etcd::start(&client).await;
    let gateway = gateway_for(&etcd).await;
    let (steps, from_etcd) = run_side(&client, &etcd.url, &etcd.url, "etcd", script).await;
    let (_, from_gateway) = run_side(&client, &etcd.url, &gateway.base, "pgw", script).await;
    let compared: Vec<&Step> = steps
        .iter()
        .filter(|s| !matches!(s.expect, Expect::Setup))
        .collect();
    assert_eq!(from_etcd.len(), compared.len());
    assert_eq!(from_gateway.len(), compared.len());
    for ((step, want), got) in compared.iter().zip(&from_etcd).zip(&from_gateway) {
        let what = format!("{kind} / {}", step.name);
        match &step.expect {
            Expect::Setup => unreachable!("setup steps are not compared"),
            Expect::Ok(checks) => check_ok(&what, got, want, checks),
            Expect::Error {
                status,
                code,
                same_message,
            } => check_error(&what, got, want, (*status, *code), *same_message),
        }
    }
    compared.len()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

/// A success: protogate's answer equals etcd's, and etcd's holds `checks`.
fn check_ok(what: &str, got: &Answer, want: &Answer, checks: &[(&str, Option<Value>)]) {
    let body = &want.body;
    assert_eq!(want.status, 200, "{what}: etcd answered {}", pretty(body));
    assert_eq!(
        got,
        want,
        "{what}: protogate (left) differs from etcd's gateway (right):\n{}\nvs\n{}",
        pretty(&got.body),
        pretty(body)
    );
    // `Value` equality ignores member order; the text does not.
    let (ours, theirs) = (got.body.to_string(), body.to_string());
    assert_eq!(ours, theirs, "{what}: same members, different order");
    // A full header, so that answers are not equal by being empty.
    for member in ["cluster_id", "member_id", "revision", "raft_term"] {
        let present = body["header"][member].is_string();
        assert!(
            present,
            "{what}: header.{member} missing in {}",
            pretty(body)
        );
    }
    for (pointer, expected) in checks {
        let actual = body.pointer(pointer);
        assert_eq!(
            actual,
            expected.as_ref(),
            "{what}: {pointer} in {}",
            pretty(body)
        );
    }
}

/// An error. etcd 3.4's gateway (grpc-gateway v1) writes `{"error": msg,
/// "message": msg, "code": n}`; protogate writes `{"code": n, "message":
/// msg, "details": [...]}` (google.rpc.Status, as grpc-gateway v2 does).
/// So the bodies are not compared whole: the HTTP status and the gRPC code
/// must match, and the message too when etcd itself raised the error.
fn check_error(what: &str, got: &Answer, want: &Answer, expected: (u16, i64), same_message: bool) {
    let etcd = want
        .body
        .as_object()
        .expect("etcd's error body is an object");
    let ours = got
        .body
        .as_object()
        .expect("protogate's error body is an object");
    let mut etcd_members: Vec<&str> = etcd.keys().map(String::as_str).collect();
    etcd_members.sort_unstable();
    assert_eq!(
        etcd_members,
        ["code", "error", "message"],
        "{what}: etcd's error shape"
    );
    assert_eq!(etcd["error"], etcd["message"], "{what}: etcd's error shape");
    let (status, code) = expected;
    assert_eq!(
        (want.status, &etcd["code"]),
        (status, &json!(code)),
        "{what}: etcd"
    );
    assert!(ours["details"].is_array(), "{what}: {}", pretty(&got.body));
    assert!(ours["message"].is_string(), "{what}: {}", pretty(&got.body));
    assert_eq!(
        (got.status, &ours["code"]),
        (want.status, &etcd["code"]),
        "{what}: protogate's status and code differ from etcd's: {}",
        pretty(&got.body)
    );
    if same_message {
        assert_eq!(ours["message"], etcd["message"], "{what}: message");
    }
}

fn client() -> reqwest::Client {
    protogate::install_crypto_provider();
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// protogate serving our etcd protos (compiled from `.proto` at startup,
/// as `--proto tests/protos/etcd/rpc.proto -I tests/protos` would) in
/// front of `etcd`, with the JSON options etcd's gateway uses: proto field
/// names, and unknown request members ignored.
async fn gateway_for(etcd: &Etcd) -> TestGateway {
    let protos = support::repo().join("tests/protos");
    let mut config = protogate::Config {
        protos: vec![protos.join("etcd/rpc.proto")],
        include_paths: vec![protos],
        ..protogate::Config::default()
    };
    config.json.use_proto_names = true;
    config.json.ignore_unknown_fields = true;
    let upstream = protogate::UpstreamConfig::new(etcd.url.clone());
    config.upstreams.insert("etcd".to_owned(), upstream);
    TestGateway::start(config).await
}

#[tokio::test]
async fn put_answers_like_etcd() {
    assert_eq!(compare("put", steps::put_steps).await, 7);
}

#[tokio::test]
async fn range_answers_like_etcd() {
    assert_eq!(compare("range", steps::range_steps).await, 10);
}

#[tokio::test]
async fn delete_range_answers_like_etcd() {
    assert_eq!(compare("delete range", steps::delete_steps).await, 4);
}

#[tokio::test]
async fn txn_answers_like_etcd() {
    assert_eq!(compare("txn", steps::txn_steps).await, 4);
}

#[tokio::test]
async fn errors_match_etcd() {
    assert_eq!(compare("errors", steps::error_steps).await, 5);
}
