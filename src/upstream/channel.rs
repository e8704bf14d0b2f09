//! The channel to one endpoint: a lazily connected, multiplexed HTTP/2
//! connection that tonic's gRPC client (and the pass-through) sends
//! requests on.
//!
//! A cleartext endpoint gets [`plain::PlainChannel`], our own client on
//! the `h2` crate; a TLS endpoint keeps tonic's channel. Our own client
//! exists for speed: hyper's HTTP/2 client sends every request body from
//! a task of its own, so each call costs its own `write`, and tonic's
//! channel adds a buffer task in front. [`plain`] sends a body that is
//! already complete (every unary call) along with its headers, so the
//! calls that come together leave in one write. TLS stays on tonic,
//! which brings the handshake, certificate roots and client identities;
//! a TLS connection on this client is left until it is measured to pay.

mod plain;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use tonic::body::Body;
use tower::Service;

pub(crate) use plain::PlainChannel;

/// The largest response header block (and trailer block) taken from a
/// backend, as HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE. hyper's client (and
/// so tonic's) takes 16 KiB; past it the `h2` crate drops the trailers'
/// remaining fields without an error (a status or error details among
/// them), and past four times it ends the whole connection, every other
/// call on it too. A backend that echoes a client's headers into its
/// trailers can reach 16 KiB, since `limits.max_header_bytes` lets a
/// client send 64 KiB; 1 MiB leaves room for that and for large error
/// details. Known shortcoming: a block past it is still cut short
/// without an error, which `h2` does not report.
pub(crate) const MAX_RESPONSE_HEADER_LIST: u32 = 1 << 20;

/// A boxed error, as tonic's client takes them.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How to reach one endpoint; [`Dial::connect_lazy`] makes its channel.
#[derive(Debug, Clone)]
pub(crate) enum Dial {
    /// `http://`: our own HTTP/2 client.
    Plain(Box<plain::Target>),
    /// `https://`: tonic's channel, with its TLS settings.
    Tonic(Box<tonic::transport::Endpoint>),
}

impl Dial {
    /// A cleartext endpoint at `uri` (scheme, host and port).
    pub(crate) fn plain(
        uri: &http::Uri,
        connect_timeout: Duration,
        user_agent: HeaderValue,
    ) -> Result<Dial, String> {
        plain::Target::new(uri, connect_timeout, user_agent)
            .map(|target| Dial::Plain(Box::new(target)))
    }

    /// A channel to this endpoint that connects on its first call (and
    /// again on the next call after its connection ends).
    pub(crate) fn connect_lazy(&self) -> Channel {
        match self {
            Dial::Plain(target) => Channel::Plain(PlainChannel::new((**target).clone())),
            Dial::Tonic(endpoint) => Channel::Tonic(endpoint.connect_lazy()),
        }
    }
}

/// A channel to one endpoint; cheap to clone (the clones share the
/// connection).
#[derive(Debug, Clone)]
pub enum Channel {
    /// Cleartext, on our own HTTP/2 client.
    Plain(PlainChannel),
    /// tonic's channel (TLS endpoints).
    Tonic(tonic::transport::Channel),
}

impl From<tonic::transport::Channel> for Channel {
    fn from(channel: tonic::transport::Channel) -> Channel {
        Channel::Tonic(channel)
    }
}

