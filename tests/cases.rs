//! The real-world failure cases in `tests/cases/` (one folder each, format
//! in `tests/cases/README.md`), run against the built `protogate` binary
//! exactly as an outside harness would: `serve --descriptor-set X
//! --upstream U --listen 127.0.0.1:0`, with a real tonic backend.

mod support;

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;
use support::{BinGateway, EchoBackend, Script};

struct Case {
    name: String,
    dir: PathBuf,
    expect: Value,
}

fn cases() -> Vec<Case> {
    let root = support::repo().join("tests/cases");
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .expect("tests/cases exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("expect.json").exists())
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            expect: serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap())
                .unwrap(),
            dir,
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// `request.http`: request line, headers, blank line, body.
struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_request(path: &Path) -> RawRequest {
    let raw = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let mut lines = head.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap().split_whitespace();
    let method = first.next().unwrap().to_owned();
    let target = first.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    RawRequest {
        method,
        target,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// int64-as-string vs number, and 1.0 vs 1, compare equal.
fn norm(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) if !s.trim().is_empty() => Value::from(n),
            _ => v.clone(),
        },
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a.get(k).ok_or_else(|| format!("{path}.{k}: missing"))?;
                subset(v, got, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Object(_), _) => Err(format!("{path}: expected an object, got {actual}")),
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                subset(e, a, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Array(_), _) => Err(format!("{path}: expected {expected}, got {actual}")),
        _ if norm(expected) == norm(actual) => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

fn script(dir: &Path) -> Script {
    let path = dir.join("backend.json");
    let Ok(bytes) = std::fs::read(path) else {
        return Script::default();
    };
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    let mut script = Script {
        response: json.get("response").cloned(),
        ..Script::default()
    };
    if let Some(code) = json.get("status").and_then(Value::as_i64) {
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("echo error")
            .to_owned();
        let details = json
            .get("details")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        script.error = Some((tonic::Code::from_i32(code as i32), message, details));
    }
    script
}

fn same_message(
    pool: &DescriptorPool,
    method: &str,
    expected: &Value,
    actual: &DynamicMessage,
) -> Result<(), String> {
    let (service, name) = method.trim_start_matches('/').split_once('/').unwrap();
    let input = pool
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .unwrap()
        .input();
    let expected_message = DynamicMessage::deserialize(input, expected)
        .map_err(|e| format!("expect.json backend_request: {e}"))?;
    if &expected_message == actual {
        Ok(())
    } else {
        Err(format!(
            "backend_request: expected {expected}, got {actual:?}"
        ))
    }
}

async fn run(case: &Case) -> Result<(), String> {
    let set = support::compile(&case.dir, &["case.proto"]);
    let set_path = support::TempFile::new("case.pb", &set);
    let pool = support::pool(&set);
    let backend = EchoBackend::start(pool.clone()).await;
    backend.script(script(&case.dir));
    let upstream = backend.url();
    let gateway = BinGateway::spawn(&[
        "serve",
        "--descriptor-set",
        set_path.to_str().unwrap(),
        "--upstream",
        &upstream,
    ]);

    let request = parse_request(&case.dir.join("request.http"));
    let client = support::http1();
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = client.request(method, gateway.url(&request.target));
    for (k, v) in &request.headers {
        if !k.eq_ignore_ascii_case("content-length") {
            builder = builder.header(k, v);
        }
    }
    let response = builder
        .body(request.body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let exp = &case.expect;

    if Some(status as u64) != exp["status"].as_u64() {
        return Err(format!(
            "status {status}, expected {} (body {})",
            exp["status"],
            String::from_utf8_lossy(&body)
        ));
    }
    if let Some(want) = exp.get("response_headers").and_then(Value::as_object) {
        for (k, v) in want {
            let got = headers.get(k.as_str()).and_then(|h| h.to_str().ok());
            match (v.as_str(), got) {
                (None, None) => {}
                (None, Some(g)) => return Err(format!("header {k} should be absent, got {g}")),
                (Some(v), Some(g))
                    if g == v || g.split(';').next().unwrap().trim().eq_ignore_ascii_case(v) => {}
                (Some(v), g) => return Err(format!("header {k}: expected {v}, got {g:?}")),
            }
        }
    }
    if exp.get("response_body").is_some() || exp.get("response_body_subset").is_some() {
        let got: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("body is not JSON: {}", String::from_utf8_lossy(&body)))?;
        if let Some(want) = exp.get("response_body")
            && norm(want) != norm(&got)
        {
            return Err(format!("body: expected {want}, got {got}"));
        }
        if let Some(want) = exp.get("response_body_subset") {
            subset(want, &got, "$").map_err(|e| format!("body subset: {e}"))?;
        }
    }
    let records = backend.records();
    if let Some(called) = exp.get("backend_called").and_then(Value::as_bool)
        && called == records.is_empty()
    {
        return Err(format!(
            "backend_called should be {called}, got {} request(s)",
            records.len()
        ));
    }
    if let Some(want) = exp.get("backend_request") {
        let last = records.last().ok_or("the backend received no request")?;
        same_message(&pool, &last.method, want, &last.message)?;
    }
    if let Some(want) = exp.get("backend_metadata").and_then(Value::as_object) {
        let md = &records
            .first()
            .ok_or("the backend received no request")?
            .metadata;
        for (k, v) in want {
            let got = if k.ends_with("-bin") {
                md.get_bin(k.as_str())
                    .and_then(|v| v.to_bytes().ok())
                    .map(|b| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.encode(b)
                    })
            } else {
                md.get(k.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if v.as_str() != got.as_deref() {
                return Err(format!("metadata {k}: expected {v}, got {got:?}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes() {
    let cases = cases();
    assert!(
        cases.len() >= 18,
        "expected the cases in tests/cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(reason) = run(case).await {
            failures.push(format!("{}: {reason}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
