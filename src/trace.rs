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
mod resource;

pub use config::TracingConfig;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
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
    /// Each span holds the tracer (and through it the queue) until it
    /// ends: a tracer replaced by a reload still takes the spans of the
    /// requests in flight, and its export task sends them and stops once
    /// the last is gone.
    tracer: SdkTracer,
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
            if previous.is_some() {
                tracing::info!("Tracing is off: no more spans are made");
            }
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
            exporting,
            propagator: TraceContextPropagator::new(),
        })))
    }

    /// What `/admin/status` shows of tracing: where spans go, and whether
    /// the collector took the last batch (`null` before the first).
    pub(crate) fn status(&self) -> serde_json::Value {
        let (answering, last_error) = match self.exporting.health.last() {
            None => (None, None),
            Some(Ok(())) => (Some(true), None),
            Some(Err(why)) => (Some(false), Some(why)),
        };
        serde_json::json!({
            "otlp_endpoint": self.config.otlp_endpoint,
            "sample_ratio": self.config.sample_ratio,
            "service_name": self.config.service_name,
            "collector_answering": answering,
            "last_error": last_error,
        })
    }

    /// Sends the spans still queued, waiting at most the export timeout:
    /// for shutdown.
    pub(crate) async fn flush(&self) {
        tracing::debug!(timeout = ?self.config.timeout, "Sending the last spans to the trace collector");
        if !self.exporting.flush(self.config.timeout).await {
            tracing::warn!(
                timeout = ?self.config.timeout,
                "The trace collector did not take the last spans in time; they are lost"
            );
        }
    }

    /// Starts `request`'s span and makes the request's `traceparent`
    /// name it (whether or not the span records).
    pub(crate) fn start<B>(
        &self,
        snapshot: &Arc<Snapshot>,
        request: &mut Request<B>,
    ) -> ServerSpan {
        let parent = self.propagator.extract(&Headers::of(request.headers()));
        let method = request.method().clone();
        // Attributes only for a span that records: most are allocated.
        let mut span = self
            .tracer
            .span_builder(method_name(&method))
            .with_kind(SpanKind::Server)
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
        if !span.is_recording() {
            return ServerSpan { recording: None };
        }
        span.set_attribute(KeyValue::new("http.request.method", method_name(&method)));
        span.set_attribute(KeyValue::new(
            "url.path",
            path_attribute(request.uri().path()),
        ));
        span.set_attribute(KeyValue::new(
            "network.protocol.version",
            protocol_version(request.version()),
        ));
        if let Some(transport) = request.extensions().get::<crate::server::Transport>() {
            span.set_attribute(KeyValue::new("url.scheme", transport.scheme()));
        }
        if let Some(ClientAddr(addr)) = request.extensions().get::<ClientAddr>() {
            span.set_attribute(KeyValue::new("client.address", addr.ip().to_string()));
        }
        let notes = SpanNotes::default();
        request.extensions_mut().insert(notes.clone());
        ServerSpan {
            recording: Some(Recording {
                span,
                snapshot: Arc::clone(snapshot),
                method,
                uri: request.uri().clone(),
                notes,
            }),
        }
    }
}

/// A request's span, until its response head is known; one dropped
/// before then (the client left) ends as far as the request got.
pub(crate) struct ServerSpan {
    /// `None` for a span that does not record: nothing to note.
    recording: Option<Recording>,
}

struct Recording {
    span: Span,
    /// What names the span: the routes and methods the request was
    /// served with.
    snapshot: Arc<Snapshot>,
    method: Method,
    uri: Uri,
    notes: SpanNotes,
}

/// What the handlers learn of a request that its span is named and
/// judged by: how the client spoke, the REST route it matched, the gRPC
/// status its call ended with. In the request's extensions while its
/// span records; written as they learn it, read when the span ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanNotes(Arc<Notes>);

#[derive(Debug)]
struct Notes {
    /// The face's place in `Face::ALL` + 1; 0 while unknown.
    face: AtomicU8,
    /// The route's index + 1; 0 for none.
    route: AtomicUsize,
    /// The gRPC status code; -1 while unknown.
    code: AtomicI32,
}

impl Default for Notes {
    fn default() -> Self {
        Notes {
            face: AtomicU8::new(0),
            route: AtomicUsize::new(0),
            code: AtomicI32::new(-1),
        }
    }
}

impl SpanNotes {
    /// The notes in `extensions`, if the request's span records. Without
    /// tracing in `snapshot` no request carries any, and the extensions
    /// are not looked at.
    pub(crate) fn of(snapshot: &Snapshot, extensions: &http::Extensions) -> Option<SpanNotes> {
        snapshot.tracing.as_ref()?;
        extensions.get::<SpanNotes>().cloned()
    }

    pub(crate) fn face(&self, face: Face) {
        let place = Face::ALL.iter().position(|f| *f == face).unwrap_or(0);
        self.0.face.store(place as u8 + 1, Ordering::Relaxed);
    }

