//! [`RouteClass`]: named groups of endpoints (`read`, `write`, `delete`, `admin` …) that share a
//! limit, matched by HTTP method + path prefix and by MCP method / tool.
//!
//! # Rules
//!
//! | rule | matches |
//! |---|---|
//! | `"DELETE /api/notes"` | HTTP `DELETE` to `/api/notes` or anything under it (`/api/notes/7`), not `/api/notesx` |
//! | `"* /admin"` | any method to `/admin` or under it |
//! | `"tools/call:delete_note"` | an MCP `tools/call` of the tool `delete_note` (`method:target`, the target as the auth policy reads it: the tool of `tools/call`, the prompt of `prompts/get`, the URI of `resources/read`) |
//! | `"resources/read"` | any MCP message with that method |
//!
//! A request (each message of a JSON-RPC batch, for per-message limits) is in at most one class:
//! an MCP `method:target` rule first, then an MCP method rule, then the HTTP rule with the
//! longest matching prefix (a rule naming the method before a `*` rule of the same prefix). Two
//! classes claiming the same rule is a configuration error, so the order classes are declared in
//! never matters. Paths are matched as received (not percent-decoded): a request spelled so that
//! it escapes its class is still counted by the limits that do not depend on the class.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use mcp_security_core::config::ConfigError;
use mcp_security_core::jsonrpc::JsonRpcMessage;

/// A named group of endpoints; see the [module docs](self). Attach it to a layer with
/// [`RateLimitLayerBuilder::route_class`](crate::RateLimitLayerBuilder::route_class) and limit
/// it with [`Limit::for_class`](crate::Limit::for_class).
///
/// ```
/// use http::Method;
/// use mcp_ratelimit::RouteClass;
///
/// let write = RouteClass::new("write")
///     .rule("POST /api/notes")
///     .http(Method::PUT, "/api/notes")
///     .mcp("tools/call:write_note");
/// assert_eq!(write.name(), "write");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RouteClass {
    name: String,
    rules: Vec<String>,
}

impl RouteClass {
    /// An empty class; add at least one rule.
    pub fn new(name: impl Into<String>) -> Self {
        RouteClass {
            name: name.into(),
            rules: Vec::new(),
        }
    }

    /// Add a rule in text form: `"METHOD /prefix"`, `"* /prefix"`, `"mcp/method"` or
    /// `"mcp/method:target"`. Checked when the layer is built.
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rules.push(rule.into());
        self
    }

    /// Add an HTTP rule: `method` requests to `path_prefix` or under it.
    pub fn http(self, method: Method, path_prefix: &str) -> Self {
        self.rule(format!("{method} {path_prefix}"))
    }

    /// Add an HTTP rule for any method.
    pub fn any_method(self, path_prefix: &str) -> Self {
        self.rule(format!("* {path_prefix}"))
    }

    /// Add an MCP rule: `"tools/call:delete_note"` or `"resources/read"`.
    pub fn mcp(self, method_or_target: &str) -> Self {
        self.rule(method_or_target)
    }

    /// The class's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rules as given.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }
}

/// Names of limits and classes: what can go into a structured-field string and a log line
/// unchanged.
pub(crate) fn check_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.', ':' or '/'",
        )
        .with_value(name))
    }
}

#[derive(Debug)]
struct HttpRule {
    method: Option<Method>,
    prefix: Box<str>,
    class: u16,
}

/// Classifies requests; built from the layer's classes.
#[derive(Debug, Default)]
pub(crate) struct Classifier {
    names: Vec<Arc<str>>,
    mcp_targets: HashMap<Box<str>, HashMap<Box<str>, u16>>,
    mcp_methods: HashMap<Box<str>, u16>,
    /// Longest prefix first; a method-specific rule before a `*` rule of the same prefix.
    http: Vec<HttpRule>,
}

