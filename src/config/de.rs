//! Deserializers that validate while parsing, so YAML errors point at the
//! offending line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// A duration such as `5s`, `250ms` or `1m 30s`, or a number of seconds;
/// at least [`MIN_DURATION`] (every duration in the config is a timeout,
/// interval or period, none of which means anything at zero, and the
/// timers behind them count whole milliseconds), and at most
/// [`MAX_DURATION`].
struct Seconds(Duration);

/// The shortest duration the config takes: one millisecond, its smallest
/// unit. Shorter deadlines fail every call and shorter intervals spin.
const MIN_DURATION: Duration = Duration::from_millis(1);

/// The longest duration the config takes: ten years (of 365.25 days, as
/// `10 years` reads). Every duration
/// becomes a point in time (a deadline, the next tick) by adding it to
/// the clock, which overflows for the largest ones; a longer timeout
/// means nothing a shorter one does not.
const MAX_DURATION: Duration = Duration::from_secs(315_576_000);

/// The refusal of a duration past [`MAX_DURATION`], `shown` as written.
fn too_long(shown: impl fmt::Display) -> String {
    format!(
        "{shown} is too long: at most 10 years ({}s)",
        MAX_DURATION.as_secs()
    )
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Seconds, D::Error> {
        let seconds = de.deserialize_any(SecondsVisitor)?;
        if seconds.0.is_zero() {
            return Err(D::Error::custom(
                "must be above zero (a zero timeout would fail every call, a zero interval spin); give a positive duration",
            ));
        }
        in_range(seconds.0).map_err(D::Error::custom)?;
        Ok(seconds)
    }
}

/// Checks a duration above zero against [`MIN_DURATION`] and
/// [`MAX_DURATION`].
fn in_range(duration: Duration) -> Result<(), String> {
    if duration < MIN_DURATION {
        return Err(format!(
            "{duration:?} is below 1ms, the shortest duration the config takes (a timeout that short fails every call, an interval that short spins)"
        ));
    }
    if duration > MAX_DURATION {
        return Err(too_long(humantime::format_duration(duration)));
    }
    Ok(())
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like 5s or 250ms, or a number of seconds")
    }

    fn visit_u64<E: Error>(self, secs: u64) -> Result<Seconds, E> {
        Ok(Seconds(Duration::from_secs(secs)))
    }

    fn visit_i64<E: Error>(self, secs: i64) -> Result<Seconds, E> {
        u64::try_from(secs)
            .map(|s| Seconds(Duration::from_secs(s)))
            .map_err(|_| E::custom(format!("`{secs}` is not a duration: it is negative")))
    }

    fn visit_f64<E: Error>(self, secs: f64) -> Result<Seconds, E> {
        // Past what a Duration may hold, but a number of seconds all the
        // same: the same answer as any other duration too long.
        if secs.is_finite() && secs > MAX_DURATION.as_secs_f64() {
            return Err(E::custom(too_long(format_args!("{secs}s"))));
        }
        Duration::try_from_secs_f64(secs)
            .map(Seconds)
            .map_err(|_| E::custom(format!("`{secs}` is not a duration like 5s or 250ms")))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Seconds, E> {
        parse_duration(text).map(Seconds).map_err(E::custom)
    }
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    Seconds::deserialize(de).map(|s| s.0)
}

/// A grace period: a [`duration`], or zero (`0`, `0s`), which is one too:
/// not waiting at all.
pub(super) fn grace<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let Seconds(grace) = de.deserialize_any(SecondsVisitor)?;
    if !grace.is_zero() {
        in_range(grace).map_err(D::Error::custom)?;
    }
    Ok(grace)
}

/// A duration as the config and the command line write it: `250ms`,
/// `5s`, `1m 30s`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        // `"5"`, quoted in YAML, is the number of seconds it reads as.
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("`{text}` is not a number of seconds at or above zero"));
    }
    // humantime reads `M` as a month: one slip of the shift key from
    // minutes, and a month has no one length anyway.
    let units: Vec<&str> = text
        .split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .filter(|unit| !unit.is_empty())
        .collect();
    if units
        .iter()
        .any(|unit| matches!(*unit, "M" | "month" | "months"))
    {
        return Err(format!(
            "`{text}` counts months, which have no fixed length; give days (30d), or minutes with a lowercase m"
        ));
    }
    check_units(text, &units)?;
    humantime::parse_duration(text).map_err(|_| {
        format!("`{text}` is not a duration: a number and a unit (ms, s, m, h, d), e.g. 250ms, 5s or 1m 30s")
    })
}

