//! The stack: [`SecurityConfig::layer`] runs the production checks and builds [`SecurityLayer`],
//! every layer of the workspace in the order of the crate docs, as one tower `Layer`.

use std::fmt;
use std::sync::atomic::Ordering;

use mcp_auth::{
    ApiKeyStore, Auth, AuthLayer, AuthPolicy, CredentialAges, ListFilter, ListFilterLayer,
    SessionBinding, SessionBindingLayer, TokenEndpoint, TokenEndpointLayer,
};
use mcp_headers::{
    CorsPolicy, NetworkPolicy, NetworkPolicyLayer, NetworkRule, OriginGuard, OriginGuardLayer,
    SecurityHeaders, SecurityHeadersLayer,
};
use mcp_prodcheck::{Report, RuntimeEnvironment, Severity};
use mcp_ratelimit::{RateLimit, RateLimitLayer, ResourceLimit, ResourceLimitLayer};
use mcp_security_audit::{Audit, AuditGate, AuditLayer, AuditSettings};
use mcp_security_core::BanList;
use mcp_security_core::Scopes;
use mcp_security_core::client_addr::ClientAddrResolver;
use mcp_security_core::config::{ConfigError, Env, Environment};
use mcp_security_core::inspect::{McpInspect, McpInspectLayer};
use mcp_security_core::refusal::{ToolErrorsAsResults, ToolErrorsAsResultsLayer};
use mcp_security_guard::{ToolGuard, ToolGuardLayer};
use tower_layer::Layer;

use crate::config::{SecurityConfig, Settings};

/// The rate limiters' backend: with the `redis` feature, Redis when a store is configured (in
/// memory otherwise); without it, in memory.
#[cfg(feature = "redis")]
type RateLimitBackend = mcp_ratelimit::redis::RedisBackend;
#[cfg(not(feature = "redis"))]
type RateLimitBackend = mcp_ratelimit::Memory;

/// Why the stack was not built.
#[derive(Debug)]
#[non_exhaustive]
pub enum SecurityError {
    /// The production checks found errors: the report lists each with its fix.
    Refused(Box<Report>),
    /// A layer refused a setting (named in the error).
    Config(ConfigError),
}

impl SecurityError {
    /// The check report, when the start was refused for its findings.
    pub fn report(&self) -> Option<&Report> {
        match self {
            SecurityError::Refused(r) => Some(r),
            SecurityError::Config(_) => None,
        }
    }
}

impl fmt::Display for SecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityError::Refused(report) => f.write_str(&report.refusal()),
            SecurityError::Config(e) => write!(f, "refusing to start: {e}"),
        }
    }
}

impl std::error::Error for SecurityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecurityError::Config(e) => Some(e),
            SecurityError::Refused(_) => None,
        }
    }
}

impl From<ConfigError> for SecurityError {
    fn from(e: ConfigError) -> Self {
        SecurityError::Config(e)
    }
}

/// The service [`SecurityLayer`] wraps around `S`, outermost first: the request span (feature
/// `otel`), audit, the audit gate (503
/// while `MCP_AUDIT_OVERFLOW=refuse` and the audit file cannot take records), security headers,
/// Origin guard + CORS, network allow/deny lists, per-client rate limit, resource limits, MCP
/// envelope inspection, the request span entered (feature `otel`), agent-readable refusals (when on), the token endpoint (when on), authentication,
/// legacy-session binding, per-caller rate limits, list filtering, the tool guards.
pub type SecurityService<S> = crate::otel::RequestSpanService<
    Audit<
        AuditGate<
            SecurityHeaders<
                OriginGuard<
                    NetworkPolicy<
                        RateLimit<
                            ResourceLimit<
                                McpInspect<
                                    crate::otel::SpanContextService<
                                        ToolErrorsAsResults<
                                            TokenEndpoint<
                                                Auth<
                                                    SessionBinding<
                                                        RateLimit<
                                                            ListFilter<ToolGuard<S>>,
                                                            RateLimitBackend,
                                                        >,
                                                    >,
                                                >,
                                            >,
                                        >,
                                    >,
                                >,
                            >,
                            RateLimitBackend,
                        >,
                    >,
                >,
            >,
        >,
    >,
>;

/// Every layer of the stack, built and validated; a tower [`Layer`] usable with
/// `ServiceBuilder`, axum's `Router::layer`, tonic's `Server::builder().layer` and hyper-util.
/// Cheap to clone: the layers share their state (rate-limit buckets, the ban list, the audit
/// sinks) behind `Arc`s.
#[derive(Debug, Clone)]
pub struct SecurityLayer {
    spans: crate::otel::RequestSpanLayer,
    audit: AuditLayer,
    headers: SecurityHeadersLayer,
    guard: OriginGuardLayer,
    network: NetworkPolicyLayer,
    per_client: RateLimitLayer<RateLimitBackend>,
    resources: ResourceLimitLayer,
    inspect: McpInspectLayer,
    tokens: TokenEndpointLayer,
    auth: AuthLayer,
    sessions: SessionBindingLayer,
    per_caller: RateLimitLayer<RateLimitBackend>,
    lists: ListFilterLayer,
    tool_guard: ToolGuardLayer,
    tool_errors: ToolErrorsAsResultsLayer,
    bans: BanList,
    credentials: CredentialAges,
    report: Report,
    summary: String,
}

