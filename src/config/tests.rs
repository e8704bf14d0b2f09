use super::*;

fn parse(yaml: &str) -> Config {
    Config::from_yaml(yaml).unwrap_or_else(|e| panic!("config parses: {e}"))
}

fn error(yaml: &str) -> YamlError {
    match Config::from_yaml(yaml) {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(err) => err,
    }
}

/// Asserts the error names `key` at `line` (and the key appears in the
/// message a user reads).
fn assert_at(err: &YamlError, key: &str, line: u64) {
    assert_eq!(err.key, key, "{err}");
    assert_eq!(err.line, Some(line), "{err}");
    assert!(err.to_string().contains(key), "{err}");
}

/// A fresh folder under the system temp folder, removed when dropped.
pub(super) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("protogate-config-")
        .tempdir()
        .expect("create temp dir")
}

pub(super) fn upstream(url: &str, services: &[&str]) -> UpstreamConfig {
    UpstreamConfig {
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        ..UpstreamConfig::new(url)
    }
}

// Parsing what is valid.

#[test]
fn empty_file_gives_the_defaults() {
    let config = parse("");
    assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert!(config.fallback_routes);
    assert!(!config.strict_routes);
    assert!(config.upstreams.is_empty());
    assert_eq!(config.timeouts.connect, Duration::from_secs(5));
    assert_eq!(config.timeouts.unary, Duration::from_secs(30));
    assert_eq!(config.unknown_query_params, UnknownParams::Reject);
}

#[test]
fn module_example_parses() {
    let config = parse(
        "listen: 127.0.0.1:9090\n\
         descriptor_sets: [api.pb]\n\
         upstreams:\n  \
           books: { url: \"http://127.0.0.1:50051\", services: [shop.v1.Books] }\n  \
           default: { url: \"http://127.0.0.1:50052\" }\n\
         json: { use_proto_names: true, emit_unpopulated: true }\n\
         timeouts: { connect: 2s, unary: 10s, methods: { shop.v1.Books/Search: 250ms } }\n\
         headers: { forward: [X-Request-Id] }\n",
    );
    assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9090)));
    assert_eq!(config.descriptor_sets, [PathBuf::from("api.pb")]);
    assert_eq!(config.upstreams["books"].services, ["shop.v1.Books"]);
    assert!(config.upstreams["default"].services.is_empty());
    assert!(config.json.use_proto_names && config.json.emit_unpopulated);
    assert_eq!(config.timeouts.connect, Duration::from_secs(2));
    assert_eq!(
        config.timeouts.methods["shop.v1.Books/Search"],
        Duration::from_millis(250)
    );
    assert_eq!(
        config.headers.forward,
        [HeaderName::from_static("x-request-id")]
    );
}

#[test]
fn durations_take_units_or_seconds() {
    let config = parse("timeouts:\n  connect: 1m 30s\n  unary: 2\n  methods:\n    a.B/C: 1.5\n");
    assert_eq!(config.timeouts.connect, Duration::from_secs(90));
    assert_eq!(config.timeouts.unary, Duration::from_secs(2));
    assert_eq!(
        config.timeouts.methods["a.B/C"],
        Duration::from_millis(1500)
    );
}

#[test]
fn upstream_timeout_may_be_null() {
    let config = parse("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    timeout: null\n");
    assert_eq!(config.upstreams["a"].timeout, None);
}

#[test]
fn upstream_timeout_is_a_duration() {
    let config = parse("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    timeout: 750ms\n");
    assert_eq!(
        config.upstreams["a"].timeout,
        Some(Duration::from_millis(750))
    );
}

#[test]
fn sizes_take_units_or_bytes() {
    let config = parse("limits:\n  max_body_bytes: 2MiB\n  max_header_bytes: 1000\n");
    assert_eq!(config.limits.max_body_bytes, 2 << 20);
    assert_eq!(config.limits.max_header_bytes, 1000);
}

#[test]
fn switches_parse() {
    let config =
        parse("fallback_routes: false\nstrict_routes: true\nunknown_query_params: ignore\n");
    assert!(!config.fallback_routes);
    assert!(config.strict_routes);
    assert_eq!(config.unknown_query_params, UnknownParams::Ignore);
}

#[test]
fn one_default_upstream_beside_others_is_fine() {
    let config = parse(
        "upstreams:\n  a: { url: http://127.0.0.1:1 }\n  b: { url: http://127.0.0.1:2, services: [x.Y] }\n",
    );
    assert_eq!(config.upstreams.len(), 2);
    config.validate().expect("valid");
}

// Errors: each names the key and the line.

#[test]
fn unknown_key_is_named_with_its_line() {
    let err = error("listen: 127.0.0.1:0\nlisten_addr: 127.0.0.1:1\n");
    assert_at(&err, "listen_addr", 2);
    assert!(err.message.contains("unknown field"), "{err}");
}

