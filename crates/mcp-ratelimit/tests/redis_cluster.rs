//! RedisStore on a real three-node Redis Cluster (started by each test: three
//! `redis-server --cluster-enabled yes` joined with `redis-cli --cluster create`).
#![cfg(feature = "redis")]

mod redis_support;

use std::time::Duration;

use http::StatusCode;
use mcp_ratelimit::redis::{RedisBackend, RedisStore, RedisStoreBuilder};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::RateLimitOutcome;
use mcp_security_core::config::Env;
use redis_support::*;

/// Generous: the tests assert on counts and statuses, never on time.
fn store(cluster: &RedisCluster, prefix: &str) -> RedisStoreBuilder {
    RedisStore::builder(cluster.url())
        .cluster(true)
        .prefix(prefix)
        .timeout(Duration::from_secs(3))
}

fn five_per_hour(store: RedisStore) -> RateLimitLayer<RedisBackend> {
    RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::new(5, Duration::from_secs(3600)),
            KeySelector::client_addr(),
        ))
        .redis(store)
        .build()
        .expect("layer")
}

/// Alternates 12 requests of one client between two layers; returns the statuses, asserting
/// each answer's headers, outcome and (for refusals) body.
async fn twelve_over_two(a: &mut Svc, b: &mut Svc, ip: &str) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..12 {
        let svc = if i % 2 == 0 { &mut *a } else { &mut *b };
        let res = send(svc, request_from(ip)).await;
        assert_eq!(res.headers()["x-ratelimit-limit"], "5");
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
            assert!(res.headers().contains_key("retry-after"));
            assert!(matches!(
                res.extensions().get::<RateLimitOutcome>(),
                Some(RateLimitOutcome::Limited { .. })
            ));
            assert_eq!(body_json(res).await["error"], "rate_limited");
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            assert!(
                matches!(
                    res.extensions().get::<RateLimitOutcome>(),
                    Some(RateLimitOutcome::Allowed { .. })
                ),
                "{:?}",
                res.extensions().get::<RateLimitOutcome>()
            );
            statuses.push(res.status());
        }
    }
    statuses
}