impl SecurityLayer {
    /// The audit layer: call [`AuditLayer::close`] after the server stopped, so a file sink
    /// writes what is queued.
    pub fn audit(&self) -> &AuditLayer {
        &self.audit
    }

    /// The ban list the per-client limiter checks and the audit detectors add to.
    pub fn ban_list(&self) -> &BanList {
        &self.bans
    }

    /// The API keys (`created_at` in the key file, as reloaded) and the HS256 secret
    /// (`JWT_SECRET_CREATED_AT`, or its file's modification time) the stack accepts, dated for
    /// the gauge `mcp_credential_oldest_age_seconds{kind}`: call
    /// [`CredentialAges::record`]`(SystemTime::now())` in the `/metrics` handler right before
    /// rendering, so the age is current when scraped.
    pub fn credential_ages(&self) -> &CredentialAges {
        &self.credentials
    }

    /// The production-check report the stack was built with (warnings and info only, in
    /// production).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Whether requests are authenticated (`false` only with `REQUIRE_AUTH=false` and no
    /// credential source).
    pub fn authenticates(&self) -> bool {
        self.auth.is_enabled()
    }

    /// The built-in OAuth token endpoint (`TOKEN_ENDPOINT`), just before authentication:
    /// [`TokenEndpointLayer::disabled`] when off. Its [issuer](TokenEndpointLayer::issuer) is
    /// listed in the protected-resource metadata and its tokens are accepted by the stack.
    pub fn token_endpoint(&self) -> &TokenEndpointLayer {
        &self.tokens
    }

    /// The tool guards, innermost (next to the service): the result guard (`RESULT_GUARD`) and
    /// its counts ([`ToolGuardLayer::stats`]).
    pub fn tool_guard(&self) -> &ToolGuardLayer {
        &self.tool_guard
    }

    /// The network allow/deny lists (`ALLOW_NETWORKS`, `DENY_NETWORKS`, TOML `[[network]]`),
    /// right after the Origin guard and before the per-client rate limit;
    /// [`NetworkPolicyLayer::is_enabled`] is `false` when no list is set.
    pub fn network_policy(&self) -> &NetworkPolicyLayer {
        &self.network
    }

    /// A one-line summary of every layer, for the start-up log line (never a secret).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The layer binding legacy MCP sessions (`Mcp-Session-Id`) to the principal that created
    /// them, right after authentication: another principal presenting the id gets 404. On by
    /// default whenever requests are authenticated.
    pub fn session_binding(&self) -> &SessionBindingLayer {
        &self.sessions
    }

    /// Replace the session-binding layer: [`SessionBindingLayer::disabled`] turns the binding
    /// off (only for a server that binds sessions itself), a built one changes its bounds.
    #[must_use]
    pub fn with_session_binding(mut self, sessions: SessionBindingLayer) -> Self {
        self.sessions = sessions;
        self.summarized()
    }

    /// The layer with [`summary`](Self::summary) computed from its layers.
    fn summarized(mut self) -> Self {
        self.summary = format!(
            "{}, security headers, {}, {}, rate limit per client ({}), resources (concurrency {}, \
             timeout {:?}), mcp-inspect (max body {} bytes), token endpoint ({}), auth ({}){}, {}, \
             rate limit per caller ({}), list filter {}, result guard {}, tool arguments {}{}{}",
            self.audit.summary(),
            self.guard.summary(),
            self.network.summary(),
            self.per_client.summary(),
            self.resources.max_concurrency(),
            self.resources.request_timeout(),
            self.inspect.max_body_bytes(),
            self.tokens.summary(),
            self.auth.summary(),
            if self.tool_errors.is_enabled() {
                ", tool refusals as results"
            } else {
                ""
            },
            self.sessions.summary(),
            self.per_caller.summary(),
            if self.lists.is_enabled() {
                format!("on (max {} bytes)", self.lists.max_list_bytes())
            } else {
                "off".to_owned()
            },
            if self.tool_guard.result_guard() == mcp_security_guard::ResultGuardMode::Off {
                "off".to_owned()
            } else {
                format!(
                    "{} (max {} bytes)",
                    self.tool_guard.result_guard(),
                    self.tool_guard.max_result_bytes()
                )
            },
            if self.tool_guard.validates_arguments() {
                "checked"
            } else {
                "unchecked"
            },
            match self.tool_guard.manifest() {
                Some((lock, mode)) => format!(
                    ", tool manifest {} ({} tools)",
                    if mode == mcp_security_guard::manifest::ManifestMode::Enforce {
                        "enforced"
                    } else {
                        "warned"
                    },
                    lock.tools.len()
                ),
                None => String::new(),
            },
            match self.tool_guard.blocked_patterns().len() {
                0 => String::new(),
                1 => ", blocked patterns (1 rule)".to_owned(),
                n => format!(", blocked patterns ({n} rules)"),
            },
        );
        self
    }
}

