//! Fuzz the result guard: `ToolGuardLayer` (redact and block) over
//! `mcp_security_core::response::RewriteBody`, JSON and SSE, with the body cut into frames at
//! fuzzer-chosen sizes, and the secret scanner on its own.
//!
//! Input: byte 0 picks the framing (bit 0: SSE, else JSON) and the mode (bit 1: block, else
//! redact); byte 1 is the frame size (1..=256); the rest is the body the server sends,
//! answering `tools/call` with id 1.
//!
//! Invariants: no panic and no hang on any bytes, in any framing; the scanner's matches are in
//! order, on character boundaries and never overlap; and the first answer with id 1 the client
//! gets carries no string in which the scanner still finds a credential (it was redacted,
//! blocked, or the answer failed closed); in block mode, an answer that had one is an error.
#![no_main]

use http::Request;
use libfuzzer_sys::fuzz_target;
use mcp_security_core::credential::SecretScanner;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_guard::{ResultGuardMode, ToolGuardLayer};
use serde_json::Value;
use tower_layer::Layer;

#[path = "support/rewrite.rs"]
mod support;

use support::{Server, drive, first_answer};

/// Every string and key in `v` is free of credentials.
fn clean(scanner: &SecretScanner, v: &Value) -> bool {
    match v {
        Value::String(s) => !scanner.contains(s),
        Value::Array(items) => items.iter().all(|i| clean(scanner, i)),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !scanner.contains(k) && clean(scanner, v)),
        _ => true,
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, size, body @ ..] = input else {
        return;
    };
    let sse = flags & 1 == 1;
    let block = flags & 2 == 2;
    let scanner = SecretScanner::default();
    if let Ok(text) = std::str::from_utf8(body) {
        let mut last = 0;
        for m in scanner.find(text) {
            assert!(m.range.start >= last && m.range.start < m.range.end);
            assert!(text.is_char_boundary(m.range.start) && text.is_char_boundary(m.range.end));
            last = m.range.end;
        }
        let _ = scanner.redact(text, "[redacted]");
    }
    let layer = ToolGuardLayer::builder()
        .result_guard(if block {
            ResultGuardMode::Block
        } else {
            ResultGuardMode::Redact
        })
        .max_result_bytes(4096)
        .build()
        .expect("layer");
    let mut svc = layer.layer(Server::new(body, *size, sse));
    let mut req = Request::new(());
    *req.method_mut() = http::Method::POST;
    req.extensions_mut().insert(
        parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"env"}}"#,
        )
        .expect("call"),
    );
    let out = drive(&mut svc, req, input.len());
    if let Some(answer) = first_answer(&out, sse) {
        for member in ["result", "error"] {
            if let Some(v) = answer.get(member) {
                assert!(
                    clean(&scanner, v),
                    "a credential reached the client: {answer}"
                );
            }
        }
        if block && layer.stats().answers_blocked > 0 {
            assert!(
                answer.get("result").is_none(),
                "blocked yet answered: {answer}"
            );
        }
    }
});
