//! [`CompletionRecord`]: what response-side layers learned from a body.

use super::*;

/// What response-side layers learned from one request's body (see the
/// [module docs](super#completion-records)); linked to the request record by `request_id`.
#[derive(Debug, Clone)]
pub struct CompletionRecord {
    pub(crate) time: SystemTime,
    pub(crate) request_id: RequestId,
    pub(crate) facts: BodyFacts,
    pub(crate) masker: Masker,
}

impl CompletionRecord {
    /// When the body ended or was dropped.
    pub fn time(&self) -> SystemTime {
        self.time
    }

    /// The id of the request record it completes.
    pub fn request_id(&self) -> Cow<'_, str> {
        self.request_id.to_text(&self.masker)
    }

    /// Every fact recorded, in order.
    pub fn facts(&self) -> &[ResponseFact] {
        &self.facts.facts
    }

    /// Whether the body was read to its end (`false`: the client dropped it first).
    pub fn body_complete(&self) -> bool {
        self.facts.body_complete
    }

    /// The list method filtered, if any (the first, when several).
    pub fn list_method(&self) -> Option<&'static str> {
        self.facts().iter().find_map(|f| match f {
            ResponseFact::ListFiltered { method, .. } => Some(*method),
            _ => None,
        })
    }

    /// Entries kept and hidden over every filtered list, if any was filtered.
    pub fn list_entries(&self) -> Option<(u64, u64)> {
        let mut out: Option<(u64, u64)> = None;
        for f in self.facts() {
            if let ResponseFact::ListFiltered { kept, hidden, .. } = f {
                let (k, h) = out.get_or_insert((0, 0));
                *k += u64::from(*kept);
                *h += u64::from(*hidden);
            }
        }
        out
    }

    /// Why a response was replaced by a JSON-RPC error, and by which layer (the first).
    pub fn failed_closed(&self) -> Option<(&'static str, &'static str)> {
        self.facts().iter().find_map(|f| match f {
            ResponseFact::FailedClosed { layer, reason } => Some((*layer, reason.as_str())),
            _ => None,
        })
    }

    /// What the result guard found (`mcp-security-guard`): each kind of credential with its
    /// count (`aws_access_key_id:1,jwt:2`), what was done (`redacted` or `blocked`) and the tool,
    /// prompt or resource URI answered (of the first hit). Never the secret.
    pub fn secrets(&self) -> Option<(String, &'static str, Option<&str>)> {
        let mut kinds = String::new();
        let mut first: Option<(&'static str, Option<&str>)> = None;
        for f in self.facts() {
            if let ResponseFact::SecretFound {
                kind,
                count,
                target,
                action,
                ..
            } = f
            {
                if !kinds.is_empty() {
                    kinds.push(',');
                }
                kinds.push_str(&format!("{kind}:{count}"));
                first.get_or_insert((*action, target.as_deref()));
            }
        }
        first.map(|(action, target)| (kinds, action, target))
    }

    /// Listed tools that differ from the pinned manifest (`mcp-security-guard`):
    /// `read_note:description,upload:new`, and whether they were hidden and refused.
    pub fn manifest_drift(&self) -> Option<(String, bool)> {
        let mut out: Option<(String, bool)> = None;
        for f in self.facts() {
            if let ResponseFact::ManifestDrift {
                tool,
                change,
                enforced,
            } = f
            {
                let (list, e) = out.get_or_insert((String::new(), *enforced));
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(&format!("{tool}:{change}"));
                *e |= *enforced;
            }
        }
        out
    }

    /// The tool-call evidence ([`crate::evidence`]), when this completes a `tools/call`.
    pub fn tool_call(&self) -> Option<ToolCallEvidence> {
        self.facts().iter().find_map(|f| match f {
            ResponseFact::ToolCallEvidence {
                arguments,
                result,
                is_error,
                not_digested,
            } => Some(ToolCallEvidence {
                args_digest: arguments.as_ref().map(crate::evidence::format),
                result_digest: result.as_ref().map(crate::evidence::format),
                is_error: *is_error,
                result_not_digested: *not_digested,
            }),
            _ => None,
        })
    }

    pub(crate) fn write_body(&self, buf: &mut Vec<u8>, seq: u64) {
        let mut o = JsonObject::begin(buf, seq, RecordKind::Completion, self.time);
        o.str("request_id", Some(&self.request_id()));
        o.str(
            "body",
            Some(if self.body_complete() {
                "complete"
            } else {
                "dropped"
            }),
        );
        o.str("list_method", self.list_method());
        let entries = self.list_entries();
        o.u64("entries_kept", entries.map(|e| e.0));
        o.u64("entries_hidden", entries.map(|e| e.1));
        let failed = self.failed_closed();
        o.str("failed_closed", failed.map(|f| f.1));
        o.str("failed_closed_by", failed.map(|f| f.0));
        o.u64("facts_dropped", Some(u64::from(self.facts.dropped)));
        let secrets = self.secrets();
        o.str("secrets", secrets.as_ref().map(|s| s.0.as_str()));
        o.str("secrets_action", secrets.as_ref().map(|s| s.1));
        let target = secrets
            .as_ref()
            .and_then(|s| s.2)
            .map(|t| self.masker.mask_text(t));
        o.str("secrets_target", target.as_deref());
        let drift = self.manifest_drift();
        o.str("manifest_drift", drift.as_ref().map(|d| d.0.as_str()));
        o.str(
            "manifest_drift_action",
            drift
                .as_ref()
                .map(|d| if d.1 { "enforced" } else { "warned" }),
        );
        let evidence = self.tool_call();
        let evidence = evidence.as_ref();
        o.str(
            "args_digest",
            evidence.and_then(|e| e.args_digest.as_deref()),
        );
        o.str(
            "result_digest",
            evidence.and_then(|e| e.result_digest.as_deref()),
        );
        o.bool("is_error", evidence.and_then(|e| e.is_error));
        o.str(
            "result_not_digested",
            evidence.and_then(|e| e.result_not_digested),
        );
    }
}

/// The tool-call evidence of a completion record ([`crate::evidence`]), as the record shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCallEvidence {
    /// `hmac-sha256:<hex>` of `params.arguments`; `None` when the request had none.
    pub args_digest: Option<String>,
    /// `hmac-sha256:<hex>` of the result the client received; `None` when none was taken.
    pub result_digest: Option<String>,
    /// The result's `isError`; `None` without a readable result.
    pub is_error: Option<bool>,
    /// Why no result digest was taken (`jsonrpc_error`, `response_too_large`,
    /// `response_invalid_json`, `not_json_or_sse`, `no_response`).
    pub result_not_digested: Option<&'static str>,
}
