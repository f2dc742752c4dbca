//! # mcp-headers
//!
//! Response hardening for MCP servers as tower middleware. This crate will hold
//! `SecurityHeadersLayer` (OWASP headers, presets built once at construction), a CORS policy
//! validated at build time (never `*` in production, never a wildcard with credentials), and the
//! `Origin` guard the MCP transport specification requires against DNS rebinding.
//!
//! Status: not implemented yet; the crate exists so the workspace layout is final.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The [`mcp_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_core;
