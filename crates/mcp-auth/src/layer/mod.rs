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
//! response: it goes to the [`AuthOutcome`](mcp_security_core::AuthOutcome) in the response extensions, for the audit layer.
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
//!
//! # DPoP
//!
//! With [`dpop`](AuthLayerBuilder::dpop) (or `MCP_DPOP=allowed|required`) the layer accepts
//! access tokens bound to a client's key (RFC 9449, as the MCP authorization specification
//! allows): a JWT whose `cnf.jkt` names the key's thumbprint, sent as `Authorization: DPoP
//! <token>` (scheme in any case) with exactly one `DPoP` header holding a proof signed by that key
//! ([`DpopVerifier`] checks it: `typ`, `alg`, signature, `htm`, `htu`, `iat`, `ath`, `jti` replay,
//! server nonce). The proof is checked on every request, after the token, so a token the
//! verifier remembers still needs a fresh proof each time.
//!
//! The `htu` a proof must name is the configured [`resource`](AuthLayerBuilder::resource)'s
//! origin with the request's path (the resource URL itself when a proxy rewrote its path to the
//! [`mcp_path`](AuthLayerBuilder::mcp_path)): behind a proxy the `Host` the server sees is not
//! what the client signed, so configure the resource there. Without one, the origin derived from
//! an allowed `Host` (`http://`), else the request's own scheme and `Host`.
//!
//! | request | [`DpopMode::Off`] (default) | [`DpopMode::Allowed`] | [`DpopMode::Required`] |
//! |---|---|---|---|
//! | `Bearer`, unbound token or API key | accepted | accepted | API key accepted; a JWT 401 `invalid_token` ([`DpopRequired`](mcp_security_core::AuthFailure::DpopRequired)) |
//! | `Bearer`, token with `cnf.jkt` | 401 `invalid_token` ([`BoundTokenAsBearer`](mcp_security_core::AuthFailure::BoundTokenAsBearer)) | the same | the same |
//! | `DPoP`, bound token, valid proof | 401 `invalid_token` (malformed credential) | accepted | accepted |
//! | `DPoP`, bad, replayed or missing proof | — | 401 `invalid_dpop_proof` ([`InvalidDpopProof`](mcp_security_core::AuthFailure::InvalidDpopProof)) | the same |
//! | `DPoP`, proof by another key | — | 401 `invalid_dpop_proof` ([`DpopBindingMismatch`](mcp_security_core::AuthFailure::DpopBindingMismatch)) | the same |
//! | `DPoP`, token without `cnf.jkt` | — | 401 `invalid_token` (`DpopBindingMismatch`) | the same |
//! | `DPoP`, server nonces on, proof without a current nonce | — | 401 `use_dpop_nonce` and a `DPoP-Nonce` header ([`DpopNonceRequired`](mcp_security_core::AuthFailure::DpopNonceRequired)) | the same |
//!
//! With DPoP on, every challenged refusal carries `WWW-Authenticate: DPoP algs="ES256 EdDSA
//! RS256 PS256"` next to the `Bearer` challenge; the `error` goes on the challenge of the scheme
//! the client used, and errors of the proof (`invalid_dpop_proof`, `use_dpop_nonce`) always on
//! the `DPoP` one. In required mode without API keys no bearer credential can succeed, so the
//! `Bearer` challenge is left out and the `DPoP` one carries `resource_metadata` and `scope`. The
//! body is the OAuth JSON `{"error":…,"error_description":…}` as for any refusal. The
//! protected-resource metadata lists `dpop_signing_alg_values_supported`, and
//! `dpop_bound_access_tokens_required: true` in required mode. With server nonces on, the
//! response to an accepted DPoP request carries the current `DPoP-Nonce`, so the client moves on
//! to it before the one it used expires. The `DPoP` header is removed with
//! the credential before the inner service (see
//! [`strip_credentials`](AuthLayerBuilder::strip_credentials)).
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use mcp_auth::dpop::{DpopMode, DpopVerifier};
//! use mcp_auth::jwt::JwtVerifier;
//! use mcp_auth::layer::AuthLayer;
//! use mcp_security_core::config::Secret;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let jwt = JwtVerifier::builder()
//!     .secret(Secret::new("0123456789abcdef0123456789abcdef"))
//!     .audience("https://mcp.example.com/mcp")
//!     .build()?;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! // A token bound to a client key by its thumbprint.
//! let token = jwt.sign_claims(&serde_json::json!({
//!     "sub": "agent", "aud": "https://mcp.example.com/mcp", "exp": now + 300,
//!     "cnf": { "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" },
//! }))?;
//! let auth = AuthLayer::builder()
//!     .jwt(jwt)
//!     .dpop(DpopVerifier::builder().build()?)
//!     .dpop_mode(DpopMode::Allowed)
//!     .resource("https://mcp.example.com/mcp")
//!     .build()?;
//! let svc = ServiceBuilder::new().layer(auth).service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
//! });
//!
//! // A bound token sent as a bearer token is refused: whoever holds it must prove the key.
//! let res = svc.clone().oneshot(
//!     Request::post("/mcp").header("authorization", format!("Bearer {token}")).body(Full::default())?,
//! ).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let challenges: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
//! assert_eq!(challenges[1], r#"DPoP algs="ES256 EdDSA RS256 PS256""#);
//!
//! // With the DPoP scheme, a proof is needed.
//! let res = svc.oneshot(
//!     Request::post("/mcp").header("authorization", format!("DPoP {token}")).body(Full::default())?,
//! ).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let challenges: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
//! assert_eq!(
//!     challenges[1],
//!     r#"DPoP algs="ES256 EdDSA RS256 PS256", error="invalid_dpop_proof""#
//! );
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"error":"invalid_dpop_proof","error_description":"The DPoP proof is invalid"}"#
//! );
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName};

