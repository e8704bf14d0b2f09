//! `tracing:`: a server span per request, exported over OTLP/gRPC to a
//! real tonic collector on 127.0.0.1 (the OpenTelemetry collector's own
//! service definition), and the backend's `traceparent` naming the
//! gateway's span.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use parking_lot::Mutex;
use serde_json::json;
use support::{EchoBackend, Script, TestGateway};
use tokio::net::TcpListener;

/// A span as the collector received it, with its resource's attributes.
#[derive(Debug, Clone)]
struct Received {
    resource: Vec<KeyValue>,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<Value> {
        find(&self.span.attributes, key)
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.attribute(key)? {
            Value::StringValue(s) => Some(s),
            other => panic!("{key} is {other:?}, not text"),
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attribute(key)? {
            Value::IntValue(i) => Some(i),
            other => panic!("{key} is {other:?}, not an integer"),
        }
    }

    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
}

fn find(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/gRPC collector on a free loopback port: keeps what it gets.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<Received>>>,
    exports: Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut received = self.received.lock();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(Received {
                        resource: resource.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Collector, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, addr)
    }

    fn spans(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    /// Waits (up to 10 s) until `count` spans have come.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..200 {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} spans expected, got {:?}", self.spans());
    }
}

fn tracing_config(collector: SocketAddr, extra: &str) -> protogate::trace::TracingConfig {
    let yaml = format!("tracing:\n  otlp_endpoint: http://{collector}\n{extra}");
    protogate::Config::from_yaml(&yaml)
        .unwrap()
        .tracing
        .unwrap()
}

/// The kitchen gateway, tracing to `collector`.
async fn gateway(collector: SocketAddr, extra: &str) -> (EchoBackend, TestGateway) {
    let tracing = tracing_config(collector, extra);
    support::gateway::kitchen(|config| {
        config.tracing = Some(tracing);
        config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// The backend's `traceparent`s on its last call.
fn backend_traceparents(backend: &EchoBackend) -> Vec<String> {
    backend
        .last()
        .metadata
        .get_all("traceparent")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A sampled `traceparent` from the client's trace and span.
fn sampled_parent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

/// GETs `path` through `gateway` with `headers`; the answer must be 200.
async fn get_ok(gateway: &str, path: &str, headers: &[(&str, &str)]) {
    let mut request = support::http1().get(format!("{gateway}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} {headers:?}");
}

/// The kitchen gateway started with a config the test may change and
/// reload (its `tracing` names `service`), its backend answering as
/// `script` says.
async fn reloadable(
    collector: SocketAddr,
    service: &str,
    script: Script,
) -> (
    Arc<Mutex<protogate::Config>>,
    protogate::Server,
    EchoBackend,
) {
    let set = support::kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    backend.script(script);
    let mut config = support::gateway::config(&set, &backend.url());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.tracing = Some(tracing_config(
        collector,
        &format!("  service_name: {service}\n"),
    ));
    let current = Arc::new(Mutex::new(config));
    let source = Arc::clone(&current);
    let server = protogate::start_with(Box::new(move || Ok(source.lock().clone())))
        .await
        .unwrap();
    (current, server, backend)
}

#[tokio::test]
async fn a_rest_call_is_a_child_of_its_caller_and_the_parent_of_the_backend() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "  service_name: edge\n").await;
    let response = support::http1()
        .post(gateway.url("/v1/echo"))
        .header("traceparent", sampled_parent())
        .header("tracestate", "vendor=abc")
        .json(&json!({"s": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = collector.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.span.name, "POST /v1/echo");
    assert_eq!(span.span.kind, SpanKind::Server as i32);
    assert_eq!(span.trace_id(), CLIENT_TRACE);
    assert_eq!(hex(&span.span.parent_span_id), CLIENT_SPAN);
    assert_eq!(span.text("http.route").as_deref(), Some("/v1/echo"));
    assert_eq!(span.text("http.request.method").as_deref(), Some("POST"));
    assert_eq!(span.text("url.path").as_deref(), Some("/v1/echo"));
    assert_eq!(span.text("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        span.text("network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(span.text("client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(span.int("http.response.status_code"), Some(200));
    assert_eq!(span.text("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        span.text("rpc.service").as_deref(),
        Some("kitchen.v1.Kitchen")
    );
    assert_eq!(span.text("rpc.method").as_deref(), Some("Echo"));
    assert_eq!(span.text("protogate.face").as_deref(), Some("rest"));
    assert_ne!(
        span.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    assert_eq!(
        find(&span.resource, "service.name"),
        Some(Value::StringValue("edge".to_owned()))
    );
    assert_eq!(
        find(&span.resource, "service.version"),
        Some(Value::StringValue(env!("CARGO_PKG_VERSION").to_owned()))
    );
    assert_eq!(
        find(&span.resource, "telemetry.sdk.language"),
        Some(Value::StringValue("rust".to_owned()))
    );
    // The backend's parent is the gateway's span, in the same trace, and
    // the caller's tracestate goes along.
    assert_eq!(
        backend_traceparents(&backend),
        [format!("00-{CLIENT_TRACE}-{}-01", span.span_id())]
    );
    assert_eq!(
        backend.last().metadata.get("tracestate").unwrap(),
        "vendor=abc"
    );
}

#[tokio::test]
async fn a_request_without_a_caller_starts_a_trace() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    get_ok(&gateway.base, "/v1/names/shelves/1/books/2", &[]).await;
    let span = collector.wait_for(1).await.remove(0);
    assert_eq!(span.span.name, "GET /v1/names/{s=shelves/*/books/**}");
    assert!(span.span.parent_span_id.is_empty(), "{span:?}");
    assert_eq!(span.trace_id().len(), 32);
    assert_eq!(
        backend_traceparents(&backend),
        [format!("00-{}-{}-01", span.trace_id(), span.span_id())]
    );
    assert_eq!(backend.last().metadata.get("tracestate"), None);
}

#[tokio::test]
async fn a_callers_choice_not_to_sample_is_followed_and_passed_on() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    get_ok(
        &gateway.base,
        "/v1/echo",
        &[(
            "traceparent",
            format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00").as_str(),
        )],
    )
    .await;
    let sent = backend_traceparents(&backend);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let parts: Vec<&str> = sent[0].split('-').collect();
    assert_eq!(parts[1], CLIENT_TRACE, "{sent:?}");
    assert_ne!(parts[2], CLIENT_SPAN, "the gateway's own span id: {sent:?}");
    assert_eq!(parts[3], "00", "{sent:?}");
    // Anything sampled after it comes, the unsampled one not at all.
    get_ok(&gateway.base, "/v1/echo", &[]).await;
    gateway.server.shutdown().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_ne!(spans[0].trace_id(), CLIENT_TRACE);
}

#[tokio::test]
async fn sample_ratio_zero_records_no_new_trace_but_follows_sampled_callers() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "  sample_ratio: 0\n").await;
    for _ in 0..5 {
        get_ok(&gateway.base, "/v1/echo", &[]).await;
    }
    let sent = backend_traceparents(&backend);
    assert!(sent[0].ends_with("-00"), "{sent:?}");
    get_ok(
        &gateway.base,
        "/v1/echo",
        &[("traceparent", sampled_parent().as_str())],
    )
    .await;
    gateway.server.shutdown().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].trace_id(), CLIENT_TRACE);
}

#[tokio::test]
async fn a_bad_or_spoofed_trace_context_is_replaced_not_passed_on() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    let client = support::http1();
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "not a traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-1-1",
    ] {
        let response = client
            .get(gateway.url("/v1/echo"))
            .header("traceparent", bad)
            .header("tracestate", "vendor=abc")
            .header("grpc-metadata-traceparent", sampled_parent())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{bad}");
        let sent = backend_traceparents(&backend);
        assert_eq!(sent.len(), 1, "{bad}: {sent:?}");
        assert!(!sent[0].contains("4bf92f3577b34da6"), "{bad}: {sent:?}");
        // A tracestate without a valid traceparent means nothing.
        assert_eq!(backend.last().metadata.get("tracestate"), None, "{bad}");
    }
    gateway.server.shutdown().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 9, "{spans:?}");
    assert!(
        spans.iter().all(|s| s.span.parent_span_id.is_empty()),
        "{spans:?}"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_never_name_a_span() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "").await;
    let client = support::http1();
    let response = client
        .get(gateway.url("/no/such/path/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            gateway.url("/v1/echo"),
        )
        .send()
        .await
        .unwrap();
    // 501: no route of the gateway takes a method it does not know.
    assert_eq!(response.status(), 501);
    gateway.server.shutdown().await;
    let mut spans = collector.spans();
    spans.sort_by_key(|s| s.int("http.response.status_code"));
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    assert_eq!(names, ["GET", "_OTHER"], "{spans:?}");
    assert_eq!(spans[0].attribute("http.route"), None);
    assert_eq!(spans[0].int("http.response.status_code"), Some(404));
    // A client's mistake is not the server's failure.
    assert_ne!(
        spans[0].span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32),
        "{spans:?}"
    );
}

#[tokio::test]
async fn grpc_calls_are_named_by_method_and_carry_their_status() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo")).await;
    assert_eq!(status, "0");
    backend.script(Script {
        error: Some((tonic::Code::Unavailable, "down".to_owned(), Vec::new())),
        ..Script::default()
    });
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo")).await;
    assert_eq!(status, "14");
    backend.script(Script {
        error: Some((tonic::Code::NotFound, "no".to_owned(), Vec::new())),
        ..Script::default()
    });
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo")).await;
    assert_eq!(status, "5");
    // The gateway's own health service, and a method nobody serves.
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/grpc.health.v1.Health/Check"))
            .await;
    assert_eq!(status, "0");
    let (status, _, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/made.Up/Thing")).await;
    assert_ne!(status, "0");
    gateway.server.shutdown().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 5, "{spans:?}");
    let by_code = |code: i64| {
        spans
            .iter()
            .find(|s| {
                s.int("rpc.grpc.status_code") == Some(code)
                    && s.span.name == "kitchen.v1.Kitchen/Echo"
            })
            .unwrap_or_else(|| panic!("no Echo span with code {code}: {spans:?}"))
    };
    let ok = by_code(0);
    assert_eq!(ok.text("protogate.face").as_deref(), Some("grpc"));
    assert_eq!(
        ok.text("rpc.service").as_deref(),
        Some("kitchen.v1.Kitchen")
    );
    assert_eq!(ok.text("network.protocol.version").as_deref(), Some("2"));
    let error = Some(StatusCode::Error as i32);
    assert_ne!(ok.span.status.as_ref().map(|s| s.code), error);
    assert_eq!(by_code(14).span.status.as_ref().map(|s| s.code), error);
    // NOT_FOUND is the caller's business, not a failure of the server.
    assert_ne!(by_code(5).span.status.as_ref().map(|s| s.code), error);
    assert!(
        spans
            .iter()
            .any(|s| s.span.name == "grpc.health.v1.Health/Check"),
        "{spans:?}"
    );
    assert!(
        spans.iter().any(|s| s.span.name == "POST"
            && s.int("rpc.grpc.status_code").is_some_and(|c| c != 0)),
        "{spans:?}"
    );
}

#[tokio::test]
async fn a_stream_span_lasts_as_long_as_the_stream() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    backend.script(Script {
        count: Some(3),
        interval: Some(Duration::from_millis(200)),
        ..Script::default()
    });
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = support::client::stream_text(response).await;
    assert_eq!(text.lines().count(), 3, "{text}");
    let span = collector.wait_for(1).await.remove(0);
    let lasted = span.span.end_time_unix_nano - span.span.start_time_unix_nano;
    assert!(lasted >= 400_000_000, "{lasted} ns: {span:?}");
}

#[tokio::test]
async fn a_collector_that_is_down_costs_spans_not_requests() {
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (_backend, gateway) = gateway(addr, "  timeout: 1s\n").await;
    let client = support::http1();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = gateway.metrics_text().await;
        if text.contains(r#"protogate_trace_spans_total{outcome="failed"} 3"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains(r#"protogate_trace_spans_total{outcome="failed"} 3"#),
        "{text}"
    );
    let status = gateway.admin_status().await;
    assert_eq!(status["tracing"]["collector_answering"], false, "{status}");
    assert!(
        status["tracing"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{status}"
    );
}

#[tokio::test]
async fn admin_status_says_where_spans_go_and_whether_they_arrive() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "  sample_ratio: 0.5\n").await;
    let status = gateway.admin_status().await;
    let tracing = &status["tracing"];
    assert_eq!(tracing["otlp_endpoint"], format!("http://{addr}"));
    assert_eq!(tracing["sample_ratio"], 0.5);
    assert_eq!(tracing["collector_answering"], serde_json::Value::Null);
    get_ok(
        &gateway.base,
        "/v1/echo",
        &[("traceparent", sampled_parent().as_str())],
    )
    .await;
    collector.wait_for(1).await;
    let mut answering = serde_json::Value::Null;
    for _ in 0..100 {
        answering = gateway.admin_status().await["tracing"]["collector_answering"].clone();
        if answering == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answering, true);
}

