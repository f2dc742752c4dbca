//! Agent-readable refusals through the real layers: `McpInspectLayer` ->
//! `ToolErrorsAsResultsLayer` -> `AuthLayer` -> `RateLimitLayer` (per caller and tool) ->
//! service. A `tools/call` refused for a missing scope or a per-tool limit is a tool result with
//! `isError: true` naming the scope or the wait; an authentication failure stays 401; the
//! `Rejection` and outcomes the audit layer reads are unchanged. Through the facade's whole
//! stack with its audit trail on, the record of a refused call has the same decision and reason
//! either way, and the status the caller really got.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security::auth::api_key::ApiKeyStore;
use mcp_security::auth::layer::AuthLayer;
use mcp_security::auth::policy::AuthPolicy;
use mcp_security::core::inspect::McpInspectLayer;
use mcp_security::core::refusal::ToolErrorsAsResultsLayer;
use mcp_security::core::{AuthOutcome, RateLimitOutcome, Rejection, Scopes};
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use serde_json::Value;
use tower::{Service, ServiceBuilder, ServiceExt};

const READER: &str = "mcp-sk-cmVhZGVycmVhZGVycmVhZGVycmVhZGVycmVhZGVy";

fn stack(
    convert: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl hyper::body::Body<Data = Bytes, Error = Infallible>>,
    Error = Infallible,
> + Clone {
    let auth = AuthLayer::builder()
        .api_keys(
            ApiKeyStore::builder()
                .key("reader", READER, Scopes::new(["notes:read"]))
                .build()
                .expect("keys"),
        )
        .policy(
            AuthPolicy::builder()
                .require_mcp("tools/call:delete_note", ["notes:delete"])
                .require_mcp("tools/call:read_note", ["notes:read"])
                .build()
                .expect("policy"),
        )
        .resource("https://mcp.example.com/mcp")
        .build()
        .expect("auth");
    let limits = RateLimitLayer::builder()
        .mcp_path("/mcp")
        .limit(
            Limit::new("read_note", Quota::per_minute(1), KeySelector::principal())
                .for_tool("read_note"),
        )
        .build()
        .expect("limits");
    ServiceBuilder::new()
        .layer(McpInspectLayer::builder().build().expect("inspect"))
        .option_layer(convert.then(ToolErrorsAsResultsLayer::new))
        .layer(auth)
        .layer(limits)
        .service_fn(|_req: Request<_>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#,
            ))))
        })
}

fn call(tool: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    );
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::from(body))).expect("request")
}

async fn send<S, B>(
    svc: &S,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, http::Extensions, Value)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(req).await.expect("call");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, parts.extensions, value)
}

#[tokio::test]
async fn missing_scope_and_tool_limit_become_tool_errors_when_on() {
    let svc = stack(true);
    let (status, headers, ext, v) = send(&svc, call("delete_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["isError"], true);
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("notes:delete"), "{text}");
    // The audit layer reads the same refusal.
    assert_eq!(
        ext.get::<Rejection>().map(Rejection::code),
        Some("insufficient_scope")
    );
    assert!(matches!(
        ext.get::<AuthOutcome>(),
        Some(AuthOutcome::Rejected { .. })
    ));

    let (status, _, _, _) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, ext, v) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("retry-after").is_some());
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with("Rate limit exceeded for this tool. Retry in "),
        "{text}"
    );
    assert_eq!(
        ext.get::<Rejection>().map(Rejection::code),
        Some("rate_limited")
    );
    assert!(matches!(
        ext.get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { .. })
    ));

    // Authentication failures keep their 401 and challenge.
    let (status, headers, _, _) = send(&svc, call("read_note", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("www-authenticate").is_some());
}

