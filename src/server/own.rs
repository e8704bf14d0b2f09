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
//! This module builds the services and finds the one a call names;
//! `guard` checks every call to them first, message by message.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use http::{Request, Response};
use prost_reflect::DescriptorPool;
use tonic::Status;
use tonic::body::Body;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::server::Builder;
use tower::util::BoxCloneSyncService;

use super::Gateway;
use crate::snapshot::Snapshot;

mod guard;
use guard::{Decodes, Guarded, decodes};

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

/// Most characters of a `grpc-message` from the own services: the names
/// they echo are the client's, and a long one would make the trailers
/// larger than clients accept.
const MAX_ECHO: usize = 256;

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

/// Whether `path` is `/<service>/<method>` of a method the gateway's own
/// services have (a client's made-up method under them is not).
pub(crate) fn is_own_method(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    match service {
        REFLECTION_V1 | REFLECTION_V1ALPHA => method == "ServerReflectionInfo",
        HEALTH => matches!(method, "Check" | "Watch" | "List"),
        _ => false,
    }
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
