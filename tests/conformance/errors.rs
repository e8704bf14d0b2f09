//! Errors: the gRPC → HTTP status table, the codes of errors the gateway
//! raises itself, and `details` decoding (unknown types keep `@type` and
//! carry their bytes as base64 `value`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{Fixture, fixture, fixture_with, kitchen};
use crate::support::{self, EchoBackend, Script, TestGateway};

/// A failing backend: this code, message and details.
fn failing(code: tonic::Code, message: &str, details: Vec<Value>) -> Script {
    Script {
        error: Some((code, message.to_owned(), details)),
        ..Script::default()
    }
}

// ---------------------------------------------------------------- status table

/// google/rpc/code.proto (DECISIONS.md table): every gRPC code maps to its
/// HTTP status, and the body is the google.rpc.Status as JSON.
#[tokio::test]
async fn upstream_errors_map_to_http_statuses_with_details() {
    let f = fixture().await;
    let table = [
        (1, 499),
        (2, 500),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ];
    for (code, http) in table {
        let response = f
            .client
            .get(f.gateway.url("/v1/echo"))
            .header("grpc-metadata-x-echo-status", code.to_string())
            .header("grpc-metadata-x-echo-message", "it failed")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), http, "gRPC code {code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"code": code, "message": "it failed", "details": []})
        );
    }
    // Non-ASCII status messages (percent-encoded in grpc-message) survive.
    f.backend.script(Script {
        error: Some((
            tonic::Code::NotFound,
            "no “ünïcode” here".to_owned(),
            Vec::new(),
        )),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no “ünïcode” here");
}

/// RFC 9110 §8.3 and DECISIONS.md: every error body is JSON and says so,
/// whatever the route would answer on success (raw HttpBody, one
/// `response_body` field).
#[tokio::test]
async fn hc14_neighbour_errors_on_http_body_and_response_body_routes() {
    let f = fixture().await;
    f.backend.script(failing(
        tonic::Code::PermissionDenied,
        "no docs for you",
        Vec::new(),
    ));
    for path in [
        "/v1/docs/a.html",
        "/v1/tags?tags=a",
        "/v1/count",
        "/v1/inner",
    ] {
        let reply = f.call("GET", path, None, &[], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            reply.json(),
            json!({"code": 7, "message": "no docs for you", "details": []}),
            "{path}"
        );
    }
}

/// DECISIONS.md: a backend error keeps its trailers (as `Grpc-Trailer-*`)
/// next to the Status body; an empty message is filled in with who
/// answered what (an empty one helps nobody).
#[tokio::test]
async fn hc14_neighbour_error_with_trailers_and_an_empty_message() {
    let f = fixture().await;
    f.backend.script(Script {
        trailers: vec![("retry-hint".to_owned(), "later".to_owned())],
        ..failing(tonic::Code::PermissionDenied, "", Vec::new())
    });
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.header("grpc-trailer-retry-hint"), Some("later"));
    let body = reply.json();
    assert_eq!(body["code"], 7);
    assert_eq!(body["details"], json!([]));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("upstream `")
            && message.ends_with("answered PermissionDenied without a message"),
        "{message}"
    );
}

/// DECISIONS.md: the gRPC → HTTP table (google/rpc/code.proto) is the same
/// over HTTP/2 and for every binding of the method (body routes included).
#[tokio::test]
async fn hc14_neighbour_status_over_http2_and_on_body_routes() {
    let f = fixture().await;
    f.backend
        .script(failing(tonic::Code::AlreadyExists, "exists", Vec::new()));
    let response = support::http2()
        .post(f.gateway.url("/v1/echo/items"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"code": 6, "message": "exists", "details": []})
    );
}

// ---------------------------------------------------------------- gateway-raised errors

