//! [`SecurityConfigBuilder`]'s MCP-aware settings: the protocol versions, request spans, list
//! filtering, agent-readable refusals and the tool guards (results, arguments, manifest,
//! blocked patterns).

use super::SecurityConfigBuilder;

impl SecurityConfigBuilder {
    /// The `MCP-Protocol-Version` values `McpInspectLayer` accepts (`PROTOCOL_VERSIONS`,
    /// comma-separated; default [`DEFAULT_PROTOCOL_VERSIONS`](mcp_security_core::mcp_headers::DEFAULT_PROTOCOL_VERSIONS),
    /// the versions the bundled rmcp speaks). Another version is refused with 400 `-32022`
    /// naming the supported ones; set this when the server behind speaks other versions.
    pub fn protocol_versions<I, S>(mut self, versions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.s.protocol_versions = Some(versions.into_iter().map(Into::into).collect());
        self
    }

    /// One span per request with OpenTelemetry's MCP attributes and the caller's W3C trace
    /// context (`OTEL_SPANS`, default on); only with the `otel` cargo feature, see
    /// [`otel`](crate::otel).
    pub fn otel_spans(mut self, on: bool) -> Self {
        self.s.otel_spans = on;
        self
    }

    /// Cut `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`
    /// results to what the caller may use under the MCP rules of the auth policy
    /// (`FILTER_LISTS`; default: on whenever there are MCP rules, see
    /// [`ListFilterLayer`](mcp_auth::ListFilterLayer)). `false` shows every caller every entry.
    pub fn filter_lists(mut self, on: bool) -> Self {
        self.s.filter_lists = Some(on);
        self
    }

    /// The most bytes of a list response (or one SSE event) the list filter reads; a larger one
    /// fails closed with a JSON-RPC error (`MAX_LIST_BYTES`, default 4 MiB).
    pub fn max_list_bytes(mut self, bytes: usize) -> Self {
        self.s.max_list_bytes = bytes;
        self
    }

    /// Answer a `tools/call` refused for a missing scope or a per-caller/tool rate limit with
    /// HTTP 200 and a tool result `isError: true` naming the scope or the wait, so an agent can
    /// read it (`TOOL_ERRORS_AS_RESULTS`, default `false`: the specification's 403/429).
    /// Authentication failures stay 401.
    pub fn tool_errors_as_results(mut self, on: bool) -> Self {
        self.s.tool_errors_as_results = on;
        self
    }

    /// What the result guard does with a credential in a `tools/call`, `resources/read` or
    /// `prompts/get` answer (`RESULT_GUARD`, default
    /// [`Off`](mcp_security_guard::ResultGuardMode::Off)): `Redact` replaces each with
    /// `[redacted]`, `Block` the whole answer with a JSON-RPC error; see
    /// [`ToolGuardLayer`](mcp_security_guard::ToolGuardLayer).
    pub fn result_guard(mut self, mode: mcp_security_guard::ResultGuardMode) -> Self {
        self.s.result_guard = mode;
        self
    }

    /// The most bytes of an answer (or one SSE event) the result guard scans; a larger one
    /// fails closed with a JSON-RPC error (`RESULT_GUARD_MAX_BYTES`, default 4 MiB).
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.s.max_result_bytes = bytes;
        self
    }

    /// Check `tools/call` arguments against each tool's `inputSchema`, learned from the
    /// server's `tools/list` answers, before the server sees them (`VALIDATE_TOOL_ARGS`,
    /// default `true`); see [`mcp_security_guard::schema`].
    pub fn validate_tool_args(mut self, on: bool) -> Self {
        self.s.validate_tool_args = on;
        self
    }

    /// Compare every listed tool with a pinned manifest (`TOOL_MANIFEST_FILE`,
    /// `TOOL_MANIFEST_MODE`); see [`mcp_security_guard::manifest`].
    pub fn tool_manifest(
        mut self,
        lock: mcp_security_guard::manifest::ToolManifest,
        mode: mcp_security_guard::manifest::ManifestMode,
    ) -> Self {
        self.s.tool_manifest = Some((lock, mode));
        self
    }

    /// Refuse `tools/call` requests whose arguments match this rule before the server sees
    /// them (TOML `[[blocked_pattern]]`, `BLOCK_PATH_TRAVERSAL`, `BLOCK_SHELL_METACHARACTERS`);
    /// added to the others. See [`mcp_security_guard::patterns`].
    ///
    /// ```
    /// use mcp_security::SecurityConfig;
    /// use mcp_security::guard::{BlockedPattern, PatternPreset};
    ///
    /// let config = SecurityConfig::builder()
    ///     .blocked_pattern(
    ///         BlockedPattern::new("files", "read_file", "/path").preset(PatternPreset::PathTraversal),
    ///     )
    ///     .build()?;
    /// // A bad expression is refused at build, naming the setting and the rule.
    /// let err = SecurityConfig::builder()
    ///     .blocked_pattern(BlockedPattern::new("broken", "*", "").pattern("(unclosed"))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "blocked_pattern");
    /// assert!(err.reason().starts_with("rule `broken`"));
    /// # Ok::<(), mcp_security::core::config::ConfigError>(())
    /// ```
    pub fn blocked_pattern(mut self, rule: mcp_security_guard::BlockedPattern) -> Self {
        self.s.blocked_patterns.push(rule);
        self
    }
}
