//! What the audit trail records: [`AuditRecord`] (one per request), [`SecurityEvent`] (one per
//! detector firing) and [`CompletionRecord`] (what response-side layers learned from a body),
//! carried to the sinks as an [`AuditEvent`].
//!
//! A record holds the request's parts by reference count (`Uri`, `HeaderValue`, `Principal`,
//! `McpCall` are all cheap to clone), so building one on the request path copies no text; masking
//! and formatting happen when a sink reads it, off the request path for the file sink. Every
//! accessor that returns text a client chose (path, query, user agent, MCP method and tool,
//! request id, rejection detail) returns it masked ([`crate::mask`]) and capped in length.
//!
//! # Fields
//!
//! The JSON-lines file sink writes every field of a request record, `null` when unknown, in this
//! order (the first ten are the fields audit pipelines commonly expect):
//!
//! | field | meaning |
//! |---|---|
//! | `timestamp` | when the request arrived (RFC 3339, UTC, milliseconds) |
//! | `method` | HTTP method |
//! | `path` | URI path (masked) |
//! | `query_params` | raw query string with sensitive values masked |
//! | `client_ip` | the resolved client address ([`ClientAddr`]) |
//! | `user_agent` | `User-Agent` (masked) |
//! | `status_code` | response status (`null` when the service failed or the request was cancelled) |
//! | `process_time` | seconds from the request to the response head |
//! | `auth_type` | how a credential was presented: `bearer`, `dpop`, `basic`, `other`, `api_key`, `query`, `multiple` |
//! | `content_length` | request body size, when declared |
//! | `request_id` | `X-Request-Id` when the client sent a well-formed one, else generated |
//! | `peer_ip` | the socket peer, when the client address came from a trusted proxy's header |
//! | `response_bytes` | response body size, when known at the response head (`null` for streams) |
//! | `principal_id`, `principal_kind` | who, as authentication decided (`api_key`, `jwt`, `dev_bypass`) |
//! | `credential_fp` | the keyed fingerprint of the credential presented |
//! | `mcp_method`, `mcp_tool` | the JSON-RPC method and tool (`batch` and the tools joined by `,` for a batch) |
//! | `mcp_batch` | the number of messages of a batch |
//! | `mcp_source` | `body` (read by `McpInspectLayer`) or `headers` (the client's `Mcp-Method` / `Mcp-Name`, unverified) |
//! | `decision` | `allowed`, `rejected`, `error` (the service failed), `cancelled` (dropped before a response) |
//! | `reason` | the rejection's code (`invalid_token`, `rate_limited`, …) |
//! | `auth` | `authenticated`, `exempt`, `rejected` |
//! | `auth_failure` | why authentication refused (`bad_signature`, `expired`, `unknown_key`, …) |
//! | `rate_limit` | `allowed`, `not_limited`, `limited`, `banned` |
//! | `rate_limit_policy` | the limit that decided |
//! | `retry_after` | seconds, when refused by a rate limit or ban |
//! | `budget`, `budget_policy`, `budget_cost`, `budget_remaining` | only when a principal's budget was charged or refused the call: `allowed` / `exhausted`, the budget (the one with the fewest units left), the call's cost in it, the units left |
//! | `detail` | the rejection's internal detail (masked), never sent to the client |
//!
//! # Completion records
//!
//! The request record is written at the response head. What only the body reveals reaches the
//! trail as a second, `completion` record with the same `request_id`, written when the body ends
//! or is dropped, and only when a response-side layer recorded something
//! ([`mcp_security_core::facts`]; the layer itself does for each `tools/call` it takes evidence of):
//!
//! | field | meaning |
//! |---|---|
//! | `timestamp` | when the body ended or was dropped |
//! | `request_id` | the request record's |
//! | `body` | `complete` (read to its end) or `dropped` (the client went away first) |
//! | `list_method`, `entries_kept`, `entries_hidden` | a list filtered by `ListFilterLayer` (sums when several) |
//! | `failed_closed`, `failed_closed_by` | why a response was replaced by a JSON-RPC error, and which layer did it |
//! | `facts_dropped` | facts beyond the per-request cap |
//! | `secrets`, `secrets_action`, `secrets_target` | credentials the result guard found in the answer (`aws_access_key_id:1,jwt:2`, never the secret), `redacted` or `blocked`, and the tool, prompt or URI answered |
//! | `manifest_drift`, `manifest_drift_action` | listed tools differing from the pinned manifest (`read_note:description,upload:new`), `warned` or `enforced` |
//! | `args_digest`, `result_digest`, `is_error`, `result_not_digested` | a `tools/call`'s evidence: keyed digests of the arguments and of the result the client received, never their contents ([`crate::evidence`]) |

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, StatusCode, Uri, Version};
use mcp_security_core::client_addr::ClientAddr;
use mcp_security_core::facts::{BodyFacts, ResponseFact};
use mcp_security_core::jsonrpc::McpCall;
use mcp_security_core::{AuthFailure, BudgetOutcome, Principal, PrincipalKind, RateLimitOutcome};

