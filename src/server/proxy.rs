//! Route groups whose upstream is a plain HTTP service: every request under
//! the prefix is forwarded as it is — method, path, query, headers and a
//! streamed body — and the answer comes back the same way.
//!
//! What a reverse proxy owes both sides is done here: hop-by-hop headers
//! (RFC 9110 §7.6.1) are dropped in both directions, `Host` becomes the
//! upstream's, `X-Forwarded-For`/`-Host`/`-Proto` (and `-Prefix` when the
//! prefix is stripped) tell the upstream who asked. Paths the upstream
//! could resolve to one outside the prefix (`/legacy/../admin`) are
//! refused (400) rather than forwarded (see `target`). Bodies stream
//! both ways; on the way in they are held to `limits.max_body_bytes` and
//! `timeouts.request_body`, and a body the client breaks is answered as
//! its fault (see `body`).
//!
//! Connections to the upstream are pooled (HTTP/1.1, kept alive). Answers
//! are passed on as the upstream encoded them, never compressed again.
//!
//! A WebSocket upgrade is proxied too: the request goes on with its
//! `Connection: Upgrade` and `Upgrade: websocket` (the only hop-by-hop
//! headers that pass, and only for it), and when the upstream answers 101
//! both connections are upgraded and joined byte for byte until either
//! side closes. The upstream's handshake answer is bounded by the group's
//! `timeout` like any answer's head; the tunnel itself has no deadline,
//! as the gateway's own streams have none. Other upgrade protocols are
//! not proxied: such requests go on as plain requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::connection::Transport;
use super::rest::ClientAddr;
use crate::config::UpstreamTls;
use crate::error::GatewayError;
use crate::transcode::{Codec, RequestError};
use crate::upstream::metadata;
use prost_reflect::DescriptorPool;

mod body;
mod target;

use body::{BodyError, Outgoing};

/// How long an idle pooled connection to an upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// One plain HTTP upstream behind a prefix.
#[derive(Clone)]
pub(crate) struct HttpProxy {
    inner: Arc<Inner>,
}

