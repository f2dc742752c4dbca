//! Tool-call evidence: for each `tools/call`, keyed digests of the arguments as received and of
//! the result as the client received it, and the result's `isError` — never their contents.
//!
//! # What lands in the trail
//!
//! The `completion` record of a `tools/call` ([`crate::record#completion-records`]) carries:
//!
//! | field | meaning |
//! |---|---|
//! | `args_digest` | `hmac-sha256:<64 hex>` of the arguments; `null` when the request had no `arguments` member (or repeated it) |
//! | `result_digest` | `hmac-sha256:<64 hex>` of the result; `null` when none was taken |
//! | `is_error` | the result's `isError`: `true` only for the JSON literal `true`, else `false`; `null` without a result, or when the result is not a JSON object or repeats `isError` |
//! | `result_not_digested` | why there is no `result_digest`: `jsonrpc_error` (the answer was a JSON-RPC error), `response_too_large` (over the cap), `response_invalid_json`, `not_json_or_sse` (another content type), `no_response` (the body ended, or the client dropped it, before the answer) |
//!
//! The record is chained like every other, so `audit verify` covers these fields too.
//!
//! # What bytes are digested
//!
//! So that an auditor holding the audit key (`AUDIT_HMAC_KEY`) and a capture of the traffic can
//! recompute a digest with [`digest`] (or any HMAC-SHA256):
//!
//! ```text
//! args_digest   = HMAC-SHA256(audit key, "mcp-security-audit tool-call arguments v1\n" || A)
//! result_digest = HMAC-SHA256(audit key, "mcp-security-audit tool-call result v1\n"    || R)
//! ```
//!
//! - `A` is the raw JSON text of the request's `params.arguments` value exactly as the client
//!   sent it in the POST body: the bytes from its first to its last character (`{` … `}`),
//!   whitespace and escapes inside it kept, nothing re-serialized.
//! - `R` is the raw JSON text of the `result` member's value of the JSON-RPC response whose `id`
//!   matches the request's, exactly as it left the stack: for `application/json`, a slice of the
//!   response body; for `text/event-stream`, a slice of the event's data as the SSE rules
//!   assemble it (its `data:` lines joined with `\n`). Other events of the stream are not
//!   digested.
//!
//! The two prefixes keep the digests apart: an arguments digest cannot be passed off as a result
//! digest of the same text, nor either as a chain MAC (whose input starts with 32 MAC bytes).
//! The key is the audit chain's own key, so a digest of a short argument (`{"id":7}`) cannot be
//! found by guessing inputs without it.
//!
//! # Why the audit layer takes them
//!
//! "As the client received it" means after every layer that may change the result — the result
//! guard redacts credentials innermost in the stack — so the digest is taken by the outermost
//! body-aware layer, this one, over the bytes it hands on. The layer never changes those bytes:
//! it reads a *copy* of each frame (a reference-counted [`Bytes`](bytes::Bytes) clone, no copy
//! of the text) through `mcp-security-core`'s response reader
//! ([`RewriteBody`](mcp_security_core::response::RewriteBody), the one SSE parser of the
//! project) with a reader that keeps every message, and forwards the original frame unchanged
//! and at once. Where that reader would fail closed (a body over the cap, unreadable JSON) only
//! the copy is affected: the client gets the response as the server sent it, and the record
//! says `result_not_digested`. Once the answer is digested the copies stop.
//!
//! # Costs and bounds
//!
//! Only single `tools/call` requests read by the inspect layer (an `McpCall` in the request or
//! response extensions, with an id) that no layer refused (no `Rejection` in the response; the
//! request record already says who refused and why, and the tool never ran) get evidence;
//! batches (MCP 2025-03-26 only) and other methods pay nothing beyond one extension lookup.
//! The arguments are the span of `params.arguments` the inspect layer recorded while it read
//! the envelope ([`JsonRpcMessage::param_arguments`](mcp_security_core::jsonrpc::JsonRpcMessage::param_arguments)):
//! no second parse of the request, no copy. The answer costs a parse of the message and of its
//! result (for `isError`) besides the reader's own, and two HMACs in all (the
//! `audit_tool_call_evidence` bench measures it).
//!
//! A JSON response is buffered (a copy) up to the cap, [`DEFAULT_MAX_EVIDENCE_BYTES`] unless
//! set otherwise; a JSON body declared larger is never buffered. An SSE event is buffered only
//! while it is incomplete, up to the cap; other events are not held back. A stream that never
//! answers holds at most one incomplete event.
//!
//! ```
//! use mcp_security_audit::chain::AuditKey;
//! use mcp_security_audit::evidence::{DigestPart, digest};
//!
//! let key = AuditKey::from_bytes(b"at least thirty-two bytes of key!")?;
//! let args = digest(&key, DigestPart::Arguments, r#"{"text":"hi"}"#);
//! assert!(args.starts_with("hmac-sha256:") && args.len() == 12 + 64);
//! // Domain-separated: the same text digests differently as a result.
//! assert_ne!(args, digest(&key, DigestPart::Result, r#"{"text":"hi"}"#));
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

use crate::chain::{AuditKey, hex};

mod body;

pub use body::AuditBody;
pub(crate) use body::Evidence;

/// The default cap on what is buffered to digest one result (a whole JSON body, or one SSE
/// event): 4 MiB, the response reader's default.
pub const DEFAULT_MAX_EVIDENCE_BYTES: usize =
    mcp_security_core::response::DEFAULT_MAX_RESPONSE_BYTES;

/// The text a digest's value starts with in a record.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";

/// Which of a tool call's two digests; each has its own HMAC input prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestPart {
    /// `params.arguments` of the request (`args_digest`).
    Arguments,
    /// `result` of the response (`result_digest`).
    Result,
}

impl DigestPart {
    /// The bytes put before the JSON text in the HMAC input.
    pub fn domain(self) -> &'static [u8] {
        match self {
            DigestPart::Arguments => b"mcp-security-audit tool-call arguments v1\n",
            DigestPart::Result => b"mcp-security-audit tool-call result v1\n",
        }
    }
}

/// The digest of `json` (the raw JSON text, see the [module docs](self)) as a record shows it:
/// `hmac-sha256:` and 64 lower-case hex digits. An auditor compares it with the record's
/// `args_digest` or `result_digest`.
pub fn digest(key: &AuditKey, part: DigestPart, json: &str) -> String {
    format(&mac(key, part, json.as_bytes()))
}

pub(crate) fn mac(key: &AuditKey, part: DigestPart, json: &[u8]) -> [u8; 32] {
    key.hmac(part.domain(), json)
}

/// `hmac-sha256:<hex>`.
pub(crate) fn format(mac: &[u8; 32]) -> String {
    let mut s = String::with_capacity(DIGEST_PREFIX.len() + 64);
    s.push_str(DIGEST_PREFIX);
    s.push_str(&hex(mac));
    s
}

/// The layer's evidence settings.
#[derive(Debug)]
pub(crate) struct EvidenceConfig {
    pub(crate) key: AuditKey,
    pub(crate) max_bytes: usize,
}

#[cfg(test)]
mod tests;
