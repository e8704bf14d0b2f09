//! One port for the whole fleet: gRPC clients passed through (a real tonic
//! client, all call shapes, statuses and details intact), gRPC-Web from
//! browsers (binary and text, checked byte for byte), CORS preflight.

mod support;

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use protogate::demo::pb::{self, bookshop_client::BookshopClient};
use support::TestGateway;
use tokio_stream::StreamExt as _;

async fn demo(
    tweak: impl FnOnce(&mut protogate::Config),
) -> (protogate::demo::Backend, TestGateway) {
    let backend = protogate::demo::Backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = protogate::demo::config("127.0.0.1:0".parse().unwrap(), backend.addr());
    tweak(&mut config);
    (backend, TestGateway::start(config).await)
}

async fn client(addr: SocketAddr) -> BookshopClient<tonic::transport::Channel> {
    BookshopClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// gRPC clients reach every call shape through the REST port.
#[tokio::test]
async fn grpc_clients_are_passed_through() {
    let (_backend, gateway) = demo(|_| {}).await;
    let mut client = client(gateway.addr()).await;

    let shelves = client
        .list_shelves(pb::ListShelvesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shelves.shelves.len(), 2);

    let mut events = client
        .watch_shelf(pb::WatchShelfRequest {
            shelf: "shelves/science".into(),
            interval_ms: 1,
            max_events: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut titles = Vec::new();
    while let Some(event) = events.next().await {
        titles.push(event.unwrap().book.unwrap().title);
    }
    assert_eq!(titles, ["Cosmos", "On the Origin of Species"]);

    let books = tokio_stream::iter(["A", "B", "C"].map(|title| pb::ImportBookRequest {
        parent: "shelves/science".into(),
        book: Some(pb::Book {
            title: title.into(),
            ..Default::default()
        }),
    }));
    let imported = client.import_books(books).await.unwrap().into_inner();
    assert_eq!(imported.imported, 3);

    let questions = tokio_stream::iter(["dune", "cosmos"].map(|q| pb::Question { text: q.into() }));
    let mut answers = client.ask_librarian(questions).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(answer) = answers.next().await {
        got.push(answer.unwrap().text);
    }
    assert_eq!(got, ["Try Dune.", "Try Cosmos."]);
}

/// Statuses, messages, rich details and metadata pass through intact.
#[tokio::test]
async fn grpc_errors_pass_through_intact() {
    let (_backend, gateway) = demo(|_| {}).await;
    let mut client = client(gateway.addr()).await;
    let status = client
        .get_book(pb::GetBookRequest {
            name: "shelves/fiction/books/missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        status.message(),
        "book `shelves/fiction/books/missing` not found"
    );
    let details = pb::google::rpc::Status::decode(status.details()).unwrap();
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/google.rpc.ResourceInfo"
    );
}

/// A service no upstream serves answers UNIMPLEMENTED in gRPC terms.
#[tokio::test]
async fn unknown_services_are_unimplemented() {
    let (_backend, gateway) = demo(|c| {
        // Only the bookshop's own service goes anywhere.
        c.upstreams.get_mut("bookshop").unwrap().services =
            vec!["protogate.demo.v1.Bookshop".into()];
    })
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gateway.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(Bytes::new()),
            http::uri::PathAndQuery::from_static("/other.v1.Thing/Do"),
            protogate::upstream::codec::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(status.message().contains("other.v1.Thing"));
}

fn expected_dune() -> pb::Book {
    pb::Book {
        name: "shelves/fiction/books/dune".into(),
        title: "Dune".into(),
        author: "Frank Herbert".into(),
        pages: 412,
        genre: pb::Genre::Fiction as i32,
        archived: false,
        create_time: Some(prost_types::Timestamp {
            seconds: 1_735_689_600,
            nanos: 0,
        }),
        sku: 9_780_441_013_593,
    }
}

/// gRPC-Web binary mode: the response is the message frame followed by a
/// trailers frame, byte for byte.
#[tokio::test]
async fn grpc_web_binary_byte_for_byte() {
    let (_backend, gateway) = demo(|_| {}).await;
    let request = pb::GetBookRequest {
        name: "shelves/fiction/books/dune".into(),
    };
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/GetBook"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(support::envelope(0, &request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web+proto"
    );
    let body = response.bytes().await.unwrap();
    let mut expected = support::envelope(0, &expected_dune().encode_to_vec()).to_vec();
    expected.extend_from_slice(&support::envelope(0x80, b"grpc-status:0\r\n"));
    assert_eq!(body.as_ref(), expected.as_slice());
}

/// gRPC-Web text mode: the same bytes, base64 both ways; errors travel in
/// the trailers frame.
#[tokio::test]
async fn grpc_web_text_mode_and_errors() {
    let (_backend, gateway) = demo(|_| {}).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let request = pb::GetBookRequest {
        name: "shelves/fiction/books/dune".into(),
    };
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/GetBook"))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .body(b64.encode(support::envelope(0, &request.encode_to_vec())))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web-text+proto"
    );
    let text = response.text().await.unwrap();
    // Frames are base64-encoded one by one, so padding may sit mid-text;
    // every 4-character group decodes on its own.
    let decoded: Vec<u8> = text
        .as_bytes()
        .chunks(4)
        .flat_map(|group| b64.decode(group).unwrap())
        .collect();
    let mut expected = support::envelope(0, &expected_dune().encode_to_vec()).to_vec();
    expected.extend_from_slice(&support::envelope(0x80, b"grpc-status:0\r\n"));
    assert_eq!(decoded, expected);

    let missing = pb::GetBookRequest {
        name: "shelves/fiction/books/nope".into(),
    };
    let response = support::http1()
        .post(gateway.url("/protogate.demo.v1.Bookshop/GetBook"))
        .header("content-type", "application/grpc-web+proto")
        .body(support::envelope(0, &missing.encode_to_vec()))
        .send()
        .await
        .unwrap();
    // A trailers-only answer: the status in the headers, an empty body.
    assert_eq!(response.headers()["grpc-status"], "5");
    assert!(response.headers().contains_key("grpc-status-details-bin"));
    assert!(response.bytes().await.unwrap().is_empty());
}

/// Browsers preflight gRPC-Web calls; with CORS configured the gateway
/// answers for the listed origins only.
#[tokio::test]
async fn cors_preflight_for_grpc_web() {
    let (_backend, gateway) = demo(|c| {
        c.cors = Some(protogate::config::CorsOptions {
            // Written with a capital and a trailing slash: the origin browsers
            // send (`https://app.example`) is what it means.
            allowed_origins: vec!["https://App.example/".into()],
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: std::time::Duration::from_secs(60),
        });
    })
    .await;
    let client = support::http1();
    let response = client
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/protogate.demo.v1.Bookshop/GetBook"),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(headers["access-control-allow-methods"], "POST");
    // A route's custom verb (`custom: {kind: "LOCK"}`) is allowed as well
    // as the common ones: the routes say which methods exist.
    let response = client
        .request(reqwest::Method::OPTIONS, gateway.url("/v1/anything"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "LOCK")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-methods"], "LOCK");
    // An OPTIONS that is not a preflight is the routes' to answer: REST's
    // `Allow`, with the CORS headers of an actual request when a page
    // sent it.
    for origin in [None, Some("https://app.example")] {
        let mut request = client.request(
            reqwest::Method::OPTIONS,
            gateway.url("/v1/shelves/fiction/books/dune"),
        );
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 204, "{origin:?}");
        let allow = response.headers()["allow"].to_str().unwrap();
        assert!(
            allow.contains("GET") && allow.contains("OPTIONS"),
            "{allow}"
        );
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-methods")
        );
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            origin,
        );
    }
    // The actual call exposes the gRPC status headers to the page.
    let request = pb::GetBookRequest {
        name: "shelves/fiction/books/dune".into(),
    };
    let response = client
        .post(gateway.url("/protogate.demo.v1.Bookshop/GetBook"))
        .header("origin", "https://app.example")
        .header("content-type", "application/grpc-web+proto")
        .body(support::envelope(0, &request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("grpc-status")
    );
    // Other origins get no CORS headers.
    let response = client
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/protogate.demo.v1.Bookshop/GetBook"),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
