//! The key tokens are signed with: an HS256 secret (through [`JwtVerifier`]'s signer), or an
//! Ed25519 / ES256 private key from a PKCS#8 PEM, whose public half is published as a JWK Set.
//!
//! `jsonwebtoken` is built without its PEM feature here, so the PEM armour is read in this
//! module: one `PRIVATE KEY` block, its algorithm told by the PKCS#8 algorithm identifier.

use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mcp_security_core::config::{ConfigError, Secret};
use serde_json::{Value, json};

use crate::jwt::JwtVerifier;

/// The largest key file read, in bytes.
pub(super) const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// How tokens are signed.
pub(super) enum Signer {
    /// HS256 with the verifier's first secret.
    Hs256(JwtVerifier),
    /// An asymmetric key, its `kid` (the RFC 7638 thumbprint) and the JWK Set document.
    Asymmetric {
        alg: Algorithm,
        kid: String,
        key: EncodingKey,
        jwks: String,
    },
}

impl Signer {
    /// HS256 with `secret` (at least 32 bytes; the verifier's self-test runs).
    pub(super) fn hs256(secret: Secret, setting: &str) -> Result<Signer, ConfigError> {
        let verifier = JwtVerifier::builder().secret(secret).build().map_err(|e| {
            if e.setting() == "jwt_backend" {
                e
            } else {
                e.renamed(setting)
            }
        })?;
        Ok(Signer::Hs256(verifier))
    }

    /// An Ed25519 or ES256 key from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Errors name
    /// `setting` and never contain key material.
    pub(super) fn from_pem(pem: &str, setting: &str) -> Result<Signer, ConfigError> {
        let refuse = |why: &str| ConfigError::new(setting, why.to_owned());
        let der = pem_private_key(pem).map_err(refuse)?;
        let (alg, key) = match key_algorithm(&der) {
            Some(KeyKind::Ed25519) => {
                let seed = ed25519_seed(&der).ok_or_else(|| {
                    refuse("the Ed25519 key is malformed (expected a PKCS#8 private key)")
                })?;
                let mut v1 = ED25519_V1_PREFIX.to_vec();
                v1.extend_from_slice(seed);
                (Algorithm::EdDSA, EncodingKey::from_ed_der(&v1))
            }
            Some(KeyKind::P256) => (Algorithm::ES256, EncodingKey::from_ec_der(&der)),
            Some(KeyKind::OtherEc) => {
                return Err(refuse(
                    "only P-256 EC keys (ES256) are supported; generate one with `openssl genpkey \
                     -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
                ));
            }
            None => {
                return Err(refuse(
                    "not an Ed25519 or P-256 (ES256) private key; RSA and other key types are not \
                     supported for signing tokens",
                ));
            }
        };
        let (kid, jwk) = catch_unwind(AssertUnwindSafe(|| public_jwk(&key, alg)))
            .unwrap_or_else(|_| Err("deriving the public key panicked".to_owned()))
            .map_err(|why| ConfigError::new(setting, format!("the key is not usable: {why}")))?;
        let signer = Signer::Asymmetric {
            alg,
            kid,
            key,
            jwks: json!({ "keys": [jwk] }).to_string(),
        };
        catch_unwind(AssertUnwindSafe(|| signer.self_test(&jwk)))
            .unwrap_or_else(|_| Err("it panicked".to_owned()))
            .map_err(|why| {
                ConfigError::new(
                    setting,
                    format!("the sign/verify self-test with this key failed: {why}"),
                )
            })?;
        Ok(signer)
    }

