//! A real tonic gRPC backend for any descriptor pool: echoes the request
//! when input and output types are equal (else answers an empty message,
//! or the scripted one), records every request with its metadata, and can
//! be steered per test (`Script`) or per call (`x-echo-*` metadata).
//! Started with `start_reflecting`, it also serves gRPC server reflection
//! (v1 and v1alpha) of its descriptor set, which `reflect` swaps.

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
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// What the backend answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Reply with this message (proto3 JSON) instead of echoing.
    pub response: Option<serde_json::Value>,
    /// Reply with these protobuf bytes, whatever they hold.
    pub raw_response: Option<Bytes>,
    /// Fail with this code, message and details (`Any` JSON values).
    pub error: Option<(Code, String, Vec<serde_json::Value>)>,
    /// With `error`: this one detail, as given, instead of `error`'s.
    pub raw_details: Option<prost_types::Any>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Response headers to send.
    pub headers: Vec<(String, String)>,
    /// Trailers to send.
    pub trailers: Vec<(String, String)>,
    /// Compress responses with this encoding.
    pub compress: Option<CompressionEncoding>,
    /// Server streams: how many replies (default 3).
    pub count: Option<usize>,
    /// Streams: pause between replies.
    pub interval: Option<Duration>,
    /// Streams: fail with `error` (or INTERNAL) after this many replies.
    pub fail_after: Option<usize>,
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
    pool: Mutex<DescriptorPool>,
    /// Server reflection, when served.
    reflection: Mutex<Option<tonic::service::Routes>>,
    /// `grpc.health.v1`, when served: its reporter and service.
    health: Mutex<Option<(tonic_health::server::HealthReporter, tonic::service::Routes)>>,
    records: Mutex<Vec<Record>>,
    script: Mutex<Script>,
    cancelled: std::sync::atomic::AtomicUsize,
    connections: std::sync::atomic::AtomicUsize,
    /// The tasks serving its connections, for [`EchoBackend::kill`].
    serving: Mutex<Vec<tokio::task::AbortHandle>>,
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
        Self::serve(pool, addr, None).await
    }

    /// Starts on a free loopback port behind TLS with `config` (see
    /// [`super::tls::server_config`]): the handshake runs on each
    /// connection before HTTP/2.
    pub async fn start_tls(pool: DescriptorPool, config: Arc<rustls::ServerConfig>) -> EchoBackend {
        let tls = tokio_rustls::TlsAcceptor::from(config);
        Self::serve(pool, "127.0.0.1:0".parse().unwrap(), Some(tls)).await
    }

    async fn serve(
        pool: DescriptorPool,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> EchoBackend {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind echo backend");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            pool: Mutex::new(pool),
            ..State::default()
        });
        let service = EchoService {
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
                let state = service.state.clone();
                let service = service.clone();
                let tls = tls.clone();
                let connection = tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, service).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_connection(stream, service).await;
                            }
                        }
                    }
                });
                state.serving.lock().push(connection.abort_handle());
            }
        });
        EchoBackend { addr, state, task }
    }

    /// Starts serving every method in `set` (an encoded
    /// `FileDescriptorSet` with imports) plus server reflection of `set`,
    /// v1 and v1alpha, its files as given.
    pub async fn start_reflecting(set: &Bytes) -> EchoBackend {
        let backend = Self::start(super::pool(set)).await;
        backend.reflect(set);
        backend
    }

    /// Serves and reflects `set` from now on, on open connections too.
    pub fn reflect(&self, set: &Bytes) {
        let build = || {
            tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(set)
        };
        let v1 = build().build_v1().expect("reflection of the set");
        let v1alpha = build().build_v1alpha().expect("reflection of the set");
        *self.state.pool.lock() = super::pool(set);
        *self.state.reflection.lock() = Some(tonic::service::Routes::new(v1).add_service(v1alpha));
    }

    /// Reflects `set` without serving it: a set no pool could load, as a
    /// broken backend might describe itself.
    pub fn reflect_only(&self, set: &Bytes) {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(set)
            .build_v1()
            .expect("reflection of the set");
        *self.state.reflection.lock() = Some(tonic::service::Routes::new(v1));
    }

    /// Serves and reflects `set` with the older `v1alpha` protocol only,
    /// as servers built before `v1` do.
    pub fn reflect_v1alpha_only(&self, set: &Bytes) {
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(set)
            .build_v1alpha()
            .expect("reflection of the set");
        *self.state.pool.lock() = super::pool(set);
        *self.state.reflection.lock() = Some(tonic::service::Routes::new(v1alpha));
    }

    /// Serves `grpc.health.v1`, reporting `serving` for the server as a
    /// whole (`""`) from now on.
    pub async fn set_serving(&self, serving: bool) {
        let reporter = {
            let mut health = self.state.health.lock();
            let (reporter, _) = health.get_or_insert_with(|| {
                let (reporter, service) = tonic_health::server::health_reporter();
                (reporter, tonic::service::Routes::new(service))
            });
            reporter.clone()
        };
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
    }

    /// Stops serving server reflection (its calls are UNIMPLEMENTED).
    pub fn stop_reflecting(&self) {
        *self.state.reflection.lock() = None;
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

    /// How many of its connections are open now.
    pub fn open_connections(&self) -> usize {
        self.state
            .serving
            .lock()
            .iter()
            .filter(|c| !c.is_finished())
            .count()
    }

    /// Dies as a crashed process would: no new connections, and every
    /// open one dropped with its calls in flight.
    pub fn kill(&self) {
        self.task.abort();
        for connection in self.state.serving.lock().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection, HTTP/2 only, until it ends.
async fn serve_connection<I>(io: I, service: EchoService)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _ = auto::Builder::new(TokioExecutor::new())
        .http2_only()
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .await;
}

#[derive(Debug, Clone)]
struct EchoService {
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
        if request.uri().path().starts_with("/grpc.reflection.")
            && let Some(reflection) = self.state.reflection.lock().clone()
        {
            return Box::pin(tower::ServiceExt::oneshot(reflection, request));
        }
        if request.uri().path().starts_with("/grpc.health.v1.")
            && let Some((_, health)) = self.state.health.lock().clone()
        {
            return Box::pin(tower::ServiceExt::oneshot(health, request));
        }
        let method = find_method(&self.state.pool.lock(), request.uri().path());
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
            let handler = Handler {
                method: method.clone(),
                state,
                script,
            };
            let response = match (method.is_client_streaming(), method.is_server_streaming()) {
                (false, false) => grpc.unary(handler, request).await,
                (false, true) => grpc.server_streaming(handler, request).await,
                (true, false) => grpc.client_streaming(handler, request).await,
                (true, true) => grpc.streaming(handler, request).await,
            };
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

#[derive(Clone)]
struct Handler {
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
    if let Some(n) = get("x-echo-count").and_then(|v| v.parse().ok()) {
        script.count = Some(n);
    }
    if let Some(ms) = get("x-echo-interval-ms").and_then(|v| v.parse().ok()) {
        script.interval = Some(Duration::from_millis(ms));
    }
    if let Some(n) = get("x-echo-fail-after").and_then(|v| v.parse().ok()) {
        script.fail_after = Some(n);
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

impl Handler {
    fn name(&self) -> String {
        format!(
            "/{}/{}",
            self.method.parent_service().full_name(),
            self.method.name()
        )
    }

    /// Decodes and records one request message.
    fn record(&self, metadata: &MetadataMap, body: Bytes) -> Result<DynamicMessage, Status> {
        let message = DynamicMessage::decode(self.method.input(), body)
            .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))?;
        self.state.records.lock().push(Record {
            method: self.name(),
            json: to_json(&message),
            message: message.clone(),
            metadata: metadata.clone(),
        });
        Ok(message)
    }

    /// The scripted error, if any (`forced` makes one up when none is).
    fn error(&self, forced: bool) -> Result<Option<Status>, Status> {
        let Some((code, text, details)) = &self.script.error else {
            return Ok(forced.then(|| Status::internal("echo stream failure")));
        };
        let mut status = if let Some(any) = &self.script.raw_details {
            let mut encoded = Vec::new();
            prost::encoding::int32::encode(1, &(*code as i32), &mut encoded);
            prost::encoding::string::encode(2, text, &mut encoded);
            prost::encoding::message::encode(3, any, &mut encoded);
            Status::with_details(*code, text.clone(), encoded.into())
        } else if details.is_empty() {
            Status::new(*code, text.clone())
        } else {
            let desc = self
                .method
                .parent_pool()
                .get_message_by_name("google.rpc.Status")
                .expect("google.rpc.Status");
            let json =
                serde_json::json!({"code": *code as i32, "message": text, "details": details});
            let encoded = from_json(desc, &json)?.encode_to_vec();
            Status::with_details(*code, text.clone(), encoded.into())
        };
        add_all(status.metadata_mut(), &self.script.trailers);
        Ok(Some(status))
    }

    /// The reply to `message`: scripted, an echo, or empty.
    fn reply(&self, message: Option<DynamicMessage>) -> Result<Bytes, Status> {
        if let Some(raw) = &self.script.raw_response {
            return Ok(raw.clone());
        }
        let reply = match (&self.script.response, message) {
            (Some(json), _) => from_json(self.method.output(), json)?,
            (None, Some(message)) if self.method.output() == self.method.input() => message,
            _ => DynamicMessage::new(self.method.output()),
        };
        Ok(Bytes::from(reply.encode_to_vec()))
    }

    async fn delay(&self) {
        if let Some(delay) = self.script.delay {
            let mut guard = CancelGuard(self.state.clone(), true);
            tokio::time::sleep(delay).await;
            guard.1 = false;
        }
    }

    fn response<T>(&self, body: T) -> tonic::Response<T> {
        let mut response = tonic::Response::new(body);
        add_all(response.metadata_mut(), &self.script.headers);
        response
    }

    /// Sends `replies` one by one with the scripted pause, failing after
    /// `fail_after`; counts a cancellation when the client goes away.
    fn stream_out(&self, mut replies: mpsc::Receiver<Result<Bytes, Status>>) -> ReplyStream {
        let (tx, rx) = mpsc::channel(1);
        let handler = self.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                if handler.script.fail_after == Some(sent) {
                    let status = handler.error(true).ok().flatten();
                    if let Some(status) = status {
                        let _ = tx.send(Err(status)).await;
                    }
                    return;
                }
                let next = tokio::select! {
                    next = replies.recv() => next,
                    () = tx.closed() => {
                        handler.state.cancelled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                };
                let Some(item) = next else { return };
                if sent > 0
                    && let Some(pause) = handler.script.interval
                {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = tx.closed() => {
                            handler.state.cancelled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                    }
                }
                let failed = item.is_err();
                if tx.send(item).await.is_err() {
                    handler
                        .state
                        .cancelled
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                if failed {
                    return;
                }
                sent += 1;
            }
        });
        ReceiverStream::new(rx)
    }
}

type ReplyStream = ReceiverStream<Result<Bytes, Status>>;

impl tonic::server::UnaryService<Bytes> for Handler {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move {
            let (metadata, _, body) = request.into_parts();
            let message = handler.record(&metadata, body)?;
            handler.delay().await;
            if let Some(status) = handler.error(false)? {
                return Err(status);
            }
            Ok(handler.response(handler.reply(Some(message))?))
        })
    }
}

