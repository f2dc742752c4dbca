//! The checks [`build`](super::SecurityConfigBuilder::build) runs over the settings.

use super::*;

pub(super) fn validate(s: &Settings) -> Result<(), ConfigError> {
    let at_least_one = |name: &str, value: u64| {
        if value == 0 {
            Err(ConfigError::new(s.var(name), "must be at least 1").with_value("0"))
        } else {
            Ok(())
        }
    };
    // mcp-ratelimit checks its own settings, naming the variables with this prefix.
    s.rate_limit.clone().prefix(&s.prefix).check()?;
    at_least_one("MAX_BODY_BYTES", s.max_body_bytes as u64)?;
    at_least_one("MAX_LIST_BYTES", s.max_list_bytes as u64)?;
    at_least_one("RESULT_GUARD_MAX_BYTES", s.max_result_bytes as u64)?;
    // Compiled here so a bad expression fails the build (and `mcp-security check`), naming
    // the rule; the stack compiles them again for its guard.
    mcp_security_guard::BlockedPatterns::new(s.blocked_patterns.iter().cloned())?;
    if let Some(versions) = &s.protocol_versions {
        if versions.is_empty() {
            return Err(ConfigError::new(
                s.var("PROTOCOL_VERSIONS"),
                "must list at least one protocol version",
            ));
        }
        if let Some(bad) = versions
            .iter()
            .find(|v| !mcp_security_core::mcp_headers::is_version_shaped(v))
        {
            return Err(ConfigError::new(
                s.var("PROTOCOL_VERSIONS"),
                "each protocol version must look like YYYY-MM-DD",
            )
            .with_value(bad.clone()));
        }
    }
    at_least_one(
        "SESSION_MAX_PER_PRINCIPAL",
        s.session_max_per_principal as u64,
    )?;
    if s.session_idle_timeout.is_zero() {
        return Err(
            ConfigError::new(s.var("SESSION_IDLE_TIMEOUT"), "must be longer than zero")
                .with_value("0"),
        );
    }
    at_least_one("MAX_CONCURRENCY", s.max_concurrency as u64)?;
    if s.request_timeout.is_zero() {
        return Err(
            ConfigError::new(s.var("REQUEST_TIMEOUT"), "must be longer than zero").with_value("0"),
        );
    }
    let path_ok = |p: &str| p.starts_with('/') && (p.len() == 1 || !p.ends_with('/'));
    if !path_ok(&s.mcp_path) {
        return Err(
            ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                .with_value(&s.mcp_path),
        );
    }
    Ok(())
}

impl Settings {
    /// Whether asymmetric JWTs from a JWKS are configured: `JWKS_URL`, or `JWT_ISSUER` with
    /// neither a secret nor `JWKS_URL` (discovery).
    pub(crate) fn jwks_configured(&self) -> bool {
        self.jwks_url.is_some() || (self.jwt_issuer.is_some() && self.jwt_secret.is_none())
    }

    /// The JWT verifier these settings describe (HS256 secrets, an issuer's JWKS, or both), or
    /// `None` without either. Built by mcp-auth's own environment reader, so code, environment and
    /// TOML settings follow exactly the same rules; errors name the prefixed variables. A JWKS is
    /// fetched in the background, not here (see `mcp_auth::jwks`).
    ///
    /// # Errors
    /// As `mcp_auth::layer::AuthLayer::jwt_from_env`: an invalid secret, URL, issuer, audience or
    /// algorithm list, or a JWKS without the `jwks` feature.
    #[cfg(all(test, feature = "jwks"))]
    pub(crate) fn jwt_verifier(&self) -> Result<Option<mcp_auth::JwtVerifier>, ConfigError> {
        self.jwt_verifier_trusting(None)
    }

    /// `JWT_CACHE_SIZE`, `JWT_CACHE_TTL`, `JWT_SCOPE_CLAIMS` and `JWT_MAX_LIFETIME` as the
    /// variables mcp-auth's reader takes (only those that are set).
    pub(crate) fn jwt_extra_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(size) = self.jwt_cache_size {
            pairs.push((self.var("JWT_CACHE_SIZE"), size.to_string()));
        }
        if let Some(ttl) = self.jwt_cache_ttl {
            pairs.push((self.var("JWT_CACHE_TTL"), format!("{}ms", ttl.as_millis())));
        }
        if let Some(claims) = &self.jwt_scope_claims {
            pairs.push((self.var("JWT_SCOPE_CLAIMS"), claims.join(",")));
        }
        if let Some(max) = self.jwt_max_lifetime {
            let value = max.map_or_else(|| "off".to_owned(), |d| format!("{}ms", d.as_millis()));
            pairs.push((self.var("JWT_MAX_LIFETIME"), value));
        }
        pairs
    }

    /// [`jwt_verifier`](Self::jwt_verifier), completed so it also accepts the tokens of the
    /// built-in token endpoint (`trust`): its audience where `JWT_AUDIENCE` leaves it open, and
    /// its public key and issuer when it signs asymmetrically.
    pub(crate) fn jwt_verifier_trusting(
        &self,
        trust: Option<&crate::tokens::TokenTrust<'_>>,
    ) -> Result<Option<mcp_auth::JwtVerifier>, ConfigError> {
        if let Some(trust) = trust
            && let Some((jwks, alg)) = trust.jwks
        {
            return crate::tokens::verifier_with_jwks(self, trust, jwks, alg).map(Some);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(secret) = &self.jwt_secret {
            pairs.push((
                self.var("JWT_SECRET"),
                secret.require()?.expose().to_owned(),
            ));
        }
        if let Some(url) = &self.jwks_url {
            pairs.push((self.var("JWKS_URL"), url.clone()));
        }
        // HS256: the secret is what the endpoint's tokens are trusted by; requiring its `iss`
        // too would refuse tokens minted elsewhere with the same secret (`mcp-security token`).
        if let Some(issuer) = &self.jwt_issuer {
            pairs.push((self.var("JWT_ISSUER"), issuer.clone()));
        }
        let trusted_audience = trust.and_then(|t| t.audience);
        if !self.jwt_audiences.is_empty() {
            pairs.push((self.var("JWT_AUDIENCE"), self.jwt_audiences.join(",")));
        } else if let Some(audience) = trusted_audience {
            pairs.push((self.var("JWT_AUDIENCE"), audience.to_owned()));
        }
        if let Some(algorithms) = &self.jwt_algorithms {
            pairs.push((self.var("JWT_ALGORITHMS"), algorithms.join(",")));
        }
        if let Some(leeway) = self.jwt_leeway {
            pairs.push((self.var("JWT_LEEWAY"), format!("{}ms", leeway.as_millis())));
        }
        pairs.extend(self.jwt_extra_pairs());
        let env = Env::from_pairs(&self.prefix, pairs);
        let verifier = mcp_auth::AuthLayer::jwt_from_env(&env);
        match (&self.jwt_secret, verifier) {
            // A secret given as a file is named by its own variable.
            (Some(secret), Err(e)) if e.setting() == self.var("JWT_SECRET") => {
                Err(e.renamed(secret.setting.clone()))
            }
            (_, result) => result,
        }
    }
}

/// `url` without the `user:password@` part, for reports.
pub(super) fn without_userinfo(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[not a URL]".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}
