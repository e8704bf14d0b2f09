//! The route table as `protogate routes` and `/admin/routes` show it.

use crate::config::Config;
use crate::route::RouteTable;

/// One route as the route table shows it (`protogate routes`,
/// `/admin/routes`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteRow {
    /// HTTP method.
    pub method: String,
    /// Path template.
    pub template: String,
    /// `package.Service/Method`; empty for a prefix proxied to an HTTP
    /// service.
    pub rpc: String,
    /// The body field (`*`: the whole message; empty: none).
    pub body: String,
    /// The response field (empty: the whole message).
    pub response_body: String,
    /// `unary`, `server`, `client` or `both`: which sides stream; empty
    /// for a proxied prefix.
    pub streams: &'static str,
    /// Where its calls go: an upstream's name, or the URL of the HTTP
    /// service a route group proxies its prefix to (the route is then never
    /// reached); `None` when no upstream serves it.
    pub upstream: Option<String>,
    /// The prefix of the route group it is under, as configured.
    pub group: Option<String>,
}

/// The rows of `routes`: each route's upstream is its route group's when
/// the group's prefix holds every path of its template, else its service's;
/// then one row (method `*`, the prefix as template) for each route group
/// proxied to an HTTP service, since it serves paths no route names.
pub fn route_rows(config: &Config, routes: &RouteTable) -> Vec<RouteRow> {
    let upstreams: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
    routes
        .routes()
        .iter()
        .map(|route| {
            let template = route.template.to_string();
            let group = config
                .routes
                .iter()
                .filter(|group| {
                    template
                        .strip_prefix(group.prefix.trim_end_matches('/'))
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
                .max_by_key(|group| group.prefix.trim_end_matches('/').len());
            let upstream = match group {
                Some(group) => Some(group.upstream.clone()),
                None => route
                    .rpc
                    .upstream
                    .and_then(|i| upstreams.get(i))
                    .map(|name| (*name).to_owned()),
            };
            RouteRow {
                method: route.method.as_str().to_owned(),
                template,
                rpc: route.rpc.name.to_string(),
                body: route.body.to_string(),
                response_body: route.response_body.to_string(),
                streams: match route.rpc.kind {
                    crate::route::RpcKind::Unary => "unary",
                    crate::route::RpcKind::ServerStreaming => "server",
                    crate::route::RpcKind::ClientStreaming => "client",
                    crate::route::RpcKind::Bidi => "both",
                },
                upstream,
                group: group.map(|g| g.prefix.clone()),
            }
        })
        .chain(
            config
                .routes
                .iter()
                .filter(|g| g.is_http())
                .map(|group| RouteRow {
                    method: "*".to_owned(),
                    template: group.prefix.clone(),
                    rpc: String::new(),
                    body: String::new(),
                    response_body: String::new(),
                    streams: "",
                    upstream: Some(group.upstream.clone()),
                    group: Some(group.prefix.clone()),
                }),
        )
        .collect()
}