#[tokio::test]
async fn default_stays_403_and_429() {
    let svc = stack(false);
    let (status, _, _, v) = send(&svc, call("delete_note", Some(READER))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "insufficient_scope");
    let _ = send(&svc, call("read_note", Some(READER))).await;
    let (status, _, _, _) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

// ---------------------------------------------------------------------------------------------
// The facade's stack with its audit trail
// ---------------------------------------------------------------------------------------------

/// The facade's stack (audit to a fresh file) around a router answering every MCP call, with
/// `tool_errors_as_results` as given; the stack, the audit file and how many calls ran.
fn facade(
    convert: bool,
) -> (
    axum::Router,
    mcp_security::SecurityLayer,
    std::path::PathBuf,
    std::sync::Arc<AtomicU64>,
) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "mcp-security-tool-errors-{}-{}-{convert}.jsonl",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let stack = mcp_security::SecurityConfig::builder()
        .environment(mcp_security::core::config::Environment::Development)
        .bind_addr("127.0.0.1:8080".parse().expect("addr"))
        .named_api_key(
            "reader",
            mcp_security::core::config::Secret::new(READER),
            Scopes::new(["notes:read"]),
        )
        .require_mcp("tools/call:delete_note", ["notes:delete"])
        .require_mcp("tools/call:read_note", ["notes:read"])
        .caller_limit(
            Limit::new("read_note", Quota::per_minute(1), KeySelector::principal())
                .for_tool("read_note"),
        )
        .tool_errors_as_results(convert)
        .audit_log_file(
            &file,
            mcp_security::core::config::Secret::new("an audit chain key of at least 32 bytes!!"),
        )
        .build()
        .expect("config")
        .layer()
        .expect("stack");
    let reached = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&reached);
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [("content-type", "application/json")],
                        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#,
                    )
                }
            }),
        )
        .layer(stack.clone());
    (app, stack, file, reached)
}

/// The request records of a closed audit trail, by the tool they called.
fn records(file: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("audit file");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "request")
        .collect()
}

#[tokio::test]
async fn the_audit_record_is_the_same_refusal_either_way() {
    // (tool, the status the caller gets by default, with the conversion on)
    let script = [
        ("delete_note", StatusCode::FORBIDDEN, StatusCode::OK),
        ("read_note", StatusCode::OK, StatusCode::OK),
        ("read_note", StatusCode::TOO_MANY_REQUESTS, StatusCode::OK),
    ];
    let mut trails = Vec::new();
    for convert in [false, true] {
        let (app, stack, file, reached) = facade(convert);
        for (tool, plain, converted) in script {
            let mut req = call(tool, Some(READER)).map(axum::body::Body::new);
            req.headers_mut()
                .insert("host", http::HeaderValue::from_static("127.0.0.1:8080"));
            req.extensions_mut().insert(axum::extract::ConnectInfo(
                "192.0.2.10:50000".parse::<SocketAddr>().expect("addr"),
            ));
            let res = app.clone().oneshot(req).await.expect("call");
            let want = if convert { converted } else { plain };
            assert_eq!(res.status(), want, "{tool} (convert {convert})");
            let body = res.into_body().collect().await.expect("body").to_bytes();
            let v: Value = serde_json::from_slice(&body).expect("JSON");
            if convert && plain != StatusCode::OK {
                assert_eq!(v["result"]["isError"], true, "{v}");
            }
        }
        assert_eq!(
            reached.load(Ordering::SeqCst),
            1,
            "only the allowed call ran (convert {convert})"
        );
        stack.audit().close().await.expect("audit close");
        let recs = records(&file);
        let _ = std::fs::remove_file(&file);
        assert_eq!(recs.len(), script.len(), "{recs:?}");
        trails.push(recs);
    }
    let (plain, converted) = (&trails[0], &trails[1]);
    for (i, (tool, plain_status, converted_status)) in script.iter().enumerate() {
        let (p, c) = (&plain[i], &converted[i]);
        assert_eq!(p["mcp_tool"], *tool, "{p}");
        assert_eq!(c["mcp_tool"], *tool, "{c}");
        // The same decision, reason and detail: the conversion changes the answer's form only.
        for field in [
            "decision",
            "reason",
            "detail",
            "auth",
            "rate_limit",
            "rate_limit_policy",
            "retry_after",
            "principal_id",
        ] {
            assert_eq!(p[field], c[field], "{tool} {field}: {p} vs {c}");
        }
        // And each record has the status the caller really got.
        assert_eq!(p["status_code"], plain_status.as_u16(), "{p}");
        assert_eq!(c["status_code"], converted_status.as_u16(), "{c}");
    }
    // What really happened: the scope and the per-tool limit refused the call (the server never
    // ran it), whatever form the refusal took; only the middle call was allowed.
    assert_eq!(plain[0]["decision"], "rejected");
    assert_eq!(plain[0]["reason"], "insufficient_scope");
    assert_eq!(plain[0]["auth"], "rejected");
    assert_eq!(plain[1]["decision"], "allowed");
    assert_eq!(plain[1]["reason"], Value::Null);
    assert_eq!(plain[2]["decision"], "rejected");
    assert_eq!(plain[2]["reason"], "rate_limited");
    assert_eq!(plain[2]["rate_limit"], "limited");
    assert_eq!(plain[2]["retry_after"], 60);
}
