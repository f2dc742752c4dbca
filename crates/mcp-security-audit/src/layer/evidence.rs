//! The layer's side of [`crate::evidence`]: which responses get an evidence body, the builder's
//! settings, and the completion record the body's facts end up in.

use std::sync::Arc;

use http::Response;
use mcp_security_core::facts::{BodyFacts, FactRecorder};
use mcp_security_core::jsonrpc::JsonRpcId;
use mcp_security_core::{McpCall, Rejection};

use super::{AuditLayerBuilder, Pending, Shared};
use crate::chain::AuditKey;
use crate::evidence::{AuditBody, DigestPart, Evidence, mac};
use crate::record::{AuditEvent, CompletionRecord, McpInfo, RequestId};
use crate::sink::Submit;

/// What the head tells about a `tools/call` that gets evidence: its id and its arguments'
/// digest.
pub(super) struct Target {
    id: JsonRpcId,
    arguments: Option<[u8; 32]>,
}

impl Shared {
    /// The evidence target of a response, read before the record is built: a single
    /// `tools/call` request (with an id) that no layer refused, when evidence is on.
    pub(super) fn evidence_target<B>(&self, p: &Pending, res: &Response<B>) -> Option<Target> {
        let config = self.evidence.as_ref()?;
        if res.extensions().get::<Rejection>().is_some() {
            return None;
        }
        let call = match (res.extensions().get::<McpCall>(), &p.mcp) {
            (Some(call), _) | (None, McpInfo::Call(call)) => call,
            _ => return None,
        };
        let message = call.single()?;
        if message.method() != Some("tools/call") {
            return None;
        }
        let id = message.id()?.clone();
        let arguments = message
            .param_arguments()
            .map(|text| mac(&config.key, DigestPart::Arguments, text.as_bytes()));
        Some(Target { id, arguments })
    }

    /// The response with the audit body: digesting for a target, plain otherwise. The
    /// recorder is the layer's own: moved into the body when it digests, else dropped here
    /// (after the request record went out).
    pub(super) fn wrap<B>(
        &self,
        res: Response<B>,
        target: Option<Target>,
        recorder: Option<FactRecorder>,
    ) -> Response<AuditBody<B>> {
        let (Some(target), Some(recorder), Some(config)) = (target, recorder, &self.evidence)
        else {
            return res.map(AuditBody::plain);
        };
        let evidence = Evidence::new(config, recorder, target.id, target.arguments, res.headers());
        res.map(|body| AuditBody::with_evidence(body, Some(evidence)))
    }

    /// Write the completion record of a request whose body revealed facts. Runs when the body
    /// ends or is dropped, possibly outside any task: sinks that push back are waited for on
    /// the current runtime, if there is one.
    pub(super) fn complete(&self, request_id: RequestId, facts: BodyFacts) {
        if facts.facts.is_empty() && facts.dropped == 0 {
            return;
        }
        let event = Arc::new(AuditEvent::Completion(CompletionRecord {
            time: self.clock.now(),
            request_id,
            facts,
            masker: self.masker.clone(),
        }));
        let mut waits = Vec::new();
        for sink in &*self.sinks {
            if let Submit::Wait(w) = sink.submit(&event) {
                waits.push(w);
            }
        }
        if !waits.is_empty()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            for w in waits {
                handle.spawn(w);
            }
        }
    }
}

impl AuditLayerBuilder {
    /// Tool-call evidence ([`crate::evidence`]): for each `tools/call`, keyed digests of the
    /// arguments and of the result the client received, and the result's `isError`, in the
    /// request's `completion` record. `Some(key)` turns it on with that key (give it the audit
    /// chain's key, so the holder of that key can recompute the digests), `None` turns it off.
    /// Default: on with the key of the [file sink](Self::file_sink), when there is one.
    pub fn tool_call_evidence(mut self, key: impl Into<Option<AuditKey>>) -> Self {
        self.evidence = Some(key.into());
        self
    }

    /// The most bytes buffered to digest one result (a whole JSON body, or one SSE event;
    /// default [`DEFAULT_MAX_EVIDENCE_BYTES`](crate::evidence::DEFAULT_MAX_EVIDENCE_BYTES)).
    /// A larger answer passes unchanged and is recorded as `result_not_digested:
    /// "response_too_large"`.
    pub fn tool_call_evidence_max_bytes(mut self, max: usize) -> Self {
        self.evidence_max_bytes = max;
        self
    }
}
