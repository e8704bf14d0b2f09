//! TLS and mTLS on the gateway's own listener, with real clients: reqwest
//! over HTTPS (HTTP/1.1 and HTTP/2 by ALPN) and tonic for gRPC, both
//! through to an echo backend; client certificates required and optional;
//! certificates reloaded (by hand and by the file watcher) with bad new
//! files keeping the old ones; revocation lists, checked against the
//! client CAs when read; cleartext and stalled clients on the TLS port.
//! Certificates are made per test with rcgen.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use protogate::Config;
use protogate::config::{ClientAuth, ListenerTls};
use reqwest::{StatusCode, Version};
use serde_json::Value;
use support::TestGateway;
use support::tls::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The listener's files in a folder of their own.
struct Files {
    dir: support::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

impl Files {
    /// A server certificate for 127.0.0.1 from `ca`; `client_ca` trusted
    /// for client certificates.
    fn new(ca: &TestCa, client_ca: &TestCa) -> Files {
        let dir = support::tempdir();
        let files = Files {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_ca: dir.join("client-ca.pem"),
            dir,
        };
        files.issue(ca);
        write(&files.client_ca, &client_ca.pem);
        files
    }

    /// Replaces the server certificate and key by new ones from `ca`.
    fn issue(&self, ca: &TestCa) {
        let (cert, key) = ca.issue(&["127.0.0.1"]);
        write(&self.key, &key);
        write(&self.cert, &cert);
    }

