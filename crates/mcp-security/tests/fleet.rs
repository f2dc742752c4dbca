//! Two replicas on one real `redis-server`: two whole stacks built from the environment with the
//! same `MCP_RATE_LIMIT_REDIS_URL`, each behind its own axum `Router` (with `ConnectInfo`).
//!
//! - Shared bans: 11 bad credentials through replica A ban the client; replica B then refuses
//!   its failing requests with the ban's `429` and `Retry-After` and serves its valid ones
//!   (`AUDIT_BAN_SCOPE=failed`); an unban through the API on A lifts it on B.
//! - Shared budgets: a day budget of 5 units spent across both replicas, a weight-3 tool, and a
//!   third replica started later sees what was spent.
#![cfg(feature = "redis")]

#[path = "../../mcp-ratelimit/tests/redis_support/mod.rs"]
mod redis_support;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use mcp_ratelimit::Budget;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use redis_support::RedisServer;
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const BAD: &str = "mcp-sk-Hq8Zt2Lw5Nc9Vb4Xm7Kp1Rj6Yd3Fs0Ga8Ue2Ti5Oo7Pl";
const CLIENT: &str = "192.0.2.10:50000";

fn replica(url: &str, prefix: &str, extra: &[(&str, &str)]) -> SecurityLayer {
    replica_with(url, prefix, extra, None)
}

fn replica_with(
    url: &str,
    prefix: &str,
    extra: &[(&str, &str)],
    budget: Option<Budget>,
) -> SecurityLayer {
    let mut vars = vec![
        ("MCP_ENV", "development"),
        ("MCP_BIND", "127.0.0.1:8080"),
        ("MCP_API_KEY", KEY),
        ("MCP_RATE_LIMIT_REQUESTS", "1000"),
        ("MCP_RATE_LIMIT_REDIS_URL", url),
        ("MCP_RATE_LIMIT_REDIS_PREFIX", prefix),
        ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "2s"),
        ("MCP_AUDIT_BAN_DURATION", "10m"),
    ];
    vars.extend_from_slice(extra);
    let mut builder = SecurityConfig::builder_from_env(&Env::from_pairs("MCP", vars)).unwrap();
    if let Some(budget) = budget {
        builder = builder.budget(budget);
    }
    builder
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

fn router(stack: SecurityLayer) -> Router {
    Router::new()
        .route("/api", get(|| async { "api" }))
        .route(
            "/mcp",
            post(|| async { ([("content-type", "application/json")], "{}") }),
        )
        .layer(stack)
}

fn get_api(key: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/api")
        .header("host", "127.0.0.1:8080")
        .extension(ConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()));
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    b.body(Body::empty()).unwrap()
}

fn call_tool(tool: &str) -> Request<Body> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    );
    Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {KEY}"))
        .extension(ConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()))
        .body(Body::from(body))
        .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Polls `check` every 20 ms for at most `limit` (generous: machines stall; the bound checked
/// is the design's, not this wait).
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up after {limit:?} waiting for {what}");
}

fn assert_banned((status, headers, body): &(StatusCode, HeaderMap, String)) {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((595..=600).contains(&retry), "{retry}");
    assert!(headers.get("www-authenticate").is_none());
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": "rate_limited",
            "message": "Rate limit exceeded. Please try again later.",
            "detail": "Rate limit exceeded. Please try again later.",
            "retry_after": retry,
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_replica_is_enforced_by_the_other_and_lifted_by_an_unban() {
    let server = RedisServer::start();
    let url = server.url();
    let (a, b) = (replica(&url, "fleet1:", &[]), replica(&url, "fleet1:", &[]));
    let (bans_a, bans_b) = (a.ban_list().clone(), b.ban_list().clone());
    let (a, b) = (router(a), router(b));
    let ip: IpAddr = "192.0.2.10".parse().unwrap();

    for _ in 0..11 {
        let (status, headers, _) = send(&a, get_api(Some(BAD))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key("www-authenticate"));
    }
    assert!(bans_a.banned_until(ip, SystemTime::now()).is_some());
    // B never saw the client fail: the ban reaches it through Redis.
    eventually(
        "replica B to learn the ban",
        Duration::from_secs(10),
        || {
            let seen = bans_b.banned_until(ip, SystemTime::now()).is_some();
            async move { seen }
        },
    )
    .await;
    let (until_a, until_b) = (
        bans_a.banned_until(ip, SystemTime::now()).unwrap(),
        bans_b.banned_until(ip, SystemTime::now()).unwrap(),
    );
    assert!(
        until_a.duration_since(until_b).unwrap() < Duration::from_millis(1),
        "the same end, to the millisecond"
    );
    assert_banned(&send(&b, get_api(Some(BAD))).await);
    assert_banned(&send(&b, get_api(None)).await);
    let (status, _, body) = send(&b, get_api(Some(KEY))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api"));
    assert_eq!(server.cli(&["zcard", "fleet1:{bans}"]).trim(), "1");

    // Lifted through the API on A: B serves the client's failing requests their 401 again.
    assert!(bans_a.unban(ip));
    eventually("replica B to lift the ban", Duration::from_secs(10), || {
        let seen = bans_b.banned_until(ip, SystemTime::now()).is_none();
        async move { seen }
    })
    .await;
    let (status, headers, _) = send(&b, get_api(Some(BAD))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(server.cli(&["zcard", "fleet1:{bans}"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_budget_is_shared_by_three_replicas_and_a_restart_loses_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    let daily = || Budget::per_day("daily", 10).weight("tools/call:delete_note", 3);
    let start = || router(replica_with(&url, "fleet2:", &[], Some(daily())));
    let replicas = [start(), start(), start()];
    // 3 + 3 + 3 of 10 through three replicas; then 1 is left, which a weight-3 call cannot take.
    let mut remaining = Vec::new();
    for app in &replicas {
        let (status, headers, body) = send(app, call_tool("delete_note")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
        let items: Vec<_> = headers
            .get_all("ratelimit")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        remaining.push(
            items
                .into_iter()
                .find(|i| i.starts_with("\"daily\""))
                .unwrap(),
        );
    }
    assert!(remaining[0].starts_with("\"daily\";r=7;"), "{remaining:?}");
    assert!(remaining[1].starts_with("\"daily\";r=4;"), "{remaining:?}");
    assert!(remaining[2].starts_with("\"daily\";r=1;"), "{remaining:?}");
    for app in &replicas {
        let (status, headers, body) = send(app, call_tool("delete_note")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        // Two units must come back, one every 8640 s.
        assert!((8_000..=17_280).contains(&retry), "{retry}");
        assert_eq!(headers["ratelimit-policy"], "\"daily\";q=10;w=86400");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["data"]["code"], "rate_limited", "{body}");
    }
    // A replica restarted now sees what was spent: the last unit, for a weight-1 call.
    let restarted = start();
    let (status, headers, _) = send(&restarted, call_tool("read_note")).await;
    assert_eq!(status, StatusCode::OK);
    let items: Vec<_> = headers.get_all("ratelimit").iter().collect();
    assert!(
        items
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("\"daily\";r=0;")),
        "{items:?}"
    );
    let (status, _, _) = send(&restarted, call_tool("read_note")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
