//! Which scopes a request needs: per HTTP path prefix and method, and per MCP method and tool.
//!
//! ```
//! use http::Method;
//! use mcp_auth::policy::AuthPolicy;
//! use mcp_security_core::jsonrpc::parse_envelope;
//!
//! let policy = AuthPolicy::builder()
//!     .require_mcp("tools/call:delete_note", ["notes:delete"])
//!     .require_mcp("tools/call:read_note", ["notes:read"])
//!     .require_path("/api/tools", Some(&[Method::DELETE]), ["tools:delete"])
//!     .deny_prefix("/internal/")
//!     .build()?;
//!
//! let call = parse_envelope(
//!     br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_note"}}"#,
//! )
//! .unwrap();
//! assert_eq!(policy.required_scopes(&Method::POST, "/mcp", Some(&call)), ["notes:delete"]);
//! assert!(policy.is_denied("/internal/metrics"));
//! assert!(policy.is_exempt("/health"));
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```
//!
//! # Targets and patterns
//!
//! An MCP rule's key is a method (`tools/call`: every tool) or a method and target
//! (`tools/call:delete_note`, `prompts/get:summary`, `resources/read:file:///notes/a.md`). A
//! target ending in `*` is a prefix pattern: `resources/read:file:///notes/*` covers every URI
//! starting with `file:///notes/` (`*` elsewhere is literal). A request needs the scopes of every
//! rule that covers it: the method's, the exact target's, and every pattern's. The URI is matched
//! as the client sent it; a server that normalizes URIs (`..`, percent-encoding) should get
//! patterns for its normalized and raw forms, or rules at the method level.
//!
//! The same matching decides what [`ListFilterLayer`](crate::list_filter::ListFilterLayer) shows:
//! a tool, prompt or resource is listed when [`AuthPolicy::permits`] lets the caller call, get or
//! read it. A resource *template* (`file:///notes/{id}`) is listed unless every URI it can
//! produce needs a scope the caller lacks: its fixed prefix (the text before the first `{`) is
//! checked against the method's rules and the patterns covering that whole prefix
//! ([`AuthPolicy::permits_template`]). Narrower rules (an exact URI, a pattern longer than the
//! prefix) do not hide the template; reading such a URI is still refused at call time.

use std::collections::HashMap;

use http::Method;
use mcp_security_core::config::{ConfigError, Env};
use mcp_security_core::percent::normalize_path;
use mcp_security_core::{McpCall, Principal};

/// The default exempt paths: `/health`.
pub const DEFAULT_EXEMPT_PATHS: &[&str] = &["/health"];

#[derive(Debug, Clone)]
struct PathRule {
    prefix: String,
    methods: Option<Vec<Method>>,
    scopes: Vec<String>,
}

/// What each request needs; see the [module docs](self). Cheap to share behind the layer's `Arc`.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    exempt: Vec<String>,
    deny_prefixes: Vec<String>,
    path_rules: Vec<PathRule>,
    mcp_rules: HashMap<String, Vec<String>>,
    /// `method:prefix*` rules: (method, prefix, scopes).
    mcp_patterns: Vec<(String, String, Vec<String>)>,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            exempt: DEFAULT_EXEMPT_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            deny_prefixes: Vec::new(),
            path_rules: Vec::new(),
            mcp_rules: HashMap::new(),
            mcp_patterns: Vec::new(),
        }
    }
}

impl AuthPolicy {
    /// A builder starting from the defaults (`/health` exempt, nothing denied, no scope rules).
    pub fn builder() -> AuthPolicyBuilder {
        AuthPolicyBuilder {
            policy: AuthPolicy::default(),
            errors: Vec::new(),
        }
    }

    /// A builder starting from the defaults and the environment: `AUTH_EXEMPT_PATHS` (exact
    /// paths, comma-separated; replaces `/health`) and `AUTH_DENY_PREFIXES`.
    ///
    /// # Errors
    /// A malformed variable, naming it.
    pub fn builder_from_env(env: &Env) -> Result<AuthPolicyBuilder, ConfigError> {
        let mut policy = AuthPolicy::builder();
        if let Some(paths) = env.list("AUTH_EXEMPT_PATHS")? {
            policy = policy.exempt_paths(paths);
        }
        for prefix in env.list("AUTH_DENY_PREFIXES")?.unwrap_or_default() {
            policy = policy.deny_prefix(&prefix);
        }
        Ok(policy)
    }

