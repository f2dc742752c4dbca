//! Blocked input patterns: `tools/call` arguments refused by operator-listed regular
//! expressions before the tool runs.
//!
//! A rule ([`BlockedPattern`]) names an id, a tool (or `*` for every tool), a JSON pointer
//! (RFC 6901) into the call's `arguments`, and regular expressions and/or presets
//! ([`PatternPreset`]). A single `tools/call` — or any `tools/call` in a batch — whose
//! arguments match is answered by [`ToolGuardLayer`](crate::ToolGuardLayer) itself, in the
//! place argument validation answers, so the server never sees it:
//!
//! ```json
//! {"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/path","rule":"files"},
//!  "message":"Invalid params: argument /path refused by blocked-pattern rule files"},
//!  "id":7,"jsonrpc":"2.0"}
//! ```
//!
//! HTTP 200 with `application/json`, as the server answers invalid params. The message and
//! `data` name only what the operator configured — the rule's pointer and id — never the
//! matched text, the argument's value or the called tool's name.
//!
//! # What is checked
//!
//! - **Every string under the pointer.** The pointer may address a nested value or an array
//!   element (`/options/target`, `/files/0`); when it addresses an object or an array, every
//!   string leaf inside it (at any depth; `serde_json`'s nesting limit of 128 bounds it) is
//!   checked, so `/files` covers `{"files":[{"path":"../x"}]}`. The empty pointer `""`
//!   checks every string of the arguments. A pointer that addresses nothing checks nothing.
//! - **Strings only, decoded.** The expressions run on the JSON-decoded string (so
//!   `"\u002e\u002e/"` is `../`). Numbers, booleans and `null` are skipped: their JSON text
//!   (digits, sign, `.`, `e`) cannot carry a path or a shell command. Object keys are not
//!   checked: tools read values.
//! - **Duplicate keys** inside `arguments`: the last is checked, as `serde_json` (and so rmcp
//!   and axum's `Json`) keeps the last. Duplicate envelope keys are already refused by
//!   `McpInspectLayer`, which must run before this layer (the arguments are read from the body
//!   it buffered; without its `McpCall` nothing is checked).
//! - **A batch** (MCP 2025-03-26) with a refused call is answered whole, without reaching the
//!   server: the refused calls get the error above, the other requests
//!   `-32000 "Not processed: another call in the batch was refused"`.
//!
//! # Matching
//!
//! The [`regex`] crate: matching is linear in the input, with no backtracking. Each expression
//! is compiled with a size limit ([`MAX_COMPILED_BYTES`]) and each rule's set with a lazy-DFA
//! cache limit ([`MAX_DFA_BYTES`]); an expression that does not compile, or compiles too big,
//! is a [`ConfigError`] naming the setting (`blocked_pattern`) and the rule id.
//!
//! # Presets
//!
//! - `path_traversal`: `..` as a path segment with `/` or `\`, raw, percent-encoded
//!   (`%2e%2e%2f`), double-encoded (`%252e%252e%255c`) or overlong UTF-8 (`%c0%ae`); an
//!   absolute path into a system root (`/etc`, `/proc`, `/sys`, `/dev`, `/root`, `/boot`,
//!   `/run`, `/var/run`, `/var/log`, `file:///…`, `C:\Windows`); a credential directory
//!   (`.ssh`, `.aws`, `.gnupg`, `.kube`); a home directory (`~`, `~user`); a UNC path
//!   (`\\host\share`); a NUL byte (raw, `%00`, `%2500`). Names that merely contain dots
//!   (`my..file`, `v1..v2`, `..hidden`) pass, as do relative paths and other absolute ones.
//! - `shell_metacharacters`: `;`, `&`, `|`, line breaks (a second command), `` ` `` and `$`
//!   (substitution, expansion), `<` and `>` (redirection), NUL. Quotes, globs, parentheses and
//!   a leading `-` (option injection) are not covered: the tool must still pass arguments as
//!   an argument vector, never through a shell.
//!
//! # Audit and metrics
//!
//! Each refusal carries a [`Rejection`](mcp_security_core::Rejection) (`blocked_pattern`,
//! JSON-RPC `-32602`) for the audit record — decision `rejected`, reason `blocked_pattern`, and
//! the `mcp_security_violations_total{reason="blocked_pattern"}` count of the audit layer —
//! whose internal detail names the tool, the pointer of the string that matched
//! (`/files/2/path`), which expression (`pattern 1`, or the preset's label such as
//! `path_traversal: dot-dot segment`) and the rule, never the text. Each refused call counts
//! once in [`GuardStats::arguments_blocked`](crate::GuardStats::arguments_blocked) and in the
//! metric [`BLOCKED_METRIC`] (`mcp_blocked_pattern_hits_total{rule}`).
//!
//! # Environment
//!
//! [`from_env`] reads `BLOCK_PATH_TRAVERSAL` and `BLOCK_SHELL_METACHARACTERS`:
//! comma-separated `tool:pointer` entries (`read_file:/path,*:/file`; `tool` alone checks
//! every argument), each a rule of that preset whose id is the preset's name. Rules with
//! their own expressions go in the TOML file (`[[blocked_pattern]]`, read by the
//! `mcp-security` facade) or in code:
//!
//! ```
//! use mcp_security_guard::patterns::{BlockedPattern, BlockedPatterns, PatternPreset};
//! use serde_json::json;
//!
//! let rules = BlockedPatterns::new([
//!     BlockedPattern::new("files", "read_file", "/path").preset(PatternPreset::PathTraversal),
//!     BlockedPattern::new("no_sql_comments", "*", "/query").pattern("--|/\\*"),
//! ])?;
//! let hit = rules.check("read_file", &json!({"path": "docs/%2e%2e/%2e%2e/etc/passwd"})).unwrap();
//! assert_eq!((hit.rule(), hit.pointer()), ("files", "/path"));
//! assert!(rules.check("read_file", &json!({"path": "docs/my..notes.txt"})).is_none());
//! assert_eq!(rules.check("search", &json!({"query": "x -- y"})).unwrap().rule(), "no_sql_comments");
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use mcp_security_core::config::{ConfigError, Env};
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::Value;

