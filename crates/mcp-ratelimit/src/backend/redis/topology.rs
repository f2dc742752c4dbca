//! Redis Cluster and Sentinel: the clients for a [`RedisStore`](super::RedisStore) whose Redis is
//! more than one server.

use ::redis::cluster::ClusterClientBuilder;
use ::redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates, TlsMode};
use mcp_security_core::config::{ConfigError, Secret};

use super::connect::{auth_part, kind_name};
use super::link::Target;

/// How a store reaches its Redis.
#[derive(Default)]
pub(super) enum Mode {
    /// The URL's server (the default).
    #[default]
    Single,
    /// A Redis Cluster: the URL is one seed node, `nodes` more.
    Cluster { nodes: Vec<Secret> },
    /// The primary named by the sentinels at `nodes` (`host:port`) for `master`.
    Sentinel { nodes: Vec<String>, master: String },
}

/// A cluster client seeded with the URL's node and `nodes`, all with the URL's credentials and
/// TLS settings; nothing connects here.
pub(super) fn cluster(
    info: &ConnectionInfo,
    nodes: &[Secret],
    certificates: Option<TlsCertificates>,
    display: String,
) -> Result<(Target, String), ConfigError> {
    let tls = certificates.is_some();
    if matches!(info.addr(), ConnectionAddr::Unix(_)) {
        return Err(ConfigError::new(
            "redis.url",
            "Redis Cluster needs a redis:// or rediss:// URL (a cluster names its nodes by host \
             and port)",
        ));
    }
    if info.redis_settings().db() != 0 {
        return Err(ConfigError::new(
            "redis.url",
            "Redis Cluster has only database 0: drop the /N from the URL",
        ));
    }
    let mut seeds = vec![info.clone()];
    for (i, node) in nodes.iter().enumerate() {
        let setting = "redis.cluster_nodes";
        let node_info = node.expose().trim().into_connection_info().map_err(|e| {
            ConfigError::new(
                setting,
                format!(
                    "entry {} is not a usable Redis URL ({})",
                    i + 1,
                    kind_name(&e)
                ),
            )
        })?;
        let same_scheme = match node_info.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => {
                if *insecure {
                    return Err(ConfigError::new(
                        setting,
                        format!(
                            "entry {}: #insecure (no certificate check) is refused",
                            i + 1
                        ),
                    ));
                }
                tls
            }
            ConnectionAddr::Tcp(..) => !tls,
            _ => false,
        };
        if !same_scheme {
            return Err(ConfigError::new(
                setting,
                format!(
                    "entry {} must use the URL's scheme ({})",
                    i + 1,
                    if tls { "rediss://" } else { "redis://" }
                ),
            ));
        }
        // The URL's credentials (and the builder's, which won over them) for every node.
        seeds.push(node_info.set_redis_settings(info.redis_settings().clone()));
    }
    let count = seeds.len();
    let r = info.redis_settings();
    let mut builder = ClusterClientBuilder::new(seeds);
    if let Some(user) = r.username() {
        builder = builder.username(user);
    }
    if let Some(password) = r.password() {
        builder = builder.password(password);
    }
    if let Some(certificates) = certificates {
        builder = builder.certs(certificates);
    }
    let client = builder.build().map_err(|e| {
        ConfigError::new(
            "redis.cluster_nodes",
            format!("not a usable set of cluster nodes ({})", kind_name(&e)),
        )
    })?;
    let plural = if count == 1 { "" } else { "s" };
    Ok((
        Target::Cluster(client),
        format!("{display} (Redis Cluster, {count} seed node{plural})"),
    ))
}

/// A Sentinel client for the primary of `master`, with the URL's scheme, credentials and
/// database for the primary and the URL's TLS settings for the sentinels too.
pub(super) fn sentinel(
    info: &ConnectionInfo,
    nodes: &[String],
    master: &str,
    certificates: Option<TlsCertificates>,
) -> Result<(Target, String), ConfigError> {
    if master.is_empty() || master.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::new(
            "redis.sentinel_master",
            "must be the master's name as the sentinels monitor it (sentinel monitor <name> …), \
             without spaces",
        ));
    }
    if nodes.is_empty() {
        return Err(ConfigError::new(
            "redis.sentinel",
            "needs at least one sentinel address (host:port)",
        ));
    }
    if matches!(info.addr(), ConnectionAddr::Unix(_)) {
        return Err(ConfigError::new(
            "redis.url",
            "with Sentinel the URL must be redis:// or rediss:// (its scheme, credentials and \
             database apply to the primary the sentinels name)",
        ));
    }
    let tls = certificates.is_some();
    let mut addrs = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (host, port) = host_port(node.trim()).ok_or_else(|| {
            ConfigError::new("redis.sentinel", "expected host:port, comma-separated")
                .with_value(node.escape_debug().to_string())
        })?;
        addrs.push(if tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        });
    }
    let r = info.redis_settings();
    let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
        .map_err(|e| ConfigError::new("redis.sentinel", format!("not usable ({})", kind_name(&e))))?
        .set_client_to_redis_db(r.db());
    if let Some(user) = r.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = r.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(certificates) = certificates {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_redis_certificates(certificates.clone())
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_certificates(certificates);
    }
    let client = builder.build().map_err(|e| {
        ConfigError::new(
            "redis.sentinel",
            format!("the Sentinel settings are not usable ({})", kind_name(&e)),
        )
    })?;
    let scheme = if tls { "rediss" } else { "redis" };
    let display = format!(
        "{scheme}://{}{}/{} (Sentinel master {} at {})",
        auth_part(r),
        master.escape_debug(),
        r.db(),
        master.escape_debug(),
        nodes
            .iter()
            .map(|n| n.trim().escape_debug().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok((Target::Sentinel(tokio::sync::Mutex::new(client)), display))
}

/// `host:port` or `[v6]:port`.
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['/', '@', ' '])
        || (host.contains(':') && !s.starts_with('['))
    {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn sentinel_addresses() {
        assert_eq!(
            host_port("127.0.0.1:26379"),
            Some(("127.0.0.1".into(), 26379))
        );
        assert_eq!(host_port("[::1]:26379"), Some(("::1".into(), 26379)));
        assert_eq!(
            host_port("sentinel-0.redis:26379"),
            Some(("sentinel-0.redis".into(), 26379))
        );
        for bad in [
            "127.0.0.1",
            ":26379",
            "h:0",
            "h:x",
            "::1:26379",
            "redis://h:1",
            "u@h:1",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
