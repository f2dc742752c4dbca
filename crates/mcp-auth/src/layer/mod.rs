//! [`AuthLayer`]: authenticate every request, authorize it against the [`AuthPolicy`], and answer
//! as the MCP authorization specification and RFC 6750 ask.
//!
//! | situation | answer |
//! |---|---|
//! | no credential | 401, `WWW-Authenticate: Bearer resource_metadata="…"[, scope="…"]` (no `error`), body `{"error":"invalid_token",…}` |
//! | a bad, expired, revoked or unknown credential | 401, challenge with `error="invalid_token"` |
//! | more than one credential | 400, `error="invalid_request"` |
//! | valid but missing a scope | 403, `error="insufficient_scope"`, `scope="<every scope the operation needs>"` |
//! | a deny-listed path | 403 `{"error":"forbidden",…}`, credential or not |
//! | gRPC callers | the same decisions as `grpc-status` 16, 7 or 3 |
//!
//! Why a credential failed (expired, bad signature, unknown key, revoked) is never in the
//! response: it goes to the [`AuthOutcome`] in the response extensions, for the audit layer.
//!
//! The layer also serves RFC 9728 protected-resource metadata at
//! `/.well-known/oauth-protected-resource` and at the form suffixed with the resource's path
//! (`/.well-known/oauth-protected-resource/mcp`), without authentication, GET and OPTIONS only,
//! readable cross-origin.
//!
//! # The resource URL
//!
//! The metadata's `resource` and the challenge's `resource_metadata` URL never echo an
//! unvalidated `Host` header (a shared cache would keep a poisoned document for everyone):
//!
//! | configured | `resource` | metadata answer | challenge |
//! |---|---|---|---|
//! | [`resource`](AuthLayerBuilder::resource) | it | 200, `Cache-Control: public, max-age=3600` | `resource_metadata` |
//! | else an http(s) JWT audience | the first such audience | the same | the same |
//! | else a `Host` on [`allowed_hosts`](AuthLayerBuilder::allowed_hosts) (default: `localhost`, `127.0.0.1`, `[::1]`, any port) | `http://<Host><mcp path>` | 200, cacheable, `Vary: Host` | `resource_metadata`, `Vary: Host` |
//! | else (another `Host`, or [`any_host`](AuthLayerBuilder::any_host)) | none | 404, `Cache-Control: no-store` (`Vary: Host` unless `any_host`) | no `resource_metadata` (`Vary: Host` unless `any_host`) |

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{self, AUTHORIZATION, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use serde_json::json;
use sha2::Sha256;
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::clock::{Clock, SystemClock};
use mcp_core::config::{ConfigError, Env, Environment, Secret};
use mcp_core::percent::{self, Plus};
use mcp_core::rejection::{BearerChallenge, BearerError, ResponseFormat};
use mcp_core::{
    AuthFailure, AuthOutcome, GuardBody, McpCall, Principal, PrincipalKind, Rejection, Scopes,
};

use crate::api_key::ApiKeyStore;
use crate::jwt::{JwtVerifier, looks_like_jwt};
use crate::policy::AuthPolicy;

/// The well-known path of RFC 9728 protected-resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The query parameters accepted as credentials when URL auth is on.
const QUERY_TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];

/// How often a key file is checked for changes by default.
pub const DEFAULT_KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

struct Shared {
    api_keys: Option<ApiKeyStore>,
    jwt: Option<JwtVerifier>,
    api_key_header: Option<HeaderName>,
    url_auth: bool,
    policy: AuthPolicy,
    realm: Option<String>,
    resource: Option<ResourceUrl>,
    /// The `Host` values the resource may be derived from; `None`: never derived.
    resource_hosts: Option<Vec<HostRule>>,
    mcp_path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    strip_credentials: bool,
    dev_bypass: bool,
    clock: Arc<dyn Clock>,
    fingerprint_key: Secret,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("api_keys", &self.api_keys.as_ref().map(ApiKeyStore::len))
            .field("jwt", &self.jwt.is_some())
            .field("api_key_header", &self.api_key_header)
            .field("url_auth", &self.url_auth)
            .field("resource", &self.resource.as_ref().map(|r| &r.url))
            .field("dev_bypass", &self.dev_bypass)
            .finish_non_exhaustive()
    }
}

/// An absolute resource URL split into origin and path.
#[derive(Debug, Clone)]
struct ResourceUrl {
    url: String,
    origin: String,
    path: String,
}

