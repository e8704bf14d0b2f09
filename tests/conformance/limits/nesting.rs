//! Nesting: request messages past protobuf's 100 levels, however they are
//! reached (`Value`, `Struct`, messages packed in `Any`), and `Any` nested
//! in responses.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::fixture_with;
use crate::support::echo::Script;

/// `Any` packed in `Any`, `levels` deep, around a zero `Duration`.
fn nested_any(levels: usize) -> prost_types::Any {
    use prost::Message as _;
    let mut any = prost_types::Any {
        type_url: "type.googleapis.com/google.protobuf.Duration".to_owned(),
        value: Vec::new(),
    };
    for _ in 0..levels {
        any = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Any".to_owned(),
            value: any.encode_to_vec(),
        };
    }
    any
}

/// A `Sink` whose `detail` (field 35) holds `any`.
fn sink_with_detail(any: &prost_types::Any) -> bytes::Bytes {
    let mut out = Vec::new();
    prost::encoding::message::encode(35, any, &mut out);
    out.into()
}

/// An `Any` holds its message as bytes, decoded only while writing JSON:
/// a backend nesting `Any` in `Any` thousands deep must get a 502, not
/// overflow the gateway's stack; nesting within the limit is written.
#[tokio::test]
async fn nested_any_in_responses_is_bounded() {
    let f = fixture_with(|_| {}).await;
    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&nested_any(20_000))),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("nest more than 100 levels"), "{body}");

    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&nested_any(3))),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let any = &body["detail"];
    assert_eq!(any["@type"], "type.googleapis.com/google.protobuf.Any");
    assert_eq!(
        any["value"]["value"]["value"]["@type"],
        "type.googleapis.com/google.protobuf.Duration"
    );

    // The same nesting in an error's details is written as bytes.
    f.backend.script(Script {
        error: Some((tonic::Code::NotFound, "gone".to_owned(), Vec::new())),
        raw_details: Some(nested_any(150)),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = &body["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.protobuf.Any");
    assert!(detail["value"].as_str().unwrap().len() > 5_000, "{body}");
}

/// The answer to a request message nesting past protobuf's 100 levels.
const TOO_DEEP: &str =
    "request message nests deeper than 100 levels, which protobuf decoders refuse";

/// README (bodies): a message that would nest past protobuf's 100 levels
/// is a 400 with one message, however the nesting is reached: `Value`
/// and `ListValue` (two levels per JSON array), `Struct` (a map entry
/// more), a body field, an `Any` packing a `Value`, the case-insensitive
/// parser, a Connect call. Up to the limit the request goes through.
#[tokio::test]
async fn every_message_past_100_levels_gets_the_documented_400() {
    let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let any = "type.googleapis.com/google.protobuf.Value";
    // A body for `n` arrays, and how many levels below the request
    // message it nests (packed in an Any: the Any, then the Value).
    type Shape = (&'static str, fn(&str, &str) -> String, fn(usize) -> usize);
    let shapes: [Shape; 6] = [
        (
            "/v1/echo",
            |a, _| format!(r#"{{"anyValue": {a}}}"#),
            |n| 2 * n,
        ),
        (
            "/v1/echo",
            |a, _| format!(r#"{{"list": {a}}}"#),
            |n| 2 * n - 1,
        ),
        (
            "/v1/echo",
            |a, _| format!(r#"{{"attrs": {{"a": {a}}}}}"#),
            |n| 2 * n + 2,
        ),
        ("/v1/echo/value", |a, _| a.to_owned(), |n| 2 * n),
        (
            "/v1/echo/attrs",
            |a, _| format!(r#"{{"a": {a}}}"#),
            |n| 2 * n + 2,
        ),
        (
            "/v1/echo",
            |a, t| format!(r#"{{"detail": {{"@type": "{t}", "value": {a}}}}}"#),
            |n| 2 * n + 1,
        ),
    ];
    for lenient in [false, true] {
        let f = fixture_with(|c| {
            c.json.max_depth = 127;
            c.json.case_insensitive_fields = lenient;
        })
        .await;
        for n in (45..=60).chain([100, 120]) {
            for (path, body, levels) in &shapes {
                let body = body(&arrays(n), any);
                let reply = f
                    .call(
                        "POST",
                        path,
                        Some("application/json"),
                        &[],
                        body.into_bytes(),
                    )
                    .await;
                let past = levels(n) > 100;
                let case = format!("{path} {n} arrays (lenient: {lenient}): {}", reply.text);
                if past {
                    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
                    assert_eq!(
                        reply.json(),
                        json!({"code": 3, "message": TOO_DEEP, "details": []}),
                        "{case}"
                    );
                } else {
                    assert_eq!(reply.status, StatusCode::OK, "{case}");
                }
            }
        }
    }
    // Connect's JSON bodies keep the same limit.
    let f = fixture_with(|c| c.json.max_depth = 127).await;
    for (n, status) in [(49, 200), (50, 400), (60, 400)] {
        let body = format!(r#"{{"attrs": {{"a": {}}}}}"#, arrays(n));
        let reply = f
            .call(
                "POST",
                "/kitchen.v1.Kitchen/Echo",
                Some("application/json"),
                &[("connect-protocol-version", "1")],
                body.into_bytes(),
            )
            .await;
        assert_eq!(reply.status, status, "Connect, {n} arrays: {}", reply.text);
        if status == 400 {
            assert_eq!(
                reply.json(),
                json!({"code": "invalid_argument", "message": TOO_DEEP}),
                "Connect, {n} arrays"
            );
        }
    }
}

/// README (bodies): the messages an `Any` packs count toward the 100
/// levels, as they do when a backend unpacks them: a `Struct` 40 levels
/// deep is the documented 400 packed in `detail` as in `attrs`, and so is
/// a chain of `Any`, each packing a `Sink` whose `detail` holds the next,
/// past 50 links (the 50th packs its `Sink` at level 100) — on a REST
/// body with either parser, a Connect call and a streamed message. Within
/// the limit the request goes through and comes back as sent.
#[tokio::test]
async fn messages_packed_in_any_count_toward_the_100_levels() {
    let objects = |n: usize| format!("{}{{}}{}", r#"{"a": "#.repeat(n - 1), "}".repeat(n - 1));
    let in_any = |n: usize| {
        format!(
            r#"{{"detail": {{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}}}"#,
            objects(n)
        )
    };
    let chain = |n: usize| {
        let link = r#"{"@type": "type.googleapis.com/kitchen.v1.Sink", "detail": "#;
        format!(
            r#"{{"detail": {}{{"@type": "type.googleapis.com/kitchen.v1.Sink", "s": "end"}}{}}}"#,
            link.repeat(n - 1),
            "}".repeat(n - 1)
        )
    };
    let refused = [
        format!(r#"{{"attrs": {}}}"#, objects(40)),
        in_any(40),
        chain(51),
        chain(60),
    ];
    let passed = [in_any(10), chain(3), chain(50)];
    for lenient in [false, true] {
        let f = fixture_with(|c| c.json.case_insensitive_fields = lenient).await;
        for body in &refused {
            let reply = f
                .call(
                    "POST",
                    "/v1/echo",
                    Some("application/json"),
                    &[],
                    body.clone().into_bytes(),
                )
                .await;
            let case = format!("(lenient: {lenient}) {body}: {}", reply.text);
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
            assert_eq!(
                reply.json(),
                json!({"code": 3, "message": TOO_DEEP, "details": []}),
                "{case}"
            );
        }
        assert!(f.backend.records().is_empty(), "(lenient: {lenient})");
        for body in &passed {
            let (status, echoed) = f.post("/v1/echo", body).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "(lenient: {lenient}) {body}: {echoed}"
            );
            let sent: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(echoed, sent, "(lenient: {lenient})");
        }
    }
    // A Connect call and a message of a client stream keep the same limit.
    let f = fixture_with(|_| {}).await;
    for body in &refused[1..] {
        let reply = f
            .call(
                "POST",
                "/kitchen.v1.Kitchen/Echo",
                Some("application/json"),
                &[("connect-protocol-version", "1")],
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "Connect: {}",
            reply.text
        );
        assert_eq!(
            reply.json(),
            json!({"code": "invalid_argument", "message": TOO_DEEP}),
            "Connect"
        );
        let reply = f
            .call(
                "POST",
                "/v1/collect",
                Some("application/json"),
                &[],
                body.clone().into_bytes(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "stream: {}",
            reply.text
        );
        assert_eq!(
            reply.json(),
            json!({"code": 3, "message": TOO_DEEP, "details": []}),
            "stream"
        );
    }
    assert!(f.backend.records().is_empty());
    let reply = f
        .call(
            "POST",
            "/kitchen.v1.Kitchen/Echo",
            Some("application/json"),
            &[("connect-protocol-version", "1")],
            chain(50).into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "Connect: {}", reply.text);
}

/// An `Any` set but empty (no type URL, no bytes) is written `{}`, as
/// Go's and Python's writers give it, not refused for its type URL.
#[tokio::test]
async fn an_empty_any_is_an_empty_object() {
    let f = fixture_with(|_| {}).await;
    f.backend.script(Script {
        raw_response: Some(sink_with_detail(&prost_types::Any::default())),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], serde_json::json!({}), "{body}");

    // And among an error's details.
    f.backend.script(Script {
        error: Some((tonic::Code::NotFound, "gone".to_owned(), Vec::new())),
        raw_details: Some(prost_types::Any::default()),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["details"], serde_json::json!([{}]), "{body}");
}