use mcp_security_core::clock::{Clock, SystemClock};
use mcp_security_core::config::{ConfigError, Environment, Secret};
use mcp_security_core::credential::Fingerprinter;

use crate::api_key::ApiKeyStore;
use crate::dpop::{DpopMode, DpopVerifier};
use crate::jwt::JwtVerifier;
use crate::policy::AuthPolicy;

mod credentials;
mod dpop;
mod env;
mod future;
mod metadata;
mod service;

pub use credentials::parse_bearer;
pub use future::ResponseFuture;
pub use metadata::LOOPBACK_HOSTS;
use metadata::{HostRule, ResourceUrl};
pub use service::Auth;

/// The well-known path of RFC 9728 protected-resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

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
    fingerprinter: Fingerprinter,
    /// `None`: DPoP off.
    dpop: Option<dpop::DpopSettings>,
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
            .field("dpop", &self.dpop.as_ref().map(|d| d.mode))
            .finish_non_exhaustive()
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
/// use mcp_security_core::{Principal, Scopes};
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
    /// `None` for [`AuthLayer::disabled`].
    shared: Option<Arc<Shared>>,
}

impl AuthLayer {
    /// A builder; at least one credential source (API keys, a JWT verifier, or the development
    /// bypass) is required.
    pub fn builder() -> AuthLayerBuilder {
        AuthLayerBuilder::default()
    }

    /// A layer that authenticates nothing: requests pass through untouched (no [`Principal`],
    /// no [`AuthOutcome`](mcp_security_core::AuthOutcome)), responses are wrapped in the same
    /// [`GuardBody`](mcp_security_core::GuardBody), so a stack has one type whether auth is on or off.
    ///
    /// [`Principal`]: mcp_security_core::Principal
    pub fn disabled() -> Self {
        AuthLayer { shared: None }
    }

