//! The checks on single values: numbers an integer field cannot take
//! exactly, strings for float, field mask, timestamp and duration fields
//! that the parser underneath would take loosely, and strings for integer
//! fields in exponent or fraction notation, which it would refuse.

use std::fmt;

use serde::de::{self, Visitor};

/// A visitor's `expecting`, as text.
struct Expecting<'v, V>(&'v V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

/// What a visitor says it expects, e.g. "a 64-bit signed integer".
fn expecting<'de, V: Visitor<'de>>(visitor: &V) -> String {
    Expecting(visitor).to_string()
}

/// Whether a visitor says it expects exactly `text`; compared as it is
/// written, without building the string.
pub(super) fn expects<'de, V: Visitor<'de>>(visitor: &V, text: &str) -> bool {
    struct Rest<'t>(&'t str);
    impl fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 = self.0.strip_prefix(s).ok_or(fmt::Error)?;
            Ok(())
        }
    }
    let mut rest = Rest(text);
    fmt::write(&mut rest, format_args!("{}", Expecting(visitor))).is_ok() && rest.0.is_empty()
}

/// Below this, every integer is exact as an `f64`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A number read as a float: refused for an integer field when it may have
/// lost digits already.
pub(super) fn check_number<'de, V: Visitor<'de>, E: de::Error>(
    visitor: &V,
    v: f64,
) -> Result<(), E> {
    if v.abs() >= EXACT_INTEGERS && expecting(visitor).contains("integer") {
        return Err(E::custom(
            "an integer of 2^53 or more must be written without fraction or exponent, or as a string, to be exact",
        ));
    }
    Ok(())
}

/// The largest `float` as written in short (`3.4028235e38`, which the
/// gateway itself writes): past `f32::MAX` as a 64-bit number, but it
/// rounds to it. The parser underneath compares before rounding and would
/// refuse it; this gives it `±f32::MAX` instead. `None` for anything else
/// (the visitor is asked what it expects only for such numbers).
pub(super) fn float_max_spelling<'de, V: Visitor<'de>>(visitor: &V, v: f64) -> Option<f64> {
    let rounded = rounded_f32_max(v)?;
    expects(visitor, "a 32-bit floating point value").then_some(rounded)
}

/// `±f32::MAX` for a finite number past it that rounds to it.
pub(crate) fn rounded_f32_max(v: f64) -> Option<f64> {
    let rounded = v as f32;
    (v.is_finite() && v.abs() > f64::from(f32::MAX) && rounded.is_finite())
        .then_some(f64::from(rounded))
}

/// What to give the parser instead of a string [`check_text`] read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Instead {
    /// The largest `float`, for its short spelling.
    Float(f64),
    /// The whole number an integer field's string writes.
    Integer(i128),
}

/// A string for a number, field mask, timestamp or duration field,
/// checked where the parser underneath would accept it loosely; `Some` is
/// the number to give the parser instead: the largest `float`, spelled
/// short (see [`float_max_spelling`]), or the number a string for an
/// integer field writes with an exponent or fraction (see
/// [`integer_text`]), which the parser reads only from digits.
pub(super) fn check_text<'de, V: Visitor<'de>, E: de::Error>(
    visitor: &V,
    v: &str,
) -> Result<Option<Instead>, E> {
    if let Some(text) = integer_text(v)
        && is_integer(&expecting(visitor))
    {
        return match text {
            IntegerText::Whole(n) => Ok(Some(Instead::Integer(n))),
            IntegerText::Fraction => Err(E::custom(format_args!("`{v}` is not a whole number"))),
            IntegerText::TooLarge => Err(E::custom(format_args!(
                "`{v}` is out of range for the field's integer type"
            ))),
        };
    }
    let first = v.bytes().next().unwrap_or(b' ');
    if (first.is_ascii_digit() || b"+-.iInN".contains(&first))
        && !matches!(v, "NaN" | "Infinity" | "-Infinity")
        && let Ok(number) = v.parse::<f64>()
        && (!number.is_finite() || number.abs() > f64::from(f32::MAX))
    {
        let expected = expecting(visitor);
        let float32 = expected == "a 32-bit floating point value";
        if float32 && let Some(max) = rounded_f32_max(number) {
            return Ok(Some(Instead::Float(max)));
        }
        if expected == "a 64-bit floating point value" && !number.is_finite() || float32 {
            return Err(E::custom(format_args!(
                "`{v}` is not a number this field can hold (special values are \"NaN\", \"Infinity\" and \"-Infinity\")"
            )));
        }
    }
    if expects(visitor, "a field mask string") {
        if let Err(why) = crate::transcode::text::field_mask_paths(v) {
            return Err(E::custom(format_args!(
                "`{v}` is not a field mask: {why}; paths are separated by `,`"
            )));
        }
        // The query's rule, less snake_case: proto3 JSON writes a mask's
        // names in lowerCamelCase, and the parser underneath takes no other.
        if let Some(path) = v.split(',').find(|path| path.contains('_')) {
            return Err(E::custom(format_args!(
                "`{path}` is not a field mask path in a JSON body: proto3 JSON names fields in lowerCamelCase there (a query also takes snake_case)"
            )));
        }
    }
    if is_leap_second(v) && expecting(visitor).contains("timestamp") {
        return Err(E::custom(format_args!(
            "`{v}` names a leap second (:60), which a Timestamp cannot hold (protobuf time smears leap seconds)"
        )));
    }
    if has_long_fraction(v) {
        let expected = expecting(visitor);
        if expected.contains("timestamp") || expected.contains("duration") {
            return Err(E::custom(format_args!(
                "`{v}` has more than nine fractional digits (nanosecond precision)"
            )));
        }
    }
    Ok(None)
}

