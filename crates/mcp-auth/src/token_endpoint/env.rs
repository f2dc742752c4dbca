//! Configuration from the environment: [`TokenEndpointLayer::builder_from_env`].

use mcp_security_core::config::{ConfigError, Env, Secret};

use super::builder::Names;
use super::{DEFAULT_TTL, TokenEndpointLayer, TokenEndpointLayerBuilder};

impl TokenEndpointLayer {
    /// A builder filled from the environment (prefix `MCP` gives `MCP_TOKEN_ENDPOINT` …), or
    /// `None` when `TOKEN_ENDPOINT` is not true (the other variables are then not read):
    ///
    /// - `TOKEN_ENDPOINT`: `true` turns the endpoint on (default `false`);
    /// - `TOKEN_ISSUER`: the issuer (default: the resource URL's origin);
    /// - `TOKEN_TTL`: the token lifetime (default `15m`, at most `1h`, and not above
    ///   `JWT_MAX_LIFETIME` when that is set);
    /// - `TOKEN_SIGNING_KEY_FILE`: an Ed25519 or P-256 (ES256) private key, PKCS#8 PEM, whose
    ///   public half is published at `/.well-known/jwks.json`; without it tokens are HS256 with
    ///   the first secret of `JWT_SECRET` / `JWT_SECRET_FILE`;
    /// - `TOKEN_API_KEY_LOGIN`: also answer `POST /auth/api-key-login` (default `false`);
    /// - `RESOURCE_URL` (else the first http(s) entry of `JWT_AUDIENCE`): the tokens' audience;
    /// - `JWT_MAX_LIFETIME`: the verifiers' longest accepted lifetime, if set.
    ///
    /// The API key store is not read here: pass the [`AuthLayer`](crate::AuthLayer)'s with
    /// [`api_keys`](TokenEndpointLayerBuilder::api_keys) before building. Errors from the built
    /// settings name these variables.
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn builder_from_env(env: &Env) -> Result<Option<TokenEndpointLayerBuilder>, ConfigError> {
        if !env.bool("TOKEN_ENDPOINT", false)? {
            return Ok(None);
        }
        let mut b = TokenEndpointLayer::builder();
        b.names = Names {
            api_keys: env.var_name("API_KEYS_FILE"),
            resource: env.var_name("RESOURCE_URL"),
            issuer: env.var_name("TOKEN_ISSUER"),
            hs256_secret: env.var_name("JWT_SECRET"),
            signing_key: env.var_name("TOKEN_SIGNING_KEY_FILE"),
            ttl: env.var_name("TOKEN_TTL"),
            max_token_lifetime: env.var_name("JWT_MAX_LIFETIME"),
        };
        if let Some(issuer) = env.string("TOKEN_ISSUER")? {
            b = b.issuer(issuer);
        }
        b = b.ttl(env.duration("TOKEN_TTL", DEFAULT_TTL)?);
        if env.string("JWT_MAX_LIFETIME")?.is_some() {
            b = b.max_token_lifetime(env.duration("JWT_MAX_LIFETIME", DEFAULT_TTL)?);
        }
        b = b.api_key_login(env.bool("TOKEN_API_KEY_LOGIN", false)?);
        match env.string("TOKEN_SIGNING_KEY_FILE")? {
            Some(path) => b = b.signing_key_file(path),
            None => {
                if let Some(secrets) = env.secret("JWT_SECRET")? {
                    let first = secrets
                        .expose()
                        .split(',')
                        .map(str::trim)
                        .find(|s| !s.is_empty())
                        .unwrap_or("");
                    b = b.hs256_secret(Secret::new(first));
                }
            }
        }
        let resource = match env.string("RESOURCE_URL")? {
            Some(url) => Some(url),
            None => env.list("JWT_AUDIENCE")?.and_then(|list| {
                list.into_iter()
                    .find(|a| mcp_security_core::url::ResourceUrl::is_valid(a))
            }),
        };
        if let Some(url) = resource {
            b = b.resource(url);
        }
        Ok(Some(b))
    }
}