/// The units of a duration such as `1m 30s`: none below milliseconds,
/// the config's smallest unit, and each at most once, largest first. A
/// sum written otherwise (`1s 1s`, `30s 1m`) is more likely a slip than
/// meant, and no duration needs it.
fn check_units(text: &str, units: &[&str]) -> Result<(), String> {
    let mut last: Option<(u8, &str)> = None;
    for &unit in units {
        let Some(rank) = unit_rank(unit) else {
            // Not a unit humantime knows either: its own error follows.
            continue;
        };
        if rank == 0 {
            return Err(format!(
                "`{text}` counts {unit}, below ms, the smallest unit the config takes; give at least 1ms"
            ));
        }
        if let Some((before, written)) = last
            && rank >= before
        {
            let why = if rank == before {
                format!("`{written}` and `{unit}` count the same unit")
            } else {
                format!("`{unit}` comes after the smaller `{written}`")
            };
            return Err(format!(
                "`{text}` is not a duration: {why}; give each unit once, largest first, e.g. 1m 30s"
            ));
        }
        last = Some((rank, unit));
    }
    Ok(())
}

/// How large a unit humantime reads is, from 0 (below a millisecond) up;
/// `None` for a word it does not read as a unit.
fn unit_rank(unit: &str) -> Option<u8> {
    Some(match unit {
        "nanos" | "nsec" | "ns" | "usec" | "us" | "\u{b5}s" | "\u{3bc}s" => 0,
        "millis" | "msec" | "ms" => 1,
        "seconds" | "second" | "secs" | "sec" | "s" => 2,
        "minutes" | "minute" | "mins" | "min" | "m" => 3,
        "hours" | "hour" | "hrs" | "hr" | "h" => 4,
        "days" | "day" | "d" => 5,
        "weeks" | "week" | "w" => 6,
        "years" | "year" | "y" => 7,
        _ => return None,
    })
}

/// A listen address: an IP address and a port, with a refusal that says
/// what to write for the forms people try first (`:8080`, `localhost:8080`,
/// `8080`).
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let example = |port: &str| {
        format!(
            "for port {port} on every interface write 0.0.0.0:{port} (or [::]:{port}), for this machine only 127.0.0.1:{port}"
        )
    };
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "`{text}` is not a listen address: drop `{scheme}://`, an address is an IP address and a port, e.g. 127.0.0.1:8080"
        ));
    }
    if !text.starts_with('[') && text.matches(':').count() > 1 {
        return Err(format!(
            "`{text}` is not a listen address: an IPv6 address goes in brackets before its port, e.g. [::1]:8080 or [::]:8080"
        ));
    }
    let why = match text.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            if host.is_empty() {
                format!("an address needs its IP address: {}", example(port))
            } else {
                format!(
                    "host names are not looked up for listening, give an IP address: {}",
                    example(port)
                )
            }
        }
        None if text.parse::<u16>().is_ok() => {
            format!("an address needs its IP address: {}", example(text))
        }
        _ => "give an IP address and a port, e.g. 127.0.0.1:8080 or [::1]:8080".to_owned(),
    };
    Err(format!("`{text}` is not a listen address: {why}"))
}

/// A listen address in the config (see [`listen_addr`]).
pub(super) fn listen<'de, D: Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(de)?;
    listen_addr(&text).map_err(D::Error::custom)
}

/// A listen address or nothing (see [`listen_addr`]).
pub(super) fn opt_listen<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SocketAddr>, D::Error> {
    let Some(text) = Option::<String>::deserialize(de)? else {
        return Ok(None);
    };
    listen_addr(&text).map(Some).map_err(D::Error::custom)
}

/// A duration, or nothing (`null` or no key).
pub(super) fn opt_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    Option::<Seconds>::deserialize(de).map(|s| s.map(|s| s.0))
}

/// Durations by method name (`pkg.Service/Method`).
pub(super) fn duration_map<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<String, Duration>, D::Error> {
    struct Methods;

    impl<'de> Visitor<'de> for Methods {
        type Value = BTreeMap<String, Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from pkg.Service/Method to a duration")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(MethodName(method)) = map.next_key()? {
                let Seconds(timeout) = map.next_value()?;
                out.insert(method, timeout);
            }
            Ok(out)
        }
    }

    de.deserialize_map(Methods)
}

