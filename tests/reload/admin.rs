//! The admin listener: what it reports, its reloads, its errors and
//! readiness.

use super::*;

#[tokio::test]
async fn admin_listener_reports_and_reloads() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&["Old", "Plain"])];
    let gateway = Running::start(config).await;

    let (status, body) = gateway.admin_json("/healthz").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));
    let (status, body) = gateway.admin_json("/readyz").await;
    assert_eq!((status, &body["ready"]), (200, &Value::from(true)));

    let (status, body) = gateway.admin_json("/admin/routes").await;
    assert_eq!(status, 200);
    let routes = body["routes"].as_array().unwrap();
    let stable = routes
        .iter()
        .find(|r| r["template"] == "/v1/stable/{id}")
        .expect("the stable route is listed");
    assert_eq!(stable["method"], "GET");
    assert_eq!(stable["rpc"], "reload.v1.Stable/Get");
    assert_eq!(stable["upstream"], "default");
    assert_eq!(stable["streams"], "unary");
    assert!(stable["group"].is_null());
    assert!(
        routes
            .iter()
            .any(|r| r["template"] == "/reload.v1.Plain/Get" && r["method"] == "POST"),
        "unannotated methods get their POST route: {routes:?}"
    );

    let (status, before) = gateway.admin_json("/admin/status").await;
    assert_eq!(status, 200);
    assert_eq!(before["loads"], 1);
    assert!(before["versions"]["all"].is_string(), "{before}");
    assert!(before["last_error"].is_null());

    let (status, after) = gateway.reload().await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["loads"], 2);
    // Same descriptors, same version.
    assert_eq!(after["versions"]["all"], before["versions"]["all"]);

    // Reload is a POST.
    let response = gateway
        .client
        .get(gateway.admin("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    // The admin endpoints are not on the main port.
    assert_eq!(gateway.status_of("/admin/routes").await, 404);
}

#[tokio::test]
async fn admin_errors_are_json() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&[])];
    let gateway = Running::start(config).await;
    for (method, path, status) in [
        (reqwest::Method::GET, "/nope", 404),
        (reqwest::Method::GET, "/admin/reload", 405),
        (reqwest::Method::POST, "/healthz", 405),
    ] {
        let response = gateway
            .client
            .request(method.clone(), gateway.admin(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: Value = response.json().await.expect("JSON");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["code"].is_number());
    }
}

/// `/admin/routes` names the upstream a route group sends a route to.
#[tokio::test]
async fn admin_routes_show_route_groups() {
    let backend = backend().await;
    let mut other = UpstreamConfig::new(backend.url());
    other.services = vec!["reload.v1.Plain".to_owned()];
    let mut config = config(&[
        ("default", UpstreamConfig::new(backend.url())),
        ("other", other),
    ]);
    config.embedded_descriptors = vec![api(&["Old"])];
    config.routes.push(protogate::config::RouteGroupConfig {
        prefix: "/v1/old/".to_owned(),
        upstream: "other".to_owned(),
        timeout: None,
        strip_prefix: false,
        tls: None,
        auth: None,
        scopes: Vec::new(),
    });
    let gateway = Running::start(config).await;
    let (_, body) = gateway.admin_json("/admin/routes").await;
    let routes = body["routes"].as_array().unwrap();
    let row = |template: &str| {
        routes
            .iter()
            .find(|r| r["template"] == template)
            .unwrap_or_else(|| panic!("{template}: {body}"))
            .clone()
    };
    let old = row("/v1/old/{id}");
    assert_eq!(old["upstream"], "other");
    assert_eq!(old["group"], "/v1/old/");
    let stable = row("/v1/stable/{id}");
    assert_eq!(stable["upstream"], "default");
    assert!(stable["group"].is_null());
}

/// Once shutdown starts, the main port refuses new connections while
/// requests in flight finish: `/readyz` says so (503) instead of 200, so
/// a load balancer stops sending there.
#[tokio::test]
async fn readyz_is_503_once_shutdown_starts() {
    let backend = backend().await;
    let mut config = config(&[("default", UpstreamConfig::new(backend.url()))]);
    config.embedded_descriptors = vec![api(&["Old"])];
    let gateway = Running::start(config).await;
    assert_eq!(gateway.admin_json("/readyz").await.0, 200);
    backend.script(support::Script {
        delay: Some(Duration::from_secs(2)),
        ..support::Script::default()
    });
    let in_flight = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/old/x"));
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.records().is_empty() {
        assert!(Instant::now() < deadline, "the call did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readyz = gateway.admin("/readyz");
    let Running { server, client } = gateway;
    let drain = tokio::spawn(server.shutdown());
    let deadline = Instant::now() + Duration::from_secs(5);
    let body: Value = loop {
        let response = client.get(&readyz).send().await.expect("admin answers");
        if response.status() == 503 {
            break response.json().await.expect("JSON");
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stays {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["shutting_down"], true, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("shutting down"), "{body}");
    assert_eq!(in_flight.await.unwrap().expect("an answer"), 200);
    drain.await.unwrap();
}
