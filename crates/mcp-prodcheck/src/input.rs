//! What the checker reads: a snapshot of the validated security settings ([`CheckInput`]), with
//! facts about each secret ([`SecretFacts`]) in place of the secret itself.
//!
//! The `mcp-security` facade produces a `CheckInput` from its `SecurityConfig`; other callers
//! (tests, a server with its own configuration) fill one in directly. Nothing in it is a secret:
//! a [`SecretFacts`] keeps a secret's length, its estimated entropy and whether it looks like a
//! placeholder, never its text, so a `CheckInput` may be logged.
//!
//! # Secret strength
//!
//! [`SecretFacts::analyze`] is a heuristic, not a proof of randomness:
//!
//! - **Length**: at least [`MIN_SECRET_BYTES`] (32) bytes for API keys and HS256 secrets.
//! - **Entropy**: the Shannon entropy of the secret's own character distribution, `H` bits per
//!   character, times its length, must reach [`MIN_ENTROPY_BITS`] (100 bits), and `H` must reach
//!   [`MIN_BITS_PER_CHAR`] (3.0). A random 32-character hex string estimates at about 115 bits, a
//!   generated `mcp-sk-` key or `openssl rand -base64 32` at about 200; `aaaa…`, `abab…` or a
//!   word repeated to length do not pass. Strings that repeat one short unit, or that are mostly
//!   runs of consecutive characters (`abcdef…`, `123456…`), are low entropy whatever `H` says.
//! - **Placeholders**: case-insensitive markers from widely copied guides and common templates —
//!   `your-…`/`your_…` (`your-secure-key-here`), `changeme`/`change-this`, `replace-me`,
//!   `placeholder`, `example`, `secret`, `password`, `xxxxxx`, `${…}`, and a value wrapped in
//!   `<…>`.
//! - **Published examples**: the keys printed in widely copied MCP security guides and in this
//!   project's docs ([`PUBLISHED_EXAMPLES`]); a secret containing one is refused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use mcp_security_core::config::Environment;

/// The shortest API key or HS256 secret accepted, in bytes (256 bits, RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// How old an API key may get before `MCP-KEY-004` warns (`KEY_MAX_AGE`): 90 days, the
/// quarterly rotation the JWT multi-server policy sets for API keys.
pub const DEFAULT_KEY_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);

/// How old the HS256 secret may get before `MCP-JWT-007` warns (`JWT_SECRET_MAX_AGE`): 30 days,
/// the monthly rotation of the same policy.
pub const DEFAULT_JWT_SECRET_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// How soon before an API key expires `MCP-KEY-005` warns: 7 days.
pub const KEY_EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// The least estimated entropy (bits per character × length) of a secret.
pub const MIN_ENTROPY_BITS: f64 = 100.0;

/// The least Shannon entropy per character of a secret.
pub const MIN_BITS_PER_CHAR: f64 = 3.0;

/// Markers of a template value, matched case-insensitively anywhere in a secret.
pub const PLACEHOLDER_MARKERS: &[&str] = &[
    "your-",
    "your_",
    "your ",
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "change-this",
    "change_this",
    "replaceme",
    "replace-me",
    "replace_me",
    "placeholder",
    "example",
    "secret",
    "password",
    "passw0rd",
    "not-a-real",
    "xxxxxx",
    "${",
];

/// The marker reported for a value wrapped in angle brackets (`<strong-random-key>`).
pub const ANGLE_BRACKETS: &str = "<…>";

/// Keys and secrets printed in widely copied MCP security guides and in this project's
/// documentation. Everybody can read them, so a secret that contains one is refused.
pub const PUBLISHED_EXAMPLES: &[&str] = &[
    // A memory-server security guide (env prefix IQ_).
    "iqmcp-sk-Abc123XyzRandomString789",
    // MCP Tool Registry security guide: the "default API key" its setup script prints.
    "mcp_-tn1XqqtdGub5NAzzn_qSoLrvJv9gmMwB0y-kfLDsak",
    // mcp-auth documentation.
    "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
    "an-example-secret-of-at-least-32-bytes",
    // mcp-security-audit documentation.
    "at least thirty-two bytes of key!",
];

