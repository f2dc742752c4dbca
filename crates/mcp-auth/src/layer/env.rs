//! Configuration from the environment: [`AuthLayer::builder_from_env`] and
//! [`AuthLayer::jwt_from_env`].

use mcp_security_core::Scopes;
use mcp_security_core::config::{ConfigError, Env, Secret};

use crate::api_key::ApiKeyStore;
use crate::jwt::JwtVerifier;
use crate::policy::AuthPolicy;

use super::{AuthLayer, AuthLayerBuilder};

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
    /// - `JWT_LEEWAY`: clock skew (default 30 s);
    /// - `JWT_CACHE_SIZE`: how many verified tokens are cached (default 10000; `0` turns the
    ///   cache off); `JWT_CACHE_TTL`: how long one is served from it at most (default 5m);
    /// - `JWT_SCOPE_CLAIMS`: the claims scopes are read from, comma-separated names or JSON
    ///   pointers (default `scope,scp,scopes,permissions`; e.g. `scope,scp,roles` for Entra ID,
    ///   `scope,/realm_access/roles` for Keycloak);
    /// - `JWT_MAX_LIFETIME`: the longest `exp - iat` accepted, a duration such as `1h`, or `off`
    ///   (default 24h for HS256 tokens, no limit for JWKS tokens; once set, it applies to both).
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
        jwt = jwt
            .cache_size(env.usize("JWT_CACHE_SIZE", crate::jwt::DEFAULT_CACHE_SIZE)?)
            .cache_ttl(env.duration("JWT_CACHE_TTL", crate::jwt::DEFAULT_CACHE_TTL)?);
        if let Some(claims) = env.list("JWT_SCOPE_CLAIMS")? {
            jwt = jwt.scope_claims(claims);
        }
        if let Some(value) = env.string("JWT_MAX_LIFETIME")? {
            let value = value.trim();
            let lifetime =
                if value.eq_ignore_ascii_case("off") || value.eq_ignore_ascii_case("none") {
                    None
                } else {
                    Some(
                        mcp_security_core::config::parse_duration(value).ok_or_else(|| {
                            ConfigError::new(
                                env.var_name("JWT_MAX_LIFETIME"),
                                "expected a duration such as 1h, 15m or 1d, or off for no limit",
                            )
                            .with_value(value)
                        })?,
                    )
                };
            jwt = jwt.max_lifetime(lifetime);
        }

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
            "jwt_cache_size" => rename_error(e, &env.var_name("JWT_CACHE_SIZE")),
            "jwt_cache_ttl" => rename_error(e, &env.var_name("JWT_CACHE_TTL")),
            "jwt_scope_claims" => rename_error(e, &env.var_name("JWT_SCOPE_CLAIMS")),
            "jwt_max_lifetime" => rename_error(e, &env.var_name("JWT_MAX_LIFETIME")),
            "jwt_backend" => e,
            _ => rename_error(e, &secret_var),
        })?;
        Ok(Some(verifier))
    }

    /// A builder filled from the environment (prefix `MCP` gives `MCP_API_KEY` …): `API_KEY` /
    /// `API_KEY_FILE` (one key with every scope), `API_KEYS_FILE` (hashed keys, reloaded on
    /// change), `API_KEY_PEPPER(_FILE)`, `API_KEY_HEADER`, `URL_AUTH`, `JWT_SECRET(_FILE)`
    /// (comma-separated; the first signs), `JWKS_URL`, `JWT_AUDIENCE` (comma-separated),
    /// `JWT_ISSUER`, `JWT_ALGORITHMS`, `JWT_LEEWAY`, `DEV_BYPASS`, `ENV`, `AUTH_EXEMPT_PATHS`,
    /// `AUTH_DENY_PREFIXES`, `RESOURCE_URL`, `AUTHORIZATION_SERVERS`, `DPOP`, `DPOP_NONCE`,
    /// `DPOP_NONCE_KEY(_FILE)` (see [`DpopVerifier::from_env`](crate::dpop::DpopVerifier::from_env)).
    /// Refine the builder (policy, bind address) before building.
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
        if let Some((mode, verifier)) = crate::dpop::DpopVerifier::from_env(env)? {
            b = b.dpop(verifier).dpop_mode(mode);
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
