//! Ban scope through the whole stack behind an axum `Router` served with `ConnectInfo`: a client
//! banned by the auth-failure detector (11 bad credentials) or by hand, then the same address
//! with a valid key is served (`AUDIT_BAN_SCOPE=failed`, the default) or refused (`all`); a bad
//! key and no credential get the ban's `429` with its `Retry-After` and the exact body, audited
//! as a ban, and the handler never runs for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::audit::{AuditLayer, Decision, MemorySink};
use mcp_security::core::config::Env;
use mcp_security::core::{BanScope, RateLimitOutcome};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const BAD: &str = "mcp-sk-Hq8Zt2Lw5Nc9Vb4Xm7Kp1Rj6Yd3Fs0Ga8Ue2Ti5Oo7Pl";
const BANNED: &str = "192.0.2.10:50000";
const OTHER: &str = "192.0.2.20:50000";
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;

/// Today's ban answer on a plain HTTP path.
fn plain_429(retry_after: u64) -> String {
    format!(
        r#"{{"error":"rate_limited","message":"Rate limit exceeded. Please try again later.","detail":"Rate limit exceeded. Please try again later.","retry_after":{retry_after}}}"#
    )
}

/// Today's ban answer on the MCP endpoint: refused before the envelope is read, so `id: null`.
fn mcp_429(retry_after: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32000,"message":"Rate limit exceeded. Please try again later.","data":{{"status":429,"code":"rate_limited","retry_after":{retry_after}}}}}}}"#
    )
}

fn stack(extra: &[(&str, &str)]) -> SecurityLayer {
    let mut vars = vec![
        ("MCP_ENV", "development"),
        ("MCP_BIND", "127.0.0.1:8080"),
        ("MCP_API_KEY", KEY),
        ("MCP_API_KEY_HEADER", "X-API-Key"),
        ("MCP_RATE_LIMIT_REQUESTS", "1000"),
    ];
    vars.extend_from_slice(extra);
    SecurityConfig::builder_from_env(&Env::from_pairs("MCP", vars))
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

struct App {
    router: Router,
    audit: AuditLayer,
    memory: Arc<MemorySink>,
    served: Arc<AtomicUsize>,
}

/// The app behind the stack, an audit layer (memory sink) outside it, and a count of the
/// requests the handlers ran for.
fn app(stack: SecurityLayer) -> App {
    let memory = Arc::new(MemorySink::new());
    let audit = AuditLayer::builder()
        .sink(Arc::clone(&memory))
        .build()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&served), Arc::clone(&served));
    let router = Router::new()
        .route(
            "/api",
            get(move || {
                a.fetch_add(1, Ordering::Relaxed);
                async { "api" }
            }),
        )
        .route(
            "/mcp",
            post(move || {
                b.fetch_add(1, Ordering::Relaxed);
                async { ([("content-type", "application/json")], "{}") }
            }),
        )
        .layer(stack)
        .layer(audit.clone());
    App {
        router,
        audit,
        memory,
        served,
    }
}

