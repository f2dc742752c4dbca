//! A typed `Content-Security-Policy` builder that refuses malformed policies when it builds.
//!
//! The classic CSP mistakes are silent: `script-src self` (unquoted) allows a *host named*
//! `self` and nothing else; `'none'` next to another source is ignored; a `;` or `,` inside a
//! source starts a new directive or a new policy. [`CspBuilder::build`] refuses each of them with
//! a [`ConfigError`] naming the setting `csp`, the directive and the offending source.
//!
//! ```
//! use mcp_headers::CspBuilder;
//!
//! let csp = CspBuilder::web()
//!     .script_src(["'self'", "https://cdn.example.com"])
//!     .connect_src(["'self'", "wss://mcp.example.com"])
//!     .build()?;
//! assert_eq!(
//!     csp.as_str(),
//!     "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; \
//!      form-action 'self'; img-src 'self' data:; script-src 'self' https://cdn.example.com; \
//!      style-src 'self'; connect-src 'self' wss://mcp.example.com"
//! );
//!
//! let err = CspBuilder::new().script_src(["self"]).build().unwrap_err();
//! assert_eq!(err.setting(), "csp");
//! assert_eq!(err.to_string(), "csp: script-src: keywords must be quoted: write 'self' (got \"self\")");
//! # Ok::<(), mcp_headers::mcp_security_core::config::ConfigError>(())
//! ```

use std::fmt;

use http::HeaderValue;
use mcp_security_core::config::ConfigError;

/// The setting name CSP errors carry.
const SETTING: &str = "csp";

/// Keywords that must be written in single quotes.
const KEYWORDS: [&str; 10] = [
    "self",
    "none",
    "unsafe-inline",
    "unsafe-eval",
    "strict-dynamic",
    "unsafe-hashes",
    "report-sample",
    "wasm-unsafe-eval",
    "unsafe-allow-redirects",
    "inline-speculation-rules",
];

/// Directives whose value is a source list.
const SOURCE_LIST_DIRECTIVES: [&str; 19] = [
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "img-src",
    "connect-src",
    "font-src",
    "object-src",
    "media-src",
    "frame-src",
    "child-src",
    "worker-src",
    "manifest-src",
    "base-uri",
    "form-action",
    "frame-ancestors",
];

/// The tokens `sandbox` accepts.
const SANDBOX_FLAGS: [&str; 14] = [
    "allow-downloads",
    "allow-forms",
    "allow-modals",
    "allow-orientation-lock",
    "allow-pointer-lock",
    "allow-popups",
    "allow-popups-to-escape-sandbox",
    "allow-presentation",
    "allow-same-origin",
    "allow-scripts",
    "allow-storage-access-by-user-activation",
    "allow-top-navigation",
    "allow-top-navigation-by-user-activation",
    "allow-top-navigation-to-custom-protocols",
];

/// A validated `Content-Security-Policy` value, built by [`CspBuilder`]. Pass it to
/// [`SecurityHeadersLayerBuilder::csp`](crate::SecurityHeadersLayerBuilder::csp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentSecurityPolicy {
    value: HeaderValue,
}

impl ContentSecurityPolicy {
    /// The policy as it is sent.
    pub fn as_str(&self) -> &str {
        // Built from visible ASCII only (checked in `CspBuilder::build`).
        self.value.to_str().unwrap_or_default()
    }

    /// The policy as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }
}

impl fmt::Display for ContentSecurityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a [`ContentSecurityPolicy`]; see the [module docs](self).
///
/// Each directive method replaces that directive's sources (keeping its position); directives
/// are written in the order first set. Sources are written as in the header: keywords quoted
/// (`'self'`, `'none'`, `'unsafe-inline'`, `'nonce-…'`, `'sha256-…'`), schemes with a colon
/// (`https:`, `data:`), hosts with an optional scheme, port and path
/// (`https://cdn.example.com`, `*.example.com:443`), or `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct CspBuilder {
    directives: Vec<(String, Vec<String>)>,
}

