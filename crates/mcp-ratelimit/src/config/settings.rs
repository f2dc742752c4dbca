//! [`RateLimitSettings`]: the per-client `RATE_LIMIT_*` variables, typed.

use std::time::Duration;

use mcp_security_core::config::{ConfigError, Env};

use super::{CLIENT_LIMIT_NAME, DEFAULT_REQUESTS, DEFAULT_WINDOW};
use crate::key::KeySelector;
use crate::layer::{DEFAULT_MAX_KEYS, Limit, RateLimitLayer, RateLimitLayerBuilder};
use crate::quota::Quota;

const ENABLED: &str = "RATE_LIMIT_ENABLED";
const REQUESTS: &str = "RATE_LIMIT_REQUESTS";
const WINDOW: &str = "RATE_LIMIT_WINDOW";
const BURST: &str = "RATE_LIMIT_BURST";
const MAX_KEYS: &str = "RATE_LIMIT_MAX_KEYS";
/// The variable naming the Redis that shares the limits across replicas (or, with `_FILE`, the
/// file holding that URL); the Redis backend reads it with the other `RATE_LIMIT_REDIS_*`
/// variables (`RedisStore::from_env`, feature `redis`).
pub const REDIS_URL: &str = "RATE_LIMIT_REDIS_URL";