mod presets;
pub(crate) mod refuse;

/// The compiled-size limit of each expression (`regex`'s `size_limit`): 1 MiB.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;

/// The lazy-DFA cache limit of each rule's set (`regex`'s `dfa_size_limit`): 2 MiB.
pub const MAX_DFA_BYTES: usize = 2 << 20;

/// The most rules a guard takes.
pub const MAX_RULES: usize = 1024;

/// The longest rule id (ids are metric labels and appear in refusals).
pub const MAX_ID_BYTES: usize = 64;

/// The counter of refused calls, labelled `rule`.
pub const BLOCKED_METRIC: &str = "mcp_blocked_pattern_hits_total";

/// The setting builder errors name.
const SETTING: &str = "blocked_pattern";

/// A ready-made list of expressions; see the [module docs](self#presets).
///
/// ```
/// use mcp_security_guard::PatternPreset;
///
/// let preset = PatternPreset::parse("MCP_PRESET", "shell_metacharacters")?;
/// assert_eq!(preset, PatternPreset::ShellMetacharacters);
/// let labels: Vec<_> = preset.expressions().iter().map(|(label, _)| *label).collect();
/// assert_eq!(labels, ["command separator", "substitution", "redirection", "NUL byte"]);
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PatternPreset {
    /// `path_traversal`: `..` segments (raw and encoded), absolute paths into system roots,
    /// credential directories, `~`, UNC paths, NUL bytes.
    PathTraversal,
    /// `shell_metacharacters`: `;` `&` `|` line breaks `` ` `` `$` `<` `>` NUL.
    ShellMetacharacters,
}

