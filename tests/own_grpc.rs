//! The gateway's own gRPC face on its main port: server reflection (v1 and
//! v1alpha) over every service in its pool, with the files' custom options
//! intact; health reporting its readiness; the passthrough beside them.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use prost_reflect::DescriptorPool;
use protogate::{Gateway, ListenerOptions, Server};
use support::EchoBackend;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use support::kitchen;

/// An echo backend for the kitchen and the gateway in front of it, built
/// here so that the test holds the gateway (to flip its readiness).
struct Setup {
    backend: EchoBackend,
    gateway: Arc<Gateway>,
    server: Server,
    channel: Channel,
}

async fn setup() -> Setup {
    protogate::install_crypto_provider();
    let set = kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let config = support::gateway::config(&set, &backend.url());
    let gateway = Gateway::with_readiness(protogate::Snapshot::build(&config).unwrap(), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::start(listener, gateway.clone(), ListenerOptions::default()).unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    Setup {
        backend,
        gateway,
        server,
        channel,
    }
}

/// What a reflection answer holds, whatever the protocol version.
#[derive(Debug)]
enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
}

/// One question to a reflection service of either version.
enum Ask<'a> {
    Services,
    Symbol(&'a str),
    File(&'a str),
}

trait Reflect {
    async fn ask(&mut self, question: Ask<'_>) -> Result<Answer, tonic::Status>;
}

/// `Reflect` for a version's generated client: one question per stream.
macro_rules! reflect {
    ($version:ident) => {
        impl Reflect
            for tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient<
                Channel,
            >
        {
            async fn ask(&mut self, question: Ask<'_>) -> Result<Answer, tonic::Status> {
                use tonic_reflection::pb::$version::ServerReflectionRequest;
                use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
                use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
                let message = match question {
                    Ask::Services => MessageRequest::ListServices(String::new()),
                    Ask::Symbol(s) => MessageRequest::FileContainingSymbol(s.to_owned()),
                    Ask::File(f) => MessageRequest::FileByFilename(f.to_owned()),
                };
                let request = ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(message),
                };
                let mut answers = self
                    .server_reflection_info(tokio_stream::once(request))
                    .await?
                    .into_inner();
                let answer = answers.message().await?.expect("an answer");
                match answer.message_response.expect("a response") {
                    MessageResponse::ListServicesResponse(list) => Ok(Answer::Services(
                        list.service.into_iter().map(|s| s.name).collect(),
                    )),
                    MessageResponse::FileDescriptorResponse(files) => {
                        Ok(Answer::Files(files.file_descriptor_proto))
                    }
                    MessageResponse::ErrorResponse(error) => Err(tonic::Status::new(
                        error.error_code.into(),
                        error.error_message,
                    )),
                    other => panic!("unexpected answer {other:?}"),
                }
            }
        }
    };
}

reflect!(v1);
reflect!(v1alpha);

fn v1(channel: &Channel) -> impl Reflect {
    tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
}

fn v1alpha(channel: &Channel) -> impl Reflect {
    tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
        channel.clone(),
    )
}

async fn services(client: &mut impl Reflect) -> Vec<String> {
    match client.ask(Ask::Services).await.unwrap() {
        Answer::Services(names) => names,
        other => panic!("expected services, got {other:?}"),
    }
}

async fn files(client: &mut impl Reflect, question: Ask<'_>) -> Vec<Vec<u8>> {
    match client.ask(question).await.unwrap() {
        Answer::Files(files) => files,
        other => panic!("expected files, got {other:?}"),
    }
}