/// DECISIONS.md: errors the gateway raises carry fixed codes: 400 → 3,
/// 404 → 5, 405 → 12, 413 → 8, 414 → 3, 415 → 3, 501 → 12; each body is a
/// google.rpc.Status with empty details, sent as JSON.
#[tokio::test]
async fn gateway_raised_errors_use_the_agreed_codes() {
    let f = fixture_with(|c| {
        c.limits.max_body_bytes = 64;
        c.limits.max_path_bytes = 64;
    })
    .await;
    let long_path = format!("/v1/{}", "p".repeat(80));
    let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(100));
    for (method, path, content_type, body, status, code, message) in [
        (
            "GET",
            "/v1/echo?i32=x",
            None,
            "",
            400,
            3,
            "query parameter `i32`: `x` is not a valid i32 integer",
        ),
        (
            "GET",
            "/v1/none",
            None,
            "",
            404,
            5,
            "no route matches GET /v1/none",
        ),
        (
            "DELETE",
            "/v1/echo",
            None,
            "",
            405,
            12,
            "method DELETE is not allowed for /v1/echo",
        ),
        (
            "POST",
            "/v1/echo",
            Some("application/json"),
            big.as_str(),
            413,
            8,
            "request body is larger than 64 bytes",
        ),
        (
            "GET",
            long_path.as_str(),
            None,
            "",
            414,
            3,
            "request path is longer than 64 bytes",
        ),
        (
            "POST",
            "/v1/echo",
            Some("text/csv"),
            "a",
            415,
            3,
            "unsupported content type `text/csv`: this route takes JSON (application/json)",
        ),
        (
            "FOO",
            "/v1/echo",
            None,
            "",
            501,
            12,
            "method FOO is not implemented by this gateway",
        ),
        // A long made-up method is echoed cut short.
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "/v1/echo",
            None,
            "",
            501,
            12,
            "method ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF... is not implemented by this gateway",
        ),
    ] {
        let reply = f
            .call(method, path, content_type, &[], body.as_bytes().to_vec())
            .await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{method} {path}: {}",
            reply.text
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            reply.json(),
            json!({"code": code, "message": message, "details": []}),
            "{method} {path}"
        );
    }
    assert!(f.backend.records().is_empty());
}

/// A backend on another version of the kitchen `.proto`, whose `Sink`
/// has `field` where the gateway's has `string s = 1`, answering
/// `response`.
async fn older_backend(field: &str, response: serde_json::Value) -> Fixture {
    let source =
        std::fs::read_to_string(support::repo().join("tests/protos/kitchen/v1/kitchen.proto"))
            .unwrap();
    let changed = source.replace(
        "  string s = 1;\n  bytes b = 2;",
        &format!("  {field} = 1;\n  bytes b = 2;"),
    );
    assert_ne!(source, changed);
    let dir = support::tempdir();
    std::fs::create_dir_all(dir.join("kitchen/v1")).unwrap();
    std::fs::write(dir.join("kitchen/v1/kitchen.proto"), changed).unwrap();
    let backend_set = support::compile(&dir, &["kitchen/v1/kitchen.proto"]);
    let backend = EchoBackend::start(support::pool(&backend_set)).await;
    backend.script(Script {
        response: Some(response),
        ..Script::default()
    });
    let gateway = TestGateway::for_set(&kitchen(), &backend.url()).await;
    Fixture {
        backend,
        gateway,
        client: support::http1(),
    }
}

/// DECISIONS.md: a backend message the gateway cannot decode is the
/// gateway's trouble: 502 with code 13 (INTERNAL). Here the backend's
/// `s` is `bytes` and holds what is not UTF-8, which the gateway's
/// `string` cannot be.
#[tokio::test]
async fn undecodable_backend_message_is_502() {
    let f = older_backend("bytes s", json!({"s": "/w==", "i32": 4})).await;
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], 13);
    assert_eq!(body["details"], json!([]));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot transcode the upstream response: "),
        "{message}"
    );
}

