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
//! - Scopes are the union of the claims [`DEFAULT_SCOPE_CLAIMS`] names (`scope`, `scp`, `scopes`,
//!   `permissions`), each a space-separated string or an array of strings; other claims, JSON
//!   pointers included (Keycloak's `/realm_access/roles`), by
//!   [`scope_claims`](JwtVerifierBuilder::scope_claims).
//! - Verified tokens are cached (the SHA-256 of the token → the principal), so a token presented
//!   again skips its signature check; `exp`, `nbf`, `iat` and the lifetime limit are checked again
//!   on every hit, entries end at `exp` or after [`DEFAULT_CACHE_TTL`], and a JWKS refresh that
//!   changes the key set flushes the cache. See [`cache_size`](JwtVerifierBuilder::cache_size).
//! - HS256 tokens may live at most [`DEFAULT_HS256_MAX_LIFETIME`] (24 h) from `iat`; tokens from
//!   a JWKS have no limit unless one is set with
//!   [`max_lifetime`](JwtVerifierBuilder::max_lifetime).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mcp_security_core::config::{ConfigError, Secret};
use mcp_security_core::{AuthFailure, Principal, PrincipalKind, Scopes};

mod cache;
mod claims;
mod header;
mod scopes;
mod sign;
mod times;

use cache::TokenCache;
#[cfg(feature = "jwks")]
use claims::decode_with;
use claims::{ClaimSet, Claims, decode_hs256};
pub(crate) use header::algorithm_by_name;
use header::parse_header;
pub use header::{looks_like_jwt, preparse};
use scopes::ScopeClaims;
pub use scopes::{DEFAULT_SCOPE_CLAIMS, MAX_TOKEN_SCOPES};
pub use sign::TokenRequest;
use times::TokenTimes;

/// The default allowance for clock skew between the issuer and this server, applied to `exp`,
/// `nbf` and `iat`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest token accepted, in bytes (8 KiB). Larger tokens are refused as
/// [`AuthFailure::TokenTooLarge`] before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The shortest secret accepted, in bytes: an HS256 key must be at least 256 bits
/// (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// How many verified tokens are cached unless configured otherwise: 10 000.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;

/// The longest a verified token is served from the cache before it is verified again: 5 minutes
/// (never beyond its `exp`).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// The longest an HS256 token may live (`exp - iat`, or `exp - now` without `iat`) unless
/// configured otherwise: 24 hours. Tokens from a JWKS have no default limit.
pub const DEFAULT_HS256_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The largest cache accepted: 10 000 000 entries.
pub const MAX_CACHE_SIZE: usize = 10_000_000;

const SETTING_SECRET: &str = "jwt_secret";
const SETTING_AUDIENCE: &str = "jwt_audience";
const SETTING_ISSUER: &str = "jwt_issuer";
const SETTING_BACKEND: &str = "jwt_backend";
const SETTING_CACHE_SIZE: &str = "jwt_cache_size";
const SETTING_CACHE_TTL: &str = "jwt_cache_ttl";
const SETTING_MAX_LIFETIME: &str = "jwt_max_lifetime";