/// A misspelt key or value is told what it likely meant; a name like no
/// other is not.
#[test]
fn misspelt_keys_and_values_name_what_was_meant() {
    let err = error("upstreams:\n  kv:\n    url: http://127.0.0.1:1\n    timeot: 3s\n");
    assert!(err.message.ends_with("(did you mean `timeout`?)"), "{err}");
    let err = error("tls: {cert_file: a, key_file: b, client_ca_file: c, client_auth: requird}\n");
    assert!(err.message.ends_with("(did you mean `required`?)"), "{err}");
    let err = error("timeouts:\n  UNARY: 2s\n");
    assert!(err.message.ends_with("(did you mean `unary`?)"), "{err}");
    let err = error("listen: 127.0.0.1:0\nlisten_addr: 127.0.0.1:1\n");
    assert!(!err.message.contains("did you mean"), "{err}");
}

#[test]
fn unknown_nested_key_is_named_by_its_path() {
    let err = error("timeouts:\n  connect: 1s\n  unry: 2s\n");
    assert_at(&err, "timeouts.unry", 3);
}

#[test]
fn unknown_upstream_key_is_named_by_its_path() {
    let err = error("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    servics: [a.B]\n");
    assert_at(&err, "upstreams.a.servics", 4);
}

#[test]
fn wrong_type_is_named_with_its_line() {
    let err = error("listen: 127.0.0.1:0\nfallback_routes: 7\n");
    assert_at(&err, "fallback_routes", 2);
}

#[test]
fn list_given_as_a_scalar_is_named() {
    let err = error("protos: api.proto\n");
    assert_at(&err, "protos", 1);
}

#[test]
fn wrong_type_inside_a_list_is_named_with_its_index() {
    let err = error("protos:\n  - a.proto\n  - {b: 1}\n");
    assert_at(&err, "protos[1]", 3);
}

#[test]
fn bad_listen_address_is_named() {
    let err = error("listen: nowhere\n");
    assert_at(&err, "listen", 1);
}

#[test]
fn dns_servers_are_addresses() {
    let config = parse("dns:\n  servers: [\"127.0.0.1:8600\", \"[::1]:53\"]\n");
    assert_eq!(
        config.dns.servers,
        [
            SocketAddr::from(([127, 0, 0, 1], 8600)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53)),
        ]
    );
    assert!(parse("listen: 127.0.0.1:0\n").dns.servers.is_empty());
}

#[test]
fn bad_dns_server_is_named_with_its_line() {
    let err = error("dns:\n  servers:\n    - 127.0.0.1:8600\n    - consul.local:8600\n");
    assert_at(&err, "dns.servers[1]", 4);
    assert!(err.message.contains("`consul.local:8600`"), "{err}");
    let err = error("dns:\n  servers: [10.0.0.2]\n");
    assert!(err.key.starts_with("dns.servers"), "{err}");
    assert!(err.message.contains("no port"), "{err}");
    let err = error("dns:\n  server: [127.0.0.1:53]\n");
    assert_eq!(err.key, "dns.server", "{err}");
}

#[test]
fn dns_server_without_a_port_fails_validation() {
    let mut config = Config::default();
    config.dns.servers = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("dns.servers: `127.0.0.1:0` has port 0"),
        "{err}"
    );
}

#[test]
fn bad_duration_is_named_with_its_line() {
    let err = error("timeouts:\n  connect: soon\n");
    assert_at(&err, "timeouts.connect", 2);
    assert!(err.message.contains("`soon`"), "{err}");
}

#[test]
fn negative_duration_is_rejected() {
    let err = error("timeouts:\n  unary: -3\n");
    assert_at(&err, "timeouts.unary", 2);
}

/// A duration too long to add to the clock made every call panic once
/// the config was in place; past ten years it is refused at its line.
#[test]
fn duration_past_ten_years_is_rejected() {
    for (yaml, key, line) in [
        (
            "timeouts:\n  unary: 18446744073709551615\n",
            "timeouts.unary",
            2,
        ),
        (
            "timeouts:\n  unary: 300000000000 years\n",
            "timeouts.unary",
            2,
        ),
        (
            "timeouts:\n  methods:\n    a.B/C: 11 years\n",
            "timeouts.methods.\"a.B/C\"",
            3,
        ),
        (
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    timeout: 1e12\n",
            "upstreams.a.timeout",
            4,
        ),
        (
            "streams:\n  keepalive: 9999999999\n",
            "streams.keepalive",
            2,
        ),
        ("timeouts:\n  connect: 1e30\n", "timeouts.connect", 2),
    ] {
        let err = error(yaml);
        assert_at(&err, key, line);
        assert!(err.message.contains("at most 10 years"), "{err}");
    }
    let config = parse("timeouts:\n  unary: 10 years\n");
    assert_eq!(config.timeouts.unary, Duration::from_secs(315_576_000));
}

