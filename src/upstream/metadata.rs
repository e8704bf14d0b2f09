//! HTTP headers to gRPC metadata and back.
//!
//! Forwarded: `Authorization`, `traceparent`, `tracestate`,
//! `Grpc-Metadata-<k>` (as `<k>`) and the configured allow-list; `-bin`
//! values are base64 and sent as bytes. Reserved and hop-by-hop names are
//! never forwarded. `X-Forwarded-For` is appended to and `X-Forwarded-Host`
//! set. Backend headers come back as `Grpc-Metadata-<k>`, trailers as
//! `Grpc-Trailer-<k>`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::{
    AsciiMetadataKey, BinaryMetadataKey, BinaryMetadataValue, MetadataMap, MetadataValue,
};

use crate::transcode::{RequestError, text};

const GRPC_METADATA: &str = "grpc-metadata-";

/// Which headers become metadata.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    /// Extra headers forwarded under their own name.
    pub forward: Vec<HeaderName>,
    /// Largest metadata block sent to a backend (431 beyond).
    pub max_bytes: usize,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy {
            forward: Vec::new(),
            max_bytes: 8 << 10,
        }
    }
}

/// Names never sent to or taken from a backend as metadata.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "te" | "content-type"
                | "content-length"
                | "content-encoding"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "transfer-encoding"
                | "upgrade"
                | "host"
                | "http2-settings"
                | "accept-encoding"
                | "trailer"
                | "date"
        )
}

/// Whether `name` can be a gRPC metadata key: lowercase letters,
/// digits, `-`, `_` and `.`, at least one.
pub(crate) fn is_metadata_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// The host a request was sent to, as every upstream gets it in
/// `X-Forwarded-Host`: its `Host`, else the target's authority (HTTP/2
/// clients may send only `:authority`). The listener has already made the
/// two agree where both are there (`server::service`); an empty host, or
/// one that is not visible ASCII, is none.
pub(crate) fn forwarded_host<'a>(
    headers: &'a HeaderMap,
    authority: Option<&'a str>,
) -> Option<&'a str> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority)
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// `-bin` metadata (and `grpc-status-details-bin`) as gRPC's libraries
/// decode it: the standard alphabet, padding optional, no stray trailing
/// bits.
pub(crate) const BIN_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Whether a request's or response's `grpc-encoding` names a
/// compression, so that its messages may be flagged compressed.
pub(crate) fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity")
}

/// The metadata a REST request carries to the backend.
pub fn to_metadata(
    headers: &HeaderMap,
    client: Option<SocketAddr>,
    authority: Option<&str>,
    policy: &HeaderPolicy,
) -> Result<MetadataMap, RequestError> {
    let mut metadata = MetadataMap::with_capacity(4);
    let mut size = 0;
    for (name, value) in headers {
        let header = name.as_str();
        let key = match header {
            "authorization" | "traceparent" | "tracestate" => header,
            _ => match header.strip_prefix(GRPC_METADATA) {
                Some(key) => key,
                None if policy.forward.contains(name) => header,
                None => continue,
            },
        };
        let bad = |reason: &str| RequestError::Header {
            name: header.to_owned(),
            reason: reason.to_owned(),
        };
        // A key is at least one character, and a `-bin` key has a name
        // before its suffix: an empty one is refused like any invalid key,
        // never dropped unseen.
        if key.is_empty() || key == "-bin" {
            return Err(bad(
                "empty gRPC metadata key (the name must follow `Grpc-Metadata-`)",
            ));
        }
        if is_reserved(key) || key == "x-forwarded-for" || key == "x-forwarded-host" {
            continue;
        }
        if !is_metadata_key(key) {
            return Err(bad(
                "not a gRPC metadata key (lowercase letters, digits, `-`, `_` and `.` only)",
            ));
        }
        if key.ends_with("-bin") {
            let text = value.to_str().map_err(|_| bad("not valid base64"))?;
            let bytes = text::decode_base64(text.trim()).map_err(|e| bad(&e))?;
            size += key.len() + bytes.len() + HPACK_ENTRY_OVERHEAD;
            let key = BinaryMetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| bad("not a valid metadata key"))?;
            // Never indexed: a library that parses a `-bin` field
            // (grpcio's load-balancing ones) and fails keeps the failure
            // with the table entry, for every later call on the shared
            // connection that refers to it.
            let mut value = BinaryMetadataValue::from_bytes(&bytes);
            value.set_sensitive(true);
            metadata.append_bin(key, value);
        } else {
            if !value.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b)) {
                return Err(bad(
                    "value is not printable ASCII (use a `-bin` key for other bytes)",
                ));
            }
            size += key.len() + value.len() + HPACK_ENTRY_OVERHEAD;
            let key = AsciiMetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| bad("not a valid metadata key"))?;
            let value = MetadataValue::try_from(value.as_bytes())
                .map_err(|_| bad("value is not printable ASCII"))?;
            metadata.append(key, value);
        }
        if size > policy.max_bytes {
            return Err(RequestError::MetadataTooLarge(policy.max_bytes));
        }
    }
    let list = forwarded_for(headers, client.map(|c| c.ip()));
    let len = list.len();
    if len > 0
        && let Ok(value) = MetadataValue::try_from(list)
    {
        size += "x-forwarded-for".len() + len + HPACK_ENTRY_OVERHEAD;
        metadata.insert("x-forwarded-for", value);
    }
    // A client's own `X-Forwarded-Host` is not trusted.
    if let Some(host) =
        forwarded_host(headers, authority).and_then(|h| MetadataValue::try_from(h).ok())
    {
        size += "x-forwarded-host".len() + host.len() + HPACK_ENTRY_OVERHEAD;
        metadata.insert("x-forwarded-host", host);
    }
    if size > policy.max_bytes {
        return Err(RequestError::MetadataTooLarge(policy.max_bytes));
    }
    Ok(metadata)
}

