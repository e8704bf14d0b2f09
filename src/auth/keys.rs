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
    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Reads the keys of the files `config` names.
    pub(crate) fn load(config: &AuthConfig) -> Result<KeySet, Failure> {
        let mut keys = Vec::new();
        if let Some(path) = &config.jwks_file {
            let fail = |message: String| ("auth.jwks_file".to_owned(), message);
            let text = crate::files::read(path, crate::files::MAX_TEXT_BYTES, "a key file")
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|e| {
                fail(format!(
                    "{} is not a JWKS ({{\"keys\": [...]}}): {e}",
                    path.display()
                ))
            })?;
            keys = KeySet::of_jwks(config, &set)
                .map_err(|why| fail(format!("{} {why}", path.display())))?
                .keys;
        }
        for pem in &config.public_keys {
            let fail = |message: String| ("auth.public_keys".to_owned(), message);
            let text = crate::files::read(&pem.file, crate::files::MAX_TEXT_BYTES, "a key file")
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

    /// The keys of a JWKS that can verify signatures here (others are
    /// skipped with a warning); none is an error, completing "`<source>`
    /// ...".
    pub(crate) fn of_jwks(config: &AuthConfig, set: &JwkSet) -> Result<KeySet, String> {
        let mut keys: Vec<Key> = Vec::new();
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.as_deref();
            match from_jwk(config, jwk) {
                // Keys may share a kid when their types differ (RFC 7517
                // §4.5): the token's `alg` picks among them. Of one type,
                // the first is the one used.
                Ok(key) => {
                    if kid.is_some()
                        && keys
                            .iter()
                            .any(|k| k.kid.as_deref() == kid && k.key.family() == key.key.family())
                    {
                        tracing::warn!(
                            kid,
                            "JWKS key of the type and kid of another: tokens naming the kid are checked with the first"
                        );
                    }
                    keys.push(key);
                }
                Err(why) => {
                    tracing::warn!(kid, reason = why, "JWKS key skipped");
                    skipped.push(match kid {
                        Some(kid) => format!("`{kid}`: {why}"),
                        None => why.to_owned(),
                    });
                }
            }
        }
        if keys.is_empty() {
            let why = if skipped.is_empty() {
                "it lists none".to_owned()
            } else {
                skipped.join("; ")
            };
            return Err(format!(
                "has no key this gateway can verify signatures with (RSA of 2048 bits or more, EC P-256/P-384 or Ed25519, `use` sig): {why}"
            ));
        }
        Ok(KeySet { keys })
    }

    /// Verifies `token` (signature, `exp`, `nbf`, issuer, audience) with
    /// these keys and `more` (the keys fetched from `jwks_url`), and
    /// returns its claims as `T`. The token's `kid` picks the key (the one
    /// that takes its `alg` when keys of several types share the kid); a
    /// token without one is tried with each key that takes its `alg`, at
    /// most [`MAX_TRIED`] of them, until one verifies its signature.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        more: Option<&KeySet>,
        token: &str,
    ) -> Result<T, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let all = || {
            self.keys
                .iter()
                .chain(more.into_iter().flat_map(|m| &m.keys))
        };
        let takes = |key: &&Key| key.validation.algorithms.contains(&header.alg);
        let decode = |key: &Key| {
            jsonwebtoken::decode::<T>(token, &key.key, &key.validation)
                .map(|data| data.claims)
                .map_err(|e| AuthError::from_jwt(&e))
        };
        let Some(kid) = header.kid.as_deref() else {
            let mut fitting = all().filter(takes).take(MAX_TRIED);
            let Some(first) = fitting.next() else {
                return Err(match all().next() {
                    None => AuthError::NoKid,
                    Some(_) => AuthError::Algorithm(header.alg),
                });
            };
            let mut verified = decode(first);
            for key in fitting {
                if !matches!(verified, Err(AuthError::Signature)) {
                    break;
                }
                verified = decode(key);
            }
            return verified;
        };
        let named = || all().filter(|k| k.kid.as_deref() == Some(kid));
        match named().find(takes) {
            Some(key) => decode(key),
            None if named().next().is_some() => Err(AuthError::Algorithm(header.alg)),
            None => Err(AuthError::UnknownKid),
        }
    }
}

/// The most keys a token without a `kid` is tried with: each try is a
/// signature check, and a token must not buy many of them.
const MAX_TRIED: usize = 8;

/// The fewest bits of an RSA modulus taken: shorter keys can be
/// factored by a determined attacker (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// A JWKS key, or why it cannot verify signatures here.
fn from_jwk(config: &AuthConfig, jwk: &Jwk) -> Result<Key, &'static str> {
    let kid = jwk.common.key_id.as_deref();
    let skip = Err;
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm
        && rsa_bits(&rsa.n) < MIN_RSA_BITS
    {
        return skip("its RSA modulus is shorter than 2048 bits");
    }
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
        Ok(key) if algorithms.iter().all(|a| a.family() == key.family()) => Ok(Key {
            kid: kid.map(Into::into),
            key,
            validation: validation(config, algorithms),
        }),
        Ok(_) => skip("its alg does not fit its key type"),
        Err(_) => skip("its parameters are not a valid public key"),
    }
}

/// The bits of an RSA modulus given in base64url (`n`), leading zero
/// bytes left out; 0 when it does not decode.
fn rsa_bits(n: &str) -> usize {
    use base64::Engine as _;
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))
    else {
        return 0;
    };
    let mut significant = bytes.iter().skip_while(|b| **b == 0);
    match significant.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * significant.count(),
        None => 0,
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
