//! The route table: every HTTP binding of every served method, compiled
//! into a matcher with its request and response plans.
//!
//! Routes are ordered by source order, then file order, then method order,
//! each method's primary binding before its `additional_bindings`. Two
//! routes with the same HTTP method and the same template shape conflict:
//! the first one wins and the conflict is recorded.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http::uri::PathAndQuery;
use prost_reflect::{DescriptorPool, MethodDescriptor, ServiceDescriptor};

use crate::http_rule::{self, Found, Matcher, Miss, Template};
use crate::transcode::{PlanError, RequestPlan, RequestPlans, ResponsePlan, ResponsePlans};

/// Services the gateway never exposes as REST routes.
fn is_internal_service(name: &str) -> bool {
    name.starts_with("grpc.health.") || name.starts_with("grpc.reflection.")
}

/// The four RPC shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    Bidi,
}

/// One gRPC method, shared by all of its bindings.
#[derive(Debug)]
pub struct Rpc {
    /// `package.Service/Method`.
    pub name: Box<str>,
    /// The gRPC request path, `/package.Service/Method`.
    pub path: PathAndQuery,
    /// The shape of the call.
    pub kind: RpcKind,
    /// Index of the upstream that serves it, if any.
    pub upstream: Option<usize>,
    /// The call's timeout, from config.
    pub timeout: Option<Duration>,
    /// Query parameters its routes drop without a look.
    pub ignored_query_params: Vec<Box<str>>,
    /// Deadline of streaming calls (none unless configured per method).
    pub stream_timeout: Option<Duration>,
    /// How streamed responses are framed.
    pub framing: crate::server::StreamFraming,
    /// How to write the whole response message (RPC-style protocols).
    pub whole_response: ResponsePlan,
    /// The method descriptor.
    pub descriptor: MethodDescriptor,
    /// Marked `idempotency_level: NO_SIDE_EFFECTS` or `IDEMPOTENT` in its
    /// proto: a backend's failure may be retried.
    pub idempotent: bool,
    /// The `rate_limits` rules that cover it, by index.
    pub rate_limits: Box<[usize]>,
}

/// How a route came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Binding `n` of the method's `google.api.http` rule (0 is primary).
    Annotation(usize),
    /// `POST /package.Service/Method` for a method without annotations.
    Fallback,
}

/// One HTTP binding of a method.
#[derive(Debug)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The parsed template.
    pub template: Template,
    /// The `body` setting as written.
    pub body: Box<str>,
    /// The `response_body` setting as written.
    pub response_body: Box<str>,
    /// Where the route came from.
    pub origin: Origin,
    /// The method it calls.
    pub rpc: Arc<Rpc>,
    /// How to build the request message.
    pub request: RequestPlan,
    /// How to write the response.
    pub response: ResponsePlan,
}

/// A binding dropped because another route has the same method and
/// template shape: the one declared first, or a written binding over a
/// fallback route.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// HTTP method of both.
    pub method: Method,
    /// Template of the route that was kept.
    pub kept_template: String,
    /// Method the kept route calls.
    pub kept_rpc: String,
    /// Template of the dropped route.
    pub dropped_template: String,
    /// Method the dropped route would call.
    pub dropped_rpc: String,
    /// Whether the dropped route is a fallback route (`POST
    /// /pkg.Service/Method`) the kept one's written binding won over,
    /// rather than one declared after the kept one.
    pub dropped_fallback: bool,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}) conflicts with {} {} ({}), {}",
            self.method,
            self.dropped_template,
            self.dropped_rpc,
            self.method,
            self.kept_template,
            self.kept_rpc,
            if self.dropped_fallback {
                "a written binding, which wins over a fallback route"
            } else {
                "declared first"
            }
        )
    }
}

/// A method whose annotations cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The `google.api.http` rule is malformed.
    #[error("{rpc}: {source}")]
    Rule {
        /// The method.
        rpc: String,
        /// What is wrong.
        #[source]
        source: http_rule::RuleError,
    },
    /// A template does not parse.
    #[error("{rpc}: {source}")]
    Template {
        /// The method.
        rpc: String,
        /// What is wrong.
        #[source]
        source: http_rule::TemplateError,
    },
    /// A template or body does not fit the messages.
    #[error("{rpc}: template `{template}`: {source}")]
    Plan {
        /// The method.
        rpc: String,
        /// The template.
        template: String,
        /// What is wrong.
        #[source]
        source: PlanError,
    },
}

/// Options that shape the table.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Serve methods without annotations at `POST /package.Service/Method`.
    pub fallback_routes: bool,
}

