//! The stack: [`SecurityConfig::layer`] runs the production checks and builds [`SecurityLayer`],
//! every layer of the workspace in the order of the crate docs, as one tower `Layer`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{Request, Response};
use mcp_audit::{Audit, AuditLayer};
use mcp_auth::layer::Auth;
use mcp_auth::{ApiKeyStore, AuthLayer, AuthPolicy, JwtVerifier};
use mcp_core::BanList;
use mcp_core::client_addr::ClientAddrResolver;
use mcp_core::config::{ConfigError, Env, Environment, Secret};
use mcp_core::inspect::{McpInspect, McpInspectLayer};
use mcp_core::{GuardBody, Scopes};
use mcp_headers::origin_guard::OriginGuard;
use mcp_headers::security_headers::SecurityHeaders;
use mcp_headers::{CorsPolicy, OriginGuardLayer, SecurityHeadersLayer};
use mcp_prodcheck::{Report, RuntimeEnvironment, Severity};
use mcp_ratelimit::{RateLimit, RateLimitLayer, ResourceLimit, ResourceLimitLayer};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{SecurityConfig, Settings, per_client_limit, rename};

/// Why the stack was not built.
#[derive(Debug)]
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

/// The service [`SecurityLayer`] wraps around `S`, outermost first: audit, security headers,
/// Origin guard + CORS, per-client rate limit, resource limits, MCP envelope inspection,
/// authentication, per-caller rate limits.
pub type SecurityService<S> = Audit<
    SecurityHeaders<OriginGuard<RateLimit<ResourceLimit<McpInspect<MaybeAuth<RateLimit<S>>>>>>>,
>;

/// Every layer of the stack, built and validated; a tower [`Layer`] usable with
/// `ServiceBuilder`, axum's `Router::layer`, tonic's `Server::builder().layer` and hyper-util.
/// Cheap to clone: the layers share their state (rate-limit buckets, the ban list, the audit
/// sinks) behind `Arc`s.
#[derive(Debug, Clone)]
pub struct SecurityLayer {
    audit: AuditLayer,
    headers: SecurityHeadersLayer,
    guard: OriginGuardLayer,
    per_client: RateLimitLayer,
    resources: ResourceLimitLayer,
    inspect: McpInspectLayer,
    auth: Option<AuthLayer>,
    per_caller: RateLimitLayer,
    bans: BanList,
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

    /// The production-check report the stack was built with (warnings and info only, in
    /// production).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Whether requests are authenticated (`false` only with `REQUIRE_AUTH=false` and no
    /// credential source).
    pub fn authenticates(&self) -> bool {
        self.auth.is_some()
    }

    /// A one-line summary of every layer, for the start-up log line (never a secret).
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

impl<S> Layer<S> for SecurityLayer {
    type Service = SecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.per_caller.layer(inner);
        let svc = MaybeAuth {
            inner: match &self.auth {
                Some(auth) => Either::On(auth.layer(svc)),
                None => Either::Off(svc),
            },
        };
        let svc = self.inspect.layer(svc);
        let svc = self.resources.layer(svc);
        let svc = self.per_client.layer(svc);
        let svc = self.guard.layer(svc);
        let svc = self.headers.layer(svc);
        self.audit.layer(svc)
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
        build(self, report).map_err(SecurityError::Config)
    }
}

