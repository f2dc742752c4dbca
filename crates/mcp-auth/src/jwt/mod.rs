//! JSON Web Tokens: HS256 verification with rotation, signing for the CLI and tests, and (with the
//! `jwks` feature) asymmetric tokens from an issuer's JWKS.
//!
//! [`JwtVerifier`] accepts `HS256` (RFC 7518 §3.2) with configured secrets and, with a
//! `JwksKeySource` (cargo feature `jwks`), the asymmetric algorithms that source allows.
//! It follows the JWT best current practices of RFC 8725: the token's `alg` only routes it to a
//! key source that was configured for that algorithm and the key must be of the matching type
//! (an `HS256` token never meets a public key), `none` in any spelling is refused, `crit` headers
//! are refused, `jku` / `x5u` / `jwk` / `x5c` headers are refused (never followed), HS256 keys
//! must be at least 256 bits, and `exp` is required.
//!
//! How the work is split:
//!
//! 1. [`preparse`] does the cheap checks before any cryptography: size, shape, strict base64url,
//!    a strict parse of the JOSE header (duplicate members are refused), `alg`, `crit`, `typ`.
//! 2. `jsonwebtoken` checks the HMAC signature with each configured secret in turn (the first
//!    signs, all verify, so secrets can be rotated), or the signature with the JWKS key named by
//!    `kid`, and decodes the claims into a strict struct (duplicated or mistyped claims are
//!    refused). It performs no time or claim checks here.
//! 3. [`JwtVerifier::verify`] checks `exp`, `nbf`, `iat`, `sub`, `iss` and `aud` itself against
//!    the `now` it is given, so tests are deterministic and no system clock is read inside.
//!
//! Decisions worth knowing:
//!
//! - A secret is used as the UTF-8 bytes of the configured string (it is not base64-decoded),
//!   which is what PyJWT and most HS256 deployments do with `MCP_JWT_SECRET`.
//! - NumericDate claims (`exp`, `nbf`, `iat`) must be non-negative JSON integers. RFC 7519 also
//!   allows fractional seconds, but no mainstream issuer emits them, and a strict type keeps
//!   `"exp": "9999999999"` or `1.5e9` from ever being coerced: they are
//!   [`AuthFailure::InvalidClaims`].
//! - Without a configured audience any `aud` is accepted (and recorded in the principal);
//!   configure one in production (RFC 8725 §3.9).
//! - Scopes are the union of the `scope` string (space-separated, RFC 8693 / RFC 9068) and the
//!   `scopes` and `permissions` arrays some issuers use.

use std::collections::HashSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mcp_core::config::{ConfigError, Secret};
use mcp_core::{AuthFailure, Principal, PrincipalKind, Scopes};

mod claims;
mod header;
mod sign;

use claims::{ClaimSet, Claims, decode_with};
pub(crate) use header::algorithm_by_name;
use header::parse_header;
pub use header::{looks_like_jwt, preparse};
pub use sign::TokenRequest;

/// The default allowance for clock skew between the issuer and this server, applied to `exp`,
/// `nbf` and `iat`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest token accepted, in bytes (8 KiB). Larger tokens are refused as
/// [`AuthFailure::TokenTooLarge`] before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The shortest secret accepted, in bytes: an HS256 key must be at least 256 bits
/// (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

const SETTING_SECRET: &str = "jwt_secret";
const SETTING_AUDIENCE: &str = "jwt_audience";
const SETTING_ISSUER: &str = "jwt_issuer";
const SETTING_BACKEND: &str = "jwt_backend";

