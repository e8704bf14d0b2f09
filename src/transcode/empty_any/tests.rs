//! The empty `Any` read from `{}` and written as `{}` in every place one
//! can stand: a field, a list element, a map value, the whole message, a
//! message another `Any` packs; requests and responses, direct and
//! reflective paths.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;
use prost_types::Any;

use crate::http_rule::{Matcher, Template};
use crate::transcode::test_protos::descriptor;
use crate::transcode::{Codec, JsonOptions, RawRequest, RequestPlan, ResponsePlan, UnknownParams};

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

/// The default codec, and the one with case-insensitive names (the tree
/// path for every body).
fn codecs() -> [Codec; 2] {
    let lenient = JsonOptions {
        case_insensitive_fields: true,
        case_insensitive_enums: true,
        ..JsonOptions::default()
    };
    [
        Codec::default(),
        Codec::new(&lenient, UnknownParams::Reject, 256),
    ]
}

/// The bytes a `POST` of `json` to a route of `input` with `body` sends
/// upstream.
fn request(input: &str, body: &str, json: &str, codec: &Codec) -> Result<Bytes, String> {
    let template = Template::parse("/t").unwrap();
    let plan = RequestPlan::new(&descriptor(input), &template, body).unwrap();
    let mut matcher = Matcher::new();
    matcher.insert(http::Method::POST, &template, 0).unwrap();
    let found = matcher.find(&http::Method::POST, "/t").unwrap();
    let raw = RawRequest {
        path: "/t",
        found: &found,
        query: None,
        content_type: "application/json",
        body: Bytes::copy_from_slice(json.as_bytes()),
    };
    let encoded = plan.encode(raw.clone(), codec).map_err(|e| e.to_string())?;
    // A streamed message is read the same way (maps in any order).
    if body == "*" {
        let streamed = plan.encode_streamed(&raw, json.as_bytes(), codec).unwrap();
        let decode = |bytes: &Bytes| {
            prost_reflect::DynamicMessage::decode(descriptor(input), bytes.clone()).unwrap()
        };
        assert_eq!(decode(&streamed), decode(&encoded), "streamed {json}");
    }
    Ok(encoded)
}

fn holder(json: &str, codec: &Codec) -> Holder {
    let bytes =
        request("anys.v1.Holder", "*", json, codec).unwrap_or_else(|e| panic!("{json}: {e}"));
    Holder::decode(bytes).unwrap()
}

