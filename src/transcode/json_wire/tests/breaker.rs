//! Adversarial bodies from an outside tester: both paths must agree on
//! every one (same message or same error), and a few values the gateway
//! itself writes must be accepted back.

use super::{Outcome, Route, compare, compare_all};
use crate::transcode::Codec;

/// Every map key type with odd spellings, bytes in every base64 form,
/// floats by name, nulls in lists and maps, repeated names.
#[test]
fn tricky_bodies_agree() {
    let routes = [
        ("Scalars", "/t", "*"),
        ("Optionals", "/t", "*"),
        ("Lists", "/t", "*"),
        ("Maps", "/t", "*"),
        ("Node", "/t", "*"),
        ("Choice", "/t", "*"),
        ("Everything", "/t", "node"),
        ("Lists", "/t", "i32"),
        ("Maps", "/t", "by_i32"),
    ];
    let bodies = [
        r#"{"d": "1e-400", "f": "-1e-50", "i32": "-0", "u32": "+0", "u64": "-0"}"#,
        r#"{"d": "+Infinity"}"#,
        r#"{"d": "Infinity ", "f": "NaN"}"#,
        r#"{"f": 3.4028234663852886e38, "d": -1.7976931348623157e308}"#,
        r#"{"i64": "9223372036854775807", "s64": "-9223372036854775808", "fx64": "18446744073709551615"}"#,
        r#"{"i64": 9223372036854775807, "u64": 18446744073709551615, "sfx64": -9223372036854775808}"#,
        r#"{"i32": 2147483647.0, "u32": 4294967295.0, "s32": -2147483648.0}"#,
        r#"{"i32": 2147483647.5}"#,
        r#"{"i32": 1e9, "u32": 4.294967295e9, "i64": 9.007199254740991e15}"#,
        r#"{"data": "AQ=", "text": "\u0000"}"#,
        r#"{"data": "A Q=="}"#,
        r#"{"data": "AQ==AQ=="}"#,
        r#"{"data": "_-_-"}"#,
        r#"{"data": "+/-_"}"#,
        r#"{"mood": 2147483647, "aliased": -2147483648}"#,
        r#"{"mood": 2147483648}"#,
        r#"{"mood": "happy"}"#,
        r#"{"mood": ""}"#,
        r#"{"flag": 1}"#,
        r#"{"flag": null, "text": null, "data": null, "d": null}"#,
        r#"{"text": "\ud83d\ude00", "custom": "\u00e9"}"#,
        r#"{"custom": "a", "customName": "b"}"#,
        r#"{"i32": [1, 2, 3], "mood": ["SAD", null]}"#,
        r#"{"nodes": [{"name": "a", "name": "b"}]}"#,
        r#"{"nodes": [{"child": {"child": {"named": {"": {}}}}}]}"#,
        r#"{"byName": {"": "", "\u0000": "x"}, "byFlag": {"false": {}}}"#,
        r#"{"byI32": {"2147483647": 1, "-2147483648": "SAD"}}"#,
        r#"{"byI32": {"2147483648": 1}}"#,
        r#"{"byU32": {"-1": 1.5}}"#,
        r#"{"byU32": {"4294967295": "NaN"}, "byU64": {"0": "-Infinity"}}"#,
        r#"{"byU64": {"1": 3.5e38}}"#,
        r#"{"byS32": {"-0": 1}}"#,
        r#"{"byS32": {"00": 1}}"#,
        r#"{"byS32": {" 1": 1}}"#,
        r#"{"byS32": {"1.0": 1}}"#,
        r#"{"byS32": {"1e0": 1}}"#,
        r#"{"byFx32": {"true": true}}"#,
        r#"{"byFlag": {"TRUE": {}}}"#,
        r#"{"byFlag": {"1": {}}}"#,
        r#"{"bySfx64": {"9223372036854775807": "x"}, "bySfx32": {"1": "18446744073709551615"}}"#,
        r#"{"byFx64": {"1": -2147483648}, "byS64": {"1": -1}}"#,
        r#"{"byI64": {"1": "AQ", "2": "", "3": "-_"}}"#,
        r#"{"a": "x", "node": null, "mood": null, "when": null}"#,
        r#"{"b": 0, "x": "", "y": 0}"#,
        r#"{"node": {}, "node": {}}"#,
        r#"{"scalars": {"text": "a"}, "scalars": {"i32": 1}}"#,
        r#"{"child": {"child": {"child": {"child": null}}}}"#,
        r#"{"named": {"a": null}}"#,
        r#"{"children": [null]}"#,
        r#"{"children": [[]]}"#,
        r#"{"children": {}}"#,
        r#"[1, 2, null]"#,
        r#"["1", "-0", 1.0, -0]"#,
        r#"{"1": "SAD", "-1": 2, "+2": 0}"#,
        r#"{"name": "n", "child": {"name": "c"}}"#,
        "\u{feff}{}",
        "{} ",
        " \n\t{}\r\n",
        "{}\u{0c}",
        "{}{}",
        "{},",
        "null",
        "nul",
        "[]",
        "{",
        r#"{"text": "\ud800"}"#,
        r#"{"text": "\udc00"}"#,
        r#"{"text": "\ud800\u0041"}"#,
    ];
    for (message, template, body) in routes {
        let route = Route::new(message, template, body);
        for json in bodies {
            compare_all(&route, template, json.as_bytes());
        }
    }
}

