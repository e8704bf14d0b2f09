//! The server reflection client against real tonic servers on loopback:
//! tonic-reflection's v1, v1alpha and both, an echo backend that reflects,
//! servers without reflection, nothing listening, a server that never
//! answers, and reflection servers that misbehave.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use protogate::descriptor::reflection::{self, ReflectionError};
use protogate::descriptor::{RawFile, Reflected, Sources};
use protogate::upstream::{Channel, ChannelSettings};
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::server::{Router, TcpIncoming};
use tonic_reflection::pb::v1;
use tonic_reflection::server::Builder;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The kitchen service with its imports (google/api, well-known types).
use support::kitchen;

/// Serves `router` on a free loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

fn channel(addr: SocketAddr) -> Channel {
    let config = protogate::UpstreamConfig::new(format!("http://{addr}"));
    let settings = ChannelSettings::of(&protogate::Config::default());
    Channel::new("kitchen", &config, &settings).unwrap()
}

/// A `FileDescriptorSet` with its files kept encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct Set {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    file: Vec<Bytes>,
}

/// The files of an encoded set, by name, as encoded.
fn files_of(set: &Bytes) -> HashMap<String, Bytes> {
    Set::decode(set.clone())
        .unwrap()
        .file
        .into_iter()
        .map(|bytes| (RawFile::decode(bytes.clone()).unwrap().name, bytes))
        .collect()
}

/// Checks `reflected` against the kitchen set: services listed, files
/// closed under imports and byte for byte as registered, and a pool with
/// the `google.api.http` rules intact.
fn check_kitchen(reflected: Reflected, set: &Bytes) {
    assert_eq!(reflected.upstream, "kitchen");
    assert!(
        reflected
            .services
            .contains(&"kitchen.v1.Kitchen".to_owned()),
        "{:?}",
        reflected.services
    );
    let names: HashSet<&str> = reflected.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), reflected.files.len(), "no file twice");
    for file in &reflected.files {
        for import in &file.imports {
            assert!(
                names.contains(import.as_str()),
                "{} misses {import}",
                file.name
            );
        }
    }
    let sent = files_of(set);
    for name in [
        "kitchen/v1/kitchen.proto",
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    for file in reflected
        .files
        .iter()
        .filter(|f| sent.contains_key(&f.name))
    {
        assert_eq!(file.bytes, sent[&file.name], "{} as registered", file.name);
    }

    let loaded = protogate::descriptor::load_files(&Sources {
        reflecting: vec!["kitchen".to_owned()],
        reflected: vec![reflected],
        ..Default::default()
    })
    .expect("reflected files load");
    let service = loaded
        .pool
        .get_service_by_name("kitchen.v1.Kitchen")
        .expect("kitchen.v1.Kitchen in the pool");
    let echo = service.methods().find(|m| m.name() == "Echo").unwrap();
    let http = loaded
        .pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http in the pool");
    let bindings = protogate::http_rule::rule::bindings(&echo, &http).unwrap();
    assert_eq!(bindings[0].method, http::Method::GET);
    assert_eq!(bindings[0].template, "/v1/echo");
    assert_eq!(bindings.len(), 15, "additional bindings kept");
}

async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<Reflected, ReflectionError> {
    reflection::fetch("kitchen", channel(addr), timeout).await
}

#[tokio::test]
async fn v1_only() {
    let set = kitchen();
    let v1 = Builder::configure()
        .register_encoded_file_descriptor_set(&set)
        .build_v1()
        .unwrap();
    let addr = serve(tonic::transport::Server::builder().add_service(v1)).await;
    let reflected = fetch(addr, TIMEOUT).await.unwrap();
    // gRPC's own services are never routed, so not taken.
    assert!(
        !reflected
            .services
            .contains(&"grpc.reflection.v1.ServerReflection".to_owned())
    );
    check_kitchen(reflected, &set);
}