struct Inner {
    /// The prefix, without a trailing `/`, for stripping.
    prefix: Box<str>,
    /// The prefix as configured, for messages.
    shown: Box<str>,
    /// The upstream URL as configured, for messages.
    url: Box<str>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The URL's own path, without a trailing `/` (may be empty).
    base_path: Box<str>,
    strip_prefix: bool,
    timeout: Option<Duration>,
    max_body_bytes: usize,
    body_timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Outgoing>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("prefix", &self.inner.shown)
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// What a proxy needs from config.
#[derive(Debug)]
pub(crate) struct ProxySettings<'a> {
    /// The prefix as configured: messages name it so.
    pub(crate) prefix: &'a str,
    pub(crate) url: &'a str,
    pub(crate) strip_prefix: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) tls: Option<&'a UpstreamTls>,
    pub(crate) max_body_bytes: usize,
    /// `timeouts.request_body`: the whole request body arrives within it.
    pub(crate) body_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl HttpProxy {
    /// A proxy to `settings.url`; fails on a URL or TLS file that cannot
    /// be used.
    pub(crate) fn new(settings: &ProxySettings<'_>) -> Result<HttpProxy, String> {
        let uri: Uri = settings
            .url
            .parse()
            .map_err(|e| format!("`{}` is not a URL: {e}", settings.url))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(format!("`{}` is not an http(s):// URL", settings.url));
        };
        crate::install_crypto_provider();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(settings.tls)?)
            .https_or_http();
        let builder = match settings.tls.and_then(|t| t.server_name.as_deref()) {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.to_owned())
                    .map_err(|e| format!("tls.server_name `{name}`: {e}"))?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(HttpProxy {
            inner: Arc::new(Inner {
                prefix: settings.prefix.trim_end_matches('/').into(),
                shown: settings.prefix.into(),
                url: settings.url.into(),
                scheme,
                authority,
                base_path: uri.path().trim_end_matches('/').into(),
                strip_prefix: settings.strip_prefix,
                timeout: settings.timeout,
                max_body_bytes: settings.max_body_bytes,
                body_timeout: settings.body_timeout,
                client,
            }),
        })
    }

    /// Forwards one request.
    async fn forward(self, request: Request<Body>) -> Result<Response, GatewayError> {
        let inner = &*self.inner;
        let (mut parts, body) = request.into_parts();
        // CONNECT asks for a tunnel, which the gateway does not make (the
        // HTTP client would turn it into one to the service's address).
        if parts.method == Method::CONNECT {
            return Err(GatewayError::UnknownMethod(parts.method));
        }
        let path = target::checked(parts.uri.path()).map_err(RequestError::from)?;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > inner.max_body_bytes as u64) {
            return Err(GatewayError::PayloadTooLarge(inner.max_body_bytes));
        }
        // HTTP/2 clients may name the host only as `:authority`.
        let authority = parts.uri.authority().cloned();
        parts.uri = self.upstream_uri(&path, parts.uri.query())?;
        // Taken before the hop-by-hop headers that announce it go.
        let upgrade = is_websocket_upgrade(&parts.headers)
            .then(|| parts.extensions.remove::<OnUpgrade>())
            .flatten();
        let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
        let transport = parts.extensions.get::<Transport>().copied();
        forwarded_headers(
            &mut parts.headers,
            Asker {
                client,
                scheme: transport.map_or("http", Transport::scheme),
                authority: authority.as_ref(),
            },
            inner.strip_prefix.then_some(&*inner.prefix),
        );
        if upgrade.is_some() {
            announce_upgrade(&mut parts.headers);
        }
        let client_version = std::mem::replace(&mut parts.version, http::Version::HTTP_11);
        let body = Outgoing::new(body, inner.max_body_bytes, inner.body_timeout);
        let call = inner.client.request(Request::from_parts(parts, body));
        let answer = match inner.timeout {
            Some(timeout) => tokio::time::timeout(timeout, call).await.map_err(|_| {
                GatewayError::Upstream(
                    tonic::Status::deadline_exceeded(format!(
                        "route `{}` ({}): no answer within {timeout:?}",
                        inner.shown, inner.url
                    )),
                    None,
                )
            })?,
            None => call.await,
        };
        let mut response = answer.map_err(|e| self.failure(&e))?;
        let switched = match upgrade {
            Some(client) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                Some((client, hyper::upgrade::on(&mut response)))
            }
            _ => None,
        };
        let (mut parts, body) = response.into_parts();
        // Answered in the client's HTTP version, whatever the upstream's.
        parts.version = client_version;
        strip_hop_by_hop(&mut parts.headers);
        if let Some((client, upstream)) = switched {
            announce_upgrade(&mut parts.headers);
            tokio::spawn(self.clone().tunnel(client, upstream));
        }
        // Passed on as the upstream sent it: the gateway does not compress
        // it (which would also hold back a streamed answer's chunks).
        parts.extensions.insert(super::stream::Streamed);
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// Joins the client's upgraded connection to the upstream's, byte for
    /// byte, until either side closes.
    async fn tunnel(self, client: OnUpgrade, upstream: OnUpgrade) {
        let url = &*self.inner.url;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(err) => {
                tracing::debug!(upstream = url, error = %err, "Proxied upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => {
                tracing::debug!(upstream = url, sent, received, "Proxied upgrade ended");
            }
            Err(err) => {
                tracing::debug!(upstream = url, error = %err, "Proxied upgrade broke");
            }
        }
    }

    /// The upstream URI for a request's (checked) path and query: the
    /// upstream's scheme, host and base path, then the path (without the
    /// prefix, if stripped) and query.
    fn upstream_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        let inner = &*self.inner;
        let mut rest = path;
        if inner.strip_prefix {
            rest = rest.strip_prefix(&*inner.prefix).unwrap_or(rest);
        }
        let mut target = String::with_capacity(inner.base_path.len() + rest.len() + 64);
        target.push_str(&inner.base_path);
        // `/legacy` with the prefix stripped is the base path itself (or
        // `/` without one).
        let bare_base = rest.is_empty() && !target.is_empty();
        if !rest.starts_with('/') && !bare_base {
            target.push('/');
        }
        target.push_str(rest);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|e| {
                GatewayError::BadRequest(RequestError::Json {
                    at: None,
                    reason: format!("the path cannot be forwarded: {e}"),
                })
            })
    }

    /// A failed exchange: the client's body, as a transcoded route answers
    /// it (400, 408, 413); an upstream that cannot be reached (503), or one
    /// that answered something that is not HTTP (502), each naming the
    /// route and the upstream.
    fn failure(&self, err: &hyper_util::client::legacy::Error) -> GatewayError {
        let body = crate::upstream::chain(err).find_map(|e| e.downcast_ref::<BodyError>());
        if let Some(body) = body {
            return body.to_gateway();
        }
        let mut text = String::new();
        crate::upstream::append_causes(&mut text, Some(err));
        let message = format!("route `{}` ({}): {text}", self.inner.shown, self.inner.url);
        if err.is_connect() {
            GatewayError::Upstream(tonic::Status::unavailable(message), None)
        } else {
            GatewayError::UpstreamProtocol(message)
        }
    }
}

