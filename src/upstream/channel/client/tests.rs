//! The client in cleartext against a bare `h2` server on loopback: one
//! connection for calls that arrive together, a dead peer dropped by its
//! pings, connect failures in tonic's shape, request bodies sent whole or
//! piped, and a failed body reset so a server cannot take it for an end.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use futures_util::future::join_all;
use http_body_util::StreamBody;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::*;

/// How the test server treats its connections.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Reads each request whole and answers gRPC OK.
    Answer,
    /// Completes the handshake, then never reads or writes again.
    Frozen,
    /// Answers the first call, then goes silent like `Frozen`.
    AnswerOnce,
}

#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Request body bytes read, over all calls.
    received: AtomicUsize,
    /// The reasons of request streams the client reset.
    resets: Mutex<Vec<h2::Reason>>,
}

/// Starts a server on a free loopback port; it stops with the test's
/// runtime.
async fn serve(mode: Mode) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let accepting = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepting.accepted.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&accepting);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else {
                    return;
                };
                if mode == Mode::AnswerOnce {
                    if let Some(Ok((request, respond))) = connection.accept().await {
                        tokio::spawn(answer(request, respond, Arc::clone(&seen)));
                    }
                    // Long enough to flush the answer.
                    let flush = Duration::from_millis(100);
                    let _ = tokio::time::timeout(flush, connection.accept()).await;
                }
                if mode != Mode::Answer {
                    // Hold the socket open and answer nothing, pings
                    // included.
                    std::future::pending::<()>().await;
                }
                while let Some(Ok((request, respond))) = connection.accept().await {
                    tokio::spawn(answer(request, respond, Arc::clone(&seen)));
                }
            });
        }
    });
    (addr, seen)
}

async fn answer(
    request: http::Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Arc<Seen>,
) {
    let mut body = request.into_body();
    while let Some(data) = body.data().await {
        match data {
            Ok(data) => {
                seen.received.fetch_add(data.len(), Ordering::SeqCst);
                let _ = body.flow_control().release_capacity(data.len());
            }
            Err(err) => {
                seen.resets.lock().extend(err.reason());
                return;
            }
        }
    }
    let head = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    if let Ok(mut stream) = respond.send_response(head, false) {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let _ = stream.send_trailers(trailers);
    }
}

fn target(addr: SocketAddr) -> Target {
    let uri: Uri = format!("http://{addr}").parse().unwrap();
    Target::new(
        &uri,
        Duration::from_secs(2),
        HeaderValue::from_static("test"),
        None,
    )
    .unwrap()
}

