//! Hand-written wire bytes: what the writer follows, what it leaves to the
//! reflective path, and what both refuse.

use bytes::Bytes;

use super::{Outcome, codecs, compare_all, plan};
use crate::transcode::Codec;

/// Which path writes a case, or that it fails.
#[derive(Debug, Clone, Copy)]
enum Want {
    Direct,
    Reflective,
    Fails,
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn key(number: u32, wire: u8) -> Vec<u8> {
    varint(u64::from(number) << 3 | u64::from(wire))
}

/// A varint field.
fn int(number: u32, v: u64) -> Vec<u8> {
    [key(number, 0), varint(v)].concat()
}

/// A length-delimited field.
fn len(number: u32, payload: &[u8]) -> Vec<u8> {
    [
        key(number, 2),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}

/// An 8-byte field.
fn fixed64(number: u32, v: [u8; 8]) -> Vec<u8> {
    [key(number, 1), v.to_vec()].concat()
}

/// `levels` `Node`s each in the `child` of the one above.
fn chain(levels: usize) -> Vec<u8> {
    (0..levels).fold(Vec::new(), |inner, _| len(2, &inner))
}

/// `levels` `Any`s each packing the next, in `Known.any`.
fn anys(levels: usize) -> Vec<u8> {
    let url = b"type.googleapis.com/google.protobuf.Any";
    let any = (0..levels).fold(Vec::new(), |inner, _| {
        [len(1, url), len(2, &inner)].concat()
    });
    len(17, &any)
}

fn check(name: &str, root: &str, response_body: &str, bytes: &[u8], want: Want) {
    let plan = plan(root, response_body);
    // The reflective path writes maps of several entries in hash order.
    let outcome = compare_all(&plan, bytes, root == "Maps");
    let ok = matches!(
        (want, &outcome),
        (Want::Direct, Outcome::Written { direct: true })
            | (Want::Reflective, Outcome::Written { direct: false })
            | (Want::Fails, Outcome::Failed)
    );
    assert!(ok, "{name}: wanted {want:?}, got {outcome:?}");
}

#[test]
fn shapes_the_writer_follows() {
    use Want::Direct;
    let cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        ("empty", "Everything", "", vec![]),
        (
            "fields out of number order",
            "Scalars",
            "",
            [int(3, 5), len(1, b"a"), int(16, 2)].concat(),
        ),
        (
            "list values apart",
            "Lists",
            "",
            [len(14, b"a"), int(18, 1), len(14, b"b"), int(18, 2)].concat(),
        ),
        (
            "packed and unpacked runs of one list",
            "Lists",
            "",
            [len(3, &[1, 2]), int(3, 3), len(3, &[4])].concat(),
        ),
        ("empty packed run", "Lists", "", len(3, &[])),
        (
            "packed run of an unpacked field",
            "Lists",
            "",
            len(18, &[7, 8]),
        ),
        (
            "unknown fields of every wire type",
            "Scalars",
            "",
            [
                int(9999, 1),
                len(9998, b"xyz"),
                fixed64(9997, [1; 8]),
                [key(9996, 5), vec![1, 2, 3, 4]].concat(),
                int(3, 1),
            ]
            .concat(),
        ),
        (
            "defaults on the wire",
            "Scalars",
            "",
            [
                int(3, 0),
                fixed64(15, (-0.0f64).to_le_bytes()),
                len(1, b""),
                int(16, 0),
                int(18, 0),
                int(13, 0),
            ]
            .concat(),
        ),
        (
            "int32 varint truncated to zero",
            "Scalars",
            "",
            int(3, 1 << 32),
        ),
        ("negative int32", "Scalars", "", int(3, u64::MAX)),
        ("bool from varint 2", "Scalars", "", int(13, 2)),
        (
            "special doubles",
            "Lists",
            "",
            len(
                1,
                &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-320]
                    .iter()
                    .flat_map(|f| f.to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "null value and aliases",
            "Scalars",
            "",
            [int(18, 3), int(17, 1)].concat(),
        ),
        (
            "unknown and negative enum numbers",
            "Lists",
            "",
            [int(20, 99), int(20, u64::MAX - 2), int(20, 1)].concat(),
        ),
        (
            "presence keeps defaults",
            "Optionals",
            "",
            [
                fixed64(1, (-0.0f64).to_le_bytes()),
                int(3, 0),
                len(14, b""),
                int(16, 0),
                int(17, 0),
            ]
            .concat(),
        ),
        (
            "oneof member holding its default",
            "Choice",
            "",
            [int(2, 0), fixed64(7, [0; 8])].concat(),
        ),
        (
            "far field numbers",
            "Sparse",
            "",
            [int(536_870_911, 1), int(100_000, 7), len(1, b"x")].concat(),
        ),
        (
            "map entry without key or value",
            "Maps",
            "",
            [len(2, &[]), len(13, &[]), len(3, &int(1, 5))].concat(),
        ),
        (
            "map entry with an unknown field, value first",
            "Maps",
            "",
            len(1, &[len(2, b"v"), int(3, 1), len(1, b"k")].concat()),
        ),
        (
            "map with many keys",
            "Maps",
            "",
            (0..20u64).flat_map(|k| len(2, &int(1, k))).collect(),
        ),
        (
            "map value absent for a well-known type",
            "Maps",
            "",
            len(14, &len(1, b"k")),
        ),
        ("100 levels of nesting", "Node", "", chain(100)),
        (
            "group inside a nested message",
            "Holder",
            "",
            len(1, &[0x23, 0x28, 0x05, 0x24]),
        ),
        (
            "well-known types",
            "Known",
            "",
            [
                len(1, &[int(1, 1_700_000_000), int(2, 5)].concat()),
                len(8, &fixed64(1, f64::NAN.to_le_bytes())),
                len(9, &[0x0d, 0, 0, 0x80, 0x7f]),
                len(7, &int(5, 1)),
            ]
            .concat(),
        ),
        ("response_body unset", "Everything", "node", len(9, b"x")),
        (
            "response_body set",
            "Everything",
            "node",
            [len(5, &len(1, b"n")), len(9, b"x")].concat(),
        ),
        (
            // Decoded but never written by the reflective path either.
            "response_body beside a timestamp out of range",
            "Everything",
            "node",
            [
                len(7, &len(1, &int(1, 300_000_000_000))),
                len(5, &len(1, b"n")),
            ]
            .concat(),
        ),
        (
            "response_body of a well-known type",
            "Everything",
            "known",
            len(7, &len(1, &int(1, 5))),
        ),
    ];
    for (name, root, body, bytes) in cases {
        check(name, root, body, &bytes, Direct);
    }
}

#[test]
fn shapes_left_to_the_reflective_path() {
    use Want::Reflective;
    let cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "scalar given twice",
            "Scalars",
            "",
            [int(3, 1), int(3, 2)].concat(),
        ),
        (
            "message given twice (merged)",
            "Node",
            "",
            [len(2, &len(1, b"a")), len(2, &len(4, &int(3, 1)))].concat(),
        ),
        (
            "two members of a oneof",
            "Choice",
            "",
            [len(1, b"x"), int(2, 5)].concat(),
        ),
        (
            "oneof cleared by a later member under response_body",
            "Choice",
            "node",
            [len(3, &len(1, b"n")), int(2, 5)].concat(),
        ),
        (
            "map key repeated across entries",
            "Maps",
            "",
            [len(1, &len(1, b"k")), len(1, &len(1, b"k"))].concat(),
        ),
        (
            "map key repeated among many",
            "Maps",
            "",
            (0..20u64).flat_map(|k| len(2, &int(1, k % 19))).collect(),
        ),
        (
            "map key given twice in an entry",
            "Maps",
            "",
            len(1, &[len(1, b"a"), len(1, b"b")].concat()),
        ),
        (
            "unknown group",
            "Scalars",
            "",
            [key(9999, 3), key(9999, 4)].concat(),
        ),
        ("extension", "Holder", "", len(4, &len(150, b"hi"))),
        (
            "group at the top",
            "Legacy",
            "",
            [0x23, 0x28, 0x05, 0x24].to_vec(),
        ),
        (
            "well-known type at the top",
            "google.protobuf.Empty",
            "",
            int(1, 1),
        ),
        ("scalar response_body", "Scalars", "i32", int(3, 1)),
        // A field of another wire type than declared is an unknown field
        // (left out), as the protobuf runtimes read it.
        ("wrong wire type", "Scalars", "", len(3, &[0])),
        ("group where a scalar is", "Scalars", "", vec![0x1b, 0x1c]),
        (
            "map key of the wrong wire type",
            "Maps",
            "",
            len(2, &len(1, b"x")),
        ),
        (
            "map value of the wrong wire type",
            "Maps",
            "",
            len(13, &int(2, 1)),
        ),
    ];
    for (name, root, body, bytes) in cases {
        check(name, root, body, &bytes, Reflective);
    }
}

