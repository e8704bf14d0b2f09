//! Bearer JWT authentication at the edge (`auth:` in config).
//!
//! Every face (REST, gRPC, gRPC-Web, Connect, WebSocket upgrades, and
//! requests proxied under a plain-HTTP route group) asks the snapshot's
//! [`Auth`] before a call goes upstream: with the route's index (REST,
//! WebSocket), the gRPC path (gRPC, gRPC-Web, Connect) or the group's
//! index (proxied groups, which name no gRPC method: their own `auth` and
//! `scopes` say what they need). Whether a call needs a token was
//! resolved when the snapshot was built; a call that needs none is not
//! verified at all. A refusal is a [`GatewayError::Auth`], mapped where
//! every error is.
//!
//! Claims named in `forward_claims` go upstream as metadata (as headers,
//! to a proxied service); the same names are dropped from what the client
//! sent, on every call, so that a backend can trust them.

mod config;
mod error;
mod keys;
mod remote;
mod rules;
mod scopes;

pub(crate) use config::is_scope;
pub use config::{AuthConfig, PemKey};
pub use error::AuthError;

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use prost_reflect::DescriptorPool;
use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;

use crate::config::{ConfigError, RouteGroupConfig};
use crate::error::GatewayError;
use crate::route::RouteTable;
use keys::KeySet;
use remote::Remote;
use rules::{Need, Rules};

/// A snapshot's authentication: keys, rules and forwarded claims, read
/// and resolved once.
#[derive(Debug)]
pub struct Auth {
    keys: KeySet,
    /// Keys from `jwks_url`.
    remote: Option<Remote>,
    rules: Rules,
    /// Claim name, and the metadata name it goes upstream under.
    forward: Box<[(Box<str>, HeaderName)]>,
}

/// What a call that passed carries upstream: the claims to forward (none
/// when it needed no token), to be set after the client's own values of
/// those names are dropped.
#[derive(Debug)]
pub(crate) struct Admitted<'a> {
    auth: Option<&'a Auth>,
    values: Vec<(&'a HeaderName, HeaderValue)>,
}

impl Auth {
    /// The authentication `config` asks for, if any; a bad setting or key
    /// file fails like any other setting (a reload keeps the old
    /// snapshot).
    /// `previous`: the snapshot's before a reload, whose JWKS fetched
    /// from `jwks_url` is used until the next fetch.
    pub(crate) fn of(
        config: &crate::Config,
        routes: &RouteTable,
        pool: &DescriptorPool,
        previous: Option<&Auth>,
    ) -> Result<Option<Auth>, ConfigError> {
        let Some(auth) = &config.auth else {
            return Ok(None);
        };
        Auth::build(auth, routes, pool, &config.routes, previous)
            .map(Some)
            .map_err(|(key, message)| ConfigError::Setting {
                origin: config.origin.clone(),
                key,
                message,
            })
    }

    /// Reads the keys and resolves the rules for `routes`, `pool` and the
    /// route `groups`; a failure is the setting at fault
    /// (`auth.jwks_file`, ...) and what is wrong with it.
    pub(crate) fn build(
        config: &AuthConfig,
        routes: &RouteTable,
        pool: &DescriptorPool,
        groups: &[RouteGroupConfig],
        previous: Option<&Auth>,
    ) -> Result<Auth, (String, String)> {
        let keys = KeySet::load(config)?;
        let remote = match &config.jwks_url {
            Some(url) => {
                let previous = previous.and_then(|p| p.remote.as_ref());
                let remote = Remote::start(config, url, previous)
                    .map_err(|why| ("auth.jwks_url".to_owned(), why))?;
                Some(remote)
            }
            None => None,
        };
        let forward = config
            .forward_claims
            .iter()
            .map(|(claim, name)| {
                config::metadata_name(name)
                    .map(|name| (claim.as_str().into(), name))
                    .map_err(|why| ("auth.forward_claims".to_owned(), why))
            })
            .collect::<Result<_, _>>()?;
        Ok(Auth {
            keys,
            remote,
            rules: Rules::build(config, routes, pool, groups),
            forward,
        })
    }

