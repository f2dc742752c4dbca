//! What `AuditLayer` adds to one request, and how fast the tamper-evident file sink writes.
//!
//! `audit_overhead`: a full `tower` call (poll_ready + call + the response future) through an
//! inner service that answers 200 with the outcomes an auth and a rate-limit layer would leave
//! (so the audit layer has a principal, a fingerprint source and a policy to record), bare, and
//! behind `AuditLayer` with the JSON-lines file sink (HMAC chain on, `block` policy) — the
//! request path only queues the record; serialization, MAC and write happen on the writer
//! thread, which is running during the measurement. Under this saturating loop the writer is the
//! bottleneck and `block` makes each request wait for it (backpressure, by design); the same sink
//! with the `drop` policy shows the request path's own cost (records beyond the queue are
//! dropped and counted). A fourth variant uses the `tracing` sink with no subscriber installed
//! (the cost of building the record, metrics and detectors alone).
//!
//! `audit_file_sink`: records per second through the file sink end to end (queue, serialize,
//! MAC, write, the head file after every batch; `flush` waits for the writer), 10 000 records
//! per iteration; and the same with an Ed25519 signing key (a SHA-256 of every line, for the
//! signed checkpoints).
//!
//! `audit_tool_call_evidence`: a `tools/call` answered with a ~150-byte result (the `McpCall`
//! in the response, as the inspect layer leaves it), the body read to its end, through the
//! audit layer with a sink that discards, tool-call evidence off and on (HMAC of the
//! arguments, a copy of the JSON body, one parse, HMAC of the result, the completion record);
//! and the same answered as an event stream with a notification before the answer.
//!
//! Run: `cargo bench -p benches --bench audit`
use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_security_audit::chain::AuditKey;
use mcp_security_audit::file::{FileSink, OverflowPolicy};
use mcp_security_audit::signing::SigningKey;
use mcp_security_audit::{AuditEvent, AuditLayer, AuditSink, MemorySink, Submit};
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::jsonrpc::{McpCall, parse_envelope};
use mcp_security_core::{AuthOutcome, Principal, PrincipalKind, RateLimitOutcome};
use tower::{Service, ServiceBuilder, ServiceExt};

const KEY: &[u8] = b"bench-audit-key-0123456789abcdef0123456789";
const API_KEY: &str = "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
const RECORDS: usize = 10_000;

/// The inner service: a 200 with an auth and a rate-limit outcome in its extensions.
fn inner()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone {
    let principal = Principal::builder("ci-bot", PrincipalKind::ApiKey)
        .scopes(["notes:read"])
        .build();
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let principal = principal.clone();
        async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
            res.extensions_mut()
                .insert(AuthOutcome::Authenticated { principal });
            res.extensions_mut().insert(RateLimitOutcome::Allowed {
                policy: "ip".into(),
                remaining: 99,
                overflow: false,
            });
            Ok::<_, Infallible>(res)
        }
    })
}

const CALL: &[u8] =
    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi, this is the echo tool answering the call"}],"isError":false}}"#;
const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";

/// A sink that discards: the cost of the layer alone.
struct Discard;

impl AuditSink for Discard {
    fn submit(&self, _event: &Arc<AuditEvent>) -> Submit {
        Submit::Done
    }
}

/// The inner service of the evidence rows: a `tools/call` answer, JSON or SSE, with the
/// request's `McpCall` in the response.
fn answering(
    sse: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    let call: McpCall = parse_envelope(CALL).expect("envelope");
    let (content_type, body) = if sse {
        (
            "text/event-stream",
            Bytes::from(format!("{PROGRESS}event: message\ndata: {ANSWER}\n\n")),
        )
    } else {
        ("application/json", Bytes::from_static(ANSWER.as_bytes()))
    };
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(Full::new(body.clone()));
        res.headers_mut()
            .insert("content-type", http::HeaderValue::from_static(content_type));
        res.extensions_mut().insert(call.clone());
        async move { Ok::<_, Infallible>(res) }
    })
}

fn request() -> Request<Full<Bytes>> {
    Request::post("/mcp?session=abc")
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("user-agent", "bench-client/1.0")
        .header("content-type", "application/json")
        .header("content-length", "97")
        .extension(PeerAddr(SocketAddr::from(([203, 0, 113, 9], 50_000))))
        .body(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
        )))
        .expect("request")
}

/// A fresh directory, and a thread that deletes rotated files while a benchmark runs so the disk
/// does not fill up.
struct Scratch {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-audit-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                remove_rotated(&d);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Scratch { dir, stop }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }
}