/// Facts about one secret, computed once from it; the secret itself is not kept.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretFacts {
    bytes: usize,
    bits_per_char: f64,
    estimated_bits: f64,
    patterned: bool,
    placeholder: Option<&'static str>,
    published: bool,
}

impl SecretFacts {
    /// Analyze `secret`; see the [module docs](self).
    ///
    /// ```
    /// use mcp_prodcheck::SecretFacts;
    ///
    /// let strong = SecretFacts::analyze("mcp-sk-q8Z0v3WmXr1bT5nJ7cK2yH9pL4sD6fG0aE8uR3wQ1tY");
    /// assert!(!strong.is_too_short() && !strong.is_low_entropy());
    /// assert_eq!(strong.placeholder(), None);
    ///
    /// assert_eq!(
    ///     SecretFacts::analyze("iqmcp-sk-your-secure-key-here").placeholder(),
    ///     Some("your-")
    /// );
    /// assert!(SecretFacts::analyze("iqmcp-sk-Abc123XyzRandomString789").is_published_example());
    /// assert!(SecretFacts::analyze(&"ab".repeat(20)).is_low_entropy());
    /// ```
    pub fn analyze(secret: &str) -> Self {
        let bytes = secret.as_bytes();
        let bits_per_char = shannon_bits_per_char(bytes);
        let lower = secret.to_ascii_lowercase();
        SecretFacts {
            bytes: bytes.len(),
            bits_per_char,
            estimated_bits: bits_per_char * bytes.len() as f64,
            patterned: is_repetition(bytes) || is_mostly_sequential(bytes),
            placeholder: placeholder_marker(secret, &lower),
            published: PUBLISHED_EXAMPLES.iter().any(|e| secret.contains(e)),
        }
    }

    /// The secret's length in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Shannon entropy of its character distribution, in bits per character.
    pub fn bits_per_char(&self) -> f64 {
        self.bits_per_char
    }

    /// The entropy estimate: bits per character × length.
    pub fn estimated_bits(&self) -> f64 {
        self.estimated_bits
    }

    /// Shorter than [`MIN_SECRET_BYTES`].
    pub fn is_too_short(&self) -> bool {
        self.bytes < MIN_SECRET_BYTES
    }

    /// Under [`MIN_ENTROPY_BITS`] or [`MIN_BITS_PER_CHAR`], or one short unit repeated, or
    /// mostly runs of consecutive characters.
    pub fn is_low_entropy(&self) -> bool {
        self.estimated_bits < MIN_ENTROPY_BITS
            || self.bits_per_char < MIN_BITS_PER_CHAR
            || self.patterned
    }

    /// The placeholder marker the secret contains, if any.
    pub fn placeholder(&self) -> Option<&'static str> {
        self.placeholder
    }

    /// Whether the secret contains one of the [`PUBLISHED_EXAMPLES`].
    pub fn is_published_example(&self) -> bool {
        self.published
    }

    /// A placeholder or a published example.
    pub fn is_known_value(&self) -> bool {
        self.placeholder.is_some() || self.published
    }
}

fn placeholder_marker(secret: &str, lower: &str) -> Option<&'static str> {
    let trimmed = secret.trim();
    if trimmed.starts_with('<') && trimmed.ends_with('>') {
        return Some(ANGLE_BRACKETS);
    }
    PLACEHOLDER_MARKERS
        .iter()
        .copied()
        .find(|m| lower.contains(m))
}