/// A field the backend sends with another wire type than the gateway's
/// descriptor declares (`int32 s` where the gateway has a string) is read
/// as an unknown field, as the protobuf runtimes read it: left out, the
/// rest written.
#[tokio::test]
async fn a_field_of_another_wire_type_is_left_out() {
    let f = older_backend("int32 s", json!({"s": 5, "i32": 4})).await;
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"i32": 4}));
}

/// DECISIONS.md: a backend that cannot be reached is 503 with code 14, and
/// the message says the connection failed.
#[tokio::test]
async fn unreachable_backend_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let gateway = TestGateway::for_set(&kitchen(), &format!("http://{addr}")).await;
    let (status, body) = crate::fixture::read(
        support::http1()
            .get(gateway.url("/v1/echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 14);
    assert_eq!(body["details"], json!([]));
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("tcp connect error"), "{message}");
}

/// DECISIONS.md: when the deadline passes the client gets 504 with code 4.
#[tokio::test]
async fn deadline_exceeded_is_504() {
    let f = fixture().await;
    let started = std::time::Instant::now();
    let reply = f
        .call(
            "GET",
            "/v1/echo",
            None,
            &[
                ("grpc-timeout", "200m"),
                ("grpc-metadata-x-echo-delay-ms", "5000"),
            ],
            Vec::new(),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"code": 4, "message": "deadline of 200ms exceeded", "details": []})
    );
}

// ---------------------------------------------------------------- details

/// DECISIONS.md: error bodies are google.rpc.Status JSON; proto3 JSON:
/// its details from `grpc-status-details-bin` are Any values, well-known
/// types with a `value`.
#[tokio::test]
async fn rich_details_come_back_as_json_any() {
    let f = fixture().await;
    f.backend.script(Script {
        error: Some((
            tonic::Code::FailedPrecondition,
            "not yet".to_owned(),
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.PreconditionFailure", "violations": [{"type": "TOS", "subject": "u1", "description": "accept first"}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}),
                json!({"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "custom detail"}),
                json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}),
            ],
        )),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "code": 9,
            "message": "not yet",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.PreconditionFailure", "violations": [{"type": "TOS", "subject": "u1", "description": "accept first"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
                {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "custom detail"},
                {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}
            ]
        })
    );
}

/// DECISIONS.md (error bodies) and README "Errors": a detail whose type the
/// gateway's descriptors lack keeps its `@type` and carries its bytes as
/// base64 `value`; known details next to it are still decoded.
#[tokio::test]
async fn hc27_neighbour_unknown_detail_type_keeps_type_and_bytes() {
    let both = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto", "kitchen/v1/backend_only.proto"],
    );
    let backend = EchoBackend::start(support::pool(&both)).await;
    let gateway = TestGateway::for_set(&kitchen(), &backend.url()).await;
    backend.script(failing(
        tonic::Code::InvalidArgument,
        "hidden",
        vec![
            json!({"@type": "type.googleapis.com/kitchen.v1.hidden.Secret", "code": "x", "level": 7}),
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d"}),
        ],
    ));
    let (status, body) = crate::fixture::read(
        support::http1()
            .get(gateway.url("/v1/echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Secret{code: "x", level: 7} is 0a 01 78 10 07 on the wire.
    assert_eq!(
        body,
        json!({
            "code": 3,
            "message": "hidden",
            "details": [
                {"@type": "type.googleapis.com/kitchen.v1.hidden.Secret", "value": "CgF4EAc="},
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d"}
            ]
        })
    );
}

/// proto3 JSON: well-known types inside an Any are `@type` plus `value`
/// holding their own JSON form (Timestamp, wrappers, Struct, FieldMask).
#[tokio::test]
async fn hc27_neighbour_well_known_type_details() {
    let f = fixture().await;
    let details = vec![
        json!({"@type": "type.googleapis.com/google.protobuf.Timestamp", "value": "2024-01-02T03:04:05Z"}),
        json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "why"}),
        json!({"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "9007199254740993"}),
        json!({"@type": "type.googleapis.com/google.protobuf.FieldMask", "value": "a.bC"}),
        json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "-1.500s"}),
    ];
    f.backend
        .script(failing(tonic::Code::Aborted, "wkt", details.clone()));
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"code": 10, "message": "wkt", "details": details})
        )
    );
}

