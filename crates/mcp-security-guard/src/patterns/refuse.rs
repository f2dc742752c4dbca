//! The layer's answer to a request with a refused `tools/call`.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use mcp_security_core::jsonrpc::{JsonRpcMessage, MessageKind, SERVER_ERROR};
use mcp_security_core::{McpCall, Rejection};
use serde_json::{Value, json};

use super::{BLOCKED_METRIC, BlockedPatterns, PatternHit};

/// JSON-RPC "Invalid params".
pub(crate) const INVALID_PARAMS: i32 = -32602;

/// The longest leaf pointer written to the audit detail.
const MAX_AT_BYTES: usize = 256;

/// A POST whose `tools/call` (single, or any in a batch) has arguments a rule refuses: the
/// layer's answer, with a [`Rejection`] for the audit record. `None`: pass it on.
pub(crate) fn refuse<B>(req: &Request<B>, patterns: &BlockedPatterns) -> Option<Response<Bytes>> {
    if patterns.is_empty() || req.method() != Method::POST {
        return None;
    }
    let call = req.extensions().get::<McpCall>()?;
    let messages = call.messages();
    if !messages
        .iter()
        .any(|m| m.tool().is_some_and(|t| patterns.applies_to(t)))
    {
        return None;
    }
    // McpInspectLayer parsed this body with the same parser and nesting limit.
    let body: Value = serde_json::from_slice(messages.first()?.body()).ok()?;
    // A batch has one message per element, in order.
    let elements: Vec<&Value> = match (&body, call.is_batch()) {
        (Value::Array(items), true) => items.iter().collect(),
        (_, false) => vec![&body],
        _ => return None,
    };
    let hits: Vec<(usize, &str, PatternHit<'_>)> = messages
        .iter()
        .zip(elements)
        .enumerate()
        .filter_map(|(i, (m, element))| {
            let tool = m.tool()?;
            let arguments = element.get("params")?.get("arguments")?;
            Some((i, tool, patterns.check(tool, arguments)?))
        })
        .collect();
    let (_, _, first) = hits.first()?;
    let mut detail = String::new();
    for (n, (_, tool, hit)) in hits.iter().enumerate() {
        metrics::counter!(BLOCKED_METRIC, "rule" => hit.rule().to_owned()).increment(1);
        if n > 0 {
            detail.push_str("; ");
        }
        detail.push_str(&format!(
            "tool {tool}: {} matched {} of rule {}",
            match capped(hit.at()) {
                "" => "arguments",
                at => at,
            },
            hit.pattern(),
            hit.rule()
        ));
    }
    let error = |hit: &PatternHit<'_>, id: Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": INVALID_PARAMS,
                "message": message(hit),
                "data": {"code": "blocked_pattern", "rule": hit.rule(), "pointer": hit.pointer()},
            },
        })
    };
    let id_of = |m: &JsonRpcMessage| m.id().map_or(Value::Null, |id| id.to_json());
    let body = if call.is_batch() {
        let answers: Vec<Value> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match hits.iter().find(|(j, _, _)| *j == i) {
                Some((_, _, hit)) => Some(error(hit, id_of(m))),
                None if m.kind() == MessageKind::Request => Some(json!({
                    "jsonrpc": "2.0",
                    "id": id_of(m),
                    "error": {
                        "code": SERVER_ERROR,
                        "message": "Not processed: another call in the batch was refused",
                    },
                })),
                None => None,
            })
            .collect();
        Value::Array(answers)
    } else {
        error(first, messages.first().map_or(Value::Null, id_of))
    };
    let mut res = Response::new(Bytes::from(body.to_string()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.extensions_mut().insert(
        Rejection::new(StatusCode::BAD_REQUEST, "blocked_pattern")
            .message(message(first))
            .jsonrpc_code(INVALID_PARAMS)
            .field("rule", first.rule())
            .field("pointer", first.pointer())
            .detail(detail),
    );
    Some(res)
}

/// The public message: the rule's pointer and id, nothing the client sent.
fn message(hit: &PatternHit<'_>) -> String {
    if hit.pointer().is_empty() {
        format!(
            "Invalid params: arguments refused by blocked-pattern rule {}",
            hit.rule()
        )
    } else {
        format!(
            "Invalid params: argument {} refused by blocked-pattern rule {}",
            hit.pointer(),
            hit.rule()
        )
    }
}

/// `at`, cut at a character boundary to [`MAX_AT_BYTES`].
fn capped(at: &str) -> &str {
    if at.len() <= MAX_AT_BYTES {
        return at;
    }
    let mut end = MAX_AT_BYTES;
    while !at.is_char_boundary(end) {
        end -= 1;
    }
    at.get(..end).unwrap_or_default()
}
