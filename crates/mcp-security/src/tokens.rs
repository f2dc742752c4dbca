//! The built-in token endpoint in the stack (`TOKEN_ENDPOINT`): its settings, the layer, and the
//! rules that keep the stack's JWT verifier and OAuth metadata in agreement with it, so every
//! token the endpoint issues is one the stack accepts.

use std::path::PathBuf;
use std::time::Duration;

use mcp_auth::ApiKeyStore;
use mcp_auth::token_endpoint::{DEFAULT_TTL, TokenEndpointLayer};
use mcp_security_core::config::{ConfigError, Env};

use crate::config::Settings;

/// The token endpoint's settings (`TOKEN_*`).
#[derive(Debug, Clone)]
pub(crate) struct TokenSettings {
    pub(crate) enabled: bool,
    pub(crate) issuer: Option<String>,
    pub(crate) ttl: Duration,
    pub(crate) signing_key_file: Option<PathBuf>,
    pub(crate) api_key_login: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            enabled: false,
            issuer: None,
            ttl: DEFAULT_TTL,
            signing_key_file: None,
            api_key_login: false,
        }
    }
}

impl TokenSettings {
    /// Read `TOKEN_ENDPOINT`, `TOKEN_ISSUER`, `TOKEN_TTL`, `TOKEN_SIGNING_KEY_FILE` and
    /// `TOKEN_API_KEY_LOGIN`; unset variables leave the values alone.
    pub(crate) fn read_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        self.enabled = env.bool("TOKEN_ENDPOINT", self.enabled)?;
        if let Some(issuer) = env.string("TOKEN_ISSUER")? {
            self.issuer = Some(issuer);
        }
        self.ttl = env.duration("TOKEN_TTL", self.ttl)?;
        if let Some(path) = env.string("TOKEN_SIGNING_KEY_FILE")? {
            self.signing_key_file = Some(path.into());
        }
        self.api_key_login = env.bool("TOKEN_API_KEY_LOGIN", self.api_key_login)?;
        Ok(())
    }
}

/// The token endpoint the settings describe ([`TokenEndpointLayer::disabled`] when off), over the
/// stack's API key store. Errors name the prefixed variables.
pub(crate) fn build_token_endpoint(
    s: &Settings,
    store: Option<&ApiKeyStore>,
) -> Result<TokenEndpointLayer, ConfigError> {
    let t = &s.token;
    if !t.enabled {
        return Ok(TokenEndpointLayer::disabled());
    }
    let Some(store) = store else {
        return Err(ConfigError::new(
            s.var("TOKEN_ENDPOINT"),
            format!(
                "the token endpoint exchanges API keys for tokens, and no key is configured: set \
                 {}, {} or {}",
                s.var("API_KEY"),
                s.var("API_KEY_FILE"),
                s.var("API_KEYS_FILE")
            ),
        ));
    };
    // mcp-auth's own environment reader, so errors name the same variables in code and env.
    let mut pairs = vec![
        (s.var("TOKEN_ENDPOINT"), "true".to_owned()),
        (s.var("TOKEN_TTL"), format!("{}ms", t.ttl.as_millis())),
        (s.var("TOKEN_API_KEY_LOGIN"), t.api_key_login.to_string()),
    ];
    if let Some(issuer) = &t.issuer {
        pairs.push((s.var("TOKEN_ISSUER"), issuer.clone()));
    }
    if let Some(path) = &t.signing_key_file {
        pairs.push((
            s.var("TOKEN_SIGNING_KEY_FILE"),
            path.to_string_lossy().into_owned(),
        ));
    }
    if let Some(url) = &s.resource_url {
        pairs.push((s.var("RESOURCE_URL"), url.clone()));
    }
    if !s.jwt_audiences.is_empty() {
        pairs.push((s.var("JWT_AUDIENCE"), s.jwt_audiences.join(",")));
    }
    if let Some(Some(max)) = s.jwt_max_lifetime {
        pairs.push((s.var("JWT_MAX_LIFETIME"), format!("{}ms", max.as_millis())));
    }
    if let Some(secret) = &s.jwt_secret
        && t.signing_key_file.is_none()
    {
        pairs.push((s.var("JWT_SECRET"), secret.require()?.expose().to_owned()));
    }
    let env = Env::from_pairs(&s.prefix, pairs);
    let Some(builder) = TokenEndpointLayer::builder_from_env(&env)? else {
        return Ok(TokenEndpointLayer::disabled());
    };
    let layer = builder.api_keys(store.clone()).build();
    match (&s.jwt_secret, layer) {
        // A secret given as a file is named by its own variable.
        (Some(secret), Err(e)) if e.setting() == s.var("JWT_SECRET") => {
            Err(e.renamed(secret.setting.clone()))
        }
        (_, result) => result,
    }
}

