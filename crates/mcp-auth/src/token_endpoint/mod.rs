//! [`TokenEndpointLayer`]: a small OAuth 2.1 token endpoint that exchanges an API key for a
//! short-lived JWT, so MCP clients configured with a client id and secret (the MCP SDKs'
//! client-credentials providers) work against the server alone, without an identity provider.
//!
//! The key stays on the client's disk and the wire carries tokens that expire in minutes. The
//! layer sits in front of [`AuthLayer`](crate::AuthLayer), which then verifies the tokens it
//! minted like any other JWT (HS256 with the same secret, or the asymmetric key's JWK Set).
//!
//! | request | answer |
//! |---|---|
//! | `POST /oauth/token`, `grant_type=client_credentials`, client authenticated with `client_secret_basic` or `client_secret_post` | `200` RFC 6749 §5.1 JSON: `access_token`, `token_type: "Bearer"`, `expires_in`, `scope` |
//! | `POST /auth/api-key-login` with `{"api_key": "…"}` (opt-in, [`api_key_login`](TokenEndpointLayerBuilder::api_key_login)) | the same token |
//! | `GET /.well-known/oauth-authorization-server` (and its RFC 8414 form suffixed with the issuer's path) | RFC 8414 metadata |
//! | `GET /.well-known/jwks.json` when signing with an Ed25519 or ES256 key | the public key as a JWK Set (HS256 tokens publish none) |
//! | any other path | passed to the inner service untouched |
//!
//! # Clients
//!
//! The `client_id` is the API key's name (its principal id) and the `client_secret` is the key
//! itself, verified through the same [`ApiKeyStore`] as the [`AuthLayer`](crate::AuthLayer)
//! uses: in constant time, by the presented key, and then the key's name must equal the
//! `client_id`. An unknown `client_id` costs exactly what a wrong secret costs (one store
//! lookup), and both get the same answer. A disabled, expired or deleted key (after a key-file
//! reload) mints no token from the next request on; **tokens already issued stay valid until
//! their `exp`** (at most the configured TTL), so keep the TTL short.
//!
//! With `client_secret_basic`, RFC 6749 §2.3.1 has the id and secret form-encoded before the
//! Basic encoding; clients that send them unencoded work too, because a `+` that would put a
//! space into a secret (never valid in an API key) is read as a literal `+`.
//!
//! # Tokens
//!
//! `iss` (the [issuer](TokenEndpointLayerBuilder::issuer), by default the resource URL's
//! origin), `sub` and `client_id` (the key's name), `aud` (the resource URL; a `resource`
//! parameter, RFC 8707, must name it), `scope` (the requested scopes, each covered by the key's
//! scopes; by default all of the key's scopes), `iat`, `exp` (`iat` + the
//! [TTL](TokenEndpointLayerBuilder::ttl), default 15 minutes, at most one hour) and a random
//! `jti`. The JOSE `typ` is `JWT`.
//!
//! # Refusals
//!
//! Every refusal is an RFC 6749 §5.2 JSON body `{"error": …, "error_description": …}` with
//! `Cache-Control: no-store` and `Pragma: no-cache`, like the tokens themselves:
//!
//! | situation | status | `error` |
//! |---|---|---|
//! | no client authentication, a wrong secret, an unknown, disabled or expired key, a malformed `Authorization` | 401, `WWW-Authenticate: Basic realm="…"` | `invalid_client` |
//! | a missing `grant_type`, a repeated parameter, a body that is not a form, two authentication methods | 400 | `invalid_request` |
//! | a `grant_type` other than `client_credentials` | 400 | `unsupported_grant_type` |
//! | a scope the key does not cover, or a malformed scope | 400 | `invalid_scope` |
//! | a `resource` other than this server's | 400 | `invalid_target` |
//! | a body over [`max_body_bytes`](TokenEndpointLayerBuilder::max_body_bytes) (8 KiB) | 413 | `invalid_request` |
//! | a method other than `POST` | 405, `Allow: POST` | `invalid_request` |
//!
//! # Audit
//!
//! Each answer carries in its extensions what the [`AuthLayer`](crate::AuthLayer)'s answers
//! carry, so the audit layer records it and its detectors count it the same way:
//! [`AuthOutcome::Authenticated`](mcp_security_core::AuthOutcome) with the key's principal for an issued
//! token; [`AuthOutcome::Rejected`](mcp_security_core::AuthOutcome) with the
//! [`AuthFailure`](mcp_security_core::AuthFailure) (`unknown_key`, `disabled_key`, `expired_key`,
//! `missing_credential`, `malformed_credential`, `multiple_credentials`) and a keyed fingerprint
//! of the presented secret for a failed client authentication, which the ban detector counts
//! like a bad bearer credential; `insufficient_scope` with the principal for a scope refusal; and
//! a [`Rejection`](mcp_security_core::Rejection) with the `error` code and an internal detail for every
//! refusal. Neither the secret nor the token is ever put into an extension, a log line or an
//! error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_security_core::clock::Clock;
use mcp_security_core::credential::Fingerprinter;