/// The compiled routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    matcher: Matcher,
    conflicts: Vec<Conflict>,
    /// Every HTTP method some route uses.
    methods: Vec<Method>,
    /// Every served method by its gRPC path, `/package.Service/Method`.
    rpcs: HashMap<Box<str>, Arc<Rpc>>,
}

impl RouteTable {
    /// Builds the table for every service in `pool`. `assign` gives each
    /// method its settings from config.
    pub fn build(
        pool: &DescriptorPool,
        options: &TableOptions,
        mut assign: impl FnMut(&ServiceDescriptor, &MethodDescriptor) -> MethodSettings,
    ) -> Result<RouteTable, RouteError> {
        let http = pool.get_extension_by_name("google.api.http");
        let mut table = RouteTable {
            routes: Vec::new(),
            matcher: Matcher::new(),
            conflicts: Vec::new(),
            methods: Vec::new(),
            rpcs: HashMap::new(),
        };
        // One set of direct-writer tables for every response type of the
        // pool, and one of direct-encoder tables for every request type;
        // the plans use them once `plans` and `requests` are dropped below.
        let mut plans = ResponsePlans::new();
        let mut requests = RequestPlans::new();
        for service in pool.services() {
            if is_internal_service(service.full_name()) {
                continue;
            }
            for method in service.methods() {
                let settings = assign(&service, &method);
                let rpc = Arc::new(rpc(&service, &method, settings, &mut plans));
                table.rpcs.insert(rpc.path.as_str().into(), rpc.clone());
                let bindings = match &http {
                    Some(ext) => http_rule::rule::bindings(&method, ext).map_err(|source| {
                        RouteError::Rule {
                            rpc: rpc.name.to_string(),
                            source,
                        }
                    })?,
                    None => Vec::new(),
                };
                if bindings.is_empty() {
                    if options.fallback_routes {
                        table.add_fallback(&rpc, &mut plans, &mut requests)?;
                    }
                    continue;
                }
                for (i, binding) in bindings.into_iter().enumerate() {
                    let template = Template::parse(&binding.template).map_err(|source| {
                        RouteError::Template {
                            rpc: rpc.name.to_string(),
                            source,
                        }
                    })?;
                    let request = requests.plan(&method.input(), &template, &binding.body);
                    let response = plans.plan(&method.output(), &binding.response_body);
                    table.add(
                        binding.method,
                        template,
                        request,
                        response,
                        Origin::Annotation(i),
                        &rpc,
                    )?;
                }
            }
        }
        drop(plans);
        drop(requests);
        Ok(table)
    }

    fn add_fallback(
        &mut self,
        rpc: &Arc<Rpc>,
        plans: &mut ResponsePlans,
        requests: &mut RequestPlans,
    ) -> Result<(), RouteError> {
        let (service, method) = rpc.name.split_once('/').unwrap_or((&rpc.name, ""));
        let template = Template {
            segments: vec![
                http_rule::Segment::Literal(service.into()),
                http_rule::Segment::Literal(method.into()),
            ],
            variables: Vec::new(),
            verb: None,
        };
        let request = requests.plan(&rpc.descriptor.input(), &template, "*");
        let response = plans.plan(&rpc.descriptor.output(), "");
        self.add(
            Method::POST,
            template,
            request,
            response,
            Origin::Fallback,
            rpc,
        )
    }

    fn add(
        &mut self,
        method: Method,
        template: Template,
        request: Result<RequestPlan, PlanError>,
        response: Result<ResponsePlan, PlanError>,
        origin: Origin,
        rpc: &Arc<Rpc>,
    ) -> Result<(), RouteError> {
        let plan_error = |source| RouteError::Plan {
            rpc: rpc.name.to_string(),
            template: template.to_string(),
            source,
        };
        let request = request
            .map_err(plan_error)?
            .with_ignored_params(rpc.ignored_query_params.clone());
        let response = response.map_err(plan_error)?;
        let route = Route {
            method,
            template,
            body: request.body_setting().into(),
            response_body: response.response_body().into(),
            origin,
            rpc: rpc.clone(),
            request,
            response,
        };
        let id = self.routes.len();
        if let Err(existing) = self
            .matcher
            .insert(route.method.clone(), &route.template, id)
        {
            let kept = &mut self.routes[existing];
            let conflict = |kept: &Route, dropped: &Route| Conflict {
                method: kept.method.clone(),
                kept_template: kept.template.to_string(),
                kept_rpc: kept.rpc.name.to_string(),
                dropped_template: dropped.template.to_string(),
                dropped_rpc: dropped.rpc.name.to_string(),
                dropped_fallback: dropped.origin == Origin::Fallback
                    && kept.origin != Origin::Fallback,
            };
            // A fallback route only stands in for a binding nobody wrote:
            // one written for the same method and path wins it, wherever
            // each was declared (a dependency's unannotated method comes
            // before the file that imports it).
            if kept.origin == Origin::Fallback && route.origin != Origin::Fallback {
                let fallback = std::mem::replace(kept, route);
                self.conflicts
                    .push(conflict(&self.routes[existing], &fallback));
            } else {
                self.conflicts.push(conflict(kept, &route));
            }
            return Ok(());
        }
        if !self.methods.contains(&route.method) {
            self.methods.push(route.method.clone());
        }
        self.routes.push(route);
        Ok(())
    }

