//! [`RedisStore::from_env`]: the `RATE_LIMIT_REDIS_*` variables.

use super::*;

impl RedisStore {
    /// The store configured by the environment, if `RATE_LIMIT_REDIS_URL` (or its `_FILE`
    /// form) is set; see [`crate::config`].
    ///
    /// | Variable (after the prefix, e.g. `MCP_`) | Meaning |
    /// |---|---|
    /// | `RATE_LIMIT_REDIS_URL` / `_FILE` | `redis://`, `rediss://` (TLS) or `unix://`; may carry `user:password@` |
    /// | `RATE_LIMIT_REDIS_USERNAME` | the ACL user; wins over the URL's |
    /// | `RATE_LIMIT_REDIS_PASSWORD` / `_FILE` | the password; wins over the URL's |
    /// | `RATE_LIMIT_REDIS_CA_FILE` | PEM CA bundle the server's certificate must chain to (default: the bundled Mozilla roots) |
    /// | `RATE_LIMIT_REDIS_CLIENT_CERT_FILE`, `RATE_LIMIT_REDIS_CLIENT_KEY_FILE` | client certificate and key for mutual TLS |
    /// | `RATE_LIMIT_REDIS_CLUSTER` | `true`: Redis Cluster, the URL one seed node ([`RedisStoreBuilder::cluster`]) |
    /// | `RATE_LIMIT_REDIS_CLUSTER_NODES` | more seed nodes, comma-separated URLs; implies `_CLUSTER` |
    /// | `RATE_LIMIT_REDIS_SENTINEL` | sentinels, comma-separated `host:port` ([`RedisStoreBuilder::sentinel`]) |
    /// | `RATE_LIMIT_REDIS_SENTINEL_MASTER` | the master name the sentinels monitor (needed with `_SENTINEL`) |
    /// | `RATE_LIMIT_REDIS_PREFIX`, `_FAILURE`, `_TIMEOUT`, `RATE_LIMIT_REPLICAS` | see [`RedisStoreBuilder`] |
    ///
    /// ```
    /// use mcp_security_core::config::Env;
    /// use mcp_ratelimit::redis::RedisStore;
    ///
    /// let env = Env::from_pairs("MCP", [
    ///     ("MCP_RATE_LIMIT_REDIS_URL", "rediss://url-user:url-pass@redis.example.com:6380/0"),
    ///     ("MCP_RATE_LIMIT_REDIS_USERNAME", "mcp-ratelimit"),
    ///     ("MCP_RATE_LIMIT_REDIS_PASSWORD", "s3cret"),
    /// ]);
    /// let store = RedisStore::from_env(&env)?.expect("configured");
    /// assert_eq!(store.display_url(), "rediss://mcp-ratelimit:***@redis.example.com:6380/0");
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A malformed variable, naming it (never echoing a password or the URL).
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(url) = env.secret("RATE_LIMIT_REDIS_URL")? else {
            return Ok(None);
        };
        let var = |name: &str| env.var_name(name);
        let mut builder = RedisStore::builder(url.expose());
        if let Some(prefix) = env.string("RATE_LIMIT_REDIS_PREFIX")? {
            builder = builder.prefix(prefix);
        }
        if let Some(user) = env.string("RATE_LIMIT_REDIS_USERNAME")? {
            builder = builder.username(user);
        }
        if let Some(password) = env.secret("RATE_LIMIT_REDIS_PASSWORD")? {
            builder = builder.password(password.expose());
        }
        if let Some(ca) = env.string("RATE_LIMIT_REDIS_CA_FILE")? {
            builder = builder.ca_file(ca);
        }
        let cert = env.string("RATE_LIMIT_REDIS_CLIENT_CERT_FILE")?;
        let key = env.string("RATE_LIMIT_REDIS_CLIENT_KEY_FILE")?;
        builder = match (cert, key) {
            (Some(cert), Some(key)) => builder.client_cert_files(cert, key),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    var("RATE_LIMIT_REDIS_CLIENT_KEY_FILE"),
                    "a client certificate needs its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    var("RATE_LIMIT_REDIS_CLIENT_CERT_FILE"),
                    "a client key needs its certificate",
                ));
            }
            (None, None) => builder,
        };
        let nodes = env.list("RATE_LIMIT_REDIS_CLUSTER_NODES")?;
        if env.bool("RATE_LIMIT_REDIS_CLUSTER", nodes.is_some())? {
            builder = builder.cluster(true);
            if let Some(nodes) = nodes {
                builder = builder.cluster_nodes(nodes);
            }
        } else if nodes.is_some() {
            return Err(ConfigError::new(
                var("RATE_LIMIT_REDIS_CLUSTER_NODES"),
                "cluster nodes need RATE_LIMIT_REDIS_CLUSTER=true (or leave it unset)",
            ));
        }
        let sentinels = env.list("RATE_LIMIT_REDIS_SENTINEL")?;
        let master = env.string("RATE_LIMIT_REDIS_SENTINEL_MASTER")?;
        builder = match (sentinels, master) {
            (Some(nodes), Some(master)) => builder.sentinel(nodes, master),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    var("RATE_LIMIT_REDIS_SENTINEL_MASTER"),
                    "Sentinel needs the master name the sentinels monitor",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    var("RATE_LIMIT_REDIS_SENTINEL"),
                    "a master name needs the sentinels' addresses (host:port, comma-separated)",
                ));
            }
            (None, None) => builder,
        };
        if let Some(policy) = env.string("RATE_LIMIT_REDIS_FAILURE")? {
            builder = builder.failure_policy(match policy.trim().to_ascii_lowercase().as_str() {
                "closed" => FailurePolicy::Closed,
                "open" => FailurePolicy::Open,
                _ => {
                    return Err(ConfigError::new(
                        var("RATE_LIMIT_REDIS_FAILURE"),
                        "expected closed or open",
                    )
                    .with_value(policy));
                }
            });
        }
        builder = builder
            .timeout(env.duration("RATE_LIMIT_REDIS_TIMEOUT", DEFAULT_TIMEOUT)?)
            .replicas(env.u64("RATE_LIMIT_REPLICAS", 1)?);
        builder.build().map(Some).map_err(|e| {
            let name = match e.setting() {
                "redis.prefix" => "RATE_LIMIT_REDIS_PREFIX",
                "redis.timeout" => "RATE_LIMIT_REDIS_TIMEOUT",
                "redis.replicas" => "RATE_LIMIT_REPLICAS",
                "redis.username" => "RATE_LIMIT_REDIS_USERNAME",
                "redis.password" => "RATE_LIMIT_REDIS_PASSWORD",
                "redis.ca_file" => "RATE_LIMIT_REDIS_CA_FILE",
                "redis.client_cert_file" => "RATE_LIMIT_REDIS_CLIENT_CERT_FILE",
                "redis.client_key_file" => "RATE_LIMIT_REDIS_CLIENT_KEY_FILE",
                "redis.cluster_nodes" => "RATE_LIMIT_REDIS_CLUSTER_NODES",
                "redis.sentinel" => "RATE_LIMIT_REDIS_SENTINEL",
                "redis.sentinel_master" => "RATE_LIMIT_REDIS_SENTINEL_MASTER",
                _ => "RATE_LIMIT_REDIS_URL",
            };
            let err = ConfigError::new(var(name), e.reason());
            match e.value() {
                Some(v) => err.with_value(v),
                None => err,
            }
        })
    }
}