    fn tls(&self) -> ListenerTls {
        ListenerTls::new(&self.cert, &self.key)
    }
}

/// Writes `text` to `path` by renaming a new file over it, as deploy tools
/// do, so that the watcher never reads half a file.
fn write(path: &Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// The kitchen echo backend and the gateway in front of it, serving TLS
/// with `tls`, with the admin listener on.
async fn gateway(tls: ListenerTls) -> (support::EchoBackend, TestGateway) {
    support::gateway::kitchen(|config| {
        config.tls = Some(tls);
        config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// A client trusting only the CA in `roots`, showing `identity` (a
/// certificate and its key) when given; HTTP/1.1 only, or whatever ALPN
/// settles.
fn client(roots: &str, identity: Option<&(String, String)>, http1: bool) -> reqwest::Client {
    protogate::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(roots.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// `GET /v1/echo?s=hi` through the gateway: the HTTP version it was served
/// over, or why it failed.
async fn echo(client: &reqwest::Client, gateway: &TestGateway) -> Result<Version, String> {
    let response = client
        .get(gateway.url("/v1/echo?s=hi"))
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let version = response.version();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.map_err(|err| error_chain(&err))?;
    assert_eq!(body["s"], "hi", "{body}");
    Ok(version)
}

/// An error with its sources, to see why a connection failed.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// A failure of `echo` that is the TLS handshake's, not a slow gateway's.
#[track_caller]
fn assert_refused(result: Result<Version, String>, why: &str) {
    match result {
        Ok(version) => panic!("{why}: served over {version:?}"),
        Err(err) => assert!(!err.contains("timed out"), "{why}: {err}"),
    }
}

/// `POST /admin/reload` on `gateway`'s admin listener: the status and the
/// JSON body.
async fn reload(gateway: &TestGateway) -> (StatusCode, Value) {
    let admin = gateway.server.admin_addr().unwrap();
    let response = support::http1()
        .post(format!("http://{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json::<Value>().await.unwrap())
}

/// A tonic channel to the gateway over TLS, trusting `roots`.
async fn grpc_channel(
    addr: SocketAddr,
    roots: &str,
    identity: Option<&(String, String)>,
) -> Result<tonic::transport::Channel, String> {
    protogate::install_crypto_provider();
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(roots));
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    tonic::transport::Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|err| error_chain(&err))
}

/// `kitchen.v1.Kitchen/Echo` as a gRPC client calls it, passed through to
/// the backend: the answer, encoded.
async fn grpc_echo(
    channel: tonic::transport::Channel,
    sink: Bytes,
) -> Result<Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
    let answer = grpc
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(sink),
            http::uri::PathAndQuery::from_static("/kitchen.v1.Kitchen/Echo"),
            protogate::upstream::codec::RawCodec,
        )
        .await?;
    Ok(answer.into_inner())
}

#[tokio::test]
async fn rest_over_https_with_http1_and_http2() {
    let ca = TestCa::new("listener CA");
    let files = Files::new(&ca, &ca);
    let (backend, gateway) = gateway(files.tls()).await;
    assert!(gateway.base.starts_with("https://"));

    let http1 = client(&ca.pem, None, true);
    assert_eq!(echo(&http1, &gateway).await, Ok(Version::HTTP_11));
    assert_eq!(backend.last().method, "/kitchen.v1.Kitchen/Echo");
    // Offered both, the client gets HTTP/2: the listener prefers `h2`.
    let any = client(&ca.pem, None, false);
    assert_eq!(echo(&any, &gateway).await, Ok(Version::HTTP_2));

    // A client that does not trust the gateway's CA does not get through.
    let other = TestCa::new("another CA");
    assert_refused(
        echo(&client(&other.pem, None, true), &gateway).await,
        "a client trusting another CA",
    );
}

#[tokio::test]
async fn grpc_passes_through_over_tls() {
    let ca = TestCa::new("listener CA");
    let files = Files::new(&ca, &ca);
    let (backend, gateway) = gateway(files.tls()).await;
    let channel = grpc_channel(gateway.addr(), &ca.pem, None).await.unwrap();
    // A kitchen.v1.Sink with `s: "hi"`.
    let sink = Bytes::from_static(b"\x0a\x02hi");
    let echoed = grpc_echo(channel, sink.clone()).await.unwrap();
    assert_eq!(echoed, sink);
    assert_eq!(backend.last().method, "/kitchen.v1.Kitchen/Echo");
}

#[tokio::test]
async fn required_client_certificates() {
    let ca = TestCa::new("listener CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca, &clients);
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Required);
    let (backend, gateway) = gateway(tls).await;
    let valid = clients.issue_client("alice");
    let foreign = TestCa::new("unknown CA").issue_client("mallory");

    let with_cert = client(&ca.pem, Some(&valid), true);
    assert_eq!(echo(&with_cert, &gateway).await, Ok(Version::HTTP_11));
    let with_cert = client(&ca.pem, Some(&valid), false);
    assert_eq!(echo(&with_cert, &gateway).await, Ok(Version::HTTP_2));
    backend.clear();
    assert_refused(
        echo(&client(&ca.pem, None, true), &gateway).await,
        "no client certificate",
    );
    assert_refused(
        echo(&client(&ca.pem, Some(&foreign), true), &gateway).await,
        "a client certificate from another CA",
    );
    assert!(
        backend.records().is_empty(),
        "refused calls reached the backend"
    );

    // gRPC clients too.
    let sink = Bytes::from_static(b"\x0a\x02hi");
    let channel = grpc_channel(gateway.addr(), &ca.pem, Some(&valid))
        .await
        .unwrap();
    assert_eq!(grpc_echo(channel, sink.clone()).await.unwrap(), sink);
    let refused = match grpc_channel(gateway.addr(), &ca.pem, None).await {
        Ok(channel) => grpc_echo(channel, sink.clone()).await.err(),
        Err(_) => Some(tonic::Status::unavailable("did not connect")),
    };
    assert!(
        refused.is_some(),
        "a gRPC client without a certificate got through"
    );
}

#[tokio::test]
async fn optional_client_certificates() {
    let ca = TestCa::new("listener CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca, &clients);
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Optional);
    let (_backend, gateway) = gateway(tls).await;
    let valid = clients.issue_client("alice");
    let foreign = TestCa::new("unknown CA").issue_client("mallory");

    assert_eq!(
        echo(&client(&ca.pem, None, true), &gateway).await,
        Ok(Version::HTTP_11),
        "no certificate is fine"
    );
    assert_eq!(
        echo(&client(&ca.pem, Some(&valid), true), &gateway).await,
        Ok(Version::HTTP_11)
    );
    assert_refused(
        echo(&client(&ca.pem, Some(&foreign), true), &gateway).await,
        "a certificate shown must verify",
    );
}

/// `POST /admin/reload`: the new files' certificate for new connections,
/// and bad files keep the one in use.
#[tokio::test]
async fn certificates_reload_and_bad_files_keep_the_old_ones() {
    let old_ca = TestCa::new("old CA");
    let files = Files::new(&old_ca, &old_ca);
    let (_backend, gateway) = gateway(files.tls()).await;
    let trusts_old = || client(&old_ca.pem, None, true);
    assert!(echo(&trusts_old(), &gateway).await.is_ok());

    let new_ca = TestCa::new("new CA");
    files.issue(&new_ca);
    let (status, body) = reload(&gateway).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let trusts_new = || client(&new_ca.pem, None, true);
    assert_eq!(echo(&trusts_new(), &gateway).await, Ok(Version::HTTP_11));
    assert_refused(
        echo(&trusts_old(), &gateway).await,
        "the old certificate after the reload",
    );

    // A certificate that is not one: the reload fails, naming the file,
    // and the listener keeps the certificate it has.
    write(&files.cert, "not a certificate\n");
    let (status, body) = reload(&gateway).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("tls.cert_file"), "{body}");
    assert!(error.contains("server.pem"), "{body}");
    assert_eq!(echo(&trusts_new(), &gateway).await, Ok(Version::HTTP_11));

    // A certificate whose key is not the one given: the same.
    let third = TestCa::new("third CA");
    let (cert, _) = third.issue(&["127.0.0.1"]);
    write(&files.cert, &cert);
    let (status, body) = reload(&gateway).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("tls.key_file"),
        "{body}"
    );
    let status = gateway.server.reloader().unwrap().status();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("tls.key_file")),
        "{status:?}"
    );
    assert_eq!(echo(&trusts_new(), &gateway).await, Ok(Version::HTTP_11));
    assert_refused(
        echo(&client(&third.pem, None, true), &gateway).await,
        "a certificate whose key is missing",
    );

    // Good files again: the next reload takes them.
    files.issue(&third);
    let (status, body) = reload(&gateway).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["last_error"], Value::Null, "{body}");
    assert_eq!(
        echo(&client(&third.pem, None, true), &gateway).await,
        Ok(Version::HTTP_11)
    );
}