    /// Finds the route for a request (`path` normalised). `HEAD` reaches
    /// the `GET` route of a path that has no `HEAD` route of its own (the
    /// HTTP layer leaves the body out), and is listed in `Allow` wherever
    /// `GET` is.
    pub fn find(&self, method: &Method, path: &str) -> Result<(&Route, Found), Miss> {
        let result = match self.matcher.find(method, path) {
            Err(_) if method == Method::HEAD => self.matcher.find(&Method::GET, path),
            other => other,
        };
        match result {
            Ok(found) => Ok((&self.routes[found.route], found)),
            Err(Miss::MethodNotAllowed(mut allow)) => {
                if allow.contains(&Method::GET) && !allow.contains(&Method::HEAD) {
                    allow.push(Method::HEAD);
                }
                Err(Miss::MethodNotAllowed(allow))
            }
            Err(miss) => Err(miss),
        }
    }

    /// The method served at a gRPC path (`/package.Service/Method`).
    pub fn rpc(&self, path: &str) -> Option<&Arc<Rpc>> {
        self.rpcs.get(path)
    }

    /// Whether any route, or HTTP itself, knows `method`. A request with a
    /// method nobody knows is answered 501 (RFC 9110 §15.6.2), not 405.
    pub fn recognizes(&self, method: &Method) -> bool {
        matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::POST
                | Method::PUT
                | Method::DELETE
                | Method::PATCH
                | Method::OPTIONS
                | Method::CONNECT
                | Method::TRACE
        ) || self.methods.contains(method)
    }

    /// Every HTTP method some route uses, in the order first met.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// All routes, in declaration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Bindings dropped for conflicting with earlier ones.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }
}

/// What config says about one method.
#[derive(Debug, Clone, Default)]
pub struct MethodSettings {
    /// Index of the upstream that serves it.
    pub upstream: Option<usize>,
    /// Its deadline.
    pub timeout: Option<Duration>,
    /// Query parameters its routes drop without a look.
    pub ignored_query_params: Vec<Box<str>>,
    /// Deadline of streaming calls.
    pub stream_timeout: Option<Duration>,
    /// How streamed responses are framed.
    pub framing: crate::server::StreamFraming,
    /// The `rate_limits` rules that cover it, by index.
    pub rate_limits: Box<[usize]>,
}

fn rpc(
    service: &ServiceDescriptor,
    method: &MethodDescriptor,
    settings: MethodSettings,
    plans: &mut ResponsePlans,
) -> Rpc {
    let name = format!("{}/{}", service.full_name(), method.name());
    let path = PathAndQuery::try_from(format!("/{name}"))
        .unwrap_or_else(|_| PathAndQuery::from_static("/"));
    let kind = match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => RpcKind::Unary,
        (false, true) => RpcKind::ServerStreaming,
        (true, false) => RpcKind::ClientStreaming,
        (true, true) => RpcKind::Bidi,
    };
    Rpc {
        name: name.into(),
        path,
        kind,
        upstream: settings.upstream,
        timeout: settings.timeout,
        ignored_query_params: settings.ignored_query_params,
        stream_timeout: settings.stream_timeout,
        framing: settings.framing,
        whole_response: plans.whole(&method.output()),
        descriptor: method.clone(),
        idempotent: is_idempotent(method),
        rate_limits: settings.rate_limits,
    }
}

/// Whether `method`'s options say calling it twice does no harm.
fn is_idempotent(method: &MethodDescriptor) -> bool {
    method
        .options()
        .get_field_by_name("idempotency_level")
        .and_then(|level| level.as_enum_number())
        .is_some_and(|level| level > 0)
}
