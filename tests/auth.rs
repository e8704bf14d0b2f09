//! Bearer JWT authentication: tokens made here with jsonwebtoken and keys
//! from rcgen, checked by the gateway in front of a real tonic backend, on
//! REST, gRPC, Connect and WebSocket upgrades; claims forwarded and
//! spoofed claim headers dropped; keys rotated by a reload; bad key files
//! and settings refused.

mod support;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use protogate::Config;
use serde_json::{Value, json};
use support::client::{Conn, full};
use support::jwt::{Signer, config, good_claims, jwks, now};
use support::{EchoBackend, TempFile, TestGateway};

async fn setup(signers: &[&Signer]) -> (EchoBackend, TestGateway, TempFile) {
    setup_with(signers, |_| {}).await
}

async fn setup_with(
    signers: &[&Signer],
    tweak: impl FnOnce(&mut protogate::auth::AuthConfig),
) -> (EchoBackend, TestGateway, TempFile) {
    let file = TempFile::new("jwks.json", jwks(signers));
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = config(&set, &backend.url(), &file);
    tweak(config.auth.as_mut().unwrap());
    let gateway = TestGateway::start(config).await;
    (backend, gateway, file)
}

fn md<'a>(record: &'a support::Record, key: &str) -> Vec<&'a str> {
    record
        .metadata
        .get_all(key)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

