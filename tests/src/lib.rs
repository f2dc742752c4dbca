//! End-to-end test helpers for mcp-security: real sockets on 127.0.0.1, real clients.

#[cfg(feature = "e2e")]
pub mod e2e_support;

#[cfg(feature = "e2e")]
pub mod raw_http;