fn request(body: Body) -> Request<Body> {
    Request::post("/test.Service/Call")
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

/// A unary call's body: one gRPC message of `len` bytes, ready at once.
fn unary(len: usize) -> Request<Body> {
    let mut message = vec![0u8; 5 + len];
    message[1..5].copy_from_slice(&(len as u32).to_be_bytes());
    request(Body::new(http_body_util::Full::new(Bytes::from(message))))
}

/// A body fed through a channel, so that it is still arriving when the
/// call starts.
fn piped() -> (
    mpsc::Sender<Result<Frame<Bytes>, tonic::Status>>,
    Request<Body>,
) {
    let (tx, rx) = mpsc::channel(4);
    let body = Body::new(StreamBody::new(ReceiverStream::new(rx)));
    (tx, request(body))
}

const WAIT: Duration = Duration::from_secs(5);

/// Waits until `done`; fails at `deadline` saying `what` did not happen.
async fn until(deadline: tokio::time::Instant, what: &str, done: impl Fn() -> bool) {
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A channel to `addr` that pings every 50 ms and gives up after 100.
fn pinging_fast(addr: SocketAddr) -> H2Channel {
    let mut target = target(addr);
    target.keep_alive = KeepAlive {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(100),
    };
    H2Channel::new(target)
}

#[tokio::test]
async fn calls_that_arrive_together_share_one_connection() {
    let (addr, seen) = serve(Mode::Answer).await;
    let channel = H2Channel::new(target(addr));
    let calls = (0..50).map(|_| channel.call(unary(100)));
    let answers = tokio::time::timeout(WAIT, join_all(calls)).await.unwrap();
    for answer in answers {
        assert_eq!(answer.unwrap().status(), http::StatusCode::OK);
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(seen.received.load(Ordering::SeqCst), 50 * 105);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let (addr, seen) = serve(Mode::Frozen).await;
    let channel = pinging_fast(addr);
    // The call in flight fails when its connection is dropped; it does
    // not wait forever.
    let first = tokio::time::timeout(WAIT, channel.call(unary(10))).await;
    let err = first.expect("the dead peer was noticed").unwrap_err();
    let status = tonic::Status::from_error(err);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("no answer to a ping"),
        "{status:?}"
    );
    // The next call opens a new connection (to the same dead peer).
    let second = tokio::time::timeout(WAIT, channel.call(unary(10))).await;
    assert!(second.expect("the dead peer was noticed").is_err());
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
}

/// gRPC servers count pings on a connection without calls as abuse
/// (grpc-go sends GOAWAY after a few): an idle connection is not pinged,
/// so a peer that would not answer keeps it.
#[tokio::test]
async fn an_idle_connection_is_not_pinged() {
    let (addr, seen) = serve(Mode::AnswerOnce).await;
    let channel = pinging_fast(addr);
    let answer = tokio::time::timeout(WAIT, channel.call(unary(10))).await;
    assert_eq!(answer.unwrap().unwrap().status(), http::StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(*channel.inner.state.lock(), State::Open(0, _)));
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
}

/// A connection attempt goes on when the call that started it is gone:
/// the next call finds it made, not stalled with its timer run out.
#[tokio::test]
async fn a_connection_attempt_outlives_the_call_that_started_it() {
    let (addr, seen) = serve(Mode::Answer).await;
    let uri: Uri = format!("http://localhost:{}", addr.port()).parse().unwrap();
    let target = Target::new(
        &uri,
        Duration::from_millis(100),
        HeaderValue::from_static("test"),
        None,
    )
    .unwrap();
    let channel = H2Channel::new(target);
    // Polled once (the name lookup is still pending), then dropped.
    assert!(channel.call(unary(1)).now_or_never().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::time::timeout(WAIT, channel.call(unary(1))).await;
    assert_eq!(answer.unwrap().unwrap().status(), http::StatusCode::OK);
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
}

/// A call dropped while its body is still being piped is reset on the
/// backend (the pipe would otherwise hold the stream open), with
/// INTERNAL_ERROR: a tonic server takes CANCEL on an unfinished request
/// stream for its clean end.
#[tokio::test]
async fn a_dropped_call_with_a_piped_body_resets_its_stream() {
    let (addr, seen) = serve(Mode::Answer).await;
    let channel = H2Channel::new(target(addr));
    let (tx, call) = piped();
    let call = tokio::spawn(channel.call(call));
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01x"))))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    until(deadline, "nothing arrived", || {
        seen.received.load(Ordering::SeqCst) >= 6
    })
    .await;
    call.abort();
    until(deadline, "no reset came", || !seen.resets.lock().is_empty()).await;
    assert_eq!(*seen.resets.lock(), [h2::Reason::INTERNAL_ERROR]);
    drop(tx);
}

#[tokio::test]
async fn a_refused_connection_is_tonics_connect_error_and_is_tried_again() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let channel = H2Channel::new(target(addr));
    let err = channel.call(unary(1)).await.unwrap_err();
    assert!(err.is::<tonic::ConnectError>(), "{err:?}");
    let status = tonic::Status::from_error(err);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let said = crate::upstream::causes(&status);
    assert!(said.contains("tcp connect error"), "{said}");
    assert!(said.to_lowercase().contains("refused"), "{said}");

    // Nothing is remembered: once something listens, the next call
    // connects.
    let listener = TcpListener::bind(addr).await.unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.is_ok() });
    let _ = tokio::time::timeout(Duration::from_millis(300), channel.call(unary(1))).await;
    assert!(accept.await.unwrap());
}

#[tokio::test]
async fn a_body_still_arriving_is_piped_whole() {
    let (addr, seen) = serve(Mode::Answer).await;
    let channel = H2Channel::new(target(addr));
    let (tx, call) = piped();
    let call = tokio::spawn(channel.call(call));
    // Larger than the stream's first window, so flow control is waited on.
    let chunk = Bytes::from(vec![7u8; 256 << 10]);
    for _ in 0..16 {
        tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    }
    drop(tx);
    let answer = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(answer.unwrap().status(), http::StatusCode::OK);
    assert_eq!(seen.received.load(Ordering::SeqCst), 16 * (256 << 10));
}

/// A tonic server reads a request stream reset with CANCEL as its clean
/// end; a body that failed must never look like one.
#[tokio::test]
async fn a_failed_body_resets_its_stream_with_internal_error() {
    let (addr, seen) = serve(Mode::Answer).await;
    let channel = H2Channel::new(target(addr));

    // Failed before the call started: sent with the headers.
    let (tx, call) = piped();
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01x"))))
        .await
        .unwrap();
    tx.send(Err(tonic::Status::cancelled(
        "the gateway cancelled the call",
    )))
    .await
    .unwrap();
    assert!(channel.call(call).await.is_err());

    // Failed while piped.
    let (tx, call) = piped();
    let call = tokio::spawn(channel.call(call));
    tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01x"))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tx.send(Err(tonic::Status::cancelled(
        "the gateway cancelled the call",
    )))
    .await
    .unwrap();
    let answer = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert!(answer.is_err());

    let deadline = tokio::time::Instant::now() + WAIT;
    until(deadline, "the server saw no resets", || {
        seen.resets.lock().len() >= 2
    })
    .await;
    assert_eq!(
        *seen.resets.lock(),
        [h2::Reason::INTERNAL_ERROR, h2::Reason::INTERNAL_ERROR]
    );
}

