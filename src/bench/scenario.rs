//! The scenarios: each one REST request to the gateway and the same call
//! as gRPC, encoded from the same JSON with the bench descriptors, so both
//! sides ask the backend for exactly the same thing.

use bytes::Bytes;
use http::Method;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use super::BenchError;
use super::grpc::GrpcRequest;
use super::http::RestRequest;

/// Encoded `FileDescriptorSet` of the bench service (with imports).
pub(super) const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench.bin"));

const SERVICE: &str = "protogate.bench.v1.Catalogue";

/// Messages in the stream scenario.
pub(super) const STREAM_MESSAGES: u64 = 10_000;

/// One scenario, ready to send.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    /// Short name, as `--scenario` takes it.
    pub(super) name: &'static str,
    /// What it sends, for the table.
    pub(super) label: String,
    pub(super) rest: RestRequest,
    pub(super) grpc: GrpcRequest,
    /// Highest concurrency it runs at by default (the costly ones run at
    /// fewer levels to keep the whole bench short).
    pub(super) max_concurrency: Option<usize>,
}

/// Builds every scenario.
pub(super) fn all() -> Result<Vec<Scenario>, BenchError> {
    let pool = DescriptorPool::decode(DESCRIPTOR_SET)
        .map_err(|e| BenchError::Setup(format!("bench descriptors: {e}")))?;
    let encode = |method: &str, request: &Value| encode(&pool, method, request);
    let small = json!({"id": "item-42"});
    let page = json!({"pageSize": 100});
    let watch = json!({"count": STREAM_MESSAGES});
    let mut scenarios = vec![Scenario {
        name: "get",
        label: "GET /v1/items/{id}, small answer".to_owned(),
        rest: get("/v1/items/item-42", None),
        grpc: unary("GetItem", encode("GetItem", &small)?),
        max_concurrency: None,
    }];
    for (name, size) in [("post-1k", 1 << 10), ("post-64k", 64 << 10)] {
        let item = item_of_size(size);
        let body = Bytes::from(item.to_string());
        scenarios.push(Scenario {
            name,
            label: format!("POST /v1/items, {} B JSON body", body.len()),
            rest: RestRequest {
                method: Method::POST,
                target: "/v1/items".to_owned(),
                body,
                lines: None,
            },
            grpc: unary("CreateItem", encode("CreateItem", &json!({"item": item}))?),
            max_concurrency: None,
        });
    }
    scenarios.push(Scenario {
        name: "list-100",
        label: "GET /v1/items?page_size=100, 100 nested items".to_owned(),
        rest: get("/v1/items?page_size=100", None),
        grpc: unary("ListItems", encode("ListItems", &page)?),
        max_concurrency: None,
    });
    scenarios.push(Scenario {
        name: "stream-10k",
        label: format!(
            "GET /v1/items:watch, server stream of {STREAM_MESSAGES} items (req/s: whole streams)"
        ),
        rest: get(
            &format!("/v1/items:watch?count={STREAM_MESSAGES}"),
            Some(STREAM_MESSAGES),
        ),
        grpc: GrpcRequest {
            path: format!("/{SERVICE}/WatchItems"),
            message: encode("WatchItems", &watch)?,
            messages: Some(STREAM_MESSAGES),
        },
        // 256 streams of 10,000 messages each take minutes on two cores.
        max_concurrency: Some(16),
    });
    Ok(scenarios)
}

fn get(target: &str, lines: Option<u64>) -> RestRequest {
    RestRequest {
        method: Method::GET,
        target: target.to_owned(),
        body: Bytes::new(),
        lines,
    }
}

fn unary(method: &str, message: Bytes) -> GrpcRequest {
    GrpcRequest {
        path: format!("/{SERVICE}/{method}"),
        message,
        messages: None,
    }
}

/// `request` (proto3 JSON) as the encoded request message of `method`.
fn encode(pool: &DescriptorPool, method: &str, request: &Value) -> Result<Bytes, BenchError> {
    let bad = |why: String| BenchError::Setup(format!("bench request for {method}: {why}"));
    let service = pool
        .get_service_by_name(SERVICE)
        .ok_or_else(|| bad("no such service".to_owned()))?;
    let method = service
        .methods()
        .find(|m| m.name() == method)
        .ok_or_else(|| bad("no such method".to_owned()))?;
    let message = DynamicMessage::deserialize(method.input(), request.clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// An item whose JSON is at least `size` bytes: parts are added until it
/// is (a mix of strings, 64-bit integers as strings, and doubles).
pub(crate) fn item_of_size(size: usize) -> Value {
    let mut item = json!({
        "id": "item-new",
        "title": "A lamp for the desk",
        "stock": "250",
        "price": 19.5,
        "active": true,
        "tags": ["light", "desk", "office"],
        "size": {"width": 30, "height": 45, "unit": "cm"},
        "storage": "SHELF",
        "parts": [],
    });
    let mut len = item.to_string().len();
    let mut parts = Vec::new();
    while len < size {
        let n = parts.len();
        let part = json!({
            "name": format!("part-{n:05}"),
            "quantity": (n * 7 + 1).to_string(),
            "weight": n as f64 * 0.25 + 0.5,
        });
        // The part and, after the first, a comma.
        len += part.to_string().len() + usize::from(n > 0);
        parts.push(part);
    }
    item["parts"] = Value::Array(parts);
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_reach_their_size() {
        for size in [1 << 10, 64 << 10] {
            let len = item_of_size(size).to_string().len();
            assert!((size..size + 100).contains(&len), "{len} for {size}");
        }
    }

    /// Times encoding the request message of `post-64k` (an item with
    /// about 1,200 parts) with prost-reflect and with the gateway's
    /// encoder, in whatever profile the tests are built.
    /// `cargo test --lib timing_post_64k -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn timing_post_64k() {
        let pool = DescriptorPool::decode(DESCRIPTOR_SET).unwrap();
        let request = pool
            .get_message_by_name("protogate.bench.v1.CreateItemRequest")
            .unwrap();
        let json = json!({"item": item_of_size(64 << 10)});
        let message = DynamicMessage::deserialize(request, json).unwrap();
        assert_eq!(
            crate::transcode::response::to_bytes(&message).unwrap(),
            message.encode_to_vec()
        );
        // The best of several alternating rounds: the machine is shared.
        let (mut before, mut after) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..5 {
            let start = std::time::Instant::now();
            for _ in 0..20 {
                std::hint::black_box(message.encode_to_vec());
            }
            before = before.min(start.elapsed() / 20);
            let start = std::time::Instant::now();
            for _ in 0..20 {
                std::hint::black_box(crate::transcode::response::to_bytes(&message).unwrap());
            }
            after = after.min(start.elapsed() / 20);
        }
        println!("post-64k request: encode_to_vec {before:?}, to_bytes {after:?}");
    }

    #[test]
    fn every_scenario_encodes_its_grpc_request() {
        let scenarios = all().unwrap();
        let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        assert_eq!(names, super::super::SCENARIOS[..5]);
        assert!(scenarios.iter().all(|s| !s.grpc.message.is_empty()));
    }
}