use crate::chain::{Mac, RecordKind, hex, rfc3339};
use crate::mask::{CredentialSource, Fingerprint, Masker, truncate};

mod completion;
mod json;
mod security;

pub use completion::{CompletionRecord, ToolCallEvidence};
pub(crate) use json::JsonObject;
pub use security::{DetectorKind, SecurityEvent};

/// The longest path recorded, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest query recorded, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// The longest user agent, detail or other free text recorded, in bytes.
pub const MAX_TEXT_BYTES: usize = 512;
/// The longest MCP method, tool or principal id recorded, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The longest client-sent request id kept; longer ones are replaced by a generated id.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// One thing the audit trail records. Sinks get it in an `Arc` (one allocation per request).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // always boxed in an Arc; a Box inside would add an allocation
pub enum AuditEvent {
    /// One HTTP request, allowed or not.
    Request(AuditRecord),
    /// A detector fired.
    Security(SecurityEvent),
    /// What response-side layers learned from a request's body.
    Completion(CompletionRecord),
}

impl AuditEvent {
    /// When it happened.
    pub fn time(&self) -> SystemTime {
        match self {
            AuditEvent::Request(r) => r.time,
            AuditEvent::Security(e) => e.time,
            AuditEvent::Completion(c) => c.time,
        }
    }

    /// The record, for a request.
    pub fn as_request(&self) -> Option<&AuditRecord> {
        match self {
            AuditEvent::Request(r) => Some(r),
            _ => None,
        }
    }

    /// The event, for a detector firing.
    pub fn as_security(&self) -> Option<&SecurityEvent> {
        match self {
            AuditEvent::Security(e) => Some(e),
            _ => None,
        }
    }

    /// The completion record, for facts learned from a body.
    pub fn as_completion(&self) -> Option<&CompletionRecord> {
        match self {
            AuditEvent::Completion(c) => Some(c),
            _ => None,
        }
    }

    /// The chain record kind it is written as.
    pub fn kind(&self) -> RecordKind {
        match self {
            AuditEvent::Request(_) => RecordKind::Request,
            AuditEvent::Security(_) => RecordKind::Security,
            AuditEvent::Completion(_) => RecordKind::Completion,
        }
    }

    /// Append the JSON body of its chain line (`{"seq":…` without the closing brace).
    pub(crate) fn write_body(&self, buf: &mut Vec<u8>, seq: u64) {
        match self {
            AuditEvent::Request(r) => r.write_body(buf, seq),
            AuditEvent::Security(e) => e.write_body(buf, seq),
            AuditEvent::Completion(c) => c.write_body(buf, seq),
        }
    }
}

/// A request id: the client's `X-Request-Id` when well-formed, else one generated per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    /// Sent by the client (at most [`MAX_REQUEST_ID_BYTES`] of `A-Z a-z 0-9 . _ : -`).
    Client(HeaderValue),
    /// Generated: a random per-layer prefix and a counter.
    Generated {
        /// Random per layer instance.
        prefix: u32,
        /// Counts requests.
        counter: u64,
    },
}

impl RequestId {
    pub(crate) fn from_header(value: &HeaderValue) -> Option<RequestId> {
        let bytes = value.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| RequestId::Client(value.clone()))
    }

    /// The id as text (a client id is masked like any other client-chosen text).
    pub fn to_text(&self, masker: &Masker) -> Cow<'_, str> {
        match self {
            RequestId::Client(v) => {
                let s = v.to_str().unwrap_or("");
                masker.mask_text(s)
            }
            RequestId::Generated { prefix, counter } => {
                Cow::Owned(format!("{prefix:08x}-{counter:012x}"))
            }
        }
    }
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Every layer let it through to the service (which answered with any status).
    Allowed,
    /// A layer refused it (a `Rejection`, an auth refusal, a rate limit or ban).
    Rejected,
    /// The service returned an error instead of a response.
    Error,
    /// The request was dropped before a response (the client went away).
    Cancelled,
}