fn shannon_bits_per_char(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `s` is one unit of at most half its length repeated (the last copy may be cut short).
fn is_repetition(s: &[u8]) -> bool {
    (1..=s.len() / 2).any(|period| s.iter().skip(period).zip(s).all(|(a, b)| a == b))
}

/// More than half of adjacent pairs step by exactly +1 or -1 (`abcdef`, `987654`).
fn is_mostly_sequential(s: &[u8]) -> bool {
    if s.len() < 2 {
        return false;
    }
    let steps = s
        .windows(2)
        .filter(|w| matches!(w, [a, b] if a.abs_diff(*b) == 1))
        .count();
    steps * 2 > s.len() - 1
}

/// One configured secret: the setting it came from, its file (for `*_FILE` secrets), and facts
/// about each of its values (an HS256 secret may list several, comma-separated, for rotation).
#[derive(Debug, Clone, PartialEq)]
pub struct SecretInput {
    /// The variable (or builder setting) it came from: `MCP_API_KEY` or `MCP_API_KEY_FILE`.
    pub setting: String,
    /// The file it was read from, for the permission check.
    pub file: Option<PathBuf>,
    /// Facts about each value; `None` when the file could not be read here (an offline check).
    pub values: Option<Vec<SecretFacts>>,
    /// Why the file could not be read, when it could not.
    pub unreadable: Option<String>,
}

impl SecretInput {
    /// A secret given directly.
    pub fn value(setting: impl Into<String>, secret: &str) -> Self {
        SecretInput {
            setting: setting.into(),
            file: None,
            values: Some(vec![SecretFacts::analyze(secret)]),
            unreadable: None,
        }
    }

    /// A comma-separated list of secrets given directly (HS256 rotation); empty entries skipped.
    pub fn list(setting: impl Into<String>, secrets: &str) -> Self {
        SecretInput {
            setting: setting.into(),
            file: None,
            values: Some(split_list(secrets)),
            unreadable: None,
        }
    }

    /// A secret read from `file`, or not (`Err` with the reason) when it cannot be read here.
    /// With `list`, the content is a comma-separated list.
    pub fn file(
        setting: impl Into<String>,
        file: impl Into<PathBuf>,
        content: Result<&str, String>,
        list: bool,
    ) -> Self {
        let (values, unreadable) = match content {
            Ok(text) if list => (Some(split_list(text)), None),
            Ok(text) => (Some(vec![SecretFacts::analyze(text)]), None),
            Err(why) => (None, Some(why)),
        };
        SecretInput {
            setting: setting.into(),
            file: Some(file.into()),
            values,
            unreadable,
        }
    }
}

fn split_list(text: &str) -> Vec<SecretFacts> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(SecretFacts::analyze)
        .collect()
}

/// The dates of one API key from the key file (`API_KEYS_FILE`), for the rotation checks: never
/// its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyDates {
    /// The key's name.
    pub name: String,
    /// `created_at`, when the entry has one.
    pub created_at: Option<SystemTime>,
    /// `expires_at`, when the key expires.
    pub expires_at: Option<SystemTime>,
    /// `false` for a disabled (revoked) entry, which is not checked.
    pub enabled: bool,
}

impl ApiKeyDates {
    /// An enabled key named `name` with these dates.
    pub fn new(
        name: impl Into<String>,
        created_at: Option<SystemTime>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        ApiKeyDates {
            name: name.into(),
            created_at,
            expires_at,
            enabled: true,
        }
    }
}