#[test]
fn a_request_reads_an_empty_any_wherever_one_stands() {
    let empty = Any::default();
    let note = packed(
        HOLDER_URL,
        &Holder {
            note: "x".to_owned(),
            ..Holder::default()
        },
    );
    for codec in &codecs() {
        // A singular field: present, though empty.
        let got = holder(r#"{"one": {}}"#, codec);
        assert_eq!(got.one, Some(empty.clone()));
        // List elements, beside one with a type.
        let got = holder(
            r#"{"many": [{}, {"@type": "type.googleapis.com/anys.v1.Holder", "note": "x"}, {}]}"#,
            codec,
        );
        assert_eq!(got.many, vec![empty.clone(), note.clone(), empty.clone()]);
        // A map value.
        let got = holder(r#"{"named": {"a": {}, "b": {}}}"#, codec);
        assert_eq!(got.named.len(), 2);
        assert!(got.named.values().all(|v| *v == empty));
        // In a message another `Any` packs, and in a nested message.
        let got = holder(
            r#"{"one": {"@type": "type.googleapis.com/anys.v1.Holder", "one": {}, "many": [{}]},
                "child": {"one": {}}}"#,
            codec,
        );
        let inner = Holder {
            one: Some(empty.clone()),
            many: vec![empty.clone()],
            ..Holder::default()
        };
        assert_eq!(got.one, Some(packed(HOLDER_URL, &inner)));
        assert_eq!(got.child.unwrap().one, Some(empty.clone()));
        // Packed in an `Any` as a well-known type: under `value`.
        let got = holder(
            r#"{"one": {"@type": "type.googleapis.com/google.protobuf.Any", "value": {}}}"#,
            codec,
        );
        assert_eq!(got.one, Some(packed(ANY_URL, &empty)));
        // `@type` after the fields (the parser buffers those).
        let got = holder(
            r#"{"one": {"one": {}, "@type": "type.googleapis.com/anys.v1.Holder"}}"#,
            codec,
        );
        let inner = Holder {
            one: Some(empty.clone()),
            ..Holder::default()
        };
        assert_eq!(got.one, Some(packed(HOLDER_URL, &inner)));
        // The whole body of an `Any` request.
        let bytes = request("google.protobuf.Any", "*", "{}", codec).unwrap();
        assert!(bytes.is_empty(), "{bytes:?}");
        let bytes = request(
            "google.protobuf.Any",
            "*",
            r#"{"@type": "type.googleapis.com/anys.v1.Holder", "one": {}}"#,
            codec,
        )
        .unwrap();
        let inner = Holder {
            one: Some(empty.clone()),
            ..Holder::default()
        };
        assert_eq!(Any::decode(bytes).unwrap(), packed(HOLDER_URL, &inner));
        // A body field: the `Any` itself, a list of them, a map of them.
        let one = request("anys.v1.Holder", "one", "{}", codec).unwrap();
        assert_eq!(Holder::decode(one).unwrap().one, Some(empty.clone()));
        let many = request("anys.v1.Holder", "many", "[{}, {}]", codec).unwrap();
        assert_eq!(Holder::decode(many).unwrap().many, vec![empty.clone(); 2]);
        let named = request("anys.v1.Holder", "named", r#"{"k": {}}"#, codec).unwrap();
        assert_eq!(Holder::decode(named).unwrap().named["k"], empty);
    }
    for codec in &codecs() {
        // The other rules hold: `null` leaves the field unset.
        assert_eq!(holder(r#"{"one": null}"#, codec).one, None);
        // A type and nothing else: that type's empty message.
        let got = holder(
            r#"{"one": {"@type": "type.googleapis.com/anys.v1.Holder"}}"#,
            codec,
        );
        assert_eq!(got.one, Some(packed(HOLDER_URL, &Holder::default())));
        for bad in [
            r#"{"one": {"@type": ""}}"#,
            r#"{"one": {"@type": "no-slash"}}"#,
            r#"{"one": {"@type": "type.googleapis.com/nope.Nope"}}"#,
            r#"{"one": {"note": "x"}}"#,
            r#"{"many": [{}, {"value": 1}]}"#,
            r#"{"one": {}, "note": 5}"#,
        ] {
            let err = request("anys.v1.Holder", "*", bad, codec).unwrap_err();
            assert!(!err.contains(super::marker()), "{bad}: {err}");
        }
        let err = request("anys.v1.Holder", "*", r#"{"one": {"@type": ""}}"#, codec).unwrap_err();
        assert!(err.contains("one"), "{err}");
    }
    // A client's type URL that looks like a mark is no mark: the random
    // part differs, and the `Any` reaches the backend as sent.
    let forged = r#"{"one": {"@type": "empty-any.protogate.invalid/0/anys.v1.Holder"}}"#;
    let got = holder(forged, &Codec::default());
    assert_eq!(
        got.one.map(|any| any.type_url),
        Some("empty-any.protogate.invalid/0/anys.v1.Holder".to_owned())
    );
}

/// The response `message` of `output` written with `response_body`, by
/// both the direct writer (where it takes the type) and the reflective
/// path: the same body.
fn response(output: &str, response_body: &str, message: &[u8]) -> String {
    let plan = ResponsePlan::new(&descriptor(output), response_body).unwrap();
    let codec = Codec::default();
    let bytes = Bytes::copy_from_slice(message);
    let written = plan.encode(bytes.clone(), &codec).unwrap().body;
    let reflected = plan.encode_reflect(bytes, &codec).unwrap().body;
    let text = String::from_utf8(written.to_vec()).unwrap();
    assert_eq!(text, String::from_utf8_lossy(&reflected), "the two paths");
    text
}

#[test]
fn a_response_writes_an_empty_any_as_an_empty_object() {
    let empty = Any::default();
    let inner = Holder {
        one: Some(empty.clone()),
        many: vec![empty.clone()],
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
    }
    .encode_to_vec();
    let body = response("anys.v1.Holder", "", &message);
    assert_eq!(
        body,
        r#"{"one":{},"many":[{},{"@type":"type.googleapis.com/anys.v1.Holder","one":{},"many":[{}]},{"@type":"type.googleapis.com/google.protobuf.Any","value":{}}],"named":{"k":{}},"child":{"one":{},"many":[{}]}}"#
    );
    // `response_body` naming the `Any`, a list or a map of them.
    assert_eq!(response("anys.v1.Holder", "one", &message), "{}");
    assert!(response("anys.v1.Holder", "many", &message).starts_with("[{},{\"@type\""));
    assert_eq!(response("anys.v1.Holder", "named", &message), r#"{"k":{}}"#);
    // The whole response, alone or packing one.
    assert_eq!(response("google.protobuf.Any", "", &[]), "{}");
    assert_eq!(
        response(
            "google.protobuf.Any",
            "",
            &packed(ANY_URL, &empty).encode_to_vec()
        ),
        r#"{"@type":"type.googleapis.com/google.protobuf.Any","value":{}}"#
    );
    // A singular field sent twice (the last wins), which the direct writer
    // leaves to prost-reflect.
    let twice = [
        Holder {
            note: "a".to_owned(),
            ..Holder::default()
        }
        .encode_to_vec(),
        Holder {
            one: Some(empty.clone()),
            note: "b".to_owned(),
            ..Holder::default()
        }
        .encode_to_vec(),
    ]
    .concat();
    assert_eq!(
        response("anys.v1.Holder", "", &twice),
        r#"{"one":{},"note":"b"}"#
    );
    // A proto2 group, which only prost-reflect writes: field 1 as a group
    // (start 0x0b, end 0x0c) holding field 2, an empty `Any`; field 3 too.
    let grouped = [0x0b, 0x12, 0x00, 0x0c, 0x1a, 0x00];
    assert_eq!(
        response("anys.v1.Grouped", "", &grouped),
        r#"{"box":{"any":{}},"top":{}}"#
    );
    // Through the writer alone, with and without the float adapter; a map
    // key `@type` is no `Any`: only the empty one in it is `{}`.
    let desc = descriptor("anys.v1.Holder");
    let bytes = Holder {
        one: Some(Any::default()),
        named: HashMap::from([("@type".to_owned(), Any::default())]),
        ..Holder::default()
    }
    .encode_to_vec();
    let message = prost_reflect::DynamicMessage::decode(desc, bytes.as_slice()).unwrap();
    let options = prost_reflect::SerializeOptions::new();
    for float_safe in [false, true] {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        super::serialize(&message, &mut ser, &options, float_safe, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"one":{},"named":{"@type":{}}}"#
        );
    }
}

#[test]
fn an_empty_any_round_trips() {
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
    let json = response("anys.v1.Holder", "", &bytes);
    for codec in &codecs() {
        let back = request("anys.v1.Holder", "*", &json, codec).unwrap();
        assert_eq!(Holder::decode(back).unwrap(), message, "{json}");
    }
    let json = response("google.protobuf.Any", "", &[]);
    let back = request("google.protobuf.Any", "*", &json, &Codec::default()).unwrap();
    assert!(back.is_empty());
}
