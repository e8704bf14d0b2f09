//! The proto3 JSON mapping of numbers both ways: 64-bit integers as
//! numbers and strings, the forms integers and floats take (exponents,
//! fractions, NaN and Infinity), their ranges, and how floats are written.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, fixture};

/// proto3 JSON: 64-bit integers are exact as numbers or strings in
/// requests and are written as strings.
#[tokio::test]
async fn int64_precision_both_ways() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"i64": 9223372036854775807, "u64": "18446744073709551615", "si64": -9223372036854775808, "f64": 18446744073709551615, "sf64": "-9007199254740993", "ids": [9007199254740993, "-1"]}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({
                "i64": "9223372036854775807", "u64": "18446744073709551615", "si64": "-9223372036854775808",
                "f64": "18446744073709551615", "sf64": "-9007199254740993", "ids": ["9007199254740993", "-1"]
            })
        )
    );
    assert_eq!(f.backend.last().json["sf64"], "-9007199254740993");
}

/// proto3 JSON: integers are accepted as strings too; out-of-range and
/// fractional values are a 400 at the field.
#[tokio::test]
async fn integers_from_strings_and_out_of_range() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"i32": "-5", "u32": "7", "small": "9"}"#)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"i32": -5, "u32": 7, "small": 9}))
    );
    for (bad, at) in [
        (r#"{"i64": 9223372036854775808}"#, "at `i64`"),
        (r#"{"i64": "9223372036854775808"}"#, "at `i64`"),
        (r#"{"u64": -1}"#, "at `u64`"),
        (r#"{"u32": 4294967296}"#, "at `u32`"),
        (r#"{"i32": "2147483648"}"#, "at `i32`"),
        (r#"{"i32": "1.5"}"#, "at `i32`"),
        (r#"{"ids": [1.5]}"#, "at `ids[0]`"),
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, at);
    }
}

/// proto3 JSON takes exponent notation for integers "in both quoted and
/// unquoted forms"; a whole number with a fraction reads the same way.
/// A string is read exactly (decimal, no floats): whole and in range,
/// 64-bit values included. A string that is no number says so plainly.
#[tokio::test]
async fn integers_from_strings_in_exponent_notation() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"i32": "1e3", "u32": "7.0", "i64": "-2.5E1", "si32": 1e2, "ids": ["1e1", "3"], "big": "4e0", "u64": "1.8446744073709551615e19", "f32": "-0"}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"i32": 1000, "u32": 7, "i64": "-25", "si32": 100, "ids": ["10", "3"], "big": "4", "u64": "18446744073709551615"})
        )
    );
    for (bad, needle) in [
        (r#"{"i32": "1e-2"}"#, "at `i32`"),
        (r#"{"i32": "3e9"}"#, "at `i32`"),
        (r#"{"u64": "-1e0"}"#, "at `u64`"),
        (r#"{"i64": "1e19"}"#, "out of range"),
        (r#"{"u64": "1e-400"}"#, "not a whole number"),
        (r#"{"i64": "0.99999999999999999999"}"#, "not a whole number"),
        (r#"{"i32": "1e999999999"}"#, "out of range"),
        (r#"{"ids": ["2.5e0"]}"#, "at `ids[0]`"),
        (r#"{"color": "1e0"}"#, "at `color`"),
        (
            r#"{"i32": "abc"}"#,
            "at `i32`: expected an integer: a number, or a string holding one",
        ),
        (
            r#"{"i64": ""}"#,
            "at `i64`: expected an integer, not an empty string",
        ),
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, needle);
    }
}

/// proto3 JSON: floats accept numbers, numeric strings and the strings
/// `NaN`, `Infinity`, `-Infinity`, and write the special values as those
/// strings (valid JSON).
#[tokio::test]
async fn hc33_neighbour_special_values_everywhere() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"samples": ["NaN", 1, "Infinity", "-2.5"], "fl": "Infinity", "db": "-Infinity"}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"fl": "Infinity", "db": "-Infinity", "samples": ["NaN", 1, "Infinity", -2.5]})
        )
    );
}

/// proto3 JSON: DoubleValue and FloatValue are written like their scalar,
/// so a NaN or an infinity in a wrapper is the string `NaN`/`Infinity`/
/// `-Infinity` (JSON `null` would mean the wrapper is unset).
#[tokio::test]
async fn hc33_neighbour_special_values_in_wrappers() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"ratio": "NaN", "flWrapper": "-Infinity"}"#)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"ratio": "NaN", "flWrapper": "-Infinity"})
        )
    );
    let (status, body) = f.get("/v1/echo?ratio=Infinity").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ratio": "Infinity"}))
    );
}

