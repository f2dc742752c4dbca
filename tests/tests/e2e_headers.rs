#![cfg(feature = "e2e")]
//! The MCP 2026-07-28 transport headers over a real socket, through the whole stack: a tool with
//! a non-ASCII name called by the official Python client (which sends `Mcp-Name` in its
//! `=?base64?…?=` form), and raw HTTP cases for what `McpInspectLayer` lets through to rmcp and
//! what it refuses before rmcp sees it.
//!
//! The server is the stack from `SecurityConfig` (`TestServer::start_serving`) around an rmcp
//! server with `echo`, a tool called `überprüfen` that answers with the `Mcp-Method` and
//! `Mcp-Name` headers it received, one prompt and one resource that can be subscribed to. A
//! counter in front of rmcp tells whether a request reached it.
//!
//! Setup: `bash .ci/e2e-setup.sh`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use mcp_security::SecurityConfigBuilder;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourcesResult, PaginatedRequestParams, Prompt, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tests::e2e_support::{MCP_PATH, ServerOptions, TestServer, run_python_script};
use tests::raw_http::{self, Answer};

/// The tool whose name is not ASCII.
const UNICODE_TOOL: &str = "überprüfen";
/// The resource that can be subscribed to.
const WATCHED: &str = "mem://watched";

#[derive(Clone)]
struct HeadersServer {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoParams {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct CheckParams {
    /// Anything; the tool answers with the headers it received.
    #[serde(default)]
    name: Option<String>,
}

#[tool_router]
impl HeadersServer {
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoParams { text }): Parameters<EchoParams>) -> String {
        text
    }

    #[tool(
        name = "überprüfen",
        description = "Answer with the Mcp-Method and Mcp-Name headers this call arrived with."
    )]
    async fn check_headers(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(CheckParams { name }): Parameters<CheckParams>,
    ) -> String {
        let header = |h: &str| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        json!({
            "mcp_method": header("mcp-method"),
            "mcp_name": header("mcp-name"),
            "name": name,
        })
        .to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HeadersServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-security-e2e-headers", "0.0.0"))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "hello",
            Some("a prompt"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("run {}", request.name),
        )])
        .into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            WATCHED, WATCHED,
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Ok(
            ReadResourceResult::new(vec![ResourceContents::text("content", request.uri.clone())])
                .into(),
        )
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}

/// The running server and how many requests reached rmcp.
struct Served {
    server: TestServer,
    reached: Arc<AtomicUsize>,
}

impl Served {
    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }
}

async fn start() -> Served {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let server = TestServer::start_serving(
        ServerOptions::default(),
        |b: SecurityConfigBuilder| b,
        move |config| {
            let allowed = config.allowed_hosts().map(<[String]>::to_vec);
            let mcp = StreamableHttpService::new(
                || {
                    Ok(HeadersServer {
                        tool_router: HeadersServer::tool_router(),
                    })
                },
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default()
                    .with_allowed_hosts(allowed.unwrap_or_default()),
            );
            let counted = tower::ServiceBuilder::new()
                .map_request(move |req: Request<Body>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    req
                })
                .service(mcp);
            Router::new().nest_service(MCP_PATH, counted)
        },
    )
    .await;
    Served { server, reached }
}

/// A 2026-07-28 stateless request body for `method` with `params` (plus the `_meta` rmcp needs).
fn stateless_body(id: u64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// POST `body` in the 2026-07-28 era with `Mcp-Method: method` and, when given, `Mcp-Name`.
async fn post(served: &Served, method: &str, name: Option<&str>, body: String) -> Answer {
    let addr = served.server.addr;
    let mut req = Request::post(format!("http://{addr}{MCP_PATH}"))
        .header("authorization", format!("Bearer {}", served.server.api_key))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    raw_http::send(&raw_http::client(), req).await
}

fn b64(name: &str) -> String {
    format!("=?base64?{}?=", BASE64.encode(name))
}

fn assert_security_headers(a: &Answer) {
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["cache-control"], "no-store");
}

