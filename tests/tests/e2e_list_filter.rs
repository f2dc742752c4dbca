#![cfg(feature = "e2e")]
//! Callers see only what they may call: the stack's `ListFilterLayer` in front of a real rmcp server, driven
//! by the official Python client (both eras) and TypeScript client (2025-11-25 era) over real
//! sockets, with a read-only token, an admin token and a token with no tool scopes; plus the
//! unbuffered-SSE barrier and the fail-closed cases with a raw HTTP client.
//!
//! The server mirrors `examples/axum_mcp_server.rs`: the whole stack from `SecurityConfig`
//! (audit, auth, rate limits, and the list filter the stack switches on because its rules are
//! MCP rules; `TestServer::start_serving` of the e2e harness) around a `Router` whose MCP service
//! is the bare server: nothing but the facade's own filter cuts the lists.
//!
//! Setup: `bash .ci/e2e-setup.sh`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use mcp_security::SecurityConfigBuilder;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::core::Scopes;
use mcp_security::core::config::Secret;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, Prompt, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tests::e2e_support::{
    ClientRun, MCP_PATH, ServerOptions, TestServer, run_python_script, run_typescript_script,
};
use tokio::sync::{Notify, mpsc};
use tower::util::BoxCloneSyncService;

/// A bound on every step that could hang if something buffered: the test fails, never hangs.
const BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The server: tools, one unscoped and one scoped prompt, resources and a template.
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct NotesServer {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoParams {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NoteName {
    /// The note's name.
    name: String,
}

#[tool_router]
impl NotesServer {
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoParams { text }): Parameters<EchoParams>) -> String {
        text
    }

    #[tool(description = "Read the note called `name`.")]
    async fn read_note(&self, Parameters(NoteName { name }): Parameters<NoteName>) -> String {
        format!("the note {name}")
    }

    #[tool(description = "Write the note called `name`.")]
    async fn write_note(&self, Parameters(NoteName { name }): Parameters<NoteName>) -> String {
        format!("wrote {name}")
    }

    #[tool(description = "Delete the note called `name`.")]
    async fn delete_note(
        &self,
        Parameters(NoteName { name }): Parameters<NoteName>,
    ) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(format!("deleted {name}"))])
    }
}

const PROMPTS: [&str; 2] = ["summary", "admin_report"];
const RESOURCES: [&str; 2] = ["mem://notes/welcome", "mem://public/readme"];
const TEMPLATES: [&str; 2] = ["mem://notes/{name}", "mem://admin/{name}"];

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NotesServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-security-e2e-lists", "0.0.0"))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(
            PROMPTS
                .iter()
                .map(|p| Prompt::new(*p, Some("a prompt"), None))
                .collect(),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if !PROMPTS.contains(&request.name.as_str()) {
            return Err(ErrorData::invalid_params("no such prompt", None));
        }
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
        Ok(ListResourcesResult::with_all_items(
            RESOURCES.iter().map(|u| Resource::new(*u, *u)).collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            TEMPLATES
                .iter()
                .map(|t| ResourceTemplate::new(*t, *t))
                .collect(),
        ))
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
}

/// The rules the stack enforces on calls; its list filter applies the same policy.
fn rules() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("tools/call:read_note", &["notes:read"]),
        ("tools/call:write_note", &["notes:write"]),
        ("tools/call:delete_note", &["notes:delete"]),
        ("prompts/get:admin_report", &["admin"]),
        ("resources/read:mem://notes/*", &["notes:read"]),
        ("resources/read:mem://admin/*", &["admin"]),
    ]
}

struct Keys {
    admin: String,
    reader: String,
    none: String,
}

/// The MCP service a [`Server`] puts behind the list filter.
type McpService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A [`TestServer`] with three callers' keys and an audit trail, removed when dropped.
struct Server {
    server: TestServer,
    keys: Keys,
    audit_file: PathBuf,
}

