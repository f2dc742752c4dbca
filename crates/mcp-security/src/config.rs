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
//! | `API_KEY_PEPPER` / `_FILE` | HMAC pepper for key digests | — |
//! | `API_KEY_HEADER` | an extra header carrying a key, e.g. `X-API-Key` | — |
//! | `URL_AUTH` | also accept `?token=` | `false` |
//! | `JWT_SECRET` / `JWT_SECRET_FILE` | HS256 secrets, comma-separated: the first signs, all verify | — |
//! | `JWT_AUDIENCE`, `JWT_ISSUER`, `JWT_LEEWAY` | required `aud` (comma-separated) / `iss`; clock skew | —, —, 30 s |
//! | `JWKS_URL` | asymmetric JWTs (RS256, ES256, EdDSA…) verified with this JWK Set; `JWT_ISSUER` alone (no secret, no `JWKS_URL`) discovers it from the issuer's metadata (feature `jwks`, on by default) | — |
//! | `JWT_ALGORITHMS` | allow-list, comma-separated: `HS256` exactly when `JWT_SECRET` is set, asymmetric ones exactly when a JWKS is | all that fit the keys |
//! | `DEV_BYPASS` | skip auth; refused unless development and a loopback bind | `false` |
//! | `AUTH_EXEMPT_PATHS`, `AUTH_DENY_PREFIXES` | exact paths served without auth; prefixes always refused | `/health`, — |
//! | `RESOURCE_URL` | the protected resource's URL (RFC 9728 `resource`) in the OAuth metadata and the 401 challenge's `resource_metadata`; unset, the first http(s) `JWT_AUDIENCE`, else derived from a `Host` on `ALLOWED_HOSTS` (with `ALLOWED_HOSTS=*`: not served, 404). Finding `MCP-AUTH-005` when neither it nor a URL audience is set | — |
//! | `AUTHORIZATION_SERVERS` | RFC 9728 `authorization_servers` | the JWKS issuer, if any |
//! | `SESSION_IDLE_TIMEOUT` | a legacy session (`Mcp-Session-Id`) binding unused this long expires; its id is then refused with the server's own 404 | `300s` (rmcp's session keep-alive) |
//! | `SESSION_MAX_PER_PRINCIPAL` | live sessions one principal may hold; its next `initialize` is refused with 503 before it reaches the server | 64 |
//! | `CORS_ORIGINS` | allowed browser origins, comma-separated; `*` refused in production | development: the localhost set; production: none |
//! | `RATE_LIMIT_ENABLED`, `_REQUESTS`, `_WINDOW`, `_BURST`, `_MAX_KEYS` | per-client limit (off also turns the per-caller limits off; bans still apply) | `true`, 100, 60 s, = requests, 100000 |
//! | `RATE_LIMIT_REDIS_URL` / `_FILE`, `_REDIS_PREFIX`, `_REDIS_FAILURE`, `_REDIS_TIMEOUT`, `RATE_LIMIT_REPLICAS` | limits shared by every replica through Redis, one connection for both limiters (feature `redis`, on by default; see `mcp_ratelimit::redis`) | — (in memory), `mcp:rl:`, `closed` (503), `20ms`, 1 |
//! | `TRUSTED_PROXIES` | CIDRs whose forwarding headers are believed | none |
//! | `MAX_BODY_BYTES`, `MAX_CONCURRENCY`, `REQUEST_TIMEOUT` | resource limits | 1 MiB, 1000, 30 s |
//! | `FILTER_LISTS` | cut tools/prompts/resources lists to what the caller may use under the MCP scope rules (`ListFilterLayer`) | on when there are MCP rules |
//! | `MAX_LIST_BYTES` | the largest list response (or SSE event) the list filter reads; larger fails closed | 4 MiB |
//! | `TOOL_ERRORS_AS_RESULTS` | a `tools/call` refused for a scope or a per-caller limit answers 200 with an `isError` tool result | `false` |
//! | `PROTOCOL_VERSIONS` | `MCP-Protocol-Version` values accepted, comma-separated; another is refused with 400 `-32022` | the versions the bundled rmcp speaks (2024-11-05 … 2026-07-28) |
//! | `AUDIT_ENABLED`, `AUDIT_LOG_FILE`, `AUDIT_HMAC_KEY` / `_FILE` | audit trail (the other `AUDIT_*` knobs of `mcp-audit` are read too) | `true`, — (tracing only), — |
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
//! [rate_limit]                                # mcp-ratelimit's section: route classes and
//! [rate_limit.classes.write]                  # per-tool limits of the per-caller layer; when
//! match = ["tools/call:write_note"]           # it has any, the limits given in code are not
//! requests = 20                               # used
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;
use mcp_core::BanList;
use mcp_core::Scopes;
use mcp_core::config::{ConfigError, Env, Environment, Secret};
use mcp_core::inspect::DEFAULT_MAX_BODY_BYTES;
use mcp_headers::{Preset, SecurityHeadersLayer, SecurityHeadersLayerBuilder};
use mcp_prodcheck::{CheckInput, Report, RuntimeEnvironment, SecretInput};
use mcp_ratelimit::resource::{DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer, RouteClass};
use toml::{Table, Value};

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The default MCP endpoint path.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

