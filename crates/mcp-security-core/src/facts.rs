//! Response facts: what response-side layers learn from a response *body*, for the audit trail.
//!
//! The audit record is written when the response head comes back, before any of the body is
//! known. Facts that only the body reveals (entries hidden from a list, a list that failed
//! closed, result-guard hits, tool-call digests and `isError`) reach the audit layer through
//! this one mechanism:
//!
//! 1. The audit layer creates a [`ResponseFacts`] per request with
//!    [`ResponseFacts::new`], giving it a completion callback, keeps the returned
//!    [`FactRecorder`] until the response head, and puts the [`ResponseFacts`] handle into the
//!    request's extensions.
//! 2. A response-side layer (inside the audit layer) that will learn something from the body
//!    calls [`ResponseFacts::recorder`] *while handling the request or its head* and moves the
//!    [`FactRecorder`] into its body wrapper; it calls [`FactRecorder::record`] as it learns
//!    things and [`FactRecorder::body_complete`] when the body has ended.
//! 3. When the last recorder is dropped — the audit layer's at the response head, a body
//!    wrapper's when the body ends *or is dropped early* (the client went away) — the callback
//!    runs once with every fact recorded and whether the body was read to its end. Nothing is
//!    lost when a client disconnects mid-body, and a request no layer recorded anything for
//!    costs one small allocation.
//!
//! The handle in the extensions holds only a weak reference, so a service that keeps the
//! request's extensions (a session, a tool handler) does not delay the callback.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mcp_security_core::facts::{BodyFacts, ResponseFact, ResponseFacts};
//!
//! let seen: Arc<Mutex<Option<BodyFacts>>> = Arc::default();
//! let sink = Arc::clone(&seen);
//! let (facts, audit_guard) = ResponseFacts::new(move |c| *sink.lock().unwrap() = Some(c));
//! // An inner layer, while handling the request:
//! let recorder = facts.recorder().unwrap();
//! drop(audit_guard); // the response head went out
//! recorder.record(ResponseFact::ListFiltered { method: "tools/list", kept: 2, hidden: 3 });
//! drop(recorder); // the client dropped the body early
//! let done = seen.lock().unwrap().take().unwrap();
//! assert_eq!(done.facts.len(), 1);
//! assert!(!done.body_complete);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::response::RewriteFailure;

/// The most facts kept per request; later ones are counted in [`BodyFacts::dropped`].
pub const MAX_FACTS: usize = 64;

/// One thing a response-side layer learned from a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFact {
    /// A list response was cut to what the caller may use.
    ListFiltered {
        /// `tools/list`, `prompts/list`, `resources/list` or `resources/templates/list`.
        method: &'static str,
        /// Entries left in the list.
        kept: u32,
        /// Entries removed.
        hidden: u32,
    },
    /// A result carried a credential (the result guard): what kind, in answer to what, and
    /// what was done. Never the secret itself.
    SecretFound {
        /// The detector's label (`aws_access_key_id`, `private_key`, … see
        /// [`SecretKind::as_str`](crate::credential::SecretKind::as_str)).
        kind: &'static str,
        /// How many matches of this kind in the message.
        count: u32,
        /// `tools/call`, `resources/read` or `prompts/get` (`None` in a replayed stream).
        method: Option<&'static str>,
        /// The tool, prompt or resource URI named by the request, if known.
        target: Option<Box<str>>,
        /// `redacted` or `blocked`.
        action: &'static str,
    },
    /// A listed tool differs from the pinned manifest (the tool guard's lock file): new, or its
    /// description or schemas changed since it was pinned.
    ManifestDrift {
        /// The tool.
        tool: Box<str>,
        /// `new`, `description` or `schema`.
        change: &'static str,
        /// Whether it was hidden from the list and is refused on call (enforce mode).
        enforced: bool,
    },
    /// Evidence of one `tools/call`, taken by the audit layer over what left the stack:
    /// keyed digests of the arguments as received and of the result as the client received
    /// it (never their contents), and the result's `isError`. `mcp-security-audit`'s
    /// `evidence` module defines what bytes are digested.
    ToolCallEvidence {
        /// The keyed digest of `params.arguments`; `None` when the request had none.
        arguments: Option<[u8; 32]>,
        /// The keyed digest of the response's `result`; `None` when none was taken
        /// (`not_digested` says why).
        result: Option<[u8; 32]>,
        /// The result's `isError` (`false` when absent); `None` without a readable result.
        is_error: Option<bool>,
        /// Why no result digest was taken (`jsonrpc_error`, `response_too_large`, …).
        not_digested: Option<&'static str>,
    },
    /// A response could not be checked and was replaced by a JSON-RPC error.
    FailedClosed {
        /// The layer that replaced it (`list_filter`, …).
        layer: &'static str,
        /// Why.
        reason: RewriteFailure,
    },
}

