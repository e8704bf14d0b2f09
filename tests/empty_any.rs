//! An empty `google.protobuf.Any` (no type URL, no bytes) through the
//! gateway, both ways: proto3 JSON writes it as `{}`, and Go's and
//! Python's readers read `{}` back as one. A client that reads a resource
//! and sends it back unchanged gets no 400, and a backend's valid answer
//! no 502, wherever the `Any` stands. Real tonic echo backend, real
//! gateway, real HTTP on 127.0.0.1, with `tests/protos/anys/v1`.

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;
use prost_types::Any;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{EchoBackend, Script, TestGateway};

/// `anys.v1.Holder`, as the backend sees it.
#[derive(Clone, PartialEq, prost::Message)]
struct Holder {
    #[prost(message, optional, tag = "1")]
    one: Option<Any>,
    #[prost(message, repeated, tag = "2")]
    many: Vec<Any>,
    #[prost(map = "string, message", tag = "3")]
    named: HashMap<String, Any>,
    #[prost(string, tag = "4")]
    note: String,
    #[prost(message, optional, boxed, tag = "5")]
    child: Option<Box<Holder>>,
}

const HOLDER_URL: &str = "type.googleapis.com/anys.v1.Holder";
const ANY_URL: &str = "type.googleapis.com/google.protobuf.Any";

fn packed(url: &str, message: &impl prost::Message) -> Any {
    Any {
        type_url: url.to_owned(),
        value: message.encode_to_vec(),
    }
}

struct Fixture {
    backend: EchoBackend,
    gateway: TestGateway,
    client: reqwest::Client,
}

async fn fixture() -> Fixture {
    let set = support::compile(
        &support::repo().join("tests/protos"),
        &["anys/v1/anys.proto", "anys/v1/grouped.proto"],
    );
    let backend = EchoBackend::start(support::pool(&set)).await;
    let gateway = TestGateway::start(support::gateway::config(&set, &backend.url())).await;
    Fixture {
        backend,
        gateway,
        client: support::http1(),
    }
}

impl Fixture {
    async fn post(&self, path: &str, body: &str) -> (StatusCode, String) {
        let response = self
            .client
            .post(self.gateway.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The bytes of the last request the backend got.
    fn last_bytes(&self) -> Vec<u8> {
        self.backend.last().message.encode_to_vec()
    }

    /// The last request the backend got, as a `Holder`.
    fn last_holder(&self) -> Holder {
        Holder::decode(self.last_bytes().as_slice()).unwrap()
    }

    /// Has the backend answer the next calls with `bytes`.
    fn answer(&self, bytes: Vec<u8>) {
        self.backend.script(Script {
            raw_response: Some(Bytes::from(bytes)),
            ..Script::default()
        });
    }
}

#[tokio::test]
async fn requests_read_an_empty_object_as_an_empty_any_wherever_one_stands() {
    let f = fixture().await;
    let empty = Any::default();
    let cases: [(&str, &str, Holder); 6] = [
        (
            "/v1/holder",
            r#"{"one": {}}"#,
            Holder {
                one: Some(empty.clone()),
                ..Holder::default()
            },
        ),
        (
            "/v1/holder",
            r#"{"many": [{}, {"@type": "type.googleapis.com/anys.v1.Holder", "note": "x"}], "named": {"k": {}}}"#,
            Holder {
                many: vec![
                    empty.clone(),
                    packed(
                        HOLDER_URL,
                        &Holder {
                            note: "x".to_owned(),
                            ..Holder::default()
                        },
                    ),
                ],
                named: HashMap::from([("k".to_owned(), empty.clone())]),
                ..Holder::default()
            },
        ),
        (
            "/v1/holder",
            r#"{"one": {"@type": "type.googleapis.com/anys.v1.Holder", "one": {}},
                "many": [{"@type": "type.googleapis.com/google.protobuf.Any", "value": {}}]}"#,
            Holder {
                one: Some(packed(
                    HOLDER_URL,
                    &Holder {
                        one: Some(empty.clone()),
                        ..Holder::default()
                    },
                )),
                many: vec![packed(ANY_URL, &empty)],
                ..Holder::default()
            },
        ),
        (
            "/v1/holder/one",
            "{}",
            Holder {
                one: Some(empty.clone()),
                ..Holder::default()
            },
        ),
        (
            "/v1/holder/many",
            "[{}, {}]",
            Holder {
                many: vec![empty.clone(); 2],
                ..Holder::default()
            },
        ),
        (
            "/v1/holder/named",
            r#"{"a": {}}"#,
            Holder {
                named: HashMap::from([("a".to_owned(), empty.clone())]),
                ..Holder::default()
            },
        ),
    ];
    for (path, body, sent) in cases {
        let (status, text) = f.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {text}");
        assert_eq!(f.last_holder(), sent, "{path} {body}");
    }
    // The whole body of an `Any` request.
    let (status, text) = f.post("/v1/any", "{}").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    assert!(f.last_bytes().is_empty());
    // Malformed type URLs keep their 400, and reach no backend.
    let before = f.backend.records().len();
    for bad in [
        r#"{"one": {"@type": ""}}"#,
        r#"{"one": {"@type": "no-slash"}}"#,
        r#"{"one": {"note": "no type"}}"#,
    ] {
        let (status, text) = f.post("/v1/holder", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {text}");
    }
    assert_eq!(f.backend.records().len(), before);
}

#[tokio::test]
async fn streamed_request_messages_read_an_empty_any() {
    let f = fixture().await;
    let (status, text) = f
        .post(
            "/v1/chat",
            "{\"one\": {}}\n{\"many\": [{}], \"named\": {\"k\": {}}}",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"result": {"one": {}}}),
            json!({"result": {"many": [{}], "named": {"k": {}}}})
        ]
    );
}

