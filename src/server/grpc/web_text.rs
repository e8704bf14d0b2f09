//! gRPC-Web text request bodies, decoded from base64 before tonic-web
//! reads them.
//!
//! A text body is a run of base64 chunks, each padded on its own: the
//! gateway writes its own text responses so, as gRPC-Web clients write
//! one chunk per message. tonic-web decodes a text body as one base64
//! string, so padding anywhere but at its end failed the call. Here every
//! group of four characters is decoded by itself where padding ends it,
//! and the body reaches tonic-web as binary gRPC-Web.
//!
//! ASCII whitespace (space, tab, CR, LF) is skipped wherever it is, as
//! base64 decoders commonly skip line breaks: a body saved to a file and
//! sent with `curl --data-binary @file` ends in a newline, and `base64`
//! wraps its lines. Places in errors count every byte of the body.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use parking_lot::Mutex;

/// A boxed error, as tonic's bodies take them.
type BoxError = Box<dyn Error + Send + Sync>;

/// Base64 characters in one group.
const GROUP: usize = 4;

/// Why a text body failed, kept for the call's answer: the error itself
/// reaches the answer only through tonic-web, which wraps its text.
pub(super) type Failure = Arc<Mutex<Option<String>>>;

/// A text body, decoded as it streams.
pub(super) struct WebText<B> {
    inner: B,
    /// Characters of a group still incomplete.
    pending: BytesMut,
    /// Where in the body each pending character was, for an error.
    pending_at: [usize; GROUP],
    /// Bytes read so far, for the position in an error.
    read: usize,
    failure: Failure,
}

impl<B> WebText<B> {
    pub(super) fn new(inner: B, failure: Failure) -> WebText<B> {
        WebText {
            inner,
            pending: BytesMut::new(),
            pending_at: [0; GROUP],
            read: 0,
            failure,
        }
    }

    fn fail(&self, why: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failure.lock().get_or_insert_with(|| why.clone());
        Poll::Ready(Some(Err(NotBase64(why).into())))
    }
}

/// A text body that is not base64.
#[derive(Debug)]
pub(super) struct NotBase64(String);

impl fmt::Display for NotBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for NotBase64 {}

impl<B> Body for WebText<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                None if self.pending.is_empty() => return Poll::Ready(None),
                None => {
                    let stray = self.pending.iter().zip(self.pending_at).find(|(c, _)| {
                        !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
                    });
                    let why = match stray {
                        Some((&c, at)) => {
                            format!("character {at} ({:?}) is not base64 here", char::from(c))
                        }
                        None => format!(
                            "the body ends inside a group of four base64 characters ({} left over)",
                            self.pending.len()
                        ),
                    };
                    return self.fail(why);
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(other) => return Poll::Ready(Some(Ok(other))),
            };
            let this = &mut *self;
            let carried = this.pending.len();
            let blank = data.iter().any(|&b| is_blank(b));
            if blank {
                this.pending
                    .extend(data.iter().copied().filter(|&b| !is_blank(b)));
            } else {
                this.pending.extend_from_slice(&data);
            }
            let places = Places {
                carried: &this.pending_at[..carried],
                start: this.read,
                data: &data,
                blank,
            };
            this.read += data.len();
            let whole = this.pending.len() / GROUP * GROUP;
            let text = this.pending.split_to(whole);
            let mut left_at = [0; GROUP];
            for (i, at) in left_at.iter_mut().take(this.pending.len()).enumerate() {
                *at = places.of(whole + i);
            }
            let decoded = decode(&text).map_err(|(at, err)| explain(at, &err, &places));
            this.pending_at = left_at;
            match decoded {
                Ok(decoded) if decoded.is_empty() => continue,
                Ok(decoded) => return Poll::Ready(Some(Ok(Frame::data(decoded)))),
                Err(why) => return self.fail(why),
            }
        }
    }
}

/// Whitespace that may stand between base64 characters.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Where the characters being decoded were in the body: those carried
/// over from earlier chunks, then the ones of this chunk (`data`, which
/// starts at byte `start` of the body), whitespace skipped.
struct Places<'a> {
    carried: &'a [usize],
    start: usize,
    data: &'a [u8],
    /// Whether `data` has whitespace to skip.
    blank: bool,
}

impl Places<'_> {
    /// Where character `i` of the text decoded (the carried ones, then
    /// this chunk's) is in the body.
    fn of(&self, i: usize) -> usize {
        let Some(nth) = i.checked_sub(self.carried.len()) else {
            return self.carried[i];
        };
        if !self.blank {
            return self.start + nth;
        }
        let at = self
            .data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| !is_blank(b))
            .nth(nth);
        self.start + at.map_or(self.data.len(), |(at, _)| at)
    }
}

/// What is wrong with the run of characters starting at character `at`
/// of the text decoded, with places in the body.
fn explain(at: usize, err: &base64::DecodeError, places: &Places<'_>) -> String {
    use base64::DecodeError::{InvalidByte, InvalidLastSymbol};
    match *err {
        InvalidByte(offset, byte) | InvalidLastSymbol(offset, byte) => format!(
            "character {} ({:?}) is not base64 here",
            places.of(at + offset),
            char::from(byte)
        ),
        ref other => format!("{other} (in the characters from {} on)", places.of(at)),
    }
}

