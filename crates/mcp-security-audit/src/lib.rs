//! # mcp-security-audit
//!
//! A tamper-evident, MCP-aware audit trail for tower services.
//!
//! - [`AuditLayer`] (outermost in the stack): one [`AuditRecord`] per request, rejected ones
//!   included — the usual audit fields (timestamp, method, path, query, client IP, user agent,
//!   status, process time, auth type, content length) plus request id, principal, MCP method and
//!   tool, decision and reason read from the inner layers' `AuthOutcome`, `RateLimitOutcome` and
//!   `Rejection`, and the response size.
//! - [`mask`]: credentials never reach a record; a keyed [fingerprint](mask::Fingerprinter)
//!   stands in for them.
//! - Sinks behind the [`AuditSink`] trait: [`TracingSink`] (target `mcp_security_audit`), the
//!   tamper-evident JSON-lines [`FileSink`] (bounded channel, `block` or `drop`
//!   overflow, HMAC-SHA256 chain with sequence numbers, signed checkpoints also when idle, size
//!   rotation that keeps the chain, restart that continues it and, through a head file kept
//!   beside the log, tells a clean close from an unclean stop and a cut tail), and
//!   [`MemorySink`] for tests.
//! - [`evidence`]: for each `tools/call`, keyed digests (HMAC-SHA256 with the audit key) of the
//!   arguments as received and of the result as the client received it, and `isError`, in the
//!   request's `completion` record — taken over the bytes leaving the stack by [`AuditBody`],
//!   which never changes them; [`evidence::digest`] recomputes one.
//! - [`signing`]: Ed25519-signed checkpoints that anyone with the public key can check;
//!   [`anchor`]: a copy of every checkpoint outside the log; [`AuditLayer::gate`]: 503 while
//!   the file sink, with the `refuse` policy, cannot take records.
//! - [`verify`]: the verifiers behind `mcp-security audit verify <file…> --key-file …` (the
//!   chain key) and `--public-key …` (the signatures, no secret).
//! - [`metrics`]: `mcp_auth_failures_total`, `mcp_rate_limit_exceeded_total`,
//!   `mcp_security_violations_total`, `mcp_request_duration_seconds`, `mcp_concurrent_requests`,
//!   `mcp_token_expiring_soon_total` (and the sink's own) through the `metrics` facade.
//! - [`detect`]: auth-failure bursts per client and globally, request floods per client, tokens
//!   expiring soon; each emits a [`SecurityEvent`] and the per-client ones can add the client to
//!   the rate limiter's [`BanList`](mcp_security_core::BanList).
//!
//! ```
//! use std::time::Duration;
//! use mcp_security_audit::{AuditLayer, chain::AuditKey, detect::Rule, file::FileSink};
//! use mcp_security_core::BanList;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("mcp-audit-lib-doc-{}", std::process::id()));
//! let key = AuditKey::from_bytes(b"at least thirty-two bytes of key!")?;
//! let bans = BanList::new(); // give the same list to the RateLimitLayer
//! let audit = AuditLayer::builder()
//!     .file_sink(FileSink::builder(dir.join("audit.jsonl"), key).build()?)
//!     .tracing(true)
//!     .ban_list(bans.clone())
//!     .detect_auth_failures(Rule::new(10, Duration::from_secs(60)).ban(true))
//!     .build()?;
//! let stack = ServiceBuilder::new().layer(audit.clone()); // outermost
//! # let _ = stack;
//! // on shutdown, after serving:
//! audit.close().await?;
//! # std::fs::remove_dir_all(&dir)?;
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

pub mod anchor;
pub mod chain;
pub mod detect;
pub mod evidence;
pub mod file;
pub mod layer;
pub mod mask;
pub mod metrics;
pub mod record;
pub mod signing;
pub mod sink;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use file::{FileSink, FileSinkBuilder};
pub use layer::{
    Audit, AuditBody, AuditGate, AuditGateLayer, AuditLayer, AuditLayerBuilder, AuditSettings,
};
pub use record::{AuditEvent, AuditRecord, Decision, DetectorKind, McpSource, SecurityEvent};
pub use sink::{AuditSink, MemorySink, Submit, TracingSink};

/// The [`mcp_security_core`] crate this layer builds on, re-exported for convenience.
pub use mcp_security_core;
