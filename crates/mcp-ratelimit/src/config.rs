//! Configuration from the environment and from the `[rate_limit]` section of a TOML file.
//!
//! # Environment (the per-client layer)
//!
//! [`RateLimitLayer::from_env`] reads, with the [`Env`]'s prefix (`MCP_` by default in the
//! facade):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RATE_LIMIT_ENABLED` | limit at all | `true` |
//! | `RATE_LIMIT_REQUESTS` | requests per window, per client address | `100` |
//! | `RATE_LIMIT_WINDOW` | the window (`60`, `60s`, `1m`, `500ms`) | `60s` |
//! | `RATE_LIMIT_BURST` | the most requests at once | `= REQUESTS` |
//! | `RATE_LIMIT_MAX_KEYS` | the bound on tracked clients | `100000` |
//! | `TRUSTED_PROXIES` | CIDRs whose `X-Forwarded-For` is believed, for requests that carry no `ClientAddr` yet | none |
//! | `RATE_LIMIT_REDIS_URL` / `_FILE` | share the limits across replicas through Redis (`redis://`, `rediss://` for TLS, `unix://`): read by `RateLimitLayer::redis_from_env` (`redis` feature); [`RateLimitLayer::from_env`] (in memory) refuses it | — (in memory) |
//! | `RATE_LIMIT_REDIS_USERNAME` | the Redis ACL user; wins over the URL's | the URL's |
//! | `RATE_LIMIT_REDIS_PASSWORD` / `_FILE` | the Redis password; wins over the URL's, never printed | the URL's |
//! | `RATE_LIMIT_REDIS_CA_FILE` | PEM CA bundle a `rediss://` server's certificate must chain to | the bundled Mozilla roots |
//! | `RATE_LIMIT_REDIS_CLIENT_CERT_FILE`, `RATE_LIMIT_REDIS_CLIENT_KEY_FILE` | client certificate and key for mutual TLS | none |
//! | `RATE_LIMIT_REDIS_PREFIX` | the Redis key prefix | `mcp:rl:` |
//! | `RATE_LIMIT_REDIS_FAILURE` | `closed` (`503`) or `open` (local limiter at limit / replicas) when Redis fails | `closed` |
//! | `RATE_LIMIT_REDIS_TIMEOUT` | the time budget of one decision (`20ms`) | `20ms` |
//! | `RATE_LIMIT_REPLICAS` | replicas sharing the limits (for the fail-open fallback) | `1` |
//!
//! The limit is named `ip` in headers (`RateLimit-Policy: "ip";q=100;w=60`) and audit records.
//!
//! # TOML (classes and per-tool limits, for the layer after authentication)
//!
//! [`RateLimitLayerBuilder::toml`] reads the `[rate_limit]` table of a TOML document (the
//! facade's `MCP_CONFIG_FILE`; other tables are left to other crates) and adds one route class
//! and limit per `classes` entry and one limit per `tools` entry:
//!
//! ```toml
//! [rate_limit]
//! max_keys = 100000                  # optional: the bound on tracked keys
//!
//! [rate_limit.classes.read]          # the limit is named after the class: "read"
//! match = ["GET /api/", "resources/read", "tools/call:read_note"]
//! requests = 60
//! window = "1m"                      # optional: seconds (60) or "60s", "1m", "500ms"; default 60 s
//! burst = 60                         # optional: default = requests
//! per = "principal_or_client"        # optional: client | principal | principal_or_client (default) | global
//!
//! [rate_limit.classes.write]
//! match = ["POST /api/", "PUT /api/", "tools/call:write_note"]
//! requests = 20
//!
//! [rate_limit.classes.delete]
//! match = ["DELETE /api/", "tools/call:delete_note"]
//! requests = 10
//!
//! [rate_limit.tools.echo]            # the limit is named "tool:echo"
//! requests = 5
//! window = "1s"
//! ```
//!
//! `match` rules are those of [`RouteClass`]. Unknown keys are errors (a typo must not silently
//! drop a limit); every error names its path, e.g. `rate_limit.classes.read.requests`.

use std::time::Duration;

use mcp_security_core::client_addr::ClientAddrResolver;
use mcp_security_core::config::{ConfigError, Env};
use mcp_security_core::toml::{self, Table, Value, integer, table};

use crate::class::RouteClass;
use crate::key::KeySelector;
use crate::layer::{Limit, RateLimitLayer, RateLimitLayerBuilder};
use crate::quota::Quota;

