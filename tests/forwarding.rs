//! Forwarding: headers to metadata and back, trailers, deadlines, a backend
//! that is down, connection reuse and compressed responses.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Script, TestGateway};

use support::kitchen;

use support::gateway::kitchen as setup;

fn md<'a>(record: &'a support::Record, key: &str) -> Option<&'a str> {
    record.metadata.get(key).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn request_headers_become_metadata() {
    let (backend, gateway) = setup(|c| {
        c.headers.forward = vec![http::HeaderName::from_static("x-request-id")];
    })
    .await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("authorization", "Bearer token-1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "vendor=x")
        .header("grpc-metadata-tenant", "acme")
        .header("Grpc-Metadata-Trace-Ctx-Bin", "AAECA/8")
        .header("x-request-id", "req-7")
        .header("cookie", "session=secret")
        .header("x-other", "not forwarded")
        .header("grpc-metadata-grpc-status", "0")
        .header("grpc-metadata-content-type", "text/evil")
        .header("x-forwarded-for", "203.0.113.9")
        .header("host", "api.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let record = backend.last();
    assert_eq!(md(&record, "authorization"), Some("Bearer token-1"));
    assert_eq!(
        md(&record, "traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(md(&record, "tracestate"), Some("vendor=x"));
    assert_eq!(md(&record, "tenant"), Some("acme"));
    assert_eq!(
        record
            .metadata
            .get_bin("trace-ctx-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        [0, 1, 2, 3, 255]
    );
    assert_eq!(md(&record, "x-request-id"), Some("req-7"));
    assert_eq!(
        md(&record, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(md(&record, "x-forwarded-host"), Some("api.example.test"));
    for absent in ["cookie", "x-other", "grpc-status", "host", "connection"] {
        assert_eq!(md(&record, absent), None, "{absent} must not be forwarded");
    }
    assert_eq!(md(&record, "content-type"), Some("application/grpc"));
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, else 400;
/// §3.2.2: with an absolute-form target, the target's authority is the
/// host, and that is what the backend is told.
#[tokio::test]
async fn the_host_is_one_and_the_targets_own() {
    let (backend, gateway) = setup(|_| {}).await;
    for (request, says) in [
        ("GET /v1/echo HTTP/1.1\r\n\r\n", "Host header"),
        (
            "GET /v1/echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            "Host header",
        ),
        (
            "GET /v1/echo HTTP/1.1\r\nHost: a, b\r\n\r\n",
            "not a host[:port]",
        ),
        (
            "GET http://u:secret@a.test/v1/echo HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "without user information",
        ),
    ] {
        // Closed after the 400 (no `Connection: close` asked for).
        let answer = support::client::raw_text(gateway.addr(), request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(says), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(!answer.contains("secret"), "{answer}");
    }
    assert!(backend.records().is_empty());
    let absolute = "GET http://target.test:99/v1/echo HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let answer = support::client::raw_text(gateway.addr(), absolute).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        md(&backend.last(), "x-forwarded-host"),
        Some("target.test:99")
    );
    // HTTP/1.0 has no Host requirement.
    let answer = support::client::raw_text(gateway.addr(), "GET /v1/echo HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

#[tokio::test]
async fn bad_binary_metadata_is_a_400_naming_the_header() {
    let (backend, gateway) = setup(|_| {}).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("grpc-metadata-blob-bin", "not base64!")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("grpc-metadata-blob-bin"),
        "{body}"
    );
    assert!(backend.records().is_empty());
}

#[tokio::test]
async fn response_headers_and_trailers_come_back_prefixed() {
    let (_backend, gateway) = setup(|_| {}).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo?s=x"))
        .header("grpc-metadata-x-echo-header-shard", "s-3")
        .header("grpc-metadata-x-echo-trailer-cost", "12")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-metadata-shard"], "s-3");
    assert_eq!(response.headers()["grpc-trailer-cost"], "12");
    assert!(response.headers().get("grpc-metadata-date").is_none());
    assert!(response.headers().get("grpc-trailer-grpc-status").is_none());
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"s": "x"}));
}

#[tokio::test]
async fn trailers_are_real_http_trailers_when_the_client_asks() {
    let (_backend, gateway) = setup(|_| {}).await;
    let stream = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(gateway.url("/v1/echo?s=t"))
        .header("te", "trailers")
        .header("grpc-metadata-x-echo-trailer-cost", "12")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("grpc-trailer-cost").is_none(),
        "sent as a trailer, not a header"
    );
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("HTTP trailers");
    assert_eq!(trailers["grpc-trailer-cost"], "12");
    assert_eq!(
        serde_json::from_slice::<Value>(&collected.to_bytes()).unwrap(),
        json!({"s": "t"})
    );
}

#[tokio::test]
async fn slow_backend_gets_a_504_at_the_route_timeout() {
    let (backend, gateway) = setup(|c| c.timeouts.unary = Duration::from_millis(300)).await;
    backend.script(Script {
        delay: Some(Duration::from_secs(5)),
        ..Script::default()
    });
    let started = Instant::now();
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the deadline, not after the backend"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 4);
    // The deadline was passed on, and the backend saw the call end.
    let timeout = md(&backend.last(), "grpc-timeout")
        .map(str::to_owned)
        .unwrap();
    assert!(
        timeout.ends_with('u') || timeout.ends_with('m'),
        "{timeout}"
    );
    for _ in 0..50 {
        if backend.cancelled() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        backend.cancelled(),
        1,
        "the backend observed the cancellation"
    );
}

#[tokio::test]
async fn client_grpc_timeout_is_honoured_when_smaller() {
    let (backend, gateway) = setup(|c| {
        c.timeouts
            .methods
            .insert("kitchen.v1.Kitchen/Echo".into(), Duration::from_secs(20));
    })
    .await;
    backend.script(Script {
        delay: Some(Duration::from_secs(5)),
        ..Script::default()
    });
    let started = Instant::now();
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("grpc-timeout", "200m")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3));
    let sent: u64 = md(&backend.last(), "grpc-timeout")
        .unwrap()
        .trim_end_matches('u')
        .parse()
        .unwrap();
    assert!(
        sent <= 200_000,
        "the backend got the client's smaller deadline: {sent}u"
    );

    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .header("grpc-timeout", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn backend_down_is_a_fast_503() {
    let set = kitchen();
    // A port nobody listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = TestGateway::for_set(&set, &format!("http://127.0.0.1:{port}")).await;
    let started = Instant::now();
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "well within the connect timeout"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14);
    assert!(!body["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn unreachable_backend_fails_within_the_connect_timeout() {
    let set = kitchen();
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so connecting hangs as it does for a host that is down.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(0).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "the accept queue is full"
    );
    let mut config = support::gateway::config(&set, &format!("http://{addr}"));
    config.timeouts.connect = Duration::from_millis(500);
    let gateway = TestGateway::start(config).await;
    let started = Instant::now();
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 14);
}

#[tokio::test]
async fn backend_that_accepts_but_never_answers_hits_the_deadline() {
    let set = kitchen();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = support::gateway::config(&set, &format!("http://{addr}"));
    config.timeouts.unary = Duration::from_millis(500);
    let gateway = TestGateway::start(config).await;
    let started = Instant::now();
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    drop(listener);
}

/// An upstream URL pointing at something that is not a gRPC server (here
/// an HTTP/1.1 server answering 400 to everything) is the gateway's
/// trouble, not the client's: 502 (code 13) naming the upstream, with a
/// hint, never a 4xx, a 499 or a bare 500.
#[tokio::test]
async fn an_upstream_that_is_not_grpc_is_a_502_with_a_hint() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Bounded: the test makes one call (a retry at most).
        for _ in 0..4 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let set = kitchen();
    let config = support::gateway::config(&set, &format!("http://{addr}"));
    let gateway = TestGateway::start(config).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 13, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("upstream `default` (http://{addr}): ")),
        "{message}"
    );
    assert!(message.contains("is it a gRPC server?"), "{message}");
    server.abort();
}

/// A backend that accepts the connection and closes it without a byte (a
/// server shutting down, a balancer with nothing behind it) is a 503
/// (code 14) naming the upstream, never the 502 of a peer that speaks
/// another protocol. The call may still have been read on the way (a
/// relay can pass it on and lose the answer), so it is retried only when
/// idempotent: the GET is tried again, the POST is not.
#[tokio::test]
async fn an_upstream_that_closes_without_a_word_is_a_503() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        // Bounded: two calls, and their retries.
        for _ in 0..16 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            // Past the preface and settings (under 100 bytes): the call
            // itself has been read when this closes.
            let mut buf = [0; 4096];
            let mut got = 0;
            let reading = async {
                while got < 150 {
                    match socket.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), reading).await;
        }
    });
    let set = kitchen();
    let config = support::gateway::config(&set, &format!("http://{addr}"));
    let gateway = TestGateway::start(config).await;
    let client = support::http1();
    for (method, tries) in [("GET", 2..=10), ("POST", 1..=1)] {
        accepted.store(0, Ordering::SeqCst);
        let request = match method {
            "GET" => client.get(gateway.url("/v1/echo")),
            _ => client.post(gateway.url("/v1/echo")).json(&json!({})),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 14, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("upstream `default` (http://{addr}): ")),
            "{message}"
        );
        assert!(message.contains("closed the connection"), "{message}");
        let seen = accepted.load(Ordering::SeqCst);
        assert!(tries.contains(&seen), "{method}: {seen} connections");
    }
    server.abort();
}