    /// Whether this layer authenticates requests (`false` only for [`AuthLayer::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// A one-line summary of what is on, for start-up logs (never any secret); `off` for a
    /// [disabled](AuthLayer::disabled) layer.
    pub fn summary(&self) -> String {
        let Some(s) = &self.shared else {
            return "off".to_owned();
        };
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "api keys: {}, jwt: {}, jwks: {}, api key header: {}, url auth: {}, dev bypass: {}, \
             dpop: {}",
            s.api_keys.as_ref().map_or(0, ApiKeyStore::len),
            on(s.jwt.as_ref().is_some_and(JwtVerifier::has_secrets)),
            on(s.jwt.as_ref().is_some_and(JwtVerifier::has_jwks)),
            s.api_key_header.as_ref().map_or("none", HeaderName::as_str),
            on(s.url_auth),
            on(s.dev_bypass),
            self.dpop_mode(),
        )
    }

    /// How DPoP-bound tokens are treated ([`DpopMode::Off`] for a layer built without
    /// [`dpop`](AuthLayerBuilder::dpop) and for a disabled one).
    pub fn dpop_mode(&self) -> DpopMode {
        self.shared
            .as_ref()
            .and_then(|s| s.dpop.as_ref())
            .map_or(DpopMode::Off, |d| d.mode)
    }

    /// The protected resource's URL when it is the same for every request (configured with
    /// [`resource`](AuthLayerBuilder::resource), or the JWT verifier's first http(s) audience);
    /// `None` when it is derived per request from an allowed `Host`, or not known at all.
    pub fn resource(&self) -> Option<&str> {
        self.shared
            .as_ref()?
            .resource
            .as_ref()
            .map(|r| r.url.as_str())
    }

    /// The `Host` values the resource URL may be derived from (normalised), or `None` when no
    /// `Host` is trusted to name it ([`any_host`](AuthLayerBuilder::any_host)).
    pub fn resource_hosts(&self) -> Option<Vec<String>> {
        self.shared.as_ref()?.resource_hosts.as_ref().map(|rules| {
            rules
                .iter()
                .map(|r| match r.port {
                    Some(p) => format!("{}:{p}", r.host),
                    None => r.host.clone(),
                })
                .collect()
        })
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
    dpop: Option<DpopVerifier>,
    dpop_mode: Option<DpopMode>,
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
            dpop: None,
            dpop_mode: None,
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
    /// [`Principal`](mcp_security_core::Principal) stays in the request extensions.
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

    /// The key for credential fingerprints in [`AuthOutcome`](mcp_security_core::AuthOutcome) (default: random per process).
    pub fn fingerprint_key(mut self, key: Secret) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// How often the API key file is re-read (default 1 s).
    pub fn key_reload_interval(mut self, every: Duration) -> Self {
        self.key_reload_interval = every;
        self
    }

    /// Accept DPoP-bound access tokens (RFC 9449), their proofs checked by `verifier`; the mode
    /// is [`DpopMode::Allowed`] unless [`dpop_mode`](Self::dpop_mode) says otherwise. See the
    /// [module docs](self#dpop).
    pub fn dpop(mut self, verifier: DpopVerifier) -> Self {
        self.dpop = Some(verifier);
        self
    }

    /// How DPoP is treated: [`DpopMode::Off`] (the default without [`dpop`](Self::dpop)),
    /// [`DpopMode::Allowed`] or [`DpopMode::Required`]. A mode other than off without a
    /// verifier uses [`DpopVerifier::builder`]'s defaults.
    pub fn dpop_mode(mut self, mode: DpopMode) -> Self {
        self.dpop_mode = Some(mode);
        self
    }

    /// Validate and build. When the API key store has a file and a tokio runtime is running, a
    /// task that reloads the file on change is spawned.
    ///
    /// # Errors
    /// Names the setting: `credentials` (no source), `dev_bypass`, `api_key_header`, `resource`,
    /// `allowed_hosts`, `mcp_path`, `authorization_servers`, `key_reload_interval`, `dpop` (DPoP
    /// on without a JWT verifier: only JWTs can be bound to a key).
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
        let fingerprinter = match self.fingerprint_key {
            Some(k) => Fingerprinter::new(k.expose().as_bytes()),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    ConfigError::new("fingerprint_key", format!("no system randomness: {e}"))
                })?;
                Fingerprinter::new(&bytes)
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
        let dpop_mode = self.dpop_mode.unwrap_or(if self.dpop.is_some() {
            DpopMode::Allowed
        } else {
            DpopMode::Off
        });
        let dpop = match (dpop_mode, self.dpop) {
            (DpopMode::Off, _) => None,
            _ if self.jwt.is_none() => {
                return Err(ConfigError::new(
                    "dpop",
                    "DPoP binds JWTs to a key: configure a JWT verifier too",
                )
                .with_value(dpop_mode.as_str()));
            }
            (mode, verifier) => {
                let verifier = match verifier {
                    Some(v) => v,
                    None => DpopVerifier::builder().build()?,
                };
                Some(dpop::DpopSettings {
                    algs: verifier.algs_value(),
                    verifier,
                    mode,
                    bearer_allowed: mode != DpopMode::Required || self.api_keys.is_some(),
                })
            }
        };
        let scopes_supported = self.scopes_supported.unwrap_or_else(|| {
            self.policy
                .all_scopes()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        Ok(AuthLayer {
            shared: Some(Arc::new(Shared {
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
                fingerprinter,
                dpop,
            })),
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

#[cfg(test)]
mod tests;