macro_rules! source_directive {
    ($(#[$doc:meta])* $method:ident, $name:literal) => {
        $(#[$doc])*
        pub fn $method<I, S>(self, sources: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.set($name, sources)
        }
    };
}

impl CspBuilder {
    /// An empty policy; [`build`](Self::build) refuses a policy without directives.
    pub fn new() -> Self {
        Self::default()
    }

    /// The API preset: `default-src 'none'; frame-ancestors 'none'` — a JSON or MCP response
    /// loads nothing and is framed by no one.
    pub fn api() -> Self {
        Self::new()
            .default_src(["'none'"])
            .frame_ancestors(["'none'"])
    }

    /// The web preset, for servers that also serve HTML: everything from the server's own
    /// origin, no plugins, no framing, no `<base>` or form targets elsewhere, images also from
    /// `data:` URLs:
    ///
    /// `default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none';
    /// form-action 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'`
    pub fn web() -> Self {
        Self::new()
            .default_src(["'self'"])
            .base_uri(["'self'"])
            .object_src(["'none'"])
            .frame_ancestors(["'none'"])
            .form_action(["'self'"])
            .img_src(["'self'", "data:"])
            .script_src(["'self'"])
            .style_src(["'self'"])
    }

    source_directive!(
        /// `default-src`: the fallback for every fetch directive not set.
        default_src,
        "default-src"
    );
    source_directive!(
        /// `script-src`.
        script_src,
        "script-src"
    );
    source_directive!(
        /// `script-src-elem`.
        script_src_elem,
        "script-src-elem"
    );
    source_directive!(
        /// `script-src-attr`: inline event handlers.
        script_src_attr,
        "script-src-attr"
    );
    source_directive!(
        /// `style-src`.
        style_src,
        "style-src"
    );
    source_directive!(
        /// `style-src-elem`.
        style_src_elem,
        "style-src-elem"
    );
    source_directive!(
        /// `style-src-attr`: inline `style` attributes.
        style_src_attr,
        "style-src-attr"
    );
    source_directive!(
        /// `img-src`.
        img_src,
        "img-src"
    );
    source_directive!(
        /// `connect-src`: `fetch`, XHR, WebSocket and `EventSource` targets.
        connect_src,
        "connect-src"
    );
    source_directive!(
        /// `font-src`.
        font_src,
        "font-src"
    );
    source_directive!(
        /// `object-src`: plugins; `'none'` is almost always right.
        object_src,
        "object-src"
    );
    source_directive!(
        /// `media-src`.
        media_src,
        "media-src"
    );
    source_directive!(
        /// `frame-src`: what this page may frame.
        frame_src,
        "frame-src"
    );
    source_directive!(
        /// `child-src`.
        child_src,
        "child-src"
    );
    source_directive!(
        /// `worker-src`.
        worker_src,
        "worker-src"
    );
    source_directive!(
        /// `manifest-src`.
        manifest_src,
        "manifest-src"
    );
    source_directive!(
        /// `base-uri`: allowed `<base href>` targets.
        base_uri,
        "base-uri"
    );
    source_directive!(
        /// `form-action`: allowed form submission targets.
        form_action,
        "form-action"
    );
    source_directive!(
        /// `frame-ancestors`: who may frame this page (only `'self'`, `'none'`, schemes and
        /// hosts are meaningful here).
        frame_ancestors,
        "frame-ancestors"
    );

    /// `sandbox` with these `allow-…` flags (none: the strictest sandbox).
    pub fn sandbox<I, S>(self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("sandbox", flags)
    }

    /// `upgrade-insecure-requests`: the browser fetches `http:` subresources over `https:`.
    /// Leave it off for plain-HTTP development servers.
    pub fn upgrade_insecure_requests(self) -> Self {
        self.set("upgrade-insecure-requests", std::iter::empty::<String>())
    }

    /// `report-to`: the reporting endpoint group (declared in a `Reporting-Endpoints` header).
    pub fn report_to(self, group: impl Into<String>) -> Self {
        self.set("report-to", [group])
    }

    /// Any other directive, by name (lower case). Its values are checked as sources when it is
    /// a known source-list directive, and as plain tokens otherwise.
    pub fn directive<I, S>(self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(name, values)
    }

    /// Remove a directive (for example one a preset set).
    pub fn remove(mut self, name: &str) -> Self {
        self.directives.retain(|(n, _)| n != name);
        self
    }

    fn set<I, S>(mut self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        match self.directives.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => *existing = values,
            None => self.directives.push((name.to_owned(), values)),
        }
        self
    }

    /// Validate and render the policy.
    ///
    /// # Errors
    /// A [`ConfigError`] for the setting `csp`, naming the directive and the refused source:
    /// no directives; a directive name that is not lower-case letters, digits and `-`; an
    /// unquoted keyword (`self`); an unknown quoted keyword; `'none'` with other sources; a
    /// source list that is empty (write `'none'`); a source with whitespace, `;`, `,`, quotes or
    /// non-ASCII characters; an unknown `sandbox` flag; a value for
    /// `upgrade-insecure-requests`.
    pub fn build(&self) -> Result<ContentSecurityPolicy, ConfigError> {
        if self.directives.is_empty() {
            return Err(ConfigError::new(
                SETTING,
                "the policy has no directives (start from CspBuilder::api() or CspBuilder::web())",
            ));
        }
        let mut out = String::new();
        for (name, values) in &self.directives {
            validate_directive(name, values)?;
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            for value in values {
                out.push(' ');
                out.push_str(value.trim());
            }
        }
        let value = HeaderValue::from_str(&out).map_err(|_| {
            ConfigError::new(SETTING, "the policy is not a valid header value").with_value(&out)
        })?;
        Ok(ContentSecurityPolicy { value })
    }
}

fn err(name: &str, reason: &str, value: &str) -> ConfigError {
    ConfigError::new(SETTING, format!("{name}: {reason}")).with_value(value)
}

fn validate_directive(name: &str, values: &[String]) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ConfigError::new(
            SETTING,
            "a directive name must be lower-case letters, digits and '-'",
        )
        .with_value(name));
    }
    for value in values {
        let v = value.trim();
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b','))
        {
            return Err(err(
                name,
                "a value must be one token of visible ASCII without ';' or ','",
                value,
            ));
        }
    }
    if SOURCE_LIST_DIRECTIVES.contains(&name) {
        return validate_sources(name, values);
    }
    match name {
        "sandbox" => {
            for flag in values {
                if !SANDBOX_FLAGS.contains(&flag.trim()) {
                    return Err(err(name, "unknown sandbox flag", flag));
                }
            }
        }
        "upgrade-insecure-requests" | "block-all-mixed-content" => {
            if let Some(v) = values.first() {
                return Err(err(name, "takes no value", v));
            }
        }
        "report-to" if values.len() != 1 => {
            return Err(err(name, "takes exactly one group name", &values.join(" ")));
        }
        _ => {}
    }
    Ok(())
}