impl<S> Layer<S> for SecurityLayer {
    type Service = SecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.tool_guard.layer(inner);
        let svc = self.lists.layer(svc);
        let svc = self.per_caller.layer(svc);
        let svc = self.sessions.layer(svc);
        let svc = self.auth.layer(svc);
        let svc = self.tokens.layer(svc);
        let svc = self.tool_errors.layer(svc);
        let svc = crate::otel::SpanContextLayer.layer(svc);
        let svc = self.inspect.layer(svc);
        let svc = self.resources.layer(svc);
        let svc = self.per_client.layer(svc);
        let svc = self.network.layer(svc);
        let svc = self.guard.layer(svc);
        let svc = self.headers.layer(svc);
        let svc = self.audit.gate().layer(svc);
        let svc = self.audit.layer(svc);
        self.spans.layer(svc)
    }
}

impl SecurityConfig {
    /// Run the production checks against the running process
    /// ([`RuntimeEnvironment::current`]) and build the stack; see
    /// [`layer_with`](Self::layer_with).
    ///
    /// # Errors
    /// As [`layer_with`](Self::layer_with).
    pub fn layer(&self) -> Result<SecurityLayer, SecurityError> {
        self.layer_with(&RuntimeEnvironment::current())
    }

    /// Run the production checks against `runtime` and build the stack.
    ///
    /// With a Redis rate-limit store (`RATE_LIMIT_REDIS_URL`) and a current Tokio runtime, the
    /// store is warmed up in the background: it connects, authenticates and loads its script,
    /// and a failure (a wrong password, an unreachable Redis, a certificate that does not
    /// verify) is logged at `ERROR` naming the setting to check and the URL with the password
    /// masked. The stack is built either way: refusing to start would take a whole fleet down
    /// when Redis blips during a deploy, and the failure policy (`RATE_LIMIT_REDIS_FAILURE`)
    /// answers requests meanwhile; decisions are shared again as soon as Redis answers.
    ///
    /// Errors refuse the start: in production every error-severity finding; in development
    /// only those that stay errors there (no credential source although one is required,
    /// CORS credentials with `*`, every address a trusted proxy). The other findings are
    /// logged through `tracing` (warnings at `WARN`, info at `INFO`), once per configuration.
    ///
    /// # Errors
    /// [`SecurityError::Refused`] with the report; [`SecurityError::Config`] when a layer
    /// refuses a setting (a `*_FILE` secret deferred by
    /// [`defer_unreadable_secret_files`](crate::SecurityConfigBuilder::defer_unreadable_secret_files),
    /// an invalid resource URL, an audit file that cannot be opened, …).
    pub fn layer_with(&self, runtime: &RuntimeEnvironment) -> Result<SecurityLayer, SecurityError> {
        let report = self.check(runtime);
        if report.has_errors() {
            return Err(SecurityError::Refused(Box::new(report)));
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            for f in report.findings() {
                match f.severity() {
                    Severity::Info => tracing::info!(
                        target: "mcp_security",
                        id = f.id(),
                        "{} (fix: {})",
                        f.message(),
                        f.fix()
                    ),
                    _ => tracing::warn!(
                        target: "mcp_security",
                        id = f.id(),
                        "{} (fix: {})",
                        f.message(),
                        f.fix()
                    ),
                }
            }
        }
        let layer = build(self, report).map_err(SecurityError::Config)?;
        // Redis connects now, in the background: a wrong password is a start-up log line.
        #[cfg(feature = "redis")]
        self.s.warm_up_redis();
        Ok(layer)
    }
}

