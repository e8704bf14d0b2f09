//! Settings that name request headers: forwarding, canary, hash, CORS.

use super::*;

#[test]
fn bad_header_name_is_named() {
    let err = error("headers:\n  forward: [x-ok, \"bad header\"]\n");
    assert_at(&err, "headers.forward", 2);
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
