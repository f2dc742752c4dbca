//! [`SecurityConfig`]: every setting of the stack, from code, the environment and an optional
//! TOML file, validated once and readable by the production checker.
//!
//! # Environment
//!
//! [`SecurityConfig::from_env`] reads these with the prefix `MCP_`;
//! [`SecurityConfig::from_env_with_prefix`]`("IQ")` reads `IQ_API_KEY` and so on. Every secret
//! also has a `*_FILE` form (Docker and Kubernetes secrets); setting both is an error.
//!
//! | variable (prefix `MCP_`) | meaning | default |
//! |---|---|---|
//! | `ENV` | `production` or `development` | production |
//! | `REQUIRE_AUTH` | refuse to start without a credential source | `true` |
//! | `DEBUG` | verbose errors (for the application to read); refused in production | `false` |
//! | `BIND` | the listen address, for the checks and the Host allowlist | `127.0.0.1:8080` |
//! | `ALLOWED_HOSTS` | `Host` values accepted (`name`, `name:port`, an address); `*` turns the check off | loopback names for a loopback bind, the address for a specific one, loopback (with a warning) for a wildcard bind |
//! | `API_KEY` / `API_KEY_FILE` | one API key with every scope (principal `env`) | — |
//! | `API_KEYS_FILE` | hashed keys with name, scopes, expiry; reloaded on change | — |
//! | `KEY_MAX_AGE` | API keys of the key file whose `created_at` (written by `mcp-security keygen`) is older are reported (`MCP-KEY-004`, a warning); keys expiring within 7 days are too (`MCP-KEY-005`) | `90d` |
//! | `API_KEY_PEPPER` / `_FILE` | HMAC pepper for key digests | — |
//! | `API_KEY_HEADER` | an extra header carrying a key, e.g. `X-API-Key` | — |
//! | `URL_AUTH` | also accept `?token=` | `false` |
//! | `JWT_SECRET` / `JWT_SECRET_FILE` | HS256 secrets, comma-separated: the first signs, all verify | — |
//! | `JWT_SECRET_CREATED_AT`, `JWT_SECRET_MAX_AGE` | when the HS256 secret was made (RFC 3339 UTC; unset, a `JWT_SECRET_FILE` is dated by its modification time); a secret older than the maximum age is reported (`MCP-JWT-007`, a warning) | —, `30d` |
//! | `JWT_AUDIENCE`, `JWT_ISSUER`, `JWT_LEEWAY` | required `aud` (comma-separated) / `iss`; clock skew | —, —, 30 s |
//! | `JWKS_URL` | asymmetric JWTs (RS256, ES256, EdDSA…) verified with this JWK Set; `JWT_ISSUER` alone (no secret, no `JWKS_URL`) discovers it from the issuer's metadata (feature `jwks`, on by default) | — |
//! | `JWT_ALGORITHMS` | allow-list, comma-separated: `HS256` exactly when `JWT_SECRET` is set, asymmetric ones exactly when a JWKS is | all that fit the keys |
//! | `JWT_CACHE_SIZE`, `JWT_CACHE_TTL` | verified tokens cached (SHA-256 of the token → principal; `0` turns it off) and for how long at most (never past `exp`; a JWK Set key change empties it) | 10000, `5m` |
//! | `JWT_SCOPE_CLAIMS` | the claims scopes are read from: names or JSON pointers (`/realm_access/roles`), comma-separated | `scope,scp,scopes,permissions` |
//! | `JWT_MAX_LIFETIME` | the longest `exp - iat` accepted (`1h`), or `off` | 24 h for HS256, off for JWKS tokens |
//! | `DEV_BYPASS` | skip auth; refused unless development and a loopback bind | `false` |
//! | `AUTH_EXEMPT_PATHS`, `AUTH_DENY_PREFIXES` | exact paths served without auth; prefixes always refused | `/health`, — |
//! | `RESOURCE_URL` | the protected resource's URL (RFC 9728 `resource`) in the OAuth metadata and the 401 challenge's `resource_metadata`; unset, the first http(s) `JWT_AUDIENCE`, else derived from a `Host` on `ALLOWED_HOSTS` (with `ALLOWED_HOSTS=*`: not served, 404). Finding `MCP-AUTH-005` when neither it nor a URL audience is set | — |
//! | `AUTHORIZATION_SERVERS` | RFC 9728 `authorization_servers` | the JWKS issuer, if any, and the token endpoint's issuer when it is on |
//! | `DPOP` | `off`, `allowed` (tokens bound to a key by `cnf.jkt` need `Authorization: DPoP` and a proof, RFC 9449; bearer tokens still work) or `required` (every JWT bound, with a proof; API keys unaffected) | `off` |
//! | `DPOP_NONCE`, `DPOP_NONCE_KEY` / `_FILE` | server nonces: a proof must carry a recent `DPoP-Nonce`; the key (≥ 32 bytes) is shared by replicas | `false`, random per process |
//! | `TOKEN_ENDPOINT` | the built-in OAuth token endpoint (`mcp_auth::token_endpoint`): `POST /oauth/token` exchanges an API key (`client_id` = the key's name, `client_secret` = the key) for a short-lived JWT the stack accepts; needs API keys, a resource URL and `JWT_SECRET` or `TOKEN_SIGNING_KEY_FILE` | `false` |
//! | `TOKEN_ISSUER`, `TOKEN_TTL` | the tokens' `iss` (also listed in `authorization_servers`); their lifetime, at most `1h` | the resource URL's origin, `15m` |
//! | `TOKEN_SIGNING_KEY_FILE` | an Ed25519 or P-256 private key (PKCS#8 PEM) signing the tokens (EdDSA / ES256), published at `/.well-known/jwks.json`; without it, HS256 with the first `JWT_SECRET` | — |
//! | `TOKEN_API_KEY_LOGIN` | also answer `POST /auth/api-key-login` with `{"api_key": "…"}` | `false` |
//! | `SESSION_IDLE_TIMEOUT` | a legacy session (`Mcp-Session-Id`) binding without traffic this long (requests the server answers other than with a 404, and data it streams) expires; its id is then refused with the server's own 404 | `300s` (rmcp's session keep-alive) |
//! | `SESSION_MAX_PER_PRINCIPAL` | live sessions one principal may hold; at the cap its least-recently-used session idle longer than `SESSION_EVICTION_GRACE` is evicted, else its next `initialize` is refused with 503 before it reaches the server | 64 |
//! | `SESSION_EVICTION_GRACE` | how long a session must have been idle before the cap may evict it for a new one (at least the idle timeout: never evict) | `60s` |
//! | `CORS_ORIGINS` | allowed browser origins, comma-separated; `*` refused in production | development: the localhost set; production: none |
//! | `RATE_LIMIT_ENABLED`, `_REQUESTS`, `_WINDOW`, `_BURST`, `_MAX_KEYS` | per-client limit (off also turns the per-caller limits off; bans still apply) | `true`, 100, 60 s, = requests, 100000 |
//! | `RATE_LIMIT_REDIS_URL` / `_FILE` (`redis://` or `rediss://`), `_REDIS_PREFIX`, `_REDIS_FAILURE`, `_REDIS_TIMEOUT`, `RATE_LIMIT_REPLICAS`; `_REDIS_USERNAME`, `_REDIS_PASSWORD` / `_FILE` (win over the URL's), `_REDIS_CA_FILE`, `_REDIS_CLIENT_CERT_FILE`, `_REDIS_CLIENT_KEY_FILE`; `_REDIS_CLUSTER` (`true`: the URL is one seed node of a Redis Cluster), `_REDIS_CLUSTER_NODES` (more seeds, comma-separated URLs); `_REDIS_SENTINEL` (`host:port,…`) + `_REDIS_SENTINEL_MASTER` (the primary the sentinels name; the URL gives scheme, credentials, database) | limits, the ban list and budgets shared by every replica through Redis, one connection for both limiters, the ban sync and the budgets (feature `redis`, on by default; see `mcp_ratelimit::redis`) | — (in memory), `mcp:rl:`, `closed` (503), `20ms`, 1 |
//! | `TRUSTED_PROXIES` | CIDRs whose forwarding headers are believed | none |
//! | `ALLOW_NETWORKS`, `DENY_NETWORKS` | server-wide CIDR allow and deny lists (or addresses), comma-separated, on the resolved client address (`TRUSTED_PROXIES` respected), checked right after the Origin guard; deny wins, an empty allow list allows any address, no resolvable address is refused; a 403 `network_not_allowed` (see `mcp_headers::network`). Per path prefix: `[[network]]` in the TOML file | —, — |
//! | `MAX_BODY_BYTES`, `MAX_CONCURRENCY`, `REQUEST_TIMEOUT` | resource limits | 1 MiB, 1000, 30 s |
//! | `OTEL_SPANS` | one span per request with OpenTelemetry's MCP attributes and the caller's W3C trace context (cargo feature `otel`; see `mcp_security::otel`) | `true` with the feature |
//! | `FILTER_LISTS` | cut tools/prompts/resources lists to what the caller may use under the MCP scope rules (`ListFilterLayer`) | on when there are MCP rules |
//! | `MAX_LIST_BYTES` | the largest list response (or SSE event) the list filter reads; larger fails closed | 4 MiB |
//! | `RESULT_GUARD` | credentials in `tools/call`, `resources/read` and `prompts/get` answers: `off`, `redact` (each becomes `[redacted]`) or `block` (the answer becomes a JSON-RPC error); see `ToolGuardLayer` | `off` |
//! | `VALIDATE_TOOL_ARGS` | `tools/call` arguments checked against the tool's `inputSchema` (learned from `tools/list` answers) before the server sees them; a failure is answered with an `isError` result naming the JSON pointer and keyword | `true` |
//! | `TOOL_MANIFEST_FILE`, `TOOL_MANIFEST_MODE` | a lock file from `mcp-security manifest snapshot`: every listed tool is compared with it, and one that is new or whose description or schemas changed is an audit event (`warn`) and also hidden and refused on call (`enforce`) | —, `warn` |
//! | `BLOCK_PATH_TRAVERSAL`, `BLOCK_SHELL_METACHARACTERS` | `tools/call` arguments refused before the server sees them (JSON-RPC `-32602` naming the pointer and the rule, audited as `blocked_pattern`) when a string under the argument matches the preset (`path_traversal`: `..` segments raw and encoded, system roots, `~`, NUL…; `shell_metacharacters`: `;` `&` `\|` `` ` `` `$` `<` `>` line breaks): comma-separated `tool:/json/pointer` entries, `*` for every tool, a tool alone for every argument; rules with their own expressions: `[[blocked_pattern]]` in the TOML file (see `mcp_security_guard::patterns`) | —, — |
//! | `RESULT_GUARD_MAX_BYTES` | the largest answer (or SSE event) the result guard scans; larger fails closed | 4 MiB |
//! | `TOOL_ERRORS_AS_RESULTS` | a `tools/call` refused for a scope or a per-caller limit answers 200 with an `isError` tool result | `false` |
//! | `PROTOCOL_VERSIONS` | `MCP-Protocol-Version` values accepted, comma-separated; another is refused with 400 `-32022` | the versions the bundled rmcp speaks (2024-11-05 … 2026-07-28) |
//! | `AUDIT_ENABLED`, `AUDIT_LOG_FILE`, `AUDIT_HMAC_KEY` / `_FILE` | audit trail (the other `AUDIT_*` knobs of `mcp-security-audit` are read too) | `true`, — (tracing only), — |
//! | `AUDIT_BAN_SCOPE` | which requests of a banned client get the ban's `429`: `failed` (those without a credential, refused before any cryptography, and those whose credential fails; a valid credential is served and limited per principal as usual) or `all` | `failed` |
//! | `DATA_FILES` | files holding user data (a memory server's `memory.jsonl`, say), for the permission check | — |
//! | `CONFIG_FILE` | the TOML file below | — |
//!
//! # TOML file
//!
//! What environment variables cannot say well. Every table is optional; unknown keys are
//! errors (a typo must not silently drop a control), naming their path.
//!
//! ```toml
//! [auth]
//! exempt_paths = ["/health", "/metrics"]      # replaces AUTH_EXEMPT_PATHS
//! deny_prefixes = ["/internal/"]              # added to AUTH_DENY_PREFIXES
//!
//! [auth.mcp_scopes]                           # scopes per MCP method or tool
//! "tools/call:delete_note" = ["notes:delete"]
//!
//! [[auth.path_scopes]]                        # scopes per HTTP path prefix (and methods)
//! prefix = "/api/tools"
//! methods = ["DELETE"]
//! scopes = ["tools:delete"]
//!
//! [cors]
//! allow_credentials = false
//!
//! [headers]
//! preset = "api"                              # or "web"
//! omit = ["cache-control"]
//! [headers.set]
//! x-xss-protection = "0"
//!
//! [[network]]                                 # CIDR lists per path prefix: the longest
//! path = "/metrics"                           # matching prefix replaces ALLOW_NETWORKS /
//! allow = ["10.0.0.0/8", "fd00::/8"]          # DENY_NETWORKS there (empty lists: open to all)
//! deny = ["10.66.0.0/16"]                     # deny wins over allow
//!
//! [[blocked_pattern]]                         # tools/call arguments refused before the
//! id = "files"                                # server (JSON-RPC -32602 naming pointer and id)
//! tool = "read_file"                          # or "*" for every tool
//! pointer = "/path"                           # RFC 6901 into arguments; every string under
//! preset = "path_traversal"                   # it ("" or absent: every argument); a preset
//! patterns = ['(?i)\.env$']                   # (or a list) and/or regular expressions
//!
//! [rate_limit]                                # mcp-ratelimit's section: route classes and
//! [rate_limit.classes.write]                  # per-tool limits of the per-caller layer; when
//! match = ["tools/call:write_note"]           # it has any, the limits given in code are not
//! requests = 20                               # used
//!
//! [budget.daily]                              # per-principal budgets (mcp-ratelimit's
//! units = 1000                                # `budget`): units per window, refilled
//! window = "1d"                               # continuously, charged after authentication;
//! [budget.daily.weights]                      # when the section is present the budgets given
//! "tools/call:delete_note" = 10               # in code are not used; errors name the path
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;
use mcp_auth::dpop::{DpopMode, DpopVerifier};
use mcp_headers::{Preset, SecurityHeadersLayer, SecurityHeadersLayerBuilder};
use mcp_prodcheck::{CheckInput, Report, RuntimeEnvironment, SecretInput};
use mcp_ratelimit::config::RateLimitSettings;
use mcp_ratelimit::resource::{DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT};
use mcp_ratelimit::{Limit, RateLimitLayer, RouteClass};
use mcp_security_core::BanList;
use mcp_security_core::Scopes;
use mcp_security_core::config::{ConfigError, Env, Environment, Secret};
use mcp_security_core::inspect::DEFAULT_MAX_BODY_BYTES;
use mcp_security_core::toml::{Table, Value};