#[tokio::test]
async fn v1alpha_only() {
    let set = kitchen();
    let v1alpha = Builder::configure()
        .register_encoded_file_descriptor_set(&set)
        .build_v1alpha()
        .unwrap();
    let addr = serve(tonic::transport::Server::builder().add_service(v1alpha)).await;
    let reflected = fetch(addr, TIMEOUT).await.unwrap();
    assert!(
        !reflected
            .services
            .contains(&"grpc.reflection.v1alpha.ServerReflection".to_owned())
    );
    check_kitchen(reflected, &set);
}

#[tokio::test]
async fn v1_and_v1alpha() {
    let set = kitchen();
    let build = || Builder::configure().register_encoded_file_descriptor_set(&set);
    let router = tonic::transport::Server::builder()
        .add_service(build().build_v1().unwrap())
        .add_service(build().build_v1alpha().unwrap());
    let addr = serve(router).await;
    check_kitchen(fetch(addr, TIMEOUT).await.unwrap(), &set);
}

#[tokio::test]
async fn echo_backend_reflects_and_swaps() {
    let set = kitchen();
    let backend = support::EchoBackend::start_reflecting(&set).await;
    let reflected = fetch(backend.addr(), TIMEOUT).await.unwrap();
    check_kitchen(reflected, &set);

    let other = support::compile_source(
        "swap.proto",
        "syntax = \"proto3\"; package swap.v1; message M {} service Swapped { rpc Get(M) returns (M); }",
    );
    backend.reflect(&other);
    let reflected = fetch(backend.addr(), TIMEOUT).await.unwrap();
    assert!(
        reflected.services.contains(&"swap.v1.Swapped".to_owned()),
        "{:?}",
        reflected.services
    );
    assert!(
        !reflected
            .services
            .contains(&"kitchen.v1.Kitchen".to_owned())
    );
}

#[tokio::test]
async fn server_without_reflection_is_not_served() {
    // A real gRPC server that serves only the kitchen service.
    let backend = support::EchoBackend::start(support::pool(&kitchen())).await;
    let started = Instant::now();
    let err = fetch(backend.addr(), TIMEOUT).await.unwrap_err();
    assert!(
        matches!(err, ReflectionError::NotServed { ref upstream } if upstream == "kitchen"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let message = err.to_string();
    assert!(message.contains("`kitchen`"), "{message}");
    assert!(message.contains("does not serve"), "{message}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let started = Instant::now();
    let err = fetch(addr, TIMEOUT).await.unwrap_err();
    assert!(
        matches!(err, ReflectionError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        err.to_string().contains("cannot reach upstream `kitchen`"),
        "{err}"
    );
    // The cause is spelled out, not only tonic's "tcp connect error".
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the transport cause"
    );
}

/// An HTTP server that is not gRPC at all (its 404 would read as
/// UNIMPLEMENTED) is named as such, not as a server without reflection.
#[tokio::test]
async fn plain_http_server_is_not_grpc() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let _ = axum::serve(listener, router).await;
    });
    let err = fetch(addr, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, ReflectionError::NotGrpc { .. }), "{err:?}");
    assert!(err.to_string().contains("is it a gRPC server"), "{err}");
    server.abort();
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let err = fetch(addr, Duration::from_millis(500)).await.unwrap_err();
    let elapsed = started.elapsed();
    silent.abort();
    assert!(matches!(err, ReflectionError::TimedOut { .. }), "{err:?}");
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(err.to_string().contains("500ms"), "{err}");
}

