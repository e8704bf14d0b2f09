//! The gateway's own gRPC services, answered on its main port.
//!
//! Server reflection (`grpc.reflection.v1` and `grpc.reflection.v1alpha`)
//! describes every service in the descriptor pool — the whole fleet behind
//! the gateway — from the files' original bytes, so custom options such as
//! `google.api.http` reach reflection clients intact. `grpc.health.v1.Health`
//! reports the gateway's readiness, for the overall service `""` and for
//! every service of the pool alike. Calls to these services are never
//! passed through to an upstream.
//!
//! Every call to them is checked before tonic sees it, since a failure
//! inside a bidirectional stream would otherwise end it with OK: the
//! content type (protobuf only: other codecs are UNIMPLEMENTED), each
//! message's flags (compressed without `grpc-encoding`: INTERNAL) and
//! length (past `MAX_MESSAGE`: RESOURCE_EXHAUSTED), that each message
//! decodes and that the body does not end inside one (INTERNAL). A
//! `grpc-message` echoes client-chosen names cut to `MAX_ECHO` characters.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use parking_lot::Mutex;
use prost_reflect::DescriptorPool;
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::server::Builder;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use super::Gateway;
use crate::snapshot::Snapshot;

const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
const HEALTH: &str = "grpc.health.v1.Health";

/// The gateway's own services with the files that define them, described
/// by reflection unless the pool already has them.
const OWN: [(&str, &[u8]); 3] = [
    (REFLECTION_V1, tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET),
    (
        REFLECTION_V1ALPHA,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ),
    (HEALTH, tonic_health::pb::FILE_DESCRIPTOR_SET),
];

/// How often a health `Watch` looks at the gateway's readiness.
// Limitation: readiness is a flag without change notifications, so a
// `Watch` polls it and reports a change up to this late.
const WATCH_POLL: Duration = Duration::from_millis(500);

type OwnService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The gateway's own services for one snapshot: reflection is built once
/// from the snapshot's descriptors; health is made per call, as it reads
/// the gateway's live state.
pub(crate) struct OwnServices {
    /// `None` when the descriptors cannot be reflected (logged at build).
    reflection_v1: Option<OwnService>,
    reflection_v1alpha: Option<OwnService>,
    /// Every service health reports on: the pool's and the gateway's own.
    services: HashSet<Box<str>>,
}

impl fmt::Debug for OwnServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnServices")
            .field("reflection", &self.reflection_v1.is_some())
            .field("services", &self.services.len())
            .finish()
    }
}

impl OwnServices {
    /// The own services for `pool`, whose files `set` holds as an encoded
    /// `FileDescriptorSet` of their original bytes.
    pub(crate) fn new(pool: &DescriptorPool, set: &[u8]) -> OwnServices {
        let reflection = (|| {
            let v1 = reflection_builder(pool, set).build_v1()?;
            let v1alpha = reflection_builder(pool, set).build_v1alpha()?;
            Ok::<_, tonic_reflection::server::Error>((
                OwnService::new(v1),
                OwnService::new(v1alpha),
            ))
        })();
        let (reflection_v1, reflection_v1alpha) = match reflection {
            Ok((v1, v1alpha)) => (Some(v1), Some(v1alpha)),
            Err(error) => {
                tracing::warn!(%error, "Descriptors cannot be reflected; reflection calls fail");
                (None, None)
            }
        };
        let services = pool
            .services()
            .map(|s| s.full_name().into())
            .chain(OWN.iter().map(|(name, _)| (*name).into()))
            .collect();
        OwnServices {
            reflection_v1,
            reflection_v1alpha,
            services,
        }
    }
}

/// The pool's files first (their original bytes win over a copy of ours
/// with the same name), then the files of our own services the pool lacks.
fn reflection_builder<'a>(pool: &DescriptorPool, set: &'a [u8]) -> Builder<'a> {
    let mut builder = Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(set);
    for (service, files) in OWN {
        if pool.get_service_by_name(service).is_none() {
            builder = builder.register_encoded_file_descriptor_set(files);
        }
    }
    builder
}

/// The gateway a request reached, carried as a request extension to the
/// health service (only on calls to it).
#[derive(Debug, Clone)]
pub(crate) struct GatewayRef(Arc<Gateway>);

/// Lets a call to the gateway's health service see the gateway's state.
pub(crate) fn attach<B>(gateway: &Arc<Gateway>, request: &mut Request<B>) {
    if service_of(request.uri().path()) == Some(HEALTH) {
        request
            .extensions_mut()
            .insert(GatewayRef(Arc::clone(gateway)));
    }
}

