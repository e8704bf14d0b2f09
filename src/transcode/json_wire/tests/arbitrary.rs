//! Generated bodies: random messages of the test types written as JSON
//! with random options, then reordered, respelled and broken in random
//! ways, encoded both ways under every codec.

use proptest::prelude::*;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::Value;

use super::{Route, compare_all};
use crate::transcode::wire_json::tests::arbitrary::{Entropy, message};

/// Routes the property runs over: message, template, body, and the path
/// the template matches.
const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("Everything", "/t", "*", "/t"),
    ("Scalars", "/t", "*", "/t"),
    ("Scalars", "/t/{text}/{i64}", "*", "/t/a/-4"),
    ("Optionals", "/t/{i32}", "*", "/t/0"),
    ("Lists", "/t", "*", "/t"),
    ("Maps", "/t", "*", "/t"),
    ("Node", "/t/{scalars.text}/{child.name}", "*", "/t/a/b"),
    ("Choice", "/t", "*", "/t"),
    ("Choice", "/t/{b}", "*", "/t/3"),
    ("Sparse", "/t", "*", "/t"),
    ("Holder", "/t", "*", "/t"),
    ("Everything", "/t", "node", "/t"),
    ("Everything", "/t", "lists", "/t"),
    ("encode.v1.Scalars2", "/t", "*", "/t"),
    ("encode.v1.Scalars3", "/t", "*", "/t"),
    ("kitchen.v1.Sink", "/t", "*", "/t"),
    ("protogate.bench.v1.CreateItemRequest", "/t", "item", "/t"),
    ("etcdserverpb.RangeRequest", "/t", "*", "/t"),
];

/// Values put in place of generated ones: each wrong for some kinds.
const JUNK: &[&str] = &[
    "null",
    "true",
    "\"x\"",
    "\"\"",
    "1.5",
    "-0",
    "1e300",
    "9007199254740993",
    "9007199254740993.0",
    "18446744073709551616",
    "-9223372036854775809",
    "\"NaN\"",
    "\"inf\"",
    "\"3.5e38\"",
    "\"AQ\"",
    "\"-_8\"",
    "\"A+_=\"",
    "\"HAPPY\"",
    "\"NOPE\"",
    "2",
    "[]",
    "{}",
    "[null]",
    "{\"name\": \"n\"}",
    "[[[[[[[[]]]]]]]]",
];

/// Writes `value` as JSON text, changing it as `e` says: object keys
/// reordered, repeated or unknown ones added, numbers given as strings and
/// values replaced by [`JUNK`].
fn write(value: &Value, e: &mut Entropy<'_>, out: &mut String) {
    if e.below(40) == 1 {
        out.push_str(JUNK[e.below(JUNK.len())]);
        return;
    }
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            for i in 0..entries.len() {
                let j = e.below(entries.len());
                if e.below(4) == 1 {
                    entries.swap(i, j);
                }
            }
            out.push('{');
            let mut first = true;
            let mut comma = |out: &mut String| {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
            };
            for (key, v) in &entries {
                comma(out);
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                write(v, e, out);
                match e.below(30) {
                    1 => {
                        // The same key again.
                        comma(out);
                        out.push_str(&serde_json::to_string(key).unwrap_or_default());
                        out.push(':');
                        write(v, e, out);
                    }
                    2 => {
                        comma(out);
                        out.push_str("\"unknownField\":");
                        out.push_str(JUNK[e.below(JUNK.len())]);
                    }
                    3 => {
                        // The other spelling of a proto name.
                        comma(out);
                        out.push_str(&serde_json::to_string(&respell(key)).unwrap_or_default());
                        out.push(':');
                        write(v, e, out);
                    }
                    _ => {}
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, e, out);
            }
            out.push(']');
        }
        Value::Number(n) if e.below(6) == 1 => {
            out.push_str(&serde_json::to_string(&n.to_string()).unwrap_or_default());
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `fooBar` as `foo_bar` and back.
fn respell(key: &str) -> String {
    if key.contains('_') {
        let mut out = String::new();
        let mut upper = false;
        for c in key.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    out.extend(c.to_uppercase());
                    upper = false;
                }
                c => out.push(c),
            }
        }
        out
    } else {
        key.chars()
            .flat_map(|c| {
                let lower = c.to_ascii_lowercase();
                if c.is_ascii_uppercase() {
                    vec!['_', lower]
                } else {
                    vec![c]
                }
            })
            .collect()
    }
}

/// The JSON of `generated` with options from `e`; the value of `field`
/// for a `body: "field"` route.
fn json(generated: &DynamicMessage, field: &str, e: &mut Entropy<'_>) -> Option<Value> {
    let options = SerializeOptions::new()
        .use_proto_field_name(e.below(2) == 1)
        .skip_default_fields(e.below(3) != 1)
        .use_enum_numbers(e.below(3) == 1)
        .stringify_64_bit_integers(e.below(4) != 1);
    let value = generated
        .serialize_with_options(serde_json::value::Serializer, &options)
        .ok()?;
    if field == "*" {
        return Some(value);
    }
    let desc = prost_reflect::ReflectMessage::descriptor(generated);
    let f = desc.get_field_by_name(field)?;
    let Value::Object(mut object) = value else {
        return None;
    };
    Some(
        object
            .remove(f.json_name())
            .or_else(|| object.remove(f.name()))
            .unwrap_or(Value::Null),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn direct_encoder_matches_reflective_path(
        route in 0..ROUTES.len(),
        entropy in proptest::collection::vec(any::<u8>(), 0..1500),
        mutations in proptest::collection::vec(any::<u8>(), 0..200),
        cut in any::<u16>(),
    ) {
        let (name, template, body, uri) = ROUTES[route];
        let route = Route::new(name, template, body);
        let desc = route.plan.input().clone();
        let generated = message(&desc, &mut Entropy::new(&entropy), 0);
        let mut e = Entropy::new(&mutations);
        let Some(value) = json(&generated, body, &mut e) else {
            return Ok(());
        };
        let plain = value.to_string();
        compare_all(&route, uri, plain.as_bytes());
        if !mutations.is_empty() && plain.len() < 20_000 {
            let mut mutated = String::new();
            write(&value, &mut e, &mut mutated);
            compare_all(&route, uri, mutated.as_bytes());
            let at = usize::from(cut) % (mutated.len() + 1);
            if mutated.is_char_boundary(at) {
                compare_all(&route, uri, &mutated.as_bytes()[..at]);
            }
        }
    }
}