#[test]
fn malformed_bytes_fail_alike() {
    use Want::Fails;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("truncated varint", "Scalars", vec![0x18, 0x80]),
        (
            "eleven-byte varint",
            "Scalars",
            [vec![0x18], vec![0xff; 10], vec![1]].concat(),
        ),
        (
            "tenth varint byte too big",
            "Scalars",
            [vec![0x18], vec![0xff; 9], vec![2]].concat(),
        ),
        ("length past the end", "Scalars", vec![0x0a, 0x05, 0x61]),
        (
            "huge length",
            "Scalars",
            [vec![0x0a], vec![0xff; 9], vec![1]].concat(),
        ),
        ("field number zero", "Scalars", vec![0x00, 0x01]),
        ("wire type 6", "Scalars", vec![0x1e, 0x01]),
        ("wire type 7", "Scalars", vec![0x1f, 0x01]),
        (
            "key beyond 32 bits",
            "Scalars",
            [vec![0x80; 5], vec![0x01]].concat(),
        ),
        ("lone end group", "Scalars", vec![0x1c]),
        ("packed fixed32 cut short", "Lists", len(9, &[1, 2, 3])),
        ("packed varint cut short", "Lists", len(3, &[0x80])),
        ("fixed64 cut short", "Scalars", vec![0x79, 1, 2]),
        ("invalid UTF-8", "Scalars", len(1, &[0xff])),
        ("invalid UTF-8 in a list", "Lists", len(14, &[0xc3])),
        (
            "invalid UTF-8 in a map key",
            "Maps",
            len(1, &len(1, &[0xed, 0xa0, 0x80])),
        ),
        (
            "invalid UTF-8 in a map value",
            "Maps",
            len(1, &len(2, &[0xff])),
        ),
        ("invalid UTF-8 deep", "Node", chain_with_name(30, &[0xfe])),
        (
            "nested length past its parent",
            "Node",
            len(2, &[0x0a, 0x05, b'a']),
        ),
        ("101 levels of nesting", "Node", chain(101)),
        ("150 levels of nesting", "Node", chain(150)),
        ("Any in Any past the limit", "Known", anys(120)),
        (
            "timestamp out of range",
            "Known",
            len(1, &int(1, 300_000_000_000)),
        ),
        (
            "duration of mixed signs",
            "Known",
            len(2, &[int(1, 5), int(2, -5i64 as u64)].concat()),
        ),
        (
            "duration of mixed signs, the other way",
            "Known",
            len(2, &[int(1, -1i64 as u64), int(2, 999_999_999)].concat()),
        ),
        (
            "timestamp nanos past a second",
            "Known",
            len(1, &int(2, 2_000_000_000)),
        ),
        (
            "timestamp nanos below zero",
            "Known",
            len(1, &int(2, -1i64 as u64)),
        ),
        (
            "duration of mixed signs in an Any",
            "Known",
            len(
                17,
                &[
                    len(1, b"type.googleapis.com/google.protobuf.Duration"),
                    len(2, &[int(1, 5), int(2, -5i64 as u64)].concat()),
                ]
                .concat(),
            ),
        ),
        (
            "NaN in a Value",
            "Known",
            len(4, &fixed64(2, f64::NAN.to_le_bytes())),
        ),
        (
            "Any of an unknown type",
            "Known",
            len(17, &len(1, b"type.googleapis.com/nope.Nope")),
        ),
    ];
    for (name, root, bytes) in cases {
        check(name, root, "", &bytes, Fails);
    }
    // Decoding covers the fields response_body leaves out.
    let beside = [len(5, &len(1, b"n")), len(9, &[0xff])].concat();
    check(
        "invalid UTF-8 beside response_body",
        "Everything",
        "node",
        &beside,
        Fails,
    );
    check(
        "nesting past the limit beside response_body",
        "Node",
        "child",
        &[len(3, &chain(101)), len(2, &[])].concat(),
        Fails,
    );
}

