//! `protogate demo`: every curl line it prints, run with the real `curl`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{START, Spawned, command};
use crate::support;

/// Error lines the demo documents, in order: HTTP status, gRPC code, and
/// whether `details` must be non-empty.
const DOCUMENTED_ERRORS: [(u16, i64, bool); 3] = [(404, 5, true), (400, 3, true), (400, 3, false)];

/// The demo on a free port, with its printed curl lines: those before the
/// `# streams` comment, those after it, and those after `# errors`.
struct Demo {
    _process: Spawned,
    gateway: String,
    lines: Vec<String>,
    streams: Vec<String>,
    errors: Vec<String>,
}

fn start_demo() -> Demo {
    let mut process = Spawned::new(command(
        &support::repo(),
        &["demo", "--listen", "127.0.0.1:0"],
    ));
    let intro = process.stdout_line(START, |l| l.starts_with("protogate demo:"));
    let gateway = intro
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !gateway.ends_with(":0"),
        "the bound port is printed: {intro}"
    );
    // The last curl line is followed by an empty line.
    let last = process.stdout_line(START, |l| l.contains("page_size=ten"));
    let lines = process.stdout_lines();
    let end = lines.iter().position(|l| *l == last).expect("last line");
    let printed: Vec<&str> = lines[..=end].iter().map(|l| l.trim()).collect();
    let comment = |name: &str| {
        printed
            .iter()
            .position(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} comment"))
    };
    let (streams, errors) = (comment("# streams"), comment("# errors"));
    let curls = |lines: &[&str]| -> Vec<String> {
        let curls: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("curl "))
            .map(|l| (*l).to_owned())
            .collect();
        for line in &curls {
            assert!(
                line.contains(&gateway),
                "{line} targets the printed gateway {gateway}"
            );
        }
        curls
    };
    Demo {
        lines: curls(&printed[..streams]),
        streams: curls(&printed[streams..errors]),
        errors: curls(&printed[errors..]),
        gateway,
        _process: process,
    }
}

/// Runs a printed line through `sh` with the real curl, adding only a
/// bound on time and the status code as a last line of output.
fn curl(line: &str) -> (u16, String) {
    let script = format!("{line} --max-time 20 -w '\\n%{{http_code}}'");
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "`{line}` exited with {}",
        output.status
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.parse().expect("status code"), body.to_owned())
}

#[test]
fn curl_is_installed() {
    // The demo test needs the real curl: missing, it must fail, not skip.
    let found = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .expect("run sh");
    assert!(
        found.status.success(),
        "curl is not on PATH (/usr/bin/curl expected)"
    );
}

#[test]
fn every_printed_curl_line_works() {
    let demo = start_demo();
    assert!(demo.lines.len() >= 5, "{:?}", demo.lines);
    for line in &demo.lines {
        let (status, body) = curl(line);
        assert!(
            (200..300).contains(&status),
            "`{line}` answered {status}: {body}"
        );
        let json: Result<Value, _> = serde_json::from_str(&body);
        assert!(
            json.is_ok_and(|v| v.is_object()),
            "`{line}` answered non-JSON: {body}"
        );
    }
}

/// The stream lines answer 200 with JSON a line at a time: grpc-gateway's
/// `{"result": ...}` lines, Server-Sent Events `data:` lines, or one
/// object for the client stream.
#[test]
fn printed_stream_lines_stream() {
    let demo = start_demo();
    assert_eq!(demo.streams.len(), 4, "{:?}", demo.streams);
    for line in &demo.streams {
        let (status, body) = curl(line);
        assert_eq!(status, 200, "`{line}`: {body}");
        let messages: Vec<Value> = body
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let json = l.strip_prefix("data: ").unwrap_or(l);
                serde_json::from_str(json).unwrap_or_else(|e| panic!("`{line}`: {e}: {l}"))
            })
            .collect();
        assert!(!messages.is_empty(), "`{line}` answered nothing");
        let sse = line.contains("text/event-stream");
        let client_stream = line.contains(":import");
        for message in &messages {
            assert!(message.is_object(), "{message}");
            if !sse && !client_stream {
                assert!(message["result"].is_object(), "`{line}`: {message}");
            }
        }
        if client_stream {
            assert_eq!(messages, [serde_json::json!({"imported": 2})]);
        }
    }
}

