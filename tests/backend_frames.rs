//! Backends that break HTTP/2 framing itself, which no HTTP/2 library
//! sends on purpose: the backend here writes its frames by hand.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::TestGateway;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block of literal fields, names and values under 127 bytes.
fn fields(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        // Literal without indexing, new name, no Huffman coding.
        out.push(0x00);
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Answers each call on a connection with a head, one message and
/// trailers (`grpc-status: 0`) that do not end the stream, and then
/// nothing more.
async fn trailers_without_end_stream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    addr
}

async fn serve(mut tcp: TcpStream) {
    let mut preface = [0; 24];
    if tcp.read_exact(&mut preface).await.is_err() {
        return;
    }
    if tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await.is_err() {
        return;
    }
    let mut head = [0; 9];
    while tcp.read_exact(&mut head).await.is_ok() {
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            return;
        }
        let answer = match kind {
            SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            HEADERS => {
                let mut out = frame(
                    HEADERS,
                    END_HEADERS,
                    stream,
                    &[
                        &[0x88][..],
                        &fields(&[("content-type", "application/grpc")]),
                    ]
                    .concat(),
                );
                // `Sink { s: "hi" }`.
                out.extend(frame(0, 0, stream, b"\x00\x00\x00\x00\x04\x0a\x02hi"));
                out.extend(frame(
                    HEADERS,
                    END_HEADERS,
                    stream,
                    &fields(&[("grpc-status", "0")]),
                ));
                out
            }
            _ => continue,
        };
        if tcp.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Trailers end a stream (RFC 9113 §8.1); a backend sending them without
/// END_STREAM breaks the protocol. The call fails at once as the
/// backend's fault (502; a stream's error line; INTERNAL passed through),
/// however long its deadline, rather than waiting for an end that never
/// comes.
#[tokio::test]
async fn trailers_that_do_not_end_the_stream_fail_the_call_at_once() {
    let addr = trailers_without_end_stream().await;
    let mut config = support::gateway::config(&support::kitchen(), &format!("http://{addr}"));
    config.timeouts.unary = Duration::from_secs(30);
    let gateway = TestGateway::start(config).await;
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        support::http1()
            .post(gateway.url("/v1/echo"))
            .json(&json!({"s": "x"}))
            .send(),
    )
    .await
    .expect("an answer before the deadline")
    .unwrap();
    assert_eq!(response.status(), 502, "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10));

    // A server stream, which has no deadline here: it ends, with an
    // error after the message.
    let response = support::http1()
        .get(gateway.url("/v1/watch"))
        .send()
        .await
        .unwrap();
    let text = support::client::stream_text(response).await;
    assert!(text.contains(r#"{"result":{"s":"hi"}}"#), "{text}");
    assert!(text.contains(r#""error""#), "{text}");

    // Passed through: the client gets a status, not a hang.
    let (status, message, _) =
        support::client::grpc_call(gateway.addr(), &gateway.url("/kitchen.v1.Kitchen/Echo")).await;
    assert_eq!(status, "13", "{message}");
}