impl ResourceUrl {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        let err = |reason: &str| ConfigError::new("resource", reason.to_owned()).with_value(url);
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| err("must be an absolute http(s) URL"))?;
        if url.contains('#') {
            return Err(err("must not contain a fragment (RFC 9728)"));
        }
        if url.contains('?') {
            return Err(err("must not contain a query"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.bytes().all(is_authority_byte) {
            return Err(err("has no valid host"));
        }
        let origin_len = url.len() - rest.len() + authority.len();
        Ok(ResourceUrl {
            url: url.to_owned(),
            origin: url[..origin_len].to_owned(),
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    fn metadata_url(&self) -> String {
        format!("{}{METADATA_PATH}{}", self.origin, self.path)
    }
}

fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
}

/// The `Host` names a loopback-bound server answers to, the default of
/// [`AuthLayerBuilder::allowed_hosts`].
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// One allowed `Host`: a lower-case name or address (IPv6 in brackets), and a port or any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: String,
    port: Option<u16>,
}

impl HostRule {
    /// `name`, `name:port`, an IPv4 address, or an IPv6 address with or without brackets (the
    /// forms mcp-headers' Origin guard accepts, and its normalised `allowed_hosts()`).
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if let Ok(ip) = entry.parse::<std::net::Ipv6Addr>() {
            return Some(HostRule {
                host: format!("[{ip}]"),
                port: None,
            });
        }
        let (host, port) = split_host_port(entry)?;
        if host.is_empty() || port == Some(0) || !host.bytes().all(is_authority_byte) {
            return None;
        }
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(literal) => format!("[{}]", literal.parse::<std::net::Ipv6Addr>().ok()?),
            None if host.contains([':', '[', ']']) => return None,
            None => host.to_ascii_lowercase(),
        };
        Some(HostRule { host, port })
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Split `host[:port]` / `[v6][:port]`; `None` when malformed.
fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let host = value.get(..=end)?;
        match value.get(end + 1..)? {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Where a request's resource URL comes from.
#[derive(Debug)]
enum Resolved<'a> {
    /// Configured (or the JWT audience): the same for every request.
    Fixed(&'a ResourceUrl),
    /// Derived from an allowed `Host`.
    Derived(ResourceUrl),
    /// None; `host_dependent` when another `Host` could have named one.
    Unknown { host_dependent: bool },
}

impl Resolved<'_> {
    fn url(&self) -> Option<&ResourceUrl> {
        match self {
            Resolved::Fixed(r) => Some(r),
            Resolved::Derived(r) => Some(r),
            Resolved::Unknown { .. } => None,
        }
    }

    /// Whether the answer depends on `Host` (and so carries `Vary: Host`).
    fn varies(&self) -> bool {
        matches!(
            self,
            Resolved::Derived(_)
                | Resolved::Unknown {
                    host_dependent: true
                }
        )
    }
}

/// Authenticates and authorizes requests; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use mcp_auth::api_key::ApiKeyStore;
/// use mcp_auth::layer::AuthLayer;
/// use mcp_auth::policy::AuthPolicy;
/// use mcp_core::{Principal, Scopes};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let key = "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
/// let auth = AuthLayer::builder()
///     .api_keys(ApiKeyStore::builder().key("ci-bot", key, Scopes::new(["notes:read"])).build()?)
///     .policy(AuthPolicy::builder().require_mcp("tools/call:delete_note", ["notes:delete"]).build()?)
///     .resource("https://mcp.example.com/mcp")
///     .build()?;
/// let svc = ServiceBuilder::new().layer(auth).service_fn(|req: Request<Full<Bytes>>| async move {
///     let who = req.extensions().get::<Principal>().map(|p| p.id().to_owned());
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
/// });
///
/// let ok = svc.clone().oneshot(
///     Request::get("/api").header("authorization", format!("Bearer {key}")).body(Full::default())?,
/// ).await?;
/// assert_eq!(ok.status(), StatusCode::OK);
///
/// let refused = svc.oneshot(Request::get("/api").body(Full::default())?).await?;
/// assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     refused.headers()["www-authenticate"],
///     "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// The JWT verifier described by the environment, or `None` when no JWT variable is set:
    ///
    /// - `JWT_SECRET` / `JWT_SECRET_FILE`: HS256 secrets, comma-separated, the first signs;
    /// - `JWKS_URL`: asymmetric tokens verified with the keys of this JWK Set (feature `jwks`);
    /// - `JWT_ISSUER`: the required `iss`; when neither of the above is set, the JWK Set is also
    ///   discovered from this issuer's metadata (feature `jwks`). To combine HS256 secrets with
    ///   an identity provider, set `JWKS_URL` explicitly;
    /// - `JWT_AUDIENCE`: accepted audiences, comma-separated;
    /// - `JWT_ALGORITHMS`: an optional allow-list, comma-separated (`HS256`, `RS256`, `PS256`,
    ///   `ES256`, `EdDSA`…). It must list `HS256` exactly when `JWT_SECRET` is set, and an
    ///   asymmetric algorithm exactly when a JWKS is configured; default `HS256` with secrets and
    ///   every asymmetric algorithm with a JWKS (each key still verifies only its own type's);
    /// - `JWT_LEEWAY`: clock skew (default 30 s).
    ///
    /// Both secrets and a JWKS may be set: each token is routed by its header's `alg`.
    ///
    /// # Errors
    /// A malformed or inconsistent variable, naming it; `JWKS_URL` or an issuer to discover
    /// without the `jwks` cargo feature.
    pub fn jwt_from_env(env: &Env) -> Result<Option<JwtVerifier>, ConfigError> {
        let secrets = env.secret("JWT_SECRET")?;
        let jwks_url = env.string("JWKS_URL")?;
        let issuer = env.string("JWT_ISSUER")?;
        let discover = secrets.is_none() && jwks_url.is_none() && issuer.is_some();
        let wants_jwks = jwks_url.is_some() || discover;
        if secrets.is_none() && !wants_jwks {
            return Ok(None);
        }
        let algorithms_var = env.var_name("JWT_ALGORITHMS");
        let mut asymmetric: Option<Vec<String>> = None;
        if let Some(list) = env.list("JWT_ALGORITHMS")? {
            let mut hs256 = false;
            let mut others = Vec::new();
            for name in list {
                if name == "HS256" {
                    hs256 = true;
                } else {
                    others.push(name);
                }
            }
            if hs256 != secrets.is_some() {
                let why = if hs256 {
                    format!("lists HS256 but {} is not set", env.var_name("JWT_SECRET"))
                } else {
                    format!(
                        "does not list HS256 but {} is set",
                        env.var_name("JWT_SECRET")
                    )
                };
                return Err(ConfigError::new(&algorithms_var, why));
            }
            if others.is_empty() == wants_jwks {
                let why = if wants_jwks {
                    "lists no asymmetric algorithm but a JWKS is configured"
                } else {
                    "lists an asymmetric algorithm but no JWKS (JWKS_URL, or JWT_ISSUER alone) is \
                     configured"
                };
                return Err(ConfigError::new(&algorithms_var, why));
            }
            if wants_jwks {
                asymmetric = Some(others);
            }
        }

        let mut jwt = JwtVerifier::builder();
        let secret_var = env.var_name("JWT_SECRET");
        for s in secrets
            .iter()
            .flat_map(|s| s.expose().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            jwt = jwt.secret(Secret::new(s));
        }
        for aud in env.list("JWT_AUDIENCE")?.unwrap_or_default() {
            jwt = jwt.audience(aud);
        }
        if let Some(iss) = &issuer {
            jwt = jwt.issuer(iss.clone());
        }
        jwt = jwt.leeway(env.duration("JWT_LEEWAY", crate::jwt::DEFAULT_LEEWAY)?);

        if wants_jwks {
            let var = if jwks_url.is_some() {
                env.var_name("JWKS_URL")
            } else {
                env.var_name("JWT_ISSUER")
            };
            #[cfg(feature = "jwks")]
            {
                let mut source = crate::jwks::JwksKeySource::builder();
                source = match (&jwks_url, &issuer) {
                    (Some(url), _) => source.jwks_url(url.clone()),
                    (None, Some(iss)) => source.discover(iss.clone()),
                    (None, None) => source,
                };
                if let Some(algorithms) = asymmetric {
                    source = source.algorithms(algorithms);
                }
                let source = source.build().map_err(|e| match e.setting() {
                    "jwt_algorithms" => rename_error(e, &algorithms_var),
                    _ => rename_error(e, &var),
                })?;
                jwt = jwt.jwks(source);
            }
            #[cfg(not(feature = "jwks"))]
            {
                let _ = asymmetric;
                let why = if jwks_url.is_some() {
                    "asymmetric JWTs from a JWKS need the `jwks` cargo feature of mcp-auth (on by \
                     default in mcp-security)"
                } else {
                    "set without a JWT secret, this issuer's JWKS would be discovered, which needs \
                     the `jwks` cargo feature of mcp-auth (on by default in mcp-security); set \
                     JWT_SECRET for HS256 tokens from this issuer"
                };
                return Err(ConfigError::new(var, why));
            }
        }
        let verifier = jwt.build().map_err(|e| match e.setting() {
            "jwt_audience" => rename_error(e, &env.var_name("JWT_AUDIENCE")),
            "jwt_issuer" => rename_error(e, &env.var_name("JWT_ISSUER")),
            "jwt_backend" => e,
            _ => rename_error(e, &secret_var),
        })?;
        Ok(Some(verifier))
    }

    /// A builder; at least one credential source (API keys, a JWT verifier, or the development
    /// bypass) is required.
    pub fn builder() -> AuthLayerBuilder {
        AuthLayerBuilder::default()
    }

    /// A one-line summary of what is on, for start-up logs (never any secret).
    pub fn summary(&self) -> String {
        let s = &self.shared;
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "api keys: {}, jwt: {}, jwks: {}, api key header: {}, url auth: {}, dev bypass: {}",
            s.api_keys.as_ref().map_or(0, ApiKeyStore::len),
            on(s.jwt.as_ref().is_some_and(JwtVerifier::has_secrets)),
            on(s.jwt.as_ref().is_some_and(JwtVerifier::has_jwks)),
            s.api_key_header.as_ref().map_or("none", HeaderName::as_str),
            on(s.url_auth),
            on(s.dev_bypass),
        )
    }

    /// The protected resource's URL when it is the same for every request (configured with
    /// [`resource`](AuthLayerBuilder::resource), or the JWT verifier's first http(s) audience);
    /// `None` when it is derived per request from an allowed `Host`, or not known at all.
    pub fn resource(&self) -> Option<&str> {
        self.shared.resource.as_ref().map(|r| r.url.as_str())
    }

    /// The `Host` values the resource URL may be derived from (normalised), or `None` when no
    /// `Host` is trusted to name it ([`any_host`](AuthLayerBuilder::any_host)).
    pub fn resource_hosts(&self) -> Option<Vec<String>> {
        self.shared.resource_hosts.as_ref().map(|rules| {
            rules
                .iter()
                .map(|r| match r.port {
                    Some(p) => format!("{}:{p}", r.host),
                    None => r.host.clone(),
                })
                .collect()
        })
    }

    /// A builder filled from the environment (prefix `MCP` gives `MCP_API_KEY` …): `API_KEY` /
    /// `API_KEY_FILE` (one key with every scope), `API_KEYS_FILE` (hashed keys, reloaded on
    /// change), `API_KEY_PEPPER(_FILE)`, `API_KEY_HEADER`, `URL_AUTH`, `JWT_SECRET(_FILE)`
    /// (comma-separated; the first signs), `JWKS_URL`, `JWT_AUDIENCE` (comma-separated),
    /// `JWT_ISSUER`, `JWT_ALGORITHMS`, `JWT_LEEWAY`, `DEV_BYPASS`, `ENV`, `AUTH_EXEMPT_PATHS`,
    /// `AUTH_DENY_PREFIXES`, `RESOURCE_URL`, `AUTHORIZATION_SERVERS`. Refine the builder (policy,
    /// bind address) before building.
    ///
    /// JWTs, in short (see [`jwt_from_env`](Self::jwt_from_env)): `JWT_SECRET` enables HS256;
    /// `JWKS_URL` enables asymmetric tokens from that JWK Set; `JWT_ISSUER` alone (neither of the
    /// others) discovers the JWK Set from the issuer's metadata. `JWT_ISSUER` is also the
    /// required `iss` of every JWT.
    ///
    /// # Errors
    /// A malformed variable, naming it; `JWKS_URL`, or an issuer to discover, without the `jwks`
    /// cargo feature.
    pub fn builder_from_env(env: &Env) -> Result<AuthLayerBuilder, ConfigError> {
        let mut b = AuthLayer::builder().environment(env.environment("ENV")?);
        let single = env.secret("API_KEY")?;
        let file = env.string("API_KEYS_FILE")?;
        if single.is_some() || file.is_some() {
            let mut store = ApiKeyStore::builder();
            if let Some(pepper) = env.secret("API_KEY_PEPPER")? {
                store = store.pepper(pepper);
            }
            if let Some(key) = &single {
                store = store.key("env", key.expose(), Scopes::new(["*"]));
            }
            if let Some(path) = file {
                store = store.file(path);
            }
            b = b.api_keys(store.build()?);
        }
        if let Some(verifier) = Self::jwt_from_env(env)? {
            b = b.jwt(verifier);
        }
        if let Some(h) = env.string("API_KEY_HEADER")? {
            b = b.api_key_header(&h);
        }
        b = b.url_auth(env.bool("URL_AUTH", false)?);
        b = b.dev_bypass(env.bool("DEV_BYPASS", false)?);
        b = b.policy(AuthPolicy::builder_from_env(env)?.build()?);
        if let Some(url) = env.string("RESOURCE_URL")? {
            b = b.resource(url);
        }
        if let Some(servers) = env.list("AUTHORIZATION_SERVERS")? {
            b = b.authorization_servers(servers);
        }
        Ok(b)
    }
}

