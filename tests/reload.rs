//! Descriptors that change while the gateway runs: reloads under load lose
//! nothing, failed reloads keep the routes, files are watched, reflecting
//! upstreams are asked (and retried while down), the admin listener tells
//! what happened, and the binary reloads on SIGHUP.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use protogate::config::DescriptorSource;
use protogate::{Config, UpstreamConfig};
use serde_json::Value;
use support::{BinGateway, EchoBackend};

/// Every service the backends serve; the gateway is given subsets.
const ALL: &str = r#"
syntax = "proto3";
package reload.v1;
import "google/api/annotations.proto";
message Item { string id = 1; string note = 2; }
service Stable { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }
service Old { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/old/{id}" }; } }
service New { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/new/{id}" }; } }
service Plain { rpc Get(Item) returns (Item); }
"#;

/// A version of the API: `Stable` plus the services named.
fn api(services: &[&str]) -> Bytes {
    let mut source = String::from(
        r#"
syntax = "proto3";
package reload.v1;
import "google/api/annotations.proto";
message Item { string id = 1; string note = 2; }
service Stable { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }
"#,
    );
    for service in services {
        let line = match *service {
            "Old" => {
                r#"service Old { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/old/{id}" }; } }"#
            }
            "New" => {
                r#"service New { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/new/{id}" }; } }"#
            }
            "Plain" => "service Plain { rpc Get(Item) returns (Item); }",
            // A second method on the stable route: a conflict.
            "Clash" => {
                r#"service Clash { rpc Get(Item) returns (Item) { option (google.api.http) = { get: "/v1/stable/{id}" }; } }"#
            }
            other => panic!("no service {other}"),
        };
        source.push_str(line);
        source.push('\n');
    }
    support::compile_source("reload.proto", &source)
}

async fn backend() -> EchoBackend {
    EchoBackend::start(support::pool(&support::compile_source("all.proto", ALL))).await
}

fn reflecting(url: &str) -> UpstreamConfig {
    let mut upstream = UpstreamConfig::new(url);
    upstream.descriptors = DescriptorSource::Reflection;
    upstream
}

/// A config with the admin listener on a free port and `upstreams`.
fn config(upstreams: &[(&str, UpstreamConfig)]) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    for (name, upstream) in upstreams {
        config
            .upstreams
            .insert((*name).to_owned(), upstream.clone());
    }
    config
}

/// The gateway with reloading, its client and its addresses.
struct Running {
    server: protogate::Server,
    client: reqwest::Client,
}

impl Running {
    async fn start(config: Config) -> Running {
        Running::start_with(Box::new(move || Ok(config.clone()))).await
    }

    async fn start_with(source: protogate::reload::ConfigSource) -> Running {
        let server = protogate::start_with(source).await.expect("gateway starts");
        Running {
            server,
            client: support::http1(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }

    fn admin(&self, path: &str) -> String {
        let admin: SocketAddr = self.server.admin_addr().expect("admin listener");
        format!("http://{admin}{path}")
    }

    async fn status_of(&self, path: &str) -> u16 {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("gateway answers")
            .status()
            .as_u16()
    }

    async fn admin_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.admin(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.expect("admin answers JSON"))
    }

    async fn reload(&self) -> (u16, Value) {
        let response = self
            .client
            .post(self.admin("/admin/reload"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.expect("admin answers JSON"))
    }

    /// Waits (bounded) until `path` answers `status`.
    async fn until(&self, path: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.status_of(path).await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {now}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[path = "reload/admin.rs"]
mod admin;
#[path = "reload/binary.rs"]
mod binary;
#[path = "reload/files.rs"]
mod files;
#[path = "reload/load.rs"]
mod load;
#[path = "reload/reflection.rs"]
mod reflection;
