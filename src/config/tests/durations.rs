//! Durations and timeouts: units, bounds, and where a bad one is named.

use super::*;

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
fn a_reflection_refresh_of_a_millisecond_is_refused() {
    assert_refused(
        "reflection:\n  refresh: 1ms\n",
        "reflection.refresh",
        "below",
    );
    assert!(validated("reflection:\n  refresh: 1s\n").is_ok());
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
