//! Fuzz the JSON-RPC envelope parser of `McpInspectLayer`.
//!
//! Invariants: it never panics or overflows the stack, on any bytes; and whenever both it and
//! serde_json's own `Value` parser accept a body, they agree on every message's `method`, id,
//! `params.name`, `params.uri`, `params.taskId` and `params._meta` protocol version (no parser
//! differential between what we police and what the server runs); and `params.arguments`, when
//! recorded, is a slice of the input that parses to the very value serde_json reads there
//! (absent there means absent here; a repeated member is recorded as absent, not guessed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_security_core::jsonrpc::{JsonRpcId, parse_envelope};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(call) = parse_envelope(data) else {
        return;
    };
    assert!(!call.messages().is_empty());
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        // Deeply nested arguments are skipped by us but refused by `Value`'s recursion limit.
        return;
    };
    let objects: Vec<&Value> = match &value {
        Value::Array(items) => {
            assert!(call.is_batch());
            items.iter().collect()
        }
        other => {
            assert!(!call.is_batch());
            vec![other]
        }
    };
    assert_eq!(objects.len(), call.messages().len());
    for (message, object) in call.messages().iter().zip(objects) {
        assert_eq!(object["jsonrpc"], "2.0");
        assert_eq!(message.method(), object.get("method").and_then(Value::as_str));
        let id = object.get("id").map(|id| match id {
            Value::String(s) => JsonRpcId::String(s.as_str().into()),
            Value::Number(n) => JsonRpcId::Number(n.clone()),
            _ => JsonRpcId::Null,
        });
        assert_eq!(message.id(), id.as_ref());
        let param = |key: &str| {
            object
                .get("params")
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
        };
        assert_eq!(message.param_name(), param("name"));
        assert_eq!(message.param_uri(), param("uri"));
        assert_eq!(message.param_task_id(), param("taskId"));
        let meta_version = object
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
            .and_then(Value::as_str);
        assert_eq!(message.meta_protocol_version(), meta_version);
        let arguments = object.get("params").and_then(|p| p.get("arguments"));
        match message.param_arguments() {
            Some(text) => {
                // A range of the body the message keeps (the input, copied once).
                let body = message.body();
                assert_eq!(&body[..], data);
                let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
                assert!(start <= body.len() && text.len() <= body.len() - start);
                let parsed: Value = serde_json::from_str(text).expect("arguments parse alone");
                assert_eq!(Some(&parsed), arguments);
            }
            // Absent, or repeated (serde_json keeps the last copy; we record none).
            None => assert!(arguments.is_none() || object["params"].is_object()),
        }
    }
});