impl PatternPreset {
    /// Every preset.
    pub const ALL: [PatternPreset; 2] = [
        PatternPreset::PathTraversal,
        PatternPreset::ShellMetacharacters,
    ];

    /// `path_traversal` or `shell_metacharacters`.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternPreset::PathTraversal => "path_traversal",
            PatternPreset::ShellMetacharacters => "shell_metacharacters",
        }
    }

    /// The preset named `value` (`path_traversal`, `shell_metacharacters`).
    ///
    /// # Errors
    /// Another name, naming `setting`.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == value.trim())
            .ok_or_else(|| {
                ConfigError::new(
                    setting,
                    "expected \"path_traversal\" or \"shell_metacharacters\"",
                )
                .with_value(value)
            })
    }

    /// The preset's expressions: (label, regular expression).
    pub fn expressions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            PatternPreset::PathTraversal => presets::PATH_TRAVERSAL,
            PatternPreset::ShellMetacharacters => presets::SHELL_METACHARACTERS,
        }
    }
}

impl fmt::Display for PatternPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule, not yet compiled: see the [module docs](self).
///
/// ```
/// use mcp_security_guard::{BlockedPattern, BlockedPatterns, PatternPreset};
/// use serde_json::json;
///
/// let rule = BlockedPattern::new("uploads", "*", "/files")
///     .preset(PatternPreset::PathTraversal)
///     .pattern(r"(?i)\.(exe|dll)$");
/// assert_eq!((rule.id(), rule.tool(), rule.pointer()), ("uploads", "*", "/files"));
/// let rules = BlockedPatterns::new([rule])?;
/// let hit = rules.check("upload", &json!({"files": [{"name": "a.txt"}, {"name": "setup.EXE"}]})).unwrap();
/// assert_eq!((hit.at(), hit.pattern()), ("/files/1/name", "pattern 1"));
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct BlockedPattern {
    id: String,
    tool: String,
    pointer: String,
    patterns: Vec<String>,
    presets: Vec<PatternPreset>,
}

impl BlockedPattern {
    /// A rule `id` for `tool` (`*`: every tool) on the argument at `pointer` (`""`: every
    /// argument), with no expression yet.
    pub fn new(id: impl Into<String>, tool: impl Into<String>, pointer: impl Into<String>) -> Self {
        BlockedPattern {
            id: id.into(),
            tool: tool.into(),
            pointer: pointer.into(),
            patterns: Vec::new(),
            presets: Vec::new(),
        }
    }

    /// Add a regular expression (`regex` syntax; `(?i)` for case-insensitive).
    pub fn pattern(mut self, regex: impl Into<String>) -> Self {
        self.patterns.push(regex.into());
        self
    }

    /// Add regular expressions.
    pub fn patterns<I>(mut self, regexes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.patterns.extend(regexes.into_iter().map(Into::into));
        self
    }

    /// Add a preset's expressions.
    pub fn preset(mut self, preset: PatternPreset) -> Self {
        if !self.presets.contains(&preset) {
            self.presets.push(preset);
        }
        self
    }

    /// The rule's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tool, or `*`.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The JSON pointer into the arguments.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The rule's own expressions.
    pub fn regexes(&self) -> &[String] {
        &self.patterns
    }

    /// The rule's presets.
    pub fn presets(&self) -> &[PatternPreset] {
        &self.presets
    }

    fn error(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::new(SETTING, format!("rule `{}`: {reason}", self.id))
    }

