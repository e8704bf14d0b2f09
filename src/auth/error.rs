//! Why a request's token was refused: what the 401's message says, and
//! its `WWW-Authenticate` challenge (RFC 6750 §3). A message never
//! contains the token or its claims' values.

use http::HeaderValue;
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;

/// A call that needs a token came without a valid one, or with one
/// that lacks a scope the call needs.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("this call needs a bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// An `Authorization` header of another scheme, or an empty token.
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    /// More than one `Authorization` header, or a
    /// `Grpc-Metadata-Authorization` beside it (400): only one token can
    /// be verified, and the backend must not see another.
    #[error(
        "send one bearer token, in one Authorization header (no second one, and no Grpc-Metadata-Authorization)"
    )]
    Repeated,
    /// Not three base64url parts with a JSON header naming a known
    /// algorithm (`none` is not one).
    #[error("the token is not a signed JWT (malformed, or its algorithm is not a signature one)")]
    Malformed,
    /// The header's `alg` is not one the key accepts.
    #[error("the token's algorithm {0:?} is not accepted for its key")]
    Algorithm(Algorithm),
    /// The header's `kid` names no configured key.
    #[error("the token's key id (kid) names no configured key")]
    UnknownKid,
    /// No `kid`, and no key to try it with (only `jwks_url`, not
    /// fetched yet).
    #[error("the token has no key id (kid), and no key is loaded")]
    NoKid,
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify")]
    Signature,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still to come (beyond the leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not the one expected")]
    Issuer,
    /// `aud` names none of the configured audiences.
    #[error("the token's audience is not one expected")]
    Audience,
    /// A claim the checks need is absent, or not of its type (`exp` and
    /// `nbf` are numbers of seconds).
    #[error("the token has no valid `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim the checks read has the wrong type, or the claims are not
    /// a JSON object.
    #[error("the token's claims are malformed")]
    Claims,
    /// `jwks_url` has not been fetched yet, and no other key fits (503).
    #[error("the signing keys are not loaded yet (jwks_url has not been fetched); try again")]
    NotFetched,
    /// A valid token without a scope the call needs (403).
    #[error("the token lacks the scope `{0}` this call needs")]
    Scope(Box<str>),
}

impl AuthError {
    /// The `WWW-Authenticate` value: a bare challenge when no token was
    /// given, `error="insufficient_scope"` for a missing scope,
    /// `error="invalid_request"` for a repeated one, else
    /// `error="invalid_token"`; none while the keys are not loaded (the
    /// token was not judged, and a client must not drop it).
    pub fn challenge(&self) -> Option<HeaderValue> {
        Some(match self {
            AuthError::NotFetched => return None,
            AuthError::Missing | AuthError::NotBearer => HeaderValue::from_static("Bearer"),
            AuthError::Repeated => HeaderValue::from_static("Bearer error=\"invalid_request\""),
            // Scopes are checked at config time to fit a quoted string.
            AuthError::Scope(scope) => HeaderValue::from_str(&format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ))
            .unwrap_or(HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\"",
            )),
            _ => HeaderValue::from_static("Bearer error=\"invalid_token\""),
        })
    }

    /// Whether the gateway, not the token, is at fault (503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::NotFetched)
    }

    /// Whether the request is malformed rather than its token (400, not
    /// 401).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, AuthError::Repeated)
    }

    /// Whether the token is valid but lacks a scope (403, not 401).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Scope(_))
    }

    /// The reason a verification failed.
    pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> AuthError {
        match err.kind() {
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::InvalidAlgorithm => AuthError::Malformed,
            ErrorKind::MissingRequiredClaim(claim) => {
                AuthError::MissingClaim(match claim.as_str() {
                    "exp" => "exp",
                    "iss" => "iss",
                    "aud" => "aud",
                    "nbf" => "nbf",
                    _ => "sub",
                })
            }
            ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => AuthError::Claims,
            _ => AuthError::Malformed,
        }
    }
}
