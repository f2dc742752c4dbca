//! The decision itself, free of HTTP: network sets, the lists that apply to a path, and whether
//! a client address passes them.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mcp_security_core::percent::normalize_path;

/// A set of networks, IPv4 and IPv6 apart; IPv4-mapped IPv6 networks are stored as IPv4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NetSet {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl NetSet {
    pub(super) fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut set = NetSet::default();
        for net in nets {
            match normalize_net(net) {
                IpNet::V4(n) if !set.v4.contains(&n) => set.v4.push(n),
                IpNet::V6(n) if !set.v6.contains(&n) => set.v6.push(n),
                _ => {}
            }
        }
        set
    }

    pub(super) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The first network containing `ip` (IPv4-mapped addresses as IPv4).
    pub(super) fn find(&self, ip: IpAddr) -> Option<IpNet> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self
                .v4
                .iter()
                .find(|n| n.contains(&v4))
                .map(|n| IpNet::V4(*n)),
            IpAddr::V6(v6) => self
                .v6
                .iter()
                .find(|n| n.contains(&v6))
                .map(|n| IpNet::V6(*n)),
        }
    }

    /// The networks, IPv4 first.
    pub(super) fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.v4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(self.v6.iter().map(|n| IpNet::V6(*n)))
    }
}

impl fmt::Display for NetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(&net, f)?;
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it maps
/// (`10.0.0.0/8`); any other network unchanged.
pub(super) fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// An allow list and a deny list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Lists {
    pub(super) allow: NetSet,
    pub(super) deny: NetSet,
}

/// Why a client was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No client address could be resolved while a list applies.
    NoClientAddr,
    /// The address is in a denied network.
    Denied { ip: IpAddr, net: IpNet },
    /// An allow list applies and the address is in none of its networks.
    NotAllowed { ip: IpAddr },
}

impl Lists {
    /// Neither list has an entry: every client passes.
    pub(super) fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Deny wins over allow; an empty allow list allows any address; without an address a
    /// non-open pair refuses (fail closed).
    pub(super) fn decide(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let Some(ip) = ip.map(|ip| ip.to_canonical()) else {
            return Err(Refusal::NoClientAddr);
        };
        if let Some(net) = self.deny.find(ip) {
            return Err(Refusal::Denied { ip, net });
        }
        if !self.allow.is_empty() && self.allow.find(ip).is_none() {
            return Err(Refusal::NotAllowed { ip });
        }
        Ok(())
    }
}

/// The server-wide lists and the path rules, longest prefix first.
#[derive(Debug, Clone, Default)]
pub(super) struct Rules {
    pub(super) global: Lists,
    /// Sorted by prefix length, longest first, so the first match is the longest.
    pub(super) paths: Vec<(Box<str>, Lists)>,
}

/// Which lists decided: the server-wide ones or a path rule's (its prefix).
pub(super) type Scope<'a> = Option<&'a str>;

impl Rules {
    /// Whether no request can ever be refused.
    pub(super) fn is_open(&self) -> bool {
        self.global.is_open() && self.paths.iter().all(|(_, l)| l.is_open())
    }

    /// The lists for `path`: the longest matching path rule's, else the server-wide ones.
    pub(super) fn lists_for(&self, path: &str) -> (&Lists, Scope<'_>) {
        self.paths
            .iter()
            .find(|(prefix, _)| has_prefix(path, prefix))
            .map_or((&self.global, None), |(p, l)| (l, Some(&**p)))
    }

    /// Decide for a request to `path` from `ip`. A path that normalises differently (percent
    /// escapes, `//`, `.` and `..` segments) must pass the lists of both spellings, so no
    /// spelling a router might map onto a restricted prefix slips past its rule.
    pub(super) fn decide(
        &self,
        path: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), (Refusal, Scope<'_>)> {
        let (lists, scope) = self.lists_for(path);
        lists.decide(ip).map_err(|r| (r, scope))?;
        if let Cow::Owned(normalized) = normalize_path(path) {
            let (other, scope) = self.lists_for(&normalized);
            if !std::ptr::eq(other, lists) {
                other.decide(ip).map_err(|r| (r, scope))?;
            }
        }
        Ok(())
    }
}

/// `path` equals `prefix` or continues it at a segment boundary; `/` matches every path.
pub(super) fn has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix == "/",
        None => false,
    }
}
