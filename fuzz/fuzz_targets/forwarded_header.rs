//! Fuzz client-address resolution behind a trusted proxy, for both `X-Forwarded-For` and
//! `Forwarded`.
//!
//! The input is split on `\n` (which can never be inside a header value) into up to eight
//! header instances; instances `HeaderValue::from_bytes` refuses are skipped. Invariants:
//! - nothing panics, including the public hop parsers on arbitrary text;
//! - a known peer always resolves (`Some`), and the peer is reported unchanged;
//! - an untrusted peer is always the client, whatever the headers say;
//! - behind the trusted peer, the result equals a simple reference walk (collect every hop, right
//!   to left, skip trusted ones, first untrusted wins, all trusted → leftmost, unparseable →
//!   peer), so a client IP other than the peer is one that actually appears in the configured
//!   header, and never one from the other header (a decoy is added there);
//! - addresses come back canonical (no IPv4-mapped IPv6), and `rate_limit_key` is the network
//!   of `ip` at the configured prefix.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use mcp_security_core::client_addr::{
    ClientAddrResolver, ForwardedHeader, PeerAddr, parse_forwarded_for_hops,
    parse_x_forwarded_for_hop, parse_x_forwarded_for_hops,
};

const TRUSTED: [&str; 4] = ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "2001:db8::/32"];
const TRUSTED_PEER: &str = "10.0.0.1:443";
const UNTRUSTED_PEER: &str = "198.51.100.4:443";
/// Put in the header that is *not* configured; it must never come out.
const DECOY: &str = "198.18.6.6";

struct Case {
    kind: ForwardedHeader,
    other: ForwardedHeader,
    decoy: HeaderValue,
    resolver: ClientAddrResolver,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

static CASES: LazyLock<[Case; 2]> = LazyLock::new(|| {
    let case = |kind, other, decoy: String, ipv4_prefix, ipv6_prefix| Case {
        kind,
        other,
        decoy: HeaderValue::from_str(&decoy).expect("decoy header value"),
        resolver: ClientAddrResolver::builder()
            .trusted_proxies(TRUSTED)
            .forwarded_header(kind)
            .ipv4_prefix(ipv4_prefix)
            .ipv6_prefix(ipv6_prefix)
            .build()
            .expect("valid fuzz configuration"),
        ipv4_prefix,
        ipv6_prefix,
    };
    [
        case(
            ForwardedHeader::XForwardedFor,
            ForwardedHeader::Forwarded,
            format!("for={DECOY}"),
            24,
            56,
        ),
        case(
            ForwardedHeader::Forwarded,
            ForwardedHeader::XForwardedFor,
            DECOY.to_owned(),
            32,
            64,
        ),
    ]
});

static TRUSTED_NETS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    TRUSTED
        .iter()
        .map(|net| net.parse().expect("trusted net"))
        .collect()
});

fn is_trusted(ip: IpAddr) -> bool {
    TRUSTED_NETS.iter().any(|net| net.contains(&ip))
}

fn assert_canonical(ip: IpAddr) {
    if let IpAddr::V6(v6) = ip {
        assert!(v6.to_ipv4_mapped().is_none(), "not canonical: {ip}");
    }
}

/// Every hop of the configured header, right to left, parsed independently of the resolver's
/// byte-level walk.
fn reference_hops(kind: ForwardedHeader, values: &[HeaderValue]) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in values.iter().rev() {
        // Invalid UTF-8 becomes U+FFFD, which no hop parser accepts, as the byte-level walk
        // refuses the raw bytes; ASCII structure (quotes, commas) is unchanged.
        let text = String::from_utf8_lossy(value.as_bytes());
        match kind {
            ForwardedHeader::XForwardedFor => {
                hops.extend(text.split(',').rev().map(parse_x_forwarded_for_hop));
            }
            ForwardedHeader::Forwarded => hops.extend(parse_forwarded_for_hops(&text)),
        }
    }
    hops
}

/// The client by the documented rule; `None` means the peer.
fn reference_client(hops: &[Option<IpAddr>]) -> Option<IpAddr> {
    let mut leftmost = None;
    for hop in hops {
        let ip = (*hop)?;
        if !is_trusted(ip) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn check(case: &Case, values: &[HeaderValue], data: &[u8]) {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(case.kind.header_name(), value.clone());
    }
    headers.append(case.other.header_name(), case.decoy.clone());

    // Untrusted peer: headers are ignored entirely.
    let untrusted: SocketAddr = UNTRUSTED_PEER.parse().expect("peer");
    let mut extensions = http::Extensions::new();
    extensions.insert(PeerAddr(untrusted));
    let client = case
        .resolver
        .resolve(&headers, &extensions)
        .expect("peer known");
    assert_eq!(client.ip(), untrusted.ip());
    assert_eq!(client.peer(), untrusted);
    assert!(!client.via_proxy());

    // Trusted peer: the reference walk.
    let peer: SocketAddr = TRUSTED_PEER.parse().expect("peer");
    let mut extensions = http::Extensions::new();
    extensions.insert(PeerAddr(peer));
    let client = case
        .resolver
        .resolve(&headers, &extensions)
        .expect("peer known");
    assert_eq!(client.peer(), peer);

    let hops = reference_hops(case.kind, values);
    match reference_client(&hops) {
        Some(expected) => {
            assert_eq!(client.ip(), expected, "hops {hops:?}");
            assert!(client.via_proxy());
        }
        None => {
            assert_eq!(client.ip(), peer.ip(), "hops {hops:?}");
            assert!(!client.via_proxy());
        }
    }

    let ip = client.ip();
    assert_canonical(ip);
    if client.via_proxy() {
        assert!(hops.contains(&Some(ip)));
        // It appears in the input text: IPv4 as a dotted quad, or written IPv4-mapped (which
        // always spells out `ffff`); IPv6 needs at least a colon.
        match ip {
            IpAddr::V4(v4) => assert!(
                contains_ignore_case(data, v4.to_string().as_bytes())
                    || contains_ignore_case(data, b"ffff"),
                "{ip} not in input"
            ),
            IpAddr::V6(_) => assert!(data.contains(&b':'), "{ip} not in input"),
        }
    }

    // The rate-limit key is the network of `ip` at the configured prefix.
    let prefix = match ip {
        IpAddr::V4(_) => case.ipv4_prefix,
        IpAddr::V6(_) => case.ipv6_prefix,
    };
    let net = IpNet::new(ip, prefix).expect("prefix in range");
    assert_eq!(client.rate_limit_key(), net.network());
    assert!(net.contains(&client.rate_limit_key()));
}

fuzz_target!(|data: &[u8]| {
    // The public parsers on arbitrary text.
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = parse_forwarded_for_hops(text)
            .chain(parse_x_forwarded_for_hops(text))
            .chain(std::iter::once(parse_x_forwarded_for_hop(text)));
        for ip in parsed.flatten() {
            assert_canonical(ip);
        }
    }

    let values: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .take(8)
        .filter_map(|value| HeaderValue::from_bytes(value).ok())
        .collect();
    for case in CASES.iter() {
        check(case, &values, data);
    }
});
