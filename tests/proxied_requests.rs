//! What a route group proxying a plain HTTP service makes of the client's
//! request: who asked (`X-Forwarded-*`, over cleartext and TLS).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use protogate::Config;
use protogate::config::ListenerTls;
use reqwest::StatusCode;
use serde_json::Value;
use support::TestGateway;
use support::plain::{group, http_service};
use support::tls::TestCa;

/// The gateway before the kitchen echo backend, with `/legacy` proxied to
/// a plain HTTP service, its config changed by `tweak` after (given the
/// service's address).
async fn gateway(
    tweak: impl FnOnce(&mut Config, SocketAddr),
) -> (support::EchoBackend, TestGateway) {
    let service = http_service().await;
    support::gateway::kitchen(|c| {
        c.routes
            .push(group("/legacy", &format!("http://{service}")));
        tweak(c, service);
    })
    .await
}

/// Over the TLS listener the service is told `X-Forwarded-Proto: https`.
#[tokio::test]
async fn forwarded_proto_is_https_over_tls() {
    let ca = TestCa::new("proxy test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let dir = support::tempdir();
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let (_backend, gateway) = gateway(|c, _| {
        c.tls = Some(ListenerTls::new(
            dir.join("server.pem"),
            dir.join("server.key"),
        ));
    })
    .await;
    protogate::install_crypto_provider();
    for http1 in [true, false] {
        let mut client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(10));
        if http1 {
            client = client.http1_only();
        }
        let response = client
            .build()
            .unwrap()
            .get(gateway.url("/legacy/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    }
}