#[tokio::test]
async fn missing_import_is_named() {
    // The kitchen file alone, without the files it imports.
    let set = kitchen();
    let kitchen_file = files_of(&set)["kitchen/v1/kitchen.proto"].clone();
    let lone = Bytes::from(
        Set {
            file: vec![kitchen_file],
        }
        .encode_to_vec(),
    );
    let v1 = Builder::configure()
        .register_encoded_file_descriptor_set(&lone)
        .include_reflection_service(false)
        .build_v1()
        .unwrap();
    let addr = serve(tonic::transport::Server::builder().add_service(v1)).await;
    let err = fetch(addr, TIMEOUT).await.unwrap_err();
    match &err {
        ReflectionError::MissingFile { file, importer, .. } => {
            assert_eq!(importer, "kitchen/v1/kitchen.proto");
            assert!(file.starts_with("google/"), "{file}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("imported by `kitchen/v1/kitchen.proto`"),
        "{err}"
    );
}

/// How a scripted reflection server misbehaves after listing its service.
#[derive(Debug, Clone, Copy)]
enum Misbehave {
    /// Ends the stream (status OK) instead of answering.
    End,
    /// Answers a symbol with a service list.
    WrongKind,
    /// Answers a symbol with an error_response.
    ErrorResponse,
    /// Answers a symbol with bytes that are no FileDescriptorProto.
    Garbage,
    /// Never answers the symbol.
    Stall,
    /// Lists only gRPC's own services and describes none of them.
    OwnOnly,
    /// Lists the kitchen, which it describes, and a ghost, which it
    /// does not.
    Ghost,
    /// Answers everything, the service list too, with an error_response
    /// of code 0 and no message (what a server that echoes every request
    /// back sends, read as a reflection answer).
    OkError,
}

#[derive(Debug)]
struct Scripted(Misbehave);

type Answers =
    Pin<Box<dyn Stream<Item = Result<v1::ServerReflectionResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl v1::server_reflection_server::ServerReflection for Scripted {
    type ServerReflectionInfoStream = Answers;

    async fn server_reflection_info(
        &self,
        request: tonic::Request<tonic::Streaming<v1::ServerReflectionRequest>>,
    ) -> Result<tonic::Response<Answers>, tonic::Status> {
        use v1::server_reflection_request::MessageRequest;
        use v1::server_reflection_response::MessageResponse;
        let mode = self.0;
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let list = || {
                let names: &[&str] = match mode {
                    Misbehave::OwnOnly => &[
                        "grpc.reflection.v1.ServerReflection",
                        "grpc.health.v1.Health",
                    ],
                    Misbehave::Ghost => &["ghost.v1.Ghost", "kitchen.v1.Kitchen"],
                    _ => &["kitchen.v1.Kitchen"],
                };
                let service = names
                    .iter()
                    .map(|name| v1::ServiceResponse {
                        name: (*name).to_owned(),
                    })
                    .collect();
                MessageResponse::ListServicesResponse(v1::ListServiceResponse { service })
            };
            while let Some(Ok(request)) = inbound.next().await {
                let answer = match (request.message_request, mode) {
                    (_, Misbehave::OkError) => {
                        MessageResponse::ErrorResponse(v1::ErrorResponse::default())
                    }
                    (Some(MessageRequest::ListServices(_)), _) => list(),
                    (_, Misbehave::End) => return,
                    (_, Misbehave::Stall) => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    (_, Misbehave::WrongKind) => list(),
                    (Some(MessageRequest::FileContainingSymbol(symbol)), Misbehave::Ghost)
                        if symbol.starts_with("kitchen.") =>
                    {
                        // Every file at once: no import is asked for.
                        let file_descriptor_proto = files_of(&kitchen())
                            .into_values()
                            .map(|f| f.to_vec())
                            .collect();
                        MessageResponse::FileDescriptorResponse(v1::FileDescriptorResponse {
                            file_descriptor_proto,
                        })
                    }
                    (_, Misbehave::ErrorResponse | Misbehave::OwnOnly | Misbehave::Ghost) => {
                        MessageResponse::ErrorResponse(v1::ErrorResponse {
                            error_code: tonic::Code::NotFound as i32,
                            error_message: "no such symbol here".to_owned(),
                        })
                    }
                    (_, Misbehave::Garbage) => {
                        MessageResponse::FileDescriptorResponse(v1::FileDescriptorResponse {
                            file_descriptor_proto: vec![vec![0xff, 0xff, 0xff]],
                        })
                    }
                };
                let response = v1::ServerReflectionResponse {
                    message_response: Some(answer),
                    ..Default::default()
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

async fn misbehaving(mode: Misbehave, timeout: Duration) -> ReflectionError {
    let server = v1::server_reflection_server::ServerReflectionServer::new(Scripted(mode));
    let addr = serve(tonic::transport::Server::builder().add_service(server)).await;
    let started = Instant::now();
    let err = fetch(addr, timeout).await.unwrap_err();
    assert!(started.elapsed() < timeout + Duration::from_secs(1));
    err
}

/// A server that lists gRPC's own services but cannot describe them (the
/// gateway never routes them) is not refused for it.
#[tokio::test]
async fn grpcs_own_services_are_not_asked_for() {
    let server =
        v1::server_reflection_server::ServerReflectionServer::new(Scripted(Misbehave::OwnOnly));
    let addr = serve(tonic::transport::Server::builder().add_service(server)).await;
    let reflected = fetch(addr, TIMEOUT).await.unwrap();
    assert!(reflected.services.is_empty(), "{:?}", reflected.services);
    assert!(reflected.files.is_empty());
}

/// A service listed but not described is left out and named; the others
/// are served (one bad entry does not hold back the upstream's routes).
#[tokio::test]
async fn a_service_it_will_not_describe_is_skipped() {
    let server =
        v1::server_reflection_server::ServerReflectionServer::new(Scripted(Misbehave::Ghost));
    let addr = serve(tonic::transport::Server::builder().add_service(server)).await;
    let reflected = fetch(addr, TIMEOUT).await.unwrap();
    assert_eq!(reflected.skipped.len(), 1, "{:?}", reflected.skipped);
    assert!(
        reflected.skipped[0].starts_with("ghost.v1.Ghost: NotFound"),
        "{:?}",
        reflected.skipped
    );
    check_kitchen(reflected, &kitchen());
}

#[tokio::test]
async fn stream_ending_early_is_malformed() {
    let err = misbehaving(Misbehave::End, TIMEOUT).await;
    assert!(matches!(err, ReflectionError::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("ended before answering symbol `kitchen.v1.Kitchen`"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_answer_kind_is_malformed() {
    let err = misbehaving(Misbehave::WrongKind, TIMEOUT).await;
    assert!(matches!(err, ReflectionError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("service list"), "{err}");
}

/// An "error" of code OK is not a refusal to quote ("refused ...: Ok:"):
/// whatever answered does not speak reflection.
#[tokio::test]
async fn an_error_of_code_ok_is_malformed() {
    let err = misbehaving(Misbehave::OkError, TIMEOUT).await;
    assert!(matches!(err, ReflectionError::Malformed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("code 0 (OK)") && text.contains("the service list"),
        "{text}"
    );
}

#[tokio::test]
async fn error_response_names_the_symbol() {
    let err = misbehaving(Misbehave::ErrorResponse, TIMEOUT).await;
    match &err {
        ReflectionError::Refused { asked, code, .. } => {
            assert_eq!(asked, "symbol `kitchen.v1.Kitchen`");
            assert_eq!(*code, tonic::Code::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("no such symbol here"), "{err}");
}

#[tokio::test]
async fn undecodable_file_is_malformed() {
    let err = misbehaving(Misbehave::Garbage, TIMEOUT).await;
    assert!(matches!(err, ReflectionError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("does not decode"), "{err}");
}

#[tokio::test]
async fn stalled_answer_times_out() {
    let err = misbehaving(Misbehave::Stall, Duration::from_millis(500)).await;
    assert!(matches!(err, ReflectionError::TimedOut { .. }), "{err:?}");
}
