//! Distributed tracing (`tracing:` in the config): a server span for each
//! request, exported to a collector over OTLP/gRPC.
//!
//! A request's span takes the caller's `traceparent` (W3C Trace Context)
//! as its parent when it has a valid one, and follows its sampling flag;
//! other requests start a trace, recorded at `sample_ratio`. The request
//! then goes on with its `traceparent` (and `tracestate`) naming the
//! gateway's span, on every face: so a backend's own spans are children
//! of the gateway's, and a trace shows the time spent in each.
//!
//! A span is named by what the request reached: `GET /v1/shelves/{shelf}`
//! for a transcoded route, `pkg.Service/Method` for a gRPC, gRPC-Web or
//! Connect call, and the bare HTTP method otherwise (an unknown path or
//! method never becomes a span name of its own). It ends when the
//! response body does (a stream's span lasts as long as the stream), or
//! when the client leaves.
//!
//! Limitation: one span per request. The calls to the backend (and their
//! retries) are not spans of their own: the backend's span, a child of
//! the gateway's, shows the time spent there.
//!
//! Spans are handed to a bounded queue and exported in batches by a task
//! of the gateway's runtime (`export`): nothing on the request path waits
//! for the collector, and a collector that is down or slow costs dropped
//! spans (counted in `protogate_trace_spans_total`), never memory or
//! latency.

mod config;
mod export;

pub use config::TracingConfig;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body::{Frame, SizeHint};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};

use crate::metrics::{Face, Metrics};
use crate::server::rest::ClientAddr;
use crate::snapshot::Snapshot;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// What a client may send to set the same metadata keys; the gateway's
/// own values replace them.
const METADATA_TRACEPARENT: HeaderName = HeaderName::from_static("grpc-metadata-traceparent");
const METADATA_TRACESTATE: HeaderName = HeaderName::from_static("grpc-metadata-tracestate");