use crate::api_key::ApiKeyStore;

mod builder;
mod env;
mod error;
mod issue;
mod metadata;
mod request;
mod service;
mod signing;

pub use builder::TokenEndpointLayerBuilder;
pub use service::{ResponseFuture, TokenEndpoint};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";

/// The compatibility login's path (off by default).
pub const API_KEY_LOGIN_PATH: &str = "/auth/api-key-login";

/// The authorization endpoint named in the metadata (some clients require one). It answers
/// every request with `unsupported_response_type`: this server has no interactive logins.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// The well-known path of RFC 8414 authorization-server metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The path of the JWK Set, served when tokens are signed with an asymmetric key.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The default token lifetime: 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest token lifetime accepted: one hour.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);

/// The default bound on a request body: 8 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024;

/// Which of the layer's paths a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Token,
    ApiKeyLogin,
    Authorize,
    Metadata,
    Jwks,
}

/// The validated settings every clone of the layer shares.
struct Shared {
    store: ApiKeyStore,
    signer: signing::Signer,
    issuer: String,
    /// The issuer without a trailing slash: endpoint URLs are built on it.
    base: String,
    /// The issuer's path without a trailing slash (`""` for an origin): the RFC 8414 suffix.
    issuer_path: String,
    resource: String,
    ttl: Duration,
    api_key_login: bool,
    max_body_bytes: usize,
    realm: String,
    clock: Arc<dyn Clock>,
    fingerprinter: Fingerprinter,
    /// The metadata document, rendered once.
    metadata: Bytes,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointLayer")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("algorithm", &self.signer.algorithm())
            .field("ttl", &self.ttl)
            .field("api_key_login", &self.api_key_login)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn route(&self, path: &str) -> Option<Route> {
        match path {
            TOKEN_PATH => Some(Route::Token),
            API_KEY_LOGIN_PATH if self.api_key_login => Some(Route::ApiKeyLogin),
            AUTHORIZE_PATH => Some(Route::Authorize),
            JWKS_PATH if self.signer.jwks().is_some() => Some(Route::Jwks),
            _ => match path.strip_prefix(METADATA_PATH) {
                Some("") => Some(Route::Metadata),
                Some(rest) if !self.issuer_path.is_empty() && rest == self.issuer_path => {
                    Some(Route::Metadata)
                }
                _ => None,
            },
        }
    }
}

/// Exchanges API keys for short-lived JWTs at `POST /oauth/token` and publishes RFC 8414
/// metadata; see the [module docs](self). Cheap to clone.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mcp_auth::api_key::ApiKeyStore;
/// use mcp_auth::jwt::JwtVerifier;
/// use mcp_auth::layer::AuthLayer;
/// use mcp_auth::token_endpoint::TokenEndpointLayer;
/// use mcp_security_core::{Principal, Scopes, config::Secret};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let key = "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
/// let secret = Secret::new("an-example-secret-of-at-least-32-bytes");
/// let resource = "https://mcp.example.com/mcp";
/// let store = ApiKeyStore::builder().key("ci-bot", key, Scopes::new(["notes:read"])).build()?;
///
/// // The token endpoint in front of the AuthLayer, which verifies the tokens it mints.
/// let tokens = TokenEndpointLayer::builder()
///     .api_keys(store.clone())
///     .resource(resource)
///     .hs256_secret(secret.clone())
///     .build()?;
/// let auth = AuthLayer::builder()
///     .api_keys(store)
///     .jwt(JwtVerifier::builder().secret(secret).audience(resource).build()?)
///     .build()?;
/// let svc = ServiceBuilder::new().layer(tokens).layer(auth).service_fn(|req: Request<Full<Bytes>>| async move {
///     let who = req.extensions().get::<Principal>().map(|p| p.id().to_owned());
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
/// });
///
/// // client_credentials with client_secret_post: the key's name and the key.
/// let form = format!("grant_type=client_credentials&client_id=ci-bot&client_secret={key}");
/// let res = svc.clone().oneshot(
///     Request::post("/oauth/token")
///         .header("content-type", "application/x-www-form-urlencoded")
///         .body(Full::new(Bytes::from(form)))?,
/// ).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// let body: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
/// assert_eq!(body["token_type"], "Bearer");
/// assert_eq!(body["expires_in"], 900);
/// assert_eq!(body["scope"], "notes:read");
///
/// // The token authenticates as the key's name.
/// let token = body["access_token"].as_str().unwrap_or_default();
/// let res = svc.oneshot(
///     Request::get("/api").header("authorization", format!("Bearer {token}")).body(Full::default())?,
/// ).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "ci-bot");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenEndpointLayer {
    /// `None` for [`TokenEndpointLayer::disabled`].
    shared: Option<Arc<Shared>>,
}

