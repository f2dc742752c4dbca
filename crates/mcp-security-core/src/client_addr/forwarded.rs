//! Parsing forwarding headers: `X-Forwarded-For` entries and RFC 7239 `Forwarded` elements, read
//! right to left, strictly (a malformed element yields no address rather than a guess).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

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

pub(super) fn x_forwarded_for_hops_rev(value: &[u8]) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    value
        .rsplit(|&b| b == b',')
        .map(|hop| parse_node(trim_ows(hop)))
}

pub(super) fn forwarded_for_hops_rev(value: &[u8]) -> ForwardedElementsRev<'_> {
    ForwardedElementsRev { rest: Some(value) }
}

/// Splits a `Forwarded` value into elements from the right, honouring quoted strings.
pub(super) struct ForwardedElementsRev<'a> {
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

pub(super) fn preceding_backslashes(bytes: &[u8], index: usize) -> usize {
    bytes.get(..index).map_or(0, |before| {
        before.iter().rev().take_while(|&&b| b == b'\\').count()
    })
}

/// The `for` address of one `Forwarded` element (`for=…;proto=…;by=…`).
pub(super) fn parse_forwarded_element(element: &[u8]) -> Option<IpAddr> {
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
pub(super) fn forwarded_pair<'a>(pair: &'a [u8], for_value: &mut Option<&'a [u8]>) -> Option<()> {
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
pub(super) fn is_forwarded_value(value: &[u8]) -> bool {
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

pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(super) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `ipv4`, `ipv4:port`, `ipv6`, `[ipv6]` or `[ipv6]:port`, canonicalized.
pub(super) fn parse_node(node: &[u8]) -> Option<IpAddr> {
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
pub(super) fn is_port(port: &[u8]) -> bool {
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

pub(super) fn parse_ascii<T: FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
