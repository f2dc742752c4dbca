//! [`SecurityConfigBuilder::read_env`]: the variables of the [module table](super).

use super::*;

impl SecurityConfigBuilder {
    /// Read every variable of the [module table](super) that is set, with `env`'s prefix; unset
    /// variables leave the builder's values alone. Secrets are read now (`*_FILE` files too);
    /// the TOML file named by `CONFIG_FILE` is read by [`build`](Self::build).
    ///
    /// # Errors
    /// A malformed variable, an unreadable secret file, a secret given both directly and as a
    /// file, or a variable for a feature this build leaves out (`JWKS_URL` without `jwks`,
    /// `RATE_LIMIT_REDIS_URL` without `redis`); the error names the variable and never contains
    /// a secret.
    pub fn read_env(mut self, env: &Env) -> Result<Self, ConfigError> {
        let prefix = env.var_name("");
        self.s.prefix = prefix.trim_end_matches('_').to_owned();
        let s = &mut self.s;
        if let Some(value) = env.string("ENV")? {
            let var = env.var_name("ENV");
            s.explicit_environment = Some((
                Environment::parse(&var, &value)?,
                EnvironmentSource::Variable(var),
            ));
        }
        s.require_auth = env.bool("REQUIRE_AUTH", s.require_auth)?;
        s.debug = env.bool("DEBUG", s.debug)?;
        if let Some(bind) = env.string("BIND")? {
            s.bind = Some(bind.trim().parse().map_err(|_| {
                ConfigError::new(
                    env.var_name("BIND"),
                    "expected an address such as 127.0.0.1:8080 or [::1]:8080",
                )
                .with_value(&bind)
            })?);
        } else if s.bind.is_none() {
            s.bind = DEFAULT_BIND.parse().ok();
        }
        if let Some(hosts) = env.string("ALLOWED_HOSTS")? {
            s.hosts = if hosts.trim() == "*" {
                HostSetting::Any
            } else {
                let list = env.list("ALLOWED_HOSTS")?.unwrap_or_default();
                if list.is_empty() {
                    return Err(ConfigError::new(
                        env.var_name("ALLOWED_HOSTS"),
                        "names no host (use `*` to turn the Host check off)",
                    )
                    .with_value(hosts));
                }
                HostSetting::List(list)
            };
        }
        let lenient = s.defer_unreadable;
        if let Some(key) = read_secret(env, "API_KEY", lenient)? {
            s.api_key = Some(key);
        }
        if let Some(file) = env.string("API_KEYS_FILE")? {
            s.api_keys_file = Some(file.into());
        }
        if let Some(pepper) = read_secret(env, "API_KEY_PEPPER", lenient)? {
            s.api_key_pepper = Some(pepper);
        }
        if let Some(header) = env.string("API_KEY_HEADER")? {
            s.api_key_header = Some(header.trim().to_owned());
        }
        if let Some(scope) = env.string("AUDIT_BAN_SCOPE")? {
            s.ban_scope =
                mcp_security_core::BanScope::parse(&env.var_name("AUDIT_BAN_SCOPE"), &scope)?;
        }
        s.url_auth = env.bool("URL_AUTH", s.url_auth)?;
        if let Some(secret) = read_secret(env, "JWT_SECRET", lenient)? {
            s.jwt_secret = Some(secret);
        }
        if let Some(audiences) = env.list("JWT_AUDIENCE")? {
            s.jwt_audiences = audiences;
        }
        if let Some(issuer) = env.string("JWT_ISSUER")? {
            s.jwt_issuer = Some(issuer);
        }
        if env.string("JWT_LEEWAY")?.is_some() {
            s.jwt_leeway = Some(env.duration("JWT_LEEWAY", Duration::ZERO)?);
        }
        if let Some(url) = env.string("JWKS_URL")? {
            s.jwks_url = Some(url);
        }
        if let Some(algorithms) = env.list("JWT_ALGORITHMS")? {
            s.jwt_algorithms = Some(algorithms);
        }
        if env.string("JWT_CACHE_SIZE")?.is_some() {
            s.jwt_cache_size = Some(env.usize("JWT_CACHE_SIZE", 0)?);
        }
        if env.string("JWT_CACHE_TTL")?.is_some() {
            s.jwt_cache_ttl = Some(env.duration("JWT_CACHE_TTL", Duration::ZERO)?);
        }
        if let Some(claims) = env.list("JWT_SCOPE_CLAIMS")? {
            s.jwt_scope_claims = Some(claims);
        }
        if let Some(value) = env.string("JWT_MAX_LIFETIME")? {
            s.jwt_max_lifetime = Some(if value.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                Some(env.duration("JWT_MAX_LIFETIME", Duration::ZERO)?)
            });
        }
        if let Some(url) = read_secret(env, "RATE_LIMIT_REDIS_URL", lenient)? {
            s.rate_limit_redis_fail_open = env
                .string("RATE_LIMIT_REDIS_FAILURE")?
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("open"));
            #[cfg(feature = "redis")]
            if url.value.is_ok() {
                s.rate_limit_redis = mcp_ratelimit::redis::RedisStore::from_env(env)?;
            }
            #[cfg(not(feature = "redis"))]
            return Err(ConfigError::new(
                url.setting.clone(),
                "limits shared through Redis need the `redis` cargo feature of mcp-security \
                 (on by default); unset it to limit per replica",
            ));
            #[cfg(feature = "redis")]
            {
                s.rate_limit_redis_url = Some(url);
            }
        }
        s.dev_bypass = env.bool("DEV_BYPASS", s.dev_bypass)?;
        if let Some(paths) = env.list("AUTH_EXEMPT_PATHS")? {
            s.exempt_paths = Some(paths);
        }
        if let Some(prefixes) = env.list("AUTH_DENY_PREFIXES")? {
            s.deny_prefixes.extend(prefixes);
        }
        if let Some(url) = env.string("RESOURCE_URL")? {
            s.resource_url = Some(url);
        }
        if let Some(servers) = env.list("AUTHORIZATION_SERVERS")? {
            s.authorization_servers = servers;
        }
        s.token.read_env(env)?;
        s.rotation.read_env(env)?;
        if let Some(dpop) = DpopVerifier::from_env(env)? {
            s.dpop = Some(dpop);
        }
        s.session_idle_timeout = env.duration("SESSION_IDLE_TIMEOUT", s.session_idle_timeout)?;
        s.session_max_per_principal =
            env.usize("SESSION_MAX_PER_PRINCIPAL", s.session_max_per_principal)?;
        s.session_eviction_grace =
            env.duration("SESSION_EVICTION_GRACE", s.session_eviction_grace)?;
        if let Some(origins) = env.list("CORS_ORIGINS")? {
            s.cors_origins = Some(origins);
        }
        if env.string("TRUSTED_PROXIES")?.is_some() {
            s.trusted_proxies = env.cidrs("TRUSTED_PROXIES")?;
        }
        if let Some(nets) = networks(env, "ALLOW_NETWORKS")? {
            s.allow_networks = nets;
        }
        if let Some(nets) = networks(env, "DENY_NETWORKS")? {
            s.deny_networks = nets;
        }
        s.rate_limit = s.rate_limit.clone().read_env(env)?;
        s.max_body_bytes = env.usize("MAX_BODY_BYTES", s.max_body_bytes)?;
        if let Some(versions) = env.list("PROTOCOL_VERSIONS")? {
            s.protocol_versions = Some(versions);
        }
        s.max_concurrency = env.usize("MAX_CONCURRENCY", s.max_concurrency)?;
        s.otel_spans = env.bool("OTEL_SPANS", s.otel_spans)?;
        if env.string("FILTER_LISTS")?.is_some() {
            s.filter_lists = Some(env.bool("FILTER_LISTS", true)?);
        }
        s.max_list_bytes = env.usize("MAX_LIST_BYTES", s.max_list_bytes)?;
        s.tool_errors_as_results = env.bool("TOOL_ERRORS_AS_RESULTS", s.tool_errors_as_results)?;
        if let Some(mode) = env.string("RESULT_GUARD")? {
            s.result_guard =
                mcp_security_guard::ResultGuardMode::parse(&env.var_name("RESULT_GUARD"), &mode)?;
        }
        s.max_result_bytes = env.usize("RESULT_GUARD_MAX_BYTES", s.max_result_bytes)?;
        s.validate_tool_args = env.bool("VALIDATE_TOOL_ARGS", s.validate_tool_args)?;
        if let Some(path) = env.string("TOOL_MANIFEST_FILE")? {
            let var = env.var_name("TOOL_MANIFEST_FILE");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(&var, format!("cannot be read: {e}")).with_value(&path)
            })?;
            let lock = mcp_security_guard::manifest::ToolManifest::parse(&text)
                .map_err(|e| ConfigError::new(&var, e).with_value(&path))?;
            let mode = match env.string("TOOL_MANIFEST_MODE")? {
                Some(v) => mcp_security_guard::manifest::ManifestMode::parse(
                    &env.var_name("TOOL_MANIFEST_MODE"),
                    &v,
                )?,
                None => mcp_security_guard::manifest::ManifestMode::Warn,
            };
            s.tool_manifest = Some((lock, mode));
        }
        s.blocked_patterns
            .extend(mcp_security_guard::patterns::from_env(env)?);
        s.request_timeout = env.duration("REQUEST_TIMEOUT", s.request_timeout)?;
        s.audit_enabled = env.bool("AUDIT_ENABLED", s.audit_enabled)?;
        if let Some(file) = env.string("AUDIT_LOG_FILE")? {
            s.audit_log_file = Some(file.into());
        }
        if let Some(key) = read_secret(env, "AUDIT_HMAC_KEY", lenient)? {
            s.audit_hmac_key = Some(key);
        }
        if let Some(key) = read_secret(env, "AUDIT_FINGERPRINT_KEY", lenient)? {
            s.audit_fingerprint_key = Some(key);
        }
        if let Some(files) = env.list("DATA_FILES")? {
            s.data_files.extend(files.into_iter().map(PathBuf::from));
        }
        if let Some(file) = env.string("CONFIG_FILE")? {
            s.config_file = Some((env.var_name("CONFIG_FILE"), file.into()));
        }
        s.source = Some(env.clone());
        Ok(self)
    }
}

