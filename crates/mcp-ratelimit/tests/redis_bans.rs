//! A ban list shared through a real redis-server ([`RedisBanSync`]): a ban or unban on one
//! list reaches the other within a bounded wait; the store's own `ban`/`unban`/`bans` (the CLI's)
//! act on the same set; bans made while Redis is down are enforced locally and pushed when it
//! returns.
#![cfg(feature = "redis")]

mod redis_support;

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use mcp_ratelimit::redis::{RedisBanSync, RedisStore};
use mcp_security_core::BanList;
use redis_support::*;

fn store(url: String, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    // Generous: machines stall. The design's bound (about 500 ms) is not what is checked here.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}

fn banned(list: &BanList, ip: IpAddr) -> impl Future<Output = bool> + use<> {
    let seen = list.banned_until(ip, SystemTime::now()).is_some();
    async move { seen }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_unbans_reach_every_list() {
    let server = RedisServer::start();
    let (a, b) = (BanList::new(), BanList::new());
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    let v6: IpAddr = "2001:db8:1:100::".parse().unwrap();
    let early = SystemTime::now() + Duration::from_secs(300);
    // A ban recorded before the sync starts is pushed too.
    b.ban(v6, early);
    assert!(RedisBanSync::start(&store(server.url(), "s1:"), &a));
    assert!(RedisBanSync::start(&store(server.url(), "s1:"), &b));
    assert!(
        !RedisBanSync::start(&store(server.url(), "s1:"), &a),
        "once per list"
    );

    let until = SystemTime::now() + Duration::from_secs(600);
    a.ban(ip, until);
    eventually("b to learn a's ban", || banned(&b, ip)).await;
    eventually("a to learn b's early ban", || banned(&a, v6)).await;
    let learned = b.banned_until(ip, SystemTime::now()).unwrap();
    assert!(until.duration_since(learned).unwrap() < Duration::from_millis(1));

    // The store's own view (what `mcp-security ban list` prints).
    let admin = store(server.url(), "s1:");
    let listed = admin.bans().await.unwrap();
    assert_eq!(
        listed.iter().map(|(ip, _)| *ip).collect::<Vec<_>>(),
        [v6, ip]
    );

    // Unban on b: lifted on a.
    assert!(b.unban(ip));
    eventually("a to lift the ban", || async { !banned(&a, ip).await }).await;
    // Unban through the store (`mcp-security ban remove`): lifted on both.
    assert!(admin.unban(v6).await.unwrap());
    assert!(!admin.unban(v6).await.unwrap(), "no such ban any more");
    eventually("both to lift the v6 ban", || async {
        !banned(&a, v6).await && !banned(&b, v6).await
    })
    .await;
    // A ban through the store reaches both.
    admin.ban(ip, until).await.unwrap();
    eventually("both to learn the admin's ban", || async {
        banned(&a, ip).await && banned(&b, ip).await
    })
    .await;
    assert_eq!(server.cli(&["zcard", "s1:{bans}"]).trim(), "1");
    let ttl: i64 = server.cli(&["pttl", "s1:{bans}"]).trim().parse().unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_made_while_redis_is_down_are_enforced_and_pushed_later() {
    let mut server = RedisServer::start();
    let (a, b) = (BanList::new(), BanList::new());
    RedisBanSync::start(&store(server.url(), "s2:"), &a);
    RedisBanSync::start(&store(server.url(), "s2:"), &b);
    let first: IpAddr = "198.51.100.1".parse().unwrap();
    a.ban(first, SystemTime::now() + Duration::from_secs(600));
    eventually("b to learn the first ban", || banned(&b, first)).await;

    server.stop();
    let second: IpAddr = "198.51.100.2".parse().unwrap();
    a.ban(second, SystemTime::now() + Duration::from_secs(600));
    // Enforced locally, and b keeps what it knew.
    assert!(banned(&a, second).await);
    assert!(banned(&b, first).await);
    tokio::time::sleep(Duration::from_millis(600)).await; // a failed sync or two
    assert!(banned(&b, first).await, "a failing Redis lifts nothing");

    server.restart();
    eventually("b to learn the ban made while Redis was down", || {
        banned(&b, second)
    })
    .await;
}

#[tokio::test]
async fn the_sync_of_a_dropped_list_stops() {
    let server = RedisServer::start();
    let list = BanList::new();
    RedisBanSync::start(&store(server.url(), "s3:"), &list);
    let weak = list.downgrade();
    drop(list);
    assert!(weak.upgrade().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_are_shared_on_a_redis_cluster_too() {
    let cluster = RedisCluster::start();
    let store = || {
        RedisStore::builder(cluster.url())
            .cluster(true)
            .prefix("c1:")
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap()
    };
    let (a, b) = (BanList::new(), BanList::new());
    RedisBanSync::start(&store(), &a);
    RedisBanSync::start(&store(), &b);
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    a.ban(ip, SystemTime::now() + Duration::from_secs(600));
    eventually("b to learn the ban through the cluster", || banned(&b, ip)).await;
    b.unban(ip);
    eventually("a to lift it", || async { !banned(&a, ip).await }).await;
    // The set and its version share one slot: one node holds both.
    let per_node = cluster.keys_per_node();
    let holding: Vec<_> = per_node.iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(holding.len(), 1, "{per_node:?}");
}
