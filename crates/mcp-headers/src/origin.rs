//! Origins and hosts: parsing, normalisation, and the allowed sets shared by
//! [`CorsPolicy`](crate::CorsPolicy) and [`OriginGuardLayer`](crate::OriginGuardLayer).
//!
//! An origin is compared as `scheme://host[:port]`: scheme and host case-insensitively, and the
//! default port of `http`/`ws` (80) and `https`/`wss` (443) normalised away, so
//! `https://App.Example:443` and `https://app.example` are the same origin. Anything else — a
//! path, a query, userinfo, a non-ASCII host, a port out of range — is not an origin: refused at
//! build time in configuration, never allowed at request time.

use mcp_security_core::url::split_host_port;
use std::fmt;
use std::net::Ipv6Addr;

/// The allowed origins: every origin (`*`), or a list of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OriginSet {
    any: bool,
    rules: Vec<OriginRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    /// Lower case.
    scheme: Box<str>,
    /// Lower case; IPv6 literals in brackets, canonical form.
    host: Box<str>,
    port: PortRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    /// This port; `None` is the scheme's default port (or no port for other schemes).
    Exact(Option<u16>),
    /// Any port (`http://127.0.0.1:*`).
    Any,
}

impl fmt::Display for OriginRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            PortRule::Exact(None) => Ok(()),
            PortRule::Exact(Some(port)) => write!(f, ":{port}"),
            PortRule::Any => f.write_str(":*"),
        }
    }
}

impl OriginSet {
    /// Every origin.
    pub(crate) fn any() -> Self {
        Self {
            any: true,
            rules: Vec::new(),
        }
    }

    /// Parse configured origins (not `*`, which the caller handles). Duplicates are dropped.
    ///
    /// # Errors
    /// The first entry that is not an origin, with the reason.
    pub(crate) fn parse_list<'a, I>(entries: I) -> Result<Self, (String, &'static str)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut rules: Vec<OriginRule> = Vec::new();
        for entry in entries {
            let rule = parse_config_origin(entry).map_err(|reason| (entry.to_owned(), reason))?;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        Ok(Self { any: false, rules })
    }

    /// Whether every origin is allowed.
    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    /// Whether no origin is allowed.
    pub(crate) fn is_empty(&self) -> bool {
        !self.any && self.rules.is_empty()
    }

    /// The configured origins in normalised form (`*` for any).
    pub(crate) fn entries(&self) -> Vec<String> {
        if self.any {
            return vec!["*".to_owned()];
        }
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// Whether the value of a request's `Origin` header is allowed. `null` and anything that
    /// does not parse as an origin are never allowed, not even by `*`.
    pub(crate) fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let Ok(parsed) = parse_origin(origin, false) else {
            return false;
        };
        if self.any {
            return true;
        }
        self.rules.iter().any(|rule| {
            rule.scheme.eq_ignore_ascii_case(parsed.scheme)
                && rule.host.eq_ignore_ascii_case(parsed.host)
                && match rule.port {
                    PortRule::Any => true,
                    PortRule::Exact(port) => port == parsed.port,
                }
        })
    }
}

/// An origin split into borrowed parts.
#[derive(Debug, PartialEq, Eq)]
struct ParsedOrigin<'a> {
    scheme: &'a str,
    host: &'a str,
    /// `None` for the scheme's default port.
    port: Option<u16>,
    any_port: bool,
}

const EXPECTED: &str = "expected scheme://host[:port], such as https://app.example.com";

