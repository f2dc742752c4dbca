//! [`TokenEndpointLayerBuilder`]: the settings, validated once at build.

use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_security_core::clock::{Clock, SystemClock};
use mcp_security_core::config::{ConfigError, Secret};
use mcp_security_core::credential::Fingerprinter;
use mcp_security_core::url::ResourceUrl;

use crate::api_key::ApiKeyStore;

use super::signing::{MAX_KEY_FILE_BYTES, Signer};
use super::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TTL, MAX_TTL, Shared, TokenEndpointLayer, metadata};

/// The smallest body bound accepted: a token request with a long key fits in it.
const MIN_BODY_BYTES: usize = 1024;

/// The largest body bound accepted.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The names errors give each setting: the builder's method names, or the environment
/// variables' when the builder came from [`TokenEndpointLayer::builder_from_env`].
#[derive(Debug, Clone)]
pub(super) struct Names {
    pub(super) api_keys: String,
    pub(super) resource: String,
    pub(super) issuer: String,
    pub(super) hs256_secret: String,
    pub(super) signing_key: String,
    pub(super) ttl: String,
    pub(super) max_token_lifetime: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            api_keys: "api_keys".into(),
            resource: "resource".into(),
            issuer: "token_issuer".into(),
            hs256_secret: "jwt_secret".into(),
            signing_key: "token_signing_key".into(),
            ttl: "token_ttl".into(),
            max_token_lifetime: "jwt_max_lifetime".into(),
        }
    }
}

/// Where the asymmetric signing key comes from.
enum SigningKey {
    Pem(Secret),
    File(PathBuf),
}

/// Builds a [`TokenEndpointLayer`]; see [`TokenEndpointLayer::builder`]. `Debug` never shows a
/// secret or a key.
#[must_use]
pub struct TokenEndpointLayerBuilder {
    api_keys: Option<ApiKeyStore>,
    resource: Option<String>,
    issuer: Option<String>,
    hs256_secret: Option<Secret>,
    signing_key: Option<SigningKey>,
    ttl: Duration,
    max_token_lifetime: Option<Duration>,
    api_key_login: bool,
    max_body_bytes: usize,
    realm: Option<String>,
    scopes_supported: Vec<String>,
    clock: Arc<dyn Clock>,
    fingerprint_key: Option<Secret>,
    pub(super) names: Names,
}

impl Default for TokenEndpointLayerBuilder {
    fn default() -> Self {
        TokenEndpointLayerBuilder {
            api_keys: None,
            resource: None,
            issuer: None,
            hs256_secret: None,
            signing_key: None,
            ttl: DEFAULT_TTL,
            max_token_lifetime: None,
            api_key_login: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            realm: None,
            scopes_supported: Vec::new(),
            clock: Arc::new(SystemClock),
            fingerprint_key: None,
            names: Names::default(),
        }
    }
}

impl fmt::Debug for TokenEndpointLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointLayerBuilder")
            .field("api_keys", &self.api_keys.is_some())
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("hs256_secret", &self.hs256_secret.is_some())
            .field(
                "signing_key",
                &match &self.signing_key {
                    None => "none".to_owned(),
                    Some(SigningKey::Pem(_)) => "PEM".to_owned(),
                    Some(SigningKey::File(p)) => p.display().to_string(),
                },
            )
            .field("ttl", &self.ttl)
            .field("api_key_login", &self.api_key_login)
            .finish_non_exhaustive()
    }
}

impl TokenEndpointLayerBuilder {
    /// The API keys clients exchange (required). Pass the same store as the
    /// [`AuthLayer`](crate::AuthLayer)'s, so a key file reload (which the `AuthLayer` runs)
    /// revokes a key here too.
    pub fn api_keys(mut self, store: ApiKeyStore) -> Self {
        self.api_keys = Some(store);
        self
    }

