//! `RateLimitLayer` with a `RedisStore` over loopback, against a redis-server this bench starts
//! (and stops) itself on a free port.
//!
//! One decision per iteration, one request in flight (so the time is a round trip plus the
//! layer), except the `64_in_flight` case (64 tasks on a two-thread runtime sharing one layer):
//!
//! - `admitted/*`: a quota no request reaches — every decision is a round trip (the deny cache
//!   never has anything to say);
//! - `refused/*/deny_cache` vs `refused/*/no_cache`: a quota of 1 per hour, so after the first
//!   request per key everything is refused — with the local deny cache, without a round trip;
//! - `1key` vs `10k_keys` (visited round-robin);
//! - `admitted/1key/tls`: `admitted/1key` over TLS (`rediss://`, a CA file, certificates made
//!   by `openssl` at start) with an ACL user — the managed-Redis setup — next to plain TCP;
//! - `admitted/*/cluster`: the same on a three-node Redis Cluster this bench starts (the cluster
//!   client, each caller's key on its slot's node; `10k_keys` spreads over all three).
//!
//! - `budget/day/1principal` vs `budget/day/1principal/memory`: an authenticated `tools/call`
//!   (a `Principal` and an `McpCall` in the extensions, as after authentication) charged to a
//!   day budget with weights, alone on the per-caller layer: in Redis (one script call with the
//!   cost as the weight) next to the same layer counting in memory.
//!
//! - `peer/fixed_window/*`: the baseline most hand-rolled Redis limiters are — a fixed window
//!   counted with one `MULTI INCR PEXPIRE EXEC` pipeline per request through the same
//!   `ConnectionManager` type, then the inner service (no headers, no deny cache, and the
//!   window-boundary burst of 2× the limit that GCRA does not have).
//!
//! After each case it prints the round trips per decision, measured from Redis's
//! `INFO commandstats` (`evalsha` + `eval` calls) over the decisions the case made.
//!
//! Run: `cargo bench -p benches --bench ratelimit_redis -- --warm-up-time 1 --measurement-time 3`
//! (needs `redis-server` and `redis-cli`: `apt-get install redis-server`).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use mcp_ratelimit::redis::{RedisBackend, RedisStore};
use mcp_ratelimit::{Budget, KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::{Principal, PrincipalKind};
use tower::{Layer, Service, ServiceExt};

// The redis-server the mcp-ratelimit tests start and stop, shared rather than copied.
#[path = "../crates/mcp-ratelimit/tests/redis_support/mod.rs"]
mod redis_support;
use redis_support::{Options, Pki, RedisCluster, RedisServer};

type Body = Full<Bytes>;

fn layer(
    server: &RedisServer,
    prefix: &str,
    quota: Quota,
    deny_cache: usize,
) -> RateLimitLayer<RedisBackend> {
    layer_with(RedisStore::builder(server.url()), prefix, quota, deny_cache)
}

fn layer_with(
    store: mcp_ratelimit::redis::RedisStoreBuilder,
    prefix: &str,
    quota: Quota,
    deny_cache: usize,
) -> RateLimitLayer<RedisBackend> {
    let store = store
        .prefix(prefix)
        .deny_cache(deny_cache)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("store");
    RateLimitLayer::builder()
        .limit(Limit::new("ip", quota, KeySelector::client_addr()))
        .redis(store)
        .build()
        .expect("layer")
}

fn request(i: u32) -> Request<Body> {
    let mut req = Request::get("/api").body(Body::default()).expect("request");
    let ip = Ipv4Addr::from(0x0A00_0000 + i);
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from((ip, 40000))));
    req
}

/// Send `reqs` through `svc` one after another, each answer's status read.
async fn serve_all<S, B>(svc: &mut S, reqs: impl IntoIterator<Item = Request<Body>>)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    for req in reqs {
        let res = svc
            .ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("infallible");
        std::hint::black_box(res.status());
    }
}

fn inner()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::new(Bytes::from_static(b"ok"))))
    })
}

