//! `ListFilterLayer` on a 50-tool `tools/list` (about 20 KiB; 25 tools need a scope the caller
//! lacks), as JSON and as one SSE event after a progress notification, next to passing the same
//! response through unfiltered, and next to the naive filter (parse the body into a
//! `serde_json::Value`, drop entries, serialize it again; JSON only).
//!
//! Each iteration is one request through the service and the whole response body collected.
//!
//! Run: `cargo bench -p benches --bench list_filter`
use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_auth::list_filter::ListFilterLayer;
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{McpCall, Principal, PrincipalKind};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};

const TOOLS: usize = 50;

fn tools_list() -> String {
    let tools: Vec<Value> = (0..TOOLS)
        .map(|i| {
            json!({
                "name": format!("tool_{i}"),
                "title": format!("Tool number {i}"),
                "description": "Does one useful thing to a note, with a description long enough to be realistic.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "The note's name."},
                        "content": {"type": "string", "description": "The note's content."},
                        "tags": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["name"]
                },
                "annotations": {"readOnlyHint": i % 2 == 0}
            })
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "page-2"}})
        .to_string()
}

fn policy() -> AuthPolicy {
    let mut b = AuthPolicy::builder();
    for i in (1..TOOLS).step_by(2) {
        b = b.require_mcp(&format!("tools/call:tool_{i}"), ["admin"]);
    }
    b.build().expect("policy")
}

fn request(call: &McpCall, who: &Principal) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    req.extensions_mut().insert(call.clone());
    req.extensions_mut().insert(who.clone());
    req
}

fn answer(body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(body))
        .expect("response")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let json_body = Bytes::from(tools_list());
    let sse_body = Bytes::from(format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":1}}}}\n\nevent: message\ndata: {}\n\n",
        tools_list()
    ));
    let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).expect("call");
    let reader = Principal::builder("reader", PrincipalKind::ApiKey)
        .scopes(["notes:read"])
        .build();
    let layer = ListFilterLayer::new(policy());

    for (label, body, content_type) in [
        ("json", json_body.clone(), "application/json"),
        ("sse", sse_body, "text/event-stream"),
    ] {
        let mut group = c.benchmark_group(format!("list_filter_tools_list_50_{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        let b1 = body.clone();
        let bare = tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let body = b1.clone();
            async move { Ok::<_, Infallible>(answer(body, content_type)) }
        });
        let filtered = ServiceBuilder::new()
            .layer(layer.clone())
            .service(bare.clone());
        group.bench_function("pass-through (no filter)", |b| {
            b.iter(|| {
                let mut svc = bare.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    let res = svc.call(request(&call, &reader)).await.expect("call");
                    black_box(res.into_body().collect().await.expect("body").to_bytes())
                })
            })
        });
        group.bench_function("mcp_auth::ListFilterLayer", |b| {
            b.iter(|| {
                let mut svc = filtered.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    let res = svc.call(request(&call, &reader)).await.expect("call");
                    black_box(res.into_body().collect().await.expect("body").to_bytes())
                })
            })
        });
        if label == "json" {
            let p = policy();
            let naive = ServiceBuilder::new()
                .map_response(move |res: Response<Full<Bytes>>| res)
                .service(bare.clone());
            group.bench_function("serde_json::Value filter", |b| {
                b.iter(|| {
                    let mut svc = naive.clone();
                    rt.block_on(async {
                        let svc = svc.ready().await.expect("ready");
                        let res = svc.call(request(&call, &reader)).await.expect("call");
                        let bytes = res.into_body().collect().await.expect("body").to_bytes();
                        let mut v: Value = serde_json::from_slice(&bytes).expect("json");
                        if let Some(Value::Array(tools)) = v["result"].get_mut("tools") {
                            tools.retain(|t| {
                                t["name"]
                                    .as_str()
                                    .is_some_and(|n| p.permits(Some(&reader), "tools/call", n))
                            });
                        }
                        black_box(Bytes::from(serde_json::to_vec(&v).expect("json")))
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