fn get_api(peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get("/api")
        .header("host", "127.0.0.1:8080")
        .extension(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn post_mcp(peer: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    if let Some(key) = key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    b.body(Body::from(TOOLS_LIST)).unwrap()
}

async fn send(app: &App, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Assert the ban's `429`: status, `Retry-After` (within a second of `expected`, as the wall
/// clock moves on), no rate-limit or auth headers, the exact body.
fn assert_banned(
    (status, headers, body): &(StatusCode, HeaderMap, String),
    expected: u64,
    mcp: bool,
) {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        retry == expected || retry + 1 == expected,
        "{retry} vs {expected}"
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    for absent in ["www-authenticate", "ratelimit", "x-ratelimit-remaining"] {
        assert!(headers.get(absent).is_none(), "{absent}: {headers:?}");
    }
    let expected_body = if mcp {
        mcp_429(retry)
    } else {
        plain_429(retry)
    };
    // Compared as JSON: the member order depends on serde_json's `preserve_order` feature.
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(parse(body), parse(&expected_body), "{body}");
}

#[tokio::test]
async fn eleven_bad_keys_ban_the_address_but_its_valid_key_is_still_served() {
    let stack = stack(&[("MCP_AUDIT_BAN_DURATION", "10m")]);
    let bans = stack.ban_list().clone();
    let app = app(stack);
    let bad = bearer(BAD);
    for _ in 0..11 {
        let (status, headers, _) = send(&app, get_api(BANNED, &[("authorization", &bad)])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key("www-authenticate"));
    }
    let ip = "192.0.2.10".parse().unwrap();
    assert!(
        bans.banned_until(ip, SystemTime::now()).is_some(),
        "the detector banned the address"
    );
    let served_before = app.served.load(Ordering::Relaxed);
    assert_eq!(served_before, 0);

    // A valid key from the banned address: served, limited per principal as usual.
    let ok = bearer(KEY);
    let (status, headers, body) = send(&app, get_api(BANNED, &[("authorization", &ok)])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api"));
    assert!(headers.contains_key("x-ratelimit-remaining"), "{headers:?}");
    // In the configured API-key header too.
    let (status, _, body) = send(&app, get_api(BANNED, &[("x-api-key", KEY)])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api"));
    // And on the MCP endpoint.
    let (status, _, body) = send(&app, post_mcp(BANNED, Some(KEY))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
    assert_eq!(app.served.load(Ordering::Relaxed), 3);

    // A bad key, a bad key in the API-key header, no credential: the ban's 429, exactly.
    assert_banned(
        &send(&app, get_api(BANNED, &[("authorization", &bad)])).await,
        600,
        false,
    );
    assert_banned(
        &send(&app, get_api(BANNED, &[("x-api-key", BAD)])).await,
        600,
        false,
    );
    assert_banned(&send(&app, get_api(BANNED, &[])).await, 600, false);
    assert_banned(&send(&app, post_mcp(BANNED, Some(BAD))).await, 600, true);
    assert_banned(&send(&app, post_mcp(BANNED, None)).await, 600, true);
    assert_eq!(app.served.load(Ordering::Relaxed), 3, "never served");

    // Another address is not affected.
    let (status, _, _) = send(&app, get_api(OTHER, &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The audit trail: the refusals are bans (reason rate_limited, outcome banned), with no auth
    // failure of their own (the detector does not count them again).
    app.audit.close().await.unwrap();
    let records = app.memory.requests();
    let banned: Vec<_> = records
        .iter()
        .filter(|r| r.status() == Some(StatusCode::TOO_MANY_REQUESTS))
        .collect();
    assert_eq!(banned.len(), 5);
    for r in &banned {
        assert_eq!(r.decision(), Decision::Rejected);
        assert_eq!(r.reason(), Some("rate_limited"));
        assert!(
            matches!(r.rate_limit(), Some(RateLimitOutcome::Banned { .. })),
            "{:?}",
            r.rate_limit()
        );
        assert_eq!(r.rate_limit_policy().as_deref(), Some("ban"));
        assert_eq!(r.detail().as_deref(), Some("client is on the ban list"));
        assert_eq!(r.auth_failure(), None);
    }
    let served: Vec<_> = records
        .iter()
        .filter(|r| r.status() == Some(StatusCode::OK))
        .collect();
    assert_eq!(served.len(), 3);
    assert!(
        served
            .iter()
            .all(|r| r.auth_outcome() == Some("authenticated"))
    );
}

#[tokio::test]
async fn scope_all_refuses_the_valid_key_too() {
    let stack = stack(&[("MCP_AUDIT_BAN_SCOPE", "all")]);
    stack.ban_list().ban(
        "192.0.2.10".parse().unwrap(),
        SystemTime::now() + Duration::from_secs(300),
    );
    let app = app(stack);
    let ok = bearer(KEY);
    assert_banned(
        &send(&app, get_api(BANNED, &[("authorization", &ok)])).await,
        300,
        false,
    );
    assert_banned(&send(&app, post_mcp(BANNED, Some(KEY))).await, 300, true);
    assert_banned(&send(&app, get_api(BANNED, &[])).await, 300, false);
    assert_eq!(app.served.load(Ordering::Relaxed), 0);
    let (status, _, _) = send(&app, get_api(OTHER, &[("authorization", &ok)])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_builder_sets_the_scope_and_the_default_is_failed() {
    for (scope, valid_status) in [
        (None, StatusCode::OK),
        (Some(BanScope::Failed), StatusCode::OK),
        (Some(BanScope::All), StatusCode::TOO_MANY_REQUESTS),
    ] {
        let mut b = SecurityConfig::builder()
            .environment(mcp_security::core::config::Environment::Development)
            .bind_addr("127.0.0.1:8080".parse().unwrap())
            .api_key(mcp_security::core::config::Secret::new(KEY));
        if let Some(scope) = scope {
            b = b.ban_scope(scope);
        }
        let stack = b
            .build()
            .unwrap()
            .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
            .unwrap();
        stack.ban_list().ban(
            "192.0.2.10".parse().unwrap(),
            SystemTime::now() + Duration::from_secs(60),
        );
        let app = app(stack);
        let ok = bearer(KEY);
        let (status, _, _) = send(&app, get_api(BANNED, &[("authorization", &ok)])).await;
        assert_eq!(status, valid_status, "{scope:?}");
        assert_banned(&send(&app, get_api(BANNED, &[])).await, 60, false);
    }
}

#[test]
fn a_bad_scope_names_the_variable() {
    let env = Env::from_pairs(
        "MCP",
        [("MCP_API_KEY", KEY), ("MCP_AUDIT_BAN_SCOPE", "everything")],
    );
    let err = SecurityConfig::builder_from_env(&env).unwrap_err();
    assert_eq!(err.setting(), "MCP_AUDIT_BAN_SCOPE");
    assert_eq!(err.value(), Some("everything"));
}
