//! `ToolGuardLayer`'s result guard on a 16 KiB `tools/call` result (a text block of prose with
//! ids, numbers and a UUID), as JSON: passing it through with the guard off, scanned in
//! `redact` mode with no credential in it, and with one AWS access key id in the middle
//! (redacted, and blocked). Plus the scanner alone on the same text.
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
use mcp_core::McpCall;
use mcp_core::credential::SecretScanner;
use mcp_core::jsonrpc::parse_envelope;
use mcp_security::guard::{ResultGuardMode, ToolGuardLayer};
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

criterion_group!(benches, bench);
criterion_main!(benches);