#[test]
fn documented_error_lines_answer_their_status_with_a_google_rpc_status() {
    let demo = start_demo();
    assert_eq!(
        demo.errors.len(),
        DOCUMENTED_ERRORS.len(),
        "{:?}",
        demo.errors
    );
    for (line, (http, code, has_details)) in demo.errors.iter().zip(DOCUMENTED_ERRORS) {
        let (status, output) = curl(line);
        assert_eq!(status, http, "`{line}`: {output}");
        // `-i`: headers, a blank line, the body.
        let (head, body) = output.split_once("\r\n\r\n").expect("headers then body");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("`{line}`: {e}: {body}"));
        assert_eq!(json["code"], code, "`{line}`: {json}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        let details = json["details"]
            .as_array()
            .unwrap_or_else(|| panic!("details: {json}"));
        if has_details {
            assert!(
                details.first().is_some_and(|d| d["@type"].is_string()),
                "{json}"
            );
        }
    }
}

#[test]
fn demo_stops_on_sigterm_with_success() {
    let mut demo = Spawned::new(command(
        &support::repo(),
        &["demo", "--listen", "127.0.0.1:0"],
    ));
    demo.stdout_line(START, |l| l.starts_with("protogate demo:"));
    // Our own child, by its PID.
    let kill = format!("kill -TERM {}", demo.pid());
    let sent = Command::new("sh")
        .args(["-c", &kill])
        .status()
        .expect("run sh");
    assert!(sent.success());
    let status = demo
        .wait(Duration::from_secs(15))
        .expect("the demo exits on SIGTERM");
    assert!(status.success(), "{status}");
    // It says so: a user who pressed Ctrl-C sees that it stopped.
    demo.stdout_line(START, |l| l == "protogate demo stopped");
}

/// The printed `--reflect` line names the demo's backend, which serves
/// server reflection: `routes` with the same upstream lists the bookshop.
#[test]
fn printed_reflect_line_names_a_reflecting_backend() {
    let mut process = Spawned::new(command(
        &support::repo(),
        &["demo", "--listen", "127.0.0.1:0"],
    ));
    let line = process.stdout_line(START, |l| l.contains("--reflect"));
    let upstream = line
        .split_whitespace()
        .skip_while(|word| *word != "--upstream")
        .nth(1)
        .unwrap_or_else(|| panic!("no --upstream in `{line}`"))
        .to_owned();
    let output = support::gateway::binary()
        .args(["routes", "--upstream", &upstream, "--reflect"])
        .output()
        .expect("run protogate routes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("protogate.demo.v1.Bookshop/GetBook"),
        "{stdout}"
    );
}

/// The words of a printed line after `flag`.
fn flag_value(line: &str, flag: &str) -> String {
    line.split_whitespace()
        .skip_while(|word| *word != flag)
        .nth(1)
        .unwrap_or_else(|| panic!("no {flag} in `{line}`"))
        .to_owned()
}

/// The demo's gateway address, from its first line.
fn gateway_of(process: &mut Spawned) -> SocketAddr {
    let intro = process.stdout_line(START, |l| l.starts_with("protogate demo:"));
    intro
        .rsplit("http://")
        .next()
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no gateway address in `{intro}`"))
}