#[tokio::test]
async fn one_pooled_connection_serves_many_requests() {
    let (backend, gateway) = setup(|_| {}).await;
    let client = support::http1();
    let calls = (0..40).map(|i| {
        let client = client.clone();
        let url = gateway.url(&format!("/v1/echo?i32={i}"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    for status in futures_join(calls).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(backend.records().len(), 40);
    assert_eq!(
        backend.connections(),
        1,
        "all calls share one HTTP/2 connection"
    );
}

async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn gzip_compressed_backend_responses_are_decoded() {
    let (backend, gateway) = setup(|_| {}).await;
    backend.script(Script {
        compress: Some(tonic::codec::CompressionEncoding::Gzip),
        ..Script::default()
    });
    let text = "compress me ".repeat(200);
    let response = support::http1()
        .get(gateway.url(&format!("/v1/echo?s={}", text.replace(' ', "+"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["s"], text);
}

#[tokio::test]
async fn compressed_request_bodies_are_decoded() {
    use std::io::Write as _;
    let (backend, gateway) = setup(|c| c.limits.max_body_bytes = 64 << 10).await;
    let json = br#"{"s": "squeezed", "tags": ["a", "b"]}"#;
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json).unwrap();
        e.finish().unwrap()
    };
    let zstd = zstd::encode_all(&json[..], 3).unwrap();
    let br = {
        let mut out = Vec::new();
        brotli::BrotliCompress(&mut &json[..], &mut out, &Default::default()).unwrap();
        out
    };
    for (encoding, body) in [("gzip", gzip), ("zstd", zstd), ("br", br)] {
        let response = support::http1()
            .post(gateway.url("/v1/echo"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{encoding}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"s": "squeezed", "tags": ["a", "b"]})
        );
    }
    // Unknown encodings and corrupt data are client errors.
    let response = support::http1()
        .post(gateway.url("/v1/echo"))
        .header("content-encoding", "lzma")
        .body("xx")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        response.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("lzma")
    );
    let response = support::http1()
        .post(gateway.url("/v1/echo"))
        .header("content-encoding", "gzip")
        .body("definitely not gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 3);
    // A small bomb: 5 MiB of zeros in a few KiB of gzip, against a 64 KiB limit.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b"{\"s\": \"").unwrap();
        e.write_all(&vec![b'0'; 5 << 20]).unwrap();
        e.write_all(b"\"}").unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 64 << 10);
    let response = support::http1()
        .post(gateway.url("/v1/echo"))
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(backend.records().len(), 3);
}

#[tokio::test]
async fn responses_honour_accept_encoding() {
    let (_backend, gateway) = setup(|_| {}).await;
    let long = "a".repeat(2000);
    let client = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .build()
        .unwrap();
    for encoding in ["gzip", "br", "zstd"] {
        let response = client
            .get(gateway.url(&format!("/v1/echo?s={long}")))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], encoding);
        let compressed = response.bytes().await.unwrap();
        assert!(
            compressed.len() < 500,
            "{encoding}: {} bytes",
            compressed.len()
        );
        let plain = match encoding {
            "gzip" => {
                use std::io::Read as _;
                let mut out = String::new();
                flate2::read::GzDecoder::new(&compressed[..])
                    .read_to_string(&mut out)
                    .unwrap();
                out
            }
            "br" => {
                let mut out = Vec::new();
                brotli::BrotliDecompress(&mut &compressed[..], &mut out).unwrap();
                String::from_utf8(out).unwrap()
            }
            _ => String::from_utf8(zstd::decode_all(&compressed[..]).unwrap()).unwrap(),
        };
        assert_eq!(serde_json::from_str::<Value>(&plain).unwrap()["s"], long);
    }
    let response = client
        .get(gateway.url(&format!("/v1/echo?s={long}")))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().get("content-encoding").is_none(),
        "no Accept-Encoding, no compression"
    );
}