/// Query parameter names to ignore, by method name or `*`.
pub(super) fn query_ignores<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct Ignores;

    impl<'de> Visitor<'de> for Ignores {
        type Value = BTreeMap<String, Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from `*` or pkg.Service/Method to query parameter names")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if key != "*" && !is_method_name(&key) {
                    return Err(A::Error::custom(format!(
                        "`{key}` is neither `*` nor a method name (pkg.Service/Method)"
                    )));
                }
                let names: Vec<String> = map.next_value()?;
                out.insert(key, names);
            }
            Ok(out)
        }
    }

    de.deserialize_map(Ignores)
}

/// A key checked while it is read, so the error points at it.
struct MethodName(String);

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<MethodName, D::Error> {
        let name = String::deserialize(de)?;
        if !is_method_name(&name) {
            return Err(D::Error::custom(format!(
                "`{name}` is not a method name (pkg.Service/Method)"
            )));
        }
        Ok(MethodName(name))
    }
}

/// `pkg.Service/Method`.
pub(crate) fn is_method_name(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(service, method)| is_dotted_name(service) && is_dotted_name(method))
}

/// `pkg.Service`, `pkg.*` or `*`.
pub(crate) fn is_service_pattern(pattern: &str) -> bool {
    pattern == "*" || is_dotted_name(pattern.strip_suffix(".*").unwrap_or(pattern))
}

fn is_dotted_name(name: &str) -> bool {
    name.split('.').all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Service names and `pkg.*` patterns.
pub(super) fn services<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    struct Services;

    impl<'de> Visitor<'de> for Services {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of service names (pkg.Service) or patterns (pkg.*)")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(service) = seq.next_element::<String>()? {
                if !is_service_pattern(&service) {
                    return Err(A::Error::custom(format!(
                        "`{service}` is not a service name (pkg.Service) or pattern (pkg.*)"
                    )));
                }
                out.push(service);
            }
            Ok(out)
        }
    }

    de.deserialize_seq(Services)
}

/// A byte size: a number, or a number with `KiB`, `MiB`, `GiB` (or `KB`,
/// `MB`, `GB`, powers of ten).
pub(super) fn size<'de, D: Deserializer<'de>>(de: D) -> Result<usize, D::Error> {
    struct Size;

    impl Visitor<'_> for Size {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like 4194304, 4MiB or 64KiB")
        }

        fn visit_u64<E: Error>(self, n: u64) -> Result<usize, E> {
            usize::try_from(n).map_err(E::custom)
        }

        fn visit_i64<E: Error>(self, n: i64) -> Result<usize, E> {
            usize::try_from(n)
                .map_err(|_| E::custom(format!("`{n}` is not a size: it is negative")))
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<usize, E> {
            parse_size(text).ok_or_else(|| {
                E::custom(format!(
                    "`{text}` is not a size like 4194304, 4MiB or 64KiB"
                ))
            })
        }
    }

    de.deserialize_any(Size)
}

fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits.parse().ok()?;
    // Units in any case: `64kib` and `4mb` mean what they say.
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A gRPC target: an `http://` or `https://` URL with a host, and
/// nothing after its port (see [`check_grpc_url`]).
pub(super) fn grpc_url<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    let text = String::deserialize(de)?;
    check_grpc_url(&text).map_err(D::Error::custom)?;
    Ok(text)
}

/// A list of [`grpc_url`]s.
pub(super) fn grpc_urls<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(de)?;
    for text in &list {
        check_grpc_url(text).map_err(D::Error::custom)?;
    }
    Ok(list)
}

