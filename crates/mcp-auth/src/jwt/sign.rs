//! Signing HS256 tokens, for the CLI's `token` command and for tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use mcp_security_core::config::ConfigError;
use serde::Serialize;

use super::{JwtVerifier, SETTING_BACKEND, SETTING_SECRET};

impl JwtVerifier {
    /// Sign an HS256 token with the first secret: `sub`, `aud` (a string for one audience, an
    /// array for several, omitted for none), `iss` when given, `iat` = `nbf` = `now`,
    /// `exp` = `now + ttl` (whole seconds), and `scope` (space-separated, omitted when empty).
    ///
    /// # Errors
    /// Names the refused field: `sub` (empty), `audience` / `issuer` (an empty value), `scopes`
    /// (an empty scope or one containing whitespace), `ttl` (under one second, too large, or
    /// longer than the verifier's [maximum lifetime](super::JwtVerifierBuilder::max_lifetime)
    /// for HS256 tokens, which it would refuse),
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
        if let Some(max) = self.inner.hs256_max_lifetime
            && ttl > max.as_secs()
        {
            return Err(ConfigError::new(
                "ttl",
                format!(
                    "is longer than the maximum token lifetime of {} s, so the token would be \
                     refused",
                    max.as_secs()
                ),
            )
            .with_value(format!("{ttl} s")));
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
