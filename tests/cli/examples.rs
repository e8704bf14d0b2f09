//! The files under `examples/` work as their comments say: the embedded
//! gateway serves its service's routes, and `bookshop.yaml` loads and
//! serves in front of the demo bookshop with every setting it shows.

use serde_json::Value;

use crate::process::{Served, protogate};
use crate::support;

#[path = "../../examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

async fn get(url: &str) -> (u16, Value) {
    let response = support::http1().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_gateway_serves_its_service() {
    let (service, task) = embedded::start_service("127.0.0.1:0".parse().unwrap())
        .await
        .expect("service starts");
    let gateway = embedded::start_gateway("127.0.0.1:0".parse().unwrap(), service)
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gateway.local_addr());
    let (status, body) = get(&format!("{base}/v1/shelves")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["shelves"].as_array().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    let created = support::http1()
        .post(format!("{base}/v1/shelves/fiction/books"))
        .json(&serde_json::json!({"title": "Embedded", "author": "A. Example"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status().as_u16(), 200);
    let book: Value = created.json().await.expect("JSON");
    let (status, fetched) = get(&format!("{base}/v1/{}", book["name"].as_str().unwrap())).await;
    assert_eq!((status, &fetched["title"]), (200, &Value::from("Embedded")));
    gateway.shutdown().await;
    task.abort();
}

#[test]
fn bookshop_yaml_lists_its_routes() {
    let run = protogate(&["routes", "--config", "examples/bookshop.yaml"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let routes: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(routes.len(), 11, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("POST    /protogate.demo.v1.Bookshop/CountBooks"),
        "{}",
        run.stdout
    );
}

/// The file as written, with the bookshop where the test runs it and the
/// include path made absolute for the copy's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookshop_yaml_serves_in_front_of_the_bookshop() {
    let backend = protogate::demo::Backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bookshop starts");
    let text = std::fs::read_to_string(support::repo().join("examples/bookshop.yaml"))
        .expect("examples/bookshop.yaml");
    let proto = support::repo().join("proto");
    let edited = text
        .replace("127.0.0.1:50051", &backend.addr().to_string())
        .replace(
            "include_paths: [../proto]",
            &format!("include_paths: [{}]", proto.display()),
        );
    assert_ne!(edited, text);
    let dir = support::tempdir();
    let config = dir.join("bookshop.yaml");
    std::fs::write(&config, edited).expect("write config");
    let config = config.display().to_string();
    let served = tokio::task::spawn_blocking(move || {
        Served::start(&[
            "serve",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
    })
    .await
    .expect("serve starts");
    let (status, body) = get(&served.url("/v1/shelves/fiction/books?page_size=2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["books"].as_array().map(Vec::len), Some(2), "{body}");
    let counted = support::http1()
        .post(served.url("/protogate.demo.v1.Bookshop/CountBooks"))
        .json(&serde_json::json!({"parent": "shelves/fiction"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(counted.status().as_u16(), 200);
}