/// The file holding `symbol` and every file it imports, transitively, as
/// the reflection service sends them (followed with `file_by_filename`),
/// decoded into one pool.
async fn pool_for_symbol(client: &mut impl Reflect, symbol: &str) -> DescriptorPool {
    let mut raw: BTreeMap<String, (Vec<u8>, Vec<String>)> = BTreeMap::new();
    let mut pending = files(client, Ask::Symbol(symbol)).await;
    // A file per turn at most; the kitchen imports well under 100.
    for _ in 0..100 {
        let Some(bytes) = pending.pop() else { break };
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
        for import in &file.dependency {
            if !raw.contains_key(import) {
                pending.extend(files(client, Ask::File(import)).await);
            }
        }
        raw.insert(file.name().to_owned(), (bytes, file.dependency));
    }
    assert!(pending.is_empty(), "imports do not end");
    // Every import was sent: the files are closed under imports.
    for (name, (_, deps)) in &raw {
        for dep in deps {
            assert!(raw.contains_key(dep), "{name} imports {dep}, not sent");
        }
    }
    // An encoded FileDescriptorSet of the bytes as sent, imports first.
    let mut set = BytesMut::new();
    let mut written: Vec<&str> = Vec::new();
    fn write<'a>(
        name: &'a str,
        raw: &'a BTreeMap<String, (Vec<u8>, Vec<String>)>,
        written: &mut Vec<&'a str>,
        set: &mut BytesMut,
    ) {
        if written.contains(&name) {
            return;
        }
        written.push(name);
        let (bytes, deps) = &raw[name];
        for dep in deps {
            write(dep, raw, written, set);
        }
        prost::encoding::bytes::encode(1, bytes, set);
    }
    for name in raw.keys() {
        write(name, &raw, &mut written, &mut set);
    }
    DescriptorPool::decode(set.freeze()).expect("the reflected files make a pool")
}