/// Sub-millisecond durations were taken: `1ns` as a deadline failed
/// every call with 504. Each is refused at its line.
#[test]
fn durations_below_a_millisecond_are_refused_at_their_line() {
    for (yaml, key, line, says) in [
        ("timeouts:\n  unary: 1ns\n", "timeouts.unary", 2, "below ms"),
        (
            "timeouts:\n  connect: 0.0000001\n",
            "timeouts.connect",
            2,
            "below 1ms",
        ),
        (
            "timeouts:\n  idle: \"0.0005\"\n",
            "timeouts.idle",
            2,
            "below 1ms",
        ),
        (
            "streams:\n  keepalive: 999us\n",
            "streams.keepalive",
            2,
            "below ms",
        ),
        (
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    retry: {backoff_base: 10ns}\n",
            "upstreams.a.retry.backoff_base",
            4,
            "below ms",
        ),
        (
            "timeouts:\n  unary: 1s 1s\n",
            "timeouts.unary",
            2,
            "same unit",
        ),
        (
            "timeouts:\n  unary: 30s 1m\n",
            "timeouts.unary",
            2,
            "largest first",
        ),
    ] {
        let err = error(yaml);
        assert_at(&err, key, line);
        assert!(err.message.contains(says), "{err}");
    }
    let config = parse("timeouts:\n  unary: 0.001\n  connect: 1ms\n");
    assert_eq!(config.timeouts.unary, Duration::from_millis(1));
    assert_eq!(config.timeouts.connect, Duration::from_millis(1));
}

/// The shutdown grace may be zero (wait for nothing), unlike every other
/// duration, and at most an hour.
#[test]
fn shutdown_grace_is_zero_to_an_hour() {
    assert_eq!(parse("").timeouts.shutdown, Duration::from_secs(10));
    for zero in ["0", "0s", "\"0\""] {
        let config = parse(&format!("timeouts:\n  shutdown: {zero}\n"));
        assert_eq!(config.timeouts.shutdown, Duration::ZERO, "{zero}");
    }
    let config = parse("timeouts:\n  shutdown: 1h\n");
    config.validate().expect("an hour is the most");
    assert_eq!(config.timeouts.shutdown, Duration::from_secs(3600));
    assert_refused(
        "timeouts:\n  shutdown: 1h 1s\n",
        "timeouts.shutdown",
        "1h 1s is longer than 1h",
    );
    assert_at(
        &error("timeouts:\n  shutdown: -1\n"),
        "timeouts.shutdown",
        2,
    );
    assert_at(
        &error("timeouts:\n  shutdown: 1ns\n"),
        "timeouts.shutdown",
        2,
    );
    let err = error("timeouts:\n  shutdown: 11 years\n");
    assert!(err.message.contains("at most 10 years"), "{err}");
}

#[test]
fn keepalive_of_less_than_a_second_is_refused() {
    assert_refused(
        "streams:\n  keepalive: 1ms\n",
        "streams.keepalive",
        "below 1s",
    );
    assert!(validated("streams:\n  keepalive: 1s\n").is_ok());
}

#[test]
fn health_check_timeout_past_its_interval_is_refused() {
    assert_refused(
        "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    health_check: {interval: 1s, timeout: 5s}\n",
        "upstreams.a.health_check.timeout",
        "longer than the interval",
    );
    assert!(
        validated(
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    health_check: {interval: 1s, timeout: 1s}\n"
        )
        .is_ok()
    );
}

#[test]
fn bad_duration_of_a_method_is_named_by_the_method() {
    let err = error("timeouts:\n  methods:\n    a.B/C: forever\n");
    assert_at(&err, "timeouts.methods.\"a.B/C\"", 3);
}

#[test]
fn bad_method_name_in_timeouts_is_named() {
    let err = error("timeouts:\n  methods:\n    a.B/C: 1s\n    nonsense: 2s\n");
    assert_at(&err, "timeouts.methods.nonsense", 4);
    assert!(err.message.contains("`nonsense`"), "{err}");
}

#[test]
fn bad_upstream_timeout_is_named() {
    let err = error("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    timeout: [1]\n");
    assert_at(&err, "upstreams.a.timeout", 4);
}

#[test]
fn bad_url_scheme_is_named_with_its_line() {
    let err = error("upstreams:\n  books:\n    url: ftp://127.0.0.1:1\n");
    assert_at(&err, "upstreams.books.url", 3);
    assert!(err.message.contains("ftp://127.0.0.1:1"), "{err}");
}

#[test]
fn unparsable_url_is_named_with_its_line() {
    let err = error("upstreams:\n  books:\n    url: \"not a url\"\n");
    assert_at(&err, "upstreams.books.url", 3);
}

