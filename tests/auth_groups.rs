//! Bearer JWT authentication on proxied plain-HTTP route groups: a real
//! HTTP service behind the groups records what reaches it, so a refusal
//! is seen to stop there; a token that passes goes on with its claims as
//! headers, and client-sent claim headers never reach the service.

mod support;

use protogate::Config;
use protogate::config::RouteGroupConfig;
use serde_json::{Value, json};
use support::jwt::{Signer, config, jwks, now};
use support::plain::{Seen, recording_service};
use support::{EchoBackend, TempFile, TestGateway};

/// The groups of `yaml` (a `routes:` list), each upstream `http://{addr}`.
fn groups(yaml: &str, addr: std::net::SocketAddr) -> Vec<RouteGroupConfig> {
    let yaml = yaml.replace("SERVICE", &format!("'http://{addr}'"));
    Config::from_yaml(&format!("routes:\n{yaml}"))
        .unwrap_or_else(|e| panic!("groups parse: {e}"))
        .routes
}

/// Three groups on one recording service: `/svc` (a token, by default),
/// `/open` (`auth: none`) and `/staff` (a token with scope `staff.admin`).
const GROUPS: &str = "  - {prefix: /svc/, upstream: SERVICE}\n  - {prefix: /open/, upstream: SERVICE, auth: none}\n  - {prefix: /staff/, upstream: SERVICE, scopes: [staff.admin]}\n";

struct Setup {
    _backend: EchoBackend,
    gateway: TestGateway,
    seen: Seen,
    file: TempFile,
}

async fn setup(signers: &[&Signer]) -> Setup {
    setup_with(signers, |_| {}).await
}