/// Runs a `curl` line until it answers 200 (bounded); returns the body.
fn curl_until_ok(line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = curl(line);
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "`{line}` answered {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The printed second gateway sits next to the demo's (whatever port
/// `--listen` gave it), and its lines work as pasted: the `serve` line
/// starts, and the admin `curl` line lists the bookshop's routes.
#[test]
fn printed_reflect_lines_follow_the_gateway_port_and_work_as_pasted() {
    let mut demo = Spawned::new(command(
        &support::repo(),
        &["demo", "--listen", "127.0.0.1:0"],
    ));
    let gateway = gateway_of(&mut demo);
    let serve = demo.stdout_line(START, |l| l.contains("--reflect"));
    let listen: SocketAddr = flag_value(&serve, "--listen").parse().unwrap();
    let admin: SocketAddr = flag_value(&serve, "--admin-listen").parse().unwrap();
    let near = |addr: SocketAddr| {
        addr.ip() == gateway.ip()
            && addr.port() != gateway.port()
            && addr.port().abs_diff(gateway.port()) <= 64
    };
    assert!(near(listen) && near(admin), "{serve} (gateway {gateway})");
    assert_ne!(listen, admin);
    let admin_curl = demo.stdout_line(START, |l| l.contains("/admin/routes"));
    assert!(
        admin_curl.contains(&format!("http://{admin}/admin/routes")),
        "{admin_curl}"
    );
    // The printed line, run with the built binary for `protogate`.
    let words: Vec<&str> = serve.split_whitespace().collect();
    assert_eq!(words[..2], ["protogate", "serve"], "{serve}");
    let mut second = Spawned::new(command(&support::repo(), &words[1..]));
    second.stderr_line(START, |l| l.contains("Admin listening"));
    let routes = curl_until_ok(admin_curl.trim());
    assert!(
        routes.contains("protogate.demo.v1.Bookshop/GetBook"),
        "{routes}"
    );
}

/// `--backend-listen` pins the bookshop's address, so a gateway can be
/// started first and find the backend when it comes up.
#[test]
fn backend_listen_pins_the_backend_for_a_gateway_started_first() {
    // A port bound a moment ago and let go: free for the backend.
    let backend = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let upstream = format!("http://{backend}");
    let mut gateway = Spawned::new(command(
        &support::repo(),
        &[
            "serve",
            "--upstream",
            &upstream,
            "--reflect",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    ));
    let line = gateway.stderr_line(START, |l| l.contains("Admin listening"));
    let admin = flag_value(&line.replace("addr=", "addr= "), "addr=");
    let (status, body) = curl(&format!("curl -s http://{admin}/readyz"));
    assert_eq!(status, 503, "no backend yet: {body}");
    let mut demo = Spawned::new(command(
        &support::repo(),
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--backend-listen",
            &backend.to_string(),
        ],
    ));
    let intro = demo.stdout_line(START, |l| l.starts_with("protogate demo:"));
    assert!(intro.contains(&format!("service on {backend},")), "{intro}");
    curl_until_ok(&format!("curl -s http://{admin}/readyz"));
    let routes = curl_until_ok(&format!("curl -s http://{admin}/admin/routes"));
    assert!(
        routes.contains("protogate.demo.v1.Bookshop/GetBook"),
        "{routes}"
    );
}

/// The README's websocat transcript: the URL, then question and answer
/// lines in turn.
fn readme_transcript() -> (String, Vec<(Value, Value)>) {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("$ websocat "));
    let url = lines
        .next()
        .expect("a websocat transcript in the README")
        .trim()
        .trim_start_matches("$ websocat ")
        .to_owned();
    let json: Vec<Value> = lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l.trim()).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(json.len() >= 2 && json.len().is_multiple_of(2), "{json:?}");
    let pairs = json
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    (url, pairs)
}

/// After every printed curl line has run, in order, the librarian gives
/// the README transcript's answers, over WebSocket as there and in the
/// printed curl line that asks the same questions.
#[test]
fn readme_librarian_transcript_holds_after_the_printed_lines() {
    let (url, pairs) = readme_transcript();
    let demo = start_demo();
    let ask = demo
        .streams
        .iter()
        .find(|l| l.contains("librarian:ask"))
        .expect("a librarian line");
    for (question, _) in &pairs {
        let text = question["text"].as_str().unwrap();
        assert!(ask.contains(text), "`{ask}` asks {text}");
    }
    for line in demo.lines.iter().chain(&demo.streams) {
        curl(line);
    }
    let (_, body) = curl(ask);
    let answers: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["result"].clone())
        .collect();
    let expected: Vec<Value> = pairs.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(answers, expected, "`{ask}`");
    let path = url.split_once("127.0.0.1:8080").expect("README URL").1;
    let ws = format!("ws://{}{path}", demo.gateway);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let heard = runtime.block_on(websocket_answers(&ws, &pairs));
    assert_eq!(heard, expected, "{ws}");
}

/// Sends each question as a text frame and reads one answer after each.
async fn websocket_answers(url: &str, pairs: &[(Value, Value)]) -> Vec<Value> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let connect = tokio_tungstenite::connect_async(url);
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("connect in time")
        .expect("WebSocket upgrade");
    let mut answers = Vec::new();
    for (question, _) in pairs {
        socket
            .send(Message::text(question.to_string()))
            .await
            .expect("send");
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer in time")
            .expect("an answer")
            .expect("a frame");
        answers.push(serde_json::from_str(frame.to_text().expect("text")).expect("JSON"));
    }
    answers
}
