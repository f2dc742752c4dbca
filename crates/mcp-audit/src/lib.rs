//! # mcp-audit
//!
//! An audit trail for MCP servers as tower middleware. This crate will hold `AuditLayer`: one
//! structured record per request (rejected ones included) with principal, MCP method and tool,
//! decision and reason; credential masking with keyed fingerprints; a `tracing` sink and a
//! tamper-evident JSON-lines file sink (HMAC chain, signed checkpoints); security metrics and
//! detectors for auth-failure bursts and floods.
//!
//! Status: not implemented yet; the crate exists so the workspace layout is final.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The [`mcp_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_core;