/// A comma-separated list of client networks (see `mcp_headers::network::parse_network`);
/// `None` when unset.
fn networks(env: &Env, name: &str) -> Result<Option<Vec<IpNet>>, ConfigError> {
    let Some(entries) = env.list(name)? else {
        return Ok(None);
    };
    entries
        .iter()
        .map(|entry| {
            mcp_headers::network::parse_network(entry)
                .map_err(|why| ConfigError::new(env.var_name(name), why).with_value(entry))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Read a secret from `NAME` or `NAME_FILE`; with `lenient`, an unreadable file is recorded.
fn read_secret(env: &Env, name: &str, lenient: bool) -> Result<Option<SecretSetting>, ConfigError> {
    let file_var = env.var_name(&format!("{name}_FILE"));
    let file = env.string(&format!("{name}_FILE"))?.map(PathBuf::from);
    let setting = if file.is_some() {
        file_var.clone()
    } else {
        env.var_name(name)
    };
    match env.secret(name) {
        Ok(None) => Ok(None),
        Ok(Some(secret)) => Ok(Some(SecretSetting {
            setting,
            file,
            value: Ok(secret),
        })),
        Err(err) if lenient && err.setting() == file_var => {
            // Only a file that cannot be opened is deferred; an empty or non-UTF-8 file is
            // still an error.
            let Some(path) = file else {
                return Err(err);
            };
            match std::fs::File::open(&path) {
                Err(io) => Ok(Some(SecretSetting {
                    setting,
                    file: Some(path),
                    value: Err(io.to_string()),
                })),
                Ok(_) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}
