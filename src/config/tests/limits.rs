//! Size and count limits: units, and the bounds each limit must keep.

use super::*;

#[test]
fn sizes_take_units_or_bytes() {
    let config = parse("limits:\n  max_body_bytes: 2MiB\n  max_header_bytes: 1000\n");
    assert_eq!(config.limits.max_body_bytes, 2 << 20);
    assert_eq!(config.limits.max_header_bytes, 1000);
}

#[test]
fn bad_size_is_named() {
    let err = error("limits:\n  max_body_bytes: lots\n");
    assert_at(&err, "limits.max_body_bytes", 2);
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