/// `<prefix>{<16 hex>}<16 hex>`: the caller's hash tag, then the rest of the key's digest.
fn assert_key_shape(key: &str, prefix: &str) -> String {
    let rest = key.strip_prefix(prefix).unwrap_or_else(|| panic!("{key}"));
    let (tag, tail) = rest
        .strip_prefix('{')
        .and_then(|r| r.split_once('}'))
        .unwrap_or_else(|| panic!("no hash tag in {key}"));
    assert_eq!(tag.len(), 16, "{key}");
    assert_eq!(tail.len(), 16, "{key}");
    assert!(
        (tag.to_owned() + tail)
            .bytes()
            .all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    tag.to_owned()
}

#[tokio::test]
async fn two_stores_share_exactly_five_of_twelve_and_callers_spread_over_the_nodes() {
    let cluster = RedisCluster::start();
    let (sa, sb) = (
        store(&cluster, "c1:").build().expect("store"),
        store(&cluster, "c1:").build().expect("store"),
    );
    assert_eq!(
        sa.display_url(),
        format!(
            "redis://127.0.0.1:{}/0 (Redis Cluster, 1 seed node)",
            cluster.nodes[0].port
        )
    );
    sa.warm_up().await.expect("the cluster answers");
    let (mut a, mut b) = (service(five_per_hour(sa)), service(five_per_hour(sb)));
    let statuses = twelve_over_two(&mut a, &mut b, "203.0.113.9").await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);

    // Forty more callers, one request each: their keys land on more than one node (the seed
    // node alone does not hold them all: the client followed the slots).
    for i in 0..40 {
        let res = send(&mut a, request_from(&format!("198.51.100.{i}"))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-remaining"], "4");
    }
    let per_node = cluster.keys_per_node();
    let mut tags = std::collections::HashSet::new();
    for keys in &per_node {
        for key in keys {
            tags.insert(assert_key_shape(key, "c1:"));
        }
    }
    assert_eq!(tags.len(), 41, "one tag per caller: {per_node:?}");
    let holding = per_node.iter().filter(|k| !k.is_empty()).count();
    assert!(holding >= 2, "keys on {holding} node(s): {per_node:?}");
    // And each key sits on the node that owns its slot (Redis would refuse it elsewhere).
    for (node, keys) in cluster.nodes.iter().zip(&per_node) {
        for key in keys {
            let slot = node.cli(&["cluster", "keyslot", key]);
            let count = node.cli(&["cluster", "countkeysinslot", slot.trim()]);
            assert!(count.trim().parse::<u64>().unwrap() >= 1, "{key} {slot}");
        }
    }
}

#[tokio::test]
async fn one_callers_limits_are_one_atomic_script_on_its_slot() {
    let cluster = RedisCluster::start();
    let store = store(&cluster, "c2:").build().unwrap();
    store
        .warm_up()
        .await
        .expect("the script loads on every primary");
    let layer = RateLimitLayer::builder()
        .limit(Limit::new(
            "ip-hour",
            Quota::new(5, Duration::from_secs(3600)),
            KeySelector::client_addr(),
        ))
        .limit(Limit::new(
            "ip-minute",
            Quota::per_minute(3),
            KeySelector::client_addr(),
        ))
        .redis(store.clone())
        .build()
        .unwrap();
    let mut svc = service(layer);
    let before = cluster.script_calls();
    for expected in ["2", "1", "0"] {
        let res = send(&mut svc, request_from("192.0.2.77")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-remaining"], expected);
    }
    let res = send(&mut svc, request_from("192.0.2.77")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["x-ratelimit-limit"], "3");
    assert_eq!(body_json(res).await["error"], "rate_limited");
    // Four decisions, four script calls: both limits in one call each (one slot).
    assert_eq!(cluster.script_calls() - before, 4);
    assert_eq!(store.stats().round_trips, 4);
    // Both keys of the caller share a tag and so a node; the refusal charged neither: the
    // hourly limit still has 2 left (5 − 3), which the next minute's requests will see.
    let per_node = cluster.keys_per_node();
    let holding: Vec<_> = per_node.iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(holding.len(), 1, "{per_node:?}");
    assert_eq!(holding[0].len(), 2, "{per_node:?}");
    let tags: Vec<String> = holding[0]
        .iter()
        .map(|k| assert_key_shape(k, "c2:"))
        .collect();
    assert_eq!(tags[0], tags[1]);
}

#[tokio::test]
async fn limits_on_two_callers_span_slots_and_stay_all_or_nothing() {
    let cluster = RedisCluster::start();
    let store = store(&cluster, "c3:").build().unwrap();
    let layer = RateLimitLayer::builder()
        .limit(Limit::new(
            "ip",
            Quota::new(5, Duration::from_secs(3600)),
            KeySelector::client_addr(),
        ))
        .limit(Limit::new(
            "user",
            Quota::new(2, Duration::from_secs(3600)),
            KeySelector::principal(),
        ))
        .redis(store.clone())
        .build()
        .unwrap();
    let mut svc = service(layer);
    // alice (tag: the principal) from 192.0.2.1 (tag: the address): two slots per request.
    let as_alice = || request_as("alice");
    for expected in ["1", "0"] {
        let res = send(&mut svc, as_alice()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-remaining"], expected);
        assert_eq!(res.headers()["x-ratelimit-limit"], "2");
    }
    // The per-user limit refuses; the per-address limit, on another slot, admitted and was
    // refunded.
    let res = send(&mut svc, as_alice()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["x-ratelimit-limit"], "2");
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { .. })
    ));
    assert_eq!(body_json(res).await["error"], "rate_limited");
    // An anonymous request from the same address is charged on the address alone: 5 − 2 − 1.
    let res = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-limit"], "5");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "2");
    // The two tags live in different slots (with three nodes, usually on two nodes).
    let tags: std::collections::HashSet<String> = cluster
        .keys_per_node()
        .iter()
        .flatten()
        .map(|k| assert_key_shape(k, "c3:"))
        .collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    // alice's requests were two calls each, the refused one a refund more, the anonymous one.
    assert_eq!(store.stats().round_trips, 2 * 3 + 1 + 1);
}

