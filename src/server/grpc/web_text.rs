//! gRPC-Web text request bodies, decoded from base64 before tonic-web
//! reads them.
//!
//! A text body is a run of base64 chunks, each padded on its own: the
//! gateway writes its own text responses so, as gRPC-Web clients write
//! one chunk per message. tonic-web decodes a text body as one base64
//! string, so padding anywhere but at its end failed the call. Here every
//! group of four characters is decoded by itself where padding ends it,
//! and the body reaches tonic-web as binary gRPC-Web.

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
    /// Characters read so far, for the position in an error.
    read: usize,
    failure: Failure,
}

impl<B> WebText<B> {
    pub(super) fn new(inner: B, failure: Failure) -> WebText<B> {
        WebText {
            inner,
            pending: BytesMut::new(),
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
                    return self.fail(format!(
                        "the body ends inside a group of four base64 characters ({} left over)",
                        self.pending.len()
                    ));
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(other) => return Poll::Ready(Some(Ok(other))),
            };
            let this = &mut *self;
            let start = this.read - this.pending.len();
            this.read += data.len();
            this.pending.extend_from_slice(&data);
            let whole = this.pending.len() / GROUP * GROUP;
            let text = this.pending.split_to(whole);
            match decode(&text) {
                Ok(decoded) if decoded.is_empty() => continue,
                Ok(decoded) => return Poll::Ready(Some(Ok(Frame::data(decoded)))),
                Err((at, err)) => return self.fail(explain(start + at, &err)),
            }
        }
    }
}

/// What is wrong at character `at` of the body, where the run that
/// failed begins.
fn explain(at: usize, err: &base64::DecodeError) -> String {
    use base64::DecodeError::{InvalidByte, InvalidLastSymbol};
    match *err {
        InvalidByte(offset, byte) | InvalidLastSymbol(offset, byte) => format!(
            "character {} ({:?}) is not base64 here",
            at + offset,
            char::from(byte)
        ),
        ref other => format!("{other} (in the characters from {at} on)"),
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
        assert_eq!(explain(at, &err), "character 6 ('!') is not base64 here");
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