    pub(crate) fn matched(&self, route: usize) {
        self.0.route.store(route + 1, Ordering::Relaxed);
    }

    /// The gRPC status the call ended with (a later one, such as a
    /// stream's failure after its head, replaces it).
    pub(crate) fn ended(&self, code: i32) {
        self.0.code.store(code, Ordering::Relaxed);
    }

    fn get_face(&self) -> Option<Face> {
        let face = self.0.face.load(Ordering::Relaxed);
        Face::ALL.get(usize::from(face).checked_sub(1)?).copied()
    }

    fn get_route(&self) -> Option<usize> {
        self.0.route.load(Ordering::Relaxed).checked_sub(1)
    }

    fn get_code(&self) -> Option<i32> {
        let code = self.0.code.load(Ordering::Relaxed);
        (code >= 0).then_some(code)
    }
}

impl ServerSpan {
    /// Notes what `response` answered and hands the span to the response
    /// body, which ends it.
    pub(crate) fn finish(mut self, response: Response<Body>) -> Response<Body> {
        let Some(mut recording) = self.recording.take() else {
            return response;
        };
        recording.describe();
        let status = response.status();
        let span = &mut recording.span;
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_status(Status::error(Cow::Borrowed(
                status.canonical_reason().unwrap_or("server error"),
            )));
        }
        // A trailers-only gRPC answer's status is in its head.
        if let Some(code) = grpc_status(response.headers()) {
            recording.notes.ended(code);
        }
        let Recording { span, notes, .. } = recording;
        response.map(|inner| {
            Body::new(Traced {
                inner,
                end: Ending {
                    span: Some(span),
                    notes,
                },
            })
        })
    }
}

impl Drop for ServerSpan {
    /// The client left before the response head: the span ends with what
    /// is known (a gRPC call's CANCELLED among it, noted by the gRPC
    /// layer as it was dropped).
    fn drop(&mut self) {
        if let Some(mut recording) = self.recording.take() {
            recording.describe();
            recording
                .span
                .set_attribute(KeyValue::new("protogate.client_left", true));
            drop(Ending {
                span: Some(recording.span),
                notes: recording.notes,
            });
        }
    }
}

impl Recording {
    /// Names the span by what the request reached, with the attributes
    /// of its face, route and method.
    fn describe(&mut self) {
        let span = &mut self.span;
        let face = self.notes.get_face();
        if let Some(face) = face {
            span.set_attribute(KeyValue::new("protogate.face", face.label()));
        }
        let path = self.uri.path();
        let method = method_name(&self.method);
        let rpc = if let Some(index) = self.notes.get_route() {
            let route = &self.snapshot.routes.routes()[index];
            let template = route.template.to_string();
            span.update_name(format!("{method} {template}"));
            span.set_attribute(KeyValue::new("http.route", template));
            Some(&*route.rpc.name)
        } else if face == Some(Face::Proxy) {
            if let Some(prefix) = self.snapshot.groups.prefix(path) {
                let route = format!("{prefix}/*");
                span.update_name(format!("{method} {route}"));
                span.set_attribute(KeyValue::new("http.route", route));
            }
            None
        } else {
            // A gRPC, gRPC-Web or Connect call: by its path.
            let name = match self.snapshot.routes.rpc(path) {
                Some(rpc) => Some(&*rpc.name),
                // The gateway's own services (health, reflection).
                None if crate::server::is_own_method(path) => Some(&path[1..]),
                None => None,
            };
            if let Some(name) = name {
                span.update_name(name.to_owned());
            }
            name
        };
        if let Some((service, method)) = rpc.and_then(|name| name.split_once('/')) {
            span.set_attribute(KeyValue::new("rpc.system", "grpc"));
            span.set_attribute(KeyValue::new("rpc.service", service.to_owned()));
            span.set_attribute(KeyValue::new("rpc.method", method.to_owned()));
        }
    }
}

/// The `grpc-status` in `headers`, if any.
fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    std::str::from_utf8(headers.get("grpc-status")?.as_bytes())
        .ok()?
        .parse()
        .ok()
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
/// (fields drop in order: the layers below note how the call ended as
/// they drop).
struct Ending {
    span: Option<Span>,
    notes: SpanNotes,
}

