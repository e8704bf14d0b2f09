//! Prometheus metrics, served at `GET /metrics` on the admin listener.
//!
//! - `protogate_requests_total{face, code}` and
//!   `protogate_request_duration_seconds{face}`: every request the gateway
//!   answers, by how the client spoke (`rest`, `grpc`, `grpc_web`,
//!   `connect`, `websocket`, `proxy` for a route group's HTTP service) and
//!   the HTTP status class of the answer (`2xx` ... `5xx`), and the time to
//!   its response head.
//! - `protogate_route_requests_total{method, route, rpc, code}` and
//!   `protogate_route_request_duration_seconds{method, route, rpc}`: the
//!   same per transcoded REST route.
//! - `protogate_grpc_calls_total{face, grpc_code}`: the calls of gRPC and
//!   gRPC-Web clients by the status they end with (`OK`, `UNAVAILABLE`,
//!   ...), read from the trailers as the call ends; a call whose client
//!   went away first is `CANCELLED`.
//! - `protogate_stream_ends_total{face, grpc_code}`: the streamed answers
//!   of REST, Connect and WebSocket clients by the status they ended with,
//!   counted at their end (their head counts in
//!   `protogate_requests_total` when it goes out): `OK`, `CANCELLED` for a
//!   client that left first, else the failure's code.
//! - `protogate_rate_limited_total{rule}`: calls each `rate_limits` rule
//!   refused (429, or `RESOURCE_EXHAUSTED`).
//! - `protogate_trace_spans_total{outcome}`: spans of requests (with
//!   `tracing` configured) `exported`, `failed` (the collector refused
//!   them or did not answer) or `dropped` (the export queue was full).
//! - `protogate_routes`, `protogate_snapshot_loads_total` and
//!   `protogate_ready`: read from the gateway when scraped.
//!
//! Limitation: the duration of a streamed response is the time to its
//! head, and `protogate_requests_total` counts a stream by its head (a
//! gRPC call's 200, a WebSocket's 101, however they end); how streams
//! end is in `protogate_grpc_calls_total` and `protogate_stream_ends_total`.
//!
//! Handles are made once (the faces when the registry is, a route's on its
//! first request) and kept: recording is an atomic add and a histogram
//! sample, with no lookup by name. The registry lives as long as the
//! gateway, so counts carry over reloads.

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder as _, SharedString};
use http::StatusCode;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::route::Route;

/// Bucket bounds of the duration histograms (seconds): from a loopback
/// call to a slow backend's.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes, `1xx` to `5xx`, by the status's first digit less one.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// gRPC status codes by number, as the `grpc_code` label writes them.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What became of a span, for `protogate_trace_spans_total{outcome}`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpanOutcome {
    /// The collector took it.
    Exported,
    /// The collector refused it or did not answer.
    Failed,
    /// The export queue was full.
    Dropped,
}

impl SpanOutcome {
    fn labels(self) -> &'static [Label] {
        static LABELS: [[Label; 1]; 3] = [
            [Label::from_static_parts("outcome", "exported")],
            [Label::from_static_parts("outcome", "failed")],
            [Label::from_static_parts("outcome", "dropped")],
        ];
        &LABELS[self as usize]
    }
}

/// How a client spoke to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Rest,
    Grpc,
    GrpcWeb,
    Connect,
    WebSocket,
    /// A route group's plain HTTP service.
    Proxy,
}

impl Face {
    pub(crate) const ALL: [Face; 6] = [
        Face::Rest,
        Face::Grpc,
        Face::GrpcWeb,
        Face::Connect,
        Face::WebSocket,
        Face::Proxy,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Face::Rest => "rest",
            Face::Grpc => "grpc",
            Face::GrpcWeb => "grpc_web",
            Face::Connect => "connect",
            Face::WebSocket => "websocket",
            Face::Proxy => "proxy",
        }
    }
}

/// A count per status class and a duration histogram, for one set of
/// labels.
#[derive(Debug)]
pub(crate) struct Stats {
    codes: [Counter; 5],
    seconds: Histogram,
}

impl Stats {
    fn register(recorder: &PrometheusRecorder, prefix: &str, labels: &[Label]) -> Stats {
        let count = format!("{prefix}requests_total");
        let codes = CLASSES.map(|class| {
            let mut all = labels.to_vec();
            all.push(Label::new("code", class));
            recorder.register_counter(&Key::from_parts(count.clone(), all), &metadata())
        });
        let seconds = recorder.register_histogram(
            &Key::from_parts(format!("{prefix}request_duration_seconds"), labels.to_vec()),
            &metadata(),
        );
        Stats { codes, seconds }
    }