/// What `überprüfen` reported about the headers it was called with.
fn seen_headers(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_a_non_ascii_tool_with_a_base64_mcp_name() {
    let served = start().await;
    let url = served.server.url.as_str();
    let key = served.server.api_key.as_str();
    let args = ["--token", key, "--call", UNICODE_TOOL];

    // 2026-07-28: the SDK sends `Mcp-Name: =?base64?…?=` (SEP-2243), the stack decodes and
    // compares it with the body, and rmcp (which decodes it too) gets it unchanged.
    let run = run_python_script(
        "list_client.py",
        &[&[url, "--mode", "auto"][..], &args].concat(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.report["protocol"], "2026-07-28", "{}", run.describe());
    assert_eq!(
        run.report["tools"],
        json!(["echo", UNICODE_TOOL]),
        "{}",
        run.describe()
    );
    let call = &run.report["extra_call"];
    assert_eq!(call["name"], UNICODE_TOOL, "{}", run.describe());
    assert_eq!(call["ok"], true, "{}", run.describe());
    let seen = seen_headers(call["detail"].as_str().expect("text"));
    assert_eq!(seen["mcp_method"], "tools/call");
    assert_eq!(seen["mcp_name"], "=?base64?w7xiZXJwcsO8ZmVu?=");
    assert_eq!(seen["mcp_name"], b64(UNICODE_TOOL).as_str());
    assert_eq!(seen["name"], "welcome", "the arguments arrived");

    // 2025-11-25: no `Mcp-Name` at all, and the call works the same.
    let run = run_python_script(
        "list_client.py",
        &[&[url, "--mode", "legacy"][..], &args].concat(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(run.report["protocol"], "2025-11-25", "{}", run.describe());
    let call = &run.report["extra_call"];
    assert_eq!(call["ok"], true, "{}", run.describe());
    let seen = seen_headers(call["detail"].as_str().expect("text"));
    assert_eq!(seen["mcp_name"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_mcp_name_naming_another_tool_is_refused_before_rmcp() {
    let served = start().await;
    // The body calls `echo`; the header says `überprüfen` in its Base64 form.
    let body = stateless_body(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let a = post(&served, "tools/call", Some(&b64(UNICODE_TOOL)), body).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.header("content-type"), "application/json");
    assert_security_headers(&a);
    assert_eq!(
        a.json(),
        json!({"jsonrpc": "2.0", "id": 2, "error": {
            "code": -32020,
            "message": "The Mcp-Name header does not match the request body",
            "data": {"status": 400, "code": "header_mismatch"},
        }})
    );
    assert_eq!(served.reached(), 0, "rmcp never saw it");

    // The same for a Base64 name that decodes to `echo` while the body calls `überprüfen`, and
    // for one that is not Base64 at all.
    for (header, tool) in [
        (b64("echo"), UNICODE_TOOL),
        ("=?base64?w7xiZXJwcsO8Zm?=".to_owned(), UNICODE_TOOL),
    ] {
        let body = stateless_body(3, "tools/call", json!({"name": tool, "arguments": {}}));
        let a = post(&served, "tools/call", Some(&header), body).await;
        assert_eq!(a.status, 400, "{header}");
        assert_eq!(a.header("content-type"), "application/json");
        let v = a.json();
        assert_eq!(v["id"], 3, "{header}");
        assert_eq!(v["error"]["code"], -32020, "{header}");
        assert_eq!(v["error"]["data"]["code"], "header_mismatch", "{header}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Mcp-Name")),
            "{v}"
        );
    }
    assert_eq!(served.reached(), 0, "rmcp never saw them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_mcp_name_naming_the_tool_is_accepted() {
    let served = start().await;
    for (id, tool, arguments) in [
        (4, UNICODE_TOOL, json!({})),
        (5, "echo", json!({"text": "plain ASCII, encoded anyway"})),
    ] {
        let header = b64(tool);
        let body = stateless_body(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        );
        let a = post(&served, "tools/call", Some(&header), body).await;
        assert_eq!(a.status, 200, "{tool}: {:?}", a.body);
        assert_eq!(a.header("content-type"), "text/event-stream", "{tool}");
        let m = a.message();
        assert_eq!(m["id"], id, "{m}");
        assert_eq!(m["result"]["isError"], false, "{m}");
        let text = m["result"]["content"][0]["text"].as_str().expect("text");
        if tool == UNICODE_TOOL {
            let seen = seen_headers(text);
            assert_eq!(seen["mcp_name"], header.as_str(), "passed on unchanged");
        } else {
            assert_eq!(text, "plain ASCII, encoded anyway");
        }
    }
    assert_eq!(served.reached(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_subscribe_in_the_2026_era_with_and_without_mcp_name() {
    let served = start().await;
    let body = || stateless_body(6, "resources/subscribe", json!({"uri": WATCHED}));

    // With the URI as Mcp-Name (plain and Base64): our layer passes it, and rmcp answers it.
    // rmcp 3.9 serves `resources/subscribe` only in the 2025-11-25 era (2026-07-28 has
    // `subscriptions/listen`), so its answer is "method not found", not a header error.
    for (n, name) in [WATCHED.to_owned(), b64(WATCHED)].iter().enumerate() {
        let a = post(&served, "resources/subscribe", Some(name), body()).await;
        assert_eq!(served.reached(), n + 1, "{name}: reached rmcp");
        assert_eq!(a.status, 404, "{name}");
        assert_eq!(a.header("content-type"), "application/json");
        assert_security_headers(&a);
        assert_eq!(
            a.json(),
            json!({"jsonrpc": "2.0", "id": 6, "error": {"code": -32601, "message": "resources/subscribe"}}),
            "{name}"
        );
    }

    // Without Mcp-Name: our table does not require it there (the TypeScript SDK's client sends
    // none), so the request passes our layer; rmcp itself refuses it with its own -32020.
    let a = post(&served, "resources/subscribe", None, body()).await;
    assert_eq!(served.reached(), 3, "reached rmcp");
    assert_eq!(a.status, 400);
    assert_eq!(a.header("content-type"), "application/json");
    assert_eq!(
        a.json(),
        json!({"jsonrpc": "2.0", "id": 6, "error": {
            "code": -32020,
            "message": "missing required Mcp-Name header for `resources/subscribe`",
        }}),
        "rmcp's answer, without our `data`"
    );

    // A Mcp-Name naming another URI: refused by our layer, before rmcp.
    let a = post(&served, "resources/subscribe", Some("mem://other"), body()).await;
    assert_eq!(served.reached(), 3, "rmcp never saw it");
    assert_eq!(a.status, 400);
    assert_eq!(a.header("content-type"), "application/json");
    assert_eq!(
        a.json(),
        json!({"jsonrpc": "2.0", "id": 6, "error": {
            "code": -32020,
            "message": "The Mcp-Name header does not match the request body",
            "data": {"status": 400, "code": "header_mismatch"},
        }})
    );
}
