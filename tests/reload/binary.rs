//! The binary: reloads on SIGHUP, and `routes` asks reflecting upstreams too.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_sighup() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let url = backend.url();
    let gateway = tokio::task::spawn_blocking(move || {
        BinGateway::spawn(&["serve", "--upstream", &url, "--reflect"])
    })
    .await
    .unwrap();
    let client = support::http1();
    let status = async |path: &str| {
        let response = client.get(gateway.url(path)).send().await.unwrap();
        response.status().as_u16()
    };
    assert_eq!(status("/v1/old/x").await, 200);

    backend.reflect(&api(&["New"]));
    // No refresh interval and no files: only the signal reloads.
    assert_eq!(status("/v1/new/x").await, 404);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while status("/v1/new/x").await != 200 {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status("/v1/old/x").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_command_reflects_too() {
    let backend = backend().await;
    backend.reflect(&api(&["Old"]));
    let url = backend.url();
    let output = tokio::task::spawn_blocking(move || {
        support::gateway::binary()
            .args(["routes", "--upstream", &url, "--reflect"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("/v1/old/{id}"), "{stdout}");
    assert!(stdout.contains("reload.v1.Stable"), "{stdout}");
}