    fn compile(self) -> Result<Rule, ConfigError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_ID_BYTES
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !id_ok {
            return Err(ConfigError::new(
                SETTING,
                format!("a rule id must be 1 to {MAX_ID_BYTES} characters of A-Z a-z 0-9 _ - . :"),
            )
            .with_value(&self.id));
        }
        if self.tool.trim().is_empty() {
            return Err(self.error("the tool must be a tool's name or `*`"));
        }
        if !valid_pointer(&self.pointer) {
            return Err(self
                .error("the pointer must be empty or a JSON pointer starting with `/` (RFC 6901)")
                .with_value(&self.pointer));
        }
        let mut sources: Vec<&str> = Vec::new();
        let mut labels: Vec<Cow<'static, str>> = Vec::new();
        for (i, p) in self.patterns.iter().enumerate() {
            RegexBuilder::new(p)
                .size_limit(MAX_COMPILED_BYTES)
                .dfa_size_limit(MAX_DFA_BYTES)
                .build()
                .map_err(|e| {
                    self.error(format_args!(
                        "pattern {} does not compile: {}",
                        i + 1,
                        one_line(&e.to_string())
                    ))
                    .with_value(p)
                })?;
            sources.push(p);
            labels.push(Cow::Owned(format!("pattern {}", i + 1)));
        }
        for preset in &self.presets {
            for (label, regex) in preset.expressions() {
                sources.push(regex);
                labels.push(Cow::Owned(format!("{preset}: {label}")));
            }
        }
        if sources.is_empty() {
            return Err(self.error("give at least one pattern or a preset"));
        }
        let set = RegexSetBuilder::new(&sources)
            .size_limit(MAX_COMPILED_BYTES.saturating_mul(sources.len()))
            .dfa_size_limit(MAX_DFA_BYTES)
            .build()
            .map_err(|e| {
                self.error(format_args!(
                    "the patterns do not compile together: {}",
                    one_line(&e.to_string())
                ))
            })?;
        Ok(Rule {
            tool: (self.tool != "*").then(|| self.tool.into_boxed_str()),
            id: self.id.into_boxed_str(),
            pointer: self.pointer.into_boxed_str(),
            set,
            labels,
        })
    }
}

/// `""`, or `/` followed by tokens where `~` is only `~0` or `~1`.
fn valid_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    p.starts_with('/')
        && p.split('~')
            .skip(1)
            .all(|rest| rest.starts_with('0') || rest.starts_with('1'))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Rule {
    id: Box<str>,
    /// `None`: every tool.
    tool: Option<Box<str>>,
    pointer: Box<str>,
    set: RegexSet,
    labels: Vec<Cow<'static, str>>,
}

impl Rule {
    fn applies_to(&self, tool: &str) -> bool {
        self.tool.as_deref().is_none_or(|t| t == tool)
    }
}

/// A refused argument: which rule, where, and which expression; never the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternHit<'a> {
    rule: &'a str,
    pointer: &'a str,
    at: String,
    pattern: &'a str,
}

impl<'a> PatternHit<'a> {
    /// The rule's id.
    pub fn rule(&self) -> &'a str {
        self.rule
    }

    /// The rule's pointer (what the refusal names).
    pub fn pointer(&self) -> &'a str {
        self.pointer
    }

    /// The pointer of the string that matched (`/files/2/path`), for the audit detail.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// Which expression matched: `pattern N` (the rule's own, from 1) or
    /// `preset: label`.
    pub fn pattern(&self) -> &'a str {
        self.pattern
    }
}

/// Compiled rules, cheap to clone; see the [module docs](self).
#[derive(Clone, Default)]
pub struct BlockedPatterns {
    rules: Arc<[Rule]>,
}

impl fmt::Debug for BlockedPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| &*r.id))
            .finish()
    }
}

