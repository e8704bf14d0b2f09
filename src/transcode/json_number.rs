//! The text of `float` and `double` values in the JSON the gateway writes.
//!
//! serde_json writes a double that holds an integer with a fraction
//! (`1.0`) and large or small ones with a bare exponent (`1e20`). Both
//! are valid JSON, but a client that reads numbers by their text (Python's
//! `json`, among others) turns `1.0` into a float where the JSON it sent
//! through a `google.protobuf.Struct` said `1`. Here every float is written
//! as ECMAScript's `Number.prototype.toString` (and `JSON.stringify`) and
//! Go's `protojson` write it: the shortest digits that read back to the same
//! value, in plain decimal from 1e-6 up to (not including) 1e21, in
//! exponent form with a signed exponent (`1e+21`, `1.5e-7`) outside that.
//! Negative zero stays `-0`: the value is kept, as Go and C++ keep it.

use std::io;

use serde::Serialize;

/// A serde_json formatter that writes floats as described above and all
/// else as serde_json's compact formatter does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Numbers;

impl serde_json::ser::Formatter for Numbers {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        write_float(writer, zmij::Buffer::new().format_finite(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_float(writer, zmij::Buffer::new().format_finite(value))
    }
}

/// A serializer writing to `writer` with [`Numbers`].
pub(crate) fn serializer<W: io::Write>(writer: W) -> serde_json::Serializer<W, Numbers> {
    serde_json::Serializer::with_formatter(writer, Numbers)
}

/// `value` as compact JSON with [`Numbers`].
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut serializer(&mut out))?;
    Ok(out)
}

/// Writes the number `shortest` (zmij's text: the shortest round-trip
/// digits, as `-12.5`, `100.0` or `1.5e-7`) in ECMAScript's form
/// (`Number::toString`, ECMA-262 §6.1.6.1.20). zmij gives the digits
/// several times faster than `Display`, which matters in responses of
/// many doubles; only their layout changes here.
fn write_float<W: ?Sized + io::Write>(writer: &mut W, shortest: &str) -> io::Result<()> {
    let text = shortest.as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(at) => (&text[..at], parse_exponent(&text[at + 1..])?),
        None => (text, 0),
    };
    // The significant digits, at most 17, and where the point goes:
    // the value is 0.DIGITS × 10^point.
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut point = None;
    let mut leading = 0i32;
    for &b in mantissa {
        match b {
            b'.' => point = Some(len as i32 + leading),
            b'0' if len == 0 => leading += 1,
            b'0'..=b'9' => {
                *digits.get_mut(len).ok_or_else(malformed)? = b;
                len += 1;
            }
            _ => return Err(malformed()),
        }
    }
    let whole = point.unwrap_or(len as i32 + leading);
    while len > 0 && digits[len - 1] == b'0' {
        len -= 1;
    }
    let digits = &digits[..len];
    if negative {
        writer.write_all(b"-")?;
    }
    if digits.is_empty() {
        return writer.write_all(b"0");
    }
    // Digits before the point in the text, less the leading zeros.
    let n = whole - leading + exponent;
    let k = len as i32;
    if (k..=21).contains(&n) {
        writer.write_all(digits)?;
        zeros(writer, n - k)
    } else if (1..=21).contains(&n) {
        let (int, frac) = digits.split_at(n as usize);
        writer.write_all(int)?;
        writer.write_all(b".")?;
        writer.write_all(frac)
    } else if (-5..=0).contains(&n) {
        writer.write_all(b"0.")?;
        zeros(writer, -n)?;
        writer.write_all(digits)
    } else {
        let (first, rest) = digits.split_at(1);
        writer.write_all(first)?;
        if !rest.is_empty() {
            writer.write_all(b".")?;
            writer.write_all(rest)?;
        }
        let e = n - 1;
        write!(
            writer,
            "e{}{}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        )
    }
}

fn parse_exponent(text: &[u8]) -> io::Result<i32> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.strip_prefix('+').unwrap_or(t).parse().ok())
        .ok_or_else(malformed)
}

fn zeros<W: ?Sized + io::Write>(writer: &mut W, count: i32) -> io::Result<()> {
    const ZEROS: &[u8; 21] = b"000000000000000000000";
    writer.write_all(ZEROS.get(..count.max(0) as usize).ok_or_else(malformed)?)
}

