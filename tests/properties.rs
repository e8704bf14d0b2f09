//! Property tests: random input to the template parser, the matcher, path
//! decoding, the query mapper, the JSON decoder, and the whole gateway.
//! Whatever the input: no panic, and a failure is a well-formed error.

mod support;

use bytes::Bytes;
use http::Method;
use proptest::prelude::*;
use prost_reflect::MessageDescriptor;
use protogate::http_rule::{Matcher, Template, path};
use protogate::transcode::{Codec, RawRequest, RequestPlan};
use serde_json::Value;

/// The test message, compiled once for all cases.
fn sink() -> MessageDescriptor {
    static SINK: std::sync::OnceLock<MessageDescriptor> = std::sync::OnceLock::new();
    SINK.get_or_init(|| {
        let set = support::compile(
            &support::repo().join("tests/protos"),
            &["kitchen/v1/kitchen.proto"],
        );
        support::pool(&set)
            .get_message_by_name("kitchen.v1.Sink")
            .unwrap()
    })
    .clone()
}

/// Text made of the characters that matter to templates and paths.
fn path_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("*".to_owned()),
            Just("**".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("=".to_owned()),
            Just(":".to_owned()),
            Just(".".to_owned()),
            Just("%".to_owned()),
            Just("%2F".to_owned()),
            Just("%zz".to_owned()),
            Just("%C3%A9".to_owned()),
            Just("%FF".to_owned()),
            Just("+".to_owned()),
            "[a-z_]{1,6}",
            "[0-9]{1,3}",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Valid templates from the grammar's pieces.
fn template() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z]{1,5}",
        Just("*".to_owned()),
        "\\{[a-z]{1,4}\\}",
        "\\{[a-z]{1,4}=[a-z]{1,3}/\\*\\}",
    ];
    (
        proptest::collection::vec(segment, 1..5),
        any::<bool>(),
        proptest::option::of("[a-z]{1,5}"),
    )
        .prop_map(|(segments, multi, verb)| {
            let mut t = format!("/{}", segments.join("/"));
            if multi {
                t.push_str("/**");
            }
            if let Some(v) = verb {
                t.push(':');
                t.push_str(&v);
            }
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn template_parser_never_panics(text in path_text()) {
        if let Ok(template) = Template::parse(&text) {
            // What parses prints back to something that parses the same.
            let again = Template::parse(&template.to_string()).expect("round trip");
            prop_assert_eq!(again, template);
        }
    }

    #[test]
    fn generated_templates_parse(text in template()) {
        // Duplicate variable names are the only way these can fail.
        match Template::parse(&text) {
            Ok(t) => prop_assert_eq!(t.to_string(), text),
            Err(e) => prop_assert_eq!(e.reason, "a field is bound by two variables"),
        }
    }

    #[test]
    fn matcher_and_path_decoding_never_panic(
        templates in proptest::collection::vec(template(), 1..12),
        request in path_text(),
    ) {
        let mut matcher = Matcher::new();
        let mut parsed = Vec::new();
        for (i, text) in templates.iter().enumerate() {
            if let Ok(t) = Template::parse(text) {
                let _ = matcher.insert(Method::GET, &t, i);
                parsed.push((i, t));
            }
        }
        let request = format!("/{request}");
        if let Ok(normalized) = path::normalize(&request)
            && let Ok(found) = matcher.find(&Method::GET, &normalized) {
                let (_, template) = parsed.iter().find(|(i, _)| *i == found.route).expect("a known route");
                for var in &template.variables {
                    let raw = found.capture(&normalized, var.start, var.end);
                    let _ = path::decode_segment(raw);
                    let _ = path::decode_multi_segment(raw);
                }
            }
    }

    #[test]
    fn query_mapper_never_panics(query in "[a-zA-Z0-9_.=&%+\\[\\]\\-]{0,80}") {
        let input = sink();
        let template = Template::parse("/v1/x").unwrap();
        let plan = RequestPlan::new(&input, &template, "").unwrap();
        let mut matcher = Matcher::new();
        matcher.insert(Method::GET, &template, 0).unwrap();
        let found = matcher.find(&Method::GET, "/v1/x").unwrap();
        let result = plan.decode(
            RawRequest { path: "/v1/x", found: &found, query: Some(&query), content_type: "", body: Bytes::new() },
            &Codec::default(),
        );
        if let Err(err) = result {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn json_decoder_never_panics(body in prop_oneof![
        any::<Vec<u8>>(),
        "[ -~]{0,120}".prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| serde_json::json!({"attrs": v, "inner": {"child": v}}).to_string().into_bytes()),
    ]) {
        let input = sink();
        let template = Template::parse("/v1/x").unwrap();
        let mut matcher = Matcher::new();
        matcher.insert(Method::POST, &template, 0).unwrap();
        let found = matcher.find(&Method::POST, "/v1/x").unwrap();
        for body_rule in ["*", "inner", "tags", "attrs", "any_value", "labels", "at", "s"] {
            let plan = RequestPlan::new(&input, &template, body_rule).unwrap();
            let result = plan.decode(
                RawRequest {
                    path: "/v1/x",
                    found: &found,
                    query: None,
                    content_type: "application/json",
                    body: Bytes::from(body.clone()),
                },
                &Codec::default(),
            );
            if let Err(err) = result {
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Every finite double written in its shortest form comes back as the
    /// same double (serde_json's default parser may be one unit off in the
    /// last place; the gateway must not change a client's numbers).
    #[test]
    fn doubles_decode_exactly(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let body = format!(r#"{{"db": {x:e}, "samples": [{x:?}]}}"#);
        let input = sink();
        let template = Template::parse("/v1/x").unwrap();
        let mut matcher = Matcher::new();
        matcher.insert(Method::POST, &template, 0).unwrap();
        let found = matcher.find(&Method::POST, "/v1/x").unwrap();
        let plan = RequestPlan::new(&input, &template, "*").unwrap();
        let message = plan
            .decode(
                RawRequest {
                    path: "/v1/x",
                    found: &found,
                    query: None,
                    content_type: "application/json",
                    body: Bytes::from(body.clone()),
                },
                &Codec::default(),
            )
            .unwrap();
        let db = message.get_field_by_name("db").unwrap().as_f64().unwrap();
        prop_assert_eq!(db, x, "{}", body);
        let samples = message.get_field_by_name("samples").unwrap();
        prop_assert_eq!(samples.as_list().unwrap()[0].as_f64(), Some(x), "{}", body);
    }
}

/// Arbitrary JSON, with the field names and values of the test message
/// mixed in so that some of it gets past the first check.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("NaN".to_owned()),
            Just("Infinity".to_owned()),
            Just("GREEN".to_owned()),
            Just("2024-01-02T03:04:05Z".to_owned()),
            Just("1.5s".to_owned()),
            "[ -~]{0,10}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("s".to_owned()),
                        Just("i64".to_owned()),
                        Just("color".to_owned()),
                        Just("inner".to_owned()),
                        Just("tags".to_owned()),
                        Just("labels".to_owned()),
                        Just("@type".to_owned()),
                        "[a-z]{1,4}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// The whole gateway: random requests get a status from the allowed set
/// and, when they fail, a google.rpc.Status body.
#[test]
fn gateway_answers_every_random_request_well() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    );
    let (backend, gateway) = runtime.block_on(async {
        let backend = support::EchoBackend::start(support::pool(&set)).await;
        let gateway = support::TestGateway::for_set(&set, &backend.url()).await;
        (backend, gateway)
    });
    let client = support::http1();
    let addr = gateway.addr();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    let strategy = (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("PATCH"),
            Just("SEARCH")
        ],
        prop_oneof![
            Just("/v1/echo".to_owned()),
            Just("/v1/echo/tags".to_owned()),
            Just("/v1/names/".to_owned()),
            Just("/v1/docs/".to_owned()),
            Just("/v1/path/".to_owned()),
            Just("/kitchen.v1.Kitchen/Plain".to_owned()),
        ],
        "[a-zA-Z0-9%/:+._~-]{0,40}",
        "[a-zA-Z0-9_.=&%+\\[\\]-]{0,60}",
        prop_oneof![
            Just(String::new()),
            json_value().prop_map(|v| v.to_string()),
            "[ -~]{0,40}"
        ],
    );
    runner
        .run(&strategy, |(method, prefix, tail, query, body)| {
            let url = format!("http://{addr}{prefix}{tail}?{query}");
            let Ok(url) = reqwest::Url::parse(&url) else {
                return Ok(());
            };
            let (status, text) = runtime.block_on(async {
                let response = client
                    .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the gateway answers");
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            });
            prop_assert!(
                [200, 400, 404, 405, 415].contains(&status),
                "status {} for {} {}{}?{}: {}",
                status,
                method,
                prefix,
                tail,
                query,
                text
            );
            if status != 200 {
                let value: Value = serde_json::from_str(&text).expect("error bodies are JSON");
                prop_assert!(
                    value["code"].is_i64()
                        && value["message"].is_string()
                        && value["details"].is_array(),
                    "{}",
                    value
                );
            }
            Ok(())
        })
        .unwrap();
    drop(backend);
}
