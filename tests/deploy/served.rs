//! The built binary run as the Deployment runs it: its args, the
//! ConfigMap's config in a folder laid out as the kubelet lays out a
//! ConfigMap volume, and a real tonic backend serving reflection where the
//! config's upstream points. Only the addresses move to loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::manifests::{Manifests, seconds, text};
use crate::process::{Served, Spawned};
use crate::support::{self, EchoBackend, TempDir};

/// Longest wait for the gateway to turn ready or to see a changed file.
const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// How long the backend holds the call that is in flight at SIGTERM.
const SLOW_MS: u64 = 5000;

/// A folder as the kubelet fills it from a ConfigMap: each version of the
/// data in a folder of its own, `..data` linking to the current one, and
/// each key a link through `..data`. An update links a new version in by
/// renaming a new link over `..data`, then removes the old version.
#[derive(Debug)]
struct Volume {
    dir: TempDir,
    key: String,
    version: u32,
}

impl Volume {
    fn new(key: &str, contents: &str) -> Volume {
        let dir = support::tempdir();
        let mut volume = Volume {
            dir,
            key: key.to_owned(),
            version: 0,
        };
        volume.publish(contents);
        std::os::unix::fs::symlink(format!("..data/{key}"), volume.dir.join(key))
            .expect("link the key");
        volume
    }

    /// The config file as the container sees it.
    fn path(&self) -> PathBuf {
        self.dir.join(&self.key)
    }

    fn publish(&mut self, contents: &str) {
        self.version += 1;
        let version = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version,
            std::process::id()
        );
        std::fs::create_dir(self.dir.join(&version)).expect("version folder");
        std::fs::write(self.dir.join(&version).join(&self.key), contents).expect("write key");
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::os::unix::fs::symlink(&version, self.dir.join("..data_tmp")).expect("link");
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("swap");
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).expect("remove the old version");
        }
    }
}

/// The ConfigMap's config with the listeners on free loopback ports and
/// its one upstream at `upstream`; written as JSON, which YAML reads.
fn on_loopback(config: &str, upstream: &str) -> Value {
    let mut config: Value = serde_saphyr::from_str(config).expect("the config parses");
    config["listen"] = "127.0.0.1:0".into();
    config["admin"]["listen"] = "127.0.0.1:0".into();
    let upstreams = config["upstreams"].as_object_mut().expect("upstreams");
    assert_eq!(upstreams.len(), 1, "one upstream to point at the backend");
    for upstream_config in upstreams.values_mut() {
        upstream_config["url"] = upstream.into();
    }
    config
}

/// The address in a `... addr=ADDR ...` log line.
fn logged_addr(line: &str) -> SocketAddr {
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in: {line}"))
}

/// Polls `url` until it answers `status`, for at most `limit`.
async fn until_status(client: &reqwest::Client, url: &str, status: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        match client.get(url).send().await {
            Ok(answer) if answer.status() == status => return,
            Ok(answer) => last = Some(format!("{}: {:?}", answer.status(), answer.text().await)),
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{url} did not answer {status} within {limit:?}; last: {last:?}");
}

/// `GET /admin/status` as JSON.
async fn status(client: &reqwest::Client, admin: SocketAddr) -> Value {
    let answer = client
        .get(format!("http://{admin}/admin/status"))
        .send()
        .await
        .expect("admin status");
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("status JSON")
}

/// Sends SIGTERM to our own child, by its PID.
fn terminate(process: &Spawned) {
    let kill = format!("kill -TERM {}", process.pid());
    let sent = std::process::Command::new("sh")
        .args(["-c", &kill])
        .status()
        .expect("run sh");
    assert!(sent.success(), "{kill}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_as_deployed_and_stops_on_sigterm() {
    let manifests = Manifests::load();
    let container = manifests.container().clone();
    let set = support::compile(
        &support::repo().join("tests/protos/cli"),
        &["greeter.proto"],
    );
    let backend = EchoBackend::start_reflecting(&set).await;
    let mut config = on_loopback(&manifests.config_text(), &backend.url());
    let key = manifests.config_path();
    let key = key.file_name().unwrap().to_str().unwrap();
    let mut volume = Volume::new(key, &config.to_string());

    // The Deployment's args, the config path moved to the volume.
    let deployed = manifests.config_path().display().to_string();
    let args: Vec<String> = manifests
        .args()
        .into_iter()
        .map(|arg| {
            if arg == deployed {
                volume.path().display().to_string()
            } else {
                arg
            }
        })
        .collect();
    assert!(
        args.contains(&volume.path().display().to_string()),
        "{args:?}"
    );
    let mut served = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Served::start(&args)
    })
    .await
    .expect("serve starts");
    let admin = logged_addr(&served.process.stderr_line(crate::process::START, |l| {
        l.contains("Admin listening") && l.contains("addr=")
    }));

    // The probes, at the paths the Deployment gives them.
    let client = support::http1();
    let probe = |name: &str| {
        format!(
            "http://{admin}{}",
            text(&container, &format!("/{name}/httpGet/path"))
        )
    };
    until_status(&client, &probe("readinessProbe"), 200, SETTLE).await;
    let live = client
        .get(probe("livenessProbe"))
        .send()
        .await
        .expect("liveness");
    assert_eq!(live.status(), 200, "liveness");
    // The routes came from the backend's reflection, as configured.
    let hello = client
        .get(served.url("/v1/greetings/ada"))
        .send()
        .await
        .expect("call");
    assert_eq!(hello.status(), 200, "{:?}", hello.text().await);

    // A changed ConfigMap, swapped in as the kubelet does, is reloaded.
    let loads = status(&client, admin).await["loads"]
        .as_u64()
        .expect("loads");
    config["headers"] = serde_json::json!({"forward": ["x-request-id"]});
    volume.publish(&config.to_string());
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = status(&client, admin).await;
        if now["loads"].as_u64() > Some(loads) {
            assert_eq!(now["last_error"], Value::Null, "the reload failed: {now}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload after the ..data swap: {now}"
        );
        tokio::time::sleep(POLL).await;
    }

    // SIGTERM with a call in flight: not ready any more, the call
    // finishes, and the process exits 0 within what the kubelet allows
    // after the preStop sleep.
    backend.clear();
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), served.url("/v1/greetings/grace"));
        async move {
            client
                .get(url)
                .header("Grpc-Metadata-X-Echo-Delay-Ms", SLOW_MS.to_string())
                .send()
                .await
        }
    });
    let deadline = Instant::now() + SETTLE;
    while backend.records().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the slow call never reached the backend"
        );
        tokio::time::sleep(POLL).await;
    }
    terminate(&served.process);
    let draining = Duration::from_millis(SLOW_MS / 2);
    until_status(&client, &probe("readinessProbe"), 503, draining).await;
    let answer = slow
        .await
        .expect("slow call task")
        .expect("the call in flight finishes");
    assert_eq!(answer.status(), 200, "the call in flight at SIGTERM");

    let deployment = manifests.one("Deployment");
    let grace = seconds(
        deployment,
        "/spec/template/spec/terminationGracePeriodSeconds",
    );
    let pre_stop = container
        .pointer("/lifecycle/preStop/sleep/seconds")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let allowed = grace.saturating_sub(Duration::from_secs(pre_stop));
    let mut process = served.process;
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        match process.wait(allowed) {
            Some(status) => (Some(status), process.finish().1),
            // Still running: killed by PID when `process` drops.
            None => (None, process.stderr()),
        }
    })
    .await
    .expect("wait");
    let status =
        status.unwrap_or_else(|| panic!("still running {allowed:?} after SIGTERM:\n{stderr}"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