/// The same error under another setting name (an environment variable's).
fn rename_error(e: ConfigError, setting: &str) -> ConfigError {
    let renamed = ConfigError::new(setting, e.reason().to_owned());
    match e.value() {
        Some(v) => renamed.with_value(v),
        None => renamed,
    }
}

/// Builds an [`AuthLayer`]; see [`AuthLayer::builder`].
#[must_use]
pub struct AuthLayerBuilder {
    api_keys: Option<ApiKeyStore>,
    jwt: Option<JwtVerifier>,
    api_key_header: Option<String>,
    url_auth: bool,
    policy: AuthPolicy,
    realm: Option<String>,
    resource: Option<String>,
    resource_hosts: Option<Vec<String>>,
    mcp_path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    strip_credentials: bool,
    dev_bypass: bool,
    environment: Environment,
    bind_addr: Option<SocketAddr>,
    clock: Arc<dyn Clock>,
    fingerprint_key: Option<Secret>,
    key_reload_interval: Duration,
}

impl Default for AuthLayerBuilder {
    fn default() -> Self {
        AuthLayerBuilder {
            api_keys: None,
            jwt: None,
            api_key_header: None,
            url_auth: false,
            policy: AuthPolicy::default(),
            realm: None,
            resource: None,
            resource_hosts: Some(LOOPBACK_HOSTS.map(str::to_owned).to_vec()),
            mcp_path: "/mcp".to_owned(),
            authorization_servers: Vec::new(),
            scopes_supported: None,
            strip_credentials: true,
            dev_bypass: false,
            environment: Environment::Production,
            bind_addr: None,
            clock: Arc::new(SystemClock),
            fingerprint_key: None,
            key_reload_interval: DEFAULT_KEY_RELOAD_INTERVAL,
        }
    }
}

