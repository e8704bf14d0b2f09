//! A plain hyper client that shows response frames one by one (chunks on
//! HTTP/1.1, DATA frames on HTTP/2) and can stream a request body.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;
use tokio::sync::mpsc;

pub type RequestBody = BoxBody<Bytes, std::convert::Infallible>;

/// An HTTP/1.1 or HTTP/2 connection to `addr`.
pub enum Conn {
    /// With the `Host` every HTTP/1.1 request carries (the server refuses
    /// one without), which hyper's connection-level client leaves to us.
    H1(
        hyper::client::conn::http1::SendRequest<RequestBody>,
        http::HeaderValue,
    ),
    H2(hyper::client::conn::http2::SendRequest<RequestBody>),
}

impl Conn {
    pub async fn http1(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let host = http::HeaderValue::from_str(&addr.to_string()).unwrap();
        Conn::H1(sender, host)
    }

    pub async fn http2(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        Conn::H2(sender)
    }

    pub async fn send(
        &mut self,
        mut request: http::Request<RequestBody>,
    ) -> http::Response<hyper::body::Incoming> {
        match self {
            Conn::H1(sender, host) => {
                if !request.headers().contains_key(http::header::HOST) {
                    request
                        .headers_mut()
                        .insert(http::header::HOST, host.clone());
                }
                sender.send_request(request).await.unwrap()
            }
            Conn::H2(sender) => sender.send_request(request).await.unwrap(),
        }
    }
}

/// A fixed request body.
pub fn full(bytes: impl Into<Bytes>) -> RequestBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body fed from a channel, sent as it comes (chunked on
/// HTTP/1.1); it ends when the sender is dropped.
pub fn channel() -> (mpsc::Sender<Bytes>, RequestBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = http_body_util::StreamBody::new(tokio_stream::StreamExt::map(stream, |b| {
        Ok::<_, std::convert::Infallible>(Frame::data(b))
    }));
    (tx, http_body_util::BodyExt::boxed(body))
}

/// The next data frame of a response body (skipping trailers), or `None`
/// at its end. Fails the test after `wait`.
pub async fn next_data(body: &mut hyper::body::Incoming, wait: Duration) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(wait, body.frame())
            .await
            .expect("the next frame arrives in time")?
            .expect("the body reads");
        // HTTP/2 may end a stream with an empty DATA frame.
        if let Ok(data) = frame.into_data()
            && !data.is_empty()
        {
            return Some(data);
        }
    }
}

/// Every data frame of a body, as text.
pub async fn all_data(mut body: hyper::body::Incoming) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(data) = next_data(&mut body, Duration::from_secs(20)).await {
        out.push(String::from_utf8(data.to_vec()).unwrap());
    }
    out
}

/// Sends `request` as written on a new connection to `addr` and reads all
/// that comes back until the gateway closes the connection (ask for that
/// with `Connection: close`), within 10 s.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes the connection")
        .unwrap();
    answer
}

/// [`raw_exchange`] with the answer as text.
pub async fn raw_text(addr: SocketAddr, request: &str) -> String {
    String::from_utf8_lossy(&raw_exchange(addr, request.as_bytes()).await).into_owned()
}

/// How a gRPC call over HTTP/2 ended for its client: the status and the
/// message (from the trailers, or from the head of a trailers-only
/// answer; percent-decoded), and the body's bytes. The request is `url`
/// with an empty message; the call must end within 10 s.
pub async fn grpc_call(addr: SocketAddr, url: &str) -> (String, String, Bytes) {
    let mut conn = Conn::http2(addr).await;
    let request = http::Request::post(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(super::envelope(0, b"")))
        .unwrap();
    let (head, body) = conn.send(request).await.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the call ends in time")
        .expect("the call ends with a status, not a broken stream");
    let trailers = body.trailers().cloned().unwrap_or_default();
    let get = |name: &str| {
        trailers
            .get(name)
            .or_else(|| head.headers.get(name))
            .map(|v| {
                percent_encoding::percent_decode(v.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default()
    };
    (get("grpc-status"), get("grpc-message"), body.to_bytes())
}

/// The whole text of a streamed response, which must end within 10 s.
pub async fn stream_text(response: reqwest::Response) -> String {
    tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends")
        .expect("the stream ends cleanly")
}
