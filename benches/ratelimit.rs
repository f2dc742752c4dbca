//! `RateLimitLayer` against tower_governor (governor's keyed GCRA behind a tower layer), both
//! configured for the same quota (10⁹ requests per second, burst 10⁹, so every request is
//! admitted and the admitted path is measured), keyed by peer IP, with their rate-limit headers
//! on (`use_headers()` for tower_governor; both header sets for ours). One group:
//!
//! - one key, and 10 000 keys visited round-robin;
//! - one thread, and two threads sharing one layer (time per request = wall time / requests);
//! - plus the refused path on one key (quota 1 per hour), one thread; the plumbing alone (no
//!   layer: building the request, calling the service), to subtract; and ours with only the
//!   `X-RateLimit-*` headers, closer to what tower_governor sends.
//!
//! Before the group it prints the memory each tracked key costs (a counting allocator, on only
//! while measuring): ours with 1 M keys tracked, and governor's keyed store with the same keys.
//!
//! A second group, `ratelimit_budget`, measures a per-caller decision for an authenticated
//! `tools/call` (a `Principal` and an `McpCall` in the extensions, as after authentication):
//! the plain per-principal limit, the same with a day budget (weights per tool) charged in
//! memory, and the budget alone.
//!
//! Run: `cargo bench -p benches --bench ratelimit`
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use http::{Request, Response, StatusCode};
use mcp_ratelimit::{Budget, KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::{McpCall, Principal, PrincipalKind};
use tower::{Layer, Service};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

/// Counts live heap bytes while `COUNTING` is on (one relaxed load per allocation otherwise).
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// side bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Heap bytes that `f` leaves allocated (what it built and kept), and its result.
fn retained<T>(f: impl FnOnce() -> T) -> (isize, T) {
    LIVE.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (LIVE.load(Ordering::SeqCst), out)
}

const KEYS: usize = 10_000;
const MEMORY_KEYS: u32 = 1_000_000;

fn peer(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(0x0A00_0000 + i)), 40_000)
}

/// The same request for both: `ConnectInfo` for tower_governor's `PeerIpKeyExtractor`,
/// `PeerAddr` for ours.
fn request(addr: SocketAddr) -> Request<()> {
    let mut req = Request::get("/api/notes").body(()).expect("request");
    req.extensions_mut().insert(ConnectInfo(addr));
    req.extensions_mut().insert(PeerAddr(addr));
    req
}

async fn ok(_req: Request<()>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// Drive a service once with a no-op waker: both layers and the inner service are ready at
/// once.
fn call<S>(svc: &mut S, req: Request<()>) -> S::Response
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("not ready"),
    }
}

fn ours(quota: Quota, max_keys: usize) -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(Limit::new("ip", quota, KeySelector::client_addr()))
        .max_keys(max_keys)
        .build()
        .expect("layer")
}

fn theirs(
    period: Duration,
    burst: u32,
) -> GovernorLayer<
    tower_governor::key_extractor::PeerIpKeyExtractor,
    governor::middleware::StateInformationMiddleware,
    Body,
> {
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .use_headers()
        .finish()
        .expect("config");
    GovernorLayer::new(config)
}

fn memory_per_key() {
    let keys: Vec<SocketAddr> = (0..MEMORY_KEYS).map(peer).collect();
    let (ours_bytes, layer) = retained(|| {
        // 1 per hour: no key goes idle (and is evicted) while the loop runs.
        // Room to spare: the bound is enforced per shard, so a full store is ~99.7 % used.
        let layer = ours(Quota::per_hour(1), MEMORY_KEYS as usize * 11 / 10);
        let mut svc = layer.layer(tower::service_fn(ok));
        for &k in &keys {
            black_box(call(&mut svc, request(k)));
        }
        layer
    });
    assert_eq!(layer.tracked_keys(), MEMORY_KEYS as usize);
    let (gov_bytes, limiter) = retained(|| {
        let limiter = RateLimiter::keyed(GovernorQuota::per_hour(
            NonZeroU32::new(1).expect("nonzero"),
        ));
        for k in &keys {
            let _ = black_box(limiter.check_key(&k.ip()));
        }
        limiter
    });
    assert_eq!(limiter.len(), MEMORY_KEYS as usize);
    let per = |bytes: isize| bytes as f64 / f64::from(MEMORY_KEYS);
    println!(
        "memory per tracked key (1 M keys, counting allocator): mcp-ratelimit {:.1} B \
         ({:.1} MiB), governor keyed store {:.1} B ({:.1} MiB)",
        per(ours_bytes),
        ours_bytes as f64 / 1048576.0,
        per(gov_bytes),
        gov_bytes as f64 / 1048576.0,
    );
    let (default_bytes, layer) = retained(|| {
        let layer = ours(Quota::per_hour(1), 100_000);
        let mut svc = layer.layer(tower::service_fn(ok));
        for &k in &keys {
            black_box(call(&mut svc, request(k)));
        }
        layer
    });
    println!(
        "default bound (100 000 keys) after 1 M distinct clients: {} keys tracked, {:.1} MiB",
        layer.tracked_keys(),
        default_bytes as f64 / 1048576.0
    );
}