/// [`chain`] with a `name` in the innermost node.
fn chain_with_name(levels: usize, name: &[u8]) -> Vec<u8> {
    (0..levels).fold(len(1, name), |inner, _| len(2, &inner))
}

/// The output itself, for a few cases where it is easy to read.
#[test]
fn writes_what_proto3_json_says() {
    let write = |root: &str, body: &str, bytes: Vec<u8>, codec: &Codec| {
        let out = plan(root, body).encode(Bytes::from(bytes), codec).unwrap();
        String::from_utf8(out.body.to_vec()).unwrap()
    };
    let [plain, proto, emit, .., ints, _, _, _] = &codecs()[..] else {
        unreachable!("eight codecs");
    };
    let bytes = [
        int(3, 5),
        len(1, b"a\"\n"),
        int(16, 2),
        int(4, 7),
        len(19, b"c"),
    ]
    .concat();
    assert_eq!(
        write("Scalars", "", bytes.clone(), plain),
        r#"{"text":"a\"\n","i32":5,"i64":"7","mood":"SAD","customName":"c"}"#
    );
    assert_eq!(
        write("Scalars", "", bytes.clone(), proto),
        r#"{"text":"a\"\n","i32":5,"i64":"7","mood":"SAD","custom":"c"}"#
    );
    assert_eq!(
        write("Scalars", "", bytes, ints),
        r#"{"text":"a\"\n","i32":5,"i64":"7","mood":2,"customName":"c"}"#
    );
    assert_eq!(
        write("Lists", "", len(3, &[]), emit),
        r#"{"d":[],"f":[],"i32":[],"i64":[],"u32":[],"u64":[],"s32":[],"s64":[],"fx32":[],"fx64":[],"sfx32":[],"sfx64":[],"flag":[],"text":[],"data":[],"mood":[],"nodes":[],"looseI32":[],"looseD":[],"looseMood":[],"looseS64":[],"nothing":[],"times":[]}"#
    );
    assert_eq!(write("Everything", "node", len(9, b"x"), plain), "null");
    assert_eq!(
        write("Maps", "", len(2, &[]), plain),
        r#"{"byI32":{"0":"MOOD_UNSPECIFIED"}}"#
    );
}

/// Strings go out as serde_json writes them: every ASCII byte (plain,
/// escaped, `"`, `\`, DEL), longer UTF-8, as values and as map keys; and
/// bytes that are not UTF-8 fail as the reflective path fails them.
#[test]
fn strings_of_every_byte() {
    let mut texts: Vec<Vec<u8>> = (0..0x80u8).map(|b| vec![b, b'x', b]).collect();
    texts.extend(
        [
            "plain text",
            "tab\there",
            "é",
            "\u{2028}\u{1f600}",
            "a\"b\\c/d",
        ]
        .map(|t| t.into()),
    );
    for text in &texts {
        let name = String::from_utf8_lossy(text);
        check(&name, "Scalars", "", &len(1, text), Want::Direct);
        let entry = [len(1, text), len(2, text)].concat();
        check(&name, "Maps", "", &len(1, &entry), Want::Direct);
    }
    for bad in [&b"a\xffb"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"ok\x80"] {
        check("not UTF-8", "Scalars", "", &len(1, bad), Want::Fails);
        let entry = [len(1, bad), len(2, b"v")].concat();
        check("key not UTF-8", "Maps", "", &len(1, &entry), Want::Fails);
    }
}
