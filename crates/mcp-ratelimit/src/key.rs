//! [`KeySelector`]: what a limit counts per — and how a request becomes a fixed-size key.
//!
//! The parts a selector picks (client address, principal, route class, MCP method, MCP tool) are
//! hashed with a per-process random key into a 128-bit digest (SipHash-1-3, the standard
//! library's `RandomState`, finished twice). The store keeps only that digest, so
//!
//! - every tracked key costs the same memory, whatever a client sends (a 1 MB tool name costs
//!   16 bytes, and no client-chosen string is retained);
//! - clients cannot aim collisions or hash flooding at the store: without the process's random
//!   key they cannot predict a digest, and two different keys share a bucket with probability
//!   about 2⁻¹²⁸ per pair.

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;

use mcp_security_core::Principal;

const CLIENT: u8 = 1;
const PRINCIPAL: u8 = 1 << 1;
const PRINCIPAL_OR_CLIENT: u8 = 1 << 2;
const CLASS: u8 = 1 << 3;
const METHOD: u8 = 1 << 4;
const TOOL: u8 = 1 << 5;

const NAMES: [(u8, &str); 6] = [
    (CLIENT, "client_addr"),
    (PRINCIPAL, "principal"),
    (PRINCIPAL_OR_CLIENT, "principal_or_client_addr"),
    (CLASS, "route_class"),
    (METHOD, "mcp_method"),
    (TOOL, "mcp_tool"),
];

/// What a [`Limit`](crate::Limit) counts per: one bucket per distinct combination of the selected
/// parts. Combine parts with [`and`](Self::and).
///
/// | part | value | when the request has none |
/// |---|---|---|
/// | [`client_addr`](Self::client_addr) | the client's [rate-limit key](mcp_security_core::client_addr::ClientAddr::rate_limit_key) (IPv6 by prefix) | counted in the limit's shared overflow bucket (never waved through), with a warning |
/// | [`principal`](Self::principal) | the [`Principal`]'s kind and id | the limit does not apply |
/// | [`principal_or_client_addr`](Self::principal_or_client_addr) | the principal, else the client address | as `client_addr` |
/// | [`route_class`](Self::route_class) | the request's [route class](crate::RouteClass) | the limit does not apply |
/// | [`mcp_method`](Self::mcp_method) | each JSON-RPC message's `method` | the limit does not apply |
/// | [`mcp_tool`](Self::mcp_tool) | the tool of each `tools/call` message | the limit does not apply |
///
/// [`global`](Self::global) selects nothing: one bucket for every request.
///
/// ```
/// use mcp_ratelimit::KeySelector;
///
/// let per_user_and_tool = KeySelector::principal().and(KeySelector::mcp_tool());
/// assert_eq!(per_user_and_tool.to_string(), "principal+mcp_tool");
/// assert_eq!(KeySelector::global().to_string(), "global");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeySelector {
    parts: u8,
}

impl KeySelector {
    /// One bucket for every request the limit applies to.
    pub const fn global() -> Self {
        KeySelector { parts: 0 }
    }

    /// Per client address (IPv6 clients by prefix, from
    /// [`ClientAddr`](mcp_security_core::client_addr::ClientAddr)).
    pub const fn client_addr() -> Self {
        KeySelector { parts: CLIENT }
    }

    /// Per authenticated principal (kind and id); requests without a principal are not counted.
    pub const fn principal() -> Self {
        KeySelector { parts: PRINCIPAL }
    }

    /// Per principal when there is one, else per client address.
    pub const fn principal_or_client_addr() -> Self {
        KeySelector {
            parts: PRINCIPAL_OR_CLIENT,
        }
    }

    /// Per route class; requests in no class are not counted.
    pub const fn route_class() -> Self {
        KeySelector { parts: CLASS }
    }

    /// Per MCP method (`tools/call`, `resources/read`, …); non-MCP requests are not counted.
    pub const fn mcp_method() -> Self {
        KeySelector { parts: METHOD }
    }

    /// Per MCP tool (the `params.name` of `tools/call`); other requests are not counted.
    pub const fn mcp_tool() -> Self {
        KeySelector { parts: TOOL }
    }