/// New files are seen without being asked: the watcher reloads them,
/// client CA included.
#[tokio::test]
async fn changed_certificate_files_are_watched() {
    let old_ca = TestCa::new("old CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&old_ca, &clients);
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Required);
    let (_backend, gateway) = gateway(tls).await;
    let alice = clients.issue_client("alice");
    assert!(
        echo(&client(&old_ca.pem, Some(&alice), true), &gateway)
            .await
            .is_ok()
    );

    let new_ca = TestCa::new("new CA");
    let new_clients = TestCa::new("new client CA");
    let bob = new_clients.issue_client("bob");
    files.issue(&new_ca);
    write(&files.client_ca, &new_clients.pem);
    let mut served = Err(String::new());
    for _ in 0..100 {
        served = echo(&client(&new_ca.pem, Some(&bob), true), &gateway).await;
        if served.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, Ok(Version::HTTP_11), "the new files were not taken");
    assert_refused(
        echo(&client(&new_ca.pem, Some(&alice), true), &gateway).await,
        "a client certificate of the old client CA",
    );
}

/// With `client_crl_file`, a client certificate its CA revoked is refused
/// (REST and gRPC alike) while the CA's others are served; a list past
/// its next update still applies. A new list is taken on reload, and
/// the file is watched.
#[tokio::test]
async fn revoked_client_certificates_are_refused() {
    let ca = TestCa::new("listener CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca, &clients);
    let crl = files.dir.join("clients.crl");
    // Long past its next update: still in force.
    write(&crl, &clients.revocation_list(&[66], (2024, 2, 1)));
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Required)
        .with_client_crl(&crl);
    let (backend, gateway) = gateway(tls).await;
    let alice = clients.issue_client_numbered("alice", 65);
    let mallory = clients.issue_client_numbered("mallory", 66);

    assert_eq!(
        echo(&client(&ca.pem, Some(&alice), false), &gateway).await,
        Ok(Version::HTTP_2)
    );
    backend.clear();
    assert_refused(
        echo(&client(&ca.pem, Some(&mallory), true), &gateway).await,
        "a revoked client certificate",
    );
    let sink = Bytes::from_static(b"\x0a\x02hi");
    let refused = match grpc_channel(gateway.addr(), &ca.pem, Some(&mallory)).await {
        Ok(channel) => grpc_echo(channel, sink.clone()).await.err(),
        Err(_) => Some(tonic::Status::unavailable("did not connect")),
    };
    assert!(refused.is_some(), "a revoked gRPC client got through");
    assert!(backend.records().is_empty(), "a revoked client was served");

    // The CA revokes alice too; the watcher takes the new list.
    write(&crl, &clients.revocation_list(&[65, 66], (2099, 1, 1)));
    let mut served = Ok(Version::HTTP_11);
    for _ in 0..100 {
        served = echo(&client(&ca.pem, Some(&alice), true), &gateway).await;
        if served.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(served, "a client certificate revoked by the new list");
    let bob = clients.issue_client_numbered("bob", 67);
    assert_eq!(
        echo(&client(&ca.pem, Some(&bob), true), &gateway).await,
        Ok(Version::HTTP_11)
    );
}

/// A reload to a revocation list that cannot work (signed by another key
/// than the client CA's, or only lists for other issuers) fails, naming
/// the file and why, and the listener keeps the list it has.
#[tokio::test]
async fn bad_revocation_lists_on_reload_keep_the_old_ones() {
    let ca = TestCa::new("listener CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca, &clients);
    let crl = files.dir.join("clients.crl");
    write(&crl, &clients.revocation_list(&[66], (2099, 1, 1)));
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Required)
        .with_client_crl(&crl);
    let (_backend, gateway) = gateway(tls).await;
    let alice = clients.issue_client_numbered("alice", 65);
    let mallory = clients.issue_client_numbered("mallory", 66);

    let cases = [
        (
            clients.revocation_list_signed_by_other_key(&[], &rcgen::PKCS_ECDSA_P256_SHA256),
            "names the client CA `CN=client CA` (certificate 1 of 1 in tls.client_ca_file",
            "signed by another key than that CA's",
        ),
        (
            TestCa::new("unrelated CA").revocation_list(&[], (2099, 1, 1)),
            "no list for the client CA `CN=client CA`",
            "the file has lists for `CN=unrelated CA`",
        ),
    ];
    for (list, which, why) in cases {
        write(&crl, &list);
        let (status, body) = reload(&gateway).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        for part in ["tls.client_crl_file", "clients.crl", which, why] {
            assert!(error.contains(part), "`{part}` not in: {body}");
        }
        let status = gateway.server.reloader().unwrap().status();
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(why)),
            "{status:?}"
        );
        assert_eq!(
            echo(&client(&ca.pem, Some(&alice), true), &gateway).await,
            Ok(Version::HTTP_11)
        );
        assert_refused(
            echo(&client(&ca.pem, Some(&mallory), true), &gateway).await,
            "a client certificate revoked by the list kept",
        );
    }
}

