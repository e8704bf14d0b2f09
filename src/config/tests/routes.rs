//! Route groups: path prefixes sent to HTTP services or named upstreams.

use super::*;

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
            "  - {prefix: /a/../b/, upstream: books}\n",
            "has a `.` or `..` segment",
        ),
        ("  - {prefix: /a/., upstream: books}\n", "`.` or `..`"),
        ("  - {prefix: /%61pi/, upstream: books}\n", "write `/api/`"),
        ("  - {prefix: /a%zz/, upstream: books}\n", "prefix `/a%zz/`"),
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

/// A proxied group's `auth` and `scopes` parse; settings that could check
/// nothing, or that a gRPC group does not take, are refused naming the
/// group.
#[test]
fn group_auth_settings_are_checked() {
    let auth = "auth:\n  jwks_file: k.json\n";
    let base = "upstreams:\n  books:\n    url: http://127.0.0.1:1\nroutes:\n";
    let config = parse(&format!(
        "{auth}{base}  - {{prefix: /a, upstream: 'http://127.0.0.1:2', auth: none}}\n  - {{prefix: /b, upstream: 'http://127.0.0.1:2', auth: required, scopes: [b.read, b.write]}}\n"
    ));
    config.validate().expect("valid");
    assert_eq!(config.routes[0].auth, Some(GroupAuth::None));
    assert_eq!(config.routes[1].auth, Some(GroupAuth::Required));
    assert_eq!(config.routes[1].scopes, ["b.read", "b.write"]);
    // `auth: none` without an `auth:` section changes nothing: allowed.
    parse(&format!(
        "{base}  - {{prefix: /a, upstream: 'http://127.0.0.1:2', auth: none}}\n"
    ))
    .validate()
    .expect("valid");
    for (head, group, needle) in [
        (
            auth,
            "{prefix: /g, upstream: books, auth: required}",
            "prefix `/g`: `auth` and `scopes` apply to HTTP services",
        ),
        (
            auth,
            "{prefix: /g, upstream: books, scopes: [x]}",
            "prefix `/g`: `auth` and `scopes` apply to HTTP services",
        ),
        (
            "",
            "{prefix: /g, upstream: 'http://127.0.0.1:2', auth: required}",
            "prefix `/g`: `auth: required` needs the top-level `auth:` section",
        ),
        (
            "",
            "{prefix: /g, upstream: 'http://127.0.0.1:2', scopes: [x]}",
            "prefix `/g`: `scopes` needs the top-level `auth:` section",
        ),
        (
            auth,
            "{prefix: /g, upstream: 'http://127.0.0.1:2', auth: none, scopes: [x]}",
            "prefix `/g`: `scopes` with `auth: none` would check nothing",
        ),
        (
            auth,
            "{prefix: /g, upstream: 'http://127.0.0.1:2', scopes: ['a b']}",
            "prefix `/g`: scopes: \"a b\" is not a scope",
        ),
    ] {
        let err = parse(&format!("{head}{base}  - {group}\n"))
            .validate()
            .expect_err(group)
            .to_string();
        assert!(
            err.contains("routes[0]") && err.contains(needle),
            "{group}: {err}"
        );
    }
    let err = Config::from_yaml(&format!(
        "{auth}{base}  - {{prefix: /g, upstream: 'http://127.0.0.1:2', auth: optional}}\n"
    ))
    .expect_err("not a value auth takes")
    .to_string();
    assert!(err.contains("optional"), "{err}");
}
