//! Who is on the other end: the client IP address, resolved safely behind reverse proxies.
//!
//! # The rule
//!
//! A request's peer (the TCP socket address) is the only address nobody can forge. Forwarding
//! headers (`X-Forwarded-For`, `Forwarded`) are written by whoever sent the request, so they are
//! believed only when the peer is one of *your* proxies, listed with
//! [`ClientAddrResolverBuilder::trusted_proxies`]. Each proxy appends the address it received the
//! connection from to the right of the list, so the list is walked from the **right**: hops that
//! are trusted proxies are skipped, and the first untrusted hop is the client. The leftmost entry
//! is never taken on its own, because it is whatever the client chose to send.
//!
//! | peer | header | resolved client |
//! |---|---|---|
//! | untrusted `198.51.100.4` | `X-Forwarded-For: 6.6.6.6` | `198.51.100.4` (header ignored) |
//! | trusted `10.0.0.1` | `X-Forwarded-For: 6.6.6.6, 203.0.113.9` | `203.0.113.9` |
//! | trusted `10.0.0.1` | `X-Forwarded-For: 203.0.113.9, 10.0.0.2` (10.0.0.2 trusted) | `203.0.113.9` |
//! | trusted `10.0.0.1` | `X-Forwarded-For: 10.9.9.9, 10.0.0.2` (all trusted) | `10.9.9.9` (leftmost) |
//! | trusted `10.0.0.1` | `X-Forwarded-For: 203.0.113.9, unknown` | `10.0.0.1` (unparseable hop) |
//!
//! Only one header is read: the one your proxy appends to, chosen with [`ForwardedHeader`].
//! An unparseable hop reached during the walk (garbage, `unknown`, an obfuscated `_name`, an
//! empty entry, non-ASCII bytes) makes the resolver fall back to the peer address: the chain
//! cannot be trusted past that point, and guessing would let a client choose its address.
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address everywhere.
//!
//! # Getting the peer address
//!
//! [`ClientAddrResolver::resolve`] reads the peer address from the request extensions, in this
//! order:
//!
//! 1. [`PeerAddr`], which a plain hyper server inserts per connection;
//! 2. `axum::extract::ConnectInfo<SocketAddr>` (feature `axum`), present when the app is served
//!    with `into_make_service_with_connect_info::<SocketAddr>()`;
//! 3. `tonic::transport::server::TcpConnectInfo` (feature `tonic`), present for tonic's TCP
//!    transport.
//!
//! Without any of them there is no client address: [`ClientAddrLayer`] then inserts nothing, and
//! layers that key on [`ClientAddr`] must decide for themselves (a rate limiter should refuse to
//! share one anonymous bucket silently).
//!
//! # Rate-limit keys
//!
//! One IPv6 customer usually holds a whole /56 (or /48), so keying a rate limit on the full
//! address lets a client rotate through 2^72 addresses. [`ClientAddr::rate_limit_key`] is the
//! address masked to a configurable prefix: /56 for IPv6 and /32 (the whole address) for IPv4 by
//! default.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::ConfigError;

mod forwarded;
mod layer;

use forwarded::{forwarded_for_hops_rev, x_forwarded_for_hops_rev};
pub use forwarded::{
    parse_forwarded_for_hops, parse_x_forwarded_for_hop, parse_x_forwarded_for_hops,
};
pub use layer::{ClientAddrLayer, ClientAddrService};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Default prefix length of IPv4 rate-limit keys: the whole address.
pub const DEFAULT_IPV4_PREFIX: u8 = 32;

/// Default prefix length of IPv6 rate-limit keys: a /56, the usual size of one customer's
/// delegation.
pub const DEFAULT_IPV6_PREFIX: u8 = 56;

/// The socket address of the connection's peer, as a request extension.
///
/// Servers that are neither axum (with `ConnectInfo`) nor tonic insert this into every request's
/// extensions, once per connection, so [`ClientAddrResolver`] can find the peer. With hyper:
///
/// ```
/// use std::net::SocketAddr;
/// use mcp_security_core::client_addr::PeerAddr;
///
/// # let remote: SocketAddr = "198.51.100.4:50000".parse().unwrap();
/// // inside `hyper::service::service_fn(move |mut req| { ... })`, with `remote` from `accept()`:
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr(remote));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// Which forwarding header the trusted proxy appends to. Only this header is read.
///
/// There is deliberately no "whichever is present": if the resolver preferred `Forwarded` when
/// present, a client behind a proxy that only appends `X-Forwarded-For` could send its own
/// `Forwarded: for=…` header, which the proxy passes through untouched, and pick its address.
/// Configure the one header your proxy actually writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"` (Envoy can, some
    /// CDNs do).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name.
    pub fn header_name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => X_FORWARDED_FOR,
            Self::Forwarded => http::header::FORWARDED,
        }
    }

    /// The header's name in lower case, as accepted by [`FromStr`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

