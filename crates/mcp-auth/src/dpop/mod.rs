//! DPoP (RFC 9449), the resource server's side: proof of possession for access tokens.
//!
//! An access token bound to a key carries the key's RFC 7638 thumbprint in `cnf.jkt`. Such a
//! token is only accepted as `Authorization: DPoP <token>` together with a `DPoP` header holding
//! a fresh proof: a JWT signed with that key, `typ: dpop+jwt`, the public key in its `jwk`
//! header, and claims naming this very request — `htm` (the method), `htu` (the URL without
//! query and fragment), `iat`, a unique `jti` and `ath` (the SHA-256 of the token). A stolen
//! token is useless without the key, and a captured proof is useless for any other request or
//! a second time.
//!
//! [`DpopVerifier::verify`] runs every check of RFC 9449 §4.3 in order:
//!
//! 1. one `DPoP` header holding a compact JWS, at most [`MAX_PROOF_BYTES`];
//! 2. `typ` is `dpop+jwt`; `alg` is one of the allowed asymmetric algorithms (never `none`,
//!    never a MAC); `jwk` is a public key (no private members) usable with `alg`;
//! 3. the signature verifies with that key;
//! 4. `jti`, `htm`, `htu` and `iat` are present; `htm` equals the request's method; `htu` equals
//!    the request's URL after RFC 3986 normalization ([`normalize_htu`]);
//! 5. `iat` is within the acceptance window (default 60 s in the past, and at most
//!    [`MAX_FUTURE_SKEW`] ahead: a proof dated in the future would stay in the replay cache
//!    longer);
//! 6. with server nonces on, `nonce` is one this server issued recently — else the client is
//!    told to `use_dpop_nonce` with a fresh one;
//! 7. `ath` equals the base64url SHA-256 of the access token;
//! 8. the key's thumbprint equals the token's `cnf.jkt`;
//! 9. the `jti` was not seen before for this key inside the window (bounded replay cache).
//!
//! ```
//! use std::time::SystemTime;
//! use mcp_auth::dpop::{DpopVerifier, ProofRequest};
//!
//! let verifier = DpopVerifier::builder().build()?;
//! // A request that carries no usable proof is refused with the RFC's error code.
//! let err = verifier
//!     .verify(
//!         "not-a-proof",
//!         &ProofRequest {
//!             method: &http::Method::POST,
//!             url: "https://mcp.example.com/mcp",
//!             access_token: "token",
//!             jkt: "thumbprint",
//!         },
//!         SystemTime::now(),
//!     )
//!     .unwrap_err();
//! assert_eq!(err.error_code(), "invalid_dpop_proof");
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

mod env;
mod htu;
mod nonce;
mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_security_core::config::{ConfigError, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use htu::normalize_htu;

use nonce::NonceSource;
use replay::{ReplayCache, Seen};

/// The largest `DPoP` header accepted, in bytes (an RSA-4096 proof is about 1.5 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The proof algorithms accepted by default (RFC 9449 asks for asymmetric ones only).
pub const DEFAULT_ALGORITHMS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];

/// The default acceptance window for a proof's `iat` in the past.
pub const DEFAULT_IAT_WINDOW: Duration = Duration::from_secs(60);

/// How far ahead of this server's clock a proof's `iat` may be (clock skew), whatever the window:
/// a proof is remembered until its `iat` plus the window, so a far-future `iat` would let one
/// client keep entries in the replay cache for twice the window.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(10);

/// The default number of live proofs the replay cache holds.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// How long a server nonce stays current (it is accepted for twice this).
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// How an [`AuthLayer`](crate::layer::AuthLayer) treats DPoP (`MCP_DPOP`); see the layer's
/// [DPoP section](crate::layer#dpop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// `Authorization: DPoP` is not accepted, and neither is a key-bound token (its binding
    /// could not be checked).
    Off,
    /// Bearer tokens as usual; a key-bound token must come as `Authorization: DPoP` with a
    /// valid proof. `DpopMode::default()`, and the mode of
    /// [`AuthLayerBuilder::dpop`](crate::layer::AuthLayerBuilder::dpop) unless another is set
    /// (a layer without a verifier, like `MCP_DPOP` unset, is [`Off`](Self::Off)).
    #[default]
    Allowed,
    /// Every JWT must be key-bound and come with a valid proof (API keys are not JWTs and are
    /// unaffected).
    Required,
}

impl DpopMode {
    /// `off`, `allowed` or `required`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Allowed => "allowed",
            Self::Required => "required",
        }
    }
}

