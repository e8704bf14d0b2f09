//! The encoder against prost-reflect's own encoding: random messages of the
//! test descriptors, then the extreme shapes (deep, wide, wrong types).

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value};

use super::*;
use crate::transcode::request::MAX_MESSAGE_DEPTH;

use crate::transcode::test_protos::pool;

fn desc(name: &str) -> MessageDescriptor {
    pool().get_message_by_name(name).unwrap()
}

/// The fast path is taken and writes what prost-reflect writes.
fn assert_same(message: &DynamicMessage) -> Result<(), TestCaseError> {
    let expected = message.encode_to_vec();
    match encode_planned(message) {
        Ok(bytes) => prop_assert_eq!(bytes, expected),
        Err(stop) => prop_assert!(false, "the encoder stopped: {stop:?}"),
    }
    Ok(())
}

/// Zero (the default of fields without presence) about a third of the time.
fn or_zero<T: Arbitrary + Clone + 'static>(zero: T) -> BoxedStrategy<T> {
    prop_oneof![1 => Just(zero), 2 => any::<T>()].boxed()
}

/// A value of `kind`, nesting messages at most `depth` levels.
fn single(kind: &Kind, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        Kind::Double => or_zero(0.0).prop_map(Value::F64).boxed(),
        Kind::Float => or_zero(0.0).prop_map(Value::F32).boxed(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => or_zero(0).prop_map(Value::I32).boxed(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => or_zero(0).prop_map(Value::I64).boxed(),
        Kind::Uint32 | Kind::Fixed32 => or_zero(0).prop_map(Value::U32).boxed(),
        Kind::Uint64 | Kind::Fixed64 => or_zero(0).prop_map(Value::U64).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::String => prop_oneof![Just(String::new()), "\\PC{0,8}"]
            .prop_map(Value::String)
            .boxed(),
        Kind::Bytes => vec(any::<u8>(), 0..6)
            .prop_map(|b| Value::Bytes(Bytes::from(b)))
            .boxed(),
        Kind::Enum(e) => {
            let declared: Vec<i32> = e.values().map(|v| v.number()).collect();
            // Open enums take numbers no value declares.
            prop_oneof![proptest::sample::select(declared), any::<i32>()]
                .prop_map(Value::EnumNumber)
                .boxed()
        }
        Kind::Message(m) if depth == 0 => {
            Just(Value::Message(DynamicMessage::new(m.clone()))).boxed()
        }
        Kind::Message(m) => message(m.clone(), depth - 1)
            .prop_map(Value::Message)
            .boxed(),
    }
}

fn map_key(kind: &Kind) -> BoxedStrategy<MapKey> {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => or_zero(0).prop_map(MapKey::I32).boxed(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => or_zero(0).prop_map(MapKey::I64).boxed(),
        Kind::Uint32 | Kind::Fixed32 => or_zero(0).prop_map(MapKey::U32).boxed(),
        Kind::Uint64 | Kind::Fixed64 => or_zero(0).prop_map(MapKey::U64).boxed(),
        Kind::Bool => any::<bool>().prop_map(MapKey::Bool).boxed(),
        _ => prop_oneof![Just(String::new()), "[a-z]{0,4}"]
            .prop_map(MapKey::String)
            .boxed(),
    }
}

/// A value for a field that is repeated (`list`), a map, or singular.
fn field_value(kind: &Kind, list: bool, map: bool, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        Kind::Message(entry) if map => {
            let key = map_key(&entry.map_entry_key_field().kind());
            let value = single(&entry.map_entry_value_field().kind(), depth);
            vec((key, value), 0..4)
                .prop_map(|pairs| Value::Map(pairs.into_iter().collect()))
                .boxed()
        }
        _ if list => vec(single(kind, depth), 0..4).prop_map(Value::List).boxed(),
        _ => single(kind, depth),
    }
}

/// An unknown field as it arrives on the wire.
#[derive(Debug, Clone)]
enum Raw {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Delimited(Vec<u8>),
    Group(Vec<(u32, u64)>),
}

fn raw() -> impl Strategy<Value = Raw> {
    prop_oneof![
        any::<u64>().prop_map(Raw::Varint),
        any::<u32>().prop_map(Raw::Fixed32),
        any::<u64>().prop_map(Raw::Fixed64),
        vec(any::<u8>(), 0..6).prop_map(Raw::Delimited),
        vec((1..5u32, any::<u64>()), 0..3).prop_map(Raw::Group),
    ]
}

