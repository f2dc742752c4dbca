//! # mcp-security
//!
//! One dependency for a hardened MCP server. This facade re-exports the layers of the
//! mcp-security workspace and will hold `SecurityConfig` (a builder and `from_env()`), which
//! builds the whole stack in the order below as one tower `Layer`:
//!
//! ```text
//! AuditLayer -> SecurityHeadersLayer -> OriginGuard + CORS -> RateLimitLayer (ip)
//!   -> McpInspectLayer -> AuthLayer -> RateLimitLayer (principal, route, tool) -> your service
//! ```
//!
//! Today the foundation is in place: [`core`] (client address, principal, MCP envelope
//! inspection, rejections, configuration helpers).
//!
//! ```
//! use mcp_security::core::inspect::McpInspectLayer;
//! use tower::ServiceBuilder;
//!
//! let layers = ServiceBuilder::new().layer(McpInspectLayer::builder().path("/mcp").build()?);
//! # let _ = layers;
//! # Ok::<(), mcp_security::core::config::ConfigError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use mcp_audit as audit;
pub use mcp_auth as auth;
pub use mcp_core as core;
pub use mcp_headers as headers;
pub use mcp_prodcheck as prodcheck;
pub use mcp_ratelimit as ratelimit;