    /// Whether `path` is served without authentication. Exact match on the raw path only: a
    /// variant spelling that a router might also accept (`//health`, `/health/`) still needs a
    /// credential, which fails safe.
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|p| p == path)
    }

    /// Whether `path` is deny-listed. Checked against the raw path and against its
    /// percent-decoded form with `//` collapsed and `.`/`..` segments resolved, so spelling
    /// variants (`/%69nternal/`, `//internal/`, `/x/../internal/`) cannot slip past.
    pub fn is_denied(&self, path: &str) -> bool {
        if self.deny_prefixes.is_empty() {
            return false;
        }
        let normalized = normalize_path(path);
        self.deny_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()) || normalized.starts_with(p.as_str()))
    }

    /// Every scope the request needs (deduplicated, in rule order): from path rules that match
    /// the path and method, and from MCP rules for each message's `method` and
    /// `method:target` (the tool of `tools/call`, the prompt of `prompts/get`, the URI of
    /// `resources/read`). Empty means any valid credential will do.
    pub fn required_scopes<'a>(
        &'a self,
        method: &Method,
        path: &str,
        call: Option<&McpCall>,
    ) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        let mut push = |scopes: &'a [String]| {
            for s in scopes {
                if !out.contains(&s.as_str()) {
                    out.push(s);
                }
            }
        };
        for rule in &self.path_rules {
            // HEAD is GET without a body (RFC 9110 §9.3.2) and frameworks answer it with the
            // GET handler, so a rule for GET also covers HEAD.
            let method_ok = rule.methods.as_ref().is_none_or(|m| {
                m.contains(method) || (*method == Method::HEAD && m.contains(&Method::GET))
            });
            if method_ok && path_has_prefix(path, &rule.prefix) {
                push(&rule.scopes);
            }
        }
        if let Some(call) = call {
            let mut key = String::new();
            for message in call.messages() {
                let Some(m) = message.method() else { continue };
                if let Some(scopes) = self.mcp_rules.get(m) {
                    push(scopes);
                }
                if let Some(target) = message.target() {
                    key.clear();
                    key.push_str(m);
                    key.push(':');
                    key.push_str(target);
                    if let Some(scopes) = self.mcp_rules.get(key.as_str()) {
                        push(scopes);
                    }
                    for (pm, prefix, scopes) in &self.mcp_patterns {
                        if pm == m && target.starts_with(prefix.as_str()) {
                            push(scopes);
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether any MCP rule exists (the facade turns list filtering on when one does).
    pub fn has_mcp_rules(&self) -> bool {
        !self.mcp_rules.is_empty() || !self.mcp_patterns.is_empty()
    }

    /// Every scope the MCP rules ask of `method` on `target` (the method's rule, the exact
    /// target's, every pattern covering it) — what [`required_scopes`](Self::required_scopes)
    /// adds for that message.
    pub fn mcp_scopes<'a>(&'a self, method: &str, target: &str) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        let mut push = |scopes: &'a [String]| {
            for s in scopes {
                if !out.contains(&s.as_str()) {
                    out.push(s);
                }
            }
        };
        if let Some(scopes) = self.mcp_rules.get(method) {
            push(scopes);
        }
        let key = format!("{method}:{target}");
        if let Some(scopes) = self.mcp_rules.get(key.as_str()) {
            push(scopes);
        }
        for (pm, prefix, scopes) in &self.mcp_patterns {
            if pm == method && target.starts_with(prefix.as_str()) {
                push(scopes);
            }
        }
        out
    }

    /// Whether `principal` (none: no scopes) may send `method` for `target`
    /// (`"tools/call"`, `"delete_note"`) as far as the MCP rules go; see the
    /// [module docs](self#targets-and-patterns).
    pub fn permits(&self, principal: Option<&Principal>, method: &str, target: &str) -> bool {
        let has = |scope: &str| principal.is_some_and(|p| p.has_scope(scope));
        if let Some(scopes) = self.mcp_rules.get(method)
            && !scopes.iter().all(|s| has(s))
        {
            return false;
        }
        let mut key = String::with_capacity(method.len() + 1 + target.len());
        key.push_str(method);
        key.push(':');
        key.push_str(target);
        if let Some(scopes) = self.mcp_rules.get(key.as_str())
            && !scopes.iter().all(|s| has(s))
        {
            return false;
        }
        self.mcp_patterns.iter().all(|(pm, prefix, scopes)| {
            pm != method || !target.starts_with(prefix.as_str()) || scopes.iter().all(|s| has(s))
        })
    }

    /// Whether a resource template (`file:///notes/{id}`) is listed for `principal`: unless the
    /// `resources/read` rules covering its whole fixed prefix ask a scope it lacks; see the
    /// [module docs](self#targets-and-patterns).
    pub fn permits_template(&self, principal: Option<&Principal>, template: &str) -> bool {
        let Some((prefix, _)) = template.split_once('{') else {
            return self.permits(principal, "resources/read", template);
        };
        let has = |scope: &str| principal.is_some_and(|p| p.has_scope(scope));
        let method = "resources/read";
        if let Some(scopes) = self.mcp_rules.get(method)
            && !scopes.iter().all(|s| has(s))
        {
            return false;
        }
        self.mcp_patterns.iter().all(|(pm, pattern, scopes)| {
            pm != method || !prefix.starts_with(pattern.as_str()) || scopes.iter().all(|s| has(s))
        })
    }

    /// Every scope any rule names, for `scopes_supported` in the protected-resource metadata.
    pub fn all_scopes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let rules = self.path_rules.iter().map(|r| &r.scopes);
        for scope in rules.chain(self.mcp_rules.values()).flatten() {
            if !out.contains(&scope.as_str()) {
                out.push(scope);
            }
        }
        out.sort_unstable();
        out
    }
}

