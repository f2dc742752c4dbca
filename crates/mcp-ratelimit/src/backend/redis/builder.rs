//! [`RedisStoreBuilder`]: the address, prefix, failure policy and bounds of a [`RedisStore`].

use super::*;

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    pub(super) url: Secret,
    pub(super) prefix: String,
    pub(super) failure: FailurePolicy,
    pub(super) timeout: Duration,
    pub(super) replicas: u64,
    pub(super) deny_cache: usize,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("failure", &self.failure)
            .field("timeout", &self.timeout)
            .field("replicas", &self.replicas)
            .field("deny_cache", &self.deny_cache)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The key prefix (default [`DEFAULT_PREFIX`]): printable ASCII without spaces, at most
    /// [`MAX_PREFIX_LEN`] bytes. Give each deployment (and each layer) its own.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What to do when Redis fails or is too slow (default [`FailurePolicy::Closed`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure = policy;
        self
    }

    /// The time budget of one decision (default [`DEFAULT_TIMEOUT`]), after which the failure
    /// policy applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many replicas share the limits (default 1): the fail-open fallback limits each
    /// replica to `limit / replicas`.
    pub fn replicas(mut self, replicas: u64) -> Self {
        self.replicas = replicas;
        self
    }

    /// The bound on the local deny cache (default [`DEFAULT_DENY_CACHE`]); 0 turns it off.
    pub fn deny_cache(mut self, capacity: usize) -> Self {
        self.deny_cache = capacity;
        self
    }

    /// Validate and build. No connection is made here (nor a runtime needed): the first request
    /// connects.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `redis.url` (not a `redis://` or `unix://` URL — `rediss://` is
    /// not supported yet; the value is never echoed), `redis.prefix`, `redis.timeout` (zero) or
    /// `redis.replicas` (zero).
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        if self.url.expose().trim_start().starts_with("rediss://") {
            return Err(ConfigError::new(
                "redis.url",
                "rediss:// (TLS) is not supported by this build yet; use redis:// on loopback or \
                 a private network, or a TLS-terminating sidecar",
            ));
        }
        let client = ::redis::Client::open(self.url.expose()).map_err(|e| {
            ConfigError::new(
                "redis.url",
                format!("not a usable Redis URL ({:?})", e.kind()),
            )
        })?;
        if self.prefix.is_empty()
            || self.prefix.len() > MAX_PREFIX_LEN
            || !self.prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::new(
                "redis.prefix",
                "must be 1 to 64 printable ASCII characters without spaces",
            )
            .with_value(self.prefix.escape_debug().to_string()));
        }
        if self.timeout.is_zero() {
            return Err(
                ConfigError::new("redis.timeout", "must be longer than zero").with_value("0"),
            );
        }
        if self.replicas == 0 {
            return Err(ConfigError::new("redis.replicas", "must be at least 1").with_value("0"));
        }
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                conn: OnceLock::new(),
                script: ::redis::Script::new(SCRIPT),
                prefix: self.prefix,
                failure: self.failure,
                timeout: self.timeout,
                replicas: self.replicas,
                deny: DenyCache::new(self.deny_cache),
                stats: Counters::default(),
            }),
        })
    }
}
