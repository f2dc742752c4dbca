//! [`RedisStoreBuilder`]: the address, credentials, TLS files, prefix, failure policy and
//! bounds of a [`RedisStore`].

use std::path::PathBuf;

use super::*;

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    pub(super) url: Secret,
    pub(super) username: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) client_cert_file: Option<PathBuf>,
    pub(super) client_key_file: Option<PathBuf>,
    pub(super) prefix: String,
    pub(super) failure: FailurePolicy,
    pub(super) timeout: Duration,
    pub(super) replicas: u64,
    pub(super) deny_cache: usize,
    pub(super) cluster: bool,
    pub(super) cluster_nodes: Vec<Secret>,
    pub(super) sentinel: Option<(Vec<String>, String)>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("prefix", &self.prefix)
            .field("failure", &self.failure)
            .field("timeout", &self.timeout)
            .field("replicas", &self.replicas)
            .field("deny_cache", &self.deny_cache)
            .field("cluster", &self.cluster)
            .field("cluster_nodes", &self.cluster_nodes.len())
            .field("sentinel", &self.sentinel)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The ACL user to authenticate as; it wins over a user in the URL.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (of the ACL user, or Redis's `requirepass`); it wins over a password in the
    /// URL. Kept out of `Debug`, errors, logs and [`RedisStore::display_url`].
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password.into()));
        self
    }

    /// A PEM file of the CA certificate(s) that the server's certificate must chain to
    /// (`rediss://` only). Without it, the Mozilla roots bundled at build time (webpki-roots)
    /// are trusted. Read when [`build`](Self::build) runs.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// A client certificate chain and its private key (PEM files) for mutual TLS
    /// (`rediss://` only; Redis's `tls-auth-clients yes`). Read when [`build`](Self::build)
    /// runs; the key is never echoed.
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

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

    /// Redis Cluster (default off): the URL names one seed node (any node of the cluster;
    /// [`cluster_nodes`](Self::cluster_nodes) adds more, in case that one is down at start-up),
    /// the cluster client learns the others and their slots, and follows `MOVED`/`ASK`
    /// redirections and slot changes. Every node gets the URL's credentials and TLS settings.
    /// One caller's keys share a hash slot (see the [module docs](super)).
    pub fn cluster(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// More seed nodes of a Redis Cluster (`redis://host:port` or `rediss://host:port`, the
    /// URL's scheme; their credentials are ignored for the URL's); turns [`cluster`](Self::cluster)
    /// on.
    pub fn cluster_nodes<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster = true;
        self.cluster_nodes = urls.into_iter().map(|u| Secret::new(u.into())).collect();
        self
    }

    /// Redis Sentinel: the primary is the one the sentinels at `sentinels` (`host:port`) name for
    /// `master` (its name in their `sentinel monitor`), looked up again whenever a call fails,
    /// so a promoted replica is followed without a restart. The URL's scheme (`rediss://`: TLS,
    /// with the same CA and client certificate for the sentinels), credentials and database
    /// apply to the primary; its host and port are not used.
    pub fn sentinel<I, S>(mut self, sentinels: I, master: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sentinel = Some((
            sentinels.into_iter().map(Into::into).collect(),
            master.into(),
        ));
        self
    }

    /// Validate and build. No connection is made here (nor a runtime needed): the first request
    /// connects. The TLS files are read and parsed here.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `redis.url` (not a `redis://`, `rediss://` or `unix://` URL, or a
    /// `rediss://…#insecure` one; the value is never echoed), `redis.username`,
    /// `redis.password` (empty), `redis.ca_file`, `redis.client_cert_file`,
    /// `redis.client_key_file` (unreadable, not PEM, or given with a plain-text URL),
    /// `redis.prefix`, `redis.timeout` (zero), `redis.replicas` (zero), `redis.cluster_nodes`
    /// (not a URL, another scheme than the URL's), `redis.sentinel` (not `host:port`, or with
    /// [`cluster`](Self::cluster)) or `redis.sentinel_master` (empty).
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let mode = match (self.cluster, self.sentinel) {
            (true, Some(_)) => {
                return Err(ConfigError::new(
                    "redis.sentinel",
                    "Sentinel and Redis Cluster exclude each other (a cluster fails over by \
                     itself): configure one",
                ));
            }
            (true, None) => topology::Mode::Cluster {
                nodes: self.cluster_nodes,
            },
            (false, Some((nodes, master))) => topology::Mode::Sentinel { nodes, master },
            (false, None) => topology::Mode::Single,
        };
        let (target, display_url) = connect::client(&connect::Settings {
            url: &self.url,
            username: self.username.as_deref(),
            password: self.password.as_ref(),
            ca_file: self.ca_file.as_deref(),
            client_cert_file: self.client_cert_file.as_deref(),
            client_key_file: self.client_key_file.as_deref(),
            mode: &mode,
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
                link: link::Link::new(target),
                display_url,
                scripts: script::Scripts::default(),
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