mod settings;

pub use settings::{REDIS_URL, RateLimitSettings};

/// The default per-client quota: 100 requests per 60 s.
pub const DEFAULT_REQUESTS: u64 = 100;
/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The name of the limit [`RateLimitLayer::from_env`] configures.
pub const CLIENT_LIMIT_NAME: &str = "ip";

impl RateLimitLayer {
    /// The per-client layer from the environment; see the [module docs](crate::config). With
    /// `RATE_LIMIT_ENABLED=false`, a [disabled](RateLimitLayer::disabled) layer.
    ///
    /// ```
    /// use mcp_security_core::config::Env;
    /// use mcp_ratelimit::RateLimitLayer;
    ///
    /// let env = Env::from_pairs("MCP", [("MCP_RATE_LIMIT_REQUESTS", "60"), ("MCP_RATE_LIMIT_WINDOW", "1m")]);
    /// let layer = RateLimitLayer::from_env(&env)?;
    /// assert_eq!(layer.summary(), "ip: 60/60s burst 60 per client_addr (max 100000 keys)");
    ///
    /// let err = RateLimitLayer::from_env(&Env::from_pairs("MCP", [("MCP_RATE_LIMIT_BURST", "0")]))
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "MCP_RATE_LIMIT_BURST: must be at least 1 (got \"0\")");
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::builder_from_env(env)?.build()
    }

    /// A builder filled from the environment (so a ban list or clocks can be added before
    /// building). It is [disabled](RateLimitLayerBuilder::enabled) when
    /// `RATE_LIMIT_ENABLED=false`.
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn builder_from_env(env: &Env) -> Result<RateLimitLayerBuilder, ConfigError> {
        let builder = env_builder(env)?;
        if env.secret("RATE_LIMIT_REDIS_URL")?.is_some() {
            return Err(ConfigError::new(
                env.var_name("RATE_LIMIT_REDIS_URL"),
                "shared limits need mcp-ratelimit's `redis` cargo feature and its Redis backend \
                 (RateLimitLayer::redis_from_env); this in-memory layer cannot use them (unset \
                 the variable, or build the layer with the Redis backend)",
            ));
        }
        Ok(builder)
    }
}

#[cfg(feature = "redis")]
impl RateLimitLayer<crate::backend::redis::RedisBackend> {
    /// The per-client layer from the environment, counted in Redis when
    /// `RATE_LIMIT_REDIS_URL` is set (and in memory otherwise); see the
    /// [module docs](crate::config) and [`RateLimitLayer::from_env`].
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn redis_from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::redis_builder_from_env(env)?.build()
    }

    /// A builder filled from the environment, for the Redis backend; see
    /// [`redis_from_env`](Self::redis_from_env).
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn redis_builder_from_env(
        env: &Env,
    ) -> Result<RateLimitLayerBuilder<crate::backend::redis::RedisBackend>, ConfigError> {
        let store = crate::backend::redis::RedisStore::from_env(env)?;
        Ok(env_builder(env)?.maybe_redis(store))
    }
}

/// The settings every backend reads: [`RateLimitSettings::from_env`] and `TRUSTED_PROXIES`.
fn env_builder(env: &Env) -> Result<RateLimitLayerBuilder, ConfigError> {
    let settings = RateLimitSettings::from_env(env)?;
    let resolver = ClientAddrResolver::builder()
        .trusted_proxy_nets(env.cidrs("TRUSTED_PROXIES")?)
        .build()
        .map_err(|e| e.renamed(env.var_name("TRUSTED_PROXIES")))?;
    Ok(settings.into_builder().client_addr_resolver(resolver))
}