/// What the completion callback receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// Every fact recorded, in order (at most [`MAX_FACTS`]).
    pub facts: Vec<ResponseFact>,
    /// Facts beyond [`MAX_FACTS`] that were not kept.
    pub dropped: u32,
    /// Whether a recorder saw the body to its end (`false`: dropped early, or no body wrapper
    /// took a recorder).
    pub body_complete: bool,
}

type Callback = Box<dyn FnOnce(BodyFacts) + Send>;

struct Inner {
    state: Mutex<BodyFacts>,
    complete: AtomicBool,
    callback: Mutex<Option<Callback>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let callback = self
            .callback
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(callback) = callback {
            let mut completion =
                std::mem::take(self.state.get_mut().unwrap_or_else(PoisonError::into_inner));
            completion.body_complete = *self.complete.get_mut();
            callback(completion);
        }
    }
}

/// The per-request handle, in the request's extensions; see the [module docs](self).
#[derive(Clone)]
pub struct ResponseFacts {
    inner: Weak<Inner>,
}

impl fmt::Debug for ResponseFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFacts")
            .field("live", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl ResponseFacts {
    /// A handle for one request, and the creator's recorder. `on_complete` runs once, when the
    /// last recorder is dropped.
    pub fn new(on_complete: impl FnOnce(BodyFacts) + Send + 'static) -> (Self, FactRecorder) {
        let inner = Arc::new(Inner {
            state: Mutex::new(BodyFacts::default()),
            complete: AtomicBool::new(false),
            callback: Mutex::new(Some(Box::new(on_complete))),
        });
        (
            ResponseFacts {
                inner: Arc::downgrade(&inner),
            },
            FactRecorder { inner },
        )
    }

    /// A recorder that keeps the completion open until it is dropped; `None` when the request's
    /// completion has already been reported.
    pub fn recorder(&self) -> Option<FactRecorder> {
        self.inner.upgrade().map(|inner| FactRecorder { inner })
    }
}

/// Records facts for one request; the completion is reported when the last one is dropped.
pub struct FactRecorder {
    inner: Arc<Inner>,
}

impl fmt::Debug for FactRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactRecorder").finish_non_exhaustive()
    }
}

impl FactRecorder {
    /// Record a fact.
    pub fn record(&self, fact: ResponseFact) {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.facts.len() < MAX_FACTS {
            state.facts.push(fact);
        } else {
            state.dropped = state.dropped.saturating_add(1);
        }
    }

    /// The body this recorder watches was read to its end.
    pub fn body_complete(&self) {
        self.inner.complete.store(true, Ordering::Relaxed);
    }

    /// The facts recorded so far.
    pub fn facts(&self) -> Vec<ResponseFact> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .facts
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> (
        Arc<Mutex<Vec<BodyFacts>>>,
        impl FnOnce(BodyFacts) + Send + 'static,
    ) {
        let seen: Arc<Mutex<Vec<BodyFacts>>> = Arc::default();
        let s = Arc::clone(&seen);
        (seen, move |c| s.lock().unwrap().push(c))
    }

    #[test]
    fn reported_once_when_the_last_recorder_goes() {
        let (seen, cb) = sink();
        let (facts, guard) = ResponseFacts::new(cb);
        let a = facts.recorder().unwrap();
        let b = facts.recorder().unwrap();
        a.record(ResponseFact::FailedClosed {
            layer: "list_filter",
            reason: RewriteFailure::TooLarge,
        });
        drop(guard);
        drop(a);
        assert!(seen.lock().unwrap().is_empty());
        b.body_complete();
        drop(b);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].body_complete);
        assert_eq!(seen[0].facts.len(), 1);
        // Too late for a new recorder.
        assert!(facts.recorder().is_none());
    }

    #[test]
    fn no_recorder_reports_at_the_head_and_facts_are_bounded() {
        let (seen, cb) = sink();
        let (_facts, guard) = ResponseFacts::new(cb);
        for _ in 0..MAX_FACTS + 3 {
            guard.record(ResponseFact::ListFiltered {
                method: "tools/list",
                kept: 0,
                hidden: 1,
            });
        }
        drop(guard);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].facts.len(), MAX_FACTS);
        assert_eq!(seen[0].dropped, 3);
        assert!(!seen[0].body_complete);
    }
}
