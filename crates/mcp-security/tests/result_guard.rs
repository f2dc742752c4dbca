//! The result guard in the stack (`MCP_RESULT_GUARD`): innermost, so the audit layer sees each
//! hit as a response fact; off by default; redact and block reach the client; bad values named.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::post;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::audit::{AuditLayer, MemorySink};
use mcp_security::core::config::Env;
use mcp_security::core::facts::ResponseFact;
use mcp_security::core::inspect::McpInspectLayer;
use mcp_security::guard::{ResultGuardMode, ToolGuardLayer};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityError, SecurityLayer};
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const CALL: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_env"}}"#;
const LEAK: &str = r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"}]}}"#;

fn stack(extra: &[(&str, &str)]) -> Result<SecurityLayer, SecurityError> {
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_API_KEY", KEY),
        ("MCP_ALLOWED_HOSTS", "127.0.0.1:8080"),
    ];
    pairs.extend_from_slice(extra);
    SecurityConfig::builder_from_env(&Env::from_pairs("MCP", pairs))?
        .build()?
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
}

async fn call(stack: SecurityLayer) -> (StatusCode, http::HeaderMap, String) {
    let app = Router::new()
        .route(
            "/mcp",
            post(|| async { ([("content-type", "application/json")], LEAK) }),
        )
        .layer(stack);
    let req = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::from(CALL))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn off_by_default_redact_and_block_from_the_environment() {
    let off = stack(&[]).unwrap();
    assert_eq!(off.tool_guard().result_guard(), ResultGuardMode::Off);
    assert!(
        off.summary()
            .ends_with("result guard off, tool arguments checked"),
        "{}",
        off.summary()
    );
    let (status, _, body) = call(off).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, LEAK);

    let redact = stack(&[("MCP_RESULT_GUARD", "redact")]).unwrap();
    assert!(
        redact
            .summary()
            .ends_with("result guard redact (max 4194304 bytes), tool arguments checked"),
        "{}",
        redact.summary()
    );
    let (status, headers, body) = call(redact.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"AWS_ACCESS_KEY_ID=[redacted]"}]}}"#
    );
    assert_eq!(redact.tool_guard().stats().secrets_found, 1);

    let block = stack(&[
        ("MCP_RESULT_GUARD", "block"),
        ("MCP_RESULT_GUARD_MAX_BYTES", "65536"),
    ])
    .unwrap();
    assert_eq!(block.tool_guard().max_result_bytes(), 65536);
    let (status, _, body) = call(block).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"error":{"code":-32603,"data":{"code":"secret_in_result"},"message":"The result was withheld: it contained a credential"},"id":5,"jsonrpc":"2.0"}"#
    );
}

#[tokio::test]
async fn the_audit_layer_sees_each_hit_without_the_secret() {
    // Composed by hand, as the stack orders them: audit outermost, the guard innermost.
    let memory = Arc::new(MemorySink::new());
    let audit = AuditLayer::builder()
        .sink(Arc::clone(&memory))
        .build()
        .unwrap();
    let guard = ToolGuardLayer::builder()
        .result_guard(ResultGuardMode::Redact)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/mcp",
            post(|| async { ([("content-type", "application/json")], LEAK) }),
        )
        .layer(guard)
        .layer(McpInspectLayer::builder().build().unwrap())
        .layer(audit.clone());
    let req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::from(CALL))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&body).contains("AKIA"));
    audit.close().await.unwrap();
    let completions: Vec<Vec<ResponseFact>> = memory
        .events()
        .iter()
        .filter_map(|e| e.as_completion().map(|c| c.facts().to_vec()))
        .collect();
    assert_eq!(
        completions,
        [vec![ResponseFact::SecretFound {
            kind: "aws_access_key_id",
            count: 1,
            method: Some("tools/call"),
            target: Some("read_env".into()),
            action: "redacted",
        }]]
    );
    let secrets: Vec<_> = memory
        .events()
        .iter()
        .filter_map(|e| e.as_completion().and_then(|c| c.secrets()))
        .map(|(kinds, action, target)| (kinds, action, target.map(str::to_owned)))
        .collect();
    assert_eq!(
        secrets,
        [(
            "aws_access_key_id:1".to_owned(),
            "redacted",
            Some("read_env".to_owned())
        )]
    );
    assert!(
        memory
            .events()
            .iter()
            .all(|e| !format!("{e:?}").contains("IOSFODNN7")),
        "the secret never reaches the audit trail"
    );
}

