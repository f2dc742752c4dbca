//! Fuzz the MCP transport-header rules of `McpInspectLayer`: the `=?base64?…?=` value codec
//! and `check_headers` (the per-method `Mcp-Name` table, `Mcp-Method`, `MCP-Protocol-Version`).
//!
//! Input: `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the body, separated by NUL bytes
//! (missing parts are absent headers; a part that is not a valid header value is skipped).
//!
//! Invariants: nothing panics; a decoded `Mcp-Name` re-encodes to a valid header value that
//! decodes back to the same text, and `value_matches` agrees with `decode_value`; when
//! `check_headers` accepts, every message's mirrored field equals the decoded `Mcp-Name`, the
//! `Mcp-Method` equals every message's method, the version is a supported one, and a 2026-07-28
//! request carries the headers the table requires.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mcp_core::jsonrpc::{MessageKind, parse_envelope};
use mcp_core::mcp_headers::{
    DEFAULT_PROTOCOL_VERSIONS, MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, check_headers,
    decode_value, encode_value, name_required, requires_standard_headers, value_matches,
};

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
        if let Some(value) = part
            .filter(|p| !p.is_empty())
            .and_then(|p| HeaderValue::from_bytes(p).ok())
        {
            headers.insert(header.clone(), value);
        }
    }

    // The codec on the Mcp-Name part, and on any text in the input.
    let raw_name = headers.get(&MCP_NAME).and_then(|v| v.to_str().ok());
    if let Some(raw) = raw_name {
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
    if check_headers(&headers, &call, DEFAULT_PROTOCOL_VERSIONS).is_err() {
        return;
    }
    let version = headers
        .get(&MCP_PROTOCOL_VERSION)
        .map(|v| v.to_str().expect("accepted version is text"));
    if let Some(v) = version {
        assert!(DEFAULT_PROTOCOL_VERSIONS.contains(&v));
    }
    let stateless = version.is_some_and(requires_standard_headers);
    let header_method = headers
        .get(&MCP_METHOD)
        .map(|v| v.to_str().expect("accepted method is text"));
    let header_name = raw_name.map(|raw| decode_value(raw).expect("accepted name decodes"));
    for message in call.messages() {
        if let Some(meta) = message.meta_protocol_version() {
            assert_eq!(Some(meta), version);
        }
        if let Some(m) = header_method {
            assert_eq!(message.method(), Some(m));
        }
        if let Some(n) = &header_name {
            assert_eq!(message.target(), Some(&**n));
        }
        if stateless && message.kind() == MessageKind::Request {
            let method = message.method().expect("a request has a method");
            if method != "initialize" {
                assert!(
                    header_method.is_some(),
                    "2026-07-28 request without Mcp-Method"
                );
            }
            if name_required(method) && message.target().is_some() {
                assert!(
                    header_name.is_some(),
                    "2026-07-28 {method} without Mcp-Name"
                );
            }
        }
    }
});
