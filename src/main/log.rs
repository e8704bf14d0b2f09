//! The log's writer: one event, one line.
//!
//! Field values carry text from outside (a backend's error message, an
//! etcd key, a reflection failure). tracing-subscriber escapes terminal
//! escape sequences in them only when it colours its output, and writes
//! line breaks as they are, so a backend could end its message with a
//! line break and a made-up log line after it. Each event reaches the
//! writer as one buffer ending in its own line break; the line breaks
//! before that (`\n`, `\r`, and NEL, U+2028 and U+2029, which some log
//! viewers split on) are written escaped, and so is ESC when the output
//! is not coloured (a colouring formatter's own ESC must pass).

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
            self.inner.write_all(escaped)?;
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
    fn next_break(&self, text: &[u8]) -> Option<(usize, usize, &'static [u8])> {
        text.iter().enumerate().find_map(|(at, byte)| {
            let next = |n: usize| text.get(at + n).copied();
            match byte {
                b'\n' => Some((at, 1, &b"\\n"[..])),
                b'\r' => Some((at, 1, &b"\\r"[..])),
                0x1b if !self.ansi => Some((at, 1, &b"\\x1b"[..])),
                0xc2 if next(1) == Some(0x85) => Some((at, 2, &b"\\u{85}"[..])),
                0xe2 if next(1) == Some(0x80) && next(2) == Some(0xa8) => {
                    Some((at, 3, &b"\\u{2028}"[..]))
                }
                0xe2 if next(1) == Some(0x80) && next(2) == Some(0xa9) => {
                    Some((at, 3, &b"\\u{2029}"[..]))
                }
                _ => None,
            }
        })
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
    fn escape_passes_only_when_the_output_is_coloured() {
        assert_eq!(written(false, &["\x1b[31mred\n"]), "\\x1b[31mred\n");
        assert_eq!(written(true, &["\x1b[31mred\n"]), "\x1b[31mred\n");
    }
}
