//! Descriptor scale: a descriptor set of many annotated methods,
//! generated as `.proto` text at bench time, then timed through what the
//! gateway does with it — compiling, building the snapshot (pool, routes,
//! upstreams), and starting `protogate serve` with it — with the memory
//! that gateway holds once listening.

use std::fmt::Write as _;

use bytes::Bytes;
use tokio::time::Instant;

use super::child::{Gateway, TempDir};
use super::report::ScaleResult;
use super::{BenchError, Options, mib, process};
use crate::config::{Config, UpstreamConfig};
use crate::descriptor::{self, Sources};
use crate::snapshot::Snapshot;

/// Methods per generated service.
const PER_SERVICE: usize = 100;

/// Generates `options.scale_methods` methods and measures them; the
/// gateway's upstream is the bench backend at `backend` (never called).
/// `idle_rss` is the bench gateway's memory when idle, to compare with.
pub(super) async fn run(
    options: &Options,
    backend: &str,
    idle_rss: Option<u64>,
) -> Result<ScaleResult, BenchError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| BenchError::Setup(format!("{what}: {e}"));
    let methods = options.scale_methods.max(1);
    let services = methods.div_ceil(PER_SERVICE);
    let dir = TempDir::new()?;
    let folder = dir.0.join("scale/v1");
    std::fs::create_dir_all(&folder).map_err(|e| setup("scale protos", &e))?;
    let mut protos = Vec::with_capacity(services);
    for service in 0..services {
        let count = PER_SERVICE.min(methods - service * PER_SERVICE);
        let path = folder.join(format!("service_{service:03}.proto"));
        std::fs::write(&path, service_proto(service, count))
            .map_err(|e| setup("scale protos", &e))?;
        protos.push(path);
    }

    let sources = Sources {
        protos,
        include_paths: vec![dir.0.clone()],
        ..Sources::default()
    };
    let start = Instant::now();
    let loaded = descriptor::load_files(&sources).map_err(|e| setup("scale compile", &e))?;
    let compile_ms = ms(start);
    let messages = loaded
        .pool
        .all_messages()
        .filter(|m| m.package_name().starts_with("scale."))
        .count();
    let set: Bytes = loaded.set.clone();
    drop(loaded);

    let mut config = Config {
        embedded_descriptors: vec![set.clone()],
        ..Config::default()
    };
    config
        .upstreams
        .insert("default".to_owned(), UpstreamConfig::new(backend));
    let start = Instant::now();
    let snapshot = Snapshot::build(&config).map_err(|e| setup("scale snapshot", &e))?;
    let snapshot_ms = ms(start);
    let routes = snapshot.routes.routes().len();
    drop(snapshot);

    let gateway = Gateway::spawn(
        &options.gateway_binary,
        &options.gateway_args(),
        &format!("descriptor_sets: [scale.pb]\nupstreams:\n  default:\n    url: {backend}\n"),
        &[("scale.pb", &set)],
    )
    .await?;
    let rss = process::rss_bytes(gateway.pid()).ok();
    Ok(ScaleResult {
        services,
        methods,
        messages,
        routes,
        descriptor_set_kib: set.len() as f64 / 1024.0,
        compile_ms,
        snapshot_ms,
        startup_ms: gateway.startup.as_secs_f64() * 1e3,
        rss_mib: rss.map(mib),
        rss_growth_mib: rss
            .zip(idle_rss)
            .map(|(rss, idle)| mib(rss.saturating_sub(idle))),
    })
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// One service with `methods` methods, each with a request and a
/// response message and an HTTP rule (GET, POST, PATCH and DELETE in
/// turn, with path variables and bodies).
fn service_proto(service: usize, methods: usize) -> String {
    let mut text = format!(
        "syntax = \"proto3\";\n\
         package scale.v1.s{service:03};\n\
         import \"google/api/annotations.proto\";\n\n\
         message Filter {{\n  string text = 1;\n  bool exact = 2;\n}}\n\n\
         service Service{service:03} {{\n"
    );
    for m in 0..methods {
        let base = format!("/v1/s{service:03}/r{m:03}");
        let rule = match m % 4 {
            0 => format!("get: \"{base}/{{name}}\""),
            1 => format!("post: \"{base}\" body: \"*\""),
            2 => format!("patch: \"{base}/{{name}}\" body: \"filter\""),
            _ => format!("delete: \"{base}/{{name}}\""),
        };
        let _ = writeln!(
            text,
            "  rpc Call{m:03}(Request{m:03}) returns (Response{m:03}) {{\n    \
             option (google.api.http) = {{ {rule} }};\n  }}"
        );
    }
    text.push_str("}\n");
    for m in 0..methods {
        let _ = write!(
            text,
            "\nmessage Request{m:03} {{\n  string name = 1;\n  int32 page_size = 2;\n  \
             Filter filter = 3;\n}}\n\
             \nmessage Response{m:03} {{\n  string name = 1;\n  repeated string tags = 2;\n  \
             int64 count = 3;\n  Filter filter = 4;\n}}\n"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_generated_service_compiles_to_routes() {
        let dir = TempDir::new().unwrap();
        let path: PathBuf = dir.0.join("service_007.proto");
        std::fs::write(&path, service_proto(7, 8)).unwrap();
        let loaded = descriptor::load_files(&Sources {
            protos: vec![path],
            include_paths: vec![dir.0.clone()],
            ..Sources::default()
        })
        .unwrap();
        let service = loaded
            .pool
            .get_service_by_name("scale.v1.s007.Service007")
            .unwrap();
        assert_eq!(service.methods().count(), 8);
        let mut config = Config {
            embedded_descriptors: vec![loaded.set],
            ..Config::default()
        };
        config.fallback_routes = false;
        let (_, routes) = Snapshot::routes_only(&config).unwrap();
        assert_eq!(routes.routes().len(), 8);
        assert!(routes.conflicts().is_empty());
    }
}