impl fmt::Debug for AuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("api_keys", &self.api_keys.is_some())
            .field("jwt", &self.jwt.is_some())
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl AuthLayerBuilder {
    /// Whether a credential source (API keys or a JWT verifier) is configured.
    pub fn has_credential_source(&self) -> bool {
        self.api_keys.is_some() || self.jwt.is_some()
    }

    /// Accept API keys from this store.
    pub fn api_keys(mut self, store: ApiKeyStore) -> Self {
        self.api_keys = Some(store);
        self
    }

    /// Accept HS256 JWTs verified by this verifier.
    pub fn jwt(mut self, verifier: JwtVerifier) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// Also accept a credential in this header (e.g. `X-API-Key`); `Authorization: Bearer`
    /// always works.
    pub fn api_key_header(mut self, name: &str) -> Self {
        self.api_key_header = Some(name.to_owned());
        self
    }

    /// Also accept `?token=` / `?access_token=` (off by default: URLs end up in logs and
    /// browser history). The parameter is removed from the URI before the inner service sees it.
    pub fn url_auth(mut self, on: bool) -> Self {
        self.url_auth = on;
        self
    }

    /// The authorization policy (default: `/health` exempt, any valid credential elsewhere).
    pub fn policy(mut self, policy: AuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The `realm` of challenges (none by default).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The protected resource's absolute URL (RFC 9728 `resource`, e.g.
    /// `https://mcp.example.com/mcp`). When unset, the JWT verifier's first http(s) audience is
    /// used; failing that, it is derived per request from a `Host` on
    /// [`allowed_hosts`](Self::allowed_hosts) and the MCP path with `http://`, which suits local
    /// development only (see the [module docs](self#the-resource-url)).
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The `Host` values the resource URL may be derived from when neither a
    /// [`resource`](Self::resource) nor an http(s) JWT audience is configured: `name`,
    /// `name:port`, an IPv4 address, or an IPv6 address with or without brackets; an entry
    /// without a port matches any port. Default [`LOOPBACK_HOSTS`]. Hand it the Origin guard's
    /// allowlist (`OriginGuardLayer::allowed_hosts()` in mcp-headers), as the `mcp-security`
    /// facade does. Any other `Host` gets a 404 for the metadata and a challenge without
    /// `resource_metadata`. An empty list is refused at build (use [`any_host`](Self::any_host)).
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resource_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// No `Host` is trusted to name the resource (the Origin guard accepts any Host): without a
    /// [`resource`](Self::resource) or an http(s) JWT audience, the metadata answers 404 and
    /// challenges carry no `resource_metadata`.
    pub fn any_host(mut self) -> Self {
        self.resource_hosts = None;
        self
    }

    /// The MCP endpoint path (default `/mcp`), used to derive the resource URL from `Host`.
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.mcp_path = path.into();
        self
    }

    /// The authorization servers listed in the protected-resource metadata. When none is set
    /// and the JWT verifier has a JWKS source, the issuer (the discovered one, else the
    /// verifier's required `iss`) is listed.
    pub fn authorization_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// `scopes_supported` in the metadata (default: every scope the policy names).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Remove `Authorization` and the API-key header before the inner service (default on): the
    /// MCP specification forbids passing the client's token through to upstream services. The
    /// [`Principal`] stays in the request extensions.
    pub fn strip_credentials(mut self, on: bool) -> Self {
        self.strip_credentials = on;
        self
    }

    /// Let requests without a credential through as a `dev_bypass` principal with every scope.
    /// Refused at build unless the environment is development and the bind address is loopback.
    pub fn dev_bypass(mut self, on: bool) -> Self {
        self.dev_bypass = on;
        self
    }

    /// Where the server runs (default production).
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = env;
        self
    }

    /// The address the server listens on; the dev bypass needs it to be loopback.
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.bind_addr = Some(addr);
        self
    }

    /// The clock for expiry checks (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key for credential fingerprints in [`AuthOutcome`] (default: random per process).
    pub fn fingerprint_key(mut self, key: Secret) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// How often the API key file is re-read (default 1 s).
    pub fn key_reload_interval(mut self, every: Duration) -> Self {
        self.key_reload_interval = every;
        self
    }

    /// Validate and build. When the API key store has a file and a tokio runtime is running, a
    /// task that reloads the file on change is spawned.
    ///
    /// # Errors
    /// Names the setting: `credentials` (no source), `dev_bypass`, `api_key_header`, `resource`,
    /// `allowed_hosts`, `mcp_path`, `authorization_servers`, `key_reload_interval`.
    pub fn build(self) -> Result<AuthLayer, ConfigError> {
        if self.dev_bypass {
            if self.environment != Environment::Development {
                return Err(ConfigError::new(
                    "dev_bypass",
                    "refused: the development bypass needs the environment set to development",
                )
                .with_value(self.environment.as_str()));
            }
            match self.bind_addr {
                Some(addr) if addr.ip().is_loopback() => {}
                Some(addr) => {
                    return Err(ConfigError::new(
                        "dev_bypass",
                        "refused: the development bypass needs a loopback bind address",
                    )
                    .with_value(addr.to_string()));
                }
                None => {
                    return Err(ConfigError::new(
                        "dev_bypass",
                        "refused: tell the builder the bind address (bind_addr) so it can check it is loopback",
                    ));
                }
            }
        }
        if self.api_keys.is_none() && self.jwt.is_none() && !self.dev_bypass {
            return Err(ConfigError::new(
                "credentials",
                "no credential source: configure API keys or a JWT secret",
            ));
        }
        let api_key_header = match &self.api_key_header {
            None => None,
            Some(name) => {
                let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    ConfigError::new("api_key_header", "not a valid header name").with_value(name)
                })?;
                if parsed == AUTHORIZATION {
                    return Err(ConfigError::new(
                        "api_key_header",
                        "Authorization is always accepted; name another header",
                    )
                    .with_value(name));
                }
                Some(parsed)
            }
        };
        let resource = match self
            .resource
            .as_deref()
            .map(ResourceUrl::parse)
            .transpose()?
        {
            Some(r) => Some(r),
            None => self
                .jwt
                .as_ref()
                .and_then(|jwt| jwt.audiences().find_map(|aud| ResourceUrl::parse(aud).ok())),
        };
        let resource_hosts = match &self.resource_hosts {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new(
                    "allowed_hosts",
                    "the list is empty; call any_host() to trust no Host",
                ));
            }
            Some(list) => Some(
                list.iter()
                    .map(|h| {
                        HostRule::parse(h).ok_or_else(|| {
                            ConfigError::new(
                                "allowed_hosts",
                                "expected a host name or IP address with an optional port, \
                                 such as mcp.example.com, mcp.example.com:8443, 127.0.0.1 or [::1]",
                            )
                            .with_value(h)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if !self.mcp_path.starts_with('/') {
            return Err(
                ConfigError::new("mcp_path", "must start with '/'").with_value(self.mcp_path)
            );
        }
        for server in &self.authorization_servers {
            if !(server.starts_with("https://") || server.starts_with("http://")) {
                return Err(ConfigError::new(
                    "authorization_servers",
                    "each must be an absolute http(s) URL",
                )
                .with_value(server));
            }
        }
        if self.key_reload_interval.is_zero() {
            return Err(ConfigError::new(
                "key_reload_interval",
                "must be more than zero",
            ));
        }
        let fingerprint_key = match self.fingerprint_key {
            Some(k) => k,
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    ConfigError::new("fingerprint_key", format!("no system randomness: {e}"))
                })?;
                Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        if let Some(store) = &self.api_keys {
            // Detached; a no-op without a file or a tokio runtime. It ends when the store is
            // dropped; a reload error is logged and the previous keys stay in force.
            drop(store.spawn_reloader(self.key_reload_interval));
        }
        let mut authorization_servers = self.authorization_servers;
        if authorization_servers.is_empty()
            && let Some(issuer) = self.jwt.as_ref().and_then(jwks_issuer)
        {
            authorization_servers.push(issuer.to_owned());
        }
        let scopes_supported = self.scopes_supported.unwrap_or_else(|| {
            self.policy
                .all_scopes()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        Ok(AuthLayer {
            shared: Arc::new(Shared {
                api_keys: self.api_keys,
                jwt: self.jwt,
                api_key_header,
                url_auth: self.url_auth,
                policy: self.policy,
                realm: self.realm,
                resource,
                resource_hosts,
                mcp_path: self.mcp_path,
                authorization_servers,
                scopes_supported,
                strip_credentials: self.strip_credentials,
                dev_bypass: self.dev_bypass,
                clock: self.clock,
                fingerprint_key,
            }),
        })
    }
}

/// The issuer to list as authorization server for a verifier with a JWKS source.
fn jwks_issuer(verifier: &JwtVerifier) -> Option<&str> {
    #[cfg(feature = "jwks")]
    if let Some(source) = verifier.jwks() {
        return source.issuer().or_else(|| verifier.issuer());
    }
    let _ = verifier;
    None
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Bearer,
    ApiKeyHeader,
    Query,
}

/// The outcome of looking for a credential.
#[derive(Debug)]
enum Extracted {
    None,
    One(String, Source),
    Many,
    Malformed,
}

impl Shared {
    /// Find the one credential a request carries.
    fn extract<B>(&self, req: &Request<B>) -> Extracted {
        let mut found: Option<(String, Source)> = None;
        let mut count = 0usize;
        let mut malformed = false;
        let mut authorization = req.headers().get_all(AUTHORIZATION).iter();
        if let Some(value) = authorization.next() {
            count += 1 + authorization.count();
            match parse_bearer(value) {
                Some(token) => found = Some((token.to_owned(), Source::Bearer)),
                None => malformed = true,
            }
        }
        if let Some(name) = &self.api_key_header {
            let mut values = req.headers().get_all(name).iter();
            if let Some(value) = values.next() {
                count += 1 + values.count();
                match value.to_str().map(str::trim) {
                    Ok(v) if !v.is_empty() => found = Some((v.to_owned(), Source::ApiKeyHeader)),
                    _ => malformed = true,
                }
            }
        }
        if self.url_auth {
            for (_, value) in query_tokens(req.uri()) {
                count += 1;
                match percent_decode(value) {
                    Some(v) if !v.is_empty() => found = Some((v, Source::Query)),
                    _ => malformed = true,
                }
            }
        }
        match (count, found) {
            (0, _) => Extracted::None,
            (1, Some((v, s))) if !malformed => Extracted::One(v, s),
            (1, _) => Extracted::Malformed,
            _ => Extracted::Many,
        }
    }

    fn verify(&self, credential: &str) -> Result<Principal, AuthFailure> {
        let now = self.clock.now();
        match (&self.jwt, &self.api_keys) {
            // A key that happens to be JWT-shaped still works; the JWT's failure is what is
            // reported otherwise.
            (Some(jwt), keys) if looks_like_jwt(credential) => {
                jwt.verify(credential, now).or_else(|failure| match keys {
                    Some(keys) => keys.verify(credential, now).map_err(|_| failure),
                    None => Err(failure),
                })
            }
            (_, Some(keys)) => keys.verify(credential, now),
            (Some(jwt), None) => jwt.verify(credential, now),
            (None, None) => Err(AuthFailure::UnknownKey),
        }
    }

    fn strip_credential_headers(&self, headers: &mut http::HeaderMap) {
        headers.remove(AUTHORIZATION);
        if let Some(name) = &self.api_key_header {
            headers.remove(name);
        }
    }

    fn fingerprint(&self, credential: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.fingerprint_key.expose().as_bytes())
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(credential.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The request's resource URL; see the [module docs](self#the-resource-url).
    fn resource_url<B>(&self, req: &Request<B>) -> Resolved<'_> {
        if let Some(r) = &self.resource {
            return Resolved::Fixed(r);
        }
        let Some(rules) = &self.resource_hosts else {
            return Resolved::Unknown {
                host_dependent: false,
            };
        };
        let unknown = Resolved::Unknown {
            host_dependent: true,
        };
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(h), None) => h.to_str().ok(),
            (None, _) => req.uri().authority().map(|a| a.as_str()),
            (Some(_), Some(_)) => None,
        };
        let Some(host) = host.map(str::trim) else {
            return unknown;
        };
        if host.is_empty() || !host.bytes().all(is_authority_byte) {
            return unknown;
        }
        let Some((name, port)) = split_host_port(host) else {
            return unknown;
        };
        if !rules.iter().any(|r| r.allows(name, port)) {
            return unknown;
        }
        match ResourceUrl::parse(&format!("http://{host}{}", self.mcp_path)) {
            Ok(r) => Resolved::Derived(r),
            Err(_) => unknown,
        }
    }

    fn is_metadata_path(&self, path: &str) -> bool {
        match path.strip_prefix(METADATA_PATH) {
            Some("") => true,
            Some(rest) => match &self.resource {
                Some(r) => rest == r.path,
                None => rest == self.mcp_path,
            },
            None => false,
        }
    }

    /// `rejection` with its `WWW-Authenticate: Bearer` challenge (and `Vary: Host` when the
    /// challenge's `resource_metadata` depends on `Host`).
    fn challenge<B>(
        &self,
        req: &Request<B>,
        rejection: Rejection,
        error: Option<BearerError>,
        description: Option<&'static str>,
        scopes: &[&str],
    ) -> Rejection {
        let mut c = BearerChallenge::new();
        if let Some(realm) = &self.realm {
            c = c.realm(realm.clone());
        }
        if let Some(e) = error {
            c = c.error(e);
        }
        if let Some(d) = description {
            c = c.error_description(d);
        }
        let resolved = self.resource_url(req);
        if let Some(r) = resolved.url() {
            c = c.resource_metadata(r.metadata_url());
        }
        if !scopes.is_empty() {
            c = c.scope(scopes.join(" "));
        }
        let rejection = rejection.challenge(c);
        if resolved.varies() {
            rejection.header(header::VARY, HeaderValue::from_static("host"))
        } else {
            rejection
        }
    }

    fn metadata_response<B, ResBody>(&self, req: &Request<B>) -> Response<GuardBody<ResBody>> {
        let cors = |res: &mut Response<GuardBody<ResBody>>| {
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("mcp-protocol-version, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        };
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => {
                let mut res = Response::new(GuardBody::rejection(Bytes::new()));
                *res.status_mut() = StatusCode::NO_CONTENT;
                cors(&mut res);
                return res;
            }
            _ => {
                let mut res = Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                    .header(
                        header::ALLOW,
                        HeaderValue::from_static("GET, HEAD, OPTIONS"),
                    )
                    .into_response(&ResponseFormat::Json);
                cors(&mut res);
                return res;
            }
        }
        let resolved = self.resource_url(req);
        let vary = resolved.varies();
        let Some(resource) = resolved.url() else {
            // No configured resource, and no Host trusted to name one: say nothing rather than
            // echo the request's Host.
            let mut rejection = Rejection::new(StatusCode::NOT_FOUND, "not_found")
                .message("No protected-resource metadata is served for this host")
                .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
                .detail("no resource URL is configured and the Host is not on the allowlist");
            if vary {
                rejection = rejection.header(header::VARY, HeaderValue::from_static("host"));
            }
            let mut res = rejection.into_response(&ResponseFormat::Json);
            if req.method() == Method::HEAD {
                *res.body_mut() = GuardBody::rejection(Bytes::new());
            }
            cors(&mut res);
            res.extensions_mut().insert(AuthOutcome::Exempt);
            return res;
        };
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), resource.url.clone().into());
        if !self.authorization_servers.is_empty() {
            doc.insert(
                "authorization_servers".into(),
                json!(self.authorization_servers),
            );
        }
        if !self.scopes_supported.is_empty() {
            doc.insert("scopes_supported".into(), json!(self.scopes_supported));
        }
        let mut methods = vec!["header"];
        if self.url_auth {
            methods.push("query");
        }
        doc.insert("bearer_methods_supported".into(), json!(methods));
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(serde_json::Value::Object(doc).to_string())
        };
        let mut res = Response::new(GuardBody::rejection(body));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        if vary {
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("host"));
        }
        cors(&mut res);
        res.extensions_mut().insert(AuthOutcome::Exempt);
        res
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, token68
/// characters only), or `None`.
pub fn parse_bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    token68.then_some(token)
}