impl Classifier {
    pub(crate) fn new(classes: &[RouteClass]) -> Result<Self, ConfigError> {
        let mut c = Classifier::default();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for class in classes {
            let setting = format!("route_class.{}", class.name);
            check_name("route_class", &class.name)?;
            if c.names.iter().any(|n| **n == *class.name) {
                return Err(ConfigError::new("route_class", "is declared twice")
                    .with_value(class.name.clone()));
            }
            if class.rules.is_empty() {
                return Err(ConfigError::new(setting, "has no rules"));
            }
            let index = u16::try_from(c.names.len())
                .map_err(|_| ConfigError::new("route_class", "at most 65535 classes"))?;
            for raw in &class.rules {
                let rule = raw.trim();
                let canonical = c.add_rule(&setting, rule, index)?;
                if let Some(other) = claimed.get(&canonical)
                    && *other != class.name
                {
                    return Err(ConfigError::new(
                        setting,
                        format!("the rule is already in class `{other}`"),
                    )
                    .with_value(raw.clone()));
                }
                claimed.insert(canonical, class.name.clone());
            }
            c.names.push(Arc::from(class.name.as_str()));
        }
        c.http.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| b.method.is_some().cmp(&a.method.is_some()))
        });
        Ok(c)
    }

    /// Parse one rule into the tables; returns its canonical form for conflict checks.
    fn add_rule(&mut self, setting: &str, rule: &str, class: u16) -> Result<String, ConfigError> {
        let bad = |reason: &str| ConfigError::new(setting, reason.to_owned()).with_value(rule);
        if let Some((method, prefix)) = rule.split_once(' ') {
            let prefix = prefix.trim();
            if !prefix.starts_with('/') || prefix.contains(char::is_whitespace) {
                return Err(bad(
                    "an HTTP rule is `METHOD /path-prefix` or `* /path-prefix`",
                ));
            }
            let method = match method {
                "*" => None,
                m => Some(Method::from_bytes(m.as_bytes()).map_err(|_| {
                    bad("an HTTP rule is `METHOD /path-prefix` or `* /path-prefix`")
                })?),
            };
            let canonical = format!("{} {prefix}", method.as_ref().map_or("*", Method::as_str));
            if !self
                .http
                .iter()
                .any(|r| r.class == class && r.method == method && *r.prefix == *prefix)
            {
                self.http.push(HttpRule {
                    method,
                    prefix: prefix.into(),
                    class,
                });
            }
            return Ok(canonical);
        }
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        match rule.split_once(':') {
            Some((method, target)) if printable(method) && printable(target) => {
                self.mcp_targets
                    .entry(method.into())
                    .or_default()
                    .insert(target.into(), class);
            }
            None if printable(rule) && !rule.starts_with('/') => {
                self.mcp_methods.insert(rule.into(), class);
            }
            _ => {
                return Err(bad(
                    "expected `METHOD /path-prefix`, `* /path-prefix`, an MCP method such as \
                     `resources/read`, or `method:target` such as `tools/call:delete_note`",
                ));
            }
        }
        Ok(rule.to_owned())
    }

    pub(crate) fn name(&self, index: u16) -> Option<&str> {
        self.names.get(usize::from(index)).map(|n| &**n)
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<u16> {
        self.names
            .iter()
            .position(|n| **n == *name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The class of a request, or of one of its MCP messages.
    pub(crate) fn classify(
        &self,
        method: &Method,
        path: &str,
        message: Option<&JsonRpcMessage>,
    ) -> Option<u16> {
        if let Some(m) = message.and_then(JsonRpcMessage::method) {
            let targeted = message
                .and_then(JsonRpcMessage::target)
                .and_then(|t| self.mcp_targets.get(m)?.get(t));
            if let Some(class) = targeted.or_else(|| self.mcp_methods.get(m)) {
                return Some(*class);
            }
        }
        self.http
            .iter()
            .find(|r| {
                // HEAD is GET without a body (RFC 9110 §9.3.2; axum answers it with the GET
                // handler), so a GET rule also classifies HEAD.
                r.method
                    .as_ref()
                    .is_none_or(|m| m == method || (*m == Method::GET && method == Method::HEAD))
                    && path_has_prefix(path, &r.prefix)
            })
            .map(|r| r.class)
    }
}

/// `path` is `prefix` or under it, by whole segments (`/api` covers `/api/x`, not `/apix`;
/// `/api/` covers `/api/x`).
pub(crate) fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_security_core::jsonrpc::parse_envelope;

    fn message(body: &str) -> JsonRpcMessage {
        parse_envelope(body.as_bytes()).unwrap().messages()[0].clone()
    }

    fn classifier() -> Classifier {
        Classifier::new(&[
            RouteClass::new("read")
                .rule("GET /api/")
                .mcp("resources/read")
                .mcp("tools/call:read_note"),
            RouteClass::new("write")
                .rule("POST /api/notes")
                .http(Method::PUT, "/api/notes"),
            RouteClass::new("delete")
                .rule("DELETE /api/notes")
                .mcp("tools/call:delete_note"),
            RouteClass::new("admin").any_method("/api/admin"),
            RouteClass::new("public").mcp("tools/call"),
        ])
        .unwrap()
    }

    #[test]
    fn http_rules_longest_prefix_wins() {
        let c = classifier();
        let class = |m: Method, p: &str| c.classify(&m, p, None).map(|i| &*c.names[usize::from(i)]);
        assert_eq!(class(Method::GET, "/api/notes"), Some("read"));
        assert_eq!(class(Method::HEAD, "/api/notes"), Some("read"));
        assert_eq!(class(Method::POST, "/api/notes/7"), Some("write"));
        assert_eq!(class(Method::PUT, "/api/notes"), Some("write"));
        assert_eq!(class(Method::DELETE, "/api/notes/7"), Some("delete"));
        assert_eq!(class(Method::DELETE, "/api/notesx"), None);
        assert_eq!(class(Method::GET, "/api/admin/users"), Some("admin"));
        assert_eq!(class(Method::POST, "/api/admin"), Some("admin"));
        assert_eq!(class(Method::GET, "/health"), None);
        assert_eq!(class(Method::POST, "/mcp"), None);
    }

    #[test]
    fn mcp_rules_target_then_method() {
        let c = classifier();
        let class = |body: &str| {
            c.classify(&Method::POST, "/mcp", Some(&message(body)))
                .map(|i| &*c.names[usize::from(i)])
        };
        assert_eq!(
            class(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_note"}}"#
            ),
            Some("delete")
        );
        assert_eq!(
            class(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#),
            Some("public")
        );
        assert_eq!(
            class(
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#
            ),
            Some("read")
        );
        assert_eq!(class(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(c.index_of("delete"), Some(2));
        assert_eq!(c.index_of("nope"), None);
    }

    #[test]
    fn errors_name_the_class() {
        let err = |classes: &[RouteClass]| Classifier::new(classes).unwrap_err();
        let e = err(&[RouteClass::new("a").rule("GET api")]);
        assert_eq!((e.setting(), e.value()), ("route_class.a", Some("GET api")));
        let e = err(&[RouteClass::new("a").rule("G@T /api")]);
        assert_eq!(e.setting(), "route_class.a");
        let e = err(&[RouteClass::new("a").rule("/api")]);
        assert_eq!(e.setting(), "route_class.a");
        let e = err(&[RouteClass::new("a").rule("tools/call:")]);
        assert_eq!(e.setting(), "route_class.a");
        let e = err(&[RouteClass::new("a")]);
        assert_eq!((e.setting(), e.reason()), ("route_class.a", "has no rules"));
        let e = err(&[RouteClass::new("bad name").rule("x")]);
        assert_eq!((e.setting(), e.value()), ("route_class", Some("bad name")));
        let e = err(&[
            RouteClass::new("a").rule("x"),
            RouteClass::new("a").rule("y"),
        ]);
        assert_eq!(e.reason(), "is declared twice");
        let e = err(&[
            RouteClass::new("a").mcp("tools/call:x"),
            RouteClass::new("b").mcp("tools/call:x"),
        ]);
        assert_eq!(e.setting(), "route_class.b");
        assert!(e.reason().contains("`a`"), "{e}");
        let e = err(&[
            RouteClass::new("a").rule("DELETE /x"),
            RouteClass::new("b").http(Method::DELETE, "/x"),
        ]);
        assert_eq!(e.setting(), "route_class.b");
        // the same rule twice in one class is fine
        assert!(Classifier::new(&[RouteClass::new("a").rule("GET /x").rule("GET /x")]).is_ok());
    }

    #[test]
    fn names() {
        assert!(check_name("n", "tools/call:delete_note").is_ok());
        assert!(check_name("n", "ip-v4.limit_1").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é", &"x".repeat(65)] {
            assert!(check_name("n", bad).is_err(), "{bad:?}");
        }
    }
}