    /// Both selectors' parts: one bucket per combination.
    #[must_use]
    pub const fn and(self, other: KeySelector) -> Self {
        KeySelector {
            parts: self.parts | other.parts,
        }
    }

    const fn has(self, part: u8) -> bool {
        self.parts & part != 0
    }

    /// Whether the key depends on the JSON-RPC message (so batches are counted per message).
    pub(crate) const fn per_message(self) -> bool {
        self.has(CLASS) || self.has(METHOD) || self.has(TOOL)
    }

    /// Whether the key includes the route class.
    pub(crate) const fn uses_class(self) -> bool {
        self.has(CLASS)
    }

    /// Whether the key needs the client address.
    pub(crate) const fn uses_client(self) -> bool {
        self.has(CLIENT) || self.has(PRINCIPAL_OR_CLIENT)
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts == 0 {
            return f.write_str("global");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.has(bit) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySelector({self})")
    }
}

/// What a request offers to key on, for one message (or none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyParts<'a> {
    pub(crate) client: Option<IpAddr>,
    pub(crate) principal: Option<&'a Principal>,
    pub(crate) class: Option<u16>,
    pub(crate) method: Option<&'a str>,
    pub(crate) tool: Option<&'a str>,
}

/// A tracked key: a 128-bit keyed digest of the limit and the selected parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StoreKey(pub(crate) u64, pub(crate) u64);

impl std::hash::Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: hand the map its first half as is.
        state.write_u64(self.0);
    }
}

/// Where a key goes when the in-memory store is full: the network prefix of its client address
/// (IPv4 /24, IPv6 /48) or the kind of its principal, packed in 64 bits (a tag in the top
/// byte). [`NetPrefix::NONE`] for selectors without an identity (global, class, method, tool),
/// whose keys go to the overflow bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NetPrefix(u64);

const TAG_V4: u64 = 1 << 56;
const TAG_V6: u64 = 2 << 56;
const TAG_KIND: u64 = 3 << 56;

impl NetPrefix {
    pub(crate) const NONE: NetPrefix = NetPrefix(0);

    fn of_ip(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => NetPrefix(TAG_V4 | u64::from(v4.to_bits() >> 8)),
            IpAddr::V6(v6) => NetPrefix(TAG_V6 | (v6.to_bits() >> 80) as u64),
        }
    }

    /// A principal kind, by the first 7 bytes of its name (`api_key`, `jwt`, `dev_byp`).
    fn of_kind(p: &Principal) -> Self {
        let mut bytes = [0u8; 8];
        for (slot, b) in bytes.iter_mut().skip(1).zip(p.kind().as_str().bytes()) {
            *slot = b;
        }
        NetPrefix(TAG_KIND | u64::from_be_bytes(bytes))
    }

    /// The prefix of the key `selector` makes of `parts`.
    pub(crate) fn of(selector: KeySelector, parts: &KeyParts<'_>) -> Self {
        if selector.has(CLIENT) {
            return parts.client.map_or(NetPrefix::NONE, NetPrefix::of_ip);
        }
        if selector.has(PRINCIPAL) {
            return parts.principal.map_or(NetPrefix::NONE, NetPrefix::of_kind);
        }
        if selector.has(PRINCIPAL_OR_CLIENT) {
            return match (parts.principal, parts.client) {
                (Some(p), _) => NetPrefix::of_kind(p),
                (None, Some(ip)) => NetPrefix::of_ip(ip),
                (None, None) => NetPrefix::NONE,
            };
        }
        NetPrefix::NONE
    }

    /// A per-process keyed digest of limit `limit`'s bucket for this prefix (`None` for
    /// [`NetPrefix::NONE`]).
    pub(crate) fn key(self, state: &RandomState, limit: u16) -> Option<StoreKey> {
        if self == NetPrefix::NONE {
            return None;
        }
        let mut h = state.build_hasher();
        h.write_u16(limit);
        h.write_u64(self.0);
        let mut second = h.clone();
        second.write_u8(0xA5);
        Some(StoreKey(h.finish(), second.finish()))
    }
}

