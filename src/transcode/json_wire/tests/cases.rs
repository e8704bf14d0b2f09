//! Hand-written bodies at the edges of what the strict parse accepts.

use super::{Outcome, Route, codecs, compare, compare_all};
use crate::transcode::Codec;

const DIRECT: Outcome = Outcome::Encoded { direct: true };
const REFLECTIVE: Outcome = Outcome::Encoded { direct: false };
const FAILED: Outcome = Outcome::Failed;

/// Asserts the outcome under the default codec, and agreement under all.
fn expect(route: &Route, uri: &str, cases: &[(&str, Outcome)]) {
    for (body, expected) in cases {
        let got = compare(route, uri, body.as_bytes(), &Codec::default());
        assert_eq!(&got, expected, "{uri} {body}");
        compare_all(route, uri, body.as_bytes());
    }
}

/// The body is checked as UTF-8 once, before serde_json reads its
/// strings unchecked: bytes that are not UTF-8 fail, with the reflective
/// path's error, wherever they stand.
#[test]
fn bodies_that_are_not_utf8_fail_as_before() {
    let route = Route::new("Scalars", "/t", "*");
    for body in [
        &b"{\"text\": \"a\xffb\"}"[..],
        b"{\"te\xc3xt\": \"a\"}",
        b"{\"text\": \"\xed\xa0\x80\"}",
        b"\xef\xbb\xbf{\"text\": \"\xc0\xaf\"}",
    ] {
        assert_eq!(compare(&route, "/t", body, &Codec::default()), FAILED);
    }
    let body = "{\"text\": \"\u{e9}\u{1f600}\"}".as_bytes();
    assert_eq!(compare(&route, "/t", body, &Codec::default()), DIRECT);
}

