//! Checking a configuration whose keys each parsed: settings that depend
//! on each other or have bounds. Errors name the setting, and its file and
//! line when it came from one.

use std::collections::BTreeMap;

use std::time::Duration;

use super::{Config, ConfigError, GroupAuth, Limits, RouteGroupConfig, Timeouts, de, yaml};

/// The shortest `reflection.refresh`.
const MIN_REFLECTION_REFRESH: Duration = Duration::from_millis(100);

/// The shortest `streams.keepalive`: a comment line on every idle
/// Server-Sent Events stream this often. Proxies time idle streams out
/// after tens of seconds; more than one a second is only load.
const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

impl Config {
    /// Checks settings that depend on each other or have bounds; an error
    /// names the setting, and its file and line when it came from one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|(key, message)| ConfigError::Setting {
            origin: self.origin.clone(),
            key,
            message,
        })
    }

    /// [`Config::validate`]: the key and what is wrong.
    fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_owned(), message));
        // Each upstream first: a canary naming a missing upstream (a typo)
        // leaves the one it meant a default, and that is the error to show.
        for (name, upstream) in &self.upstreams {
            if name.trim().is_empty() {
                return fail(
                    "upstreams",
                    format!(
                        "an upstream is named {name:?}, which is no name: give it one (`canary.upstream`, `routes`, the route table and the logs know an upstream by its name)"
                    ),
                );
            }
            if let Err(e) = de::check_grpc_url(&upstream.url) {
                return fail(&format!("upstreams.{name}.url"), e);
            }
            for endpoint in &upstream.endpoints {
                if let Err(e) = de::check_grpc_url(&endpoint.url) {
                    return fail(&format!("upstreams.{name}.endpoints"), e);
                }
                let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_owned());
                if scheme(&endpoint.url) != scheme(&upstream.url) {
                    return fail(
                        &format!("upstreams.{name}.endpoints"),
                        format!(
                            "`{}` and the url `{}` differ in scheme; an upstream's endpoints share it",
                            endpoint.url, upstream.url
                        ),
                    );
                }
            }
            if let Err((key, message)) = self.check_policies(name, upstream) {
                return fail(&format!("upstreams.{name}.{key}"), message);
            }
            if let Some(super::DiscoveryConfig::Etcd(etcd)) = &upstream.discovery {
                if etcd.endpoints.is_empty() {
                    return fail(
                        &format!("upstreams.{name}.discovery.etcd.endpoints"),
                        "etcd discovery needs at least one endpoint".to_owned(),
                    );
                }
                if let Some(e) = etcd
                    .endpoints
                    .iter()
                    .find_map(|e| de::check_grpc_url(e).err())
                {
                    return fail(&format!("upstreams.{name}.discovery.etcd.endpoints"), e);
                }
                if etcd.prefix.is_empty() {
                    return fail(
                        &format!("upstreams.{name}.discovery.etcd.prefix"),
                        "an empty prefix would take every key in etcd as an instance; give one like /services/orders/".to_owned(),
                    );
                }
            }
            if let Some(check) = &upstream.health_check
                && (check.unhealthy_threshold == 0 || check.healthy_threshold == 0)
            {
                return fail(
                    &format!("upstreams.{name}.health_check"),
                    "thresholds must be at least 1".to_owned(),
                );
            }
            if upstream.tls.is_some() && upstream.url.starts_with("http://") {
                return fail(
                    &format!("upstreams.{name}.tls"),
                    format!(
                        "`{}` is cleartext, so `tls` would do nothing; use an https:// URL",
                        upstream.url
                    ),
                );
            }
            for service in &upstream.services {
                if !de::is_service_pattern(service) {
                    return fail(
                        &format!("upstreams.{name}.services"),
                        format!(
                            "`{service}` is not a service name (pkg.Service) or pattern (pkg.*)"
                        ),
                    );
                }
            }
        }
        let defaults = self.default_upstreams();
        if defaults.len() > 1 {
            let named: Vec<_> = defaults.iter().map(|n| (*n, None)).collect();
            return fail("upstreams", yaml::too_many_defaults(&named));
        }
        let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, upstream) in &self.upstreams {
            for service in &upstream.services {
                if let Some(other) = claimed.insert(service, name) {
                    return fail(
                        &format!("upstreams.{name}.services"),
                        format!(
                            "`{other}` and `{name}` both list `{service}`; a service goes to one upstream"
                        ),
                    );
                }
            }
        }
        if let Some(cors) = &self.cors {
            if cors.allowed_origins.is_empty() {
                return fail(
                    "cors.allowed_origins",
                    "list at least one origin, or `*`".to_owned(),
                );
            }
            let any = cors.allowed_origins.iter().any(|o| o == "*");
            if any && cors.allow_credentials {
                return fail(
                    "cors.allow_credentials",
                    "credentials cannot be allowed for any origin (`*`); list the origins"
                        .to_owned(),
                );
            }
            if let Some(name) = cors
                .allowed_headers
                .iter()
                .find(|name| *name == http::header::HOST || is_hop_by_hop(name.as_str()))
            {
                return fail(
                    "cors.allowed_headers",
                    format!(
                        "`{name}` is set by the browser (or by each connection) and never by a page, so allowing it would do nothing; list the headers your pages set"
                    ),
                );
            }
            for origin in cors.allowed_origins.iter().filter(|o| *o != "*") {
                if http::HeaderValue::from_str(origin).is_err() || !origin.contains("://") {
                    return fail(
                        "cors.allowed_origins",
                        format!("`{origin}` is not an origin like https://app.example"),
                    );
                }
            }
        }
        self.check_routes()?;
        self.check_rate_limits()?;
        if let Some(auth) = &self.auth {
            auth.check()?;
        }
        if let Some(tracing) = &self.tracing {
            tracing.check()?;
        }
        if let Some(tls) = &self.tls
            && tls.client_auth.is_some()
            && tls.client_ca_file.is_none()
        {
            return fail(
                "tls.client_auth",
                "client certificates need a CA to be verified against: set tls.client_ca_file"
                    .to_owned(),
            );
        }
        if let Some(tls) = &self.tls
            && tls.client_crl_file.is_some()
            && tls.client_ca_file.is_none()
        {
            return fail(
                "tls.client_crl_file",
                "revocation lists apply to client certificates, which are not asked for: set tls.client_ca_file"
                    .to_owned(),
            );
        }
        let limits = &self.limits;
        for (key, value) in [
            ("limits.max_body_bytes", limits.max_body_bytes),
            ("limits.max_response_bytes", limits.max_response_bytes),
            ("limits.max_metadata_bytes", limits.max_metadata_bytes),
            ("limits.max_headers", limits.max_headers),
            ("limits.max_connections", limits.max_connections),
            ("limits.max_path_bytes", limits.max_path_bytes),
            ("limits.max_query_params", limits.max_query_params),
        ] {
            if value == 0 {
                return fail(
                    key,
                    "0 would refuse every request; give a positive limit".to_owned(),
                );
            }
        }
        for (key, value, most, why) in [
            (
                "limits.max_connections",
                limits.max_connections,
                Limits::MAX_CONNECTIONS,
                "more connections than one process can hold open",
            ),
            (
                "limits.max_headers",
                limits.max_headers,
                Limits::MAX_HEADERS,
                "the HTTP/1.1 parser sets aside room for twice this many fields on every request",
            ),
            (
                "limits.max_body_bytes",
                limits.max_body_bytes,
                Limits::MAX_MESSAGE_BYTES,
                "a protobuf message holds at most 2 GiB, and a gRPC frame's length is 32 bits",
            ),
            (
                "limits.max_response_bytes",
                limits.max_response_bytes,
                Limits::MAX_MESSAGE_BYTES,
                "a protobuf message holds at most 2 GiB, and a gRPC frame's length is 32 bits",
            ),
            (
                "limits.max_header_bytes",
                limits.max_header_bytes,
                Limits::MAX_HEADER_BYTES,
                "a connection's read buffer may grow to twice this while a request head arrives",
            ),
            (
                "limits.max_metadata_bytes",
                limits.max_metadata_bytes,
                Limits::MAX_HEADER_BYTES,
                "metadata comes from the request's headers, which are at most that large",
            ),
        ] {
            if value > most {
                return fail(key, format!("{value} is above {most}: {why}"));
            }
        }
        if limits.max_buffered_body_bytes < limits.max_body_bytes {
            return fail(
                "limits.max_buffered_body_bytes",
                format!(
                    "{} is smaller than limits.max_body_bytes ({}): no body of the largest size could be read",
                    limits.max_buffered_body_bytes, limits.max_body_bytes
                ),
            );
        }
        if limits.max_header_bytes < 8 << 10 {
            return fail(
                "limits.max_header_bytes",
                format!(
                    "{} is below 8 KiB, the smallest header buffer HTTP/1.1 parsing uses",
                    limits.max_header_bytes
                ),
            );
        }
        if limits.max_metadata_bytes < 1 << 10 {
            return fail(
                "limits.max_metadata_bytes",
                format!(
                    "{} is below 1 KiB: the forwarding headers the gateway adds (x-forwarded-for, x-forwarded-host) alone could exceed it",
                    limits.max_metadata_bytes
                ),
            );
        }
        if !(1..=127).contains(&self.json.max_depth) {
            return fail(
                "json.max_depth",
                format!("{} is out of range (1 to 127)", self.json.max_depth),
            );
        }
        if let Some(server) = self.dns.servers.iter().find(|s| s.port() == 0) {
            return fail(
                "dns.servers",
                format!("`{server}` has port 0; give the port the DNS server listens on"),
            );
        }
        for name in &self.headers.forward {
            if let Some(why) = not_forwardable(name.as_str()) {
                return fail("headers.forward", format!("`{name}` {why}"));
            }
        }
        if let Some(refresh) = self.reflection.refresh
            && refresh < MIN_REFLECTION_REFRESH
        {
            return fail(
                "reflection.refresh",
                format!(
                    "{refresh:?} is below {MIN_REFLECTION_REFRESH:?}: each refresh asks every reflecting upstream for all its files"
                ),
            );
        }
        if self.streams.keepalive < MIN_KEEPALIVE {
            return fail(
                "streams.keepalive",
                format!(
                    "{:?} is below {MIN_KEEPALIVE:?}: every idle event stream would get a comment line that often",
                    self.streams.keepalive
                ),
            );
        }
        if self.timeouts.shutdown > Timeouts::MAX_SHUTDOWN {
            return fail(
                "timeouts.shutdown",
                format!(
                    "{} is longer than 1h, the longest the gateway waits for requests in flight on shutdown: supervisors kill a process long before (Kubernetes after 30s by default, systemd after 90s)",
                    humantime::format_duration(self.timeouts.shutdown)
                ),
            );
        }
        for method in self.timeouts.methods.keys() {
            if !de::is_method_name(method) {
                return fail(
                    "timeouts.methods",
                    format!("`{method}` is not a method name (pkg.Service/Method)"),
                );
            }
        }
        if let Some(admin) = self.admin.listen
            && same_socket(admin, self.listen)
        {
            return fail(
                "admin.listen",
                format!(
                    "{admin} is where the gateway itself listens ({}); the admin listener needs a port of its own",
                    self.listen
                ),
            );
        }
        Ok(())
    }

    /// `routes`: prefixes and upstreams that can be served.
    fn check_routes(&self) -> Result<(), (String, String)> {
        let mut seen: Vec<&str> = Vec::new();
        for (index, group) in self.routes.iter().enumerate() {
            let fail = |message: String| Err((format!("routes[{index}]"), message));
            let prefix = group.prefix.as_str();
            if !prefix.starts_with('/') || prefix.contains(['?', '#', '{', '*']) {
                return fail(format!(
                    "prefix `{prefix}` is not a path prefix like /legacy/ (no query, fragment or template)"
                ));
            }
            // Paths are matched with their dot segments refused and their
            // escapes of unreserved characters decoded: a prefix with
            // either could never hold one.
            if prefix
                .split('/')
                .any(|segment| segment == "." || segment == "..")
            {
                return fail(format!(
                    "prefix `{prefix}` has a `.` or `..` segment, which no request path reaching the gateway keeps"
                ));
            }
            match crate::http_rule::path::decode_unreserved(prefix) {
                Ok(decoded) if decoded != prefix => {
                    return fail(format!(
                        "prefix `{prefix}` escapes characters that need no escape; paths are matched with them decoded: write `{decoded}`"
                    ));
                }
                Ok(_) => {}
                Err(e) => return fail(format!("prefix `{prefix}`: {e}")),
            }
            let key = prefix.trim_end_matches('/');
            if seen.contains(&key) {
                return fail(format!("prefix `{prefix}` is given twice"));
            }
            seen.push(key);
            if group.is_http() {
                if let Err(e) = de::check_url(&group.upstream) {
                    return fail(format!("prefix `{prefix}`: upstream {e}"));
                }
                if group.tls.is_some() && group.upstream.starts_with("http://") {
                    return fail(format!(
                        "prefix `{prefix}`: `{}` is cleartext, so `tls` would do nothing; use an https:// URL",
                        group.upstream
                    ));
                }
                self.check_group_auth(group).map_err(|why| {
                    (
                        format!("routes[{index}]"),
                        format!("prefix `{prefix}`: {why}"),
                    )
                })?;
            } else {
                if !self.upstreams.contains_key(&group.upstream) {
                    return fail(format!(
                        "prefix `{prefix}`: upstream `{}` is neither a name under `upstreams` nor an http(s):// URL",
                        group.upstream
                    ));
                }
                if group.strip_prefix || group.tls.is_some() {
                    return fail(format!(
                        "prefix `{prefix}`: `strip_prefix` and `tls` apply to HTTP services (an http(s):// upstream); a gRPC upstream's TLS is set under `upstreams`"
                    ));
                }
                if group.auth.is_some() || !group.scopes.is_empty() {
                    return fail(format!(
                        "prefix `{prefix}`: `auth` and `scopes` apply to HTTP services (an http(s):// upstream); calls to a gRPC upstream need a token as `auth.methods`, `auth.allow_unauthenticated` and `auth.scopes` say"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A proxied group's `auth` and `scopes`: settings that could check
    /// nothing are refused rather than read as "open".
    fn check_group_auth(&self, group: &RouteGroupConfig) -> Result<(), String> {
        let open = group.auth == Some(GroupAuth::None);
        if self.auth.is_none() && group.auth == Some(GroupAuth::Required) {
            return Err(
                "`auth: required` needs the top-level `auth:` section (the keys tokens are checked with); add it, or leave `auth` out of the group".to_owned(),
            );
        }
        if group.scopes.is_empty() {
            return Ok(());
        }
        if self.auth.is_none() {
            return Err(
                "`scopes` needs the top-level `auth:` section (the keys tokens are checked with); without it no token is read".to_owned(),
            );
        }
        if open {
            return Err(
                "`scopes` with `auth: none` would check nothing: no token is read; drop one of them".to_owned(),
            );
        }
        if let Some(scope) = group.scopes.iter().find(|s| !crate::auth::is_scope(s)) {
            return Err(format!(
                "scopes: {scope:?} is not a scope (printable, no spaces or quotes)"
            ));
        }
        Ok(())
    }
}

/// Whether `name` is a hop-by-hop header (RFC 9110 §7.6.1): it is about
/// one connection, so each proxy on the way drops it, and HTTP/2 refuses
/// requests that carry it (RFC 9113 §8.2.2; `te` only as `te: trailers`).
/// A value put in it for the gateway would not arrive.
pub(super) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "transfer-encoding" | "upgrade"
    )
}

/// Why `headers.forward` cannot list `name`, if it cannot.
fn not_forwardable(name: &str) -> Option<&'static str> {
    if name.starts_with("grpc-metadata-") {
        Some("is forwarded already: every Grpc-Metadata-<key> header is")
    } else if crate::upstream::metadata::is_reserved(name) {
        Some(
            "is never forwarded: gRPC and HTTP/2 set it themselves (send metadata as Grpc-Metadata-<key>)",
        )
    } else if name == "x-forwarded-for" || name == "x-forwarded-host" {
        Some("is set by the gateway itself (X-Forwarded-For is appended to)")
    } else if name.strip_suffix("-bin").is_some_and(str::is_empty) {
        Some("is no metadata key: a binary key needs a name before `-bin`")
    } else {
        None
    }
}

/// Whether two listeners would bind the same socket: the same port (not 0,
/// which picks a free one), on the same address or where one of them takes
/// every address.
fn same_socket(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