impl Decision {
    /// `allowed`, `rejected`, `error`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Rejected => "rejected",
            Decision::Error => "error",
            Decision::Cancelled => "cancelled",
        }
    }
}

/// Where the MCP method and tool of a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpSource {
    /// The JSON-RPC body, as `McpInspectLayer` read it.
    Body,
    /// The client's `Mcp-Method` / `Mcp-Name` headers (MCP 2026-07-28), not checked against the
    /// body by the audit layer itself.
    Headers,
}

impl McpSource {
    /// `body` or `headers`.
    pub fn as_str(self) -> &'static str {
        match self {
            McpSource::Body => "body",
            McpSource::Headers => "headers",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum McpInfo {
    None,
    Call(McpCall),
    Headers {
        method: HeaderValue,
        name: Option<HeaderValue>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum FingerprintText {
    Own(Fingerprint),
    FromAuth(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthSummary {
    Authenticated,
    Exempt,
    Rejected(AuthFailure),
}

#[derive(Debug, Clone)]
pub(crate) struct RejectionSummary {
    pub(crate) code: &'static str,
    pub(crate) detail: Option<Cow<'static, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    Responded,
    Error,
    Cancelled,
}

/// One request, as the audit layer saw it; see the [module docs](self) for the fields.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub(crate) time: SystemTime,
    pub(crate) request_id: RequestId,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) client: Option<ClientAddr>,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) request_bytes: Option<u64>,
    pub(crate) mcp: McpInfo,
    pub(crate) auth_type: Option<CredentialSource>,
    pub(crate) fingerprint: Option<FingerprintText>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) duration: Duration,
    pub(crate) response_bytes: Option<u64>,
    pub(crate) principal: Option<Principal>,
    pub(crate) auth: Option<AuthSummary>,
    pub(crate) rate_limit: Option<RateLimitOutcome>,
    pub(crate) budget: Option<BudgetOutcome>,
    pub(crate) rejection: Option<RejectionSummary>,
    pub(crate) completion: Completion,
    pub(crate) masker: Masker,
}

impl AuditRecord {
    /// When the request arrived.
    pub fn time(&self) -> SystemTime {
        self.time
    }

    /// The request id (masked).
    pub fn request_id(&self) -> Cow<'_, str> {
        self.request_id.to_text(&self.masker)
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The URI path, masked and capped at [`MAX_PATH_BYTES`].
    pub fn path(&self) -> Cow<'_, str> {
        truncate(self.masker.mask_text(self.uri.path()), MAX_PATH_BYTES)
    }

    /// The query string, masked and capped at [`MAX_QUERY_BYTES`].
    pub fn query(&self) -> Option<Cow<'_, str>> {
        self.uri
            .query()
            .map(|q| truncate(self.masker.mask_query(q), MAX_QUERY_BYTES))
    }

    /// The resolved client, when the peer address was known.
    pub fn client(&self) -> Option<&ClientAddr> {
        self.client.as_ref()
    }