/// Verifies JWTs (HS256 with secrets; asymmetric ones with a JWKS source) and turns them into a
/// [`Principal`]; also signs HS256 tokens (for the CLI and tests). Cloning is cheap: the
/// validated configuration sits behind an `Arc`. `Debug` never prints the secrets.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_auth::jwt::{JwtVerifier, TokenRequest};
/// use mcp_auth::mcp_core::{AuthFailure, config::Secret};
///
/// let secret = Secret::new("an-example-secret-of-at-least-32-bytes");
/// let verifier = JwtVerifier::builder()
///     .secret(secret.clone())
///     .audience("https://mcp.example.com/mcp")
///     .build()?;
///
/// // A fixed clock keeps the example deterministic; a server passes `SystemTime::now()`.
/// let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let token = verifier.sign(
///     &TokenRequest {
///         sub: "alice".into(),
///         audience: vec!["https://mcp.example.com/mcp".into()],
///         issuer: None,
///         ttl: Duration::from_secs(900),
///         scopes: vec!["notes:read".into()],
///     },
///     now,
/// )?;
///
/// let principal = verifier.verify(&token, now).map_err(|f| f.to_string())?;
/// assert_eq!(principal.id(), "alice");
/// assert!(principal.has_scope("notes:read"));
/// assert_eq!(principal.expires_at(), Some(now + Duration::from_secs(900)));
///
/// // The same secret, but a server with another audience: the token is not for it.
/// let other = JwtVerifier::builder()
///     .secret(secret)
///     .audience("https://other.example.com/mcp")
///     .build()?;
/// assert_eq!(other.verify(&token, now), Err(AuthFailure::WrongAudience));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// The first secret: signs. `None` for a JWKS-only verifier.
    encoding: Option<EncodingKey>,
    /// Every secret, first one first: each verifies.
    decoding: Vec<DecodingKey>,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    /// Signature and `alg` only; every time and claim check is ours.
    validation: Validation,
    #[cfg(feature = "jwks")]
    jwks: Option<crate::jwks::JwksKeySource>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secrets", &self.inner.decoding.len())
            .field("jwks", &self.has_jwks())
            .field("audiences", &self.inner.audiences)
            .field("issuer", &self.inner.issuer)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtVerifier`]; see [`JwtVerifier::builder`]. `Debug` never prints the secrets.
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtVerifierBuilder {
    secrets: Vec<Secret>,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    #[cfg(feature = "jwks")]
    jwks: Option<crate::jwks::JwksKeySource>,
}

impl JwtVerifierBuilder {
    /// Add a secret. The first one added signs; every one verifies, so a rotation configures the
    /// new secret first and keeps the old one until its tokens have expired. Each must be at least
    /// [`MIN_SECRET_BYTES`] bytes; its UTF-8 bytes are the HMAC key.
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Add several secrets in order (for example `MCP_JWT_SECRET` split on commas); see
    /// [`secret`](Self::secret).
    pub fn secrets<I>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = Secret>,
    {
        self.secrets.extend(secrets);
        self
    }

    /// Add an accepted audience (this server's resource identifier, e.g.
    /// `https://mcp.example.com/mcp`). Once any is set, tokens must carry an `aud` (a string or an
    /// array) naming one of them; one trailing slash is ignored on either side.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Also accept asymmetric tokens whose keys come from this JWKS source (feature `jwks`).
    /// With secrets too, each token is routed by its header's `alg`: `HS256` to the secrets, an
    /// algorithm the source allows to the source. Calling it again replaces the source.
    #[cfg(feature = "jwks")]
    pub fn jwks(mut self, source: crate::jwks::JwksKeySource) -> Self {
        self.jwks = Some(source);
        self
    }

    /// Require this exact `iss`. Calling it again replaces the issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The allowance for clock skew on `exp`, `nbf` and `iat`; [`DEFAULT_LEEWAY`] unless set.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Validate the settings and run a sign/verify self-test with the first secret (or a fixed
    /// test key for a JWKS-only verifier).
    ///
    /// # Errors
    /// - `jwt_secret`: no secret (and no JWKS source), or a secret shorter than
    ///   [`MIN_SECRET_BYTES`] (the error never contains a secret);
    /// - `jwt_audience` / `jwt_issuer`: an empty value;
    /// - `jwt_backend`: the self-test failed or panicked, which means `jsonwebtoken` was built
    ///   with no crypto backend or with both (exactly one of its `rust_crypto` / `aws_lc_rs`
    ///   features must be enabled).
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        #[cfg(feature = "jwks")]
        let has_jwks = self.jwks.is_some();
        #[cfg(not(feature = "jwks"))]
        let has_jwks = false;
        if self.secrets.is_empty() && !has_jwks {
            return Err(ConfigError::new(
                SETTING_SECRET,
                "no secret configured: HS256 needs at least one secret of 32 bytes or more",
            ));
        }
        let count = self.secrets.len();
        for (index, secret) in self.secrets.iter().enumerate() {
            if secret.expose().len() < MIN_SECRET_BYTES {
                let which = if count == 1 {
                    "the secret".to_owned()
                } else {
                    format!("secret {} of {count}", index + 1)
                };
                return Err(ConfigError::new(
                    SETTING_SECRET,
                    format!(
                        "{which} is shorter than {MIN_SECRET_BYTES} bytes: an HS256 key must be \
                         at least 256 bits (RFC 7518 §3.2); generate one with \
                         `openssl rand -base64 32`"
                    ),
                ));
            }
        }
        for audience in &self.audiences {
            if audience.trim().is_empty() {
                return Err(ConfigError::new(SETTING_AUDIENCE, "must not be empty")
                    .with_value(audience.as_str()));
            }
        }
        if let Some(issuer) = &self.issuer
            && issuer.trim().is_empty()
        {
            return Err(
                ConfigError::new(SETTING_ISSUER, "must not be empty").with_value(issuer.as_str())
            );
        }

        // A JWKS-only verifier still checks the backend (a missing one panics on first use).
        let first = self.secrets.first().map(|s| s.expose().as_bytes());
        let test_key = first.unwrap_or(b"mcp-auth-backend-self-test-key-0123456789");
        guarded_self_test(|| self_test(test_key))?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;

        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                encoding: first.map(EncodingKey::from_secret),
                decoding: self
                    .secrets
                    .iter()
                    .map(|s| DecodingKey::from_secret(s.expose().as_bytes()))
                    .collect(),
                audiences: self.audiences,
                issuer: self.issuer,
                leeway: self.leeway,
                validation,
                #[cfg(feature = "jwks")]
                jwks: self.jwks,
            }),
        })
    }
}

