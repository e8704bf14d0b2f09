//! The direct encoder against the reflective path it replaces: the same
//! message (or the same error) for generated and hand-written bodies,
//! under the codec options that change what a body may hold.

mod arbitrary;
mod breaker;
mod cases;

use std::fmt::Write as _;

use bytes::Bytes;
use prost_reflect::{DynamicMessage, ReflectMessage as _, Value};

use crate::http_rule::{Matcher, Template, path};
use crate::transcode::{Codec, JsonOptions, RawRequest, RequestPlan, UnknownParams};

use crate::transcode::test_protos::{descriptor, pool};

/// A route: its request plan and a matcher for its template.
struct Route {
    plan: RequestPlan,
    matcher: Matcher,
}

impl Route {
    fn new(message: &str, template: &str, body: &str) -> Route {
        let template = Template::parse(template).expect("template");
        let plan = RequestPlan::new(&descriptor(message), &template, body).expect("request plan");
        let mut matcher = Matcher::new();
        matcher
            .insert(http::Method::POST, &template, 0)
            .expect("insert");
        Route { plan, matcher }
    }
}

/// The codecs whose options change what a body may hold.
fn codecs() -> Vec<Codec> {
    let mut codecs = Vec::new();
    for (ignore, depth) in [(false, 64), (true, 64), (false, 4), (true, 127)] {
        let json = JsonOptions {
            ignore_unknown_fields: ignore,
            max_depth: depth,
            ..JsonOptions::default()
        };
        codecs.push(Codec::new(&json, UnknownParams::Reject, 256));
    }
    codecs
}

/// How a request came out of both paths.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Encoded, by the direct encoder or not.
    Encoded { direct: bool },
    /// Refused (by both, with the same error).
    Failed,
}

/// Encodes the request both ways under `codec` and asserts the same
/// message (compared decoded: fields come in another order) or error.
fn compare(route: &Route, uri: &str, body: &[u8], codec: &Codec) -> Outcome {
    let (raw_path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let normalized = path::normalize(raw_path).expect("test paths are valid");
    let found = route
        .matcher
        .find(&http::Method::POST, &normalized)
        .expect("the uri matches");
    let request = RawRequest {
        path: &normalized,
        found: &found,
        query: Some(query),
        content_type: "application/json",
        body: Bytes::copy_from_slice(body),
    };
    let plan = &route.plan;
    let old = plan
        .decode(request.clone(), codec)
        .map(|m| crate::transcode::encode::encode(&m).expect("encodes"));
    let direct = plan.is_direct(&request, codec);
    let new = plan.encode(request, codec);
    let text = String::from_utf8_lossy(body);
    match (old, new) {
        (Ok(old), Ok(new)) => {
            let input = plan.input().clone();
            let old = DynamicMessage::decode(input.clone(), old).expect("old decodes");
            let new = DynamicMessage::decode(input, new).expect("new decodes");
            assert_eq!(canon(&old), canon(&new), "{uri} {text} under {codec:?}");
            Outcome::Encoded { direct }
        }
        (Err(old), Err(new)) => {
            assert_eq!(old.to_string(), new.to_string(), "{uri} {text}");
            assert!(!direct, "the direct encoder took what fails: {old} {text}");
            Outcome::Failed
        }
        (old, new) => panic!(
            "one path failed for {uri} {text} under {codec:?}: old {:?}, new {:?}",
            old.map(|_| ()),
            new.map(|_| ())
        ),
    }
}

/// A message as text with one spelling per value: fields by number,
/// floats by their bits, map entries sorted, the message packed in an
/// `Any` decoded (its bytes hold maps in hash order).
fn canon(message: &DynamicMessage) -> String {
    let mut out = String::new();
    if let Some(packed) = unpack(message) {
        return format!("any:{}", canon(&packed));
    }
    for field in message.descriptor().fields() {
        if message.has_field(&field) {
            let _ = write!(out, "{}=", field.number());
            value(&message.get_field(&field), &mut out);
            out.push(';');
        }
    }
    for field in message.unknown_fields() {
        let _ = write!(out, "?{field:?};");
    }
    out
}

fn unpack(message: &DynamicMessage) -> Option<DynamicMessage> {
    if message.descriptor().full_name() != "google.protobuf.Any" {
        return None;
    }
    let url = message.get_field_by_number(1)?;
    let bytes = message.get_field_by_number(2)?;
    let (Value::String(url), Value::Bytes(bytes)) = (url.as_ref(), bytes.as_ref()) else {
        return None;
    };
    let packed = pool().get_message_by_name(url.rsplit('/').next()?)?;
    DynamicMessage::decode(packed, bytes.clone()).ok()
}

fn value(v: &Value, out: &mut String) {
    match v {
        Value::F32(f) => {
            let _ = write!(out, "f{:x}", f.to_bits());
        }
        Value::F64(f) => {
            let _ = write!(out, "d{:x}", f.to_bits());
        }
        Value::Message(m) => {
            out.push('{');
            out.push_str(&canon(m));
            out.push('}');
        }
        Value::List(items) => {
            out.push('[');
            for item in items {
                value(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    let mut entry = format!("{k:?}:");
                    value(v, &mut entry);
                    entry
                })
                .collect();
            sorted.sort();
            let _ = write!(out, "<{}>", sorted.join(","));
        }
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}

/// [`compare`] under every codec.
fn compare_all(route: &Route, uri: &str, body: &[u8]) -> Vec<Outcome> {
    codecs()
        .iter()
        .map(|codec| compare(route, uri, body, codec))
        .collect()
}