/// Floats in details are written as in responses: a `float` with its own
/// digits (not widened to a double's), a whole double without `.0`, in
/// error bodies and in the error line that ends a stream, in every
/// framing.
#[tokio::test]
async fn float_details_are_written_as_responses_write_floats() {
    let f = fixture().await;
    let details = vec![
        json!({"@type": "type.googleapis.com/google.protobuf.FloatValue", "value": 0.1}),
        json!({"@type": "type.googleapis.com/google.protobuf.DoubleValue", "value": 100}),
        json!({"@type": "type.googleapis.com/google.protobuf.DoubleValue", "value": 1e20}),
    ];
    let written = r#""details":[{"@type":"type.googleapis.com/google.protobuf.FloatValue","value":0.1},{"@type":"type.googleapis.com/google.protobuf.DoubleValue","value":100},{"@type":"type.googleapis.com/google.protobuf.DoubleValue","value":100000000000000000000}]"#;
    f.backend
        .script(failing(tonic::Code::Aborted, "floats", details.clone()));
    let reply = f.call("GET", "/v1/echo", None, &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.text.contains(written), "{}", reply.text);

    for accept in [
        "application/json",
        "text/event-stream",
        "application/x-ndjson",
    ] {
        f.backend.script(Script {
            count: Some(1),
            fail_after: Some(1),
            ..failing(tonic::Code::Aborted, "floats", details.clone())
        });
        let reply = f
            .call("GET", "/v1/watch", None, &[("accept", accept)], Vec::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{accept}");
        let last = reply.text.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(written), "{accept}: {last}");
    }
}

/// proto3 JSON: a well-known type whose JSON form is an object (Struct,
/// Value holding an object, Any) still goes under `value` inside an Any;
/// only ordinary messages spread their fields next to `@type`.
#[tokio::test]
async fn hc27_neighbour_object_shaped_well_known_type_details() {
    let f = fixture().await;
    let details = vec![
        json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": [1, null]}}),
        json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": {"k": "v"}}),
    ];
    f.backend
        .script(failing(tonic::Code::Aborted, "wkt", details.clone()));
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"code": 10, "message": "wkt", "details": details})
        )
    );
}

/// proto3 JSON: an Any's type URL may have any prefix; the type is the
/// part after the last `/`, and the URL is written back as sent. Nested
/// Any values inside a detail are decoded too.
#[tokio::test]
async fn hc27_neighbour_custom_prefix_and_nested_any() {
    let f = fixture().await;
    let details = vec![
        json!({"@type": "example.test/kitchen.v1.Inner", "label": "prefixed"}),
        json!({
            "@type": "type.googleapis.com/kitchen.v1.Sink",
            "s": "outer",
            "detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "count": 2}
        }),
    ];
    f.backend
        .script(failing(tonic::Code::OutOfRange, "nested", details.clone()));
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"code": 11, "message": "nested", "details": details})
        )
    );
}

/// DECISIONS.md: details are written with the same JSON options as every
/// other message (here proto field names).
#[tokio::test]
async fn hc27_neighbour_details_follow_the_output_options() {
    let f = fixture_with(|c| c.json.use_proto_names = true).await;
    f.backend.script(failing(
        tonic::Code::InvalidArgument,
        "bad",
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "email", "description": "must contain @"}]
        })],
    ));
    let (status, body) = f.post("/v1/echo", r#"{"s": "x"}"#).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({
                "code": 3,
                "message": "bad",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "field_violations": [{"field": "email", "description": "must contain @"}]
                }]
            })
        )
    );
}
