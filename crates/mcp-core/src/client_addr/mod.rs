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
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::ConfigError;

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
/// use mcp_core::client_addr::PeerAddr;
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
/// use mcp_core::client_addr::{ClientAddrResolver, ForwardedHeader};
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

/// Parses one `X-Forwarded-For` entry: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`, surrounding spaces and tabs ignored.
///
/// IPv4-mapped IPv6 addresses are returned as IPv4. Anything else (`unknown`, host names, zone
/// ids, empty) is `None`.
pub fn parse_x_forwarded_for_hop(hop: &str) -> Option<IpAddr> {
    parse_node(trim_ows(hop.as_bytes()))
}

/// The entries of one `X-Forwarded-For` value, **right to left** (nearest proxy first), each
/// parsed with [`parse_x_forwarded_for_hop`] (`None` for an unparseable entry).
pub fn parse_x_forwarded_for_hops(value: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    x_forwarded_for_hops_rev(value.as_bytes())
}

/// The `for=` addresses of one RFC 7239 `Forwarded` value, **right to left** (nearest proxy
/// first): one item per comma-separated element, `None` when that element has no usable address.
///
/// Parameter names are case-insensitive; values may be quoted or not: `for=192.0.2.60`,
/// `For="192.0.2.60:8080"`, `for="[2001:db8:cafe::17]:4711"`. An element is `None` when its
/// `for` is `unknown`, obfuscated (`_hidden`), missing, repeated, or contains escapes, or when
/// the element is malformed (unbalanced quotes, a parameter without `=`). Commas and semicolons
/// inside quoted strings do not split. After an element with unbalanced quotes the iterator
/// ends. IPv4-mapped IPv6 addresses are returned as IPv4.
pub fn parse_forwarded_for_hops(value: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    forwarded_for_hops_rev(value.as_bytes())
}

fn x_forwarded_for_hops_rev(value: &[u8]) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    value
        .rsplit(|&b| b == b',')
        .map(|hop| parse_node(trim_ows(hop)))
}

fn forwarded_for_hops_rev(value: &[u8]) -> ForwardedElementsRev<'_> {
    ForwardedElementsRev { rest: Some(value) }
}

/// Splits a `Forwarded` value into elements from the right, honouring quoted strings.
struct ForwardedElementsRev<'a> {
    rest: Option<&'a [u8]>,
}

impl Iterator for ForwardedElementsRev<'_> {
    type Item = Option<IpAddr>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let mut inside_quotes = false;
        for (i, &b) in rest.iter().enumerate().rev() {
            if inside_quotes {
                // Scanning leftwards, a quote opens the string unless an odd run of backslashes
                // escapes it.
                if b == b'"' && preceding_backslashes(rest, i).is_multiple_of(2) {
                    inside_quotes = false;
                }
            } else if b == b'"' {
                inside_quotes = true;
            } else if b == b',' {
                self.rest = rest.get(..i);
                return Some(rest.get(i + 1..).and_then(parse_forwarded_element));
            }
        }
        self.rest = None;
        if inside_quotes {
            Some(None)
        } else {
            Some(parse_forwarded_element(rest))
        }
    }
}

fn preceding_backslashes(bytes: &[u8], index: usize) -> usize {
    bytes.get(..index).map_or(0, |before| {
        before.iter().rev().take_while(|&&b| b == b'\\').count()
    })
}

/// The `for` address of one `Forwarded` element (`for=…;proto=…;by=…`).
fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
    let mut for_value = None;
    let mut pair_start = 0;
    let mut inside_quotes = false;
    let mut escaped = false;
    for (i, &b) in element.iter().enumerate() {
        if inside_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                inside_quotes = false;
            }
        } else if b == b'"' {
            inside_quotes = true;
        } else if b == b';' {
            forwarded_pair(element.get(pair_start..i)?, &mut for_value)?;
            pair_start = i + 1;
        }
    }
    if inside_quotes {
        return None;
    }
    forwarded_pair(element.get(pair_start..)?, &mut for_value)?;
    let value = for_value?;
    let node = match value.strip_prefix(b"\"") {
        Some(quoted) => {
            let inner = quoted.strip_suffix(b"\"")?;
            if inner.contains(&b'\\') {
                return None;
            }
            inner
        }
        None => value,
    };
    parse_node(node)
}

