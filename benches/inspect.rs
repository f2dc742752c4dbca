//! `McpInspectLayer` against the hand-assembled peer doing the same job: tower-http's
//! `RequestBodyLimitLayer` bounding the body and `serde_json::Value` parsing it to find the
//! method and tool, then forwarding the bytes.
//!
//! Run: `cargo bench -p benches --bench inspect`
use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_security_core::McpCall;
use mcp_security_core::inspect::{InspectBody, McpInspectLayer};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::limit::RequestBodyLimitLayer;

const LIMIT: usize = 1024 * 1024;

/// A `tools/call` whose body is about `size` bytes: realistic arguments (a text field and a list
/// of small records) padded to size.
fn tools_call(size: usize) -> Bytes {
    let mut records = Vec::new();
    let mut body = Value::Null;
    for i in 0.. {
        body = json!({
            "jsonrpc": "2.0",
            "id": 42,
            "method": "tools/call",
            "params": {
                "name": "write_note",
                "arguments": { "name": "todo", "content": "buy milk", "tags": records },
                "_meta": { "progressToken": "p-1" }
            }
        });
        if body.to_string().len() >= size {
            break;
        }
        records = match body["params"]["arguments"]["tags"].take() {
            Value::Array(mut a) => {
                a.push(json!({"id": i, "label": "item", "done": i % 2 == 0, "score": 0.5}));
                a
            }
            _ => Vec::new(),
        };
    }
    Bytes::from(body.to_string())
}

fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .expect("request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let ours = ServiceBuilder::new()
        .layer(
            McpInspectLayer::builder()
                .max_body_bytes(LIMIT)
                .build()
                .expect("layer"),
        )
        .service_fn(|req: Request<InspectBody<Full<Bytes>>>| async move {
            let tool = req
                .extensions()
                .get::<McpCall>()
                .and_then(|c| c.tool())
                .map(str::len);
            black_box(tool);
            let bytes = req.into_body().collect().await.expect("body").to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(bytes)))
        });

    let peer = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(LIMIT))
        .service_fn(
            |req: Request<tower_http::body::Limited<Full<Bytes>>>| async move {
                let bytes = req.into_body().collect().await.expect("body").to_bytes();
                let value: Value = serde_json::from_slice(&bytes).expect("json");
                let tool = (value["method"] == "tools/call")
                    .then(|| value["params"]["name"].as_str().map(str::len))
                    .flatten();
                black_box(tool);
                Ok::<_, Infallible>(Response::new(Full::new(bytes)))
            },
        );

    for (label, size) in [("200B", 200), ("64KiB", 64 * 1024)] {
        let body = tools_call(size);
        let mut group = c.benchmark_group(format!("inspect_tools_call_{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("mcp_security_core::McpInspectLayer", |b| {
            b.iter(|| {
                let mut svc = ours.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(&body)).await.expect("call"))
                })
            })
        });
        group.bench_function("tower_http::limit+serde_json::Value", |b| {
            b.iter(|| {
                let mut svc = peer;
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(&body)).await.expect("call"))
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