impl Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Server {
    /// The audit trail, once the audit log is closed (every record written).
    async fn audit_trail(&self) -> String {
        self.security().audit().close().await.expect("audit close");
        std::fs::read_to_string(&self.audit_file).expect("audit file")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.audit_file);
    }
}

/// The stack (from `SecurityConfig`) around a router whose `/mcp` service is `mcp`; the stack's
/// built-in list filter (switched on by the MCP rules) cuts the lists, with a cap of
/// `max_list_bytes` (`SecurityConfigBuilder::max_list_bytes`).
async fn start_with(mcp: McpService, max_list_bytes: usize) -> Server {
    start_configured(mcp, max_list_bytes, |b| b).await
}

/// [`start_with`], with `more` applied last to the builder.
async fn start_configured(
    mcp: McpService,
    max_list_bytes: usize,
    more: impl FnOnce(SecurityConfigBuilder) -> SecurityConfigBuilder,
) -> Server {
    static NEXT_TRAIL: AtomicU64 = AtomicU64::new(0);
    let key = || generate_key(DEFAULT_KEY_PREFIX).expect("key");
    let keys = Keys {
        admin: key(),
        reader: key(),
        none: key(),
    };
    let audit_file = std::env::temp_dir().join(format!(
        "mcp-security-e2e-lists-{}-{}.jsonl",
        std::process::id(),
        NEXT_TRAIL.fetch_add(1, Ordering::Relaxed)
    ));
    let configure = |mut builder: SecurityConfigBuilder| {
        builder = builder
            .named_api_key("admin", Secret::new(&keys.admin), Scopes::new(["*"]))
            .named_api_key(
                "reader",
                Secret::new(&keys.reader),
                Scopes::new(["notes:read"]),
            )
            .named_api_key("nobody", Secret::new(&keys.none), Scopes::new(["profile"]))
            .audit_log_file(
                &audit_file,
                Secret::new("an audit chain key of at least 32 bytes!!"),
            )
            // The stack's own list filter (on because the rules below are MCP rules) does the
            // filtering, with this cap; nothing else in front of the server filters.
            .max_list_bytes(max_list_bytes);
        for (k, scopes) in rules() {
            builder = builder.require_mcp(k, scopes.iter().copied());
        }
        more(builder)
    };
    let server = TestServer::start_serving(ServerOptions::default(), configure, |_| {
        Router::new().nest_service(MCP_PATH, mcp)
    })
    .await;
    Server {
        server,
        keys,
        audit_file,
    }
}