#[test]
fn url_without_host_is_rejected() {
    let err = error("upstreams:\n  books:\n    url: \"http:///v1\"\n");
    assert_at(&err, "upstreams.books.url", 3);
}

#[test]
fn two_default_upstreams_are_named_with_their_lines() {
    let err =
        error("upstreams:\n  a:\n    url: http://127.0.0.1:1\n  b:\n    url: http://127.0.0.1:2\n");
    assert_at(&err, "upstreams.b", 4);
    assert!(err.message.contains("`a` (line 2)"), "{err}");
    assert!(err.message.contains("`b` (line 4)"), "{err}");
}

#[test]
fn three_default_upstreams_are_listed_in_file_order() {
    let err = error(
        "upstreams:\n  c: { url: http://127.0.0.1:1 }\n  a: { url: http://127.0.0.1:1, services: [x.Y] }\n  \
         b: { url: http://127.0.0.1:2 }\n  d: { url: http://127.0.0.1:3 }\n",
    );
    assert_at(&err, "upstreams.b", 4);
    assert!(
        err.message
            .starts_with("`c` (line 2), `b` (line 4) and `d` (line 5) have no `services`"),
        "{err}"
    );
}

#[test]
fn bad_service_pattern_is_named() {
    let err = error("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    services: [a.B, a..B]\n");
    assert_at(&err, "upstreams.a.services", 4);
    assert!(err.message.contains("`a..B`"), "{err}");
}

#[test]
fn bad_header_name_is_named() {
    let err = error("headers:\n  forward: [x-ok, \"bad header\"]\n");
    assert_at(&err, "headers.forward", 2);
}

/// What `validate` says of `yaml`, or that it passes.
fn validated(yaml: &str) -> Result<(), String> {
    let config = Config::from_yaml(yaml).expect("parses");
    config.validate().map_err(|e| e.to_string())
}

/// Asserts `validate` refuses `yaml` naming `key` and saying `says`.
fn assert_refused(yaml: &str, key: &str, says: &str) {
    let err = validated(yaml).unwrap_err();
    assert!(err.contains(key) && err.contains(says), "{err}");
}

#[test]
fn headers_that_are_never_forwarded_are_refused() {
    for name in ["grpc-timeout", "te", "content-type", "host", "connection"] {
        let yaml = format!("headers:\n  forward: [x-ok, {name}]\n");
        assert_refused(&yaml, "headers.forward", "never forwarded");
    }
    for (name, says) in [
        ("grpc-metadata-foo", "forwarded already"),
        ("x-forwarded-host", "set by the gateway"),
        ("-bin", "needs a name"),
    ] {
        let yaml = format!("headers:\n  forward: [\"{name}\"]\n");
        assert_refused(&yaml, "headers.forward", says);
    }
    assert!(validated("headers:\n  forward: [x-request-id]\n").is_ok());
}

/// An upstream named `""` (or only spaces) was taken: nothing could name
/// it back (`canary.upstream`, `routes`), and the route table and the
/// logs showed nothing where its name goes.
#[test]
fn an_upstream_without_a_name_is_refused() {
    for name in ["\"\"", "\"  \""] {
        let yaml = format!("upstreams:\n  {name}: {{url: \"http://127.0.0.1:1\"}}\n");
        assert_refused(&yaml, "upstreams", "which is no name");
    }
    assert!(validated("upstreams:\n  a: {url: \"http://127.0.0.1:1\"}\n").is_ok());
}

/// A gRPC call goes to `/package.Service/Method` on the target's host and
/// port: a path, query or fragment in an upstream's URL was dropped
/// without a word. Each is refused at its line, saying what to write.
#[test]
fn grpc_targets_take_no_path_query_or_fragment() {
    for (url, says) in [
        ("http://127.0.0.1:1/api", "has a path (`/api`)"),
        ("http://127.0.0.1:1/api/", "has a path (`/api/`)"),
        ("http://127.0.0.1:1?x=1", "has a query (`?x=1`)"),
        ("http://127.0.0.1:1/#top", "has a fragment (`/#top`)"),
        (
            "http://127.0.0.1:1/v1?x#y",
            "has a path, query and fragment",
        ),
    ] {
        for (yaml, key, line) in [
            (
                format!("upstreams:\n  a:\n    url: \"{url}\"\n"),
                "upstreams.a.url",
                3,
            ),
            (
                format!(
                    "upstreams:\n  a:\n    url: http://127.0.0.1:2\n    endpoints: [\"{url}\"]\n"
                ),
                "upstreams.a.endpoints[0]",
                4,
            ),
            (
                format!(
                    "upstreams:\n  a:\n    url: http://127.0.0.1:2\n    discovery:\n      etcd: {{endpoints: [\"{url}\"], prefix: /a/}}\n"
                ),
                "upstreams.a.discovery.etcd.endpoints",
                5,
            ),
        ] {
            let err = error(&yaml);
            assert_at(&err, key, line);
            assert!(
                err.message.contains(says) && err.message.contains("write `http://127.0.0.1:1`"),
                "{err}"
            );
        }
        let err = Config::default().set_default_upstream(url).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        // Built in code, the same.
        let mut config = Config::default();
        config
            .upstreams
            .insert("a".into(), UpstreamConfig::new(url));
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("upstreams.a.url") && err.contains(says),
            "{err}"
        );
    }
    for url in [
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/",
        "https://[::1]:443",
    ] {
        let yaml = format!("upstreams:\n  a:\n    url: \"{url}\"\n    endpoints: [\"{url}\"]\n");
        assert!(validated(&yaml).is_ok(), "{url}");
    }
    // A plain HTTP service behind a prefix keeps its path: it is used.
    assert!(
        validated(
            "upstreams:\n  a: {url: \"http://127.0.0.1:1\"}\nroutes:\n  - {prefix: /old/, upstream: \"http://127.0.0.1:2/base\"}\n"
        )
        .is_ok()
    );
}