/// The slot of `key` moved from its node to another, keys and all (what `redis-cli --cluster
/// reshard` does, for one slot).
fn move_slot_of(cluster: &RedisCluster, key: &str) {
    let slot = cluster.nodes[0].cli(&["cluster", "keyslot", key]);
    let slot = slot.trim();
    let id = |n: &RedisServer| n.cli(&["cluster", "myid"]).trim().to_owned();
    let from = cluster
        .nodes
        .iter()
        .position(|n| n.cli(&["cluster", "countkeysinslot", slot]).trim() != "0")
        .expect("a node holds the key");
    let to = (from + 1) % cluster.nodes.len();
    let (src, dst) = (&cluster.nodes[from], &cluster.nodes[to]);
    let ok = |out: String| assert_eq!(out.trim(), "OK", "{out}");
    ok(dst.cli(&["cluster", "setslot", slot, "importing", &id(src)]));
    ok(src.cli(&["cluster", "setslot", slot, "migrating", &id(dst)]));
    let keys = src.cli(&["cluster", "getkeysinslot", slot, "100"]);
    for k in keys.lines().filter(|l| !l.is_empty()) {
        ok(src.cli(&[
            "migrate",
            "127.0.0.1",
            &dst.port.to_string(),
            k,
            "0",
            "5000",
        ]));
    }
    for node in &cluster.nodes {
        ok(node.cli(&["cluster", "setslot", slot, "node", &id(dst)]));
    }
    assert_eq!(
        dst.cli(&["cluster", "countkeysinslot", slot]).trim(),
        "1",
        "the key moved"
    );
}