/// The `token` / `access_token` query parameters, as raw (still percent-encoded) values.
fn query_tokens(uri: &Uri) -> impl Iterator<Item = (&str, &str)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| QUERY_TOKEN_PARAMS.contains(k))
}

/// Percent-decode a query value (`+` is a space); `None` if it is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    String::from_utf8(percent::decode(value, Plus::Space)).ok()
}

/// The URI without `token` / `access_token` query parameters.
fn strip_query_tokens(uri: &Uri) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !QUERY_TOKEN_PARAMS.contains(&key)
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

impl<S, B, ResBody> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let path = req.uri().path();
        if shared.is_metadata_path(path) {
            return ResponseFuture::ready(shared.metadata_response(&req));
        }
        if shared.policy.is_denied(path) {
            let rejection = Rejection::new(StatusCode::FORBIDDEN, "forbidden")
                .message("Forbidden")
                .detail("deny-listed path");
            let format = ResponseFormat::for_request(req.headers(), req.extensions());
            return ResponseFuture::rejected(
                rejection.into_response(&format),
                AuthOutcome::Rejected {
                    failure: AuthFailure::DeniedPath,
                    principal: None,
                    fingerprint: None,
                },
            );
        }
        if shared.policy.is_exempt(path) {
            if shared.strip_credentials {
                shared.strip_credential_headers(req.headers_mut());
            }
            return ResponseFuture::inner(self.inner.call(req), AuthOutcome::Exempt);
        }

        let required =
            shared
                .policy
                .required_scopes(req.method(), path, req.extensions().get::<McpCall>());
        let reject = |req: &Request<B>, rejection: Rejection, failure, principal, fingerprint| {
            let format = ResponseFormat::for_request(req.headers(), req.extensions());
            ResponseFuture::rejected(
                rejection.into_response(&format),
                AuthOutcome::Rejected {
                    failure,
                    principal,
                    fingerprint,
                },
            )
        };

        let (principal, source) = match shared.extract(&req) {
            Extracted::None if shared.dev_bypass => {
                let principal = Principal::builder("dev", PrincipalKind::DevBypass)
                    .scopes(["*"])
                    .build();
                (principal, None)
            }
            Extracted::None => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                    .message("Authentication required");
                let rejection = shared.challenge(&req, rejection, None, None, &required);
                return reject(&req, rejection, AuthFailure::MissingCredential, None, None);
            }
            Extracted::Many => {
                let rejection = Rejection::new(StatusCode::BAD_REQUEST, "invalid_request")
                    .message("Send exactly one credential");
                let rejection = shared.challenge(
                    &req,
                    rejection,
                    Some(BearerError::InvalidRequest),
                    Some("Send exactly one credential"),
                    &required,
                );
                return reject(
                    &req,
                    rejection,
                    AuthFailure::MultipleCredentials,
                    None,
                    None,
                );
            }
            Extracted::Malformed => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                    .message("The credential is malformed");
                let rejection = shared.challenge(
                    &req,
                    rejection,
                    Some(BearerError::InvalidToken),
                    Some("The credential is malformed"),
                    &required,
                );
                return reject(
                    &req,
                    rejection,
                    AuthFailure::MalformedCredential,
                    None,
                    None,
                );
            }
            Extracted::One(credential, source) => match shared.verify(&credential) {
                Ok(principal) => (principal, Some((source, credential))),
                Err(failure) => {
                    let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                        .message("The credential is invalid, expired or revoked")
                        .detail(failure.as_str());
                    let rejection = shared.challenge(
                        &req,
                        rejection,
                        Some(BearerError::InvalidToken),
                        Some("The credential is invalid, expired or revoked"),
                        &required,
                    );
                    let fingerprint = Some(shared.fingerprint(&credential));
                    return reject(&req, rejection, failure, None, fingerprint);
                }
            },
        };

        let missing = required.iter().any(|scope| !principal.has_scope(scope));
        if missing {
            let rejection = Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
                .message("The credential lacks a scope this request needs")
                .field("required_scopes", required.clone());
            let rejection = shared.challenge(
                &req,
                rejection,
                Some(BearerError::InsufficientScope),
                Some("The credential lacks a scope this request needs"),
                &required,
            );
            let fingerprint = source.as_ref().map(|(_, c)| shared.fingerprint(c));
            return reject(
                &req,
                rejection,
                AuthFailure::InsufficientScope,
                Some(principal),
                fingerprint,
            );
        }

        if let Some((source, _)) = source {
            if source == Source::Query {
                *req.uri_mut() = strip_query_tokens(req.uri());
            }
            if shared.strip_credentials {
                shared.strip_credential_headers(req.headers_mut());
            }
        }
        req.extensions_mut().insert(principal.clone());
        ResponseFuture::inner(
            self.inner.call(req),
            AuthOutcome::Authenticated { principal },
        )
    }
}