async fn setup_with(signers: &[&Signer], tweak: impl FnOnce(&mut Config)) -> Setup {
    let file = TempFile::new("jwks.json", jwks(signers));
    let (addr, seen) = recording_service().await;
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = config(&set, &backend.url(), &file);
    config.routes = groups(GROUPS, addr);
    // For its metrics.
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    tweak(&mut config);
    Setup {
        _backend: backend,
        gateway: TestGateway::start(config).await,
        seen,
        file,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn get(gateway: &TestGateway, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = support::http1().get(gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The status, `WWW-Authenticate` and google.rpc.Status body of a
/// refusal.
async fn refusal(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, challenge, response.json().await.unwrap())
}

/// The values of header `name` the service saw on the last request.
fn header(seen: &Value, name: &str) -> Option<String> {
    seen["headers"][name].as_str().map(str::to_owned)
}

/// No token, a bad or expired one, two of them, or a WebSocket upgrade
/// without one: refused as REST refuses, counted under `proxy`, and the
/// service never sees the request.
#[tokio::test]
async fn a_group_refuses_requests_without_a_valid_token() {
    let signer = Signer::new("k1");
    let stranger = Signer::new("k1");
    let Setup { gateway, seen, .. } = setup(&[&signer]).await;
    let (status, challenge, body) = refusal(get(&gateway, "/svc/items", &[]).await).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer"));
    assert_eq!(body["code"], 16, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("needs a bearer token"),
        "{body}"
    );
    let bad = [
        (stranger.token(json!({})), "signature does not verify"),
        (signer.token(json!({"exp": now() - 3600})), "expired"),
        (signer.token(json!({"iss": "https://evil.test"})), "issuer"),
        (signer.token(json!({"aud": "elsewhere"})), "audience"),
    ];
    for (token, reason) in &bad {
        let auth = bearer(token);
        let response = get(&gateway, "/svc/items", &[("authorization", &auth)]).await;
        let (status, challenge, body) = refusal(response).await;
        assert_eq!(status, 401, "{reason}");
        assert_eq!(challenge, "Bearer error=\"invalid_token\"", "{reason}");
        assert_eq!(body["code"], 16, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
        assert!(!message.contains(token.as_str()), "echoes the token");
    }
    // Two tokens: only one can be verified, and the service would see
    // both.
    let good = bearer(&signer.token(json!({})));
    let forged = bearer(&stranger.token(json!({"sub": "admin"})));
    for second in ["authorization", "grpc-metadata-authorization"] {
        let response = get(
            &gateway,
            "/svc/items",
            &[("authorization", &good), (second, &forged)],
        )
        .await;
        let (status, challenge, body) = refusal(response).await;
        assert_eq!(status, 400, "{second}");
        assert_eq!(challenge, "Bearer error=\"invalid_request\"");
        assert_eq!(body["code"], 3, "{body}");
    }
    // A WebSocket upgrade proxied under the group needs the header too.
    let response = get(
        &gateway,
        "/svc/socket",
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(response.status(), 401);
    // A CORS preflight is answered without a token: browsers send those
    // without credentials.
    let response = support::http1()
        .request(reqwest::Method::OPTIONS, gateway.url("/svc/items"))
        .header("origin", "https://app.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        seen.all().is_empty(),
        "refused requests reached the service"
    );
    let refused = 1 + bad.len() + 2 + 1;
    let metrics = gateway.metrics_text().await;
    let line = format!(r#"protogate_requests_total{{face="proxy",code="4xx"}} {refused}"#);
    assert!(metrics.contains(&line), "{metrics}");
}

/// A valid token passes: the service sees the client's `Authorization`
/// and the claims as headers, never the client's own values for them.
#[tokio::test]
async fn a_good_token_passes_with_its_claims_as_headers() {
    let signer = Signer::new("k1");
    let Setup { gateway, seen, .. } = setup(&[&signer]).await;
    let auth = format!("bEaReR {}", signer.token(json!({})));
    let response = get(
        &gateway,
        "/svc/items?x=1",
        &[
            ("authorization", &auth),
            ("x-user-id", "mallory"),
            ("x-tenant", "7"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let got = seen.last();
    assert_eq!(got["uri"], "/svc/items?x=1");
    assert_eq!(header(&got, "authorization").as_deref(), Some(&*auth));
    assert_eq!(header(&got, "x-user-id").as_deref(), Some("alice"));
    assert_eq!(header(&got, "x-tenant").as_deref(), Some("42"));
}

/// Claim headers a client sends are dropped on every proxied request,
/// also spelt with `_` for `-` (which CGI-style servers read as the same
/// names): under `auth: none` (with a token or without, which is not read
/// there) and under a group that needs a token. An `OPTIONS` that is not
/// a preflight (with `cors` on, a preflight never reaches a group) needs
/// the token like any request, an upgrade among them.
#[tokio::test]
async fn forged_claim_headers_never_reach_the_service() {
    let signer = Signer::new("k1");
    let Setup { gateway, seen, .. } = setup_with(&[&signer], |c| {
        c.cors = Some(protogate::config::CorsOptions {
            allowed_origins: vec!["https://app.example".into()],
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: std::time::Duration::from_secs(60),
        });
    })
    .await;
    let forged = [
        ("x-user-id", "mallory"),
        ("x-tenant", "7"),
        ("x_user_id", "mallory"),
        ("X_Tenant", "7"),
    ];
    let claim_headers = |got: &Value| {
        ["x-user-id", "x-tenant", "x_user_id", "x_tenant"]
            .into_iter()
            .filter_map(|name| header(got, name).map(|v| format!("{name}: {v}")))
            .collect::<Vec<_>>()
    };
    let response = get(&gateway, "/open/items", &forged).await;
    assert_eq!(response.status(), 200, "auth: none needs no token");
    let got = seen.last();
    assert_eq!(claim_headers(&got), Vec::<String>::new(), "{got}");
    // A token is not read under `auth: none`: no claims come from it.
    let auth = bearer(&signer.token(json!({})));
    let mut with_token = vec![("authorization", auth.as_str())];
    with_token.extend(forged);
    let response = get(&gateway, "/open/items", &with_token).await;
    assert_eq!(response.status(), 200);
    let got = seen.last();
    assert_eq!(claim_headers(&got), Vec::<String>::new(), "{got}");
    assert_eq!(header(&got, "authorization").as_deref(), Some(&*auth));
    // Under a group that needs a token: only the verified claim.
    let response = get(&gateway, "/svc/items", &with_token).await;
    assert_eq!(response.status(), 200);
    let got = seen.last();
    assert_eq!(
        claim_headers(&got),
        ["x-user-id: alice", "x-tenant: 42"],
        "{got}"
    );

    // OPTIONS that is not a preflight: the token, as for any request.
    let reached = seen.all().len();
    let options = |headers: &[(&str, &str)]| {
        let mut request =
            support::http1().request(reqwest::Method::OPTIONS, gateway.url("/svc/items"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    assert_eq!(options(&forged).await.unwrap().status(), 401);
    let upgrade = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(options(&upgrade).await.unwrap().status(), 401);
    assert_eq!(
        seen.all().len(),
        reached,
        "refused OPTIONS reached the service"
    );
    let response = options(&with_token).await.unwrap();
    assert_eq!(response.status(), 200);
    let got = seen.last();
    assert_eq!(got["method"], "OPTIONS");
    assert_eq!(
        claim_headers(&got),
        ["x-user-id: alice", "x-tenant: 42"],
        "{got}"
    );
}

/// A group's `scopes` must all be held: 403 with the missing one named,
/// and the service sees nothing.
#[tokio::test]
async fn group_scopes_refuse_with_403() {
    let signer = Signer::new("k1");
    let Setup { gateway, seen, .. } = setup(&[&signer]).await;
    let short = bearer(&signer.token(json!({"scope": "staff.read"})));
    let response = get(&gateway, "/staff/panel", &[("authorization", &short)]).await;
    let (status, challenge, body) = refusal(response).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        "Bearer error=\"insufficient_scope\", scope=\"staff.admin\""
    );
    assert_eq!(body["code"], 7, "{body}");
    assert!(seen.all().is_empty());
    let held = bearer(&signer.token(json!({"scp": ["staff.read", "staff.admin"]})));
    let response = get(&gateway, "/staff/panel", &[("authorization", &held)]).await;
    assert_eq!(response.status(), 200);
    // The other groups ask for no scope.
    let response = get(&gateway, "/svc/x", &[("authorization", &short)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(seen.all().len(), 2);
}

/// Keys reloaded for the rest of the gateway are the group's keys too;
/// until a `jwks_url` is fetched, a group answers 503 as other faces do.
#[tokio::test]
async fn groups_follow_key_reloads_and_wait_for_the_jwks_url() {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let Setup {
        gateway,
        seen,
        file,
        ..
    } = setup(&[&old]).await;
    let old_token = bearer(&old.token(json!({})));
    let new_token = bearer(&new.token(json!({})));
    let status = async |token: &str| {
        let response = get(&gateway, "/svc/x", &[("authorization", token)]).await;
        response.status().as_u16()
    };
    assert_eq!(status(&old_token).await, 200);
    assert_eq!(status(&new_token).await, 401);
    std::fs::write(&*file, jwks(&[&new])).unwrap();
    let reloader = gateway.server.reloader().unwrap().clone();
    reloader.reload("test").await.expect("reload");
    assert_eq!(status(&new_token).await, 200);
    assert_eq!(status(&old_token).await, 401);
    assert_eq!(seen.all().len(), 2);

    // A port of our own that no one listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let Setup { gateway, seen, .. } = setup_with(&[], |c| {
        let auth = c.auth.as_mut().unwrap();
        auth.jwks_file = None;
        auth.jwks_url = Some(url);
    })
    .await;
    let response = get(&gateway, "/svc/x", &[("authorization", &new_token)]).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, challenge, body) = refusal(response).await;
    assert_eq!((status, challenge.as_str()), (503, ""));
    assert_eq!(body["code"], 14, "{body}");
    assert!(seen.all().is_empty());
}

/// Group settings that could check nothing, or that a gRPC group does not
/// take, stop the gateway from starting, naming the group.
#[tokio::test]
async fn bad_group_auth_settings_are_refused_naming_the_group() {
    let set = support::kitchen();
    let service: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let keys = TempFile::new("jwks.json", jwks(&[&Signer::new("k1")]));
    let build = |with_auth: bool, yaml: &str| {
        let mut config = config(&set, "http://127.0.0.1:9", &keys);
        if !with_auth {
            config.auth = None;
        }
        config.routes = groups(yaml, service);
        async move {
            protogate::Snapshot::build(&config)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let cases = [
        (
            true,
            "  - {prefix: /grpc/, upstream: default, auth: none}\n",
            "`auth` and `scopes` apply to HTTP services",
        ),
        (
            true,
            "  - {prefix: /grpc/, upstream: default, scopes: [a]}\n",
            "`auth` and `scopes` apply to HTTP services",
        ),
        (
            false,
            "  - {prefix: /g/, upstream: SERVICE, auth: required}\n",
            "`auth: required` needs the top-level `auth:` section",
        ),
        (
            false,
            "  - {prefix: /g/, upstream: SERVICE, scopes: [a]}\n",
            "`scopes` needs the top-level `auth:` section",
        ),
        (
            true,
            "  - {prefix: /g/, upstream: SERVICE, auth: none, scopes: [a]}\n",
            "`scopes` with `auth: none` would check nothing",
        ),
    ];
    for (with_auth, yaml, needle) in cases {
        let err = build(with_auth, yaml).await.expect_err(yaml);
        let named = err.contains("prefix `/grpc/`") || err.contains("prefix `/g/`");
        assert!(
            err.contains("routes[0]") && named && err.contains(needle),
            "{yaml}: {err}"
        );
    }
    build(true, GROUPS).await.expect("the good groups build");
    build(false, "  - {prefix: /o/, upstream: SERVICE, auth: none}\n")
        .await
        .expect("auth: none without auth changes nothing");
}