impl fmt::Display for DpopMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DpopMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" => Ok(Self::Off),
            "allowed" | "on" | "true" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            other => Err(format!(
                "{other:?} is not a DPoP mode: use off, allowed or required"
            )),
        }
    }
}

/// What a proof must match: the request it came with and the token it accompanies.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The request's method (`htm`).
    pub method: &'a http::Method,
    /// The request's absolute URL as the client addressed it (`htu`); behind a proxy, build it
    /// from the configured resource URL's origin and the request's path.
    pub url: &'a str,
    /// The access token sent in `Authorization: DPoP` (`ath`).
    pub access_token: &'a str,
    /// The token's `cnf.jkt`: the thumbprint of the key the token is bound to.
    pub jkt: &'a str,
}

/// Why a proof was refused. [`error_code`](Self::error_code) is the `error` of the
/// `WWW-Authenticate: DPoP` challenge; [`Display`](fmt::Display) its description, which never
/// contains the proof or the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// The proof is not a compact JWS with the header and claims RFC 9449 requires; the
    /// string names what is wrong.
    Malformed(&'static str),
    /// `alg` is not one of the accepted proof algorithms.
    UnsupportedAlgorithm,
    /// The signature does not verify with the proof's own key.
    BadSignature,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URL.
    WrongUrl,
    /// `iat` is outside the acceptance window.
    Stale,
    /// `ath` is not the hash of the access token.
    WrongTokenHash,
    /// The proof's key is not the key the token is bound to.
    WrongKey,
    /// The same key already used this `jti` inside the window.
    Replayed,
    /// The replay cache is full of live proofs; the request may be retried shortly.
    Busy,
    /// A server nonce is required and the proof carries none, or a stale one: retry with
    /// the nonce in the `DPoP-Nonce` response header.
    UseNonce,
}

impl DpopError {
    /// The RFC 9449 error code: `use_dpop_nonce` or `invalid_dpop_proof`.
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "The DPoP proof is malformed: {what}"),
            Self::UnsupportedAlgorithm => f.write_str("The DPoP proof's algorithm is not accepted"),
            Self::BadSignature => f.write_str("The DPoP proof's signature is invalid"),
            Self::WrongMethod => f.write_str("The DPoP proof's htm does not match the request"),
            Self::WrongUrl => f.write_str("The DPoP proof's htu does not match the request"),
            Self::Stale => f.write_str("The DPoP proof's iat is outside the acceptance window"),
            Self::WrongTokenHash => {
                f.write_str("The DPoP proof's ath does not match the access token")
            }
            Self::WrongKey => f.write_str("The DPoP proof is not signed with the token's key"),
            Self::Replayed => f.write_str("The DPoP proof was already used"),
            Self::Busy => f.write_str("Too many DPoP proofs in flight; retry shortly"),
            Self::UseNonce => f.write_str("Authorization server requires nonce in DPoP proof"),
        }
    }
}

impl std::error::Error for DpopError {}

/// Checks DPoP proofs; cheap to clone (an `Arc`). Built by [`DpopVerifier::builder`].
#[derive(Clone)]
pub struct DpopVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each accepted algorithm with its JOSE name.
    algorithms: Vec<(&'static str, Algorithm)>,
    window: Duration,
    replay: ReplayCache,
    nonce: Option<NonceSource>,
}