impl TokenEndpointLayer {
    /// A builder: an [`api_keys`](TokenEndpointLayerBuilder::api_keys) store, a
    /// [`resource`](TokenEndpointLayerBuilder::resource) URL and a signing key are required.
    pub fn builder() -> TokenEndpointLayerBuilder {
        TokenEndpointLayerBuilder::default()
    }

    /// A layer that answers nothing: every request goes to the inner service and every response
    /// is wrapped in the same [`GuardBody`](mcp_security_core::GuardBody), so a stack has one type
    /// whether the endpoint is on or off.
    pub fn disabled() -> Self {
        TokenEndpointLayer { shared: None }
    }

    /// Whether the endpoint is on (`false` only for [`TokenEndpointLayer::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// The issuer (`iss` of every token, `issuer` of the metadata): list it in the protected
    /// resource metadata's `authorization_servers`, and require it in the verifier if it
    /// requires an issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.shared.as_deref().map(|s| s.issuer.as_str())
    }

    /// The resource URL: the `aud` of every token. The verifier must accept it as an audience.
    pub fn resource(&self) -> Option<&str> {
        self.shared.as_deref().map(|s| s.resource.as_str())
    }

    /// The token endpoint's absolute URL, as the metadata advertises it.
    pub fn token_endpoint(&self) -> Option<String> {
        self.shared
            .as_deref()
            .map(|s| format!("{}{TOKEN_PATH}", s.base))
    }

    /// The URL of the RFC 8414 metadata document (with the issuer's path as suffix, if any).
    pub fn metadata_url(&self) -> Option<String> {
        self.shared.as_deref().map(|s| {
            let origin = s
                .base
                .strip_suffix(s.issuer_path.as_str())
                .unwrap_or(&s.base);
            format!("{origin}{METADATA_PATH}{}", s.issuer_path)
        })
    }

    /// The JWK Set's absolute URL, when tokens are signed with an asymmetric key.
    pub fn jwks_url(&self) -> Option<String> {
        let s = self.shared.as_deref()?;
        s.signer.jwks()?;
        Some(format!("{}{JWKS_PATH}", s.base))
    }

    /// The JWK Set document (public key only) when tokens are signed with an asymmetric key:
    /// hand it to `JwksKeySourceBuilder::json` (feature `jwks`) so the [`AuthLayer`](crate::AuthLayer)
    /// verifies the tokens without fetching its own server. `None` for HS256.
    pub fn jwks(&self) -> Option<&str> {
        self.shared.as_deref()?.signer.jwks()
    }

    /// The JOSE algorithm tokens are signed with: `HS256`, `EdDSA` or `ES256`.
    pub fn algorithm(&self) -> Option<&'static str> {
        self.shared.as_deref().map(|s| s.signer.algorithm())
    }

    /// The lifetime of the tokens issued.
    pub fn ttl(&self) -> Option<Duration> {
        self.shared.as_deref().map(|s| s.ttl)
    }

    /// The paths this layer answers itself (the metadata's suffixed form and the JWK Set only
    /// when they apply); every other path goes to the inner service.
    pub fn paths(&self) -> Vec<String> {
        let Some(s) = self.shared.as_deref() else {
            return Vec::new();
        };
        let mut paths = vec![
            TOKEN_PATH.to_owned(),
            AUTHORIZE_PATH.to_owned(),
            METADATA_PATH.to_owned(),
        ];
        if !s.issuer_path.is_empty() {
            paths.push(format!("{METADATA_PATH}{}", s.issuer_path));
        }
        if s.signer.jwks().is_some() {
            paths.push(JWKS_PATH.to_owned());
        }
        if s.api_key_login {
            paths.push(API_KEY_LOGIN_PATH.to_owned());
        }
        paths
    }

    /// A one-line summary for start-up logs (never a secret); `off` when disabled.
    pub fn summary(&self) -> String {
        let Some(s) = self.shared.as_deref() else {
            return "off".to_owned();
        };
        format!(
            "issuer: {}, audience: {}, algorithm: {}, ttl: {}s, api-key login: {}",
            s.issuer,
            s.resource,
            s.signer.algorithm(),
            s.ttl.as_secs(),
            if s.api_key_login { "on" } else { "off" },
        )
    }
}

#[cfg(test)]
mod tests;