/// Checks that `text` is a gRPC target: a URL as [`check_url`] takes it,
/// with no path (`/` aside), query or fragment. A gRPC call goes to
/// `/package.Service/Method` on the target's host and port, whatever the
/// URL's path: `http://host:50051/api` would call `/pkg.S/M`, not
/// `/api/pkg.S/M`, and the query and fragment have nowhere to go.
pub(crate) fn check_grpc_url(text: &str) -> Result<(), String> {
    check_url(text)?;
    // The authority ends at the first `/`, `?` or `#` after the scheme.
    let after_scheme = text.find("://").map_or(0, |at| at + 3);
    let Some(end) = text[after_scheme..]
        .find(['/', '?', '#'])
        .map(|at| after_scheme + at)
    else {
        return Ok(());
    };
    let (target, rest) = text.split_at(end);
    if rest == "/" {
        return Ok(());
    }
    let (unfragmented, fragment) = match rest.split_once('#') {
        Some((before, _)) => (before, true),
        None => (rest, false),
    };
    let (path, query) = match unfragmented.split_once('?') {
        Some((path, _)) => (path, true),
        None => (unfragmented, false),
    };
    let parts: Vec<&str> = [
        (!matches!(path, "" | "/"), "path"),
        (query, "query"),
        (fragment, "fragment"),
    ]
    .into_iter()
    .filter_map(|(has, part)| has.then_some(part))
    .collect();
    let (what, it) = match parts.as_slice() {
        [one] => ((*one).to_owned(), "it"),
        [first @ .., last] => (format!("{} and {last}", first.join(", ")), "they"),
        [] => return Ok(()),
    };
    // A query may carry a key: never shown, here either.
    let (text, rest) = (without_query(text), without_query(rest));
    Err(format!(
        "`{text}` has a {what} (`{rest}`), which a gRPC target does not have: calls go to /package.Service/Method on its host and port, so {it} would be dropped; write `{target}`"
    ))
}

/// `text` with its query and fragment written `?...` (or `#...`).
fn without_query(text: &str) -> std::borrow::Cow<'_, str> {
    match text.find(['?', '#']) {
        Some(at) => format!("{}{}...", &text[..at], &text[at..=at]).into(),
        None => text.into(),
    }
}

/// Checks that `text` is an `http://` or `https://` URL with a host.
pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let parsed = text.parse::<http::Uri>();
    // A query may carry a key (`?api_key=...`): never shown.
    let shown = without_query(text);
    let uri = parsed.map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
    // The `http` crate reads a port over 65535 as none at all (the
    // scheme's default would be used): refused here.
    let port = uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p != 0)
    {
        return Err(format!("`{shown}` has port {port}, not one of 1 to 65535"));
    }
    // `user:password@`: never sent (gRPC and the proxied calls authenticate
    // with headers), and the URL is named in errors that clients see.
    if let Some(authority) = uri.authority()
        && let Some((_, host)) = authority.as_str().rsplit_once('@')
    {
        let shown = shown.replacen(authority.as_str(), &format!("…@{host}"), 1);
        return Err(format!(
            "`{shown}` has credentials before its host, which the gateway does not send and would show in error messages: remove them (send credentials as headers)"
        ));
    }
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(format!(
            "`{shown}` is not an http:// or https:// URL with a host"
        )),
    }
}

/// DNS servers, each an IP address and a port (`127.0.0.1:8600`,
/// `[::1]:53`).
pub(super) fn dns_servers<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SocketAddr>, D::Error> {
    let servers = Vec::<DnsServer>::deserialize(de)?;
    Ok(servers.into_iter().map(|DnsServer(addr)| addr).collect())
}

/// One entry of [`dns_servers`], checked where it is written.
struct DnsServer(SocketAddr);

impl<'de> Deserialize<'de> for DnsServer {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<DnsServer, D::Error> {
        let text = String::deserialize(de)?;
        parse_dns_server(&text)
            .map(DnsServer)
            .map_err(D::Error::custom)
    }
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!(
                "`{text}` has port 0; give the port the DNS server listens on"
            ));
        }
        return Ok(addr);
    }
    if text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        return Err(format!(
            "`{text}` has no port; write a DNS server as ip:port, like 127.0.0.1:53 or [::1]:53"
        ));
    }
    Err(format!(
        "`{text}` is not an IP address and port like 127.0.0.1:8600 or [::1]:53 \
         (a DNS server is given by address: its own name would need a resolver)"
    ))
}

/// `name` as a header name, lower-cased; refused with the reason when it
/// is none, a pseudo-header (`:authority`) among them.
fn to_header_name(name: &str) -> Result<HeaderName, String> {
    if name.starts_with(':') {
        return Err(format!(
            "`{name}` is an HTTP/2 pseudo-header (the request's method, scheme, authority or path), not a header a request can set; name an ordinary header"
        ));
    }
    HeaderName::try_from(name.to_ascii_lowercase())
        .map_err(|_| format!("`{name}` is not a header name"))
}