/// Verifies JWTs (HS256 with secrets; asymmetric ones with a JWKS source) and turns them into a
/// [`Principal`]; also signs HS256 tokens (for the CLI and tests). Cloning is cheap: the
/// validated configuration sits behind an `Arc`. `Debug` never prints the secrets.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_auth::jwt::{JwtVerifier, TokenRequest};
/// use mcp_auth::mcp_security_core::{AuthFailure, config::Secret};
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
    #[cfg(feature = "jwks")]
    jwks: Option<crate::jwks::JwksKeySource>,
    /// Verified tokens; `None` when the cache is off.
    cache: Option<TokenCache>,
    scope_claims: ScopeClaims,
    hs256_max_lifetime: Option<Duration>,
    jwks_max_lifetime: Option<Duration>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secrets", &self.inner.decoding.len())
            .field("jwks", &self.has_jwks())
            .field("audiences", &self.inner.audiences)
            .field("issuer", &self.inner.issuer)
            .field("leeway", &self.inner.leeway)
            .field("scope_claims", &self.inner.scope_claims.names())
            .field("cache_size", &self.cache_size())
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
    cache_size: usize,
    cache_ttl: Duration,
    scope_claims: Option<Vec<String>>,
    /// `None` until set: then the defaults (24 h for HS256, none for JWKS tokens) apply.
    max_lifetime: Option<Option<Duration>>,
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

    /// How many verified tokens to cache ([`DEFAULT_CACHE_SIZE`] unless set; `0` turns the cache
    /// off). A token presented again within the [TTL](Self::cache_ttl) skips its signature and
    /// claims checks; its `exp`, `nbf`, `iat` and lifetime are checked again on every use. Each
    /// entry holds the principal (at most about the token's size), so the memory is bounded by
    /// this count times [`MAX_TOKEN_BYTES`].
    pub fn cache_size(mut self, entries: usize) -> Self {
        self.cache_size = entries;
        self
    }

    /// The longest a verified token is served from the cache before it is verified again
    /// ([`DEFAULT_CACHE_TTL`] unless set); never beyond the token's `exp`.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The claims a principal's scopes are read from, replacing [`DEFAULT_SCOPE_CLAIMS`]: each a
    /// top-level claim name (`scp`, `roles`, `https://example.com/roles`) or an RFC 6901 JSON
    /// pointer starting with `/` (`/realm_access/roles`; `~1` is `/` and `~0` is `~` inside a
    /// name). A value may be a space-separated string or an array of strings; any other value
    /// of a listed claim refuses the token as [`AuthFailure::InvalidClaims`].
    ///
    /// ```
    /// use mcp_auth::jwt::JwtVerifier;
    /// use mcp_auth::mcp_security_core::config::Secret;
    ///
    /// // Entra ID: delegated scopes in `scp`, application roles in `roles`.
    /// let verifier = JwtVerifier::builder()
    ///     .secret(Secret::new("an-example-secret-of-at-least-32-bytes"))
    ///     .scope_claims(["scope", "scp", "roles"])
    ///     .build()?;
    /// assert_eq!(verifier.scope_claims().collect::<Vec<_>>(), ["scope", "scp", "roles"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = Some(claims.into_iter().map(Into::into).collect());
        self
    }

    /// The longest a token may live: one whose `exp` is further than this from its `iat` (or,
    /// without `iat`, from now plus the leeway) is refused as [`AuthFailure::InvalidClaims`].
    /// `None` sets no limit. Unless set, HS256 tokens are held to
    /// [`DEFAULT_HS256_MAX_LIFETIME`] and tokens from a JWKS to none; once set, the value applies
    /// to both.
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Validate the settings and run a sign/verify self-test with the first secret (or a fixed
    /// test key for a JWKS-only verifier).
    ///
    /// # Errors
    /// - `jwt_secret`: no secret (and no JWKS source), or a secret shorter than
    ///   [`MIN_SECRET_BYTES`] (the error never contains a secret);
    /// - `jwt_audience` / `jwt_issuer`: an empty value;
    /// - `jwt_cache_size`: more than [`MAX_CACHE_SIZE`]; `jwt_cache_ttl`: zero with a cache;
    /// - `jwt_scope_claims`: an empty list or name, or a malformed JSON pointer;
    /// - `jwt_max_lifetime`: zero;
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

        if self.cache_size > MAX_CACHE_SIZE {
            return Err(ConfigError::new(
                SETTING_CACHE_SIZE,
                format!("at most {MAX_CACHE_SIZE} entries"),
            )
            .with_value(self.cache_size.to_string()));
        }
        if self.cache_size > 0 && self.cache_ttl.is_zero() {
            return Err(ConfigError::new(
                SETTING_CACHE_TTL,
                "must be more than zero (turn the cache off with a size of 0)",
            ));
        }
        if self.max_lifetime == Some(Some(Duration::ZERO)) {
            return Err(ConfigError::new(
                SETTING_MAX_LIFETIME,
                "must be more than zero (set none for no limit)",
            ));
        }
        let scope_claims = match &self.scope_claims {
            Some(names) => ScopeClaims::parse(names)?,
            None => ScopeClaims::default(),
        };
        let (hs256_max_lifetime, jwks_max_lifetime) = match self.max_lifetime {
            Some(lifetime) => (lifetime, lifetime),
            None => (Some(DEFAULT_HS256_MAX_LIFETIME), None),
        };

        // A JWKS-only verifier still checks the backend (a missing one panics on first use).
        let first = self.secrets.first().map(|s| s.expose().as_bytes());
        let test_key = first.unwrap_or(b"mcp-auth-backend-self-test-key-0123456789");
        guarded_self_test(|| self_test(test_key))?;

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
                #[cfg(feature = "jwks")]
                jwks: self.jwks,
                cache: (self.cache_size > 0)
                    .then(|| TokenCache::new(self.cache_size, self.cache_ttl, self.leeway)),
                scope_claims,
                hs256_max_lifetime,
                jwks_max_lifetime,
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
            cache_size: DEFAULT_CACHE_SIZE,
            cache_ttl: DEFAULT_CACHE_TTL,
            scope_claims: None,
            max_lifetime: None,
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

    /// The claims scopes are read from: names and JSON pointers, as configured.
    pub fn scope_claims(&self) -> impl Iterator<Item = &str> {
        self.inner.scope_claims.names().iter().map(String::as_str)
    }

    /// The most verified tokens cached (0 when the cache is off).
    pub fn cache_size(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::capacity)
    }

    /// The longest a verified token is served from the cache (zero when the cache is off).
    pub fn cache_ttl(&self) -> Duration {
        self.inner
            .cache
            .as_ref()
            .map_or(Duration::ZERO, TokenCache::ttl)
    }

    /// How many verified tokens the cache holds now (expired ones included until they are
    /// swept); for metrics and tests.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// The lifetime limit of HS256 tokens and of tokens from a JWKS, in that order.
    pub fn max_lifetime(&self) -> (Option<Duration>, Option<Duration>) {
        (self.inner.hs256_max_lifetime, self.inner.jwks_max_lifetime)
    }

    /// The generation of the keys asymmetric tokens are verified with: it changes when a JWKS
    /// refresh changes the key set (HS256 secrets never change).
    fn key_generation(&self) -> u64 {
        #[cfg(feature = "jwks")]
        if let Some(source) = &self.inner.jwks {
            return source.key_generation();
        }
        0
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
    /// Then the lifetime limit ([`AuthFailure::InvalidClaims`] when `exp` is further than the
    /// [maximum](JwtVerifierBuilder::max_lifetime) from `iat`), and the scope claims
    /// ([`AuthFailure::InvalidClaims`] when a configured one is neither a string nor an array of
    /// strings).
    ///
    /// The principal's id is `sub`, its scopes the union of the
    /// [scope claims](JwtVerifierBuilder::scope_claims), its audience the token's `aud` values,
    /// and it expires at `exp`.
    ///
    /// A token that verified is cached (unless the cache is off): presented again, its
    /// principal comes from the cache after the `exp`, `nbf`, `iat` and lifetime checks are run
    /// again at `now`, so the verdict is the one a fresh verification would reach. Refused
    /// tokens are never cached.
    ///
    /// # Errors
    /// The first check that fails, as above.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, AuthFailure> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let Some(cache) = &self.inner.cache else {
            return self.verify_fresh(token, since_epoch).map(|(p, _)| p);
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthFailure::TokenTooLarge);
        }
        let digest = TokenCache::digest(token);
        // Read before the keys are: an entry is tagged with the generation it was verified under.
        let generation = self.key_generation();
        if let Some(entry) = cache.get(&digest, generation, since_epoch) {
            return match entry.times.check(since_epoch, self.inner.leeway) {
                Ok(()) => Ok(entry.principal),
                Err(failure) => {
                    if failure == AuthFailure::Expired {
                        cache.remove(&digest);
                    }
                    Err(failure)
                }
            };
        }
        let (principal, times) = self.verify_fresh(token, since_epoch)?;
        if self.key_generation() == generation {
            cache.insert(digest, principal.clone(), times, generation, since_epoch);
        }
        Ok(principal)
    }

    /// Every check, without the cache: the principal and the time claims to check again later.
    fn verify_fresh(
        &self,
        token: &str,
        now: Duration,
    ) -> Result<(Principal, TokenTimes), AuthFailure> {
        let header = parse_header(token)?;
        let max_lifetime = if header.alg == Algorithm::HS256 {
            self.inner.hs256_max_lifetime
        } else {
            self.inner.jwks_max_lifetime
        };
        let claims = match header.alg {
            Algorithm::HS256 if !self.inner.decoding.is_empty() => {
                decode_hs256(token, &self.inner.decoding)?
            }
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
        let payload = header::segments(token).map_or("", |(_, payload, _)| payload);
        self.check(claims, payload, max_lifetime, now)
    }

    /// Our checks on verified claims (`payload` is the token's base64url payload, for scope
    /// claims the claims struct does not read).
    fn check(
        &self,
        mut claims: ClaimSet,
        payload: &str,
        max_lifetime: Option<Duration>,
        now: Duration,
    ) -> Result<(Principal, TokenTimes), AuthFailure> {
        let sub = claims
            .sub
            .take()
            .filter(|s| !s.is_empty())
            .ok_or(AuthFailure::InvalidClaims)?;
        let exp = claims.exp.ok_or(AuthFailure::InvalidClaims)?;
        let expires_at = UNIX_EPOCH
            .checked_add(exp.since_epoch())
            .ok_or(AuthFailure::InvalidClaims)?;

        let times = TokenTimes {
            exp: exp.since_epoch(),
            nbf: claims.nbf.map(|d| d.since_epoch()),
            iat: claims.iat.map(|d| d.since_epoch()),
            max_lifetime,
        };
        times.check(now, self.inner.leeway)?;

        if let Some(required) = &self.inner.issuer
            && claims.iss.as_deref() != Some(required.as_str())
        {
            return Err(AuthFailure::WrongIssuer);
        }
        let audience = claims.aud.take().map(|a| a.0).unwrap_or_default();
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
        let granted = self.inner.scope_claims.collect(&claims, payload)?;

        // A key-bound token (RFC 9449 §6.1): the layer asks for a proof of that key. A `cnf`
        // without `jkt` binds the token some other way (a client certificate's `x5t#S256`, RFC
        // 8705; a `jwk`): a binding this server cannot check, so the token is refused rather
        // than accepted as a bearer token anyone holding it could replay.
        let jkt = match claims.cnf.map(|cnf| cnf.jkt) {
            Some(Some(jkt)) if jkt.is_empty() => return Err(AuthFailure::InvalidClaims),
            Some(None) => return Err(AuthFailure::InvalidClaims),
            Some(jkt) => jkt,
            None => None,
        };
        let principal = Principal::builder(sub, PrincipalKind::Jwt)
            .scope_set(Scopes::new(granted))
            .audience(audience)
            .expires_at(expires_at);
        let principal = match jkt {
            Some(jkt) => principal.confirmation_jkt(jkt),
            None => principal,
        }
        .build();
        Ok((principal, times))
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
mod cache_tests;
#[cfg(test)]
mod claim_shape_tests;
#[cfg(test)]
mod tests;
