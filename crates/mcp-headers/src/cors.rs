//! [`CorsPolicy`]: which browser origins may call the server, validated when it is built and
//! realised with tower-http's [`CorsLayer`].
//!
//! tower-http's `CorsLayer` accepts any combination and asserts when it is layered or first
//! polled: credentials with a wildcard origin, headers, methods or exposed headers panic, and so
//! does `*` inside an origin list. [`CorsPolicyBuilder::build`] refuses each of these (and
//! malformed origins, and `*` in production) with a [`ConfigError`] naming the setting, so the
//! `CorsLayer` it produces cannot panic.
//!
//! | | development | production (the default) |
//! |---|---|---|
//! | no origins given | `http://localhost:3000`, `http://localhost:8080`, `http://localhost:8501`, `http://127.0.0.1:*` | none: no cross-origin access |
//! | `*` | every origin (without credentials) | refused |
//!
//! MCP defaults: methods `GET, POST, DELETE`; allowed request headers `Authorization`,
//! `Content-Type`, `Mcp-Session-Id`, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`,
//! `Last-Event-ID`, `DPoP` (RFC 9449 proofs); exposed response headers `WWW-Authenticate`,
//! `Mcp-Session-Id`, `MCP-Protocol-Version`, `DPoP-Nonce`; preflights cached for 7200 s (the most Chromium honours); no
//! credentials (bearer tokens do not need them).
//!
//! The same allowed-origin set drives [`OriginGuardLayer`](crate::OriginGuardLayer), so CORS and
//! the Origin check cannot disagree.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use mcp_security_core::config::{ConfigError, Env, Environment};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::origin::OriginSet;

/// The origins allowed in development when none are given.
pub const DEV_DEFAULT_ORIGINS: [&str; 4] = [
    "http://localhost:3000",
    "http://localhost:8080",
    "http://localhost:8501",
    "http://127.0.0.1:*",
];

/// The request headers an MCP client sends, allowed by default.
pub const MCP_ALLOW_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "dpop",
];

/// The response headers an MCP client reads, exposed by default.
pub const MCP_EXPOSE_HEADERS: [&str; 4] = [
    "www-authenticate",
    "mcp-session-id",
    "mcp-protocol-version",
    "dpop-nonce",
];

/// The default preflight cache lifetime: 7200 s, the most Chromium honours.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7200);

/// The longest preflight cache lifetime accepted: 86400 s, the most any browser honours.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone)]
enum HeaderList {
    Any,
    List(Vec<HeaderName>),
}

impl HeaderList {
    fn is_any(&self) -> bool {
        matches!(self, HeaderList::Any)
    }

    fn names(&self) -> String {
        match self {
            HeaderList::Any => "*".to_owned(),
            HeaderList::List(l) => l
                .iter()
                .map(HeaderName::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

struct Inner {
    environment: Environment,
    origins: OriginSet,
    methods: Vec<Method>,
    allow_headers: Vec<HeaderName>,
    expose_headers: HeaderList,
    max_age: Duration,
    credentials: bool,
}

/// A validated CORS policy; see the [module docs](self). Cheap to clone.
///
/// ```
/// use mcp_security_core::config::Environment;
/// use mcp_headers::CorsPolicy;
///
/// let cors = CorsPolicy::builder()
///     .origins(["https://app.example.com", "https://admin.example.com:8443"])
///     .build()?;
/// assert!(cors.allows_origin("https://APP.example.com:443"));
/// assert!(!cors.allows_origin("https://evil.example"));
///
/// // Production (the default) refuses `*`, naming the setting.
/// let err = CorsPolicy::builder().origins(["*"]).build().unwrap_err();
/// assert_eq!(err.setting(), "cors_origins");
///
/// // Development without origins: the local dev servers.
/// let dev = CorsPolicy::builder().environment(Environment::Development).build()?;
/// assert!(dev.allows_origin("http://localhost:3000"));
/// assert!(dev.allows_origin("http://127.0.0.1:5173"));
///
/// // Realised with tower-http, for services whose body is `Default` (OriginGuardLayer does
/// // this for you, in front of any body).
/// let layer: tower_http::cors::CorsLayer = cors.cors_layer();
/// # let _ = layer;
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CorsPolicy {
    inner: Arc<Inner>,
}

impl fmt::Debug for CorsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorsPolicy")
            .field("environment", &self.inner.environment)
            .field("origins", &self.inner.origins.entries())
            .field("methods", &self.inner.methods)
            .field("allow_headers", &self.inner.allow_headers)
            .field("expose_headers", &self.inner.expose_headers)
            .field("max_age", &self.inner.max_age)
            .field("credentials", &self.inner.credentials)
            .finish()
    }
}

impl Default for CorsPolicy {
    /// Production with no origins: no cross-origin access.
    fn default() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable_default())
    }
}

