//! What one etcd value says about an instance, and its addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Deserialize;

use super::super::Instance;

/// A value that does not describe an instance.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValueError {
    /// Not UTF-8 text.
    #[error("the value is not UTF-8 text")]
    NotText,
    /// Starts like JSON but is not the expected object (or string).
    #[error("the value is not a valid instance object: {0}")]
    Json(#[source] serde_json::Error),
    /// The address is not `host:port`.
    #[error("address `{address}`: {reason}")]
    Address {
        /// The address as written.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A weight of zero.
    #[error("weight must be at least 1")]
    Weight,
    /// A zone too long or with control characters to be a zone's name.
    #[error(
        "zone `{0}` is not a zone name (at most 64 characters, none of them control characters)"
    )]
    Zone(String),
}

/// The longest zone name taken: zones are short labels (`eu-1a`), and
/// each is logged and shown in `/admin/status`.
const MAX_ZONE: usize = 64;

/// `text` as a warning shows it: its first 64 characters.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An instance as registered, before its host name (if any) is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) host: Host,
    pub(crate) port: u16,
    pub(crate) weight: u32,
    pub(crate) zone: Option<Arc<str>>,
}

/// The host part of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// An IP literal: no resolution, no TLS name.
    Ip(IpAddr),
    /// A name, resolved to every address it has.
    Name(Arc<str>),
}

/// The JSON form of a value. Members it does not know are ignored, so
/// registrars may store more (version, metadata) next to these.
#[derive(Deserialize)]
struct Record {
    address: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    zone: Option<String>,
}

impl Registration {
    /// Reads a value: a JSON object `{"address": "host:port", "weight": 2,
    /// "zone": "eu-1a"}` (weight and zone optional), a JSON string, or the
    /// bare text `host:port`. Surrounding white space is ignored.
    pub(crate) fn parse(value: &[u8]) -> Result<Registration, ValueError> {
        let text = std::str::from_utf8(value)
            .map_err(|_| ValueError::NotText)?
            .trim();
        let record = match text.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<Record>(text).map_err(ValueError::Json)?,
            Some(b'"') => Record {
                address: serde_json::from_str(text).map_err(ValueError::Json)?,
                weight: None,
                zone: None,
            },
            _ => Record {
                address: text.to_owned(),
                weight: None,
                zone: None,
            },
        };
        let (host, port) = split_address(record.address.trim())?;
        let weight = match record.weight {
            Some(0) => return Err(ValueError::Weight),
            Some(weight) => weight,
            None => 1,
        };
        let zone = record.zone.filter(|z| !z.is_empty());
        if let Some(zone) = &zone
            && (zone.chars().count() > MAX_ZONE || zone.chars().any(char::is_control))
        {
            return Err(ValueError::Zone(shortened(zone)));
        }
        let zone = zone.map(Arc::from);
        Ok(Registration {
            host,
            port,
            weight,
            zone,
        })
    }

    /// The instance at `address`, one of this registration's addresses.
    pub(crate) fn instance(&self, address: IpAddr) -> Instance {
        Instance {
            address: SocketAddr::new(address, self.port),
            server_name: match &self.host {
                Host::Ip(_) => None,
                Host::Name(name) => Some(name.clone()),
            },
            weight: self.weight,
            zone: self.zone.clone(),
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6 literals).
fn split_address(address: &str) -> Result<(Host, u16), ValueError> {
    let bad = |reason| ValueError::Address {
        // Named in a warning: a registry value can be of any length.
        address: shortened(address),
        reason,
    };
    if address.contains("://") {
        return Err(bad(
            "a URL; the address is host:port (the upstream's URL gives the scheme)",
        ));
    }
    if let Ok(socket) = address.parse::<SocketAddr>() {
        if socket.port() == 0 {
            return Err(bad("port 0"));
        }
        return Ok((Host::Ip(socket.ip()), socket.port()));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(bad("no port (expected host:port)"));
    };
    let port = Some(port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains(':') || host.starts_with('[') {
        return Err(bad(
            "not an IPv6 address in brackets (expected [addr]:port)",
        ));
    }
    let is_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !is_name || host.starts_with('.') {
        return Err(bad("not a host name"));
    }
    Ok((Host::Name(Arc::from(host)), port))
}
