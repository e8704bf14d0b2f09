//! Route groups (`routes:` in config): a path prefix with its own upstream
//! and settings, served through its own stack of tower layers — the onion
//! the classic gateways are built as, so that a policy for one prefix
//! (auth, rate limits) is one more layer on that group's stack.
//!
//! A group on a gRPC upstream keeps the gateway's handling (REST
//! transcoding, WebSocket, gRPC, gRPC-Web, Connect) and sets, through a
//! request extension, the upstream and unary deadline of the calls under
//! it. A group on an `http(s)://` URL proxies the prefix to that service
//! as plain HTTP (see `proxy`), behind the bearer token check `auth:`
//! asks of it (see `guard`).

mod guard;

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use super::proxy::{HttpProxy, ProxySettings};
use crate::config::Config;
use crate::http_rule::path;
use crate::route::Rpc;
use crate::snapshot::Snapshot;
use guard::GuardLayer;

/// A group's stack of layers around its handler.
pub(crate) type GroupService = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The groups of a snapshot, longest prefix first.
#[derive(Default)]
pub(crate) struct Groups(Vec<Group>);

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|g| &g.prefix))
            .finish()
    }
}

struct Group {
    /// Without a trailing `/`.
    prefix: Box<str>,
    /// Whether the stack ends in a proxy (else in the gateway's handler).
    proxied: bool,
    service: GroupService,
}

/// The snapshot a request is served with, carried into a group's stack so
/// that its handler sees the same snapshot the group was found in.
#[derive(Clone)]
pub(crate) struct Current(pub(crate) Arc<Snapshot>);

/// What a gRPC group sets for the calls under it; carried to the handlers
/// as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupPolicy {
    /// Index of the group's upstream.
    pub(crate) upstream: usize,
    /// Unary deadline: the group's `timeout`, else its upstream's.
    pub(crate) timeout: Option<Duration>,
}

impl GroupPolicy {
    /// The unary deadline of `rpc` under this policy: a per-method
    /// timeout (`timeouts.methods`) still wins, being more specific.
    pub(crate) fn unary_timeout(&self, rpc: &Rpc) -> Option<Duration> {
        rpc.stream_timeout.or(self.timeout).or(rpc.timeout)
    }
}

impl Groups {
    /// The groups of `config` (validated: prefixes and upstreams exist);
    /// `upstreams` are the gRPC upstream names in index order.
    pub(crate) fn build(config: &Config, upstreams: &[&str]) -> Result<Groups, String> {
        let mut groups = Vec::with_capacity(config.routes.len());
        for (index, group) in config.routes.iter().enumerate() {
            let prefix: Box<str> = group.prefix.trim_end_matches('/').into();
            let proxied = group.is_http();
            // Each stack: the group's policy layers, then its handler.
            let service = if proxied {
                let proxy = HttpProxy::new(&ProxySettings {
                    prefix: &group.prefix,
                    url: &group.upstream,
                    strip_prefix: group.strip_prefix,
                    timeout: group.timeout.or(Some(config.timeouts.unary)),
                    tls: group.tls.as_ref(),
                    max_body_bytes: config.limits.max_body_bytes,
                    body_timeout: config.timeouts.request_body,
                    connect_timeout: config.timeouts.connect,
                })
                .map_err(|e| format!("routes: prefix `{}`: {e}", group.prefix))?;
                BoxCloneSyncService::new(
                    tower::ServiceBuilder::new()
                        .layer(GuardLayer::new(index))
                        .service(proxy),
                )
            } else {
                let upstream = upstreams
                    .iter()
                    .position(|name| *name == group.upstream)
                    .ok_or_else(|| format!("routes: no upstream `{}`", group.upstream))?;
                let timeout = group.timeout.or(config.upstreams[&group.upstream].timeout);
                let policy = GroupPolicy { upstream, timeout };
                BoxCloneSyncService::new(
                    tower::ServiceBuilder::new()
                        .layer(axum::Extension(policy))
                        .service_fn(gateway_handler),
                )
            };
            groups.push(Group {
                prefix,
                proxied,
                service,
            });
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.prefix.len()));
        Ok(Groups(groups))
    }

    /// The stack of the group holding `path` (the longest prefix), if any.
    ///
    /// Prefixes are matched as routes are: with escapes of unreserved
    /// characters decoded (RFC 3986 §6.2.2.2), so that `/api/%70rivate`
    /// is in `/api/private`'s group, not in `/api`'s. A path with a
    /// malformed escape is matched as sent, and refused where it lands.
    /// Whether it proxies to an HTTP service (else the gateway handles
    /// the requests) comes with it.
    pub(crate) fn find(&self, path: &str) -> Option<(&GroupService, bool)> {
        self.group(path).map(|g| (&g.service, g.proxied))
    }

    /// The prefix of the group holding `path` (without a trailing `/`).
    pub(crate) fn prefix(&self, path: &str) -> Option<&str> {
        self.group(path).map(|g| &*g.prefix)
    }

    fn group(&self, path: &str) -> Option<&Group> {
        if self.0.is_empty() {
            return None;
        }
        let path = path::decode_unreserved(path).unwrap_or(Cow::Borrowed(path));
        self.0.iter().find(|g| {
            path.strip_prefix(&*g.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// The proxied prefix that holds `template` (a route's, as written):
    /// the longest prefix holding it, as requests are routed, when that one
    /// is proxied. Its requests never reach the route.
    pub(crate) fn hiding(&self, template: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|g| {
                template
                    .strip_prefix(&*g.prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|g| g.prefix.len())
            .filter(|g| g.proxied)
            .map(|g| &*g.prefix)
    }
}

/// Serves `request` through a group's stack with `snapshot`.
pub(crate) async fn serve(
    service: &GroupService,
    snapshot: Arc<Snapshot>,
    mut request: Request<Body>,
) -> Response {
    request.extensions_mut().insert(Current(snapshot));
    match service.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The innermost layer of a gRPC group: the gateway's own handling.
async fn gateway_handler(request: Request<Body>) -> Result<Response, Infallible> {
    let Some(Current(snapshot)) = request.extensions().get::<Current>().cloned() else {
        unreachable!("groups are served with their snapshot")
    };
    Ok(super::handle(snapshot, request).await)
}

impl Snapshot {
    /// The upstream of `rpc`'s calls under `policy`.
    pub(crate) fn upstream_of(
        &self,
        rpc: &Rpc,
        policy: Option<&GroupPolicy>,
    ) -> Option<&crate::upstream::Upstream> {
        policy
            .map(|p| p.upstream)
            .or(rpc.upstream)
            .map(|i| &self.upstreams[i])
    }

    /// The unary deadline of `rpc`'s calls under `policy`.
    pub(crate) fn unary_timeout_of(&self, rpc: &Rpc, policy: Option<&GroupPolicy>) -> Duration {
        policy
            .map_or(rpc.timeout, |p| p.unary_timeout(rpc))
            .unwrap_or(self.unary_timeout)
    }
}