/// Checks one `name=value` pair, recording the value of `for`. `None` when malformed.
fn forwarded_pair<'a>(pair: &'a [u8], for_value: &mut Option<&'a [u8]>) -> Option<()> {
    let pair = trim_ows(pair);
    let eq = pair.iter().position(|&b| b == b'=')?;
    let name = trim_ows(pair.get(..eq)?);
    let value = trim_ows(pair.get(eq + 1..)?);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || !is_forwarded_value(value) {
        return None;
    }
    if name.eq_ignore_ascii_case(b"for") {
        if for_value.is_some() {
            return None;
        }
        *for_value = Some(value);
    }
    Some(())
}

/// A non-empty token-ish value without quotes, or exactly one quoted string.
fn is_forwarded_value(value: &[u8]) -> bool {
    let Some(quoted) = value.strip_prefix(b"\"") else {
        return !value.is_empty() && !value.contains(&b'"');
    };
    let mut escaped = false;
    for (i, &b) in quoted.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return i + 1 == quoted.len();
        }
    }
    false
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `ipv4`, `ipv4:port`, `ipv6`, `[ipv6]` or `[ipv6]:port`, canonicalized.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    if let Some(bracketed) = node.strip_prefix(b"[") {
        let close = bracketed.iter().position(|&b| b == b']')?;
        let after = bracketed.get(close + 1..)?;
        if !after.is_empty() && !is_port(after.strip_prefix(b":")?) {
            return None;
        }
        let v6: Ipv6Addr = parse_ascii(bracketed.get(..close)?)?;
        return Some(IpAddr::V6(v6).to_canonical());
    }
    if let Some(ip) = parse_ascii::<IpAddr>(node) {
        return Some(ip.to_canonical());
    }
    let colon = node.iter().rposition(|&b| b == b':')?;
    if !is_port(node.get(colon + 1..)?) {
        return None;
    }
    parse_ascii::<Ipv4Addr>(node.get(..colon)?).map(IpAddr::V4)
}

/// `1*5DIGIT` up to 65535, or an RFC 7239 obfuscated port (`_abc`).
fn is_port(port: &[u8]) -> bool {
    if let Some(obfuscated) = port.strip_prefix(b"_") {
        return !obfuscated.is_empty()
            && obfuscated
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    }
    (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(port)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .is_some()
}

fn parse_ascii<T: FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Resolves each request's [`ClientAddr`] and inserts it into the request extensions.
///
/// Requests that already carry a `ClientAddr` keep it; requests without a known peer address
/// (see the [module docs](self)) get none. Place it outermost, before anything that reads the
/// client address (audit, rate limiting).
///
/// ```
/// use std::convert::Infallible;
/// use mcp_core::client_addr::{ClientAddr, ClientAddrLayer, ClientAddrResolver, PeerAddr};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let resolver = ClientAddrResolver::builder()
///     .trusted_proxies(["10.0.0.0/8"])
///     .build()?;
///
/// let service = ServiceBuilder::new()
///     .layer(ClientAddrLayer::new(resolver))
///     .service_fn(|req: http::Request<()>| async move {
///         let client = req.extensions().get::<ClientAddr>().copied();
///         Ok::<_, Infallible>(client.map(|c| c.ip().to_string()))
///     });
///
/// // A plain hyper server inserts the connection's peer address; axum and tonic record it
/// // themselves (features `axum` and `tonic`).
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerAddr("10.0.0.7:50000".parse()?));
/// request
///     .headers_mut()
///     .insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse()?);
///
/// let ip = service.oneshot(request).await?;
/// assert_eq!(ip.as_deref(), Some("203.0.113.9"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientAddrLayer {
    resolver: ClientAddrResolver,
}

impl ClientAddrLayer {
    /// A layer resolving clients with `resolver`.
    pub fn new(resolver: ClientAddrResolver) -> Self {
        Self { resolver }
    }

    /// The resolver this layer uses.
    pub fn resolver(&self) -> &ClientAddrResolver {
        &self.resolver
    }
}

impl<S> Layer<S> for ClientAddrLayer {
    type Service = ClientAddrService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddrService::new(inner, self.resolver.clone())
    }
}