impl tonic::server::ServerStreamingService<Bytes> for Handler {
    type Response = Bytes;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<tonic::Response<ReplyStream>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let mut handler = self.clone();
        Box::pin(async move {
            let (metadata, _, body) = request.into_parts();
            let message = handler.record(&metadata, body)?;
            handler.delay().await;
            if handler.script.error.is_some() && handler.script.fail_after.is_none() {
                handler.script.fail_after = Some(0);
            }
            let count = handler.script.count.unwrap_or(3);
            let (tx, rx) = mpsc::channel(count.max(1));
            for _ in 0..count {
                let _ = tx.try_send(handler.reply(Some(message.clone())));
            }
            drop(tx);
            Ok(handler.response(handler.stream_out(rx)))
        })
    }
}

impl tonic::server::ClientStreamingService<Bytes> for Handler {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Bytes>>) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move {
            let (metadata, _, mut stream) = request.into_parts();
            let mut last = None;
            loop {
                match stream.message().await {
                    Ok(Some(body)) => last = Some(handler.record(&metadata, body)?),
                    Ok(None) => break,
                    Err(status) => {
                        handler
                            .state
                            .cancelled
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return Err(status);
                    }
                }
            }
            handler.delay().await;
            if let Some(status) = handler.error(false)? {
                return Err(status);
            }
            Ok(handler.response(handler.reply(last)?))
        })
    }
}

impl tonic::server::StreamingService<Bytes> for Handler {
    type Response = Bytes;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Result<tonic::Response<ReplyStream>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Bytes>>) -> Self::Future {
        let mut handler = self.clone();
        Box::pin(async move {
            let (metadata, _, mut stream) = request.into_parts();
            handler.delay().await;
            if handler.script.error.is_some() && handler.script.fail_after.is_none() {
                handler.script.fail_after = Some(0);
            }
            let (tx, rx) = mpsc::channel(4);
            let echo = handler.clone();
            tokio::spawn(async move {
                loop {
                    match stream.message().await {
                        Ok(Some(body)) => {
                            let reply = echo
                                .record(&metadata, body)
                                .and_then(|message| echo.reply(Some(message)));
                            if tx.send(reply).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(status) => {
                            echo.state
                                .cancelled
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                }
            });
            Ok(handler.response(handler.stream_out(rx)))
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