/// A client may send an intermediate CA after its own certificate: that
/// CA's list comes from the file too, where it cannot be checked (its key
/// comes only with the client), and a client whose intermediate has no
/// list is refused, its status unknown. A client CA that issued another
/// one in `client_ca_file` needs no list for that one's clients.
#[tokio::test]
async fn intermediate_cas_and_their_revocation_lists() {
    let ca = TestCa::new("listener CA");
    let root = TestCa::new("client root CA");
    let intermediate = root.intermediate("client intermediate CA");
    let files = Files::new(&ca, &root);
    let crl = files.dir.join("clients.crl");
    let root_list = root.revocation_list(&[], (2099, 1, 1));
    let intermediate_list = intermediate.revocation_list(&[66], (2099, 1, 1));
    write(&crl, &format!("{root_list}{intermediate_list}"));
    let tls = files
        .tls()
        .with_client_ca(&files.client_ca, ClientAuth::Required)
        .with_client_crl(&crl);
    let (_backend, gateway) = gateway(tls).await;
    let chained = |(cert, key): (String, String)| (format!("{cert}{}", intermediate.pem), key);
    let alice = chained(intermediate.issue_client_numbered("alice", 65));
    let mallory = chained(intermediate.issue_client_numbered("mallory", 66));
    let gateway = &gateway;
    let served = |identity| {
        let client = client(&ca.pem, Some(identity), true);
        async move { echo(&client, gateway).await }
    };
    assert_eq!(served(&alice).await, Ok(Version::HTTP_11));
    assert_refused(
        served(&mallory).await,
        "a client revoked by its intermediate",
    );

    write(&crl, &root_list);
    let (status, body) = reload(gateway).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_refused(
        served(&alice).await,
        "a client whose intermediate has no revocation list",
    );

    // Both CAs trusted, a list for the intermediate only: clients' chains
    // end at the intermediate, whose list is checked.
    write(&crl, &intermediate_list);
    write(
        &files.client_ca,
        &format!("{}{}", root.pem, intermediate.pem),
    );
    let (status, body) = reload(gateway).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(served(&alice).await, Ok(Version::HTTP_11));
    assert_refused(served(&mallory).await, "a client revoked by its CA");
}