impl BlockedPatterns {
    /// Compile `rules`.
    ///
    /// # Errors
    /// `blocked_pattern`, naming the rule: an id that is empty, too long or not made of
    /// `A-Z a-z 0-9 _ - . :`; an empty tool; a pointer that is neither empty nor starts with
    /// `/`; no expression; an expression that does not compile or is over the size limit;
    /// more than [`MAX_RULES`] rules.
    pub fn new<I>(rules: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = BlockedPattern>,
    {
        let rules = rules
            .into_iter()
            .map(BlockedPattern::compile)
            .collect::<Result<Vec<_>, _>>()?;
        if rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                SETTING,
                format!("at most {MAX_RULES} rules"),
            ));
        }
        Ok(BlockedPatterns {
            rules: rules.into(),
        })
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule (nothing is checked).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.id)
    }

    /// Whether any rule applies to `tool`.
    pub fn applies_to(&self, tool: &str) -> bool {
        self.rules.iter().any(|r| r.applies_to(tool))
    }

    /// The first rule (in order) that refuses these `arguments` of a call of `tool`.
    pub fn check(&self, tool: &str, arguments: &Value) -> Option<PatternHit<'_>> {
        self.rules
            .iter()
            .filter(|r| r.applies_to(tool))
            .find_map(|rule| {
                let target = arguments.pointer(&rule.pointer)?;
                let mut path = Vec::new();
                let index = first_match(&rule.set, target, &mut path)?;
                let mut at = String::from(&*rule.pointer);
                for seg in &path {
                    at.push('/');
                    match seg {
                        Segment::Key(k) => at.push_str(&k.replace('~', "~0").replace('/', "~1")),
                        Segment::Index(i) => at.push_str(&i.to_string()),
                    }
                }
                Some(PatternHit {
                    rule: &rule.id,
                    pointer: &rule.pointer,
                    at,
                    pattern: rule.labels.get(index).map_or("pattern", |l| l),
                })
            })
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// The index of the first expression matching a string leaf of `value`; `path` is left at the
/// leaf. Recursion is bounded by `serde_json`'s nesting limit on the parsed value.
fn first_match<'a>(set: &RegexSet, value: &'a Value, path: &mut Vec<Segment<'a>>) -> Option<usize> {
    match value {
        Value::String(s) => {
            if set.is_match(s) {
                set.matches(s).iter().next()
            } else {
                None
            }
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(Segment::Index(i));
            let found = first_match(set, v, path);
            if found.is_none() {
                path.pop();
            }
            found
        }),
        Value::Object(members) => members.iter().find_map(|(k, v)| {
            path.push(Segment::Key(k));
            let found = first_match(set, v, path);
            if found.is_none() {
                path.pop();
            }
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// The preset rules of the environment (with the [`Env`]'s prefix): `BLOCK_PATH_TRAVERSAL` and
/// `BLOCK_SHELL_METACHARACTERS`, comma-separated `tool:pointer` entries (`tool` alone: every
/// argument; `*` for every tool), each a rule of that preset whose id is the preset's name.
///
/// ```
/// use mcp_security_core::config::Env;
/// use mcp_security_guard::patterns::from_env;
///
/// let env = Env::from_pairs("MCP", [("MCP_BLOCK_PATH_TRAVERSAL", "read_file:/path, *:/file")]);
/// let rules = from_env(&env)?;
/// assert_eq!((rules[1].id(), rules[1].tool(), rules[1].pointer()), ("path_traversal", "*", "/file"));
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
///
/// # Errors
/// An entry with an empty tool or a pointer not starting with `/`, naming the variable.
pub fn from_env(env: &Env) -> Result<Vec<BlockedPattern>, ConfigError> {
    let mut rules = Vec::new();
    for (name, preset) in [
        ("BLOCK_PATH_TRAVERSAL", PatternPreset::PathTraversal),
        (
            "BLOCK_SHELL_METACHARACTERS",
            PatternPreset::ShellMetacharacters,
        ),
    ] {
        let Some(entries) = env.list(name)? else {
            continue;
        };
        for entry in entries {
            let (tool, pointer) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
            let (tool, pointer) = (tool.trim(), pointer.trim());
            if tool.is_empty() || !valid_pointer(pointer) {
                return Err(ConfigError::new(
                    env.var_name(name),
                    "expected comma-separated `tool:/json/pointer` entries (`*` for every tool)",
                )
                .with_value(&entry));
            }
            rules.push(BlockedPattern::new(preset.as_str(), tool, pointer).preset(preset));
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod layer_tests;
#[cfg(test)]
mod tests;
