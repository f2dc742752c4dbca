//! Budgets counted in Redis, against a real redis-server (and a real three-node cluster):
//! several stores on one Redis (replicas) share one budget exactly, a weight-10 tool exhausts it
//! ten times faster, a new store (a restarted replica) sees what was spent, and the failure
//! policy answers when Redis is down.
#![cfg(feature = "redis")]

mod redis_support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use mcp_ratelimit::redis::{FailurePolicy, RedisBackend, RedisStore, RedisStoreBuilder};
use mcp_ratelimit::{Budget, KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{BudgetOutcome, Principal, PrincipalKind, RateLimitOutcome};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redis_support::*;

/// Generous: the tests assert on counts and statuses, never on time.
fn store(url: String, prefix: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(3))
}

/// A per-caller layer with `budget` only (no limit: the budget decides alone), or with a
/// generous per-principal limit in front.
fn layer(store: RedisStore, budget: Budget, with_limit: bool) -> RateLimitLayer<RedisBackend> {
    let mut b = RateLimitLayer::builder().budget(budget);
    if with_limit {
        b = b.limit(Limit::new(
            "principal",
            Quota::per_minute(10_000),
            KeySelector::principal(),
        ));
    }
    b.redis(store).build().expect("layer")
}

fn call(principal: &str, tool: &str) -> Request<Full<Bytes>> {
    let mut req = request_as(principal);
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#);
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).expect("envelope"));
    req
}

/// Sends `req`; `Some(remaining)` when admitted, `None` when the budget refused (asserting the
/// refusal's status, headers, body and outcomes).
async fn spend(svc: &mut Svc, req: Request<Full<Bytes>>, budget: &str) -> Option<u64> {
    let res = send(svc, req).await;
    if res.status() == StatusCode::OK {
        let Some(BudgetOutcome::Allowed {
            policy, remaining, ..
        }) = res.extensions().get::<BudgetOutcome>()
        else {
            panic!("{:?}", res.extensions().get::<BudgetOutcome>());
        };
        assert_eq!(policy, budget);
        let remaining = *remaining;
        let header = ratelimit(&res);
        assert!(
            header.contains(&format!("\"{budget}\";r={remaining};")),
            "{header}"
        );
        return Some(remaining);
    }
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(
        res.headers()["ratelimit"],
        format!("\"{budget}\";r=0;t={retry}").as_str()
    );
    assert!(
        res.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with(&format!("\"{budget}\";q=")),
    );
    assert!(matches!(
        res.extensions().get::<BudgetOutcome>(),
        Some(BudgetOutcome::Exhausted { .. })
    ));
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { policy, .. }) if policy == budget
    ));
    // A JSON-RPC call gets its refusal as a JSON-RPC error.
    let body = body_json(res).await;
    assert_eq!(body["error"]["data"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["data"]["retry_after"], retry);
    None
}