/// What a selector made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// A key to track.
    Key(StoreKey),
    /// The selector needs the client address and there is none: use the overflow bucket.
    NoClient,
    /// The limit does not apply.
    Skip,
}

/// Turns selected parts into [`StoreKey`]s with a per-process random key.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyHasher {
    state: RandomState,
}

impl KeyHasher {
    pub(crate) fn select(
        &self,
        limit: u16,
        selector: KeySelector,
        parts: &KeyParts<'_>,
    ) -> Selected {
        let mut h = self.state.build_hasher();
        h.write_u16(limit);
        if let Err(not_keyed) = write_parts(&mut h, selector, parts) {
            return not_keyed;
        }
        let mut second = h.clone();
        second.write_u8(0xA5);
        Selected::Key(StoreKey(h.finish(), second.finish()))
    }

    /// The same selection as [`select`](Self::select), hashed with SHA-256 of the limit's
    /// *name* instead of a per-process key, so every replica derives the same key for the same
    /// client: what a shared store (Redis) needs. Without the process secret the digest must be
    /// collision resistant on its own, hence SHA-256.
    ///
    /// For a selector with a caller (client address, principal), the key's first half is the
    /// caller's digest ([`caller_stable`]) and its second half the first 64 bits of the whole
    /// selection's: every key of one caller shares its first half, which the Redis store uses
    /// as the Redis Cluster hash tag (one slot per caller, so a caller's limits are one atomic
    /// script). Two keys collide only if both halves do: the same caller (2⁻⁶⁴ per pair of its
    /// own keys, which only its own requests share) or another caller (2⁻¹²⁸ per pair).
    /// Without a caller (global, class, method, tool) both halves are the selection's digest.
    #[cfg(feature = "redis")]
    pub(crate) fn select_stable(
        limit: &str,
        selector: KeySelector,
        parts: &KeyParts<'_>,
    ) -> Selected {
        let mut h = Sha256Hasher::default();
        write_str(&mut h, b'l', limit);
        if let Err(not_keyed) = write_parts(&mut h, selector, parts) {
            return not_keyed;
        }
        let digest = h.digest();
        Selected::Key(match caller_stable(selector, parts) {
            Some(caller) => StoreKey(caller, digest.0),
            None => digest,
        })
    }

    /// A stable key hashed again with the per-process key, for local maps (the deny cache, the
    /// fail-open fallback): stable keys are public knowledge, so they must not pick hash-table
    /// buckets by themselves.
    #[cfg(feature = "redis")]
    pub(crate) fn rekey(&self, key: StoreKey) -> StoreKey {
        let mut h = self.state.build_hasher();
        h.write_u64(key.0);
        h.write_u64(key.1);
        let mut second = h.clone();
        second.write_u8(0xA5);
        StoreKey(h.finish(), second.finish())
    }

    /// The stable key of a limit's shared overflow bucket (requests without a client address).
    #[cfg(feature = "redis")]
    pub(crate) fn overflow_stable(limit: &str) -> StoreKey {
        let mut h = Sha256Hasher::default();
        write_str(&mut h, b'l', limit);
        h.write_u8(b'o');
        h.digest()
    }
}

/// The stable 64-bit digest of the caller a selector keys on: the principal (kind and id) when
/// the selector uses it and the request has one, else the client address; `None` for selectors
/// without a caller. The same caller gets the same digest whatever the limit, so all its keys
/// share one Redis Cluster hash slot.
#[cfg(feature = "redis")]
fn caller_stable(selector: KeySelector, parts: &KeyParts<'_>) -> Option<u64> {
    let mut h = Sha256Hasher::default();
    h.write_u8(b'C');
    match (parts.principal, parts.client) {
        (Some(p), _) if selector.has(PRINCIPAL) || selector.has(PRINCIPAL_OR_CLIENT) => {
            write_principal(&mut h, p);
        }
        (_, Some(ip)) if selector.uses_client() => write_ip(&mut h, ip),
        _ => return None,
    }
    Some(h.digest().0)
}

