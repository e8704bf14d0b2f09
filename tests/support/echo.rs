//! A real tonic gRPC backend for any descriptor pool: echoes the request
//! when input and output types are equal (else answers an empty message,
//! or the scripted one), records every request with its metadata, and can
//! be steered per test (`Script`) or per call (`x-echo-*` metadata).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions,
};
use protogate::upstream::codec::RawCodec;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// What the backend answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Reply with this message (proto3 JSON) instead of echoing.
    pub response: Option<serde_json::Value>,
    /// Fail with this code, message and details (`Any` JSON values).
    pub error: Option<(Code, String, Vec<serde_json::Value>)>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Response headers to send.
    pub headers: Vec<(String, String)>,
    /// Trailers to send.
    pub trailers: Vec<(String, String)>,
    /// Compress responses with this encoding.
    pub compress: Option<CompressionEncoding>,
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Record {
    /// `/pkg.Service/Method`.
    pub method: String,
    /// The decoded request.
    pub message: DynamicMessage,
    /// The request as proto3 JSON with proto field names.
    pub json: serde_json::Value,
    /// The request metadata.
    pub metadata: MetadataMap,
}

#[derive(Debug, Default)]
struct State {
    records: Mutex<Vec<Record>>,
    script: Mutex<Script>,
    cancelled: std::sync::atomic::AtomicUsize,
    connections: std::sync::atomic::AtomicUsize,
}

/// A running echo backend.
#[derive(Debug)]
pub struct EchoBackend {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoBackend {
    /// Starts serving every method in `pool` on a free loopback port.
    pub async fn start(pool: DescriptorPool) -> EchoBackend {
        Self::start_on(pool, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address.
    pub async fn start_on(pool: DescriptorPool, addr: SocketAddr) -> EchoBackend {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind echo backend");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let service = EchoService {
            pool,
            state: state.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                service
                    .state
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        EchoBackend { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn records(&self) -> Vec<Record> {
        self.state.records.lock().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Record {
        self.records()
            .pop()
            .expect("the backend received a request")
    }

    /// Forgets recorded requests.
    pub fn clear(&self) {
        self.state.records.lock().clear();
    }

    /// Sets what the backend answers from now on.
    pub fn script(&self, script: Script) {
        *self.state.script.lock() = script;
    }

    /// How many calls ended because the client went away.
    pub fn cancelled(&self) -> usize {
        self.state
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many connections the backend accepted.
    pub fn connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops serving (new connections are refused).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone)]
struct EchoService {
    pool: DescriptorPool,
    state: Arc<State>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<hyper::body::Incoming>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let method = find_method(&self.pool, request.uri().path());
        let state = self.state.clone();
        let mut script = state.script.lock().clone();
        steer(
            &mut script,
            &MetadataMap::from_headers(request.headers().clone()),
        );
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(Status::unimplemented("no such method").into_http());
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd);
            if let Some(encoding) = script.compress {
                grpc = grpc.send_compressed(encoding);
            }
            let trailers = script.trailers.clone();
            let handler = Unary {
                method,
                state,
                script,
            };
            let response = grpc.unary(handler, request).await;
            if trailers.is_empty() {
                return Ok(response);
            }
            // tonic has no API for trailers on success: add them to the
            // trailers frame it writes.
            Ok(response.map(|body| {
                use http_body_util::BodyExt as _;
                let body = body.map_frame(move |mut frame| {
                    if let Some(map) = frame.trailers_mut() {
                        let mut extra = MetadataMap::new();
                        add_all(&mut extra, &trailers);
                        for (k, v) in extra.into_headers().iter() {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    frame
                });
                tonic::body::Body::new(body)
            }))
        })
    }
}

fn find_method(pool: &DescriptorPool, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

struct Unary {
    method: MethodDescriptor,
    state: Arc<State>,
    script: Script,
}

/// Per-call overrides from `x-echo-*` metadata.
fn steer(script: &mut Script, metadata: &MetadataMap) {
    let get = |k: &str| {
        metadata
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(ms) = get("x-echo-delay-ms").and_then(|v| v.parse().ok()) {
        script.delay = Some(Duration::from_millis(ms));
    }
    if let Some(code) = get("x-echo-status").and_then(|v| v.parse::<i32>().ok()) {
        let message = get("x-echo-message").unwrap_or_else(|| "echo error".to_owned());
        script.error = Some((Code::from_i32(code), message, Vec::new()));
    }
    if let Some(response) = get("x-echo-response").and_then(|v| serde_json::from_str(&v).ok()) {
        script.response = Some(response);
    }
    for kv in metadata.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
            let v = v.to_str().unwrap_or_default().to_owned();
            if let Some(name) = k.as_str().strip_prefix("x-echo-header-") {
                script.headers.push((name.to_owned(), v));
            } else if let Some(name) = k.as_str().strip_prefix("x-echo-trailer-") {
                script.trailers.push((name.to_owned(), v));
            }
        }
    }
}

fn to_json(message: &DynamicMessage) -> serde_json::Value {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or(serde_json::Value::Null)
}

fn from_json(desc: MessageDescriptor, json: &serde_json::Value) -> Result<DynamicMessage, Status> {
    DynamicMessage::deserialize(desc, json)
        .map_err(|e| Status::internal(format!("bad scripted JSON: {e}")))
}

fn add_all(target: &mut MetadataMap, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(k.as_bytes()),
            MetadataValue::try_from(v.as_str()),
        ) {
            target.append(k, v);
        }
    }
}

impl tonic::server::UnaryService<Bytes> for Unary {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let method = self.method.clone();
        let state = self.state.clone();
        let script = self.script.clone();
        Box::pin(async move {
            let (metadata, _, body) = request.into_parts();
            let message = DynamicMessage::decode(method.input(), body)
                .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))?;
            state.records.lock().push(Record {
                method: format!("/{}/{}", method.parent_service().full_name(), method.name()),
                json: to_json(&message),
                message: message.clone(),
                metadata,
            });
            if let Some(delay) = script.delay {
                let mut guard = CancelGuard(state.clone(), true);
                tokio::time::sleep(delay).await;
                guard.1 = false;
            }
            if let Some((code, text, details)) = &script.error {
                let mut status = if details.is_empty() {
                    Status::new(*code, text.clone())
                } else {
                    let desc = method
                        .parent_pool()
                        .get_message_by_name("google.rpc.Status")
                        .expect("google.rpc.Status");
                    let json = serde_json::json!({"code": *code as i32, "message": text, "details": details});
                    let encoded = from_json(desc, &json)?.encode_to_vec();
                    Status::with_details(*code, text.clone(), encoded.into())
                };
                add_all(status.metadata_mut(), &script.trailers);
                return Err(status);
            }
            let reply = match &script.response {
                Some(json) => from_json(method.output(), json)?,
                None if method.output() == method.input() => message,
                None => DynamicMessage::new(method.output()),
            };
            let mut response = tonic::Response::new(Bytes::from(reply.encode_to_vec()));
            add_all(response.metadata_mut(), &script.headers);
            Ok(response)
        })
    }
}

/// Counts a call as cancelled when its future is dropped mid-delay.
struct CancelGuard(Arc<State>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.1 {
            self.0
                .cancelled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