/// The default port of a scheme, compared case-insensitively.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else {
        None
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn is_reg_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Parse an origin in one pass. With `port_wildcard`, the port may be `*` (configuration only).
fn parse_origin(s: &str, port_wildcard: bool) -> Result<ParsedOrigin<'_>, &'static str> {
    // The scheme ends at the first ':', which must start "://".
    let colon = s.bytes().position(|b| b == b':').ok_or(EXPECTED)?;
    let (scheme, rest) = match (s.get(..colon), s.get(colon..)) {
        (Some(scheme), Some(rest)) => (scheme, rest.strip_prefix("://").ok_or(EXPECTED)?),
        _ => return Err(EXPECTED),
    };
    if !is_scheme(scheme) {
        return Err("the scheme must be letters, digits, '+', '-' or '.', starting with a letter");
    }
    let (mut last_colon, mut close_bracket, mut star) = (None, None, None);
    for (i, b) in rest.bytes().enumerate() {
        match b {
            b'/' => {
                return Err(
                    "an origin has no path, not even a trailing '/': write scheme://host[:port]",
                );
            }
            b'?' | b'#' => {
                return Err("an origin has no query or fragment: write scheme://host[:port]");
            }
            b'@' => return Err("an origin has no user information: write scheme://host[:port]"),
            b':' => last_colon = Some(i),
            b']' => close_bracket = Some(i),
            b'*' => star = star.or(Some(i)),
            _ => {}
        }
    }
    let (host, port) = if rest.starts_with('[') {
        let end =
            close_bracket.ok_or("an IPv6 host must be in brackets, such as http://[::1]:8080")?;
        let literal = rest.get(1..end).ok_or(EXPECTED)?;
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err("the bracketed host is not an IPv6 address");
        }
        let host = rest.get(..=end).ok_or(EXPECTED)?;
        match rest.get(end + 1..) {
            Some("") => (host, None),
            Some(after) => (host, Some(after.strip_prefix(':').ok_or(EXPECTED)?)),
            None => return Err(EXPECTED),
        }
    } else {
        match last_colon {
            Some(i) => (
                rest.get(..i).ok_or(EXPECTED)?,
                Some(rest.get(i + 1..).ok_or(EXPECTED)?),
            ),
            None => (rest, None),
        }
    };
    if star.is_some_and(|i| i < host.len()) {
        return Err("wildcard hosts are not supported: list each origin (only the port may be *)");
    }
    if !host.starts_with('[') && !is_reg_name(host) {
        return Err(
            "the host must be ASCII letters, digits, '-', '.' or '_' (internationalised names in punycode, xn--...)",
        );
    }
    let (port, any_port) = match port {
        None => (None, false),
        Some("*") if port_wildcard => (None, true),
        Some(p) => match parse_port(p) {
            Some(0) => return Err("the port must be between 1 and 65535"),
            Some(port) if default_port(scheme) == Some(port) => (None, false),
            Some(port) => (Some(port), false),
            None if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                return Err("the port must be between 1 and 65535");
            }
            None => return Err("the port must be a number between 1 and 65535"),
        },
    };
    Ok(ParsedOrigin {
        scheme,
        host,
        port,
        any_port,
    })
}

/// A decimal port of 1 to 5 digits that fits in `u16` (0 included), else `None`.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).ok()
}

fn parse_config_origin(entry: &str) -> Result<OriginRule, &'static str> {
    let entry = entry.trim();
    if entry.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is the origin of sandboxed iframes, file: pages and cross-origin redirects; allowing it would allow all of them",
        );
    }
    let parsed = parse_origin(entry, true)?;
    let host = match parsed
        .host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
    {
        Some(literal) => match literal.parse::<Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]"),
            Err(_) => return Err("the bracketed host is not an IPv6 address"),
        },
        None => parsed.host.to_ascii_lowercase(),
    };
    Ok(OriginRule {
        scheme: parsed.scheme.to_ascii_lowercase().into(),
        host: host.into(),
        port: if parsed.any_port {
            PortRule::Any
        } else {
            PortRule::Exact(parsed.port)
        },
    })
}