fn malformed() -> io::Error {
    io::Error::other("unexpected float text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(v: f64) -> String {
        String::from_utf8(to_vec(&v).unwrap_or_default()).unwrap_or_default()
    }

    fn float(v: f32) -> String {
        String::from_utf8(to_vec(&v).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn doubles_as_ecmascript_and_go_write_them() {
        for (value, text) in [
            (1.0, "1"),
            (-1.0, "-1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (123456.789, "123456.789"),
            (1e20, "100000000000000000000"),
            (1.2345678901234568e20, "123456789012345680000"),
            (1e21, "1e+21"),
            (-1.5e300, "-1.5e+300"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (9007199254740993.0, "9007199254740992"),
        ] {
            assert_eq!(double(value), text, "{value:?}");
            let back: f64 = serde_json::from_str(text).unwrap_or(f64::NAN);
            assert_eq!(back.to_bits(), value.to_bits(), "{text} reads back");
        }
    }

    #[test]
    fn floats_with_their_own_shortest_digits() {
        for (value, text) in [
            (0.1f32, "0.1"),
            (1.0f32, "1"),
            (3.4028235e38f32, "3.4028235e+38"),
            (1e-7f32, "1e-7"),
            (16777216.0f32, "16777216"),
        ] {
            assert_eq!(float(value), text, "{value:?}");
        }
    }

    /// The same text built another way: `Display` (never an exponent)
    /// inside ECMAScript's decimal range, `LowerExp` with a `+` outside.
    fn reference(value: f64, decimal: bool) -> String {
        if decimal {
            return format!("{value}");
        }
        let text = format!("{value:e}");
        match text.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => text,
        }
    }

    /// `text` is `expected`, or differs only where the shortest digits
    /// tie (1016376908170190.25 as ...190.2 or ...190.3): the same
    /// value, as short, laid out the same.
    fn same(text: &str, expected: &str) -> bool {
        if text == expected {
            return true;
        }
        let (a, b) = (text.as_bytes(), expected.as_bytes());
        let differ: Vec<usize> = (0..a.len().min(b.len()))
            .filter(|&i| a[i] != b[i])
            .collect();
        let back = |t: &str| t.parse::<f64>().map(f64::to_bits).ok();
        a.len() == b.len() && differ.len() == 1 && back(text) == back(expected)
    }

    #[test]
    fn random_doubles_and_floats_match_a_second_method() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200_000 {
            let value = f64::from_bits(rng.u64(..));
            if value.is_finite() {
                let abs = value.abs();
                let decimal = abs == 0.0 || (1e-6..1e21).contains(&abs);
                let (text, expected) = (double(value), reference(value, decimal));
                assert!(same(&text, &expected), "{text} against {expected}");
            }
            // A float whose shortest digits tie (3560047.25 as 3560047.2
            // or .3) may be written either way: the same value, as short.
            let value = f32::from_bits(rng.u32(..));
            if value.is_finite() {
                let text = float(value);
                let back: f32 = text.parse().unwrap_or(f32::NAN);
                assert_eq!(back.to_bits(), value.to_bits(), "{text}");
                let abs = value.abs();
                let decimal = abs == 0.0 || (1e-6..1e21).contains(&abs);
                assert_eq!(text.contains('e'), !decimal, "{text}");
                if decimal {
                    assert_eq!(text.len(), format!("{value}").len(), "{text}");
                }
            }
            // Round numbers, where trailing zeros and the 1e21 edge are.
            let value = (rng.u64(..) % 1_000_000) as f64 * 10f64.powi(rng.i32(-30..30));
            let abs = value.abs();
            let decimal = abs == 0.0 || (1e-6..1e21).contains(&abs);
            let (text, expected) = (double(value), reference(value, decimal));
            assert!(same(&text, &expected), "{text} against {expected}");
        }
    }

    #[test]
    fn other_values_as_serde_json_writes_them() {
        let value = serde_json::json!({"a": [1, -2, "x\n"], "b": null, "c": true, "d": 2.5});
        assert_eq!(
            to_vec(&value).unwrap_or_default(),
            serde_json::to_vec(&value).unwrap_or_default()
        );
    }
}