/// What the stack's JWT verifier must accept for the endpoint's tokens, checked against the
/// `JWT_*` settings: `Ok(None)` when the verifier the settings describe already accepts them
/// (or the endpoint is off); `Ok(Some(tokens))` when the stack must verify them itself.
pub(crate) struct TokenTrust<'a> {
    /// The audience the verifier must require (set when `JWT_AUDIENCE` is unset).
    pub(crate) audience: Option<&'a str>,
    /// The endpoint's public JWK Set and algorithm, when it signs with an asymmetric key.
    pub(crate) jwks: Option<(&'a str, &'static str)>,
}

/// How the verifier must be completed to accept `tokens`' tokens, or an error naming the setting
/// that would make the stack refuse them.
pub(crate) fn token_trust<'a>(
    s: &Settings,
    tokens: &'a TokenEndpointLayer,
) -> Result<Option<TokenTrust<'a>>, ConfigError> {
    let (Some(issuer), Some(resource), Some(alg)) =
        (tokens.issuer(), tokens.resource(), tokens.algorithm())
    else {
        return Ok(None);
    };
    if matches!(s.dpop, Some((mcp_auth::dpop::DpopMode::Required, _))) {
        return Err(ConfigError::new(
            s.var("TOKEN_ENDPOINT"),
            format!(
                "the endpoint issues bearer tokens, and {}=required refuses every token that is \
                 not bound to a key: set {}=allowed, or turn the endpoint off",
                s.var("DPOP"),
                s.var("DPOP")
            ),
        ));
    }
    let jwks = tokens.jwks().map(|j| (j, alg));
    if jwks.is_some() && s.jwks_configured() {
        return Err(ConfigError::new(
            s.var("TOKEN_SIGNING_KEY_FILE"),
            format!(
                "cannot be used with an identity provider's JWK Set ({} / {}): the stack \
                 verifies one set of asymmetric keys. Sign the endpoint's tokens with {} (HS256) \
                 instead, or let the identity provider issue them",
                s.var("JWKS_URL"),
                s.var("JWT_ISSUER"),
                s.var("JWT_SECRET")
            ),
        ));
    }
    // Exactly as the verifier compares `iss`: a trailing slash is another issuer.
    if let Some(required) = &s.jwt_issuer
        && required != issuer
    {
        return Err(ConfigError::new(
            s.var("TOKEN_ISSUER"),
            format!(
                "the endpoint would issue tokens from `{issuer}`, but {} requires `{required}`: \
                 set {} to the same value, or unset {}",
                s.var("JWT_ISSUER"),
                s.var("TOKEN_ISSUER"),
                s.var("JWT_ISSUER")
            ),
        ));
    }
    let same = |a: &str| a.trim_end_matches('/') == resource.trim_end_matches('/');
    if !s.jwt_audiences.is_empty() && !s.jwt_audiences.iter().any(|a| same(a)) {
        return Err(ConfigError::new(
            s.var("JWT_AUDIENCE"),
            format!(
                "does not list the resource URL `{resource}`, the audience of the tokens the \
                 endpoint issues: add it"
            ),
        ));
    }
    if let Some((_, alg)) = jwks
        && let Some(list) = &s.jwt_algorithms
        && !list.iter().any(|a| a == alg)
    {
        return Err(ConfigError::new(
            s.var("JWT_ALGORITHMS"),
            format!("does not list {alg}, the algorithm the token endpoint signs with"),
        ));
    }
    Ok(Some(TokenTrust {
        audience: s.jwt_audiences.is_empty().then_some(resource),
        jwks,
    }))
}