async fn start() -> Server {
    let allowed = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let mcp = StreamableHttpService::new(
        || {
            Ok(NotesServer {
                tool_router: NotesServer::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed),
    );
    let mcp = tower::ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .service(mcp);
    start_with(BoxCloneSyncService::new(mcp), 4 * 1024 * 1024).await
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

fn names(run: &ClientRun, key: &str) -> Vec<String> {
    run.report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {}", run.describe()))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// What each token must see, and that it can use every entry it sees.
fn assert_sees(run: &ClientRun, who: &str) {
    assert_eq!(run.code, Some(0), "{who}: {}", run.describe());
    let (tools, prompts, resources, templates): (&[&str], &[&str], &[&str], &[&str]) = match who {
        "admin" => (
            &["delete_note", "echo", "read_note", "write_note"],
            &PROMPTS,
            &RESOURCES,
            &TEMPLATES,
        ),
        "reader" => (
            &["echo", "read_note"],
            &["summary"],
            &RESOURCES,
            &["mem://notes/{name}"],
        ),
        _ => (&["echo"], &["summary"], &["mem://public/readme"], &[]),
    };
    assert_eq!(
        names(run, "tools"),
        sorted(tools),
        "{who}: {}",
        run.describe()
    );
    assert_eq!(names(run, "prompts"), sorted(prompts), "{who}");
    assert_eq!(names(run, "resources"), sorted(resources), "{who}");
    assert_eq!(names(run, "templates"), sorted(templates), "{who}");
    let calls = run.report["calls"].as_array().expect("calls");
    assert_eq!(
        calls.len(),
        tools.len() + prompts.len() + resources.len(),
        "{who}: {}",
        run.describe()
    );
    for c in calls {
        assert_eq!(c["ok"], true, "{who} may use what it sees: {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_lists_exactly_what_each_caller_may_use_in_both_eras() {
    let server = start().await;
    for mode in ["legacy", "auto"] {
        for (who, token) in [
            ("admin", &server.keys.admin),
            ("reader", &server.keys.reader),
            ("nobody", &server.keys.none),
        ] {
            let run = run_python_script(
                "list_client.py",
                &[&server.url, "--mode", mode, "--token", token],
            )
            .await;
            assert_sees(&run, who);
            if mode == "auto" {
                assert_eq!(run.report["protocol"], "2026-07-28", "{}", run.describe());
                // Every list the layer touched is private in the 2026-07-28 era.
                for key in ["tools", "prompts", "resources", "templates"] {
                    assert_eq!(
                        run.report["cache_scopes"][key],
                        "private",
                        "{key}: {}",
                        run.describe()
                    );
                }
            }
        }
    }
    // The refusal at call time agrees with the list: the reader cannot call what it cannot see.
    let run = run_python_script(
        "list_client.py",
        &[
            &server.url,
            "--mode",
            "auto",
            "--token",
            &server.keys.reader,
            "--call",
            "delete_note",
        ],
    )
    .await;
    assert_eq!(run.report["extra_call"]["ok"], false, "{}", run.describe());
    // The audit trail has completion records with entries hidden.
    let trail = server.audit_trail().await;
    let hidden: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "completion" && v["list_method"] == "tools/list")
        .collect();
    assert!(!hidden.is_empty(), "{trail}");
    assert!(
        hidden
            .iter()
            .any(|v| v["entries_hidden"] == 3 && v["body"] == "complete"),
        "{hidden:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_lists_exactly_what_each_caller_may_use() {
    let server = start().await;
    for (who, token) in [
        ("admin", &server.keys.admin),
        ("reader", &server.keys.reader),
        ("nobody", &server.keys.none),
    ] {
        let run =
            run_typescript_script("list_client.mjs", &["--url", &server.url, "--token", token])
                .await;
        assert_sees(&run, who);
    }
}

// ---------------------------------------------------------------------------------------------
// A scripted server: the barrier, oversize and invalid JSON, with a raw HTTP client.
// ---------------------------------------------------------------------------------------------

const NOTE_EVENT: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n";

fn tools_list(id: u64, extra: usize) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "tools": [
                {"name": "echo", "inputSchema": {"type": "object"}},
                {"name": "delete_note", "inputSchema": {"type": "object"}, "padding": "x".repeat(extra)},
            ],
        },
    })
    .to_string()
}

/// Answers every POST by the `x-script` header: `barrier` (a notification, then the list only
/// once `release` is notified), `big` (a list over the cap), `invalid` (not JSON).
fn scripted(release: Arc<Notify>) -> McpService {
    BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
        let release = Arc::clone(&release);
        async move {
            let script = req
                .headers()
                .get("x-script")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let sse = |body: Body| {
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(body)
                    .expect("response")
            };
            let res = match script.as_str() {
                "barrier" => {
                    let (tx, rx) = mpsc::channel::<Bytes>(4);
                    tokio::spawn(async move {
                        let _ = tx.send(Bytes::from_static(NOTE_EVENT.as_bytes())).await;
                        // Held back until the client has the notification.
                        release.notified().await;
                        let list = format!("event: message\ndata: {}\n\n", tools_list(1, 0));
                        let _ = tx.send(Bytes::from(list)).await;
                    });
                    sse(Body::new(ChannelBody(rx)))
                }
                "big" => sse(Body::from(format!(
                    "{NOTE_EVENT}data: {}\n\n",
                    tools_list(1, 4096)
                ))),
                "big-json" => Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(tools_list(1, 4096)))
                    .expect("response"),
                _ => Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_note\"}"))
                    .expect("response"),
            };
            Ok(res)
        }
    }))
}