impl Drop for Ending {
    fn drop(&mut self) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        if let Some(code) = self.notes.get_code() {
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
            if is_server_failure(code) {
                span.set_status(Status::error(Cow::Borrowed("the call failed")));
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
            && let Some(code) = frame.trailers_ref().and_then(grpc_status)
        {
            this.end.notes.ended(code);
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
struct Headers<'a> {
    map: &'a HeaderMap,
    /// Several `tracestate` headers, joined as one list (W3C Trace
    /// Context §3.3.1.1).
    tracestate: Option<String>,
}

impl<'a> Headers<'a> {
    fn of(map: &'a HeaderMap) -> Headers<'a> {
        let mut values = map.get_all(TRACESTATE).iter();
        let first = values.next();
        let several = values.next().is_some();
        let long = first.is_some_and(|v| v.len() > MAX_TRACESTATE);
        let tracestate = (several || long).then(|| {
            let parts: Vec<&str> = map
                .get_all(TRACESTATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            shortened_tracestate(&parts.join(","))
        });
        Headers { map, tracestate }
    }
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == "tracestate"
            && let Some(joined) = &self.tracestate
        {
            return Some(joined);
        }
        // W3C Trace Context: a second `traceparent` makes it invalid.
        let mut values = self.map.get_all(key).iter();
        let first = values.next()?.to_str().ok()?;
        if key == "traceparent" && (values.next().is_some() || !is_traceparent(first)) {
            return None;
        }
        Some(first)
    }

    fn keys(&self) -> Vec<&str> {
        self.map.keys().map(HeaderName::as_str).collect()
    }
}

/// Whether `value` is a `traceparent` as W3C Trace Context §3.2 writes
/// it: checked here in full, since the propagator reads fields of the
/// wrong length (or with a sign) as numbers and pads them, making up
/// trace ids no caller sent.
fn is_traceparent(value: &str) -> bool {
    let hex = |field: &[u8]| {
        field
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let bytes = value.as_bytes();
    if bytes.len() < 55 || !hex(&bytes[..2]) || &bytes[..2] == b"ff" {
        return false;
    }
    // Version 00 is exactly 55 characters; a later version may add
    // fields after a dash.
    let rest_ok = match &bytes[55..] {
        [] => true,
        [b'-', ..] => &bytes[..2] != b"00",
        _ => false,
    };
    let (trace, parent, flags) = (&bytes[3..35], &bytes[36..52], &bytes[53..55]);
    rest_ok
        && bytes[2] == b'-'
        && bytes[35] == b'-'
        && bytes[52] == b'-'
        && hex(trace)
        && hex(parent)
        && hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0')
}

/// The longest `tracestate` kept (W3C Trace Context §3.3.1.5: at least
/// 512 characters are to be passed on; longer ones may be cut).
const MAX_TRACESTATE: usize = 512;

/// `list` (a `tracestate`) cut to [`MAX_TRACESTATE`] as §3.3.1.5 says:
/// entries over 128 characters go first, then entries from the end.
fn shortened_tracestate(list: &str) -> String {
    let mut kept = String::with_capacity(list.len().min(MAX_TRACESTATE));
    let entries = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter(|e| list.len() <= MAX_TRACESTATE || e.len() <= 128);
    for entry in entries {
        let needed = if kept.is_empty() { 0 } else { 1 } + entry.len();
        if kept.len() + needed > MAX_TRACESTATE {
            break;
        }
        if !kept.is_empty() {
            kept.push(',');
        }
        kept.push_str(entry);
    }
    kept
}

/// The longest `url.path` a span keeps: a client's 8 KiB path would make
/// each of its spans as large, and a batch of them more than a collector
/// takes in one message.
const MAX_PATH_ATTRIBUTE: usize = 1024;

/// `path`, cut to [`MAX_PATH_ATTRIBUTE`] bytes (at a character's start).
fn path_attribute(path: &str) -> String {
    let mut end = path.len().min(MAX_PATH_ATTRIBUTE);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_a_whole_traceparent_is_one() {
        assert!(is_traceparent(VALID));
        assert!(is_traceparent(&VALID.replace("-01", "-00")));
        // A later version may carry more after a dash; 00 may not.
        assert!(is_traceparent(&format!("01{}-more", &VALID[2..])));
        assert!(is_traceparent(&format!("cc{}", &VALID[2..])));
        for bad in [
            "",
            "0-1-1-1",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_long_tracestate_is_cut_to_whole_entries() {
        assert_eq!(shortened_tracestate("a=1, b=2 ,,c=3"), "a=1,b=2,c=3");
        let long = format!("big={}", "x".repeat(200));
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v{i}")).collect();
        let list = format!("a=1,{long},{}", many.join(","));
        let cut = shortened_tracestate(&list);
        assert!(cut.len() <= MAX_TRACESTATE, "{}", cut.len());
        assert!(cut.starts_with("a=1,k0=v0,k1=v1"), "{cut}");
        assert!(!cut.contains("big="), "entries over 128 go first: {cut}");
        assert!(cut.split(',').all(|e| e.contains('=')), "{cut}");
        // A list that fits keeps its long entries.
        assert_eq!(
            shortened_tracestate(&format!("a=1,{long}")),
            format!("a=1,{long}")
        );
    }

    #[test]
    fn a_path_attribute_is_cut_at_a_character() {
        assert_eq!(path_attribute("/v1/x"), "/v1/x");
        let long = format!("/{}", "é".repeat(1000));
        let cut = path_attribute(&long);
        assert!(cut.len() <= MAX_PATH_ATTRIBUTE && cut.len() >= MAX_PATH_ATTRIBUTE - 1);
        assert!(long.starts_with(&cut));
    }
}