async fn get_echo(gateway: &TestGateway, authorization: Option<&str>) -> reqwest::Response {
    let mut request = support::http1().get(gateway.url("/v1/echo"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_valid_token_passes_and_its_claims_reach_the_backend() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let token = signer.token(json!({}));
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("authorization", format!("bEaReR {token}"))
        .header("x-user-id", "mallory")
        .header("grpc-metadata-x-user-id", "mallory")
        .header("grpc-metadata-x-tenant", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = backend.last();
    assert_eq!(md(&record, "x-user-id"), ["alice"]);
    assert_eq!(md(&record, "x-tenant"), ["42"]);
    // Passed on as before.
    assert_eq!(md(&record, "authorization"), [format!("bEaReR {token}")]);
}

#[tokio::test]
async fn refusals_are_401_with_a_reason_and_a_challenge() {
    let signer = Signer::new("k1");
    let stranger = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "needs a bearer token"),
        (
            "basic",
            Some("Basic YWxpY2U6cHc=".to_owned()),
            "not `Bearer",
        ),
        (
            "expired",
            Some(signer.token(json!({"exp": now() - 3600}))),
            "expired",
        ),
        (
            "issuer",
            Some(signer.token(json!({"iss": "https://evil.test"}))),
            "issuer",
        ),
        (
            "audience",
            Some(signer.token(json!({"aud": "elsewhere"}))),
            "audience",
        ),
        ("no exp", Some(signer.token(json!({"exp": null}))), "exp"),
        (
            "signature",
            Some(stranger.token(json!({}))),
            "signature does not verify",
        ),
        (
            "kid",
            Some(signer.token_as("k9", json!({}))),
            "key id (kid) names no configured key",
        ),
        ("alg none", Some(none_token), "not a signed JWT"),
        ("garbage", Some("abc.def".to_owned()), "not a signed JWT"),
    ];
    for (name, token, reason) in cases {
        let authorization = token.as_ref().map(|t| {
            if t.starts_with("Basic ") {
                t.clone()
            } else {
                format!("Bearer {t}")
            }
        });
        let response = get_echo(&gateway, authorization.as_deref()).await;
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let given = token.as_ref().is_some_and(|t| !t.starts_with("Basic "));
        if given {
            assert_eq!(challenge, "Bearer error=\"invalid_token\"", "{name}");
        } else {
            assert_eq!(challenge, "Bearer", "{name}");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 16, "{name}: {body}");
        assert_eq!(body["details"], json!([]), "{name}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{name}: {message}");
        if let Some(token) = &token {
            assert!(!message.contains(token.as_str()), "{name} echoes the token");
        }
    }
    assert!(
        backend.records().is_empty(),
        "no refused call went upstream"
    );
}

#[tokio::test]
async fn open_methods_and_preflights_need_no_token_and_drop_spoofed_claims() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Plain"))
        .header("content-type", "application/json")
        .header("x-user-id", "mallory")
        .header("grpc-metadata-x-tenant", "7")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = backend.last();
    assert!(md(&record, "x-user-id").is_empty());
    assert!(md(&record, "x-tenant").is_empty());
    // A CORS preflight carries no credentials (Fetch), so it needs none.
    let response = support::http1()
        .request(reqwest::Method::OPTIONS, gateway.url("/v1/echo"))
        .header("origin", "https://app.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// A gRPC call over HTTP/2 with `headers`: its status and the backend's
/// last record.
async fn grpc(gateway: &TestGateway, path: &str, headers: &[(&str, &str)]) -> String {
    let mut conn = Conn::http2(gateway.addr()).await;
    let mut request = http::Request::post(gateway.url(path))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(full(support::envelope(0, b""))).unwrap();
    let (head, body) = conn.send(request).await.into_parts();
    let body = body.collect().await.unwrap();
    let trailers = body.trailers().cloned().unwrap_or_default();
    trailers
        .get("grpc-status")
        .or_else(|| head.headers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn grpc_and_connect_clients_are_checked_too() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    assert_eq!(grpc(&gateway, "/kitchen.v1.Kitchen/Echo", &[]).await, "16");
    let expired = format!("Bearer {}", signer.token(json!({"exp": now() - 3600})));
    let headers = [("authorization", expired.as_str())];
    let status = grpc(&gateway, "/kitchen.v1.Kitchen/Echo", &headers).await;
    assert_eq!(status, "16");
    assert!(backend.records().is_empty());
    let good = format!("Bearer {}", signer.token(json!({})));
    let headers = [("authorization", good.as_str()), ("x-user-id", "mallory")];
    assert_eq!(
        grpc(&gateway, "/kitchen.v1.Kitchen/Echo", &headers).await,
        "0"
    );
    assert_eq!(md(&backend.last(), "x-user-id"), ["alice"]);
    // gRPC-Web: the status in the headers of a trailers-only answer.
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc-web+proto")
        .body(support::envelope(0, b""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
    // The gateway's own health service, allowed without a token.
    assert_eq!(
        grpc(&gateway, "/grpc.health.v1.Health/Check", &[]).await,
        "0"
    );
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("connect-protocol-version", "1")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("connect-protocol-version", "1")
        .header("content-type", "application/json")
        .header("authorization", &good)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn websocket_upgrades_need_the_header_too() {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest as _};
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let request = format!("ws://{}/v1/watch", gateway.addr())
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
        other => panic!("upgraded without a token: {:?}", other.map(|(_, r)| r)),
    }
    let token = format!("Bearer {}", signer.token(json!({})));
    let mut socket =
        support::ws::connect(&gateway, "/v1/watch?s=hi", &[("authorization", &token)]).await;
    support::ws::next(&mut socket).await.expect("a message");
    assert_eq!(md(&backend.last(), "x-user-id"), ["alice"]);
}

#[tokio::test]
async fn a_reload_rotates_keys_and_a_bad_key_file_keeps_the_old_ones() {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let (_backend, gateway, file) = setup(&[&old]).await;
    let reloader = gateway.server.reloader().unwrap().clone();
    let old_token = format!("Bearer {}", old.token(json!({})));
    let new_token = format!("Bearer {}", new.token(json!({})));
    assert_eq!(get_echo(&gateway, Some(&old_token)).await.status(), 200);
    assert_eq!(get_echo(&gateway, Some(&new_token)).await.status(), 401);
    std::fs::write(&*file, jwks(&[&new])).unwrap();
    reloader
        .reload("test")
        .await
        .expect("reload with the new key");
    assert_eq!(get_echo(&gateway, Some(&new_token)).await.status(), 200);
    assert_eq!(get_echo(&gateway, Some(&old_token)).await.status(), 401);
    std::fs::write(&*file, "{\"keys\": [").unwrap();
    let err = reloader
        .reload("test")
        .await
        .expect_err("a bad key file fails");
    assert!(err.to_string().contains("auth.jwks_file"), "{err}");
    assert_eq!(get_echo(&gateway, Some(&new_token)).await.status(), 200);
}

#[tokio::test]
async fn bad_key_files_and_settings_are_refused_naming_the_setting() {
    let set = support::kitchen();
    let start = |jwks: &Path, tweak: &dyn Fn(&mut Config)| {
        let mut config = config(&set, "http://127.0.0.1:9", jwks);
        tweak(&mut config);
        async move {
            protogate::Snapshot::build(&config)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let missing = Path::new("/nonexistent/jwks.json");
    let err = start(missing, &|_| {}).await.unwrap_err();
    assert!(
        err.contains("auth.jwks_file") && err.contains("cannot read"),
        "{err}"
    );
    // A device is refused by name, not read until memory runs out.
    let err = start(Path::new("/dev/zero"), &|_| {}).await.unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    let bad = TempFile::new("jwks.json", "{\"keys\": 3}");
    let err = start(&bad, &|_| {}).await.unwrap_err();
    assert!(err.contains("is not a JWKS"), "{err}");
    let secret = TempFile::new(
        "jwks.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#,
    );
    let err = start(&secret, &|_| {}).await.unwrap_err();
    assert!(err.contains("no key this gateway can verify"), "{err}");
    let good = TempFile::new("jwks.json", jwks(&[&Signer::new("k1")]));
    let reserved = |c: &mut Config| {
        let auth = c.auth.as_mut().unwrap();
        auth.forward_claims.insert("sub".into(), "grpc-user".into());
    };
    let err = start(&good, &reserved).await.unwrap_err();
    assert!(
        err.contains("auth.forward_claims") && err.contains("reserved"),
        "{err}"
    );
    let hmac = |c: &mut Config| c.auth.as_mut().unwrap().algorithms = vec![Algorithm::HS256];
    let err = start(&good, &hmac).await.unwrap_err();
    assert!(err.contains("auth.algorithms"), "{err}");
    let pattern =
        |c: &mut Config| c.auth.as_mut().unwrap().methods = vec!["kitchen.v1.Kitchen/Ec*".into()];
    let err = start(&good, &pattern).await.unwrap_err();
    assert!(err.contains("auth.methods"), "{err}");
    // An empty list would check no call: refused, not failing open.
    let none = |c: &mut Config| c.auth.as_mut().unwrap().methods = vec![];
    let err = start(&good, &none).await.unwrap_err();
    assert!(
        err.contains("auth.methods") && err.contains("check no call"),
        "{err}"
    );
    // An RSA key under 2048 bits is skipped, naming why.
    let weak = TempFile::new(
        "jwks.json",
        json!({"keys": [{"kty": "RSA", "kid": "weak", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128])}]})
            .to_string(),
    );
    let err = start(&weak, &|_| {}).await.unwrap_err();
    assert!(
        err.contains("`weak`: its RSA modulus is shorter than 2048 bits"),
        "{err}"
    );
    start(&good, &|_| {}).await.expect("the good config builds");
    let yaml = "auth: {jwks_file: k.json, unknown_key: 1}\n";
    assert!(Config::from_yaml(yaml).is_err());
}

#[tokio::test]
async fn scopes_per_method_refuse_with_403() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup_with(&[&signer], |auth| {
        let scopes = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        auth.scopes
            .insert("kitchen.*".into(), scopes(&["kitchen.read"]));
        let both = scopes(&["kitchen.read", "kitchen.watch"]);
        auth.scopes.insert("kitchen.v1.Kitchen/Watch".into(), both);
    })
    .await;
    let reader = format!(
        "Bearer {}",
        signer.token(json!({"scope": "kitchen.read other"}))
    );
    assert_eq!(get_echo(&gateway, Some(&reader)).await.status(), 200);
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .header("authorization", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"kitchen.watch\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 7, "{body}");
    assert!(body["message"].as_str().unwrap().contains("kitchen.watch"));
    let none = format!("Bearer {}", signer.token(json!({})));
    assert_eq!(get_echo(&gateway, Some(&none)).await.status(), 403);
    let listed = format!("Bearer {}", signer.token(json!({"scp": ["kitchen.read"]})));
    assert_eq!(get_echo(&gateway, Some(&listed)).await.status(), 200);
    let headers = [("authorization", none.as_str())];
    assert_eq!(
        grpc(&gateway, "/kitchen.v1.Kitchen/Echo", &headers).await,
        "7"
    );
    assert_eq!(backend.records().len(), 2);
}

#[tokio::test]
async fn a_pem_key_checks_tokens_without_kid() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = TempFile::new("signer.pem", pair.public_key_pem());
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let (_backend, gateway, _file) = setup_with(&[], |auth| {
        auth.jwks_file = None;
        let yaml = format!(
            "auth: {{public_keys: [{{file: {}, algorithm: ES256}}]}}\n",
            pem.display()
        );
        auth.public_keys = Config::from_yaml(&yaml).unwrap().auth.unwrap().public_keys;
    })
    .await;
    let sign = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &good_claims(), &key).unwrap()
        )
    };
    assert_eq!(get_echo(&gateway, Some(&sign(None))).await.status(), 200);
    assert_eq!(
        get_echo(&gateway, Some(&sign(Some("other"))))
            .await
            .status(),
        401
    );
    // The same key, but an algorithm it is not configured for.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &good_claims(), &ed).unwrap();
    let response = get_echo(&gateway, Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("EdDSA"),
        "{body}"
    );
}