#[tokio::test]
async fn compressed_grpc_both_ways() {
    for (name, encoding) in [
        ("gzip", tonic::codec::CompressionEncoding::Gzip),
        ("zstd", tonic::codec::CompressionEncoding::Zstd),
    ] {
        let compression = match name {
            "gzip" => protogate::config::GrpcCompression::Gzip,
            _ => protogate::config::GrpcCompression::Zstd,
        };
        let (backend, gateway) =
            setup(|c| c.upstreams.get_mut("default").unwrap().compression = Some(compression))
                .await;
        backend.script(Script {
            compress: Some(encoding),
            ..Script::default()
        });
        let text = "compress me ".repeat(100);
        let response = support::http1()
            .post(gateway.url("/v1/echo"))
            .header("content-type", "application/json")
            .body(json!({"s": text}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.json::<Value>().await.unwrap()["s"], text, "{name}");
        assert_eq!(
            md(&backend.last(), "grpc-encoding"),
            Some(name),
            "the request was compressed"
        );
    }
}

/// A backend error without a message gets one saying who answered what:
/// an empty message helps nobody.
#[tokio::test]
async fn backend_errors_without_a_message_are_explained() {
    let (backend, gateway) = setup(|_| {}).await;
    backend.script(Script {
        error: Some((tonic::Code::Unimplemented, String::new(), Vec::new())),
        ..Script::default()
    });
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 12);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("upstream `default` (http://") && message.contains("Unimplemented"),
        "{message}"
    );
}

/// Whether a response is compressed depends on `Accept-Encoding`, so each
/// compressible response says so with `Vary: Accept-Encoding` — also the
/// identity one a client without the header gets (RFC 9110 §12.5.5), as
/// the axum router's compression layer did for every request. The
/// hand-written service sends requests without the header past the
/// compression layer, and their responses lost the `Vary`.
#[tokio::test]
async fn compressible_responses_vary_on_accept_encoding() {
    let (_backend, gateway) = setup(|_| {}).await;
    let long = "a".repeat(2000);
    let client = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .build()
        .unwrap();
    for encoding in [Some("gzip"), Some("identity"), None] {
        let mut request = client.get(gateway.url(&format!("/v1/echo?s={long}")));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let varies = response.headers().get_all("vary").iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        });
        assert!(
            varies,
            "Accept-Encoding {encoding:?}: no Vary: Accept-Encoding"
        );
    }
}
