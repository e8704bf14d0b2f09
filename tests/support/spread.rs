//! How calls through a gateway spread over echo backends.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{EchoBackend, TestGateway};

/// Sends `n` GETs to `/v1/echo`, each of which must succeed; how many
/// each backend saw.
pub async fn spread<B: Borrow<EchoBackend>>(
    gateway: &TestGateway,
    backends: &[B],
    n: usize,
) -> Vec<usize> {
    let before: Vec<usize> = backends
        .iter()
        .map(|b| b.borrow().records().len())
        .collect();
    let client = super::http1();
    for _ in 0..n {
        let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    backends
        .iter()
        .zip(before)
        .map(|(b, before)| b.borrow().records().len() - before)
        .collect()
}

/// Sends rounds of 20 calls (all must succeed) until one reaches the
/// backends as `want` says; fails after `within`.
pub async fn until_spread<B: Borrow<EchoBackend>>(
    gateway: &TestGateway,
    backends: &[B],
    within: Duration,
    want: impl Fn(&[usize]) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let got = spread(gateway, backends, 20).await;
        if want(&got) {
            return;
        }
        assert!(Instant::now() < deadline, "still spread as {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