mod builder;
mod env;
mod mcp_builder;
mod rotation;
mod toml;
mod validate;
#[cfg(feature = "redis")]
mod warm_up;

use self::toml::apply_toml;
use self::validate::{validate, without_userinfo};

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The default MCP endpoint path.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

/// The `Host` names a loopback-bound server accepts by default.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Where the deployment environment came from, for start-up logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentSource {
    /// The `ENV` variable (its full name).
    Variable(String),
    /// [`SecurityConfigBuilder::environment`].
    Code,
    /// Not set: [`SecurityConfigBuilder::default_environment`] (production unless changed).
    Default,
}

impl fmt::Display for EnvironmentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvironmentSource::Variable(v) => f.write_str(v),
            EnvironmentSource::Code => f.write_str("set in code"),
            EnvironmentSource::Default => f.write_str("default"),
        }
    }
}

/// A secret and where it came from. `Debug` never shows it.
#[derive(Debug, Clone)]
pub(crate) struct SecretSetting {
    /// The variable it came from (`MCP_API_KEY` or `MCP_API_KEY_FILE`).
    pub(crate) setting: String,
    /// The file, for `*_FILE` secrets.
    pub(crate) file: Option<PathBuf>,
    /// The secret, or why its file could not be read (only with
    /// [`SecurityConfigBuilder::defer_unreadable_secret_files`]).
    pub(crate) value: Result<Secret, String>,
}

