//! gRPC and gRPC-Web on the REST port.
//!
//! `application/grpc` and `application/grpc+<codec>` requests are passed
//! through unchanged to the upstream that serves their service — any
//! service, streaming included, trailers intact — so one listener serves
//! REST and gRPC clients. `application/grpc-web` (binary) and
//! `application/grpc-web-text` (base64) requests are translated to gRPC by
//! tonic-web, passed through the same way, and their responses translated
//! back (trailers become the last frame of the body). Calls to the
//! gateway's own services — server reflection and health (see `own`) —
//! are answered by the gateway itself, in either flavor.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderValue, Request, Response, header};
use tonic::Status;
use tower::{Layer as _, Service, ServiceExt as _};

use crate::snapshot::Snapshot;

use super::rest::ClientAddr;

/// How a request speaks gRPC, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `application/grpc` or `application/grpc+<codec>`.
    Grpc,
    /// `application/grpc-web*`.
    GrpcWeb,
}

impl Flavor {
    pub(crate) fn of(request: &Request<Body>) -> Option<Flavor> {
        let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.starts_with("application/grpc-web") {
            Some(Flavor::GrpcWeb)
        } else if media == "application/grpc" || media.starts_with("application/grpc+") {
            Some(Flavor::Grpc)
        } else {
            None
        }
    }
}

/// Serves a gRPC or gRPC-Web request.
pub(crate) async fn handle(
    snapshot: Arc<Snapshot>,
    flavor: Flavor,
    request: Request<Body>,
) -> Response<Body> {
    match super::own::find(&snapshot, &request) {
        Some(own) => serve(own, flavor, request).await,
        None => serve(Passthrough { snapshot }, flavor, request).await,
    }
}

/// Serves a request of either flavor with a gRPC `service`.
async fn serve<S>(service: S, flavor: Flavor, request: Request<Body>) -> Response<Body>
where
    S: Service<
            Request<tonic::body::Body>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    let response = match flavor {
        Flavor::Grpc => service.oneshot(request.map(tonic::body::Body::new)).await,
        Flavor::GrpcWeb => {
            // The translated body's length differs from the original's (text
            // mode is base64), but tonic-web passes the original length on
            // as a size hint, which HTTP/2 would send as content-length.
            let request = request.map(|body| tonic::body::Body::new(UnsizedBody(body)));
            tonic_web::GrpcWebLayer::new()
                .layer(service)
                .oneshot(request)
                .await
        }
    };
    match response {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// Forwards a gRPC request to its service's upstream.
#[derive(Debug, Clone)]
struct Passthrough {
    snapshot: Arc<Snapshot>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<tonic::body::Body>> for Passthrough {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<tonic::body::Body>) -> Self::Future {
        let snapshot = Arc::clone(&self.snapshot);
        Box::pin(async move {
            let service = request
                .uri()
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            // A group's upstream, else the one serving the service.
            let group = request
                .extensions()
                .get::<super::group::GroupPolicy>()
                .map(|p| p.upstream);
            let Some(upstream) = group
                .or_else(|| snapshot.services.find(&service))
                .map(|i| &snapshot.upstreams[i])
            else {
                let status = Status::unimplemented(format!("no upstream serves {service}"));
                return Ok(status.into_http());
            };
            prepare(&mut request);
            let started = tokio::time::Instant::now();
            let result = upstream.channel().clone().oneshot(request).await;
            tracing::debug!(%service, upstream = upstream.name(), micros = started.elapsed().as_micros() as u64, ok = result.is_ok(), "gRPC passthrough");
            Ok(match result {
                Ok(response) => response.map(tonic::body::Body::new),
                Err(err) => {
                    let status = upstream.classify(Status::from_error(Box::new(err)));
                    let status = match status {
                        crate::upstream::CallError::Status(status) => status,
                        other => {
                            Status::unavailable(crate::error::GatewayError::from(other).to_string())
                        }
                    };
                    tracing::warn!(%service, upstream = upstream.name(), error = %status.message(), "gRPC passthrough failed");
                    status.into_http()
                }
            })
        })
    }
}

/// A body that claims no size, whatever the one inside knows.
struct UnsizedBody(Body);

impl http_body::Body for UnsizedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// Drops hop-by-hop headers and appends the client to `x-forwarded-for`.
fn prepare(request: &mut Request<tonic::body::Body>) {
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let headers = request.headers_mut();
    // The body may change length on the way (gRPC-Web text is base64):
    // HTTP/2 frames it anyway, so no content-length goes along.
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    ] {
        headers.remove(name);
    }
    if let Some(ip) = client {
        let list = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&list) {
            headers.insert("x-forwarded-for", value);
        }
    }
}
