//! RedisStore against a real redis-server (started and stopped by each test).
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use mcp_ratelimit::redis::{FailurePolicy, RedisBackend, RedisStore};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::RateLimitOutcome;
use proptest::prelude::*;
use redis_support::*;

fn layer(
    server: &RedisServer,
    prefix: &str,
    quota: Quota,
    key: KeySelector,
) -> RateLimitLayer<RedisBackend> {
    let store = RedisStore::builder(server.url())
        .prefix(prefix)
        // Generous: the tests assert on counts, never on time, and CI machines stall.
        .timeout(Duration::from_secs(2))
        .build()
        .expect("store");
    RateLimitLayer::builder()
        .limit(Limit::new("ip", quota, key))
        .redis(store)
        .build()
        .expect("layer")
}

#[tokio::test]
async fn refusals_through_the_layer_and_the_deny_cache() {
    let server = RedisServer::start();
    let layer = layer(
        &server,
        "t1:",
        Quota::per_minute(2),
        KeySelector::client_addr(),
    );
    let store = RedisStore::builder(server.url()).build().unwrap();
    store.warm_up().await.expect("warm up");
    let down = RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
    assert!(down.warm_up().await.is_err());
    let mut svc = service(layer.clone());
    let first = send(&mut svc, request_from("198.51.100.4")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(first.headers()["ratelimit-policy"], r#""ip";q=2;w=60"#);
    assert!(matches!(
        first.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Allowed { remaining: 1, .. })
    ));
    assert_eq!(
        send(&mut svc, request_from("198.51.100.4")).await.status(),
        StatusCode::OK
    );
    let third = send(&mut svc, request_from("198.51.100.4")).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "retry-after {retry}");
    assert_eq!(third.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(third.headers()["x-ratelimit-limit"], "2");
    assert!(third.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(
        third.headers()["ratelimit"],
        format!(r#""ip";r=0;t={retry}"#).as_str()
    );
    assert!(matches!(
        third.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { .. })
    ));
    let body = body_json(third).await;
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        body["detail"],
        "Rate limit exceeded. Please try again later."
    );
    assert_eq!(body["retry_after"], retry);

    // Refused again, locally: no round trip.
    let before = layer.redis_stats().unwrap();
    let calls = server.script_calls();
    let fourth = send(&mut svc, request_from("198.51.100.4")).await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(fourth.headers().contains_key("retry-after"));
    let after = layer.redis_stats().unwrap();
    assert_eq!(after.round_trips, before.round_trips);
    assert_eq!(after.local_denials, before.local_denials + 1);
    assert_eq!(server.script_calls(), calls);
    // Another client is unaffected, and its decision is one script call.
    assert_eq!(
        send(&mut svc, request_from("198.51.100.5")).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.script_calls(), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_share_one_limit() {
    let server = RedisServer::start();
    // 20 per second, bursts of 5: over ~1.5 s at most 5 + 30 admitted in total.
    let quota = Quota::per_second(20).with_burst(5);
    let a = layer(&server, "t2:", quota, KeySelector::client_addr());
    let b = {
        let store = RedisStore::builder(server.url())
            .prefix("t2:")
            .timeout(Duration::from_secs(2))
            .deny_cache(0)
            .build()
            .unwrap();
        RateLimitLayer::builder()
            .limit(Limit::new("ip", quota, KeySelector::client_addr()))
            .redis(store)
            .build()
            .unwrap()
    };
    let admitted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let run = Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for (i, l) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        let admitted = Arc::clone(&admitted);
        tasks.push(tokio::spawn(async move {
            let mut svc = service(l);
            let mut sent = 0u64;
            while start.elapsed() < run {
                let res = send(&mut svc, request_from("203.0.113.9")).await;
                match res.status() {
                    StatusCode::OK => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("stack {i}: unexpected {other}"),
                }
                sent += 1;
                if sent.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    // Every Redis decision happened within [start, now]: the bound over that span.
    let span = start.elapsed();
    let bound = 5 + (span.as_nanos() * 20 / 1_000_000_000) as u64;
    let total = admitted.load(Ordering::Relaxed);
    assert!(
        total <= bound,
        "{total} admitted in {span:?}, bound {bound}"
    );
    assert!(total >= 5, "the burst is admitted ({total})");
    assert!(sent > total, "the stacks were refused at some point");
}

fn outage_layer(server: &RedisServer, policy: FailurePolicy) -> RateLimitLayer<RedisBackend> {
    let store = RedisStore::builder(server.url())
        .prefix("t3:")
        .failure_policy(policy)
        .replicas(2)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::per_minute(4),
            KeySelector::client_addr(),
        ))
        .redis(store)
        .build()
        .unwrap()
}

async fn wait_for_recovery(
    svc: &mut Svc,
    ip: &str,
) -> http::Response<mcp_security_core::GuardBody<http_body_util::Full<bytes::Bytes>>> {
    for _ in 0..400 {
        let res = send(svc, request_from(ip)).await;
        let degraded = matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Unavailable { .. } | RateLimitOutcome::Degraded { .. })
        );
        if !degraded {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the layer never used Redis again after it came back");
}

#[tokio::test]
async fn redis_killed_fail_closed_then_recovers() {
    let mut server = RedisServer::start();
    let layer = outage_layer(&server, FailurePolicy::Closed);
    let mut svc = service(layer.clone());
    for _ in 0..4 {
        assert_eq!(
            send(&mut svc, request_from("192.0.2.7")).await.status(),
            StatusCode::OK
        );
    }
    server.stop();
    let res = send(&mut svc, request_from("192.0.2.8")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Unavailable {
            retry_after_secs: 1
        })
    ));
    let body = body_json(res).await;
    assert_eq!(body["error"], "rate_limit_unavailable");
    assert_eq!(
        body["message"],
        "Service temporarily unavailable. Please try again later."
    );
    assert_eq!(body["retry_after"], 1);
    // gRPC callers get status 14 (unavailable), trailers-only.
    let mut grpc = request_from("192.0.2.8");
    grpc.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    let res = send(&mut svc, grpc).await;
    assert_eq!(res.headers()["grpc-status"], "14");
    let stats = layer.redis_stats().unwrap();
    assert!(stats.degraded);
    assert!(stats.unavailable_rejections >= 1);

    server.restart();
    // Fresh Redis (no persistence): the new client gets its 4, then is limited again.
    let first = wait_for_recovery(&mut svc, "192.0.2.9").await;
    assert_eq!(first.status(), StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(
            send(&mut svc, request_from("192.0.2.9")).await.status(),
            StatusCode::OK
        );
    }
    let limited = send(&mut svc, request_from("192.0.2.9")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!layer.redis_stats().unwrap().degraded);
}

#[tokio::test]
async fn redis_killed_fail_open_limits_locally_at_limit_over_replicas() {
    let mut server = RedisServer::start();
    let layer = outage_layer(&server, FailurePolicy::Open);
    let mut svc = service(layer.clone());
    assert_eq!(
        send(&mut svc, request_from("192.0.2.20")).await.status(),
        StatusCode::OK
    );
    server.stop();
    // 4 per minute over 2 replicas: 2 locally.
    for _ in 0..2 {
        let res = send(&mut svc, request_from("192.0.2.21")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(matches!(
            res.extensions().get::<RateLimitOutcome>(),
            Some(RateLimitOutcome::Degraded { admitted: true, .. })
        ));
        assert_eq!(res.headers()["x-ratelimit-limit"], "2");
    }
    let res = send(&mut svc, request_from("192.0.2.21")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Degraded {
            admitted: false,
            ..
        })
    ));
    assert_eq!(body_json(res).await["error"], "rate_limited");
    assert!(layer.redis_stats().unwrap().fallback_decisions >= 3);

    server.restart();
    let back = wait_for_recovery(&mut svc, "192.0.2.22").await;
    assert_eq!(back.status(), StatusCode::OK);
    assert!(matches!(
        back.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Allowed { .. })
    ));
}

#[tokio::test]
async fn client_input_does_not_shape_the_key_space() {
    let server = RedisServer::start();
    let layer = layer(
        &server,
        "shape:",
        Quota::per_minute(10),
        KeySelector::principal(),
    );
    let mut svc = service(layer);
    let long = "x".repeat(10 * 1024);
    let ids = [
        "{tag}",
        "a b c",
        long.as_str(),
        "\u{0}\u{1}\u{7f}\u{ff}\u{fffd}bin",
        "*",
        "shape:other",
        "\r\nSET x y\r\n",
    ];
    for id in ids {
        assert_eq!(
            send(&mut svc, request_as(id)).await.status(),
            StatusCode::OK
        );
    }
    let keys: Vec<String> = server
        .cli(&["--scan", "--pattern", "*"])
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(keys.len(), ids.len(), "{keys:?}");
    for key in &keys {
        // `{<16 hex>}<16 hex>`: the hash tag (the caller's digest) is ours, never the client's.
        let rest = key
            .strip_prefix("shape:{")
            .expect("prefixed, then the hash tag");
        let (tag, digits) = rest.split_once('}').expect("one closing brace");
        assert_eq!((tag.len(), digits.len()), (16, 16), "{key}");
        assert!(
            tag.bytes()
                .chain(digits.bytes())
                .all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        // Every key expires.
        let ttl: i64 = server.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key}: {ttl}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Random small quotas and schedules in real time: in every window between two admissions,
    /// the admitted count is within `burst + ⌊span × requests / window⌋`, where `span` is the
    /// widest the Redis decision times can be apart (from sending the first to the answer of the
    /// last), so the check holds whatever the latency.
    #[test]
    fn gcra_bound_holds_in_real_time(
        requests in 1u64..6,
        window_ms in 100u64..400,
        burst in 1u64..5,
        gaps in proptest::collection::vec(
            prop_oneof![3 => Just(0u64), 3 => 0u64..20, 1 => 0u64..120],
            10..30,
        ),
    ) {
        let server = RedisServer::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result: Result<(), TestCaseError> = rt.block_on(async {
            let quota = Quota::new(requests, Duration::from_millis(window_ms)).with_burst(burst);
            let layer = layer(&server, "prop:", quota, KeySelector::client_addr());
            let mut svc = service(layer);
            let origin = Instant::now();
            let mut admitted: Vec<(u128, u128)> = Vec::new();
            for gap in &gaps {
                tokio::time::sleep(Duration::from_millis(*gap)).await;
                let sent = origin.elapsed().as_nanos();
                let res = send(&mut svc, request_from("198.51.100.77")).await;
                let answered = origin.elapsed().as_nanos();
                match res.status() {
                    StatusCode::OK => admitted.push((sent, answered)),
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => prop_assert!(false, "unexpected {}", other),
                }
            }
            prop_assert!(!admitted.is_empty());
            let window = u128::from(window_ms) * 1_000_000;
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let span = admitted[j].1 - admitted[i].0;
                    let bound = u128::from(burst) + span * u128::from(requests) / window;
                    prop_assert!(
                        (j - i + 1) as u128 <= bound,
                        "{} admitted within {} ns, bound {}", j - i + 1, span, bound
                    );
                }
            }
            Ok(())
        });
        result?;
    }
}

#[tokio::test]
async fn a_refusal_charges_no_limit() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .prefix("t4:")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let layer = RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::per_hour(1),
            KeySelector::client_addr(),
        ))
        .limit(Limit::new(
            "who",
            Quota::per_hour(1),
            KeySelector::principal(),
        ))
        .redis(store)
        .build()
        .unwrap();
    let mut svc = service(layer);
    let as_alice_from = |ip: &str| {
        let mut req = request_from(ip);
        req.extensions_mut().insert(
            mcp_security_core::Principal::builder(
                "alice",
                mcp_security_core::PrincipalKind::ApiKey,
            )
            .build(),
        );
        req
    };
    assert_eq!(
        send(&mut svc, as_alice_from("192.0.2.30")).await.status(),
        StatusCode::OK
    );
    // alice is spent: refused by "who", and "ip" for .31 is not charged (nor remembered as
    // refused by the deny cache).
    let refused = send(&mut svc, as_alice_from("192.0.2.31")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("\"who\"")
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.31")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.31")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
