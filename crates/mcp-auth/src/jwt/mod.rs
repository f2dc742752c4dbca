//! JSON Web Tokens: HS256 verification with rotation, signing for the CLI and tests, and (with the
//! `jwks` feature) asymmetric tokens from an issuer's JWKS.
//!
//! [`JwtVerifier`] accepts `HS256` (RFC 7518 §3.2) with configured secrets and, with a
//! [`JwksKeySource`](crate::jwks::JwksKeySource), the asymmetric algorithms that source allows.
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

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mcp_core::config::{ConfigError, Secret};
use mcp_core::{AuthFailure, Principal, PrincipalKind, Scopes};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

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

        Ok(Principal::builder(sub, PrincipalKind::Jwt)
            .scope_set(Scopes::new(granted))
            .audience(audience)
            .expires_at(expires_at)
            .build())
    }

    /// Sign an HS256 token with the first secret: `sub`, `aud` (a string for one audience, an
    /// array for several, omitted for none), `iss` when given, `iat` = `nbf` = `now`,
    /// `exp` = `now + ttl` (whole seconds), and `scope` (space-separated, omitted when empty).
    ///
    /// # Errors
    /// Names the refused field: `sub` (empty), `audience` / `issuer` (an empty value), `scopes`
    /// (an empty scope or one containing whitespace), `ttl` (under one second, or too large),
    /// `now` (before 1970), or `jwt_backend` when signing itself fails.
    pub fn sign(&self, req: &TokenRequest, now: SystemTime) -> Result<String, ConfigError> {
        if req.sub.is_empty() {
            return Err(ConfigError::new("sub", "must not be empty"));
        }
        if req.audience.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::new("audience", "entries must not be empty"));
        }
        if req.issuer.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return Err(ConfigError::new("issuer", "must not be empty"));
        }
        if let Some(bad) = req
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(ConfigError::new(
                "scopes",
                "each scope must be non-empty and contain no whitespace",
            )
            .with_value(bad.as_str()));
        }
        let ttl = req.ttl.as_secs();
        if ttl == 0 {
            return Err(ConfigError::new("ttl", "must be at least one second"));
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConfigError::new("now", "is before the Unix epoch"))?
            .as_secs();
        let exp = iat
            .checked_add(ttl)
            .filter(|&exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)).is_some())
            .ok_or_else(|| ConfigError::new("ttl", "is too large"))?;

        let aud = match req.audience.as_slice() {
            [] => None,
            [one] => Some(AudienceOut::One(one)),
            many => Some(AudienceOut::Many(many)),
        };
        let scope = (!req.scopes.is_empty()).then(|| req.scopes.join(" "));
        self.encode(&SignedClaims {
            sub: &req.sub,
            aud,
            iss: req.issuer.as_deref(),
            iat,
            nbf: iat,
            exp,
            scope,
        })
    }

    /// Sign arbitrary claims (a JSON object) as an HS256 token with the first secret, as is: no
    /// claim is added or checked. For tests that need unusual claims.
    ///
    /// # Errors
    /// `claims` when `claims` is not a JSON object; `jwt_backend` when signing fails.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> Result<String, ConfigError> {
        if !claims.is_object() {
            return Err(ConfigError::new("claims", "must be a JSON object"));
        }
        self.encode(claims)
    }

    fn encode<T: Serialize>(&self, claims: &T) -> Result<String, ConfigError> {
        let key = self.inner.encoding.as_ref().ok_or_else(|| {
            ConfigError::new(
                SETTING_SECRET,
                "no secret to sign with: this verifier only checks tokens from a JWKS",
            )
        })?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| ConfigError::new(SETTING_BACKEND, format!("signing failed: {e}")))
    }
}

/// The signature with one key, then the strict claims struct: `Ok(None)` when the signature does
/// not verify.
fn decode_with(
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

/// What to put in a token signed by [`JwtVerifier::sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The subject: the principal id the token will authenticate as.
    pub sub: String,
    /// The audiences (`aud`): a string when one, an array when several, omitted when none.
    pub audience: Vec<String>,
    /// The issuer (`iss`), if any.
    pub issuer: Option<String>,
    /// How long the token is valid from `now`, in whole seconds (at least one).
    pub ttl: Duration,
    /// The granted scopes, joined with spaces into `scope`; omitted when empty.
    pub scopes: Vec<String>,
}