/// `GET /v1/echo` at `host` (resolved to the gateway), trusting only the
/// CA in `roots`: whether the certificate served for that name verified.
async fn echo_by_name(roots: &str, host: &str, gateway: &TestGateway) -> Result<(), String> {
    protogate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(roots.as_bytes()).unwrap()])
        .resolve(host, gateway.addr())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://{host}:{}/v1/echo?s=hi", gateway.addr().port());
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

/// `tls.certificates`: a client naming a host (SNI) gets the certificate
/// with that name, wildcards covering one label; one naming another host,
/// or none (an IP address), gets `cert_file`'s. A new file is taken on
/// reload.
#[tokio::test]
async fn certificates_are_chosen_by_the_name_asked_for() {
    let ca = TestCa::new("listener CA");
    let named_ca = TestCa::new("named CA");
    let files = Files::new(&ca, &ca);
    let (named_cert, named_key) = (files.dir.join("named.pem"), files.dir.join("named.key"));
    let (cert, key) = named_ca.issue(&["api.named.test", "*.wild.test"]);
    write(&named_cert, &cert);
    write(&named_key, &key);
    let tls = files.tls().with_named_certificate(&named_cert, &named_key);
    let (_backend, gateway) = gateway(tls).await;

    assert_eq!(
        echo_by_name(&named_ca.pem, "api.named.test", &gateway).await,
        Ok(())
    );
    assert_eq!(
        echo_by_name(&named_ca.pem, "x.wild.test", &gateway).await,
        Ok(())
    );
    assert_eq!(
        echo(&client(&ca.pem, None, true), &gateway).await,
        Ok(Version::HTTP_11)
    );
    for host in ["other.test", "a.b.wild.test"] {
        assert!(
            echo_by_name(&named_ca.pem, host, &gateway).await.is_err(),
            "{host} got the named certificate"
        );
    }

    // The named certificate renewed by another CA: the watcher takes it.
    let renewed_ca = TestCa::new("renewed CA");
    let (cert, key) = renewed_ca.issue(&["api.named.test"]);
    write(&named_key, &key);
    write(&named_cert, &cert);
    let mut served = Err(String::new());
    for _ in 0..100 {
        served = echo_by_name(&renewed_ca.pem, "api.named.test", &gateway).await;
        if served.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, Ok(()), "the renewed certificate was not taken");
}

