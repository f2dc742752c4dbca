//! # mcp-ratelimit
//!
//! Rate limiting for MCP servers as tower middleware: exact GCRA limits per client address,
//! principal, route class and MCP method or tool, on a key store with a hard bound, and the
//! resource limits (concurrency, timeouts) a production server needs.
//!
//! - [`RateLimitLayer`]: one or more [`Limit`]s, each a [`Quota`] counted per a [`KeySelector`],
//!   optionally restricted to a [`RouteClass`] or an MCP tool. All limits that apply must admit a
//!   request; the tightest is reported in `X-RateLimit-*` and the IETF `RateLimit` /
//!   `RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers-11); refusals are `429`
//!   with an exact `Retry-After` (whole seconds, rounded up, never 0) in the caller's format
//!   (JSON with the common `detail` / `retry_after`, JSON-RPC with the request id, gRPC status
//!   8). A [`BanList`](mcp_security_core::BanList) is checked first. See [`layer`].
//! - [`quota`]: the GCRA, in integer nanoseconds: over any window `W` at most
//!   `burst + ⌊W × requests / window⌋` requests are admitted — proven in the module docs, and
//!   checked by a property test and a two-thread stress test.
//! - [`backend`]: where the counts live, behind a [`Backend`] trait. [`backend::memory`] (the
//!   default, [`Memory`]): the bounded key store — a hard cap on tracked keys, idle keys evicted
//!   a few at a time on the request path (no cleanup task), then buckets per network prefix
//!   (IPv4 /24, IPv6 /48) or principal kind in a bounded table of their own, then a shared
//!   overflow bucket per limit, so a flood of distinct keys is still limited, never grows
//!   memory, and does not throttle new clients of other networks. Why this crate does not use
//!   governor's keyed state is explained there.
//! - `redis` (the `redis` cargo feature): `RedisStore` and the `RedisBackend`, the same limits
//!   shared by every replica through Redis — one atomic Lua GCRA call per decision on Redis's
//!   clock, hashed fixed-length keys with TTLs, a local deny cache, and a fail-closed (`503`) or
//!   fail-open (local limiter at `limit / replicas`) policy after a time budget. Only a layer
//!   built with `.redis(..)` (`RateLimitLayer<RedisBackend>`) needs `S: Clone + Send + 'static`;
//!   the feature is additive.
//! - [`budget`]: [`Budget`], weighted units per principal over long windows (an hour, a day,
//!   30 days; `tools/call:delete_note = 10`), the same exact GCRA with cost `n`, refilled
//!   continuously; charged after authentication by the per-caller layer
//!   ([`RateLimitLayerBuilder::budget`]).
//! - [`config`]: [`RateLimitLayer::from_env`] (`RATE_LIMIT_ENABLED`, `_REQUESTS`, `_WINDOW`,
//!   `_BURST`, `_MAX_KEYS`) and the `[rate_limit]` TOML section for classes and per-tool limits.
//! - [`resource`]: [`ResourceLimitLayer`], tower's `ConcurrencyLimit` + `LoadShed` and
//!   tower-http's `Timeout` composed to answer `503` / `504` in the house format, with the MCP
//!   SSE stream exempt from the timeout.
//!
//! Time comes from an injected [`MonotonicClock`](mcp_security_core::clock::MonotonicClock), so tests
//! move it by hand.
//!
//! ```
//! use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer, RouteClass};
//!
//! // Before authentication: per client address.
//! let per_ip = RateLimitLayer::builder()
//!     .limit(Limit::new("ip", Quota::per_minute(100), KeySelector::client_addr()))
//!     .build()?;
//!
//! // After McpInspectLayer and authentication: per principal, per endpoint class, per tool.
//! let per_caller = RateLimitLayer::builder()
//!     .route_class(RouteClass::new("write").mcp("tools/call:write_note"))
//!     .route_class(RouteClass::new("delete").mcp("tools/call:delete_note"))
//!     .limit(Limit::new("principal", Quota::per_minute(300), KeySelector::principal()))
//!     .limit(Limit::new("write", Quota::per_minute(20), KeySelector::principal()).for_class("write"))
//!     .limit(Limit::new("delete", Quota::per_minute(10), KeySelector::principal()).for_class("delete"))
//!     .build()?;
//! # let _ = (per_ip, per_caller);
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest so the published README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod backend;
pub mod budget;
pub mod class;
pub mod config;
mod decision;
mod engine;
mod headers;
pub mod key;
pub mod layer;
pub mod quota;
pub mod resource;

/// The in-memory backend, at its old path.
pub use backend::memory as store;
/// The Redis backend (the `redis` feature), at its old path.
#[cfg(feature = "redis")]
pub use backend::redis;

pub use backend::{Backend, Memory};
pub use budget::Budget;
pub use class::RouteClass;
pub use key::KeySelector;
pub use layer::{Limit, RateLimit, RateLimitLayer, RateLimitLayerBuilder};
pub use quota::Quota;
pub use resource::{ResourceLimit, ResourceLimitLayer, ResourceLimitLayerBuilder};

/// The [`mcp_security_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_security_core;
