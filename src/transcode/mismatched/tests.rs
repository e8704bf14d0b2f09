//! Fields of another wire type than declared, left out at every depth;
//! everything else kept byte for byte.

use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint};

use super::drop_mismatched;
use crate::transcode::test_protos::descriptor;
use crate::transcode::{Codec, ResponsePlan};

fn key(number: u32, wire: WireType, out: &mut Vec<u8>) {
    encode_key(number, wire, out);
}

fn varint(number: u32, value: u64, out: &mut Vec<u8>) {
    key(number, WireType::Varint, out);
    encode_varint(value, out);
}

fn delimited(number: u32, value: &[u8], out: &mut Vec<u8>) {
    key(number, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn written(name: &str, bytes: Vec<u8>) -> serde_json::Value {
    let plan = ResponsePlan::new(&descriptor(name), "").expect("plan");
    let body = plan
        .encode(Bytes::from(bytes), &Codec::default())
        .expect("written")
        .body;
    serde_json::from_slice(&body).expect("JSON")
}

#[test]
fn a_string_sent_as_a_number_is_left_out_and_the_rest_written() {
    // `text` (1) is a string; a backend on an older `.proto` sends a varint.
    let mut bytes = Vec::new();
    varint(1, 7, &mut bytes);
    varint(3, 42, &mut bytes);
    delimited(2, b"hi", &mut bytes);
    assert_eq!(
        written("Scalars", bytes),
        serde_json::json!({"i32": 42, "data": "aGk="})
    );
}

#[test]
fn a_number_sent_as_a_string_is_left_out() {
    let mut bytes = Vec::new();
    delimited(3, b"forty-two", &mut bytes);
    delimited(1, b"kept", &mut bytes);
    key(15, WireType::ThirtyTwoBit, &mut bytes);
    bytes.extend_from_slice(&1f32.to_le_bytes());
    assert_eq!(
        written("Scalars", bytes),
        serde_json::json!({"text": "kept"})
    );
}

#[test]
fn mismatches_inside_nested_messages_lists_and_maps_are_left_out() {
    // Node { name: 1 (varint, wrong), child: { name: "c", scalars: { i32 as
    // fixed64 (wrong), u32: 5 } }, named: { "k": { name as varint } } }
    let mut scalars = Vec::new();
    key(3, WireType::SixtyFourBit, &mut scalars);
    scalars.extend_from_slice(&[0; 8]);
    varint(5, 5, &mut scalars);
    let mut child = Vec::new();
    delimited(1, b"c", &mut child);
    delimited(4, &scalars, &mut child);
    let mut wrong_name = Vec::new();
    varint(1, 1, &mut wrong_name);
    let mut entry = Vec::new();
    delimited(1, b"k", &mut entry);
    delimited(2, &wrong_name, &mut entry);
    let mut node = Vec::new();
    varint(1, 9, &mut node);
    delimited(2, &child, &mut node);
    delimited(3, &child, &mut node);
    delimited(5, &entry, &mut node);
    assert_eq!(
        written("Node", node),
        serde_json::json!({
            "child": {"name": "c", "scalars": {"u32": 5}},
            "children": [{"name": "c", "scalars": {"u32": 5}}],
            "named": {"k": {}},
        })
    );
}

#[test]
fn lists_of_numbers_come_packed_or_not() {
    // `i32` (3) is packed by default and `loose_i32` (18) not; each may
    // come the other way, and neither is a mismatch.
    let mut bytes = Vec::new();
    varint(3, 1, &mut bytes);
    varint(3, 2, &mut bytes);
    delimited(18, &[3, 4], &mut bytes);
    assert_eq!(drop_mismatched(&descriptor("Lists"), &bytes), None);
    assert_eq!(
        written("Lists", bytes),
        serde_json::json!({"i32": [1, 2], "looseI32": [3, 4]})
    );
}

#[test]
fn a_single_number_sent_delimited_is_a_mismatch() {
    let mut bytes = Vec::new();
    delimited(3, &[1], &mut bytes);
    varint(4, 2, &mut bytes);
    assert_eq!(written("Scalars", bytes), serde_json::json!({"i64": "2"}));
}

#[test]
fn a_message_sent_as_a_group_is_left_out_with_the_group() {
    let mut bytes = Vec::new();
    key(2, WireType::StartGroup, &mut bytes);
    varint(1, 3, &mut bytes);
    key(2, WireType::EndGroup, &mut bytes);
    delimited(1, b"n", &mut bytes);
    assert_eq!(written("Node", bytes), serde_json::json!({"name": "n"}));
}

#[test]
fn unknown_fields_and_well_formed_messages_are_untouched() {
    let mut bytes = Vec::new();
    delimited(1, b"n", &mut bytes);
    varint(99, 1, &mut bytes);
    key(98, WireType::StartGroup, &mut bytes);
    varint(1, 1, &mut bytes);
    key(98, WireType::EndGroup, &mut bytes);
    assert_eq!(drop_mismatched(&descriptor("Node"), &bytes), None);
}

#[test]
fn malformed_bytes_are_left_to_the_decoder() {
    let desc = descriptor("Node");
    // A length past the end, a group never closed, a wrong end group, a
    // bare end group, wire type 7.
    let mut cut = Vec::new();
    key(1, WireType::LengthDelimited, &mut cut);
    encode_varint(10, &mut cut);
    let mut open = Vec::new();
    key(9, WireType::StartGroup, &mut open);
    let mut crossed = open.clone();
    key(8, WireType::EndGroup, &mut crossed);
    let mut bare = Vec::new();
    key(9, WireType::EndGroup, &mut bare);
    for bytes in [cut, open, crossed, bare, vec![0x0f]] {
        assert_eq!(drop_mismatched(&desc, &bytes), None, "{bytes:?}");
        let plan = ResponsePlan::new(&desc, "").expect("plan");
        assert!(plan.encode(Bytes::from(bytes), &Codec::default()).is_err());
    }
}

#[test]
fn nesting_past_the_decoders_limit_is_not_walked() {
    // 200 `child` levels, the innermost with a mismatched name: past the
    // limit the walk gives up rather than recursing on.
    let mut inner = Vec::new();
    varint(1, 1, &mut inner);
    for _ in 0..200 {
        let mut outer = Vec::new();
        delimited(2, &inner, &mut outer);
        inner = outer;
    }
    assert_eq!(drop_mismatched(&descriptor("Node"), &inner), None);
}