/// A canary header that no request can carry to the gateway (one the
/// connection or the server's name own) made the choice impossible:
/// refused, saying why.
#[test]
fn a_canary_header_no_request_can_carry_is_refused() {
    let yaml = |header: &str| {
        format!(
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    canary: {{upstream: b, weight: 10, header: \"{header}\"}}\n  b:\n    url: http://127.0.0.1:2\n    services: [b.v1.B]\n"
        )
    };
    assert_refused(
        &yaml("Host"),
        "upstreams.a.canary.header",
        "names the server a request is for",
    );
    for hop in [
        "connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "Proxy-Connection",
    ] {
        assert_refused(
            &yaml(hop),
            "upstreams.a.canary.header",
            "is a hop-by-hop header",
        );
    }
    for pseudo in [":authority", ":path"] {
        let err = error(&yaml(pseudo));
        assert_at(&err, "upstreams.a.canary.header", 4);
        assert!(err.message.contains("pseudo-header"), "{err}");
    }
    assert!(validated(&yaml("x-canary")).is_ok());
}

/// The other settings that name request headers: a hop-by-hop one never
/// arrives to be hashed, and a browser lets no page set it (nor `host`);
/// a pseudo-header is none, wherever it is named.
#[test]
fn other_request_header_settings_refuse_headers_no_request_carries() {
    let hash = |header: &str| {
        format!(
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    balance: {{policy: consistent_hash, hash_header: {header}}}\n"
        )
    };
    assert_refused(
        &hash("connection"),
        "upstreams.a.balance.hash_header",
        "is a hop-by-hop header",
    );
    // The host a request is for is a fair key to hash.
    assert!(validated(&hash("host")).is_ok());
    for header in ["host", "te", "upgrade"] {
        assert_refused(
            &format!("cors:\n  allowed_origins: [\"*\"]\n  allowed_headers: [x-a, {header}]\n"),
            "cors.allowed_headers",
            "never by a page",
        );
    }
    for yaml in [
        "headers:\n  forward: [\":authority\"]\n",
        "cors:\n  allowed_origins: [\"*\"]\n  allowed_headers: [\":path\"]\n",
        "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    balance: {policy: consistent_hash, hash_header: \":authority\"}\n",
    ] {
        let err = error(yaml);
        assert!(err.message.contains("pseudo-header"), "{yaml}: {err}");
    }
}

/// A canary naming a missing upstream (a typo) leaves the one it meant a
/// second default; the typo is what is reported.
#[test]
fn a_canary_naming_no_upstream_is_the_error_shown() {
    assert_refused(
        "upstreams:\n  main:\n    url: http://a\n    canary: {upstream: gone, weight: 10}\n  next:\n    url: http://b\n",
        "upstreams.main.canary.upstream",
        "`gone` is not an upstream",
    );
}

#[test]
fn etcd_discovery_without_endpoints_is_refused() {
    assert_refused(
        "upstreams:\n  a:\n    url: http://a\n    discovery: {etcd: {endpoints: [], prefix: /a/}}\n",
        "upstreams.a.discovery.etcd.endpoints",
        "at least one",
    );
}

#[test]
fn etcd_discovery_with_an_empty_prefix_is_refused() {
    assert_refused(
        "upstreams:\n  a:\n    url: http://a\n    discovery: {etcd: {endpoints: [http://127.0.0.1:2379], prefix: ''}}\n",
        "upstreams.a.discovery.etcd.prefix",
        "every key",
    );
}

#[test]
fn a_reflection_refresh_of_a_millisecond_is_refused() {
    assert_refused(
        "reflection:\n  refresh: 1ms\n",
        "reflection.refresh",
        "below",
    );
    assert!(validated("reflection:\n  refresh: 1s\n").is_ok());
}

#[test]
fn bad_size_is_named() {
    let err = error("limits:\n  max_body_bytes: lots\n");
    assert_at(&err, "limits.max_body_bytes", 2);
}

#[test]
fn unknown_enum_value_is_named() {
    let err = error("unknown_query_params: maybe\n");
    assert_at(&err, "unknown_query_params", 1);
}

#[test]
fn unknown_json_option_is_named() {
    let err = error("json:\n  use_proto_names: true\n  bogus: 1\n");
    assert_at(&err, "json.bogus", 3);
}

#[test]
fn duplicate_key_is_rejected_at_its_line() {
    let err = error("strict_routes: true\nstrict_routes: false\n");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.message.contains("strict_routes"), "{err}");
}

#[test]
fn a_list_is_not_a_config() {
    let err = error("- a\n- b\n");
    assert_eq!(err.line, Some(1), "{err}");
}

#[test]
fn error_message_is_one_line() {
    let err = error("timeouts:\n  connect: soon\n");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn key_paths_quote_keys_with_dots() {
    use serde::de::IntoDeserializer as _;
    use serde_json::json;
    let value = json!({"a": {"b.c": [1, {"d": true}]}});
    let mut track = serde_path_to_error::Track::new();
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        a: BTreeMap<String, (u8, BTreeMap<String, u8>)>,
    }
    let de = serde_path_to_error::Deserializer::new(value.into_deserializer(), &mut track);
    assert!(Strict::deserialize(de).is_err());
    assert_eq!(yaml::dotted(&track.path()), "a.\"b.c\"[1].d");
}

// Where in its file a setting is.

/// Checks after parsing (bounds, settings that must fit together) name
/// the file and the line of the setting, like parse errors do.
#[test]
fn setting_errors_name_file_and_line() {
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "# limits\nlisten: 127.0.0.1:8080\nlimits:\n  max_body_bytes: 1KiB\n\n  max_header_bytes: 1KiB\n",
    )
    .unwrap();
    let config = Config::from_file(&path).expect("parses");
    let err = config.validate().expect_err("header limit too small");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config {}:6: limits.max_header_bytes: 1024 is below 8 KiB, the smallest header buffer HTTP/1.1 parsing uses",
            path.display()
        )
    );
    // A setting not in the file (a default): the file, without a line.
    std::fs::write(&path, "limits:\n  max_buffered_body_bytes: 1KiB\n").unwrap();
    let err = Config::from_file(&path).unwrap().validate().unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "invalid config {}:2: limits.max_buffered_body_bytes: ",
            path.display()
        )),
        "{err}"
    );
    // Without a file: the key alone.
    let mut config = Config::default();
    config.limits.max_body_bytes = 0;
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "invalid config: limits.max_body_bytes: 0 would refuse every request; give a positive limit"
    );
}