impl fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("algorithms", &self.inner.algorithms)
            .field("iat_window", &self.inner.window)
            .field("nonce", &self.inner.nonce.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DpopVerifier`].
#[derive(Debug)]
#[must_use]
pub struct DpopVerifierBuilder {
    algorithms: Vec<(&'static str, Algorithm)>,
    window: Duration,
    replay_capacity: usize,
    nonce: bool,
    nonce_key: Option<Secret>,
    nonce_lifetime: Duration,
}

impl DpopVerifier {
    /// A builder with the defaults: [`DEFAULT_ALGORITHMS`], a 60-second `iat` window, a replay
    /// cache of [`DEFAULT_REPLAY_CAPACITY`] proofs, no server nonces.
    pub fn builder() -> DpopVerifierBuilder {
        DpopVerifierBuilder {
            algorithms: DEFAULT_ALGORITHMS
                .iter()
                .filter_map(|&name| Some((name, crate::jwt::algorithm_by_name(name)?)))
                .collect(),
            window: DEFAULT_IAT_WINDOW,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            nonce: false,
            nonce_key: None,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
        }
    }

    /// The accepted proof algorithms, for `WWW-Authenticate: DPoP algs="…"` and the
    /// `dpop_signing_alg_values_supported` metadata.
    pub fn algorithms(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.algorithms.iter().map(|&(name, _)| name)
    }

    /// The `algs` value of a `WWW-Authenticate: DPoP` challenge: the accepted algorithms,
    /// space-separated.
    #[must_use]
    pub fn algs_value(&self) -> String {
        self.algorithms().collect::<Vec<_>>().join(" ")
    }

    /// Whether proofs must carry a server nonce.
    #[must_use]
    pub fn requires_nonce(&self) -> bool {
        self.inner.nonce.is_some()
    }

    /// The nonce to send in `DPoP-Nonce` at `now`, when nonces are on.
    #[must_use]
    pub fn nonce(&self, now: SystemTime) -> Option<String> {
        let source = self.inner.nonce.as_ref()?;
        Some(source.issue(unix_secs(now)))
    }

    /// Check `proof` (the `DPoP` header's value) against `request`; see the
    /// [module docs](self) for the checks and their order.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
        now: SystemTime,
    ) -> Result<(), DpopError> {
        let inner = &*self.inner;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(DpopError::Malformed("the proof is too large"));
        }
        let mut parts = proof.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed("not a compact JWS"));
        };
        let raw_header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| DpopError::Malformed("the header is not base64url"))?;
        let header: ProofHeader = serde_json::from_slice(&raw_header).map_err(|_| {
            DpopError::Malformed("the header is not a JSON object with alg and jwk")
        })?;
        if !header.typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err(DpopError::Malformed("typ is not dpop+jwt"));
        }
        let alg = inner
            .algorithms
            .iter()
            .find(|(name, _)| *name == header.alg)
            .map(|&(_, alg)| alg)
            .ok_or(DpopError::UnsupportedAlgorithm)?;
        if header.jwk.is_private() {
            return Err(DpopError::Malformed("jwk holds a private key"));
        }
        let jwk: Jwk = serde_json::from_value(header.jwk.0)
            .map_err(|_| DpopError::Malformed("jwk is not a public key"))?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| DpopError::Malformed("jwk is not a public key"))?;
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => DpopError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => {
                    DpopError::Malformed("jwk does not suit alg")
                }
                _ => DpopError::Malformed(
                    "the claims are not a JSON object with jti, htm, htu and iat",
                ),
            })?
            .claims;
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(DpopError::Malformed("jti is empty or too long"));
        }
        if claims.htm != request.method.as_str() {
            return Err(DpopError::WrongMethod);
        }
        match (normalize_htu(&claims.htu), normalize_htu(request.url)) {
            (Some(got), Some(want)) if got == want => {}
            _ => return Err(DpopError::WrongUrl),
        }
        let now_secs = unix_secs(now);
        let window = inner.window.as_secs();
        let iat = claims.iat.as_secs();
        let ahead = window.min(MAX_FUTURE_SKEW.as_secs());
        if iat.saturating_add(window) < now_secs || iat > now_secs.saturating_add(ahead) {
            return Err(DpopError::Stale);
        }
        if let Some(source) = &inner.nonce {
            match &claims.nonce {
                Some(n) if source.accepts(n, now_secs) => {}
                _ => return Err(DpopError::UseNonce),
            }
        }
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(request.access_token.as_bytes()));
        if claims.ath.as_deref() != Some(ath.as_str()) {
            return Err(DpopError::WrongTokenHash);
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| DpopError::Malformed("jwk has no thumbprint"))?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            jkt.as_bytes(),
            request.jkt.as_bytes(),
        )) {
            return Err(DpopError::WrongKey);
        }
        let expires = iat.saturating_add(window);
        inner
            .replay
            .record(&jkt, &claims.jti, expires, now_secs)
            .map_err(|seen| match seen {
                Seen::Replayed => DpopError::Replayed,
                Seen::Full => DpopError::Busy,
            })
    }
}

impl DpopVerifierBuilder {
    /// The accepted proof algorithms by name (`ES256`, `ES384`, `EdDSA`, `RS256`, `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`). MAC algorithms are refused by [`build`](Self::build).
    pub fn algorithms<I, S>(mut self, names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut algorithms = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            let known = DEFAULT_ALGORITHMS
                .iter()
                .chain(&["ES384", "RS384", "RS512", "PS384", "PS512"])
                .find(|known| **known == name);
            let (Some(&known), Some(alg)) = (known, crate::jwt::algorithm_by_name(name)) else {
                return Err(ConfigError::new(
                    "dpop_algorithms",
                    format!("{name:?} is not an asymmetric JWS algorithm"),
                ));
            };
            if !algorithms.iter().any(|(n, _)| *n == known) {
                algorithms.push((known, alg));
            }
        }
        self.algorithms = algorithms;
        Ok(self)
    }

    /// How far in the past a proof's `iat` may be (default 60 s; ahead of now, at most
    /// [`MAX_FUTURE_SKEW`] or this, whichever is less). Accepted proofs are remembered until
    /// their `iat` plus this.
    pub fn iat_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many live proofs the replay cache holds (default [`DEFAULT_REPLAY_CAPACITY`]; about
    /// 50 bytes each). When it is full, new proofs are refused until entries expire.
    pub fn replay_capacity(mut self, proofs: usize) -> Self {
        self.replay_capacity = proofs;
        self
    }

    /// Require server-provided nonces (`MCP_DPOP_NONCE`): a proof without a current nonce is
    /// answered `use_dpop_nonce` with a fresh one in `DPoP-Nonce`.
    pub fn nonce(mut self, on: bool) -> Self {
        self.nonce = on;
        self
    }

    /// The key nonces are made with. Replicas behind one load balancer should share it;
    /// without it each process makes its own random key (a client sent to another replica is
    /// asked for that replica's nonce once).
    pub fn nonce_key(mut self, key: Secret) -> Self {
        self.nonce_key = Some(key);
        self
    }

    /// How long a nonce stays current (default 5 minutes; accepted for twice this).
    pub fn nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.nonce_lifetime = lifetime;
        self
    }

    /// The verifier.
    ///
    /// # Errors
    /// No algorithm (`dpop_algorithms`); an `iat` window of zero or over an hour
    /// (`dpop_iat_window`); a replay capacity of zero (`dpop_replay_capacity`); a nonce key
    /// under 32 bytes (`dpop_nonce_key`); a nonce lifetime under a second (`dpop_nonce_lifetime`);
    /// no randomness for the nonce key.
    pub fn build(self) -> Result<DpopVerifier, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "dpop_algorithms",
                "no algorithm is accepted",
            ));
        }
        if self.window.is_zero() || self.window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "dpop_iat_window",
                "must be between 1 second and 1 hour",
            ));
        }
        if self.replay_capacity == 0 {
            return Err(ConfigError::new(
                "dpop_replay_capacity",
                "must be at least 1",
            ));
        }
        if self.nonce_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "dpop_nonce_lifetime",
                "must be at least 1 second",
            ));
        }
        let nonce = if self.nonce {
            let key = match &self.nonce_key {
                Some(key) if key.expose().len() < 32 => {
                    return Err(ConfigError::new(
                        "dpop_nonce_key",
                        "must be at least 32 bytes",
                    ));
                }
                Some(key) => key.expose().as_bytes().to_vec(),
                None => {
                    let mut key = vec![0u8; 32];
                    getrandom::fill(&mut key).map_err(|e| {
                        ConfigError::new("dpop_nonce_key", format!("no randomness: {e}"))
                    })?;
                    key
                }
            };
            Some(NonceSource::new(&key, self.nonce_lifetime.as_secs()))
        } else {
            None
        };
        Ok(DpopVerifier {
            inner: Arc::new(Inner {
                algorithms: self.algorithms,
                window: self.window,
                replay: ReplayCache::new(self.replay_capacity),
                nonce,
            }),
        })
    }
}

/// The proof's JOSE header: what RFC 9449 requires, unknown members ignored.
#[derive(Deserialize)]
struct ProofHeader {
    typ: String,
    alg: String,
    jwk: RawJwk,
}

/// The `jwk` header member as sent, to look for private members before it is parsed.
#[derive(Deserialize)]
struct RawJwk(serde_json::Value);

impl RawJwk {
    fn is_private(&self) -> bool {
        match &self.0 {
            serde_json::Value::Object(members) => ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
                .iter()
                .any(|m| members.contains_key(*m)),
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: NumericDate,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A JSON number of seconds, integral or not, never negative.
struct NumericDate(f64);

impl NumericDate {
    fn as_secs(&self) -> u64 {
        // Saturating float-to-int conversion; negative and NaN become 0.
        self.0 as u64
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() && v >= 0.0 {
            Ok(Self(v))
        } else {
            Err(serde::de::Error::custom("iat is not a non-negative number"))
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