    /// The JOSE `alg`.
    pub(super) fn algorithm(&self) -> &'static str {
        match self {
            Signer::Hs256(_) => "HS256",
            Signer::Asymmetric {
                alg: Algorithm::EdDSA,
                ..
            } => "EdDSA",
            Signer::Asymmetric { .. } => "ES256",
        }
    }

    /// The JWK Set document, for an asymmetric key.
    pub(super) fn jwks(&self) -> Option<&str> {
        match self {
            Signer::Hs256(_) => None,
            Signer::Asymmetric { jwks, .. } => Some(jwks),
        }
    }

    /// Sign `claims` (a JSON object). The error is for the audit detail; it holds no key.
    pub(super) fn sign(&self, claims: &Value) -> Result<String, String> {
        match self {
            Signer::Hs256(verifier) => verifier
                .sign_claims(claims)
                .map_err(|e| format!("signing failed: {}", e.reason())),
            Signer::Asymmetric { alg, kid, key, .. } => {
                let mut header = Header::new(*alg);
                header.kid = Some(kid.clone());
                catch_unwind(AssertUnwindSafe(|| {
                    jsonwebtoken::encode(&header, claims, key)
                }))
                .map_err(|_| "signing panicked".to_owned())?
                .map_err(|e| format!("signing failed: {e}"))
            }
        }
    }

    /// Sign a token and verify it with the published public key.
    fn self_test(&self, jwk: &Value) -> Result<(), String> {
        let Signer::Asymmetric { alg, .. } = self else {
            return Ok(());
        };
        let token = self.sign(&json!({ "sub": "mcp-auth-self-test", "exp": 0 }))?;
        let text = |name: &str| jwk.get(name).and_then(Value::as_str).unwrap_or("");
        let decoding = match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_components(text("x")),
            _ => DecodingKey::from_ec_components(text("x"), text("y")),
        }
        .map_err(|e| format!("the public key is invalid: {e}"))?;
        let mut validation = Validation::new(*alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
            .map(|_| ())
            .map_err(|e| format!("verifying failed: {e}"))
    }
}

/// The public JWK of `key` (public members only) and its RFC 7638 thumbprint as `kid`.
fn public_jwk(key: &EncodingKey, alg: Algorithm) -> Result<(String, Value), String> {
    let jwk = Jwk::from_encoding_key(key, alg).map_err(|e| e.to_string())?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| e.to_string())?;
    let value = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => json!({
            "kty": "OKP", "crv": "Ed25519", "x": p.x,
            "use": "sig", "alg": "EdDSA", "kid": kid,
        }),
        AlgorithmParameters::EllipticCurve(p) => json!({
            "kty": "EC", "crv": "P-256", "x": p.x, "y": p.y,
            "use": "sig", "alg": "ES256", "kid": kid,
        }),
        _ => return Err("unexpected key type".to_owned()),
    };
    Ok((kid, value))
}

/// The DER inside the one `PRIVATE KEY` block of `pem`.
fn pem_private_key(pem: &str) -> Result<Vec<u8>, &'static str> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(
            "the key is encrypted; store it unencrypted (`openssl pkcs8 -topk8 -nocrypt`) \
                    in a file only the server can read",
        );
    }
    let Some(start) = pem.find(BEGIN) else {
        return Err(
            if pem.contains("-----BEGIN EC PRIVATE KEY-----")
                || pem.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
                || pem.contains("-----BEGIN RSA PRIVATE KEY-----")
            {
                "expected a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert it with \
                 `openssl pkcs8 -topk8 -nocrypt`"
            } else {
                "expected a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)"
            },
        );
    };
    let body_and_rest = pem.get(start + BEGIN.len()..).unwrap_or("");
    let Some(end) = body_and_rest.find(END) else {
        return Err("the PEM block has no -----END PRIVATE KEY----- line");
    };
    if body_and_rest
        .get(end + END.len()..)
        .is_some_and(|rest| rest.contains("-----BEGIN"))
    {
        return Err("the file holds more than one PEM block; keep only the private key");
    }
    let body: String = body_and_rest
        .get(..end)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "the PEM block is not valid base64")
}

#[derive(Debug, PartialEq, Eq)]
enum KeyKind {
    Ed25519,
    P256,
    OtherEc,
}

/// The OID of Ed25519 (1.3.101.112), DER-encoded.
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// The OID of an EC public key (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// The OID of the P-256 curve (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// A PKCS#8 v1 Ed25519 private key up to its 32-byte seed (RFC 8410 §7).
const ED25519_V1_PREFIX: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The key's algorithm from the PKCS#8 algorithm identifier, which sits in the first bytes.
fn key_algorithm(der: &[u8]) -> Option<KeyKind> {
    let head = der.get(..der.len().min(40))?;
    if contains(head, OID_ED25519) {
        Some(KeyKind::Ed25519)
    } else if contains(head, OID_EC) {
        Some(if contains(head, OID_P256) {
            KeyKind::P256
        } else {
            KeyKind::OtherEc
        })
    } else {
        None
    }
}

/// The 32-byte seed of a PKCS#8 Ed25519 key (v1, or v2 with the public key appended).
fn ed25519_seed(der: &[u8]) -> Option<&[u8]> {
    const SEED: &[u8] = &[0x04, 0x22, 0x04, 0x20];
    let at = position(der, OID_ED25519)? + OID_ED25519.len();
    let rest = der.get(at..)?;
    let seed_at = position(rest, SEED)? + SEED.len();
    rest.get(seed_at..seed_at + 32)
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    position(haystack, needle).is_some()
}