/// proto3 JSON: wrappers read the special strings like their scalar; the
/// backend gets the values themselves.
#[tokio::test]
async fn hc33_neighbour_special_values_reach_the_backend_in_wrappers() {
    let f = fixture().await;
    let (status, _) = f
        .post("/v1/echo", r#"{"ratio": "NaN", "flWrapper": "-Infinity"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    let sent = f.backend.last().message;
    let inner = |name: &str| {
        sent.get_field_by_name(name)
            .unwrap()
            .as_message()
            .unwrap()
            .get_field_by_name("value")
            .unwrap()
            .into_owned()
    };
    assert!(inner("ratio").as_f64().unwrap().is_nan());
    assert_eq!(inner("fl_wrapper").as_f32(), Some(f32::NEG_INFINITY));
}

/// proto3 JSON: numbers may use exponent notation, as JSON numbers or as
/// strings.
#[tokio::test]
async fn hc33_neighbour_exponent_forms() {
    let f = fixture().await;
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"db": 1E3, "fl": "2.5e-1", "ratio": 1e+2, "samples": ["-1.5E2", 5e-324]}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"fl": 0.25, "db": 1000, "ratio": 100, "samples": [-150, 5e-324]})
        )
    );
}

/// Floats are written as ECMAScript and Go's protojson write them: an
/// integral double without `.0` (a client reading `1.0` gets a float where
/// it sent an integer through a Struct), plain decimal from 1e-6 below
/// 1e21, a signed exponent outside; in a plain field, a wrapper, a list and
/// a Struct alike, and a float with its own shortest digits.
#[tokio::test]
async fn floats_are_written_as_ecmascript_writes_them() {
    let f = fixture().await;
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/json"),
            &[],
            br#"{"db": 1, "fl": 0.1, "ratio": 1e21, "samples": [1e20, 1e-7, 0.000001, -2],
                 "attrs": {"n": 7, "big": 1.5e300, "l": [3]}}"#
                .to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = &reply.text;
    for expected in [
        r#""db":1"#,
        r#""fl":0.1"#,
        r#""ratio":1e+21"#,
        r#""samples":[100000000000000000000,1e-7,0.000001,-2]"#,
        r#""attrs":{"big":1.5e+300,"l":[3],"n":7}"#,
    ] {
        let whole = [",", "}"]
            .iter()
            .any(|end| text.contains(&format!("{expected}{end}")));
        assert!(whole, "{expected} in {text}");
    }
}

/// proto3 JSON: a float field holds a 32-bit float; a value beyond its
/// range is a 400, not a silent infinity.
#[tokio::test]
async fn hc33_neighbour_float32_range() {
    let f = fixture().await;
    let (status, _) = f.post("/v1/echo", r#"{"fl": 3.4028234e38}"#).await;
    assert_eq!(status, StatusCode::OK);
    for (bad, at) in [
        (r#"{"fl": 3.5e38}"#, "invalid JSON body at `fl`: "),
        (r#"{"fl": -1e39}"#, "invalid JSON body at `fl`: "),
        (
            r#"{"flWrapper": 1e39}"#,
            "invalid JSON body at `flWrapper`: ",
        ),
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, at);
    }
}

/// proto3 JSON: a float given as a numeric string obeys the same range as
/// a number; out of range is a 400, not a silent infinity.
#[tokio::test]
async fn hc33_neighbour_float32_range_in_strings() {
    let f = fixture().await;
    for bad in [
        r#"{"fl": "-3.5e38"}"#,
        r#"{"fl": "1e39"}"#,
        r#"{"flWrapper": "1e39"}"#,
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, "invalid JSON body at `");
    }
    assert!(f.backend.records().is_empty());
}

/// proto3 JSON: `-0` is a number (negative zero) as a JSON number or as a
/// string; it is not the default `0` and reaches the backend with its sign.
#[tokio::test]
#[ignore = "limitation (README Limits): -0.0 in a float field without presence is encoded as 0, since prost-reflect compares floats by value"]
async fn hc33_neighbour_negative_zero() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/echo", r#"{"db": -0.0, "fl": "-0"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = f.backend.last().message;
    let db = sent.get_field_by_name("db").unwrap().as_f64().unwrap();
    let fl = sent.get_field_by_name("fl").unwrap().as_f32().unwrap();
    assert!(db == 0.0 && db.is_sign_negative(), "db = {db}");
    assert!(fl == 0.0 && fl.is_sign_negative(), "fl = {fl}");
}

/// proto3 JSON: the special values are strings because bare `NaN` and
/// `Infinity` tokens are not JSON (RFC 8259 §6): they are a 400, and so is
/// a special value with extra spaces.
#[tokio::test]
async fn hc33_neighbour_bare_special_tokens_are_not_json() {
    let f = fixture().await;
    for bad in [
        r#"{"db": NaN}"#,
        r#"{"db": Infinity}"#,
        r#"{"db": -Infinity}"#,
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, "invalid JSON body");
    }
    assert_bad_request(
        f.post("/v1/echo", r#"{"db": "-Infinity "}"#).await,
        "invalid JSON body at `db`",
    );
    assert!(f.backend.records().is_empty());
}

/// proto3 JSON: the special values are spelled exactly `NaN`, `Infinity`
/// and `-Infinity`; other spellings, and numeric strings beyond the
/// double range, are a 400 (as the query already answers).
#[tokio::test]
async fn hc33_neighbour_bad_special_spellings() {
    let f = fixture().await;
    for bad in [
        r#"{"db": "nan"}"#,
        r#"{"db": "inf"}"#,
        r#"{"db": "infinity"}"#,
        r#"{"db": "1e999"}"#,
    ] {
        assert_bad_request(f.post("/v1/echo", bad).await, "invalid JSON body at `db`");
    }
    assert!(f.backend.records().is_empty());
}