fn remove_rotated(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("audit-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_sink(path: &Path, overflow: OverflowPolicy) -> FileSink {
    FileSink::builder(path, AuditKey::from_bytes(KEY).expect("key"))
        .max_file_bytes(16 * 1024 * 1024)
        .overflow(overflow)
        .build()
        .expect("file sink")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let scratch = Scratch::new("overhead");
    let sink = file_sink(&scratch.file(), OverflowPolicy::Block);
    let with_file = AuditLayer::builder()
        .file_sink(sink.clone())
        .tracing(false)
        .build()
        .expect("layer");
    let drop_scratch = Scratch::new("overhead-drop");
    let with_dropping_file = AuditLayer::builder()
        .file_sink(file_sink(&drop_scratch.file(), OverflowPolicy::Drop))
        .tracing(false)
        .build()
        .expect("layer");
    let with_tracing = AuditLayer::builder().tracing(true).build().expect("layer");
    let bare = ServiceBuilder::new().service(inner());
    let file_svc = ServiceBuilder::new()
        .layer(with_file.clone())
        .service(inner());
    let tracing_svc = ServiceBuilder::new().layer(with_tracing).service(inner());
    let dropping_svc = ServiceBuilder::new()
        .layer(with_dropping_file.clone())
        .service(inner());

    let mut group = c.benchmark_group("audit_overhead");
    group.bench_function("no audit layer", |b| {
        b.iter(|| {
            let mut svc = bare.clone();
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request()).await.expect("call"))
            })
        })
    });
    group.bench_function("AuditLayer + FileSink (HMAC chain, block)", |b| {
        b.iter(|| {
            let mut svc = file_svc.clone();
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request()).await.expect("call"))
            })
        })
    });
    group.bench_function("AuditLayer + FileSink (HMAC chain, drop)", |b| {
        b.iter(|| {
            let mut svc = dropping_svc.clone();
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request()).await.expect("call"))
            })
        })
    });
    group.bench_function("AuditLayer + TracingSink (no subscriber)", |b| {
        b.iter(|| {
            let mut svc = tracing_svc.clone();
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request()).await.expect("call"))
            })
        })
    });
    group.finish();
    rt.block_on(with_file.close()).expect("close");
    assert_eq!(sink.dropped(), 0, "block mode drops nothing");
    rt.block_on(with_dropping_file.close()).expect("close");
    eprintln!(
        "drop policy: {} records dropped during the benchmark",
        with_dropping_file.dropped()
    );
    drop(scratch);
    drop(drop_scratch);

    let evidence = |on: bool| {
        AuditLayer::builder()
            .sink(Discard)
            .tool_call_evidence(on.then(|| AuditKey::from_bytes(KEY).expect("key")))
            .detect_floods(None)
            .build()
            .expect("layer")
    };
    let mut group = c.benchmark_group("audit_tool_call_evidence");
    for (name, sse, on) in [
        ("tools/call JSON, evidence off", false, false),
        ("tools/call JSON, evidence on", false, true),
        (
            "tools/call SSE (progress + answer), evidence off",
            true,
            false,
        ),
        (
            "tools/call SSE (progress + answer), evidence on",
            true,
            true,
        ),
    ] {
        let svc = ServiceBuilder::new()
            .layer(evidence(on))
            .service(answering(sse));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut svc = svc.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    let res = svc.call(request()).await.expect("call");
                    black_box(res.into_body().collect().await.expect("body").to_bytes())
                })
            })
        });
    }
    group.finish();

    // Real records, collected once through the layer.
    let memory = MemorySink::new();
    let collect = ServiceBuilder::new()
        .layer(
            AuditLayer::builder()
                .sink(memory.clone())
                .detect_floods(None)
                .build()
                .expect("layer"),
        )
        .service(inner());
    rt.block_on(async {
        for _ in 0..RECORDS {
            collect.clone().oneshot(request()).await.expect("call");
        }
    });
    let events: Vec<Arc<AuditEvent>> = memory.take();
    assert_eq!(events.len(), RECORDS);

    let scratch = Scratch::new("throughput");
    let sink = file_sink(&scratch.file(), OverflowPolicy::Block);
    let mut group = c.benchmark_group("audit_file_sink");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    group.bench_function("FileSink block: queue + serialize + HMAC + write", |b| {
        b.iter(|| {
            rt.block_on(async {
                for e in &events {
                    if let Submit::Wait(w) = sink.submit(e) {
                        w.await;
                    }
                }
                sink.flush().await.expect("flush");
            })
        })
    });
    // The same with Ed25519-signed checkpoints: a SHA-256 of every line on the writer thread
    // (the signature itself is made once per checkpoint).
    let signed_scratch = Scratch::new("throughput-signed");
    let signed = FileSink::builder(
        signed_scratch.file(),
        AuditKey::from_bytes(KEY).expect("key"),
    )
    .max_file_bytes(16 * 1024 * 1024)
    .signing_key(SigningKey::generate().expect("signing key"))
    .build()
    .expect("file sink");
    group.bench_function(
        "FileSink block, signed checkpoints: + SHA-256 per line",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    for e in &events {
                        if let Submit::Wait(w) = signed.submit(e) {
                            w.await;
                        }
                    }
                    signed.flush().await.expect("flush");
                })
            })
        },
    );
    group.finish();
    rt.block_on(sink.close()).expect("close");
    rt.block_on(signed.close()).expect("close");
    drop(scratch);
    drop(signed_scratch);
}

criterion_group!(benches, bench);
criterion_main!(benches);
