//! The MCP-specific settings read from the environment reach the stack: each of
//! `MCP_FILTER_LISTS`, `MCP_MAX_LIST_BYTES`, `MCP_TOOL_ERRORS_AS_RESULTS` and
//! `MCP_PROTOCOL_VERSIONS` is read by `SecurityConfig::builder_from_env`, and its effect is shown
//! by behaviour through the built layer around a small MCP service, next to the same request
//! without the variable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::routing::post;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::SecurityConfig;
use mcp_security::core::Scopes;
use mcp_security::core::config::{Env, Secret};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const READER_KEY: &str = "mcp-sk-r8Lp2Wq7Zx4Vn1Mb6Kc3Jd9Hf5Gs0Ta2Ye7Ui4Oo1Pq6";
const CLIENT: &str = "192.0.2.10:50000";

/// The stack from `vars` (plus a base that makes a valid development configuration), with a
/// reader key (`notes:read`) and the rule `tools/call:delete_note` needs `notes:delete` added in
/// code, around an MCP service; and how many requests reached that service.
fn app(vars: &[(&str, &str)]) -> (Router, Arc<AtomicUsize>) {
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_BIND", "127.0.0.1:8080"),
        ("MCP_API_KEY", ADMIN_KEY),
        ("MCP_AUDIT_ENABLED", "false"),
    ];
    pairs.extend_from_slice(vars);
    let config = SecurityConfig::builder_from_env(&Env::from_pairs("MCP", pairs))
        .expect("the environment is read")
        .named_api_key(
            "reader",
            Secret::new(READER_KEY),
            Scopes::new(["notes:read"]),
        )
        .require_mcp("tools/call:delete_note", ["notes:delete"])
        .build()
        .expect("a valid configuration");
    let stack = config.layer().expect("the stack builds");
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let router = Router::new()
        .route(
            "/mcp",
            post(move |headers: HeaderMap, body: Bytes| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    mcp_answer(&headers, &body)
                }
            }),
        )
        .layer(stack);
    (router, reached)
}

/// The small MCP service: `tools/list` lists `echo` and `delete_note` (whose description is
/// `x-pad` bytes long), `tools/call` answers a text result.
fn mcp_answer(headers: &HeaderMap, body: &[u8]) -> ([(&'static str, &'static str); 1], String) {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pad = headers
        .get("x-pad")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0usize);
    let result = match request["method"].as_str() {
        Some("tools/list") => json!({"tools": [
            {"name": "echo", "inputSchema": {"type": "object"}},
            {"name": "delete_note", "inputSchema": {"type": "object"}, "description": "x".repeat(pad)},
        ]}),
        _ => json!({"content": [{"type": "text", "text": "done"}], "isError": false}),
    };
    (
        [("content-type", "application/json")],
        json!({"jsonrpc": "2.0", "id": request["id"], "result": result}).to_string(),
    )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn post_mcp(app: &Router, key: &str, body: Value, extra: &[(&str, &str)]) -> Answer {
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&bytes)));
    Answer {
        status,
        headers,
        body,
    }
}

fn tools_list() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

fn listed(a: &Answer) -> Vec<&str> {
    a.body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {}", a.body))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect()
}

#[tokio::test]
async fn filter_lists_false_shows_every_caller_every_tool() {
    // By default (MCP rules configured) the reader is not shown delete_note …
    let (on, _) = app(&[]);
    let a = post_mcp(&on, READER_KEY, tools_list(), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(listed(&a), ["echo"]);
    // … with MCP_FILTER_LISTS=false it is, unfiltered.
    let (off, reached) = app(&[("MCP_FILTER_LISTS", "false")]);
    let a = post_mcp(&off, READER_KEY, tools_list(), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(listed(&a), ["echo", "delete_note"]);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    // The call itself is still refused: only the list is no longer cut.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "delete_note", "arguments": {}}});
    let a = post_mcp(&off, READER_KEY, call, &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_list_bytes_caps_the_list_the_filter_reads() {
    let (capped, reached) = app(&[("MCP_MAX_LIST_BYTES", "1024")]);
    // Under the cap: filtered as usual.
    let a = post_mcp(&capped, READER_KEY, tools_list(), &[("x-pad", "100")]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(listed(&a), ["echo"]);
    // Over 1024 bytes: fails closed with a JSON-RPC error, never the unfiltered list.
    let a = post_mcp(&capped, READER_KEY, tools_list(), &[("x-pad", "2000")]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["id"], 1);
    assert_eq!(a.body["error"]["code"], -32603, "{}", a.body);
    assert_eq!(a.body["error"]["data"]["code"], "response_too_large");
    assert!(!a.body.to_string().contains("delete_note"), "{}", a.body);
    assert_eq!(reached.load(Ordering::SeqCst), 2);
    // Without the variable (default 4 MiB) the same list is filtered, not refused.
    let (default, _) = app(&[]);
    let a = post_mcp(&default, READER_KEY, tools_list(), &[("x-pad", "2000")]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(listed(&a), ["echo"]);
}

#[tokio::test]
async fn tool_errors_as_results_turns_a_scope_refusal_into_an_is_error_result() {
    let call = || {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "delete_note", "arguments": {}}})
    };
    // The default: the specification's 403 with a Bearer challenge.
    let (plain, _) = app(&[]);
    let a = post_mcp(&plain, READER_KEY, call(), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // MCP_TOOL_ERRORS_AS_RESULTS=true: HTTP 200, a tool result with isError naming the scope,
    // and the server still never ran the call.
    let (results, reached) = app(&[("MCP_TOOL_ERRORS_AS_RESULTS", "true")]);
    let a = post_mcp(&results, READER_KEY, call(), &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    assert!(a.headers.get("www-authenticate").is_none());
    assert_eq!(a.body["jsonrpc"], "2.0");
    assert_eq!(a.body["id"], 3);
    assert_eq!(a.body["result"]["isError"], true, "{}", a.body);
    assert_eq!(a.body["result"]["content"][0]["type"], "text");
    let text = a.body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("notes:delete"), "{text}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn protocol_versions_replace_the_supported_list() {
    let (custom, reached) = app(&[("MCP_PROTOCOL_VERSIONS", "2026-07-28,2027-01-01")]);
    let headers = |v| [("mcp-protocol-version", v), ("mcp-method", "tools/list")];
    // A version only the variable names: accepted, and the request reaches the service.
    let a = post_mcp(&custom, ADMIN_KEY, tools_list(), &headers("2027-01-01")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(listed(&a), ["echo", "delete_note"]);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    // One it does not name (and one of the defaults it dropped): 400 naming the supported list.
    for version in ["2024-01-01", "2025-11-25"] {
        let a = post_mcp(&custom, ADMIN_KEY, tools_list(), &headers(version)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{version}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.body["id"], 1);
        assert_eq!(a.body["error"]["code"], -32022, "{}", a.body);
        assert_eq!(
            a.body["error"]["data"]["code"],
            "unsupported_protocol_version"
        );
        assert_eq!(
            a.body["error"]["data"]["supported"],
            json!(["2026-07-28", "2027-01-01"]),
            "{}",
            a.body
        );
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(version) && message.contains("2026-07-28, 2027-01-01"),
            "{message}"
        );
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "refused before the service"
    );
    // Without the variable, 2027-01-01 is refused and 2025-11-25 accepted.
    let (default, _) = app(&[]);
    let a = post_mcp(&default, ADMIN_KEY, tools_list(), &headers("2027-01-01")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = post_mcp(&default, ADMIN_KEY, tools_list(), &headers("2025-11-25")).await;
    assert_eq!(a.status, StatusCode::OK);
}
