//! What the channel checks in a backend's answer before a face reads it:
//! its HTTP status and content type, the bounds and flags of its
//! messages, its `grpc-status` (once, a number, and there), and status
//! details tonic would panic on. A fault in the messages or the status
//! is a [`Violation`]: the backend's, said as such on every face.

use http::header;
use http::{HeaderMap, HeaderValue, Response};
use tonic::body::Body;

/// Removes a `grpc-status-details-bin` that is not base64 from a
/// backend's response head or trailers, keeping its status and message:
/// tonic's client panics on reading one (`Status::from_header_map`), so
/// a broken backend would take the call down with no answer. Looked at
/// only when the header is there, which is on errors.
pub(crate) fn drop_undecodable_details(headers: &mut HeaderMap) {
    use base64::Engine as _;
    let Some(details) = headers.get(GRPC_STATUS_DETAILS) else {
        return;
    };
    // As tonic decodes it.
    if crate::upstream::metadata::BIN_BASE64
        .decode(details.as_bytes())
        .is_err()
    {
        tracing::debug!(
            header = GRPC_STATUS_DETAILS,
            "Dropped a backend's status details that are not base64"
        );
        headers.remove(GRPC_STATUS_DETAILS);
    }
}

const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// A backend's `200 OK` whose `Content-Type` is not gRPC's (a web server
/// or proxy answering with a page): refused before its body is read as
/// gRPC messages, where `<` would read as an unknown message flag.
pub(crate) fn check_content_type<B>(response: &Response<B>) -> Result<(), NotGrpc> {
    if response.status() != http::StatusCode::OK {
        // tonic maps other statuses to gRPC codes itself.
        return Ok(());
    }
    match response.headers().get(header::CONTENT_TYPE) {
        Some(value) if !value.as_bytes().starts_with(b"application/grpc") => {
            Err(NotGrpc(shown(value, 100)))
        }
        _ => Ok(()),
    }
}

/// How the status [`http_status_answer`] makes begins: that of a server
/// that answered in HTTP, not gRPC.
pub(crate) const HTTP_ANSWER: &str = "the backend answered HTTP ";

/// A backend's answer other than `200 OK` without a `grpc-status` (a
/// proxy's or load balancer's error page, an auth proxy's refusal) as
/// the trailers-only answer gRPC's HTTP-to-gRPC status mapping makes of
/// it: 401 is UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
/// 429, 502, 503 and 504 UNAVAILABLE, 400 INTERNAL, any other UNKNOWN.
/// Its body is not gRPC messages and is dropped; left to tonic, it was
/// read as messages (`<` an unknown flag).
pub(crate) fn http_status_answer<B>(response: &Response<B>) -> Option<Response<Body>> {
    use http::StatusCode;
    use tonic::Code;
    let status = response.status();
    if status == StatusCode::OK || response.headers().contains_key("grpc-status") {
        return None;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    let kind = match response.headers().get(header::CONTENT_TYPE) {
        Some(value) => format!(" with Content-Type `{}`", shown(value, 100)),
        None => String::new(),
    };
    let message = format!("{HTTP_ANSWER}{status}{kind} and no gRPC status");
    let mut head = HeaderMap::new();
    head.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    // The message is ours and fits a header: this does not fail.
    let _ = tonic::Status::new(code, message).add_header(&mut head);
    let mut answer = Response::new(Body::empty());
    *answer.headers_mut() = head;
    answer.extensions_mut().insert(HttpAnswer);
    Some(answer)
}

/// Marks the answer [`http_status_answer`] made, so that a relay that
/// passes answers on as they are can still name the upstream in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpAnswer;

/// A backend's header value in a message: its first `max` characters.
fn shown(value: &HeaderValue, max: usize) -> String {
    String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(max)
        .collect()
}

/// See [`check_content_type`].
#[derive(Debug, thiserror::Error)]
#[error("the backend answered with Content-Type `{0}`, not gRPC")]
pub(crate) struct NotGrpc(String);

/// Where a response body stands in its length-prefixed messages, so
/// that trailers (or the end) arriving inside a message are told apart
/// from a clean end: tonic's decoder takes trailers as the end whatever
/// its buffer holds, so a message cut short before an OK status would
/// vanish, the call a success. Each message's flags are checked on the
/// way: a bit gRPC gives no meaning, or the compressed bit on a response
/// whose `grpc-encoding` names no compression, is the backend's fault.
#[derive(Debug, Default)]
pub(crate) struct MessageBounds {
    /// Bytes of the current message's payload still to come.
    remaining: usize,
    /// Bytes of the current prefix seen (0 between messages).
    prefix: usize,
    /// The length bytes of the prefix being read.
    length: [u8; 4],
    /// Whether the response's `grpc-encoding` names a compression.
    encoded: bool,
    /// Whether the body is gRPC messages at all: an answer other than
    /// `200 OK` (a proxy's error page) is not, and tonic reads its HTTP
    /// status instead.
    ignored: bool,
    /// Whether a status has come: in the head (a trailers-only answer)
    /// or in the trailers. A body must end with one.
    status_seen: bool,
}

impl MessageBounds {
    /// The bounds of a response with `head`.
    pub(crate) fn of<B>(head: &Response<B>) -> MessageBounds {
        MessageBounds {
            encoded: crate::upstream::metadata::is_encoded(head.headers()),
            ignored: head.status() != http::StatusCode::OK,
            status_seen: head.headers().contains_key("grpc-status"),
            ..MessageBounds::default()
        }
    }

    /// The error for trailers that end the body here: inside a message,
    /// or without a status the head did not give either.
    pub(crate) fn check_trailers(&mut self, trailers: &HeaderMap) -> Result<(), Violation> {
        self.check_end()?;
        if self.ignored {
            return Ok(());
        }
        check_status(trailers)?;
        self.status_seen |= trailers.contains_key("grpc-status");
        if !self.status_seen {
            return Err(Violation(NO_STATUS.into()));
        }
        Ok(())
    }

    /// The error for a body that ends here with no trailers: inside a
    /// message, or without the status the head did not give.
    pub(crate) fn check_finish(&self) -> Result<(), Violation> {
        self.check_end()?;
        if !self.ignored && !self.status_seen {
            return Err(Violation(NO_STATUS.into()));
        }
        Ok(())
    }

    /// Follows `data`, the next bytes of the body.
    pub(crate) fn follow(&mut self, mut data: &[u8]) -> Result<(), Violation> {
        if self.ignored {
            return Ok(());
        }
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            if self.prefix > 0 {
                self.length[self.prefix - 1] = data[0];
            } else {
                self.check_flags(data[0])?;
            }
            self.prefix += 1;
            data = &data[1..];
            if self.prefix == 5 {
                self.remaining = u32::from_be_bytes(self.length) as usize;
                self.prefix = 0;
            }
        }
        Ok(())
    }

    fn check_flags(&self, flags: u8) -> Result<(), Violation> {
        if flags & !1 != 0 {
            return Err(Violation(
                format!("the backend sent a message with unknown flags {flags:#04x}").into(),
            ));
        }
        if flags & 1 == 1 && !self.encoded {
            return Err(Violation(
                "the backend sent a message flagged compressed, but no grpc-encoding names its compression".into(),
            ));
        }
        Ok(())
    }

    /// The error for a body that ends here, when it ends inside a message.
    pub(crate) fn check_end(&self) -> Result<(), Violation> {
        if !self.ignored && (self.remaining > 0 || self.prefix > 0) {
            return Err(Violation(
                "the backend's response ended inside a message, which is lost".into(),
            ));
        }
        Ok(())
    }
}

