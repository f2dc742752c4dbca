//! Per-principal budgets through the whole stack behind an axum `Router` served with
//! `ConnectInfo`: the TOML `[budget]` section (and the builder), a weight-10 tool exhausting the
//! budget ten times faster, the remaining units on admitted responses, the exact `429` naming
//! the budget, anonymous requests never spending, and the decision in the audit record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::audit::{AuditLayer, MemorySink};
use mcp_security::core::config::{Env, Environment, Secret};
use mcp_security::core::{BudgetOutcome, RateLimitOutcome, Scopes};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::ratelimit::Budget;
use mcp_security::{SecurityConfig, SecurityConfigBuilder, SecurityLayer};
use serde_json::{Value, json};
use tower::ServiceExt;

const ALICE: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const BOB: &str = "mcp-sk-Hq8Zt2Lw5Nc9Vb4Xm7Kp1Rj6Yd3Fs0Ga8Ue2Ti5Oo7Pl";

/// 20 units a day; `delete_note` costs 10, `tools/list` nothing.
const TOML: &str = r#"
[budget.daily]
units = 20
window = "1d"

[budget.daily.weights]
"tools/call:delete_note" = 10
"tools/list" = 0
"#;

fn builder() -> SecurityConfigBuilder {
    SecurityConfig::builder()
        .environment(Environment::Development)
        .bind_addr("127.0.0.1:8080".parse().unwrap())
        .named_api_key("alice", Secret::new(ALICE), Scopes::new(["*"]))
        .named_api_key("bob", Secret::new(BOB), Scopes::new(["*"]))
}