impl SecretSetting {
    fn code(setting: String, secret: Secret) -> Self {
        SecretSetting {
            setting,
            file: None,
            value: Ok(secret),
        }
    }

    fn to_input(&self, list: bool) -> SecretInput {
        let value = self
            .value
            .as_ref()
            .map(Secret::expose)
            .map_err(Clone::clone);
        match (&self.file, value) {
            (Some(file), content) => SecretInput::file(&self.setting, file, content, list),
            (None, Ok(v)) if list => SecretInput::list(&self.setting, v),
            (None, Ok(v)) => SecretInput::value(&self.setting, v),
            (None, Err(why)) => SecretInput::file(&self.setting, PathBuf::new(), Err(why), list),
        }
    }

    /// The secret, or the error a server that must read it reports.
    pub(crate) fn require(&self) -> Result<&Secret, ConfigError> {
        self.value.as_ref().map_err(|why| {
            let err =
                ConfigError::new(&self.setting, format!("cannot read the secret file: {why}"));
            match &self.file {
                Some(f) => err.with_value(f.display().to_string()),
                None => err,
            }
        })
    }
}

/// Which `Host` values the MCP endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostSetting {
    /// Follow the bind address.
    Default,
    /// Any host (`ALLOWED_HOSTS=*`).
    Any,
    /// These.
    List(Vec<String>),
}