/// The `get` of `kitchen.v1.Kitchen/Echo`'s `google.api.http` rule.
fn echo_get(pool: &DescriptorPool) -> String {
    let http = pool
        .get_extension_by_name("google.api.http")
        .expect("google/api/annotations.proto was sent");
    let echo = pool
        .get_service_by_name("kitchen.v1.Kitchen")
        .unwrap()
        .methods()
        .find(|m| m.name() == "Echo")
        .unwrap();
    let options = echo.options();
    assert!(options.has_extension(&http), "the http rule survived");
    let rule = options.get_extension(&http);
    let rule = rule.as_message().unwrap();
    rule.get_field_by_name("get")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

async fn reflects_the_pool(client: &mut impl Reflect) {
    let listed = services(client).await;
    let pool = support::pool(&kitchen());
    for service in pool.services() {
        assert!(
            listed.iter().any(|s| s == service.full_name()),
            "{} missing from {listed:?}",
            service.full_name()
        );
    }
    for own in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(listed.iter().any(|s| s == own), "{own} missing");
    }
    let reflected = pool_for_symbol(client, "kitchen.v1.Kitchen").await;
    assert_eq!(echo_get(&reflected), "/v1/echo");
    // Methods and messages are symbols too.
    let by_method = files(client, Ask::Symbol("kitchen.v1.Kitchen.Echo")).await;
    let by_service = files(client, Ask::Symbol("kitchen.v1.Kitchen")).await;
    assert_eq!(by_method, by_service);
    // The gateway's own services are described as well.
    let health = pool_for_symbol(client, "grpc.health.v1.Health").await;
    assert!(
        health
            .get_service_by_name("grpc.health.v1.Health")
            .is_some()
    );

    let missing = client.ask(Ask::Symbol("no.such.Thing")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

/// Reflection v1: every service of the pool, files with their options,
/// closed under imports.
#[tokio::test]
async fn reflection_v1_describes_the_pool() {
    let setup = setup().await;
    reflects_the_pool(&mut v1(&setup.channel)).await;
    assert!(
        setup.backend.records().is_empty(),
        "nothing was passed through"
    );
}

/// Reflection v1alpha: the same answers.
#[tokio::test]
async fn reflection_v1alpha_describes_the_pool() {
    let setup = setup().await;
    reflects_the_pool(&mut v1alpha(&setup.channel)).await;
    assert!(
        setup.backend.records().is_empty(),
        "nothing was passed through"
    );
}

/// A new snapshot brings its own reflection.
#[tokio::test]
async fn reflection_follows_the_snapshot() {
    let setup = setup().await;
    let set = support::compile_source(
        "other.proto",
        "syntax = \"proto3\"; package other.v1;\n\
         message Ping {}\n\
         service Other { rpc Do(Ping) returns (Ping); }\n",
    );
    let config = support::gateway::config(&set, &setup.backend.url());
    setup
        .gateway
        .swap(protogate::Snapshot::build(&config).unwrap());
    let listed = services(&mut v1(&setup.channel)).await;
    assert!(listed.iter().any(|s| s == "other.v1.Other"), "{listed:?}");
    assert!(
        !listed.iter().any(|s| s == "kitchen.v1.Kitchen"),
        "{listed:?}"
    );
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<i32, tonic::Status> {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    Ok(client.check(request).await?.into_inner().status)
}

const SERVING: i32 = ServingStatus::Serving as i32;
const NOT_SERVING: i32 = ServingStatus::NotServing as i32;

/// Check: the overall service and every service of the pool follow the
/// gateway's readiness; an unknown service is NOT_FOUND.
#[tokio::test]
async fn health_check_follows_readiness() {
    let setup = setup().await;
    let mut health = HealthClient::new(setup.channel.clone());
    assert_eq!(check(&mut health, "").await.unwrap(), SERVING);
    assert_eq!(
        check(&mut health, "kitchen.v1.Kitchen").await.unwrap(),
        SERVING
    );
    assert_eq!(
        check(&mut health, "no.such.Service")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );

    setup.gateway.set_ready(false);
    assert_eq!(check(&mut health, "").await.unwrap(), NOT_SERVING);
    assert_eq!(
        check(&mut health, "kitchen.v1.Routes").await.unwrap(),
        NOT_SERVING
    );

    setup.gateway.set_ready(true);
    assert_eq!(check(&mut health, "").await.unwrap(), SERVING);
    assert!(
        setup.backend.records().is_empty(),
        "nothing was passed through"
    );
}

/// Watch: the current status at once, then each change.
#[tokio::test]
async fn health_watch_sends_changes() {
    let setup = setup().await;
    let mut health = HealthClient::new(setup.channel.clone());
    let mut updates = health
        .watch(HealthCheckRequest {
            service: "kitchen.v1.Kitchen".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), updates.message())
            .await
            .expect("an update within the timeout")
            .unwrap()
            .expect("the watch goes on")
            .status
    };
    assert_eq!(next().await, SERVING);
    setup.gateway.set_ready(false);
    assert_eq!(next().await, NOT_SERVING);
    setup.gateway.set_ready(true);
    assert_eq!(next().await, SERVING);
}

/// gRPC-Web reaches the gateway's own services too.
#[tokio::test]
async fn health_over_grpc_web() {
    let setup = setup().await;
    setup.gateway.set_ready(false);
    let request = HealthCheckRequest::default();
    let response = support::http1()
        .post(format!(
            "http://{}/grpc.health.v1.Health/Check",
            setup.server.local_addr()
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(support::envelope(0, &request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let answer = HealthCheckResponse {
        status: NOT_SERVING,
    };
    let mut expected = support::envelope(0, &answer.encode_to_vec()).to_vec();
    expected.extend_from_slice(&support::envelope(0x80, b"grpc-status:0\r\n"));
    assert_eq!(body.as_ref(), expected.as_slice());
}

/// Calls to the fleet's services still pass through to their upstream.
#[tokio::test]
async fn backend_calls_still_pass_through() {
    let setup = setup().await;
    let mut grpc = tonic::client::Grpc::new(setup.channel.clone());
    grpc.ready().await.unwrap();
    // A kitchen.v1.Sink with `s: "hi"`.
    let sink = Bytes::from_static(b"\x0a\x02hi");
    let echoed = grpc
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(sink.clone()),
            http::uri::PathAndQuery::from_static("/kitchen.v1.Kitchen/Echo"),
            protogate::upstream::codec::RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(echoed, sink);
    assert_eq!(setup.backend.last().method, "/kitchen.v1.Kitchen/Echo");
}
