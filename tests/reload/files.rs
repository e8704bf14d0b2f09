//! Watched files: failed reloads keep the routes, and files that are swapped,
//! added or replaced (and configs without routes or upstreams) are seen.

use super::*;

#[tokio::test]
async fn failed_reloads_keep_the_routes_and_files_are_watched() {
    let backend = backend().await;
    let dir = support::tempdir();
    let file = dir.join("api.binpb");
    std::fs::write(&file, api(&["Old"])).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![file.clone()];
    config.strict_routes = true;
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    // A corrupt file: the reload fails and says why; the routes stay.
    std::fs::write(&file, b"\xff\xff not a descriptor set").unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["reloaded"], false);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("api.binpb"), "names the file: {error}");
    let (_, status) = gateway.admin_json("/admin/status").await;
    assert!(status["last_error"].is_string(), "{status}");
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    // A conflict under `strict_routes` fails the same way.
    std::fs::write(&file, api(&["Old", "Clash"])).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("conflict"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    // A good file is picked up by the watcher alone (no reload asked).
    // Written beside and renamed over, as editors and deploy tools do.
    let next = dir.join("api.binpb.tmp");
    std::fs::write(&next, api(&["New"])).unwrap();
    std::fs::rename(&next, &file).unwrap();
    gateway.until("/v1/new/x", 200).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 404);
    let (_, status) = gateway.admin_json("/admin/status").await;
    assert!(status["last_error"].is_null(), "{status}");

    // Written in place, too.
    std::fs::write(&file, api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;
    assert_eq!(gateway.status_of("/v1/new/x").await, 404);
}

