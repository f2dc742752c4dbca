//! Fuzz the response side: `ListFilterLayer` over `mcp_security_core::response::RewriteBody`, JSON and
//! SSE, with the body cut into frames at fuzzer-chosen sizes.
//!
//! Input: byte 0 picks the framing (bit 0: SSE, else JSON) and the era (bit 1: 2026-07-28);
//! byte 1 is the frame size (1..=256); the rest is the body the server sends, answering
//! `tools/list` with id 1.
//!
//! Invariants: no panic and no hang on any bytes, in any framing; and the first response with
//! id 1 the client gets never lists `secret_tool`, which the caller may not call: it is either
//! filtered or replaced by a JSON-RPC error (fail closed).
#![no_main]

use http::Request;
use libfuzzer_sys::fuzz_target;
use mcp_auth::list_filter::ListFilterLayer;
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{Principal, PrincipalKind};
use tower_layer::Layer;

#[path = "support/rewrite.rs"]
mod support;

use support::{Server, drive, first_answer};

fuzz_target!(|input: &[u8]| {
    let [flags, size, body @ ..] = input else {
        return;
    };
    let sse = flags & 1 == 1;
    let era_2026 = flags & 2 == 2;
    let policy = AuthPolicy::builder()
        .require_mcp("tools/call:secret_tool", ["admin"])
        .build()
        .expect("policy");
    let layer = ListFilterLayer::builder(policy)
        .max_list_bytes(4096)
        .build()
        .expect("layer");
    let mut svc = layer.layer(Server::new(body, *size, sse));
    let mut req = Request::new(());
    *req.method_mut() = http::Method::POST;
    if era_2026 {
        req.headers_mut().insert(
            "mcp-protocol-version",
            http::HeaderValue::from_static("2026-07-28"),
        );
    }
    req.extensions_mut().insert(
        parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).expect("call"),
    );
    req.extensions_mut().insert(
        Principal::builder("reader", PrincipalKind::ApiKey)
            .scopes(["notes:read"])
            .build(),
    );
    let out = drive(&mut svc, req, input.len());
    if let Some(answer) = first_answer(&out, sse)
        && let Some(tools) = answer["result"]["tools"].as_array()
    {
        assert!(
            tools.iter().all(|t| t["name"] != "secret_tool"),
            "a hidden tool was listed: {answer}"
        );
    }
});