#[test]
fn bad_values_are_named() {
    let err = stack(&[("MCP_RESULT_GUARD", "mask")]).unwrap_err();
    assert!(err.to_string().contains("MCP_RESULT_GUARD"), "{err}");
    let err = SecurityConfig::builder()
        .max_result_bytes(0)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "MCP_RESULT_GUARD_MAX_BYTES");
}

#[test]
fn a_pinned_manifest_from_the_environment() {
    use mcp_security::guard::manifest::{ManifestMode, ToolManifest};
    let dir = std::env::temp_dir().join(format!("mcp-security-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tools.lock.json");
    let lock = ToolManifest::from_lists(
        &[serde_json::json!({"tools": [{"name": "read_env", "inputSchema": {"type": "object"}}]})],
        &[],
    );
    std::fs::write(&path, lock.to_json()).unwrap();
    let file = path.to_str().unwrap();
    let stack = stack(&[
        ("MCP_TOOL_MANIFEST_FILE", file),
        ("MCP_TOOL_MANIFEST_MODE", "enforce"),
    ])
    .unwrap();
    assert_eq!(
        stack.tool_guard().manifest(),
        Some((&lock, ManifestMode::Enforce))
    );
    assert!(
        stack
            .summary()
            .ends_with("tool arguments checked, tool manifest enforced (1 tools)"),
        "{}",
        stack.summary()
    );
    let err = stack_err(&[("MCP_TOOL_MANIFEST_FILE", "/nonexistent/tools.lock.json")]);
    assert!(err.contains("MCP_TOOL_MANIFEST_FILE"), "{err}");
    let err = stack_err(&[
        ("MCP_TOOL_MANIFEST_FILE", file),
        ("MCP_TOOL_MANIFEST_MODE", "strict"),
    ]);
    assert!(err.contains("MCP_TOOL_MANIFEST_MODE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn stack_err(extra: &[(&str, &str)]) -> String {
    match stack(extra) {
        Ok(_) => panic!("accepted {extra:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_audit_completion_record_names_manifest_drift() {
    use mcp_security::guard::manifest::{ManifestMode, ToolManifest};
    let memory = Arc::new(MemorySink::new());
    let audit = AuditLayer::builder()
        .sink(Arc::clone(&memory))
        .build()
        .unwrap();
    let lock = ToolManifest::from_lists(
        &[
            serde_json::json!({"tools": [{"name": "read_env", "description": "Read one variable."}]}),
        ],
        &[],
    );
    let guard = ToolGuardLayer::builder()
        .manifest(lock, ManifestMode::Warn)
        .build()
        .unwrap();
    let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_env","description":"Read every variable."},{"name":"upload"}]}}"#;
    let app = Router::new()
        .route(
            "/mcp",
            post(move || async move { ([("content-type", "application/json")], list) }),
        )
        .layer(guard)
        .layer(McpInspectLayer::builder().build().unwrap())
        .layer(audit.clone());
    let req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], list.as_bytes(), "warn mode changes nothing");
    audit.close().await.unwrap();
    let drift: Vec<(String, bool)> = memory
        .events()
        .iter()
        .filter_map(|e| e.as_completion().and_then(|c| c.manifest_drift()))
        .collect();
    assert_eq!(
        drift,
        [("read_env:description,upload:new".to_owned(), false)]
    );
}