    /// Counts one answer with `status`, whose head took `elapsed`.
    pub(crate) fn record(&self, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.codes[class].increment(1);
        self.seconds.record(elapsed.as_secs_f64());
    }
}

/// A count per gRPC status code, for one face.
#[derive(Debug)]
struct GrpcCodes([Counter; 17]);

impl GrpcCodes {
    fn register(recorder: &PrometheusRecorder, name: &'static str, face: Face) -> GrpcCodes {
        GrpcCodes(GRPC_CODES.map(|code| {
            let labels = vec![
                Label::new("face", face.label()),
                Label::new("grpc_code", code),
            ];
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        }))
    }

    /// Counts one `code`; a number outside gRPC's codes counts as
    /// `UNKNOWN`, as clients read it.
    fn count(&self, code: i32) {
        let index = usize::try_from(code)
            .ok()
            .filter(|&i| i < GRPC_CODES.len())
            .unwrap_or(2);
        self.0[index].increment(1);
    }
}

/// The gateway's metrics registry.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    faces: [Stats; 6],
    /// gRPC and gRPC-Web calls by status.
    grpc: [GrpcCodes; 2],
    /// REST, Connect and WebSocket streams by the status they ended with.
    streams: [GrpcCodes; 3],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry, with the handles of every face made.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".to_owned()), &BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        describe(&recorder);
        let faces = Face::ALL.map(|face| {
            Stats::register(&recorder, "protogate_", &[Label::new("face", face.label())])
        });
        let grpc = [Face::Grpc, Face::GrpcWeb]
            .map(|face| GrpcCodes::register(&recorder, "protogate_grpc_calls_total", face));
        let streams = [Face::Rest, Face::Connect, Face::WebSocket]
            .map(|face| GrpcCodes::register(&recorder, "protogate_stream_ends_total", face));
        Metrics {
            handle: recorder.handle(),
            recorder,
            faces,
            grpc,
            streams,
        }
    }

    /// Counts one gRPC (or gRPC-Web) call that ended with status `code`;
    /// a number outside gRPC's codes counts as `UNKNOWN`, as clients
    /// read it. Other faces have no such count.
    pub(crate) fn record_grpc(&self, face: Face, code: i32) {
        match face {
            Face::Grpc => self.grpc[0].count(code),
            Face::GrpcWeb => self.grpc[1].count(code),
            _ => {}
        }
    }

    /// Counts one streamed answer of a REST, Connect or WebSocket client
    /// that ended with status `code` (its head was counted when it went
    /// out). Other faces have no such count.
    pub(crate) fn record_stream_end(&self, face: Face, code: tonic::Code) {
        let codes = match face {
            Face::Rest => &self.streams[0],
            Face::Connect => &self.streams[1],
            Face::WebSocket => &self.streams[2],
            _ => return,
        };
        codes.count(code as i32);
    }

    /// Counts one answer on `face`.
    pub(crate) fn record(&self, face: Face, status: StatusCode, elapsed: Duration) {
        self.faces[face as usize].record(status, elapsed);
    }

    /// The stats of one REST route, made on its first request.
    pub(crate) fn route<'c>(&self, cell: &'c OnceLock<Stats>, route: &Route) -> &'c Stats {
        cell.get_or_init(|| {
            Stats::register(
                &self.recorder,
                "protogate_route_",
                &[
                    Label::new("method", route.method.as_str().to_owned()),
                    Label::new("route", route.template.to_string()),
                    Label::new("rpc", route.rpc.name.to_string()),
                ],
            )
        })
    }

    /// The counter of calls a rate limit rule refused, by its name.
    pub(crate) fn rate_limited(&self, rule: &str) -> Counter {
        self.recorder.register_counter(
            &Key::from_parts(
                "protogate_rate_limited_total",
                vec![Label::new("rule", rule.to_owned())],
            ),
            &metadata(),
        )
    }

    /// The counter of spans that came to `outcome`.
    pub(crate) fn trace_spans(&self, outcome: SpanOutcome) -> Counter {
        self.recorder.register_counter(
            &Key::from_static_parts("protogate_trace_spans_total", outcome.labels()),
            &metadata(),
        )
    }

    /// Sets a gauge read from the gateway when scraped.
    pub(crate) fn set_gauge(&self, name: &'static str, value: f64) {
        self.recorder
            .register_gauge(&Key::from_static_name(name), &metadata())
            .set(value);
    }

    /// Sets a counter the gateway keeps itself, read when scraped.
    pub(crate) fn set_counter(&self, name: &'static str, value: u64) {
        self.recorder
            .register_counter(&Key::from_static_name(name), &metadata())
            .absolute(value);
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the histograms' samples into their buckets; without it they
    /// would pile up between scrapes (or forever, with no scraper).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// What every registration says of where it comes from (the exporter
/// keeps none of it).
fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), ::metrics::Level::INFO, None)
}

