//! Configuration: a YAML file (every key optional), then command-line flags
//! on top. Parsed and validated once at startup; errors name the key and
//! the line.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! descriptor_sets: [api.pb]
//! upstreams:
//!   books: { url: "http://127.0.0.1:50051", services: [shop.v1.Books] }
//!   default: { url: "http://127.0.0.1:50052" }
//! json: { use_proto_names: false, emit_unpopulated: false }
//! timeouts: { connect: 5s, unary: 30s, methods: { shop.v1.Books/Search: 2s } }
//! headers: { forward: [x-request-id] }
//! tls: { cert_file: server.pem, key_file: server.key }
//! ```

pub(crate) mod de;
mod file;
mod listener;
mod placement;
mod policy;
mod rate_limit;
mod upstream;
mod validate;
mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;
use serde::Deserialize;

use crate::descriptor::Sources;
use crate::transcode::{JsonOptions, UnknownParams};

pub use de::{listen_addr, parse_duration};
pub use file::Origin;
pub use listener::{ClientAuth, ListenerTls, NamedCertificate};
pub(crate) use placement::{method_covers, method_score, service_score};
pub use policy::{
    Balance, BalancePolicy, Canary, CircuitBreaker, EndpointConfig, OutlierDetection, RetryPolicy,
    code_named,
};
pub use rate_limit::{Rate, RateKey, RateLimitRule};
pub use upstream::{
    DescriptorSource, DiscoveryConfig, EtcdDiscovery, GrpcCompression, HealthCheck, UpstreamConfig,
    UpstreamTls,
};
pub use yaml::YamlError;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the REST listener.
    #[serde(deserialize_with = "de::listen")]
    pub listen: SocketAddr,
    /// TLS on that listener (and mTLS, with a client CA); cleartext when
    /// absent.
    pub tls: Option<ListenerTls>,
    /// Binary `FileDescriptorSet` files.
    pub descriptor_sets: Vec<PathBuf>,
    /// `.proto` files compiled at startup.
    pub protos: Vec<PathBuf>,
    /// Import paths for `protos`.
    pub include_paths: Vec<PathBuf>,
    /// Encoded descriptor sets given in memory (not settable from YAML).
    #[serde(skip)]
    pub embedded_descriptors: Vec<Bytes>,
    /// The file this came from and its text, to say where a setting that
    /// fails [`Config::validate`] is (not settable from YAML).
    #[serde(skip)]
    pub origin: Option<Origin>,
    /// Backends by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// JSON options.
    pub json: JsonOptions,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Header forwarding.
    pub headers: HeaderOptions,
    /// Streamed responses.
    pub streams: StreamOptions,
    /// Cross-origin requests from browsers (REST, gRPC-Web, Connect);
    /// none are allowed unless this is set.
    pub cors: Option<CorsOptions>,
    /// Serve methods without annotations at `POST /package.Service/Method`.
    pub fallback_routes: bool,
    /// Refuse to start (or reload) when two routes conflict.
    pub strict_routes: bool,
    /// Query parameters that name no field: `reject` (400) or `ignore`.
    pub unknown_query_params: UnknownParams,
    /// Query parameters dropped without a look, by method
    /// (`pkg.Service/Method`) or for all (`"*"`), e.g. `api_key`.
    #[serde(deserialize_with = "de::query_ignores")]
    pub ignore_query_params: BTreeMap<String, Vec<String>>,
    /// Path prefixes with their own upstream and settings: a gRPC
    /// upstream for the transcoded routes under the prefix, or a plain HTTP
    /// service the prefix is proxied to. The longest matching prefix wins.
    pub routes: Vec<RouteGroupConfig>,
    /// Size and count limits.
    pub limits: Limits,
    /// Asking upstreams for their descriptors (`descriptors: reflection`).
    pub reflection: ReflectionOptions,
    /// The admin listener.
    pub admin: AdminOptions,
    /// The zone this gateway runs in: pools prefer endpoints of the same
    /// zone while any is in the rotation. `PROTOGATE_ZONE` overrides it.
    pub zone: Option<String>,
    /// How upstream host names are resolved.
    pub dns: DnsOptions,
    /// Rate limit rules; a call must pass every rule that covers it.
    pub rate_limits: Vec<RateLimitRule>,
    /// Bearer JWTs checked at the edge; no call needs one when absent.
    pub auth: Option<crate::auth::AuthConfig>,
    /// Spans exported over OTLP; none are made when absent.
    pub tracing: Option<crate::trace::TracingConfig>,
}