/// Everything the builder collects; a built [`SecurityConfig`] holds it, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) source: Option<Env>,
    defer_unreadable: bool,
    explicit_environment: Option<(Environment, EnvironmentSource)>,
    default_environment: Environment,
    pub(crate) require_auth: bool,
    pub(crate) debug: bool,
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) mcp_path: String,
    hosts: HostSetting,
    pub(crate) api_key: Option<SecretSetting>,
    pub(crate) named_keys: Vec<(String, Secret, Scopes)>,
    pub(crate) api_keys_file: Option<PathBuf>,
    /// `KEY_MAX_AGE`, `JWT_SECRET_MAX_AGE`, `JWT_SECRET_CREATED_AT`.
    pub(crate) rotation: rotation::RotationSettings,
    pub(crate) api_key_pepper: Option<SecretSetting>,
    pub(crate) api_key_header: Option<String>,
    pub(crate) url_auth: bool,
    pub(crate) jwt_secret: Option<SecretSetting>,
    pub(crate) jwt_audiences: Vec<String>,
    pub(crate) jwt_issuer: Option<String>,
    pub(crate) jwt_leeway: Option<Duration>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwt_algorithms: Option<Vec<String>>,
    pub(crate) jwt_cache_size: Option<usize>,
    pub(crate) jwt_cache_ttl: Option<Duration>,
    pub(crate) jwt_scope_claims: Option<Vec<String>>,
    /// `Some(None)`: `JWT_MAX_LIFETIME=off`.
    pub(crate) jwt_max_lifetime: Option<Option<Duration>>,
    pub(crate) dev_bypass: bool,
    pub(crate) exempt_paths: Option<Vec<String>>,
    pub(crate) deny_prefixes: Vec<String>,
    pub(crate) mcp_scopes: Vec<(String, Vec<String>)>,
    pub(crate) path_scopes: Vec<(String, Option<Vec<Method>>, Vec<String>)>,
    pub(crate) resource_url: Option<String>,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) token: crate::tokens::TokenSettings,
    /// DPoP (`DPOP`, `DPOP_NONCE`, `DPOP_NONCE_KEY`): the mode and the verifier, whose replay
    /// cache every clone shares.
    pub(crate) dpop: Option<(DpopMode, DpopVerifier)>,
    pub(crate) session_idle_timeout: Duration,
    pub(crate) session_max_per_principal: usize,
    pub(crate) session_eviction_grace: Duration,
    pub(crate) cors_origins: Option<Vec<String>>,
    pub(crate) cors_allow_credentials: bool,
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// `ALLOW_NETWORKS`: server-wide allowed client networks (empty: any).
    pub(crate) allow_networks: Vec<IpNet>,
    /// `DENY_NETWORKS`: server-wide denied client networks.
    pub(crate) deny_networks: Vec<IpNet>,
    /// `[[network]]` and [`SecurityConfigBuilder::network_rule`]: (path prefix, allow, deny).
    pub(crate) network_rules: Vec<(String, Vec<IpNet>, Vec<IpNet>)>,
    /// The per-client limit (`RATE_LIMIT_*`), mcp-ratelimit's own typed settings.
    pub(crate) rate_limit: RateLimitSettings,
    /// `RATE_LIMIT_REDIS_URL(_FILE)`, for the checks (the store itself is below).
    pub(crate) rate_limit_redis_url: Option<SecretSetting>,
    pub(crate) rate_limit_redis_fail_open: bool,
    /// The Redis store both rate-limit layers share, from the environment or the builder.
    #[cfg(feature = "redis")]
    pub(crate) rate_limit_redis: Option<mcp_ratelimit::redis::RedisStore>,
    pub(crate) caller_limits: Vec<Limit>,
    pub(crate) caller_classes: Vec<RouteClass>,
    pub(crate) max_body_bytes: usize,
    /// `OTEL_SPANS`: a request span per request (only with the `otel` feature).
    pub(crate) otel_spans: bool,
    /// `PROTOCOL_VERSIONS`; `None` keeps `McpInspectLayer`'s default (the bundled rmcp's).
    pub(crate) protocol_versions: Option<Vec<String>>,
    pub(crate) max_concurrency: usize,
    /// `FILTER_LISTS`; `None`: on whenever the auth policy has MCP rules.
    pub(crate) filter_lists: Option<bool>,
    /// `MAX_LIST_BYTES`.
    pub(crate) max_list_bytes: usize,
    /// `TOOL_ERRORS_AS_RESULTS`.
    pub(crate) tool_errors_as_results: bool,
    /// `RESULT_GUARD`.
    pub(crate) result_guard: mcp_security_guard::ResultGuardMode,
    /// `RESULT_GUARD_MAX_BYTES`.
    pub(crate) max_result_bytes: usize,
    /// `VALIDATE_TOOL_ARGS`.
    pub(crate) validate_tool_args: bool,
    /// `TOOL_MANIFEST_FILE` (read) and `TOOL_MANIFEST_MODE`.
    pub(crate) tool_manifest: Option<(
        mcp_security_guard::manifest::ToolManifest,
        mcp_security_guard::manifest::ManifestMode,
    )>,
    /// `[[blocked_pattern]]`, `BLOCK_PATH_TRAVERSAL`, `BLOCK_SHELL_METACHARACTERS` and
    /// [`SecurityConfigBuilder::blocked_pattern`].
    pub(crate) blocked_patterns: Vec<mcp_security_guard::BlockedPattern>,
    pub(crate) request_timeout: Duration,
    pub(crate) audit_enabled: bool,
    pub(crate) audit_log_file: Option<PathBuf>,
    pub(crate) audit_hmac_key: Option<SecretSetting>,
    pub(crate) audit_fingerprint_key: Option<SecretSetting>,
    pub(crate) data_files: Vec<PathBuf>,
    pub(crate) headers: SecurityHeadersLayerBuilder,
    config_file: Option<(String, PathBuf)>,
    config_toml: Option<(String, String)>,
    pub(crate) ban_list: BanList,
    /// `AUDIT_BAN_SCOPE`: which requests of a banned client are refused.
    pub(crate) ban_scope: mcp_security_core::BanScope,
    /// `[budget]` and [`SecurityConfigBuilder::budget`]: per-principal budgets.
    pub(crate) budgets: Vec<mcp_ratelimit::Budget>,
    error: Option<ConfigError>,
}

/// The variable behind each setting a layer's builder may name in an error: the one place the
/// stack maps a builder's setting to the variable (or its `*_FILE` form) users set.
const SETTING_VARIABLES: [(&str, &str); 23] = [
    ("trusted_proxies", "TRUSTED_PROXIES"),
    ("allow_networks", "ALLOW_NETWORKS"),
    ("deny_networks", "DENY_NETWORKS"),
    ("cors_origins", "CORS_ORIGINS"),
    ("allowed_hosts", "ALLOWED_HOSTS"),
    ("max_concurrency", "MAX_CONCURRENCY"),
    ("request_timeout", "REQUEST_TIMEOUT"),
    ("max_body_bytes", "MAX_BODY_BYTES"),
    ("protocol_versions", "PROTOCOL_VERSIONS"),
    ("idle_timeout", "SESSION_IDLE_TIMEOUT"),
    ("max_sessions_per_principal", "SESSION_MAX_PER_PRINCIPAL"),
    ("eviction_grace", "SESSION_EVICTION_GRACE"),
    ("max_list_bytes", "MAX_LIST_BYTES"),
    ("max_result_bytes", "RESULT_GUARD_MAX_BYTES"),
    ("api_key", "API_KEY"),
    ("api_key_pepper", "API_KEY_PEPPER"),
    ("api_keys_file", "API_KEYS_FILE"),
    ("api_key_header", "API_KEY_HEADER"),
    ("credential_header", "API_KEY_HEADER"),
    ("dev_bypass", "DEV_BYPASS"),
    ("resource", "RESOURCE_URL"),
    ("authorization_servers", "AUTHORIZATION_SERVERS"),
    ("dpop", "DPOP"),
];

impl Settings {
    /// `e` naming the variable (with this prefix) behind the builder setting it names; an error
    /// naming anything else is returned as it is.
    pub(crate) fn named(&self, e: ConfigError) -> ConfigError {
        match SETTING_VARIABLES
            .iter()
            .find(|(setting, _)| *setting == e.setting())
        {
            Some((_, variable)) => {
                let name = self.var(variable);
                e.renamed(name)
            }
            None => e,
        }
    }

    pub(crate) fn var(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }
}

/// Builds a [`SecurityConfig`]; see [`SecurityConfig::builder`]. Settings given later replace
/// earlier ones, so `builder_from_env(&env)?.require_auth(true)` overrides the environment.
/// `Debug` never shows a secret.
#[derive(Debug, Clone)]
#[must_use]
pub struct SecurityConfigBuilder {
    s: Settings,
}

