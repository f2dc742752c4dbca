//! Fuzz the MCP transport-header rules of `McpInspectLayer`: the `=?base64?…?=` value codec
//! and `check_headers` (the per-method `Mcp-Name` table, `Mcp-Method`, `MCP-Protocol-Version`).
//!
//! Input: `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the body, separated by NUL bytes
//! (missing parts are absent headers). Each header part holds one or more values separated by
//! `\n`, each added with `HeaderMap::append` (so a header may be repeated); a value that is
//! not a valid header value is skipped.
//!
//! Invariants: nothing panics; a decoded `Mcp-Name` re-encodes to a valid header value that
//! decodes back to the same text, and `value_matches` agrees with `decode_value`; and
//! `check_headers` accepts exactly when an independent oracle does. The oracle is written from
//! the specification, not from the crate: its own literal table of which body field each method
//! mirrors in `Mcp-Name` (`params.name` / `params.uri` / `params.taskId`) and where the header
//! is required, evaluated on serde_json's `Value` parse of the body.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::mcp_headers::{
    DEFAULT_PROTOCOL_VERSIONS, MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, check_headers,
    decode_value, encode_value, value_matches,
};
use serde_json::Value;

/// Which body field `Mcp-Name` mirrors, per method (MCP 2026-07-28 transport, SEP-2243), and
/// whether a 2026-07-28 request must carry it.
const MIRRORS: &[(&str, &str, bool)] = &[
    ("tools/call", "name", true),
    ("prompts/get", "name", true),
    ("resources/read", "uri", true),
    ("resources/subscribe", "uri", false),
    ("resources/unsubscribe", "uri", false),
    ("tasks/get", "taskId", true),
    ("tasks/update", "taskId", true),
    ("tasks/cancel", "taskId", true),
];

const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// The header's one value as text without surrounding spaces and tabs; `Err` when it is
/// repeated, `Ok(None)` when absent, `Ok(Some(Err))` when not text.
fn one(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Option<String>>, ()> {
    let values: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
    match values.as_slice() {
        [] => Ok(None),
        [v] => Ok(Some(
            v.to_str()
                .ok()
                .map(|s| s.trim_matches(|c| c == ' ' || c == '\t').to_owned()),
        )),
        _ => Err(()),
    }
}

fn method_of(m: &Value) -> Option<&str> {
    m.get("method").and_then(Value::as_str)
}

fn is_request(m: &Value) -> bool {
    m.get("method").is_some() && m.get("id").is_some()
}

/// The field `Mcp-Name` mirrors in `m`, as a string, and whether it is required.
fn mirrored(m: &Value) -> Option<(Option<&str>, bool)> {
    let method = method_of(m)?;
    let (_, field, required) = MIRRORS.iter().find(|(name, _, _)| *name == method)?;
    let value = m
        .get("params")
        .and_then(|p| p.get(*field))
        .and_then(Value::as_str);
    Some((value, *required))
}

/// Whether the transport headers of a request with these messages are acceptable.
fn oracle(headers: &HeaderMap, messages: &[&Value]) -> bool {
    let (Ok(version), Ok(method), Ok(name)) = (
        one(headers, &MCP_PROTOCOL_VERSION),
        one(headers, &MCP_METHOD),
        one(headers, &MCP_NAME),
    ) else {
        return false;
    };
    let version = match version {
        None => None,
        Some(Some(v)) if DEFAULT_PROTOCOL_VERSIONS.contains(&v.as_str()) => Some(v),
        Some(_) => return false,
    };
    for m in messages {
        let meta = m
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|meta| meta.get(PROTOCOL_VERSION_META))
            .and_then(Value::as_str);
        if meta.is_some() && meta != version.as_deref() {
            return false;
        }
    }
    let stateless = version.as_deref().is_some_and(|v| v >= "2026-07-28");
    match method {
        Some(Some(header)) => {
            if messages.iter().any(|m| method_of(m) != Some(header.as_str())) {
                return false;
            }
        }
        Some(None) => return false,
        None => {
            if stateless
                && messages
                    .iter()
                    .any(|m| is_request(m) && method_of(m) != Some("initialize"))
            {
                return false;
            }
        }
    }
    match name {
        Some(Some(header)) => {
            let Ok(decoded) = decode_value(&header) else {
                return false;
            };
            messages.iter().all(|m| match mirrored(m) {
                Some((Some(field), _)) => field == decoded,
                _ => false,
            })
        }
        Some(None) => false,
        None => !(stateless
            && messages.iter().any(|m| {
                is_request(m) && matches!(mirrored(m), Some((Some(_), true)))
            })),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let version = parts.next();
    let method = parts.next();
    let name = parts.next();
    let body = parts.next().unwrap_or_default();

    let mut headers = HeaderMap::new();
    for (header, part) in [
        (&MCP_PROTOCOL_VERSION, version),
        (&MCP_METHOD, method),
        (&MCP_NAME, name),
    ] {
        for value in part
            .into_iter()
            .flat_map(|p| p.split(|b| *b == b'\n'))
            .filter(|p| !p.is_empty())
            .filter_map(|p| HeaderValue::from_bytes(p).ok())
        {
            headers.append(header.clone(), value);
        }
    }

    // The codec on each Mcp-Name value, and on any text in the input.
    for raw in headers.get_all(&MCP_NAME).iter().filter_map(|v| v.to_str().ok()) {
        match decode_value(raw) {
            Ok(decoded) => {
                let encoded = encode_value(&decoded);
                assert!(HeaderValue::from_str(&encoded).is_ok(), "{encoded:?}");
                assert_eq!(decode_value(&encoded).as_deref(), Ok(&*decoded));
                assert_eq!(value_matches(raw, &decoded), Ok(true));
                assert_eq!(value_matches(&encoded, &decoded), Ok(true));
            }
            Err(_) => assert!(value_matches(raw, "x").is_err()),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let encoded = encode_value(text);
        assert!(HeaderValue::from_str(&encoded).is_ok());
        assert_eq!(decode_value(&encoded).as_deref(), Ok(text));
    }

    let Ok(call) = parse_envelope(body) else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        // Deeply nested arguments are skipped by the envelope parser, refused by `Value`.
        return;
    };
    let messages: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    assert_eq!(messages.len(), call.messages().len());
    let ours = check_headers(&headers, &call, DEFAULT_PROTOCOL_VERSIONS);
    assert_eq!(
        ours.is_ok(),
        oracle(&headers, &messages),
        "check_headers: {ours:?}; headers {headers:?}"
    );
});
