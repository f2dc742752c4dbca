//! # mcp-security
//!
//! One dependency for a hardened MCP server. [`SecurityConfig`] reads the deployment's settings
//! (a builder in code, [`SecurityConfig::from_env`] / [`from_env_with_prefix`], and an optional
//! TOML file; see [`config`]), checks them for production ([`prodcheck`]), and builds the whole
//! stack as one tower `Layer` ([`SecurityLayer`]), in this order, outermost first:
//!
//! ```text
//! AuditLayer            times and records every request, including the ones rejected below
//! SecurityHeadersLayer  headers on every response, rejections included
//! OriginGuard + CORS    preflights answered; a disallowed Origin or Host is a 403
//! NetworkPolicyLayer    (ALLOW_NETWORKS, DENY_NETWORKS, [[network]]) CIDR lists: a 403
//! RateLimitLayer (ip)   cheap, before any crypto; checks the shared BanList
//! ResourceLimitLayer    concurrency cap and timeouts (SSE streams exempt)
//! McpInspectLayer       bounded body read; McpCall into extensions
//! TokenEndpointLayer    (TOKEN_ENDPOINT) POST /oauth/token: an API key buys a short-lived JWT
//! AuthLayer             Principal into extensions, or 401/403 with a proper challenge
//! SessionBindingLayer   a legacy Mcp-Session-Id belongs to the principal that opened it;
//!                       any other id gets the server's own unknown-session 404
//! RateLimitLayer (who)  per principal, per route class, per MCP tool
//! ListFilterLayer       tools/prompts/resources lists cut to what the caller may use
//! ToolGuardLayer        credentials in results redacted or blocked; arguments checked
//!   your service        axum Router / rmcp StreamableHttpService / tonic / hyper
//! ```
//!
//! [`SecurityConfig::layer`] refuses to build in production when a check finds an error (no
//! credential source, a placeholder key, `DEBUG` on, CORS `*`, no resource URL, …), with a
//! message that lists each finding and its fix; in development it logs the findings as warnings
//! and builds. The Origin guard's `Host` allowlist is also the only source the auth layer may
//! derive the OAuth resource URL from when `RESOURCE_URL` (or a URL audience) is not set.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use mcp_security::SecurityConfig;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // IQ_API_KEY, IQ_REQUIRE_AUTH, IQ_CORS_ORIGINS, …
//! let config = SecurityConfig::from_env_with_prefix("IQ")?;
//! let security = config.layer()?; // refuses unsafe production settings
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(security.clone());
//! let listener = tokio::net::TcpListener::bind(config.bind_addr().unwrap()).await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//!     .await?;
//! security.audit().close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The crates are re-exported, so one dependency is enough to compose by hand:
//! [`core`] (client address, principal, MCP envelope inspection, rejections, configuration
//! helpers), [`auth`], [`ratelimit`], [`headers`], [`audit`], [`guard`] and [`prodcheck`].
//!
//! [`from_env_with_prefix`]: SecurityConfig::from_env_with_prefix
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod config;
pub mod otel;
pub mod stack;
mod tokens;

pub use config::{EnvironmentSource, SecurityConfig, SecurityConfigBuilder};
#[allow(deprecated)]
pub use stack::{MaybeAuth, MaybeAuthFuture};
pub use stack::{SecurityError, SecurityLayer, SecurityService};

pub use mcp_auth as auth;
pub use mcp_headers as headers;
pub use mcp_prodcheck as prodcheck;
pub use mcp_ratelimit as ratelimit;
pub use mcp_security_audit as audit;
pub use mcp_security_core as core;
pub use mcp_security_guard as guard;
