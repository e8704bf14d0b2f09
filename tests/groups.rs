//! Route groups (`routes:` in config): a prefix proxied to a plain HTTP
//! service, and a prefix whose transcoded routes call their own gRPC
//! upstream with their own deadline.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use protogate::config::RouteGroupConfig;
use protogate::{Config, UpstreamConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{EchoBackend, Script, TestGateway};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use support::kitchen;
use support::plain::{group, http_service};

async fn gateway(tweak: impl FnOnce(&mut Config)) -> (EchoBackend, TestGateway) {
    let set = kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

/// The request the plain HTTP service saw.
async fn seen(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A plain HTTP service, and the gateway with `prefix` proxied to it.
async fn proxying(prefix: &str) -> (SocketAddr, EchoBackend, TestGateway) {
    let service = http_service().await;
    let (backend, gateway) =
        gateway(|c| c.routes.push(group(prefix, &format!("http://{service}")))).await;
    (service, backend, gateway)
}

/// A prefix proxied to a plain HTTP service: method, path, query and body
/// arrive unchanged; `Host` is the service's, `X-Forwarded-*` say who
/// asked, hop-by-hop headers stay behind; the prefix holds `/legacy` and
/// below, not `/legacyx`, and transcoded routes elsewhere still work.
#[tokio::test]
async fn a_prefix_is_proxied_to_a_plain_http_service() {
    let (service, _backend, gateway) = proxying("/legacy/").await;
    let client = support::http1();
    let got = seen(
        client
            .post(gateway.url("/legacy/items/7?x=1&y=%2F"))
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "secret")
            .header("x-request-id", "r1")
            .body("raw body, not JSON")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["method"], "POST");
    assert_eq!(got["uri"], "/legacy/items/7?x=1&y=%2F");
    assert_eq!(got["body"], "raw body, not JSON");
    let headers = &got["headers"];
    assert_eq!(headers["host"], service.to_string());
    assert_eq!(headers["x-forwarded-host"], gateway.addr().to_string());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-request-id"], "r1");
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert!(headers.get("x-forwarded-prefix").is_none(), "{headers}");
    // The prefix itself, without the slash, is in the group too.
    let got = seen(client.get(gateway.url("/legacy")).send().await.unwrap()).await;
    assert_eq!(got["uri"], "/legacy");
    // A neighbour path is not.
    let response = client.get(gateway.url("/legacyx")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, _) = (
        client
            .get(gateway.url("/v1/echo?s=x"))
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert_eq!(status, StatusCode::OK);
}

/// What a client claims about earlier hops is kept where lists of hops go
/// (`X-Forwarded-For`, `Forwarded`), with this hop appended; `X-Real-IP`,
/// one address, is the client's own, never one the client sent.
#[tokio::test]
async fn forwarding_headers_name_this_hop_whatever_the_client_claims() {
    let (_service, _backend, gateway) = proxying("/legacy/").await;
    let client = support::http1();
    let got = seen(
        client
            .get(gateway.url("/legacy/x"))
            .header("forwarded", "for=10.9.9.9")
            .header("x-forwarded-for", "10.9.9.9")
            .header("x-real-ip", "10.9.9.9")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let headers = &got["headers"];
    let host = gateway.addr().to_string();
    assert_eq!(headers["x-forwarded-for"], "10.9.9.9, 127.0.0.1");
    assert_eq!(
        headers["forwarded"],
        format!("for=10.9.9.9, for=127.0.0.1;proto=http;host=\"{host}\"")
    );
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    // Without a claim, `Forwarded` holds this hop alone.
    let got = seen(client.get(gateway.url("/legacy/x")).send().await.unwrap()).await;
    assert_eq!(
        got["headers"]["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{host}\"")
    );
}

/// The service's answer comes back as it is — status, headers, body —
/// without its hop-by-hop headers, and a streamed answer streams, chunk
/// by chunk, uncompressed.
#[tokio::test]
async fn answers_come_back_unchanged_and_streamed() {
    let (_service, _backend, gateway) = proxying("/legacy").await;
    let client = support::http1();
    let response = client
        .get(gateway.url("/legacy/teapot"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["x-brewed"], "yes");
    assert!(response.headers().get("x-secret").is_none());
    // Not compressed again by the gateway, which would hold chunks back.
    let response = client
        .get(gateway.url("/legacy/stream"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    let started = Instant::now();
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"chunk 0\n");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "the first chunk is not held back: {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"chunk 1\nchunk 2\n");
}

/// `strip_prefix` drops the prefix (and says so in `X-Forwarded-Prefix`);
/// a URL with a path puts it in front.
#[tokio::test]
async fn strip_prefix_and_base_paths() {
    let service = http_service().await;
    let (_backend, gateway) = gateway(|c| {
        c.routes.push(RouteGroupConfig {
            strip_prefix: true,
            ..group("/legacy/", &format!("http://{service}"))
        });
        c.routes
            .push(group("/api/", &format!("http://{service}/base/")));
        c.routes.push(RouteGroupConfig {
            strip_prefix: true,
            ..group("/old/", &format!("http://{service}/base"))
        });
    })
    .await;
    let client = support::http1();
    let got = seen(
        client
            .get(gateway.url("/legacy/items?x=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["uri"], "/items?x=1");
    assert_eq!(got["headers"]["x-forwarded-prefix"], "/legacy");
    let got = seen(client.get(gateway.url("/legacy")).send().await.unwrap()).await;
    assert_eq!(got["uri"], "/");
    let got = seen(client.get(gateway.url("/api/v2/x")).send().await.unwrap()).await;
    assert_eq!(got["uri"], "/base/api/v2/x");
    // Stripped down to nothing, the base path itself.
    let got = seen(client.get(gateway.url("/old")).send().await.unwrap()).await;
    assert_eq!(got["uri"], "/base");
    let got = seen(client.get(gateway.url("/old/x")).send().await.unwrap()).await;
    assert_eq!(got["uri"], "/base/x");
}

/// A service that answers in HTTP/1.0 is passed on in the client's version.
#[tokio::test]
async fn answers_keep_the_clients_http_version() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nold")
                    .await;
            });
        }
    });
    let (_backend, gateway) = gateway(|c| {
        c.routes.push(group("/legacy/", &format!("http://{old}")));
    })
    .await;
    for (client, version) in [
        (support::http1(), http::Version::HTTP_11),
        (support::http2(), http::Version::HTTP_2),
    ] {
        let response = client.get(gateway.url("/legacy/x")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), version);
        assert_eq!(response.text().await.unwrap(), "old");
    }
}

/// What can go wrong has the google.rpc.Status shape and the right status:
/// dot segments (the service would resolve them out of the prefix) 400, a
/// body over `limits.max_body_bytes` 413, a service that is down 503 and a
/// slow one 504 at the group's timeout.
#[tokio::test]
async fn proxy_failures_are_status_json() {
    let service = http_service().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let (_backend, gateway) = gateway(|c| {
        c.limits.max_body_bytes = 1000;
        c.routes.push(RouteGroupConfig {
            timeout: Some(Duration::from_millis(300)),
            ..group("/legacy", &format!("http://{service}"))
        });
        c.routes.push(group("/down", &format!("http://{down}")));
    })
    .await;
    let client = support::http1();
    let call = async |response: reqwest::Response| -> (StatusCode, Value) {
        let status = response.status();
        (status, response.json().await.unwrap())
    };
    // Sent as written (a URL library would resolve the dots first).
    for path in [
        "/legacy/a/../../admin",
        "/legacy/%2e%2e/admin",
        // A service decoding `%2F` first would resolve these too.
        "/legacy/..%2f..%2fadmin",
        "/legacy/x%2F..%2F..%2Fadmin",
    ] {
        let mut conn = support::client::Conn::http1(gateway.addr()).await;
        let request = http::Request::get(path)
            .header("host", "gateway")
            .body(support::client::full(Bytes::new()))
            .unwrap();
        let response = conn.send(request).await;
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], 3);
    }
    // CONNECT asks for a tunnel: refused, not passed on as one to the
    // service's address.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut raw = tokio::net::TcpStream::connect(gateway.addr())
            .await
            .unwrap();
        raw.write_all(b"CONNECT /legacy/x HTTP/1.1\r\nhost: gateway\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
        assert!(answer.contains("\"code\":12"), "{answer}");
    }
    let (status, body) = call(
        client
            .post(gateway.url("/legacy/big"))
            .body(vec![b'x'; 2000])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Chunked, without a length: stopped at the limit too.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100]))),
    );
    let (status, body) = call(
        client
            .post(gateway.url("/legacy/big"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = call(client.get(gateway.url("/down/x")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 14);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("route `/down` (http://{down}): ")),
        "{message}"
    );
    let started = Instant::now();
    let (status, body) = call(
        client
            .get(gateway.url("/legacy/slow"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["code"], 4);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("route `/legacy` (http://") && message.contains("300ms"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// A route's errors name its prefix as configured: `/dead`, not `/dead/`.
#[tokio::test]
async fn errors_name_the_prefix_as_configured() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let (_backend, gateway) = gateway(|c| {
        c.routes.push(group("/dead", &format!("http://{down}")));
        c.routes.push(group("/gone/", &format!("http://{down}")));
    })
    .await;
    for (path, prefix) in [("/dead/x", "/dead"), ("/gone/x", "/gone/")] {
        let response = support::http1()
            .get(gateway.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("route `{prefix}` (http://{down}): ")),
            "{message}"
        );
    }
}

/// A WebSocket service on loopback (axum): its first frame is the request
/// it saw (URI and headers, as JSON); then it echoes every frame. It
/// speaks the `chat` subprotocol when asked.
async fn websocket_service() -> SocketAddr {
    use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
    async fn answer(ws: WebSocketUpgrade, uri: http::Uri, headers: http::HeaderMap) -> Response {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        let seen = json!({"uri": uri.to_string(), "headers": headers});
        ws.protocols(["chat"])
            .on_upgrade(move |mut socket| async move {
                if socket
                    .send(WsMessage::text(seen.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                while let Some(Ok(frame)) = socket.recv().await {
                    let echo = match frame {
                        WsMessage::Text(_) | WsMessage::Binary(_) => frame,
                        // Reading on sends the Close's answer, then ends.
                        _ => continue,
                    };
                    if socket.send(echo).await.is_err() {
                        return;
                    }
                }
            })
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(answer)).await;
    });
    addr
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame, in time.
async fn frame(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a valid frame")
}

/// A WebSocket upgrade under a proxied prefix is proxied: the service
/// sees the path (stripped when asked), its own `Host` and the
/// `X-Forwarded-*` set; the subprotocol is agreed end to end; frames go
/// both ways unchanged, large ones too; a Close is answered by the
/// service.
#[tokio::test]
async fn websocket_upgrades_are_proxied() {
    let service = websocket_service().await;
    let (_backend, gateway) = gateway(|c| {
        c.routes.push(group("/live/", &format!("http://{service}")));
        c.routes.push(RouteGroupConfig {
            strip_prefix: true,
            ..group("/bare", &format!("http://{service}"))
        });
    })
    .await;
    let connect = async |path: &str| {
        let mut request = format!("ws://{}{path}", gateway.addr())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "chat".parse().unwrap());
        let (mut socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade");
        assert_eq!(response.status(), 101);
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        let Message::Text(seen) = frame(&mut socket).await else {
            panic!("the service's first frame is text");
        };
        (socket, serde_json::from_str::<Value>(&seen).unwrap())
    };
    let (mut socket, seen) = connect("/live/socket?x=1").await;
    assert_eq!(seen["uri"], "/live/socket?x=1");
    let headers = &seen["headers"];
    assert_eq!(headers["host"], service.to_string());
    assert_eq!(headers["x-forwarded-host"], gateway.addr().to_string());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["upgrade"], "websocket");
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(frame(&mut socket).await, Message::text("hello"));
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        frame(&mut socket).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );
    let large = "y".repeat(300_000);
    socket.send(Message::text(large.clone())).await.unwrap();
    assert_eq!(frame(&mut socket).await, Message::text(large));
    socket.close(None).await.unwrap();
    assert!(matches!(frame(&mut socket).await, Message::Close(_)));
    let (mut socket, seen) = connect("/bare/x").await;
    assert_eq!(seen["uri"], "/x");
    assert_eq!(seen["headers"]["x-forwarded-prefix"], "/bare");
    socket.send(Message::text("again")).await.unwrap();
    assert_eq!(frame(&mut socket).await, Message::text("again"));
}

/// A WebSocket upgrade the service does not grant gets its answer as it
/// is; one to a service that is down, or slower than the group's
/// `timeout` to answer, gets 503 or 504 as google.rpc.Status JSON naming
/// the route.
#[tokio::test]
async fn websocket_upgrade_failures() {
    let service = http_service().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let (_backend, gateway) = gateway(|c| {
        c.routes.push(RouteGroupConfig {
            timeout: Some(Duration::from_millis(300)),
            ..group("/plain", &format!("http://{service}"))
        });
        c.routes.push(group("/down", &format!("http://{down}")));
    })
    .await;
    let refused = async |path: &str| {
        let request = format!("ws://{}{path}", gateway.addr())
            .into_client_request()
            .unwrap();
        match tokio_tungstenite::connect_async(request).await {
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                (
                    response.status(),
                    serde_json::from_slice::<Value>(&body).unwrap(),
                )
            }
            Err(other) => panic!("{path}: expected an HTTP answer, got {other}"),
            Ok(_) => panic!("{path}: upgraded"),
        }
    };
    // The service answers the upgrade as a plain request.
    let (status, seen) = refused("/plain/x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["headers"]["upgrade"], "websocket");
    let (status, body) = refused("/down/x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 14);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("route `/down` (http://{down}): ")),
        "{body}"
    );
    let started = Instant::now();
    let (status, body) = refused("/plain/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["code"], 4);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("route `/plain` (http://"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// A group on a gRPC upstream: the transcoded routes under its prefix call
/// that upstream (the longest prefix wins), others keep theirs; the
/// group's timeout is their unary deadline, and a per-method timeout
/// still wins over it.
#[tokio::test]
async fn a_prefix_on_its_own_grpc_upstream() {
    let set = kitchen();
    let main = EchoBackend::start(support::pool(&set)).await;
    let other = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &main.url());
    config.upstreams.insert("other".into(), {
        let mut u = UpstreamConfig::new(other.url());
        u.services = vec!["nothing.Here".into()];
        u
    });
    config.routes.push(group("/v1/", "default"));
    config.routes.push(RouteGroupConfig {
        timeout: Some(Duration::from_millis(300)),
        ..group("/v1/echo", "other")
    });
    let gateway = TestGateway::start(config).await;
    let client = support::http1();
    let get = async |path: &str| client.get(gateway.url(path)).send().await.unwrap();
    assert_eq!(get("/v1/echo?s=x").await.status(), StatusCode::OK);
    assert_eq!(get("/v1/tags?tags=a").await.status(), StatusCode::OK);
    assert_eq!(other.records().len(), 1, "/v1/echo went to `other`");
    assert_eq!(main.records().len(), 1, "/v1/tags stayed on `default`");
    // The group's deadline.
    other.script(Script {
        delay: Some(Duration::from_secs(2)),
        ..Script::default()
    });
    let started = Instant::now();
    let response = get("/v1/echo").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// A per-method timeout (`timeouts.methods`) is more specific than a
/// group's and wins over it.
#[tokio::test]
async fn method_timeouts_win_over_group_timeouts() {
    let (backend, gateway) = gateway(|c| {
        c.routes.push(RouteGroupConfig {
            timeout: Some(Duration::from_millis(200)),
            ..group("/v1/", "default")
        });
        c.timeouts
            .methods
            .insert("kitchen.v1.Kitchen/Echo".into(), Duration::from_secs(5));
    })
    .await;
    backend.script(Script {
        delay: Some(Duration::from_millis(600)),
        ..Script::default()
    });
    let client = support::http1();
    let response = client.get(gateway.url("/v1/echo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client.get(gateway.url("/v1/tags")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

/// A `HEAD` answered by the service without a length (its `GET` streams,
/// chunked) comes back without one: not with `Content-Length: 0`, which
/// says the `GET` would send an empty body. The gateway's top level adds
/// a length from the body's exact size, and the body of an answer to
/// `HEAD` is always exactly empty.
#[tokio::test]
async fn head_of_a_streamed_answer_claims_no_length() {
    let (_service, _backend, gateway) = proxying("/legacy").await;
    let client = support::http1();
    let get = client
        .get(gateway.url("/legacy/stream"))
        .send()
        .await
        .unwrap();
    assert!(get.headers().get("content-length").is_none());
    assert_eq!(
        &get.bytes().await.unwrap()[..],
        b"chunk 0\nchunk 1\nchunk 2\n"
    );
    let head = client
        .head(gateway.url("/legacy/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_ne!(
        head.headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap()),
        Some("0"),
        "HEAD says the GET body is empty"
    );
}

/// The 404 for an annotated method's `/package.Service/Method` path names
/// where the method is served, but never a route a proxied prefix hides
/// (its requests go to the proxied service).
#[tokio::test]
async fn the_served_at_hint_skips_routes_a_proxied_prefix_hides() {
    let service = http_service().await;
    let (_backend, gateway) =
        gateway(|c| c.routes.push(group("/v1/", &format!("http://{service}")))).await;
    let response = support::http1()
        .post(gateway.url("/kitchen.v1.Kitchen/Echo"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains("/v1/echo"), "{message}");
}

/// `limits.max_header_bytes` and `limits.max_headers` hold for proxied
/// requests as on every other face: past them, a 431 and the service
/// sees nothing.
#[tokio::test]
async fn proxied_header_blocks_are_bounded() {
    let (service, reached) = support::plain::recording_service().await;
    let (_backend, gateway) = gateway(|c| {
        c.routes
            .push(group("/legacy/", &format!("http://{service}")));
        c.limits.max_header_bytes = 8 << 10;
        c.limits.max_headers = 20;
    })
    .await;
    let client = support::http1();
    let big = "x".repeat(5 << 10);
    let response = client
        .get(gateway.url("/legacy/a"))
        .header("x-one", &big)
        .header("x-two", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 8, "{body}");
    let mut many = client.get(gateway.url("/legacy/b"));
    for i in 0..25 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let response = many.send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert!(reached.all().is_empty(), "{:?}", reached.all());
    // Within them, the request goes through.
    let got = seen(
        client
            .get(gateway.url("/legacy/c"))
            .header("x-one", &big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["uri"], "/legacy/c");
}

/// With `cors` set, the gateway's CORS policy is what browsers see of a
/// proxied service too: the service's own `Access-Control-*` answer is
/// dropped (its `*` would let through origins the gateway refuses), the
/// rest of its answer kept.
#[tokio::test]
async fn the_gateway_cors_policy_covers_proxied_services() {
    async fn answer() -> Response {
        let mut response = Response::new(axum::body::Body::from("ok"));
        let headers = response.headers_mut();
        headers.insert("access-control-allow-origin", "*".parse().unwrap());
        headers.insert("access-control-expose-headers", "x-mine".parse().unwrap());
        headers.insert("x-mine", "1".parse().unwrap());
        response
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(answer)).await;
    });
    let (_backend, gateway) = gateway(|c| {
        c.routes
            .push(group("/corsy/", &format!("http://{service}")));
        c.cors = Some(protogate::config::CorsOptions {
            allowed_origins: vec!["https://app.example".into()],
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: Duration::from_secs(60),
        });
    })
    .await;
    let client = support::http1();
    let get = |origin: &'static str| client.get(gateway.url("/corsy/x")).header("origin", origin);
    let refused = get("https://evil.example").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::OK);
    assert_eq!(refused.headers()["x-mine"], "1");
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        refused.headers()
    );
    let allowed = get("https://app.example").send().await.unwrap();
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(
        exposed.contains("grpc-status") && !exposed.contains("x-mine"),
        "{exposed}"
    );
}