fn validate_sources(name: &str, sources: &[String]) -> Result<(), ConfigError> {
    if sources.is_empty() {
        return Err(ConfigError::new(
            SETTING,
            format!("{name}: has no sources; write 'none' to allow nothing"),
        ));
    }
    let none = sources.iter().any(|s| s.trim() == "'none'");
    if none && sources.len() > 1 {
        return Err(err(
            name,
            "'none' must be the only source (browsers ignore it next to others)",
            &sources.join(" "),
        ));
    }
    for source in sources {
        validate_source(name, source.trim())?;
    }
    Ok(())
}

fn is_base64ish(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

fn validate_source(name: &str, source: &str) -> Result<(), ConfigError> {
    if let Some(quoted) = source.strip_prefix('\'') {
        let Some(inner) = quoted.strip_suffix('\'') else {
            return Err(err(name, "unbalanced quote", source));
        };
        let ok = if name == "frame-ancestors" {
            matches!(inner, "self" | "none")
        } else {
            KEYWORDS.contains(&inner)
                || ["nonce-", "sha256-", "sha384-", "sha512-"]
                    .iter()
                    .any(|p| inner.strip_prefix(p).is_some_and(is_base64ish))
        };
        if !ok {
            return Err(err(
                name,
                if name == "frame-ancestors" {
                    "only 'self' and 'none' are keywords here"
                } else {
                    "unknown keyword (expected 'self', 'none', 'unsafe-inline', 'strict-dynamic', 'nonce-<base64>', 'sha256-<base64>' ...)"
                },
                source,
            ));
        }
        return Ok(());
    }
    if source.contains(['\'', '"']) {
        return Err(err(name, "a quote may only surround a keyword", source));
    }
    let lower = source.to_ascii_lowercase();
    if KEYWORDS.contains(&lower.as_str())
        || ["nonce-", "sha256-", "sha384-", "sha512-"]
            .iter()
            .any(|p| lower.starts_with(p))
    {
        return Err(ConfigError::new(
            SETTING,
            format!("{name}: keywords must be quoted: write '{source}'"),
        )
        .with_value(source));
    }
    if source == "*" {
        return Ok(());
    }
    // A scheme source: `https:`, `data:`, `blob:`.
    if let Some(scheme) = source.strip_suffix(':') {
        let mut bytes = scheme.bytes();
        if bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Ok(());
        }
        return Err(err(
            name,
            "not a scheme source (such as https: or data:)",
            source,
        ));
    }
    // A host source: [scheme://]host[:port][/path].
    let rest = match source.split_once("://") {
        Some((scheme, rest)) => {
            let mut bytes = scheme.bytes();
            if !(bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            {
                return Err(err(name, "not a valid scheme", source));
            }
            rest
        }
        None => source,
    };
    let (authority, _path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        let labels = host.strip_prefix("*.").unwrap_or(host);
        !labels.is_empty()
            && labels
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !host_ok {
        return Err(err(
            name,
            "not a source: expected a quoted keyword, a scheme (https:), a host (https://cdn.example.com, *.example.com) or *",
            source,
        ));
    }
    if let Some(port) = port {
        let ok = port == "*"
            || (!port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != 0));
        if !ok {
            return Err(err(name, "the port must be 1-65535 or *", source));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_render_exactly() {
        assert_eq!(
            CspBuilder::api().build().unwrap().as_str(),
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(
            CspBuilder::web().build().unwrap().to_string(),
            "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; \
             form-action 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'"
        );
    }

    #[test]
    fn replace_keeps_position_and_remove_drops() {
        let csp = CspBuilder::api()
            .default_src(["'self'"])
            .connect_src([
                "'self'",
                "https://api.example.com:8443/v1/",
                "*.example.com:*",
            ])
            .remove("frame-ancestors")
            .sandbox(["allow-scripts"])
            .upgrade_insecure_requests()
            .report_to("csp")
            .directive("require-trusted-types-for", ["'script'"])
            .build()
            .unwrap();
        assert_eq!(
            csp.as_str(),
            "default-src 'self'; connect-src 'self' https://api.example.com:8443/v1/ *.example.com:*; \
             sandbox allow-scripts; upgrade-insecure-requests; report-to csp; require-trusted-types-for 'script'"
        );
        assert_eq!(csp.header_value(), csp.as_str());
    }

    #[test]
    fn hashes_nonces_schemes_and_hosts() {
        let csp = CspBuilder::new()
            .script_src([
                "'strict-dynamic'",
                "'nonce-rAnd0m+/='",
                "'sha256-abc123_-='",
                "https:",
                "blob:",
                "*",
                "[::1]:8080",
                "http://127.0.0.1:*",
            ])
            .build()
            .unwrap();
        assert!(
            csp.as_str()
                .starts_with("script-src 'strict-dynamic' 'nonce-")
        );
    }

    #[test]
    fn errors_name_the_directive_and_source() {
        let cases: Vec<(CspBuilder, &str)> = vec![
            (
                CspBuilder::new(),
                "csp: the policy has no directives (start from CspBuilder::api() or CspBuilder::web())",
            ),
            (
                CspBuilder::new().script_src(["self"]),
                "csp: script-src: keywords must be quoted: write 'self' (got \"self\")",
            ),
            (
                CspBuilder::new().default_src(["NONE"]),
                "csp: default-src: keywords must be quoted: write 'NONE' (got \"NONE\")",
            ),
            (
                CspBuilder::new().script_src(["unsafe-inline"]),
                "csp: script-src: keywords must be quoted: write 'unsafe-inline' (got \"unsafe-inline\")",
            ),
            (
                CspBuilder::new().script_src(["nonce-abc"]),
                "csp: script-src: keywords must be quoted: write 'nonce-abc' (got \"nonce-abc\")",
            ),
            (
                CspBuilder::new().script_src(["'self"]),
                "csp: script-src: unbalanced quote (got \"'self\")",
            ),
            (
                CspBuilder::new().script_src(["'unsafe'"]),
                "csp: script-src: unknown keyword (expected 'self', 'none', 'unsafe-inline', 'strict-dynamic', 'nonce-<base64>', 'sha256-<base64>' ...) (got \"'unsafe'\")",
            ),
            (
                CspBuilder::new().script_src(["'nonce-'"]),
                "csp: script-src: unknown keyword (expected 'self', 'none', 'unsafe-inline', 'strict-dynamic', 'nonce-<base64>', 'sha256-<base64>' ...) (got \"'nonce-'\")",
            ),
            (
                CspBuilder::new().frame_ancestors(["'unsafe-inline'"]),
                "csp: frame-ancestors: only 'self' and 'none' are keywords here (got \"'unsafe-inline'\")",
            ),
            (
                CspBuilder::new().img_src(["'none'", "'self'"]),
                "csp: img-src: 'none' must be the only source (browsers ignore it next to others) (got \"'none' 'self'\")",
            ),
            (
                CspBuilder::new().img_src(Vec::<String>::new()),
                "csp: img-src: has no sources; write 'none' to allow nothing",
            ),
            (
                CspBuilder::new().img_src(["'self'; script-src *"]),
                "csp: img-src: a value must be one token of visible ASCII without ';' or ',' (got \"'self'; script-src *\")",
            ),
            (
                CspBuilder::new().img_src(["a,b"]),
                "csp: img-src: a value must be one token of visible ASCII without ';' or ',' (got \"a,b\")",
            ),
            (
                CspBuilder::new().img_src(["café.example"]),
                "csp: img-src: a value must be one token of visible ASCII without ';' or ',' (got \"café.example\")",
            ),
            (
                CspBuilder::new().img_src(["https://a.example:0"]),
                "csp: img-src: the port must be 1-65535 or * (got \"https://a.example:0\")",
            ),
            (
                CspBuilder::new().img_src(["1https://a.example"]),
                "csp: img-src: not a valid scheme (got \"1https://a.example\")",
            ),
            (
                CspBuilder::new().img_src(["9data:"]),
                "csp: img-src: not a scheme source (such as https: or data:) (got \"9data:\")",
            ),
            (
                CspBuilder::new().img_src(["a\"b"]),
                "csp: img-src: a quote may only surround a keyword (got \"a\\\"b\")",
            ),
            (
                CspBuilder::new().sandbox(["allow-everything"]),
                "csp: sandbox: unknown sandbox flag (got \"allow-everything\")",
            ),
            (
                CspBuilder::new().directive("upgrade-insecure-requests", ["yes"]),
                "csp: upgrade-insecure-requests: takes no value (got \"yes\")",
            ),
            (
                CspBuilder::new().directive("Script-Src", ["'self'"]),
                "csp: a directive name must be lower-case letters, digits and '-' (got \"Script-Src\")",
            ),
            (
                CspBuilder::new().directive("report-to", ["a", "b"]),
                "csp: report-to: takes exactly one group name (got \"a b\")",
            ),
        ];
        for (builder, expected) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.setting(), "csp");
            assert_eq!(err.to_string(), expected);
        }
    }
}
