//! `ToolGuardLayer`'s result guard on a 16 KiB `tools/call` result (a text block of prose with
//! ids, numbers and a UUID), as JSON: passing it through with the guard off, scanned in
//! `redact` mode with no credential in it, and with one AWS access key id in the middle
//! (redacted, and blocked). Plus the scanner alone on the same text, and argument validation:
//! a `tools/call` whose 5 arguments are checked against the tool's schema (learned from a
//! `tools/list` answer first), next to the same call with validation off.
//!
//! Each iteration is one request through the service and the whole response body collected.
//!
//! Run: `cargo bench -p benches --bench result_guard`
use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_security::guard::{ResultGuardMode, ToolGuardLayer};
use mcp_security_core::McpCall;
use mcp_security_core::credential::SecretScanner;
use mcp_security_core::jsonrpc::parse_envelope;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};

const SIZE: usize = 16 * 1024;

/// About 16 KiB of tool output; with `leak`, an AWS key id in the middle.
fn text(leak: bool) -> String {
    let line = "Order 48213 shipped to warehouse B-7 on 2026-12-01, tracking id \
                550e8400-e29b-41d4-a716-446655440000, weight 12.5 kg, status: delivered.\n";
    let mut t = String::with_capacity(SIZE + line.len());
    while t.len() < SIZE {
        if leak && t.len() >= SIZE / 2 && !t.contains("AKIA") {
            t.push_str("config: aws_access_key_id=AKIAIOSFODNN7EXAMPLE\n");
        }
        t.push_str(line);
    }
    t
}

fn result(leak: bool) -> Bytes {
    Bytes::from(
        json!({"jsonrpc": "2.0", "id": 1, "result": {
            "content": [{"type": "text", "text": text(leak)}], "isError": false}})
        .to_string(),
    )
}

fn request(call: &McpCall) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    req.extensions_mut().insert(call.clone());
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let call = parse_envelope(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"orders"}}"#,
    )
    .expect("call");
    let mut group = c.benchmark_group("result_guard_tools_call_16k");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for (label, mode, leak) in [
        ("off (pass-through)", ResultGuardMode::Off, false),
        ("redact, no secret", ResultGuardMode::Redact, false),
        ("redact, one AWS key", ResultGuardMode::Redact, true),
        ("block, one AWS key", ResultGuardMode::Block, true),
    ] {
        let body = result(leak);
        let server = tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let body = body.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .expect("response"),
                )
            }
        });
        let layer = ToolGuardLayer::builder()
            .result_guard(mode)
            .build()
            .expect("layer");
        let svc = ServiceBuilder::new().layer(layer).service(server);
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut svc = svc.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    let res = svc.call(request(&call)).await.expect("call");
                    black_box(res.into_body().collect().await.expect("body").to_bytes())
                })
            })
        });
    }
    let scanner = SecretScanner::default();
    let clean = text(false);
    group.bench_function("SecretScanner::find alone, no secret", |b| {
        b.iter(|| black_box(scanner.find(black_box(&clean))))
    });
    group.finish();
}

const SCHEMA_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"create_order","inputSchema":{"type":"object","properties":{"customer":{"type":"string","minLength":1,"maxLength":100},"sku":{"type":"string","pattern":"^[A-Z]{3}-[0-9]{4}$"},"quantity":{"type":"integer","minimum":1,"maximum":1000},"express":{"type":"boolean"},"notes":{"type":"string","maxLength":500}},"required":["customer","sku","quantity"],"additionalProperties":false}}]}}"#;

fn validation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let list = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).expect("list");
    let call = parse_envelope(
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_order","arguments":{"customer":"Ada Lovelace","sku":"ABC-1234","quantity":3,"express":true,"notes":"leave at the door"}}}"#,
    )
    .expect("call");
    let server = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let body = if req.extensions().get::<McpCall>().and_then(McpCall::method)
            == Some("tools/list")
        {
            SCHEMA_LIST
        } else {
            r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#
        };
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .expect("response"),
        )
    });
    let mut group = c.benchmark_group("tool_args_5_fields");
    for (label, on) in [("validation off", false), ("validated (jsonschema)", true)] {
        let layer = ToolGuardLayer::builder()
            .validate_arguments(on)
            .build()
            .expect("layer");
        let svc = ServiceBuilder::new().layer(layer).service(server);
        rt.block_on(async {
            let mut s = svc.clone();
            let res = s
                .ready()
                .await
                .expect("ready")
                .call(request(&list))
                .await
                .expect("list");
            black_box(res.into_body().collect().await.expect("body"));
        });
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut svc = svc.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    let res = svc.call(request(&call)).await.expect("call");
                    black_box(res.into_body().collect().await.expect("body").to_bytes())
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, validation);
criterion_main!(benches);