impl<B> RateLimitLayerBuilder<B> {
    /// Add the route classes and limits of the `[rate_limit]` table of a TOML document (see
    /// the [module docs](crate::config)). A document without the table adds nothing.
    ///
    /// ```
    /// use mcp_ratelimit::RateLimitLayer;
    ///
    /// let layer = RateLimitLayer::builder()
    ///     .toml(r#"
    ///         [rate_limit.classes.delete]
    ///         match = ["DELETE /api/", "tools/call:delete_note"]
    ///         requests = 10
    ///         per = "principal"
    ///     "#)?
    ///     .build()?;
    /// assert_eq!(
    ///     layer.summary(),
    ///     "delete: 10/60s burst 10 per principal in class delete (max 100000 keys)"
    /// );
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// Invalid TOML (setting `rate_limit`), or an invalid entry, naming its path
    /// (`rate_limit.classes.read.window`).
    pub fn toml(mut self, text: &str) -> Result<Self, ConfigError> {
        let doc = toml::parse(text, "rate_limit")?;
        let Some(section) = doc.get("rate_limit") else {
            return Ok(self);
        };
        let section = table(section, "rate_limit")?;
        for (key, value) in section {
            let path = format!("rate_limit.{key}");
            match key.as_str() {
                "max_keys" => {
                    let n = integer(value, &path)?;
                    let n = usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        ConfigError::new(&path, "must be at least 1").with_value(n.to_string())
                    })?;
                    self = self.max_keys(n);
                }
                "classes" => {
                    for (name, entry) in table(value, &path)? {
                        let path = format!("{path}.{name}");
                        let entry = table(entry, &path)?;
                        let rules = match entry.get("match") {
                            Some(Value::Array(rules)) if !rules.is_empty() => rules,
                            _ => {
                                return Err(ConfigError::new(
                                    format!("{path}.match"),
                                    "must be a non-empty array of rules",
                                ));
                            }
                        };
                        let mut class = RouteClass::new(name.as_str());
                        for rule in rules {
                            let Value::String(rule) = rule else {
                                return Err(ConfigError::new(
                                    format!("{path}.match"),
                                    "rules must be strings",
                                ));
                            };
                            class = class.rule(rule.as_str());
                        }
                        let (quota, key) = limit_entry(entry, &path, &["match"])?;
                        self = self
                            .route_class(class)
                            .limit(Limit::new(name.clone(), quota, key).for_class(name.as_str()));
                    }
                }
                "tools" => {
                    for (tool, entry) in table(value, &path)? {
                        let path = format!("{path}.{tool}");
                        let (quota, key) = limit_entry(table(entry, &path)?, &path, &[])?;
                        self = self.limit(
                            Limit::new(format!("tool:{tool}"), quota, key).for_tool(tool.as_str()),
                        );
                    }
                }
                _ => {
                    return Err(toml::unknown_key(
                        &path,
                        "expected max_keys, classes or tools",
                    ));
                }
            }
        }
        Ok(self)
    }

    /// If `CONFIG_FILE` is set (the facade's `MCP_CONFIG_FILE`), read that file and apply its
    /// `[rate_limit]` table with [`toml`](Self::toml).
    ///
    /// # Errors
    /// The file cannot be read (naming the variable), or [`toml`](Self::toml)'s errors.
    pub fn config_file_from_env(self, env: &Env) -> Result<Self, ConfigError> {
        let Some(path) = env.string("CONFIG_FILE")? else {
            return Ok(self);
        };
        let text = toml::read_file(std::path::Path::new(&path), &env.var_name("CONFIG_FILE"))?;
        self.toml(&text)
    }
}

