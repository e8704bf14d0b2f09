//! The channel to one endpoint: a lazily connected, multiplexed HTTP/2
//! connection that tonic's gRPC client (and the pass-through) sends
//! requests on.
//!
//! Every endpoint, cleartext or TLS, gets [`client::H2Channel`], our own
//! client on the `h2` crate. It exists for speed: hyper's HTTP/2 client
//! sends every request body from a task of its own, so each call costs its
//! own `write`, and tonic's channel adds a buffer task in front.
//! [`client`] sends a body that is already complete (every unary call)
//! along with its headers, so the calls that come together leave in one
//! write. It also connects before a call starts when asked
//! ([`Channel::connected`]), which a call whose requests cannot be sent
//! twice needs to go elsewhere when an endpoint cannot be reached; tonic's
//! channel connects only inside a call. A TLS endpoint's connection is the
//! same HTTP/2 connection over a rustls handshake that must agree on `h2`
//! by ALPN ([`client::Tls`]).

mod answer;
mod client;

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
pub(crate) use client::{ALPN_H2, H2Channel, Tls};

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
pub(crate) struct Dial(Box<client::Target>);

impl Dial {
    /// The endpoint at `uri` (scheme, host and port), in cleartext or,
    /// with `tls`, over TLS.
    pub(crate) fn new(
        uri: &http::Uri,
        connect_timeout: Duration,
        user_agent: HeaderValue,
        tls: Option<Tls>,
    ) -> Result<Dial, String> {
        client::Target::new(uri, connect_timeout, user_agent, tls)
            .map(|target| Dial(Box::new(target)))
    }

    /// A channel to this endpoint that connects on its first call (and
    /// again on the next call after its connection ends).
    pub(crate) fn connect_lazy(&self) -> Channel {
        Channel(H2Channel::new((*self.0).clone()))
    }
}

/// A channel to one endpoint; cheap to clone (the clones share the
/// connection).
#[derive(Debug, Clone)]
pub struct Channel(H2Channel);

impl Channel {
    /// Waits until the channel has a connection, opening one if it has
    /// none (the TLS handshake included), so that a call whose requests
    /// cannot be sent again may go elsewhere when this endpoint cannot be
    /// reached.
    pub(crate) async fn connected(&self) -> Result<(), BoxError> {
        self.0.connected().await
    }
}

impl Service<Request<Body>> for Channel {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.call(request))
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