/// Kubernetes mounts a ConfigMap as `name -> ..data/name` with `..data` a
/// symlink to a timestamped folder, and swaps `..data` on every update:
/// each swap reloads.
#[tokio::test]
async fn symlink_swaps_as_kubernetes_does_reload_every_time() {
    let backend = backend().await;
    let dir = support::tempdir();
    let version = |n: u32, set: Bytes| {
        let folder = dir.join(format!("..v{n}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("api.pb"), set).unwrap();
        let tmp = dir.join("..tmp");
        std::os::unix::fs::symlink(format!("..v{n}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        if n > 1 {
            std::fs::remove_dir_all(dir.join(format!("..v{}", n - 1))).unwrap();
        }
    };
    version(1, api(&["Old"]));
    std::os::unix::fs::symlink("..data/api.pb", dir.join("api.pb")).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![dir.join("api.pb")];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    version(2, api(&["New"]));
    gateway.until("/v1/new/x", 200).await;
    version(3, api(&["Old"]));
    gateway.until("/v1/old/x", 200).await;
    assert_eq!(gateway.status_of("/v1/new/x").await, 404);
    version(4, api(&["New"]));
    gateway.until("/v1/new/x", 200).await;
}

/// A file the config names after a reload is watched from then on; the
/// config file itself is watched.
#[tokio::test]
async fn files_added_to_the_config_are_watched() {
    let b = r#"
syntax = "proto3";
package b.v1;
import "google/api/annotations.proto";
message Thing { string id = 1; }
service B { rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v1/b/{id}" }; } }
"#;
    // One backend serving both packages.
    let sources = support::tempdir();
    std::fs::write(sources.join("all.proto"), ALL).unwrap();
    std::fs::write(sources.join("b.proto"), b).unwrap();
    let backend = EchoBackend::start(support::pool(&support::compile(
        &sources,
        &["all.proto", "b.proto"],
    )))
    .await;
    let dir = support::tempdir();
    std::fs::write(dir.join("a.pb"), api(&[])).unwrap();
    std::fs::write(dir.join("b.pb"), support::compile_source("b.proto", b)).unwrap();
    let file = dir.join("gateway.yaml");
    let yaml = |sets: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\ndescriptor_sets: [{sets}]\nupstreams:\n  default: {{url: \"{}\"}}\n",
            backend.url()
        )
    };
    std::fs::write(&file, yaml("a.pb")).unwrap();
    let path = file.clone();
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
    assert_eq!(gateway.status_of("/v1/b/x").await, 404);

    // The config file changes: b.pb is loaded...
    std::fs::write(&file, yaml("a.pb, b.pb")).unwrap();
    gateway.until("/v1/b/x", 200).await;
    // ...and watched.
    std::fs::write(dir.join("a.pb"), api(&["New"])).unwrap();
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(
        dir.join("b.pb"),
        support::compile_source(
            "b.proto",
            r#"
syntax = "proto3";
package b.v1;
import "google/api/annotations.proto";
message Thing { string id = 1; }
service B { rpc Get(Thing) returns (Thing) { option (google.api.http) = { get: "/v2/b/{id}" }; } }
"#,
        ),
    )
    .unwrap();
    gateway.until("/v2/b/x", 200).await;
}

/// Files and folders replaced the ways deploy tools replace them are
/// seen: a file renamed over another with the same size and modification
/// time (`rsync -t`, `cp -p`), the config folder renamed away with a new
/// one renamed into its place, and the folder removed and made again.
#[tokio::test]
async fn replaced_files_and_folders_are_seen() {
    let backend = backend().await;
    let root = support::tempdir();
    let dir = root.join("conf");
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\ndescriptor_sets: [api.pb]\nupstreams:\n  default: {{url: \"{}\"}}\n",
        backend.url()
    );
    let fill = |dir: &std::path::Path, services: &[&str]| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("gateway.yaml"), &yaml).unwrap();
        std::fs::write(dir.join("api.pb"), api(services)).unwrap();
    };
    fill(&dir, &["New"]);
    let path = dir.join("gateway.yaml");
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    gateway.until("/v1/new/x", 200).await;

    // Same size, same modification time, another file.
    let file = dir.join("api.pb");
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let next = dir.join("api.pb.tmp");
    std::fs::write(&next, api(&["Old"])).unwrap();
    assert_eq!(
        std::fs::metadata(&next).unwrap().len(),
        std::fs::metadata(&file).unwrap().len()
    );
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&next, &file).unwrap();
    gateway.until("/v1/old/x", 200).await;

    // The folder swapped by renames; then a file in the new one edited.
    fill(&root.join("conf.new"), &["New"]);
    std::fs::rename(&dir, root.join("conf.old")).unwrap();
    std::fs::rename(root.join("conf.new"), &dir).unwrap();
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(dir.join("api.pb"), api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;

    // The folder removed and made again.
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fill(&dir, &["New"]);
    gateway.until("/v1/new/x", 200).await;
    std::fs::write(dir.join("api.pb"), api(&["Old"])).unwrap();
    gateway.until("/v1/old/x", 200).await;
}

/// A config reloaded without `upstreams` (as a file caught half-written
/// can read) is refused as `serve` refuses it at start: the routes keep
/// calling the backend instead of all answering 503.
/// A descriptor set caught half-written at a file boundary is valid but
/// holds no service (imports come first): a reload to no routes, where
/// routes are served, is refused and the routes stay.
#[tokio::test]
async fn a_reload_to_no_routes_is_refused() {
    use prost::Message as _;
    let backend = backend().await;
    let dir = support::tempdir();
    let file = dir.join("api.binpb");
    let whole = api(&["Old"]);
    std::fs::write(&file, &whole).unwrap();
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.descriptor_sets = vec![file.clone()];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    let mut set = prost_types::FileDescriptorSet::decode(whole.clone()).unwrap();
    let last = set.file.pop().unwrap();
    assert!(!last.service.is_empty(), "the services' file comes last");
    std::fs::write(&file, set.encode_to_vec()).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no routes"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);

    std::fs::write(&file, &whole).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gateway.status_of("/v1/old/x").await, 200);
}

#[tokio::test]
async fn a_reload_without_upstreams_is_refused() {
    let backend = backend().await;
    let dir = support::tempdir();
    std::fs::write(dir.join("a.pb"), api(&[])).unwrap();
    let file = dir.join("gateway.yaml");
    let head = "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\ndescriptor_sets: [a.pb]\n";
    let whole = format!(
        "{head}upstreams:\n  default: {{url: \"{}\"}}\n",
        backend.url()
    );
    std::fs::write(&file, &whole).unwrap();
    let path = file.clone();
    let gateway = Running::start_with(Box::new(move || {
        Config::from_file(&path).map_err(|e| e.to_string())
    }))
    .await;
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    std::fs::write(&file, head).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no upstream"),
        "{body}"
    );
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);

    // The whole file again: it loads.
    std::fs::write(&file, &whole).unwrap();
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gateway.status_of("/v1/stable/x").await, 200);
}
