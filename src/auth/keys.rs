//! The verification keys: read from the JWKS file and PEM files once per
//! snapshot, each with its `kid` and a ready `Validation` (issuer,
//! audiences, leeway, its algorithms).

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use super::AuthError;
use super::config::AuthConfig;

/// One key, ready to verify.
pub(crate) struct Key {
    kid: Option<Box<str>>,
    key: DecodingKey,
    validation: Validation,
}

/// Every key of a snapshot.
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, &k.validation.algorithms)))
            .finish()
    }
}

/// A setting that fails: the key under `auth.` and what is wrong.
type Failure = (String, String);

impl KeySet {
    /// Reads the keys `config` names.
    pub(crate) fn load(config: &AuthConfig) -> Result<KeySet, Failure> {
        let mut keys = Vec::new();
        if let Some(path) = &config.jwks_file {
            let fail = |message: String| ("auth.jwks_file".to_owned(), message);
            let text = std::fs::read(path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|e| {
                fail(format!(
                    "{} is not a JWKS ({{\"keys\": [...]}}): {e}",
                    path.display()
                ))
            })?;
            for jwk in &set.keys {
                if let Some(key) = from_jwk(config, jwk) {
                    keys.push(key);
                }
            }
            if keys.is_empty() {
                return Err(fail(format!(
                    "{} has no key this gateway can verify signatures with (RSA, EC P-256/P-384 or Ed25519, `use` sig)",
                    path.display()
                )));
            }
        }
        for pem in &config.public_keys {
            let fail = |message: String| ("auth.public_keys".to_owned(), message);
            let text = std::fs::read(&pem.file)
                .map_err(|e| fail(format!("cannot read {}: {e}", pem.file.display())))?;
            let key = match pem.algorithm.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&text),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&text),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&text),
                AlgorithmFamily::Hmac => {
                    return Err(fail("shared-secret algorithms are not accepted".to_owned()));
                }
            }
            .map_err(|e| {
                fail(format!(
                    "{} is not a PEM public key for {:?}: {e}",
                    pem.file.display(),
                    pem.algorithm
                ))
            })?;
            let algorithms = allowed(config, &[pem.algorithm]);
            if algorithms.is_empty() {
                return Err(fail(format!(
                    "{} is for {:?}, which auth.algorithms leaves out",
                    pem.file.display(),
                    pem.algorithm
                )));
            }
            keys.push(Key {
                kid: pem.kid.as_deref().map(Into::into),
                key,
                validation: validation(config, algorithms),
            });
        }
        Ok(KeySet { keys })
    }

    /// The key a token's `kid` names, or the only key for a token
    /// without one.
    fn find(&self, kid: Option<&str>) -> Result<&Key, AuthError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(AuthError::UnknownKid),
            None => match self.keys.as_slice() {
                [only] => Ok(only),
                keys => Err(AuthError::NoKid(keys.len())),
            },
        }
    }

    /// Verifies `token` (signature, `exp`, `nbf`, issuer, audience) and
    /// returns its claims as `T`.
    pub(crate) fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = self.find(header.kid.as_deref())?;
        if !key.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(header.alg));
        }
        jsonwebtoken::decode::<T>(token, &key.key, &key.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::from_jwt(&e))
    }
}

/// A JWKS key, or none (logged) when it cannot verify signatures here.
fn from_jwk(config: &AuthConfig, jwk: &Jwk) -> Option<Key> {
    let kid = jwk.common.key_id.as_deref();
    let skip = |why: &str| {
        tracing::warn!(kid, reason = why, "JWKS key skipped");
        None
    };
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return skip("its use is encryption");
    }
    let own = match &jwk.common.key_algorithm {
        Some(alg) => match Algorithm::from_str(&format!("{alg:?}")) {
            Ok(alg) => vec![alg],
            Err(_) => return skip("its alg is not a signature algorithm"),
        },
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) if config.algorithms.is_empty() => vec![Algorithm::RS256],
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return skip("its curve is not P-256 or P-384"),
            },
            AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            _ => return skip("it is not an RSA, EC or Ed25519 public key"),
        },
    };
    let algorithms = allowed(config, &own);
    if algorithms.is_empty()
        || algorithms
            .iter()
            .any(|a| a.family() == AlgorithmFamily::Hmac)
    {
        return skip("auth.algorithms leaves out its algorithm, or it is a shared secret");
    }
    match DecodingKey::from_jwk(jwk) {
        Ok(key) if algorithms.iter().all(|a| a.family() == key.family()) => Some(Key {
            kid: kid.map(Into::into),
            key,
            validation: validation(config, algorithms),
        }),
        Ok(_) => skip("its alg does not fit its key type"),
        Err(_) => skip("its parameters are not a valid public key"),
    }
}

/// `own` narrowed to `auth.algorithms`, when that is set.
fn allowed(config: &AuthConfig, own: &[Algorithm]) -> Vec<Algorithm> {
    own.iter()
        .copied()
        .filter(|a| config.algorithms.is_empty() || config.algorithms.contains(a))
        .collect()
}

/// The checks every token verified with a key goes through.
fn validation(config: &AuthConfig, algorithms: Vec<Algorithm>) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.algorithms = algorithms;
    validation.leeway = config.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    if config.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&config.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}