fn build(config: &SecurityConfig, report: Report) -> Result<SecurityLayer, ConfigError> {
    let s = &config.s;
    let environment = config.environment();
    let var = |name: &str| s.var(name);
    let resolver = ClientAddrResolver::builder()
        .trusted_proxy_nets(s.trusted_proxies.iter().copied())
        .build()
        .map_err(|e| s.named(e))?;

    let headers = s
        .headers
        .clone()
        .trusted_proxies(resolver.clone())
        .build()?;

    let mut cors = CorsPolicy::builder()
        .environment(environment)
        .allow_credentials(s.cors_allow_credentials);
    if let Some(origins) = &s.cors_origins {
        cors = cors.origins(origins.iter().cloned());
    }
    let cors = cors.build().map_err(|e| s.named(e))?;
    let mut guard = OriginGuardLayer::builder(&cors).mcp_path(&s.mcp_path);
    if let Some(bind) = s.bind {
        guard = guard.bind_addr(bind);
    }
    guard = match config.allowed_hosts() {
        Some(hosts) => guard.allowed_hosts(hosts.iter().cloned()),
        None => guard.any_host(),
    };
    let guard = guard.build().map_err(|e| s.named(e))?;
    if let Some(bind) = s.bind
        && bind.ip().is_unspecified()
        && matches!(config.allowed_hosts(), Some(h) if h.iter().any(|h| h == "localhost"))
    {
        tracing::warn!(
            target: "mcp_security",
            "bound to {bind}: only loopback Host headers are accepted on {}; set {} to the names \
             clients use",
            s.mcp_path,
            var("ALLOWED_HOSTS")
        );
    }

    let mut network = NetworkPolicyLayer::builder()
        .allow(s.allow_networks.iter().map(ToString::to_string))
        .deny(s.deny_networks.iter().map(ToString::to_string))
        .client_addr_resolver(resolver.clone())
        .mcp_path(&s.mcp_path);
    for (prefix, allow, deny) in &s.network_rules {
        network = network.path(
            NetworkRule::new(prefix)
                .allow(allow.iter().map(ToString::to_string))
                .deny(deny.iter().map(ToString::to_string)),
        );
    }
    let network = network.build().map_err(|e| s.named(e))?;

    let mut per_client = RateLimitLayer::builder()
        .mcp_path(&s.mcp_path)
        .ban_list(s.ban_list.clone())
        .ban_scope(s.ban_scope)
        .client_addr_resolver(resolver.clone());
    if let Some(header) = &s.api_key_header {
        per_client = per_client.credential_header(header);
    }
    if s.rate_limit.enabled {
        per_client = per_client.client_limit(&s.rate_limit);
    }
    #[cfg(feature = "redis")]
    let per_client = per_client.maybe_redis(s.rate_limit_redis.clone());
    let per_client = per_client.build().map_err(|e| s.named(e))?;
    // With Redis, the ban list is shared by every replica over the limiter's connection
    // (polled every 500 ms; once per list).
    #[cfg(feature = "redis")]
    if let Some(store) = &s.rate_limit_redis {
        mcp_ratelimit::redis::RedisBanSync::start(store, &s.ban_list);
    }

    let resources = ResourceLimitLayer::builder()
        .max_concurrency(s.max_concurrency)
        .request_timeout(s.request_timeout)
        .mcp_path(&s.mcp_path)
        .build()
        .map_err(|e| s.named(e))?;
    let mut inspect = McpInspectLayer::builder()
        .path(&s.mcp_path)
        .max_body_bytes(s.max_body_bytes);
    if let Some(versions) = &s.protocol_versions {
        inspect = inspect.protocol_versions(versions.iter().cloned());
    }
    let inspect = inspect.build().map_err(|e| s.named(e))?;

    // Disabled only with REQUIRE_AUTH=false and no credential source (MCP-AUTH-001 says so). The
    // Origin guard's Host allowlist is the one the resource URL may be derived from.
    let store = build_key_store(s)?;
    let credentials = config.credential_ages(store.as_ref());
    let tokens = crate::tokens::build_token_endpoint(s, store.as_ref())?;
    let auth = build_auth(s, environment, guard.allowed_hosts(), store, &tokens)?;

    // Without authentication there is no principal to bind a session to.
    let sessions = if auth.is_enabled() {
        SessionBindingLayer::builder()
            .idle_timeout(s.session_idle_timeout)
            .max_sessions_per_principal(s.session_max_per_principal)
            .eviction_grace(s.session_eviction_grace)
            .build()
            .map_err(|e| s.named(e))?
    } else {
        SessionBindingLayer::disabled()
    };

    // The list filter uses the very policy that guards calls, so lists and calls agree.
    // Without authentication there is no principal to filter for.
    let policy = build_policy(s)?;
    let lists = if auth.is_enabled() && s.filter_lists.unwrap_or_else(|| policy.has_mcp_rules()) {
        ListFilterLayer::builder(policy)
            .max_list_bytes(s.max_list_bytes)
            .build()
            .map_err(|e| s.named(e))?
    } else {
        ListFilterLayer::disabled()
    };
    // Without the `schema` feature there is no validator: say so rather than claim the check.
    #[cfg(not(feature = "schema"))]
    if s.validate_tool_args {
        tracing::warn!(
            target: "mcp_security",
            "{} is on, but mcp-security was built without its `schema` feature: tools/call \
             arguments are not checked against the tools' inputSchema",
            s.var("VALIDATE_TOOL_ARGS")
        );
    }
    let tool_guard = ToolGuardLayer::builder()
        .result_guard(s.result_guard)
        .max_result_bytes(s.max_result_bytes);
    #[cfg(feature = "schema")]
    let tool_guard = tool_guard.validate_arguments(s.validate_tool_args);
    let tool_guard = match &s.tool_manifest {
        Some((lock, mode)) => tool_guard.manifest(lock.clone(), *mode),
        None => tool_guard,
    }
    .blocked_patterns(s.blocked_patterns.iter().cloned());
    let tool_guard = tool_guard.build().map_err(|e| s.named(e))?;
    let tool_errors = if s.tool_errors_as_results {
        ToolErrorsAsResultsLayer::new()
    } else {
        ToolErrorsAsResultsLayer::disabled()
    };

    let per_caller = build_per_caller(s)?;
    let audit = build_audit(s, &resolver)?;

    Ok(SecurityLayer {
        spans: crate::otel::RequestSpanLayer::new(s.otel_spans),
        audit,
        headers,
        guard,
        network,
        per_client,
        resources,
        inspect,
        tokens,
        auth,
        sessions,
        per_caller,
        lists,
        tool_guard,
        tool_errors,
        bans: s.ban_list.clone(),
        credentials,
        report,
        summary: String::new(),
    }
    .summarized())
}