impl fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForwardedHeader {
    type Err = ConfigError;

    /// Parses `x-forwarded-for` or `forwarded`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(Self::XForwardedFor)
        } else if trimmed.eq_ignore_ascii_case("forwarded") {
            Ok(Self::Forwarded)
        } else {
            Err(ConfigError::new(
                "forwarded_header",
                "expected `x-forwarded-for` or `forwarded`",
            )
            .with_value(s))
        }
    }
}

/// The resolved client of one request. Inserted into request extensions by [`ClientAddrLayer`].
///
/// To make one in a test, resolve a bare peer:
/// `ClientAddrResolver::default().resolve_from_peer(addr, &HeaderMap::new())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    ip: IpAddr,
    peer: SocketAddr,
    via_proxy: bool,
    rate_limit_key: IpAddr,
}

impl ClientAddr {
    /// The client's IP address: the peer's, or the one taken from the forwarding header when the
    /// peer is a trusted proxy. IPv4-mapped IPv6 addresses are returned as IPv4.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The socket address of the connection's peer (IPv4-mapped addresses as IPv4).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether [`ip`](Self::ip) was taken from a forwarding header rather than the peer.
    pub fn via_proxy(&self) -> bool {
        self.via_proxy
    }

    /// The key to rate-limit this client by: [`ip`](Self::ip) masked to the configured prefix
    /// (IPv6 /56 and IPv4 /32 by default), so the addresses of one IPv6 delegation share a
    /// bucket.
    pub fn rate_limit_key(&self) -> IpAddr {
        self.rate_limit_key
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.ip, f)
    }
}

#[derive(Debug)]
struct ResolverConfig {
    trusted_v4: Vec<Ipv4Net>,
    trusted_v6: Vec<Ipv6Net>,
    header: ForwardedHeader,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl ResolverConfig {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.trusted_v4.iter().any(|net| net.contains(&v4)),
            IpAddr::V6(v6) => self.trusted_v6.iter().any(|net| net.contains(&v6)),
        }
    }

    fn rate_limit_key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(u32::from(32u8.saturating_sub(self.ipv4_prefix)))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(u32::from(128u8.saturating_sub(self.ipv6_prefix)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
            }
        }
    }

    /// Walks the configured header from the right. `None` means "use the peer".
    fn client_from_header(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let values = headers.get_all(self.header.header_name()).into_iter().rev();
        match self.header {
            ForwardedHeader::XForwardedFor => {
                self.first_untrusted(values.flat_map(|v| x_forwarded_for_hops_rev(v.as_bytes())))
            }
            ForwardedHeader::Forwarded => {
                self.first_untrusted(values.flat_map(|v| forwarded_for_hops_rev(v.as_bytes())))
            }
        }
    }

    /// The first untrusted hop of `hops` (given right to left), else the last (leftmost) trusted
    /// one; `None` when there are no hops or an unparseable hop comes first.
    fn first_untrusted(&self, hops: impl Iterator<Item = Option<IpAddr>>) -> Option<IpAddr> {
        let mut leftmost = None;
        for hop in hops {
            let ip = hop?;
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
        leftmost
    }
}

/// Resolves the [`ClientAddr`] of a request from its peer address and, when the peer is a
/// trusted proxy, its forwarding header. Cheap to clone (an `Arc` of validated configuration).
///
/// The [`Default`] resolver trusts no proxy: the client is always the peer.
///
/// ```
/// use mcp_security_core::client_addr::{ClientAddrResolver, ForwardedHeader};
///
/// let resolver = ClientAddrResolver::builder()
///     .trusted_proxies(["10.0.0.0/8", "fd00::/8", "192.0.2.10"])
///     .forwarded_header(ForwardedHeader::XForwardedFor)
///     .ipv6_prefix(64)
///     .build()?;
///
/// let peer = "10.1.2.3:40000".parse()?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse()?);
/// let client = resolver.resolve_from_peer(peer, &headers);
/// assert_eq!(client.ip().to_string(), "203.0.113.9");
/// assert!(client.via_proxy());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientAddrResolver {
    config: Arc<ResolverConfig>,
}