/// `iters` requests, split over `threads` threads each with its own clone of the service,
/// cycling through `keys` peers. Returns the wall time.
fn run<S, B>(
    svc: &S,
    threads: usize,
    keys: &[SocketAddr],
    iters: u64,
    expect: StatusCode,
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let per_thread = iters.div_ceil(threads as u64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let mut svc = svc.clone();
            s.spawn(move || {
                let mut i = t * keys.len() / threads;
                for _ in 0..per_thread {
                    let res = call(&mut svc, request(keys[i]));
                    debug_assert_eq!(res.status(), expect);
                    black_box(res);
                    i += 1;
                    if i == keys.len() {
                        i = 0;
                    }
                }
            });
        }
    });
    start.elapsed()
}

/// `RATELIMIT_BENCH_PROFILE=<row>`: run that row a fixed number of times
/// (`RATELIMIT_BENCH_ITERS`, default 100 000) and exit, without criterion, for an instruction
/// count that does not depend on the machine's load:
///
/// ```sh
/// RATELIMIT_BENCH_PROFILE=mcp_ratelimit/1key/1thread valgrind --tool=callgrind \
///     --toggle-collect='ratelimit::run*' target/release/deps/ratelimit-<hash>
/// ```
///
/// Rows: `{mcp_ratelimit,tower_governor}/{1key,10k_keys}/{1,2}thread`,
/// `{mcp_ratelimit,tower_governor}/refused/1key/1thread`, `baseline_no_layer/1key/1thread`,
/// `mcp_ratelimit_x_headers_only/1key/1thread`. Prints the row and the iterations run.
fn profile(row: &str) {
    let iters: u64 = std::env::var("RATELIMIT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let parts: Vec<&str> = row.split('/').collect();
    let (who, rest) = parts.split_first().expect("row");
    let refused = rest.first() == Some(&"refused");
    let rest = if refused { &rest[1..] } else { rest };
    let keys: Vec<SocketAddr> = match rest.first() {
        Some(&"10k_keys") => (0..KEYS as u32).map(peer).collect(),
        _ => vec![peer(1)],
    };
    let threads = if rest.get(1) == Some(&"2thread") {
        2
    } else {
        1
    };
    let expect = if refused {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    let elapsed = match (*who, refused) {
        ("mcp_ratelimit", false) => {
            let svc = ours(Quota::per_second(1_000_000_000), 100_000).layer(tower::service_fn(ok));
            run(&svc, threads, &keys, iters, expect)
        }
        ("mcp_ratelimit", true) => {
            let svc = ours(Quota::per_hour(1), 100_000).layer(tower::service_fn(ok));
            call(&mut svc.clone(), request(peer(1)));
            run(&svc, threads, &keys, iters, expect)
        }
        ("tower_governor", false) => {
            let svc = theirs(Duration::from_nanos(1), 1_000_000_000).layer(tower::service_fn(ok));
            run(&svc, threads, &keys, iters, expect)
        }
        ("tower_governor", true) => {
            let svc = theirs(Duration::from_secs(3600), 1).layer(tower::service_fn(ok));
            call(&mut svc.clone(), request(peer(1)));
            run(&svc, threads, &keys, iters, expect)
        }
        ("baseline_no_layer", _) => run(&tower::service_fn(ok), threads, &keys, iters, expect),
        ("mcp_ratelimit_x_headers_only", _) => {
            let svc = lean().layer(tower::service_fn(ok));
            run(&svc, threads, &keys, iters, expect)
        }
        _ => panic!("unknown row {row}"),
    };
    println!("{row}: {iters} requests in {elapsed:?}");
}

/// Ours with only the `X-RateLimit-*` headers.
fn lean() -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::per_second(1_000_000_000),
            KeySelector::client_addr(),
        ))
        .ietf_headers(false)
        .build()
        .expect("layer")
}

