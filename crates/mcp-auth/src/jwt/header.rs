//! The checks that need no key: a compact JWS's shape, strict base64url, and a strict parse of
//! its JOSE header (`alg`, `crit`, `typ`, `kid`, no key references), before any cryptography.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use mcp_security_core::AuthFailure;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::MAX_TOKEN_BYTES;

/// Whether `token` has the shape of a compact JWS: a non-empty header and payload and a
/// signature, base64url, separated by exactly two dots. Cheap; it decides whether a bearer
/// credential is treated as a JWT or as an API key.
///
/// The signature may be empty, so an unsigned `alg: none` token (`header.payload.`) is still
/// treated as a JWT and refused as [`AuthFailure::UnsupportedAlgorithm`], which is what the audit
/// trail should say about it.
///
/// ```
/// use mcp_auth::jwt::looks_like_jwt;
///
/// assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
/// assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
/// assert!(!looks_like_jwt("mcp_live_0123456789abcdef"));
/// assert!(!looks_like_jwt("a.b.c.d"));
/// ```
pub fn looks_like_jwt(token: &str) -> bool {
    segments(token).is_some_and(|(header, payload, signature)| {
        !header.is_empty()
            && !payload.is_empty()
            && [header, payload, signature]
                .iter()
                .all(|s| s.bytes().all(|c| b64url_value(c).is_some()))
    })
}

/// The checks that need no key, in order: size ([`AuthFailure::TokenTooLarge`] above
/// [`MAX_TOKEN_BYTES`]); shape and strict unpadded base64url of all three segments
/// ([`AuthFailure::MalformedCredential`]); the header, parsed strictly as a JSON object
/// (duplicate members or a missing `alg` → [`AuthFailure::MalformedCredential`]); `alg` exactly
/// `"HS256"` (anything else, `none` in any case included → [`AuthFailure::UnsupportedAlgorithm`]);
/// no `crit` member ([`AuthFailure::CriticalHeader`]); no `jku`, `x5u`, `jwk` or `x5c` member
/// (keys are never taken from a token; → [`AuthFailure::MalformedCredential`]); `kid`, when
/// present, a string; `typ`, when present, `JWT` or `at+jwt` in any case, optionally prefixed by
/// `application/` (else [`AuthFailure::MalformedCredential`]).
///
/// [`JwtVerifier::verify`](super::JwtVerifier::verify) runs the same checks but also lets through the asymmetric algorithms
/// its JWKS source accepts.
///
/// Never panics; usable as a fuzz target.
///
/// # Errors
/// The first check that fails, as above.
pub fn preparse(token: &str) -> Result<(), AuthFailure> {
    match parse_header(token)?.alg {
        Algorithm::HS256 => Ok(()),
        _ => Err(AuthFailure::UnsupportedAlgorithm),
    }
}

/// What the verifier needs from a token's header.
pub(super) struct TokenHeader {
    pub(super) alg: Algorithm,
    /// Only for asymmetric algorithms.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(super) kid: Option<String>,
}

/// The preparse checks, accepting every algorithm this crate can verify (exact names only).
pub(super) fn parse_header(token: &str) -> Result<TokenHeader, AuthFailure> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthFailure::TokenTooLarge);
    }
    let (header, payload, signature) = segments(token).ok_or(AuthFailure::MalformedCredential)?;
    if header.is_empty()
        || payload.is_empty()
        || !is_canonical_b64url(header)
        || !is_canonical_b64url(payload)
        || !is_canonical_b64url(signature)
    {
        return Err(AuthFailure::MalformedCredential);
    }
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthFailure::MalformedCredential)?;
    let facts: HeaderFacts<'_> =
        serde_json::from_slice(&json).map_err(|_| AuthFailure::MalformedCredential)?;

    let alg = match facts.alg {
        None => return Err(AuthFailure::MalformedCredential),
        Some(ParamValue::Str(alg)) if alg == "HS256" => Algorithm::HS256,
        Some(ParamValue::Str(alg)) => {
            asymmetric_algorithm(&alg).ok_or(AuthFailure::UnsupportedAlgorithm)?
        }
        Some(_) => return Err(AuthFailure::UnsupportedAlgorithm),
    };
    if facts.crit {
        return Err(AuthFailure::CriticalHeader);
    }
    if facts.key_reference {
        return Err(AuthFailure::MalformedCredential);
    }
    match facts.typ {
        None => {}
        Some(ParamValue::Str(typ)) if is_accepted_typ(&typ) => {}
        Some(_) => return Err(AuthFailure::MalformedCredential),
    }
    // HS256 never looks a key up, so its `kid` is not copied (jsonwebtoken still refuses a
    // non-string one).
    let kid = match facts.kid {
        _ if alg == Algorithm::HS256 => None,
        None => None,
        Some(ParamValue::Str(kid)) => Some(kid.into_owned()),
        Some(ParamValue::Other) => return Err(AuthFailure::MalformedCredential),
    };
    Ok(TokenHeader { alg, kid })
}

