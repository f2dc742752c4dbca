//! The result guard: credentials in what the server answers, found after JSON decoding and
//! redacted or blocked. [`ResultRewriter`] is the [`RewriteResponse`] that
//! [`ToolGuard`](crate::ToolGuard) hands mcp-security-core's response rewriter; the walk over a
//! message's strings lives here.
//!
//! What is scanned: every string value and object key in the answer's `result` (text content,
//! embedded resources, `structuredContent`, `_meta`, resource contents, prompt messages) and in
//! its `error` (message and data), each decoded from JSON first, so `\u0041KIA…` and a PEM key
//! whose line breaks are `\n` escapes are found. A string under a key that names a secret
//! (`"password": "…"`, see [`is_secret_name`]) counts as a secret when its value
//! [looks random](mcp_security_core::credential::looks_random). Base64 `blob` contents are not decoded.

use std::sync::Arc;

use mcp_security_core::credential::{
    REDACTED, SecretKind, SecretScanner, is_secret_name, looks_random,
};
use mcp_security_core::facts::{FactRecorder, ResponseFact};
use mcp_security_core::jsonrpc::JsonRpcId;
use mcp_security_core::response::{INTERNAL_ERROR, RawObject, RewriteFailure, RewriteResponse};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::layer::Shared;

/// What the result guard does with a credential in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResultGuardMode {
    /// Answers pass untouched (the default).
    #[default]
    Off,
    /// Each match is replaced by `[redacted]`; the rest of the answer is kept.
    Redact,
    /// The whole answer is replaced by a JSON-RPC error (`-32603`, `data.code:
    /// "secret_in_result"`).
    Block,
}

impl ResultGuardMode {
    /// `off`, `redact` or `block` (case-insensitive).
    ///
    /// # Errors
    /// Any other value, naming `setting`.
    pub fn parse(
        setting: &str,
        value: &str,
    ) -> Result<Self, mcp_security_core::config::ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" | "false" => Ok(ResultGuardMode::Off),
            "redact" => Ok(ResultGuardMode::Redact),
            "block" => Ok(ResultGuardMode::Block),
            _ => Err(mcp_security_core::config::ConfigError::new(
                setting,
                "must be off, redact or block",
            )
            .with_value(value)),
        }
    }

    /// `off`, `redact` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultGuardMode::Off => "off",
            ResultGuardMode::Redact => "redact",
            ResultGuardMode::Block => "block",
        }
    }
}