/// The default builder always builds; this is never reached.
#[cold]
fn unreachable_default() -> CorsPolicy {
    CorsPolicy {
        inner: Arc::new(Inner {
            environment: Environment::Production,
            origins: OriginSet::default(),
            methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: HeaderList::List(Vec::new()),
            max_age: DEFAULT_MAX_AGE,
            credentials: false,
        }),
    }
}

impl CorsPolicy {
    /// A builder with the MCP defaults, for production.
    pub fn builder() -> CorsPolicyBuilder {
        CorsPolicyBuilder::default()
    }

    /// A builder filled from the environment: `ENV` (production when unset) and `CORS_ORIGINS`
    /// (comma-separated; unset or empty means the environment's default). Errors name the
    /// variable (`MCP_CORS_ORIGINS`). Refine it before building.
    ///
    /// # Errors
    /// A malformed `ENV`.
    pub fn builder_from_env(env: &Env) -> Result<CorsPolicyBuilder, ConfigError> {
        let mut b = Self::builder().environment(env.environment("ENV")?);
        b.origins_setting = env.var_name("CORS_ORIGINS");
        if let Some(origins) = env.list("CORS_ORIGINS")? {
            b = b.origins(origins);
        }
        Ok(b)
    }

    /// [`builder_from_env`](Self::builder_from_env), built.
    ///
    /// ```
    /// use mcp_security_core::config::Env;
    /// use mcp_headers::CorsPolicy;
    ///
    /// let env = Env::from_pairs("MCP", [("MCP_CORS_ORIGINS", "https://a.example, https://b.example")]);
    /// let cors = CorsPolicy::from_env(&env)?;
    /// assert_eq!(cors.origins(), ["https://a.example", "https://b.example"]);
    ///
    /// let env = Env::from_pairs("MCP", [("MCP_CORS_ORIGINS", "*")]);
    /// assert_eq!(
    ///     CorsPolicy::from_env(&env).unwrap_err().to_string(),
    ///     "MCP_CORS_ORIGINS: `*` lets every website call this server; it is refused in \
    ///      production: list the origins (got \"*\")"
    /// );
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::builder_from_env(env)?.build()
    }

    /// Where the policy was built for.
    pub fn environment(&self) -> Environment {
        self.inner.environment
    }

    /// The allowed origins, normalised (`*` when every origin is allowed; empty when none is).
    pub fn origins(&self) -> Vec<String> {
        self.inner.origins.entries()
    }

    /// Whether every origin is allowed (development only).
    pub fn allows_any_origin(&self) -> bool {
        self.inner.origins.is_any()
    }

    /// Whether no cross-origin request is allowed.
    pub fn allows_no_origin(&self) -> bool {
        self.inner.origins.is_empty()
    }

    /// Whether an `Origin` header value is allowed: compared as scheme, host (case-insensitive)
    /// and port (default ports normalised). `null` never is.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.inner.origins.allows(origin.as_bytes())
    }

    pub(crate) fn allows_origin_bytes(&self, origin: &[u8]) -> bool {
        self.inner.origins.allows(origin)
    }

    /// Whether credentialed requests (cookies, TLS client certificates) are allowed.
    pub fn allows_credentials(&self) -> bool {
        self.inner.credentials
    }

    /// How long browsers may cache a preflight answer.
    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// A one-line summary for start-up logs.
    pub fn summary(&self) -> String {
        let origins = self.origins();
        format!(
            "cors ({}): origins [{}], methods [{}], allow headers [{}], expose headers [{}], max-age {} s, credentials {}",
            self.inner.environment.as_str(),
            if origins.is_empty() {
                "none".to_owned()
            } else {
                origins.join(", ")
            },
            self.inner
                .methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            HeaderList::List(self.inner.allow_headers.clone()).names(),
            self.inner.expose_headers.names(),
            self.inner.max_age.as_secs(),
            if self.inner.credentials { "on" } else { "off" },
        )
    }

    /// The policy as a tower-http [`CorsLayer`]. It cannot panic: every combination tower-http
    /// asserts against was refused when the policy was built.
    ///
    /// `CorsLayer` answers preflights itself and needs a `Default` response body; in front of
    /// layers that return [`GuardBody`](mcp_security_core::GuardBody), use
    /// [`OriginGuardLayer`](crate::OriginGuardLayer), which applies this layer without that
    /// requirement and refuses disallowed origins first.
    pub fn cors_layer(&self) -> CorsLayer {
        let allow_origin = if self.inner.origins.is_any() {
            AllowOrigin::any()
        } else {
            let policy = self.clone();
            AllowOrigin::predicate(move |origin, _parts| {
                policy.allows_origin_bytes(origin.as_bytes())
            })
        };
        self.cors_layer_with(allow_origin)
    }

    /// The `CorsLayer` inside [`OriginGuard`](crate::OriginGuard): every request that reaches it
    /// has passed the guard's check of the same origin set (one `Origin`, allowed), so the origin
    /// is echoed without comparing it a second time.
    pub(crate) fn cors_layer_behind_guard(&self) -> CorsLayer {
        self.cors_layer_with(if self.inner.origins.is_any() {
            AllowOrigin::any()
        } else {
            AllowOrigin::mirror_request()
        })
    }

    fn cors_layer_with(&self, allow_origin: AllowOrigin) -> CorsLayer {
        let inner = &self.inner;
        let expose = match &inner.expose_headers {
            HeaderList::Any => ExposeHeaders::any(),
            HeaderList::List(l) => ExposeHeaders::list(l.iter().cloned()),
        };
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(AllowMethods::list(inner.methods.iter().cloned()))
            .allow_headers(AllowHeaders::list(inner.allow_headers.iter().cloned()))
            .expose_headers(expose)
            .max_age(inner.max_age)
            .allow_credentials(inner.credentials)
    }
}