/// Waits (bounded) until `token` on `/v1/echo` answers `status`.
async fn until(gateway: &TestGateway, token: &str, status: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = get_echo(gateway, Some(token)).await.status().as_u16();
        if now == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {now}, not {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_come_from_a_jwks_url_and_are_refreshed() {
    let a = Signer::new("a");
    let b = Signer::new("b");
    let served = std::sync::Arc::new(parking_lot::Mutex::new(jwks(&[&a])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let shared = served.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let body = shared.lock().clone();
            async move { body }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (_backend, gateway, _file) = setup_with(&[], |auth| {
        auth.jwks_file = None;
        auth.jwks_url = Some(url);
        auth.jwks_refresh = std::time::Duration::from_secs(1);
    })
    .await;
    let token_a = format!("Bearer {}", a.token(json!({})));
    let token_b = format!("Bearer {}", b.token(json!({})));
    until(&gateway, &token_a, 200).await;
    assert_eq!(get_echo(&gateway, Some(&token_b)).await.status(), 401);
    *served.lock() = jwks(&[&b]);
    until(&gateway, &token_b, 200).await;
    assert_eq!(get_echo(&gateway, Some(&token_a)).await.status(), 401);
    // A bad answer keeps the keys fetched last.
    *served.lock() = "{\"keys\": [".to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(get_echo(&gateway, Some(&token_b)).await.status(), 200);
    server.abort();
}

#[tokio::test]
async fn calls_wait_with_503_until_the_jwks_url_answers() {
    let a = Signer::new("a");
    // A port of our own that no one listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let (_backend, gateway, _file) = setup_with(&[], |auth| {
        auth.jwks_file = None;
        auth.jwks_url = Some(url);
    })
    .await;
    let response = get_echo(&gateway, Some(&format!("Bearer {}", a.token(json!({}))))).await;
    assert_eq!(response.status(), 503);
    // The token was not judged: no challenge a client would drop it for.
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not loaded yet"));
}

#[tokio::test]
async fn a_changed_key_file_is_picked_up_without_asking() {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let (_backend, gateway, file) = setup(&[&old]).await;
    let new_token = format!("Bearer {}", new.token(json!({})));
    assert_eq!(get_echo(&gateway, Some(&new_token)).await.status(), 401);
    std::fs::write(&*file, jwks(&[&old, &new])).unwrap();
    until(&gateway, &new_token, 200).await;
}

/// Only one token is verified, so a request must carry only one: a second
/// `Authorization` (or a `Grpc-Metadata-Authorization`, which becomes
/// `authorization` metadata too) would reach the backend beside the
/// verified one, and a backend may read that one.
#[tokio::test]
async fn a_second_token_is_refused_not_smuggled_past_the_check() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let good = format!("Bearer {}", signer.token(json!({})));
    let forged = format!(
        "Bearer {}",
        Signer::new("k1").token(json!({"sub": "admin"}))
    );
    for second in ["authorization", "grpc-metadata-authorization"] {
        let response = support::http1()
            .get(gateway.url("/v1/echo"))
            .header("authorization", &good)
            .header(second, &forged)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{second}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_request\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 3, "{body}");
        assert!(!body.to_string().contains(&forged[7..]), "{body}");
    }
    let status = grpc(
        &gateway,
        "/kitchen.v1.Kitchen/Echo",
        &[("authorization", &good), ("authorization", &forged)],
    )
    .await;
    assert_eq!(status, "3");
    assert!(backend.records().is_empty(), "nothing reached the backend");

    // A method open to all forwards what it is sent, unjudged.
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Plain"))
        .header("authorization", &good)
        .header("authorization", &forged)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A claim value HTTP/2 could not carry as it is (a space at either end)
/// is left out rather than sent for a backend to reset the call over.
#[tokio::test]
async fn a_claim_with_spaces_at_its_ends_is_not_forwarded() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    let token = signer.token(json!({"sub": "  spaced  ", "tenant": 7}));
    let response = get_echo(&gateway, Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status(), 200);
    let record = backend.last();
    assert!(md(&record, "x-user-id").is_empty());
    assert_eq!(md(&record, "x-tenant"), ["7"]);
}