/// The `# HELP` line of each metric.
fn describe(recorder: &PrometheusRecorder) {
    let help = |name: &'static str, text: &'static str| {
        (KeyName::from_const_str(name), SharedString::const_str(text))
    };
    for (name, text) in [
        help(
            "protogate_requests_total",
            "Answers by how the client spoke and HTTP status class",
        ),
        help(
            "protogate_route_requests_total",
            "Answers of each transcoded REST route by HTTP status class",
        ),
        help(
            "protogate_grpc_calls_total",
            "Calls of gRPC and gRPC-Web clients by the status they ended with",
        ),
        help(
            "protogate_stream_ends_total",
            "Streamed answers of REST, Connect and WebSocket clients by the status they ended with",
        ),
        help(
            "protogate_rate_limited_total",
            "Calls refused by each rate limit rule",
        ),
        help(
            "protogate_trace_spans_total",
            "Spans of requests by what became of them: exported, failed or dropped",
        ),
    ] {
        recorder.describe_counter(name, None, text);
    }
    for (name, text) in [
        help(
            "protogate_request_duration_seconds",
            "Time to each answer's head, by how the client spoke",
        ),
        help(
            "protogate_route_request_duration_seconds",
            "Time to each answer's head, by transcoded REST route",
        ),
    ] {
        recorder.describe_histogram(name, Some(::metrics::Unit::Seconds), text);
    }
    let (name, text) = help(
        "protogate_snapshot_loads_total",
        "Snapshots of routes and upstreams built, the first included",
    );
    recorder.describe_counter(name, None, text);
    for (name, text) in [
        help("protogate_routes", "Routes served"),
        help(
            "protogate_ready",
            "1 when the descriptors are complete and the gateway is not shutting down",
        ),
    ] {
        recorder.describe_gauge(name, None, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_count_by_status_class() {
        let metrics = Metrics::new();
        metrics.record(Face::Rest, StatusCode::OK, Duration::from_millis(3));
        metrics.record(Face::Rest, StatusCode::NOT_FOUND, Duration::from_millis(1));
        metrics.record(Face::Grpc, StatusCode::OK, Duration::from_millis(1));
        let text = metrics.render();
        assert!(
            text.contains(r#"protogate_requests_total{face="rest",code="2xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"protogate_requests_total{face="rest",code="4xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"protogate_request_duration_seconds_bucket{face="rest",le="0.005"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"protogate_requests_total{face="connect",code="2xx"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn grpc_calls_count_by_code_name() {
        let metrics = Metrics::new();
        metrics.record_grpc(Face::Grpc, 0);
        metrics.record_grpc(Face::Grpc, 14);
        metrics.record_grpc(Face::GrpcWeb, 16);
        metrics.record_grpc(Face::GrpcWeb, 99);
        metrics.record_grpc(Face::Rest, 0);
        let text = metrics.render();
        for line in [
            r#"protogate_grpc_calls_total{face="grpc",grpc_code="OK"} 1"#,
            r#"protogate_grpc_calls_total{face="grpc",grpc_code="UNAVAILABLE"} 1"#,
            r#"protogate_grpc_calls_total{face="grpc_web",grpc_code="UNAUTHENTICATED"} 1"#,
            r#"protogate_grpc_calls_total{face="grpc_web",grpc_code="UNKNOWN"} 1"#,
            r#"protogate_grpc_calls_total{face="grpc",grpc_code="CANCELLED"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains(r#"protogate_grpc_calls_total{face="rest""#),
            "{text}"
        );
    }

    #[test]
    fn stream_ends_count_by_face_and_code() {
        let metrics = Metrics::new();
        metrics.record_stream_end(Face::Rest, tonic::Code::Ok);
        metrics.record_stream_end(Face::Connect, tonic::Code::Unavailable);
        metrics.record_stream_end(Face::WebSocket, tonic::Code::Cancelled);
        metrics.record_stream_end(Face::Grpc, tonic::Code::Ok);
        let text = metrics.render();
        for line in [
            r#"protogate_stream_ends_total{face="rest",grpc_code="OK"} 1"#,
            r#"protogate_stream_ends_total{face="connect",grpc_code="UNAVAILABLE"} 1"#,
            r#"protogate_stream_ends_total{face="websocket",grpc_code="CANCELLED"} 1"#,
            r#"protogate_stream_ends_total{face="rest",grpc_code="CANCELLED"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains(r#"protogate_stream_ends_total{face="grpc""#),
            "{text}"
        );
    }
}
