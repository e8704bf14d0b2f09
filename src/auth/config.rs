//! The `auth:` section of the config: where the keys are, what a token
//! must claim, which calls need one and which claims go upstream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::config::de;

/// Bearer JWT authentication at the edge.
///
/// # Examples
///
/// ```
/// let config = protogate::Config::from_yaml(
///     "auth:\n  jwks_file: jwks.json\n  issuer: https://issuer.example\n  allow_unauthenticated: [grpc.health.v1.Health/*]\n",
/// )
/// .unwrap();
/// let auth = config.auth.unwrap();
/// assert_eq!(auth.methods, ["*"]);
/// assert_eq!(auth.leeway, std::time::Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A JWKS file (`{"keys": [...]}`): a token's `kid` picks the key; a
    /// token without `kid` is checked with the only key, when there is one.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS fetched over HTTP(S) (an identity provider's
    /// `jwks_uri`), besides or instead of the files: at start, then every
    /// `jwks_refresh`; a failed fetch keeps the keys fetched last.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched again.
    #[serde(default = "default_refresh", deserialize_with = "de::duration")]
    pub jwks_refresh: Duration,
    /// PEM public keys, besides (or instead of) the JWKS file.
    #[serde(default)]
    pub public_keys: Vec<PemKey>,
    /// The `iss` a token must carry (none: any, and `iss` may be absent).
    #[serde(default)]
    pub issuer: Option<String>,
    /// A token's `aud` must name one of these (empty: not checked).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Signature algorithms accepted; empty: each key's own. HMAC (`HS*`)
    /// and `none` are never accepted.
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", deserialize_with = "de::duration")]
    pub leeway: Duration,
    /// Calls that need a token (`pkg.Service/Method`, `pkg.Service/*`,
    /// `pkg.Service`, `pkg.*`, `"*"`).
    #[serde(default = "everything")]
    pub methods: Vec<String>,
    /// Calls among `methods` that need none, in the same syntax.
    #[serde(default)]
    pub allow_unauthenticated: Vec<String>,
    /// Scopes a token must hold (in its `scope` or `scp` claim) for calls
    /// a pattern takes (same syntax as `methods`; the most specific
    /// pattern wins): `{shop.v1.Books/Delete: [books.admin]}`. Missing
    /// one → 403.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
    /// Claims sent to the backend as metadata, by claim name:
    /// `{sub: x-user-id}`. The same names coming from the client are
    /// dropped on every call.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
}

/// A PEM public key (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PemKey {
    /// The PEM file.
    pub file: PathBuf,
    /// The algorithm tokens signed with it use (`RS256`, `ES256`, ...).
    pub algorithm: Algorithm,
    /// The `kid` tokens name it by; a token without `kid` is checked with
    /// the only key, when there is one.
    #[serde(default)]
    pub kid: Option<String>,
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

/// The shortest `jwks_refresh`: each one is a request to the identity
/// provider.
const MIN_REFRESH: Duration = Duration::from_secs(1);

fn everything() -> Vec<String> {
    vec!["*".to_owned()]
}

/// The longest `leeway`: past it an expired token lives on for long.
const MAX_LEEWAY: Duration = Duration::from_secs(600);

