//! # mcp-headers
//!
//! Response hardening and browser-facing access control for MCP servers, as tower middleware:
//!
//! - [`SecurityHeadersLayer`] ([`security_headers`]): OWASP security headers on every response,
//!   rejections from inner layers included; `api()` and `web()` presets built once into header
//!   values; a typed CSP ([`CspBuilder`]); keep or overwrite what the handler set; `Server` and
//!   `X-Powered-By` removed; HSTS only over TLS or a trusted proxy's `https`.
//! - [`CorsPolicy`] ([`cors`]): allowed origins, methods and headers with MCP defaults, validated
//!   when built (never `*` in production, never a wildcard with credentials, no malformed
//!   origins), realised with tower-http's `CorsLayer`.
//! - [`OriginGuardLayer`] ([`origin_guard`]): the MCP specification's `Origin` check against DNS
//!   rebinding (403 for a present, disallowed origin; `null` and duplicates refused), an
//!   optional `Host` allowlist, and the policy's CORS, driven by the same [`CorsPolicy`] so the
//!   two cannot disagree.
//! - [`NetworkPolicyLayer`] ([`network`]): CIDR allow and deny lists, server-wide and per path
//!   prefix, on the resolved client address (trusted proxies respected); a 403 before the rate
//!   limiter and authentication.
//!
//! In the stack, headers go outside the guard so its 403s get them too:
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use mcp_security_core::config::Env;
//! use mcp_headers::{CorsPolicy, OriginGuardLayer, SecurityHeadersLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let env = Env::from_pairs("MCP", [("MCP_CORS_ORIGINS", "https://app.example.com")]);
//! let cors = CorsPolicy::from_env(&env)?;
//! let svc = ServiceBuilder::new()
//!     .layer(SecurityHeadersLayer::api())
//!     .layer(OriginGuardLayer::from_policy(&cors))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//!     });
//!
//! let req = Request::post("/mcp").header("origin", "https://evil.example").body(Full::default())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()["x-content-type-options"], "nosniff");
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod cors;
pub mod csp;
pub mod network;
mod origin;
pub mod origin_guard;
pub mod security_headers;

pub use cors::{CorsPolicy, CorsPolicyBuilder};
pub use csp::{ContentSecurityPolicy, CspBuilder};
pub use network::{NetworkPolicy, NetworkPolicyLayer, NetworkPolicyLayerBuilder, NetworkRule};
#[allow(deprecated)]
pub use origin_guard::OriginGuardBuilder;
pub use origin_guard::{OriginGuard, OriginGuardLayer, OriginGuardLayerBuilder};
#[allow(deprecated)]
pub use security_headers::SecurityHeadersBuilder;
pub use security_headers::{
    HeaderMode, HstsWhen, Preset, SecurityHeaders, SecurityHeadersLayer,
    SecurityHeadersLayerBuilder,
};

/// The [`mcp_security_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_security_core;