impl std::fmt::Display for ResultGuardMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data.code` of a blocked answer.
pub const BLOCKED_CODE: &str = "secret_in_result";

/// The message of a blocked answer.
pub const BLOCKED_MESSAGE: &str = "The result was withheld: it contained a credential";

/// The answer that replaces a blocked one.
pub fn blocked_message(id: &Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": INTERNAL_ERROR,
            "message": BLOCKED_MESSAGE,
            "data": { "code": BLOCKED_CODE },
        },
    })
    .to_string()
}

/// The guarded requests of one HTTP request: id, method and target (tool, prompt or URI).
/// `None`: a replayed stream, where every response is guarded.
pub(crate) type GuardedIds = Option<Vec<(JsonRpcId, &'static str, Option<Box<str>>)>>;

/// The [`RewriteResponse`] of [`ToolGuard`](crate::ToolGuard): scans one answer.
#[derive(Debug)]
pub struct ResultRewriter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ids: GuardedIds,
    pub(crate) recorder: Option<FactRecorder>,
}

/// Matches per kind in one message.
#[derive(Debug, Default)]
pub(crate) struct Hits(Vec<(SecretKind, u32)>);

impl Hits {
    fn add(&mut self, kind: SecretKind) {
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.0.push((kind, 1)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Kinds and counts, in first-seen order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SecretKind, u32)> + '_ {
        self.0.iter().copied()
    }
}

/// Scan one JSON value's strings and keys (decoded) for secrets.
///
/// # Errors
/// Not JSON (or nested too deeply).
pub(crate) fn scan_value(scanner: &SecretScanner, json: &str) -> Result<Hits, serde_json::Error> {
    let mut hits = Hits::default();
    let mut de = serde_json::Deserializer::from_str(json);
    Walk {
        scanner,
        hits: &mut hits,
        secret_key: false,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(hits)
}

fn scan_text(scanner: &SecretScanner, hits: &mut Hits, text: &str, secret_key: bool) {
    let found = scanner.find(text);
    if found.is_empty() && secret_key && looks_random(text) {
        hits.add(SecretKind::SecretAssignment);
    }
    for m in found {
        hits.add(m.kind);
    }
}

/// Visits a JSON value without building it, scanning every string.
struct Walk<'a> {
    scanner: &'a SecretScanner,
    hits: &'a mut Hits,
    /// The value sits under a key that names a secret.
    secret_key: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        scan_text(self.scanner, self.hits, v, self.secret_key);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                scanner: self.scanner,
                hits: &mut *self.hits,
                secret_key: self.secret_key,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            scan_text(self.scanner, self.hits, &key, false);
            map.next_value_seed(Walk {
                scanner: self.scanner,
                hits: &mut *self.hits,
                secret_key: is_secret_name(&key),
            })?;
        }
        Ok(())
    }
}

/// `raw` with every secret replaced by [`REDACTED`], keeping every other byte (member order,
/// escapes of untouched strings).
///
/// # Errors
/// Not JSON, or an object with duplicate keys.
pub(crate) fn redact_value(
    scanner: &SecretScanner,
    raw: &RawValue,
    secret_key: bool,
    out: &mut String,
) -> Result<(), serde_json::Error> {
    let text = raw.get();
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {
            let obj = RawObject::parse(text)?;
            out.push('{');
            for (i, (k, v)) in obj.members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(out, &scanner.redact(k, REDACTED));
                out.push(':');
                redact_value(scanner, v, is_secret_name(k), out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                redact_value(scanner, v, secret_key, out)?;
            }
            out.push(']');
        }
        Some(b'"') => {
            let s: std::borrow::Cow<'_, str> = serde_json::from_str(text)?;
            let found = scanner.redact(&s, REDACTED);
            if matches!(found, std::borrow::Cow::Owned(_)) {
                push_string(out, &found);
            } else if secret_key && looks_random(&s) {
                push_string(out, REDACTED);
            } else {
                out.push_str(text);
            }
        }
        _ => out.push_str(text),
    }
    Ok(())
}

fn push_string(out: &mut String, s: &str) {
    // A string always serializes.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

impl ResultRewriter {
    /// The method and target of the request answered by `id`, or `None` when `id` is not one
    /// of the guarded requests (a replayed stream guards every response: `Some((None, None))`).
    fn request(&self, id: Option<&Value>) -> Option<(Option<&'static str>, Option<Box<str>>)> {
        let Some(ids) = &self.ids else {
            return Some((None, None));
        };
        let id = id?;
        ids.iter()
            .find(|(t, _, _)| t.to_json() == *id)
            .map(|(_, m, target)| (Some(*m), target.clone()))
    }
}

impl RewriteResponse for ResultRewriter {
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()> {
        let shared = Arc::clone(&self.shared);
        let msg = RawObject::parse(message).map_err(|_| ())?;
        let id: Value = match msg.get("id") {
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ())?,
            None => Value::Null,
        };
        let Some((method, target)) = self.request(Some(&id)) else {
            return Ok(None);
        };
        if method == Some("tools/list") {
            // Read for the schemas (arguments checked) and the pinned manifest.
            #[cfg(feature = "schema")]
            if shared.validates()
                && let Some(result) = msg.get("result")
            {
                shared.schemas.learn(result.get());
            }
            let Some(pinning) = &shared.pinning else {
                return Ok(None);
            };
            let (drifted, rewritten) = pinning.check_list(message, self.recorder.as_ref())?;
            shared.record_drift(drifted);
            return Ok(rewritten);
        }
        let mut hits = Hits::default();
        for member in ["result", "error"] {
            if let Some(raw) = msg.get(member) {
                let found = scan_value(&shared.scanner, raw.get()).map_err(|_| ())?;
                for (kind, n) in found.iter() {
                    for _ in 0..n {
                        hits.add(kind);
                    }
                }
            }
        }
        if hits.is_empty() {
            return Ok(None);
        }
        let block = shared.mode == ResultGuardMode::Block;
        let action = if block { "blocked" } else { "redacted" };
        shared.record_hits(&hits, block);
        for (kind, count) in hits.iter() {
            metrics::counter!(
                crate::layer::SECRETS_METRIC,
                "kind" => kind.as_str(),
                "action" => action,
            )
            .increment(u64::from(count));
            if let Some(r) = &self.recorder {
                r.record(ResponseFact::SecretFound {
                    kind: kind.as_str(),
                    count,
                    method,
                    target: target.clone(),
                    action,
                });
            }
        }
        if block {
            return Ok(Some(blocked_message(&id)));
        }
        let mut redacted: Vec<(&str, String)> = Vec::with_capacity(2);
        for member in ["result", "error"] {
            if let Some(raw) = msg.get(member) {
                let mut out = String::with_capacity(raw.get().len());
                redact_value(&shared.scanner, raw, false, &mut out).map_err(|_| ())?;
                redacted.push((member, out));
            }
        }
        let mut out = String::with_capacity(message.len());
        msg.write(
            &mut out,
            |k| {
                redacted
                    .iter()
                    .find(|(m, _)| *m == k)
                    .map(|(_, v)| v.clone())
            },
            &[],
        );
        Ok(Some(out))
    }

    fn failed(&mut self, failure: RewriteFailure, _id: &Value) {
        self.shared.record_failed_closed();
        if let Some(r) = &self.recorder {
            r.record(ResponseFact::FailedClosed {
                layer: "result_guard",
                reason: failure,
            });
        }
    }

    fn finished(&mut self) {
        if let Some(r) = &self.recorder {
            r.body_complete();
        }
    }
}

#[cfg(test)]
mod tests;
