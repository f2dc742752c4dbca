//! The one parser of "an http(s) resource URL" (the protected resource's identifier, RFC 9728 /
//! RFC 8707), shared by the auth layer (which advertises it) and `mcp-security check` (which
//! reports whether one is configured), so the two never disagree about which setting or JWT
//! audience names the resource; and [`split_host_port`], shared by every `Host` check.
//!
//! A resource URL here is deliberately strict, because it is compared as text with the `aud` of
//! tokens and with what clients were told:
//!
//! - the scheme is `http://` or `https://`, lower case;
//! - the authority is a host name, an IPv4 address or a bracketed IPv6 address, with an
//!   optional port: no user information (`svc@host`), no empty host;
//! - no query (`?`) and no fragment (`#`).
//!
//! ```
//! use mcp_security_core::url::ResourceUrl;
//!
//! let url = ResourceUrl::parse("https://mcp.example.com:8443/mcp")?;
//! assert_eq!(url.origin(), "https://mcp.example.com:8443");
//! assert_eq!(url.path(), "/mcp");
//! for not in [
//!     "HTTPS://mcp.example.com/mcp",
//!     "https://mcp.example.com/mcp?v=1",
//!     "https://svc@mcp.example.com/mcp",
//!     "https://mcp.example.com/mcp#top",
//!     "mcp.example.com/mcp",
//! ] {
//!     assert!(ResourceUrl::parse(not).is_err(), "{not}");
//! }
//! # Ok::<(), mcp_security_core::url::InvalidResourceUrl>(())
//! ```

use std::fmt;

/// Why a text is not a resource URL; see [`ResourceUrl::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidResourceUrl {
    reason: &'static str,
}

impl InvalidResourceUrl {
    /// Why, as a phrase ("must not contain a query").
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidResourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidResourceUrl {}

/// An absolute http(s) URL naming a protected resource; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUrl {
    url: Box<str>,
    origin_len: usize,
}

impl ResourceUrl {
    /// Parse `url` with the rules of the [module docs](self).
    ///
    /// # Errors
    /// [`InvalidResourceUrl`] naming the first rule broken.
    pub fn parse(url: &str) -> Result<Self, InvalidResourceUrl> {
        let err = |reason| Err(InvalidResourceUrl { reason });
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return err("must be an absolute http(s) URL (scheme in lower case)");
        };
        if url.contains('#') {
            return err("must not contain a fragment (RFC 9728)");
        }
        if url.contains('?') {
            return err("must not contain a query");
        }
        let authority = rest
            .find('/')
            .map_or(rest, |i| rest.get(..i).unwrap_or(rest));
        if authority.contains('@') {
            return err("must not contain user information");
        }
        if !is_authority(authority) {
            return err("has no valid host");
        }
        Ok(ResourceUrl {
            url: url.into(),
            origin_len: url.len() - rest.len() + authority.len(),
        })
    }

    /// Whether `url` is a resource URL ([`parse`](Self::parse) succeeds).
    pub fn is_valid(url: &str) -> bool {
        ResourceUrl::parse(url).is_ok()
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Scheme and authority: `https://mcp.example.com:8443`.
    pub fn origin(&self) -> &str {
        self.url.get(..self.origin_len).unwrap_or(&self.url)
    }

    /// The path as given (`""` when there is none).
    pub fn path(&self) -> &str {
        self.url.get(self.origin_len..).unwrap_or("")
    }
}

impl fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Whether `b` may appear in a `Host` or URL authority as these crates accept it: ASCII
/// letters and digits, `.`, `-`, `_`, `:` and the brackets of an IPv6 literal.
pub fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
}

/// Whether `authority` is `host[:port]`: a non-empty name or IPv4 address of
/// [authority bytes](is_authority_byte) without `:` or brackets, or a bracketed IPv6 address.
fn is_authority(authority: &str) -> bool {
    if authority.is_empty() || !authority.bytes().all(is_authority_byte) {
        return false;
    }
    let Some((host, _)) = split_host_port(authority) else {
        return false;
    };
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(literal) => literal.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && !host.contains([':', '[', ']']),
    }
}

/// Split `host[:port]` or `[v6][:port]` into the host (brackets kept) and the port; `None` when
/// malformed (an unclosed bracket, text after `]` that is not `:port`, a port that is empty,
/// not decimal digits, or above 65535). The host is not otherwise checked.
///
/// ```
/// use mcp_security_core::url::split_host_port;
///
/// assert_eq!(split_host_port("mcp.example.com"), Some(("mcp.example.com", None)));
/// assert_eq!(split_host_port("localhost:8080"), Some(("localhost", Some(8080))));
/// assert_eq!(split_host_port("[::1]:443"), Some(("[::1]", Some(443))));
/// assert_eq!(split_host_port("[::1]"), Some(("[::1]", None)));
/// assert_eq!(split_host_port("localhost:"), None);
/// assert_eq!(split_host_port("localhost:+80"), None);
/// assert_eq!(split_host_port("localhost:65536"), None);
/// assert_eq!(split_host_port("[::1"), None);
/// ```
pub fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let host = value.get(..=end)?;
        match value.get(end + 1..)? {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Some((host, port))
}

/// A port: one to five decimal digits, at most 65535.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_urls() {
        for (url, origin, path) in [
            (
                "https://mcp.example.com/mcp",
                "https://mcp.example.com",
                "/mcp",
            ),
            (
                "http://127.0.0.1:8080/mcp/",
                "http://127.0.0.1:8080",
                "/mcp/",
            ),
            ("https://[::1]:8443", "https://[::1]:8443", ""),
            ("https://mcp_svc.internal/", "https://mcp_svc.internal", "/"),
        ] {
            let r = ResourceUrl::parse(url).unwrap();
            assert_eq!((r.as_str(), r.origin(), r.path()), (url, origin, path));
            assert!(ResourceUrl::is_valid(url));
        }
        for (url, reason) in [
            (
                "HTTPS://mcp.example.com/mcp",
                "must be an absolute http(s) URL (scheme in lower case)",
            ),
            (
                "ftp://mcp.example.com",
                "must be an absolute http(s) URL (scheme in lower case)",
            ),
            (
                "https://mcp.example.com/mcp?v=1",
                "must not contain a query",
            ),
            (
                "https://mcp.example.com/mcp#x",
                "must not contain a fragment (RFC 9728)",
            ),
            (
                "https://svc@mcp.example.com/mcp",
                "must not contain user information",
            ),
            (
                "https://svc:pw@mcp.example.com/mcp",
                "must not contain user information",
            ),
            ("https:///mcp", "has no valid host"),
            ("https://", "has no valid host"),
            ("https://mcp.example.com:/mcp", "has no valid host"),
            ("https://mcp.example.com:99999/mcp", "has no valid host"),
            ("https://a:b:c/mcp", "has no valid host"),
            ("https://[::1/mcp", "has no valid host"),
            ("https://[nothex]/mcp", "has no valid host"),
            ("https://a[b]/mcp", "has no valid host"),
            ("https://mcp example.com/mcp", "has no valid host"),
            ("https://:443/mcp", "has no valid host"),
        ] {
            assert_eq!(
                ResourceUrl::parse(url).unwrap_err().reason(),
                reason,
                "{url}"
            );
            assert!(!ResourceUrl::is_valid(url));
        }
    }
}