/// What HTTP/2 header compression counts per header besides name and value
/// (RFC 7541 §4.1), as gRPC servers do when they enforce metadata limits.
const HPACK_ENTRY_OVERHEAD: usize = 32;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `X-Forwarded-For` as every upstream gets it: each line the client sent,
/// in order, joined with `, `, then the client's address (empty without
/// either). Lines that are empty or not visible ASCII are left out.
pub(crate) fn forwarded_for(headers: &HeaderMap, client: Option<IpAddr>) -> String {
    let earlier = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|line| !line.is_empty());
    // Room for the usual list: one address.
    let mut list = String::with_capacity(40);
    for item in earlier {
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(item);
    }
    if let Some(ip) = client {
        if !list.is_empty() {
            list.push_str(", ");
        }
        // Written in place: writing to a `String` cannot fail.
        let _ = write!(list, "{ip}");
    }
    list
}

/// The metadata of an RPC-style request (Connect): every header that is
/// not reserved, under its own name (`-bin` values decoded), plus
/// `X-Forwarded-For` and `X-Forwarded-Host` as for REST.
pub fn rpc_metadata(
    headers: &HeaderMap,
    client: Option<SocketAddr>,
    authority: Option<&str>,
    policy: &HeaderPolicy,
) -> Result<MetadataMap, RequestError> {
    let mut forwarded = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = name.as_str();
        if key.starts_with("connect-")
            || matches!(
                key,
                "accept" | "user-agent" | "origin" | "referer" | "cookie"
            )
            || key.starts_with("access-control-")
            || key.starts_with("sec-")
        {
            continue;
        }
        if let Ok(prefixed) = HeaderName::try_from(format!("{GRPC_METADATA}{key}")) {
            forwarded.append(prefixed, value.clone());
        }
    }
    for name in ["x-forwarded-for", "host"] {
        for value in headers.get_all(name) {
            forwarded.append(name, value.clone());
        }
    }
    // An error names the header as the client sent it, unprefixed.
    to_metadata(&forwarded, client, authority, policy).map_err(|err| match err {
        RequestError::Header { name, reason } => RequestError::Header {
            name: name
                .strip_prefix(GRPC_METADATA)
                .map_or_else(|| name.clone(), str::to_owned),
            reason,
        },
        other => other,
    })
}

/// Adds backend metadata to `out` as `<prefix><key>` headers.
pub fn to_headers(metadata: &MetadataMap, prefix: &str, out: &mut HeaderMap) {
    for (name, value) in metadata.clone().into_headers().iter() {
        if is_reserved(name.as_str()) {
            continue;
        }
        if let Ok(name) = HeaderName::try_from(format!("{prefix}{}", name.as_str())) {
            out.append(name, value.clone());
        }
    }
}

