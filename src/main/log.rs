//! The log's writer: one event, one line.
//!
//! Field values carry text from outside (a backend's error message, an
//! etcd key, a reflection failure). tracing-subscriber escapes terminal
//! escape sequences in them but writes line breaks as they are, so a
//! backend could end its message with a line break and a made-up log line
//! after it. Each event reaches the writer as one buffer ending in its
//! own line break; breaks before that are written escaped.

use std::io::{self, Write};

/// Writes each event's buffer with its inner `\n` and `\r` escaped.
#[derive(Debug)]
pub(crate) struct OneLine<W>(pub(crate) W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buf, &b""[..]),
        };
        let mut rest = body;
        while let Some(at) = rest.iter().position(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(&rest[..at])?;
            self.0
                .write_all(if rest[at] == b'\n' { b"\\n" } else { b"\\r" })?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        self.0.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(events: &[&str]) -> String {
        let mut out = OneLine(Vec::new());
        for event in events {
            out.write_all(event.as_bytes()).unwrap();
        }
        String::from_utf8(out.0).unwrap()
    }

    #[test]
    fn inner_line_breaks_are_escaped() {
        assert_eq!(
            written(&["WARN failed error=boom\nINFO forged\r\n", "INFO next\n"]),
            "WARN failed error=boom\\nINFO forged\\r\nINFO next\n"
        );
        assert_eq!(written(&["no end"]), "no end");
        assert_eq!(written(&["\n"]), "\n");
        assert_eq!(written(&["\n\n"]), "\\n\n");
    }
}
