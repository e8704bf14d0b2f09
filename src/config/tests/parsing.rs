//! Parsing the YAML file: what parses, and how refusals name key and line.

use super::*;

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
fn switches_parse() {
    let config =
        parse("fallback_routes: false\nstrict_routes: true\nunknown_query_params: ignore\n");
    assert!(!config.fallback_routes);
    assert!(config.strict_routes);
    assert_eq!(config.unknown_query_params, UnknownParams::Ignore);
}

/// The README's configuration reference is a config that parses and
/// passes validation: every key it shows exists, with values of its type.
#[test]
fn readme_config_reference_parses() {
    let readme = include_str!("../../../README.md");
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

/// The admin listener on the gateway's own socket is a config error (exit
/// 2, naming the setting), not an "address in use" at startup.
#[test]
fn admin_listener_on_the_gateways_own_socket_is_refused() {
    for (listen, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "127.0.0.1:8080"),
        ("127.0.0.1:8080", "[::]:8080"),
    ] {
        assert_refused(
            &format!("listen: \"{listen}\"\nadmin:\n  listen: \"{admin}\"\n"),
            "admin.listen",
            "needs a port of its own",
        );
    }
    for (listen, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:9901"),
        ("127.0.0.1:8080", "127.0.0.2:8080"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let yaml = format!("listen: \"{listen}\"\nadmin:\n  listen: \"{admin}\"\n");
        assert_eq!(validated(&yaml), Ok(()), "{listen} {admin}");
    }
}
