//! Redis killed *under load* and restarted, against a real redis-server: two replicas (two stores,
//! two layers) driven by concurrent clients while the server is killed and started again on the
//! same port. (One client, one request at a time: `redis_store.rs`.)
//!
//! - `closed`: no request sent after the kill is admitted; each gets `503` + `Retry-After: 1`
//!   with the `rate_limit_unavailable` body; once Redis is back the same layers decide through it
//!   again, without being rebuilt. The time from the restart to the first shared decision is
//!   printed (a figure, not an assertion).
//! - `open`: each replica falls back to a local limiter at `limit / replicas`; during the outage
//!   the fleet admits at most `replicas × ⌊limit / replicas⌋` more on one key — the documented
//!   over-admission: one extra local budget per replica on top of what Redis admitted.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use mcp_ratelimit::redis::{FailurePolicy, RedisBackend, RedisStore};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::RateLimitOutcome;
use redis_support::*;

// The phases of a run. A request is counted under a phase only when it was both sent and
// answered in it; one that crosses a change (in flight when Redis was killed or came back) is
// counted under STRADDLE.
const UP: u8 = 0;
/// Set just before the kill.
const KILLING: u8 = 1;
/// Set once the process is gone: no answer in it can come from Redis.
const DOWN: u8 = 2;
/// Set just before the restart.
const RESTARTING: u8 = 3;
/// Set once the new server answers `PING`.
const BACK: u8 = 4;
const STRADDLE: u8 = 5;

/// Concurrent clients per replica.
const CLIENTS: usize = 6;

fn replica(
    server: &RedisServer,
    prefix: &str,
    policy: FailurePolicy,
    replicas: u64,
    quota: Quota,
) -> RateLimitLayer<RedisBackend> {
    let store = RedisStore::builder(server.url())
        .prefix(prefix)
        .failure_policy(policy)
        .replicas(replicas)
        // Generous: the tests count answers, they never time them.
        .timeout(Duration::from_millis(500))
        .build()
        .expect("store");
    RateLimitLayer::builder()
        .limit(Limit::new("ip", quota, KeySelector::client_addr()))
        .redis(store)
        .build()
        .expect("layer")
}

/// Answers counted per phase and kind, from every client of every replica.
#[derive(Default)]
struct Tally {
    /// `[phase][kind]`: kind 0 = 200 through Redis, 1 = 200 degraded (local limiter), 2 = 429,
    /// 3 = 503 `rate_limit_unavailable`, 4 = anything else.
    counts: [[AtomicU64; 5]; 6],
    /// A 503 without `Retry-After: 1` or without the documented body.
    bad_unavailable: AtomicU64,
    /// 200s per client address and kind (0 through Redis, 1 local), over the whole run.
    admitted: Mutex<HashMap<(String, usize), u64>>,
}

impl Tally {
    fn get(&self, phase: u8, kind: usize) -> u64 {
        self.counts[usize::from(phase)][kind].load(Ordering::SeqCst)
    }

    fn total(&self, phase: u8) -> u64 {
        (0..5).map(|k| self.get(phase, k)).sum()
    }

    fn admitted(&self, ip: &str, kind: usize) -> u64 {
        let admitted = self.admitted.lock().expect("tally");
        admitted.get(&(ip.to_owned(), kind)).copied().unwrap_or(0)
    }
}

