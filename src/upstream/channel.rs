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

mod answer;
mod plain;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use tonic::body::Body;
use tower::Service;

pub(crate) use answer::{
    HTTP_ANSWER, HttpAnswer, MessageBounds, Violation, check_content_type, check_status,
    drop_undecodable_details, http_status_answer,
};
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

impl Channel {
    /// Waits until the channel has a connection, opening one if it has
    /// none, so that a call whose requests cannot be sent again may go
    /// elsewhere when this endpoint cannot be reached. tonic's channel
    /// (TLS endpoints) connects inside its calls only: for it this is
    /// always `Ok`, and a failure to connect fails the call itself.
    pub(crate) async fn connected(&self) -> Result<(), BoxError> {
        match self {
            Channel::Plain(channel) => channel.connected().await,
            Channel::Tonic(_) => Ok(()),
        }
    }
}

impl From<tonic::transport::Channel> for Channel {
    fn from(channel: tonic::transport::Channel) -> Channel {
        Channel::Tonic(channel)
    }
}

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
        // Not while a check at the end would fail: the error must be
        // polled for, or a relay would end the response without it.
        self.body.is_end_stream() && self.bounds.check_finish().is_ok()
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
