//! Upstreams: names, target URLs, and the one default (and its flag).

use super::*;

#[test]
fn one_default_upstream_beside_others_is_fine() {
    let config = parse(
        "upstreams:\n  a: { url: http://127.0.0.1:1 }\n  b: { url: http://127.0.0.1:2, services: [x.Y] }\n",
    );
    assert_eq!(config.upstreams.len(), 2);
    config.validate().expect("valid");
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

/// A gRPC call goes to `/package.Service/Method` on the target's host and
/// port: a path, query or fragment in an upstream's URL was dropped
/// without a word. Each is refused at its line, saying what to write.
#[test]
fn grpc_targets_take_no_path_query_or_fragment() {
    for (url, says) in [
        ("http://127.0.0.1:1/api", "has a path (`/api`)"),
        ("http://127.0.0.1:1/api/", "has a path (`/api/`)"),
        // Never shown: a query may carry a key.
        ("http://127.0.0.1:1?x=1", "has a query (`?...`)"),
        ("http://127.0.0.1:1/#top", "has a fragment (`/#...`)"),
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
fn bad_service_pattern_is_named() {
    let err = error("upstreams:\n  a:\n    url: http://127.0.0.1:1\n    services: [a.B, a..B]\n");
    assert_at(&err, "upstreams.a.services", 4);
    assert!(err.message.contains("`a..B`"), "{err}");
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