/// The service made by [`ClientAddrLayer`]: inserts the request's [`ClientAddr`], then calls the
/// inner service. Its future is the inner service's future.
#[derive(Debug, Clone)]
pub struct ClientAddrService<S> {
    inner: S,
    resolver: ClientAddrResolver,
}

impl<S> ClientAddrService<S> {
    /// Wraps `inner`, resolving clients with `resolver`.
    pub fn new(inner: S, resolver: ClientAddrResolver) -> Self {
        Self { inner, resolver }
    }

    /// A [`ClientAddrLayer`] producing this service.
    pub fn layer(resolver: ClientAddrResolver) -> ClientAddrLayer {
        ClientAddrLayer::new(resolver)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The resolver this service uses.
    pub fn resolver(&self) -> &ClientAddrResolver {
        &self.resolver
    }
}

impl<S, B> Service<Request<B>> for ClientAddrService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.extensions().get::<ClientAddr>().is_none()
            && let Some(client) = self.resolver.resolve(req.headers(), req.extensions())
        {
            req.extensions_mut().insert(client);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn resolver(trusted: &[&str], header: ForwardedHeader) -> ClientAddrResolver {
        ClientAddrResolver::builder()
            .trusted_proxies(trusted)
            .forwarded_header(header)
            .build()
            .unwrap()
    }

    fn xff_resolver() -> ClientAddrResolver {
        resolver(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::XForwardedFor)
    }

    fn fwd_resolver() -> ClientAddrResolver {
        resolver(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::Forwarded)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn resolve(r: &ClientAddrResolver, peer: &str, pairs: &[(&str, &str)]) -> ClientAddr {
        let mut ext = http::Extensions::new();
        ext.insert(PeerAddr(sock(peer)));
        r.resolve(&headers(pairs), &ext).unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_spoofed_x_forwarded_for() {
        let c = resolve(
            &xff_resolver(),
            "198.51.100.4:5000",
            &[("x-forwarded-for", "6.6.6.6")],
        );
        assert_eq!(c.ip(), ip("198.51.100.4"));
        assert_eq!(c.peer(), sock("198.51.100.4:5000"));
        assert!(!c.via_proxy());
        assert_eq!(c.rate_limit_key(), ip("198.51.100.4"));
    }

    #[test]
    fn untrusted_peer_ignores_spoofed_forwarded() {
        let c = resolve(
            &fwd_resolver(),
            "198.51.100.4:5000",
            &[("forwarded", "for=6.6.6.6")],
        );
        assert_eq!(c.ip(), ip("198.51.100.4"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn default_resolver_trusts_nobody() {
        let c = resolve(
            &ClientAddrResolver::default(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "203.0.113.9")],
        );
        assert_eq!(c.ip(), ip("10.0.0.1"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_hop_not_spoofed_leftmost() {
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.9")],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));
        assert_eq!(c.peer(), sock("10.0.0.1:5000"));
        assert!(c.via_proxy());
    }

    #[test]
    fn trusted_chain_of_two_proxies_is_skipped() {
        // client 203.0.113.9 -> proxy 10.0.0.2 -> proxy 10.0.0.1 -> us; 6.6.6.6 is spoofed.
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));
        assert!(c.via_proxy());
    }

    #[test]
    fn all_hops_trusted_returns_leftmost() {
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "10.9.9.9, 10.0.0.3,10.0.0.2")],
        );
        assert_eq!(c.ip(), ip("10.9.9.9"));
        assert!(c.via_proxy());
    }

    #[test]
    fn header_absent_uses_peer() {
        let c = resolve(&xff_resolver(), "10.0.0.1:5000", &[]);
        assert_eq!(c.ip(), ip("10.0.0.1"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn multiple_x_forwarded_for_instances_are_one_list_in_order() {
        let r = xff_resolver();
        let c = resolve(
            &r,
            "10.0.0.1:5000",
            &[
                ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
                ("x-forwarded-for", "10.0.0.2"),
            ],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));

        let c = resolve(
            &r,
            "10.0.0.1:5000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        assert_eq!(c.ip(), ip("198.51.100.7"));
    }

    #[test]
    fn x_forwarded_for_entries_with_ports_and_brackets() {
        let r = xff_resolver();
        for (value, expected) in [
            ("192.0.2.1:8080", "192.0.2.1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("\t192.0.2.1 ", "192.0.2.1"),
        ] {
            let c = resolve(&r, "10.0.0.1:5000", &[("x-forwarded-for", value)]);
            assert_eq!(c.ip(), ip(expected), "{value}");
            assert!(c.via_proxy(), "{value}");
        }
    }

    #[test]
    fn forwarded_quoted_ipv6_with_port() {
        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[("forwarded", r#"for="[2001:db8:cafe::17]:4711""#)],
        );
        assert_eq!(c.ip(), ip("2001:db8:cafe::17"));
        assert!(c.via_proxy());
    }

    #[test]
    fn forwarded_multiple_elements_and_other_params() {
        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[(
                "forwarded",
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="198.51.100.17:8080";by="[fd00::1]";proto=https, proto=https; FOR=10.0.0.3 ;by=_proxy"#,
            )],
        );
        assert_eq!(c.ip(), ip("198.51.100.17"));
        assert!(c.via_proxy());
    }

    #[test]
    fn forwarded_multiple_instances_and_quoted_commas() {
        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[
                ("forwarded", r#"for=6.6.6.6;ext="a, for=10.0.0.9; b""#),
                ("forwarded", "for=203.0.113.9;ext=\"x\\\"y, z\""),
                ("forwarded", "for=10.0.0.2"),
            ],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_header_ignored_when_x_forwarded_for_configured() {
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));

        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("forwarded", "for=6.6.6.6")],
        );
        assert_eq!(c.ip(), ip("10.0.0.1"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn x_forwarded_for_ignored_when_forwarded_configured() {
        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=203.0.113.9"),
            ],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));

        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "6.6.6.6")],
        );
        assert_eq!(c.ip(), ip("10.0.0.1"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn malformed_x_forwarded_for_falls_back_to_peer() {
        let r = xff_resolver();
        for value in [
            "garbage",
            "unknown",
            "_hidden",
            "",
            "   ",
            "203.0.113.9,",
            "203.0.113.9, unknown",
            "203.0.113.9,,10.0.0.2",
            "example.com",
            "203.0.113.9:99999",
            "203.0.113.9:",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "fe80::1%eth0",
            "\"203.0.113.9\"",
        ] {
            let c = resolve(&r, "10.0.0.1:5000", &[("x-forwarded-for", value)]);
            assert_eq!(c.ip(), ip("10.0.0.1"), "{value:?}");
            assert!(!c.via_proxy(), "{value:?}");
        }
    }

    #[test]
    fn malformed_forwarded_falls_back_to_peer() {
        let r = fwd_resolver();
        for value in [
            "garbage",
            "for=unknown",
            "for=_hidden",
            "for=",
            "for=\"\"",
            "",
            "proto=https",
            "for=203.0.113.9;for=198.51.100.1",
            "for=203.0.113.9,",
            r#"for="[2001:db8::1]"#,
            r#"for="203.0.113.9"x"#,
            r#"for="203\.0.113.9""#,
            "for=203.0.113.9;proto",
            "for=203.0.113.9;=https",
            "for=203.0.113.9;pro to=https",
            "for=2001:db8::1:99999x",
            "for=203.0.113.9 ; by=\"unterminated",
        ] {
            let c = resolve(&r, "10.0.0.1:5000", &[("forwarded", value)]);
            assert_eq!(c.ip(), ip("10.0.0.1"), "{value:?}");
            assert!(!c.via_proxy(), "{value:?}");
        }
    }

    #[test]
    fn non_ascii_header_bytes_fall_back_to_peer() {
        for (r, name) in [
            (xff_resolver(), "x-forwarded-for"),
            (fwd_resolver(), "forwarded"),
        ] {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(b"for=203.0.113.9\xff\xfe").unwrap(),
            );
            let c = r.resolve_from_peer(sock("10.0.0.1:5000"), &map);
            assert_eq!(c.ip(), ip("10.0.0.1"), "{name}");
            assert!(!c.via_proxy());
        }
    }

    #[test]
    fn unparseable_hop_beyond_the_client_is_never_reached() {
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "garbage, unknown, 203.0.113.9")],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));

        let mut map = HeaderMap::new();
        map.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 6.6.6.6").unwrap(),
        );
        map.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let c = xff_resolver().resolve_from_peer(sock("10.0.0.1:5000"), &map);
        assert_eq!(c.ip(), ip("203.0.113.9"));

