//! An upstream status's `details`, as the error bodies carry them.
//!
//! They arrive as a `google.rpc.Status` in `grpc-status-details-bin`;
//! each `Any` in it is written as proto3 JSON or, for Connect, as its
//! type name and base64 bytes.

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};

use crate::transcode::{self, Codec};

/// `google.rpc.Status` on the wire (`grpc-status-details-bin`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// Connect's error details: each `Any` as its type name and the message
/// bytes in base64 (standard alphabet, no padding).
pub(super) fn connect_details(bytes: &[u8]) -> Vec<serde_json::Value> {
    let Ok(status) = RpcStatus::decode(bytes) else {
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| {
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
            let value = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value);
            serde_json::json!({"type": type_name, "value": value})
        })
        .collect()
}

/// The `details` of an upstream status as proto3 JSON `Any` values. Types
/// unknown to the pool keep `@type` and carry the bytes as base64 `value`.
pub(super) fn details_json(
    bytes: &[u8],
    pool: &DescriptorPool,
    codec: &Codec,
) -> Vec<serde_json::Value> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let Ok(status) = RpcStatus::decode(bytes) else {
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| any_json(any, pool, codec))
        .collect()
}

fn any_json(any: &prost_types::Any, pool: &DescriptorPool, codec: &Codec) -> serde_json::Value {
    // An empty `Any` packs nothing: `{}`, as in responses.
    if any.type_url.is_empty() && any.value.is_empty() {
        return serde_json::json!({});
    }
    // The pool's own Any writes known types in their proto3 JSON form,
    // well-known types under "value" as the mapping says.
    let known = pool
        .get_message_by_name("google.protobuf.Any")
        .and_then(|desc| DynamicMessage::decode(desc, any.encode_to_vec().as_slice()).ok())
        .and_then(|msg| {
            // Nesting past the limit, or a value with no JSON form, is
            // written as bytes rather than recursed into or misread.
            let checked =
                transcode::writable::check(&msg, transcode::request::MAX_MESSAGE_DEPTH).ok()?;
            // Written as text and read back: through serde_json's value
            // serializer a `float` is widened (0.1 as 0.10000000149011612),
            // where its own digits read back as the double they name.
            let mut text = Vec::new();
            transcode::empty_any::serialize(
                &msg,
                &mut transcode::json_number::serializer(&mut text),
                &codec.serialize,
                true,
                checked.empty_any,
            )
            .ok()?;
            serde_json::from_slice(&text).ok()
        });
    known.unwrap_or_else(|| {
        let value = base64::engine::general_purpose::STANDARD.encode(&any.value);
        serde_json::json!({"@type": any.type_url, "value": value})
    })
}