/// Dropping `tls` from the config takes a restart: a reload goes through
/// and the listener stays on TLS.
#[tokio::test]
async fn dropping_tls_takes_a_restart() {
    let ca = TestCa::new("listener CA");
    let files = Files::new(&ca, &ca);
    let set = support::kitchen();
    let backend = support::EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.tls = Some(files.tls());
    let shared = Arc::new(Mutex::new(config));
    let source = shared.clone();
    let server = protogate::start_with(Box::new(move || Ok(source.lock().clone())))
        .await
        .unwrap();
    let gateway = TestGateway {
        base: format!("https://{}", server.local_addr()),
        server,
    };
    assert!(echo(&client(&ca.pem, None, true), &gateway).await.is_ok());

    shared.lock().tls = None;
    let reloader = gateway.server.reloader().unwrap();
    reloader.reload("test").await.unwrap();
    assert_eq!(
        echo(&client(&ca.pem, None, true), &gateway).await,
        Ok(Version::HTTP_11)
    );
    let cleartext = support::http1()
        .get(format!("http://{}/v1/echo?s=hi", gateway.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cleartext.status(),
        StatusCode::BAD_REQUEST,
        "cleartext after the reload"
    );
}

/// A cleartext HTTP client on the TLS port is told to use https:// (never
/// served), one that never finishes its handshake holds only its own
/// connection, and the listener serves the next client.
#[tokio::test]
async fn cleartext_and_stalled_clients_do_not_stop_the_listener() {
    let ca = TestCa::new("listener CA");
    let files = Files::new(&ca, &ca);
    let (backend, gateway) = gateway(files.tls()).await;

    let cleartext = support::http1()
        .get(format!("http://{}/v1/echo?s=hi", gateway.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleartext.status(), StatusCode::BAD_REQUEST);
    let body: Value = cleartext.json().await.unwrap();
    assert_eq!(body["code"], 3, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("https://"),
        "{body}"
    );

    // HTTP/2 with prior knowledge: the server's SETTINGS, then a GOAWAY
    // (PROTOCOL_ERROR) whose debug data says the same; also when the
    // preface's first byte comes alone.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for split in [0, 1] {
        let mut h2c = tokio::net::TcpStream::connect(gateway.addr())
            .await
            .unwrap();
        h2c.set_nodelay(true).unwrap();
        h2c.write_all(&preface[..split]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        h2c.write_all(&preface[split..]).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), h2c.read_to_end(&mut answer))
            .await
            .expect("the gateway closes the connection")
            .ok();
        assert_eq!(answer[..9], [0, 0, 0, 4, 0, 0, 0, 0, 0], "{answer:?}");
        assert_eq!(answer[12], 7, "a GOAWAY: {answer:?}");
        assert_eq!(answer[22..26], [0, 0, 0, 1], "PROTOCOL_ERROR: {answer:?}");
        assert!(String::from_utf8_lossy(&answer[26..]).contains("use https://"));
    }

    // An empty line before a cleartext request is still HTTP.
    let answer = support::client::raw_text(
        gateway.addr(),
        "\r\nGET /v1/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("use https://"), "{answer}");

    // Not HTTP, not TLS: closed without an answer.
    let mut raw = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    raw.write_all(b"\x00\x01 hello?\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer))
        .await
        .expect("the gateway closes the connection")
        .ok();
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    assert!(backend.records().is_empty());

    // Connected, saying nothing: its handshake waits on its own task.
    let _stalled = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    let served = tokio::time::timeout(
        Duration::from_secs(5),
        echo(&client(&ca.pem, None, true), &gateway),
    )
    .await
    .expect("served while another handshake is pending");
    assert_eq!(served, Ok(Version::HTTP_11));
}

/// TLS files that cannot work stop the gateway at startup (and fail
/// `protogate routes`), naming the setting, the file and what is wrong.
#[tokio::test]
async fn unusable_files_are_refused_at_startup() {
    let ca = TestCa::new("listener CA");
    let files = Files::new(&ca, &ca);
    let (_, other_key) = ca.issue(&["127.0.0.1"]);
    let other_key_file = files.dir.join("other.key");
    write(&other_key_file, &other_key);
    let garbage = files.dir.join("garbage.pem");
    write(&garbage, "not PEM at all\n");
    let (nameless, nameless_key) = (
        files.dir.join("nameless.pem"),
        files.dir.join("nameless.key"),
    );
    let (cert, key) = ca.issue_client("no DNS name");
    write(&nameless, &cert);
    write(&nameless_key, &key);
    let broken_crl = files.dir.join("broken.crl");
    write(
        &broken_crl,
        "-----BEGIN X509 CRL-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END X509 CRL-----\n",
    );
    let forged = files.dir.join("forged.crl");
    write(
        &forged,
        &ca.revocation_list_signed_by_other_key(&[], &rcgen::PKCS_ECDSA_P256_SHA256),
    );
    let other_kind = files.dir.join("ed25519.crl");
    write(
        &other_kind,
        &ca.revocation_list_signed_by_other_key(&[], &rcgen::PKCS_ED25519),
    );
    let unrelated = files.dir.join("unrelated.crl");
    write(
        &unrelated,
        &TestCa::new("unrelated CA").revocation_list(&[], (2099, 1, 1)),
    );
    let list = ca.revocation_list(&[], (2099, 1, 1));
    let cut_short = files.dir.join("cut-short.crl");
    write(&cut_short, &list[..list.len() / 2]);
    let own_list = files.dir.join("own.crl");
    write(&own_list, &list);
    // An older list left in beside the newer one (or another CA's of the
    // same name): the handshake would only use the first.
    let twice = files.dir.join("twice.crl");
    write(
        &twice,
        &format!("{list}{}", ca.revocation_list(&[7], (2099, 1, 1))),
    );
    let two_cas = files.dir.join("two-cas.pem");
    write(
        &two_cas,
        &format!("{}{}", ca.pem, TestCa::new("other client CA").pem),
    );
    let missing = files.dir.join("missing.pem");
    let encrypted = files.dir.join("encrypted.key");
    write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    // The issuer before the server's own certificate.
    let reversed = files.dir.join("reversed.pem");
    write(
        &reversed,
        &format!(
            "{}{}",
            ca.pem,
            std::fs::read_to_string(&files.cert).unwrap()
        ),
    );
    let cases = [
        (
            ListenerTls::new(&files.cert, &encrypted),
            [
                "tls.key_file",
                "encrypted.key",
                "encrypted, which is not supported",
            ],
        ),
        (
            ListenerTls::new(&reversed, &files.key),
            ["tls.cert_file", "reversed.pem", "the server's own, then"],
        ),
        (
            ListenerTls::new(&missing, &files.key),
            ["tls.cert_file", "missing.pem", "cannot read"],
        ),
        (
            ListenerTls::new(&files.cert, &missing),
            ["tls.key_file", "missing.pem", "cannot read"],
        ),
        (
            ListenerTls::new(&garbage, &files.key),
            ["tls.cert_file", "garbage.pem", "no certificate"],
        ),
        (
            ListenerTls::new(&files.cert, &files.cert),
            ["tls.key_file", "server.pem", "no private key"],
        ),
        (
            ListenerTls::new(&files.cert, &other_key_file),
            ["tls.cert_file", "tls.key_file", "other.key"],
        ),
        (
            files.tls().with_client_ca(&garbage, ClientAuth::Required),
            ["tls.client_ca_file", "garbage.pem", "no certificate"],
        ),
        (
            ListenerTls {
                client_auth: Some(ClientAuth::Optional),
                ..files.tls()
            },
            ["tls.client_auth", "tls.client_ca_file", ""],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&garbage),
            ["tls.client_crl_file", "garbage.pem", "no revocation list"],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&broken_crl),
            ["tls.client_crl_file", "broken.crl", "malformed"],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&forged),
            [
                "forged.crl",
                "names the client CA `CN=listener CA`",
                "signed by another key than that CA's",
            ],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&other_kind),
            [
                "ed25519.crl",
                "signed by another key than that CA's",
                "a key of another type",
            ],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&unrelated),
            [
                "unrelated.crl",
                "no list for the client CA `CN=listener CA`",
                "the file has lists for `CN=unrelated CA`",
            ],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&cut_short),
            [
                "cut-short.crl",
                "not PEM",
                "block has no `-----END X509 CRL-----` line",
            ],
        ),
        (
            files
                .tls()
                .with_client_ca(&files.client_ca, ClientAuth::Required)
                .with_client_crl(&twice),
            [
                "twice.crl",
                "revocation list 1 of 2 and revocation list 2 of 2 both name `CN=listener CA`",
                "keep one list per issuer",
            ],
        ),
        (
            files
                .tls()
                .with_client_ca(&two_cas, ClientAuth::Required)
                .with_client_crl(&own_list),
            [
                "no list for the client CA `CN=other client CA`",
                "(certificate 2 of 2 in tls.client_ca_file",
                "its clients would all be refused",
            ],
        ),
        (
            files.tls().with_client_crl(&files.client_ca),
            ["tls.client_crl_file", "tls.client_ca_file", ""],
        ),
        (
            files.tls().with_named_certificate(&nameless, &nameless_key),
            [
                "tls.certificates[0].cert_file",
                "nameless.pem",
                "no DNS name",
            ],
        ),
        (
            files
                .tls()
                .with_named_certificate(&files.cert, &other_key_file),
            [
                "tls.certificates[0].cert_file",
                "tls.certificates[0].key_file",
                "other.key",
            ],
        ),
        (
            files.tls().with_named_certificate(&files.cert, &missing),
            ["tls.certificates[0].key_file", "missing.pem", "cannot read"],
        ),
    ];
    for (tls, expected) in cases {
        let mut config = support::gateway::config(&support::kitchen(), "http://127.0.0.1:1");
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(tls.clone());
        // Not `unwrap_err`: a started server is too deep to print.
        let err = match protogate::start(&config).await {
            Ok(_) => panic!("{tls:?}: started, expected an error with {expected:?}"),
            Err(err) => err.to_string(),
        };
        for part in expected {
            assert!(err.contains(part), "{tls:?}: `{part}` not in: {err}");
        }
        let err = protogate::Snapshot::routes_only(&config)
            .unwrap_err()
            .to_string();
        for part in expected {
            assert!(
                err.contains(part),
                "routes, {tls:?}: `{part}` not in: {err}"
            );
        }
    }
}

