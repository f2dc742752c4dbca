//! Percent-decoding (RFC 3986 §2.1), shared so that every layer reads a path or a query value the
//! same way: auth's deny-list and query credentials, the network lists, and audit's masking.

use std::borrow::Cow;

/// Which `+` rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// `+` stays `+` (paths).
    Literal,
    /// `+` is a space (`application/x-www-form-urlencoded` query values).
    Space,
}

/// Decode `%XX` escapes (either case); a `%` not followed by two hex digits stays as it is.
/// Returns bytes: the result need not be UTF-8.
///
/// ```
/// use mcp_security_core::percent::{Plus, decode};
///
/// assert_eq!(decode("%2Fa+b%zz", Plus::Literal), b"/a+b%zz");
/// assert_eq!(decode("a+b%20c", Plus::Space), b"a b c");
/// ```
pub fn decode(value: &str, plus: Plus) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |o: usize| bytes.get(i + o).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(1), hex(2)) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits are at most 0xFF.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', _, _) if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `path` percent-decoded (bytes that are not UTF-8 become U+FFFD), with repeated `/` collapsed
/// and `.` / `..` segments resolved: the spelling a router may map a request onto, for checks
/// that must not be bypassed by `/%69nternal`, `//internal` or `/x/../internal`. Borrowed, with
/// no allocation, when `path` is already in that form (the common case).
///
/// ```
/// use mcp_security_core::percent::normalize_path;
///
/// assert_eq!(normalize_path("/mcp"), "/mcp");
/// assert_eq!(normalize_path("//a/./b/../%69nternal/"), "/a/internal/");
/// assert_eq!(normalize_path("/x/.."), "/");
/// ```
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let plain = path.starts_with('/')
        && !path.contains('%')
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if plain {
        return Cow::Borrowed(path);
    }
    let decoded = decode(path, Plus::Literal);
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if decoded.ends_with('/') || out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_plus_and_malformed_percents() {
        assert_eq!(decode("", Plus::Space), b"");
        assert_eq!(decode("%41%6a%6A", Plus::Literal), b"Ajj");
        assert_eq!(decode("%ff%00", Plus::Literal), [0xff, 0]);
        assert_eq!(decode("%", Plus::Literal), b"%");
        assert_eq!(decode("%4", Plus::Literal), b"%4");
        assert_eq!(decode("%%41", Plus::Literal), b"%A");
        assert_eq!(decode("a+b", Plus::Literal), b"a+b");
        assert_eq!(decode("a+b", Plus::Space), b"a b");
        assert_eq!(decode("%2B", Plus::Space), b"+");
    }
}