/// Why a `grpc-timeout` that [`parse_grpc_timeout`] refuses is refused,
/// the same on every path that reads the client's one.
pub(crate) const NOT_A_GRPC_TIMEOUT: &str = "not a gRPC timeout such as 500m or 5S";

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a timeout for the `grpc-timeout` header (at most 8 digits).
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let micros = timeout.as_micros();
    if micros < 100_000_000 {
        format!("{}u", micros.max(1))
    } else if timeout.as_millis() < 100_000_000 {
        format!("{}m", timeout.as_millis())
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_round_trip() {
        for (text, dur) in [
            ("5S", Duration::from_secs(5)),
            ("100m", Duration::from_millis(100)),
            ("2H", Duration::from_secs(7200)),
            ("7u", Duration::from_micros(7)),
        ] {
            assert_eq!(
                parse_grpc_timeout(&HeaderValue::from_static(text)),
                Some(dur)
            );
        }
        for bad in ["", "5", "S", "123456789S", "5s", "-5S", "1.5S"] {
            assert_eq!(
                parse_grpc_timeout(&HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
        assert_eq!(format_grpc_timeout(Duration::from_secs(30)), "30000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(3000)), "3000000m");
        assert_eq!(format_grpc_timeout(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn forwards_allowed_and_prefixed_headers_only() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("grpc-metadata-tenant", HeaderValue::from_static("acme"));
        headers.insert(
            "grpc-metadata-trace-ctx-bin",
            HeaderValue::from_static("AAECA/8="),
        );
        headers.insert("grpc-metadata-grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("grpc-metadata-te", HeaderValue::from_static("trailers"));
        headers.insert("x-request-id", HeaderValue::from_static("r1"));
        headers.insert("cookie", HeaderValue::from_static("secret"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("spoofed.test"));
        let policy = HeaderPolicy {
            forward: vec![HeaderName::from_static("x-request-id")],
            ..HeaderPolicy::default()
        };
        let client = "127.0.0.1:9".parse().ok();
        let md = to_metadata(&headers, client, Some("api.test"), &policy).unwrap();
        assert_eq!(md.get("authorization").unwrap(), "Bearer t");
        assert_eq!(md.get("tenant").unwrap(), "acme");
        assert_eq!(
            md.get_bin("trace-ctx-bin")
                .unwrap()
                .to_bytes()
                .unwrap()
                .as_ref(),
            [0, 1, 2, 3, 255]
        );
        assert_eq!(md.get("x-request-id").unwrap(), "r1");
        assert_eq!(md.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(md.get("x-forwarded-host").unwrap(), "api.test");
        assert!(md.get("cookie").is_none());
        assert!(md.get("grpc-timeout").is_none());
        assert!(md.get("te").is_none());
    }

    #[test]
    fn forwarded_for_keeps_every_line_in_order() {
        let mut headers = HeaderMap::new();
        for line in ["1.1.1.1", "2.2.2.2, 3.3.3.3", " ", "4.4.4.4 "] {
            headers.append("x-forwarded-for", HeaderValue::from_static(line));
        }
        let client = "127.0.0.1".parse().ok();
        assert_eq!(
            forwarded_for(&headers, client),
            "1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 127.0.0.1"
        );
        assert_eq!(forwarded_for(&HeaderMap::new(), client), "127.0.0.1");
        assert_eq!(forwarded_for(&HeaderMap::new(), None), "");
    }

    #[test]
    fn empty_keys_are_refused_naming_the_header() {
        for header in ["grpc-metadata-", "grpc-metadata--bin"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                HeaderName::from_static(header),
                HeaderValue::from_static("eA"),
            );
            let err = to_metadata(&headers, None, None, &HeaderPolicy::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "header `{header}`: empty gRPC metadata key (the name must follow `Grpc-Metadata-`)"
                )
            );
        }
    }

    #[test]
    fn bad_binary_header_names_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-metadata-x-bin", HeaderValue::from_static("***"));
        let err = to_metadata(&headers, None, None, &HeaderPolicy::default()).unwrap_err();
        assert!(err.to_string().contains("grpc-metadata-x-bin"), "{err}");
        // Connect sends metadata under its own name: named as sent.
        let mut headers = HeaderMap::new();
        headers.insert("x-bin", HeaderValue::from_static("***"));
        let err = rpc_metadata(&headers, None, None, &HeaderPolicy::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`x-bin`"), "{text}");
        assert!(!text.contains("grpc-metadata-"), "{text}");
    }
}
