//! RedisStore across failovers, against real servers started by each test: a primary promoted
//! away by Redis Sentinel (one primary, one replica, one sentinel on loopback), and a Redis
//! Cluster node killed and restarted. (A plain server killed and restarted on the same port:
//! `redis_store.rs` and, over TLS with an ACL user, `redis_tls.rs`.)
#![cfg(feature = "redis")]

mod redis_support;

use std::time::Duration;

use http::StatusCode;
use mcp_ratelimit::redis::{RedisBackend, RedisStore};
use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use mcp_security_core::RateLimitOutcome;
use mcp_security_core::config::Env;
use redis_support::*;

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

/// The fail-closed answer: 503, `Retry-After: 1`, JSON body, `Unavailable` for the audit.
async fn assert_unavailable(svc: &mut Svc, ip: &str) {
    let res = send(svc, request_from(ip)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(!res.headers().contains_key("x-ratelimit-remaining"));
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Unavailable {
            retry_after_secs: 1
        })
    ));
    let body = body_json(res).await;
    assert_eq!(body["error"], "rate_limit_unavailable");
}

/// Sends until an answer is not the failure policy's 503 (at most 30 s), and returns it.
async fn first_decision_after_recovery(
    svc: &mut Svc,
    ip: &str,
) -> http::Response<mcp_security_core::GuardBody<http_body_util::Full<bytes::Bytes>>> {
    for _ in 0..600 {
        let res = send(svc, request_from(ip)).await;
        if res.status() != StatusCode::SERVICE_UNAVAILABLE {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("decisions did not resume within 30 s");
}

async fn admitted(svc: &mut Svc, ip: &str, remaining: &str) {
    let res = send(svc, request_from(ip)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], remaining);
    assert!(matches!(
        res.extensions().get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Allowed { .. })
    ));
}

async fn limited(svc: &mut Svc, ip: &str) {
    let res = send(svc, request_from(ip)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(body_json(res).await["error"], "rate_limited");
}

#[tokio::test]
async fn sentinel_a_promoted_replica_is_followed_and_keeps_the_counts() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_with(Options {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..Options::default()
    });
    wait_for(
        "the replica to sync with the primary",
        Duration::from_secs(20),
        || {
            let info = replica.cli(&["info", "replication"]);
            if info.contains("master_link_status:up") {
                Ok(())
            } else {
                Err(info)
            }
        },
    );
    let sentinel = Sentinel::start(primary.port);
    assert_eq!(sentinel.primary_port(), Some(primary.port));
    wait_for(
        "the sentinel to know the replica",
        Duration::from_secs(20),
        || {
            let replicas = sentinel.cli(&["sentinel", "replicas", MASTER]);
            if replicas.contains(&replica.port.to_string()) {
                Ok(())
            } else {
                Err(replicas)
            }
        },
    );

    // Two replicas of the application, each with its own store, from the environment.
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_RATE_LIMIT_REDIS_URL", "redis://primary/0".to_owned()),
            ("MCP_RATE_LIMIT_REDIS_SENTINEL", sentinel.addr()),
            ("MCP_RATE_LIMIT_REDIS_SENTINEL_MASTER", MASTER.to_owned()),
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "2s".to_owned()),
            ("MCP_RATE_LIMIT_REDIS_PREFIX", "s1:".to_owned()),
        ],
    );
    let build = || RedisStore::from_env(&env).unwrap().expect("configured");
    let (sa, sb) = (build(), build());
    assert_eq!(
        sa.display_url(),
        format!(
            "redis://{MASTER}/0 (Sentinel master {MASTER} at {})",
            sentinel.addr()
        )
    );
    sa.warm_up().await.expect("the sentinel names the primary");
    let (mut a, mut b) = (
        service(five_per_hour(sa.clone())),
        service(five_per_hour(sb)),
    );
    let ip = "203.0.113.70";
    admitted(&mut a, ip, "4").await;
    admitted(&mut b, ip, "3").await;
    admitted(&mut a, ip, "2").await;
    assert!(primary.script_calls() >= 3);
    // The counts reached the replica before the primary goes.
    assert_eq!(primary.cli(&["wait", "1", "5000"]).trim(), "1");

    primary.stop();
    // While no primary answers, the failure policy does.
    assert_unavailable(&mut b, ip).await;
    let promoted = wait_for(
        "the sentinel to promote the replica",
        Duration::from_secs(30),
        || match sentinel.primary_port() {
            Some(p) if p == replica.port => Ok(p),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(promoted, replica.port);

    // The same stores, no restart: the sentinel is asked again and the promoted replica
    // decides, with the counts it replicated: 2 left, shared by both.
    let res = first_decision_after_recovery(&mut b, ip).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "1");
    admitted(&mut a, ip, "0").await;
    limited(&mut b, ip).await;
    limited(&mut a, ip).await;
    assert!(replica.script_calls() >= 2);
    assert!(
        replica
            .cli(&["info", "replication"])
            .contains("role:master")
    );
    assert!(!sa.stats().degraded);
}

#[tokio::test]
async fn a_cluster_node_restarted_on_its_port_decides_again() {
    let mut cluster = RedisCluster::start();
    let store = RedisStore::builder(cluster.url())
        .cluster(true)
        .prefix("s2:")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut svc = service(five_per_hour(store.clone()));
    let ip = "198.51.100.90";
    admitted(&mut svc, ip, "4").await;
    let holder = cluster
        .keys_per_node()
        .iter()
        .position(|keys| !keys.is_empty())
        .expect("a node holds the key");

    cluster.nodes[holder].stop();
    assert_unavailable(&mut svc, ip).await;
    assert!(store.stats().degraded);

    // Back on its port with its cluster config (its slots), without the data (no persistence).
    cluster.nodes[holder].restart();
    wait_for(
        "the cluster to be whole again",
        Duration::from_secs(30),
        || {
            let info = cluster.nodes[holder].cli(&["cluster", "info"]);
            if info.contains("cluster_state:ok") {
                Ok(())
            } else {
                Err(info)
            }
        },
    );
    let res = first_decision_after_recovery(&mut svc, ip).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "4");
    for remaining in ["3", "2", "1", "0"] {
        admitted(&mut svc, ip, remaining).await;
    }
    limited(&mut svc, ip).await;
    assert!(!store.stats().degraded);
}