#[test]
fn keys_are_found_by_indentation() {
    let text = "a:\n  b: 1\n  c:\n    d: 2\n\"e\": 3\nc:\n  d: 4\nf: {g: 5}\n";
    assert_eq!(yaml::line_of(text, "a"), Some(1));
    assert_eq!(yaml::line_of(text, "a.b"), Some(2));
    assert_eq!(yaml::line_of(text, "a.c.d"), Some(4));
    assert_eq!(yaml::line_of(text, "e"), Some(5));
    assert_eq!(yaml::line_of(text, "c.d"), Some(7));
    assert_eq!(
        yaml::line_of(text, "a.d"),
        Some(1),
        "d is under a.c: a's line"
    );
    assert_eq!(yaml::line_of(text, "f.g"), Some(8), "flow style: f's line");
    assert_eq!(yaml::line_of(text, "x"), None);
    let list = "routes:\n  - prefix: /a/\n    upstream: x\n\n  # note\n  - prefix: /b/\n    upstream: y\nother: 1\n";
    assert_eq!(yaml::line_of(list, "routes[0]"), Some(2));
    assert_eq!(yaml::line_of(list, "routes[1]"), Some(6));
    assert_eq!(yaml::line_of(list, "routes[2]"), None);
    let flush = "routes:\n- prefix: /a/\n  upstream: x\n- prefix: /b/\nother: 1\n";
    assert_eq!(yaml::line_of(flush, "routes[1]"), Some(4));
    let flow = "listen: 127.0.0.1:1\nroutes: [{prefix: /a/, upstream: x}]\n";
    assert_eq!(
        yaml::line_of(flow, "routes[0]"),
        Some(2),
        "flow list: its line"
    );
}

// Flags on top of the file.

#[test]
fn default_upstream_flag_replaces_the_configured_default() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("old".into(), upstream("http://127.0.0.1:1", &[]));
    config.upstreams.insert(
        "books".into(),
        upstream("http://127.0.0.1:2", &["shop.Books"]),
    );
    config
        .set_default_upstream("http://127.0.0.1:3")
        .expect("valid url");
    assert!(!config.upstreams.contains_key("old"));
    assert_eq!(config.upstreams["default"].url, "http://127.0.0.1:3");
    assert_eq!(config.upstream_for("shop.Books"), Some("books"));
    assert_eq!(config.upstream_for("shop.Other"), Some("default"));
    config.validate().expect("one default");
}

