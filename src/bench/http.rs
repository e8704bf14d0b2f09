//! The HTTP side of the load: hyper clients that send one scenario's
//! REST request, read the whole answer and check it. HTTP/1.1 gets one
//! connection per worker; HTTP/2 shares a few connections among all
//! workers, one stream per request.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::load::Call;

/// One REST request as sent, and what a right answer holds.
#[derive(Debug, Clone)]
pub(super) struct RestRequest {
    pub(super) method: Method,
    /// Path and query.
    pub(super) target: String,
    /// JSON; empty for none.
    pub(super) body: Bytes,
    /// For a server stream: how many messages (one JSON line each) the
    /// answer must carry.
    pub(super) lines: Option<u64>,
}

impl RestRequest {
    /// The request to `uri`; HTTP/1.1 needs `host`, HTTP/2 takes the
    /// authority from the URI.
    fn build(&self, uri: Uri, host: Option<&str>) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder().method(self.method.clone()).uri(uri);
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        if !self.body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))
    }
}

/// Reads an answer whole and checks its status and, for streams, the
/// number of lines.
async fn check(response: http::Response<Incoming>, want_lines: Option<u64>) -> Result<(), String> {
    let status = response.status();
    let mut body = response.into_body();
    let mut lines = 0u64;
    let mut start = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
            if status != StatusCode::OK && start.len() < 300 {
                start.extend_from_slice(&data[..data.len().min(300)]);
            }
        }
    }
    if status != StatusCode::OK {
        return Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&start)
        ));
    }
    match want_lines {
        Some(want) if lines != want => Err(format!("the stream carried {lines} lines, not {want}")),
        _ => Ok(()),
    }
}

fn parse_uri(text: &str) -> Result<Uri, String> {
    text.parse().map_err(|e| format!("bad URI {text}: {e}"))
}

async fn connect(addr: SocketAddr) -> Result<TokioIo<TcpStream>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    Ok(TokioIo::new(stream))
}

/// A worker on its own HTTP/1.1 connection, opened again after a failure.
#[derive(Debug)]
pub(super) struct Http1 {
    addr: SocketAddr,
    authority: String,
    uri: Uri,
    request: RestRequest,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Http1 {
    /// A worker for `request` against `addr`; it connects on first use.
    pub(super) fn new(addr: SocketAddr, request: RestRequest) -> Result<Http1, String> {
        Ok(Http1 {
            addr,
            authority: addr.to_string(),
            uri: parse_uri(&request.target)?,
            request,
            sender: None,
        })
    }

    async fn open(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, String> {
        if self.sender.is_none() {
            let io = connect(self.addr).await?;
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    async fn once(&mut self) -> Result<(), String> {
        let request = self
            .request
            .build(self.uri.clone(), Some(&self.authority))?;
        let lines = self.request.lines;
        let sender = self.open().await?;
        sender
            .ready()
            .await
            .map_err(|e| format!("the connection closed: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        check(response, lines).await
    }
}

impl Call for Http1 {
    async fn call(&mut self) -> Result<(), String> {
        let result = self.once().await;
        if result.is_err() {
            // The connection may be what failed: the next call opens a new one.
            self.sender = None;
        }
        result
    }
}

/// HTTP/2 connections for a run's workers to share.
#[derive(Debug)]
pub(super) struct Http2Pool {
    senders: Vec<http2::SendRequest<Full<Bytes>>>,
}

/// Flow-control windows of the load's HTTP/2 connections (and of the
/// direct gRPC ones): large enough that a long stream is not throttled by
/// the client, as browsers and curl set them.
pub(super) const STREAM_WINDOW: u32 = 1 << 20;
pub(super) const CONNECTION_WINDOW: u32 = 16 << 20;

impl Http2Pool {
    /// Opens `connections` HTTP/2 (prior knowledge) connections to `addr`.
    pub(super) async fn open(addr: SocketAddr, connections: usize) -> Result<Http2Pool, String> {
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let io = connect(addr).await?;
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake(io)
                .await
                .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
            tokio::spawn(connection);
            senders.push(sender);
        }
        Ok(Http2Pool { senders })
    }

    /// Worker `index`'s handle: the workers take the connections in turn.
    pub(super) fn worker(
        &self,
        index: usize,
        addr: SocketAddr,
        request: RestRequest,
    ) -> Result<Http2, String> {
        Ok(Http2 {
            sender: self.senders[index % self.senders.len()].clone(),
            uri: parse_uri(&format!("http://{addr}{}", request.target))?,
            request,
        })
    }
}

/// A worker sending its requests as streams on a shared connection.
#[derive(Debug)]
pub(super) struct Http2 {
    sender: http2::SendRequest<Full<Bytes>>,
    uri: Uri,
    request: RestRequest,
}

impl Call for Http2 {
    async fn call(&mut self) -> Result<(), String> {
        let request = self.request.build(self.uri.clone(), None)?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("the connection closed: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        check(response, self.request.lines).await
    }
}

/// Sends one request on a new HTTP/1.1 connection and reads the answer:
/// for setup steps, not measured.
pub(super) async fn send_once(
    addr: SocketAddr,
    request: &RestRequest,
) -> Result<(StatusCode, Bytes), String> {
    let (mut sender, connection) = http1::handshake(connect(addr).await?)
        .await
        .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
    tokio::spawn(connection);
    let authority = addr.to_string();
    let request = request.build(parse_uri(&request.target)?, Some(&authority))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?
        .to_bytes();
    Ok((status, body))
}