/// The one authorization policy: the auth layer guards calls with it, the list filter cuts lists
/// with it.
fn build_policy(s: &Settings) -> Result<AuthPolicy, ConfigError> {
    let mut policy = AuthPolicy::builder();
    if let Some(paths) = &s.exempt_paths {
        policy = policy.exempt_paths(paths);
    }
    for prefix in &s.deny_prefixes {
        policy = policy.deny_prefix(prefix);
    }
    for (key, scopes) in &s.mcp_scopes {
        policy = policy.require_mcp(key, scopes);
    }
    for (prefix, methods, scopes) in &s.path_scopes {
        policy = policy.require_path(prefix, methods.as_deref(), scopes);
    }
    policy.build()
}

/// The API key store of `API_KEY`, the named keys and `API_KEYS_FILE`, or `None` without keys;
/// the auth layer and the token endpoint share it.
fn build_key_store(s: &Settings) -> Result<Option<ApiKeyStore>, ConfigError> {
    let has_keys = s.api_key.is_some() || s.api_keys_file.is_some() || !s.named_keys.is_empty();
    if !has_keys {
        return Ok(None);
    }
    let mut store = ApiKeyStore::builder();
    if let Some(pepper) = &s.api_key_pepper {
        store = store.pepper(pepper.require()?.clone());
    }
    if let Some(key) = &s.api_key {
        store = store.key("env", key.require()?.expose(), Scopes::new(["*"]));
    }
    for (name, key, scopes) in &s.named_keys {
        store = store.key(name.clone(), key.expose(), scopes.clone());
    }
    if let Some(file) = &s.api_keys_file {
        store = store.file(file);
    }
    let store = store.build().map_err(|e| s.named(e))?;
    Ok(Some(store))
}

fn build_auth(
    s: &Settings,
    environment: Environment,
    allowed_hosts: Option<Vec<String>>,
    store: Option<ApiKeyStore>,
    tokens: &TokenEndpointLayer,
) -> Result<AuthLayer, ConfigError> {
    let var = |name: &str| s.var(name);
    let has_keys = store.is_some();
    if !has_keys
        && s.jwt_secret.is_none()
        && !s.jwks_configured()
        && !s.dev_bypass
        && !s.require_auth
    {
        return Ok(AuthLayer::disabled());
    }
    let mut auth = AuthLayer::builder()
        .environment(environment)
        .mcp_path(&s.mcp_path)
        .url_auth(s.url_auth)
        .dev_bypass(s.dev_bypass)
        .policy(build_policy(s)?);
    if let Some(bind) = s.bind {
        auth = auth.bind_addr(bind);
    }
    if let Some(store) = store {
        auth = auth.api_keys(store);
    }
    let trust = crate::tokens::token_trust(s, tokens)?;
    if let Some(verifier) = s.jwt_verifier_trusting(trust.as_ref())? {
        auth = auth.jwt(verifier);
    }
    if let Some((mode, verifier)) = &s.dpop {
        auth = auth.dpop(verifier.clone()).dpop_mode(*mode);
    }
    if let Some(header) = &s.api_key_header {
        auth = auth.api_key_header(header);
    }
    if let Some(url) = &s.resource_url {
        auth = auth.resource(url.clone());
    }
    auth = match allowed_hosts {
        Some(hosts) => auth.allowed_hosts(hosts),
        None => auth.any_host(),
    };
    let servers = crate::tokens::authorization_servers(s, tokens);
    if !servers.is_empty() {
        auth = auth.authorization_servers(servers);
    }
    let layer = auth.build().map_err(|e| match e.setting() {
        "credentials" => ConfigError::new(
            var("API_KEY"),
            format!(
                "no credential source: set {}, {}, {}, {}, {} or {} (or {}=false)",
                var("API_KEY"),
                var("API_KEY_FILE"),
                var("API_KEYS_FILE"),
                var("JWT_SECRET"),
                var("JWKS_URL"),
                var("JWT_ISSUER"),
                var("REQUIRE_AUTH")
            ),
        ),
        _ => s.named(e),
    })?;
    Ok(layer)
}

fn build_per_caller(s: &Settings) -> Result<RateLimitLayer<RateLimitBackend>, ConfigError> {
    let mut b = RateLimitLayer::builder().mcp_path(&s.mcp_path);
    if s.rate_limit.enabled {
        for class in &s.caller_classes {
            b = b.route_class(class.clone());
        }
        for limit in &s.caller_limits {
            b = b.limit(limit.clone());
        }
    }
    // Budgets are charged here, after authentication, to the principal (in Redis when a store
    // is configured, shared by every replica; in memory otherwise).
    for budget in &s.budgets {
        b = b.budget(budget.clone());
    }
    if b.limits().is_empty() && b.budgets().is_empty() {
        return Ok(RateLimitLayer::default());
    }
    #[cfg(feature = "redis")]
    let b = b.maybe_redis(s.rate_limit_redis.clone());
    b.build()
}

