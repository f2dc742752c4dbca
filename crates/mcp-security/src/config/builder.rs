//! [`SecurityConfigBuilder`]: the settings in code, and [`build`](SecurityConfigBuilder::build).

use super::*;

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
                rotation: Default::default(),
                api_key_pepper: None,
                api_key_header: None,
                url_auth: false,
                jwt_secret: None,
                jwt_audiences: Vec::new(),
                jwt_issuer: None,
                jwt_leeway: None,
                jwks_url: None,
                jwt_algorithms: None,
                jwt_cache_size: None,
                jwt_cache_ttl: None,
                jwt_scope_claims: None,
                jwt_max_lifetime: None,
                dev_bypass: false,
                exempt_paths: None,
                deny_prefixes: Vec::new(),
                mcp_scopes: Vec::new(),
                path_scopes: Vec::new(),
                resource_url: None,
                authorization_servers: Vec::new(),
                token: crate::tokens::TokenSettings::default(),
                dpop: None,
                session_idle_timeout: mcp_auth::session::DEFAULT_IDLE_TIMEOUT,
                session_max_per_principal: mcp_auth::session::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
                session_eviction_grace: mcp_auth::session::DEFAULT_EVICTION_GRACE,
                cors_origins: None,
                cors_allow_credentials: false,
                trusted_proxies: Vec::new(),
                allow_networks: Vec::new(),
                deny_networks: Vec::new(),
                network_rules: Vec::new(),
                rate_limit: RateLimitSettings::new("MCP"),
                rate_limit_redis_url: None,
                rate_limit_redis_fail_open: false,
                #[cfg(feature = "redis")]
                rate_limit_redis: None,
                caller_limits: Vec::new(),
                caller_classes: Vec::new(),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                otel_spans: true,
                protocol_versions: None,
                filter_lists: None,
                max_list_bytes: mcp_auth::list_filter::DEFAULT_MAX_LIST_BYTES,
                tool_errors_as_results: false,
                result_guard: mcp_security_guard::ResultGuardMode::Off,
                max_result_bytes: mcp_security_guard::layer::DEFAULT_MAX_RESULT_BYTES,
                validate_tool_args: true,
                tool_manifest: None,
                blocked_patterns: Vec::new(),
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
                ban_scope: mcp_security_core::BanScope::default(),
                budgets: Vec::new(),
                error: None,
            },
        }
    }
}

impl SecurityConfigBuilder {
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

    /// Turn the built-in OAuth token endpoint on or off (`TOKEN_ENDPOINT`, default off): `POST
    /// /oauth/token` exchanges an API key (`client_id` = the key's name, `client_secret` = the
    /// key) for a short-lived JWT that this stack accepts, and RFC 8414 metadata is served, so
    /// MCP clients configured with a client id and secret work against the server alone. It
    /// needs API keys, a [resource URL](Self::resource_url) (the tokens' audience) and a
    /// signing key: the first [JWT secret](Self::jwt_secret) (HS256) or
    /// [`token_signing_key_file`](Self::token_signing_key_file). See
    /// `mcp_auth::token_endpoint`.
    pub fn token_endpoint(mut self, on: bool) -> Self {
        self.s.token.enabled = on;
        self
    }

