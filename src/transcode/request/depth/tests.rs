//! Nesting counted in message levels, through the messages `Any` packs.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

use super::*;
use crate::http_rule::{Matcher, Template};
use crate::transcode::{Codec, RawRequest, RequestPlans, decode_json, test_protos};

fn sink() -> MessageDescriptor {
    test_protos::descriptor("kitchen.v1.Sink")
}

/// A `Sink` whose `detail` starts a chain of `links` `Any`, each packing a
/// `Sink` that holds the next in its `detail`: the last packed `Sink` is
/// `2 * links` levels below the top.
fn chain(links: usize) -> String {
    let link = r#"{"@type": "type.googleapis.com/kitchen.v1.Sink", "detail": "#;
    format!(
        r#"{{"detail": {}{{"@type": "type.googleapis.com/kitchen.v1.Sink"}}{}}}"#,
        link.repeat(links - 1),
        "}".repeat(links - 1)
    )
}

/// A `Sink` whose `detail` packs `packed` (a well-known type) with
/// `value` holding `objects` nested objects.
fn packed(packed: &str, objects: usize) -> String {
    format!(
        r#"{{"detail": {{"@type": "type.googleapis.com/google.protobuf.{packed}", "value": {}{{}}{}}}}}"#,
        r#"{"a": "#.repeat(objects - 1),
        "}".repeat(objects - 1)
    )
}

/// How deep `json` nests (none of its strings holds a bracket).
fn json_depth(json: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0;
    for b in json.bytes() {
        match b {
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    deepest
}

#[test]
fn nesting_is_measured_in_message_levels() {
    let pool = prost_reflect::DescriptorPool::global();
    let value = pool.get_message_by_name("google.protobuf.Value").unwrap();
    // A Value holding a list holding a Value ... `levels` deep.
    let mut message = DynamicMessage::new(value.clone());
    for _ in 0..10 {
        let mut list = DynamicMessage::new(
            pool.get_message_by_name("google.protobuf.ListValue")
                .unwrap(),
        );
        list.set_field_by_name("values", Value::List(vec![Value::Message(message)]));
        message = DynamicMessage::new(value.clone());
        message.set_field_by_name("list_value", Value::Message(list));
    }
    // 10 Values each with a ListValue: 20 levels below the top.
    assert!(exceeds_message_depth(&message, 19));
    assert!(!exceeds_message_depth(&message, 20));
}

#[test]
fn a_packed_message_is_a_level_below_its_any() {
    for links in [1, 5, 20] {
        let json = chain(links);
        let message = decode_json(&sink(), json.as_bytes(), &Codec::default()).unwrap();
        assert!(!exceeds_message_depth(&message, 2 * links), "{links}");
        assert!(exceeds_message_depth(&message, 2 * links - 1), "{links}");
    }
    // A Struct packed in `detail`: Struct 2, map entry 3, Value 4, and
    // so on, the innermost of 5 Structs at 14.
    let json = packed("Struct", 5);
    let message = decode_json(&sink(), json.as_bytes(), &Codec::default()).unwrap();
    assert!(!exceeds_message_depth(&message, 14));
    assert!(exceeds_message_depth(&message, 13));
}

#[test]
fn an_any_of_a_type_outside_the_pool_is_left_to_the_backend() {
    let any = test_protos::pool()
        .get_message_by_name("google.protobuf.Any")
        .unwrap();
    let mut detail = DynamicMessage::new(any);
    detail.set_field_by_name(
        "type_url",
        Value::String("type.googleapis.com/no.such.Type".to_owned()),
    );
    detail.set_field_by_name("value", Value::Bytes(Bytes::from_static(b"\x0a\x00")));
    let mut message = DynamicMessage::new(sink());
    message.set_field_by_name("detail", Value::Message(detail));
    assert!(!exceeds_message_depth(&message, 1));
    assert!(exceeds_message_depth(&message, 0));
}

/// The check looks at messages only past 33 levels of JSON: below that,
/// no shape nests past the limit, `Any` included.
#[test]
fn json_within_the_safe_depth_stays_within_the_limit() {
    for json in [
        chain(32),
        packed("Struct", 31),
        packed("Value", 31),
        format!(
            r#"{{"anyValue": {}{{}}{}}}"#,
            r#"{"a": "#.repeat(31),
            "}".repeat(31)
        ),
    ] {
        assert_eq!(json_depth(&json), 33, "{json}");
        let message = decode_json(&sink(), json.as_bytes(), &Codec::default()).unwrap();
        assert!(
            !exceeds_message_depth(&message, MAX_MESSAGE_DEPTH),
            "{json}"
        );
    }
}

/// A REST body (built, and encoded past the direct encoder), a streamed
/// message and an RPC-style body all refuse nesting through `Any` past
/// the limit with the depth error, and take it up to the limit.
#[test]
fn every_request_path_counts_through_any() {
    let template = Template::parse("/v1/echo").unwrap();
    let mut plans = RequestPlans::new();
    let plan = plans.plan(&sink(), &template, "*").unwrap();
    drop(plans);
    let mut matcher = Matcher::new();
    matcher.insert(http::Method::POST, &template, 0).unwrap();
    let found = matcher.find(&http::Method::POST, "/v1/echo").unwrap();
    let codec = Codec::default();
    let too_deep = RequestError::TooDeepMessage(MAX_MESSAGE_DEPTH).to_string();
    for (json, fits) in [
        (chain(50), true),
        (chain(51), false),
        (chain(60), false),
        (packed("Struct", 10), true),
        // 119 levels: more than the decoder takes in the packed bytes.
        (packed("Struct", 40), false),
    ] {
        let request = RawRequest {
            path: "/v1/echo",
            found: &found,
            query: None,
            content_type: "application/json",
            body: Bytes::from(json.clone()),
        };
        let answers = [
            plan.decode(request.clone(), &codec).map(drop),
            plan.encode(request.clone(), &codec)
                .map(drop)
                .map_err(|e| match e {
                    crate::transcode::BuildError::Request(e) => e,
                    other => panic!("{other}"),
                }),
            plan.decode_streamed(&request, json.as_bytes(), &codec)
                .map(drop),
            decode_json(&sink(), json.as_bytes(), &codec).map(drop),
        ];
        for answer in answers {
            match answer {
                Ok(()) => assert!(fits, "{json}"),
                Err(err) => {
                    assert!(!fits, "{json}: {err}");
                    assert_eq!(err.to_string(), too_deep, "{json}");
                }
            }
        }
    }
}