/// Feed the selected parts to `h`; `Err` when the selector cannot key this request.
#[inline]
fn write_parts(
    h: &mut impl Hasher,
    selector: KeySelector,
    parts: &KeyParts<'_>,
) -> Result<(), Selected> {
    if selector.has(CLIENT) {
        let Some(ip) = parts.client else {
            return Err(Selected::NoClient);
        };
        write_ip(h, ip);
    }
    if selector.has(PRINCIPAL) {
        let Some(p) = parts.principal else {
            return Err(Selected::Skip);
        };
        write_principal(h, p);
    }
    if selector.has(PRINCIPAL_OR_CLIENT) {
        match (parts.principal, parts.client) {
            (Some(p), _) => write_principal(h, p),
            (None, Some(ip)) => write_ip(h, ip),
            (None, None) => return Err(Selected::NoClient),
        }
    }
    if selector.has(CLASS) {
        let Some(class) = parts.class else {
            return Err(Selected::Skip);
        };
        h.write_u8(b'c');
        h.write_u16(class);
    }
    if selector.has(METHOD) {
        let Some(method) = parts.method else {
            return Err(Selected::Skip);
        };
        write_str(h, b'm', method);
    }
    if selector.has(TOOL) {
        let Some(tool) = parts.tool else {
            return Err(Selected::Skip);
        };
        write_str(h, b't', tool);
    }
    Ok(())
}

/// A `Hasher` front for SHA-256, with fixed-width little-endian integers (the same key on every
/// replica, whatever its architecture).
#[cfg(feature = "redis")]
#[derive(Default)]
struct Sha256Hasher(sha2::Sha256);

#[cfg(feature = "redis")]
impl Sha256Hasher {
    fn digest(self) -> StoreKey {
        use sha2::Digest;
        let out = self.0.finalize();
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        for (i, byte) in out.iter().take(16).enumerate() {
            if i < 8 {
                a[i] = *byte;
            } else {
                b[i - 8] = *byte;
            }
        }
        StoreKey(u64::from_le_bytes(a), u64::from_le_bytes(b))
    }
}

#[cfg(feature = "redis")]
impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only `digest` is used.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }

    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    fn write_usize(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }
}

fn write_ip(h: &mut impl Hasher, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            h.write_u8(b'4');
            h.write(&v4.octets());
        }
        IpAddr::V6(v6) => {
            h.write_u8(b'6');
            h.write(&v6.octets());
        }
    }
}

fn write_principal(h: &mut impl Hasher, p: &Principal) {
    write_str(h, b'k', p.kind().as_str());
    write_str(h, b'p', p.id());
}

fn write_str(h: &mut impl Hasher, tag: u8, s: &str) {
    h.write_u8(tag);
    h.write_usize(s.len());
    h.write(s.as_bytes());
}