/// Every `RateLimit` item of a response (the limit's and each budget's).
fn ratelimit<B>(res: &http::Response<B>) -> String {
    res.headers()
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn a_budget_of_n_admits_at_most_n_weighted_units_across_two_stores() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let case = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Config::with_cases(8));
    let strategy = (
        1u64..=30,
        proptest::collection::vec((1u64..=5, any::<bool>()), 1..40),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(units, calls, with_limit)| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("p{n}:");
            let budget = || {
                (1..=5).fold(Budget::per_day("daily", units), |b, w| {
                    b.weight(format!("tools/call:w{w}"), w)
                })
            };
            rt.block_on(async {
                let mk = || store(server.url(), &prefix).build().unwrap();
                let mut a = service(layer(mk(), budget(), with_limit));
                let mut b = service(layer(mk(), budget(), with_limit));
                let mut spent = 0u64;
                for (weight, on_a) in &calls {
                    let svc = if *on_a { &mut a } else { &mut b };
                    match spend(svc, call("alice", &format!("w{weight}")), "daily").await {
                        Some(remaining) => {
                            spent += weight;
                            prop_assert!(spent <= units, "{spent} > {units}");
                            prop_assert_eq!(remaining, units - spent);
                        }
                        // Exact: refused only when the cost does not fit what is left.
                        None => prop_assert!(*weight > units - spent),
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_ten_tool_exhausts_the_budget_ten_times_faster_and_a_restart_loses_nothing() {
    let server = RedisServer::start();
    let budget = || Budget::per_day("daily", 100).weight("tools/call:delete_note", 10);
    let mk = || store(server.url(), "w10:").build().unwrap();
    let (mut a, mut b) = (
        service(layer(mk(), budget(), true)),
        service(layer(mk(), budget(), false)),
    );
    let mut admitted = (0, 0);
    for i in 0..20 {
        let svc = if i % 2 == 0 { &mut a } else { &mut b };
        if spend(svc, call("alice", "delete_note"), "daily")
            .await
            .is_some()
        {
            admitted.0 += 1;
        }
    }
    for i in 0..120 {
        let svc = if i % 2 == 0 { &mut a } else { &mut b };
        if spend(svc, call("bob", "read_note"), "daily")
            .await
            .is_some()
        {
            admitted.1 += 1;
        }
    }
    assert_eq!(admitted, (10, 100));
    // The units live in Redis: one key per (principal, budget), tagged by the principal.
    let keys = server.cli(&["--scan", "--pattern", "w10:b:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        assert!(
            key.len() == "w10:b:{}".len() + 32 && key.starts_with("w10:b:{"),
            "{key}"
        );
        let ttl: i64 = server.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0, "the key expires once the budget is full: {ttl}");
    }
    // A replica started now (a new store, a new layer) sees what was spent.
    let mut c = service(layer(mk(), budget(), true));
    assert_eq!(
        spend(&mut c, call("alice", "read_note"), "daily").await,
        None
    );
    assert_eq!(spend(&mut c, call("bob", "read_note"), "daily").await, None);
    assert_eq!(
        spend(&mut c, call("carol", "delete_note"), "daily").await,
        Some(90)
    );
}

#[tokio::test]
async fn redis_down_answers_by_the_failure_policy() {
    let budget = || Budget::per_day("daily", 2);
    let down = || store("redis://127.0.0.1:1/".into(), "down:");
    // closed: the limiter's 503, nothing admitted.
    let mut closed = service(layer(down().build().unwrap(), budget(), false));
    let res = send(&mut closed, call("alice", "x")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Unavailable { .. })
    ));
    assert_eq!(
        body_json(res).await["error"]["data"]["code"],
        "rate_limit_unavailable"
    );
    // open: the in-memory budget of this replica decides.
    let open = down().failure_policy(FailurePolicy::Open).build().unwrap();
    let mut open = service(layer(open, budget(), false));
    assert_eq!(spend(&mut open, call("alice", "x"), "daily").await, Some(1));
    assert_eq!(spend(&mut open, call("alice", "x"), "daily").await, Some(0));
    assert_eq!(spend(&mut open, call("alice", "x"), "daily").await, None);
    // With a limit in front, decided by the limits' fallback: the budget is local too.
    let open = down().failure_policy(FailurePolicy::Open).build().unwrap();
    let mut open = service(layer(open, budget(), true));
    assert_eq!(spend(&mut open, call("bob", "x"), "daily").await, Some(1));
    assert_eq!(spend(&mut open, call("bob", "x"), "daily").await, Some(0));
    let res = send(&mut open, call("bob", "x")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        res.extensions().get::<BudgetOutcome>(),
        Some(BudgetOutcome::Exhausted { .. })
    ));
    // Without a principal, nothing is charged and Redis is not asked.
    let res = send(&mut closed, request_from("192.0.2.7")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<BudgetOutcome>().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_a_budget_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let mk = || store(cluster.url(), "cb:").cluster(true).build().unwrap();
    let budget = || {
        Budget::per_day("daily", 7)
            .weight("tools/call:big", 3)
            .clone()
    };
    let hourly = || Budget::per_hour("hourly", 5);
    let with_two = |s: RedisStore| {
        RateLimitLayer::builder()
            .budget(budget())
            .budget(hourly())
            .redis(s)
            .build()
            .expect("layer")
    };
    let (mut a, mut b) = (service(with_two(mk())), service(with_two(mk())));
    // Every budget of one principal is in one slot: one atomic, all-or-nothing call.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let svc = if i % 2 == 0 { &mut a } else { &mut b };
        let res = send(svc, call("alice", "big")).await;
        statuses.push(res.status().as_u16());
    }
    // daily 7 takes two calls of 3; hourly 5 counts calls of 1 and would take five.
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429, 429, 429]);
    let res = send(&mut a, call("alice", "small")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let header = ratelimit(&res);
    assert!(header.contains("\"daily\";r=0;"), "{header}");
    assert!(header.contains("\"hourly\";r=2;"), "{header}");
    let res = send(&mut b, call("alice", "small")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        res.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with("\"daily\";q=7;w=86400"),
        "{:?}",
        res.headers()
    );
    let per_node = cluster.keys_per_node();
    let holding: Vec<_> = per_node.iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(holding.len(), 1, "one slot for one principal: {per_node:?}");
    assert_eq!(holding[0].len(), 2);
    let _ = Principal::builder("x", PrincipalKind::ApiKey);
}
