//! The `htu` comparison of RFC 9449 §4.3: the proof's URL against the request's, without query
//! and fragment, after RFC 3986 syntax-based (§6.2.2) and scheme-based (§6.2.3) normalization.

/// `url` (an absolute `http` or `https` URL) normalized for the `htu` comparison: scheme and
/// host lower-cased, the scheme's default port removed, an empty path made `/`, percent-encoding
/// with upper-case hex and unreserved characters decoded, dot segments removed, query and
/// fragment dropped. `None` for anything that is not an absolute `http`/`https` URL with a host,
/// or that carries user information.
///
/// ```
/// use mcp_auth::dpop::normalize_htu;
///
/// assert_eq!(
///     normalize_htu("HTTPS://Server.Example.COM:443/a/./b/../%7euser?q=1#f").as_deref(),
///     Some("https://server.example.com/a/~user"),
/// );
/// assert_eq!(normalize_htu("/relative"), None);
/// ```
#[must_use]
pub fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || !authority.is_ascii() {
        return None;
    }
    let (host, port) = mcp_security_core::url::split_host_port(authority)?;
    if host.is_empty() {
        return None;
    }
    let default_port: u16 = if scheme == "http" { 80 } else { 443 };
    let mut out = String::with_capacity(url.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(p) = port.filter(|p| *p != default_port) {
        out.push(':');
        out.push_str(&p.to_string());
    }
    let path = normalize_percent(path)?;
    let path = remove_dot_segments(&path);
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&path);
    }
    Some(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Upper-case hex in every escape; decode escapes of unreserved characters. `None` for a
/// malformed escape or a byte that may not appear in a path.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&format!("{value:02X}"));
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let mut input = path;
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}
