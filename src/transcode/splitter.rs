//! Splits a stream of bytes into JSON values as they arrive: the request
//! body of a client-streaming or bidirectional call, newline-delimited or
//! simply concatenated (`{...}{...}`).
//!
//! Only the structure is scanned (brackets, strings and their escapes);
//! each complete value is then parsed as a message. A UTF-8 byte-order
//! mark before a value is skipped, as before a body. Consumed bytes are
//! dropped, so memory holds at most one value in progress.

use bytes::{Buf, Bytes, BytesMut};

use super::body::BOM;

/// A value in the stream is malformed or too large.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A single message is larger than the limit.
    #[error("a streamed message is larger than {0} bytes")]
    TooLarge(usize),
    /// A closing bracket with nothing open.
    #[error("unbalanced `{0}` in the request stream")]
    Unbalanced(char),
    /// The body ended inside a value.
    #[error("the request stream ended inside a message")]
    Truncated,
}

/// Incremental splitter of concatenated JSON values.
#[derive(Debug)]
pub struct Splitter {
    buf: BytesMut,
    /// How far `buf` has been scanned.
    pos: usize,
    /// Where the value in progress starts, if one has started.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The value in progress is a bare token (number, `true`, ...).
    token: bool,
    max_message: usize,
}

impl Splitter {
    /// A splitter refusing values larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Splitter {
        Splitter {
            buf: BytesMut::new(),
            pos: 0,
            start: None,
            depth: 0,
            in_string: false,
            escaped: false,
            token: false,
            max_message,
        }
    }

    /// Adds bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete value, if the bytes so far hold one.
    pub fn next_value(&mut self) -> Result<Option<Bytes>, SplitError> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            let Some(start) = self.start else {
                if b == BOM[0] {
                    // A byte-order mark before a value is skipped, as a
                    // body's is; one cut by a chunk waits for its rest.
                    let rest = &self.buf[self.pos..];
                    let seen = rest.len().min(BOM.len());
                    if rest[..seen] == BOM[..seen] {
                        if seen < BOM.len() {
                            return Ok(None);
                        }
                        self.pos += BOM.len();
                        self.discard_blank();
                        continue;
                    }
                }
                if !b.is_ascii_whitespace() {
                    self.start = Some(self.pos);
                    match b {
                        b'{' | b'[' => self.depth = 1,
                        b'"' => self.in_string = true,
                        b'}' | b']' => return Err(SplitError::Unbalanced(b as char)),
                        _ => self.token = true,
                    }
                }
                self.pos += 1;
                self.discard_blank();
                continue;
            };
            if self.pos - start >= self.max_message {
                return Err(SplitError::TooLarge(self.max_message));
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Ok(Some(self.take(self.pos + 1)));
                    }
                }
                self.pos += 1;
                continue;
            }
            if self.token {
                if b.is_ascii_whitespace() || matches!(b, b'{' | b'[' | b'"') {
                    return Ok(Some(self.take(self.pos)));
                }
                self.pos += 1;
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok(Some(self.take(self.pos + 1)));
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// At the end of the body: a final bare token, or an error if a value
    /// was left open.
    pub fn finish(&mut self) -> Result<Option<Bytes>, SplitError> {
        match self.start {
            // The start of a byte-order mark and nothing after it: a value
            // of its own, which fails to parse.
            None if self.pos < self.buf.len() => {
                self.start = Some(self.pos);
                Ok(Some(self.take(self.buf.len())))
            }
            None => Ok(None),
            Some(_) if self.token => Ok(Some(self.take(self.buf.len()))),
            Some(_) => Err(SplitError::Truncated),
        }
    }

    /// Takes the value ending before `end` out of the buffer.
    fn take(&mut self, end: usize) -> Bytes {
        let start = self.start.take().unwrap_or(0);
        let mut value = self.buf.split_to(end);
        value.advance(start);
        self.pos = 0;
        self.depth = 0;
        self.token = false;
        value.freeze()
    }

    /// Drops leading whitespace that is not part of a value.
    fn discard_blank(&mut self) {
        if self.start.is_none() && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> Result<Vec<String>, SplitError> {
        let mut splitter = Splitter::new(1024);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk.as_bytes());
            while let Some(v) = splitter.next_value()? {
                out.push(String::from_utf8(v.to_vec()).unwrap());
            }
        }
        if let Some(v) = splitter.finish()? {
            out.push(String::from_utf8(v.to_vec()).unwrap());
        }
        Ok(out)
    }

    #[test]
    fn newline_delimited_and_concatenated() {
        assert_eq!(
            split(&["{\"a\":1}\n{\"b\":2}\n"]).unwrap(),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            split(&["{\"a\":1}{\"b\":[2,{}]}"]).unwrap(),
            ["{\"a\":1}", "{\"b\":[2,{}]}"]
        );
        assert_eq!(
            split(&["\"x\" 12 true {}"]).unwrap(),
            ["\"x\"", "12", "true", "{}"]
        );
        assert_eq!(split(&["  \n\r\t"]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn values_split_across_chunks() {
        assert_eq!(
            split(&["{\"a\":", "\"}{\\\"\"", "}\n{", "}"]).unwrap(),
            ["{\"a\":\"}{\\\"\"}", "{}"]
        );
        assert_eq!(split(&["1", "23", " 4"]).unwrap(), ["123", "4"]);
    }

    #[test]
    fn byte_order_marks_before_values_are_skipped() {
        let bom = "\u{feff}";
        assert_eq!(
            split(&[&format!("{bom}{{\"a\":1}}\n{bom}{{}}")]).unwrap(),
            ["{\"a\":1}", "{}"]
        );
        // Cut by chunks, the mark waits for its rest.
        let chunks = ["\u{feff}".as_bytes(), b"{}"].concat();
        let mut splitter = Splitter::new(1024);
        for byte in &chunks {
            splitter.push(std::slice::from_ref(byte));
            if let Some(value) = splitter.next_value().unwrap() {
                assert_eq!(&value[..], b"{}");
                return;
            }
        }
        panic!("no value");
    }

    #[test]
    fn a_cut_byte_order_mark_at_the_end_is_a_value() {
        let mut splitter = Splitter::new(1024);
        splitter.push(b"{} \xEF\xBB");
        assert_eq!(&splitter.next_value().unwrap().unwrap()[..], b"{}");
        assert_eq!(splitter.next_value().unwrap(), None);
        assert_eq!(&splitter.finish().unwrap().unwrap()[..], b"\xEF\xBB");
    }

    #[test]
    fn errors() {
        assert_eq!(split(&["{\"a\":1"]), Err(SplitError::Truncated));
        assert_eq!(split(&["}"]), Err(SplitError::Unbalanced('}')));
        let mut splitter = Splitter::new(8);
        splitter.push(b"{\"long\": \"value\"}");
        assert_eq!(splitter.next_value(), Err(SplitError::TooLarge(8)));
    }
}