struct Load {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    /// `CLIENTS` tasks per layer, each sending requests back to back; `ip(client, n, phase)`
    /// picks the client address of the n-th request of a task.
    fn start(layers: &[RateLimitLayer<RedisBackend>], ip: fn(usize, usize, u8) -> String) -> Load {
        let phase = Arc::new(AtomicU8::new(UP));
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut tasks = tokio::task::JoinSet::new();
        for (r, layer) in layers.iter().enumerate() {
            for c in 0..CLIENTS {
                let mut svc = service(layer.clone());
                let (phase, stop, tally) = (phase.clone(), stop.clone(), tally.clone());
                tasks.spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let sent_in = phase.load(Ordering::SeqCst);
                        let addr = ip(r * CLIENTS + c, n, sent_in);
                        let res = send(&mut svc, request_from(&addr)).await;
                        n += 1;
                        let outcome = res.extensions().get::<RateLimitOutcome>().cloned();
                        let kind = match (res.status(), &outcome) {
                            (StatusCode::OK, Some(RateLimitOutcome::Degraded { .. })) => 1,
                            (StatusCode::OK, _) => 0,
                            (StatusCode::TOO_MANY_REQUESTS, _) => 2,
                            (StatusCode::SERVICE_UNAVAILABLE, _) => 3,
                            _ => 4,
                        };
                        let answered_in = phase.load(Ordering::SeqCst);
                        let counted = if sent_in == answered_in {
                            sent_in
                        } else {
                            STRADDLE
                        };
                        if kind <= 1 {
                            let mut admitted = tally.admitted.lock().expect("tally");
                            *admitted.entry((addr, kind)).or_default() += 1;
                        }
                        if kind == 3 {
                            let retry = res
                                .headers()
                                .get("retry-after")
                                .map(|v| v.as_bytes().to_vec());
                            let body = body_json(res).await;
                            if retry.as_deref() != Some(b"1".as_slice())
                                || body["error"] != "rate_limit_unavailable"
                                || body["retry_after"] != 1
                            {
                                tally.bad_unavailable.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        tally.counts[usize::from(counted)][kind].fetch_add(1, Ordering::SeqCst);
                        // Let the other clients (and the test) run on a busy runtime.
                        tokio::task::yield_now().await;
                    }
                });
            }
        }
        Load {
            phase,
            stop,
            tally,
            tasks,
        }
    }

    /// Wait (polling, bounded) until `done` holds for the tally.
    async fn until(&self, what: &str, done: impl Fn(&Tally) -> bool) {
        for _ in 0..3_000 {
            if done(&self.tally) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("under load: {what} never happened");
    }

    async fn finish(mut self) -> Arc<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("a client task panicked");
        }
        self.tally
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_under_load_refuses_with_503_while_down_and_recovers_without_a_rebuild() {
    let mut server = RedisServer::start();
    // A limit no client reaches: every answer is about Redis being there or not.
    let quota = Quota::per_second(1_000_000);
    let layers = [
        replica(&server, "f1:", FailurePolicy::Closed, 2, quota),
        replica(&server, "f1:", FailurePolicy::Closed, 2, quota),
    ];
    // 96 client addresses, cycled.
    let load = Load::start(&layers, |client, n, _| {
        format!("198.51.100.{}", 1 + (client * 7 + n) % 96)
    });
    load.until("200 answers through Redis", |t| t.get(UP, 0) >= 300)
        .await;

    load.phase.store(KILLING, Ordering::SeqCst);
    tokio::task::block_in_place(|| server.stop());
    load.phase.store(DOWN, Ordering::SeqCst);
    load.until("503 answers while Redis is down", |t| t.get(DOWN, 3) >= 300)
        .await;
    for layer in &layers {
        let stats = layer.redis_stats().expect("stats");
        assert!(stats.degraded, "{stats:?}");
        assert!(stats.unavailable_rejections >= 1, "{stats:?}");
    }

    load.phase.store(RESTARTING, Ordering::SeqCst);
    tokio::task::block_in_place(|| server.restart());
    let back_at = Instant::now();
    load.phase.store(BACK, Ordering::SeqCst);
    load.until("a shared decision after Redis returned", |t| {
        t.get(BACK, 0) >= 1
    })
    .await;
    let recovered_in = back_at.elapsed();
    let refused_after_return = load.tally.get(BACK, 3);
    load.until("normal service after Redis returned", |t| {
        t.get(BACK, 0) >= 300
    })
    .await;
    let tally = load.finish().await;

    eprintln!(
        "closed under load ({} clients): up {} / down {} / back {} answers; first shared decision \
         {recovered_in:?} after Redis answered PING again (polled every 10 ms; \
         {refused_after_return} 503s from the restart on)",
        2 * CLIENTS,
        tally.total(UP),
        tally.total(DOWN),
        tally.total(BACK),
    );
    // Up: every answer through Redis.
    assert_eq!(
        tally.total(UP),
        tally.get(UP, 0),
        "only 200s while Redis is up"
    );
    // Down: nothing admitted, every refusal the documented 503.
    assert_eq!(
        tally.get(DOWN, 0),
        0,
        "nothing admitted while Redis is down"
    );
    assert_eq!(
        tally.get(DOWN, 1),
        0,
        "closed never falls back to a local limiter"
    );
    assert_eq!(tally.get(DOWN, 2), 0, "no 429: no client exceeded anything");
    assert_eq!(tally.get(DOWN, 4), 0, "no other status while down");
    assert_eq!(tally.bad_unavailable.load(Ordering::SeqCst), 0);
    // Back, and across the changes: 200 through Redis or 503, nothing else; through Redis again
    // on the same layers.
    for phase in [KILLING, RESTARTING, BACK, STRADDLE] {
        assert_eq!(
            tally.get(phase, 1) + tally.get(phase, 2) + tally.get(phase, 4),
            0
        );
    }
    for layer in &layers {
        let stats = layer.redis_stats().expect("stats");
        assert!(!stats.degraded, "still degraded after recovery: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_under_load_admits_at_most_one_local_budget_per_replica_while_down() {
    const LIMIT: u64 = 10;
    const REPLICAS: u64 = 2;
    /// Hammered while Redis is up: limited through Redis, then refused by the deny caches.
    const SPENT: &str = "203.0.113.77";
    /// Used 3 times through Redis before the outage, hammered during it.
    const PARTLY: &str = "203.0.113.88";
    let mut server = RedisServer::start();
    // An hour's window: the refill during the test (at most a few seconds) stays below one
    // request, so the counts below are exact bounds.
    let quota = Quota::per_hour(LIMIT);
    let layers = [
        replica(&server, "f2:", FailurePolicy::Open, REPLICAS, quota),
        replica(&server, "f2:", FailurePolicy::Open, REPLICAS, quota),
    ];
    let mut first = service(layers[0].clone());
    for _ in 0..3 {
        let res = send(&mut first, request_from(PARTLY)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Allowed { .. })
        ));
    }
    // Up: every client of both replicas on SPENT; down: on both keys.
    let load = Load::start(&layers, |_, n, phase| {
        if phase == UP || n % 2 == 0 {
            SPENT.to_owned()
        } else {
            PARTLY.to_owned()
        }
    });
    load.until("the key limited through Redis", |t| t.get(UP, 2) >= 200)
        .await;
    assert_eq!(
        load.tally.admitted(SPENT, 0),
        LIMIT,
        "Redis admits exactly the limit fleet-wide"
    );

    load.phase.store(KILLING, Ordering::SeqCst);
    tokio::task::block_in_place(|| server.stop());
    load.phase.store(DOWN, Ordering::SeqCst);
    load.until("both keys limited by the local limiters", |t| {
        t.get(DOWN, 2) >= 400
    })
    .await;
    for layer in &layers {
        let stats = layer.redis_stats().expect("stats");
        assert!(stats.degraded, "{stats:?}");
        assert!(stats.fallback_decisions >= 1, "{stats:?}");
    }
    // A fresh client on each replica: the local limit is what the headers announce.
    for layer in &layers {
        let mut svc = service(layer.clone());
        let res = send(&mut svc, request_from("203.0.113.99")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["x-ratelimit-limit"],
            (LIMIT / REPLICAS).to_string().as_str()
        );
        assert!(matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Degraded { admitted: true, .. })
        ));
    }
    let tally = load.finish().await;
    drop(server);

    let bound = REPLICAS * (LIMIT / REPLICAS).max(1);
    let local = |key| tally.admitted(key, 1);
    let total = |key| tally.admitted(key, 0) + tally.admitted(key, 1);
    eprintln!(
        "open under load ({} clients, limit {LIMIT}/h over {REPLICAS} replicas): while down, \
         {} admitted locally on the key Redis had spent ({} through Redis), {} on the key Redis \
         had admitted 3 times ({} through Redis in all); bound {bound} per key; {} refused",
        2 * CLIENTS,
        local(SPENT),
        tally.admitted(SPENT, 0),
        local(PARTLY),
        tally.admitted(PARTLY, 0) + 3,
        tally.get(DOWN, 2),
    );
    assert_eq!(
        tally.get(DOWN, 0),
        0,
        "nothing through Redis while it is down"
    );
    for key in [SPENT, PARTLY] {
        assert!(
            local(key) <= bound,
            "{key}: {} admitted locally, bound {bound}",
            local(key)
        );
    }
    // Over the whole run (one window): at most the limit plus one local budget per replica.
    assert!(total(SPENT) <= LIMIT + bound, "{SPENT}: {}", total(SPENT));
    assert!(
        total(PARTLY) + 3 <= LIMIT + bound,
        "{PARTLY}: {}",
        total(PARTLY) + 3
    );
    assert_eq!(
        local(PARTLY),
        bound,
        "each replica spends its local budget on a key it has not seen refused"
    );
    // Open never answers 503, and never anything unexpected.
    for phase in [UP, KILLING, DOWN, STRADDLE] {
        assert_eq!(tally.get(phase, 3) + tally.get(phase, 4), 0);
    }
}