const NO_STATUS: &str = "the backend ended the call without a grpc-status";

/// Checks the `grpc-status` in a backend's head or trailers: once, and a
/// number. Left to the clients, an unreadable one became UNKNOWN (tonic)
/// or was passed on as it was, and a second one was read by some as the
/// first and by others as the last.
pub(crate) fn check_status(headers: &HeaderMap) -> Result<(), Violation> {
    let mut codes = headers.get_all("grpc-status").iter();
    let Some(code) = codes.next() else {
        return Ok(());
    };
    if codes.next().is_some() {
        return Err(Violation(
            "the backend sent grpc-status more than once".into(),
        ));
    }
    let bytes = code.as_bytes();
    if !(1..=3).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(Violation(
            format!(
                "the backend sent grpc-status `{}`, which is not a status code",
                shown(code, 20)
            )
            .into(),
        ));
    }
    Ok(())
}

/// A backend's answer that breaks the gRPC protocol in a way the gateway
/// checks for (a message cut short or wrongly flagged, a second answer
/// to a unary call): the backend's fault, a 502 saying what it did.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Violation(pub(crate) std::borrow::Cow<'static, str>);

#[cfg(test)]
mod tests {
    use super::*;

    /// Message bounds are followed across any cut of the body, prefixes
    /// included; an end inside a message or a prefix is told.
    #[test]
    fn message_bounds_survive_any_cut() {
        let body: Vec<u8> = [
            &b"\x00\x00\x00\x00\x02hi"[..],
            b"\x00\x00\x00\x00\x00",
            b"\x01\x00\x00\x01\x00",
        ]
        .concat()
        .into_iter()
        .chain(std::iter::repeat_n(7, 256))
        .collect();
        let encoded = || {
            let head = Response::builder()
                .header("grpc-encoding", "gzip")
                .body(())
                .unwrap();
            MessageBounds::of(&head)
        };
        for size in 1..=body.len() {
            let mut bounds = encoded();
            for chunk in body.chunks(size) {
                bounds.follow(chunk).unwrap();
            }
            assert!(bounds.check_end().is_ok(), "chunks of {size}");
        }
        for cut in 1..body.len() {
            let mut bounds = encoded();
            bounds.follow(&body[..cut]).unwrap();
            // Whole messages end at 7 and 12.
            assert_eq!(
                bounds.check_end().is_ok(),
                cut == 7 || cut == 12,
                "cut at {cut}"
            );
        }
    }

    /// Flags gRPC gives no meaning, and the compressed flag without an
    /// encoding, are refused where the prefix starts, however it is cut.
    #[test]
    fn message_flags_are_checked() {
        for (flags, what) in [
            (0x02, "unknown flags 0x02"),
            (0x80, "unknown flags 0x80"),
            (0x01, "compressed"),
        ] {
            let body = [&b"\x00\x00\x00\x00\x01x"[..], &[flags, 0, 0, 0, 0]].concat();
            for size in 1..=body.len() {
                let mut bounds = MessageBounds::default();
                let refused = body
                    .chunks(size)
                    .find_map(|chunk| bounds.follow(chunk).err())
                    .unwrap_or_else(|| panic!("{flags:#x} in chunks of {size} is refused"));
                assert!(refused.0.contains(what), "{refused}");
            }
        }
        let head = Response::builder()
            .header("grpc-encoding", "identity")
            .body(())
            .unwrap();
        assert!(
            MessageBounds::of(&head)
                .follow(b"\x01\x00\x00\x00\x00")
                .is_err()
        );
        // An error page is not read as messages.
        let page = Response::builder().status(502).body(()).unwrap();
        let mut bounds = MessageBounds::of(&page);
        assert!(bounds.follow(b"<html>").is_ok());
        assert!(bounds.check_end().is_ok());
    }
}
