//! The admin listener (`admin.listen`, `--admin-listen`; off by default),
//! on its own port so that it can stay off the public network:
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once the descriptors are complete (every reflecting
//!   upstream has answered), 503 before, naming what it waits for, and
//!   503 again once shutdown starts.
//! - `GET /admin/routes`: the live route table as JSON.
//! - `GET /admin/status`: descriptor versions, the last load and the last
//!   failed reload, services upstreams disagree on.
//! - `POST /admin/reload`: reloads now; 200 with the new status, or 500
//!   with why the old snapshot stays.
//! - `GET /metrics`: the metrics in the Prometheus text format (see
//!   [`crate::metrics`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::reload::Reloader;
use crate::server::Gateway;

#[derive(Clone)]
struct Admin {
    gateway: Arc<Gateway>,
    reloader: Arc<Reloader>,
}

/// The admin endpoints.
pub fn router(gateway: Arc<Gateway>, reloader: Arc<Reloader>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/admin/routes", get(routes))
        .route("/admin/status", get(status))
        .route("/admin/reload", post(reload))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Admin { gateway, reloader })
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "no admin endpoint at {}: try /healthz, /readyz, /metrics, /admin/routes, /admin/status or POST /admin/reload",
        uri.path()
    );
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 5, "message": message, "details": []})),
    )
        .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"code": 12, "message": message, "details": []})),
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(admin): State<Admin>) -> Response {
    if admin.gateway.is_draining() {
        // The main port refuses new connections already: a load balancer
        // that still sends there should stop.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "shutting_down": true,
                "message": "the gateway is shutting down: it finishes the requests in flight and takes no new connections",
            })),
        )
            .into_response();
    }
    if admin.gateway.is_ready() {
        return Json(json!({"ready": true})).into_response();
    }
    let waiting = admin.reloader.status().waiting_for;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"ready": false, "waiting_for": waiting})),
    )
        .into_response()
}

/// The metrics, with the gauges read from the gateway now.
async fn metrics(State(admin): State<Admin>) -> Response {
    let snapshot = admin.gateway.snapshot();
    let metrics = &snapshot.metrics;
    metrics.set_gauge("protogate_routes", snapshot.routes.routes().len() as f64);
    metrics.set_counter(
        "protogate_snapshot_loads_total",
        admin.reloader.status().loads,
    );
    let ready = admin.gateway.is_ready() && !admin.gateway.is_draining();
    metrics.set_gauge("protogate_ready", if ready { 1.0 } else { 0.0 });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

async fn routes(State(admin): State<Admin>) -> Json<serde_json::Value> {
    let snapshot = admin.gateway.snapshot();
    Json(json!({"routes": &snapshot.route_rows}))
}

async fn status(State(admin): State<Admin>) -> Json<serde_json::Value> {
    Json(with_pools(&admin, admin.reloader.status()))
}

/// The reloader's status with `pools`: each pool's endpoints and whether
/// they take calls.
fn with_pools(admin: &Admin, status: impl serde::Serialize) -> serde_json::Value {
    let mut status = serde_json::to_value(status).unwrap_or_default();
    let snapshot = admin.gateway.snapshot();
    let pools: serde_json::Map<String, serde_json::Value> = snapshot
        .upstreams
        .iter()
        .filter_map(|upstream| {
            let endpoints = upstream.endpoints()?;
            let list: Vec<serde_json::Value> = endpoints
                .into_iter()
                .map(|endpoint| {
                    json!({
                        "address": endpoint.address.to_string(),
                        "in_rotation": endpoint.in_rotation,
                        "ejected": endpoint.ejected,
                        "weight": endpoint.weight,
                        "zone": endpoint.zone,
                    })
                })
                .collect();
            Some((upstream.name().to_owned(), json!(list)))
        })
        .collect();
    status["pools"] = serde_json::Value::Object(pools);
    let discovery: serde_json::Map<String, serde_json::Value> = snapshot
        .upstreams
        .iter()
        .filter_map(|upstream| {
            let found = upstream.discovery()?;
            let shown = json!({
                "source": found.source,
                "answered": found.answered,
                "last_error": found.last_error.as_deref(),
            });
            Some((upstream.name().to_owned(), shown))
        })
        .collect();
    status["discovery"] = serde_json::Value::Object(discovery);
    status["tracing"] = snapshot
        .tracing
        .as_ref()
        .map_or(serde_json::Value::Null, |t| t.status());
    status
}

async fn reload(State(admin): State<Admin>) -> Response {
    match admin.reloader.reload("POST /admin/reload").await {
        Ok(status) => Json(with_pools(&admin, status)).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"reloaded": false, "error": err.to_string()})),
        )
            .into_response(),
    }
}