fn bench(c: &mut Criterion) {
    if let Ok(row) = std::env::var("RATELIMIT_BENCH_PROFILE") {
        profile(&row);
        std::process::exit(0);
    }
    // `RATELIMIT_BENCH_MEMORY=0` skips the memory report (e.g. when profiling one bench).
    if std::env::var_os("RATELIMIT_BENCH_MEMORY").is_none_or(|v| v != "0") {
        memory_per_key();
    }

    // Same quota for both: 10⁹ per second (one per nanosecond), burst 10⁹.
    let ours_layer = ours(Quota::per_second(1_000_000_000), 100_000);
    let ours_svc = ours_layer.layer(tower::service_fn(ok));
    let theirs_svc = theirs(Duration::from_nanos(1), 1_000_000_000).layer(tower::service_fn(ok));

    let one_key = [peer(1)];
    let many_keys: Vec<SocketAddr> = (0..KEYS as u32).map(peer).collect();
    // Sanity: both admit and both send headers.
    let a = call(&mut ours_svc.clone(), request(peer(1)));
    let b = call(&mut theirs_svc.clone(), request(peer(1)));
    for (status, headers) in [(a.status(), a.headers()), (b.status(), b.headers())] {
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key("x-ratelimit-remaining"));
    }

    let mut group = c.benchmark_group("ratelimit");
    for (keys_label, keys) in [("1key", &one_key[..]), ("10k_keys", &many_keys[..])] {
        for threads in [1, 2] {
            let label = format!("{keys_label}/{threads}thread");
            group.bench_function(format!("mcp_ratelimit/{label}"), |b| {
                b.iter_custom(|iters| run(&ours_svc, threads, keys, iters, StatusCode::OK))
            });
            group.bench_function(format!("tower_governor/{label}"), |b| {
                b.iter_custom(|iters| run(&theirs_svc, threads, keys, iters, StatusCode::OK))
            });
        }
    }

    // For scale: the request plumbing alone, and ours sending only the two X-RateLimit headers
    // tower_governor sends (plus Reset) instead of five.
    let baseline = tower::service_fn(ok);
    group.bench_function("baseline_no_layer/1key/1thread", |b| {
        b.iter_custom(|iters| run(&baseline, 1, &one_key, iters, StatusCode::OK))
    });
    let lean = lean().layer(tower::service_fn(ok));
    group.bench_function("mcp_ratelimit_x_headers_only/1key/1thread", |b| {
        b.iter_custom(|iters| run(&lean, 1, &one_key, iters, StatusCode::OK))
    });

    // The refused path: 1 per hour on one key.
    let ours_strict = ours(Quota::per_hour(1), 100_000).layer(tower::service_fn(ok));
    let theirs_strict = theirs(Duration::from_secs(3600), 1).layer(tower::service_fn(ok));
    call(&mut ours_strict.clone(), request(peer(1)));
    call(&mut theirs_strict.clone(), request(peer(1)));
    group.bench_function("mcp_ratelimit/refused/1key/1thread", |b| {
        b.iter_custom(|iters| {
            run(
                &ours_strict,
                1,
                &one_key,
                iters,
                StatusCode::TOO_MANY_REQUESTS,
            )
        })
    });
    group.bench_function("tower_governor/refused/1key/1thread", |b| {
        b.iter_custom(|iters| {
            run(
                &theirs_strict,
                1,
                &one_key,
                iters,
                StatusCode::TOO_MANY_REQUESTS,
            )
        })
    });
    group.finish();
}

/// A `tools/call` by an authenticated principal, as the per-caller layer sees it.
fn caller_request(principal: &Principal, call: &McpCall) -> Request<()> {
    let mut req = Request::post("/mcp").body(()).expect("request");
    req.extensions_mut().insert(principal.clone());
    req.extensions_mut().insert(call.clone());
    req
}

/// The per-caller decision: the plain limit, the limit and a budget, the budget alone.
fn bench_budget(c: &mut Criterion) {
    let principal = Principal::builder("alice", PrincipalKind::ApiKey).build();
    let call_msg = mcp_security_core::jsonrpc::parse_envelope(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
    )
    .expect("envelope");
    let limit = || {
        Limit::new(
            "principal",
            Quota::per_second(1_000_000_000),
            KeySelector::principal(),
        )
    };
    // 10¹² units a day: never refused while measured.
    let budget =
        || Budget::per_day("daily", 1_000_000_000_000).weight("tools/call:delete_note", 10);
    let layers = [
        (
            "plain_limit",
            RateLimitLayer::builder().limit(limit()).build(),
        ),
        (
            "limit_and_day_budget",
            RateLimitLayer::builder()
                .limit(limit())
                .budget(budget())
                .build(),
        ),
        (
            "day_budget_only",
            RateLimitLayer::builder().budget(budget()).build(),
        ),
    ];
    let mut group = c.benchmark_group("ratelimit_budget");
    for (label, layer) in layers {
        let mut svc = layer.expect("layer").layer(tower::service_fn(ok));
        let first = call(&mut svc, caller_request(&principal, &call_msg));
        assert_eq!(first.status(), StatusCode::OK);
        assert!(first.headers().contains_key("ratelimit"));
        group.bench_function(format!("mcp_ratelimit/{label}/1principal/1thread"), |b| {
            b.iter(|| black_box(call(&mut svc, caller_request(&principal, &call_msg))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_budget);
criterion_main!(benches);
