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

use std::fmt::{self, Write as _};
use std::io;

use serde::Serialize;

/// A serde_json formatter that writes floats as described above and all
/// else as serde_json's compact formatter does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Numbers;

impl serde_json::ser::Formatter for Numbers {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let abs = value.abs();
        write_float(writer, value, abs != 0.0 && !(1e-6..1e21).contains(&abs))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let abs = value.abs();
        write_float(writer, value, abs != 0.0 && !(1e-6..1e21).contains(&abs))
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

/// Writes a finite `value`. Rust's `Display` and `LowerExp` already give
/// the shortest round-trip digits, with no exponent and with a bare one
/// (`1e21`); JSON's readers take both, the `+` is for sameness with
/// ECMAScript and Go.
fn write_float<W, F>(writer: &mut W, value: F, exponent: bool) -> io::Result<()>
where
    W: ?Sized + io::Write,
    F: fmt::Display + fmt::LowerExp,
{
    if !exponent {
        return write!(writer, "{value}");
    }
    let mut text = Short::default();
    write!(text, "{value:e}").map_err(|_| io::Error::other("float text too long"))?;
    let text = text.as_bytes();
    match text.iter().position(|&b| b == b'e') {
        Some(at) if text.get(at + 1) != Some(&b'-') => {
            let (mantissa, exponent) = text.split_at(at + 1);
            writer.write_all(mantissa)?;
            writer.write_all(b"+")?;
            writer.write_all(exponent)
        }
        _ => writer.write_all(text),
    }
}

/// Room for the longest exponent form of a double
/// (`-2.2250738585072014e-308`, 24 bytes), on the stack.
#[derive(Default)]
struct Short {
    bytes: [u8; 32],
    len: usize,
}

impl Short {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Short {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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

    #[test]
    fn other_values_as_serde_json_writes_them() {
        let value = serde_json::json!({"a": [1, -2, "x\n"], "b": null, "c": true, "d": 2.5});
        assert_eq!(
            to_vec(&value).unwrap_or_default(),
            serde_json::to_vec(&value).unwrap_or_default()
        );
    }
}
