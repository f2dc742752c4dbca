//! # mcp-auth
//!
//! Authentication for MCP servers as tower middleware. This crate will hold `AuthLayer`:
//!
//! - API keys kept only as SHA-256 / HMAC-SHA256 digests (`ApiKeyStore`), compared in constant
//!   time, with names, scopes, expiry, an enabled flag and hot reload of a key file;
//! - HS256 JWTs (RFC 7519 / RFC 8725) with rotation, required `exp`, `aud`, `iss` and leeway;
//! - scope checks per route and per MCP tool, using [`mcp_core::Principal`];
//! - RFC 6750 challenges and RFC 9728 protected-resource metadata, as the MCP authorization
//!   specification asks.
//!
//! Status: not implemented yet; the crate exists so the workspace layout is final. See the
//! project README for the status of each crate.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The [`mcp_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_core;