fn build(config: &SecurityConfig, report: Report) -> Result<SecurityLayer, ConfigError> {
    let s = &config.s;
    let environment = config.environment();
    let var = |name: &str| s.var(name);
    let resolver = ClientAddrResolver::builder()
        .trusted_proxy_nets(s.trusted_proxies.iter().copied())
        .build()
        .map_err(|e| rename(e, var("TRUSTED_PROXIES")))?;

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
    let cors = cors.build().map_err(|e| match e.setting() {
        "cors_origins" => rename(e, var("CORS_ORIGINS")),
        _ => e,
    })?;
    let mut guard = OriginGuardLayer::builder(&cors).mcp_path(&s.mcp_path);
    if let Some(bind) = s.bind {
        guard = guard.bind_addr(bind);
    }
    guard = match config.allowed_hosts() {
        Some(hosts) => guard.allowed_hosts(hosts.iter().cloned()),
        None => guard.any_host(),
    };
    let guard = guard.build().map_err(|e| rename(e, var("ALLOWED_HOSTS")))?;
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

    let mut per_client = RateLimitLayer::builder()
        .mcp_path(&s.mcp_path)
        .ban_list(s.ban_list.clone())
        .client_addr_resolver(resolver.clone());
    if s.rate_limit_enabled {
        per_client = per_client.limit(per_client_limit(s));
        if let Some(max) = s.rate_limit_max_keys {
            per_client = per_client.max_keys(max);
        }
    }
    let per_client = per_client.build()?;

    let resources = ResourceLimitLayer::builder()
        .max_concurrency(s.max_concurrency)
        .request_timeout(s.request_timeout)
        .mcp_path(&s.mcp_path)
        .build()
        .map_err(|e| match e.setting() {
            "max_concurrency" => rename(e, var("MAX_CONCURRENCY")),
            "request_timeout" => rename(e, var("REQUEST_TIMEOUT")),
            _ => e,
        })?;
    let inspect = McpInspectLayer::builder()
        .path(&s.mcp_path)
        .max_body_bytes(s.max_body_bytes)
        .build()
        .map_err(|e| match e.setting() {
            "max_body_bytes" => rename(e, var("MAX_BODY_BYTES")),
            _ => e,
        })?;

    // None only with REQUIRE_AUTH=false and no credential source (MCP-AUTH-001 says so).
    let auth = build_auth(s, environment)?;

    let per_caller = build_per_caller(config)?;
    let audit = build_audit(s)?;

    let summary = format!(
        "{}, security headers, {}, rate limit per client ({}), resources (concurrency {}, \
         timeout {:?}), mcp-inspect (max body {} bytes), auth ({}), rate limit per caller ({})",
        audit.summary(),
        guard.summary(),
        per_client.summary(),
        s.max_concurrency,
        s.request_timeout,
        s.max_body_bytes,
        auth.as_ref()
            .map_or_else(|| "off".to_owned(), AuthLayer::summary),
        per_caller.summary(),
    );
    Ok(SecurityLayer {
        audit,
        headers,
        guard,
        per_client,
        resources,
        inspect,
        auth,
        per_caller,
        bans: s.ban_list.clone(),
        report,
        summary,
    })
}

fn build_auth(s: &Settings, environment: Environment) -> Result<Option<AuthLayer>, ConfigError> {
    let var = |name: &str| s.var(name);
    let has_keys = s.api_key.is_some() || s.api_keys_file.is_some() || !s.named_keys.is_empty();
    if !has_keys && s.jwt_secret.is_none() && !s.dev_bypass && !s.require_auth {
        return Ok(None);
    }
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
    let mut auth = AuthLayer::builder()
        .environment(environment)
        .mcp_path(&s.mcp_path)
        .url_auth(s.url_auth)
        .dev_bypass(s.dev_bypass)
        .policy(policy.build()?);
    if let Some(bind) = s.bind {
        auth = auth.bind_addr(bind);
    }
    if has_keys {
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
        let store = store.build().map_err(|e| match e.setting() {
            "api_key" => rename(e, var("API_KEY")),
            "api_key_pepper" => rename(e, var("API_KEY_PEPPER")),
            "api_keys_file" => rename(e, var("API_KEYS_FILE")),
            _ => e,
        })?;
        auth = auth.api_keys(store);
    }
    if let Some(secret) = &s.jwt_secret {
        let mut jwt = JwtVerifier::builder();
        for part in secret
            .require()?
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            jwt = jwt.secret(Secret::new(part));
        }
        for audience in &s.jwt_audiences {
            jwt = jwt.audience(audience.clone());
        }
        if let Some(issuer) = &s.jwt_issuer {
            jwt = jwt.issuer(issuer.clone());
        }
        if let Some(leeway) = s.jwt_leeway {
            jwt = jwt.leeway(leeway);
        }
        let verifier = jwt.build().map_err(|e| match e.setting() {
            "jwt_audience" => rename(e, var("JWT_AUDIENCE")),
            "jwt_issuer" => rename(e, var("JWT_ISSUER")),
            "jwt_backend" => e,
            _ => rename(e, secret.setting.clone()),
        })?;
        auth = auth.jwt(verifier);
    }
    if let Some(header) = &s.api_key_header {
        auth = auth.api_key_header(header);
    }
    if let Some(url) = &s.resource_url {
        auth = auth.resource(url.clone());
    }
    if !s.authorization_servers.is_empty() {
        auth = auth.authorization_servers(s.authorization_servers.iter().cloned());
    }
    let layer = auth.build().map_err(|e| match e.setting() {
        "dev_bypass" => rename(e, var("DEV_BYPASS")),
        "api_key_header" => rename(e, var("API_KEY_HEADER")),
        "resource" => rename(e, var("RESOURCE_URL")),
        "authorization_servers" => rename(e, var("AUTHORIZATION_SERVERS")),
        "credentials" => ConfigError::new(
            var("API_KEY"),
            format!(
                "no credential source: set {}, {}, {} or {} (or {}=false)",
                var("API_KEY"),
                var("API_KEY_FILE"),
                var("API_KEYS_FILE"),
                var("JWT_SECRET"),
                var("REQUIRE_AUTH")
            ),
        ),
        _ => e,
    })?;
    Ok(Some(layer))
}

