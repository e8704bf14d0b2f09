//! Bearer tokens for the auth tests: signing keys made with rcgen, their
//! JWKS, tokens signed with jsonwebtoken, and the kitchen config with an
//! `auth:` section that reads them.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use protogate::Config;
use serde_json::{Value, json};

/// The `iss` the config asks for and tokens carry.
pub const ISSUER: &str = "https://issuer.test";

/// A signing key and its public half as a JWK.
pub struct Signer {
    pub kid: String,
    /// The private half, to sign tokens the helpers do not make.
    pub key: EncodingKey,
    /// The public half, for a JWKS.
    pub jwk: Value,
}

impl Signer {
    pub fn new(kid: &str) -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        // The uncompressed point: 0x04, x, y.
        let raw = pair.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
        });
        Signer {
            kid: kid.to_owned(),
            key,
            jwk,
        }
    }

    /// A token with `claims` over the good ones.
    pub fn token(&self, claims: Value) -> String {
        self.token_as(&self.kid, claims)
    }

    /// [`Signer::token`] naming the key `kid`.
    pub fn token_as(&self, kid: &str, claims: Value) -> String {
        let mut all = good_claims();
        for (name, value) in claims.as_object().unwrap() {
            all[name] = value.clone();
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &all, &self.key).unwrap()
    }
}

/// Seconds since the epoch, as `exp` counts them.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass: `sub` alice, `tenant` 42, five minutes to live.
pub fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": "api", "sub": "alice", "tenant": 42, "exp": now() + 300})
}

/// A JWKS with the public halves of `signers`.
pub fn jwks(signers: &[&Signer]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// The kitchen config with `auth` read from YAML, keys from `jwks`.
pub fn config(set: &bytes::Bytes, upstream: &str, jwks: &Path) -> Config {
    let mut config = super::gateway::config(set, upstream);
    let yaml = format!(
        "auth:\n  jwks_file: {}\n  issuer: {ISSUER}\n  audiences: [api, other]\n  allow_unauthenticated: [kitchen.v1.Kitchen/Plain, grpc.health.v1.Health/*]\n  forward_claims: {{sub: x-user-id, tenant: x-tenant}}\n",
        jwks.display()
    );
    config.auth = Config::from_yaml(&yaml).unwrap().auth;
    config.headers.forward = vec![http::HeaderName::from_static("x-user-id")];
    let cors = "cors: {allowed_origins: [\"https://app.test\"]}\n";
    config.cors = Config::from_yaml(cors).unwrap().cors;
    config
}