/// The `Host` names a loopback-bound server accepts by default.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The per-client limit's defaults: 100 requests per 60 s.
const DEFAULT_RATE_REQUESTS: u64 = 100;
const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

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
    pub(crate) api_key_pepper: Option<SecretSetting>,
    pub(crate) api_key_header: Option<String>,
    pub(crate) url_auth: bool,
    pub(crate) jwt_secret: Option<SecretSetting>,
    pub(crate) jwt_audiences: Vec<String>,
    pub(crate) jwt_issuer: Option<String>,
    pub(crate) jwt_leeway: Option<Duration>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwt_algorithms: Option<Vec<String>>,
    pub(crate) dev_bypass: bool,
    pub(crate) exempt_paths: Option<Vec<String>>,
    pub(crate) deny_prefixes: Vec<String>,
    pub(crate) mcp_scopes: Vec<(String, Vec<String>)>,
    pub(crate) path_scopes: Vec<(String, Option<Vec<Method>>, Vec<String>)>,
    pub(crate) resource_url: Option<String>,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) session_idle_timeout: Duration,
    pub(crate) session_max_per_principal: usize,
    pub(crate) cors_origins: Option<Vec<String>>,
    pub(crate) cors_allow_credentials: bool,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) rate_limit_enabled: bool,
    pub(crate) rate_limit_requests: u64,
    pub(crate) rate_limit_window: Duration,
    pub(crate) rate_limit_burst: Option<u64>,
    pub(crate) rate_limit_max_keys: Option<usize>,
    /// `RATE_LIMIT_REDIS_URL(_FILE)`, for the checks (the store itself is below).
    pub(crate) rate_limit_redis_url: Option<SecretSetting>,
    pub(crate) rate_limit_redis_fail_open: bool,
    /// The Redis store both rate-limit layers share, from the environment or the builder.
    #[cfg(feature = "redis")]
    pub(crate) rate_limit_redis: Option<mcp_ratelimit::redis::RedisStore>,
    pub(crate) caller_limits: Vec<Limit>,
    pub(crate) caller_classes: Vec<RouteClass>,
    pub(crate) max_body_bytes: usize,
    /// `PROTOCOL_VERSIONS`; `None` keeps `McpInspectLayer`'s default (the bundled rmcp's).
    pub(crate) protocol_versions: Option<Vec<String>>,
    pub(crate) max_concurrency: usize,
    /// `FILTER_LISTS`; `None`: on whenever the auth policy has MCP rules.
    pub(crate) filter_lists: Option<bool>,
    /// `MAX_LIST_BYTES`.
    pub(crate) max_list_bytes: usize,
    /// `TOOL_ERRORS_AS_RESULTS`.
    pub(crate) tool_errors_as_results: bool,
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
    error: Option<ConfigError>,
}