/// A string for an integer field in a form the parser underneath does not
/// read itself, read exactly: with an exponent or a fraction (`"1e3"`,
/// `"100.0"`, which proto3 JSON allows quoted as well as bare), or `"-0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntegerText {
    /// The whole number it writes (which may still not fit the field).
    Whole(i128),
    /// A number with a fractional part (`"1.5"`, `"1e-400"`).
    Fraction,
    /// A whole number past any 64-bit integer (`"1e20"`, `"1e999999999"`).
    TooLarge,
}

/// Reads `v` as an [`IntegerText`]; `None` when it is not a JSON number
/// in such a form, plain digits included (the parser reads those, exactly
/// as they are). Decimal arithmetic, no floats: `"0.99999999999999999999"`
/// is a fraction, not 1.
pub(crate) fn integer_text(v: &str) -> Option<IntegerText> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Plain digits, the usual text, settled in one look (`-0` is not
    // plain: it reads as 0).
    let plain = v.strip_prefix('-').unwrap_or(v);
    if digits(plain) && (plain.len() == v.len() || plain.bytes().any(|b| b != b'0')) {
        return None;
    }
    let (negative, unsigned) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !digits(int) || (mantissa.contains('.') && !digits(frac)) {
        return None;
    }
    let zero = int.bytes().chain(frac.bytes()).all(|b| b == b'0');
    if exponent.is_none() && !mantissa.contains('.') && !(negative && zero) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(text) => {
            let (sign, magnitude) = match text.as_bytes().first() {
                Some(b'-') => (-1, &text[1..]),
                Some(b'+') => (1, &text[1..]),
                _ => (1, text),
            };
            if !digits(magnitude) {
                return None;
            }
            // Past nine digits the exponent decides alone.
            let magnitude = magnitude.trim_start_matches('0');
            sign * if magnitude.len() > 9 {
                1_000_000_000
            } else {
                magnitude.parse::<i64>().unwrap_or(0)
            }
        }
    };
    if zero {
        return Some(IntegerText::Whole(0));
    }
    // value = significant digits × 10^scale
    let all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let significant = all
        .iter()
        .position(|&b| b != b'0')
        .map_or(&all[..0], |at| &all[at..]);
    let trailing = significant.iter().rev().take_while(|&&b| b == b'0').count();
    let significant = &significant[..significant.len() - trailing];
    let scale = exponent - i64::try_from(frac.len()).unwrap_or(i64::MAX) + trailing as i64;
    if scale < 0 {
        return Some(IntegerText::Fraction);
    }
    // 2^64 has 20 digits: more can fit no 64-bit integer.
    if significant.len() as i64 + scale > 20 {
        return Some(IntegerText::TooLarge);
    }
    let mut n: i128 = 0;
    for &digit in significant {
        n = n * 10 + i128::from(digit - b'0');
    }
    for _ in 0..scale {
        n *= 10;
    }
    Some(IntegerText::Whole(if negative { -n } else { n }))
}

/// Whether the parser underneath expects one of the integer types (not an
/// enum, which says "a string or integer").
fn is_integer(expected: &str) -> bool {
    [
        "a 32-bit signed integer",
        "a 32-bit unsigned integer",
        "a 64-bit signed integer",
        "a 64-bit unsigned integer",
    ]
    .iter()
    .any(|kind| expected.starts_with(kind))
}

/// Whether an RFC 3339 time has 60 seconds (`2016-12-31T23:59:60Z`).
fn is_leap_second(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 19 && b[13] == b':' && b[16] == b':' && &b[17..19] == b"60"
}

/// Whether a `.` is followed by more than nine digits.
fn has_long_fraction(v: &str) -> bool {
    v.split('.')
        .skip(1)
        .any(|after| after.bytes().take_while(u8::is_ascii_digit).count() > 9)
}
