//! Tool-call guards for MCP servers, as tower middleware.
//!
//! [`ToolGuardLayer`] sits innermost in the stack, next to the MCP service, and looks at what
//! the server answers to `tools/call`, `resources/read` and `prompts/get`:
//!
//! - **Result guard** (`MCP_RESULT_GUARD=off|redact|block`, default `off`): every string the
//!   client would receive — text content, embedded resources, `structuredContent`, error
//!   messages, resource contents, prompt messages — is scanned *after JSON decoding* for
//!   credentials with the detectors audit masking uses ([`mcp_security_core::credential`]: PEM private
//!   keys, AWS access key ids, GitHub / GitLab / Slack tokens, JWTs, `mcp-sk-…` API keys,
//!   random-looking `password=` / `secret:` values). `redact` replaces each match with
//!   `[redacted]`; `block` replaces the whole answer with a JSON-RPC error. See
//!   [`ResultGuardMode`] and the [`layer`] module.
//! - **Blocked input patterns** (`[[blocked_pattern]]`, `BLOCK_PATH_TRAVERSAL`,
//!   `BLOCK_SHELL_METACHARACTERS`): per tool and argument JSON pointer, regular expressions
//!   (and the presets `path_traversal`, `shell_metacharacters`) that refuse a `tools/call`
//!   with JSON-RPC `-32602` naming the pointer and the rule, before the server sees it. See
//!   the [`patterns`] module.
//!
//! ```text
//! AuditLayer -> … -> AuthLayer -> RateLimitLayer -> ListFilterLayer -> ToolGuardLayer -> service
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod layer;
pub mod manifest;
pub mod patterns;
pub mod result;
#[cfg(feature = "schema")]
pub mod schema;

pub use layer::{GuardStats, ToolGuard, ToolGuardLayer, ToolGuardLayerBuilder};
pub use patterns::{BlockedPattern, BlockedPatterns, PatternPreset};
pub use result::{ResultGuardMode, ResultRewriter};