/// The gateway's tracer: made once for a `tracing:` section, and kept by
/// the snapshots that follow while the section stays the same.
pub(crate) struct Tracing {
    config: TracingConfig,
    tracer: SdkTracer,
    /// Dropping the last handle stops the export task (after it sends
    /// what it holds).
    provider: SdkTracerProvider,
    exporting: export::Handle,
    propagator: TraceContextPropagator,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tracing {
    /// The tracer `config` asks for: `previous`'s when its settings did
    /// not change (its queue and connection carry over), else a new one.
    /// Must run inside a Tokio runtime (the export task starts there).
    pub(crate) fn of(
        config: Option<&TracingConfig>,
        previous: Option<&Arc<Tracing>>,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Tracing>>, (String, String)> {
        let Some(config) = config else {
            return Ok(None);
        };
        if let Some(previous) = previous.filter(|p| p.config == *config) {
            return Ok(Some(Arc::clone(previous)));
        }
        let (processor, exporting) = export::start(config, metrics)?;
        // The resource (`service.name`) is the exporter's, set where it
        // is made.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .build();
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder("protogate")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        tracing::info!(
            endpoint = %config.otlp_endpoint,
            sample_ratio = config.sample_ratio,
            "Exporting spans over OTLP"
        );
        Ok(Some(Arc::new(Tracing {
            config: config.clone(),
            tracer,
            provider,
            exporting,
            propagator: TraceContextPropagator::new(),
        })))
    }

    /// Sends the spans still queued, waiting at most the export timeout:
    /// for shutdown.
    pub(crate) async fn flush(&self) {
        self.exporting.flush(self.config.timeout).await;
    }

    /// Starts `request`'s span and makes the request's `traceparent`
    /// name it.
    pub(crate) fn start<B>(&self, request: &mut Request<B>) -> ServerSpan {
        let parent = self.propagator.extract(&Headers(request.headers()));
        let method = request.method().clone();
        let mut attributes = Vec::with_capacity(8);
        attributes.push(KeyValue::new("http.request.method", method_name(&method)));
        attributes.push(KeyValue::new("url.path", request.uri().path().to_owned()));
        attributes.push(KeyValue::new(
            "network.protocol.version",
            protocol_version(request.version()),
        ));
        if let Some(transport) = request.extensions().get::<crate::server::Transport>() {
            attributes.push(KeyValue::new("url.scheme", transport.scheme()));
        }
        if let Some(ClientAddr(addr)) = request.extensions().get::<ClientAddr>() {
            attributes.push(KeyValue::new("client.address", addr.ip().to_string()));
        }
        let span = self
            .tracer
            .span_builder(method_name(&method))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        let headers = request.headers_mut();
        for name in [
            TRACEPARENT,
            TRACESTATE,
            METADATA_TRACEPARENT,
            METADATA_TRACESTATE,
        ] {
            headers.remove(name);
        }
        let ours = Context::new().with_remote_span_context(span.span_context().clone());
        self.propagator
            .inject_context(&ours, &mut HeadersMut(headers));
        let outcome = Outcome::default();
        request.extensions_mut().insert(outcome.clone());
        ServerSpan {
            span,
            method,
            uri: request.uri().clone(),
            outcome,
        }
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        // Stops the export task once it has sent what it holds; never
        // blocks (the processor's shutdown only signals the task).
        let _ = self.provider.shutdown();
    }
}

/// A request's span, until its response is known.
pub(crate) struct ServerSpan {
    span: Span,
    method: Method,
    uri: Uri,
    outcome: Outcome,
}

/// The REST route a request matched, by index: put in the response's
/// extensions (only while tracing) to name its span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchedRoute(pub(crate) usize);

/// The gRPC status a call ended with, as the gateway's gRPC layer saw it
/// (`server::grpc::outcome`); in the request's extensions while tracing.
/// `-1` while unknown.
#[derive(Debug, Clone)]
pub(crate) struct Outcome(Arc<AtomicI32>);

impl Default for Outcome {
    fn default() -> Self {
        Outcome(Arc::new(AtomicI32::new(-1)))
    }
}

impl Outcome {
    pub(crate) fn set(&self, code: i32) {
        self.0.store(code, Ordering::Relaxed);
    }

    fn get(&self) -> Option<i32> {
        let code = self.0.load(Ordering::Relaxed);
        (code >= 0).then_some(code)
    }
}

impl ServerSpan {
    /// Names the span by what `response` answered, notes its status, and
    /// hands the span to the response body, which ends it.
    pub(crate) fn finish(
        mut self,
        snapshot: &Snapshot,
        face: Face,
        mut response: Response<Body>,
    ) -> Response<Body> {
        let status = response.status();
        let span = &mut self.span;
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        span.set_attribute(KeyValue::new("protogate.face", face.label()));
        let rpc = match face {
            Face::Rest | Face::WebSocket => {
                match response.extensions_mut().remove::<MatchedRoute>() {
                    Some(MatchedRoute(index)) => {
                        let route = &snapshot.routes.routes()[index];
                        let template = route.template.to_string();
                        span.update_name(format!("{} {template}", method_name(&self.method)));
                        span.set_attribute(KeyValue::new("http.route", template));
                        Some(&*route.rpc.name)
                    }
                    None => None,
                }
            }
            Face::Grpc | Face::GrpcWeb | Face::Connect => {
                let path = self.uri.path();
                let name = match snapshot.routes.rpc(path) {
                    Some(rpc) => Some(&*rpc.name),
                    // The gateway's own services (health, reflection).
                    None if crate::server::is_own_method(path) => Some(&path[1..]),
                    None => None,
                };
                if let Some(name) = name {
                    span.update_name(name.to_owned());
                }
                name
            }
            Face::Proxy => None,
        };
        if let Some((service, method)) = rpc.and_then(|name| name.split_once('/')) {
            span.set_attribute(KeyValue::new("rpc.system", "grpc"));
            span.set_attribute(KeyValue::new("rpc.service", service.to_owned()));
            span.set_attribute(KeyValue::new("rpc.method", method.to_owned()));
        }
        if status.is_server_error() {
            span.set_status(Status::error(Cow::Borrowed(
                status.canonical_reason().unwrap_or("server error"),
            )));
        }
        // A trailers-only answer's status is in its head.
        if let Some(code) = response
            .headers()
            .get("grpc-status")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.parse::<i32>().ok())
        {
            self.outcome.set(code);
        }
        let grpc = matches!(face, Face::Grpc | Face::GrpcWeb);
        response.map(|inner| {
            Body::new(Traced {
                inner,
                end: Ending {
                    span: Some(self.span),
                    outcome: grpc.then_some(self.outcome),
                },
            })
        })
    }
}

/// gRPC status codes a server's span counts as its own failure (the
/// OpenTelemetry conventions for RPC servers); the others are the
/// caller's.
fn is_server_failure(code: i32) -> bool {
    use tonic::Code;
    [
        Code::Unknown,
        Code::DeadlineExceeded,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
    ]
    .iter()
    .any(|c| *c as i32 == code)
}

pin_project_lite::pin_project! {
    /// A response body that ends its request's span when it ends (or is
    /// dropped: the client left).
    struct Traced {
        #[pin]
        inner: Body,
        end: Ending,
    }
}

/// The span of a response on its way; ended when dropped, after the body
/// (fields drop in order: the gRPC layer below records a call cut short
/// as it drops).
struct Ending {
    span: Option<Span>,
    /// For gRPC and gRPC-Web calls: the status the call ended with.
    outcome: Option<Outcome>,
}

impl Drop for Ending {
    fn drop(&mut self) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        if let Some(code) = self.outcome.as_ref().and_then(Outcome::get) {
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
            if is_server_failure(code) {
                span.set_status(Status::error(Cow::Borrowed("gRPC status")));
            }
        }
        span.end();
    }
}

impl http_body::Body for Traced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(outcome) = &this.end.outcome
            && let Some(code) = trailers
                .get("grpc-status")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .and_then(|v| v.parse::<i32>().ok())
        {
            outcome.set(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The method as the conventions write it; one they do not know is
/// `_OTHER` (a client's made-up method never becomes a span name).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        _ => "3",
    }
}

/// Request headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // W3C Trace Context: a second `traceparent` makes it invalid.
        let mut values = self.0.get_all(key).iter();
        let first = values.next()?;
        if key == "traceparent" && values.next().is_some() {
            return None;
        }
        first.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Request headers, as the propagator writes them.
struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` is none.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
