//! Where records go: the [`AuditSink`] trait, a [`TracingSink`] (events with target
//! `mcp_security_audit`), a [`MemorySink`] for tests, and (in [`crate::file`]) the tamper-evident
//! [`FileSink`](crate::file::FileSink).
//!
//! A sink is offered each [`AuditEvent`] on the request path, once the response head is ready.
//! It must not block: it either takes the event at once ([`Submit::Done`]) or, when it applies
//! backpressure, returns a future the response waits for ([`Submit::Wait`]) — the file sink's
//! `block` overflow policy does this when its channel is full.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::record::{AuditEvent, AuditRecord, CompletionRecord, SecurityEvent};

/// The tracing target of audit events.
pub const TRACING_TARGET: &str = "mcp_security_audit";

/// What a sink did with an event.
#[must_use]
pub enum Submit {
    /// Taken (or deliberately dropped and counted).
    Done,
    /// Backpressure: the response is held until this future completes.
    Wait(Pin<Box<dyn Future<Output = ()> + Send + 'static>>),
}

impl std::fmt::Debug for Submit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Submit::Done => f.write_str("Submit::Done"),
            Submit::Wait(_) => f.write_str("Submit::Wait(..)"),
        }
    }
}

/// A destination for audit events.
///
/// ```
/// use std::sync::Arc;
/// use mcp_security_audit::{AuditEvent, AuditSink, Submit};
///
/// /// Counts events.
/// #[derive(Default)]
/// struct Counter(std::sync::atomic::AtomicU64);
///
/// impl AuditSink for Counter {
///     fn submit(&self, _event: &Arc<AuditEvent>) -> Submit {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         Submit::Done
///     }
/// }
/// ```
pub trait AuditSink: Send + Sync + 'static {
    /// Offer one event. Never block; see [`Submit`].
    fn submit(&self, event: &Arc<AuditEvent>) -> Submit;

    /// Whether new requests may be served: a sink that must not lose records and cannot take
    /// them now says `false`, and [`AuditLayer::gate`](crate::AuditLayer::gate) answers 503.
    /// The default is `true`.
    fn accepting(&self) -> bool {
        true
    }
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn submit(&self, event: &Arc<AuditEvent>) -> Submit {
        (**self).submit(event)
    }

    fn accepting(&self) -> bool {
        (**self).accepting()
    }
}

/// Emits every event as a `tracing` event with target [`TRACING_TARGET`] (`mcp_security_audit`): requests
/// at `INFO`, security events at `WARN`, with the record's fields as structured fields (masked,
/// like every output of a record). Formatting is the subscriber's job and happens where the
/// event is emitted, on the request path.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl TracingSink {
    /// The sink.
    pub fn new() -> Self {
        TracingSink
    }

    fn request(r: &AuditRecord) {
        tracing::info!(
            target: TRACING_TARGET,
            kind = "request",
            request_id = %r.request_id(),
            method = %r.method(),
            path = %r.path(),
            query_params = r.query().as_deref(),
            client_ip = r.client_ip().map(tracing::field::display),
            user_agent = r.user_agent().as_deref(),
            status_code = r.status().map(|s| s.as_u16()),
            process_time = r.duration().as_secs_f64(),
            auth_type = r.auth_type().map(|a| a.as_str()),
            content_length = r.request_bytes(),
            response_bytes = r.response_bytes(),
            principal_id = r.principal().map(|p| p.id()),
            principal_kind = r.principal().map(|p| p.kind().as_str()),
            credential_fp = r.credential_fingerprint().as_deref(),
            mcp_method = r.mcp_method().as_deref(),
            mcp_tool = r.mcp_tool().as_deref(),
            decision = r.decision().as_str(),
            reason = r.reason(),
            auth_failure = r.auth_failure().map(|f| f.as_str()),
            rate_limit = r.rate_limit().map(|l| l.as_str()),
            detail = r.detail().as_deref(),
            "audit"
        );
    }

    fn completion(c: &CompletionRecord) {
        let entries = c.list_entries();
        let failed = c.failed_closed();
        let secrets = c.secrets();
        let drift = c.manifest_drift();
        let evidence = c.tool_call();
        let evidence = evidence.as_ref();
        tracing::info!(
            target: TRACING_TARGET,
            kind = "completion",
            request_id = %c.request_id(),
            body = if c.body_complete() { "complete" } else { "dropped" },
            list_method = c.list_method(),
            entries_kept = entries.map(|e| e.0),
            entries_hidden = entries.map(|e| e.1),
            failed_closed = failed.map(|f| f.1),
            failed_closed_by = failed.map(|f| f.0),
            secrets = secrets.as_ref().map(|s| s.0.as_str()),
            secrets_action = secrets.as_ref().map(|s| s.1),
            manifest_drift = drift.as_ref().map(|d| d.0.as_str()),
            args_digest = evidence.and_then(|e| e.args_digest.as_deref()),
            result_digest = evidence.and_then(|e| e.result_digest.as_deref()),
            is_error = evidence.and_then(|e| e.is_error),
            result_not_digested = evidence.and_then(|e| e.result_not_digested),
            "audit completion"
        );
    }

    fn security(e: &SecurityEvent) {
        tracing::warn!(
            target: TRACING_TARGET,
            kind = "security",
            detector = e.detector().as_str(),
            action = e.action(),
            client_ip = e.client().map(tracing::field::display),
            principal_id = e.principal().map(|p| p.id()),
            count = e.count(),
            threshold = e.threshold(),
            window_secs = e.window().as_secs(),
            ban_until = e.ban_until().map(|t| tracing::field::display(crate::chain::rfc3339(t))),
            expires_at = e.expires_at().map(|t| tracing::field::display(crate::chain::rfc3339(t))),
            request_id = %e.request_id(),
            "security event"
        );
    }
}

impl AuditSink for TracingSink {
    fn submit(&self, event: &Arc<AuditEvent>) -> Submit {
        match &**event {
            AuditEvent::Request(r) => Self::request(r),
            AuditEvent::Security(e) => Self::security(e),
            AuditEvent::Completion(c) => Self::completion(c),
        }
        Submit::Done
    }
}

/// Keeps every event in memory; for tests. Clones share the events.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<Arc<AuditEvent>>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Arc<AuditEvent>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The request records so far.
    pub fn requests(&self) -> Vec<AuditRecord> {
        self.events()
            .iter()
            .filter_map(|e| e.as_request().cloned())
            .collect()
    }

    /// The completion records so far.
    pub fn completions(&self) -> Vec<CompletionRecord> {
        self.events()
            .iter()
            .filter_map(|e| e.as_completion().cloned())
            .collect()
    }

    /// The security events so far.
    pub fn security_events(&self) -> Vec<SecurityEvent> {
        self.events()
            .iter()
            .filter_map(|e| e.as_security().cloned())
            .collect()
    }

    /// Remove and return every event so far.
    pub fn take(&self) -> Vec<Arc<AuditEvent>> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AuditSink for MemorySink {
    fn submit(&self, event: &Arc<AuditEvent>) -> Submit {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(event));
        Submit::Done
    }
}