#[test]
fn user_agent_follows_the_clients() {
    let ours = HeaderValue::from_static("protogate/1");
    let mut headers = HeaderMap::new();
    add_user_agent(&mut headers, &ours);
    assert_eq!(headers[header::USER_AGENT], "protogate/1");
    headers.insert(header::USER_AGENT, HeaderValue::from_static("grpc-go/1.6"));
    add_user_agent(&mut headers, &ours);
    assert_eq!(headers[header::USER_AGENT], "grpc-go/1.6 protogate/1");
}

/// Starts a bare TCP server that reads what each connection sends (until
/// the client's preface and first call have had time to arrive), writes
/// `says` and closes.
async fn closing_server(says: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let read = tcp.read(&mut buf);
                let _ = tokio::time::timeout(Duration::from_millis(50), read).await;
                let _ = tcp.write_all(says).await;
            });
        }
    });
    addr
}

/// A peer that accepts and closes without a byte (a server shutting down,
/// a balancer with nothing behind it) is unreachable, not a peer that
/// spoke another protocol; but the call may have been read (a relay may
/// have passed it on), so it is not taken for a connection never made.
#[tokio::test]
async fn a_peer_that_closes_without_a_word_is_unreachable() {
    let addr = closing_server(b"").await;
    let channel = H2Channel::new(target(addr));
    for _ in 0..3 {
        let answer = tokio::time::timeout(WAIT, channel.call(unary(10))).await;
        let err = answer.expect("the close was noticed").unwrap_err();
        assert!(!err.is::<tonic::ConnectError>(), "{err:?}");
        let status = tonic::Status::from_error(err);
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status
                .message()
                .contains("closed the connection without sending anything"),
            "{status:?}"
        );
    }
}

/// A peer whose accept queue is full drops our SYN: the dial runs out of
/// time and says so as the connect timeout, not as a deadline.
#[tokio::test]
async fn a_dial_that_times_out_names_the_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(1).unwrap();
    // Never accepted: these fill the queue (Linux holds backlog + 1).
    let mut held = Vec::new();
    for _ in 0..4 {
        let connect = TcpStream::connect(addr);
        if let Ok(Ok(tcp)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
            held.push(tcp);
        }
    }
    let uri: Uri = format!("http://{addr}").parse().unwrap();
    let target = Target::new(
        &uri,
        Duration::from_millis(300),
        HeaderValue::from_static("test"),
        None,
    )
    .unwrap();
    let channel = H2Channel::new(target);
    let answer = tokio::time::timeout(WAIT, channel.call(unary(1))).await;
    let err = answer.expect("the dial gave up").unwrap_err();
    assert!(err.is::<tonic::ConnectError>(), "{err:?}");
    let said = crate::upstream::causes(&tonic::Status::from_error(err));
    assert!(said.contains("no connection within 300ms"), "{said}");
    drop((listener, held));
}

/// A peer that answers in another protocol did hear the call: its failure
/// is not taken for a connection that was never made.
#[tokio::test]
async fn a_peer_that_speaks_another_protocol_is_not_unreachable() {
    let addr = closing_server(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await;
    let channel = H2Channel::new(target(addr));
    let answer = tokio::time::timeout(WAIT, channel.call(unary(10))).await;
    let err = answer.expect("the answer was noticed").unwrap_err();
    assert!(!err.is::<tonic::ConnectError>(), "{err:?}");
    assert_ne!(
        tonic::Status::from_error(err).code(),
        tonic::Code::Unavailable
    );
}

/// A URL without a port dials 80 in cleartext and 443 over TLS (the
/// connector itself would dial 80 for both), and its requests say
/// `https` over TLS; the `:authority` stays as written.
#[test]
fn a_tls_endpoint_dials_443_and_says_https() {
    crate::install_crypto_provider();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    let name = rustls::pki_types::ServerName::try_from("books.internal").unwrap();
    let tls = Tls::new(Arc::new(config), name);
    let uri: Uri = "https://books.internal".parse().unwrap();
    let user_agent = HeaderValue::from_static("test");
    let over_tls =
        Target::new(&uri, Duration::from_secs(1), user_agent.clone(), Some(tls)).unwrap();
    assert_eq!(over_tls.uri.port_u16(), Some(443));
    assert_eq!(over_tls.scheme, Scheme::HTTPS);
    assert_eq!(over_tls.authority, "books.internal");
    let cleartext = Target::new(&uri, Duration::from_secs(1), user_agent, None).unwrap();
    assert_eq!(cleartext.uri.port_u16(), Some(80));
    assert_eq!(cleartext.scheme, Scheme::HTTP);
}