/// The `tls` section of a config file: paths relative to the file's
/// folder, watched for reloads; unknown keys and modes refused.
#[test]
fn tls_section_of_the_config_file() {
    let dir = support::tempdir();
    let path = dir.join("gw.yaml");
    std::fs::write(
        &path,
        "tls:\n  cert_file: certs/server.pem\n  key_file: /keys/server.key\n  client_ca_file: ca.pem\n  client_auth: optional\n",
    )
    .unwrap();
    let config = Config::from_file(&path).unwrap();
    let tls = config.tls.clone().unwrap();
    assert_eq!(tls.cert_file, dir.join("certs/server.pem"));
    assert_eq!(tls.key_file, PathBuf::from("/keys/server.key"));
    assert_eq!(tls.client_ca_file, Some(dir.join("ca.pem")));
    assert_eq!(tls.client_verification(), Some(ClientAuth::Optional));
    let watched = config.watched_files();
    for file in [&tls.cert_file, &tls.key_file, &dir.join("ca.pem")] {
        assert!(watched.contains(file), "{file:?} not in {watched:?}");
    }

    let required = Config::from_yaml("tls: {cert_file: a, key_file: b, client_ca_file: c}")
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(required.client_verification(), Some(ClientAuth::Required));
    let none = Config::from_yaml("tls: {cert_file: a, key_file: b}")
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(none.client_verification(), None);

    for (yaml, key) in [
        ("tls: {cert_file: a, key_file: b, ca_file: c}", "ca_file"),
        (
            "tls: {cert_file: a, key_file: b, client_ca_file: c, client_auth: sometimes}",
            "sometimes",
        ),
        ("tls: {cert_file: a}", "key_file"),
    ] {
        let err = Config::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }

    std::fs::write(
        &path,
        "tls:\n  cert_file: a\n  key_file: b\n  client_auth: required\n",
    )
    .unwrap();
    let err = Config::from_file(&path)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("gw.yaml:4: tls.client_auth"), "{err}");
}