/// The verifier for a token endpoint that signs with an asymmetric key: its public JWK Set
/// (nothing is fetched) and audience, plus the HS256 secrets and `JWT_*` settings that apply.
/// Like HS256 tokens, the endpoint's are trusted by their key: no `iss` is required unless
/// `JWT_ISSUER` says so (then it is the endpoint's, checked above), so HS256 tokens minted
/// elsewhere (`mcp-security token`) stay accepted beside them.
pub(crate) fn verifier_with_jwks(
    s: &Settings,
    trust: &TokenTrust<'_>,
    jwks: &str,
    alg: &str,
) -> Result<mcp_auth::JwtVerifier, ConfigError> {
    #[cfg(feature = "jwks")]
    {
        use mcp_auth::jwks::JwksKeySource;
        use mcp_security_core::config::Secret;

        let mut b = mcp_auth::JwtVerifier::builder();
        if let Some(secret) = &s.jwt_secret {
            let secrets = secret.require()?.expose().to_owned();
            for part in secrets.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                b = b.secret(Secret::new(part));
            }
        }
        for audience in s
            .jwt_audiences
            .iter()
            .map(String::as_str)
            .chain(trust.audience)
        {
            b = b.audience(audience);
        }
        if let Some(issuer) = &s.jwt_issuer {
            b = b.issuer(issuer.clone());
        }
        if let Some(leeway) = s.jwt_leeway {
            b = b.leeway(leeway);
        }
        if let Some(size) = s.jwt_cache_size {
            b = b.cache_size(size);
        }
        if let Some(ttl) = s.jwt_cache_ttl {
            b = b.cache_ttl(ttl);
        }
        if let Some(claims) = &s.jwt_scope_claims {
            b = b.scope_claims(claims.iter().cloned());
        }
        if let Some(max) = s.jwt_max_lifetime {
            b = b.max_lifetime(max);
        }
        let source = JwksKeySource::builder()
            .json(jwks)
            .algorithms([alg])
            .build()
            .map_err(|e| e.renamed(s.var("TOKEN_SIGNING_KEY_FILE")))?;
        b.jwks(source).build().map_err(|e| {
            let setting = match (s.jwt_secret.as_ref(), e.setting()) {
                (Some(secret), "jwt_secret") => secret.setting.clone(),
                // jwt_cache_size, jwt_max_lifetime, …: the variable of the same name.
                (_, name) if name.starts_with("jwt_") => s.var(&name.to_ascii_uppercase()),
                _ => s.var("TOKEN_SIGNING_KEY_FILE"),
            };
            e.renamed(setting)
        })
    }
    #[cfg(not(feature = "jwks"))]
    {
        let _ = (trust, jwks, alg);
        Err(ConfigError::new(
            s.var("TOKEN_SIGNING_KEY_FILE"),
            "verifying the endpoint's Ed25519 / ES256 tokens needs the `jwks` cargo feature of \
             mcp-security (on by default); sign them with JWT_SECRET (HS256) instead",
        ))
    }
}

/// The RFC 9728 `authorization_servers`: `AUTHORIZATION_SERVERS` (else the JWKS issuer, as the
/// auth layer would list it), and the token endpoint's issuer when it is on.
pub(crate) fn authorization_servers(s: &Settings, tokens: &TokenEndpointLayer) -> Vec<String> {
    let mut servers = s.authorization_servers.clone();
    let Some(issuer) = tokens.issuer() else {
        return servers;
    };
    if servers.is_empty()
        && s.jwks_configured()
        && let Some(jwks_issuer) = &s.jwt_issuer
    {
        servers.push(jwks_issuer.clone());
    }
    if !servers
        .iter()
        .any(|a| a.trim_end_matches('/') == issuer.trim_end_matches('/'))
    {
        servers.push(issuer.to_owned());
    }
    servers
}