/// Server reflection toward upstreams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReflectionOptions {
    /// Ask again this often (none: at start, on reload, and until an
    /// upstream that was down has answered).
    #[serde(deserialize_with = "de::opt_duration")]
    pub refresh: Option<Duration>,
    /// How long one upstream may take to answer.
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
}

impl Default for ReflectionOptions {
    fn default() -> Self {
        ReflectionOptions {
            refresh: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How upstream host names are resolved (the names in pools' URLs, found
/// again every `dns_refresh`).
///
/// # Examples
///
/// ```
/// let config = protogate::Config::from_yaml("dns: {servers: [\"127.0.0.1:8600\"]}\n").unwrap();
/// assert_eq!(config.dns.servers, ["127.0.0.1:8600".parse().unwrap()]);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsOptions {
    /// DNS servers (`ip:port`) asked instead of the system resolver, such
    /// as Consul's DNS interface at `127.0.0.1:8600`: over UDP, and over
    /// TCP when an answer is truncated or UDP fails. Empty (the default):
    /// the system resolver, which also reads `/etc/hosts`.
    ///
    /// Limitation: only pools' URLs use them; an upstream that is not a
    /// pool is connected to by name through the system resolver (its
    /// channel resolves the name itself; a `dns_refresh` makes it a pool),
    /// and so are instances an etcd registry gives by host name.
    #[serde(deserialize_with = "de::dns_servers")]
    pub servers: Vec<SocketAddr>,
}

/// The admin listener: health, readiness, the live route table, reloads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminOptions {
    /// Where it listens; off when absent.
    #[serde(deserialize_with = "de::opt_listen")]
    pub listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            descriptor_sets: Vec::new(),
            protos: Vec::new(),
            include_paths: Vec::new(),
            embedded_descriptors: Vec::new(),
            origin: None,
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            reflection: ReflectionOptions::default(),
            admin: AdminOptions::default(),
            zone: None,
            dns: DnsOptions::default(),
            auth: None,
            tracing: None,
            json: JsonOptions::default(),
            timeouts: Timeouts::default(),
            headers: HeaderOptions::default(),
            streams: StreamOptions::default(),
            cors: None,
            fallback_routes: true,
            strict_routes: false,
            unknown_query_params: UnknownParams::Reject,
            ignore_query_params: BTreeMap::new(),
            limits: Limits::default(),
            rate_limits: Vec::new(),
        }
    }
}

/// A route group: requests under `prefix` go to `upstream` with these
/// settings, through the group's own stack of layers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteGroupConfig {
    /// The path prefix, starting with `/`; `/legacy/` holds `/legacy/x`
    /// (a prefix without a trailing `/` ends at a segment boundary too:
    /// `/legacy` holds `/legacy` and `/legacy/x`, not `/legacyx`).
    pub prefix: String,
    /// A name from `upstreams` (gRPC: the transcoded routes under the
    /// prefix call it), or an `http://` / `https://` URL of a plain HTTP
    /// service (every request under the prefix is proxied to it as it is).
    pub upstream: String,
    /// Unary calls (gRPC), or the wait for the response head (HTTP).
    #[serde(default, deserialize_with = "de::opt_duration")]
    pub timeout: Option<Duration>,
    /// HTTP services only: drop the prefix from the forwarded path.
    #[serde(default)]
    pub strip_prefix: bool,
    /// HTTP services only: TLS settings for an `https://` URL.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// HTTP services only: whether requests need a bearer token when
    /// `auth:` is configured (absent: [`GroupAuth::Required`]). Calls to a
    /// gRPC upstream follow `auth.methods` instead.
    #[serde(default)]
    pub auth: Option<GroupAuth>,
    /// HTTP services only: scopes the token must hold, all of them (as
    /// `auth.scopes` asks of methods). Missing one → 403.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Whether a proxied route group's requests need a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupAuth {
    /// A valid token, checked as on every other face (the default when
    /// `auth:` is configured).
    Required,
    /// No token: the service behind checks its own credentials. Claims
    /// named in `auth.forward_claims` are still dropped from what the
    /// client sent.
    None,
}

impl RouteGroupConfig {
    /// Whether the group proxies plain HTTP (its upstream is a URL).
    pub fn is_http(&self) -> bool {
        self.upstream.contains("://")
    }
}

/// Timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time to establish an upstream connection.
    #[serde(deserialize_with = "de::duration")]
    pub connect: Duration,
    /// Default deadline of unary calls.
    #[serde(deserialize_with = "de::duration")]
    pub unary: Duration,
    /// A client connection with no request in flight for this long is
    /// closed (also one that never sends a request); one whose response
    /// has waited this long on a client that does not read is dropped.
    #[serde(deserialize_with = "de::duration")]
    pub idle: Duration,
    /// Time allowed to receive a request body; slower → 408.
    #[serde(deserialize_with = "de::duration")]
    pub request_body: Duration,
    /// How long shutdown (SIGTERM, Ctrl-C) waits for the requests in
    /// flight once the listener stops taking connections; those still
    /// running then are cut off. Zero: none is waited for. At most
    /// [`Timeouts::MAX_SHUTDOWN`].
    #[serde(deserialize_with = "de::grace")]
    pub shutdown: Duration,
    /// Deadlines per method (`pkg.Service/Method`).
    #[serde(deserialize_with = "de::duration_map")]
    pub methods: BTreeMap<String, Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            unary: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            request_body: Duration::from_secs(30),
            shutdown: Duration::from_secs(10),
            methods: BTreeMap::new(),
        }
    }
}

impl Timeouts {
    /// The longest `shutdown` may be. Supervisors stop waiting for a
    /// process long before (Kubernetes after 30 s by default, systemd
    /// after 90 s) and kill it, so a longer grace ends the same way; and
    /// where nothing kills it, one stream that never ends would hold a
    /// restart for the whole of it.
    pub const MAX_SHUTDOWN: Duration = Duration::from_secs(3600);
}

/// Cross-origin resource sharing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsOptions {
    /// Origins allowed (`https://app.example`), or `["*"]` for any.
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send, besides the ones gRPC-Web and
    /// Connect clients use (always allowed).
    #[serde(default, deserialize_with = "de::header_names")]
    pub allowed_headers: Vec<HeaderName>,
    /// Response headers a page may read, besides the gRPC status headers
    /// (always exposed).
    #[serde(default, deserialize_with = "de::header_names")]
    pub exposed_headers: Vec<HeaderName>,
    /// Send cookies and credentials (not with `*` origins).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(
        default = "default_preflight_max_age",
        deserialize_with = "de::duration"
    )]
    pub max_age: Duration,
}

fn default_preflight_max_age() -> Duration {
    Duration::from_secs(600)
}

/// Streamed responses over REST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamOptions {
    /// Framing per method (`pkg.Service/Method`): `auto` (grpc-gateway's
    /// envelope, or what `Accept` asks for) or `json_array`.
    pub framing: BTreeMap<String, crate::server::StreamFraming>,
    /// How often an idle Server-Sent Events stream gets a comment line.
    #[serde(deserialize_with = "de::duration")]
    pub keepalive: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            framing: BTreeMap::new(),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Header forwarding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderOptions {
    /// Request headers forwarded as metadata under their own name, besides
    /// `Authorization`, `traceparent`, `tracestate` and `Grpc-Metadata-*`.
    #[serde(deserialize_with = "de::header_names")]
    pub forward: Vec<HeaderName>,
}

/// Size and count limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (after decompression); larger → 413.
    #[serde(deserialize_with = "de::size")]
    pub max_body_bytes: usize,
    /// Largest upstream response message.
    #[serde(deserialize_with = "de::size")]
    pub max_response_bytes: usize,
    /// Largest request header block; larger → 431.
    #[serde(deserialize_with = "de::size")]
    pub max_header_bytes: usize,
    /// Largest metadata block forwarded to a backend; larger → 431.
    #[serde(deserialize_with = "de::size")]
    pub max_metadata_bytes: usize,
    /// Most header fields in one request (HTTP/1.1); more → 431.
    pub max_headers: usize,
    /// Most client connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Memory for the bodies of all requests in flight; a request that
    /// would go past it → 503.
    #[serde(deserialize_with = "de::size")]
    pub max_buffered_body_bytes: usize,
    /// Longest request path; longer → 414.
    #[serde(deserialize_with = "de::size")]
    pub max_path_bytes: usize,
    /// Most query parameters in one request; more → 400.
    pub max_query_params: usize,
}

impl Limits {
    /// The most `max_connections` may be. Each open connection holds a
    /// slot the listener counts, and on shutdown it waits for every slot
    /// back; a million is past what one process serves (each connection
    /// costs a file descriptor and buffers) and well within the count.
    pub const MAX_CONNECTIONS: usize = 1_000_000;