/// A snapshot of the security settings the checker reads. Fill it in field by field, starting
/// from [`CheckInput::default`] (a production configuration with the secure defaults and no
/// credential), or get it from `mcp_security::SecurityConfig::check_input`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckInput {
    /// The environment-variable prefix findings name variables with (`MCP`, `IQ`).
    pub prefix: String,
    /// Production or development.
    pub environment: Environment,
    /// `REQUIRE_AUTH`: refuse to start without a credential source.
    pub require_auth: bool,
    /// `DEBUG`: verbose errors.
    pub debug: bool,
    /// The listen address, when known.
    pub bind_addr: Option<SocketAddr>,
    /// `API_KEY` / `API_KEY_FILE`: the one API key with every scope.
    pub api_key: Option<SecretInput>,
    /// `API_KEYS_FILE`: hashed keys (their strength cannot be checked: only digests are stored).
    pub api_keys_file: Option<PathBuf>,
    /// API keys given in code (a generated development key, for example).
    pub code_api_keys: usize,
    /// The dates of the key file's entries (empty when it has none or cannot be read here).
    pub api_key_dates: Vec<ApiKeyDates>,
    /// `KEY_MAX_AGE`: the age past which an API key should be rotated.
    pub key_max_age: Duration,
    /// `JWT_SECRET` / `JWT_SECRET_FILE`: HS256 secrets.
    pub jwt_secret: Option<SecretInput>,
    /// `JWT_SECRET_CREATED_AT`: when the HS256 secret was made. Unset, the checker dates a
    /// `JWT_SECRET_FILE` secret by the file's modification time.
    pub jwt_secret_created_at: Option<SystemTime>,
    /// `JWT_SECRET_MAX_AGE`: the age past which the HS256 secret should be rotated.
    pub jwt_secret_max_age: Duration,
    /// `JWT_AUDIENCE`: accepted token audiences.
    pub jwt_audiences: Vec<String>,
    /// `JWT_ISSUER` when tokens are verified against the issuer's published keys (JWKS found by
    /// discovery); `None` when unset or when it only names the `iss` of HS256 tokens.
    pub jwt_issuer: Option<String>,
    /// `JWKS_URL`: asymmetric keys from an OAuth/OIDC issuer's JWKS.
    pub jwks_url: Option<String>,
    /// `RESOURCE_URL`: the protected resource's URL in the OAuth metadata and challenges.
    pub resource_url: Option<String>,
    /// `DEV_BYPASS`: requests without a credential pass as a development principal.
    pub dev_bypass: bool,
    /// `URL_AUTH`: `?token=` is accepted.
    pub url_auth: bool,
    /// `CORS_ORIGINS` as given (`None`: unset, the environment's default).
    pub cors_origins: Option<Vec<String>>,
    /// Whether CORS allows credentials.
    pub cors_allow_credentials: bool,
    /// Whether the `Host` allowlist is on (`ALLOWED_HOSTS=*` turns it off).
    pub host_check: bool,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// The allow list of each per-path network rule (TOML `[[network]]`), as (path prefix,
    /// allowed networks).
    pub network_path_allows: Vec<(String, Vec<IpNet>)>,
    /// `RATE_LIMIT_ENABLED`.
    pub rate_limit_enabled: bool,
    /// `RATE_LIMIT_REDIS_URL` with any password removed: limits shared through Redis.
    pub rate_limit_redis_url: Option<String>,
    /// Whether the Redis limiter falls back to local limits when Redis is unreachable
    /// (`RATE_LIMIT_REDIS_FAILURE=open`) instead of refusing.
    pub rate_limit_redis_fail_open: bool,
    /// `AUDIT_ENABLED`.
    pub audit_enabled: bool,
    /// `AUDIT_LOG_FILE`.
    pub audit_log_file: Option<PathBuf>,
    /// `AUDIT_HMAC_KEY` / `AUDIT_HMAC_KEY_FILE`.
    pub audit_hmac_key: Option<SecretInput>,
    /// Other secrets: `API_KEY_PEPPER(_FILE)`, `AUDIT_FINGERPRINT_KEY(_FILE)`.
    pub other_secrets: Vec<SecretInput>,
    /// Files that hold user data (`DATA_FILES`, such as a memory server's `memory.jsonl`).
    pub data_files: Vec<PathBuf>,
    /// Files that hold a secret whose strength is not this checker's to judge, as (setting,
    /// file): only their permissions are checked (`MCP-FILE-001`), never their content
    /// (`MCP-SECRET-001`). The Redis password (`RATE_LIMIT_REDIS_PASSWORD_FILE`) is chosen by
    /// the provider, the client key (`RATE_LIMIT_REDIS_CLIENT_KEY_FILE`) is PEM, and the URL
    /// (`RATE_LIMIT_REDIS_URL_FILE`) may carry a password.
    pub secret_files: Vec<(String, PathBuf)>,
    /// The security headers set on every response, as (lower-case name, value).
    pub response_headers: Vec<(String, String)>,
    /// The built-in token endpoint (`TOKEN_ENDPOINT`) is on.
    pub token_endpoint: bool,
    /// The lifetime of the tokens it issues (`TOKEN_TTL`).
    pub token_ttl: Option<Duration>,
    /// `JWT_MAX_LIFETIME` when set: `Some(None)` is `off`.
    pub jwt_max_lifetime: Option<Option<Duration>>,
    /// The result guard's mode (`RESULT_GUARD`: `off`, `redact`, `block`), when the stack has one.
    pub result_guard: Option<String>,
}