/// Run `test`, turning an error or a panic into the `jwt_backend` configuration error.
fn guarded_self_test<F>(test: F) -> Result<(), ConfigError>
where
    F: FnOnce() -> Result<(), String>,
{
    let failure = match catch_unwind(AssertUnwindSafe(test)) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(why)) => why,
        Err(_) => "it panicked".to_owned(),
    };
    Err(ConfigError::new(
        SETTING_BACKEND,
        format!(
            "the HS256 sign/verify self-test failed ({failure}): the jsonwebtoken crypto backend \
             is missing or doubled; exactly one of its `rust_crypto` / `aws_lc_rs` features must \
             be enabled"
        ),
    ))
}

/// Sign a token with `secret`, verify it, and check that another key does not verify it.
fn self_test(secret: &[u8]) -> Result<(), String> {
    const SUB: &str = "mcp-auth-self-test";
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;

    let claims = serde_json::json!({ "sub": SUB, "exp": 0 });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| format!("signing failed: {e}"))?;
    let decoded =
        jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|e| format!("verifying failed: {e}"))?;
    if decoded.claims.0.sub.as_deref() != Some(SUB) {
        return Err("the decoded claims differ from the signed ones".to_owned());
    }
    // A different key must not verify. (Flip a bit rather than append: HMAC zero-pads short keys,
    // so `k` and `k || 0x00` are the same key.)
    let mut other = secret.to_vec();
    if let Some(byte) = other.first_mut() {
        *byte ^= 1;
    }
    match jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_secret(&other), &validation) {
        Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => Ok(()),
        Err(e) => Err(format!("a wrong key failed unexpectedly: {e}")),
        Ok(_) => Err("a wrong key verified the signature".to_owned()),
    }
}