/// Integer text: plain digits, signed or not, take the parser's own read;
/// negative zeros of any length are 0.
#[test]
fn integer_strings_in_every_spelling() {
    let route = Route::new("Scalars", "/t", "*");
    expect(
        &route,
        "/t",
        &[
            (r#"{"u32": "-00", "i32": "-007", "i64": "0042"}"#, DIRECT),
            (r#"{"u64": "-000", "i64": "-9223372036854775808"}"#, DIRECT),
            (r#"{"i32": "-"}"#, FAILED),
            (r#"{"u32": "-1"}"#, FAILED),
            (r#"{"u64": ""}"#, FAILED),
        ],
    );
}

#[test]
fn scalars_take_what_the_strict_parse_takes() {
    let route = Route::new("Scalars", "/t", "*");
    expect(
        &route,
        "/t",
        &[
            ("", DIRECT),
            (" null ", DIRECT),
            ("{}", DIRECT),
            (
                r#"{"text":"a","i64":"5","d":1.5,"f":"NaN","flag":true,"mood":"HAPPY",
                   "aliased":"ALSO_FIRST","customName":"c","data":"AQID"}"#,
                DIRECT,
            ),
            (r#"{"i32": 1.0, "i64": -0, "u32": -0, "sint32": 1}"#, FAILED),
            (r#"{"i32": 1.0, "i64": -0, "u32": -0, "s32": 1e2}"#, DIRECT),
            (r#"{"u64": "18446744073709551615", "i64": "+7"}"#, DIRECT),
            (r#"{"u64": 18446744073709551615, "fx64": 1.8e19}"#, FAILED),
            (r#"{"d": "-Infinity", "f": "Infinity"}"#, DIRECT),
            (r#"{"d": -0.0, "f": -0, "text": "", "mood": 0}"#, DIRECT),
            (r#"{"data": "-_8"}"#, DIRECT),
            (r#"{"data": "AQ"}"#, DIRECT),
            (r#"{"data": "AQ=="}"#, DIRECT),
            (r#"{"data": "A+/="}"#, DIRECT),
            (r#"{"data": "A+_="}"#, FAILED),
            (r#"{"data": "!!"}"#, FAILED),
            (r#"{"mood": 7, "aliased": -3}"#, DIRECT),
            (r#"{"mood": 1.0}"#, FAILED),
            (r#"{"mood": "NOPE"}"#, FAILED),
            (r#"{"text": "\u00e9\n\ud83d\ude00", "custom": "x"}"#, DIRECT),
            (r#"{"d": 1e308, "f": 1e-50}"#, DIRECT),
            (r#"{"d": 1e400}"#, FAILED),
            (r#"{"i32": 1.5}"#, FAILED),
            (r#"{"i32": 2147483648}"#, FAILED),
            (r#"{"u32": -1}"#, FAILED),
            (r#"{"i64": 9007199254740993.0}"#, FAILED),
            (r#"{"i64": 9007199254740993}"#, DIRECT),
            (r#"{"i64": 1e19}"#, FAILED),
            (
                r#"{"i32": "1e3", "i64": "-2.5E1", "u32": "7.0", "u64": "0e0"}"#,
                DIRECT,
            ),
            (r#"{"i32": "1.5"}"#, FAILED),
            (r#"{"i32": "3e9"}"#, FAILED),
            (
                r#"{"i64": "1e16", "u64": "1.8446744073709551615e19"}"#,
                DIRECT,
            ),
            (r#"{"i64": "0.99999999999999999999"}"#, FAILED),
            (r#"{"u32": "-0", "i32": "-0.0"}"#, DIRECT),
            (r#"{"u32": "-1e0"}"#, FAILED),
            (r#"{"mood": "1e0"}"#, FAILED),
            (r#"{"d": "inf"}"#, FAILED),
            (r#"{"d": "1e400"}"#, FAILED),
            (r#"{"f": "3.5e38"}"#, FAILED),
            (r#"{"f": 3.5e38}"#, FAILED),
            (r#"{"flag": "true"}"#, FAILED),
            (r#"{"text": 1}"#, FAILED),
            (r#"{"text": "a", "text": "b"}"#, FAILED),
            // Not alike enough for the strict parse's recheck: the last wins.
            (r#"{"customName": "a", "custom": "b"}"#, REFLECTIVE),
            (r#"{"zzz": 1}"#, FAILED),
            (r#"{"text": "a"} x"#, FAILED),
            (r#"{"text": "a""#, FAILED),
            ("[]", FAILED),
            (r#""x""#, FAILED),
            (r#"{"text": null, "i32": null, "mood": null}"#, DIRECT),
            (r#"{"nothing": null}"#, REFLECTIVE),
        ],
    );
}

#[test]
fn ignored_unknowns_are_left_to_the_reflective_path() {
    let route = Route::new("Scalars", "/t", "*");
    let ignore = &codecs()[1];
    assert!(ignore.ignore_unknown_fields);
    for (body, expected) in [
        (r#"{"zzz": 1, "text": "a"}"#, REFLECTIVE),
        (r#"{"zzz": 1, "zzz": 2}"#, FAILED),
        (r#"{"mood": "NOPE", "text": "a"}"#, DIRECT),
    ] {
        assert_eq!(
            compare(&route, "/t", body.as_bytes(), ignore),
            expected,
            "{body}"
        );
    }
    let maps = Route::new("Maps", "/t", "*");
    let body = br#"{"byI32": {"1": "NOPE", "2": "SAD"}}"#;
    assert_eq!(compare(&maps, "/t", body, ignore), DIRECT);
}

#[test]
fn oneofs_lists_and_maps() {
    let choice = Route::new("Choice", "/t", "*");
    expect(
        &choice,
        "/t",
        &[
            (r#"{"a": "x", "x": "AQ==", "plain": 3}"#, DIRECT),
            (r#"{"a": "x", "b": 1}"#, FAILED),
            (r#"{"a": "", "b": 0}"#, FAILED),
            (r#"{"a": null, "b": 2}"#, DIRECT),
            (r#"{"node": {}, "y": -0.0}"#, DIRECT),
            (r#"{"when": null}"#, REFLECTIVE),
        ],
    );
    let lists = Route::new("Lists", "/t", "*");
    expect(
        &lists,
        "/t",
        &[
            (r#"{"i32": [1, -2, "3"], "looseI32": [0, 0]}"#, DIRECT),
            (
                r#"{"mood": ["HAPPY", 2, -3], "looseMood": ["SAD"]}"#,
                DIRECT,
            ),
            (
                r#"{"nodes": [{}, {"name": "a", "child": {}}], "text": ["", "b"]}"#,
                DIRECT,
            ),
            (r#"{"d": [], "data": ["AQ", ""], "i32": null}"#, DIRECT),
            (r#"{"i32": [null]}"#, FAILED),
            (r#"{"nodes": [null]}"#, FAILED),
            (r#"{"i32": 1}"#, FAILED),
            (r#"{"times": []}"#, REFLECTIVE),
        ],
    );
    let maps = Route::new("Maps", "/t", "*");
    expect(
        &maps,
        "/t",
        &[
            (
                r#"{"byName": {"a": "x", "b": ""}, "byFlag": {"true": {}}}"#,
                DIRECT,
            ),
            (
                r#"{"byI32": {"-1": "HAPPY", "0": 0}, "byU64": {"5": 1.5}}"#,
                DIRECT,
            ),
            (r#"{"nodes": {"x": {"named": {"y": {}}}}}"#, DIRECT),
            (r#"{"byS64": {"1": "18446744073709551615"}}"#, DIRECT),
            (r#"{"byI32": {"1": "HAPPY", "01": "SAD"}}"#, FAILED),
            (r#"{"byI32": {"+1": "HAPPY"}}"#, REFLECTIVE),
            (r#"{"byName": {"a": "x", "a": "y"}}"#, FAILED),
            (
                r#"{"byName": {"aB": "x", "ab": "y", "@type": "z"}}"#,
                REFLECTIVE,
            ),
            (r#"{"byI32": {"x": "HAPPY"}}"#, FAILED),
            (r#"{"byName": {"k": null}}"#, FAILED),
            (r#"{"byFlag": {"True": {}}}"#, FAILED),
            (r#"{"wrapped": {}}"#, REFLECTIVE),
        ],
    );
}

#[test]
fn depth_limits_are_the_reflective_paths() {
    let route = Route::new("Node", "/t", "*");
    let nest = |levels: usize| {
        let mut body = String::new();
        for _ in 0..levels {
            body.push_str(r#"{"child":"#);
        }
        body.push_str("{}");
        body.push_str(&"}".repeat(levels));
        body
    };
    for levels in [2, 3, 4, 60, 99, 100, 101, 120, 126, 127] {
        let outcomes = compare_all(&route, "/t", nest(levels).as_bytes());
        assert_eq!(outcomes[0] == DIRECT, levels < 64, "{levels}: {outcomes:?}");
        let deep = outcomes[3] == DIRECT;
        assert_eq!(deep, levels <= 100, "{levels}: {outcomes:?}");
    }
    let maps = Route::new("Node", "/t", "*");
    let mut body = String::new();
    for _ in 0..50 {
        body.push_str(r#"{"named":{"k":"#);
    }
    body.push_str("{}");
    body.push_str(&"}}".repeat(50));
    compare_all(&maps, "/t", body.as_bytes());
}

#[test]
fn path_variables_merge_as_setting_them_does() {
    let scalars = Route::new("Scalars", "/t/{text}/{i64}/{mood}", "*");
    for (uri, body, expected) in [
        (
            "/t/a/5/SAD",
            r#"{"text": "b", "i64": "7", "mood": "HAPPY"}"#,
            DIRECT,
        ),
        (
            "/t/a/0/MOOD_UNSPECIFIED",
            r#"{"text": "b", "i64": "7", "mood": 1}"#,
            DIRECT,
        ),
        ("/t/%C3%A9/-1/2", "", DIRECT),
        ("/t/a/x/SAD", "{}", FAILED),
        ("/t/a/1/NOPE", "{}", FAILED),
        ("/t/a/1/SAD?d=1", "{}", FAILED),
    ] {
        assert_eq!(
            compare(&scalars, uri, body.as_bytes(), &Codec::default()),
            expected
        );
    }
    let node = Route::new("Node", "/t/{scalars.text}/{child.name}", "*");
    for body in [
        r#"{"scalars": {"i32": 1, "text": "z"}, "child": {"name": "q", "child": {}}}"#,
        r#"{"scalars": null}"#,
        "",
    ] {
        assert_eq!(
            compare(&node, "/t/a/b", body.as_bytes(), &Codec::default()),
            DIRECT
        );
    }
    let choice = Route::new("Choice", "/t/{a}", "*");
    for (body, expected) in [
        ("{}", DIRECT),
        (r#"{"b": 1}"#, FAILED),
        (r#"{"a": "x", "plain": 2}"#, REFLECTIVE),
        (r#"{"b": null, "x": "AQ=="}"#, DIRECT),
    ] {
        assert_eq!(
            compare(&choice, "/t/v", body.as_bytes(), &Codec::default()),
            expected
        );
    }
    let nested = Route::new("Choice", "/t/{node.name}", "*");
    for (body, expected) in [
        // The body set the oneof: left to the reflective path, which checks
        // which member.
        (r#"{"node": {"child": {}}}"#, REFLECTIVE),
        (r#"{"a": "x"}"#, FAILED),
        ("{}", DIRECT),
    ] {
        assert_eq!(
            compare(&nested, "/t/v", body.as_bytes(), &Codec::default()),
            expected
        );
    }
    let known = Route::new("Known", "/t/{i32}/{at}/{ttl}/{name}", "*");
    let uri = "/t/0/2024-01-01T00:00:00Z/0s/x";
    assert_eq!(compare(&known, uri, b"{}", &Codec::default()), DIRECT);
    assert_eq!(
        compare(&known, uri, br#"{"i32": 5}"#, &Codec::default()),
        REFLECTIVE
    );
    let mask = Route::new("Known", "/t/{mask}", "*");
    assert_eq!(
        compare(&mask, "/t/a,b", b"{}", &Codec::default()),
        REFLECTIVE
    );
}

#[test]
fn body_fields_and_the_benchmarks_requests() {
    let node = Route::new("Everything", "/t", "node");
    expect(
        &node,
        "/t",
        &[
            (r#"{"name": "n"}"#, DIRECT),
            ("null", DIRECT),
            ("", DIRECT),
            ("[]", FAILED),
            (r#"{"node": {"name": "n"}}"#, FAILED),
        ],
    );
    let note = Route::new("Everything", "/t", "note");
    expect(&note, "/t", &[(r#""text""#, DIRECT), ("1", FAILED)]);
    let list = Route::new("Lists", "/t", "nodes");
    expect(
        &list,
        "/t",
        &[(r#"[{"name": "a"}, {}]"#, DIRECT), ("{}", FAILED)],
    );
    let item = Route::new("protogate.bench.v1.CreateItemRequest", "/v1/items", "item");
    for size in [1 << 10, 64 << 10] {
        let body = crate::bench::scenario::item_of_size(size).to_string();
        assert_eq!(
            compare(&item, "/v1/items", body.as_bytes(), &Codec::default()),
            DIRECT
        );
    }
    let range = Route::new("etcdserverpb.RangeRequest", "/v3/kv/range", "*");
    let body = br#"{"key":"YmVuY2gva2V5","serializable":true}"#;
    assert_eq!(
        compare(&range, "/v3/kv/range", body, &Codec::default()),
        DIRECT
    );
    let legacy = Route::new("Holder", "/t", "*");
    compare_all(&legacy, "/t", b"{}");
}

/// A byte-order mark before the JSON is skipped by both paths, so the
/// direct encoder keeps such bodies (RFC 8259 §8.1).
#[test]
fn a_byte_order_mark_is_skipped_by_both_paths() {
    let whole = Route::new("Everything", "/t", "*");
    let node = Route::new("Everything", "/t", "node");
    for (route, json) in [(&whole, r#"{"note": "n"}"#), (&node, r#"{"name": "n"}"#)] {
        let body = [b"\xEF\xBB\xBF".as_slice(), json.as_bytes()].concat();
        assert_eq!(compare(route, "/t", &body, &Codec::default()), DIRECT);
        compare_all(route, "/t", &body);
    }
}

/// Times the bench's `post-1k` and `post-64k` bodies and an etcd
/// `RangeRequest`, the reflective way (parse, then encode) and directly,
/// in whatever profile the tests are built.
/// `cargo test --lib timing_request_bodies -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn timing_request_bodies() {
    use std::time::{Duration, Instant};
    let item = Route::new("protogate.bench.v1.CreateItemRequest", "/v1/items", "item");
    let range = Route::new("etcdserverpb.RangeRequest", "/v3/kv/range", "*");
    let bodies = [
        (
            "post-1k",
            &item,
            "/v1/items",
            crate::bench::scenario::item_of_size(1 << 10).to_string(),
        ),
        (
            "post-64k",
            &item,
            "/v1/items",
            crate::bench::scenario::item_of_size(64 << 10).to_string(),
        ),
        (
            "etcd-range",
            &range,
            "/v3/kv/range",
            r#"{"key":"YmVuY2gva2V5","serializable":true}"#.to_owned(),
        ),
    ];
    let codec = Codec::default();
    for (name, route, uri, body) in bodies {
        let found = route
            .matcher
            .find(&http::Method::POST, uri)
            .expect("matches");
        let request = crate::transcode::RawRequest {
            path: uri,
            found: &found,
            query: None,
            content_type: "application/json",
            body: bytes::Bytes::from(body),
        };
        assert!(route.plan.is_direct(&request, &codec));
        let rounds = if name == "post-64k" { 20 } else { 2_000 };
        // The best of several alternating rounds: the machine is shared.
        let (mut before, mut after) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..rounds {
                let message = route.plan.decode(request.clone(), &codec).expect("decodes");
                std::hint::black_box(crate::transcode::encode::encode(&message).expect("encodes"));
            }
            before = before.min(start.elapsed() / rounds);
            let start = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(route.plan.encode(request.clone(), &codec).expect("encodes"));
            }
            after = after.min(start.elapsed() / rounds);
        }
        println!("{name}: reflective {before:?}, direct {after:?}");
    }
}
