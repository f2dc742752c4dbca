//! The claims: the signature check (HS256 with the verifier's secrets, or one JWKS key), then a
//! strict decode of the members the verifier reads (duplicated or mistyped members are refused).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
#[cfg(feature = "jwks")]
use jsonwebtoken::Validation;
#[cfg(feature = "jwks")]
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey};
use mcp_security_core::AuthFailure;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

use super::scopes::ScopeValue;

/// The signature with one key, then the strict claims struct: `Ok(None)` when the signature does
/// not verify.
#[cfg(feature = "jwks")]
pub(super) fn decode_with(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Option<ClaimSet>, AuthFailure> {
    match jsonwebtoken::decode::<Claims>(token, key, validation) {
        Ok(data) => Ok(Some(data.claims.0)),
        Err(e) => match e.kind() {
            ErrorKind::InvalidSignature => Ok(None),
            ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::MissingRequiredClaim(_) => {
                // jsonwebtoken parses the header before it checks the signature and the
                // claims after; a JSON error with a header it accepts is the claims'.
                Err(if jsonwebtoken::decode_header(token).is_ok() {
                    AuthFailure::InvalidClaims
                } else {
                    AuthFailure::MalformedCredential
                })
            }
            ErrorKind::InvalidAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::MissingAlgorithm => Err(AuthFailure::UnsupportedAlgorithm),
            other => {
                tracing::debug!(error = ?other, "JWT refused by jsonwebtoken");
                Err(AuthFailure::MalformedCredential)
            }
        },
    }
}

/// An HS256 token's signature checked with each of `keys` in turn (jsonwebtoken's HMAC, compared
/// in constant time), then, once one verified, the strict claims struct. The caller already ran
/// the preparse (`alg` is `HS256`, every segment strict base64url).
///
/// jsonwebtoken's header type is still asked first, so a header it refuses (a member of the
/// wrong type, nesting past serde_json's limit) is refused as before; but `jsonwebtoken::decode`
/// would parse that header a second time and the claims twice (the second time for its own
/// validation, which this verifier turns off: every time, audience and issuer check is ours).
/// Here the claims are parsed once, and only after the signature verified.
pub(super) fn decode_hs256(token: &str, keys: &[DecodingKey]) -> Result<ClaimSet, AuthFailure> {
    jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::MalformedCredential)?;
    let (message, signature) = token
        .rsplit_once('.')
        .ok_or(AuthFailure::MalformedCredential)?;
    let (_, payload) = message
        .split_once('.')
        .ok_or(AuthFailure::MalformedCredential)?;
    let mut verified = false;
    for key in keys {
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, Algorithm::HS256) {
            Ok(true) => {
                verified = true;
                break;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = ?e.kind(), "HS256 signature not checkable");
                return Err(AuthFailure::MalformedCredential);
            }
        }
    }
    if !verified {
        return Err(AuthFailure::BadSignature);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthFailure::MalformedCredential)?;
    serde_json::from_slice::<Claims>(&json)
        .map(|claims| claims.0)
        .map_err(|_| AuthFailure::InvalidClaims)
}

/// The claims we read, from a JSON object only (the derive alone would also accept an array).
pub(super) struct Claims(pub(super) ClaimSet);

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Claims;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWT claims object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                ClaimSet::deserialize(MapAccessDeserializer::new(map)).map(Claims)
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The claims' members. The derive refuses a duplicated member among these (`{"sub":"a",
/// "sub":"admin"}`) and any of them with the wrong type (a malformed scope claim refuses the
/// token only when it is configured); other members are ignored.
#[derive(Deserialize)]
pub(super) struct ClaimSet {
    pub(super) sub: Option<String>,
    pub(super) exp: Option<NumericDate>,
    pub(super) nbf: Option<NumericDate>,
    pub(super) iat: Option<NumericDate>,
    pub(super) iss: Option<String>,
    pub(super) aud: Option<Audience>,
    pub(super) scope: Option<ScopeValue>,
    pub(super) scp: Option<ScopeValue>,
    pub(super) scopes: Option<ScopeValue>,
    pub(super) permissions: Option<ScopeValue>,
    /// `cnf` (RFC 7800): the key the token is bound to.
    pub(super) cnf: Option<Confirmation>,
}

/// `cnf` (RFC 7800 §3.1): of its members only `jkt` (RFC 9449 §6.1, the SHA-256 JWK thumbprint
/// of a DPoP key) is read; a `jkt` of the wrong type or duplicated refuses the token, and so does
/// a `cnf` without `jkt` (a binding this server cannot check).
#[derive(Deserialize)]
pub(super) struct Confirmation {
    pub(super) jkt: Option<String>,
}

/// A NumericDate (RFC 7519 §2) restricted to a non-negative JSON integer: strings, fractions and
/// exponents (`1.5e9`) are refused.
#[derive(Clone, Copy)]
pub(super) struct NumericDate(u64);

impl NumericDate {
    pub(super) fn since_epoch(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;

        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate: a non-negative integer number of seconds")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumericDate(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
        }

        deserializer.deserialize_u64(DateVisitor)
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
pub(super) struct Audience(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Audience(values))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}
