//! # mcp-security-core
//!
//! The shared request context of the mcp-security middleware. No policy lives here; the policy
//! crates (`mcp-auth`, `mcp-ratelimit`, `mcp-headers`, `mcp-security-audit`) build on it and talk to each
//! other only through the types below, carried in request and response extensions.
//!
//! - [`client_addr`]: who is connecting — the peer address, or the client behind trusted proxies
//!   (`Forwarded` / `X-Forwarded-For` walked from the right), with IPv6 prefix keys.
//! - [`Principal`]: who is calling, with scopes and their hierarchy; inserted by authentication.
//! - [`inspect`]: [`McpInspectLayer`] reads the JSON-RPC envelope of MCP
//!   POSTs within a bound and inserts an [`McpCall`].
//! - [`mcp_headers`]: the MCP transport headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`),
//!   their `=?base64?…?=` encoding and the per-method table [`McpInspectLayer`] enforces.
//! - [`rejection`]: [`Rejection`] and [`GuardBody`], the one way every layer says no, in the
//!   caller's format (JSON-RPC, RFC 6750, JSON, gRPC).
//! - [`response`]: the response side — [`RewriteBody`](response::RewriteBody), one bounded
//!   rewriter for JSON and SSE MCP responses that response-side layers share.
//! - [`facts`]: [`ResponseFacts`](facts::ResponseFacts), how response-side layers report what
//!   a body revealed (entries hidden, a list that failed closed) to the audit layer.
//! - [`refusal`]: [`ToolErrorsAsResultsLayer`], opt-in
//!   agent-readable refusals: a `tools/call` refused for a scope or a rate limit as a tool result
//!   with `isError: true`.
//! - [`credential`]: the credential contract auth and audit share — the key prefix, the
//!   query-credential parameters and the keyed fingerprint.
//! - [`outcome`]: what inner layers decided ([`AuthOutcome`]), for the audit layer.
//! - `extract` (feature `axum`): `Principal` and `Option<Principal>` as axum extractors.
//! - [`clock`]: time as a dependency, for deterministic tests.
//! - [`config`]: errors that name the setting, and environment lookup with a prefix and `*_FILE`
//!   secrets.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod macros;

pub mod ban;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod credential;
#[cfg(feature = "axum")]
pub mod extract;
pub mod facts;
pub mod inspect;
pub mod jsonrpc;
pub mod mcp_headers;
pub mod outcome;
pub mod percent;
pub mod principal;
pub mod refusal;
pub mod rejection;
pub mod response;
#[cfg(feature = "toml")]
pub mod toml;
pub mod url;

pub use ban::{BanList, BanScope};
pub use client_addr::{
    ClientAddr, ClientAddrLayer, ClientAddrResolver, ClientAddrResolverBuilder, ClientAddrService,
};
pub use inspect::{McpInspect, McpInspectLayer, McpInspectLayerBuilder};
pub use jsonrpc::McpCall;
pub use outcome::RateLimitOutcome;
pub use outcome::{AuthFailure, AuthOutcome, BudgetOutcome};
pub use principal::{Principal, PrincipalKind, Scopes};
pub use refusal::{ToolErrorsAsResults, ToolErrorsAsResultsLayer};
pub use rejection::{GuardBody, Rejection};
