//! A real audit trail for the report's tests: the facade's stack (JWT auth, per-client rate
//! limit, trusted proxy, auth-failure ban detector, the audit file sink) in front of an axum
//! server on a real socket, driven by reqwest. Shared by the unit tests (`src/report/tests.rs`)
//! and the command-line test (`tests/audit_report.rs`, through `#[path]`), so the numbers both
//! check come from records the audit layer really wrote.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::post;
use mcp_security::SecurityConfig;
use mcp_security::auth::jwt::{JwtVerifier, TokenRequest};
use mcp_security::core::config::{Env, Secret};
use mcp_security::prodcheck::RuntimeEnvironment;

/// The chain key of the trail (also in `Trail::key_file`).
pub const AUDIT_KEY: &str = "0123456789abcdef0123456789abcdef-audit-report-test";
/// A principal id chosen by an attacker: markup, quotes and an ampersand.
pub const HOSTILE_PRINCIPAL: &str = "<script>alert(\"p\")</script>&amp;'x";
/// A tool name chosen by an attacker.
pub const HOSTILE_TOOL: &str = "<img src=x onerror=\"alert(1)\">&tool";

const JWT_SECRET: &str = "audit-report-test-jwt-secret-0123456789abcdef";
const WRONG_SECRET: &str = "not-the-server-secret-0123456789abcdef-xyz";
const AUDIENCE: &str = "audit-report";

/// Where the trail was written.
pub struct Trail {
    /// A directory of its own (removed by the test).
    pub dir: PathBuf,
    /// The audit file.
    pub log: PathBuf,
    /// The chain key, in a file.
    pub key_file: PathBuf,
}

fn token(secret: &str, sub: &str) -> String {
    let verifier = JwtVerifier::builder()
        .secret(Secret::new(secret))
        .build()
        .expect("verifier");
    let request = TokenRequest {
        sub: sub.to_owned(),
        audience: vec![AUDIENCE.to_owned()],
        issuer: None,
        ttl: Duration::from_secs(900),
        scopes: Vec::new(),
    };
    verifier.sign(&request, SystemTime::now()).expect("sign")
}

fn call(tool: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": {}}})
    .to_string()
}

/// Serve the stack on a loopback port and send, through a trusted proxy (the test itself,
/// forwarding for documentation addresses):
///
/// | client | who | what | outcome |
/// |---|---|---|---|
/// | 203.0.113.10 | alice | 4 × `tools/call echo`, 1 batch (`echo`, `search`) | 5 allowed |
/// | 203.0.113.11 | [`HOSTILE_PRINCIPAL`] | 2 × `tools/call` [`HOSTILE_TOOL`], 1 × `tools/list` | 3 allowed |
/// | 203.0.113.12 | nobody | 2 × `tools/call echo` without a token | 2 refused, 401 |
/// | 203.0.113.20 | bob | 7 × `tools/call echo` (limit: 5 an hour a client) | 5 allowed, 2 refused, 429 |
/// | 203.0.113.66 | mallory | 3 × a token signed with another secret, then 1 valid | 3 refused, 401; banned (threshold 2); 1 refused, banned |
///
/// 21 requests: 13 allowed, 8 refused. Then the audit layer is closed (the chain ends with
/// `close`).
pub async fn write(name: &str) -> Trail {
    write_with(name, &[]).await
}

/// [`write`] with more settings for the stack (`MCP_AUDIT_MAX_FILE_BYTES`, …).
pub async fn write_with(name: &str, extra: &[(&str, &str)]) -> Trail {
    let dir = std::env::temp_dir().join(format!("mcp-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("audit.jsonl");
    let key_file = dir.join("audit.key");
    std::fs::write(&key_file, format!("{AUDIT_KEY}\n")).expect("key file");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut pairs = vec![
        ("MCP_ENV", "development".to_owned()),
        ("MCP_BIND", addr.to_string()),
        ("MCP_JWT_SECRET", JWT_SECRET.to_owned()),
        ("MCP_JWT_AUDIENCE", AUDIENCE.to_owned()),
        ("MCP_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
        ("MCP_RATE_LIMIT_REQUESTS", "5".to_owned()),
        ("MCP_RATE_LIMIT_WINDOW", "1h".to_owned()),
        ("MCP_AUDIT_LOG_FILE", log.display().to_string()),
        ("MCP_AUDIT_HMAC_KEY", AUDIT_KEY.to_owned()),
        ("MCP_AUDIT_TRACING", "false".to_owned()),
        ("MCP_AUDIT_AUTH_FAILURE_THRESHOLD", "2".to_owned()),
        ("MCP_AUDIT_BAN_ON_AUTH_FAILURES", "true".to_owned()),
        // mallory's valid token after the ban is refused too.
        ("MCP_AUDIT_BAN_SCOPE", "all".to_owned()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env = Env::from_pairs("MCP", pairs);
    let stack = SecurityConfig::builder_from_env(&env)
        .expect("config")
        .build()
        .expect("build")
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .expect("stack");
    let app = Router::new()
        .route(
            "/mcp",
            post(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
                )
            }),
        )
        .layer(stack.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/mcp");
    let send = |from: &'static str, bearer: Option<String>, body: String| {
        let mut req = client
            .post(&url)
            .header("x-forwarded-for", from)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.expect("send").status().as_u16() }
    };

    let alice = token(JWT_SECRET, "alice");
    for _ in 0..4 {
        assert_eq!(
            send("203.0.113.10", Some(alice.clone()), call("echo")).await,
            200
        );
    }
    let batch = format!("[{},{}]", call("echo"), call("search"));
    assert_eq!(send("203.0.113.10", Some(alice.clone()), batch).await, 200);

    let hostile = token(JWT_SECRET, HOSTILE_PRINCIPAL);
    for _ in 0..2 {
        assert_eq!(
            send("203.0.113.11", Some(hostile.clone()), call(HOSTILE_TOOL)).await,
            200
        );
    }
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned();
    assert_eq!(send("203.0.113.11", Some(hostile.clone()), list).await, 200);

    for _ in 0..2 {
        assert_eq!(send("203.0.113.12", None, call("echo")).await, 401);
    }

    let bob = token(JWT_SECRET, "bob");
    let mut bob_status = Vec::new();
    for _ in 0..7 {
        bob_status.push(send("203.0.113.20", Some(bob.clone()), call("echo")).await);
    }
    assert_eq!(bob_status, [200, 200, 200, 200, 200, 429, 429]);

    let forged = token(WRONG_SECRET, "mallory");
    for _ in 0..3 {
        assert_eq!(
            send("203.0.113.66", Some(forged.clone()), call("echo")).await,
            401
        );
    }
    let mallory = token(JWT_SECRET, "mallory");
    assert_eq!(send("203.0.113.66", Some(mallory), call("echo")).await, 429);

    stack.audit().close().await.expect("close the audit trail");
    server.abort();
    Trail { dir, log, key_file }
}
