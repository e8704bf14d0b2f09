//! A call's request body on its HTTP/2 stream: queued with the headers
//! when it is ready at once, else piped by a task as it arrives and as
//! flow control allows, and reset (never with CANCEL) when it fails or
//! the call is dropped.

use std::future::poll_fn;

use bytes::Bytes;
use futures_util::FutureExt as _;
use h2::SendStream;
use http_body::Frame;
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tonic::body::Body;

/// How much of a body that is ready at once is queued with the headers;
/// the rest goes through [`pipe`], which waits for flow control.
const INLINE_BUDGET: usize = 64 << 10;

/// Sends a request body on its stream: what is ready now (up to
/// [`INLINE_BUDGET`], or one message of any size) is queued with the
/// headers, the rest is sent by a task as it comes. Returns the handle
/// that stops that task (resetting the stream) when the call is dropped.
pub(super) fn send_body(mut body: Body, mut stream: SendStream<Bytes>) -> Option<Abandon> {
    // Each data frame is held back until the next poll says whether it is
    // the last, so that it carries the end of the stream.
    let mut held: Option<Bytes> = None;
    let mut queued = 0;
    loop {
        let polled = if queued < INLINE_BUDGET {
            body.frame().now_or_never()
        } else {
            None
        };
        match polled {
            Some(None) => {
                let _ = stream.send_data(held.unwrap_or_default(), true);
                return None;
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    queued += data.len();
                    if let Some(data) = held.replace(data) {
                        let _ = stream.send_data(data, false);
                    }
                }
                Err(frame) => {
                    if let Some(data) = held.take() {
                        let _ = stream.send_data(data, false);
                    }
                    end_with(frame, &mut stream);
                    return None;
                }
            },
            Some(Some(Err(err))) => {
                stream.send_reset(reset_reason(&err));
                return None;
            }
            None => {
                if let Some(data) = held.take() {
                    let _ = stream.send_data(data, false);
                }
                let (abandon, abandoned) = oneshot::channel();
                tokio::spawn(pipe(body, stream, abandoned));
                return Some(Abandon(Some(abandon)));
            }
        }
    }
}

/// Ends a request stream with a frame that is not data: its trailers, or
/// (a kind of frame that should not exist) a reset.
fn end_with(frame: Frame<Bytes>, stream: &mut SendStream<Bytes>) {
    match frame.into_trailers() {
        Ok(trailers) => {
            let _ = stream.send_trailers(trailers);
        }
        Err(_) => stream.send_reset(h2::Reason::INTERNAL_ERROR),
    }
}

/// Held by a call whose body is being piped: dropped before the response
/// ended, it tells the pipe to reset the stream, as the stream
/// itself stays open while the pipe holds it; disarmed once the response
/// ended.
pub(super) struct Abandon(Option<oneshot::Sender<()>>);

impl Abandon {
    /// The response ended: the call was not abandoned.
    pub(super) fn disarm(&mut self) {
        if let Some(finished) = self.0.take() {
            let _ = finished.send(());
        }
    }
}

/// Sends the rest of a body as it arrives and as flow control allows;
/// stops when the peer resets the stream, and resets it when the call was
/// dropped (`abandoned` fails) or stops when its response ended.
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>, mut abandoned: oneshot::Receiver<()>) {
    loop {
        let next = tokio::select! {
            next = body.frame() => next,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
            ended = &mut abandoned => return stop(&mut stream, ended.is_ok()),
        };
        let frame = match next {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                stream.send_reset(reset_reason(&err));
                return;
            }
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return end_with(frame, &mut stream),
        };
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let granted = tokio::select! {
                granted = poll_fn(|cx| stream.poll_capacity(cx)) => granted,
                ended = &mut abandoned => return stop(&mut stream, ended.is_ok()),
            };
            let granted = match granted {
                Some(Ok(granted)) => granted,
                // The stream was reset or the connection ended; the
                // response says how.
                Some(Err(_)) | None => return,
            };
            let chunk = data.split_to(granted.min(data.len()));
            if stream.send_data(chunk, false).is_err() {
                return;
            }
        }
    }
}

/// Stops piping: a call dropped before its response ended is reset, so
/// the backend stops; after the response ended, the rest of the body is
/// moot. The reset says INTERNAL_ERROR, not CANCEL, for the reason
/// [`reset_reason`] gives: the request stream is unfinished here, and a
/// tonic server would take CANCEL for its end and act on the call.
fn stop(stream: &mut SendStream<Bytes>, response_ended: bool) {
    if !response_ended {
        stream.send_reset(h2::Reason::INTERNAL_ERROR);
    }
}

/// The reset for a request body that failed: the HTTP/2 reason it names,
/// else INTERNAL_ERROR. Never CANCEL for a body's own failure: a tonic
/// server reads a request stream reset with CANCEL as a clean end, and
/// would act on a call the gateway meant to abandon.
fn reset_reason(err: &tonic::Status) -> h2::Reason {
    crate::upstream::under(err)
        .find_map(|err| err.downcast_ref::<h2::Error>().and_then(h2::Error::reason))
        .unwrap_or(h2::Reason::INTERNAL_ERROR)
}
