//! Generated messages of the test types, encoded, reordered and padded with
//! unknown fields, written both ways under every codec.

use std::collections::HashMap;

use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};

use super::{Outcome, compare_all, descriptor, plan, unordered};
use crate::transcode::wire_json::wire;

/// Roots and `response_body` fields the property runs over.
const ROOTS: &[(&str, &str)] = &[
    ("Everything", ""),
    ("Scalars", ""),
    ("Optionals", ""),
    ("Lists", ""),
    ("Maps", ""),
    ("Node", ""),
    ("Choice", ""),
    ("Known", ""),
    ("Sparse", ""),
    ("Holder", ""),
    ("Everything", "node"),
    ("Everything", "known"),
    ("Choice", "node"),
    ("kitchen.v1.Sink", ""),
    ("kitchen.v1.Sink", "inner"),
    ("protogate.bench.v1.ListItemsResponse", ""),
];

/// How deep generated messages nest.
const MAX_DEPTH: usize = 4;

/// Choices read from proptest's bytes; zeros once they run out, which
/// leave fields unset, so shrinking makes messages smaller.
pub(in crate::transcode) struct Entropy<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Entropy<'a> {
    /// Choices read from `bytes`.
    pub(in crate::transcode) fn new(bytes: &'a [u8]) -> Entropy<'a> {
        Entropy { bytes, at: 0 }
    }

    pub(in crate::transcode) fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    pub(in crate::transcode) fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    pub(in crate::transcode) fn i64(&mut self) -> i64 {
        match self.below(6) {
            0 => 0,
            1 => 1,
            2 => -1,
            3 => i64::MIN,
            4 => i64::MAX,
            _ => self.u64() as i64,
        }
    }

    fn f64(&mut self) -> f64 {
        const SPECIAL: &[f64] = &[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.5,
            0.1,
            1e300,
            -2.5e-300,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            9007199254740993.0,
        ];
        match self.below(SPECIAL.len() + 2) {
            i if i < SPECIAL.len() => SPECIAL[i],
            _ => f64::from_bits(self.u64()),
        }
    }

    fn f32(&mut self) -> f32 {
        match self.below(3) {
            0 => f32::from_bits(self.u64() as u32),
            1 => 0.1,
            _ => self.f64() as f32,
        }
    }

    pub(in crate::transcode) fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            "a",
            "\"",
            "\\",
            "/",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "😀",
            "\u{2028}",
            "\n\t",
            "</script>",
            "x y",
        ];
        let mut text = String::new();
        for _ in 0..self.below(4) {
            match self.below(PIECES.len() + 1) {
                i if i < PIECES.len() => text.push_str(PIECES[i]),
                _ => text.extend(char::from_u32(self.u64() as u32 % 0x11_0000)),
            }
        }
        text
    }

    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(7)).map(|_| self.byte()).collect()
    }
}

/// A message of type `desc`: each field set or not, by the entropy.
pub(in crate::transcode) fn message(
    desc: &MessageDescriptor,
    e: &mut Entropy<'_>,
    depth: usize,
) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    match desc.full_name() {
        "google.protobuf.Timestamp" => {
            // Mostly in range; out of range, both paths refuse it.
            const FIRST: i64 = -62_135_596_800;
            const SPAN: u64 = 315_537_897_600;
            let seconds = match e.below(8) {
                0 => e.i64(),
                _ => (e.u64() % SPAN) as i64 + FIRST,
            };
            m.set_field_by_number(1, Value::I64(seconds));
            m.set_field_by_number(2, Value::I32((e.u64() % 1_000_000_000) as i32));
            return m;
        }
        "google.protobuf.Duration" => {
            let seconds = (e.u64() % 315_576_000_000) as i64;
            let nanos = (e.u64() % 1_000_000_000) as i32;
            let sign = if e.below(2) == 0 { 1 } else { -1 };
            m.set_field_by_number(1, Value::I64(sign * seconds));
            m.set_field_by_number(2, Value::I32(sign as i32 * nanos));
            return m;
        }
        "google.protobuf.Any" => {
            // A packed test message, a packed well-known type, or garbage.
            let (url, value) = match e.below(3) {
                0 => {
                    let node = message(&descriptor("Node"), e, depth + 1);
                    (
                        "type.googleapis.com/wire.v1.Node".to_owned(),
                        node.encode_to_vec(),
                    )
                }
                1 => {
                    let ts = descriptor("google.protobuf.Timestamp");
                    let at = message(&ts, e, depth + 1);
                    (
                        "type.googleapis.com/google.protobuf.Timestamp".to_owned(),
                        at.encode_to_vec(),
                    )
                }
                _ => (e.text(), e.bytes()),
            };
            m.set_field_by_number(1, Value::String(url));
            m.set_field_by_number(2, Value::Bytes(value.into()));
            return m;
        }
        _ => {}
    }
    for field in desc.fields() {
        // Zero (run-out entropy) leaves the field unset.
        if e.below(3) != 1 {
            continue;
        }
        let holds_message = matches!(field.kind(), Kind::Message(_));
        if holds_message && depth >= MAX_DEPTH {
            continue;
        }
        let value = field_value(&field, e, depth);
        m.set_field(&field, value);
    }
    m
}