/// The gateway's own service for a gRPC call to `path`, if it names one.
pub(crate) fn find<B>(snapshot: &Snapshot, request: &Request<B>) -> Option<OwnService> {
    let own = &snapshot.own;
    let unreflectable = || {
        failing(Status::internal(
            "the gateway's descriptors cannot be reflected",
        ))
    };
    let (service, decodes): (_, Decodes) = match service_of(request.uri().path())? {
        REFLECTION_V1 => (
            own.reflection_v1.clone().unwrap_or_else(unreflectable),
            decodes::<tonic_reflection::pb::v1::ServerReflectionRequest>,
        ),
        REFLECTION_V1ALPHA => (
            own.reflection_v1alpha.clone().unwrap_or_else(unreflectable),
            decodes::<tonic_reflection::pb::v1alpha::ServerReflectionRequest>,
        ),
        HEALTH => (
            match request.extensions().get::<GatewayRef>() {
                Some(GatewayRef(gateway)) => OwnService::new(HealthServer::new(GatewayHealth {
                    gateway: Arc::clone(gateway),
                })),
                None => failing(Status::internal("the gateway's state is not at hand")),
            },
            decodes::<HealthCheckRequest>,
        ),
        _ => return None,
    };
    Some(OwnService::new(Guarded {
        inner: service,
        decodes,
    }))
}

/// Whether `path` calls one of the gateway's own services.
pub(crate) fn is_own(path: &str) -> bool {
    matches!(
        service_of(path),
        Some(REFLECTION_V1 | REFLECTION_V1ALPHA | HEALTH)
    )
}

/// A health `Check` of `service`, for a request whose `extensions` carry
/// the gateway (see `attach`): NOT_FOUND for a service the pool lacks.
pub(crate) fn check(extensions: &http::Extensions, service: &str) -> Result<ServingStatus, Status> {
    let Some(GatewayRef(gateway)) = extensions.get::<GatewayRef>() else {
        return Err(Status::internal("the gateway's state is not at hand"));
    };
    let health = GatewayHealth {
        gateway: Arc::clone(gateway),
    };
    match health.status(service) {
        ServingStatus::ServiceUnknown => Err(unknown(service)),
        status => Ok(status),
    }
}

/// NOT_FOUND for a health check of `service`, its name cut short.
fn unknown(service: &str) -> Status {
    let service = super::grpc::bounded(service, MAX_ECHO);
    Status::not_found(format!("unknown service `{service}`"))
}

/// `pkg.Service` of a gRPC path `/pkg.Service/Method`.
fn service_of(path: &str) -> Option<&str> {
    Some(path.strip_prefix('/')?.split_once('/')?.0)
}

/// A service that answers every call with `status`.
fn failing(status: Status) -> OwnService {
    OwnService::new(tower::service_fn(move |_: Request<Body>| {
        let response = status.clone().into_http();
        async move { Ok(response) }
    }))
}

/// `grpc.health.v1.Health` over the gateway's readiness.
#[derive(Debug, Clone)]
struct GatewayHealth {
    gateway: Arc<Gateway>,
}

impl GatewayHealth {
    /// The status of `service` now, against the current snapshot.
    fn status(&self, service: &str) -> ServingStatus {
        let known = service.is_empty() || self.gateway.snapshot().own.services.contains(service);
        match (known, self.gateway.is_ready()) {
            (false, _) => ServingStatus::ServiceUnknown,
            (true, true) => ServingStatus::Serving,
            (true, false) => ServingStatus::NotServing,
        }
    }
}