#[test]
fn default_upstream_flag_keeps_an_upstream_named_default_with_services() {
    let mut config = Config::default();
    config.upstreams.insert(
        "default".into(),
        upstream("http://127.0.0.1:1", &["shop.Books"]),
    );
    config
        .set_default_upstream("http://127.0.0.1:3")
        .expect("valid url");
    assert_eq!(config.upstreams["default"].url, "http://127.0.0.1:1");
    assert_eq!(config.upstream_for("shop.Books"), Some("default"));
    let fallback = config.upstream_for("shop.Other").expect("a default");
    assert_eq!(config.upstreams[fallback].url, "http://127.0.0.1:3");
}

#[test]
fn default_upstream_flag_rejects_a_bad_url() {
    let mut config = Config::default();
    let err = config
        .set_default_upstream("127.0.0.1:50051")
        .expect_err("no scheme");
    assert!(err.to_string().contains("`127.0.0.1:50051`"), "{err}");
    assert!(config.upstreams.is_empty());
}

// Validation of configs built in code.

#[test]
fn validate_names_both_default_upstreams() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("a".into(), UpstreamConfig::new("http://127.0.0.1:1"));
    config
        .upstreams
        .insert("b".into(), UpstreamConfig::new("http://127.0.0.1:2"));
    let err = config.validate().expect_err("two defaults").to_string();
    assert!(err.contains("`a`") && err.contains("`b`"), "{err}");
}

#[test]
fn validate_names_a_bad_url() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("a".into(), UpstreamConfig::new("localhost"));
    let err = config.validate().expect_err("bad url").to_string();
    assert!(err.contains("upstreams.a.url"), "{err}");
}

#[test]
fn validate_names_a_bad_method_timeout() {
    let mut config = Config::default();
    config
        .timeouts
        .methods
        .insert("pkg.Service".into(), Duration::from_secs(1));
    let err = config.validate().expect_err("no method").to_string();
    assert!(
        err.contains("timeouts.methods") && err.contains("`pkg.Service`"),
        "{err}"
    );
}

// Route groups.

#[test]
fn route_groups_parse() {
    let config = parse(
        "upstreams:\n  books:\n    url: http://127.0.0.1:1\nroutes:\n  - prefix: /legacy/\n    upstream: http://127.0.0.1:9000/base\n    strip_prefix: true\n    timeout: 5s\n  - prefix: /v1/shelves\n    upstream: books\n",
    );
    assert_eq!(config.routes.len(), 2);
    assert!(config.routes[0].is_http());
    assert!(config.routes[0].strip_prefix);
    assert_eq!(config.routes[0].timeout, Some(Duration::from_secs(5)));
    assert!(!config.routes[1].is_http());
    config.validate().expect("valid");
}

#[test]
fn bad_route_groups_are_named() {
    let base = "upstreams:\n  books:\n    url: http://127.0.0.1:1\nroutes:\n";
    for (groups, needle) in [
        (
            "  - {prefix: legacy, upstream: books}\n",
            "is not a path prefix",
        ),
        (
            "  - {prefix: /a/*, upstream: books}\n",
            "is not a path prefix",
        ),
        (
            "  - {prefix: /a, upstream: nope}\n",
            "upstream `nope` is neither a name",
        ),
        (
            "  - {prefix: /a, upstream: 'ftp://x'}\n",
            "not an http:// or https:// URL",
        ),
        (
            "  - {prefix: /a, upstream: books, strip_prefix: true}\n",
            "apply to HTTP services",
        ),
        (
            "  - {prefix: /a/, upstream: books}\n  - {prefix: /a, upstream: books}\n",
            "prefix `/a` is given twice",
        ),
    ] {
        let err = parse(&format!("{base}{groups}"))
            .validate()
            .expect_err(groups)
            .to_string();
        assert!(
            err.contains("routes[") && err.contains(needle),
            "{groups}: {err}"
        );
    }
}

/// A route group's error points at its own item, not the `routes:` line.
#[test]
fn route_group_errors_name_the_item_line() {
    let dir = tempdir();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "routes:\n  - prefix: /a/\n    upstream: http://127.0.0.1:1\n  - prefix: b\n    upstream: http://127.0.0.1:1\n",
    )
    .unwrap();
    let err = Config::from_file(&path)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("gateway.yaml:4: routes[1]: "), "{err}");
}