impl Default for CheckInput {
    /// Production, prefix `MCP`, authentication required, rate limiting and audit on, the Host
    /// check on, loopback bind unknown, no credential.
    fn default() -> Self {
        CheckInput {
            prefix: "MCP".to_owned(),
            environment: Environment::Production,
            require_auth: true,
            debug: false,
            bind_addr: None,
            api_key: None,
            api_keys_file: None,
            code_api_keys: 0,
            api_key_dates: Vec::new(),
            key_max_age: DEFAULT_KEY_MAX_AGE,
            jwt_secret: None,
            jwt_secret_created_at: None,
            jwt_secret_max_age: DEFAULT_JWT_SECRET_MAX_AGE,
            jwt_audiences: Vec::new(),
            jwt_issuer: None,
            jwks_url: None,
            resource_url: None,
            dev_bypass: false,
            url_auth: false,
            cors_origins: None,
            cors_allow_credentials: false,
            host_check: true,
            trusted_proxies: Vec::new(),
            network_path_allows: Vec::new(),
            rate_limit_enabled: true,
            rate_limit_redis_url: None,
            rate_limit_redis_fail_open: false,
            audit_enabled: true,
            audit_log_file: None,
            audit_hmac_key: None,
            other_secrets: Vec::new(),
            data_files: Vec::new(),
            secret_files: Vec::new(),
            response_headers: Vec::new(),
            token_endpoint: false,
            token_ttl: None,
            jwt_max_lifetime: None,
            result_guard: None,
        }
    }
}

impl CheckInput {
    /// The full variable name for `name` with this input's prefix: `IQ_API_KEY`.
    pub fn var(&self, name: &str) -> String {
        let prefix = self.prefix.trim_end_matches('_');
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}_{name}")
        }
    }

    /// Whether anything can authenticate a caller: an API key, a key file, keys given in code,
    /// an HS256 secret, or an issuer's JWKS.
    pub fn has_credential_source(&self) -> bool {
        self.api_key.is_some()
            || self.api_keys_file.is_some()
            || self.code_api_keys > 0
            || self.jwt_secret.is_some()
            || self.uses_jwks()
    }

    /// Whether asymmetric JWTs are verified against an issuer's JWKS (`JWKS_URL`, or
    /// `JWT_ISSUER` with discovery).
    pub fn uses_jwks(&self) -> bool {
        self.jwks_url.is_some() || self.jwt_issuer.is_some()
    }

    /// Whether an authentication layer is built (and serves protected-resource metadata): a
    /// credential source, or the development bypass.
    pub fn authenticates(&self) -> bool {
        self.has_credential_source() || self.dev_bypass
    }

    /// The URL that names the protected resource: `RESOURCE_URL`, else, when JWTs are
    /// verified, the first `JWT_AUDIENCE` that is an http(s) URL. `None`: it can only be derived
    /// from the request's `Host` (when on the allowlist).
    pub fn resource(&self) -> Option<&str> {
        if let Some(url) = &self.resource_url {
            return Some(url);
        }
        if self.jwt_secret.is_none() && !self.uses_jwks() {
            return None;
        }
        self.jwt_audiences
            .iter()
            .map(String::as_str)
            .find(|a| is_http_url(a))
    }

    /// Whether requests without a valid credential are refused: a credential source and no
    /// development bypass.
    pub fn auth_enforced(&self) -> bool {
        self.has_credential_source() && !self.dev_bypass
    }
}