#[tokio::test]
async fn spans_are_sent_in_batches_and_flushed_at_shutdown() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "").await;
    for _ in 0..20 {
        get_ok(&gateway.base, "/v1/echo", &[]).await;
    }
    // Well within the batch delay: nothing needs to have gone yet, and
    // all of it goes at shutdown.
    gateway.server.shutdown().await;
    assert_eq!(collector.spans().len(), 20);
    let exports = collector.exports.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&exports), "{exports} exports");
}

#[tokio::test]
async fn bad_tracing_settings_are_refused_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("protogate.yaml");
    std::fs::write(
        &path,
        "upstreams:\n  default: {url: \"http://127.0.0.1:1\"}\ntracing:\n  otlp_endpoint: http://127.0.0.1:4317\n  sample_ratio: 2\n",
    )
    .unwrap();
    let output = support::gateway::binary()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("protogate.yaml:5: tracing.sample_ratio"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_reload_that_changes_tracing_sends_the_old_spans_and_uses_the_new_settings() {
    let (collector, addr) = Collector::start().await;
    let (current, server, _backend) = reloadable(addr, "one", Script::default()).await;
    let base = format!("http://{}", server.local_addr());
    get_ok(&base, "/v1/echo", &[]).await;
    // Within the batch delay: the span is still queued when its exporter
    // is replaced.
    current.lock().tracing = Some(tracing_config(addr, "  service_name: two\n"));
    server.reloader().unwrap().reload("test").await.unwrap();
    get_ok(&base, "/v1/echo", &[]).await;
    server.shutdown().await;
    let spans = collector.wait_for(2).await;
    let mut services: Vec<Option<Value>> = spans
        .iter()
        .map(|s| find(&s.resource, "service.name"))
        .collect();
    services.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        services,
        [
            Some(Value::StringValue("one".to_owned())),
            Some(Value::StringValue("two".to_owned()))
        ]
    );
}