/// Decodes whole groups of base64, each ending where its padding does;
/// on failure, the offset of the run that failed.
fn decode(text: &[u8]) -> Result<Bytes, (usize, base64::DecodeError)> {
    let mut out = Vec::with_capacity(text.len() / GROUP * 3);
    let mut at = 0;
    while at < text.len() {
        // Up to the end of the first padded group, or of the text.
        let end = text[at..]
            .iter()
            .position(|&c| c == b'=')
            .map_or(text.len(), |pad| (at + pad) / GROUP * GROUP + GROUP);
        let end = end.min(text.len());
        STANDARD
            .decode_vec(&text[at..end], &mut out)
            .map_err(|err| (at, err))?;
        at = end;
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Result<Vec<u8>, String> {
        decode(text.as_bytes())
            .map(|b| b.to_vec())
            .map_err(|(at, err)| format!("{at}: {err}"))
    }

    #[test]
    fn chunks_padded_on_their_own_decode_in_a_row() {
        assert_eq!(decoded("AAAAAAE=").unwrap(), [0, 0, 0, 0, 1]);
        assert_eq!(decoded("AA==AAE=aGk=").unwrap(), [0, 0, 1, b'h', b'i']);
        assert_eq!(decoded("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn what_is_not_base64_fails_with_its_place() {
        assert!(decoded("AA=A").is_err());
        assert!(decoded("A===").is_err());
        assert!(decoded("AAAA!AAA").unwrap_err().starts_with("0:"));
        assert!(decoded("AA==AA!A").unwrap_err().starts_with("4:"));
        let (at, err) = decode(b"AA==AA!A").unwrap_err();
        let places = Places {
            carried: &[],
            start: 0,
            data: b"AA==AA!A",
            blank: false,
        };
        assert_eq!(
            explain(at, &err, &places),
            "character 6 ('!') is not base64 here"
        );
    }

    /// The body `chunks` arrive in, decoded.
    async fn through(chunks: &[&'static [u8]]) -> Result<Vec<u8>, String> {
        use http_body_util::{BodyExt as _, StreamBody};
        let frames = chunks
            .iter()
            .map(|&chunk| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(chunk))));
        let body = WebText::new(
            StreamBody::new(tokio_stream::iter(frames.collect::<Vec<_>>())),
            Failure::default(),
        );
        match body.collect().await {
            Ok(all) => Ok(all.to_bytes().to_vec()),
            Err(err) => Err(err.to_string()),
        }
    }

    #[tokio::test]
    async fn whitespace_between_and_inside_groups_is_skipped() {
        let hi = [0, 0, 1, b'h', b'i'];
        for chunks in [
            &[b"AA==AAE=aGk=\n".as_slice()][..],
            &[b"AA==\r\nAAE=\r\naGk=\r\n"],
            &[b" AA== AAE= aGk= "],
            &[b"AA==\tAA", b"E=a", b"Gk", b"=\n"],
            &[b"A\nA", b"\n=", b"=AAE=aG\n", b"\nk=", b"\n", b"\r\n"],
            &[b"\n\n", b"AA==AAE=aGk="],
        ] {
            assert_eq!(through(chunks).await.as_deref(), Ok(&hi[..]), "{chunks:?}");
        }
        assert_eq!(through(&[b"\r\n"]).await, Ok(Vec::new()));
    }

    #[tokio::test]
    async fn places_in_errors_count_the_whitespace() {
        let err = through(&[b"AA==\n", b"AAE=\n!abc"]).await.unwrap_err();
        assert!(err.contains("character 10 ('!')"), "{err}");
        // In the last, incomplete group too.
        let err = through(&[b"AA==\n", b"AAE=\n!a"]).await.unwrap_err();
        assert!(err.contains("character 10 ('!')"), "{err}");
        // Carried over from the chunk before, with whitespace before it.
        let err = through(&[b"AA==\n \n*", b"AAA"]).await.unwrap_err();
        assert!(err.contains("character 7 ('*')"), "{err}");
        // Other whitespace is not skipped.
        let err = through(&[b"AA==\x0bAAE="]).await.unwrap_err();
        assert!(err.contains("character 4 ('\\u{b}')"), "{err}");
        let err = through(&[b"AA==AAE\n"]).await.unwrap_err();
        assert!(err.contains("ends inside a group"), "{err}");
    }

    #[tokio::test]
    async fn a_group_split_across_frames_waits_for_its_rest() {
        use http_body_util::{BodyExt as _, StreamBody};
        let frames = ["AA", "==A", "AE=aG", "k="]
            .map(|chunk| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(chunk))));
        let body = WebText::new(
            StreamBody::new(tokio_stream::iter(frames)),
            Failure::default(),
        );
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], [0, 0, 1, b'h', b'i']);

        let cut = [Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(
            "AAA",
        )))];
        let body = WebText::new(StreamBody::new(tokio_stream::iter(cut)), Failure::default());
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("ends inside"), "{err}");
    }
}