/// The audit layer: the settings the configuration owns (enabled, file, keys, API-key header,
/// trusted proxies) filled in typed, the other `AUDIT_*` knobs from the environment that was
/// read, if any.
fn build_audit(s: &Settings, resolver: &ClientAddrResolver) -> Result<AuditLayer, ConfigError> {
    let hmac_key = s
        .audit_hmac_key
        .as_ref()
        .map(|k| k.require().cloned())
        .transpose()?;
    let fingerprint_key = s
        .audit_fingerprint_key
        .as_ref()
        .map(|k| k.require().cloned())
        .transpose()?;
    // Variables the configuration owns are hidden (their `*_FILE` forms too); so is everything
    // that is not an `AUDIT_*` knob.
    let owned: Vec<String> = [
        "AUDIT_ENABLED",
        "AUDIT_LOG_FILE",
        "AUDIT_HMAC_KEY",
        "AUDIT_HMAC_KEY_FILE",
        "AUDIT_FINGERPRINT_KEY",
        "AUDIT_FINGERPRINT_KEY_FILE",
    ]
    .iter()
    .map(|n| s.var(n))
    .collect();
    let audit_prefix = s.var("AUDIT_");
    let source = s.source.clone();
    let var_prefix = s.var("");
    let knobs = Env::with_lookup(&s.prefix, move |name| {
        if owned.iter().any(|o| o == name) || !name.starts_with(&audit_prefix) {
            return None;
        }
        let short = name.strip_prefix(&var_prefix)?;
        source
            .as_ref()
            .and_then(|env| env.string(short).ok().flatten())
            .map(Into::into)
    });
    let mut audit = AuditSettings::from_env(&knobs)?;
    audit.enabled = s.audit_enabled;
    audit.log_file.clone_from(&s.audit_log_file);
    audit.hmac_key = hmac_key;
    audit.fingerprint_key = fingerprint_key;
    audit.api_key_header.clone_from(&s.api_key_header);
    audit.client_addr_resolver = resolver.clone();
    if audit.enabled && audit.log_file.is_some() {
        audit.file_from_env(&knobs)?;
    }
    audit.into_builder()?.ban_list(s.ban_list.clone()).build()
}

/// The authentication service of the stack; [`AuthLayer::disabled`] passes requests through.
#[deprecated(note = "the stack uses `mcp_auth::Auth` (with `AuthLayer::disabled`) directly")]
pub type MaybeAuth<S> = Auth<S>;