impl AuthConfig {
    /// The key files: watched for reloads, and taken relative to the
    /// config file's folder.
    pub(crate) fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.jwks_file
            .iter()
            .chain(self.public_keys.iter().map(|k| &k.file))
    }

    /// [`AuthConfig::files`], to change.
    pub(crate) fn files_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        self.jwks_file
            .iter_mut()
            .chain(self.public_keys.iter_mut().map(|k| &mut k.file))
    }

    /// Settings that cannot work, as (key under `auth.`, what is wrong).
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((format!("auth.{key}"), message));
        if self.jwks_file.is_none() && self.public_keys.is_empty() && self.jwks_url.is_none() {
            return fail(
                "jwks_file",
                "no keys: set jwks_file, jwks_url or public_keys, or no token could ever verify"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.jwks_url
            && let Err(why) = de::check_url(url)
        {
            return fail("jwks_url", why);
        }
        if self.jwks_refresh < MIN_REFRESH {
            return fail(
                "jwks_refresh",
                format!(
                    "{:?} is below 1s: each refresh is a request to the key server",
                    self.jwks_refresh
                ),
            );
        }
        // Limitation: no shared-secret tokens. A gateway holding the
        // secret could mint any token, and backends checking the same
        // tokens would hold it too.
        if let Some(alg) = self.algorithms.iter().find(|a| is_hmac(**a)) {
            return fail(
                "algorithms",
                format!(
                    "{alg:?} is a shared-secret algorithm, which this gateway does not accept: use an asymmetric one (RS256, PS256, ES256, ES384, EdDSA)"
                ),
            );
        }
        if let Some(key) = self.public_keys.iter().find(|k| is_hmac(k.algorithm)) {
            return fail(
                "public_keys",
                format!(
                    "{:?} is a shared-secret algorithm, not a public key's",
                    key.algorithm
                ),
            );
        }
        if self.leeway > MAX_LEEWAY {
            return fail(
                "leeway",
                format!(
                    "{} is above 10m: an expired token would be taken for that long",
                    humantime::format_duration(self.leeway)
                ),
            );
        }
        if matches!(&self.issuer, Some(issuer) if issuer.is_empty()) {
            return fail("issuer", "empty; leave it out to accept any".to_owned());
        }
        if self.audiences.iter().any(String::is_empty) {
            return fail("audiences", "an audience is empty".to_owned());
        }
        // Elsewhere an empty list means every method (`rate_limits`): here
        // it would check no call at all, failing open.
        if self.methods.is_empty() {
            return fail(
                "methods",
                "empty, which would check no call: leave it out (or write [\"*\"]) for every method, or name the methods".to_owned(),
            );
        }
        for (key, patterns) in [
            ("methods", &self.methods),
            ("allow_unauthenticated", &self.allow_unauthenticated),
        ] {
            if let Some(bad) = patterns.iter().find(|p| !is_pattern(p)) {
                return fail(
                    key,
                    format!(
                        "`{bad}` is not a method (pkg.Service/Method), a service's methods (pkg.Service/* or pkg.Service), a package pattern (pkg.*) or \"*\""
                    ),
                );
            }
        }
        for (pattern, scopes) in &self.scopes {
            if !is_pattern(pattern) {
                return fail(
                    "scopes",
                    format!("`{pattern}` is not a method pattern (as in auth.methods)"),
                );
            }
            if let Some(scope) = scopes.iter().find(|s| !is_scope(s)) {
                return fail(
                    "scopes",
                    format!(
                        "`{pattern}`: {scope:?} is not a scope (printable, no spaces or quotes)"
                    ),
                );
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (claim, name) in &self.forward_claims {
            if let Err(why) = metadata_name(name) {
                return fail("forward_claims", format!("`{claim}: {name}`: {why}"));
            }
            if seen.contains(&name.as_str()) {
                return fail(
                    "forward_claims",
                    format!("`{name}` is given to two claims; each claim needs its own name"),
                );
            }
            seen.push(name);
        }
        Ok(())
    }
}

/// Whether `scope` can be a scope: printable, without spaces (which
/// separate scopes in a token) or the quotes and backslashes a
/// `WWW-Authenticate` quoted string would need escaped.
pub(crate) fn is_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// `*`, `pkg.*`, `pkg.Service`, `pkg.Service/*` or `pkg.Service/Method`.
pub(crate) fn is_pattern(pattern: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(service) => de::is_method_name(&format!("{service}/x")),
        None => de::is_method_name(pattern) || de::is_service_pattern(pattern),
    }
}

/// A metadata name a claim may be sent under: not one the gateway or
/// HTTP itself sets, not binary, lowercase.
pub(crate) fn metadata_name(name: &str) -> Result<HeaderName, String> {
    if !crate::upstream::metadata::is_metadata_key(name) {
        return Err(
            "not a gRPC metadata name (lowercase letters, digits, `-`, `_` and `.`)".to_owned(),
        );
    }
    let reserved = crate::upstream::metadata::is_reserved(name)
        || matches!(
            name,
            "authorization"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "traceparent"
                | "tracestate"
                | "user-agent"
                | "cookie"
                | "origin"
        )
        || name.starts_with("connect-")
        || name.starts_with("sec-");
    if reserved {
        return Err(
            "is reserved (set by gRPC, HTTP or the gateway itself); pick a name such as x-user-id"
                .to_owned(),
        );
    }
    if name.ends_with("-bin") {
        return Err("names binary metadata; claims are sent as text".to_owned());
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a header name".to_owned())
}