/// Path variables into oneofs and into fields the body sets, nested.
#[test]
fn path_variables_against_bodies() {
    let cases = [
        ("Choice", "/t/{a}/{b}", "*", "/t/x/1"),
        ("Choice", "/t/{node.name}/{a}", "*", "/t/x/y"),
        ("Choice", "/t/{y}", "x", "/t/1.5"),
        ("Choice", "/t/{a}", "node", "/t/v"),
        ("Node", "/t/{child.child.name}", "child", "/t/deep"),
        ("Node", "/t/{name}", "name", "/t/path"),
        ("Node", "/t/{scalars.mood}/{scalars.d}", "*", "/t/SAD/NaN"),
        ("Node", "/t/{scalars.data}", "*", "/t/-_8"),
        ("Everything", "/t/{node.scalars.f}", "node", "/t/Infinity"),
    ];
    let bodies = [
        "",
        "null",
        "{}",
        r#"{"a": "b"}"#,
        r#"{"b": 7}"#,
        r#"{"node": {"name": "q"}}"#,
        r#"{"child": {"name": "q", "child": {"name": "r"}}}"#,
        r#"{"name": "q"}"#,
        r#""AQ==""#,
        r#""q""#,
        r#"{"scalars": {"mood": "HAPPY", "d": 1.5, "data": "AQ=="}}"#,
        r#"{"x": "AQ==", "y": 2}"#,
    ];
    for (message, template, body, uri) in cases {
        let route = Route::new(message, template, body);
        for json in bodies {
            compare_all(&route, uri, json.as_bytes());
        }
    }
}

/// The gateway writes a float field holding `f32::MAX` as
/// `3.4028235e+38` (the shortest spelling that reads back as it); a client
/// sending that value back gets 400 "out of range", as a number and as a
/// string. Both paths refuse it: the strict adapter and prost-reflect
/// compare the decimal (read as an f64, 3.4028235e38 > f32::MAX) with
/// f32::MAX instead of the value it rounds to as an f32.
#[test]
fn float_max_as_the_gateway_writes_it_is_accepted_back() {
    let route = Route::new("Scalars", "/t", "*");
    for body in [
        r#"{"f": 3.4028235e38}"#,
        r#"{"f": "3.4028235e38"}"#,
        r#"{"f": -3.4028235e+38}"#,
    ] {
        let outcome = compare(&route, "/t", body.as_bytes(), &Codec::default());
        assert_ne!(outcome, Outcome::Failed, "{body} is refused");
    }
}

/// Random byte edits (JSON punctuation, digits, escapes, signs) of valid
/// bodies, for a fixed time: both paths must still agree.
/// `cargo test --lib byte_mutations -- --ignored`
#[test]
#[ignore = "a time-boxed fuzz loop"]
fn byte_mutations_agree() {
    let seconds: u64 = std::env::var("BREAKER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let corpus: &[(&str, &str)] = &[
        (
            "Scalars",
            r#"{"d":1.5,"f":"NaN","i32":-7,"i64":"9007199254740993","u32":4294967295,"u64":"18446744073709551615","s32":-1,"s64":"-5","fx32":1,"fx64":"2","sfx32":-3,"sfx64":"-4","flag":true,"text":"a\u00e9","data":"AQID","mood":"SAD","aliased":1,"customName":"c"}"#,
        ),
        (
            "Lists",
            r#"{"d":[1.5,-0.0,"Infinity"],"i32":[1,-2,"3"],"u64":["18446744073709551615",0],"mood":["HAPPY",2,-3],"nodes":[{"name":"a"},{}],"text":["","b"],"data":["AQ==","-_8"],"looseI32":[0,1],"flag":[true,false]}"#,
        ),
        (
            "Maps",
            r#"{"byName":{"a":"x","b":""},"byI32":{"-1":"HAPPY","0":0},"byU64":{"5":1.5},"byFlag":{"true":{"name":"n"}},"byS64":{"1":"18446744073709551615"},"nodes":{"x":{"named":{"y":{}}}},"byFx64":{"7":-7},"bySfx64":{"-9":"s"}}"#,
        ),
        (
            "Node",
            r#"{"name":"n","child":{"name":"c","child":{"scalars":{"i32":1}}},"children":[{"name":"a"},{"named":{"k":{"name":"v"}}}],"scalars":{"text":"t","mood":1}}"#,
        ),
        ("Choice", r#"{"a":"x","x":"AQ==","plain":3}"#),
        ("Choice", r#"{"node":{"name":"q"},"y":-0.0,"plain":-1}"#),
    ];
    const PIECES: &[&str] = &[
        "{", "}", "[", "]", ",", ":", "\"", "\\", "-", "+", ".", "e", "E", "0", "1", "9", " ",
        "null", "true", "\\u0000", "\\ud800", "\\u0041", "1e400", "-0", "00", "NaN", "\"\"", "{}",
        "[]", "é",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let routes: Vec<(Route, &str)> = corpus
        .iter()
        .map(|(m, body)| (Route::new(m, "/t", "*"), *body))
        .collect();
    let codecs = super::codecs();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let (mut runs, mut ok) = (0u64, 0u64);
    while std::time::Instant::now() < deadline {
        let (route, body) = &routes[next(routes.len())];
        let mut text = body.to_string();
        for _ in 0..1 + next(3) {
            let len = text.len();
            let mut at = next(len + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => text.insert_str(at, PIECES[next(PIECES.len())]),
                1 => {
                    let mut end = (at + 1 + next(4)).min(len);
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 1).min(len);
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, PIECES[next(PIECES.len())]);
                }
            }
        }
        let codec = &codecs[next(codecs.len())];
        if compare(route, "/t", text.as_bytes(), codec) != Outcome::Failed {
            ok += 1;
        }
        runs += 1;
    }
    println!("{runs} mutated bodies, {ok} accepted");
}