/// HTTP header names, lower-cased.
pub(super) fn header_names<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<HeaderName>, D::Error> {
    struct Names;

    impl<'de> Visitor<'de> for Names {
        type Value = Vec<HeaderName>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of header names")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                out.push(to_header_name(&name).map_err(A::Error::custom)?);
            }
            Ok(out)
        }
    }

    de.deserialize_seq(Names)
}

/// One HTTP header name, lower-cased.
pub(super) fn header_name<'de, D: Deserializer<'de>>(de: D) -> Result<HeaderName, D::Error> {
    let name = String::deserialize(de)?;
    to_header_name(&name).map_err(D::Error::custom)
}

/// An optional [`header_name`].
pub(super) fn opt_header_name<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<HeaderName>, D::Error> {
    header_name(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("64kib"), Some(64 << 10));
        assert_eq!(parse_size("4 mib"), Some(4 << 20));
        assert_eq!(parse_size("3kB"), Some(3_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("4TiB"), None);
    }

    #[test]
    fn dns_servers() {
        assert_eq!(
            parse_dns_server("127.0.0.1:8600"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8600)))
        );
        assert_eq!(
            parse_dns_server("[::1]:53"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53)))
        );
        for (bad, says) in [
            ("10.0.0.2", "no port"),
            ("[::1]", "no port"),
            ("consul:8600", "not an IP address"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:70000", "not an IP address"),
        ] {
            let err = parse_dns_server(bad).unwrap_err();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn urls_with_credentials_are_refused_without_showing_them() {
        for bad in [
            "http://admin:s3cret@127.0.0.1:50999",
            "https://bob@api.test/x",
            "http://a:b@c@host.test",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains("credentials"), "{err}");
            for secret in ["s3cret", "bob", "a:b"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        assert!(check_url("http://127.0.0.1:50999/p").is_ok());
    }

    #[test]
    fn a_refused_urls_query_is_not_shown() {
        for bad in [
            "http://u:p@127.0.0.1:1/j?api_key=SECRET",
            "ftp://host.test/j?api_key=SECRET",
            "http://host.test:99999/j?api_key=SECRET#f",
            "http:///j?api_key=SECRET",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(!err.contains("SECRET") && err.contains("?..."), "{err}");
        }
        // A gRPC target has no place for a query: refused, still unseen.
        for bad in [
            "http://127.0.0.1:4317/?token=SECRET",
            "http://127.0.0.1:4317?token=SECRET",
            "http://127.0.0.1:4317/v1#SECRET",
        ] {
            let err = check_grpc_url(bad).unwrap_err();
            assert!(!err.contains("SECRET") && err.contains("..."), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        for months in ["1M", "2 months", "1month 3d"] {
            let err = parse_duration(months).unwrap_err();
            assert!(err.contains("months"), "{err}");
        }
        assert_eq!(parse_duration(" 5 "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        let err = parse_duration("3 parsecs").unwrap_err();
        assert!(err.contains("e.g. 250ms"), "{err}");
        assert!(!err.contains("variations"), "{err}");
        assert_eq!(
            parse_duration("1h 2m 3s 4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
    }

    #[test]
    fn durations_take_no_unit_below_ms_and_each_unit_once_largest_first() {
        for (bad, says) in [
            ("1ns", "below ms"),
            ("500us", "below ms"),
            ("5\u{b5}s", "below ms"),
            ("1s 5nsec", "below ms"),
            ("1s 1s", "count the same unit"),
            ("1m 2min", "count the same unit"),
            ("30s 1m", "comes after the smaller `s`"),
            ("5ms 1h", "comes after the smaller `ms`"),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn listen_addresses_say_what_to_write() {
        assert_eq!(
            listen_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(
            listen_addr("[::1]:8080"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8080)))
        );
        for (bad, says) in [
            (":8080", "0.0.0.0:8080"),
            ("8080", "127.0.0.1:8080"),
            ("localhost:8080", "host names are not looked up"),
            ("127.0.0.1", "an IP address and a port"),
            ("127.0.0.1:99999", "an IP address and a port"),
            ("", "an IP address and a port"),
            ("::1:8080", "in brackets"),
            ("http://127.0.0.1:8080", "drop `http://`"),
        ] {
            let err = listen_addr(bad).unwrap_err();
            assert!(
                err.contains(says) && err.contains(&format!("`{bad}`")),
                "{bad}: {err}"
            );
        }
    }
}
