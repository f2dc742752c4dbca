//! The stack the facade builds, behind an axum `Router`: the layer order of DESIGN §3 seen from
//! outside, the shared ban list, per-caller limits from code and from TOML, and the audit trail
//! recording rejected requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::core::config::{Env, Environment, Secret};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::ratelimit::{KeySelector, Limit, Quota};
use mcp_security::{SecurityConfig, SecurityConfigBuilder, SecurityLayer};
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const CLIENT: &str = "192.0.2.10:50000";

fn runtime() -> RuntimeEnvironment {
    RuntimeEnvironment::new().euid(Some(1000))
}

fn base() -> SecurityConfigBuilder {
    SecurityConfig::builder()
        .environment(Environment::Development)
        .bind_addr("127.0.0.1:8080".parse().unwrap())
        .api_key(Secret::new(KEY))
        .cors_origins(["https://app.example.com"])
}

fn app(stack: SecurityLayer) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/mcp", post(|| async { "{}" }))
        .route("/api", get(|| async { "api" }))
        .layer(stack)
}

fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .extension(ConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()))
}

fn mcp_post() -> http::request::Builder {
    request("POST", "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;

#[tokio::test]
async fn behind_an_axum_router_in_the_designed_order() {
    let stack = base()
        .rate_limit_quota(3, Duration::from_secs(60), None)
        .max_body_bytes(64)
        .build()
        .unwrap()
        .layer_with(&runtime())
        .unwrap();
    let app = app(stack);

    // Exempt path: served, with security headers.
    let (status, headers, body) =
        send(&app, request("GET", "/health").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-ratelimit-limit"], "3");

    // A disallowed Origin: 403 from the guard, before the per-client limit counts it.
    for _ in 0..5 {
        let req = mcp_post()
            .header("origin", "https://evil.example")
            .body(Body::from(INIT))
            .unwrap();
        let (status, headers, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            headers["x-frame-options"], "DENY",
            "headers outside the guard"
        );
    }

    // Inspect before auth: an oversized body is 413 even without a credential.
    let big = "x".repeat(100);
    let req = mcp_post().body(Body::from(big)).unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // No credential: 401 with a challenge, security headers on the rejection.
    let req = mcp_post().body(Body::from(INIT)).unwrap();
    let (status, headers, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(headers["cache-control"], "no-store");

    // The per-client limit (3 per minute, /health counted) answers before authentication.
    let req = mcp_post()
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::from(INIT))
        .unwrap();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_key_authenticates_and_the_shared_ban_list_refuses() {
    let config = base().build().unwrap();
    let app = app(config.layer_with(&runtime()).unwrap());
    let authed = || {
        request("GET", "/api")
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = send(&app, authed()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api"));
    let client: SocketAddr = CLIENT.parse().unwrap();
    config
        .ban_list()
        .ban(client.ip(), SystemTime::now() + Duration::from_secs(600));
    // The default ban scope (`failed`) serves the valid key and refuses the rest.
    assert_eq!(send(&app, authed()).await.0, StatusCode::OK);
    let anonymous = request("GET", "/api").body(Body::empty()).unwrap();
    assert_eq!(send(&app, anonymous).await.0, StatusCode::TOO_MANY_REQUESTS);
    // `all` refuses the valid key too.
    let config = base()
        .ban_scope(mcp_security::core::BanScope::All)
        .build()
        .unwrap();
    let all = self::app(config.layer_with(&runtime()).unwrap());
    config
        .ban_list()
        .ban(client.ip(), SystemTime::now() + Duration::from_secs(600));
    assert_eq!(send(&all, authed()).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn per_caller_limits_from_code_unless_the_toml_file_has_some() {
    let call = |tool: &'static str| {
        let body: &'static str = match tool {
            "echo" => r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            _ => r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other"}}"#,
        };
        mcp_post()
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::from(body))
            .unwrap()
    };
    let from_code = base().caller_limit(
        Limit::new("echo", Quota::per_minute(1), KeySelector::principal()).for_tool("echo"),
    );
    let app1 = app(from_code
        .clone()
        .build()
        .unwrap()
        .layer_with(&runtime())
        .unwrap());
    assert_eq!(send(&app1, call("echo")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app1, call("echo")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app1, call("other")).await.0, StatusCode::OK);

    // The TOML section replaces the limits given in code.
    let app2 = app(from_code
        .config_toml("[rate_limit.tools.other]\nrequests = 1\n")
        .build()
        .unwrap()
        .layer_with(&runtime())
        .unwrap());
    assert_eq!(send(&app2, call("echo")).await.0, StatusCode::OK);
    assert_eq!(send(&app2, call("echo")).await.0, StatusCode::OK);
    assert_eq!(send(&app2, call("other")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app2, call("other")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_audit_file_records_rejected_requests_too() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("mcp-security-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.jsonl");
    let env = Env::from_pairs(
        "IQ",
        [
            ("IQ_ENV", "production".to_owned()),
            ("IQ_API_KEY", KEY.to_owned()),
            ("IQ_CORS_ORIGINS", "https://app.example.com".to_owned()),
            ("IQ_RESOURCE_URL", "https://mcp.example.com/mcp".to_owned()),
            ("IQ_AUDIT_LOG_FILE", log.display().to_string()),
            (
                "IQ_AUDIT_HMAC_KEY",
                "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52".to_owned(),
            ),
            // Another AUDIT_* knob, read from the same environment by mcp-security-audit.
            ("IQ_AUDIT_TRACING", "false".to_owned()),
        ],
    );
    let stack = SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&runtime())
        .unwrap();
    assert!(
        stack.summary().contains("1 sink(s) incl. file"),
        "{}",
        stack.summary()
    );
    let app = app(stack.clone());
    let refused = request("GET", "/api")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, refused).await.0, StatusCode::FORBIDDEN);
    let unauthenticated = request("GET", "/api").body(Body::empty()).unwrap();
    assert_eq!(
        send(&app, unauthenticated).await.0,
        StatusCode::UNAUTHORIZED
    );
    stack.audit().close().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"status_code\":403"), "{text}");
    assert!(text.contains("\"status_code\":401"), "{text}");
    assert!(!text.contains(KEY));
    std::fs::remove_dir_all(&dir).unwrap();
}
