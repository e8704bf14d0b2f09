//! The fixture every section uses: the kitchen descriptors, a real tonic
//! echo backend, the gateway in process, an HTTP/1.1 client, and helpers
//! that read answers and assert exact errors.

use std::sync::OnceLock;

use bytes::Bytes;
use protogate::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{self, EchoBackend, TestGateway};

/// `tests/protos/kitchen/v1/kitchen.proto`, compiled once.
pub(crate) fn kitchen() -> Bytes {
    static SET: OnceLock<Bytes> = OnceLock::new();
    SET.get_or_init(|| {
        support::compile(
            &support::repo().join("tests/protos"),
            &["kitchen/v1/kitchen.proto"],
        )
    })
    .clone()
}

/// The backend, the gateway in front of it and a client.
pub(crate) struct Fixture {
    pub(crate) backend: EchoBackend,
    pub(crate) gateway: TestGateway,
    pub(crate) client: reqwest::Client,
}

/// A whole answer: status, headers and body (as JSON when it parses).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    /// The body as JSON; panics with the text when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text))
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub(crate) async fn fixture_with(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let set = kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    tweak(&mut config);
    let gateway = TestGateway::start(config).await;
    Fixture {
        backend,
        gateway,
        client: support::http1(),
    }
}

impl Fixture {
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.gateway.url(path))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let reply = self
            .call(method, path, content_type, &[], body.as_bytes().to_vec())
            .await;
        (reply.status, reply.json())
    }

    pub(crate) async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send("POST", path, Some("application/json"), body)
            .await
    }

    /// Any request, with extra headers and raw body bytes.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.gateway.url(path))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.send().await.unwrap()).await
    }

    /// The `/pkg.Service/Method` of the last call the backend received.
    pub(crate) fn last_method(&self) -> String {
        self.backend.last().method
    }
}

pub(crate) async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let reply = reply(response).await;
    (reply.status, reply.json())
}

pub(crate) async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A 400 whose google.rpc.Status message contains `needle`.
pub(crate) fn assert_bad_request(got: (StatusCode, Value), needle: &str) {
    let (status, body) = got;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 3, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
    assert_eq!(body["details"], json!([]));
}

/// An error answer that is exactly `{"code", "message", "details": []}`.
pub(crate) fn assert_error(got: (StatusCode, Value), status: u16, code: i32, message: &str) {
    assert_eq!(
        got,
        (
            StatusCode::from_u16(status).unwrap(),
            json!({"code": code, "message": message, "details": []})
        )
    );
}

/// `bytes` as a stream of 100-byte chunks (a chunked request body).
pub(crate) fn chunks(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(100)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    tokio_stream::iter(chunks)
}