    /// The most `max_headers` may be. The HTTP/1.1 parser sizes two
    /// arrays by (twice) this count for every parse of a request head,
    /// and parses again as more of a slow head arrives: at a thousand
    /// that is 128 KiB a pass, at the largest `usize` it is every byte
    /// of memory. No client sends a thousand header fields by design.
    pub const MAX_HEADERS: usize = 1_000;

    /// The most `max_header_bytes` (and `max_metadata_bytes`) may be: a
    /// connection's read buffer may grow to twice it while a head
    /// arrives. A mebibyte holds any real header block, cookies and
    /// tokens included.
    pub const MAX_HEADER_BYTES: usize = 1 << 20;

    /// The most `max_body_bytes` and `max_response_bytes` may be: a
    /// protobuf message is at most 2 GiB, and a gRPC frame's length is 32
    /// bits, so a larger message could not be framed or decoded anyway.
    pub const MAX_MESSAGE_BYTES: usize = 2 << 30;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_response_bytes: 16 << 20,
            max_header_bytes: 64 << 10,
            max_metadata_bytes: 8 << 10,
            max_headers: 100,
            max_connections: 10_000,
            max_buffered_body_bytes: 256 << 20,
            max_path_bytes: 8 << 10,
            max_query_params: 256,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse or does not fit.
    #[error("invalid config {}{}", path.display(), located(error))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with key and line.
        #[source]
        error: YamlError,
    },
    /// A setting that is out of range or does not fit the others.
    #[error("invalid config{}{key}: {message}", located_setting(origin.as_ref(), key))]
    Setting {
        /// Where the config came from, when from a file.
        origin: Option<Origin>,
        /// Dotted path of the setting, e.g. `limits.max_body_bytes`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An upstream URL that is not `http://host:port` or `https://host:port`.
    #[error("{0}")]
    BadUrl(String),
}

/// ` file:line: ` when the setting is found in the file, ` file: ` when
/// not, `: ` without a file.
fn located_setting(origin: Option<&Origin>, key: &str) -> String {
    let Some(origin) = origin else {
        return ": ".to_owned();
    };
    match yaml::line_of(&origin.text, key) {
        Some(line) => format!(" {}:{line}: ", origin.path.display()),
        None => format!(" {}: ", origin.path.display()),
    }
}

/// `:line:col: rest` when the line is known, else `: rest`, to follow a
/// file name the way compilers print locations.
fn located(error: &YamlError) -> String {
    match error.line {
        Some(_) => format!(":{error}"),
        None => format!(": {error}"),
    }
}

impl Config {
    /// Parses YAML text. Relative paths stay relative to the working
    /// directory.
    pub fn from_yaml(text: &str) -> Result<Config, YamlError> {
        let config: Config = yaml::parse(text)?;
        // A canary naming a missing upstream is the likelier mistake then
        // (the one it meant counts as a default): `validate` says so.
        let dangling = config.upstreams.values().any(|upstream| {
            upstream
                .canary
                .as_ref()
                .is_some_and(|canary| !config.upstreams.contains_key(&canary.upstream))
        });
        if config.default_upstreams().len() > 1 && !dangling {
            return Err(yaml::default_upstreams_error(text));
        }
        Ok(config)
    }

    /// Makes `url` the default upstream (the one serving every service no
    /// other upstream claims), replacing the configured default, if any:
    /// what `--upstream` does.
    pub fn set_default_upstream(&mut self, url: &str) -> Result<(), ConfigError> {
        de::check_grpc_url(url).map_err(ConfigError::BadUrl)?;
        self.upstreams.retain(|_, u| !u.services.is_empty());
        // An upstream with services may already be called `default`.
        let name = if self.upstreams.contains_key("default") {
            "--upstream"
        } else {
            "default"
        };
        self.upstreams
            .insert(name.to_owned(), UpstreamConfig::new(url));
        Ok(())
    }

    /// The descriptor sources.
    pub fn sources(&self) -> Sources {
        Sources {
            descriptor_sets: self.descriptor_sets.clone(),
            protos: self.protos.clone(),
            include_paths: self.include_paths.clone(),
            embedded: self.embedded_descriptors.clone(),
            reflecting: self
                .upstreams
                .iter()
                .filter(|(_, u)| u.descriptors == DescriptorSource::Reflection)
                .map(|(name, _)| name.clone())
                .collect(),
            reflected: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
