//! The log's writer: one event, one line.
//!
//! Field values carry text from outside (a backend's error message, an
//! etcd key, a reflection failure). tracing-subscriber escapes terminal
//! escape sequences in them only when it colours its output, and writes
//! line breaks as they are, so a backend could end its message with a
//! line break and a made-up log line after it. Each event reaches the
//! writer as one buffer ending in its own line break; the line breaks
//! before that (`\n`, `\r`, and NEL, U+2028 and U+2029, which some log
//! viewers split on) are written escaped, and so are the other control
//! characters (tab aside) and the bidirectional controls that can make a
//! line read as another; ESC only when the output is not coloured (a
//! colouring formatter's own ESC must pass).

use std::io::{self, Write};

/// Writes each event's buffer on one line.
#[derive(Debug)]
pub(crate) struct OneLine<W> {
    inner: W,
    /// Whether the formatter colours its output (its ESC bytes pass).
    ansi: bool,
}

impl<W> OneLine<W> {
    pub(crate) fn new(inner: W, ansi: bool) -> OneLine<W> {
        OneLine { inner, ansi }
    }
}

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let mut rest = body;
        while let Some((at, len, escaped)) = self.next_break(rest) {
            self.inner.write_all(&rest[..at])?;
            escaped.write(&mut self.inner)?;
            rest = &rest[at + len..];
        }
        self.inner.write_all(rest)?;
        self.inner.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> OneLine<W> {
    /// The first byte sequence in `text` to escape: where it is, how
    /// long, and what to write instead.
    fn next_break(&self, text: &[u8]) -> Option<(usize, usize, Escaped)> {
        text.iter().enumerate().find_map(|(at, &byte)| {
            let next = |n: usize| text.get(at + n).copied();
            match byte {
                b'\n' => Some((at, 1, Escaped::Text("\\n"))),
                b'\r' => Some((at, 1, Escaped::Text("\\r"))),
                b'\t' => None,
                0x1b if self.ansi => None,
                // C0 controls and DEL.
                0..=0x1f | 0x7f => Some((at, 1, Escaped::Byte(byte))),
                // C1 controls (U+0080 to U+009F, NEL and CSI among them).
                0xc2 if next(1).is_some_and(|b| (0x80..=0x9f).contains(&b)) => {
                    Some((at, 2, Escaped::Char(u32::from(next(1)?))))
                }
                // Line and paragraph separators (U+2028, U+2029) and the
                // bidirectional controls (U+202A to U+202E, U+2066 to
                // U+2069), which can make a line read as another.
                0xe2 => {
                    let (b1, b2) = (next(1)?, next(2)?);
                    let c = 0x2000 | (u32::from(b1 & 0x3f) << 6) | u32::from(b2 & 0x3f);
                    let listed = (b1 == 0x80 && (0xa8..=0xae).contains(&b2))
                        || (b1 == 0x81 && (0xa6..=0xa9).contains(&b2));
                    listed.then_some((at, 3, Escaped::Char(c)))
                }
                _ => None,
            }
        })
    }
}

/// What an escaped sequence is written as.
#[derive(Debug, Clone, Copy)]
enum Escaped {
    Text(&'static str),
    /// `\xNN`.
    Byte(u8),
    /// `\u{N}`.
    Char(u32),
}

impl Escaped {
    fn write(self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Escaped::Text(text) => out.write_all(text.as_bytes()),
            Escaped::Byte(byte) => write!(out, "\\x{byte:02x}"),
            Escaped::Char(c) => write!(out, "\\u{{{c:x}}}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(ansi: bool, events: &[&str]) -> String {
        let mut out = OneLine::new(Vec::new(), ansi);
        for event in events {
            out.write_all(event.as_bytes()).unwrap();
        }
        String::from_utf8(out.inner).unwrap()
    }

    #[test]
    fn inner_line_breaks_are_escaped() {
        assert_eq!(
            written(
                false,
                &["WARN failed error=boom\nINFO forged\r\n", "INFO next\n"]
            ),
            "WARN failed error=boom\\nINFO forged\\r\nINFO next\n"
        );
        assert_eq!(written(false, &["no end"]), "no end");
        assert_eq!(written(false, &["\n"]), "\n");
        assert_eq!(written(false, &["\n\n"]), "\\n\n");
        assert_eq!(
            written(false, &["a\u{85}b\u{2028}c\u{2029}d é\n"]),
            "a\\u{85}b\\u{2028}c\\u{2029}d é\n"
        );
    }

    #[test]
    fn other_controls_and_direction_marks_are_escaped() {
        assert_eq!(
            written(
                false,
                &["a\u{9b}b\x7fc\u{202e}d\u{2066}e\x07f\tg\u{2030}\n"]
            ),
            "a\\u{9b}b\\x7fc\\u{202e}d\\u{2066}e\\x07f\tg\u{2030}\n"
        );
    }

    #[test]
    fn escape_passes_only_when_the_output_is_coloured() {
        assert_eq!(written(false, &["\x1b[31mred\n"]), "\\x1b[31mred\n");
        assert_eq!(written(true, &["\x1b[31mred\n"]), "\x1b[31mred\n");
    }
}
