//! Key sets: a JWK Set document parsed into the keys this source may use, each checked for its
//! type, size and algorithm.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::{MAX_KEYS, MIN_RSA_BITS, RSA_ALGORITHMS, parse_algorithm};

/// One usable verification key.
pub(crate) struct JwkKey {
    pub(crate) decoding: DecodingKey,
    /// The algorithms this key may verify: its type's, the allow-list's, and its own `alg`'s.
    pub(super) algorithms: Vec<Algorithm>,
}

#[derive(Default)]
pub(super) struct KeySet {
    pub(super) by_kid: HashMap<String, Vec<Arc<JwkKey>>>,
    pub(super) all: Vec<Arc<JwkKey>>,
    pub(super) len: usize,
    /// Each usable key's `kid`, material and algorithms, in order: two sets with equal
    /// identities verify the same tokens the same way.
    pub(super) identities: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct JwkSetDoc {
    pub(super) keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct JwkDoc {
    pub(super) kty: String,
    pub(super) kid: Option<String>,
    #[serde(rename = "use")]
    pub(super) use_: Option<String>,
    pub(super) key_ops: Option<Vec<String>>,
    pub(super) alg: Option<String>,
    pub(super) crv: Option<String>,
    pub(super) n: Option<String>,
    pub(super) e: Option<String>,
    pub(super) x: Option<String>,
    pub(super) y: Option<String>,
}

impl KeySet {
    /// Parse a JWK Set, keeping the keys usable for signature verification with `allowed`
    /// algorithms; the others are skipped (logged at debug). Errors when the document is not a
    /// JWK Set or no key is usable.
    pub(super) fn parse(bytes: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        let doc: JwkSetDoc = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a JWK Set (RFC 7517 §5): {e}"))?;
        let mut set = KeySet::default();
        for (index, value) in doc.keys.into_iter().enumerate() {
            if set.len >= MAX_KEYS {
                tracing::warn!(
                    max = MAX_KEYS,
                    "JWK Set has too many keys; the rest are ignored"
                );
                break;
            }
            let jwk = match serde_json::from_value::<JwkDoc>(value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(index, error = %e, "JWK skipped: malformed");
                    continue;
                }
            };
            match usable_key(&jwk, allowed) {
                Ok(key) => {
                    set.identities.push(format!(
                        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                        jwk.kid, jwk.kty, jwk.crv, jwk.n, jwk.e, jwk.x, jwk.y, key.algorithms
                    ));
                    let key = Arc::new(key);
                    if let Some(kid) = jwk.kid {
                        set.by_kid.entry(kid).or_default().push(Arc::clone(&key));
                    }
                    set.all.push(key);
                    set.len += 1;
                }
                Err(why) => tracing::debug!(index, kid = ?jwk.kid, why, "JWK skipped"),
            }
        }
        if set.len == 0 {
            return Err(format!(
                "no usable signing key for the allowed algorithms {allowed:?}"
            ));
        }
        Ok(set)
    }
}

pub(super) fn decoded_len(b64: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    let significant = bytes.iter().skip_while(|&&b| b == 0).count();
    Some(significant)
}

pub(super) fn usable_key(jwk: &JwkDoc, allowed: &[Algorithm]) -> Result<JwkKey, &'static str> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops lack verify");
    }
    let missing = "a required member is missing";
    let bad = "a member is not valid";
    let (family, decoding): (&[Algorithm], DecodingKey) = match jwk.kty.as_str() {
        "RSA" => {
            let (n, e) = jwk.n.as_deref().zip(jwk.e.as_deref()).ok_or(missing)?;
            if decoded_len(n).ok_or(bad)? * 8 < MIN_RSA_BITS {
                return Err("RSA modulus shorter than 2048 bits");
            }
            (
                RSA_ALGORITHMS,
                DecodingKey::from_rsa_components(n, e).map_err(|_| bad)?,
            )
        }
        "EC" => {
            let (x, y) = jwk.x.as_deref().zip(jwk.y.as_deref()).ok_or(missing)?;
            let (family, size): (&[Algorithm], usize) = match jwk.crv.as_deref() {
                Some("P-256") => (&[Algorithm::ES256], 32),
                Some("P-384") => (&[Algorithm::ES384], 48),
                _ => return Err("unsupported EC curve"),
            };
            let exact = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() == size);
            if !exact(x) || !exact(y) {
                return Err(bad);
            }
            (
                family,
                DecodingKey::from_ec_components(x, y).map_err(|_| bad)?,
            )
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err("unsupported OKP curve");
            }
            let x = jwk.x.as_deref().ok_or(missing)?;
            if !URL_SAFE_NO_PAD.decode(x).is_ok_and(|b| b.len() == 32) {
                return Err(bad);
            }
            (
                &[Algorithm::EdDSA],
                DecodingKey::from_ed_components(x).map_err(|_| bad)?,
            )
        }
        "oct" => return Err("symmetric keys are never used from a JWKS"),
        _ => return Err("unsupported key type"),
    };
    let mut algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if let Some(alg) = &jwk.alg {
        let pinned = parse_algorithm(alg).ok_or("unsupported alg")?;
        algorithms.retain(|a| *a == pinned);
    }
    if algorithms.is_empty() {
        return Err("no allowed algorithm fits the key");
    }
    Ok(JwkKey {
        decoding,
        algorithms,
    })
}