#[tokio::test]
async fn a_reload_mid_stream_keeps_the_streams_span() {
    let (collector, addr) = Collector::start().await;
    let script = Script {
        count: Some(3),
        interval: Some(Duration::from_millis(300)),
        ..Script::default()
    };
    let (current, server, _backend) = reloadable(addr, "one", script).await;
    let url = format!("http://{}/v1/watch", server.local_addr());
    let mut response = support::http1().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    current.lock().tracing = Some(tracing_config(addr, "  service_name: two\n"));
    server.reloader().unwrap().reload("test").await.unwrap();
    let rest = support::client::stream_text(response).await;
    assert_eq!(rest.lines().count(), 2, "{rest}");
    let span = collector.wait_for(1).await.remove(0);
    assert_eq!(span.span.name, "GET /v1/watch");
    assert_eq!(
        find(&span.resource, "service.name"),
        Some(Value::StringValue("one".to_owned()))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_before_the_head_still_gets_a_named_span() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "").await;
    // REST: the client gives up while the backend is still thinking.
    let gave_up = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("grpc-metadata-x-echo-delay-ms", "2000")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err());
    // gRPC: the call is reset before its head.
    let mut conn = support::client::Conn::http2(gateway.addr()).await;
    let request = http::Request::post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-echo-delay-ms", "2000")
        .body(support::client::full(support::envelope(0, b"")))
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(300), conn.send(request)).await;
    assert!(cut.is_err());
    let spans = collector.wait_for(2).await;
    let rest = spans
        .iter()
        .find(|s| s.span.name == "GET /v1/echo")
        .unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(
        rest.attribute("protogate.client_left"),
        Some(Value::BoolValue(true))
    );
    assert_eq!(rest.text("protogate.face").as_deref(), Some("rest"));
    assert_eq!(rest.attribute("http.response.status_code"), None);
    let grpc = spans
        .iter()
        .find(|s| s.span.name == "kitchen.v1.Kitchen/Echo")
        .unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(
        grpc.int("rpc.grpc.status_code"),
        Some(1),
        "CANCELLED: {grpc:?}"
    );
    assert_eq!(
        grpc.attribute("protogate.client_left"),
        Some(Value::BoolValue(true))
    );
}