#[tokio::test]
async fn responses_write_an_empty_any_as_an_empty_object_wherever_one_stands() {
    let f = fixture().await;
    let empty = Any::default();
    let inner = Holder {
        one: Some(empty.clone()),
        ..Holder::default()
    };
    let message = Holder {
        one: Some(empty.clone()),
        many: vec![
            empty.clone(),
            packed(HOLDER_URL, &inner),
            packed(ANY_URL, &empty),
        ],
        named: HashMap::from([("k".to_owned(), empty.clone())]),
        note: String::new(),
        child: Some(Box::new(inner.clone())),
    };
    f.answer(message.encode_to_vec());
    let many = json!([
        {},
        {"@type": HOLDER_URL, "one": {}},
        {"@type": ANY_URL, "value": {}}
    ]);
    for (path, expected) in [
        (
            "/v1/holder",
            json!({"one": {}, "many": many, "named": {"k": {}}, "child": {"one": {}}}),
        ),
        ("/v1/one", json!({})),
        ("/v1/many", many.clone()),
        ("/v1/named", json!({"k": {}})),
    ] {
        let (status, text) = f.post(path, "{}").await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            expected,
            "{path}"
        );
    }
    // The whole response an empty `Any`, or packing one.
    f.answer(Vec::new());
    let (status, text) = f.post("/v1/any", "{}").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    f.answer(packed(ANY_URL, &empty).encode_to_vec());
    let (status, text) = f.post("/v1/any", "{}").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"@type": ANY_URL, "value": {}})
    );
    // A singular field sent twice (the last wins).
    let twice = [
        Holder {
            note: "a".to_owned(),
            ..Holder::default()
        }
        .encode_to_vec(),
        inner.encode_to_vec(),
    ]
    .concat();
    f.answer(twice);
    let (status, text) = f.post("/v1/holder", "{}").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"one": {}, "note": "a"})
    );
    // A proto2 group holding one: field 1 as a group (start 0x0b, end
    // 0x0c) holding field 2, an empty `Any`; field 3 one too.
    f.answer(vec![0x0b, 0x12, 0x00, 0x0c, 0x1a, 0x00]);
    let (status, text) = f.post("/v1/grouped", "{}").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"box": {"any": {}}, "top": {}})
    );
}

#[tokio::test]
async fn error_details_write_an_empty_any_inside_a_detail() {
    let f = fixture().await;
    let detail = packed(
        HOLDER_URL,
        &Holder {
            one: Some(Any::default()),
            many: vec![Any::default()],
            ..Holder::default()
        },
    );
    f.backend.script(Script {
        error: Some((tonic::Code::FailedPrecondition, "no".to_owned(), Vec::new())),
        raw_details: Some(detail),
        ..Script::default()
    });
    let (status, text) = f.post("/v1/holder", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["details"],
        json!([{"@type": HOLDER_URL, "one": {}, "many": [{}]}]),
        "{text}"
    );
}

#[tokio::test]
async fn an_empty_any_read_back_and_sent_again_reaches_the_backend_unchanged() {
    let f = fixture().await;
    let empty = Any::default();
    let message = Holder {
        one: Some(packed(
            HOLDER_URL,
            &Holder {
                one: Some(empty.clone()),
                ..Holder::default()
            },
        )),
        many: vec![empty.clone(), packed(ANY_URL, &empty)],
        named: HashMap::from([("k".to_owned(), empty.clone())]),
        note: "n".to_owned(),
        child: Some(Box::new(Holder {
            one: Some(empty.clone()),
            ..Holder::default()
        })),
    };
    let bytes = message.encode_to_vec();
    f.answer(bytes.clone());
    let (status, read) = f.post("/v1/holder", "{}").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    f.backend.script(Script::default());
    let (status, echoed) = f.post("/v1/holder", &read).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    // The same message, in the same bytes once both are written by one
    // encoder (prost leaves a map entry's empty value out, prost-reflect
    // writes it).
    let last = f.backend.last().message;
    let sent = prost_reflect::DynamicMessage::decode(
        prost_reflect::ReflectMessage::descriptor(&last),
        bytes.as_slice(),
    )
    .unwrap();
    assert_eq!(last.encode_to_vec(), sent.encode_to_vec(), "{read}");
    assert_eq!(f.last_holder(), message);
    assert_eq!(echoed, read);
}