impl Settings {
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

impl Default for SecurityConfigBuilder {
    fn default() -> Self {
        SecurityConfigBuilder {
            s: Settings {
                prefix: "MCP".to_owned(),
                source: None,
                defer_unreadable: false,
                explicit_environment: None,
                default_environment: Environment::Production,
                require_auth: true,
                debug: false,
                bind: None,
                mcp_path: DEFAULT_MCP_PATH.to_owned(),
                hosts: HostSetting::Default,
                api_key: None,
                named_keys: Vec::new(),
                api_keys_file: None,
                api_key_pepper: None,
                api_key_header: None,
                url_auth: false,
                jwt_secret: None,
                jwt_audiences: Vec::new(),
                jwt_issuer: None,
                jwt_leeway: None,
                jwks_url: None,
                jwt_algorithms: None,
                dev_bypass: false,
                exempt_paths: None,
                deny_prefixes: Vec::new(),
                mcp_scopes: Vec::new(),
                path_scopes: Vec::new(),
                resource_url: None,
                authorization_servers: Vec::new(),
                session_idle_timeout: mcp_auth::session::DEFAULT_IDLE_TIMEOUT,
                session_max_per_principal: mcp_auth::session::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
                cors_origins: None,
                cors_allow_credentials: false,
                trusted_proxies: Vec::new(),
                rate_limit_enabled: true,
                rate_limit_requests: DEFAULT_RATE_REQUESTS,
                rate_limit_window: DEFAULT_RATE_WINDOW,
                rate_limit_burst: None,
                rate_limit_max_keys: None,
                rate_limit_redis_url: None,
                rate_limit_redis_fail_open: false,
                #[cfg(feature = "redis")]
                rate_limit_redis: None,
                caller_limits: Vec::new(),
                caller_classes: Vec::new(),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                protocol_versions: None,
                filter_lists: None,
                max_list_bytes: mcp_auth::list_filter::DEFAULT_MAX_LIST_BYTES,
                tool_errors_as_results: false,
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                audit_enabled: true,
                audit_log_file: None,
                audit_hmac_key: None,
                audit_fingerprint_key: None,
                data_files: Vec::new(),
                headers: SecurityHeadersLayer::builder(),
                config_file: None,
                config_toml: None,
                ban_list: BanList::new(),
                error: None,
            },
        }
    }
}

impl SecurityConfigBuilder {
    /// Read every variable of the [module table](self) that is set, with `env`'s prefix; unset
    /// variables leave the builder's values alone. Secrets are read now (`*_FILE` files too);
    /// the TOML file named by `CONFIG_FILE` is read by [`build`](Self::build).
    ///
    /// # Errors
    /// A malformed variable, an unreadable secret file, a secret given both directly and as a
    /// file, or a variable for a feature this build leaves out (`JWKS_URL` without `jwks`,
    /// `RATE_LIMIT_REDIS_URL` without `redis`); the error names the variable and never contains
    /// a secret.
    pub fn read_env(mut self, env: &Env) -> Result<Self, ConfigError> {
        let prefix = env.var_name("");
        self.s.prefix = prefix.trim_end_matches('_').to_owned();
        let s = &mut self.s;
        if let Some(value) = env.string("ENV")? {
            let var = env.var_name("ENV");
            s.explicit_environment = Some((
                Environment::parse(&var, &value)?,
                EnvironmentSource::Variable(var),
            ));
        }
        s.require_auth = env.bool("REQUIRE_AUTH", s.require_auth)?;
        s.debug = env.bool("DEBUG", s.debug)?;
        if let Some(bind) = env.string("BIND")? {
            s.bind = Some(bind.trim().parse().map_err(|_| {
                ConfigError::new(
                    env.var_name("BIND"),
                    "expected an address such as 127.0.0.1:8080 or [::1]:8080",
                )
                .with_value(&bind)
            })?);
        } else if s.bind.is_none() {
            s.bind = DEFAULT_BIND.parse().ok();
        }
        if let Some(hosts) = env.string("ALLOWED_HOSTS")? {
            s.hosts = if hosts.trim() == "*" {
                HostSetting::Any
            } else {
                let list = env.list("ALLOWED_HOSTS")?.unwrap_or_default();
                if list.is_empty() {
                    return Err(ConfigError::new(
                        env.var_name("ALLOWED_HOSTS"),
                        "names no host (use `*` to turn the Host check off)",
                    )
                    .with_value(hosts));
                }
                HostSetting::List(list)
            };
        }
        let lenient = s.defer_unreadable;
        if let Some(key) = read_secret(env, "API_KEY", lenient)? {
            s.api_key = Some(key);
        }
        if let Some(file) = env.string("API_KEYS_FILE")? {
            s.api_keys_file = Some(file.into());
        }
        if let Some(pepper) = read_secret(env, "API_KEY_PEPPER", lenient)? {
            s.api_key_pepper = Some(pepper);
        }
        if let Some(header) = env.string("API_KEY_HEADER")? {
            s.api_key_header = Some(header.trim().to_owned());
        }
        s.url_auth = env.bool("URL_AUTH", s.url_auth)?;
        if let Some(secret) = read_secret(env, "JWT_SECRET", lenient)? {
            s.jwt_secret = Some(secret);
        }
        if let Some(audiences) = env.list("JWT_AUDIENCE")? {
            s.jwt_audiences = audiences;
        }
        if let Some(issuer) = env.string("JWT_ISSUER")? {
            s.jwt_issuer = Some(issuer);
        }
        if env.string("JWT_LEEWAY")?.is_some() {
            s.jwt_leeway = Some(env.duration("JWT_LEEWAY", Duration::ZERO)?);
        }
        if let Some(url) = env.string("JWKS_URL")? {
            s.jwks_url = Some(url);
        }
        if let Some(algorithms) = env.list("JWT_ALGORITHMS")? {
            s.jwt_algorithms = Some(algorithms);
        }
        if let Some(url) = read_secret(env, "RATE_LIMIT_REDIS_URL", lenient)? {
            s.rate_limit_redis_fail_open = env
                .string("RATE_LIMIT_REDIS_FAILURE")?
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("open"));
            #[cfg(feature = "redis")]
            if url.value.is_ok() {
                s.rate_limit_redis = mcp_ratelimit::redis::RedisStore::from_env(env)?;
            }
            #[cfg(not(feature = "redis"))]
            return Err(ConfigError::new(
                url.setting.clone(),
                "limits shared through Redis need the `redis` cargo feature of mcp-security \
                 (on by default); unset it to limit per replica",
            ));
            #[cfg(feature = "redis")]
            {
                s.rate_limit_redis_url = Some(url);
            }
        }
        s.dev_bypass = env.bool("DEV_BYPASS", s.dev_bypass)?;
        if let Some(paths) = env.list("AUTH_EXEMPT_PATHS")? {
            s.exempt_paths = Some(paths);
        }
        if let Some(prefixes) = env.list("AUTH_DENY_PREFIXES")? {
            s.deny_prefixes.extend(prefixes);
        }
        if let Some(url) = env.string("RESOURCE_URL")? {
            s.resource_url = Some(url);
        }
        if let Some(servers) = env.list("AUTHORIZATION_SERVERS")? {
            s.authorization_servers = servers;
        }
        s.session_idle_timeout = env.duration("SESSION_IDLE_TIMEOUT", s.session_idle_timeout)?;
        s.session_max_per_principal =
            env.usize("SESSION_MAX_PER_PRINCIPAL", s.session_max_per_principal)?;
        if let Some(origins) = env.list("CORS_ORIGINS")? {
            s.cors_origins = Some(origins);
        }
        if env.string("TRUSTED_PROXIES")?.is_some() {
            s.trusted_proxies = env.cidrs("TRUSTED_PROXIES")?;
        }
        s.rate_limit_enabled = env.bool("RATE_LIMIT_ENABLED", s.rate_limit_enabled)?;
        s.rate_limit_requests = env.u64("RATE_LIMIT_REQUESTS", s.rate_limit_requests)?;
        s.rate_limit_window = env.duration("RATE_LIMIT_WINDOW", s.rate_limit_window)?;
        if env.string("RATE_LIMIT_BURST")?.is_some() {
            s.rate_limit_burst = Some(env.u64("RATE_LIMIT_BURST", 0)?);
        }
        if env.string("RATE_LIMIT_MAX_KEYS")?.is_some() {
            s.rate_limit_max_keys = Some(env.usize("RATE_LIMIT_MAX_KEYS", 0)?);
        }
        s.max_body_bytes = env.usize("MAX_BODY_BYTES", s.max_body_bytes)?;
        if let Some(versions) = env.list("PROTOCOL_VERSIONS")? {
            s.protocol_versions = Some(versions);
        }
        s.max_concurrency = env.usize("MAX_CONCURRENCY", s.max_concurrency)?;
        if env.string("FILTER_LISTS")?.is_some() {
            s.filter_lists = Some(env.bool("FILTER_LISTS", true)?);
        }
        s.max_list_bytes = env.usize("MAX_LIST_BYTES", s.max_list_bytes)?;
        s.tool_errors_as_results = env.bool("TOOL_ERRORS_AS_RESULTS", s.tool_errors_as_results)?;
        s.request_timeout = env.duration("REQUEST_TIMEOUT", s.request_timeout)?;
        s.audit_enabled = env.bool("AUDIT_ENABLED", s.audit_enabled)?;
        if let Some(file) = env.string("AUDIT_LOG_FILE")? {
            s.audit_log_file = Some(file.into());
        }
        if let Some(key) = read_secret(env, "AUDIT_HMAC_KEY", lenient)? {
            s.audit_hmac_key = Some(key);
        }
        if let Some(key) = read_secret(env, "AUDIT_FINGERPRINT_KEY", lenient)? {
            s.audit_fingerprint_key = Some(key);
        }
        if let Some(files) = env.list("DATA_FILES")? {
            s.data_files.extend(files.into_iter().map(PathBuf::from));
        }
        if let Some(file) = env.string("CONFIG_FILE")? {
            s.config_file = Some((env.var_name("CONFIG_FILE"), file.into()));
        }
        s.source = Some(env.clone());
        Ok(self)
    }

