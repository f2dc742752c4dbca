//! # mcp-ratelimit
//!
//! Rate limiting for MCP servers as tower middleware. This crate will hold `RateLimitLayer`:
//! GCRA quotas keyed by client address (IPv6 by prefix), principal, route class and MCP
//! method/tool, several limits per request, a hard bound on tracked keys with eviction on the
//! request path, `X-RateLimit-*` and IETF `RateLimit` headers, and `429` answers with an exact
//! `Retry-After`.
//!
//! Status: not implemented yet; the crate exists so the workspace layout is final.
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The [`mcp_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_core;