/// Builds a [`CorsPolicy`]; see [`CorsPolicy::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsPolicyBuilder {
    environment: Environment,
    origins: Option<Vec<String>>,
    origins_setting: String,
    methods: Vec<Method>,
    allow_headers: Vec<String>,
    expose_headers: Vec<String>,
    max_age: Duration,
    credentials: bool,
}

impl Default for CorsPolicyBuilder {
    fn default() -> Self {
        Self {
            environment: Environment::Production,
            origins: None,
            origins_setting: "cors_origins".to_owned(),
            methods: vec![Method::GET, Method::POST, Method::DELETE],
            allow_headers: MCP_ALLOW_HEADERS.map(str::to_owned).to_vec(),
            expose_headers: MCP_EXPOSE_HEADERS.map(str::to_owned).to_vec(),
            max_age: DEFAULT_MAX_AGE,
            credentials: false,
        }
    }
}

impl CorsPolicyBuilder {
    /// Where the server runs (default production): decides the default origins and whether `*`
    /// is accepted.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The allowed origins, replacing any given before: `scheme://host[:port]` each (the port
    /// may be `*`), or the single entry `*` for every origin (development only). Refused at
    /// build under the setting `cors_origins` (or the variable it came from): `null`, paths
    /// (even a trailing `/`), queries, user information, wildcard hosts, non-ASCII hosts, bad
    /// ports; `*` in production, with credentials, or next to other entries. An empty list
    /// means no cross-origin access, in any environment.
    pub fn origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Add one allowed origin to those given before (or to an empty list).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origins
            .get_or_insert_with(Vec::new)
            .push(origin.into());
        self
    }

    /// The methods answered in preflights (default `GET`, `POST`, `DELETE`).
    pub fn methods<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = Method>,
    {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The request headers a cross-origin caller may send, replacing the MCP defaults. Refused
    /// at build under `cors_allow_headers`: invalid names, and `*` (it does not cover
    /// `Authorization`, which MCP clients need, and is refused with credentials).
    pub fn allow_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Allow one more request header (such as `x-api-key`) besides the current list.
    pub fn allow_header(mut self, header: impl Into<String>) -> Self {
        self.allow_headers.push(header.into());
        self
    }

    /// The response headers a cross-origin caller may read, replacing the MCP defaults; `*`
    /// exposes all (refused with credentials). Invalid names are refused at build under
    /// `cors_expose_headers`.
    pub fn expose_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expose_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Expose one more response header besides the current list.
    pub fn expose_header(mut self, header: impl Into<String>) -> Self {
        self.expose_headers.push(header.into());
        self
    }

    /// How long browsers may cache a preflight answer, in whole seconds (default 7200 s; at most
    /// 86400 s, refused beyond under `cors_max_age`).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Allow credentialed requests (cookies, TLS client certificates; default off). Refused at
    /// build with `*` origins or exposed headers, under `cors_credentials`.
    pub fn allow_credentials(mut self, on: bool) -> Self {
        self.credentials = on;
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// Names the setting: `cors_origins` (or the environment variable the origins came from),
    /// `cors_methods`, `cors_allow_headers`, `cors_expose_headers`, `cors_max_age`,
    /// `cors_credentials`.
    pub fn build(self) -> Result<CorsPolicy, ConfigError> {
        let setting = self.origins_setting.as_str();
        let origins = match &self.origins {
            None if self.environment == Environment::Development => {
                OriginSet::parse_list(DEV_DEFAULT_ORIGINS).map_err(|(value, reason)| {
                    ConfigError::new(setting, reason).with_value(value)
                })?
            }
            None => OriginSet::default(),
            Some(list) if list.iter().any(|o| o.trim() == "*") => {
                let shown = list.join(",");
                if list.len() > 1 {
                    return Err(ConfigError::new(
                        setting,
                        "`*` must be the only entry: it already allows every origin",
                    )
                    .with_value(shown));
                }
                if self.environment == Environment::Production {
                    return Err(ConfigError::new(
                        setting,
                        "`*` lets every website call this server; it is refused in production: list the origins",
                    )
                    .with_value(shown));
                }
                if self.credentials {
                    return Err(ConfigError::new(
                        "cors_credentials",
                        "credentials cannot be allowed for every origin (`*`): list the origins",
                    ));
                }
                OriginSet::any()
            }
            Some(list) => OriginSet::parse_list(list.iter().map(String::as_str))
                .map_err(|(value, reason)| ConfigError::new(setting, reason).with_value(value))?,
        };
        if self.methods.is_empty() {
            return Err(ConfigError::new(
                "cors_methods",
                "name at least one method (MCP uses GET, POST and DELETE)",
            ));
        }
        let mut methods: Vec<Method> = Vec::new();
        for m in self.methods {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        let mut allow_headers: Vec<HeaderName> = Vec::new();
        for h in &self.allow_headers {
            if h.trim() == "*" {
                return Err(ConfigError::new(
                    "cors_allow_headers",
                    "`*` does not cover Authorization (Fetch standard) and is refused with credentials: list the headers",
                )
                .with_value(h));
            }
            let name = parse_header_name("cors_allow_headers", h)?;
            if !allow_headers.contains(&name) {
                allow_headers.push(name);
            }
        }
        let expose_headers = if self.expose_headers.iter().any(|h| h.trim() == "*") {
            if self.credentials {
                return Err(ConfigError::new(
                    "cors_credentials",
                    "credentials cannot be combined with exposing every header (`*`): list the headers",
                ));
            }
            HeaderList::Any
        } else {
            let mut list: Vec<HeaderName> = Vec::new();
            for h in &self.expose_headers {
                let name = parse_header_name("cors_expose_headers", h)?;
                if !list.contains(&name) {
                    list.push(name);
                }
            }
            HeaderList::List(list)
        };
        if self.max_age > MAX_MAX_AGE {
            return Err(ConfigError::new(
                "cors_max_age",
                "at most 86400 s: no browser caches a preflight longer",
            )
            .with_value(format!("{} s", self.max_age.as_secs())));
        }
        debug_assert!(!(self.credentials && (origins.is_any() || expose_headers.is_any())));
        Ok(CorsPolicy {
            inner: Arc::new(Inner {
                environment: self.environment,
                origins,
                methods,
                allow_headers,
                expose_headers,
                max_age: self.max_age,
                credentials: self.credentials,
            }),
        })
    }
}

fn parse_header_name(setting: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| ConfigError::new(setting, "not a valid header name").with_value(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{HeaderValue, Request, Response, StatusCode, header};
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn production_defaults_allow_no_origin() {
        let p = CorsPolicy::builder().build().unwrap();
        assert_eq!(p.environment(), Environment::Production);
        assert!(p.allows_no_origin());
        assert!(p.origins().is_empty());
        assert!(!p.allows_origin("http://localhost:3000"));
        assert!(!p.allows_credentials());
        assert_eq!(p.max_age(), Duration::from_secs(7200));
        assert_eq!(
            p.summary(),
            "cors (production): origins [none], methods [GET, POST, DELETE], allow headers \
             [authorization, content-type, mcp-session-id, mcp-protocol-version, mcp-method, \
             mcp-name, last-event-id, dpop], expose headers [www-authenticate, mcp-session-id, \
             mcp-protocol-version, dpop-nonce], max-age 7200 s, credentials off"
        );
        assert!(CorsPolicy::default().allows_no_origin());
    }

    #[test]
    fn development_defaults() {
        let p = CorsPolicy::builder()
            .environment(Environment::Development)
            .build()
            .unwrap();
        assert_eq!(p.origins(), DEV_DEFAULT_ORIGINS);
        for ok in [
            "http://localhost:3000",
            "http://localhost:8080",
            "http://localhost:8501",
            "http://127.0.0.1:1",
            "http://127.0.0.1:65535",
            "http://127.0.0.1",
        ] {
            assert!(p.allows_origin(ok), "{ok}");
        }
        for no in [
            "http://localhost:3001",
            "https://localhost:3000",
            "http://localhost",
            "https://127.0.0.1:8080",
            "http://[::1]:3000",
            "null",
        ] {
            assert!(!p.allows_origin(no), "{no}");
        }
        // Origins given replace the defaults; an empty list means none.
        let p = CorsPolicy::builder()
            .environment(Environment::Development)
            .origins(["http://localhost:5173"])
            .build()
            .unwrap();
        assert_eq!(p.origins(), ["http://localhost:5173"]);
        let p = CorsPolicy::builder()
            .environment(Environment::Development)
            .origins(Vec::<String>::new())
            .build()
            .unwrap();
        assert!(p.allows_no_origin());
        // `*` is accepted in development, without credentials.
        let p = CorsPolicy::builder()
            .environment(Environment::Development)
            .origins(["*"])
            .build()
            .unwrap();
        assert!(p.allows_any_origin());
        assert!(p.allows_origin("https://anything.example"));
        assert!(!p.allows_origin("null"));
    }

    #[test]
    fn build_errors_name_the_setting() {
        let dev = || CorsPolicy::builder().environment(Environment::Development);
        let cases = [
            (
                CorsPolicy::builder().origins(["*"]),
                "cors_origins: `*` lets every website call this server; it is refused in production: list the origins (got \"*\")",
            ),
            (
                dev().origins(["*"]).allow_credentials(true),
                "cors_credentials: credentials cannot be allowed for every origin (`*`): list the origins",
            ),
            (
                dev().origins(["*", "https://a.example"]),
                "cors_origins: `*` must be the only entry: it already allows every origin (got \"*,https://a.example\")",
            ),
            (
                CorsPolicy::builder().origins(["https://a.example", "https://b.example/"]),
                "cors_origins: an origin has no path, not even a trailing '/': write scheme://host[:port] (got \"https://b.example/\")",
            ),
            (
                CorsPolicy::builder().origin("null"),
                "cors_origins: `null` is the origin of sandboxed iframes, file: pages and cross-origin redirects; allowing it would allow all of them (got \"null\")",
            ),
            (
                CorsPolicy::builder().origin("a.example"),
                "cors_origins: expected scheme://host[:port], such as https://app.example.com (got \"a.example\")",
            ),
            (
                CorsPolicy::builder().methods([]),
                "cors_methods: name at least one method (MCP uses GET, POST and DELETE)",
            ),
            (
                CorsPolicy::builder().allow_header("*"),
                "cors_allow_headers: `*` does not cover Authorization (Fetch standard) and is refused with credentials: list the headers (got \"*\")",
            ),
            (
                CorsPolicy::builder().allow_header("bad header"),
                "cors_allow_headers: not a valid header name (got \"bad header\")",
            ),
            (
                CorsPolicy::builder().expose_header("bad:header"),
                "cors_expose_headers: not a valid header name (got \"bad:header\")",
            ),
            (
                CorsPolicy::builder()
                    .expose_headers(["*"])
                    .allow_credentials(true),
                "cors_credentials: credentials cannot be combined with exposing every header (`*`): list the headers",
            ),
            (
                CorsPolicy::builder().max_age(Duration::from_secs(86_401)),
                "cors_max_age: at most 86400 s: no browser caches a preflight longer (got \"86401 s\")",
            ),
        ];
        for (builder, message) in cases {
            assert_eq!(builder.build().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn from_env() {
        let p = CorsPolicy::from_env(&env(&[])).unwrap();
        assert!(p.allows_no_origin());
        let p = CorsPolicy::from_env(&env(&[("MCP_ENV", "development")])).unwrap();
        assert_eq!(p.origins(), DEV_DEFAULT_ORIGINS);
        let p = CorsPolicy::from_env(&env(&[
            ("MCP_ENV", "production"),
            (
                "MCP_CORS_ORIGINS",
                "https://A.example:443, https://b.example:8443",
            ),
        ]))
        .unwrap();
        assert_eq!(p.origins(), ["https://a.example", "https://b.example:8443"]);
        let err = CorsPolicy::from_env(&env(&[("MCP_CORS_ORIGINS", "https://a.example/app")]))
            .unwrap_err();
        assert_eq!(err.setting(), "MCP_CORS_ORIGINS");
        assert_eq!(err.value(), Some("https://a.example/app"));
        let err = CorsPolicy::from_env(&env(&[("MCP_ENV", "staging")])).unwrap_err();
        assert_eq!(err.setting(), "MCP_ENV");
        // Refined after reading the environment (the example defaults to development).
        let p = CorsPolicy::builder_from_env(&env(&[]))
            .unwrap()
            .environment(Environment::Development)
            .allow_header("x-api-key")
            .build()
            .unwrap();
        assert_eq!(p.origins(), DEV_DEFAULT_ORIGINS);
    }

    /// Every configuration tower-http asserts against is refused at build, so every policy
    /// that builds yields a `CorsLayer` that can be layered and polled.
    #[tokio::test]
    async fn every_valid_policy_realises_without_panicking() {
        for environment in [Environment::Production, Environment::Development] {
            for origins in [
                None,
                Some(vec!["*"]),
                Some(vec!["https://a.example"]),
                Some(vec![]),
            ] {
                for credentials in [false, true] {
                    for expose in [vec!["*"], vec!["mcp-session-id"]] {
                        let mut b = CorsPolicy::builder()
                            .environment(environment)
                            .allow_credentials(credentials)
                            .expose_headers(expose.clone());
                        if let Some(o) = &origins {
                            b = b.origins(o.clone());
                        }
                        let Ok(policy) = b.build() else { continue };
                        let svc = ServiceBuilder::new().layer(policy.cors_layer()).service_fn(
                            |_req: Request<Full<Bytes>>| async {
                                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
                            },
                        );
                        let req = Request::get("/")
                            .header(header::ORIGIN, "https://a.example")
                            .body(Full::default())
                            .unwrap();
                        let res = svc.oneshot(req).await.unwrap();
                        assert_eq!(res.status(), StatusCode::OK);
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn cors_layer_answers_preflights_for_allowed_origins_only() {
        let policy = CorsPolicy::builder()
            .origins(["https://app.example.com"])
            .allow_header("x-api-key")
            .build()
            .unwrap();
        let svc = ServiceBuilder::new().layer(policy.cors_layer()).service_fn(
            |_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            },
        );
        let preflight = |origin: &'static str| {
            Request::options("/mcp")
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    "authorization, content-type, mcp-protocol-version",
                )
                .body(Full::default())
                .unwrap()
        };
        let res = svc
            .clone()
            .oneshot(preflight("https://APP.example.com"))
            .await
            .unwrap();
        let h = res.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://APP.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET,POST,DELETE");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization,content-type,mcp-session-id,mcp-protocol-version,mcp-method,mcp-name,last-event-id,dpop,x-api-key"
        );
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "7200");
        assert_eq!(h[header::VARY], "origin");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

        let res = svc
            .oneshot(preflight("https://evil.example"))
            .await
            .unwrap();
        assert!(
            res.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        assert_eq!(
            res.headers()[header::VARY],
            HeaderValue::from_static("origin")
        );
    }
}