    /// For offline checks (`mcp-security check` in CI): a `*_FILE` secret whose file cannot be
    /// read here is recorded as unchecked (finding `MCP-FILE-004`) instead of failing
    /// [`read_env`](Self::read_env). Call it before `read_env`. A stack built from such a
    /// configuration fails, naming the file.
    pub fn defer_unreadable_secret_files(mut self, on: bool) -> Self {
        self.s.defer_unreadable = on;
        self
    }

    /// Name settings in findings and errors with this prefix (`IQ` gives `IQ_API_KEY`; set by
    /// [`read_env`](Self::read_env); default `MCP`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.s.prefix = prefix.trim_end_matches('_').to_owned();
        self
    }

    /// Production or development, overriding `ENV`.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.s.explicit_environment = Some((environment, EnvironmentSource::Code));
        self
    }

    /// The environment when neither `ENV` nor [`environment`](Self::environment) says
    /// (default production; a local demo may choose development).
    pub fn default_environment(mut self, environment: Environment) -> Self {
        self.s.default_environment = environment;
        self
    }

    /// The environment as configured so far.
    pub fn current_environment(&self) -> Environment {
        self.s
            .explicit_environment
            .as_ref()
            .map_or(self.s.default_environment, |(e, _)| *e)
    }

    /// Refuse to start without a credential source (default `true`). With `false` and no
    /// credential, the stack has no authentication at all (`MCP-AUTH-001`, an error in
    /// production).
    pub fn require_auth(mut self, on: bool) -> Self {
        self.s.require_auth = on;
        self
    }

    /// Whether authentication is required, as configured so far.
    pub fn requires_auth(&self) -> bool {
        self.s.require_auth
    }

    /// Verbose errors, for the application to read ([`SecurityConfig::debug`]); refused in
    /// production (`MCP-DEBUG-001`).
    pub fn debug(mut self, on: bool) -> Self {
        self.s.debug = on;
        self
    }

    /// The address the server listens on (`BIND`): the checks and the development bypass need
    /// to know whether it is loopback, and the default Host allowlist follows it.
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.s.bind = Some(addr);
        self
    }

    /// The MCP endpoint path (default `/mcp`).
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.s.mcp_path = path.into();
        self
    }

    /// Accept only these `Host` values on the MCP endpoint (`ALLOWED_HOSTS`).
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.hosts = HostSetting::List(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// Accept any `Host` (`ALLOWED_HOSTS=*`; finding `MCP-NET-002`).
    pub fn any_host(mut self) -> Self {
        self.s.hosts = HostSetting::Any;
        self
    }

    /// The one API key with every scope (principal `env`), like `API_KEY`.
    pub fn api_key(mut self, key: Secret) -> Self {
        self.s.api_key = Some(SecretSetting::code(self.s.var("API_KEY"), key));
        self
    }

    /// One more API key, with its own principal name and scopes (a generated development key,
    /// for example).
    pub fn named_api_key(mut self, name: impl Into<String>, key: Secret, scopes: Scopes) -> Self {
        self.s.named_keys.push((name.into(), key, scopes));
        self
    }

    /// A hashed key file (`API_KEYS_FILE`), reloaded on change.
    pub fn api_keys_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.api_keys_file = Some(path.into());
        self
    }

    /// The HMAC pepper for key digests (`API_KEY_PEPPER`).
    pub fn api_key_pepper(mut self, pepper: Secret) -> Self {
        self.s.api_key_pepper = Some(SecretSetting::code(self.s.var("API_KEY_PEPPER"), pepper));
        self
    }

    /// Also accept a key in this header (`API_KEY_HEADER`, e.g. `X-API-Key`).
    pub fn api_key_header(mut self, name: impl Into<String>) -> Self {
        self.s.api_key_header = Some(name.into());
        self
    }

    /// Also accept `?token=` (`URL_AUTH`; finding `MCP-AUTH-004`).
    pub fn url_auth(mut self, on: bool) -> Self {
        self.s.url_auth = on;
        self
    }

    /// HS256 secrets (`JWT_SECRET`): comma-separated, the first signs, all verify.
    pub fn jwt_secret(mut self, secrets: Secret) -> Self {
        self.s.jwt_secret = Some(SecretSetting::code(self.s.var("JWT_SECRET"), secrets));
        self
    }

    /// Add an accepted token audience (`JWT_AUDIENCE`).
    pub fn jwt_audience(mut self, audience: impl Into<String>) -> Self {
        self.s.jwt_audiences.push(audience.into());
        self
    }

    /// The required token issuer (`JWT_ISSUER`).
    pub fn jwt_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.s.jwt_issuer = Some(issuer.into());
        self
    }

    /// The clock-skew allowance for tokens (`JWT_LEEWAY`, default 30 s).
    pub fn jwt_leeway(mut self, leeway: Duration) -> Self {
        self.s.jwt_leeway = Some(leeway);
        self
    }

    /// Share the rate limits of every replica through this Redis store (what
    /// `RATE_LIMIT_REDIS_URL` and the other `RATE_LIMIT_REDIS_*` variables configure). Both
    /// the per-client and the per-caller limiter use it, over one connection. Needs the `redis`
    /// feature (on by default).
    #[cfg(feature = "redis")]
    pub fn rate_limit_redis(mut self, store: mcp_ratelimit::redis::RedisStore) -> Self {
        self.s.rate_limit_redis_fail_open =
            store.failure_policy() == mcp_ratelimit::redis::FailurePolicy::Open;
        self.s.rate_limit_redis = Some(store);
        self
    }

    /// Verify asymmetric JWTs with the keys of this JWK Set (`JWKS_URL`; `https://`, or
    /// `http://` on loopback). Without it, a [`jwt_issuer`](Self::jwt_issuer) and no secret
    /// discovers the set from the issuer's metadata. Needs the `jwks` feature (on by default).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.s.jwks_url = Some(url.into());
        self
    }

    /// The accepted JWT algorithms (`JWT_ALGORITHMS`): `HS256` exactly when a secret is set,
    /// asymmetric ones (`RS256`, `PS256`, `ES256`, `EdDSA`…) exactly when a JWKS is.
    pub fn jwt_algorithms<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.jwt_algorithms = Some(algorithms.into_iter().map(Into::into).collect());
        self
    }

    /// Let requests without a credential through as a development principal (`DEV_BYPASS`):
    /// refused unless development and a loopback bind.
    pub fn dev_bypass(mut self, on: bool) -> Self {
        self.s.dev_bypass = on;
        self
    }

    /// Whether any credential source is configured so far: an API key, a key file, a named key,
    /// a JWT secret or an issuer's JWKS.
    pub fn has_credential_source(&self) -> bool {
        self.s.api_key.is_some()
            || self.s.api_keys_file.is_some()
            || !self.s.named_keys.is_empty()
            || self.s.jwt_secret.is_some()
            || self.s.jwks_configured()
    }

    /// Exact paths served without authentication (`AUTH_EXEMPT_PATHS`; default `/health`).
    pub fn exempt_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.exempt_paths = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// Refuse every request under this prefix (`AUTH_DENY_PREFIXES`), e.g. `/internal/`.
    pub fn deny_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.s.deny_prefixes.push(prefix.into());
        self
    }

    /// Require `scopes` for an MCP method (`tools/list`) or tool (`tools/call:delete_note`).
    pub fn require_mcp<I, S>(mut self, key: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s
            .mcp_scopes
            .push((key.into(), scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// Require `scopes` for HTTP requests under `prefix` (with one of `methods`, or any).
    pub fn require_path<I, S>(
        mut self,
        prefix: impl Into<String>,
        methods: Option<&[Method]>,
        scopes: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.path_scopes.push((
            prefix.into(),
            methods.map(<[Method]>::to_vec),
            scopes.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// The protected resource's URL in RFC 9728 metadata and in the 401 challenge's
    /// `resource_metadata` (`RESOURCE_URL`; finding `MCP-AUTH-005` without it or a URL
    /// audience).
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.s.resource_url = Some(url.into());
        self
    }

    /// The authorization servers in RFC 9728 metadata (`AUTHORIZATION_SERVERS`).
    pub fn authorization_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// How long a legacy session's binding to its principal lives without a request
    /// (`SESSION_IDLE_TIMEOUT`, default [`mcp_auth::session::DEFAULT_IDLE_TIMEOUT`], rmcp's
    /// session keep-alive). An expired binding's session id is refused with the server's own
    /// 404, its owner's requests included (the client then starts a new session).
    pub fn session_idle_timeout(mut self, idle: Duration) -> Self {
        self.s.session_idle_timeout = idle;
        self
    }

    /// The most live legacy sessions one principal may hold (`SESSION_MAX_PER_PRINCIPAL`,
    /// default [`mcp_auth::session::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`]); its next
    /// `initialize` is refused with 503 before it reaches the server.
    pub fn session_max_per_principal(mut self, max: usize) -> Self {
        self.s.session_max_per_principal = max;
        self
    }

    /// The browser origins allowed (`CORS_ORIGINS`).
    pub fn cors_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.cors_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Allow credentialed CORS requests (TOML `cors.allow_credentials`; bearer tokens do not
    /// need it).
    pub fn cors_allow_credentials(mut self, on: bool) -> Self {
        self.s.cors_allow_credentials = on;
        self
    }

    /// The proxies whose forwarding headers are believed (`TRUSTED_PROXIES`).
    pub fn trusted_proxies<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        self.s.trusted_proxies = nets.into_iter().collect();
        self
    }

    /// Rate limiting on or off (`RATE_LIMIT_ENABLED`; off also turns the per-caller limits off,
    /// while the ban list still applies).
    pub fn rate_limit(mut self, on: bool) -> Self {
        self.s.rate_limit_enabled = on;
        self
    }

    /// The per-client quota (`RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW`, burst
    /// `RATE_LIMIT_BURST`, default = requests).
    pub fn rate_limit_quota(mut self, requests: u64, window: Duration, burst: Option<u64>) -> Self {
        self.s.rate_limit_requests = requests;
        self.s.rate_limit_window = window;
        self.s.rate_limit_burst = burst;
        self
    }

    /// A limit of the per-caller layer (after authentication), such as per principal, per
    /// route class or per tool. Used when the TOML file's `[rate_limit]` section has none.
    pub fn caller_limit(mut self, limit: Limit) -> Self {
        self.s.caller_limits.push(limit);
        self
    }

    /// A route class for [`caller_limit`](Self::caller_limit)s.
    pub fn caller_route_class(mut self, class: RouteClass) -> Self {
        self.s.caller_classes.push(class);
        self
    }

    /// The largest request body read by `McpInspectLayer` (`MAX_BODY_BYTES`, default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.s.max_body_bytes = bytes;
        self
    }

    /// The `MCP-Protocol-Version` values `McpInspectLayer` accepts (`PROTOCOL_VERSIONS`,
    /// comma-separated; default [`DEFAULT_PROTOCOL_VERSIONS`](mcp_core::mcp_headers::DEFAULT_PROTOCOL_VERSIONS),
    /// the versions the bundled rmcp speaks). Another version is refused with 400 `-32022`
    /// naming the supported ones; set this when the server behind speaks other versions.
    pub fn protocol_versions<I, S>(mut self, versions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.protocol_versions = Some(versions.into_iter().map(Into::into).collect());
        self
    }

    /// Cut `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`
    /// results to what the caller may use under the MCP rules of the auth policy
    /// (`FILTER_LISTS`; default: on whenever there are MCP rules, see
    /// [`ListFilterLayer`](mcp_auth::ListFilterLayer)). `false` shows every caller every entry.
    pub fn filter_lists(mut self, on: bool) -> Self {
        self.s.filter_lists = Some(on);
        self
    }

    /// The most bytes of a list response (or one SSE event) the list filter reads; a larger one
    /// fails closed with a JSON-RPC error (`MAX_LIST_BYTES`, default 4 MiB).
    pub fn max_list_bytes(mut self, bytes: usize) -> Self {
        self.s.max_list_bytes = bytes;
        self
    }

    /// Answer a `tools/call` refused for a missing scope or a per-caller/tool rate limit with
    /// HTTP 200 and a tool result `isError: true` naming the scope or the wait, so an agent can
    /// read it (`TOOL_ERRORS_AS_RESULTS`, default `false`: the specification's 403/429).
    /// Authentication failures stay 401.
    pub fn tool_errors_as_results(mut self, on: bool) -> Self {
        self.s.tool_errors_as_results = on;
        self
    }

    /// Requests served at once (`MAX_CONCURRENCY`, default 1000).
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.s.max_concurrency = max;
        self
    }

    /// Time allowed per request, SSE streams exempt (`REQUEST_TIMEOUT`, default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.s.request_timeout = timeout;
        self
    }

    /// The audit trail on or off (`AUDIT_ENABLED`).
    pub fn audit(mut self, on: bool) -> Self {
        self.s.audit_enabled = on;
        self
    }

    /// A tamper-evident audit file (`AUDIT_LOG_FILE`) and its HMAC chain key
    /// (`AUDIT_HMAC_KEY`, at least 32 bytes).
    pub fn audit_log_file(mut self, path: impl Into<PathBuf>, hmac_key: Secret) -> Self {
        self.s.audit_log_file = Some(path.into());
        self.s.audit_hmac_key = Some(SecretSetting::code(self.s.var("AUDIT_HMAC_KEY"), hmac_key));
        self
    }

    /// A file holding user data, checked for permissions (`DATA_FILES`).
    pub fn data_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.data_files.push(path.into());
        self
    }

    /// The security headers (default [`SecurityHeadersLayer::api`]'s); the TOML `[headers]`
    /// table applies on top.
    pub fn security_headers(mut self, headers: SecurityHeadersLayerBuilder) -> Self {
        self.s.headers = headers;
        self
    }

    /// The ban list the per-client limiter checks and the audit detectors add to (default: a
    /// new one). Pass a clone of your own to ban clients from elsewhere.
    pub fn ban_list(mut self, bans: BanList) -> Self {
        self.s.ban_list = bans;
        self
    }

    /// Read this TOML file (see the [module docs](self)) at build, replacing `CONFIG_FILE`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.config_file = Some(("config_file".to_owned(), path.into()));
        self.s.config_toml = None;
        self
    }

    /// Use this TOML text (see the [module docs](self)) instead of a file.
    pub fn config_toml(mut self, text: impl Into<String>) -> Self {
        self.s.config_toml = Some(("config_toml".to_owned(), text.into()));
        self.s.config_file = None;
        self
    }

    /// Validate everything that does not depend on the production checks, read the TOML file,
    /// and resolve the environment and the Host allowlist. Secrets are kept for
    /// [`SecurityConfig::layer`], which runs the checks and builds the stack.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting: the TOML file (unreadable, invalid, an unknown
    /// key, with its path), a refused value such as a zero quota or an invalid header.
    pub fn build(self) -> Result<SecurityConfig, ConfigError> {
        let mut s = self.s;
        if let Some(err) = s.error.take() {
            return Err(err);
        }
        let (environment, environment_source) = s
            .explicit_environment
            .clone()
            .unwrap_or((s.default_environment, EnvironmentSource::Default));
        let toml = match (&s.config_toml, &s.config_file) {
            (Some((setting, text)), _) => Some((setting.clone(), text.clone(), None)),
            (None, Some((setting, path))) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(setting, format!("cannot read the file: {e}"))
                        .with_value(path.display().to_string())
                })?;
                Some((setting.clone(), text, Some(path.clone())))
            }
            (None, None) => None,
        };
        let mut rate_limit_toml = None;
        if let Some((setting, text, path)) = toml {
            let shown = path.map_or_else(|| "TOML".to_owned(), |p| p.display().to_string());
            let doc: Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new(&setting, format!("invalid TOML: {}", e.message()))
                    .with_value(&shown)
            })?;
            apply_toml(&mut s, &doc)?;
            if doc.contains_key("rate_limit") {
                // Validate it now, so a typo fails the build rather than the first request.
                let limits = RateLimitLayer::builder().toml(&text)?;
                if !limits.limits().is_empty() {
                    limits.build()?;
                }
                rate_limit_toml = Some(text);
            }
        }
        validate(&s)?;
        let probe = s.headers.clone().build()?;
        let response_headers = probe
            .headers()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let allowed_hosts = match (&s.hosts, s.bind) {
            (HostSetting::Any, _) => None,
            (HostSetting::List(list), _) => Some(list.clone()),
            (HostSetting::Default, Some(addr)) if addr.ip().is_unspecified() => {
                Some(LOOPBACK_HOSTS.map(str::to_owned).to_vec())
            }
            (HostSetting::Default, Some(addr)) if !addr.ip().is_loopback() => {
                Some(vec![match addr.ip() {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    ip => ip.to_string(),
                }])
            }
            (HostSetting::Default, _) => Some(LOOPBACK_HOSTS.map(str::to_owned).to_vec()),
        };
        Ok(SecurityConfig {
            s,
            environment,
            environment_source,
            allowed_hosts,
            response_headers,
            rate_limit_toml,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// Read a secret from `NAME` or `NAME_FILE`; with `lenient`, an unreadable file is recorded.
fn read_secret(env: &Env, name: &str, lenient: bool) -> Result<Option<SecretSetting>, ConfigError> {
    let file_var = env.var_name(&format!("{name}_FILE"));
    let file = env.string(&format!("{name}_FILE"))?.map(PathBuf::from);
    let setting = if file.is_some() {
        file_var.clone()
    } else {
        env.var_name(name)
    };
    match env.secret(name) {
        Ok(None) => Ok(None),
        Ok(Some(secret)) => Ok(Some(SecretSetting {
            setting,
            file,
            value: Ok(secret),
        })),
        Err(err) if lenient && err.setting() == file_var => {
            // Only a file that cannot be opened is deferred; an empty or non-UTF-8 file is
            // still an error.
            let Some(path) = file else {
                return Err(err);
            };
            match std::fs::File::open(&path) {
                Err(io) => Ok(Some(SecretSetting {
                    setting,
                    file: Some(path),
                    value: Err(io.to_string()),
                })),
                Ok(_) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

fn validate(s: &Settings) -> Result<(), ConfigError> {
    let at_least_one = |name: &str, value: u64| {
        if value == 0 {
            Err(ConfigError::new(s.var(name), "must be at least 1").with_value("0"))
        } else {
            Ok(())
        }
    };
    at_least_one("RATE_LIMIT_REQUESTS", s.rate_limit_requests)?;
    if let Some(burst) = s.rate_limit_burst {
        at_least_one("RATE_LIMIT_BURST", burst)?;
    }
    if let Some(max) = s.rate_limit_max_keys {
        at_least_one("RATE_LIMIT_MAX_KEYS", max as u64)?;
    }
    at_least_one("MAX_BODY_BYTES", s.max_body_bytes as u64)?;
    at_least_one("MAX_LIST_BYTES", s.max_list_bytes as u64)?;
    if let Some(versions) = &s.protocol_versions {
        if versions.is_empty() {
            return Err(ConfigError::new(
                s.var("PROTOCOL_VERSIONS"),
                "must list at least one protocol version",
            ));
        }
        if let Some(bad) = versions
            .iter()
            .find(|v| !mcp_core::mcp_headers::is_version_shaped(v))
        {
            return Err(ConfigError::new(
                s.var("PROTOCOL_VERSIONS"),
                "each protocol version must look like YYYY-MM-DD",
            )
            .with_value(bad.clone()));
        }
    }
    at_least_one(
        "SESSION_MAX_PER_PRINCIPAL",
        s.session_max_per_principal as u64,
    )?;
    if s.session_idle_timeout.is_zero() {
        return Err(
            ConfigError::new(s.var("SESSION_IDLE_TIMEOUT"), "must be longer than zero")
                .with_value("0"),
        );
    }
    at_least_one("MAX_CONCURRENCY", s.max_concurrency as u64)?;
    if s.request_timeout.is_zero() {
        return Err(
            ConfigError::new(s.var("REQUEST_TIMEOUT"), "must be longer than zero").with_value("0"),
        );
    }
    // The per-client quota, validated as the layer will build it.
    RateLimitLayer::builder()
        .limit(per_client_limit(s))
        .build()
        .map_err(|e| {
            let name = match e.setting() {
                "limit.ip.window" => "RATE_LIMIT_WINDOW",
                "limit.ip.burst" => "RATE_LIMIT_BURST",
                _ => "RATE_LIMIT_REQUESTS",
            };
            e.renamed(s.var(name))
        })?;
    let path_ok = |p: &str| p.starts_with('/') && (p.len() == 1 || !p.ends_with('/'));
    if !path_ok(&s.mcp_path) {
        return Err(
            ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                .with_value(&s.mcp_path),
        );
    }
    Ok(())
}

/// The per-client limit: `RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW`, named `ip`.
pub(crate) fn per_client_limit(s: &Settings) -> Limit {
    let burst = s.rate_limit_burst.unwrap_or(s.rate_limit_requests);
    Limit::new(
        "ip",
        Quota::new(s.rate_limit_requests, s.rate_limit_window).with_burst(burst),
        KeySelector::client_addr(),
    )
}

/// The same error under another setting name.
impl Settings {
    /// Whether asymmetric JWTs from a JWKS are configured: `JWKS_URL`, or `JWT_ISSUER` with
    /// neither a secret nor `JWKS_URL` (discovery).
    pub(crate) fn jwks_configured(&self) -> bool {
        self.jwks_url.is_some() || (self.jwt_issuer.is_some() && self.jwt_secret.is_none())
    }

    /// The JWT verifier these settings describe (HS256 secrets, an issuer's JWKS, or both), or
    /// `None` without either. Built by mcp-auth's own environment reader, so code, environment and
    /// TOML settings follow exactly the same rules; errors name the prefixed variables. A JWKS is
    /// fetched in the background, not here (see `mcp_auth::jwks`).
    ///
    /// # Errors
    /// As `mcp_auth::layer::AuthLayer::jwt_from_env`: an invalid secret, URL, issuer, audience or
    /// algorithm list, or a JWKS without the `jwks` feature.
    pub(crate) fn jwt_verifier(&self) -> Result<Option<mcp_auth::JwtVerifier>, ConfigError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(secret) = &self.jwt_secret {
            pairs.push((
                self.var("JWT_SECRET"),
                secret.require()?.expose().to_owned(),
            ));
        }
        if let Some(url) = &self.jwks_url {
            pairs.push((self.var("JWKS_URL"), url.clone()));
        }
        if let Some(issuer) = &self.jwt_issuer {
            pairs.push((self.var("JWT_ISSUER"), issuer.clone()));
        }
        if !self.jwt_audiences.is_empty() {
            pairs.push((self.var("JWT_AUDIENCE"), self.jwt_audiences.join(",")));
        }
        if let Some(algorithms) = &self.jwt_algorithms {
            pairs.push((self.var("JWT_ALGORITHMS"), algorithms.join(",")));
        }
        if let Some(leeway) = self.jwt_leeway {
            pairs.push((self.var("JWT_LEEWAY"), format!("{}ms", leeway.as_millis())));
        }
        let env = Env::from_pairs(&self.prefix, pairs);
        let verifier = mcp_auth::AuthLayer::jwt_from_env(&env);
        match (&self.jwt_secret, verifier) {
            // A secret given as a file is named by its own variable.
            (Some(secret), Err(e)) if e.setting() == self.var("JWT_SECRET") => {
                Err(e.renamed(secret.setting.clone()))
            }
            (_, result) => result,
        }
    }
}

/// `url` without the `user:password@` part, for reports.
fn without_userinfo(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[not a URL]".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

fn apply_toml(s: &mut Settings, doc: &Table) -> Result<(), ConfigError> {
    for (key, value) in doc {
        match key.as_str() {
            "auth" => toml_auth(s, table(value, "auth")?)?,
            "cors" => {
                for (k, v) in table(value, "cors")? {
                    match k.as_str() {
                        "allow_credentials" => {
                            s.cors_allow_credentials = boolean(v, "cors.allow_credentials")?;
                        }
                        _ => return Err(unknown(&format!("cors.{k}"))),
                    }
                }
            }
            "headers" => toml_headers(s, table(value, "headers")?)?,
            "rate_limit" => {}
            _ => return Err(unknown(key)),
        }
    }
    Ok(())
}

fn toml_auth(s: &mut Settings, auth: &Table) -> Result<(), ConfigError> {
    for (key, value) in auth {
        let path = format!("auth.{key}");
        match key.as_str() {
            "exempt_paths" => s.exempt_paths = Some(strings(value, &path)?),
            "deny_prefixes" => s.deny_prefixes.extend(strings(value, &path)?),
            "mcp_scopes" => {
                for (k, v) in table(value, &path)? {
                    s.mcp_scopes
                        .push((k.clone(), strings(v, &format!("{path}.{k}"))?));
                }
            }
            "path_scopes" => {
                let Value::Array(rules) = value else {
                    return Err(ConfigError::new(&path, "must be an array of tables"));
                };
                for (i, rule) in rules.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    let rule = table(rule, &path)?;
                    let mut prefix = None;
                    let mut methods = None;
                    let mut scopes = Vec::new();
                    for (k, v) in rule {
                        let path = format!("{path}.{k}");
                        match k.as_str() {
                            "prefix" => prefix = Some(string(v, &path)?),
                            "scopes" => scopes = strings(v, &path)?,
                            "methods" => {
                                let parsed = strings(v, &path)?
                                    .into_iter()
                                    .map(|m| {
                                        Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                                            .map_err(|_| {
                                                ConfigError::new(&path, "not an HTTP method")
                                                    .with_value(m)
                                            })
                                    })
                                    .collect::<Result<Vec<_>, _>>()?;
                                methods = Some(parsed);
                            }
                            _ => return Err(unknown(&path)),
                        }
                    }
                    let prefix = prefix
                        .ok_or_else(|| ConfigError::new(format!("{path}.prefix"), "is required"))?;
                    s.path_scopes.push((prefix, methods, scopes));
                }
            }
            _ => return Err(unknown(&path)),
        }
    }
    Ok(())
}

fn toml_headers(s: &mut Settings, headers: &Table) -> Result<(), ConfigError> {
    if let Some(preset) = headers.get("preset") {
        let preset = match string(preset, "headers.preset")?.as_str() {
            "api" => Preset::Api,
            "web" => Preset::Web,
            other => {
                return Err(
                    ConfigError::new("headers.preset", "expected \"api\" or \"web\"")
                        .with_value(other),
                );
            }
        };
        s.headers = s.headers.clone().preset(preset);
    }
    for (key, value) in headers {
        let path = format!("headers.{key}");
        match key.as_str() {
            "preset" => {}
            "omit" => {
                for name in strings(value, &path)? {
                    s.headers = s.headers.clone().omit(&name);
                }
            }
            "set" => {
                for (name, v) in table(value, &path)? {
                    let v = string(v, &format!("{path}.{name}"))?;
                    s.headers = s.headers.clone().header(name, &v);
                }
            }
            _ => return Err(unknown(&path)),
        }
    }
    Ok(())
}

fn unknown(path: &str) -> ConfigError {
    ConfigError::new(
        path,
        "unknown key (see the mcp-security configuration docs)",
    )
}

fn table<'a>(value: &'a Value, path: &str) -> Result<&'a Table, ConfigError> {
    value
        .as_table()
        .ok_or_else(|| ConfigError::new(path, "must be a table"))
}

fn boolean(value: &Value, path: &str) -> Result<bool, ConfigError> {
    value
        .as_bool()
        .ok_or_else(|| ConfigError::new(path, "must be true or false"))
}

fn string(value: &Value, path: &str) -> Result<String, ConfigError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::new(path, "must be a string"))
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| string(v, &format!("{path}[{i}]")))
            .collect(),
        _ => Err(ConfigError::new(path, "must be an array of strings")),
    }
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
    pub(crate) rate_limit_toml: Option<String>,
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
            Ok(config) => config.check(runtime),
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
        i.rate_limit_enabled = s.rate_limit_enabled;
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
        i.response_headers = self.response_headers.clone();
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
        self.s.rate_limit_enabled
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
            ("MCP_RESOURCE_URL", "https://mcp.example.com/mcp"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(config.session_idle_timeout(), Duration::from_secs(90));
        assert_eq!(config.session_max_per_principal(), 8);
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
        assert!(config.rate_limit_toml.is_some());
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