fn field_value(field: &FieldDescriptor, e: &mut Entropy<'_>, depth: usize) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field holds entries");
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let mut map = HashMap::new();
        for _ in 0..e.below(4) {
            map.insert(key(&key_kind, e), single(&value_kind, e, depth));
        }
        Value::Map(map)
    } else if field.is_list() {
        let kind = field.kind();
        Value::List((0..e.below(5)).map(|_| single(&kind, e, depth)).collect())
    } else {
        single(&field.kind(), e, depth)
    }
}

fn key(kind: &Kind, e: &mut Entropy<'_>) -> MapKey {
    match kind {
        Kind::Bool => MapKey::Bool(e.below(2) == 1),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(e.i64() as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(e.i64()),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(e.i64() as u32),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(e.i64() as u64),
        _ => MapKey::String(e.text()),
    }
}

fn single(kind: &Kind, e: &mut Entropy<'_>, depth: usize) -> Value {
    match kind {
        Kind::Double => Value::F64(e.f64()),
        Kind::Float => Value::F32(e.f32()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(e.i64() as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(e.i64()),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(e.i64() as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(e.i64() as u64),
        Kind::Bool => Value::Bool(e.below(2) == 1),
        Kind::String => Value::String(e.text()),
        Kind::Bytes => Value::Bytes(e.bytes().into()),
        Kind::Enum(en) => {
            // Known values, and numbers the enum does not name.
            let known: Vec<i32> = en.values().map(|v| v.number()).collect();
            match e.below(known.len() + 2) {
                i if i < known.len() => Value::EnumNumber(known[i]),
                _ => Value::EnumNumber(e.i64() as i32),
            }
        }
        Kind::Message(m) => Value::Message(message(m, e, depth + 1)),
    }
}

/// The top-level fields of `bytes`, each with its key.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let (_, wire) = wire::key(bytes, &mut pos).expect("encoded key");
        wire::extent(bytes, &mut pos, wire).expect("encoded value");
        out.push(&bytes[start..pos]);
    }
    out
}

/// Unknown fields (number 9999) of each wire type.
const UNKNOWN: &[&[u8]] = &[
    b"\xf8\xe1\x04\x96\x01",
    b"\xfd\xe1\x04\x01\x02\x03\x04",
    b"\xf9\xe1\x04\x01\x02\x03\x04\x05\x06\x07\x08",
    b"\xfa\xe1\x04\x03abc",
];

/// `bytes` with its top-level fields shuffled and unknown fields mixed in,
/// as `order` says.
fn reorder(bytes: &[u8], order: &[u8]) -> Vec<u8> {
    let mut parts = records(bytes);
    for (i, &o) in order.iter().enumerate() {
        match o % 4 {
            0 if !parts.is_empty() => {
                let (a, b) = (i % parts.len(), usize::from(o) % parts.len());
                parts.swap(a, b);
            }
            1 => {
                let at = usize::from(o) % (parts.len() + 1);
                parts.insert(at, UNKNOWN[i % UNKNOWN.len()]);
            }
            _ => {}
        }
    }
    parts.concat()
}

/// `bytes` of type `desc` with the implicit-presence scalars it leaves
/// out given explicitly as their defaults (`-0.0` for some floats), which
/// encoders may do and the JSON must still leave out.
fn with_defaults(desc: &MessageDescriptor, bytes: &[u8], order: &[u8]) -> Vec<u8> {
    let present: Vec<u32> = records(bytes)
        .iter()
        .map(|record| wire::key(record, &mut 0).expect("encoded key").0)
        .collect();
    let mut out = bytes.to_vec();
    for (i, field) in desc.fields().enumerate() {
        let implicit = !field.supports_presence() && !field.is_list() && !field.is_map();
        if !implicit || present.contains(&field.number()) {
            continue;
        }
        let negative = (i + order.len()) % 2 == 1;
        let (wire, value): (u8, Vec<u8>) = match field.kind() {
            Kind::Float if negative => (wire::I32, (-0.0f32).to_le_bytes().to_vec()),
            Kind::Double if negative => (wire::I64, (-0.0f64).to_le_bytes().to_vec()),
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => (wire::I32, vec![0; 4]),
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => (wire::I64, vec![0; 8]),
            Kind::String | Kind::Bytes => (wire::LEN, vec![0]),
            Kind::Message(_) => continue,
            _ => (wire::VARINT, vec![0]),
        };
        let key = u64::from(field.number()) << 3 | u64::from(wire);
        prost::encoding::encode_varint(key, &mut out);
        out.extend_from_slice(&value);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn direct_writer_matches_reflective_path(
        root in 0..ROOTS.len(),
        entropy in proptest::collection::vec(any::<u8>(), 0..1500),
        order in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let (name, response_body) = ROOTS[root];
        let desc = descriptor(name);
        let plan = plan(name, response_body);
        let generated = message(&desc, &mut Entropy { bytes: &entropy, at: 0 }, 0);
        let canonical = generated.encode_to_vec();
        let unordered = unordered(&generated);
        let variants = [
            canonical.clone(),
            reorder(&canonical, &order),
            with_defaults(&desc, &canonical, &order),
        ];
        for bytes in variants {
            let outcome = compare_all(&plan, &bytes, unordered);
            // Written at all, it is written directly: generated messages
            // have the shape the writer follows.
            if let Outcome::Written { direct } = outcome {
                prop_assert!(direct, "{name} {response_body:?}: not written directly: {bytes:02x?}");
            }
        }
    }
}