/// The per-client limit's settings, one field per `RATE_LIMIT_*` row of the
/// [module docs](super)' table (the Redis rows are `RedisStore`'s), typed.
///
/// [`from_env`](Self::from_env) reads and checks them. Code fills them directly, starting from
/// [`new`](Self::new) with the prefix that errors should name, or layers the environment over
/// its own values with [`read_env`](Self::read_env); [`check`](Self::check) then validates them
/// once, naming the variable. [`into_builder`](Self::into_builder) or
/// [`RateLimitLayerBuilder::client_limit`] hands them to a layer.
///
/// ```
/// use std::time::Duration;
/// use mcp_security_core::config::Env;
/// use mcp_ratelimit::config::RateLimitSettings;
///
/// let mut settings = RateLimitSettings::new("IQ");
/// settings.requests = 60;
/// settings.window = Duration::from_secs(60);
/// let env = Env::from_pairs("IQ", [("IQ_RATE_LIMIT_BURST", "0")]);
/// let settings = settings.read_env(&env)?;
/// assert_eq!(
///     settings.check().unwrap_err().to_string(),
///     "IQ_RATE_LIMIT_BURST: must be at least 1 (got \"0\")"
/// );
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_ENABLED`.
    pub enabled: bool,
    /// `RATE_LIMIT_REQUESTS`: requests per window, per client address (at least 1).
    pub requests: u64,
    /// `RATE_LIMIT_WINDOW`.
    pub window: Duration,
    /// `RATE_LIMIT_BURST`: the most requests at once; `None` is [`requests`](Self::requests).
    pub burst: Option<u64>,
    /// `RATE_LIMIT_MAX_KEYS`: the bound on tracked clients (at least 1).
    pub max_keys: usize,
    /// Names the variables in errors (`MCP_RATE_LIMIT_BURST`).
    names: Env,
}

impl Default for RateLimitSettings {
    /// [`RateLimitSettings::new`] with the prefix `MCP`.
    fn default() -> Self {
        RateLimitSettings::new("MCP")
    }
}

impl RateLimitSettings {
    /// The defaults of the table (on, 100 requests per 60 s, burst = requests, 100000 keys);
    /// errors name variables with `prefix` (`MCP`: `MCP_RATE_LIMIT_REQUESTS`).
    pub fn new(prefix: &str) -> Self {
        RateLimitSettings {
            enabled: true,
            requests: DEFAULT_REQUESTS,
            window: DEFAULT_WINDOW,
            burst: None,
            max_keys: DEFAULT_MAX_KEYS,
            names: names(prefix),
        }
    }

    /// The settings from the environment, checked.
    ///
    /// # Errors
    /// A malformed or refused variable, naming it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = RateLimitSettings::new("").read_env(env)?;
        settings.check()?;
        Ok(settings)
    }

    /// These settings with every variable `env` sets in place of its field (unset variables
    /// leave theirs alone); errors name the variables with `env`'s prefix from now on. Nothing
    /// is checked yet but the form of each value: call [`check`](Self::check) once every source
    /// has been applied.
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn read_env(mut self, env: &Env) -> Result<Self, ConfigError> {
        self.names = names(&env.var_name(""));
        self.enabled = env.bool(ENABLED, self.enabled)?;
        self.requests = env.u64(REQUESTS, self.requests)?;
        self.window = env.duration(WINDOW, self.window)?;
        if env.string(BURST)?.is_some() {
            self.burst = Some(env.u64(BURST, 0)?);
        }
        self.max_keys = env.usize(MAX_KEYS, self.max_keys)?;
        Ok(self)
    }

    /// Name the variables in errors with `prefix` (`IQ`: `IQ_RATE_LIMIT_BURST`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.names = names(prefix);
        self
    }

    /// Validate the settings, even when limiting is off: requests, burst and key bound at least
    /// 1, and a quota the limiter can count exactly.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable (`MCP_RATE_LIMIT_WINDOW`).
    pub fn check(&self) -> Result<(), ConfigError> {
        let var = |name: &str| self.names.var_name(name);
        let at_least_one = |name: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(var(name), "must be at least 1").with_value("0"))
            } else {
                Ok(())
            }
        };
        at_least_one(REQUESTS, self.requests)?;
        at_least_one(BURST, self.burst.unwrap_or(self.requests))?;
        at_least_one(MAX_KEYS, self.max_keys as u64)?;
        self.quota().gcra(CLIENT_LIMIT_NAME).map_err(|e| {
            // The quota names its own fields: `ip.requests`, `ip.window`, `ip.burst`.
            let field = e.setting().rsplit('.').next().unwrap_or_default();
            let name = [(WINDOW, "window"), (BURST, "burst")]
                .into_iter()
                .find_map(|(name, f)| (f == field).then_some(name))
                .unwrap_or(REQUESTS);
            e.renamed(var(name))
        })?;
        Ok(())
    }

    /// The quota: [`requests`](Self::requests) per [`window`](Self::window), with
    /// [`burst`](Self::burst).
    pub fn quota(&self) -> Quota {
        Quota::new(self.requests, self.window).with_burst(self.burst.unwrap_or(self.requests))
    }

    /// The per-client limit, named `ip`: the [`quota`](Self::quota) per client address.
    pub fn limit(&self) -> Limit {
        Limit::new(CLIENT_LIMIT_NAME, self.quota(), KeySelector::client_addr())
    }

    /// A builder for the per-client layer: [`enabled`](RateLimitLayerBuilder::enabled) as
    /// these settings say, with their [`client_limit`](RateLimitLayerBuilder::client_limit).
    /// The settings are not checked again: [`check`](Self::check) them first
    /// ([`from_env`](Self::from_env) does), or the layer's build refuses a bad quota under
    /// `limit.ip.*`.
    pub fn into_builder(self) -> RateLimitLayerBuilder {
        RateLimitLayer::builder()
            .enabled(self.enabled)
            .client_limit(&self)
    }
}

impl<B> RateLimitLayerBuilder<B> {
    /// Add the per-client limit of `settings` ([`RateLimitSettings::limit`]) and their bound on
    /// tracked keys. Whether to limit at all, the client-address resolver and the backend are
    /// the caller's.
    pub fn client_limit(self, settings: &RateLimitSettings) -> Self {
        self.limit(settings.limit()).max_keys(settings.max_keys)
    }
}

/// An environment that only names variables.
fn names(prefix: &str) -> Env {
    Env::with_lookup(prefix, |_| None)
}