/// The validated settings of the whole stack; see the [module docs](self) for every variable
/// and the TOML file. `Debug` never shows a secret.
///
/// [`layer`](Self::layer) runs the production checks ([`check`](Self::check)) and builds the
/// stack, in the order of the crate docs, as one tower `Layer`. In production it refuses to
/// build when any check finds an error; in development it logs the findings as warnings.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use mcp_security::SecurityConfig;
/// use mcp_security::core::config::Env;
/// use mcp_security::core::inspect::InspectBody;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // What a deployment with the env prefix `IQ_` sets (a server reads the process
/// // environment with `SecurityConfig::from_env_with_prefix("IQ")`).
/// let key = "iqmcp-sk-q8Z0v3WmXr1bT5nJ7cK2yH9pL4sD6fG0aE8uR3wQ1tY";
/// let env = Env::from_pairs("IQ", [
///     ("IQ_ENV", "production"),
///     ("IQ_API_KEY", key),
///     ("IQ_RESOURCE_URL", "https://mcp.example.com/mcp"),
///     ("IQ_CORS_ORIGINS", "https://app.example.com"),
/// ]);
/// let config = SecurityConfig::builder_from_env(&env)?
///     .require_mcp("tools/call:delete_note", ["notes:delete"])
///     .build()?;
/// assert!(config.has_credential_source());
/// assert!(!format!("{config:?}").contains(key));
///
/// let svc = ServiceBuilder::new()
///     .layer(config.layer()?)
///     // McpInspectLayer hands the inner service the body it may have read: `InspectBody<B>`.
///     .service_fn(|_req: Request<InspectBody<Full<Bytes>>>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
///     });
/// let request = |auth: Option<&str>| {
///     let mut req = Request::get("/tools").header("host", "127.0.0.1:8080");
///     if let Some(key) = auth {
///         req = req.header("authorization", format!("Bearer {key}"));
///     }
///     req.extension(mcp_security::core::client_addr::PeerAddr("192.0.2.1:4000".parse().unwrap()))
///         .body(Full::default())
///         .unwrap()
/// };
/// assert_eq!(svc.clone().oneshot(request(Some(key))).await?.status(), StatusCode::OK);
/// let refused = svc.oneshot(request(None)).await?;
/// assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
///
/// // In production, no credential source refuses the start, naming the variables to set.
/// let err = SecurityConfig::builder_from_env(&Env::from_pairs("IQ", [("IQ_ENV", "production")]))?
///     .build()?
///     .layer()
///     .unwrap_err();
/// assert!(err.to_string().contains("MCP-AUTH-002"));
/// assert!(err.to_string().contains("IQ_API_KEY"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub(crate) s: Settings,
    environment: Environment,
    environment_source: EnvironmentSource,
    allowed_hosts: Option<Vec<String>>,
    response_headers: Vec<(String, String)>,
    pub(crate) warned: Arc<AtomicBool>,
}

impl SecurityConfig {
    /// A builder with the defaults: production, authentication required, no credential yet,
    /// rate limiting and audit on, the API security headers.
    pub fn builder() -> SecurityConfigBuilder {
        SecurityConfigBuilder::default()
    }

    /// A builder filled from `env` (see [`SecurityConfigBuilder::read_env`]); refine it in code,
    /// then [`build`](SecurityConfigBuilder::build).
    ///
    /// # Errors
    /// As [`SecurityConfigBuilder::read_env`].
    pub fn builder_from_env(env: &Env) -> Result<SecurityConfigBuilder, ConfigError> {
        Self::builder().read_env(env)
    }