pin_project! {
    /// The response future of [`Auth`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
        outcome: Option<AuthOutcome>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<GuardBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F, outcome: AuthOutcome) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            outcome: Some(outcome),
        }
    }

    fn ready(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: None,
        }
    }

    fn rejected(response: Response<GuardBody<B>>, outcome: AuthOutcome) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: Some(outcome),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => res.map(GuardBody::inner),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            },
            KindProj::Ready { response } => response
                .take()
                .expect("ResponseFuture polled after completion"),
        };
        if let Some(outcome) = this.outcome.take() {
            response.extensions_mut().insert(outcome);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_env(pairs: &[(&str, &str)]) -> Result<Option<JwtVerifier>, ConfigError> {
        AuthLayer::jwt_from_env(&Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v))))
    }

    #[test]
    fn no_jwt_variables_no_verifier() {
        assert!(jwt_env(&[]).unwrap().is_none());
        assert!(
            jwt_env(&[("MCP_JWT_AUDIENCE", "https://mcp.example.com/mcp")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn hs256_from_env_keeps_working() {
        let v = jwt_env(&[
            (
                "MCP_JWT_SECRET",
                "env-secret-0123456789abcdef0123456789abcdef",
            ),
            ("MCP_JWT_ISSUER", "https://mcp.example.com"),
            ("MCP_JWT_ALGORITHMS", "HS256"),
        ])
        .unwrap()
        .unwrap();
        assert!(v.has_secrets() && !v.has_jwks());
        assert_eq!(v.issuer(), Some("https://mcp.example.com"));
        let e = jwt_env(&[("MCP_JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(e.setting(), "MCP_JWT_SECRET");
    }

    #[cfg(not(feature = "jwks"))]
    #[test]
    fn jwks_without_the_feature_is_an_error_naming_variable_and_feature() {
        let e = jwt_env(&[("MCP_JWKS_URL", "https://id.example.com/jwks")]).unwrap_err();
        assert_eq!(e.setting(), "MCP_JWKS_URL");
        assert!(e.reason().contains("`jwks` cargo feature"), "{e}");
        let e = jwt_env(&[("MCP_JWT_ISSUER", "https://id.example.com")]).unwrap_err();
        assert_eq!(e.setting(), "MCP_JWT_ISSUER");
        assert!(e.reason().contains("`jwks` cargo feature"), "{e}");
        // With a secret, the issuer is only the required `iss`, as before.
        assert!(
            jwt_env(&[
                (
                    "MCP_JWT_SECRET",
                    "env-secret-0123456789abcdef0123456789abcdef"
                ),
                ("MCP_JWT_ISSUER", "https://id.example.com"),
            ])
            .is_ok()
        );
    }

    mod resource_url {
        use super::super::*;
        use std::convert::Infallible;

        use http_body_util::{BodyExt, Full};
        use serde_json::{Value, json};
        use tower::ServiceExt;

        const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
        const SECRET: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";

        struct Answer {
            status: StatusCode,
            headers: http::HeaderMap,
            body: Bytes,
        }

        impl Answer {
            fn json(&self) -> Value {
                serde_json::from_slice(&self.body).unwrap()
            }

            fn vary(&self) -> Vec<&str> {
                self.headers
                    .get_all(header::VARY)
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect()
            }
        }

        fn builder() -> AuthLayerBuilder {
            AuthLayer::builder().api_keys(
                ApiKeyStore::builder()
                    .key("k", KEY, Scopes::new(["*"]))
                    .build()
                    .unwrap(),
            )
        }

        async fn send(layer: &AuthLayer, method: Method, path: &str, hosts: &[&str]) -> Answer {
            let mut req = Request::builder().method(method).uri(path);
            for h in hosts {
                req = req.header("host", *h);
            }
            let svc = layer.layer(tower::service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }));
            let res = svc
                .oneshot(req.body(Full::default()).unwrap())
                .await
                .unwrap();
            let (parts, body) = res.into_parts();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        }

        async fn metadata(layer: &AuthLayer, hosts: &[&str]) -> Answer {
            send(
                layer,
                Method::GET,
                "/.well-known/oauth-protected-resource/mcp",
                hosts,
            )
            .await
        }

        async fn challenge(layer: &AuthLayer, hosts: &[&str]) -> Answer {
            let a = send(layer, Method::POST, "/mcp", hosts).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert_eq!(
                a.json(),
                json!({"error": "invalid_token", "error_description": "Authentication required"})
            );
            a
        }

        fn assert_not_found(a: &Answer, vary: bool) {
            assert_eq!(a.status, StatusCode::NOT_FOUND);
            assert_eq!(a.headers["content-type"], "application/json");
            assert_eq!(a.headers["cache-control"], "no-store");
            assert_eq!(a.headers["access-control-allow-origin"], "*");
            assert_eq!(a.vary(), if vary { vec!["host"] } else { vec![] });
            assert_eq!(
                a.json(),
                json!({"error": "not_found",
                    "message": "No protected-resource metadata is served for this host"})
            );
            assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
        }

        #[tokio::test]
        async fn a_hostile_host_is_never_echoed() {
            // Nothing configured: the resource may come only from a loopback Host.
            let layer = builder().build().unwrap();
            assert_eq!(layer.resource(), None);
            assert_eq!(
                layer.resource_hosts().unwrap(),
                ["localhost", "127.0.0.1", "[::1]"]
            );
            let a = metadata(&layer, &["evil.example"]).await;
            assert_not_found(&a, true);
            let a = challenge(&layer, &["evil.example"]).await;
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            assert_eq!(a.vary(), ["host"]);
            // Two Host headers, a Host with a path, a port-less lookalike: the same.
            for hosts in [
                &["localhost", "evil.example"][..],
                &["localhost.evil.example"],
                &["localhost/x"],
                &["localhost:"],
                &[],
            ] {
                assert_not_found(&metadata(&layer, hosts).await, true);
                let a = challenge(&layer, hosts).await;
                assert_eq!(a.headers["www-authenticate"], "Bearer", "{hosts:?}");
            }
            // HEAD: the same head, no body.
            let a = send(
                &layer,
                Method::HEAD,
                "/.well-known/oauth-protected-resource",
                &["evil.example"],
            )
            .await;
            assert_eq!(a.status, StatusCode::NOT_FOUND);
            assert_eq!(a.vary(), ["host"]);
            assert!(a.body.is_empty());

            // An allowed Host names the resource; the answer varies with Host.
            let a = metadata(&layer, &["localhost:8080"]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.headers["content-type"], "application/json");
            assert_eq!(a.headers["cache-control"], "public, max-age=3600");
            assert_eq!(a.vary(), ["host"]);
            assert_eq!(a.json()["resource"], "http://localhost:8080/mcp");
            let a = challenge(&layer, &["[::1]:9000"]).await;
            assert_eq!(
                a.headers["www-authenticate"],
                "Bearer resource_metadata=\"http://[::1]:9000/.well-known/oauth-protected-resource/mcp\""
            );
            assert_eq!(a.vary(), ["host"]);
        }

        #[tokio::test]
        async fn a_configured_resource_ignores_host_and_stays_cacheable() {
            let layer = builder()
                .resource("https://mcp.example.com/mcp")
                .build()
                .unwrap();
            assert_eq!(layer.resource(), Some("https://mcp.example.com/mcp"));
            for hosts in [&["evil.example"][..], &["localhost"], &[]] {
                let a = metadata(&layer, hosts).await;
                assert_eq!(a.status, StatusCode::OK);
                assert_eq!(a.headers["cache-control"], "public, max-age=3600");
                assert!(a.vary().is_empty(), "{:?}", a.vary());
                assert_eq!(a.json()["resource"], "https://mcp.example.com/mcp");
                let a = challenge(&layer, hosts).await;
                assert_eq!(
                    a.headers["www-authenticate"],
                    "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
                );
                assert!(a.vary().is_empty());
            }
        }

        #[tokio::test]
        async fn the_jwt_audience_names_the_resource_when_none_is_configured() {
            let jwt = |aud: &[&str]| {
                let mut b = JwtVerifier::builder().secret(Secret::new(SECRET));
                for a in aud {
                    b = b.audience(*a);
                }
                b.build().unwrap()
            };
            let layer = builder()
                .jwt(jwt(&["mcp-server", "https://mcp.example.com/mcp"]))
                .build()
                .unwrap();
            assert_eq!(layer.resource(), Some("https://mcp.example.com/mcp"));
            let a = metadata(&layer, &["evil.example"]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.json()["resource"], "https://mcp.example.com/mcp");
            assert!(a.vary().is_empty());
            assert_eq!(a.headers["cache-control"], "public, max-age=3600");
            // An audience that is not a URL does not name a resource.
            let layer = builder().jwt(jwt(&["mcp-server"])).build().unwrap();
            assert_eq!(layer.resource(), None);
            assert_not_found(&metadata(&layer, &["evil.example"]).await, true);
        }

        #[tokio::test]
        async fn any_host_means_no_derived_resource() {
            let layer = builder().any_host().build().unwrap();
            assert_eq!(layer.resource_hosts(), None);
            for hosts in [&["evil.example"][..], &["localhost"]] {
                // The 404 does not depend on Host: no Vary.
                assert_not_found(&metadata(&layer, hosts).await, false);
                let a = challenge(&layer, hosts).await;
                assert_eq!(a.headers["www-authenticate"], "Bearer");
                assert!(a.vary().is_empty());
            }
        }

        #[tokio::test]
        async fn an_allowlist_from_the_origin_guard() {
            let layer = builder()
                .allowed_hosts(["MCP.example.com:8443", "::1", "10.0.0.5"])
                .build()
                .unwrap();
            assert_eq!(
                layer.resource_hosts().unwrap(),
                ["mcp.example.com:8443", "[::1]", "10.0.0.5"]
            );
            let a = metadata(&layer, &["mcp.example.com:8443"]).await;
            assert_eq!(a.json()["resource"], "http://mcp.example.com:8443/mcp");
            let a = metadata(&layer, &["10.0.0.5:80"]).await;
            assert_eq!(a.json()["resource"], "http://10.0.0.5:80/mcp");
            for no in [
                "mcp.example.com",
                "mcp.example.com:443",
                "localhost",
                "evil.example",
            ] {
                assert_not_found(&metadata(&layer, &[no]).await, true);
            }
        }

        #[test]
        fn allowlist_errors_name_the_setting() {
            let e = builder()
                .allowed_hosts(Vec::<String>::new())
                .build()
                .unwrap_err();
            assert_eq!(e.setting(), "allowed_hosts");
            for bad in ["https://x", "x/y", "a b", "x:0", "[::g]", "x:abc", ""] {
                let e = builder().allowed_hosts([bad]).build().unwrap_err();
                assert_eq!(e.setting(), "allowed_hosts", "{bad}");
            }
        }
    }
}