impl Default for ClientAddrResolver {
    fn default() -> Self {
        Self {
            config: Arc::new(ResolverConfig {
                trusted_v4: Vec::new(),
                trusted_v6: Vec::new(),
                header: ForwardedHeader::default(),
                ipv4_prefix: DEFAULT_IPV4_PREFIX,
                ipv6_prefix: DEFAULT_IPV6_PREFIX,
            }),
        }
    }
}

impl ClientAddrResolver {
    /// A builder with no trusted proxies, `X-Forwarded-For`, and /32 and /56 key prefixes.
    pub fn builder() -> ClientAddrResolverBuilder {
        ClientAddrResolverBuilder::default()
    }

    /// Resolves the client of a request: the peer address from `extensions` (see the
    /// [module docs](self)), then the forwarding header from `headers` if the peer is trusted.
    /// `None` when the extensions carry no peer address.
    pub fn resolve(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Option<ClientAddr> {
        peer_addr(extensions).map(|peer| self.resolve_from_peer(peer, headers))
    }

    /// Resolves the client of a request whose peer address is already known.
    pub fn resolve_from_peer(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let peer_ip = peer.ip().to_canonical();
        let peer = SocketAddr::new(peer_ip, peer.port());
        let forwarded = if self.config.is_trusted(peer_ip) {
            self.config.client_from_header(headers)
        } else {
            None
        };
        let (ip, via_proxy) = match forwarded {
            Some(ip) => (ip, true),
            None => (peer_ip, false),
        };
        ClientAddr {
            ip,
            peer,
            via_proxy,
            rate_limit_key: self.config.rate_limit_key(ip),
        }
    }

    /// Whether `ip` (IPv4-mapped addresses as IPv4) is in the trusted-proxy list.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config.is_trusted(ip)
    }

    /// The trusted-proxy networks, IPv4 first, as validated by the builder (IPv4-mapped networks
    /// converted to IPv4).
    pub fn trusted_proxies(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self.config.trusted_v4.iter().copied().map(IpNet::V4);
        let v6 = self.config.trusted_v6.iter().copied().map(IpNet::V6);
        v4.chain(v6)
    }

    /// The header forwarding addresses are read from.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.config.header
    }

    /// The prefix length IPv4 rate-limit keys are masked to.
    pub fn ipv4_prefix(&self) -> u8 {
        self.config.ipv4_prefix
    }

    /// The prefix length IPv6 rate-limit keys are masked to.
    pub fn ipv6_prefix(&self) -> u8 {
        self.config.ipv6_prefix
    }
}

/// Builds a [`ClientAddrResolver`]. Methods record the first invalid value; [`build`](Self::build)
/// reports it, naming the setting.
#[derive(Debug, Clone)]
pub struct ClientAddrResolverBuilder {
    trusted_v4: Vec<Ipv4Net>,
    trusted_v6: Vec<Ipv6Net>,
    header: ForwardedHeader,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    error: Option<ConfigError>,
}

impl Default for ClientAddrResolverBuilder {
    fn default() -> Self {
        Self {
            trusted_v4: Vec::new(),
            trusted_v6: Vec::new(),
            header: ForwardedHeader::default(),
            ipv4_prefix: DEFAULT_IPV4_PREFIX,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            error: None,
        }
    }
}