impl tower::Service<Request<Body>> for HttpProxy {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let response = match proxy.clone().forward(request).await {
                Ok(response) => response,
                Err(err) => {
                    let (status, _) = err.status();
                    static WARNINGS: std::sync::LazyLock<crate::throttle::Throttle> =
                        std::sync::LazyLock::new(crate::throttle::failures);
                    let held = if status.is_server_error() {
                        WARNINGS.allow()
                    } else {
                        None
                    };
                    if let Some(held) = held {
                        tracing::warn!(%method, %path, upstream = &*proxy.inner.url, status = status.as_u16(), error = %err, held, "Proxied request failed");
                    }
                    // No descriptors here: gateway errors carry no details.
                    err.into_response(&DescriptorPool::global(), &Codec::default())
                }
            };
            tracing::debug!(%method, %path, upstream = &*proxy.inner.url, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "Proxied");
            Ok(response)
        })
    }
}

/// Headers that describe one connection, not the message (RFC 9110
/// §7.6.1), plus the names the `Connection` header lists; an HTTP/1.1 hop
/// also drops `TE`, `Trailer` and the proxy credentials.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    crate::upstream::strip_connection_options(headers);
    for name in [
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
    ] {
        headers.remove(name);
    }
}

/// Whether a request asks to switch to WebSocket (RFC 6455 §4.1): `GET`
/// is checked by the upstream, which answers what it makes of the rest.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// The hop-by-hop headers of a WebSocket upgrade, put back after the
/// others were dropped: the upgrade is asked for (and granted) on each
/// hop anew.
fn announce_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Who asked, as the `X-Forwarded-*` headers tell the upstream.
struct Asker<'a> {
    /// The client's address.
    client: Option<std::net::SocketAddr>,
    /// How it reached the listener: `http` or `https`.
    scheme: &'static str,
    /// The target's authority (HTTP/2's `:authority`).
    authority: Option<&'a http::uri::Authority>,
}

/// The request headers as the upstream gets them: hop-by-hop ones gone,
/// `Host` left for the client to set from the upstream URL, and the
/// `X-Forwarded-*` set saying who asked.
fn forwarded_headers(headers: &mut HeaderMap, asker: Asker<'_>, prefix: Option<&str>) {
    let Asker {
        client,
        scheme,
        authority,
    } = asker;
    let host = metadata::forwarded_host(headers, authority.map(|a| a.as_str()))
        .and_then(|h| HeaderValue::from_str(h).ok());
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    match host {
        Some(host) => headers.insert("x-forwarded-host", host),
        None => headers.remove("x-forwarded-host"),
    };
    let list = metadata::forwarded_for(headers, client.map(|c| c.ip()));
    match HeaderValue::from_str(&list) {
        Ok(value) if !list.is_empty() => headers.insert("x-forwarded-for", value),
        _ => headers.remove("x-forwarded-for"),
    };
    // RFC 7239's `Forwarded` gets this hop appended, as `X-Forwarded-For`
    // does: passed on alone, it held only what the client wrote.
    // `X-Real-IP` (one address, by convention the client's) is this
    // client's, never one the client claims.
    match client.map(|c| c.ip()) {
        Some(ip) => {
            let element = forwarded_element(ip, scheme, headers.get("x-forwarded-host"));
            let mut all: Vec<&str> = headers
                .get_all(header::FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            all.push(&element);
            if let Ok(value) = HeaderValue::from_str(&all.join(", ")) {
                headers.insert(header::FORWARDED, value);
            }
            if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
                headers.insert("x-real-ip", value);
            }
        }
        None => {
            headers.remove("x-real-ip");
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    match prefix.and_then(|p| HeaderValue::from_str(p).ok()) {
        Some(prefix) => {
            headers.insert("x-forwarded-prefix", prefix);
        }
        None => {
            headers.remove("x-forwarded-prefix");
        }
    }
}

/// This hop's `Forwarded` element (RFC 7239 §4): the client's address
/// (an IPv6 one bracketed and quoted), the scheme, and the host asked for,
/// quoted.
fn forwarded_element(ip: std::net::IpAddr, scheme: &str, host: Option<&HeaderValue>) -> String {
    let mut element = match ip {
        std::net::IpAddr::V4(ip) => format!("for={ip}"),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    element.push_str(";proto=");
    element.push_str(scheme);
    // `X-Forwarded-Host` is already checked to be `host[:port]`: nothing
    // in it needs escaping inside quotes.
    if let Some(host) = host.and_then(|h| h.to_str().ok()) {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    element
}

/// TLS for an `https://` upstream: the system's roots and the webpki
/// roots, plus `ca_file`, and a client certificate for mutual TLS.
fn tls_config(tls: Option<&UpstreamTls>) -> Result<rustls::ClientConfig, String> {
    match tls {
        Some(tls) => crate::tls::ClientTls::load(tls)?.rustls_config(),
        None => crate::tls::ClientTls::default().rustls_config(),
    }
}