#[tokio::test]
async fn a_rest_stream_that_fails_after_its_head_is_a_failed_span() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "").await;
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .header("grpc-metadata-x-echo-count", "3")
        .header("grpc-metadata-x-echo-fail-after", "2")
        .header("grpc-metadata-x-echo-status", "14")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = support::client::stream_text(response).await;
    assert!(text.contains(r#""error""#), "{text}");
    let span = collector.wait_for(1).await.remove(0);
    assert_eq!(span.int("http.response.status_code"), Some(200));
    assert_eq!(span.int("rpc.grpc.status_code"), Some(14), "{span:?}");
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
}

#[tokio::test]
async fn several_tracestate_headers_are_one_list() {
    let (_collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    get_ok(
        &gateway.base,
        "/v1/echo",
        &[
            ("traceparent", sampled_parent().as_str()),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ],
    )
    .await;
    assert_eq!(
        backend.last().metadata.get("tracestate").unwrap(),
        "a=1,b=2"
    );
}

#[tokio::test]
async fn a_proxied_group_is_named_by_its_prefix() {
    let (collector, addr) = Collector::start().await;
    let service = support::plain::http_service().await;
    let group = support::plain::group("/legacy", &format!("http://{service}"));
    let (_backend, gateway) = {
        let tracing = tracing_config(addr, "");
        support::gateway::kitchen(|config| {
            config.tracing = Some(tracing);
            config.routes.push(group);
        })
        .await
    };
    get_ok(&gateway.base, "/legacy/anything/1", &[]).await;
    let span = collector.wait_for(1).await.remove(0);
    assert_eq!(span.span.name, "GET /legacy/*");
    assert_eq!(span.text("http.route").as_deref(), Some("/legacy/*"));
    assert_eq!(span.text("protogate.face").as_deref(), Some("proxy"));
}

#[tokio::test]
async fn a_made_up_method_under_the_gateways_own_services_names_no_span() {
    let (collector, addr) = Collector::start().await;
    let (_backend, gateway) = gateway(addr, "").await;
    let made_up = format!("/grpc.health.v1.Health/{}", "X".repeat(5000));
    let response = support::http1()
        .get(gateway.url(&made_up))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let (status, _, _) = support::client::grpc_call(gateway.addr(), &gateway.url(&made_up)).await;
    assert_ne!(status, "0");
    gateway.server.shutdown().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    for span in &spans {
        assert!(span.span.name.len() <= 8, "{}", span.span.name);
        assert_eq!(span.attribute("rpc.method"), None);
    }
}

#[tokio::test]
async fn a_rest_stream_its_client_leaves_is_cancelled_not_ok() {
    let (collector, addr) = Collector::start().await;
    let (backend, gateway) = gateway(addr, "").await;
    backend.script(Script {
        count: Some(20),
        interval: Some(Duration::from_millis(100)),
        ..Script::default()
    });
    let mut response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    let span = collector.wait_for(1).await.remove(0);
    assert_eq!(span.int("rpc.grpc.status_code"), Some(1), "{span:?}");
}

#[tokio::test]
async fn a_stream_cut_at_the_end_of_the_grace_period_keeps_its_span() {
    let (collector, addr) = Collector::start().await;
    let tracing = tracing_config(addr, "");
    let (backend, gateway) = support::gateway::kitchen(|config| {
        config.tracing = Some(tracing);
        config.timeouts.shutdown = Duration::from_millis(500);
    })
    .await;
    backend.script(Script {
        count: Some(100),
        interval: Some(Duration::from_millis(100)),
        ..Script::default()
    });
    let mut response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    assert!(response.chunk().await.unwrap().is_some());
    let started = std::time::Instant::now();
    gateway.server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].span.name, "GET /v1/watch");
    assert_eq!(spans[0].int("rpc.grpc.status_code"), Some(1));
    drop(response);
}
