//! The direct writer against the reflective path it replaces: the same
//! bytes (or error) for generated messages under every codec, and for
//! hand-written wire bytes of the shapes it must leave to that path.

pub(in crate::transcode) mod arbitrary;
mod cases;

use bytes::Bytes;
use prost_reflect::{DynamicMessage, Value};

use crate::transcode::{Codec, JsonOptions, ResponsePlan, UnknownParams};

use crate::transcode::test_protos::descriptor;

fn plan(name: &str, response_body: &str) -> ResponsePlan {
    ResponsePlan::new(&descriptor(name), response_body).expect("response plan")
}

/// Every combination of the JSON output options.
fn codecs() -> Vec<Codec> {
    let mut codecs = Vec::new();
    for bits in 0..8u8 {
        let json = JsonOptions {
            use_proto_names: bits & 1 != 0,
            emit_unpopulated: bits & 2 != 0,
            enums_as_ints: bits & 4 != 0,
            ..JsonOptions::default()
        };
        codecs.push(Codec::new(&json, UnknownParams::Reject, 256));
    }
    codecs
}

/// How a response came out of both paths.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Written, by the direct writer or not.
    Written { direct: bool },
    /// Refused (by both, with the same error).
    Failed,
}

/// Writes `bytes` both ways under `codec` and asserts the same body (or
/// error). Maps with several entries come out of the reflective path in
/// hash order; where `unordered` says the message may hold one, bodies
/// that differ as bytes must still be the same JSON.
fn compare(plan: &ResponsePlan, bytes: &[u8], codec: &Codec, unordered: bool) -> Outcome {
    let bytes = Bytes::copy_from_slice(bytes);
    let old = plan.encode_reflect(bytes.clone(), codec);
    let new = plan.encode(bytes.clone(), codec);
    let direct = plan.is_direct(&bytes, codec);
    match (old, new) {
        (Ok(old), Ok(new)) => {
            assert_eq!(old.content_type, new.content_type);
            if old.body != new.body {
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                assert!(
                    unordered,
                    "bodies differ under {codec:?}\nold: {}\nnew: {}",
                    text(&old.body),
                    text(&new.body)
                );
                let parse = |b: &Bytes| serde_json::from_slice::<serde_json::Value>(b);
                assert_eq!(
                    parse(&old.body).ok(),
                    parse(&new.body).ok(),
                    "bodies differ as JSON\nold: {}\nnew: {}",
                    text(&old.body),
                    text(&new.body)
                );
            }
            Outcome::Written { direct }
        }
        (Err(old), Err(new)) => {
            assert_eq!(old.to_string(), new.to_string());
            assert!(!direct, "the direct writer wrote what fails: {old}");
            Outcome::Failed
        }
        (old, new) => panic!(
            "one path failed under {codec:?}: old {:?}, new {:?}",
            old.map(|e| e.body),
            new.map(|e| e.body)
        ),
    }
}

/// [`compare`] under every codec; the outcome they share.
fn compare_all(plan: &ResponsePlan, bytes: &[u8], unordered: bool) -> Outcome {
    let mut outcomes = codecs()
        .iter()
        .map(|codec| compare(plan, bytes, codec, unordered))
        .collect::<Vec<_>>();
    outcomes.dedup();
    assert_eq!(outcomes.len(), 1, "outcomes differ by codec: {outcomes:?}");
    outcomes.remove(0)
}

/// Whether the reflective path may write `message` in an order of its own:
/// a map with two entries or more, or an `Any` (whose packed message it
/// decodes afresh each time).
fn unordered(message: &DynamicMessage) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::Message(m) => unordered(m),
            Value::List(items) => items.iter().any(value),
            Value::Map(entries) => entries.len() > 1 || entries.values().any(value),
            _ => false,
        }
    }
    let desc = prost_reflect::ReflectMessage::descriptor(message);
    desc.full_name() == "google.protobuf.Any" || message.fields().any(|(_, v)| value(v))
}

/// Plans of one [`ResponsePlans`] share its tables, which they use once it
/// is dropped; before, they write the reflective way, alike.
#[test]
fn plans_share_tables_once_built() {
    use crate::transcode::ResponsePlans;
    let bytes = Bytes::from_static(b"\x2a\x03\x0a\x01n\x4a\x01x");
    let codec = Codec::default();
    let mut plans = ResponsePlans::new();
    let whole = plans.whole(&descriptor("Everything"));
    let node = plans.plan(&descriptor("Everything"), "node").unwrap();
    let items = plans
        .plan(&descriptor("protogate.bench.v1.ListItemsResponse"), "")
        .unwrap();
    assert!(!whole.is_direct(&bytes, &codec));
    let before = whole.encode(bytes.clone(), &codec).unwrap().body;
    drop(plans);
    assert!(whole.is_direct(&bytes, &codec) && node.is_direct(&bytes, &codec));
    assert_eq!(whole.encode(bytes.clone(), &codec).unwrap().body, before);
    assert_eq!(
        node.encode(bytes.clone(), &codec).unwrap().body,
        r#"{"name":"n"}"#
    );
    assert_eq!(items.encode(Bytes::new(), &codec).unwrap().body, "{}");
}