fn reply(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for GatewayHealth {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.status(&service) {
            ServingStatus::ServiceUnknown => Err(unknown(&service)),
            status => Ok(tonic::Response::new(reply(status))),
        }
    }

    type WatchStream = WatchStream;

    /// The current status at once, then each change; the stream lasts as
    /// long as the client keeps it open.
    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<WatchStream>, Status> {
        let service = request.into_inner().service;
        let mut ticks = tokio::time::interval(WATCH_POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = (self.clone(), service, ticks, None);
        let changes = futures_util::stream::unfold(start, |(health, service, mut ticks, last)| {
            async move {
                // Each turn waits for a tick; the first one is immediate.
                loop {
                    ticks.tick().await;
                    let status = health.status(&service);
                    if last != Some(status) {
                        let next = (health, service, ticks, Some(status));
                        return Some((Ok(reply(status)), next));
                    }
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(changes)))
    }
}

/// Largest request message the gateway's own services take (gRPC's usual
/// default); a larger one is RESOURCE_EXHAUSTED.
const MAX_MESSAGE: usize = 4 << 20;

/// Most characters of a `grpc-message` from the own services: the names
/// they echo are the client's, and a long one would make the trailers
/// larger than clients accept.
const MAX_ECHO: usize = 256;

/// Whether bytes decode as a service's request message.
type Decodes = fn(&[u8]) -> Result<(), prost::DecodeError>;

fn decodes<M: prost::Message + Default>(bytes: &[u8]) -> Result<(), prost::DecodeError> {
    M::decode(bytes).map(drop)
}

/// An own service behind the checks of the module's header.
#[derive(Clone)]
struct Guarded {
    inner: OwnService,
    decodes: Decodes,
}

impl tower::Service<Request<Body>> for Guarded {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let decodes = self.decodes;
        Box::pin(async move {
            let media = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if media != "application/grpc" && media != "application/grpc+proto" {
                let status = Status::unimplemented(format!(
                    "the gateway's own services speak protobuf (application/grpc or application/grpc+proto), not `{}`",
                    super::grpc::bounded(&media, MAX_ECHO)
                ));
                return Ok(status.into_http());
            }
            let encoded = request
                .headers()
                .get("grpc-encoding")
                .is_some_and(|v| v.as_bytes() != b"identity");
            let failed = Arc::new(Mutex::new(None));
            let request = request.map(|inner| {
                Body::new(Checked {
                    inner,
                    buf: BytesMut::new(),
                    encoded,
                    decodes,
                    failed: Arc::clone(&failed),
                    done: false,
                })
            });
            let Ok(mut response) = inner.oneshot(request).await;
            bound_message(response.headers_mut());
            Ok(response.map(|inner| Body::new(Finished { inner, failed })))
        })
    }
}

/// A request body to an own service, checked message by message: each
/// goes on once it is whole and sound; the first fault ends the body with
/// its status, kept in `failed` for the response's trailers.
struct Checked {
    inner: Body,
    buf: BytesMut,
    /// Whether `grpc-encoding` names a compression (tonic refuses those
    /// the own services lack before reading any message).
    encoded: bool,
    decodes: Decodes,
    failed: Arc<Mutex<Option<Status>>>,
    done: bool,
}

impl Checked {
    /// The whole messages at the front of `buf`, or the fault of the first
    /// unsound one.
    fn whole(&mut self) -> Result<Bytes, Status> {
        let mut at = 0;
        // Each turn passes one whole message.
        while let Some(head) = self.buf.get(at..at + 5) {
            let flags = head[0];
            let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if flags & !1 != 0 {
                return Err(Status::internal(format!(
                    "a request message has unknown flags {flags:#04x}"
                )));
            }
            if flags & 1 == 1 && !self.encoded {
                return Err(Status::internal(
                    "a request message is flagged compressed but no grpc-encoding names its compression",
                ));
            }
            if length > MAX_MESSAGE {
                return Err(Status::resource_exhausted(format!(
                    "a request message of {length} bytes is larger than the {MAX_MESSAGE} bytes the gateway's own services take"
                )));
            }
            let Some(message) = self.buf.get(at + 5..at + 5 + length) else {
                break;
            };
            if flags & 1 == 0 {
                (self.decodes)(message).map_err(|err| {
                    Status::internal(format!("the request message does not decode: {err}"))
                })?;
            }
            at += 5 + length;
        }
        Ok(self.buf.split_to(at).freeze())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        self.failed.lock().get_or_insert_with(|| status.clone());
        Poll::Ready(Some(Err(status)))
    }
}

impl http_body::Body for Checked {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        // Each turn takes one frame of the client's body.
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.buf.extend_from_slice(&data);
                        match this.whole() {
                            Ok(whole) if whole.is_empty() => continue,
                            Ok(whole) => return Poll::Ready(Some(Ok(Frame::data(whole)))),
                            Err(status) => return this.fail(status),
                        }
                    }
                    Err(trailers) if this.buf.is_empty() => {
                        return Poll::Ready(Some(Ok(trailers)));
                    }
                    Err(_) => return this.fail(cut_short(this.buf.len())),
                },
                Some(Err(status)) => return this.fail(status),
                None if this.buf.is_empty() => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                None => return this.fail(cut_short(this.buf.len())),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

fn cut_short(left: usize) -> Status {
    Status::internal(format!(
        "the request ended inside a message ({left} bytes of it came)"
    ))
}

/// An own service's response body: its end carries the request's fault
/// when the service ended with OK all the same (a bidirectional stream
/// stops at a bad request message without saying why), and its
/// `grpc-message` is bounded.
struct Finished {
    inner: Body,
    failed: Arc<Mutex<Option<Status>>>,
}

impl http_body::Body for Finished {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let mut trailers = match frame.into_trailers() {
            Ok(trailers) => trailers,
            Err(data) => return Poll::Ready(Some(Ok(data))),
        };
        let ok = trailers
            .get(Status::GRPC_STATUS)
            .is_none_or(|v| v.as_bytes() == b"0");
        if ok && let Some(status) = self.failed.lock().take() {
            trailers.clear();
            if status.add_header(&mut trailers).is_err() {
                trailers.insert(
                    Status::GRPC_STATUS,
                    HeaderValue::from(Code::Internal as i32),
                );
            }
        }
        bound_message(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Cuts the `grpc-message` in `headers` to `MAX_ECHO` characters.
fn bound_message(headers: &mut HeaderMap) {
    let Some(value) = headers.get(Status::GRPC_MESSAGE) else {
        return;
    };
    if value.len() <= MAX_ECHO {
        return;
    }
    let text = percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy();
    let cut = Status::new(Code::Ok, super::grpc::bounded(&text, MAX_ECHO));
    let mut encoded = HeaderMap::new();
    if cut.add_header(&mut encoded).is_ok()
        && let Some(message) = encoded.remove(Status::GRPC_MESSAGE)
    {
        headers.insert(Status::GRPC_MESSAGE, message);
    }
}