/// `path` equals `prefix` or continues it at a segment boundary (a prefix ending in `/` matches
/// anything under it).
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

/// Builds an [`AuthPolicy`]; see [`AuthPolicy::builder`].
#[derive(Debug)]
#[must_use]
pub struct AuthPolicyBuilder {
    policy: AuthPolicy,
    errors: Vec<ConfigError>,
}

fn scopes_vec<I, S>(scopes: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    scopes
        .into_iter()
        .map(|s| s.as_ref().trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl AuthPolicyBuilder {
    /// Replace the exempt paths (exact paths served without authentication; default `/health`).
    pub fn exempt_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.policy.exempt.clear();
        for p in paths {
            self = self.exempt(p.as_ref());
        }
        self
    }

    /// Add an exempt exact path.
    pub fn exempt(mut self, path: &str) -> Self {
        if !path.starts_with('/') {
            self.errors.push(
                ConfigError::new("auth_exempt_paths", "paths must start with '/'").with_value(path),
            );
        } else if !self.policy.exempt.iter().any(|p| p == path) {
            self.policy.exempt.push(path.to_owned());
        }
        self
    }

    /// Refuse every request under `prefix` with 403, credential or not (e.g. `/internal/`).
    pub fn deny_prefix(mut self, prefix: &str) -> Self {
        if !prefix.starts_with('/') || prefix == "/" {
            self.errors.push(
                ConfigError::new("deny_prefix", "must start with '/' and not be '/' alone")
                    .with_value(prefix),
            );
        } else {
            self.policy.deny_prefixes.push(prefix.to_owned());
        }
        self
    }

    /// Require `scopes` for requests whose path is `prefix` or under it, for the given methods
    /// (all methods when `None`). A rule for `GET` also covers `HEAD`, which frameworks answer
    /// with the GET handler.
    pub fn require_path<I, S>(mut self, prefix: &str, methods: Option<&[Method]>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes = scopes_vec(scopes);
        if !prefix.starts_with('/') {
            self.errors.push(
                ConfigError::new("require_path", "prefix must start with '/'").with_value(prefix),
            );
        } else if scopes.is_empty() {
            self.errors.push(
                ConfigError::new("require_path", "needs at least one scope").with_value(prefix),
            );
        } else {
            self.policy.path_rules.push(PathRule {
                prefix: prefix.to_owned(),
                methods: methods.map(<[Method]>::to_vec),
                scopes,
            });
        }
        self
    }

    /// Require `scopes` for an MCP method (`"tools/list"`) or a method and target
    /// (`"tools/call:delete_note"`, `"prompts/get:summary"`, `"resources/read:file:///x"`).
    /// A target ending in `*` is a prefix pattern (`"resources/read:file:///notes/*"`; see the
    /// [module docs](self#targets-and-patterns)). Rules for the same key accumulate.
    pub fn require_mcp<I, S>(mut self, key: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes = scopes_vec(scopes);
        if key.is_empty() || key.starts_with(':') || key.ends_with(':') {
            self.errors.push(
                ConfigError::new("require_mcp", "expected `method` or `method:target`")
                    .with_value(key),
            );
        } else if scopes.is_empty() {
            self.errors
                .push(ConfigError::new("require_mcp", "needs at least one scope").with_value(key));
        } else if let Some((method, prefix)) = key
            .strip_suffix('*')
            .and_then(|k| k.split_once(':'))
            .filter(|(m, _)| !m.is_empty())
        {
            match self
                .policy
                .mcp_patterns
                .iter_mut()
                .find(|(m, p, _)| m == method && p == prefix)
            {
                Some((_, _, existing)) => existing.extend(scopes),
                None => {
                    self.policy
                        .mcp_patterns
                        .push((method.to_owned(), prefix.to_owned(), scopes));
                }
            }
        } else {
            self.policy
                .mcp_rules
                .entry(key.to_owned())
                .or_default()
                .extend(scopes);
        }
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// The first invalid rule, naming the builder method.
    pub fn build(mut self) -> Result<AuthPolicy, ConfigError> {
        if !self.errors.is_empty() {
            return Err(self.errors.swap_remove(0));
        }
        Ok(self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_security_core::jsonrpc::parse_envelope;

    fn notes_policy() -> AuthPolicy {
        AuthPolicy::builder()
            .require_mcp("tools/call:read_note", ["notes:read"])
            .require_mcp("tools/call:write_note", ["notes:write"])
            .require_mcp("tools/call:delete_note", ["notes:delete"])
            .require_mcp("tools/call:delete_note", ["audit:write"])
            .require_mcp("resources/read", ["resources:read"])
            .require_path(
                "/api/",
                Some(&[Method::POST, Method::PUT]),
                ["registry:write"],
            )
            .require_path("/api", None, ["registry:read"])
            .deny_prefix("/internal/")
            .build()
            .unwrap()
    }

    fn call(body: &str) -> McpCall {
        parse_envelope(body.as_bytes()).unwrap()
    }

    #[test]
    fn mcp_rules_by_method_and_tool() {
        let p = notes_policy();
        let del = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_note"}}"#,
        );
        assert_eq!(
            p.required_scopes(&Method::POST, "/mcp", Some(&del)),
            ["notes:delete", "audit:write"]
        );
        let list = call(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(
            p.required_scopes(&Method::POST, "/mcp", Some(&list))
                .is_empty()
        );
        let echo =
            call(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#);
        assert!(
            p.required_scopes(&Method::POST, "/mcp", Some(&echo))
                .is_empty()
        );
        let res = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        );
        assert_eq!(
            p.required_scopes(&Method::POST, "/mcp", Some(&res)),
            ["resources:read"]
        );
    }

    #[test]
    fn batch_needs_the_union() {
        let p = notes_policy();
        let batch = call(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note"}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_note"}},
                {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_note"}}]"#,
        );
        assert_eq!(
            p.required_scopes(&Method::POST, "/mcp", Some(&batch)),
            ["notes:read", "notes:write"]
        );
    }

    #[test]
    fn path_rules_by_prefix_and_method() {
        let p = notes_policy();
        assert_eq!(
            p.required_scopes(&Method::POST, "/api/tools", None),
            ["registry:write", "registry:read"]
        );
        assert_eq!(
            p.required_scopes(&Method::GET, "/api/tools", None),
            ["registry:read"]
        );
        assert_eq!(
            p.required_scopes(&Method::HEAD, "/api/tools", None),
            ["registry:read"]
        );
        assert_eq!(
            p.required_scopes(&Method::GET, "/api", None),
            ["registry:read"]
        );
        assert!(p.required_scopes(&Method::GET, "/apix", None).is_empty());
        // A GET-only rule covers HEAD (answered by the GET handler), not other methods.
        let get_only = AuthPolicy::builder()
            .require_path("/tools", Some(&[Method::GET]), ["read"])
            .build()
            .unwrap();
        assert_eq!(
            get_only.required_scopes(&Method::HEAD, "/tools", None),
            ["read"]
        );
        assert!(
            get_only
                .required_scopes(&Method::OPTIONS, "/tools", None)
                .is_empty()
        );
        assert_eq!(
            p.all_scopes(),
            [
                "audit:write",
                "notes:delete",
                "notes:read",
                "notes:write",
                "registry:read",
                "registry:write",
                "resources:read"
            ]
        );
    }

    #[test]
    fn exempt_is_exact() {
        let p = notes_policy();
        assert!(p.is_exempt("/health"));
        assert!(!p.is_exempt("/health/"));
        assert!(!p.is_exempt("//health"));
        assert!(!p.is_exempt("/healthz"));
        let p = AuthPolicy::builder()
            .exempt_paths(["/live", "/ready"])
            .build()
            .unwrap();
        assert!(!p.is_exempt("/health"));
        assert!(p.is_exempt("/ready"));
    }

    #[test]
    fn denied_prefixes_resist_spelling_variants() {
        let p = notes_policy();
        for path in [
            "/internal/",
            "/internal/metrics",
            "//internal/x",
            "/%69nternal/x",
            "/%2Finternal/x",
            "/api/../internal/x",
            "/./internal/x",
        ] {
            assert!(p.is_denied(path), "{path}");
        }
        for path in [
            "/internal",
            "/internals/x",
            "/api/internal/x",
            "/%ZZinternal/",
        ] {
            assert!(!p.is_denied(path), "{path}");
        }
    }

    fn principal(scopes: &[&str]) -> Principal {
        Principal::builder("p", mcp_security_core::PrincipalKind::ApiKey)
            .scopes(scopes.iter().copied())
            .build()
    }

    #[test]
    fn patterns_guard_calls_and_lists_alike() {
        let p = AuthPolicy::builder()
            .require_mcp("tools/call:delete_note", ["notes:delete"])
            .require_mcp("resources/read:file:///notes/*", ["notes:read"])
            .require_mcp("resources/read:file:///notes/secret/*", ["secret:read"])
            .require_mcp("resources/read:file:///etc/passwd", ["root"])
            .require_mcp("prompts/get", ["prompts"])
            .build()
            .unwrap();
        assert!(p.has_mcp_rules());
        let read = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///notes/secret/x"}}"#,
        );
        assert_eq!(
            p.required_scopes(&Method::POST, "/mcp", Some(&read)),
            ["notes:read", "secret:read"]
        );
        assert_eq!(
            p.mcp_scopes("resources/read", "file:///notes/secret/x"),
            ["notes:read", "secret:read"]
        );
        let reader = principal(&["notes:read"]);
        assert!(p.permits(Some(&reader), "resources/read", "file:///notes/a"));
        assert!(!p.permits(Some(&reader), "resources/read", "file:///notes/secret/a"));
        assert!(!p.permits(None, "resources/read", "file:///notes/a"));
        assert!(p.permits(None, "resources/read", "file:///other"));
        assert!(!p.permits(Some(&reader), "tools/call", "delete_note"));
        assert!(p.permits(Some(&reader), "tools/call", "echo"));
        assert!(!p.permits(Some(&reader), "prompts/get", "any"));
        // Templates: hidden only when every URI needs a missing scope.
        assert!(p.permits_template(Some(&reader), "file:///notes/{id}"));
        assert!(!p.permits_template(None, "file:///notes/{id}"));
        assert!(!p.permits_template(Some(&reader), "file:///notes/secret/{id}"));
        // The prefix `file:///` is not wholly under `file:///notes/`: listed, reads checked.
        assert!(p.permits_template(None, "file:///{path}"));
        assert!(!p.permits_template(Some(&reader), "file:///etc/passwd"));
    }

    #[test]
    fn builder_errors_name_the_setting() {
        let e = AuthPolicy::builder().exempt("health").build().unwrap_err();
        assert_eq!(
            (e.setting(), e.value()),
            ("auth_exempt_paths", Some("health"))
        );
        let e = AuthPolicy::builder().deny_prefix("/").build().unwrap_err();
        assert_eq!(e.setting(), "deny_prefix");
        let e = AuthPolicy::builder()
            .require_mcp("tools/call:", ["x"])
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "require_mcp");
        let e = AuthPolicy::builder()
            .require_mcp("tools/call:x", Vec::<String>::new())
            .build()
            .unwrap_err();
        assert_eq!(e.reason(), "needs at least one scope");
        let e = AuthPolicy::builder()
            .require_path("api", None, ["x"])
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "require_path");
    }
}