impl ClientAddrResolverBuilder {
    /// Adds trusted proxies: CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses (a /32 or
    /// /128), one per item, surrounding whitespace ignored.
    ///
    /// Refused at [`build`](Self::build), under the setting `trusted_proxies`: anything that does
    /// not parse, a CIDR with host bits set (`10.0.0.1/8` — write `10.0.0.0/8` or `10.0.0.1`, so
    /// a typo cannot silently widen trust), and a /0, which would believe every client's headers.
    /// IPv4-mapped networks (`::ffff:10.0.0.0/104`) are stored as IPv4 (`10.0.0.0/8`).
    #[must_use]
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for proxy in proxies {
            if self.error.is_some() {
                break;
            }
            let raw = proxy.as_ref();
            match parse_trusted_proxy(raw).and_then(|net| validate_net(net, raw, "trusted_proxies"))
            {
                Ok(net) => self.push(net),
                Err(err) => self.error = Some(err),
            }
        }
        self
    }

    /// Adds trusted proxy networks. The same rules as
    /// [`trusted_proxies`](Self::trusted_proxies) apply, under the setting `trusted_proxy_nets`.
    #[must_use]
    pub fn trusted_proxy_nets<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        for net in nets {
            if self.error.is_some() {
                break;
            }
            match validate_net(net, &net.to_string(), "trusted_proxy_nets") {
                Ok(net) => self.push(net),
                Err(err) => self.error = Some(err),
            }
        }
        self
    }

    /// Which header the trusted proxies append to (default `X-Forwarded-For`). The other one is
    /// ignored; see [`ForwardedHeader`] for why.
    #[must_use]
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Prefix length IPv6 rate-limit keys are masked to, 1 to 128 (default 56).
    #[must_use]
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix;
        self
    }

    /// Prefix length IPv4 rate-limit keys are masked to, 1 to 32 (default 32).
    #[must_use]
    pub fn ipv4_prefix(mut self, prefix: u8) -> Self {
        self.ipv4_prefix = prefix;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first refused setting (`trusted_proxies`,
    /// `trusted_proxy_nets`, `ipv4_prefix` or `ipv6_prefix`) and its value.
    pub fn build(self) -> Result<ClientAddrResolver, ConfigError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        if !(1..=32).contains(&self.ipv4_prefix) {
            return Err(ConfigError::new("ipv4_prefix", "must be between 1 and 32")
                .with_value(self.ipv4_prefix.to_string()));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(ConfigError::new("ipv6_prefix", "must be between 1 and 128")
                .with_value(self.ipv6_prefix.to_string()));
        }
        Ok(ClientAddrResolver {
            config: Arc::new(ResolverConfig {
                trusted_v4: self.trusted_v4,
                trusted_v6: self.trusted_v6,
                header: self.header,
                ipv4_prefix: self.ipv4_prefix,
                ipv6_prefix: self.ipv6_prefix,
            }),
        })
    }

    fn push(&mut self, net: IpNet) {
        match net {
            IpNet::V4(v4) => self.trusted_v4.push(v4),
            IpNet::V6(v6) => self.trusted_v6.push(v6),
        }
    }
}

fn parse_trusted_proxy(raw: &str) -> Result<IpNet, ConfigError> {
    let trimmed = raw.trim();
    let invalid = |reason: &str| ConfigError::new("trusted_proxies", reason).with_value(raw);
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if trimmed.contains('/') {
        trimmed.parse::<IpNet>().map_err(|_| {
            invalid("not a CIDR network (expected one per item, like 10.0.0.0/8 or 2001:db8::/32)")
        })
    } else {
        trimmed.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            invalid(
                "not an IP address or CIDR network (expected one per item, like 10.0.0.0/8 or 192.0.2.10)",
            )
        })
    }
}

fn validate_net(net: IpNet, raw: &str, setting: &str) -> Result<IpNet, ConfigError> {
    // IPv4-mapped IPv6 networks become the IPv4 network they cover, since addresses are matched
    // in canonical (IPv4) form.
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    };
    if net.addr() != net.network() {
        return Err(ConfigError::new(
            setting,
            format!(
                "has host bits set; write the network ({}) or the single address ({})",
                net.trunc(),
                net.addr()
            ),
        )
        .with_value(raw));
    }
    if net.prefix_len() == 0 {
        return Err(ConfigError::new(
            setting,
            "trusts every address, which lets any client choose its IP through forwarding headers; list your proxies' networks",
        )
        .with_value(raw));
    }
    Ok(net)
}

/// The peer socket address recorded in request extensions: [`PeerAddr`], else axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`), else tonic's `TcpConnectInfo` (feature `tonic`).
/// Returned as recorded (not canonicalized).
pub fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    #[cfg(feature = "tonic")]
    if let Some(addr) = extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(tonic::transport::server::TcpConnectInfo::remote_addr)
    {
        return Some(addr);
    }
    None
}

#[cfg(test)]
mod tests;