/// The README's configuration reference is a config that parses and
/// passes validation: every key it shows exists, with values of its type.
#[test]
fn readme_config_reference_parses() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Configuration")
        .and_then(|at| {
            readme[at..]
                .find("```yaml")
                .map(|i| at + i + "```yaml".len())
        })
        .expect("a yaml block under ## Configuration");
    let end = start + readme[start..].find("```").expect("the block's end");
    let config = parse(&readme[start..end]);
    config.validate().expect("the README's example is valid");
    assert!(!config.routes.is_empty() && config.cors.is_some());
}

#[test]
fn tls_on_a_cleartext_url_is_refused() {
    let err = Config::from_yaml(
        "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    tls: { ca_file: ca.pem }\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("upstreams.a.tls") && err.contains("https://"),
        "{err}"
    );
    let err = Config::from_yaml(
        "routes:\n  - prefix: /old/\n    upstream: http://127.0.0.1:1\n    tls: { ca_file: ca.pem }\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("cleartext"), "{err}");
}

#[test]
fn urls_with_impossible_ports_are_refused() {
    for url in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "https://h:70000",
    ] {
        let yaml = format!("upstreams:\n  a:\n    url: \"{url}\"\n");
        let err = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains("not one of 1 to 65535"), "{url}: {err}");
        let yaml =
            format!("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    endpoints: [\"{url}\"]\n");
        assert!(Config::from_yaml(&yaml).is_err(), "{url}");
    }
}

#[test]
fn pool_policies_are_checked() {
    let cases = [
        (
            "    endpoints: [http://127.0.0.1:2, http://127.0.0.1:2]\n",
            "is listed twice",
        ),
        (
            "    discovery: {etcd: {endpoints: [\"https://127.0.0.1:2379\"], prefix: /a/}}\n",
            "TLS to etcd is not supported yet",
        ),
        ("    retry: {on: [OK]}\n", "OK is a success"),
        ("    retry: {attempts: 0}\n", "1 (no retries) to 10"),
        ("    retry: {attempts: 100000}\n", "1 (no retries) to 10"),
        (
            "    retry: {budget_percent: 100000}\n",
            "budget_percent at most 900",
        ),
        (
            "    health_check: {interval: 1ms, timeout: 1ms}\n",
            "below 100ms",
        ),
        ("    dns_refresh: 1ms\n", "below 100ms"),
        (
            "    balance: {policy: consistent_hash}\n",
            "needs a `hash_header`",
        ),
        (
            "    canary: {upstream: nope, weight: 10}\n",
            "`nope` is not an upstream",
        ),
        (
            "    canary: {upstream: a, weight: 10}\n",
            "names this upstream itself",
        ),
        ("    canary: {upstream: b, weight: 101}\n", "0 to 100"),
        ("    circuit_breaker: {max_requests: 0}\n", "at least 1"),
    ];
    for (setting, want) in cases {
        let yaml = format!(
            "upstreams:\n  a:\n    url: http://127.0.0.1:1\n{setting}  b:\n    url: http://127.0.0.1:3\n    services: [b.v1.B]\n"
        );
        let err = match Config::from_yaml(&yaml) {
            Ok(config) => config.validate().unwrap_err().to_string(),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(want), "{setting}: {err}");
    }
}

#[test]
fn limits_past_what_the_listener_can_count_are_refused() {
    assert_refused(
        "limits:\n  max_connections: 2305843009213693952\n",
        "limits.max_connections",
        "above 1000000",
    );
    assert_refused(
        "limits:\n  max_connections: 4294967296\n",
        "limits.max_connections",
        "above 1000000",
    );
    assert!(validated("limits:\n  max_connections: 1000000\n").is_ok());
}

#[test]
fn message_limits_past_what_protobuf_holds_are_refused() {
    for key in ["max_body_bytes", "max_response_bytes"] {
        assert_refused(
            &format!("limits:\n  {key}: 5GiB\n  max_buffered_body_bytes: 8GiB\n"),
            &format!("limits.{key}"),
            "above 2147483648",
        );
        assert!(
            validated(&format!(
                "limits:\n  {key}: 2GiB\n  max_buffered_body_bytes: 2GiB\n"
            ))
            .is_ok()
        );
    }
}

#[test]
fn header_limits_the_parser_allocates_by_are_bounded() {
    for (setting, key, says) in [
        (
            "max_headers: 4294967296",
            "limits.max_headers",
            "above 1000",
        ),
        ("max_headers: 1001", "limits.max_headers", "above 1000"),
        (
            "max_header_bytes: 1GiB",
            "limits.max_header_bytes",
            "above 1048576",
        ),
        (
            "max_metadata_bytes: 2MiB",
            "limits.max_metadata_bytes",
            "above 1048576",
        ),
    ] {
        assert_refused(&format!("limits:\n  {setting}\n"), key, says);
    }
    assert!(
        validated(
            "limits:\n  max_headers: 1000\n  max_header_bytes: 1MiB\n  max_metadata_bytes: 1MiB\n"
        )
        .is_ok()
    );
}