    /// The configuration from the process environment with the prefix `MCP_`.
    ///
    /// # Errors
    /// As [`SecurityConfigBuilder::read_env`] and [`SecurityConfigBuilder::build`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with_prefix("MCP")
    }

    /// The configuration from the process environment with another prefix: `"IQ"` reads
    /// `IQ_API_KEY`, `IQ_REQUIRE_AUTH` and so on.
    ///
    /// # Errors
    /// As [`SecurityConfigBuilder::read_env`] and [`SecurityConfigBuilder::build`].
    pub fn from_env_with_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::builder_from_env(&Env::new(prefix))?.build()
    }

    /// Check the configuration `env` describes without building anything, as `mcp-security
    /// check` does: secret files that cannot be read here are reported (`MCP-FILE-004`) rather
    /// than failing, `config_file` (when given) replaces `CONFIG_FILE`, and a setting that
    /// cannot be read at all becomes the single finding `MCP-CONFIG-001`.
    ///
    /// ```
    /// use mcp_security::SecurityConfig;
    /// use mcp_security::core::config::Env;
    /// use mcp_security::prodcheck::RuntimeEnvironment;
    ///
    /// let runtime = RuntimeEnvironment::new();
    /// let env = Env::from_pairs("IQ", [("IQ_REQUIRE_AUTH", "false")]);
    /// let report = SecurityConfig::check_env(&env, None, &runtime);
    /// assert!(report.ids().contains(&"MCP-AUTH-001"));
    ///
    /// let env = Env::from_pairs("IQ", [("IQ_RATE_LIMIT_BURST", "0")]);
    /// let report = SecurityConfig::check_env(&env, None, &runtime);
    /// assert_eq!(report.ids(), ["MCP-CONFIG-001"]);
    /// assert_eq!(report.findings()[0].setting(), Some("IQ_RATE_LIMIT_BURST"));
    /// ```
    pub fn check_env(
        env: &Env,
        config_file: Option<&Path>,
        runtime: &RuntimeEnvironment,
    ) -> Report {
        let config = Self::builder()
            .defer_unreadable_secret_files(true)
            .read_env(env)
            .and_then(|b| match config_file {
                Some(path) => b.config_file(path).build(),
                None => b.build(),
            });
        match config {
            // The key file's entries are read by the server when it starts; here, so that an
            // entry it would refuse (a bad created_at, say) is reported rather than skipped.
            Ok(config) => match config.api_key_dates() {
                Err(e) => Report::invalid_setting(config.environment(), &e),
                Ok(_) => config.check(runtime),
            },
            Err(e) => Report::invalid_setting(
                env.environment("ENV").unwrap_or(Environment::Production),
                &e,
            ),
        }
    }

    /// The snapshot the production checker reads (no secret in it: facts about each secret).
    pub fn check_input(&self) -> CheckInput {
        let s = &self.s;
        let mut i = CheckInput::default();
        i.prefix = s.prefix.clone();
        i.environment = self.environment;
        i.require_auth = s.require_auth;
        i.debug = s.debug;
        i.bind_addr = s.bind;
        i.api_key = s.api_key.as_ref().map(|k| k.to_input(false));
        i.api_keys_file = s.api_keys_file.clone();
        i.code_api_keys = s.named_keys.len();
        i.jwt_secret = s.jwt_secret.as_ref().map(|k| k.to_input(true));
        i.jwt_audiences = s.jwt_audiences.clone();
        if s.jwks_configured() {
            i.jwt_issuer = s.jwt_issuer.clone();
            i.jwks_url = s.jwks_url.clone();
        }
        i.resource_url = s.resource_url.clone();
        i.dev_bypass = s.dev_bypass;
        i.url_auth = s.url_auth;
        i.cors_origins = s.cors_origins.clone();
        i.cors_allow_credentials = s.cors_allow_credentials;
        i.host_check = self.allowed_hosts.is_some();
        i.trusted_proxies = s.trusted_proxies.clone();
        i.network_path_allows = s
            .network_rules
            .iter()
            .map(|(prefix, allow, _)| (prefix.clone(), allow.clone()))
            .collect();
        i.rate_limit_enabled = s.rate_limit.enabled;
        i.rate_limit_redis_url = s
            .rate_limit_redis_url
            .as_ref()
            .and_then(|url| url.value.as_ref().ok())
            .map(|url| without_userinfo(url.expose()));
        i.rate_limit_redis_fail_open =
            s.rate_limit_redis_url.is_some() && s.rate_limit_redis_fail_open;
        i.audit_enabled = s.audit_enabled;
        i.audit_log_file = s.audit_log_file.clone();
        i.audit_hmac_key = s.audit_hmac_key.as_ref().map(|k| k.to_input(false));
        i.other_secrets = s
            .api_key_pepper
            .iter()
            .chain(&s.audit_fingerprint_key)
            .map(|k| k.to_input(false))
            .collect();
        i.data_files = s.data_files.clone();
        // Redis's secret files: their permissions only (a provider's password, a PEM key).
        if let Some(url) = &s.rate_limit_redis_url {
            i.secret_files
                .extend(url.file.clone().map(|f| (url.setting.clone(), f)));
            for name in [
                "RATE_LIMIT_REDIS_PASSWORD_FILE",
                "RATE_LIMIT_REDIS_CLIENT_KEY_FILE",
            ] {
                if let Some(env) = &s.source
                    && let Ok(Some(file)) = env.string(name)
                {
                    i.secret_files.push((env.var_name(name), file.into()));
                }
            }
        }
        i.response_headers = self.response_headers.clone();
        i.token_endpoint = s.token.enabled;
        i.token_ttl = s.token.enabled.then_some(s.token.ttl);
        i.result_guard = Some(s.result_guard.as_str().to_owned());
        i.jwt_max_lifetime = s.jwt_max_lifetime;
        self.rotation_input(&mut i);
        i
    }

    /// Run the production checks against this configuration and `runtime`
    /// ([`RuntimeEnvironment::current`] for the running process).
    pub fn check(&self, runtime: &RuntimeEnvironment) -> Report {
        mcp_prodcheck::check(&self.check_input(), runtime)
    }

    /// The prefix variables are named with (`MCP`, `IQ`).
    pub fn prefix(&self) -> &str {
        &self.s.prefix
    }

    /// Production or development.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Where [`environment`](Self::environment) came from.
    pub fn environment_source(&self) -> &EnvironmentSource {
        &self.environment_source
    }

    /// Whether a credential source is required to start.
    pub fn require_auth(&self) -> bool {
        self.s.require_auth
    }

    /// Whether verbose errors were asked for (`DEBUG`; refused in production).
    pub fn debug(&self) -> bool {
        self.s.debug
    }

    /// The listen address (`BIND`, default `127.0.0.1:8080` when read from the environment;
    /// `None` when built in code without [`bind_addr`](SecurityConfigBuilder::bind_addr)).
    pub fn bind_addr(&self) -> Option<SocketAddr> {
        self.s.bind
    }

    /// The MCP endpoint path.
    pub fn mcp_path(&self) -> &str {
        &self.s.mcp_path
    }

    /// The `Host` values the MCP endpoint accepts, or `None` for any. Give the same list to the
    /// MCP server (rmcp's `StreamableHttpServerConfig::with_allowed_hosts`).
    pub fn allowed_hosts(&self) -> Option<&[String]> {
        self.allowed_hosts.as_deref()
    }

    /// The largest request body read (give rmcp the same as its own cap).
    pub fn max_body_bytes(&self) -> usize {
        self.s.max_body_bytes
    }

    /// The idle timeout of a legacy session's binding (`SESSION_IDLE_TIMEOUT`).
    pub fn session_idle_timeout(&self) -> Duration {
        self.s.session_idle_timeout
    }

    /// How long a session must be idle before the per-principal cap may evict it
    /// (`SESSION_EVICTION_GRACE`).
    pub fn session_eviction_grace(&self) -> Duration {
        self.s.session_eviction_grace
    }

    /// The most live legacy sessions per principal (`SESSION_MAX_PER_PRINCIPAL`).
    pub fn session_max_per_principal(&self) -> usize {
        self.s.session_max_per_principal
    }

    /// The protected resource's URL (`RESOURCE_URL`), if set.
    pub fn resource_url(&self) -> Option<&str> {
        self.s.resource_url.as_deref()
    }

    /// Whether any credential source is configured.
    pub fn has_credential_source(&self) -> bool {
        self.has_api_key()
            || self.s.api_keys_file.is_some()
            || !self.s.named_keys.is_empty()
            || self.jwt_enabled()
            || self.jwks_enabled()
    }

    /// Whether the single API key (`API_KEY` / `API_KEY_FILE`) is set.
    pub fn has_api_key(&self) -> bool {
        self.s.api_key.is_some()
    }

    /// The hashed key file, when set.
    pub fn api_keys_file(&self) -> Option<&Path> {
        self.s.api_keys_file.as_deref()
    }

    /// Whether HS256 JWTs are accepted.
    pub fn jwt_enabled(&self) -> bool {
        self.s.jwt_secret.is_some()
    }

    /// Whether asymmetric JWTs from an issuer's JWKS are accepted (`JWKS_URL`, or `JWT_ISSUER`
    /// without a secret).
    pub fn jwks_enabled(&self) -> bool {
        self.s.jwks_configured()
    }

    /// The accepted JWT audiences.
    pub fn jwt_audiences(&self) -> &[String] {
        &self.s.jwt_audiences
    }

    /// Whether the development bypass is on.
    pub fn dev_bypass(&self) -> bool {
        self.s.dev_bypass
    }

    /// Whether `?token=` is accepted.
    pub fn url_auth(&self) -> bool {
        self.s.url_auth
    }

    /// The configured browser origins (`None`: the environment's default).
    pub fn cors_origins(&self) -> Option<&[String]> {
        self.s.cors_origins.as_deref()
    }

    /// Whether CORS allows credentials.
    pub fn cors_allow_credentials(&self) -> bool {
        self.s.cors_allow_credentials
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.s.trusted_proxies
    }

    /// Whether rate limiting is on.
    pub fn rate_limit_enabled(&self) -> bool {
        self.s.rate_limit.enabled
    }

    /// Whether the audit trail is on.
    pub fn audit_enabled(&self) -> bool {
        self.s.audit_enabled
    }

    /// Whether the audit trail has an HMAC chain key (and so a tamper-evident file).
    pub fn audit_hmac_key_configured(&self) -> bool {
        self.s.audit_hmac_key.is_some()
    }

    /// The files secrets were read from, with the variable that named each.
    pub fn secret_files(&self) -> Vec<(&str, &Path)> {
        let s = &self.s;
        s.api_key
            .iter()
            .chain(&s.jwt_secret)
            .chain(&s.api_key_pepper)
            .chain(&s.audit_hmac_key)
            .chain(&s.audit_fingerprint_key)
            .filter_map(|k| k.file.as_deref().map(|f| (k.setting.as_str(), f)))
            .collect()
    }

    /// The ban list shared by the per-client limiter and the audit detectors.
    pub fn ban_list(&self) -> &BanList {
        &self.s.ban_list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_refused_not_ignored() {
        let var = "MCP_RATE_LIMIT_REDIS_URL";
        let err = SecurityConfig::builder_from_env(&env(&[(var, "redis://:hunter2@h:6379")]))
            .unwrap_err();
        assert_eq!(err.setting(), var);
        assert!(err.to_string().contains("`redis` cargo feature"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_settings_are_validated_and_reach_the_checker() {
        let var = "MCP_RATE_LIMIT_REDIS_URL";
        let err =
            SecurityConfig::builder_from_env(&env(&[(var, "https://user:hunter2@x.example")]))
                .unwrap_err();
        assert_eq!(err.setting(), var);
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = SecurityConfig::builder_from_env(&env(&[
            (var, "redis://127.0.0.1:6379"),
            ("MCP_RATE_LIMIT_REDIS_FAILURE", "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), "MCP_RATE_LIMIT_REDIS_FAILURE");

        let config = SecurityConfig::builder_from_env(&env(&[
            (
                "MCP_API_KEY",
                "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0",
            ),
            (var, "redis://:hunter2@redis.internal:6379/2"),
            ("MCP_RATE_LIMIT_REDIS_FAILURE", "open"),
            ("MCP_RATE_LIMIT_REPLICAS", "3"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert!(config.s.rate_limit_redis.is_some());
        let input = config.check_input();
        assert_eq!(
            input.rate_limit_redis_url.as_deref(),
            Some("redis://redis.internal:6379/2")
        );
        assert!(input.rate_limit_redis_fail_open);
        assert_eq!(
            without_userinfo("redis://u@[::1]:1?x=@"),
            "redis://[::1]:1?x=@"
        );
    }

    #[test]
    fn jwks_settings_pass_through() {
        // JWKS_URL is accepted, counts as a credential source, and reaches the checker.
        let config = SecurityConfig::builder_from_env(&env(&[
            ("MCP_JWKS_URL", "https://id.example.com/jwks"),
            ("MCP_JWT_ISSUER", "https://id.example.com"),
            ("MCP_JWT_AUDIENCE", "https://mcp.example.com/mcp"),
            ("MCP_JWT_ALGORITHMS", "RS256,ES256"),
        ]))
        .unwrap();
        assert!(config.has_credential_source());
        let s = &config.s;
        assert!(s.jwks_configured());
        assert_eq!(
            s.jwt_algorithms.as_deref(),
            Some(&["RS256".to_owned(), "ES256".to_owned()][..])
        );
        let input = config.build().unwrap().check_input();
        assert_eq!(
            input.jwks_url.as_deref(),
            Some("https://id.example.com/jwks")
        );
        assert_eq!(input.jwt_issuer.as_deref(), Some("https://id.example.com"));
        // An issuer alone means discovery; with a secret it is only the required `iss`.
        let s =
            SecurityConfig::builder_from_env(&env(&[("MCP_JWT_ISSUER", "https://id.example.com")]))
                .unwrap();
        assert!(s.s.jwks_configured());
        let s = SecurityConfig::builder_from_env(&env(&[
            ("MCP_JWT_ISSUER", "https://id.example.com"),
            (
                "MCP_JWT_SECRET",
                "env-secret-0123456789abcdef0123456789abcdef",
            ),
        ]))
        .unwrap();
        assert!(!s.s.jwks_configured());
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn jwt_verifier_follows_the_auth_rules_and_names_variables() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let config = SecurityConfig::builder_from_env(&env(&[
            ("MCP_JWKS_URL", "https://id.example.com/jwks"),
            (
                "MCP_JWT_SECRET",
                "env-secret-0123456789abcdef0123456789abcdef",
            ),
            ("MCP_JWT_LEEWAY", "5s"),
        ]))
        .unwrap();
        let verifier = config.s.jwt_verifier().unwrap().unwrap();
        assert!(verifier.has_jwks() && verifier.has_secrets());
        assert_eq!(verifier.leeway(), Duration::from_secs(5));
        let config = SecurityConfig::builder_from_env(&env(&[(
            "MCP_JWKS_URL",
            "http://id.example.com/jwks",
        )]))
        .unwrap();
        assert_eq!(
            config.s.jwt_verifier().unwrap_err().setting(),
            "MCP_JWKS_URL"
        );
    }

    #[test]
    fn errors_name_the_variables() {
        for (var, value) in [
            ("MCP_BIND", "localhost"),
            ("MCP_RATE_LIMIT_REQUESTS", "0"),
            ("MCP_RATE_LIMIT_BURST", "0"),
            ("MCP_MAX_BODY_BYTES", "0"),
            ("MCP_PROTOCOL_VERSIONS", "latest"),
            ("MCP_PROTOCOL_VERSIONS", " , "),
            ("MCP_REQUEST_TIMEOUT", "0"),
            ("MCP_ALLOWED_HOSTS", " , "),
            ("MCP_ENV", "staging"),
            ("MCP_TRUSTED_PROXIES", "nope"),
            ("MCP_SESSION_IDLE_TIMEOUT", "0"),
            ("MCP_SESSION_IDLE_TIMEOUT", "soon"),
            ("MCP_SESSION_MAX_PER_PRINCIPAL", "0"),
            ("MCP_SESSION_MAX_PER_PRINCIPAL", "-1"),
            ("MCP_SESSION_EVICTION_GRACE", "later"),
        ] {
            let err = SecurityConfig::builder_from_env(&env(&[(var, value)]))
                .and_then(SecurityConfigBuilder::build)
                .unwrap_err();
            assert_eq!(err.setting(), var, "{err}");
        }
        let err = SecurityConfig::builder_from_env(&env(&[
            ("MCP_API_KEY", "x"),
            ("MCP_API_KEY_FILE", "/x"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), "MCP_API_KEY");
    }

    #[test]
    fn session_settings_from_env_and_code() {
        let config = SecurityConfig::builder_from_env(&env(&[]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.session_idle_timeout(), Duration::from_secs(300));
        assert_eq!(config.session_max_per_principal(), 64);
        let config = SecurityConfig::builder_from_env(&env(&[
            ("MCP_SESSION_IDLE_TIMEOUT", "90s"),
            ("MCP_SESSION_MAX_PER_PRINCIPAL", "8"),
            ("MCP_SESSION_EVICTION_GRACE", "2m"),
            ("MCP_RESOURCE_URL", "https://mcp.example.com/mcp"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(config.session_idle_timeout(), Duration::from_secs(90));
        assert_eq!(config.session_max_per_principal(), 8);
        assert_eq!(config.session_eviction_grace(), Duration::from_secs(120));
        assert_eq!(config.resource_url(), Some("https://mcp.example.com/mcp"));
        assert_eq!(
            config.check_input().resource_url.as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        let config = SecurityConfig::builder()
            .session_idle_timeout(Duration::from_secs(30))
            .session_max_per_principal(2)
            .build()
            .unwrap();
        assert_eq!(config.session_idle_timeout(), Duration::from_secs(30));
        assert_eq!(config.session_max_per_principal(), 2);
        let err = SecurityConfig::builder()
            .session_max_per_principal(0)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "MCP_SESSION_MAX_PER_PRINCIPAL");
    }

    #[test]
    fn unreadable_secret_files_fail_unless_deferred() {
        let missing = "/nonexistent/mcp-security/api_key";
        let e = env(&[
            ("MCP_API_KEY_FILE", missing),
            ("MCP_RESOURCE_URL", "https://mcp.example.com/mcp"),
        ]);
        let err = SecurityConfig::builder_from_env(&e).unwrap_err();
        assert_eq!(err.setting(), "MCP_API_KEY_FILE");
        let config = SecurityConfig::builder()
            .defer_unreadable_secret_files(true)
            .read_env(&e)
            .unwrap()
            .build()
            .unwrap();
        assert!(config.has_api_key());
        assert_eq!(
            config.secret_files(),
            [("MCP_API_KEY_FILE", Path::new(missing))]
        );
        let input = config.check_input();
        assert_eq!(input.api_key.as_ref().unwrap().values, None);
        let err = config.layer().unwrap_err().to_string();
        assert!(err.contains("MCP_API_KEY_FILE"), "{err}");
    }

    #[test]
    fn toml_sections() {
        let config = SecurityConfig::builder()
            .config_toml(
                r#"
                [auth]
                exempt_paths = ["/health", "/metrics"]
                deny_prefixes = ["/internal/"]
                [auth.mcp_scopes]
                "tools/call:delete_note" = ["notes:delete"]
                [[auth.path_scopes]]
                prefix = "/api/tools"
                methods = ["delete"]
                scopes = ["tools:delete"]
                [cors]
                allow_credentials = true
                [headers]
                preset = "web"
                omit = ["cache-control"]
                [headers.set]
                x-xss-protection = "1; mode=block"
                [rate_limit.classes.write]
                match = ["tools/call:write_note"]
                requests = 20
                "#,
            )
            .build()
            .unwrap();
        assert!(config.cors_allow_credentials());
        assert_eq!(config.s.mcp_scopes.len(), 1);
        assert_eq!(config.s.path_scopes[0].1, Some(vec![Method::DELETE]));
        assert!(!config.s.caller_limits.is_empty());
        let input = config.check_input();
        assert!(
            input
                .response_headers
                .contains(&("x-xss-protection".into(), "1; mode=block".into()))
        );
        for (bad, path) in [
            ("[auth]\nexempt = []", "auth.exempt"),
            ("[nope]", "nope"),
            ("[headers]\npreset = \"html\"", "headers.preset"),
            ("[cors]\nallow_credentials = 1", "cors.allow_credentials"),
            (
                "[[auth.path_scopes]]\nscopes = []",
                "auth.path_scopes[0].prefix",
            ),
            (
                "[rate_limit.classes.x]\nrequests = 0",
                "rate_limit.classes.x.match",
            ),
            ("not toml", "config_toml"),
        ] {
            let err = SecurityConfig::builder()
                .config_toml(bad)
                .build()
                .unwrap_err();
            assert!(err.setting().starts_with(path), "{bad}: {err}");
        }
    }

    #[test]
    fn host_allowlist_follows_the_bind_address() {
        let hosts = |pairs: &[(&str, &str)]| {
            SecurityConfig::builder_from_env(&env(pairs))
                .unwrap()
                .build()
                .unwrap()
                .allowed_hosts()
                .map(<[String]>::to_vec)
        };
        assert_eq!(hosts(&[]), Some(LOOPBACK_HOSTS.map(String::from).to_vec()));
        assert_eq!(
            hosts(&[("MCP_BIND", "10.0.0.5:8080")]),
            Some(vec!["10.0.0.5".to_owned()])
        );
        assert_eq!(
            hosts(&[("MCP_BIND", "[fd00::5]:8080")]),
            Some(vec!["[fd00::5]".to_owned()])
        );
        assert_eq!(
            hosts(&[("MCP_BIND", "0.0.0.0:8080")]),
            Some(LOOPBACK_HOSTS.map(String::from).to_vec())
        );
        assert_eq!(hosts(&[("MCP_ALLOWED_HOSTS", "*")]), None);
        assert_eq!(
            hosts(&[("MCP_ALLOWED_HOSTS", "mcp.example.com, mcp.example.com:8443")]),
            Some(vec![
                "mcp.example.com".into(),
                "mcp.example.com:8443".into()
            ])
        );
    }

    #[test]
    fn environment_resolution() {
        let b = SecurityConfig::builder_from_env(&env(&[])).unwrap();
        assert_eq!(b.current_environment(), Environment::Production);
        let c = b
            .default_environment(Environment::Development)
            .build()
            .unwrap();
        assert_eq!(c.environment(), Environment::Development);
        assert_eq!(c.environment_source(), &EnvironmentSource::Default);
        let c = SecurityConfig::builder_from_env(&env(&[("MCP_ENV", "prod")]))
            .unwrap()
            .default_environment(Environment::Development)
            .build()
            .unwrap();
        assert_eq!(c.environment(), Environment::Production);
        assert_eq!(c.environment_source().to_string(), "MCP_ENV");
        let c = SecurityConfig::builder()
            .environment(Environment::Development)
            .build()
            .unwrap();
        assert_eq!(c.environment_source(), &EnvironmentSource::Code);
    }
}