impl TokenRequest {
    /// A request for `sub` valid for `ttl`, with no audience, issuer or scopes.
    pub fn new(sub: impl Into<String>, ttl: Duration) -> Self {
        TokenRequest {
            sub: sub.into(),
            audience: Vec::new(),
            issuer: None,
            ttl,
            scopes: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct SignedClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<AudienceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AudienceOut<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// Whether a configured audience and a presented one name the same resource: equal, ignoring
/// one trailing slash on either side. Empty values never match.
fn same_resource(ours: &str, presented: &str) -> bool {
    fn trim(s: &str) -> &str {
        s.strip_suffix('/').unwrap_or(s)
    }
    !ours.is_empty() && !presented.is_empty() && trim(ours) == trim(presented)
}

// ---------------------------------------------------------------------------------------------
// Cheap checks before any cryptography
// ---------------------------------------------------------------------------------------------

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
/// [`JwtVerifier::verify`] runs the same checks but also lets through the asymmetric algorithms
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
struct TokenHeader {
    alg: Algorithm,
    /// Only for asymmetric algorithms.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    kid: Option<String>,
}

/// The preparse checks, accepting every algorithm this crate can verify (exact names only).
fn parse_header(token: &str) -> Result<TokenHeader, AuthFailure> {
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

/// An asymmetric algorithm name this crate can verify (exact case).
fn asymmetric_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn is_accepted_typ(typ: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    bare.eq_ignore_ascii_case("JWT") || bare.eq_ignore_ascii_case("at+jwt")
}

/// Exactly three dot-separated segments.
fn segments(token: &str) -> Option<(&str, &str, &str)> {
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
fn is_canonical_b64url(segment: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// The claims we read, from a JSON object only (the derive alone would also accept an array).
struct Claims(ClaimSet);

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
/// "sub":"admin"}`) and any of them with the wrong type; other members are ignored.
#[derive(Deserialize)]
struct ClaimSet {
    sub: Option<String>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    iss: Option<String>,
    aud: Option<Audience>,
    scope: Option<String>,
    scopes: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
}

/// A NumericDate (RFC 7519 §2) restricted to a non-negative JSON integer: strings, fractions and
/// exponents (`1.5e9`) are refused.
#[derive(Clone, Copy)]
struct NumericDate(u64);

impl NumericDate {
    fn since_epoch(self) -> Duration {
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
struct Audience(Vec<String>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::json;
    use sha2::Sha256;

    const SECRET: &str = "current-secret-0123456789-abcdefghijklmnop";
    const OLD_SECRET: &str = "previous-secret-0123456789-abcdefghijklmno";
    const AUD: &str = "https://mcp.example.com/mcp";
    const ISS: &str = "https://issuer.example.com";
    const T: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T)
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience(AUD)
            .build()
            .unwrap()
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `base64url(header).base64url(payload).HMAC-SHA256(secret, signing input)`, with the header
    /// and payload bytes exactly as given.
    fn hand_token(header: &str, payload: &str, secret: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(mac.finalize().into_bytes()))
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    /// Valid claims at `now` with `extra` merged over them (a `null` removes a claim).
    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut base = json!({
            "sub": "alice",
            "aud": AUD,
            "iat": T,
            "nbf": T,
            "exp": T + 600,
            "scope": "notes:read",
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    base.remove(k);
                } else {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        base
    }

    fn verify_claims(extra: serde_json::Value) -> Result<Principal, AuthFailure> {
        let v = verifier();
        v.verify(&v.sign_claims(&claims(extra)).unwrap(), now())
    }

    #[test]
    fn valid_token_yields_principal() {
        let v = verifier();
        let token = v
            .sign(
                &TokenRequest {
                    sub: "alice".into(),
                    audience: vec![AUD.into()],
                    issuer: None,
                    ttl: Duration::from_secs(900),
                    scopes: vec!["notes:read".into(), "search".into()],
                },
                now(),
            )
            .unwrap();
        assert!(looks_like_jwt(&token));
        let p = v.verify(&token, now()).unwrap();
        assert_eq!(p.id(), "alice");
        assert_eq!(p.kind(), PrincipalKind::Jwt);
        assert_eq!(
            p.scopes().iter().collect::<Vec<_>>(),
            ["notes:read", "search"]
        );
        assert!(p.has_scope("search:anything"));
        assert!(!p.has_scope("notes:write"));
        assert_eq!(p.audience().collect::<Vec<_>>(), [AUD]);
        assert_eq!(p.expires_at(), Some(now() + Duration::from_secs(900)));
    }

    #[test]
    fn signed_claims_have_the_documented_shape() {
        let v = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .build()
            .unwrap();
        let payload = |req: &TokenRequest| -> serde_json::Value {
            let token = v.sign(req, now()).unwrap();
            let (header, payload, _) = segments(&token).unwrap();
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
            assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
        };
        let mut req = TokenRequest::new("bob", Duration::from_secs(60));
        assert_eq!(
            payload(&req),
            json!({"sub": "bob", "iat": T, "nbf": T, "exp": T + 60})
        );
        req.audience = vec!["a".into()];
        req.issuer = Some(ISS.into());
        req.scopes = vec!["x".into(), "y:z".into()];
        assert_eq!(
            payload(&req),
            json!({"sub": "bob", "aud": "a", "iss": ISS, "iat": T, "nbf": T, "exp": T + 60,
                   "scope": "x y:z"})
        );
        req.audience = vec!["a".into(), "b".into()];
        assert_eq!(payload(&req)["aud"], json!(["a", "b"]));
    }

    #[test]
    fn sign_refuses_bad_requests() {
        let v = verifier();
        let ok = TokenRequest::new("bob", Duration::from_secs(60));
        let setting = |req: TokenRequest| v.sign(&req, now()).unwrap_err().setting().to_owned();
        assert_eq!(
            setting(TokenRequest {
                sub: String::new(),
                ..ok.clone()
            }),
            "sub"
        );
        assert_eq!(
            setting(TokenRequest {
                ttl: Duration::from_millis(999),
                ..ok.clone()
            }),
            "ttl"
        );
        assert_eq!(
            setting(TokenRequest {
                ttl: Duration::MAX,
                ..ok.clone()
            }),
            "ttl"
        );
        assert_eq!(
            setting(TokenRequest {
                scopes: vec!["a b".into()],
                ..ok.clone()
            }),
            "scopes"
        );
        assert_eq!(
            setting(TokenRequest {
                audience: vec![String::new()],
                ..ok.clone()
            }),
            "audience"
        );
        assert_eq!(
            setting(TokenRequest {
                issuer: Some(" ".into()),
                ..ok.clone()
            }),
            "issuer"
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(v.sign(&ok, before_epoch).unwrap_err().setting(), "now");
        assert_eq!(v.sign_claims(&json!([1])).unwrap_err().setting(), "claims");
    }

    #[test]
    fn wrong_secret_is_bad_signature() {
        let other = JwtVerifier::builder()
            .secret(Secret::new("another-secret-0123456789-abcdefghijklmn"))
            .build()
            .unwrap();
        let token = other.sign_claims(&claims(json!({}))).unwrap();
        assert_eq!(
            verifier().verify(&token, now()),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn tampered_or_missing_signature_is_bad_signature() {
        let v = verifier();
        let token = v.sign_claims(&claims(json!({}))).unwrap();
        let (header, _, signature) = segments(&token).unwrap();
        let forged = format!(
            "{header}.{}.{signature}",
            b64(claims(json!({"sub": "admin"})).to_string())
        );
        assert_eq!(v.verify(&forged, now()), Err(AuthFailure::BadSignature));
        let (message, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            v.verify(&format!("{message}."), now()),
            Err(AuthFailure::BadSignature)
        );
        // A signature of the wrong length (a truncated one) is just a bad signature.
        assert_eq!(
            v.verify(&format!("{message}.AAAA"), now()),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn rotation_secret_verifies() {
        let rotated = JwtVerifier::builder()
            .secrets([Secret::new(SECRET), Secret::new(OLD_SECRET)])
            .audience(AUD)
            .build()
            .unwrap();
        let before_rotation = JwtVerifier::builder()
            .secret(Secret::new(OLD_SECRET))
            .build()
            .unwrap();
        let old_token = before_rotation.sign_claims(&claims(json!({}))).unwrap();
        assert_eq!(rotated.verify(&old_token, now()).unwrap().id(), "alice");
        let new_token = rotated.sign_claims(&claims(json!({}))).unwrap();
        assert_eq!(rotated.verify(&new_token, now()).unwrap().id(), "alice");
        // The new secret signs: a verifier with only the new secret accepts new tokens, not old.
        assert!(verifier().verify(&new_token, now()).is_ok());
        assert_eq!(
            verifier().verify(&old_token, now()),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn expiry_with_leeway() {
        assert!(
            verify_claims(json!({"exp": T - 10})).is_ok(),
            "within the 30 s leeway"
        );
        assert_eq!(
            verify_claims(json!({"exp": T - 31})),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            verify_claims(json!({"exp": T - 30})),
            Err(AuthFailure::Expired),
            "now >= exp + leeway"
        );
        assert_eq!(verify_claims(json!({"exp": 0})), Err(AuthFailure::Expired));

        let strict = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .leeway(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(strict.leeway(), Duration::ZERO);
        let at = |exp: u64| strict.sign_claims(&claims(json!({"exp": exp}))).unwrap();
        assert_eq!(strict.verify(&at(T), now()), Err(AuthFailure::Expired));
        assert!(strict.verify(&at(T + 1), now()).is_ok());
        // Sub-second clocks: at T + 0.5 s a token expiring at T + 1 is still valid.
        let later = now() + Duration::from_millis(500);
        assert!(strict.verify(&at(T + 1), later).is_ok());
    }

    #[test]
    fn not_yet_valid_beyond_leeway() {
        assert_eq!(
            verify_claims(json!({"nbf": T + 31})),
            Err(AuthFailure::NotYetValid)
        );
        assert_eq!(
            verify_claims(json!({"nbf": T + 600})),
            Err(AuthFailure::NotYetValid)
        );
        assert!(verify_claims(json!({"nbf": T + 30})).is_ok());
        assert!(
            verify_claims(json!({"nbf": null})).is_ok(),
            "nbf is optional"
        );
    }

    #[test]
    fn issued_in_future_beyond_leeway() {
        assert_eq!(
            verify_claims(json!({"iat": T + 60})),
            Err(AuthFailure::IssuedInFuture)
        );
        assert!(verify_claims(json!({"iat": T + 20})).is_ok());
        assert!(
            verify_claims(json!({"iat": null})).is_ok(),
            "iat is optional"
        );
    }

    #[test]
    fn exp_is_required_and_an_integer() {
        assert_eq!(
            verify_claims(json!({"exp": null})),
            Err(AuthFailure::InvalidClaims)
        );
        for bad in [
            json!((T + 600).to_string()),
            json!(1.5e9),
            json!(1_800_000_600.0),
            json!(-1),
            json!(true),
            json!([T + 600]),
        ] {
            assert_eq!(
                verify_claims(json!({ "exp": bad })),
                Err(AuthFailure::InvalidClaims),
                "exp = {bad}"
            );
        }
        // nbf and iat have the same type.
        assert_eq!(
            verify_claims(json!({"nbf": "0"})),
            Err(AuthFailure::InvalidClaims)
        );
        assert_eq!(
            verify_claims(json!({"iat": 1.0})),
            Err(AuthFailure::InvalidClaims)
        );
        // Beyond what a SystemTime can hold.
        assert_eq!(
            verify_claims(json!({"exp": u64::MAX})),
            Err(AuthFailure::InvalidClaims)
        );
        // An exponent written in the raw JSON, bypassing serde_json's own number formatting.
        let raw = format!(r#"{{"sub":"alice","aud":"{AUD}","exp":18000006e2}}"#);
        let token = hand_token(HS256, &raw, SECRET);
        assert_eq!(
            verifier().verify(&token, now()),
            Err(AuthFailure::InvalidClaims)
        );
    }

    #[test]
    fn sub_is_required_non_empty_string() {
        for bad in [json!(null), json!(""), json!(42), json!(["alice"])] {
            assert_eq!(
                verify_claims(json!({ "sub": bad })),
                Err(AuthFailure::InvalidClaims),
                "sub = {bad}"
            );
        }
    }

    #[test]
    fn duplicated_claims_are_invalid() {
        let v = verifier();
        for payload in [
            format!(
                r#"{{"sub":"alice","sub":"admin","aud":"{AUD}","exp":{}}}"#,
                T + 600
            ),
            format!(
                r#"{{"sub":"alice","aud":"{AUD}","exp":{},"exp":{}}}"#,
                T - 100,
                T + 600
            ),
            format!(
                r#"{{"sub":"alice","aud":"x","aud":"{AUD}","exp":{}}}"#,
                T + 600
            ),
            format!(
                r#"{{"sub":"alice","aud":"{AUD}","exp":{},"scope":"a","scope":"admin"}}"#,
                T + 600
            ),
            // The same name spelled with an escape is the same member.
            format!(
                r#"{{"sub":"alice","s\u0075b":"admin","aud":"{AUD}","exp":{}}}"#,
                T + 600
            ),
        ] {
            let token = hand_token(HS256, &payload, SECRET);
            assert_eq!(
                v.verify(&token, now()),
                Err(AuthFailure::InvalidClaims),
                "{payload}"
            );
        }
        // The hand-built helper itself produces acceptable tokens.
        let fine = format!(
            r#"{{"sub":"alice","aud":"{AUD}","exp":{},"x":1,"x":2}}"#,
            T + 600
        );
        assert!(v.verify(&hand_token(HS256, &fine, SECRET), now()).is_ok());
    }

    #[test]
    fn claims_that_are_not_an_object_are_invalid() {
        let v = verifier();
        let as_array = format!(
            r#"["alice",{},null,null,null,"{AUD}",null,null,null]"#,
            T + 600
        );
        for payload in [
            "[]",
            "\"alice\"",
            "null",
            "{",
            "{\"sub\":\"a\"} x",
            &as_array,
        ] {
            let token = hand_token(HS256, payload, SECRET);
            assert_eq!(
                v.verify(&token, now()),
                Err(AuthFailure::InvalidClaims),
                "{payload}"
            );
        }
    }

    #[test]
    fn audience_is_checked() {
        assert_eq!(
            verify_claims(json!({"aud": null})),
            Err(AuthFailure::WrongAudience)
        );
        assert_eq!(
            verify_claims(json!({"aud": "https://other.example.com/mcp"})),
            Err(AuthFailure::WrongAudience)
        );
        assert_eq!(
            verify_claims(json!({"aud": []})),
            Err(AuthFailure::WrongAudience)
        );
        assert_eq!(
            verify_claims(json!({"aud": ""})),
            Err(AuthFailure::WrongAudience)
        );
        assert_eq!(
            verify_claims(json!({"aud": ["a", "b"]})),
            Err(AuthFailure::WrongAudience)
        );
        let p = verify_claims(json!({"aud": ["https://other.example.com", AUD]})).unwrap();
        assert_eq!(
            p.audience().collect::<Vec<_>>(),
            ["https://other.example.com", AUD]
        );
        assert_eq!(
            verify_claims(json!({"aud": 7})),
            Err(AuthFailure::InvalidClaims)
        );
        assert_eq!(
            verify_claims(json!({"aud": [7]})),
            Err(AuthFailure::InvalidClaims)
        );
        // Only a prefix is not the same resource.
        assert_eq!(
            verify_claims(json!({"aud": "https://mcp.example.com"})),
            Err(AuthFailure::WrongAudience)
        );
    }

    #[test]
    fn audience_ignores_one_trailing_slash_either_side() {
        assert!(verify_claims(json!({"aud": format!("{AUD}/")})).is_ok());
        let slashed = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience(format!("{AUD}/"))
            .build()
            .unwrap();
        let token = slashed.sign_claims(&claims(json!({}))).unwrap();
        assert!(slashed.verify(&token, now()).is_ok());
        // One slash is ignored on each side, not any number of them.
        let two = slashed
            .sign_claims(&claims(json!({"aud": format!("{AUD}//")})))
            .unwrap();
        assert_eq!(slashed.verify(&two, now()), Err(AuthFailure::WrongAudience));
        assert!(same_resource(AUD, &format!("{AUD}/")));
        assert!(!same_resource("/", ""));
    }

    #[test]
    fn any_audience_of_several_configured() {
        let v = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience("filesystem")
            .audience("memory")
            .build()
            .unwrap();
        assert_eq!(v.audiences().collect::<Vec<_>>(), ["filesystem", "memory"]);
        let token = v.sign_claims(&claims(json!({"aud": "memory"}))).unwrap();
        assert!(v.verify(&token, now()).is_ok());
        let token = v.sign_claims(&claims(json!({"aud": "git"}))).unwrap();
        assert_eq!(v.verify(&token, now()), Err(AuthFailure::WrongAudience));
    }

    #[test]
    fn without_configured_audience_aud_is_recorded_not_checked() {
        let v = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .build()
            .unwrap();
        let p = v
            .verify(
                &v.sign_claims(&claims(json!({"aud": "anything"}))).unwrap(),
                now(),
            )
            .unwrap();
        assert_eq!(p.audience().collect::<Vec<_>>(), ["anything"]);
        let p = v
            .verify(
                &v.sign_claims(&claims(json!({"aud": null}))).unwrap(),
                now(),
            )
            .unwrap();
        assert_eq!(p.audience().count(), 0);
    }

    #[test]
    fn issuer_is_checked_when_configured() {
        let v = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience(AUD)
            .issuer(ISS)
            .build()
            .unwrap();
        assert_eq!(v.issuer(), Some(ISS));
        let at = |extra| v.verify(&v.sign_claims(&claims(extra)).unwrap(), now());
        assert!(at(json!({"iss": ISS})).is_ok());
        assert_eq!(at(json!({})), Err(AuthFailure::WrongIssuer), "missing iss");
        assert_eq!(
            at(json!({"iss": "https://evil.example.com"})),
            Err(AuthFailure::WrongIssuer)
        );
        assert_eq!(
            at(json!({"iss": format!("{ISS}/")})),
            Err(AuthFailure::WrongIssuer)
        );
        assert_eq!(at(json!({"iss": 1})), Err(AuthFailure::InvalidClaims));
        // Without a configured issuer, any iss is fine.
        assert!(verify_claims(json!({"iss": "whoever"})).is_ok());
    }

    #[test]
    fn scopes_are_merged_from_scope_scopes_and_permissions() {
        let p = verify_claims(json!({
            "scope": "notes:read  search",
            "scopes": ["files:write", "search"],
            "permissions": ["admin:audit", ""],
        }))
        .unwrap();
        assert_eq!(
            p.scopes().iter().collect::<Vec<_>>(),
            ["notes:read", "search", "files:write", "admin:audit"]
        );
        let p = verify_claims(json!({"scope": null, "permissions": ["a"]})).unwrap();
        assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["a"]);
        let p = verify_claims(json!({"scope": null})).unwrap();
        assert!(p.scopes().is_empty());
        assert_eq!(
            verify_claims(json!({"scope": ["a"]})),
            Err(AuthFailure::InvalidClaims)
        );
        assert_eq!(
            verify_claims(json!({"scopes": "a b"})),
            Err(AuthFailure::InvalidClaims)
        );
        assert_eq!(
            verify_claims(json!({"permissions": [1]})),
            Err(AuthFailure::InvalidClaims)
        );
    }

    #[test]
    fn alg_none_in_any_case_is_unsupported() {
        let v = verifier();
        let payload = claims(json!({})).to_string();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let unsigned = format!("{}.{}.", b64(&header), b64(&payload));
            assert!(looks_like_jwt(&unsigned));
            assert_eq!(
                preparse(&unsigned),
                Err(AuthFailure::UnsupportedAlgorithm),
                "{alg}"
            );
            assert_eq!(
                v.verify(&unsigned, now()),
                Err(AuthFailure::UnsupportedAlgorithm)
            );
            // Signed with our secret all the same: still refused.
            let signed = hand_token(&header, &payload, SECRET);
            assert_eq!(
                v.verify(&signed, now()),
                Err(AuthFailure::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn other_algorithms_are_unsupported() {
        let v = verifier();
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&hs384, now()),
            Err(AuthFailure::UnsupportedAlgorithm)
        );
        let payload = claims(json!({})).to_string();
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"HS256 "}"#,
            r#"{"alg":""}"#,
            r#"{"alg":null}"#,
            r#"{"alg":256}"#,
            r#"{"alg":["HS256"]}"#,
        ] {
            let token = hand_token(header, &payload, SECRET);
            assert_eq!(
                v.verify(&token, now()),
                Err(AuthFailure::UnsupportedAlgorithm),
                "{header}"
            );
        }
        // No alg at all is not a JWS header.
        let token = hand_token(r#"{"typ":"JWT"}"#, &payload, SECRET);
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::MalformedCredential)
        );
    }

    #[test]
    fn crit_header_is_refused() {
        let v = verifier();
        let payload = claims(json!({})).to_string();
        for header in [
            r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
        ] {
            let token = hand_token(header, &payload, SECRET);
            assert_eq!(
                v.verify(&token, now()),
                Err(AuthFailure::CriticalHeader),
                "{header}"
            );
        }
    }

    #[test]
    fn typ_must_be_jwt_or_at_jwt() {
        let v = verifier();
        let payload = claims(json!({})).to_string();
        for typ in [
            "JWT",
            "jwt",
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/JWT",
        ] {
            let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
            assert!(
                v.verify(&hand_token(&header, &payload, SECRET), now())
                    .is_ok(),
                "{typ}"
            );
        }
        assert!(
            v.verify(&hand_token(r#"{"alg":"HS256"}"#, &payload, SECRET), now())
                .is_ok()
        );
        for typ in [
            r#""JWS""#,
            r#""""#,
            r#""JWT ""#,
            r#""application/""#,
            "1",
            "null",
        ] {
            let header = format!(r#"{{"alg":"HS256","typ":{typ}}}"#);
            assert_eq!(
                v.verify(&hand_token(&header, &payload, SECRET), now()),
                Err(AuthFailure::MalformedCredential),
                "{typ}"
            );
        }
    }

    #[test]
    fn duplicated_header_members_are_malformed() {
        let v = verifier();
        let payload = claims(json!({})).to_string();
        for header in [
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"none","alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
            r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
            r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
        ] {
            let token = hand_token(header, &payload, SECRET);
            assert_eq!(
                preparse(&token),
                Err(AuthFailure::MalformedCredential),
                "{header}"
            );
            assert_eq!(
                v.verify(&token, now()),
                Err(AuthFailure::MalformedCredential)
            );
        }
    }

    #[test]
    fn header_jsonwebtoken_refuses_is_malformed() {
        // Passes our preparse (unknown members are fine) but jsonwebtoken's header type wants a
        // string `kid`: the refusal must not be mistaken for a claims error.
        let v = verifier();
        let token = hand_token(
            r#"{"alg":"HS256","kid":5}"#,
            &claims(json!({})).to_string(),
            SECRET,
        );
        assert_eq!(preparse(&token), Ok(()));
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::MalformedCredential)
        );
        // Unknown members are fine.
        let token = hand_token(
            r#"{"alg":"HS256","kid":"k1","x-custom":{"a":[1,2]}}"#,
            &claims(json!({})).to_string(),
            SECRET,
        );
        assert!(v.verify(&token, now()).is_ok());
    }

    #[test]
    fn token_too_large() {
        let v = verifier();
        let big = "x".repeat(9 * 1024);
        let token = v.sign_claims(&claims(json!({ "pad": big }))).unwrap();
        assert!(token.len() > MAX_TOKEN_BYTES);
        assert_eq!(preparse(&token), Err(AuthFailure::TokenTooLarge));
        assert_eq!(v.verify(&token, now()), Err(AuthFailure::TokenTooLarge));
        assert_eq!(
            preparse(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthFailure::TokenTooLarge)
        );
        // Right at the limit is fine.
        let base = v.sign_claims(&claims(json!({ "pad": "" }))).unwrap().len();
        // Each 3 bytes of padding add 4 base64 characters.
        let pad = "y".repeat((MAX_TOKEN_BYTES - base) / 4 * 3);
        let token = v.sign_claims(&claims(json!({ "pad": pad }))).unwrap();
        assert!(token.len() <= MAX_TOKEN_BYTES && token.len() > MAX_TOKEN_BYTES - 4);
        assert!(v.verify(&token, now()).is_ok());
    }

    #[test]
    fn garbage_is_malformed() {
        let v = verifier();
        let good = v.sign_claims(&claims(json!({}))).unwrap();
        let (h, p, s) = segments(&good).unwrap();
        let padded_header = base64::engine::general_purpose::URL_SAFE.encode(r#"{"alg":"HS256" }"#);
        assert!(padded_header.ends_with('='));
        let std_alphabet = format!("{h}.+{}.{s}", &p[1..]);
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{h}.{p}.{s}."),
            format!("{h}..{s}"),
            format!(".{p}.{s}"),
            "!!!.b.c".into(),
            format!("{h}.{p}.{s}="),
            format!("{padded_header}.{p}.{s}"),
            std_alphabet,
            format!("{h} .{p}.{s}"),
            format!("{h}.{p}.{s}\n"),
            // Length 1 mod 4 cannot be base64; non-zero trailing bits are not canonical.
            format!("{h}.abcde.{s}"),
            format!("{h}.{p}.{}B", &s[..s.len() - 1]),
            // Header that is not a JSON object, or not JSON.
            format!("{}.{p}.{s}", b64("[]")),
            format!("{}.{p}.{s}", b64("\"HS256\"")),
            format!("{}.{p}.{s}", b64(r#"{"alg":"HS256"} x"#)),
            format!("{}.{p}.{s}", b64(r#"{"alg":"HS256""#)),
            format!("{}.{p}.{s}", b64([0xff, 0xfe, 0x7b, 0x7d])),
            format!(
                "{}.{p}.{s}",
                b64(format!("{}1{}", "[".repeat(200), "]".repeat(200)))
            ),
        ];
        for token in &cases {
            assert_eq!(
                preparse(token),
                Err(AuthFailure::MalformedCredential),
                "{token:?}"
            );
            assert_eq!(
                v.verify(token, now()),
                Err(AuthFailure::MalformedCredential),
                "{token:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_header_member() {
        // serde_json skips an unknown member without recursing, so the preparse accepts it;
        // jsonwebtoken's header type keeps unknown members as values, which stops at serde_json's
        // recursion limit: refused as malformed, without a stack overflow.
        let nested = format!(
            r#"{{"alg":"HS256","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let token = hand_token(&nested, &claims(json!({})).to_string(), SECRET);
        assert_eq!(preparse(&token), Ok(()));
        assert_eq!(
            verifier().verify(&token, now()),
            Err(AuthFailure::MalformedCredential)
        );
    }

    #[test]
    fn preparse_never_panics_on_odd_input() {
        let h = b64(HS256);
        let inputs = [
            "\u{0}.\u{0}.\u{0}".to_owned(),
            "é.é.é".into(),
            "....".into(),
            format!("{h}.{h}.{h}"),
            format!("{}.e30.", b64("{}")),
            format!("{}.e30.", b64(r#"{"alg":{"alg":"HS256"}}"#)),
            format!("{}.e30.", b64("{\"alg\":\"HS256\",\"typ\":\"\u{1F600}\"}")),
            format!("{}.e30.", b64(r#"{"alg":"\ud800"}"#)),
        ];
        for input in &inputs {
            let _ = preparse(input);
            let _ = looks_like_jwt(input);
            let _ = verifier().verify(input, now());
        }
        // Every prefix of a good token.
        let good = verifier().sign_claims(&claims(json!({}))).unwrap();
        for end in 0..good.len() {
            let _ = verifier().verify(&good[..end], now());
        }
    }

    #[test]
    fn canonical_base64_check_agrees_with_the_base64_crate() {
        let alphabet: Vec<char> =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/."
                .chars()
                .collect();
        let mut checked = 0;
        for &a in &alphabet {
            for &b in &alphabet {
                for prefix in ["", "QUJD", "Q"] {
                    for candidate in [
                        format!("{prefix}{a}"),
                        format!("{prefix}{a}{b}"),
                        format!("{prefix}A{a}{b}"),
                    ] {
                        assert_eq!(
                            is_canonical_b64url(&candidate),
                            URL_SAFE_NO_PAD.decode(&candidate).is_ok(),
                            "{candidate:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
        assert!(is_canonical_b64url(""));
    }

    #[test]
    fn looks_like_jwt_cases() {
        let token = verifier().sign_claims(&claims(json!({}))).unwrap();
        assert!(looks_like_jwt(&token));
        assert!(looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("a-_.b.c"));
        assert!(
            looks_like_jwt("a.b."),
            "unsigned tokens go to the JWT path to be refused"
        );
        for not in [
            "",
            "mcp_0123456789abcdef",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            "..",
            "a.b.c=",
            "a+b.c.d",
            "a/b.c.d",
            "a b.c.d",
            "sk-live.key with.spaces",
        ] {
            assert!(!looks_like_jwt(not), "{not:?}");
        }
    }

    #[test]
    fn builder_errors_name_the_setting_and_hide_the_secret() {
        let err = JwtVerifier::builder().build().unwrap_err();
        assert_eq!(err.setting(), "jwt_secret");

        let short = "s".repeat(MIN_SECRET_BYTES - 1);
        let err = JwtVerifier::builder()
            .secret(Secret::new(short.clone()))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwt_secret");
        assert!(err.reason().contains("256 bits"), "{err}");
        assert!(!err.to_string().contains(&short));
        assert_eq!(err.value(), None);

        let err = JwtVerifier::builder()
            .secrets([Secret::new(SECRET), Secret::new(short.clone())])
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwt_secret");
        assert!(err.reason().starts_with("secret 2 of 2"), "{err}");
        assert!(!err.to_string().contains(&short) && !err.to_string().contains(SECRET));

        assert!(
            JwtVerifier::builder()
                .secret(Secret::new("s".repeat(MIN_SECRET_BYTES)))
                .build()
                .is_ok(),
            "exactly 32 bytes is enough"
        );

        let err = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .audience(" ")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwt_audience");
        let err = JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .issuer("")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwt_issuer");
    }

    #[test]
    fn backend_self_test_failure_is_a_config_error() {
        assert_eq!(self_test(SECRET.as_bytes()), Ok(()));
        assert_eq!(guarded_self_test(|| Ok(())), Ok(()));
        let err = guarded_self_test(|| Err("verifying failed".to_owned())).unwrap_err();
        assert_eq!(err.setting(), "jwt_backend");
        assert!(err.reason().contains("rust_crypto") && err.reason().contains("aws_lc_rs"));
        let err = guarded_self_test(|| panic!("no CryptoProvider")).unwrap_err();
        assert_eq!(err.setting(), "jwt_backend");
        assert!(err.reason().contains("panicked"), "{err}");
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let builder = JwtVerifier::builder()
            .secrets([Secret::new(SECRET), Secret::new(OLD_SECRET)])
            .audience(AUD);
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains(SECRET) && !shown.contains(OLD_SECRET),
            "{shown}"
        );
        let verifier = builder.build().unwrap();
        let shown = format!("{verifier:?}");
        assert!(
            !shown.contains(SECRET) && !shown.contains(OLD_SECRET),
            "{shown}"
        );
        assert!(
            shown.contains("secrets: 2") && shown.contains(AUD),
            "{shown}"
        );
    }
}
