//! A plain HTTP service for route groups to proxy to, and a group on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use protogate::config::RouteGroupConfig;
use serde_json::{Value, json};

/// A route group on `prefix` to `upstream`, with the defaults.
pub fn group(prefix: &str, upstream: &str) -> RouteGroupConfig {
    RouteGroupConfig {
        prefix: prefix.to_owned(),
        upstream: upstream.to_owned(),
        timeout: None,
        strip_prefix: false,
        tls: None,
        auth: None,
        scopes: Vec::new(),
    }
}

/// What a [`recording_service`] received: each request as it answers it
/// (method, uri, headers, body), in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<parking_lot::Mutex<Vec<Value>>>);

impl Seen {
    /// Every request so far.
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().clone()
    }

    /// The last request; panics when there was none.
    pub fn last(&self) -> Value {
        self.0
            .lock()
            .last()
            .cloned()
            .expect("the service saw a request")
    }
}

/// A plain HTTP service on loopback that answers every request with what
/// it received as JSON; `/slow` waits 2 s first, `/teapot` answers 418
/// with hop-by-hop headers, `/stream` sends three chunks 300 ms apart.
pub async fn http_service() -> SocketAddr {
    recording_service().await.0
}

/// [`http_service`], keeping what it received besides.
pub async fn recording_service() -> (SocketAddr, Seen) {
    async fn answer(seen_by: Seen, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        if path.ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if path.ends_with("/stream") {
            let chunks = futures_util::stream::iter(0..3).then(|i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Ok::<_, std::convert::Infallible>(Bytes::from(format!("chunk {i}\n")))
            });
            return Response::new(Body::from_stream(chunks));
        }
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        let seen = json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        seen_by.0.lock().push(seen.clone());
        let mut response = Response::new(Body::from(seen.to_string()));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        if path.ends_with("/teapot") {
            *response.status_mut() = http::StatusCode::IM_A_TEAPOT;
            let headers = response.headers_mut();
            headers.insert("x-brewed", "yes".parse().unwrap());
            headers.insert("connection", "x-secret".parse().unwrap());
            headers.insert("x-secret", "hop".parse().unwrap());
        }
        response
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let seen_by = seen.clone();
    let app = axum::Router::new().fallback(move |request| answer(seen_by.clone(), request));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}