fn bench(c: &mut Criterion) {
    let server = RedisServer::start();
    // One request in flight: a current-thread runtime (no cross-thread wake-ups per round trip).
    let rt1 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("ratelimit_redis");
    let open = Quota::per_second(1_000_000_000);
    let shut = Quota::per_hour(1);
    // The managed-Redis setup: TLS with a CA file and an ACL user (`default` off).
    let pki = Pki::new();
    let tls_server = RedisServer::start_with(Options {
        tls: Some(pki.server("server", false)),
        acl_user: Some(("bench".to_owned(), "bench-password-0123456789".to_owned())),
        ..Options::default()
    });
    let tls_store = || {
        RedisStore::builder(tls_server.tls_url())
            .ca_file(pki.path("ca.crt"))
            .username("bench")
            .password("bench-password-0123456789")
    };
    let redis_cluster = RedisCluster::start();
    let cases: [(&str, Quota, u32, usize); 9] = [
        ("admitted/1key", open, 1, 10_000),
        ("admitted/10k_keys", open, 10_000, 10_000),
        ("refused/1key/deny_cache", shut, 1, 10_000),
        ("refused/1key/no_cache", shut, 1, 0),
        ("refused/10k_keys/deny_cache", shut, 10_000, 20_000),
        ("refused/10k_keys/no_cache", shut, 10_000, 0),
        ("admitted/1key/tls", open, 1, 10_000),
        ("admitted/1key/cluster", open, 1, 10_000),
        ("admitted/10k_keys/cluster", open, 10_000, 10_000),
    ];
    let mut report = Vec::new();
    for (n, (name, quota, keys, cache)) in cases.into_iter().enumerate() {
        let tls = name.ends_with("/tls");
        let cluster = name.ends_with("/cluster");
        let server = if tls { &tls_server } else { &server };
        let script_calls = || {
            if cluster {
                redis_cluster.script_calls()
            } else {
                server.script_calls()
            }
        };
        let svc = if tls {
            layer_with(tls_store(), &format!("b{n}:"), quota, cache).layer(inner())
        } else if cluster {
            let store = RedisStore::builder(redis_cluster.url()).cluster(true);
            layer_with(store, &format!("b{n}:"), quota, cache).layer(inner())
        } else {
            layer(server, &format!("b{n}:"), quota, cache).layer(inner())
        };
        let decisions = Arc::new(AtomicU64::new(0));
        let calls_before = script_calls();
        let mut next = 0u32;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut svc = svc.clone();
                let decisions = Arc::clone(&decisions);
                let start_key = next;
                next = next.wrapping_add(iters as u32);
                rt1.block_on(async move {
                    let start = Instant::now();
                    let clients = (0..iters).map(|i| start_key.wrapping_add(i as u32) % keys);
                    serve_all(&mut svc, clients.map(request)).await;
                    decisions.fetch_add(iters, Ordering::Relaxed);
                    start.elapsed()
                })
            });
        });
        let d = decisions.load(Ordering::Relaxed).max(1);
        let calls = script_calls().saturating_sub(calls_before);
        report.push(format!(
            "{name}: {d} decisions, {calls} script calls, {:.4} round trips per decision",
            calls as f64 / d as f64
        ));
    }
    // A budget decision in Redis next to the same in memory (10¹² units a day: never refused).
    let principal = Principal::builder("alice", PrincipalKind::ApiKey).build();
    let call_msg = mcp_security_core::jsonrpc::parse_envelope(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
    )
    .expect("envelope");
    let budget_request = || {
        let mut req = request(0);
        req.extensions_mut().insert(principal.clone());
        req.extensions_mut().insert(call_msg.clone());
        req
    };
    for (name, redis) in [
        ("budget/day/1principal", true),
        ("budget/day/1principal/memory", false),
    ] {
        let store = redis.then(|| {
            RedisStore::builder(server.url())
                .prefix("b_budget:")
                .timeout(Duration::from_secs(1))
                .build()
                .expect("store")
        });
        let svc = RateLimitLayer::builder()
            .budget(
                Budget::per_day("daily", 1_000_000_000_000).weight("tools/call:delete_note", 10),
            )
            .maybe_redis(store)
            .build()
            .expect("layer")
            .layer(inner());
        let first = rt1
            .block_on(svc.clone().oneshot(budget_request()))
            .expect("infallible");
        assert_eq!(first.status(), http::StatusCode::OK);
        assert!(first.headers().contains_key("ratelimit"));
        let decisions = Arc::new(AtomicU64::new(0));
        let calls_before = server.script_calls();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut svc = svc.clone();
                let decisions = Arc::clone(&decisions);
                let reqs: Vec<_> = (0..iters).map(|_| budget_request()).collect();
                rt1.block_on(async move {
                    let start = Instant::now();
                    serve_all(&mut svc, reqs).await;
                    decisions.fetch_add(iters, Ordering::Relaxed);
                    start.elapsed()
                })
            });
        });
        let d = decisions.load(Ordering::Relaxed).max(1);
        let calls = server.script_calls().saturating_sub(calls_before);
        report.push(format!(
            "{name}: {d} decisions, {calls} script calls, {:.4} round trips per decision",
            calls as f64 / d as f64
        ));
    }

    // The peer: a hand-rolled fixed window, one INCR + PEXPIRE transaction per request.
    let client = redis::Client::open(server.url()).expect("url");
    let conn = rt1
        .block_on(redis::aio::ConnectionManager::new(client))
        .expect("connection");
    for (name, limit, keys) in [
        ("peer/fixed_window/admitted/1key", u64::MAX, 1u32),
        ("peer/fixed_window/admitted/10k_keys", u64::MAX, 10_000),
        ("peer/fixed_window/refused/1key", 1, 1),
    ] {
        let svc = inner();
        let mut next = 0u32;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut conn = conn.clone();
                let mut svc = svc.clone();
                let start_key = next;
                next = next.wrapping_add(iters as u32);
                rt1.block_on(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let key = format!(
                            "peer:{name}:{}",
                            Ipv4Addr::from(0x0A00_0000 + (start_key.wrapping_add(i as u32)) % keys)
                        );
                        let (count,): (u64,) = redis::pipe()
                            .atomic()
                            .incr(&key, 1u64)
                            .pexpire(&key, 60_000)
                            .ignore()
                            .query_async(&mut conn)
                            .await
                            .expect("redis");
                        let status = if count > limit {
                            http::StatusCode::TOO_MANY_REQUESTS
                        } else {
                            svc.call(request(0)).await.expect("infallible").status()
                        };
                        std::hint::black_box(status);
                    }
                    start.elapsed()
                })
            });
        });
    }

    // 64 requests in flight on one layer (one key, admitted): throughput, not latency.
    let svc = layer(&server, "b_par:", open, 10_000).layer(inner());
    let decisions = Arc::new(AtomicU64::new(0));
    let calls_before = server.script_calls();
    group.bench_function("admitted/1key/64_in_flight", |b| {
        b.iter_custom(|iters| {
            let decisions = Arc::clone(&decisions);
            let svc = svc.clone();
            rt.block_on(async move {
                let start = Instant::now();
                let per_task = iters.div_ceil(64);
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..64 {
                    let mut svc = svc.clone();
                    tasks.spawn(async move {
                        serve_all(&mut svc, (0..per_task).map(|_| request(0))).await;
                    });
                }
                while tasks.join_next().await.is_some() {}
                decisions.fetch_add(per_task * 64, Ordering::Relaxed);
                // Time per request as criterion sees it: scale to the iterations asked for.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        });
    });
    let d = decisions.load(Ordering::Relaxed).max(1);
    let calls = server.script_calls().saturating_sub(calls_before);
    report.push(format!(
        "admitted/1key/64_in_flight: {d} decisions, {calls} script calls, {:.4} round trips per decision",
        calls as f64 / d as f64
    ));
    group.finish();
    report.push(format!(
        "redis-server time per script call (all cases): {} µs",
        server.usec_per_call().trim()
    ));
    for line in report {
        println!("{line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