impl JwtVerifier {
    /// Start configuring a verifier: at least one [`secret`](JwtVerifierBuilder::secret) (or,
    /// with the `jwks` feature, a JWKS source) is required.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            secrets: Vec::new(),
            audiences: Vec::new(),
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            #[cfg(feature = "jwks")]
            jwks: None,
        }
    }

    /// The JWKS source, when one is configured.
    #[cfg(feature = "jwks")]
    pub fn jwks(&self) -> Option<&crate::jwks::JwksKeySource> {
        self.inner.jwks.as_ref()
    }

    /// Whether asymmetric tokens are accepted (a JWKS source is configured).
    pub fn has_jwks(&self) -> bool {
        #[cfg(feature = "jwks")]
        return self.inner.jwks.is_some();
        #[cfg(not(feature = "jwks"))]
        false
    }

    /// Whether HS256 tokens are accepted (at least one secret is configured).
    pub fn has_secrets(&self) -> bool {
        !self.inner.decoding.is_empty()
    }

    /// The accepted audiences, as configured (empty when `aud` is not checked).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.inner.audiences.iter().map(String::as_str)
    }

    /// The required issuer, if one is configured.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The allowance for clock skew.
    pub fn leeway(&self) -> Duration {
        self.inner.leeway
    }

    /// Verify `token` at time `now` and return who it names.
    ///
    /// In order: [`preparse`] (with the JWKS source's algorithms accepted too); the signature with
    /// each secret ([`AuthFailure::BadSignature`] when none verifies) for `HS256`, or with the
    /// JWKS key named by `kid` ([`AuthFailure::UnknownKey`] when the set has none, which also asks
    /// the source for an early refresh; [`AuthFailure::UnsupportedAlgorithm`] when that key's type
    /// does not fit `alg`); the claims' types (duplicated, mistyped or missing `sub` / `exp` →
    /// [`AuthFailure::InvalidClaims`]); `exp` ([`AuthFailure::Expired`] when
    /// `now >= exp + leeway`), `nbf` ([`AuthFailure::NotYetValid`] when `now + leeway < nbf`),
    /// `iat` ([`AuthFailure::IssuedInFuture`] when `iat > now + leeway`); `iss`
    /// ([`AuthFailure::WrongIssuer`]) and `aud` ([`AuthFailure::WrongAudience`]) when configured.
    ///
    /// The principal's id is `sub`, its scopes the union of `scope`, `scopes` and `permissions`,
    /// its audience the token's `aud` values, and it expires at `exp`.
    ///
    /// # Errors
    /// The first check that fails, as above.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, AuthFailure> {
        let header = parse_header(token)?;
        let claims = match header.alg {
            Algorithm::HS256 if !self.inner.decoding.is_empty() => self.decode(token)?,
            #[cfg(feature = "jwks")]
            alg if alg != Algorithm::HS256 => match &self.inner.jwks {
                Some(source) => {
                    let (key, validation) = source.key_for(alg, header.kid.as_deref())?;
                    decode_with(token, &key.decoding, validation)?
                        .ok_or(AuthFailure::BadSignature)?
                }
                None => return Err(AuthFailure::UnsupportedAlgorithm),
            },
            _ => return Err(AuthFailure::UnsupportedAlgorithm),
        };
        self.check(claims, now)
    }

    /// The signature with each secret in turn, then the strict claims struct.
    fn decode(&self, token: &str) -> Result<ClaimSet, AuthFailure> {
        for key in &self.inner.decoding {
            if let Some(claims) = decode_with(token, key, &self.inner.validation)? {
                return Ok(claims);
            }
        }
        Err(AuthFailure::BadSignature)
    }

    /// Our checks on verified claims.
    fn check(&self, claims: ClaimSet, now: SystemTime) -> Result<Principal, AuthFailure> {
        let sub = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthFailure::InvalidClaims)?;
        let exp = claims.exp.ok_or(AuthFailure::InvalidClaims)?;
        let expires_at = UNIX_EPOCH
            .checked_add(exp.since_epoch())
            .ok_or(AuthFailure::InvalidClaims)?;

        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let leeway = self.inner.leeway;
        let now_plus_leeway = now.saturating_add(leeway);
        if now >= exp.since_epoch().saturating_add(leeway) {
            return Err(AuthFailure::Expired);
        }
        if let Some(nbf) = claims.nbf
            && now_plus_leeway < nbf.since_epoch()
        {
            return Err(AuthFailure::NotYetValid);
        }
        if let Some(iat) = claims.iat
            && iat.since_epoch() > now_plus_leeway
        {
            return Err(AuthFailure::IssuedInFuture);
        }

        if let Some(required) = &self.inner.issuer
            && claims.iss.as_deref() != Some(required.as_str())
        {
            return Err(AuthFailure::WrongIssuer);
        }
        let audience = claims.aud.map(|a| a.0).unwrap_or_default();
        if !self.inner.audiences.is_empty()
            && !audience.iter().any(|presented| {
                self.inner
                    .audiences
                    .iter()
                    .any(|ours| same_resource(ours, presented))
            })
        {
            return Err(AuthFailure::WrongAudience);
        }

        let mut seen = HashSet::new();
        let granted: Vec<String> = claims
            .scope
            .iter()
            .flat_map(|s| s.split(' '))
            .map(str::to_owned)
            .chain(claims.scopes.into_iter().flatten())
            .chain(claims.permissions.into_iter().flatten())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && seen.insert(s.clone()))
            .collect();

        // A key-bound token (RFC 9449 §6.1): the layer asks for a proof of that key.
        let jkt = match claims.cnf.map(|cnf| cnf.jkt) {
            Some(Some(jkt)) if jkt.is_empty() => return Err(AuthFailure::InvalidClaims),
            Some(jkt) => jkt,
            None => None,
        };
        let principal = Principal::builder(sub, PrincipalKind::Jwt)
            .scope_set(Scopes::new(granted))
            .audience(audience)
            .expires_at(expires_at);
        Ok(match jkt {
            Some(jkt) => principal.confirmation_jkt(jkt),
            None => principal,
        }
        .build())
    }
}

/// Whether a configured audience and a presented one name the same resource: equal, ignoring
/// one trailing slash on either side. Empty values never match.
fn same_resource(ours: &str, presented: &str) -> bool {
    fn trim(s: &str) -> &str {
        s.strip_suffix('/').unwrap_or(s)
    }
    !ours.is_empty() && !presented.is_empty() && trim(ours) == trim(presented)
}

#[cfg(test)]
mod tests;
