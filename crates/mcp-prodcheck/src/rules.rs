//! The rules: stable ids, severities, and the generic fix for each.
//!
//! Ids never change meaning once published; a rule that is retired keeps its id unused. Each rule
//! has a severity in production and one in development (`None`: not checked there). Errors in
//! production refuse the start; in development, except where noted, they are downgraded to
//! warnings.

use mcp_security_core::config::Environment;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing to fix necessarily.
    Info,
    /// Weakens the deployment; fix it unless there is a reason.
    Warning,
    /// Unsafe: the server refuses to start in production.
    Error,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The SARIF 2.1.0 `level`: `error`, `warning` or `note`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "note",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check: a stable id, a name, its severities, a one-line title and the generic fix.
///
/// Variable names in [`help`](Rule::help) use the default prefix `MCP_`; a
/// [`Finding`](crate::Finding) names the deployment's own variables.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The stable id, such as `MCP-AUTH-001`.
    pub id: &'static str,
    /// A short PascalCase name (SARIF `rules[].name`).
    pub name: &'static str,
    /// The severity in production.
    pub severity: Severity,
    /// The severity in development; `None` when the rule is not checked there.
    pub development: Option<Severity>,
    /// What the rule finds, in one line.
    pub title: &'static str,
    /// How to fix what it finds.
    pub help: &'static str,
}

impl Rule {
    /// The severity of this rule's findings in `environment`, or `None` when it is not checked
    /// there.
    pub fn severity_in(&self, environment: Environment) -> Option<Severity> {
        match environment {
            Environment::Production => Some(self.severity),
            Environment::Development => self.development,
        }
    }
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $konst:ident = $id:literal, $name:literal, $sev:ident, $dev:expr, $title:literal, $help:literal; )*) => {
        $(
            $(#[$doc])*
            pub static $konst: Rule = Rule {
                id: $id,
                name: $name,
                severity: Severity::$sev,
                development: $dev,
                title: $title,
                help: $help,
            };
        )*

        /// Every rule, in the order reports list them.
        pub static RULES: &[&Rule] = &[$(&$konst),*];
    };
}

const ERROR: Option<Severity> = Some(Severity::Error);
const WARNING: Option<Severity> = Some(Severity::Warning);
const INFO: Option<Severity> = Some(Severity::Info);
const SKIP: Option<Severity> = None;