    /// The token endpoint's issuer, the `iss` of its tokens (`TOKEN_ISSUER`; default the
    /// resource URL's origin).
    pub fn token_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.s.token.issuer = Some(issuer.into());
        self
    }

    /// The lifetime of the tokens the endpoint issues (`TOKEN_TTL`; default 15 minutes, at most
    /// one hour: an issued token cannot be revoked before it expires).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.s.token.ttl = ttl;
        self
    }

    /// An Ed25519 or P-256 private key (PKCS#8 PEM) the endpoint signs with (EdDSA / ES256)
    /// instead of the HS256 secret (`TOKEN_SIGNING_KEY_FILE`); its public half is served at
    /// `/.well-known/jwks.json` and verified by this stack without a fetch.
    pub fn token_signing_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.token.signing_key_file = Some(path.into());
        self
    }

    /// Also answer `POST /auth/api-key-login` with `{"api_key": "…"}` (`TOKEN_API_KEY_LOGIN`,
    /// default off).
    pub fn token_api_key_login(mut self, on: bool) -> Self {
        self.s.token.api_key_login = on;
        self
    }

    /// The verified-token cache (`JWT_CACHE_SIZE`, `JWT_CACHE_TTL`): how many verified JWTs
    /// are remembered (`0` turns it off; default 10000) and for how long at most (default 5
    /// minutes, never past the token's `exp`).
    pub fn jwt_cache(mut self, entries: usize, ttl: Duration) -> Self {
        self.s.jwt_cache_size = Some(entries);
        self.s.jwt_cache_ttl = Some(ttl);
        self
    }

    /// The claims scopes are read from (`JWT_SCOPE_CLAIMS`): claim names or RFC 6901 JSON
    /// pointers such as `/realm_access/roles`; default `scope`, `scp`, `scopes`, `permissions`.
    pub fn jwt_scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.jwt_scope_claims = Some(claims.into_iter().map(Into::into).collect());
        self
    }

    /// The longest `exp - iat` a JWT may have (`JWT_MAX_LIFETIME`); `None` turns the check off.
    /// Default: 24 hours for HS256 tokens, off for tokens from a JWK Set.
    pub fn jwt_max_lifetime(mut self, max: Option<Duration>) -> Self {
        self.s.jwt_max_lifetime = Some(max);
        self
    }

    /// Accept DPoP-bound tokens (RFC 9449; `DPOP`, `DPOP_NONCE`): `mode` says whether bearer
    /// tokens still work ([`DpopMode::Allowed`]) or every JWT must be bound
    /// ([`DpopMode::Required`]); the verifier holds the proof rules, the replay cache and the
    /// nonce key. See `mcp_auth::layer`'s DPoP section.
    pub fn dpop(mut self, mode: DpopMode, verifier: DpopVerifier) -> Self {
        self.s.dpop = Some((mode, verifier));
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

    /// How long a session must have been idle before the per-principal cap may evict it to
    /// admit the principal's next `initialize` (`SESSION_EVICTION_GRACE`, default
    /// [`mcp_auth::session::DEFAULT_EVICTION_GRACE`]); the evicted id then gets the server's own
    /// unknown-session 404. At least the idle timeout turns eviction off.
    pub fn session_eviction_grace(mut self, grace: Duration) -> Self {
        self.s.session_eviction_grace = grace;
        self
    }

    /// The most live legacy sessions one principal may hold (`SESSION_MAX_PER_PRINCIPAL`,
    /// default [`mcp_auth::session::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`]); at the cap its
    /// least-recently-used session idle longer than the eviction grace is evicted, else its
    /// next `initialize` is refused with 503 before it reaches the server.
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

    /// The server-wide allowed client networks (`ALLOW_NETWORKS`), replacing earlier ones: a
    /// client (resolved through the trusted proxies) outside all of them is refused with 403
    /// on every path without a [`network_rule`](Self::network_rule) of its own. Empty: any.
    pub fn allow_networks<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        self.s.allow_networks = nets.into_iter().collect();
        self
    }

    /// The server-wide denied client networks (`DENY_NETWORKS`), replacing earlier ones;
    /// refused even when an allow entry also matches.
    pub fn deny_networks<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        self.s.deny_networks = nets.into_iter().collect();
        self
    }

    /// Allow and deny lists for one path prefix (TOML `[[network]]`): the longest matching
    /// prefix's lists replace the server-wide ones there; both empty leaves the prefix open to
    /// every client. See `mcp_headers::network` for the semantics.
    ///
    /// ```
    /// use mcp_security::SecurityConfig;
    ///
    /// let config = SecurityConfig::builder()
    ///     .network_rule("/metrics", ["10.0.0.0/8".parse()?], [])
    ///     .build()?;
    /// # let _ = config;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn network_rule<A, D>(mut self, prefix: impl Into<String>, allow: A, deny: D) -> Self
    where
        A: IntoIterator<Item = IpNet>,
        D: IntoIterator<Item = IpNet>,
    {
        self.s.network_rules.push((
            prefix.into(),
            allow.into_iter().collect(),
            deny.into_iter().collect(),
        ));
        self
    }

    /// Rate limiting on or off (`RATE_LIMIT_ENABLED`; off also turns the per-caller limits off,
    /// while the ban list still applies).
    pub fn rate_limit(mut self, on: bool) -> Self {
        self.s.rate_limit.enabled = on;
        self
    }

    /// The per-client quota (`RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW`, burst
    /// `RATE_LIMIT_BURST`, default = requests).
    pub fn rate_limit_quota(mut self, requests: u64, window: Duration, burst: Option<u64>) -> Self {
        self.s.rate_limit.requests = requests;
        self.s.rate_limit.window = window;
        self.s.rate_limit.burst = burst;
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

    /// Add a per-principal budget: weighted units over a long window (an hour, a day, 30 days),
    /// refilled continuously, charged after authentication by the per-caller rate limiter to
    /// the calling principal (anonymous requests never spend one); see
    /// [`mcp_ratelimit::budget`]. The TOML file's `[budget]` section, when it has one, replaces
    /// the budgets given here. Budgets apply even with `RATE_LIMIT_ENABLED=false`.
    ///
    /// ```
    /// use mcp_security::SecurityConfig;
    /// use mcp_security::ratelimit::Budget;
    ///
    /// let config = SecurityConfig::builder()
    ///     .api_key(mcp_security::core::config::Secret::new("mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0"))
    ///     .budget(Budget::per_day("daily", 1_000).weight("tools/call:delete_note", 10))
    ///     .build()?;
    /// # let _ = config;
    /// # Ok::<(), mcp_security::core::config::ConfigError>(())
    /// ```
    pub fn budget(mut self, budget: mcp_ratelimit::Budget) -> Self {
        self.s.budgets.push(budget);
        self
    }

    /// Which requests of a banned client are refused (`AUDIT_BAN_SCOPE`, default
    /// [`BanScope::Failed`](mcp_security_core::BanScope::Failed)): with `Failed`, requests without
    /// a credential get the ban's `429` before any cryptography, requests whose credential fails
    /// get the same `429` instead of the `401`, and requests with a valid credential are served
    /// and limited per principal as usual — so one client misbehaving behind a shared egress
    /// address does not lock out the others. `All` refuses every request of the address.
    pub fn ban_scope(mut self, scope: mcp_security_core::BanScope) -> Self {
        self.s.ban_scope = scope;
        self
    }

    /// Read this TOML file (see the [module docs](super)) at build, replacing `CONFIG_FILE`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.config_file = Some(("config_file".to_owned(), path.into()));
        self.s.config_toml = None;
        self
    }

    /// Use this TOML text (see the [module docs](super)) instead of a file.
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
                let text = mcp_security_core::toml::read_file(path, setting)?;
                Some((setting.clone(), text, Some(path.clone())))
            }
            (None, None) => None,
        };
        if let Some((setting, text, path)) = toml {
            let shown = path.map_or_else(|| "TOML".to_owned(), |p| p.display().to_string());
            let doc =
                mcp_security_core::toml::parse(&text, &setting).map_err(|e| e.with_value(shown))?;
            apply_toml(&mut s, &doc)?;
            if doc.contains_key("budget") {
                s.budgets = mcp_ratelimit::budget::from_toml(&text)?;
            }
            if doc.contains_key("rate_limit") {
                // Parsed once, into the per-caller layer's typed classes and limits (replacing
                // the ones given in code), and validated now, so a typo fails the build rather
                // than the first request.
                let parsed = RateLimitLayer::builder().toml(&text)?;
                if !parsed.limits().is_empty() {
                    s.caller_classes = parsed.route_classes().to_vec();
                    s.caller_limits = parsed.limits().to_vec();
                    parsed.build()?;
                }
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
            warned: Arc::new(AtomicBool::new(false)),
        })
    }
}