        let c = resolve(
            &fwd_resolver(),
            "10.0.0.1:5000",
            &[("forwarded", "for=unknown, garbage;x=\"y, for=203.0.113.9")],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));
    }

    #[test]
    fn unparseable_trusted_hop_falls_back_even_with_a_client_to_its_left() {
        let c = resolve(
            &xff_resolver(),
            "10.0.0.1:5000",
            &[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.2")],
        );
        assert_eq!(c.ip(), ip("10.0.0.1"));
        assert!(!c.via_proxy());
    }

    #[test]
    fn ipv6_rate_limit_keys_default_to_slash_56() {
        let r = ClientAddrResolver::default();
        let key = |s: &str| {
            r.resolve_from_peer(sock(s), &HeaderMap::new())
                .rate_limit_key()
        };
        let a = key("[2001:db8:1:100::1]:1000");
        let b = key("[2001:db8:1:1ff:ffff::2]:1000");
        let other = key("[2001:db8:1:200::1]:1000");
        assert_eq!(a, ip("2001:db8:1:100::"));
        assert_eq!(b, ip("2001:db8:1:100::"));
        assert_eq!(other, ip("2001:db8:1:200::"));
        assert_ne!(a, other);
    }

    #[test]
    fn ipv6_rate_limit_keys_with_custom_slash_64() {
        let r = ClientAddrResolver::builder()
            .ipv6_prefix(64)
            .build()
            .unwrap();
        let key = |s: &str| {
            r.resolve_from_peer(sock(s), &HeaderMap::new())
                .rate_limit_key()
        };
        assert_eq!(key("[2001:db8:1:100::1]:1"), ip("2001:db8:1:100::"));
        assert_eq!(key("[2001:db8:1:100:abcd::9]:1"), ip("2001:db8:1:100::"));
        assert_eq!(key("[2001:db8:1:101::1]:1"), ip("2001:db8:1:101::"));
        assert_eq!(r.ipv6_prefix(), 64);
    }

    #[test]
    fn ipv4_rate_limit_keys() {
        let r = ClientAddrResolver::default();
        let c = r.resolve_from_peer(sock("198.51.100.77:1"), &HeaderMap::new());
        assert_eq!(c.rate_limit_key(), ip("198.51.100.77"));

        let r = ClientAddrResolver::builder()
            .ipv4_prefix(24)
            .build()
            .unwrap();
        let c = r.resolve_from_peer(sock("198.51.100.77:1"), &HeaderMap::new());
        assert_eq!(c.rate_limit_key(), ip("198.51.100.0"));
        assert_eq!(c.ip(), ip("198.51.100.77"));
    }

    #[test]
    fn rate_limit_key_is_of_the_forwarded_client() {
        let r = ClientAddrResolver::builder()
            .trusted_proxies(["10.0.0.0/8"])
            .build()
            .unwrap();
        let c = resolve(
            &r,
            "10.0.0.1:5000",
            &[("x-forwarded-for", "[2001:db8:1:1ab::5]:443")],
        );
        assert_eq!(c.ip(), ip("2001:db8:1:1ab::5"));
        assert_eq!(c.rate_limit_key(), ip("2001:db8:1:100::"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonicalized() {
        let r = xff_resolver();
        // mapped peer is matched against the IPv4 trusted list; mapped hop becomes IPv4
        let c = resolve(
            &r,
            "[::ffff:10.0.0.1]:5000",
            &[(
                "x-forwarded-for",
                "::ffff:203.0.113.9, [::ffff:10.0.0.2]:80",
            )],
        );
        assert_eq!(c.peer(), sock("10.0.0.1:5000"));
        assert_eq!(c.ip(), ip("203.0.113.9"));
        assert_eq!(c.rate_limit_key(), ip("203.0.113.9"));
        assert!(c.via_proxy());

        // untrusted mapped peer
        let c = resolve(&r, "[::ffff:198.51.100.4]:5000", &[]);
        assert_eq!(c.ip(), ip("198.51.100.4"));
        assert_eq!(c.peer(), sock("198.51.100.4:5000"));

        // a mapped trusted-proxy entry is stored and matched as IPv4
        let r = ClientAddrResolver::builder()
            .trusted_proxies(["::ffff:10.0.0.0/104", "::ffff:192.0.2.10"])
            .forwarded_header(ForwardedHeader::Forwarded)
            .build()
            .unwrap();
        assert_eq!(
            r.trusted_proxies().collect::<Vec<_>>(),
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "192.0.2.10/32".parse().unwrap()
            ]
        );
        assert!(r.is_trusted_proxy(ip("::ffff:10.1.2.3")));
        let c = resolve(
            &r,
            "192.0.2.10:5000",
            &[("forwarded", r#"for="[::ffff:203.0.113.9]""#)],
        );
        assert_eq!(c.ip(), ip("203.0.113.9"));
    }

    #[test]
    fn no_peer_address_resolves_to_none() {
        let r = xff_resolver();
        let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(r.resolve(&map, &http::Extensions::new()), None);
    }

    #[cfg(feature = "axum")]
    #[test]
    fn peer_from_axum_connect_info() {
        let mut ext = http::Extensions::new();
        ext.insert(axum::extract::ConnectInfo(sock("10.0.0.1:5000")));
        let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let c = xff_resolver().resolve(&map, &ext).unwrap();
        assert_eq!(c.peer(), sock("10.0.0.1:5000"));
        assert_eq!(c.ip(), ip("203.0.113.9"));

        // our PeerAddr wins over ConnectInfo
        ext.insert(PeerAddr(sock("198.51.100.4:1")));
        let c = xff_resolver().resolve(&map, &ext).unwrap();
        assert_eq!(c.ip(), ip("198.51.100.4"));
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn peer_from_tonic_tcp_connect_info() {
        let mut ext = http::Extensions::new();
        ext.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: Some(sock("127.0.0.1:50051")),
            remote_addr: Some(sock("198.51.100.4:6000")),
        });
        let c = xff_resolver().resolve(&HeaderMap::new(), &ext).unwrap();
        assert_eq!(c.peer(), sock("198.51.100.4:6000"));
        assert_eq!(c.ip(), ip("198.51.100.4"));

        let mut ext = http::Extensions::new();
        ext.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: None,
        });
        assert_eq!(xff_resolver().resolve(&HeaderMap::new(), &ext), None);
    }

    #[test]
    fn builder_errors_name_the_setting_and_value() {
        let err = |b: ClientAddrResolverBuilder| b.build().unwrap_err();

        for bad in ["10.0.0.0/33", "not-an-ip", "", "10.0.0.0/8,192.168.0.0/16"] {
            let e = err(ClientAddrResolver::builder().trusted_proxies([bad]));
            assert_eq!(e.setting(), "trusted_proxies", "{bad:?}");
            assert_eq!(e.value(), Some(bad));
        }

        let e = err(ClientAddrResolver::builder().trusted_proxies(["10.0.0.0/8", "10.0.0.1/8"]));
        assert_eq!(e.setting(), "trusted_proxies");
        assert_eq!(e.value(), Some("10.0.0.1/8"));
        assert!(e.reason().contains("10.0.0.0/8"), "{e}");

        for bad in ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96"] {
            let e = err(ClientAddrResolver::builder().trusted_proxies([bad]));
            assert_eq!(e.setting(), "trusted_proxies");
            assert_eq!(e.value(), Some(bad));
            assert!(e.reason().contains("every address"), "{e}");
        }

        let e = err(ClientAddrResolver::builder()
            .trusted_proxy_nets(["0.0.0.0/0".parse::<IpNet>().unwrap()]));
        assert_eq!(e.setting(), "trusted_proxy_nets");
        assert_eq!(e.value(), Some("0.0.0.0/0"));

        for bad in [0, 129] {
            let e = err(ClientAddrResolver::builder().ipv6_prefix(bad));
            assert_eq!(e.setting(), "ipv6_prefix");
            assert_eq!(e.value(), Some(bad.to_string().as_str()));
        }
        for bad in [0, 33] {
            let e = err(ClientAddrResolver::builder().ipv4_prefix(bad));
            assert_eq!(e.setting(), "ipv4_prefix");
            assert_eq!(e.value(), Some(bad.to_string().as_str()));
        }
    }

    #[test]
    fn builder_accepts_cidrs_bare_addresses_and_nets() {
        let r = ClientAddrResolver::builder()
            .trusted_proxies([" 10.0.0.0/8 ", "2001:db8::/32", "192.0.2.10", "fd00::1"])
            .trusted_proxy_nets(["172.16.0.0/12".parse::<IpNet>().unwrap()])
            .ipv4_prefix(32)
            .ipv6_prefix(128)
            .build()
            .unwrap();
        let nets: Vec<String> = r.trusted_proxies().map(|n| n.to_string()).collect();
        assert_eq!(
            nets,
            [
                "10.0.0.0/8",
                "192.0.2.10/32",
                "172.16.0.0/12",
                "2001:db8::/32",
                "fd00::1/128"
            ]
        );
        assert!(r.is_trusted_proxy(ip("192.0.2.10")));
        assert!(!r.is_trusted_proxy(ip("192.0.2.11")));
        assert!(r.is_trusted_proxy(ip("172.31.255.255")));
        assert_eq!(r.forwarded_header(), ForwardedHeader::XForwardedFor);
    }

    #[test]
    fn forwarded_header_parses_and_displays() {
        assert_eq!(
            "X-Forwarded-For".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::XForwardedFor
        );
        assert_eq!(
            " forwarded ".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::Forwarded
        );
        let e = "x-real-ip".parse::<ForwardedHeader>().unwrap_err();
        assert_eq!(e.setting(), "forwarded_header");
        assert_eq!(e.value(), Some("x-real-ip"));
        assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
        assert_eq!(ForwardedHeader::Forwarded.to_string(), "forwarded");
        assert_eq!(
            ForwardedHeader::XForwardedFor.header_name(),
            "x-forwarded-for"
        );
    }

    #[test]
    fn public_parsers() {
        assert_eq!(
            parse_x_forwarded_for_hop(" [::ffff:192.0.2.1]:80 "),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(parse_x_forwarded_for_hop("unknown"), None);
        assert_eq!(
            parse_x_forwarded_for_hops("203.0.113.9, nope,10.0.0.1").collect::<Vec<_>>(),
            [Some(ip("10.0.0.1")), None, Some(ip("203.0.113.9"))]
        );
        assert_eq!(
            parse_forwarded_for_hops(
                r#"for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https, for=unknown, by=10.0.0.1"#
            )
            .collect::<Vec<_>>(),
            [
                None,
                None,
                Some(ip("2001:db8:cafe::17")),
                Some(ip("192.0.2.43"))
            ]
        );
        // unbalanced quote: that element is None and the iteration ends
        assert_eq!(
            parse_forwarded_for_hops(r#"for=192.0.2.43, x="a, for=198.51.100.1"#)
                .collect::<Vec<_>>(),
            [Some(ip("198.51.100.1")), None]
        );
        assert_eq!(
            parse_forwarded_for_hops(r#"for=192.0.2.43, x="a\"", for=198.51.100.1"#)
                .collect::<Vec<_>>(),
            [Some(ip("198.51.100.1")), None, Some(ip("192.0.2.43"))]
        );
    }

    async fn echo_client(req: Request<()>) -> Result<Option<ClientAddr>, Infallible> {
        Ok(req.extensions().get::<ClientAddr>().copied())
    }

    #[tokio::test]
    async fn layer_inserts_client_addr() {
        let svc = ClientAddrLayer::new(xff_resolver()).layer(tower::service_fn(echo_client));
        let mut req = Request::new(());
        req.extensions_mut().insert(PeerAddr(sock("10.0.0.1:5000")));
        req.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        let client = svc.oneshot(req).await.unwrap().unwrap();
        assert_eq!(client.ip(), ip("203.0.113.9"));
        assert_eq!(client.peer(), sock("10.0.0.1:5000"));
        assert!(client.via_proxy());
    }

    #[tokio::test]
    async fn layer_keeps_an_existing_client_addr_and_skips_unknown_peers() {
        let svc = ClientAddrLayer::new(xff_resolver()).layer(tower::service_fn(echo_client));
        let existing =
            ClientAddrResolver::default().resolve_from_peer(sock("192.0.2.1:1"), &HeaderMap::new());
        let mut req = Request::new(());
        req.extensions_mut().insert(PeerAddr(sock("10.0.0.1:5000")));
        req.extensions_mut().insert(existing);
        assert_eq!(svc.clone().oneshot(req).await.unwrap(), Some(existing));

        let req = Request::new(());
        assert_eq!(svc.oneshot(req).await.unwrap(), None);
    }
}