fn put_raw(number: u32, raw: &Raw, buf: &mut Vec<u8>) {
    match raw {
        Raw::Varint(v) => {
            encode_key(number, WireType::Varint, buf);
            encode_varint(*v, buf);
        }
        Raw::Fixed32(v) => {
            encode_key(number, WireType::ThirtyTwoBit, buf);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Raw::Fixed64(v) => {
            encode_key(number, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Raw::Delimited(b) => {
            encode_key(number, WireType::LengthDelimited, buf);
            encode_varint(b.len() as u64, buf);
            buf.extend_from_slice(b);
        }
        Raw::Group(fields) => {
            encode_key(number, WireType::StartGroup, buf);
            for (n, v) in fields {
                encode_key(*n, WireType::Varint, buf);
                encode_varint(*v, buf);
            }
            encode_key(number, WireType::EndGroup, buf);
        }
    }
}

/// A generated message. `DynamicMessage`'s own `Debug` recurses through
/// the descriptors of recursive types without end, so a failing case is
/// shown as JSON and as prost-reflect's bytes instead.
#[derive(Clone)]
struct Sample(DynamicMessage);

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(&self.0).unwrap_or_else(|e| e.to_string());
        let bytes: String = self
            .0
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        write!(f, "{} {json} [{bytes}]", self.0.descriptor().full_name())
    }
}

/// A message of type `desc` for a test case.
fn sample(desc: MessageDescriptor, depth: u32) -> impl Strategy<Value = Sample> {
    message(desc, depth).prop_map(Sample)
}

/// A message of type `desc`: each field and extension set or not, plus
/// unknown fields among and after the known numbers.
fn message(desc: MessageDescriptor, depth: u32) -> BoxedStrategy<DynamicMessage> {
    let fields: Vec<_> = desc
        .fields()
        .map(|f| {
            let value = field_value(&f.kind(), f.is_list(), f.is_map(), depth);
            proptest::option::weighted(0.4, value.prop_map(move |v| (f.clone(), v)))
        })
        .collect();
    let extensions: Vec<_> = desc
        .extensions()
        .map(|e| {
            let value = field_value(&e.kind(), e.is_list(), false, depth);
            proptest::option::weighted(0.4, value.prop_map(move |v| (e.clone(), v)))
        })
        .collect();
    let free: Vec<u32> = [17, 18, 20, 999, 2000, 536_870_910]
        .into_iter()
        .filter(|&n| desc.get_field(n).is_none() && desc.get_extension(n).is_none())
        .collect();
    let unknown = vec((proptest::sample::select(free), raw()), 0..3);
    (fields, extensions, unknown)
        .prop_map(move |(fields, extensions, unknown)| {
            let mut message = DynamicMessage::new(desc.clone());
            for (field, value) in fields.into_iter().flatten() {
                message.set_field(&field, value);
            }
            for (extension, value) in extensions.into_iter().flatten() {
                message.set_extension(&extension, value);
            }
            let mut raw_fields = Vec::new();
            for (number, raw) in &unknown {
                put_raw(*number, raw, &mut raw_fields);
            }
            message.merge(raw_fields.as_slice()).unwrap();
            message
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn proto3_messages_encode_as_prost_reflect_does(
        message in sample(desc("encode.v1.Scalars3"), 3)
    ) {
        assert_same(&message.0)?;
    }

    #[test]
    fn proto2_messages_encode_as_prost_reflect_does(
        message in sample(desc("encode.v1.Scalars2"), 3)
    ) {
        assert_same(&message.0)?;
    }

    #[test]
    fn recursive_messages_encode_as_prost_reflect_does(
        message in sample(desc("encode.v1.Node"), 6)
    ) {
        assert_same(&message.0)?;
    }

    #[test]
    fn kitchen_sinks_encode_as_prost_reflect_does(
        message in sample(desc("kitchen.v1.Sink"), 4)
    ) {
        assert_same(&message.0)?;
    }

    #[test]
    fn bench_items_encode_as_prost_reflect_does(
        message in sample(desc("protogate.bench.v1.CreateItemRequest"), 3)
    ) {
        assert_same(&message.0)?;
    }
}

/// A chain of `levels` `Node`s below the returned one, each labelled.
fn chain(levels: usize) -> DynamicMessage {
    let node = desc("encode.v1.Node");
    let mut message = DynamicMessage::new(node.clone());
    message.set_field_by_name("label", Value::String(format!("level {levels}")));
    for level in (0..levels).rev() {
        let mut parent = DynamicMessage::new(node.clone());
        parent.set_field_by_name("label", Value::String(format!("level {level}")));
        parent.set_field_by_name("weight", Value::I64(-(level as i64)));
        parent.set_field_by_name("child", Value::Message(message));
        message = parent;
    }
    message
}

#[test]
fn steps_stay_small() {
    // The plan's memory per field, as the module documentation states it.
    assert!(std::mem::size_of::<Step<'_>>() <= 32);
}

/// `levels` message levels of `Node`s, each under the last through
/// `field`: `child`, `children` (a list) or `named` (a map, whose entries
/// are a level of their own).
fn chain_through(field: &str, levels: usize) -> DynamicMessage {
    let node = desc("encode.v1.Node");
    let mut message = DynamicMessage::new(node.clone());
    let mut level = levels;
    while level > 0 {
        let mut parent = DynamicMessage::new(node.clone());
        parent.set_field_by_name("label", Value::String(format!("level {level}")));
        let value = match field {
            "children" => Value::List(vec![Value::Message(message)]),
            "named" => Value::Map([(MapKey::String("k".into()), Value::Message(message))].into()),
            _ => Value::Message(message),
        };
        parent.set_field_by_name(field, value);
        message = parent;
        level = level.saturating_sub(if field == "named" { 2 } else { 1 });
    }
    message
}

#[test]
fn requests_nested_to_the_limit_take_the_fast_path() {
    for field in ["child", "children", "named"] {
        let message = chain_through(field, MAX_MESSAGE_DEPTH);
        // As deep as the request decoder lets a message be.
        let exceeds = crate::transcode::request::exceeds_message_depth;
        assert!(!exceeds(&message, MAX_MESSAGE_DEPTH), "{field}");
        assert!(exceeds(&message, MAX_MESSAGE_DEPTH - 1), "{field}");
        assert_same(&message).unwrap();
    }
    assert_same(&chain(MAX_DEPTH)).unwrap();
}

#[test]
fn deeper_messages_are_left_to_prost_reflect() {
    let message = chain(MAX_DEPTH + 1);
    assert!(matches!(encode_planned(&message), Err(Stop::Fallback)));
    assert_eq!(encode(&message).unwrap(), message.encode_to_vec());
}

#[test]
fn wide_messages_encode_as_prost_reflect_does() {
    let mut message = DynamicMessage::new(desc("encode.v1.Scalars3"));
    let node = desc("encode.v1.Node");
    let nodes = (0..20_000)
        .map(|i| {
            let mut n = DynamicMessage::new(node.clone());
            n.set_field_by_name("label", Value::String(format!("node {i}")));
            n.set_field_by_name("child", Value::Message(chain(i % 4)));
            Value::Message(n)
        })
        .collect();
    message.set_field_by_name("nodes", Value::List(nodes));
    let ints = (-50_000..50_000).map(Value::I32).collect();
    message.set_field_by_name("r_i32", Value::List(ints));
    let map = (0..5_000)
        .map(|i| (MapKey::I64(i - 2_500), Value::Message(chain(2))))
        .collect();
    message.set_field_by_name("m_i64", Value::Map(map));
    // Past 2^21 bytes: a four-byte length.
    message.set_field_by_name("s", Value::String("x".repeat(3 << 20)));
    let mut wrapper = DynamicMessage::new(node);
    wrapper.set_field_by_name("child", Value::Message(chain(3)));
    message.set_field_by_name("node", Value::Message(wrapper));
    assert_same(&message).unwrap();
}

#[test]
fn shapes_prost_reflect_writes_are_written_the_same() {
    let scalars = desc("encode.v1.Scalars3");
    let field = |name: &str| scalars.get_field_by_name(name).unwrap();
    let mut message = DynamicMessage::new(scalars.clone());
    // A lone value in a list field is written as one element.
    *message.get_field_mut(&field("u_i32")) = Value::I32(-5);
    // Lists in an unpacked list are written element by element; empty ones
    // are left out.
    *message.get_field_mut(&field("nodes")) = Value::List(vec![
        Value::List(vec![Value::Message(chain(1))]),
        Value::List(vec![]),
    ]);
    assert_same(&message).unwrap();
}

#[test]
fn values_of_the_wrong_type_are_errors_not_panics() {
    let scalars = desc("encode.v1.Scalars3");
    let field = |name: &str| scalars.get_field_by_name(name).unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("i32", Value::String("x".into()), "encode.v1.Scalars3.i32"),
        ("s", Value::I64(1), "encode.v1.Scalars3.s"),
        (
            "r_i32",
            Value::List(vec![Value::U32(1)]),
            "encode.v1.Scalars3.r_i32",
        ),
        (
            "r_s",
            Value::List(vec![Value::Bool(true)]),
            "encode.v1.Scalars3.r_s",
        ),
        (
            "m_i32",
            Value::Map([(MapKey::Bool(true), Value::String("v".into()))].into()),
            "encode.v1.Scalars3.m_i32",
        ),
        (
            "m_i32",
            Value::Map([(MapKey::I32(1), Value::I32(2))].into()),
            "encode.v1.Scalars3.m_i32",
        ),
        ("m_s", Value::List(vec![]), "encode.v1.Scalars3.m_s"),
        ("node", Value::List(vec![]), "encode.v1.Scalars3.node"),
        ("e", Value::I32(1), "encode.v1.Scalars3.e"),
    ];
    for (name, value, named) in cases {
        let mut message = DynamicMessage::new(scalars.clone());
        *message.get_field_mut(&field(name)) = value;
        let err = encode(&message).unwrap_err();
        assert_eq!(err.0, named, "{name}");
    }
    // A nested mismatch names the innermost field.
    let mut inner = chain(2);
    if let Some(Value::Message(child)) = inner.get_field_by_name_mut("child") {
        *child.get_field_by_name_mut("weight").unwrap() = Value::Bool(true);
    }
    let mut message = DynamicMessage::new(scalars.clone());
    message.set_field(&field("node"), Value::Message(inner));
    let err = encode(&message).unwrap_err();
    assert_eq!(err.0, "encode.v1.Node.weight");
    // The gateway's own fault.
    let status = crate::GatewayError::from(err).status();
    assert_eq!(
        status,
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal
        )
    );
}

/// Times both encoders on a chain of nodes, each with a few fields:
/// prost-reflect's cost grows with the square of the depth.
/// `cargo test --lib encode::tests::timing -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn timing_deep_chain() {
    let message = chain(MAX_MESSAGE_DEPTH);
    // The best of several alternating rounds: the machine is shared.
    let (mut before, mut after) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(message.encode_to_vec());
        }
        before = before.min(start.elapsed() / 20);
        let start = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(encode(&message).unwrap());
        }
        after = after.min(start.elapsed() / 20);
    }
    println!("chain of {MAX_MESSAGE_DEPTH}: encode_to_vec {before:?}, encode {after:?}");
}

/// `response_body` naming a `float` (or a list of them) writes the values
/// as the whole message would, not widened to doubles.
#[test]
fn response_body_floats_are_not_widened() {
    let scalars = desc("encode.v1.Scalars3");
    let mut message = DynamicMessage::new(scalars.clone());
    message.set_field_by_name("f", Value::F32(0.1));
    message.set_field_by_name("r_f", Value::List(vec![Value::F32(0.1), Value::F32(2.5)]));
    let bytes = Bytes::from(message.encode_to_vec());
    let codec = crate::transcode::Codec::default();
    for (field, expected) in [("f", "0.1"), ("r_f", "[0.1,2.5]")] {
        let plan = crate::transcode::ResponsePlan::new(&scalars, field).unwrap();
        let encoded = plan.encode(bytes.clone(), &codec).unwrap();
        assert_eq!(
            std::str::from_utf8(&encoded.body).unwrap(),
            expected,
            "{field}"
        );
    }
    // A default value is still written, not left out.
    let plan = crate::transcode::ResponsePlan::new(&scalars, "f").unwrap();
    let empty = DynamicMessage::new(scalars).encode_to_vec();
    let encoded = plan.encode(empty.into(), &codec).unwrap();
    assert_eq!(&encoded.body[..], b"0");
}
