//! [`NetworkPolicyLayerBuilder`], [`NetworkRule`] and [`parse_network`]: the settings, validated
//! when built.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use mcp_security_core::client_addr::ClientAddrResolver;
use mcp_security_core::config::ConfigError;

use super::matcher::{Lists, NetSet, Rules, normalize_net};
use super::{Config, NetworkPolicyLayer};
use crate::origin_guard::DEFAULT_MCP_PATH;

/// Parse one list entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare address (one host). An
/// IPv4-mapped IPv6 entry (`::ffff:10.0.0.0/104`) becomes the IPv4 network it maps.
///
/// ```
/// use mcp_headers::network::parse_network;
///
/// assert_eq!(parse_network("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
/// assert_eq!(parse_network("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
/// assert_eq!(parse_network("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
/// assert!(parse_network("10.0.0.1/8").unwrap_err().contains("10.0.0.0/8"));
/// ```
///
/// # Errors
/// Why the entry is refused (neither a CIDR nor an address; host bits set), naming the network
/// or address that was probably meant.
pub fn parse_network(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match entry.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(
                    "expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address".to_owned(),
                );
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "has host bits set; write the network ({}) or the single address ({})",
            net.trunc(),
            net.addr()
        ));
    }
    Ok(normalize_net(net))
}

/// The allow and deny lists for one path prefix; see [`NetworkPolicyLayerBuilder::path`]. A
/// rule replaces the server-wide lists for its prefix (the longest matching prefix wins); a
/// rule with both lists empty leaves its prefix open to every client.
#[derive(Debug, Clone)]
#[must_use]
pub struct NetworkRule {
    prefix: String,
    allow: Vec<String>,
    deny: Vec<String>,
}

impl NetworkRule {
    /// A rule for `prefix` (`/metrics`: the path itself and everything under it), with empty
    /// lists.
    pub fn new(prefix: impl Into<String>) -> Self {
        NetworkRule {
            prefix: prefix.into(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Add networks clients under this prefix must come from (CIDRs or addresses; see
    /// [`parse_network`]).
    pub fn allow<I, S>(mut self, networks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allow
            .extend(networks.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Add networks refused under this prefix, even when an allow entry also matches.
    pub fn deny<I, S>(mut self, networks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.deny
            .extend(networks.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The path prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Builds a [`NetworkPolicyLayer`]; see [`NetworkPolicyLayer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct NetworkPolicyLayerBuilder {
    allow: Vec<String>,
    deny: Vec<String>,
    rules: Vec<NetworkRule>,
    resolver: Option<ClientAddrResolver>,
    mcp_path: String,
}

impl Default for NetworkPolicyLayerBuilder {
    fn default() -> Self {
        NetworkPolicyLayerBuilder {
            allow: Vec::new(),
            deny: Vec::new(),
            rules: Vec::new(),
            resolver: None,
            mcp_path: DEFAULT_MCP_PATH.to_owned(),
        }
    }
}

impl NetworkPolicyLayerBuilder {
    /// Add server-wide allowed networks (`ALLOW_NETWORKS`): when any is set, a client outside
    /// all of them is refused on every path without a rule of its own.
    pub fn allow<I, S>(mut self, networks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allow
            .extend(networks.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Add server-wide denied networks (`DENY_NETWORKS`), refused even when an allow entry also
    /// matches.
    pub fn deny<I, S>(mut self, networks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.deny
            .extend(networks.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Add a path rule, replacing the server-wide lists for its prefix. Two rules for the same
    /// prefix are refused at build.
    pub fn path(mut self, rule: NetworkRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// How the client address is resolved: which proxies' forwarding headers are believed
    /// (default: none, the peer address is the client). Give the stack's one resolver.
    pub fn client_addr_resolver(mut self, resolver: ClientAddrResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The MCP endpoint path (default `/mcp`): `POST`s to it and under it are refused with a
    /// JSON-RPC error.
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.mcp_path = path.into();
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// Names the setting: `allow_networks`, `deny_networks` (an entry that is not a network, or
    /// has host bits set), `network_rules` (a prefix not starting with `/`, ending with `/`, or
    /// given twice), `network_rules[PREFIX].allow` / `.deny`, or `mcp_path`.
    pub fn build(self) -> Result<NetworkPolicyLayer, ConfigError> {
        let path_ok = |p: &str| p.starts_with('/') && (p.len() == 1 || !p.ends_with('/'));
        if !path_ok(&self.mcp_path) {
            return Err(
                ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                    .with_value(self.mcp_path),
            );
        }
        let global = Lists {
            allow: parse_list("allow_networks", &self.allow)?,
            deny: parse_list("deny_networks", &self.deny)?,
        };
        let mut paths: Vec<(Box<str>, Lists)> = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            if !path_ok(&rule.prefix) {
                return Err(ConfigError::new(
                    "network_rules",
                    "a path prefix must start with '/' and not end with '/'",
                )
                .with_value(&rule.prefix));
            }
            if paths.iter().any(|(p, _)| **p == *rule.prefix) {
                return Err(ConfigError::new(
                    "network_rules",
                    "two rules for the same path prefix; merge their lists",
                )
                .with_value(&rule.prefix));
            }
            let name = |list: &str| format!("network_rules[{}].{list}", rule.prefix);
            let lists = Lists {
                allow: parse_list(&name("allow"), &rule.allow)?,
                deny: parse_list(&name("deny"), &rule.deny)?,
            };
            paths.push((rule.prefix.as_str().into(), lists));
        }
        paths.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let rules = Rules { global, paths };
        Ok(NetworkPolicyLayer {
            config: Arc::new(Config {
                open: rules.is_open(),
                rules,
                resolver: self.resolver.unwrap_or_default(),
                mcp_path: self.mcp_path.into(),
            }),
        })
    }
}

fn parse_list(setting: &str, entries: &[String]) -> Result<NetSet, ConfigError> {
    let nets = entries
        .iter()
        .map(|e| parse_network(e).map_err(|why| ConfigError::new(setting, why).with_value(e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetSet::new(nets))
}
