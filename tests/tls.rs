//! `https://` upstreams: rustls toward a TLS gRPC backend, with a custom CA
//! and a server name override; a certificate the gateway cannot verify is a
//! 503, never a plaintext fallback.

mod support;

use std::net::SocketAddr;

use protogate::config::UpstreamTls;
use protogate::demo::{Bookshop, pb::bookshop_server::BookshopServer};
use reqwest::StatusCode;
use serde_json::Value;
use support::TestGateway;
use support::tls::TestCa;
use tonic::transport::{Identity, ServerTlsConfig};

/// The demo bookshop behind TLS with the given certificate.
async fn tls_backend(cert: &str, key: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    protogate::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        .unwrap()
        .add_service(BookshopServer::new(Bookshop::with_sample_books()));
    let task = tokio::spawn(async move {
        let _ = server
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (addr, task)
}

/// `text` written to `name` in `dir`; returns the file's path.
fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `GET /v1/shelves` through `gw`.
async fn shelves(gw: &TestGateway) -> reqwest::Response {
    support::http1()
        .get(gw.url("/v1/shelves"))
        .send()
        .await
        .unwrap()
}

async fn gateway(url: String, tls: Option<UpstreamTls>) -> TestGateway {
    let mut config = protogate::demo::config(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
    );
    let upstream = config.upstreams.get_mut("bookshop").unwrap();
    upstream.url = url;
    upstream.tls = tls;
    TestGateway::start(config).await
}

#[tokio::test]
async fn https_upstream_with_a_custom_ca() {
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (addr, _task) = tls_backend(&cert, &key).await;
    let dir = support::tempdir();
    let tls = UpstreamTls {
        ca_file: Some(write(&dir, "ca.pem", &ca.pem)),
        ..UpstreamTls::default()
    };
    let gw = gateway(format!("https://{addr}"), Some(tls)).await;
    let response = shelves(&gw).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["shelves"][0]["name"], "shelves/fiction");
}

#[tokio::test]
async fn server_name_override() {
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["books.internal"]);
    let (addr, _task) = tls_backend(&cert, &key).await;
    let dir = support::tempdir();
    let tls = UpstreamTls {
        ca_file: Some(write(&dir, "ca.pem", &ca.pem)),
        server_name: Some("books.internal".to_owned()),
        ..UpstreamTls::default()
    };
    let gw = gateway(format!("https://{addr}"), Some(tls)).await;
    let response = shelves(&gw).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn untrusted_certificate_is_a_503() {
    let ca = TestCa::new("unknown CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (addr, _task) = tls_backend(&cert, &key).await;
    // System roots only: the private CA is not trusted.
    let gw = gateway(format!("https://{addr}"), None).await;
    let response = shelves(&gw).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14);
}

#[tokio::test]
async fn plaintext_upstream_to_a_tls_backend_fails_cleanly() {
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (addr, _task) = tls_backend(&cert, &key).await;
    let gw = gateway(format!("http://{addr}"), None).await;
    let response = shelves(&gw).await;
    // Not the client's doing (never a 4xx or 499), with the way out in
    // the message. The TLS server answers our cleartext preface with a TLS
    // alert, which the handshake reads (it waits for the peer's SETTINGS)
    // as another protocol: 502, as for an HTTP/1.1 server. Should the
    // server's reset overtake the alert, nothing is read: a close without
    // a byte, 503 with the same hint.
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let code = match status {
        StatusCode::BAD_GATEWAY => 13,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        other => panic!("{other}: {body}"),
    };
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("upstream `bookshop` (http://{addr}): ")),
        "{message}"
    );
    assert!(message.contains("needs an https:// URL"), "{message}");
}

/// TLS files that cannot work stop the gateway at startup, naming the
/// file and what is wrong, for gRPC upstreams and proxied prefixes alike.
#[tokio::test]
async fn unusable_tls_files_are_refused_at_startup() {
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (_, other_key) = ca.issue(&["127.0.0.1"]);
    let dir = support::tempdir();
    let garbage = write(&dir, "garbage.pem", "this is not a certificate\n");
    let empty = write(&dir, "empty.pem", "");
    let cert_file = write(&dir, "client.pem", &cert);
    let key_file = write(&dir, "client.key", &key);
    let wrong_key = write(&dir, "other.key", &other_key);
    let cases = [
        (
            UpstreamTls {
                ca_file: Some(garbage.clone()),
                ..UpstreamTls::default()
            },
            "garbage.pem",
            "no certificate",
        ),
        (
            UpstreamTls {
                ca_file: Some(empty),
                ..UpstreamTls::default()
            },
            "empty.pem",
            "no certificate",
        ),
        (
            UpstreamTls {
                ca_file: Some(dir.join("missing.pem")),
                ..UpstreamTls::default()
            },
            "missing.pem",
            "cannot read",
        ),
        (
            UpstreamTls {
                cert_file: Some(garbage.clone()),
                key_file: Some(key_file.clone()),
                ..UpstreamTls::default()
            },
            "tls.cert_file",
            "no certificate",
        ),
        (
            UpstreamTls {
                cert_file: Some(cert_file.clone()),
                key_file: Some(cert_file.clone()),
                ..UpstreamTls::default()
            },
            "tls.key_file",
            "no private key",
        ),
        (
            UpstreamTls {
                cert_file: Some(cert_file.clone()),
                key_file: Some(wrong_key),
                ..UpstreamTls::default()
            },
            "other.key",
            "",
        ),
    ];
    for (tls, file, reason) in cases {
        // A gRPC upstream.
        let mut config = protogate::demo::config(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
        );
        let upstream = config.upstreams.get_mut("bookshop").unwrap();
        upstream.url = "https://127.0.0.1:1".to_owned();
        upstream.tls = Some(tls.clone());
        let err = protogate::start(&config).await.unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(reason), "{tls:?}: {err}");
        // A proxied prefix.
        let mut config = protogate::demo::config(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
        );
        config.routes.push(protogate::config::RouteGroupConfig {
            prefix: "/legacy/".to_owned(),
            upstream: "https://127.0.0.1:1".to_owned(),
            timeout: None,
            strip_prefix: false,
            tls: Some(tls.clone()),
            auth: None,
            scopes: Vec::new(),
        });
        let err = protogate::start(&config).await.unwrap_err().to_string();
        assert!(
            err.contains(file) && err.contains(reason),
            "prefix, {tls:?}: {err}"
        );
    }
}