/// Whether `s` names a resource: the auth layer's own parser
/// ([`mcp_security_core::url::ResourceUrl`]), so the check and the layer agree on which audience does.
fn is_http_url(s: &str) -> bool {
    mcp_security_core::url::ResourceUrl::is_valid(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_audience_is_what_the_auth_layer_accepts() {
        let mut i = CheckInput {
            jwks_url: Some("https://issuer.example.com/jwks.json".into()),
            ..CheckInput::default()
        };
        for (audiences, expected) in [
            (&["HTTPS://mcp.example.com/mcp"][..], None),
            (&["https://mcp.example.com/mcp?v=1"], None),
            (&["https://svc@mcp.example.com/mcp"], None),
            (&["https://mcp.example.com/mcp#top"], None),
            (&["https://mcp.example.com:0x1/mcp"], None),
            (
                &["api", "HTTPS://a.example", "https://mcp.example.com/mcp"],
                Some("https://mcp.example.com/mcp"),
            ),
            (
                &["http://127.0.0.1:8080/mcp"],
                Some("http://127.0.0.1:8080/mcp"),
            ),
        ] {
            i.jwt_audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
            assert_eq!(i.resource(), expected, "{audiences:?}");
        }
    }

    #[test]
    fn generated_keys_pass() {
        for key in [
            // `mcp-security keygen`
            "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0",
            // `openssl rand -base64 32`
            "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=",
            // `openssl rand -hex 32`
            "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52",
            // `openssl rand -hex 16`: 128 bits, the least that passes
            "9f2c4e7a1b8d3f605e1c9a7b2d4f8e03",
        ] {
            let f = SecretFacts::analyze(key);
            assert!(!f.is_too_short(), "{key}");
            assert!(
                !f.is_low_entropy(),
                "{key}: {} bits, {} per char",
                f.estimated_bits(),
                f.bits_per_char()
            );
            assert!(!f.is_known_value(), "{key}");
        }
    }

    #[test]
    fn weak_secrets_are_caught() {
        for weak in [
            "a".repeat(40),
            "ab".repeat(20),
            "password".repeat(5),
            "abcdefghijklmnopqrstuvwxyz0123456789".to_owned(),
            "0123456789012345678901234567890123456789".to_owned(),
        ] {
            assert!(SecretFacts::analyze(&weak).is_low_entropy(), "{weak}");
        }
        for (placeholder, marker) in [
            ("your_secure_32_char_api_key_here", "your_"),
            ("your-strong-secret-here", "your-"),
            ("iqmcp-sk-your-secure-key-here", "your-"),
            ("CHANGEME-CHANGEME-CHANGEME-12345", "changeme"),
            ("a-very-long-but-still-a-placeholder", "placeholder"),
            ("<strong-random-key>", ANGLE_BRACKETS),
            ("${MCP_API_KEY}", "${"),
            ("mcp-sk-not-a-real-key", "not-a-real"),
        ] {
            assert_eq!(
                SecretFacts::analyze(placeholder).placeholder(),
                Some(marker),
                "{placeholder}"
            );
        }
        for published in PUBLISHED_EXAMPLES {
            assert!(SecretFacts::analyze(published).is_published_example());
        }
        assert!(SecretFacts::analyze("x").is_too_short());
        assert!(SecretFacts::analyze("").is_low_entropy());
    }

    #[test]
    fn lists_split_on_commas_and_files_may_be_unreadable() {
        let s = SecretInput::list("MCP_JWT_SECRET", "new-one, ,old-one");
        assert_eq!(s.values.as_ref().map(Vec::len), Some(2));
        let f = SecretInput::file("MCP_JWT_SECRET_FILE", "/nope", Err("missing".into()), true);
        assert_eq!(f.values, None);
        assert_eq!(f.unreadable.as_deref(), Some("missing"));
    }

    #[test]
    fn var_names_follow_the_prefix() {
        let mut input = CheckInput::default();
        assert_eq!(input.var("API_KEY"), "MCP_API_KEY");
        input.prefix = "IQ_".into();
        assert_eq!(input.var("API_KEY"), "IQ_API_KEY");
        input.prefix = String::new();
        assert_eq!(input.var("API_KEY"), "API_KEY");
    }
}