/// `requests`, `window`, `burst`, `per` of a class or tool entry.
fn limit_entry(
    entry: &Table,
    path: &str,
    extra: &[&str],
) -> Result<(Quota, KeySelector), ConfigError> {
    for key in entry.keys() {
        if !["requests", "window", "burst", "per"].contains(&key.as_str())
            && !extra.contains(&key.as_str())
        {
            return Err(toml::unknown_key(
                &format!("{path}.{key}"),
                "expected requests, window, burst or per",
            ));
        }
    }
    let field = |name: &str| format!("{path}.{name}");
    let requests = match entry.get("requests") {
        Some(v) => integer(v, &field("requests"))?,
        None => return Err(ConfigError::new(field("requests"), "is required")),
    };
    let window = match entry.get("window") {
        None => DEFAULT_WINDOW,
        Some(v) => toml::duration(v, &field("window"))?,
    };
    let burst = match entry.get("burst") {
        Some(v) => integer(v, &field("burst"))?,
        None => requests,
    };
    let key = match entry.get("per") {
        None => KeySelector::principal_or_client_addr(),
        Some(Value::String(s)) => match s.as_str() {
            "client" | "client_addr" | "ip" => KeySelector::client_addr(),
            "principal" => KeySelector::principal(),
            "principal_or_client" | "principal_or_client_addr" => {
                KeySelector::principal_or_client_addr()
            }
            "global" => KeySelector::global(),
            _ => {
                return Err(ConfigError::new(
                    field("per"),
                    "expected client, principal, principal_or_client or global",
                )
                .with_value(s.as_str()));
            }
        },
        Some(other) => {
            return Err(
                ConfigError::new(field("per"), "must be a string").with_value(other.to_string())
            );
        }
    };
    let quota = Quota::new(requests, window).with_burst(burst);
    quota.gcra(path)?;
    Ok((quota, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn defaults_and_variables() {
        let layer = RateLimitLayer::from_env(&env(&[])).unwrap();
        assert!(layer.is_enabled());
        assert_eq!(
            layer.summary(),
            "ip: 100/60s burst 100 per client_addr (max 100000 keys)"
        );
        let layer = RateLimitLayer::from_env(&env(&[
            ("MCP_RATE_LIMIT_REQUESTS", "10"),
            ("MCP_RATE_LIMIT_WINDOW", "1s"),
            ("MCP_RATE_LIMIT_BURST", "3"),
            ("MCP_RATE_LIMIT_MAX_KEYS", "50"),
            ("MCP_TRUSTED_PROXIES", "10.0.0.0/8"),
        ]))
        .unwrap();
        assert_eq!(
            layer.summary(),
            "ip: 10/1s burst 3 per client_addr (max 50 keys)"
        );
        let off = RateLimitLayer::from_env(&env(&[("MCP_RATE_LIMIT_ENABLED", "false")])).unwrap();
        assert!(!off.is_enabled());
        assert_eq!(off.summary(), "disabled");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = |pairs: &[(&str, &str)]| RateLimitLayer::from_env(&env(pairs)).unwrap_err();
        for (var, value) in [
            ("MCP_RATE_LIMIT_REQUESTS", "0"),
            ("MCP_RATE_LIMIT_REQUESTS", "-1"),
            ("MCP_RATE_LIMIT_BURST", "0"),
            ("MCP_RATE_LIMIT_WINDOW", "0"),
            ("MCP_RATE_LIMIT_WINDOW", "soon"),
            ("MCP_RATE_LIMIT_MAX_KEYS", "0"),
            ("MCP_RATE_LIMIT_ENABLED", "maybe"),
            ("MCP_TRUSTED_PROXIES", "0.0.0.0/0"),
            ("MCP_TRUSTED_PROXIES", "nope"),
        ] {
            let e = err(&[(var, value)]);
            assert_eq!(e.setting(), var, "{e}");
        }
        let e = err(&[
            ("MCP_RATE_LIMIT_BURST", "1000000000"),
            ("MCP_RATE_LIMIT_WINDOW", "1h"),
        ]);
        assert_eq!(e.setting(), "MCP_RATE_LIMIT_BURST");
    }

    const EXAMPLE_CLASSES: &str = r#"
        [other_section]
        ignored = true

        [rate_limit]
        max_keys = 5000

        [rate_limit.classes.public]
        match = ["GET /", "tools/list"]
        requests = 100

        [rate_limit.classes.read]
        match = ["GET /api/", "resources/read", "tools/call:read_note"]
        requests = 60
        window = "1m"

        [rate_limit.classes.write]
        match = ["POST /api/", "PUT /api/", "tools/call:write_note"]
        requests = 20
        window = 60
        per = "principal"

        [rate_limit.classes.admin]
        match = ["* /api/admin"]
        requests = 10

        [rate_limit.classes.delete]
        match = ["DELETE /api/", "tools/call:delete_note"]
        requests = 10
        burst = 2
        per = "client"

        [rate_limit.tools.echo]
        requests = 5
        window = "1s"
        per = "global"
    "#;

    #[test]
    fn toml_classes_and_tools() {
        let layer = RateLimitLayer::builder()
            .toml(EXAMPLE_CLASSES)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(layer.max_keys(), 5000);
        let summary = layer.summary();
        for part in [
            "public: 100/60s burst 100 per principal_or_client_addr in class public",
            "read: 60/60s burst 60 per principal_or_client_addr in class read",
            "write: 20/60s burst 20 per principal in class write",
            "admin: 10/60s burst 10 per principal_or_client_addr in class admin",
            "delete: 10/60s burst 2 per client_addr in class delete",
            "tool:echo: 5/1s burst 5 per global for tool echo",
        ] {
            assert!(summary.contains(part), "{part} not in {summary}");
        }
        // no section: nothing added
        let b = RateLimitLayer::builder().toml("[auth]\nx = 1\n").unwrap();
        assert!(b.limits().is_empty());
    }

    #[test]
    fn toml_errors_name_the_path() {
        let err = |text: &str| match RateLimitLayer::builder().toml(text) {
            Ok(b) => b.build().unwrap_err(),
            Err(e) => e,
        };
        let cases = [
            ("[rate_limit\n", "rate_limit"),
            ("rate_limit = 3", "rate_limit"),
            ("[rate_limit]\nmax_key = 3", "rate_limit.max_key"),
            ("[rate_limit]\nmax_keys = 0", "rate_limit.max_keys"),
            ("[rate_limit]\nmax_keys = -4", "rate_limit.max_keys"),
            (
                "[rate_limit.classes.r]\nrequests = 1",
                "rate_limit.classes.r.match",
            ),
            (
                "[rate_limit.classes.r]\nmatch = []\nrequests = 1",
                "rate_limit.classes.r.match",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [1]\nrequests = 1",
                "rate_limit.classes.r.match",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]",
                "rate_limit.classes.r.requests",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 0",
                "rate_limit.classes.r.requests",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nwindow = \"x\"",
                "rate_limit.classes.r.window",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nwindow = 1.5",
                "rate_limit.classes.r.window",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nwindow = 0",
                "rate_limit.classes.r.window",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nburst = 0",
                "rate_limit.classes.r.burst",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nper = \"user\"",
                "rate_limit.classes.r.per",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET /\"]\nrequests = 1\nburts = 3",
                "rate_limit.classes.r.burts",
            ),
            (
                "[rate_limit.classes.r]\nmatch = [\"GET api\"]\nrequests = 1",
                "route_class.r",
            ),
            (
                "[rate_limit.tools.echo]\nrequests = \"5\"",
                "rate_limit.tools.echo.requests",
            ),
            ("[rate_limit.tools]\necho = 5", "rate_limit.tools.echo"),
        ];
        for (text, setting) in cases {
            let e = err(text);
            assert_eq!(e.setting(), setting, "{text:?}: {e}");
        }
    }

    /// The in-memory layer refuses a Redis URL, with or without the feature (which is
    /// additive: only the Redis backend reads it).
    #[test]
    fn redis_url_without_the_feature_is_an_error() {
        let e =
            RateLimitLayer::from_env(&env(&[("MCP_RATE_LIMIT_REDIS_URL", "redis://secret@h/")]))
                .unwrap_err();
        assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_URL");
        assert!(e.to_string().contains("`redis` cargo feature"), "{e}");
        assert!(!e.to_string().contains("secret"));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_from_env() {
        let layer = RateLimitLayer::redis_from_env(&env(&[
            ("MCP_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:1/"),
            ("MCP_RATE_LIMIT_REDIS_FAILURE", "open"),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "5ms"),
            ("MCP_RATE_LIMIT_REPLICAS", "3"),
        ]))
        .unwrap();
        assert!(layer.redis_stats().is_some());
        for (var, value) in [
            ("MCP_RATE_LIMIT_REDIS_FAILURE", "maybe"),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "0"),
            ("MCP_RATE_LIMIT_REPLICAS", "0"),
            ("MCP_RATE_LIMIT_REDIS_PREFIX", "has space"),
        ] {
            let e = RateLimitLayer::redis_from_env(&env(&[
                ("MCP_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:1/"),
                (var, value),
            ]))
            .unwrap_err();
            assert_eq!(e.setting(), var, "{e}");
        }
        let e =
            RateLimitLayer::redis_from_env(&env(&[("MCP_RATE_LIMIT_REDIS_URL", "http://pw@x/")]))
                .unwrap_err();
        assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_URL");
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn config_file_from_env() {
        let dir = std::env::temp_dir().join(format!("mcp-ratelimit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mcp.toml");
        std::fs::write(&path, EXAMPLE_CLASSES).unwrap();
        let e = env(&[("MCP_CONFIG_FILE", path.to_str().unwrap())]);
        let b = RateLimitLayer::builder().config_file_from_env(&e).unwrap();
        assert_eq!(b.limits().len(), 6);
        let b = RateLimitLayer::builder()
            .config_file_from_env(&env(&[]))
            .unwrap();
        assert!(b.limits().is_empty());
        let missing = dir.join("missing.toml");
        let err = RateLimitLayer::builder()
            .config_file_from_env(&env(&[("MCP_CONFIG_FILE", missing.to_str().unwrap())]))
            .unwrap_err();
        assert_eq!(err.setting(), "MCP_CONFIG_FILE");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