/// The allowed `Host` header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSet {
    rules: Vec<HostRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    /// Lower case; IPv6 literals in brackets, canonical form.
    host: Box<str>,
    /// `None` matches any port.
    port: Option<u16>,
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// The hosts a server bound to loopback answers to.
pub(crate) const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostSet {
    /// Parse configured hosts: `name`, `name:port`, an IPv4 address, or an IPv6 address with or
    /// without brackets. An entry without a port matches any port.
    ///
    /// # Errors
    /// The first entry that is not a host, with the reason.
    pub(crate) fn parse_list<'a, I>(entries: I) -> Result<Self, (String, &'static str)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut rules: Vec<HostRule> = Vec::new();
        for entry in entries {
            let rule = parse_config_host(entry).map_err(|reason| (entry.to_owned(), reason))?;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        Ok(Self { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// Whether a request's `Host` (or `:authority`) value is allowed.
    pub(crate) fn allows(&self, value: &[u8]) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let Some((host, port)) = split_host_port(value.trim()) else {
            return false;
        };
        self.rules.iter().any(|rule| {
            rule.host.eq_ignore_ascii_case(host) && rule.port.is_none_or(|p| Some(p) == port)
        })
    }
}

fn parse_config_host(entry: &str) -> Result<HostRule, &'static str> {
    const HOST: &str = "expected a host name or IP address with an optional port, such as mcp.example.com, mcp.example.com:8443, 127.0.0.1 or [::1]";
    let entry = entry.trim();
    // A bare IPv6 address (`::1`) is accepted without brackets.
    if let Ok(ip) = entry.parse::<Ipv6Addr>() {
        return Ok(HostRule {
            host: format!("[{ip}]").into(),
            port: None,
        });
    }
    if entry.contains("://") || entry.contains('/') {
        return Err("a host has no scheme or path: write host[:port]");
    }
    let (host, port) = split_host_port(entry).ok_or(HOST)?;
    if port == Some(0) {
        return Err("the port must be between 1 and 65535");
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(literal) => match literal.parse::<Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]"),
            Err(_) => return Err("the bracketed host is not an IPv6 address"),
        },
        None if is_reg_name(host) => host.to_ascii_lowercase(),
        None => return Err(HOST),
    };
    Ok(HostRule {
        host: host.into(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> OriginSet {
        OriginSet::parse_list(entries.iter().copied()).unwrap()
    }

    #[test]
    fn exact_match_with_case_and_default_ports_normalised() {
        let s = set(&["https://App.Example.com", "http://localhost:3000"]);
        for ok in [
            "https://app.example.com",
            "https://APP.example.COM",
            "HTTPS://app.example.com:443",
            "http://localhost:3000",
        ] {
            assert!(s.allows(ok.as_bytes()), "{ok}");
        }
        for no in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.com",
            "https://evil-app.example.com",
            "https://sub.app.example.com",
            "http://localhost:3001",
            "http://localhost",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "null",
            "",
            "app.example.com",
        ] {
            assert!(!s.allows(no.as_bytes()), "{no}");
        }
        assert!(!s.allows(b"https://app.example.com\xff"));
        assert_eq!(
            s.entries(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        let s = set(&["http://example.com:80", "https://example.com:443"]);
        assert_eq!(s.entries(), ["http://example.com", "https://example.com"]);
        assert!(s.allows(b"http://example.com"));
        assert!(s.allows(b"http://example.com:80"));
    }

    #[test]
    fn port_wildcard_and_ipv6() {
        let s = set(&["http://127.0.0.1:*", "http://[0:0::1]:8080"]);
        assert!(s.allows(b"http://127.0.0.1:5173"));
        assert!(s.allows(b"http://127.0.0.1"));
        assert!(!s.allows(b"https://127.0.0.1:5173"));
        assert!(
            !s.allows(b"http://127.0.0.1:*"),
            "no wildcard at request time"
        );
        assert!(s.allows(b"http://[::1]:8080"));
        assert!(!s.allows(b"http://[::1]:8081"));
        assert_eq!(s.entries(), ["http://127.0.0.1:*", "http://[::1]:8080"]);
    }

    #[test]
    fn config_errors() {
        for (bad, reason) in [
            ("null", "`null` is the origin"),
            ("example.com", "expected scheme://host"),
            ("https://example.com/", "no path"),
            ("https://example.com/app", "no path"),
            ("https://example.com?x", "no query"),
            ("https://u:p@example.com", "no user information"),
            ("https://*.example.com", "wildcard hosts"),
            ("https://exa mple.com", "the host must be ASCII"),
            ("https://bücher.example", "the host must be ASCII"),
            ("https://example.com:0", "between 1 and 65535"),
            ("https://example.com:70000", "between 1 and 65535"),
            ("https://example.com:x", "a number between"),
            ("https://example.com:", "a number between"),
            ("https://", "the host must be"),
            ("1http://example.com", "the scheme"),
            ("http://[::g]", "not an IPv6 address"),
            ("http://[::1", "in brackets"),
        ] {
            let (value, why) = OriginSet::parse_list([bad]).unwrap_err();
            assert_eq!(value, bad);
            assert!(why.contains(reason), "{bad}: {why}");
        }
    }

    #[test]
    fn any_allows_real_origins_only() {
        let s = OriginSet::any();
        assert!(s.allows(b"https://anything.example"));
        assert!(!s.allows(b"null"));
        assert!(!s.allows(b"garbage"));
        assert!(OriginSet::default().is_empty());
        assert!(!s.is_empty());
    }

    #[test]
    fn hosts() {
        let h =
            HostSet::parse_list(["localhost", "127.0.0.1", "::1", "MCP.example.com:8443"]).unwrap();
        assert_eq!(
            h.entries(),
            ["localhost", "127.0.0.1", "[::1]", "mcp.example.com:8443"]
        );
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "mcp.example.com:8443",
        ] {
            assert!(h.allows(ok.as_bytes()), "{ok}");
        }
        for no in [
            "evil.com",
            "evil.com:8080",
            "localhost.evil.com",
            "mcp.example.com",
            "mcp.example.com:443",
            "127.0.0.1:99999",
            "127.0.0.1:",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!h.allows(no.as_bytes()), "{no}");
        }
        for bad in ["http://x", "x/y", "a b", "x:0", "[::g]", "x:abc"] {
            assert!(HostSet::parse_list([bad]).is_err(), "{bad}");
        }
    }
}