    /// The client's IP address.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client.as_ref().map(ClientAddr::ip)
    }

    /// The `User-Agent`, masked and capped at [`MAX_TEXT_BYTES`].
    pub fn user_agent(&self) -> Option<Cow<'_, str>> {
        self.user_agent.as_ref().map(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            let masked = match self.masker.mask_text(&text) {
                Cow::Borrowed(_) => text,
                Cow::Owned(o) => Cow::Owned(o),
            };
            truncate(masked, MAX_TEXT_BYTES)
        })
    }

    /// The response status; `None` when the service failed or the request was cancelled.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Time from the request to the response head.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How the credential was presented, if one was.
    pub fn auth_type(&self) -> Option<CredentialSource> {
        self.auth_type
    }

    /// The declared request body size.
    pub fn request_bytes(&self) -> Option<u64> {
        self.request_bytes
    }

    /// The response body size, when known at the response head.
    pub fn response_bytes(&self) -> Option<u64> {
        self.response_bytes
    }

    /// Who called, as authentication decided (also for a 403 with a valid credential).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The keyed fingerprint of the credential presented (16 hex digits).
    pub fn credential_fingerprint(&self) -> Option<Cow<'_, str>> {
        match &self.fingerprint {
            None => None,
            Some(FingerprintText::Own(f)) => Some(Cow::Owned(f.to_string())),
            // Produced by mcp-auth as hex; masked anyway since it came from another layer.
            Some(FingerprintText::FromAuth(s)) => {
                Some(truncate(self.masker.mask_text(s), MAX_NAME_BYTES))
            }
        }
    }

    /// Where the MCP method and tool came from, when known.
    pub fn mcp_source(&self) -> Option<McpSource> {
        match self.mcp {
            McpInfo::None => None,
            McpInfo::Call(_) => Some(McpSource::Body),
            McpInfo::Headers { .. } => Some(McpSource::Headers),
        }
    }

    /// The JSON-RPC method (`batch` for a batch), masked and capped.
    pub fn mcp_method(&self) -> Option<Cow<'_, str>> {
        let raw: Cow<'_, str> = match &self.mcp {
            McpInfo::None => return None,
            McpInfo::Call(call) if call.is_batch() => Cow::Borrowed("batch"),
            McpInfo::Call(call) => Cow::Borrowed(call.method()?),
            McpInfo::Headers { method, .. } => String::from_utf8_lossy(method.as_bytes()),
        };
        Some(self.name_text(raw))
    }

    /// The tool called (the tools joined by `,` for a batch), masked and capped.
    pub fn mcp_tool(&self) -> Option<Cow<'_, str>> {
        let raw: Cow<'_, str> = match &self.mcp {
            McpInfo::None => return None,
            McpInfo::Call(call) if call.is_batch() => {
                let mut tools = call.tools().peekable();
                tools.peek()?;
                let mut joined = String::new();
                for (i, t) in tools.enumerate() {
                    if i > 0 {
                        joined.push(',');
                    }
                    joined.push_str(t);
                    if joined.len() > MAX_NAME_BYTES {
                        break;
                    }
                }
                Cow::Owned(joined)
            }
            McpInfo::Call(call) => Cow::Borrowed(call.tool()?),
            McpInfo::Headers { method, name } => {
                if method.as_bytes() != b"tools/call" {
                    return None;
                }
                String::from_utf8_lossy(name.as_ref()?.as_bytes())
            }
        };
        Some(self.name_text(raw))
    }

    /// The number of messages, for a batch.
    pub fn mcp_batch_size(&self) -> Option<usize> {
        match &self.mcp {
            McpInfo::Call(call) if call.is_batch() => Some(call.messages().len()),
            _ => None,
        }
    }

    fn name_text<'a>(&self, raw: Cow<'a, str>) -> Cow<'a, str> {
        let masked = match self.masker.mask_text(&raw) {
            Cow::Borrowed(_) => raw,
            Cow::Owned(o) => Cow::Owned(o),
        };
        truncate(masked, MAX_NAME_BYTES)
    }

    /// How the request ended.
    pub fn decision(&self) -> Decision {
        match self.completion {
            Completion::Error => return Decision::Error,
            Completion::Cancelled => return Decision::Cancelled,
            Completion::Responded => {}
        }
        let refused = self.rejection.is_some()
            || matches!(self.auth, Some(AuthSummary::Rejected(_)))
            || self
                .rate_limit
                .as_ref()
                .is_some_and(RateLimitOutcome::is_refused);
        if refused {
            Decision::Rejected
        } else {
            Decision::Allowed
        }
    }

    /// Why it was refused: the rejection's code, else the auth failure, else the rate-limit
    /// outcome.
    pub fn reason(&self) -> Option<&'static str> {
        if let Some(r) = &self.rejection {
            return Some(r.code);
        }
        if let Some(AuthSummary::Rejected(f)) = self.auth {
            return Some(f.as_str());
        }
        self.rate_limit
            .as_ref()
            .filter(|r| r.is_refused())
            .map(RateLimitOutcome::as_str)
    }

    /// What authentication decided: `authenticated`, `exempt` or `rejected`.
    pub fn auth_outcome(&self) -> Option<&'static str> {
        self.auth.map(|a| match a {
            AuthSummary::Authenticated => "authenticated",
            AuthSummary::Exempt => "exempt",
            AuthSummary::Rejected(_) => "rejected",
        })
    }

    /// Why authentication refused.
    pub fn auth_failure(&self) -> Option<AuthFailure> {
        match self.auth {
            Some(AuthSummary::Rejected(f)) => Some(f),
            _ => None,
        }
    }

    /// What the rate limiter decided.
    pub fn rate_limit(&self) -> Option<&RateLimitOutcome> {
        self.rate_limit.as_ref()
    }

    /// What the principal's budgets decided (`mcp-ratelimit`'s budgets), when the request had a
    /// principal and a cost.
    pub fn budget(&self) -> Option<&BudgetOutcome> {
        self.budget.as_ref()
    }

    /// The name of the rate limit that decided (`ban` for the ban list).
    pub fn rate_limit_policy(&self) -> Option<Cow<'_, str>> {
        match self.rate_limit.as_ref()? {
            RateLimitOutcome::Allowed { policy, .. }
            | RateLimitOutcome::Limited { policy, .. }
            | RateLimitOutcome::Degraded { policy, .. } => {
                Some(self.name_text(Cow::Borrowed(policy)))
            }
            RateLimitOutcome::Banned { .. } => Some(Cow::Borrowed("ban")),
            RateLimitOutcome::Unavailable { .. } => Some(Cow::Borrowed("store_unavailable")),
            _ => None,
        }
    }

    /// The `Retry-After` seconds of a rate-limit refusal or ban.
    pub fn retry_after(&self) -> Option<u64> {
        match self.rate_limit.as_ref()? {
            RateLimitOutcome::Limited {
                retry_after_secs, ..
            }
            | RateLimitOutcome::Banned {
                retry_after_secs, ..
            }
            | RateLimitOutcome::Unavailable { retry_after_secs }
            | RateLimitOutcome::Degraded {
                admitted: false,
                retry_after_secs,
                ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The rejection's internal detail, masked and capped.
    pub fn detail(&self) -> Option<Cow<'_, str>> {
        let detail = self.rejection.as_ref()?.detail.as_deref()?;
        Some(truncate(self.masker.mask_text(detail), MAX_TEXT_BYTES))
    }

    /// Append the JSON body of its chain line.
    pub(crate) fn write_body(&self, buf: &mut Vec<u8>, seq: u64) {
        let mut o = JsonObject::begin(buf, seq, RecordKind::Request, self.time);
        o.str("method", Some(self.method.as_str()));
        o.str("path", Some(&self.path()));
        o.str("query_params", self.query().as_deref());
        o.display("client_ip", self.client_ip());
        o.str("user_agent", self.user_agent().as_deref());
        o.u64("status_code", self.status.map(|s| u64::from(s.as_u16())));
        o.f64("process_time", Some(self.duration.as_secs_f64()));
        o.str("auth_type", self.auth_type.map(CredentialSource::as_str));
        o.u64("content_length", self.request_bytes);
        o.str("request_id", Some(&self.request_id()));
        o.display(
            "peer_ip",
            self.client
                .as_ref()
                .filter(|c| c.via_proxy())
                .map(|c| c.peer().ip()),
        );
        o.u64("response_bytes", self.response_bytes);
        o.str(
            "principal_id",
            self.principal
                .as_ref()
                .map(|p| self.name_text(Cow::Borrowed(p.id())))
                .as_deref(),
        );
        o.str(
            "principal_kind",
            self.principal
                .as_ref()
                .map(|p| p.kind())
                .map(PrincipalKind::as_str),
        );
        o.str("credential_fp", self.credential_fingerprint().as_deref());
        o.str("mcp_method", self.mcp_method().as_deref());
        o.str("mcp_tool", self.mcp_tool().as_deref());
        o.u64("mcp_batch", self.mcp_batch_size().map(|n| n as u64));
        o.str("mcp_source", self.mcp_source().map(McpSource::as_str));
        o.str("decision", Some(self.decision().as_str()));
        o.str("reason", self.reason());
        o.str("auth", self.auth_outcome());
        o.str("auth_failure", self.auth_failure().map(AuthFailure::as_str));
        o.str(
            "rate_limit",
            self.rate_limit.as_ref().map(RateLimitOutcome::as_str),
        );
        o.str("rate_limit_policy", self.rate_limit_policy().as_deref());
        o.u64("retry_after", self.retry_after());
        if let Some(budget) = &self.budget {
            o.str("budget", Some(budget.as_str()));
            o.str(
                "budget_policy",
                Some(&self.name_text(Cow::Borrowed(budget.policy()))),
            );
            o.u64("budget_cost", Some(budget.cost()));
            if let BudgetOutcome::Allowed { remaining, .. } = budget {
                o.u64("budget_remaining", Some(*remaining));
            }
        }
        o.str("detail", self.detail().as_deref());
    }
}