/// The response future of [`Auth`]; its parameters are the inner future and the response body.
#[deprecated(note = "the stack uses `mcp_auth::layer::ResponseFuture` directly")]
pub type MaybeAuthFuture<F, B> = mcp_auth::layer::ResponseFuture<F, B>;

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use http::{HeaderMap, Request, StatusCode};
    use http_body_util::BodyExt;
    use mcp_prodcheck::RuntimeEnvironment;
    use mcp_security_core::Scopes;
    use mcp_security_core::config::{Environment, Secret};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    const ALICE: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
    const BOB: &str = "mcp-sk-Hq8Zt2Lw5Nc9Vb4Xm7Kp1Rj6Yd3Fs0Ga8Ue2Ti5Oo7Pl";

    fn stack(
        configure: impl FnOnce(crate::SecurityConfigBuilder) -> crate::SecurityConfigBuilder,
    ) -> SecurityLayer {
        let builder = SecurityConfig::builder()
            .environment(Environment::Development)
            .bind_addr("127.0.0.1:8080".parse().unwrap());
        configure(builder)
            .build()
            .unwrap()
            .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
            .unwrap()
    }

    fn with_keys(b: crate::SecurityConfigBuilder) -> crate::SecurityConfigBuilder {
        b.named_api_key("alice", Secret::new(ALICE), Scopes::new(["*"]))
            .named_api_key("bob", Secret::new(BOB), Scopes::new(["*"]))
    }

    /// An MCP server stand-in that issues session `s-1` to a request without one.
    fn app(stack: SecurityLayer) -> Router {
        Router::new()
            .route(
                "/mcp",
                axum::routing::post(|headers: HeaderMap| async move {
                    match headers.get("mcp-session-id") {
                        None => ([("mcp-session-id", "s-1")], "{}"),
                        Some(_) => ([("x-served", "1")], "{}"),
                    }
                }),
            )
            .layer(stack)
    }

    const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

    async fn send(
        app: &Router,
        key: Option<&str>,
        session: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = send_raw(app, key, session, TOOLS_LIST).await;
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn send_raw(
        app: &Router,
        key: Option<&str>,
        session: Option<&str>,
        body: &'static str,
    ) -> (StatusCode, HeaderMap, bytes::Bytes) {
        let mut req = Request::post("/mcp")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .extension(ConnectInfo(
                "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
            ));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        let req = req.body(Body::from(body)).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn sessions_are_bound_to_their_principal_right_after_auth() {
        let stack = stack(with_keys);
        assert!(stack.session_binding().is_enabled());
        assert!(stack.summary().contains("session binding (max 100000"));
        let app = app(stack.clone());

        let (status, headers, _) = send(&app, Some(ALICE), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["mcp-session-id"], "s-1");
        assert_eq!(stack.session_binding().len(), 1);

        // Another principal, or an id never issued: rmcp's own unknown-session answer.
        for (key, id) in [(BOB, "s-1"), (ALICE, "s-2")] {
            let (status, headers, body) = send_raw(&app, Some(key), Some(id), TOOLS_LIST).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(headers.get("content-type").is_none());
            assert_eq!(
                headers["x-content-type-options"], "nosniff",
                "security headers too"
            );
            assert!(headers.get("x-served").is_none());
            assert_eq!(body, mcp_auth::session::RMCP_UNKNOWN_SESSION_BODY);
        }

        let (status, headers, _) = send(&app, Some(ALICE), Some("s-1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-served"], "1");
    }

    /// `tools/list` in the 2026-07-28 era with the given `MCP-Protocol-Version`.
    async fn send_versioned(app: &Router, version: &str) -> (StatusCode, HeaderMap, Value) {
        let req = Request::post("/mcp")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {ALICE}"))
            .header("mcp-protocol-version", version)
            .header("mcp-method", "tools/list")
            .extension(ConnectInfo(
                "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
            ))
            .body(Body::from(TOOLS_LIST))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn protocol_versions_default_to_rmcps_and_are_configurable() {
        let app = app(stack(with_keys));
        let (status, _, _) = send_versioned(&app, "2026-07-28").await;
        assert_eq!(status, StatusCode::OK);
        let (status, headers, body) = send_versioned(&app, "2027-01-01").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32022);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("2027-01-01"), "{message}");
        assert!(message.contains("2026-07-28"), "{message}");

        // A server that speaks a newer version: the operator lists it, no code change.
        let app = app_with(|b| with_keys(b).protocol_versions(["2026-07-28", "2027-01-01"]));
        let (status, _, _) = send_versioned(&app, "2027-01-01").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = send_versioned(&app, "2025-11-25").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], -32022);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .ends_with("supported: 2026-07-28, 2027-01-01"),
            "{body}"
        );
    }

    fn app_with(
        configure: impl FnOnce(crate::SecurityConfigBuilder) -> crate::SecurityConfigBuilder,
    ) -> Router {
        app(stack(configure))
    }

    const READER: &str = "mcp-sk-Rd7Qw2Ez9Xc4Vb1Nm8Lk3Jh6Gf5Ds0Ap2Zo9Iu4Yt1";
    const TOOLS: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"read_note","inputSchema":{"type":"object"}},{"name":"delete_note","inputSchema":{"type":"object"}}],"nextCursor":"c2"}}"#;
    const DELETE_CALL: &str = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_note","arguments":{}}}"#;

    /// alice may do anything, the reader only read; `delete_note` needs `notes:delete`.
    fn with_tool_rules(b: crate::SecurityConfigBuilder) -> crate::SecurityConfigBuilder {
        with_keys(b)
            .named_api_key("reader", Secret::new(READER), Scopes::new(["notes:read"]))
            .require_mcp("tools/call:delete_note", ["notes:delete"])
    }

    /// An MCP server stand-in answering every POST with the two-tool list.
    fn list_app(stack: SecurityLayer) -> Router {
        Router::new()
            .route(
                "/mcp",
                axum::routing::post(|| async { ([("content-type", "application/json")], TOOLS) }),
            )
            .layer(stack)
    }

    fn tool_names(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn lists_are_cut_to_what_the_caller_may_call_with_the_same_policy() {
        let stack = stack(with_tool_rules);
        assert!(
            stack.summary().contains("list filter on"),
            "{}",
            stack.summary()
        );
        let app = list_app(stack);
        let (status, _, body) = send_raw(&app, Some(READER), None, TOOLS_LIST).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tool_names(&body), ["read_note"]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["nextCursor"], "c2", "other fields kept");
        let (_, _, body) = send_raw(&app, Some(ALICE), None, TOOLS_LIST).await;
        assert_eq!(tool_names(&body), ["read_note", "delete_note"]);

        // The call the list hid is refused by the same rule.
        let (status, headers, body) = send_raw(&app, Some(READER), None, DELETE_CALL).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "insufficient_scope", "{v}");
    }

    #[tokio::test]
    async fn list_filtering_can_be_switched_off_and_is_off_without_mcp_rules() {
        for stack in [
            stack(|b| with_tool_rules(b).filter_lists(false)),
            stack(with_keys),
        ] {
            assert!(
                stack.summary().contains("list filter off"),
                "{}",
                stack.summary()
            );
            let app = list_app(stack);
            let (status, _, body) = send_raw(&app, Some(ALICE), None, TOOLS_LIST).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, TOOLS.as_bytes(), "passed through byte for byte");
        }
        let err = SecurityConfig::builder()
            .max_list_bytes(0)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "MCP_MAX_LIST_BYTES");
    }

    #[tokio::test]
    async fn tool_refusals_become_results_only_when_switched_on() {
        let app = list_app(stack(|b| with_tool_rules(b).tool_errors_as_results(true)));
        let (status, headers, body) = send_raw(&app, Some(READER), None, DELETE_CALL).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 9);
        assert_eq!(v["result"]["isError"], true);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("notes:delete"), "{text}");
        // Authentication failures stay 401 with the challenge.
        let (status, headers, _) =
            send_raw(&app, Some("mcp-sk-not-a-real-key"), None, DELETE_CALL).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key("www-authenticate"));
    }

    #[tokio::test]
    async fn binding_can_be_turned_off_and_is_off_without_auth() {
        let stack = stack(with_keys).with_session_binding(SessionBindingLayer::disabled());
        assert!(!stack.session_binding().is_enabled());
        assert!(stack.summary().contains("session binding off"));
        let app = app(stack);
        send(&app, Some(ALICE), None).await;
        let (status, headers, _) = send(&app, Some(BOB), Some("s-1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-served"], "1");

        let open = stack_without_auth();
        assert!(!open.authenticates());
        assert!(!open.session_binding().is_enabled());
    }

    #[tokio::test]
    async fn the_per_principal_session_cap_refuses_initialize_before_the_server() {
        let stack = stack(|b| with_keys(b).session_max_per_principal(1));
        assert_eq!(stack.session_binding().max_sessions_per_principal(), 1);
        assert!(
            stack.summary().contains("1 per principal"),
            "{}",
            stack.summary()
        );
        let served = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&served);
        let app = Router::new()
            .route(
                "/mcp",
                axum::routing::post(move || {
                    let n = counter.fetch_add(1, AtomicOrdering::Relaxed);
                    async move { ([("mcp-session-id", format!("s-{n}"))], "{}") }
                }),
            )
            .layer(stack);
        let (status, headers, _) = send_raw(&app, Some(ALICE), None, INITIALIZE).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["mcp-session-id"], "s-0");
        let (status, headers, body) = send_raw(&app, Some(ALICE), None, INITIALIZE).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.get("mcp-session-id").is_none());
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000,
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "data": {"status": 503, "code": "too_many_sessions", "max_sessions": 1}}})
        );
        assert_eq!(
            served.load(AtomicOrdering::Relaxed),
            1,
            "never reached the server"
        );
        // Bob is unaffected.
        let (status, headers, _) = send_raw(&app, Some(BOB), None, INITIALIZE).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["mcp-session-id"], "s-1");
    }

    /// GET `path` with these `Host` headers, no credential.
    async fn get(app: &Router, path: &str, host: &str) -> (StatusCode, HeaderMap, bytes::Bytes) {
        let req = Request::get(path)
            .header("host", host)
            .extension(ConnectInfo(
                "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
            ))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    const METADATA: &str = "/.well-known/oauth-protected-resource/mcp";

    fn vary(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_hostile_host_never_names_the_resource() {
        // Nothing configured: the Host allowlist (loopback for a loopback bind) decides.
        let app = app(stack(with_keys));
        let (status, headers, body) = get(&app, METADATA, "evil.example").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(vary(&headers).contains(&"host"), "{headers:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"error": "not_found",
                "message": "No protected-resource metadata is served for this host"})
        );
        // The Origin guard refuses the hostile Host on the MCP endpoint itself (403), before
        // any challenge could name it.
        let (status, _, body) = get(&app, "/mcp", "evil.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!String::from_utf8_lossy(&body).contains("evil"));
        // An allowed Host: derived, cacheable, Vary: Host.
        let (status, headers, body) = get(&app, METADATA, "127.0.0.1:8080").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-control"], "public, max-age=3600");
        assert!(vary(&headers).contains(&"host"), "{headers:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["resource"],
            "http://127.0.0.1:8080/mcp"
        );
        let (status, headers, _) = get(&app, "/mcp", "127.0.0.1:8080").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers["www-authenticate"],
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        );
        assert!(vary(&headers).contains(&"host"), "{headers:?}");
    }

    #[tokio::test]
    async fn a_configured_resource_url_is_answered_whatever_the_host() {
        let app = app(stack(|b| {
            with_keys(b).resource_url("https://mcp.example.com/mcp")
        }));
        for host in ["evil.example", "127.0.0.1:8080"] {
            let (status, headers, body) = get(&app, METADATA, host).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["cache-control"], "public, max-age=3600");
            assert!(!vary(&headers).contains(&"host"), "{headers:?}");
            assert_eq!(
                serde_json::from_slice::<Value>(&body).unwrap()["resource"],
                "https://mcp.example.com/mcp"
            );
        }
        let (_, headers, _) = get(&app, "/mcp", "127.0.0.1:8080").await;
        assert_eq!(
            headers["www-authenticate"],
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        assert!(!vary(&headers).contains(&"host"), "{headers:?}");
    }

    #[tokio::test]
    async fn with_any_host_and_no_resource_url_the_metadata_is_404() {
        let app = app(stack(|b| with_keys(b).any_host()));
        for host in ["evil.example", "127.0.0.1:8080"] {
            let (status, headers, body) = get(&app, METADATA, host).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(headers["cache-control"], "no-store");
            assert!(!vary(&headers).contains(&"host"), "{headers:?}");
            assert!(!String::from_utf8_lossy(&body).contains("evil"));
            let (status, headers, _) = get(&app, "/mcp", host).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert!(!vary(&headers).contains(&"host"), "{headers:?}");
        }
    }

    fn stack_without_auth() -> SecurityLayer {
        stack(|b| b.require_auth(false))
    }
}