fn build_per_caller(config: &SecurityConfig) -> Result<RateLimitLayer, ConfigError> {
    let s = &config.s;
    if !s.rate_limit_enabled {
        return Ok(RateLimitLayer::disabled());
    }
    let mut b = RateLimitLayer::builder().mcp_path(&s.mcp_path);
    if let Some(text) = &config.rate_limit_toml {
        b = b.toml(text)?;
    }
    if b.limits().is_empty() {
        for class in &s.caller_classes {
            b = b.route_class(class.clone());
        }
        for limit in &s.caller_limits {
            b = b.limit(limit.clone());
        }
    }
    if b.limits().is_empty() {
        return Ok(RateLimitLayer::disabled());
    }
    b.build()
}

/// The audit layer from the `AUDIT_*` variables, with the checked settings (enabled, file,
/// keys, API-key header, trusted proxies) taken from the configuration.
fn build_audit(s: &Settings) -> Result<AuditLayer, ConfigError> {
    let mut fixed: Vec<(String, String)> = vec![
        (s.var("AUDIT_ENABLED"), s.audit_enabled.to_string()),
        (
            s.var("TRUSTED_PROXIES"),
            s.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    if let Some(file) = &s.audit_log_file {
        fixed.push((s.var("AUDIT_LOG_FILE"), file.display().to_string()));
    }
    if let Some(key) = &s.audit_hmac_key {
        fixed.push((s.var("AUDIT_HMAC_KEY"), key.require()?.expose().to_owned()));
    }
    if let Some(key) = &s.audit_fingerprint_key {
        fixed.push((
            s.var("AUDIT_FINGERPRINT_KEY"),
            key.require()?.expose().to_owned(),
        ));
    }
    if let Some(header) = &s.api_key_header {
        fixed.push((s.var("API_KEY_HEADER"), header.clone()));
    }
    // Variables the configuration owns are answered from it (and their `*_FILE` forms hidden);
    // the other `AUDIT_*` knobs come from the environment that was read, if any.
    let owned: Vec<String> = [
        "AUDIT_ENABLED",
        "AUDIT_LOG_FILE",
        "AUDIT_HMAC_KEY",
        "AUDIT_HMAC_KEY_FILE",
        "AUDIT_FINGERPRINT_KEY",
        "AUDIT_FINGERPRINT_KEY_FILE",
        "API_KEY_HEADER",
        "TRUSTED_PROXIES",
    ]
    .iter()
    .map(|n| s.var(n))
    .collect();
    let audit_prefix = s.var("AUDIT_");
    let source = s.source.clone();
    let var_prefix = s.var("");
    let env = Env::with_lookup(&s.prefix, move |name| {
        if let Some((_, v)) = fixed.iter().find(|(k, _)| k == name) {
            return Some(v.into());
        }
        if owned.iter().any(|o| o == name) || !name.starts_with(&audit_prefix) {
            return None;
        }
        let short = name.strip_prefix(&var_prefix)?;
        source
            .as_ref()
            .and_then(|env| env.string(short).ok().flatten())
            .map(Into::into)
    });
    AuditLayer::builder_from_env(&env)?
        .ban_list(s.ban_list.clone())
        .build()
}

/// Authentication, or (with `REQUIRE_AUTH=false` and no credential source) none; the response
/// body is a [`GuardBody`] either way, so the stack has one type.
#[derive(Debug, Clone)]
pub struct MaybeAuth<S> {
    inner: Either<Auth<S>, S>,
}

#[derive(Debug, Clone)]
enum Either<A, B> {
    On(A),
    Off(B),
}

impl<S, B, ResBody> Service<Request<B>> for MaybeAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = MaybeAuthFuture<<Auth<S> as Service<Request<B>>>::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.inner {
            Either::On(auth) => auth.poll_ready(cx),
            Either::Off(svc) => svc.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match &mut self.inner {
            Either::On(auth) => MaybeAuthFuture {
                inner: FutureKind::On {
                    future: auth.call(req),
                },
            },
            Either::Off(svc) => MaybeAuthFuture {
                inner: FutureKind::Off {
                    future: svc.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`MaybeAuth`].
    pub struct MaybeAuthFuture<A, F> {
        #[pin]
        inner: FutureKind<A, F>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<A, F> {
        On { #[pin] future: A },
        Off { #[pin] future: F },
    }
}

impl<A, F, ResBody, E> Future for MaybeAuthFuture<A, F>
where
    A: Future<Output = Result<Response<GuardBody<ResBody>>, E>>,
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<GuardBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            FutureKindProj::On { future } => future.poll(cx),
            FutureKindProj::Off { future } => future
                .poll(cx)
                .map(|r| r.map(|res| res.map(GuardBody::inner))),
        }
    }
}