/// A `Hasher` for [`StoreKey`]: passes the already-keyed digest through.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `StoreKey`; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_security_core::PrincipalKind;

    fn parts<'a>(client: Option<&str>, principal: Option<&'a Principal>) -> KeyParts<'a> {
        KeyParts {
            client: client.map(|c| c.parse().unwrap()),
            principal,
            ..KeyParts::default()
        }
    }

    #[test]
    fn selectors_pick_their_parts() {
        let h = KeyHasher::default();
        let alice = Principal::builder("alice", PrincipalKind::ApiKey).build();
        let alice_jwt = Principal::builder("alice", PrincipalKind::Jwt).build();
        let a = parts(Some("192.0.2.1"), Some(&alice));
        let b = parts(Some("192.0.2.2"), Some(&alice));
        let c = parts(Some("192.0.2.1"), Some(&alice_jwt));
        let anon = parts(Some("192.0.2.1"), None);
        let nobody = parts(None, None);

        let client = KeySelector::client_addr();
        assert_ne!(h.select(0, client, &a), h.select(0, client, &b));
        assert_eq!(h.select(0, client, &a), h.select(0, client, &c));
        assert_eq!(h.select(0, client, &nobody), Selected::NoClient);
        // the limit index is part of the key
        assert_ne!(h.select(0, client, &a), h.select(1, client, &a));

        let principal = KeySelector::principal();
        assert_eq!(h.select(0, principal, &a), h.select(0, principal, &b));
        assert_ne!(
            h.select(0, principal, &a),
            h.select(0, principal, &c),
            "kind counts"
        );
        assert_eq!(h.select(0, principal, &anon), Selected::Skip);

        let either = KeySelector::principal_or_client_addr();
        assert_eq!(h.select(0, either, &a), h.select(0, either, &b));
        assert!(matches!(h.select(0, either, &anon), Selected::Key(_)));
        assert_eq!(h.select(0, either, &nobody), Selected::NoClient);

        let global = KeySelector::global();
        assert_eq!(h.select(0, global, &a), h.select(0, global, &nobody));

        let tool = KeySelector::client_addr().and(KeySelector::mcp_tool());
        assert_eq!(h.select(0, tool, &a), Selected::Skip);
        let with_tool = |t| KeyParts { tool: Some(t), ..a };
        assert_ne!(
            h.select(0, tool, &with_tool("x")),
            h.select(0, tool, &with_tool("y"))
        );
        assert!(tool.per_message() && tool.uses_client());
        assert!(!KeySelector::principal().per_message());
    }

    #[test]
    fn strings_are_length_prefixed() {
        let h = KeyHasher::default();
        let s = KeySelector::mcp_method().and(KeySelector::mcp_tool());
        let a = KeyParts {
            method: Some("ab"),
            tool: Some("c"),
            ..KeyParts::default()
        };
        let b = KeyParts {
            method: Some("a"),
            tool: Some("bc"),
            ..KeyParts::default()
        };
        assert_ne!(h.select(0, s, &a), h.select(0, s, &b));
    }

    #[test]
    fn display() {
        let all = KeySelector::client_addr()
            .and(KeySelector::principal())
            .and(KeySelector::principal_or_client_addr())
            .and(KeySelector::route_class())
            .and(KeySelector::mcp_method())
            .and(KeySelector::mcp_tool());
        assert_eq!(
            all.to_string(),
            "client_addr+principal+principal_or_client_addr+route_class+mcp_method+mcp_tool"
        );
        assert_eq!(
            format!("{:?}", KeySelector::client_addr()),
            "KeySelector(client_addr)"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn stable_keys_of_one_caller_share_their_first_half() {
        let alice = Principal::builder("alice", PrincipalKind::ApiKey).build();
        let key = |limit, selector, p: &KeyParts<'_>| match KeyHasher::select_stable(
            limit, selector, p,
        ) {
            Selected::Key(k) => k,
            other => panic!("{other:?}"),
        };
        let a = parts(Some("192.0.2.1"), Some(&alice));
        let b = parts(Some("192.0.2.2"), Some(&alice));
        let ip = KeySelector::client_addr();
        let ip_tool = ip.and(KeySelector::mcp_tool());
        let with_tool = |t| KeyParts { tool: Some(t), ..a };
        // The same client: one first half across limits and tools, distinct keys.
        let k1 = key("ip", ip, &a);
        let k2 = key("ip-tool", ip_tool, &with_tool("x"));
        let k3 = key("ip-tool", ip_tool, &with_tool("y"));
        assert_eq!((k1.0, k2.0), (k2.0, k3.0));
        assert!(k1 != k2 && k2 != k3);
        // Another client: another first half.
        assert_ne!(key("ip", ip, &b).0, k1.0);
        // The principal wins over the address when the selector uses it.
        let p1 = key("user", KeySelector::principal(), &a);
        let p2 = key("either", KeySelector::principal_or_client_addr(), &b);
        assert_eq!(p1.0, p2.0);
        assert_ne!(p1.0, k1.0);
        // Without a caller, both halves are the selection's own digest.
        let g = key("global", KeySelector::global(), &a);
        assert_eq!(g, key("global", KeySelector::global(), &b));
        assert_ne!(g.0, g.1);
        // Stable: the same on every replica (no per-process key).
        assert_eq!(k1, key("ip", ip, &parts(Some("192.0.2.1"), None)));
    }
}
