#![cfg(feature = "e2e")]
//! The tool guards over real sockets, through the whole stack in front of a real rmcp server
//! (its `echo` tool returns the text it is given): a tool result carrying a fake AWS access key
//! id reaches the client as `[redacted]` with `MCP_RESULT_GUARD=redact`, as a JSON-RPC error
//! with `block`, and unchanged with the guard off (the default), in rmcp's SSE answers; and
//! `echo` called with a number for its string `text` is answered by the stack (argument
//! validation, on by default) once the tool's schema was listed, never reaching the tool; and
//! with an enforced tool manifest, tools whose definitions differ from the lock are hidden from
//! `tools/list` and refused on call.
//!
//! Raw HTTP/1.1 requests (hyper-util's client), so every header and body is checked as
//! answered.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use mcp_security::guard::ResultGuardMode;
use serde_json::{Value, json};
use tests::e2e_support::{ServerOptions, TestServer};
use tests::raw_http::{self, Answer, HttpClient};

/// The AWS documentation's example key id: the shape of a real one, valid nowhere.
const FAKE_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

async fn post(
    http: &HttpClient,
    server: &TestServer,
    session: Option<&str>,
    body: Value,
) -> Answer {
    let mut req = Request::post(&server.url)
        .header("authorization", format!("Bearer {}", server.api_key))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    raw_http::send(http, req).await
}

/// A legacy session's id.
async fn open_session(http: &HttpClient, server: &TestServer) -> String {
    let init = post(
        http,
        server,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e-tool-guard", "version": "0"}}}),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK);
    let session = init.header("mcp-session-id").to_owned();
    let ready = post(
        http,
        server,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(ready.status, StatusCode::ACCEPTED);
    session
}

/// A legacy session, then `echo` asked to return a text holding the fake key.
async fn echo_the_key(server: &TestServer) -> Answer {
    let http = raw_http::client();
    let session = open_session(&http, server).await;
    post(
        &http,
        server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"text": format!("aws_access_key_id = {FAKE_KEY}")}}}),
    )
    .await
}

async fn server(mode: ResultGuardMode) -> TestServer {
    TestServer::start_configured(ServerOptions::default(), |b| b.result_guard(mode)).await
}

fn text_result(text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "result": {
        "content": [{"type": "text", "text": text}], "isError": false}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_the_key_reaches_the_client() {
    let server = TestServer::start().await;
    assert_eq!(
        server.security().tool_guard().result_guard(),
        ResultGuardMode::Off
    );
    let answer = echo_the_key(&server).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "text/event-stream");
    assert_eq!(
        answer.message(),
        text_result(&format!("aws_access_key_id = {FAKE_KEY}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redact_replaces_the_key_in_the_result() {
    let server = server(ResultGuardMode::Redact).await;
    let answer = echo_the_key(&server).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "text/event-stream");
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
    assert!(answer.headers.get("content-length").is_none());
    let body = String::from_utf8_lossy(&answer.body);
    assert!(!body.contains("AKIA"), "{body}");
    assert_eq!(
        answer.message(),
        text_result("aws_access_key_id = [redacted]")
    );
    let stats = server.security().tool_guard().stats();
    assert_eq!((stats.secrets_found, stats.answers_blocked), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_replaces_the_result_with_an_error() {
    let server = server(ResultGuardMode::Block).await;
    let answer = echo_the_key(&server).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "text/event-stream");
    let body = String::from_utf8_lossy(&answer.body);
    assert!(!body.contains("AKIA"), "{body}");
    assert_eq!(
        answer.message(),
        json!({"jsonrpc": "2.0", "id": 2, "error": {
            "code": -32603,
            "message": "The result was withheld: it contained a credential",
            "data": {"code": "secret_in_result"}}})
    );
    assert_eq!(server.security().tool_guard().stats().answers_blocked, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_failing_the_listed_schema_never_reach_the_tool() {
    let server = TestServer::start().await;
    assert!(server.security().tool_guard().validates_arguments());
    let http = raw_http::client();
    let session = open_session(&http, &server).await;
    let bad_call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": 5}}});

    // Before the list, rmcp itself answers (an SSE answer).
    let first = post(&http, &server, Some(&session), bad_call.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("content-type"), "text/event-stream");
    assert_eq!(first.message()["result"]["isError"], true);

    let list = post(
        &http,
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.message()["result"]["tools"].is_array());

    // Now the stack answers, in JSON, naming the pointer and keyword.
    let answer = post(&http, &server, Some(&session), bad_call).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
    assert_eq!(
        answer.json(),
        json!({"jsonrpc": "2.0", "id": 4, "result": {"isError": true, "content": [{"type": "text",
            "text": "Invalid arguments for tool echo: /text: 5 is not of type \"string\" (keyword: type)"}]}})
    );
    assert_eq!(server.security().tool_guard().stats().arguments_refused, 1);

    // Good arguments still reach the tool.
    let good = post(
        &http,
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}}}),
    )
    .await;
    assert_eq!(good.header("content-type"), "text/event-stream");
    assert_eq!(good.message()["result"]["content"][0]["text"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_manifest_hides_and_refuses_a_tool_whose_description_changed() {
    use mcp_security::guard::manifest::{ManifestMode, ToolManifest};
    // The lock as approved: `echo` had another description; `whoami` is not pinned at all.
    let lock = ToolManifest::from_lists(
        &[
            json!({"tools": [{"name": "echo", "description": "Echo text.",
            "inputSchema": {"type": "object"}}]}),
        ],
        &[],
    );
    let server = TestServer::start_configured(ServerOptions::default(), move |b| {
        b.tool_manifest(lock, ManifestMode::Enforce)
    })
    .await;
    let http = raw_http::client();
    let session = open_session(&http, &server).await;
    let list = post(
        &http,
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("content-type"), "text/event-stream");
    assert_eq!(list.message()["result"]["tools"], json!([]));
    assert_eq!(server.security().tool_guard().stats().manifest_drift, 2);

    let call = post(
        &http,
        &server,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}}}),
    )
    .await;
    assert_eq!(call.status, StatusCode::OK);
    assert_eq!(call.header("content-type"), "application/json");
    assert_eq!(
        call.json(),
        json!({"jsonrpc": "2.0", "id": 4,
            "error": {"code": -32602, "message": "Unknown tool: echo"}})
    );
}