/// A body fed frame by frame from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

async fn post_list(addr: SocketAddr, token: &str, script: &str) -> Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = Request::post(MCP_PATH)
        .header("host", format!("127.0.0.1:{}", addr.port()))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-script", script)
        .body(http_body_util::Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )))
        .expect("request");
    sender.send_request(req).await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_notification_ahead_of_the_list_is_not_buffered() {
    let release = Arc::new(Notify::new());
    let server = start_with(scripted(Arc::clone(&release)), 4 * 1024 * 1024).await;
    let res = post_list(server.addr, &server.keys.reader, "barrier").await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut seen = String::new();
    // The notification must arrive while the list is still held back: a filter that buffered
    // the stream would never deliver it, and this times out instead of passing.
    tokio::time::timeout(BOUND, async {
        while !seen.contains("notifications/message") {
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await
    .expect("the notification arrived before the list was sent (no buffering)");
    assert_eq!(seen, NOTE_EVENT, "forwarded intact");
    release.notify_one();
    let rest = tokio::time::timeout(BOUND, body.collect())
        .await
        .expect("the list arrives")
        .expect("body")
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).expect("utf-8");
    let data = rest
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let list: Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(
        list["result"]["tools"],
        json!([{"name": "echo", "inputSchema": {"type": "object"}}])
    );
}

/// Posts each script's `tools/list` and asserts the answer is the fail-closed JSON-RPC error
/// with `code`, never the unfiltered list.
async fn assert_fails_closed(server: &Server, script: &str, code: &str) {
    let res = tokio::time::timeout(BOUND, post_list(server.addr, &server.keys.admin, script))
        .await
        .expect("answer");
    assert_eq!(res.status(), 200, "{script}");
    let body = tokio::time::timeout(BOUND, res.into_body().collect())
        .await
        .expect("body")
        .expect("body")
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(
        !text.contains("delete_note"),
        "{script}: never unfiltered: {text}"
    );
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap_or(&text);
    let v: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("{script}: {text}"));
    assert_eq!(v["id"], 1, "{script}");
    assert_eq!(v["error"]["code"], -32603, "{script}");
    assert_eq!(v["error"]["data"]["code"], code, "{script}");
}

/// The `(failed_closed, failed_closed_by)` pairs of the trail's completion records, in order.
fn failures(trail: &str) -> Vec<(String, String)> {
    trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "completion" && !v["failed_closed"].is_null())
        .map(|v| {
            (
                v["failed_closed"].as_str().unwrap_or_default().to_owned(),
                v["failed_closed_by"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_invalid_lists_fail_closed() {
    // The stack as configured: the list filter's cap is the facade's 1024 bytes (the tool
    // guard, which also reads `tools/list` answers to learn the tools' schemas, has its 4 MiB).
    let server = start_with(scripted(Arc::new(Notify::new())), 1024).await;
    for (script, code) in [
        ("big", "response_too_large"),
        ("big-json", "response_too_large"),
        ("invalid", "response_invalid_json"),
    ] {
        assert_fails_closed(&server, script, code).await;
    }
    let trail = server.audit_trail().await;
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        failures(&trail),
        [
            pair("response_too_large", "list_filter"),
            pair("response_too_large", "list_filter"),
            // Invalid JSON is met first by the innermost reader of `tools/list` answers, the
            // tool guard (which records itself as the result guard); the list filter then
            // passes its JSON-RPC error on.
            pair("response_invalid_json", "result_guard"),
        ],
        "{trail}"
    );

    // With nothing else reading lists (argument validation off), the list filter itself
    // refuses the invalid list.
    let server = start_configured(scripted(Arc::new(Notify::new())), 1024, |b| {
        b.validate_tool_args(false)
    })
    .await;
    assert_fails_closed(&server, "invalid", "response_invalid_json").await;
    let trail = server.audit_trail().await;
    assert_eq!(
        failures(&trail),
        [pair("response_invalid_json", "list_filter")],
        "{trail}"
    );
}