    /// This server's resource URL (required; e.g. `https://mcp.example.com/mcp`): the `aud` of
    /// every token, and the only `resource` (RFC 8707) a client may ask for.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The issuer: `iss` of every token and of the metadata, and the base of the endpoint URLs
    /// it advertises (default: the resource URL's origin). An http(s) URL without query or
    /// fragment.
    pub fn issuer(mut self, url: impl Into<String>) -> Self {
        self.issuer = Some(url.into());
        self
    }

    /// Sign with HS256 and this secret (at least 32 bytes): the [`AuthLayer`](crate::AuthLayer)'s
    /// JWT verifier must hold the same secret. Ignored when a signing key is set.
    pub fn hs256_secret(mut self, secret: Secret) -> Self {
        self.hs256_secret = Some(secret);
        self
    }

    /// Sign with this Ed25519 or P-256 (ES256) private key, a PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`), and publish its public half at `/.well-known/jwks.json`.
    /// Takes precedence over [`hs256_secret`](Self::hs256_secret). Replaces a key file.
    pub fn signing_key_pem(mut self, pem: Secret) -> Self {
        self.signing_key = Some(SigningKey::Pem(pem));
        self
    }

    /// As [`signing_key_pem`](Self::signing_key_pem), read from this file at build.
    pub fn signing_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.signing_key = Some(SigningKey::File(path.into()));
        self
    }

    /// How long tokens are valid: [`DEFAULT_TTL`] (15 minutes) unless set; whole seconds, at
    /// least one, at most [`MAX_TTL`] (one hour).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The longest token lifetime the verifiers accept (`MCP_JWT_MAX_LIFETIME`): a
    /// [`ttl`](Self::ttl) above it is refused at build, as the tokens would be refused.
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_token_lifetime = Some(max);
        self
    }

    /// Also answer the compatibility login `POST /auth/api-key-login` with
    /// `{"api_key": "…"}` (default off).
    pub fn api_key_login(mut self, on: bool) -> Self {
        self.api_key_login = on;
        self
    }

    /// The largest request body read, in bytes ([`DEFAULT_MAX_BODY_BYTES`], 8 KiB, unless set;
    /// 1 KiB to 1 MiB). Larger bodies are answered 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The realm of the `WWW-Authenticate: Basic` challenge (default: the issuer).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// `scopes_supported` in the metadata (default: omitted).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The clock for `iat` and `exp`, and for key expiry (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key of the secret fingerprints put into refusals' `AuthOutcome` (default: random per
    /// process). Use the audit layer's fingerprint key, as for the `AuthLayer`.
    pub fn fingerprint_key(mut self, key: Secret) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// Names the setting (the environment variable when the builder came from
    /// [`TokenEndpointLayer::builder_from_env`]): `api_keys` (no store), `resource` (missing or
    /// not an http(s) URL), `token_issuer` (not an http(s) URL without query or fragment),
    /// `token_signing_key` (unreadable, not a PKCS#8 Ed25519 / P-256 key), `jwt_secret` (none
    /// and no signing key, or shorter than 32 bytes), `token_ttl` (under a second, over an hour,
    /// or over `jwt_max_lifetime`), `max_body_bytes`, `realm`, `fingerprint_key`.
    pub fn build(self) -> Result<TokenEndpointLayer, ConfigError> {
        let names = &self.names;
        let store = self.api_keys.clone().ok_or_else(|| {
            ConfigError::new(
                &names.api_keys,
                "no API key store: the token endpoint exchanges API keys for tokens; pass the \
                 AuthLayer's store",
            )
        })?;
        let resource = self.resource.as_deref().ok_or_else(|| {
            ConfigError::new(
                &names.resource,
                "the token endpoint needs this server's resource URL (the tokens' audience)",
            )
        })?;
        let resource_url = ResourceUrl::parse(resource)
            .map_err(|e| ConfigError::new(&names.resource, e.reason()).with_value(resource))?;
        let issuer = match &self.issuer {
            Some(issuer) => {
                ResourceUrl::parse(issuer)
                    .map_err(|e| ConfigError::new(&names.issuer, e.reason()).with_value(issuer))?;
                issuer.clone()
            }
            None => resource_url.origin().to_owned(),
        };
        let base = issuer.trim_end_matches('/').to_owned();
        let issuer_path = ResourceUrl::parse(&base)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();

        self.check_ttl()?;
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(ConfigError::new(
                "max_body_bytes",
                format!("must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES}"),
            )
            .with_value(self.max_body_bytes.to_string()));
        }
        let realm = self.realm.clone().unwrap_or_else(|| issuer.clone());
        if realm.is_empty() || !realm.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty printable ASCII",
            ));
        }
        let signer = self.signer()?;
        let fingerprinter = match &self.fingerprint_key {
            Some(k) => Fingerprinter::new(k.expose().as_bytes()),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    ConfigError::new("fingerprint_key", format!("no system randomness: {e}"))
                })?;
                Fingerprinter::new(&bytes)
            }
        };
        let metadata = metadata::document(
            &issuer,
            &base,
            &self.scopes_supported,
            signer.jwks().is_some(),
        );
        Ok(TokenEndpointLayer {
            shared: Some(Arc::new(Shared {
                store,
                signer,
                issuer,
                base,
                issuer_path,
                resource: resource.to_owned(),
                ttl: self.ttl,
                api_key_login: self.api_key_login,
                max_body_bytes: self.max_body_bytes,
                realm,
                clock: self.clock,
                fingerprinter,
                metadata,
            })),
        })
    }

    fn check_ttl(&self) -> Result<(), ConfigError> {
        let names = &self.names;
        let shown = humantime::format_duration(self.ttl).to_string();
        if self.ttl < Duration::from_secs(1) || self.ttl.subsec_nanos() != 0 {
            return Err(ConfigError::new(
                &names.ttl,
                "must be a whole number of seconds, at least one",
            )
            .with_value(shown));
        }
        if self.ttl > MAX_TTL {
            return Err(ConfigError::new(
                &names.ttl,
                "must be at most 1h: these tokens cannot be revoked before they expire",
            )
            .with_value(shown));
        }
        if let Some(max) = self.max_token_lifetime
            && self.ttl > max
        {
            return Err(ConfigError::new(
                &names.ttl,
                format!(
                    "is longer than {} ({}): the server would refuse its own tokens",
                    names.max_token_lifetime,
                    humantime::format_duration(max)
                ),
            )
            .with_value(shown));
        }
        Ok(())
    }

    fn signer(&self) -> Result<Signer, ConfigError> {
        let names = &self.names;
        match (&self.signing_key, &self.hs256_secret) {
            (Some(SigningKey::Pem(pem)), _) => Signer::from_pem(pem.expose(), &names.signing_key),
            (Some(SigningKey::File(path)), _) => {
                let pem = read_key_file(path, &names.signing_key)?;
                Signer::from_pem(pem.expose(), &names.signing_key).map_err(|e| {
                    ConfigError::new(
                        &names.signing_key,
                        format!("{}: {}", path.display(), e.reason()),
                    )
                })
            }
            (None, Some(secret)) => Signer::hs256(secret.clone(), &names.hs256_secret),
            (None, None) => Err(ConfigError::new(
                &names.hs256_secret,
                format!(
                    "the token endpoint needs a signing key: set {} (HS256) or {} (Ed25519 or \
                     ES256, a PKCS#8 PEM)",
                    names.hs256_secret, names.signing_key
                ),
            )),
        }
    }
}

/// The key file's text, bounded; errors name `setting` and the file, never its content.
fn read_key_file(path: &PathBuf, setting: &str) -> Result<Secret, ConfigError> {
    let refuse = |why: String| ConfigError::new(setting, format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot be opened: {e}")))?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot be read as text: {e}")))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(refuse(format!(
            "is larger than {MAX_KEY_FILE_BYTES} bytes; a private key is far smaller"
        )));
    }
    Ok(Secret::new(text))
}