/// `grpc-status-details-bin` as tonic decodes it: standard alphabet,
/// padding optional, no stray trailing bits.
const DETAILS_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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
    if DETAILS_BASE64.decode(details.as_bytes()).is_err() {
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
        Some(value) if !value.as_bytes().starts_with(b"application/grpc") => Err(NotGrpc(
            String::from_utf8_lossy(value.as_bytes())
                .chars()
                .take(100)
                .collect(),
        )),
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
        Some(value) => format!(
            " with Content-Type `{}`",
            String::from_utf8_lossy(value.as_bytes())
                .chars()
                .take(100)
                .collect::<String>()
        ),
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
    Some(answer)
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
            encoded: head
                .headers()
                .get("grpc-encoding")
                .is_some_and(|v| v.as_bytes() != b"identity"),
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
        let shown: String = String::from_utf8_lossy(bytes).chars().take(20).collect();
        return Err(Violation(
            format!("the backend sent grpc-status `{shown}`, which is not a status code").into(),
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

/// A tonic channel's response body with [`drop_undecodable_details`]
/// applied to its trailers and its messages' bounds followed (our own
/// client does both where it reads the stream).
struct Checked {
    body: Body,
    bounds: MessageBounds,
}

impl http_body::Body for Checked {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        let this = &mut *self;
        match std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) {
            Some(Ok(mut frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.bounds.follow(data)?;
                } else if let Some(trailers) = frame.trailers_mut() {
                    this.bounds.check_trailers(trailers)?;
                    drop_undecodable_details(trailers);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(status)) => Poll::Ready(Some(Err(status.into()))),
            None => {
                this.bounds.check_finish()?;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Service<Request<Body>> for Channel {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Channel::Plain(_) => Poll::Ready(Ok(())),
            Channel::Tonic(channel) => channel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self {
            Channel::Plain(channel) => Box::pin(channel.call(request)),
            Channel::Tonic(channel) => {
                let call = channel.call(request);
                Box::pin(async move {
                    let mut response = call.await?;
                    check_content_type(&response)?;
                    if let Some(answer) = http_status_answer(&response) {
                        return Ok(answer);
                    }
                    check_status(response.headers())?;
                    drop_undecodable_details(response.headers_mut());
                    let bounds = MessageBounds::of(&response);
                    Ok(response.map(|body| Body::new(Checked { body, bounds })))
                })
            }
        }
    }
}

/// Readies a client's headers for a gRPC call passed through on either
/// kind of channel: removes the headers that name HTTP/1.1 connection
/// options, and those that `Connection` names, which an HTTP/2 request
/// must not carry (a call from an HTTP/1.1 client arrives with them), and
/// sets `te: trailers`, which gRPC over HTTP/2 requires of every request.
/// The gateway is the client on this hop, so it sends `te` whatever the
/// client's own hop carried: an HTTP/1.1 client names `TE` in
/// `Connection` (so it goes with the connection options), and a browser
/// sends none.
pub(crate) fn strip_connection_headers(headers: &mut HeaderMap) {
    strip_connection_options(headers);
    // Lowercase: h2 refuses any other spelling.
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
}

/// Removes `Connection`, the names it lists, and the headers that only
/// ever describe one connection (RFC 9110 §7.6.1): what every hop drops,
/// whatever it does with `TE` and the proxy headers.
pub(crate) fn strip_connection_options(headers: &mut HeaderMap) {
    const CONNECTION_SPECIFIC: [HeaderName; 4] = [
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ];
    if let header::Entry::Occupied(connection) = headers.entry(header::CONNECTION) {
        let (_, named) = connection.remove_entry_mult();
        let named: Vec<HeaderValue> = named.collect();
        for name in named
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
        {
            headers.remove(name.trim());
        }
    }
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
}

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

    #[test]
    fn connection_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_connection_headers(&mut headers);
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
        assert_eq!(headers[header::TE], "trailers");

        headers.insert(header::TE, HeaderValue::from_static("Trailers"));
        headers.append(header::CONNECTION, HeaderValue::from_static("x-one"));
        headers.append(header::CONNECTION, HeaderValue::from_static("x-two"));
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.insert("x-two", HeaderValue::from_static("2"));
        strip_connection_headers(&mut headers);
        // h2 takes `te` only in lowercase.
        assert_eq!(headers[header::TE], "trailers");
        assert!(!headers.contains_key("x-one") && !headers.contains_key("x-two"));
    }

    /// An HTTP/1.1 client names `TE` in `Connection`, as RFC 9110 asks,
    /// and a browser's gRPC-Web call carries no `TE` at all: the HTTP/2
    /// call to the backend carries `te: trailers` either way.
    #[test]
    fn a_passed_through_call_always_carries_te_trailers() {
        let mut from_http1 = HeaderMap::new();
        from_http1.insert(header::CONNECTION, HeaderValue::from_static("TE"));
        from_http1.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_connection_headers(&mut from_http1);
        assert!(!from_http1.contains_key(header::CONNECTION));
        assert_eq!(from_http1.get_all(header::TE).iter().count(), 1);
        assert_eq!(from_http1[header::TE], "trailers");

        let mut from_browser = HeaderMap::new();
        strip_connection_headers(&mut from_browser);
        assert_eq!(from_browser[header::TE], "trailers");
    }
}