rules! {
    /// A setting could not be parsed or was refused; the server would not start.
    CONFIG_INVALID = "MCP-CONFIG-001", "InvalidSetting", Error, ERROR,
        "a setting is invalid: the server would refuse to start",
        "Correct the named setting; the message says what is accepted.";
    /// `REQUIRE_AUTH=false`.
    AUTH_NOT_REQUIRED = "MCP-AUTH-001", "AuthNotRequired", Error, WARNING,
        "authentication is not required",
        "Set MCP_REQUIRE_AUTH=true (the default) and configure a credential source.";
    /// Authentication is required but nothing can authenticate anyone.
    NO_CREDENTIAL_SOURCE = "MCP-AUTH-002", "NoCredentialSource", Error, ERROR,
        "no credential source is configured",
        "Set MCP_API_KEY_FILE (or MCP_API_KEY) to a key from `mcp-security keygen`, MCP_API_KEYS_FILE to a hashed key file, MCP_JWT_SECRET_FILE (or MCP_JWT_SECRET) to `openssl rand -base64 32`, or MCP_JWT_ISSUER / MCP_JWKS_URL for tokens from an authorization server.";
    /// The development bypass lets every request in without a credential.
    DEV_BYPASS = "MCP-AUTH-003", "DevBypassEnabled", Error, SKIP,
        "the development authentication bypass is on",
        "Remove MCP_DEV_BYPASS (or set it to false) outside development.";
    /// `?token=` credentials end up in access logs, proxies and browser history.
    URL_AUTH = "MCP-AUTH-004", "UrlAuthEnabled", Warning, WARNING,
        "credentials are accepted in the URL query",
        "Set MCP_URL_AUTH=false and send `Authorization: Bearer` instead; enable it only for a web UI that cannot send headers.";
    /// Neither the resource URL nor a URL audience: the OAuth metadata can only come from `Host`.
    NO_RESOURCE_URL = "MCP-AUTH-005", "NoResourceUrl", Error, WARNING,
        "the protected resource's URL is not configured",
        "Set MCP_RESOURCE_URL to the URL clients use for the MCP endpoint (https://mcp.example.com/mcp); MCP_JWT_AUDIENCE set to that URL also names it. Without either, the OAuth protected-resource metadata and the 401 challenge's resource_metadata are derived from the request's Host when it is on MCP_ALLOWED_HOSTS, and are not served at all with MCP_ALLOWED_HOSTS=*.";
    /// HS256 tokens may live longer than a day (`JWT_MAX_LIFETIME` off or above 24 h).
    JWT_LONG_LIFETIME = "MCP-JWT-006", "JwtLifetimeUnbounded", Warning, SKIP,
        "HS256 tokens may live longer than a day",
        "Keep MCP_JWT_MAX_LIFETIME at 24h or less (the default for HS256): a leaked HS256 token cannot be revoked before it expires, and short-lived tokens are renewed, not stretched.";
    /// The HS256 secret is older than `JWT_SECRET_MAX_AGE`.
    JWT_SECRET_OLD = "MCP-JWT-007", "JwtSecretTooOld", Warning, SKIP,
        "the HS256 JWT secret is older than its rotation period",
        "Rotate it: put a new secret (`openssl rand -base64 32`, or the key line of `mcp-security keygen`) first in MCP_JWT_SECRET_FILE, keep the old one after it until the tokens it signed have expired, and set MCP_JWT_SECRET_CREATED_AT. MCP_JWT_SECRET_MAX_AGE sets the period (default 30d).";
    /// Tool results reach clients unscanned for credentials.
    RESULT_GUARD_OFF = "MCP-GUARD-001", "ResultGuardOff", Info, SKIP,
        "tool results are not scanned for credentials",
        "Set MCP_RESULT_GUARD=redact: a credential a tool returns (a cloud key, a private key, a token) is then replaced by [redacted] before it reaches the agent.";
    /// The token endpoint is reachable beyond loopback without TLS in front of it.
    TOKEN_ENDPOINT_PLAINTEXT = "MCP-TOKEN-001", "TokenEndpointWithoutTls", Error, WARNING,
        "the token endpoint is reachable beyond this machine without TLS",
        "Terminate TLS in front of the server and set MCP_RESOURCE_URL to its https:// URL (with MCP_TRUSTED_PROXIES naming the proxy), or bind to 127.0.0.1.";
    /// Tokens that live longer than an hour.
    TOKEN_TTL_LONG = "MCP-TOKEN-002", "TokenTtlTooLong", Error, ERROR,
        "the token endpoint issues tokens that live longer than an hour",
        "Set MCP_TOKEN_TTL to 1h or less (default 15m): an issued token cannot be revoked before it expires.";
    /// The API key is shorter than 32 bytes.
    API_KEY_SHORT = "MCP-KEY-001", "ApiKeyTooShort", Error, WARNING,
        "the API key is shorter than 32 bytes",
        "Generate a key with `mcp-security keygen` (32 random bytes) or `openssl rand -base64 32`.";
    /// The API key has low estimated entropy.
    API_KEY_LOW_ENTROPY = "MCP-KEY-002", "ApiKeyLowEntropy", Error, WARNING,
        "the API key has low entropy",
        "Generate a key with `mcp-security keygen` (32 random bytes) or `openssl rand -base64 32`; do not make keys up.";
    /// The API key is a placeholder or a key printed in documentation.
    API_KEY_PLACEHOLDER = "MCP-KEY-003", "ApiKeyPlaceholder", Error, WARNING,
        "the API key is a placeholder or a published example key",
        "Replace it with a key from `mcp-security keygen`; a key printed in a guide is known to everyone.";
    /// An API key from the key file is older than `KEY_MAX_AGE`.
    API_KEY_OLD = "MCP-KEY-004", "ApiKeyTooOld", Warning, SKIP,
        "an API key is older than its rotation period",
        "Rotate it: `mcp-security keygen --name <name>` prints a new key and its key-file entry (with created_at); add the entry to MCP_API_KEYS_FILE, move the client to the new key, then disable or remove the old entry. MCP_KEY_MAX_AGE sets the period (default 90d).";
    /// An API key from the key file expires within 7 days.
    API_KEY_EXPIRING = "MCP-KEY-005", "ApiKeyExpiringSoon", Warning, WARNING,
        "an API key expires within 7 days",
        "Issue its replacement now with `mcp-security keygen --name <name>`, add the entry to MCP_API_KEYS_FILE and move the client to it before the old key expires.";
    /// An HS256 secret is shorter than 256 bits.
    JWT_SECRET_SHORT = "MCP-JWT-001", "JwtSecretTooShort", Error, WARNING,
        "an HS256 JWT secret is shorter than 256 bits",
        "Use at least 32 random bytes: `openssl rand -base64 32` (RFC 7518 section 3.2).";
    /// An HS256 secret is a placeholder, a published example, or low entropy.
    JWT_SECRET_WEAK = "MCP-JWT-002", "JwtSecretWeak", Error, WARNING,
        "an HS256 JWT secret is a placeholder, a published example or has low entropy",
        "Replace it with `openssl rand -base64 32`; anyone who knows the secret can mint tokens.";
    /// Tokens are accepted for any audience.
    JWT_NO_AUDIENCE = "MCP-JWT-003", "JwtNoAudience", Warning, SKIP,
        "JWTs are accepted without an audience check",
        "Set MCP_JWT_AUDIENCE to this server's resource URL (one audience per server) so a token minted for another server is refused.";
    /// The JWKS or the issuer's metadata is fetched over plain HTTP from a non-loopback host.
    JWKS_INSECURE_URL = "MCP-JWT-004", "JwksOverPlainHttp", Error, ERROR,
        "the issuer's keys are fetched over plain HTTP",
        "Use an https:// URL for MCP_JWT_ISSUER and MCP_JWKS_URL; plain http is accepted only for a loopback issuer.";
    /// Tokens from an issuer's JWKS are accepted for any audience.
    JWKS_NO_AUDIENCE = "MCP-JWT-005", "JwksNoAudience", Error, WARNING,
        "tokens from the issuer are accepted without an audience check",
        "Set MCP_JWT_AUDIENCE to this server's resource URL: an authorization server signs tokens for many APIs, and without the check a token minted for any of them is accepted here (MCP authorization: token audience binding).";
    /// Another secret (API key pepper, audit HMAC key, fingerprint key) is weak.
    SECRET_WEAK = "MCP-SECRET-001", "SecretWeak", Error, WARNING,
        "a secret is a placeholder, a published example, too short or has low entropy",
        "Replace it with `openssl rand -hex 32`.";
    /// Verbose errors in production.
    DEBUG = "MCP-DEBUG-001", "DebugEnabled", Error, SKIP,
        "debug mode is on",
        "Set MCP_DEBUG=false (the default) in production.";
    /// CORS allows every origin.
    CORS_ANY = "MCP-CORS-001", "CorsAnyOrigin", Error, WARNING,
        "CORS allows every origin (`*`)",
        "List the browser origins that may call the server in MCP_CORS_ORIGINS, e.g. https://app.example.com.";
    /// Credentials with a wildcard origin.
    CORS_CREDENTIALS_ANY = "MCP-CORS-002", "CorsCredentialsWithWildcard", Error, ERROR,
        "CORS allows credentials for a wildcard origin",
        "List the origins explicitly, or turn credentials off (bearer tokens do not need them).";
    /// No explicit browser-origin allowlist in production.
    NO_ORIGIN_ALLOWLIST = "MCP-CORS-003", "NoOriginAllowlist", Warning, SKIP,
        "no Origin allowlist is configured",
        "Set MCP_CORS_ORIGINS to the origins of the web apps that call the server (every other Origin is refused with 403).";
    /// Listening beyond loopback with no authentication.
    OPEN_NON_LOOPBACK = "MCP-NET-001", "UnauthenticatedNonLoopbackBind", Error, WARNING,
        "bound to a non-loopback address without authentication",
        "Configure a credential source, or bind to 127.0.0.1 (MCP_BIND) behind a proxy that authenticates.";
    /// The Host allowlist (DNS-rebinding defence) is off.
    HOST_CHECK_OFF = "MCP-NET-002", "HostCheckDisabled", Warning, WARNING,
        "the Host header allowlist is off",
        "Set MCP_ALLOWED_HOSTS to the names clients use (mcp.example.com) instead of `*`, unless a proxy checks Host.";
    /// A per-path network rule allows every address while looking restrictive.
    NETWORK_ALLOWS_EVERYONE = "MCP-NET-003", "NetworkRuleAllowsEveryone", Warning, WARNING,
        "a path's network allow list contains 0.0.0.0/0 or ::/0",
        "List the networks that may reach the path (a VPN or cluster CIDR such as 10.0.0.0/8) in its [[network]] allow list; to open a path to everyone, give it no lists at all.";
    /// Every address is a trusted proxy, so any client can forge its address.
    TRUST_ALL_PROXIES = "MCP-PROXY-001", "TrustAllProxies", Error, ERROR,
        "every address is a trusted proxy",
        "List only your proxies' addresses or subnets in MCP_TRUSTED_PROXIES (e.g. 10.0.0.0/8), never 0.0.0.0/0 or ::/0.";
    /// No rate limiting.
    RATE_LIMIT_OFF = "MCP-RATE-001", "RateLimitDisabled", Warning, SKIP,
        "rate limiting is off",
        "Set MCP_RATE_LIMIT_ENABLED=true (the default) with a quota such as MCP_RATE_LIMIT_REQUESTS=100, MCP_RATE_LIMIT_WINDOW=60s.";
    /// Shared rate-limit state travels to a remote Redis without TLS.
    REDIS_PLAINTEXT = "MCP-RATE-002", "RedisWithoutTls", Error, SKIP,
        "the Redis rate-limit backend is reached without TLS",
        "Use a rediss:// URL (TLS; MCP_RATE_LIMIT_REDIS_CA_FILE for a private CA, MCP_RATE_LIMIT_REDIS_CLIENT_CERT_FILE and _KEY_FILE for mutual TLS) with an ACL user (MCP_RATE_LIMIT_REDIS_USERNAME, MCP_RATE_LIMIT_REDIS_PASSWORD_FILE), or keep Redis on loopback.";
    /// When Redis is unreachable the limits fall back to per-replica ones.
    REDIS_FAIL_OPEN = "MCP-RATE-003", "RedisFailOpen", Info, SKIP,
        "the Redis rate limiter fails open to local limits",
        "Keep MCP_RATE_LIMIT_REDIS_FAILURE=open only with MCP_RATE_LIMIT_REPLICAS set to the replica count; set it to closed to refuse requests while Redis is down.";
    /// No audit trail.
    AUDIT_OFF = "MCP-AUDIT-001", "AuditDisabled", Warning, SKIP,
        "the audit trail is off",
        "Set MCP_AUDIT_ENABLED=true (the default).";
    /// The audit trail is not tamper-evident.
    AUDIT_NO_HMAC = "MCP-AUDIT-002", "AuditWithoutHmacKey", Warning, SKIP,
        "the audit trail has no HMAC key (not tamper-evident)",
        "Set MCP_AUDIT_LOG_FILE and MCP_AUDIT_HMAC_KEY_FILE (`openssl rand -hex 32`) for a signed, hash-chained audit file.";
    /// A secret file is readable or writable beyond its owner and group.
    SECRET_FILE_MODE = "MCP-FILE-001", "SecretFilePermissions", Warning, WARNING,
        "a secret file is accessible to other users",
        "chmod 600 (or 640 for a group the server runs in) the file.";
    /// The audit log or a data file is readable or writable beyond its owner and group.
    DATA_FILE_MODE = "MCP-FILE-002", "DataFilePermissions", Warning, WARNING,
        "an audit or data file is accessible to other users",
        "chmod 600 (or 640) the file, as for any file that holds secrets or audit records.";
    /// A `.env` file that git would commit.
    DOTENV_NOT_IGNORED = "MCP-FILE-003", "DotenvNotIgnored", Warning, WARNING,
        "a .env file is present and not git-ignored",
        "Add `.env` to .gitignore; keep only a .env.example with placeholders in git.";
    /// A secret file cannot be read here, so it was not checked.
    SECRET_FILE_UNREADABLE = "MCP-FILE-004", "SecretFileNotChecked", Info, INFO,
        "a secret file cannot be read here, so its strength was not checked",
        "Run the check where the secret is mounted; the server checks it again when it starts.";
    /// The process runs as root.
    RUNNING_AS_ROOT = "MCP-PROC-001", "RunningAsRoot", Warning, WARNING,
        "the server runs as root",
        "Run as an unprivileged user (Dockerfile `USER 1000`, systemd `User=`).";
    /// `X-XSS-Protection` other than `0`.
    XSS_PROTECTION = "MCP-HDR-001", "XssProtectionNotZero", Info, INFO,
        "X-XSS-Protection is not `0`",
        "Send `X-XSS-Protection: 0` (the default): the filter `1; mode=block` enables is itself exploitable and gone from current browsers (OWASP).";
    /// `check --online`: no issuer or JWK Set URL, or one the server never fetches from.
    ONLINE_NOTHING_TO_CHECK = "MCP-ONLINE-001", "OnlineNothingToCheck", Info, INFO,
        "no identity provider is fetched from, so the online checks had nothing to check",
        "Nothing to fix; when tokens come from an authorization server, set MCP_JWT_ISSUER (and MCP_JWKS_URL if its keys are not listed in its metadata).";
    /// `check --online`: the issuer's RFC 8414 / OpenID Connect metadata cannot be fetched.
    ONLINE_METADATA_UNREACHABLE = "MCP-ONLINE-002", "IssuerMetadataUnreachable", Error, ERROR,
        "the issuer's authorization-server metadata cannot be fetched",
        "Make {MCP_JWT_ISSUER}/.well-known/oauth-authorization-server (RFC 8414) or {MCP_JWT_ISSUER}/.well-known/openid-configuration answer 200 with a JSON object over https from where the server runs; MCP clients and the server's key discovery read it.";
    /// `check --online`: the metadata's `issuer` is not the configured issuer (RFC 8414 §3.3).
    ONLINE_ISSUER_MISMATCH = "MCP-ONLINE-003", "IssuerMismatch", Error, ERROR,
        "the metadata's issuer is not the configured issuer",
        "Set MCP_JWT_ISSUER to the metadata's `issuer`, character for character (scheme, host, path, trailing slash): RFC 8414 section 3.3 requires them to be identical, the server refuses to discover keys otherwise, and tokens carry that value as `iss`.";
    /// `check --online`: the JWK Set cannot be fetched or read.
    ONLINE_JWKS_UNREACHABLE = "MCP-ONLINE-004", "JwksUnreachable", Error, ERROR,
        "the issuer's JWK Set cannot be fetched",
        "Make the metadata's jwks_uri (or MCP_JWKS_URL) answer 200 with a JWK Set (RFC 7517) over https from where the server runs; until it does, every token from the issuer is refused with 401.";
    /// `check --online`: no key of the JWK Set is usable with the allowed algorithms.
    ONLINE_NO_USABLE_KEY = "MCP-ONLINE-005", "NoUsableJwk", Error, ERROR,
        "the JWK Set has no key usable with the allowed algorithms",
        "Publish a signing key the server accepts (RSA of 2048 bits or more for RS256..PS512, EC P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA), or allow its algorithm in MCP_JWT_ALGORITHMS.";
    /// `check --online`: the JWK Set publishes an RSA key shorter than 2048 bits.
    ONLINE_WEAK_KEY = "MCP-ONLINE-006", "WeakJwk", Error, WARNING,
        "the JWK Set publishes an RSA key shorter than 2048 bits",
        "Rotate the identity provider's signing key to RSA 2048 bits or more (or EC P-256, Ed25519): such a key can be factored, and the server ignores it, so tokens it signs are refused.";
    /// `check --online`: the protected resource's URL is not an accepted audience.
    ONLINE_RESOURCE_NOT_AUDIENCE = "MCP-ONLINE-007", "ResourceNotAnAudience", Warning, WARNING,
        "the protected resource's URL is not an accepted token audience",
        "Add MCP_RESOURCE_URL to MCP_JWT_AUDIENCE (or make them the same URL): MCP clients ask for tokens for the resource the protected-resource metadata names (RFC 8707), and a token whose aud is that URL is refused otherwise.";
    /// `check --online`: the protected-resource metadata lists authorization servers other than
    /// the issuer.
    ONLINE_ISSUER_NOT_LISTED = "MCP-ONLINE-008", "IssuerNotAnAuthorizationServer", Warning, WARNING,
        "the protected-resource metadata does not list the issuer as an authorization server",
        "Add MCP_JWT_ISSUER to MCP_AUTHORIZATION_SERVERS (or unset it: the issuer is then listed): clients get their tokens from the servers listed there, and only tokens whose iss is MCP_JWT_ISSUER are accepted.";
    /// `check --online`: the issuer's `scopes_supported` lacks scopes the policy requires.
    ONLINE_SCOPES_NOT_SUPPORTED = "MCP-ONLINE-009", "ScopesNotSupportedByIssuer", Warning, WARNING,
        "the issuer does not list scopes the policy requires",
        "Define the scopes in the identity provider, or correct their names in auth.mcp_scopes / auth.path_scopes of the config file: calls needing a scope the issuer cannot grant are refused with 403 insufficient_scope.";
    /// `check --online`: the issuer advertises only algorithms the server does not allow.
    ONLINE_ALGORITHMS_NOT_ALLOWED = "MCP-ONLINE-010", "IssuerAlgorithmsNotAllowed", Warning, WARNING,
        "the issuer advertises only signing algorithms that are not allowed",
        "Allow one of the issuer's asymmetric algorithms in MCP_JWT_ALGORITHMS (RS256, PS256, ES256, EdDSA...), or have the identity provider sign with an allowed one.";
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        for (i, a) in RULES.iter().enumerate() {
            assert!(a.id.starts_with("MCP-"), "{}", a.id);
            let number = a.id.rsplit('-').next().unwrap();
            assert_eq!(number.len(), 3, "{}", a.id);
            assert!(number.bytes().all(|b| b.is_ascii_digit()), "{}", a.id);
            assert!(!a.title.is_empty() && !a.help.is_empty());
            for b in &RULES[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.name, b.name);
            }
            assert_eq!(rule(a.id), Some(*a));
        }
        assert_eq!(rule("MCP-NOPE-001"), None);
    }

    #[test]
    fn development_never_raises_a_severity() {
        for r in RULES {
            if let Some(dev) = r.development {
                assert!(dev <= r.severity, "{}", r.id);
            }
        }
        assert_eq!(
            DEBUG.severity_in(Environment::Production),
            Some(Severity::Error)
        );
        assert_eq!(DEBUG.severity_in(Environment::Development), None);
        assert_eq!(
            NO_CREDENTIAL_SOURCE.severity_in(Environment::Development),
            Some(Severity::Error)
        );
    }
}