#[tokio::test]
async fn tls_upstream_to_a_cleartext_backend_says_so() {
    let backend = protogate::demo::Backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = gateway(format!("https://{}", backend.addr()), None).await;
    let response = shelves(&gw).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("needs an http:// URL"), "{message}");
}

/// A backend that requires a client certificate the gateway does not send:
/// 503 (not a 502 asking whether it is a gRPC server), pointing at
/// `tls.cert_file`; with the certificate the call goes through.
#[tokio::test]
async fn a_client_certificate_required_but_not_sent_says_so() {
    protogate::install_crypto_provider();
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&cert, &key))
                .client_ca_root(tonic::transport::Certificate::from_pem(&ca.pem)),
        )
        .unwrap()
        .add_service(BookshopServer::new(Bookshop::with_sample_books()));
    let _task = tokio::spawn(async move {
        let _ = server
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    let dir = support::tempdir();
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let without = UpstreamTls {
        ca_file: Some(ca_file.clone()),
        ..UpstreamTls::default()
    };
    let gw = gateway(format!("https://{addr}"), Some(without)).await;
    let response = shelves(&gw).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("tls.cert_file"), "{message}");
    assert!(!message.contains("is it a gRPC server"), "{message}");

    let (client_cert, client_key) = ca.issue_client("gateway");
    let with = UpstreamTls {
        ca_file: Some(ca_file),
        cert_file: Some(write(&dir, "client.pem", &client_cert)),
        key_file: Some(write(&dir, "client.key", &client_key)),
        ..UpstreamTls::default()
    };
    let gw = gateway(format!("https://{addr}"), Some(with)).await;
    let response = shelves(&gw).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A certificate the gateway cannot verify fails the connection, not the
/// call on it: 503, saying why and what setting helps.
#[tokio::test]
async fn a_certificate_that_does_not_verify_says_why() {
    let ca = TestCa::new("protogate test CA");
    let dir = support::tempdir();
    let trusted = UpstreamTls {
        ca_file: Some(write(&dir, "ca.pem", &ca.pem)),
        ..UpstreamTls::default()
    };
    let stranger = TestCa::new("unknown CA");
    let (cert, key) = stranger.issue(&["127.0.0.1"]);
    let (unknown, _unknown_task) = tls_backend(&cert, &key).await;
    let (cert, key) = ca.issue(&["books.internal"]);
    let (misnamed, _misnamed_task) = tls_backend(&cert, &key).await;
    for (addr, why, setting) in [
        (unknown, "UnknownIssuer", "tls.ca_file"),
        (misnamed, "not valid for name", "tls.server_name"),
    ] {
        let gw = gateway(format!("https://{addr}"), Some(trusted.clone())).await;
        let response = shelves(&gw).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], 14, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("TLS handshake failed"), "{message}");
        assert!(message.contains(why), "{message}");
        assert!(message.contains(setting), "{message}");
    }
}

/// A TLS server that does not agree on HTTP/2 by ALPN, refusing it (it
/// takes `http/1.1` only) or answering no protocol: 503 at once, naming
/// ALPN, not a wait for HTTP/2 that never comes.
#[tokio::test]
async fn a_tls_server_without_h2_by_alpn_is_a_503_naming_alpn() {
    let ca = TestCa::new("protogate test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let dir = support::tempdir();
    let tls = UpstreamTls {
        ca_file: Some(write(&dir, "ca.pem", &ca.pem)),
        ..UpstreamTls::default()
    };
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let config = support::tls::server_config(&cert, &key, alpn);
        let (addr, _task) = tls_server(config).await;
        let gw = gateway(format!("https://{addr}"), Some(tls.clone())).await;
        let response = shelves(&gw).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{alpn:?}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("ALPN (h2)"), "{alpn:?}: {message}");
        assert!(!message.contains("client certificate"), "{message}");
    }
}

/// A TLS server that completes handshakes with `config` and then reads
/// and says nothing.
async fn tls_server(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut sink = Vec::new();
                    let _ = tls.read_to_end(&mut sink).await;
                }
            });
        }
    });
    (addr, task)
}
