//! # mcp-prodcheck
//!
//! Production-readiness checks for an MCP server's security configuration, in the manner of
//! Django's `check --deploy`: findings with stable ids (`MCP-AUTH-001`), severities, messages and
//! a fix for each, the refuse-to-start guard, and report formats for CI.
//!
//! Status: not implemented yet; the crate exists so the workspace layout is final.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The [`mcp_core`] crate these checks build on, re-exported for convenience.
pub use mcp_core;
