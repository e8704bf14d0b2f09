//! Upstream pool settings: canaries, etcd discovery, retries, health checks.

use super::*;

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