fn layer(b: SecurityConfigBuilder) -> SecurityLayer {
    b.build()
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

fn app(stack: SecurityLayer) -> App {
    let memory = Arc::new(MemorySink::new());
    let audit = AuditLayer::builder()
        .sink(Arc::clone(&memory))
        .build()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/mcp",
            post(move || {
                counter.fetch_add(1, Ordering::Relaxed);
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

fn tool_call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

async fn post_mcp(app: &App, key: Option<&str>, body: String) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ));
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let res = app
        .router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The budget's `RateLimit` item of an admitted response: `"daily";r=<remaining>;t=<secs>`.
fn daily_remaining(headers: &HeaderMap) -> u64 {
    let item = values(headers, "ratelimit")
        .into_iter()
        .find(|v| v.starts_with("\"daily\";"))
        .unwrap_or_else(|| panic!("no budget item: {headers:?}"));
    let r = item.split(';').nth(1).unwrap();
    r.strip_prefix("r=").unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_weight_ten_tool_exhausts_the_budget_ten_times_faster() {
    let app = app(layer(builder().config_toml(TOML)));
    // Alice reads: 20 calls of 1 unit, the remaining count going down by one.
    for i in 1..=20u64 {
        let (status, headers, _) = post_mcp(&app, Some(ALICE), tool_call("read_note")).await;
        assert_eq!(status, StatusCode::OK, "call {i}");
        assert_eq!(daily_remaining(&headers), 20 - i);
        assert!(
            values(&headers, "ratelimit-policy").contains(&"\"daily\";q=20;w=86400"),
            "{headers:?}"
        );
    }
    // Bob deletes: 2 calls of 10 units.
    for i in 1..=2u64 {
        let (status, headers, _) = post_mcp(&app, Some(BOB), tool_call("delete_note")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(daily_remaining(&headers), 20 - 10 * i);
    }
    assert_eq!(app.served.load(Ordering::Relaxed), 22);

    // Both are out; a free method still passes.
    let refusal = |retry_after: u64| {
        json!({"jsonrpc": "2.0", "id": 9, "error": {"code": -32000,
            "message": "Rate limit exceeded. Please try again later.",
            "data": {"status": 429, "code": "rate_limited", "retry_after": retry_after}}})
    };
    // One unit comes back every 86400 / 20 = 4320 s: a read waits one unit, a delete ten.
    for (key, tool, wait) in [
        (ALICE, "read_note", 4_320u64),
        (BOB, "delete_note", 43_200),
        (ALICE, "delete_note", 43_200),
    ] {
        let (status, headers, body) = post_mcp(&app, Some(key), tool_call(tool)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(headers["retry-after"], wait.to_string().as_str());
        assert_eq!(
            values(&headers, "ratelimit"),
            [format!("\"daily\";r=0;t={wait}").as_str()]
        );
        assert_eq!(
            values(&headers, "ratelimit-policy"),
            ["\"daily\";q=20;w=86400"]
        );
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), refusal(wait));
    }
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#.to_owned();
    let (status, headers, _) = post_mcp(&app, Some(ALICE), list).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !values(&headers, "ratelimit")
            .iter()
            .any(|v| v.starts_with("\"daily\"")),
        "a free call reports no budget: {headers:?}"
    );
    assert_eq!(
        app.served.load(Ordering::Relaxed),
        23,
        "refused calls never ran"
    );

    // The audit trail: each charged call's budget decision.
    app.audit.close().await.unwrap();
    let records = app.memory.requests();
    let allowed = records
        .iter()
        .filter(|r| matches!(r.budget(), Some(BudgetOutcome::Allowed { .. })))
        .count();
    assert_eq!(allowed, 22);
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.status() == Some(StatusCode::TOO_MANY_REQUESTS))
        .collect();
    assert_eq!(refused.len(), 3);
    for r in &refused {
        assert_eq!(r.reason(), Some("rate_limited"));
        assert_eq!(r.rate_limit_policy().as_deref(), Some("daily"));
        assert!(matches!(
            r.rate_limit(),
            Some(RateLimitOutcome::Limited { .. })
        ));
        assert!(
            matches!(r.budget(), Some(BudgetOutcome::Exhausted { policy, .. }) if policy == "daily")
        );
        assert!(r.detail().unwrap().starts_with("budget daily exhausted"));
    }
    let bob_last = records
        .iter()
        .rfind(|r| {
            r.principal().map(|p| p.id()) == Some("bob") && r.status() == Some(StatusCode::OK)
        })
        .unwrap();
    assert_eq!(
        bob_last.budget(),
        Some(&BudgetOutcome::Allowed {
            policy: "daily".into(),
            cost: 10,
            remaining: 0,
        })
    );
}

#[tokio::test]
async fn anonymous_and_refused_credentials_never_spend() {
    let app = app(layer(builder().budget(
        Budget::per_day("daily", 1).weight("tools/call:delete_note", 10),
    )));
    for _ in 0..5 {
        let (status, headers, _) = post_mcp(&app, None, tool_call("read_note")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            values(&headers, "ratelimit")
                .iter()
                .all(|v| !v.contains("daily"))
        );
        let (status, _, _) = post_mcp(&app, Some("mcp-sk-not-a-key"), tool_call("x")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let res = app
            .router
            .clone()
            .oneshot(
                Request::get("/health")
                    .header("host", "127.0.0.1:8080")
                    .extension(ConnectInfo(
                        "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
                    ))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            values(res.headers(), "ratelimit")
                .iter()
                .all(|v| !v.contains("daily"))
        );
    }
    // Alice's budget of 1 is whole: one call, then 429. A cost above the whole budget never fits.
    let (status, headers, _) = post_mcp(&app, Some(ALICE), tool_call("read_note")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(daily_remaining(&headers), 0);
    let (status, headers, _) = post_mcp(&app, Some(ALICE), tool_call("read_note")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "86400");
    let (status, headers, _) = post_mcp(&app, Some(BOB), tool_call("delete_note")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        headers["retry-after"], "1",
        "a cost above the budget: at least 1 s"
    );

    app.audit.close().await.unwrap();
    let records = app.memory.requests();
    assert!(
        records
            .iter()
            .filter(|r| r.principal().is_none())
            .all(|r| r.budget().is_none())
    );
}

#[test]
fn toml_errors_name_the_key_path() {
    let cases = [
        (
            "[budget.daily]\nunits = 0\nwindow = \"1d\"",
            "budget.daily.units",
        ),
        ("[budget.daily]\nunits = 5", "budget.daily.window"),
        (
            "[budget.daily]\nunits = 5\nwindow = \"1d\"\nper = \"ip\"",
            "budget.daily.per",
        ),
        (
            "[budget.daily]\nunits = 5\nwindow = \"1d\"\n[budget.daily.weights]\n\"tools/call:\" = 2",
            "budget.daily.weights",
        ),
    ];
    for (toml, setting) in cases {
        let err = builder().config_toml(toml).build().unwrap_err();
        assert_eq!(err.setting(), setting, "{toml}");
    }
    // The variables' table names MCP_CONFIG_FILE-read sections the same way.
    let env = Env::from_pairs("MCP", [("MCP_API_KEY", ALICE)]);
    let err = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .config_toml("[budget.d]\nunits = 5\nwindow = \"never\"")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "budget.d.window");
}