#[tokio::test]
async fn a_moved_slot_is_followed_and_its_count_kept() {
    let cluster = RedisCluster::start();
    let store = store(&cluster, "c4:").build().unwrap();
    let mut svc = service(five_per_hour(store.clone()));
    for expected in ["4", "3"] {
        let res = send(&mut svc, request_from("203.0.113.44")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-remaining"], expected);
    }
    let key = cluster
        .keys_per_node()
        .into_iter()
        .flatten()
        .next()
        .expect("the caller's key");
    move_slot_of(&cluster, &key);
    // The client's slot map is stale: the old node answers MOVED, the client follows it, and
    // the count continues where it was.
    for expected in ["2", "1", "0"] {
        let res = send(&mut svc, request_from("203.0.113.44")).await;
        assert_eq!(res.status(), StatusCode::OK, "after the move");
        assert_eq!(res.headers()["x-ratelimit-remaining"], expected);
    }
    let res = send(&mut svc, request_from("203.0.113.44")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_json(res).await["error"], "rate_limited");
    assert!(!store.stats().degraded);
    assert_eq!(store.stats().errors, 0);
}

#[tokio::test]
async fn from_the_environment_with_more_seed_nodes() {
    let cluster = RedisCluster::start();
    let nodes = format!("{},{}", cluster.nodes[1].url(), cluster.nodes[2].url());
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_RATE_LIMIT_REDIS_URL", cluster.url()),
            ("MCP_RATE_LIMIT_REDIS_CLUSTER", "true".to_owned()),
            ("MCP_RATE_LIMIT_REDIS_CLUSTER_NODES", nodes),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "3s".to_owned()),
            ("MCP_RATE_LIMIT_REDIS_PREFIX", "c5:".to_owned()),
        ],
    );
    let build = || RedisStore::from_env(&env).unwrap().expect("configured");
    let (sa, sb) = (build(), build());
    assert!(
        sa.display_url().ends_with("(Redis Cluster, 3 seed nodes)"),
        "{}",
        sa.display_url()
    );
    let (mut a, mut b) = (service(five_per_hour(sa)), service(five_per_hour(sb)));
    let statuses = twelve_over_two(&mut a, &mut b, "198.51.100.200").await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn over_tls_two_stores_share_exactly_five_of_twelve() {
    let pki = Pki::new();
    let cluster = RedisCluster::start_with(Some(pki.server("server", false)));
    let build = || {
        RedisStore::builder(cluster.tls_url())
            .cluster(true)
            .ca_file(pki.path("ca.crt"))
            .prefix("c6:")
            .timeout(Duration::from_secs(3))
            .build()
            .expect("store")
    };
    let (sa, sb) = (build(), build());
    assert!(
        sa.display_url().starts_with("rediss://127.0.0.1:"),
        "{}",
        sa.display_url()
    );
    sa.warm_up()
        .await
        .expect("TLS to every node, verified with the CA file");
    let (mut a, mut b) = (service(five_per_hour(sa)), service(five_per_hour(sb)));
    let statuses = twelve_over_two(&mut a, &mut b, "203.0.113.66").await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(cluster.keys_per_node().concat().len(), 1);

    // The bundled public roots do not know the test CA: refused, and the failure policy answers.
    let unverified = RedisStore::builder(cluster.tls_url())
        .cluster(true)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert!(unverified.warm_up().await.is_err());
    let mut svc = service(five_per_hour(unverified));
    let res = send(&mut svc, request_from("203.0.113.67")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(body_json(res).await["error"], "rate_limit_unavailable");
}

#[test]
fn cluster_and_sentinel_settings_are_checked_when_built_naming_the_setting() {
    let err = |b: RedisStoreBuilder| b.build().unwrap_err();
    let e = err(RedisStore::builder("unix:///run/redis.sock").cluster(true));
    assert_eq!(e.setting(), "redis.url");
    assert!(e.reason().contains("Cluster"), "{e}");
    let e = err(RedisStore::builder("redis://h:7000/3").cluster(true));
    assert_eq!(e.setting(), "redis.url");
    assert!(e.reason().contains("database 0"), "{e}");
    let e = err(RedisStore::builder("redis://h:7000/").cluster_nodes(["rediss://h2:7001"]));
    assert_eq!(e.setting(), "redis.cluster_nodes");
    assert!(e.reason().contains("redis://"), "{e}");
    let e = err(RedisStore::builder("redis://h:7000/").cluster_nodes(["not a url :pw@"]));
    assert_eq!(e.setting(), "redis.cluster_nodes");
    assert!(!e.to_string().contains(":pw@"), "{e}");
    let e = err(RedisStore::builder("redis://h:7000/")
        .cluster(true)
        .sentinel(["127.0.0.1:26379"], "m"));
    assert_eq!(e.setting(), "redis.sentinel");
    let e = err(RedisStore::builder("redis://m/").sentinel(["127.0.0.1"], "m"));
    assert_eq!(e.setting(), "redis.sentinel");
    assert_eq!(e.value(), Some("127.0.0.1"));
    let e = err(RedisStore::builder("redis://m/").sentinel(Vec::<String>::new(), "m"));
    assert_eq!(e.setting(), "redis.sentinel");
    let e = err(RedisStore::builder("redis://m/").sentinel(["127.0.0.1:26379"], " "));
    assert_eq!(e.setting(), "redis.sentinel_master");

    // The credentials the cluster nodes get are the URL's, masked.
    let s = RedisStore::builder("rediss://u:secret-pw@h:7000/")
        .cluster_nodes(["rediss://h2:7001", "rediss://h3:7002"])
        .build()
        .unwrap();
    assert_eq!(
        s.display_url(),
        "rediss://u:***@h:7000/0 (Redis Cluster, 3 seed nodes)"
    );
    assert!(!format!("{s:?}").contains("secret-pw"));
    let s = RedisStore::builder("redis://:secret-pw@ignored/2")
        .sentinel(["127.0.0.1:26379", "[::1]:26380"], "mymaster")
        .build()
        .unwrap();
    assert_eq!(
        s.display_url(),
        "redis://:***@mymaster/2 (Sentinel master mymaster at 127.0.0.1:26379,[::1]:26380)"
    );

    // The environment names its variables.
    let env = |pairs: &[(&str, &str)]| {
        RedisStore::from_env(&Env::from_pairs("MCP", pairs.iter().copied())).unwrap_err()
    };
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://h:7000/"),
        ("MCP_RATE_LIMIT_REDIS_CLUSTER_NODES", "rediss://h2:7001"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_CLUSTER_NODES");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://h:7000/"),
        ("MCP_RATE_LIMIT_REDIS_CLUSTER", "false"),
        ("MCP_RATE_LIMIT_REDIS_CLUSTER_NODES", "redis://h2:7001"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_CLUSTER_NODES");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://h:7000/"),
        ("MCP_RATE_LIMIT_REDIS_CLUSTER", "maybe"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_CLUSTER");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://m/"),
        ("MCP_RATE_LIMIT_REDIS_SENTINEL", "127.0.0.1:26379"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_SENTINEL_MASTER");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://m/"),
        ("MCP_RATE_LIMIT_REDIS_SENTINEL", "127.0.0.1"),
        ("MCP_RATE_LIMIT_REDIS_SENTINEL_MASTER", "m"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_SENTINEL");
    let e = env(&[
        ("MCP_RATE_LIMIT_REDIS_URL", "redis://m/"),
        ("MCP_RATE_LIMIT_REDIS_SENTINEL_MASTER", "m"),
    ]);
    assert_eq!(e.setting(), "MCP_RATE_LIMIT_REDIS_SENTINEL");
}