/// A page reading a refusal sees its challenge: CORS exposes
/// `WWW-Authenticate` (and `Retry-After`) without being told to.
#[tokio::test]
async fn a_browser_page_can_read_the_challenge() {
    let signer = Signer::new("k1");
    let (_backend, gateway, _file) = setup(&[&signer]).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("origin", "https://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("www-authenticate") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

/// A gRPC path that is not exactly `/<service>/<method>` is refused before
/// the checks: matched by its text, `/open.Service/../closed.Service/M`
/// would pass as an open method, and a backend or proxy that normalised
/// it would serve the closed one.
#[tokio::test]
async fn a_grpc_path_that_names_no_method_is_refused_before_the_checks() {
    let signer = Signer::new("k1");
    let (backend, gateway, _file) = setup(&[&signer]).await;
    for path in [
        "/kitchen.v1.Kitchen/Plain/../Echo",
        "/grpc.health.v1.Health/../../kitchen.v1.Kitchen/Echo",
        "/kitchen.v1.Kitchen//Echo",
        "/kitchen.v1.Kitchen/Echo/",
        "/kitchen.v1.Kitchen/Ech%6f",
        "/kitchen.v1.Kitchen/Plain?/../../kitchen.v1.Kitchen/Echo",
    ] {
        assert_eq!(grpc(&gateway, path, &[]).await, "12", "{path}");
    }
    assert!(backend.records().is_empty());
    assert_eq!(
        grpc(&gateway, "/kitchen.v1.Kitchen/Plain", &[]).await,
        "0",
        "an open method still passes"
    );
}

/// Keys of different types may share a kid (RFC 7517 §4.5): the token's
/// `alg` picks the one it was signed with.
#[tokio::test]
async fn keys_sharing_a_kid_are_told_apart_by_the_tokens_algorithm() {
    let ec = Signer::new("same");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    let ed_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": "same",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
    });
    let file = TempFile::new(
        "jwks.json",
        json!({"keys": [ec.jwk.clone(), ed_jwk]}).to_string(),
    );
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let gateway = TestGateway::start(config(&set, &backend.url(), &file)).await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("same".to_owned());
    let ed_token = jsonwebtoken::encode(&header, &good_claims(), &ed_key).unwrap();
    for token in [ed_token, ec.token(json!({}))] {
        let response = get_echo(&gateway, Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
}

/// A token without a `kid` is tried with each key that takes its `alg`
/// (not refused because several keys are loaded), and verified only by
/// the one that signed it.
#[tokio::test]
async fn a_token_without_kid_is_tried_with_each_fitting_key() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let (_backend, gateway, _file) = setup(&[&k1, &k2]).await;
    let without_kid = |signer: &Signer| {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &good_claims(), &signer.key).unwrap()
    };
    for signer in [&k1, &k2] {
        let response = get_echo(&gateway, Some(&format!("Bearer {}", without_kid(signer)))).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
    let stranger = Signer::new("k3");
    let response = get_echo(
        &gateway,
        Some(&format!("Bearer {}", without_kid(&stranger))),
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );
}

/// Before `jwks_url` is first fetched, a token whose `kid` names only a
/// file key of another type may be for a key at the URL: 503, not 401.
#[tokio::test]
async fn a_kid_shared_with_a_file_key_of_another_type_waits_for_the_fetch() {
    let ec = Signer::new("shared");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": "shared",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
    });
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let file = TempFile::new("jwks.json", json!({"keys": [ed_jwk]}).to_string());
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = config(&set, &backend.url(), &file);
    config.auth.as_mut().unwrap().jwks_url = Some(url);
    let gateway = TestGateway::start(config).await;
    let response = get_echo(&gateway, Some(&format!("Bearer {}", ec.token(json!({}))))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}