    /// Checks a call on REST route `route`.
    pub(crate) fn route<'a>(
        auth: Option<&'a Auth>,
        route: usize,
        headers: &HeaderMap,
    ) -> Result<Admitted<'a>, GatewayError> {
        match auth {
            None => Ok(Admitted::NONE),
            Some(auth) => auth.admit(auth.rules.route(route), headers),
        }
    }

    /// Checks a call to the gRPC path `path` (`/pkg.Service/Method`).
    pub(crate) fn path<'a>(
        auth: Option<&'a Auth>,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Admitted<'a>, GatewayError> {
        match auth {
            None => Ok(Admitted::NONE),
            Some(auth) => auth.admit(auth.rules.path(path), headers),
        }
    }

    /// Checks a request under the proxied route group at index `group`
    /// (in `routes:`). `OPTIONS` requests (CORS preflights among them)
    /// need no token, as on the other faces: browsers send preflights
    /// without credentials. The forwarded claims' names are dropped from
    /// every request all the same.
    pub(crate) fn group<'a>(
        auth: Option<&'a Auth>,
        group: usize,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Admitted<'a>, GatewayError> {
        match auth {
            None => Ok(Admitted::NONE),
            // A browser's preflight carries no credentials. Any other
            // OPTIONS (an upgrade among them) reaches the service like
            // any request, so it needs what they need; a preflight
            // reaches it only when the gateway has no `cors` of its own.
            Some(auth) if method == Method::OPTIONS && crate::server::is_preflight(headers) => {
                auth.admit(Need::Nothing, headers)
            }
            Some(auth) => auth.admit(auth.rules.group(group), headers),
        }
    }

    fn admit(&self, need: Need, headers: &HeaderMap) -> Result<Admitted<'_>, GatewayError> {
        let mut admitted = Admitted {
            auth: Some(self),
            values: Vec::new(),
        };
        if need == Need::Nothing {
            return Ok(admitted);
        }
        let claims = self.verify(need, headers).inspect_err(|err| {
            tracing::debug!(reason = %err, "Request refused: bearer token missing, invalid or short of a scope");
        })?;
        if let Some(claims) = claims {
            admitted.values = self
                .forward
                .iter()
                .filter_map(|(claim, name)| Some((name, claim_value(claims.get(&**claim)?)?)))
                .collect();
        }
        Ok(admitted)
    }

    /// Verifies the bearer token in `headers` and its scopes; the claims
    /// when some are to be forwarded or scopes checked.
    fn verify(
        &self,
        need: Need,
        headers: &HeaderMap,
    ) -> Result<Option<Map<String, Value>>, AuthError> {
        let token = bearer(headers)?;
        if self.forward.is_empty() && need == Need::Token {
            self.check::<serde::de::IgnoredAny>(token)?;
            return Ok(None);
        }
        let claims: Map<String, Value> = self.check(token)?;
        if let Need::Scopes(index) = need {
            let held = scopes::Held::of(&claims)?;
            if let Some(missing) = self
                .rules
                .scope_set(index)
                .iter()
                .find(|s| !held.contains(s))
            {
                return Err(AuthError::Scope(missing.clone()));
            }
        }
        Ok(Some(claims))
    }
}

impl Auth {
    /// Verifies `token` with the files' keys and those fetched last.
    fn check<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        let Some(remote) = &self.remote else {
            return self.keys.verify(None, token);
        };
        // Before the first fetch, a token no file key takes may be for a
        // key at the URL: not judged yet.
        remote.with(|fetched| match self.keys.verify(fetched, token) {
            Err(AuthError::UnknownKid | AuthError::NoKid | AuthError::Algorithm(_))
                if fetched.is_none() =>
            {
                Err(AuthError::NotFetched)
            }
            other => other,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case).
///
/// Limitation: the header is the only source, on WebSocket upgrades too,
/// which a browser's `WebSocket` cannot send; a token in the query or in
/// `Sec-WebSocket-Protocol` is not taken (it would end up in logs, or
/// need echoing back in the handshake).
///
/// A second `Authorization` header, or a `Grpc-Metadata-Authorization`
/// (which becomes `authorization` metadata too), is refused: only one
/// token is verified, and the backend would see the other one beside it
/// (and may read that one).
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() || headers.contains_key(SMUGGLED) {
        return Err(AuthError::Repeated);
    }
    let text = value.to_str().map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

/// The header that would reach the backend as a second `authorization`.
const SMUGGLED: &str = "grpc-metadata-authorization";

/// A string or number claim as a metadata value; other types, strings
/// that are not printable ASCII and strings that start or end with a space
/// (which HTTP/2 forbids in a field value, RFC 9113 §8.2.1) are not
/// forwarded.
/// Whether header name `key` is `name` with some `-` written `_`.
fn same_but_underscores(key: &str, name: &str) -> bool {
    key.len() == name.len()
        && key
            .bytes()
            .zip(name.bytes())
            .all(|(k, n)| k == n || (k == b'_' && n == b'-'))
}

fn claim_value(value: &Value) -> Option<HeaderValue> {
    let value = match value {
        Value::String(text) => HeaderValue::from_str(text).ok()?,
        Value::Number(number) => HeaderValue::from_str(&number.to_string()).ok()?,
        _ => return None,
    };
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    let trimmed = bytes.first() != Some(&b' ') && bytes.last() != Some(&b' ');
    (printable && trimmed).then_some(value)
}

impl<'a> Admitted<'a> {
    /// A call on a gateway without `auth`.
    const NONE: Admitted<'static> = Admitted {
        auth: None,
        values: Vec::new(),
    };

    /// Drops the forwarded claims' names from `headers` (what the client
    /// sent) and sets the claims: for gRPC calls passed through, and
    /// requests proxied to a plain HTTP service.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        let Some(auth) = self.auth else { return };
        for (_, name) in auth.forward.iter() {
            headers.remove(name);
        }
        // The same names spelt with `_` for `-`, which CGI-style servers
        // (WSGI, PHP, many frameworks on them) read as those names.
        let aliases: Vec<HeaderName> = headers
            .keys()
            .filter(|key| {
                key.as_str().contains('_')
                    && auth
                        .forward
                        .iter()
                        .any(|(_, name)| same_but_underscores(key.as_str(), name.as_str()))
            })
            .cloned()
            .collect();
        for alias in aliases {
            headers.remove(alias);
        }
        for (name, value) in self.values {
            headers.insert(name.clone(), value);
        }
    }

    /// [`Admitted::apply`] on the metadata a call sends.
    pub(crate) fn apply_metadata(self, metadata: &mut MetadataMap) {
        if self.auth.is_none_or(|a| a.forward.is_empty()) {
            return;
        }
        let mut headers = std::mem::take(metadata).into_headers();
        self.apply(&mut headers);
        *metadata = MetadataMap::from_headers(headers);
    }
}
