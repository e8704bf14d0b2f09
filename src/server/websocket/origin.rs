//! Which web pages may open a WebSocket to the gateway.
//!
//! Browsers send `Origin` on a WebSocket upgrade but apply no CORS to it:
//! any page a user visits could open a socket with the user's cookies and
//! read the answers (cross-site WebSocket hijacking). So the server checks
//! the origin itself (RFC 6455 §10.2): an upgrade naming an origin is let
//! through when that origin is the gateway's own (the same host and port
//! as `Host`) or one of `cors.allowed_origins` (any, with `"*"`), and
//! refused with 403 otherwise. An upgrade without `Origin` comes from a
//! program, not a page, and is let through.
//!
//! The check runs at the listener, on every request that asks for a
//! WebSocket in any form, so upgrades passed on to a route group's
//! upstream are held to it too; so is the one `Sec-WebSocket-Key` an
//! upgrade must carry.

use std::sync::Arc;

use http::{HeaderMap, header};

use crate::config::CorsOptions;
use crate::error::GatewayError;
use crate::transcode::RequestError;

/// The origins allowed to open WebSockets.
#[derive(Debug, Clone)]
pub(crate) enum Origins {
    /// The gateway's own only: no `cors` configured.
    Own,
    /// The gateway's own and these (`scheme://host[:port]`, lower case).
    Listed(Arc<[String]>),
    /// Any: `cors.allowed_origins: ["*"]`.
    Any,
}

impl Origins {
    pub(crate) fn of(cors: Option<&CorsOptions>) -> Origins {
        let Some(cors) = cors else {
            return Origins::Own;
        };
        if cors.allowed_origins.iter().any(|o| o == "*") {
            return Origins::Any;
        }
        Origins::Listed(cors.allowed_origins.iter().map(|o| normalized(o)).collect())
    }

    /// Checks a request that asks for a WebSocket: its `Origin` allowed
    /// (403 otherwise), at most one `Origin` and one well-formed
    /// `Sec-WebSocket-Key` (400 otherwise), also where the upgrade is
    /// passed on to a route group's upstream.
    pub(crate) fn check_upgrade(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let bad = |name: &str, reason: &str| {
            GatewayError::BadRequest(RequestError::Header {
                name: name.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if headers.get_all(header::ORIGIN).iter().nth(1).is_some() {
            return Err(bad("origin", "more than one Origin header"));
        }
        if !has_valid_key(headers) {
            return Err(bad(
                header::SEC_WEBSOCKET_KEY.as_str(),
                "not one WebSocket key: the base64 of 16 bytes (RFC 6455 §4.1)",
            ));
        }
        self.check(headers).map_err(GatewayError::OriginNotAllowed)
    }

    /// `Err` with the origin, when the upgrade's `Origin` is not allowed.
    fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let shown = || {
            String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(100)
                .collect()
        };
        let Ok(origin) = origin.to_str() else {
            return Err(shown());
        };
        let allowed = match self {
            Origins::Any => true,
            Origins::Listed(list) => {
                list.iter().any(|o| o.eq_ignore_ascii_case(origin)) || is_own(origin, headers)
            }
            Origins::Own => is_own(origin, headers),
        };
        if allowed { Ok(()) } else { Err(shown()) }
    }
}

/// An origin as browsers send it (`https://app.example`): scheme and host
/// in lower case, no trailing `/`. The CORS layer matches the same form, so
/// `https://App.example/` in the config means what it says.
pub(crate) fn normalized(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `Sec-WebSocket-Key` is absent (refused where the upgrade is
/// taken, with the other malformed upgrades) or one base64 of 16 bytes, as
/// RFC 6455 §4.2.1 asks.
fn has_valid_key(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let Some(key) = keys.next() else {
        return true;
    };
    if keys.next().is_some() {
        return false;
    }
    let mut decoded = [0u8; 18];
    let key = key.as_bytes();
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode_slice(key, &mut decoded)
            .is_ok_and(|len| len == 16)
}

/// Whether a request asks for a WebSocket in any way a server or proxy
/// on the way might take: a `websocket` token in `Upgrade`, with any
/// method and whatever else is listed. Wider than what the gateway itself
/// upgrades (a `GET` with `Upgrade: websocket`), so that an upgrade passed
/// on to a route group's upstream is held to the same origins.
pub(crate) fn asks_for_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port the
/// request was sent to (`Host`), the scheme's default port standing for
/// a missing one on either side.
fn is_own(origin: &str, headers: &HeaderMap) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return false,
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let split = |authority: &str| -> Option<(String, String)> {
        let (name, port) = match authority.rfind(':') {
            // An IPv6 literal's colons are inside its brackets.
            Some(colon) if !authority[colon..].contains(']') => {
                (&authority[..colon], &authority[colon + 1..])
            }
            _ => (authority, default),
        };
        if name.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((
            name.to_ascii_lowercase(),
            port.trim_start_matches('0').to_owned(),
        ))
    };
    match (split(authority), split(host)) {
        (Some(origin), Some(host)) => origin == host,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn own_origin_is_the_host_and_port_asked_for() {
        let own = Origins::Own;
        for (host, origin) in [
            ("api.example:8080", "http://api.example:8080"),
            ("API.example", "https://api.example"),
            ("api.example:443", "https://api.example"),
            ("api.example", "http://api.example:80"),
            ("[::1]:8080", "http://[::1]:8080"),
        ] {
            assert!(
                own.check(&headers(host, Some(origin))).is_ok(),
                "{host} {origin}"
            );
        }
        for (host, origin) in [
            ("api.example:8080", "http://evil.example:8080"),
            ("api.example:8080", "http://api.example:8081"),
            ("api.example", "https://api.example:8443"),
            ("api.example", "null"),
            ("api.example", "file://api.example"),
            ("[::1]:8080", "http://[::2]:8080"),
        ] {
            assert!(
                own.check(&headers(host, Some(origin))).is_err(),
                "{host} {origin}"
            );
        }
        // No `Origin`: not a page. Two: refused, whichever comes first.
        assert!(own.check(&headers("api.example", None)).is_ok());
        let mut two = headers("api.example", Some("http://api.example"));
        two.append(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(matches!(
            own.check_upgrade(&two),
            Err(GatewayError::BadRequest(_))
        ));
    }

    #[test]
    fn websocket_asked_for_in_any_form() {
        let mut headers = HeaderMap::new();
        assert!(!asks_for_websocket(&headers));
        for value in ["websocket", "WebSocket", "foo, websocket", "websocket ,h2c"] {
            headers.insert(header::UPGRADE, value.parse().unwrap());
            assert!(asks_for_websocket(&headers), "{value}");
        }
        headers.insert(header::UPGRADE, "h2c".parse().unwrap());
        assert!(!asks_for_websocket(&headers));
    }

    #[test]
    fn listed_origins_and_any() {
        let cors = |origins: &[&str]| CorsOptions {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: std::time::Duration::from_secs(1),
        };
        let listed = Origins::of(Some(&cors(&["https://App.example"])));
        let host = "api.example:8080";
        assert!(
            listed
                .check(&headers(host, Some("https://app.example")))
                .is_ok()
        );
        assert!(
            listed
                .check(&headers(host, Some("http://api.example:8080")))
                .is_ok()
        );
        assert!(
            listed
                .check(&headers(host, Some("https://evil.example")))
                .is_err()
        );
        let any = Origins::of(Some(&cors(&["*"])));
        assert!(
            any.check(&headers(host, Some("https://evil.example")))
                .is_ok()
        );
    }
}