/// Every algorithm this crate can verify, by its exact JOSE name: the one table that both the
/// header parser and the JWKS source's algorithm list (feature `jwks`) read.
pub(crate) const ALGORITHMS: [(&str, Algorithm); 10] = [
    ("HS256", Algorithm::HS256),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// An algorithm name this crate can verify (exact case), HS256 included.
pub(crate) fn algorithm_by_name(name: &str) -> Option<Algorithm> {
    ALGORITHMS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, alg)| alg)
}

/// An asymmetric algorithm name this crate can verify (exact case).
fn asymmetric_algorithm(name: &str) -> Option<Algorithm> {
    algorithm_by_name(name).filter(|alg| *alg != Algorithm::HS256)
}

fn is_accepted_typ(typ: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    bare.eq_ignore_ascii_case("JWT") || bare.eq_ignore_ascii_case("at+jwt")
}

/// Exactly three dot-separated segments.
pub(super) fn segments(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    let segments = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(segments)
}

fn b64url_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Unpadded base64url that decodes, with zero unused trailing bits (what the `base64` crate's
/// `URL_SAFE_NO_PAD` accepts), checked without decoding.
pub(super) fn is_canonical_b64url(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if !bytes.iter().all(|&c| b64url_value(c).is_some()) {
        return false;
    }
    let unused_bits: u8 = match bytes.len() % 4 {
        0 => return true,
        1 => return false,
        2 => 0b1111,
        _ => 0b11,
    };
    bytes
        .last()
        .and_then(|&c| b64url_value(c))
        .is_some_and(|v| v & unused_bits == 0)
}

/// What the preparse needs from a JOSE header.
struct HeaderFacts<'a> {
    alg: Option<ParamValue<'a>>,
    typ: Option<ParamValue<'a>>,
    kid: Option<ParamValue<'a>>,
    crit: bool,
    /// `jku`, `x5u`, `jwk` or `x5c`: a key or a key location inside the token.
    key_reference: bool,
}

impl<'de> Deserialize<'de> for HeaderFacts<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;

        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = HeaderFacts<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object without duplicate members")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut facts = HeaderFacts {
                    alg: None,
                    typ: None,
                    kid: None,
                    crit: false,
                    key_reference: false,
                };
                let mut seen = BTreeSet::new();
                while let Some(JsonStr(name)) = map.next_key()? {
                    match &*name {
                        "alg" => facts.alg = Some(map.next_value()?),
                        "typ" => facts.typ = Some(map.next_value()?),
                        "kid" => facts.kid = Some(map.next_value()?),
                        "jku" | "x5u" | "jwk" | "x5c" => {
                            map.next_value::<IgnoredAny>()?;
                            facts.key_reference = true;
                        }
                        "crit" => {
                            map.next_value::<IgnoredAny>()?;
                            facts.crit = true;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    if !seen.insert(name) {
                        return Err(de::Error::custom("duplicate header parameter"));
                    }
                }
                Ok(facts)
            }
        }

        deserializer.deserialize_map(HeaderVisitor)
    }
}

/// A JSON string, borrowed when it has no escapes.
struct JsonStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;

        impl<'de> Visitor<'de> for StrVisitor {
            type Value = JsonStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(StrVisitor)
    }
}

/// A header parameter's value: a string, or anything else (consumed and forgotten).
enum ParamValue<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for ParamValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = ParamValue<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Owned(v)))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ParamValue::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ParamValue::Other)
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}
