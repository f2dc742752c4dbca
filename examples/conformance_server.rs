//! # The MCP conformance suite's server, bare or behind mcp-security
//!
//! An rmcp streamable-HTTP server with the tools, resources and prompts the
//! server scenarios of the official conformance suite
//! (`@modelcontextprotocol/conformance`, `conformance server --url …`) call,
//! with the names, arguments and results those scenarios expect:
//!
//! * every fixture of the active suite of release 0.1.16 (2025-11-25 era:
//!   content types, logging, progress, sampling, elicitation, resources,
//!   templates, subscriptions, prompts, completion);
//! * of the 2026-07-28 requirements (pre-release 0.2.0-alpha.12), the
//!   stateless-serving diagnostics (`test_missing_capability`,
//!   `test_streaming_elicitation`, `test_logging_tool`, `subscriptions/listen`
//!   with `test_trigger_tool_change` / `test_trigger_prompt_change`),
//!   the SEP-2243 `Mcp-Param-*` tool (`test_custom_header`),
//!   `json_schema_2020_12_tool`, and the Tasks-extension (SEP-2663) fixtures
//!   (`greet`, `slow_compute`, `failing_job`, `protocol_error_job`,
//!   `confirm_delete`, `multi_input`, `test_tool_with_task`, and
//!   `tasks/get|update|cancel`), and the multi-round `InputRequiredResult`
//!   (SEP-2322) tools and prompt, with a sealed `requestState`.
//!
//! CI (`.ci/conformance.sh`) runs the suite against it twice:
//!
//! * `bare` — plain rmcp, nothing in front. rmcp's own `Host` allowlist is
//!   turned off (`disable_allowed_hosts`), so the suite's DNS-rebinding
//!   scenario measures the server alone, and fails.
//! * `stacked` (the default) — the same router behind the whole mcp-security
//!   stack (`SecurityConfig::layer`): audit, security headers, Origin guard and
//!   CORS, rate limits, resource limits, `McpInspectLayer`, auth, session
//!   binding, list filtering, tool guards. rmcp's `Host` check stays off here
//!   too, so a passing DNS-rebinding scenario is our Origin guard's doing.
//!   The suite sends no credential: authentication runs in development mode
//!   with the dev bypass (`MCP_DEV_BYPASS`, loopback only), and the per-client
//!   rate limit is lifted to 100 000 requests a minute.
//!
//! The expected-failures files (`.ci/conformance/expected-failures*.txt`) are
//! the bare runs' own lists; the stacked run may fail nothing the bare run
//! passes.
//!
//! ## Run it
//!
//! ```text
//! MCP_BIND=127.0.0.1:8090 cargo run -p examples --example conformance_server -- bare
//! MCP_BIND=127.0.0.1:8091 cargo run -p examples --example conformance_server -- stacked
//! node dist/index.js server --url http://127.0.0.1:8091/mcp
//! ```
//!
//! In `stacked` mode every other `MCP_*` variable of `mcp_security::config`
//! still applies, except that the environment is development, the dev bypass
//! is on, and the per-client limit is high (a test fixture, not a deployment).
//! `RUST_LOG` filters the log (default `warn,rmcp=error`: rmcp logs each error answer at WARN).

// Most scenarios exercise the 2025-11-25 era: logging, sampling and server-to-client requests,
// which rmcp marks deprecated in favour of the 2026-07-28 forms.
#![allow(deprecated)]

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use axum::{Router, serve::ListenerExt};
use mcp_security::SecurityConfig;
use mcp_security::core::config::{Env, Environment};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        AudioContent, CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        ClientCapabilities, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
        CreateMessageRequest, CreateMessageRequestParams, CreateTaskResult, ElicitRequest,
        ElicitRequestParams, ElicitationSchema, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, GetTaskParams, GetTaskResult, Implementation, InputRequest, InputRequests,
        InputRequiredResult, InputResponses, JsonObject, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListRootsRequest, ListToolsResult,
        LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ProgressNotificationParam, Prompt, PromptArgument, PromptListChangedNotification,
        PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        Reference, RequestStateCodec, Resource, ResourceContents, ResourceTemplate, Role,
        SamplingMessage, ServerCapabilities, ServerConfig, ServerNotification,
        SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
        ToolListChangedNotification, UnsubscribeRequestParams, UpdateTaskParams,
    },
    service::{RequestContext, SubscriptionContext, SubscriptionSink},
    task_manager::{TaskExit, TaskManager, TaskOptions},
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

mod common;

/// Where the MCP endpoint is mounted.
const MCP_PATH: &str = "/mcp";
/// Listen address when `MCP_BIND` is unset.
const DEFAULT_BIND: &str = "127.0.0.1:8090";
/// The per-client request budget per minute in `stacked` mode: high enough that the suite
/// (a few hundred requests from one address) never meets it.
const STACKED_RATE_LIMIT: u64 = 100_000;

/// A 1×1 red PNG, base64.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples (8 kHz, mono, 8-bit), base64.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

/// The static resources `resources/list` shows: (uri, name, description, MIME type).
const RESOURCES: [(&str, &str, &str, &str); 3] = [
    (
        "test://static-text",
        "static-text",
        "A static text resource",
        "text/plain",
    ),
    (
        "test://static-binary",
        "static-binary",
        "A static binary resource (a 1x1 PNG)",
        "image/png",
    ),
    (
        "test://watched-resource",
        "watched-resource",
        "A resource clients may subscribe to",
        "text/plain",
    ),
];
/// The one resource template.
const TEMPLATE: &str = "test://template/{id}/data";
/// Suggestions `completion/complete` filters by prefix.
const COMPLETIONS: [&str; 6] = ["paris", "park", "party", "hello", "help", "world"];

/// How this process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Plain rmcp, nothing in front (rmcp's Host check off).
    Bare,
    /// Behind the whole mcp-security stack.
    Stacked,
}

impl Mode {
    /// From the first command-line argument (`bare` or `stacked`, default `stacked`).
    fn from_args() -> anyhow::Result<Self> {
        match std::env::args().nth(1).as_deref() {
            None | Some("stacked") => Ok(Self::Stacked),
            Some("bare") => Ok(Self::Bare),
            Some(other) => bail!("unknown mode {other:?}: expected `bare` or `stacked`"),
        }
    }
}

/// State shared by every session of the process.
struct Shared {
    /// What `tools/list` shows (and rmcp validates calls against), built once.
    tools: Vec<Tool>,
    /// Resource URIs with a live `resources/subscribe`.
    subscriptions: Mutex<HashSet<String>>,
    /// Tasks (SEP-2663) outlive the request that created them: one manager per process.
    tasks: TaskManager,
    /// Seals the `requestState` of multi-round (SEP-2322) calls; the client echoes it back and
    /// must not be able to forge it.
    request_state: RequestStateCodec,
    /// Open `subscriptions/listen` streams, by a local number.
    listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    /// The next listener number.
    next_listener: AtomicU64,
}

/// At most this many `subscriptions/listen` streams are tracked (a fixture, but bounded).
const MAX_LISTENERS: usize = 1024;

impl Shared {
    /// Sends `notification` to every listen stream that accepted it (the others refuse it).
    async fn broadcast(&self, notification: ServerNotification) -> usize {
        let sinks: Vec<SubscriptionSink> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut delivered = 0;
        for sink in sinks {
            if sink.send(notification.clone()).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }
}

impl Shared {
    /// Tools, an empty task manager, and a request-state key made for this process.
    fn new() -> anyhow::Result<Self> {
        let key = mcp_security::auth::api_key::generate_key("rs")?;
        Ok(Self {
            tools: tools(),
            subscriptions: Mutex::default(),
            tasks: TaskManager::new(),
            request_state: RequestStateCodec::try_new(key.into_bytes())
                .map_err(|e| anyhow::anyhow!("request-state key: {e}"))?,
            listeners: Mutex::default(),
            next_listener: AtomicU64::new(0),
        })
    }
}

/// The conformance server: one value per session, sharing [`Shared`].
#[derive(Clone)]
struct ConformanceServer {
    shared: Arc<Shared>,
    /// The lowest level `logging/setLevel` asked for in this session (`None`: everything).
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
}

impl ConformanceServer {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            log_level: Arc::default(),
        }
    }

    /// Sends `message` as a log notification unless the session's level filters it out.
    async fn log(&self, cx: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        let threshold = *self
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if threshold.is_some_and(|min| severity(level) < severity(min)) {
            return;
        }
        let sent = cx
            .peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(level, json!(message))
                    .with_logger("conformance-server"),
            )
            .await;
        if let Err(e) = sent {
            tracing::debug!("log notification not sent: {e}");
        }
    }

    /// `test_tool_with_logging`: three info logs ~50 ms apart.
    async fn tool_with_logging(&self, cx: &RequestContext<RoleServer>) -> CallToolResult {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, step) in steps.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.log(cx, LoggingLevel::Info, step).await;
        }
        text_result("Tool with logging completed")
    }
}

/// A log level's rank: higher is more severe.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// A successful tool result with one text block.
fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A JSON object literal as rmcp's `JsonObject` (anything else is an empty object).
fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// An input schema with the given string properties, all required.
fn string_args(args: &[(&str, &str)]) -> JsonObject {
    let properties: serde_json::Map<String, Value> = args
        .iter()
        .map(|&(name, description)| {
            (
                name.to_owned(),
                json!({ "type": "string", "description": description }),
            )
        })
        .collect();
    let required: Vec<&str> = args.iter().map(|&(name, _)| name).collect();
    object(json!({ "type": "object", "properties": properties, "required": required }))
}

/// Every tool the server scenarios call, as `tools/list` shows them.
fn tools() -> Vec<Tool> {
    let no_args: &[(&str, &str)] = &[];
    let tool = |name: &'static str, description: &'static str, args: &[(&str, &str)]| {
        Tool::new(name, description, string_args(args))
    };
    vec![
        tool(
            "test_simple_text",
            "Returns a simple text response",
            no_args,
        ),
        tool("test_image_content", "Returns a 1x1 PNG image", no_args),
        tool("test_audio_content", "Returns a short WAV clip", no_args),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            no_args,
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource",
            no_args,
        ),
        tool(
            "test_tool_with_logging",
            "Sends three log notifications while it runs",
            no_args,
        ),
        tool(
            "test_error_handling",
            "Always fails with a tool error (isError: true)",
            no_args,
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100",
            no_args,
        ),
        tool(
            "test_sampling",
            "Asks the client's LLM to answer `prompt` (sampling/createMessage)",
            &[("prompt", "The prompt to send to the LLM")],
        ),
        tool(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create)",
            &[("message", "The message to show the user")],
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation whose schema has a default for every primitive type (SEP-1034)",
            no_args,
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with the five enum schema forms (SEP-1330)",
            no_args,
        ),
        // The 2026-07-28 (stateless) scenarios' fixtures.
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability; without it the call fails with -32021",
            no_args,
        ),
        tool(
            "test_streaming_elicitation",
            "Answers with an input_required result holding one elicitation request",
            no_args,
        ),
        tool(
            "test_logging_tool",
            "Logs one message, and only when the request's _meta asks for a log level",
            no_args,
        ),
        Tool::new(
            "test_custom_header",
            "Echoes `value`, which clients also send as the Mcp-Param-Value header (SEP-2243)",
            object(json!({
                "type": "object",
                "properties": {
                    "value": { "type": "string", "description": "Any text", "x-mcp-header": "Value" }
                },
                "required": ["value"]
            })),
        ),
        tool(
            "test_trigger_tool_change",
            "Announces a tool-list change on every listen stream that asked for it",
            no_args,
        ),
        tool(
            "test_trigger_prompt_change",
            "Announces a prompt-list change on every listen stream that asked for it",
            no_args,
        ),
        Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json_schema_2020_12()),
        ),
    ]
    .into_iter()
    .chain(MRTR_TOOLS.iter().map(|&(name, description)| {
        Tool::new(name, description, string_args(&[]))
    }))
    .chain(TASK_TOOLS.iter().map(|&(name, description, _)| {
        Tool::new(name, description, task_tool_schema(name))
    }))
    .collect()
}

/// The multi-round (SEP-2322 `InputRequiredResult`) scenarios' tools, all without arguments.
const MRTR_TOOLS: [(&str, &str); 8] = [
    (
        "test_input_required_result_elicitation",
        "Asks for the user's name (input_required), then greets them",
    ),
    (
        "test_input_required_result_sampling",
        "Asks the client's LLM a question (input_required), then reports the answer",
    ),
    (
        "test_input_required_result_list_roots",
        "Asks for the client's roots (input_required), then lists them",
    ),
    (
        "test_input_required_result_request_state",
        "Asks for a confirmation with a sealed requestState, then checks the state",
    ),
    (
        "test_input_required_result_tampered_state",
        "Like request_state: a forged requestState is refused with -32602",
    ),
    (
        "test_input_required_result_multiple_inputs",
        "Asks for a name, a greeting and the roots at once",
    ),
    (
        "test_input_required_result_multi_round",
        "Two input_required rounds (name, then color), the round sealed in requestState",
    ),
    (
        "test_input_required_result_capabilities",
        "Asks only for the inputs the client's declared capabilities allow",
    ),
];

/// A sampling request as an MRTR input request.
fn ask_llm(prompt: &str) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        100,
    )))
}

/// A `roots/list` request as an MRTR input request.
fn ask_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest::default())
}

/// The client's answer under `key`, when it is an object (anything else counts as missing, so
/// the server asks again).
fn response<'a>(responses: Option<&'a InputResponses>, key: &str) -> Option<&'a Value> {
    responses.and_then(|r| r.get(key)).filter(|v| v.is_object())
}

/// One round's input requests: `input_required`, optionally with a sealed state.
fn input_required(
    requests: impl IntoIterator<Item = (&'static str, InputRequest)>,
    state: Option<String>,
) -> CallToolResponse {
    let requests: InputRequests = requests
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    InputRequiredResult::new(Some(requests), state).into()
}

impl ConformanceServer {
    /// Seals `state` for the client to echo back.
    fn seal(&self, state: &Value) -> Result<String, ErrorData> {
        self.shared
            .request_state
            .seal_json(state)
            .map_err(|e| ErrorData::internal_error(format!("requestState: {e}"), None))
    }

    /// Opens an echoed `requestState`; a forged or altered one is the client's error (-32602).
    fn open(&self, sealed: &str) -> Result<Value, ErrorData> {
        self.shared.request_state.open_json(sealed).map_err(|_| {
            ErrorData::invalid_params("requestState failed integrity verification", None)
        })
    }

    /// Runs a multi-round (SEP-2322) fixture: each call either asks for input or, given the
    /// answers (and the sealed state it handed out), finishes.
    fn call_mrtr_tool(
        &self,
        request: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let answers = request.input_responses.as_ref();
        let state = request.request_state.as_deref();
        let done = |text: String| Ok(text_result(text).into());
        match request.name.as_ref() {
            "test_input_required_result_elicitation" => match response(answers, "user_name") {
                Some(answer) => done(format!("Hello, {}!", answered(answer, "name"))),
                None => Ok(input_required(
                    [("user_name", ask("What is your name?", "name", "string")?)],
                    None,
                )),
            },
            "test_input_required_result_sampling" => match response(answers, "capital") {
                Some(answer) => {
                    let text = answer
                        .get("content")
                        .and_then(|c| c.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or("(no text)");
                    done(format!("Sampling response: {text}"))
                }
                None => Ok(input_required(
                    [("capital", ask_llm("What is the capital of France?"))],
                    None,
                )),
            },
            "test_input_required_result_list_roots" => match response(answers, "roots") {
                Some(answer) => {
                    let uris: Vec<&str> = answer
                        .get("roots")
                        .and_then(Value::as_array)
                        .map(|roots| {
                            roots
                                .iter()
                                .filter_map(|r| r.get("uri").and_then(Value::as_str))
                                .collect()
                        })
                        .unwrap_or_default();
                    done(format!("Client roots: [{}]", uris.join(", ")))
                }
                None => Ok(input_required([("roots", ask_roots())], None)),
            },
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => match state {
                Some(sealed) => {
                    self.open(sealed)?;
                    done("Confirmed: state-ok".to_owned())
                }
                None => Ok(input_required(
                    [("confirm", ask("Please confirm", "ok", "boolean")?)],
                    Some(self.seal(&json!({ "stage": "confirm" }))?),
                )),
            },
            "test_input_required_result_multiple_inputs" => {
                if let Some(sealed) = state {
                    self.open(sealed)?;
                }
                let keys = ["user_name", "greeting", "client_roots"];
                if state.is_some() && keys.iter().all(|k| response(answers, k).is_some()) {
                    return done("All inputs received".to_owned());
                }
                Ok(input_required(
                    [
                        ("user_name", ask("What is your name?", "name", "string")?),
                        ("greeting", ask_llm("Generate a greeting")),
                        ("client_roots", ask_roots()),
                    ],
                    Some(self.seal(&json!({ "stage": "gather" }))?),
                ))
            }
            "test_input_required_result_multi_round" => {
                let round = match state {
                    Some(sealed) => self
                        .open(sealed)?
                        .get("round")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    None => 0,
                };
                match round {
                    0 => Ok(input_required(
                        [(
                            "step1",
                            ask("Step 1: What is your name?", "name", "string")?,
                        )],
                        Some(self.seal(&json!({ "round": 1 }))?),
                    )),
                    1 => Ok(input_required(
                        [(
                            "step2",
                            ask("Step 2: What is your favorite color?", "color", "string")?,
                        )],
                        Some(self.seal(&json!({ "round": 2 }))?),
                    )),
                    _ => done("Multi-round flow complete".to_owned()),
                }
            }
            "test_input_required_result_capabilities" => {
                if answers.is_some() {
                    return done("Capability-aware flow complete".to_owned());
                }
                // Ask only for what the client said it can do.
                let declared = cx.client_capabilities().unwrap_or_default();
                let mut requests = Vec::new();
                if declared.elicitation.is_some() {
                    requests.push(("user_name", ask("What is your name?", "name", "string")?));
                }
                if declared.sampling.is_some() {
                    requests.push(("greeting", ask_llm("Generate a greeting")));
                }
                if declared.roots.is_some() {
                    requests.push(("client_roots", ask_roots()));
                }
                if requests.is_empty() {
                    return done("The client declared no input capability".to_owned());
                }
                Ok(input_required(requests, None))
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}

/// How a Tasks-extension (SEP-2663) fixture runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskSupport {
    /// Always answers inline.
    Never,
    /// Becomes a task when the client declared the tasks extension, else answers inline.
    Optional,
    /// Only as a task: without the extension the call fails with -32021.
    Required,
}

/// The Tasks-extension scenarios' fixtures: (name, description, how it runs).
const TASK_TOOLS: [(&str, &str, TaskSupport); 7] = [
    (
        "greet",
        "Says hello to `name`, inline (SEP-2663 sync-only fixture)",
        TaskSupport::Never,
    ),
    (
        "slow_compute",
        "Sleeps `seconds`, then reports `label` (task-supporting)",
        TaskSupport::Optional,
    ),
    (
        "failing_job",
        "Ends with a tool error (isError: true); task required",
        TaskSupport::Required,
    ),
    (
        "protocol_error_job",
        "Ends with a JSON-RPC error (task status failed when run as a task)",
        TaskSupport::Optional,
    ),
    (
        "confirm_delete",
        "Asks for a yes/no confirmation inside the task before `deleting` `filename`",
        TaskSupport::Required,
    ),
    (
        "multi_input",
        "Asks for two values at once inside the task",
        TaskSupport::Required,
    ),
    (
        "test_tool_with_task",
        "Asks for a name (input_required), then finishes as a task",
        TaskSupport::Required,
    ),
];

/// The input schema of a task fixture.
fn task_tool_schema(name: &str) -> JsonObject {
    let properties = match name {
        "greet" => json!({ "name": { "type": "string" } }),
        "slow_compute" => json!({ "seconds": { "type": "number" }, "label": { "type": "string" } }),
        "confirm_delete" => json!({ "filename": { "type": "string" } }),
        _ => json!({}),
    };
    let required = if name == "greet" {
        json!(["name"])
    } else {
        json!([])
    };
    object(json!({ "type": "object", "properties": properties, "required": required }))
}

/// One form elicitation as an MRTR / in-task input request: `field` (a string) is required.
fn ask(message: &str, field: &str, kind: &str) -> Result<InputRequest, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": { field: { "type": kind } },
        "required": [field]
    });
    let requested_schema: ElicitationSchema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("elicitation schema: {e}"), None))?;
    Ok(InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema,
        },
    )))
}

/// `content.<field>` of an elicitation answer, as text.
fn answered(response: &Value, field: &str) -> String {
    match response.get("content").and_then(|c| c.get(field)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".to_owned(),
    }
}

impl ConformanceServer {
    /// Runs a Tasks-extension fixture: as a task when the client declared the extension and the
    /// tool supports tasks, inline otherwise (or -32021 when the tool needs a task).
    async fn call_task_tool(
        &self,
        name: &str,
        support: TaskSupport,
        request: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let as_task = support != TaskSupport::Never
            && cx.client_capabilities().is_some_and(|c| c.supports_tasks());
        if support == TaskSupport::Required && !as_task {
            return Err(ErrorData::missing_required_client_capability(
                ClientCapabilities::builder().enable_tasks().build(),
            ));
        }
        let tasks = &self.shared.tasks;
        let spawn = |work: rmcp::task_manager::TaskFuture| {
            let task = tasks.spawn(TaskOptions::default(), move |_| work);
            Ok(CreateTaskResult::new(task).into())
        };
        match name {
            "greet" => {
                let who = args.get("name").and_then(Value::as_str).unwrap_or("friend");
                Ok(text_result(format!("Hello, {who}!")).into())
            }
            "slow_compute" => {
                // JSON numbers are finite; bound them so a call cannot park a task for long.
                let seconds = args
                    .get("seconds")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite())
                    .unwrap_or(1.0)
                    .clamp(0.0, 60.0);
                let label = args
                    .get("label")
                    .and_then(Value::as_str)
                    .unwrap_or("compute")
                    .to_owned();
                let done =
                    move || text_result(format!("slow_compute({label}) done after {seconds}s"));
                let sleep = Duration::from_secs_f64(seconds);
                if !as_task {
                    tokio::time::sleep(sleep).await;
                    return Ok(done().into());
                }
                // Cancellation is cooperative: a cancelled task settles as `cancelled`.
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        tokio::select! {
                            () = ctx.cancelled() => Err(TaskExit::Cancelled),
                            () = tokio::time::sleep(sleep) => Ok(done()),
                        }
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "failing_job" => spawn(Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    "failing_job: intentional tool execution error",
                )]))
            })),
            "protocol_error_job" => {
                let failure =
                    ErrorData::internal_error("protocol_error_job: intentional failure", None);
                if !as_task {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(failure);
                }
                spawn(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err(TaskExit::Error(failure))
                }))
            }
            "confirm_delete" => {
                let filename = args
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("file.txt")
                    .to_owned();
                let question = ask(&format!("Delete {filename}?"), "confirm", "boolean")?;
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        let answer = ctx.request_input("confirm", question).await?;
                        let confirmed = answer
                            .get("content")
                            .and_then(|c| c.get("confirm"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        Ok(text_result(format!(
                            "confirm_delete({filename}): confirmed = {confirmed}"
                        )))
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "multi_input" => {
                let a = ask("Provide value A", "value", "string")?;
                let b = ask("Provide value B", "value", "string")?;
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        // Both pending at once, so a client can answer one and then the other.
                        let (a, b) = tokio::join!(
                            ctx.request_input("input-a", a),
                            ctx.request_input("input-b", b)
                        );
                        let (a, b) = (a?, b?);
                        Ok(text_result(format!(
                            "multi_input: a = {}, b = {}",
                            answered(&a, "value"),
                            answered(&b, "value")
                        )))
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "test_tool_with_task" => {
                let given = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_name"))
                    .filter(|v| v.is_object());
                let Some(response) = given else {
                    let mut requests = InputRequests::new();
                    requests.insert(
                        "user_name".to_owned(),
                        ask("What is your name?", "name", "string")?,
                    );
                    return Ok(InputRequiredResult::from_input_requests(requests).into());
                };
                let who = answered(response, "name");
                spawn(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(text_result(format!("Hello, {who}! (async)")))
                }))
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}

/// The input schema the `json-schema-2020-12` scenario looks for: `$schema`, `$defs` with an
/// `$anchor`, `$ref`, composition, conditionals and `additionalProperties`.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// `test_streaming_elicitation`: a 2026-07-28 server may not send requests of its own, so it
/// answers `input_required` with the elicitation the client should run and resend.
fn streaming_elicitation() -> Result<CallToolResponse, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": { "value": { "type": "string", "description": "Any value" } },
        "required": ["value"]
    });
    let requested_schema: ElicitationSchema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("elicitation schema: {e}"), None))?;
    let request = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: "Provide a value".to_owned(),
        requested_schema,
    });
    let mut requests = InputRequests::new();
    requests.insert("value".to_owned(), InputRequest::Elicitation(request));
    Ok(InputRequiredResult::from_input_requests(requests).into())
}

/// `test_sampling`: one `sampling/createMessage` round trip.
async fn sampling(cx: &RequestContext<RoleServer>, args: &JsonObject) -> CallToolResult {
    let prompt = args.get("prompt").and_then(Value::as_str).unwrap_or("");
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    match cx.peer.create_message(params).await {
        Ok(answer) => {
            let text = serde_json::to_value(&answer.message.content)
                .ok()
                .and_then(|content| {
                    content
                        .get("text")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            text_result(format!("LLM response: {text}"))
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("sampling failed: {e}"))]),
    }
}

/// One `elicitation/create` with `schema`, reported as the scenarios expect.
async fn elicit(cx: &RequestContext<RoleServer>, message: &str, schema: Value) -> CallToolResult {
    let requested_schema: ElicitationSchema = match serde_json::from_value(schema) {
        Ok(schema) => schema,
        Err(e) => {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "elicitation schema refused by rmcp: {e}"
            ))]);
        }
    };
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema,
    };
    match cx.peer.create_elicitation(params).await {
        Ok(answer) => {
            let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
            let content = answer.content.unwrap_or(Value::Null);
            text_result(format!(
                "Elicitation completed: action={}, content={content}",
                action.as_str().unwrap_or("unknown")
            ))
        }
        Err(e) => {
            CallToolResult::error(vec![ContentBlock::text(format!("elicitation failed: {e}"))])
        }
    }
}

/// The SEP-1034 schema: a default for every primitive type.
fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verified", "default": true }
        }
    })
}

/// The SEP-1330 schema: the five enum forms.
fn sep1330_schema() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| -> Vec<Value> {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("{prefix}{}", i + 1), "title": title }))
            .collect()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Titled single-select",
                "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])
            },
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "items": { "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"]) }
            }
        }
    })
}

/// `test_tool_with_progress`: progress 0, 50, 100 of 100, ~50 ms apart, when the call asked.
async fn with_progress(cx: &RequestContext<RoleServer>) -> CallToolResult {
    let token = cx.meta.get_progress_token();
    for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(token) = &token {
            let note = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
            if let Err(e) = cx.peer.notify_progress(note).await {
                tracing::debug!("progress notification not sent: {e}");
            }
        }
    }
    text_result("Tool with progress completed")
}

/// The `id` of a `test://template/{id}/data` URI.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_logging()
                .enable_completions()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-security-conformance-server",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Implements the MCP conformance suite's server scenarios.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if MRTR_TOOLS.iter().any(|(name, _)| *name == request.name) {
            return self.call_mrtr_tool(&request, &cx);
        }
        if let Some(&(name, _, support)) =
            TASK_TOOLS.iter().find(|(name, _, _)| *name == request.name)
        {
            return self.call_task_tool(name, support, &request, &cx).await;
        }
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "test_simple_text" => text_result("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")])
            }
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::Audio(
                AudioContent::new(WAV_EMPTY, "audio/wav"),
            )]),
            "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                )
                .with_mime_type("text/plain"),
            )]),
            "test_multiple_content_types" => CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(PNG_1X1, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        r#"{"test":"data","value":123}"#,
                        "test://mixed-content-resource",
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => self.tool_with_logging(&cx).await,
            "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )]),
            "test_tool_with_progress" => with_progress(&cx).await,
            "test_sampling" => sampling(&cx, &args).await,
            "test_elicitation" => {
                let message = args.get("message").and_then(Value::as_str).unwrap_or("");
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": { "type": "string", "description": "User's response" },
                        "email": { "type": "string", "description": "User's email address" }
                    },
                    "required": ["username", "email"]
                });
                elicit(&cx, message, schema).await
            }
            "test_elicitation_sep1034_defaults" => {
                elicit(&cx, "Please review the defaults", sep1034_schema()).await
            }
            "test_elicitation_sep1330_enums" => {
                elicit(&cx, "Please choose from each list", sep1330_schema()).await
            }
            "test_missing_capability" => {
                let declared = cx.client_capabilities().unwrap_or_default();
                if declared.sampling.is_none() {
                    return Err(ErrorData::missing_required_client_capability(
                        ClientCapabilities::builder().enable_sampling().build(),
                    ));
                }
                text_result("The client declared sampling")
            }
            "test_streaming_elicitation" => return streaming_elicitation(),
            "test_logging_tool" => {
                if let Some(level) = cx.meta.log_level() {
                    self.log(&cx, level, "logLevel was requested").await;
                }
                text_result("Logging tool completed")
            }
            "test_custom_header" => {
                let value = args.get("value").and_then(Value::as_str).unwrap_or("");
                text_result(format!("value: {value}"))
            }
            "json_schema_2020_12_tool" => text_result("JSON Schema 2020-12 tool called"),
            "test_trigger_tool_change" => {
                let notification = ServerNotification::ToolListChangedNotification(
                    ToolListChangedNotification::default(),
                );
                let n = self.shared.broadcast(notification).await;
                text_result(format!("tool list change sent to {n} listen streams"))
            }
            "test_trigger_prompt_change" => {
                let notification = ServerNotification::PromptListChangedNotification(
                    PromptListChangedNotification::default(),
                );
                let n = self.shared.broadcast(notification).await;
                text_result(format!("prompt list change sent to {n} listen streams"))
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = RESOURCES
            .iter()
            .map(|&(uri, name, description, mime)| {
                Resource::new(uri, name)
                    .with_description(description)
                    .with_mime_type(mime)
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let template = ResourceTemplate::new(TEMPLATE, "template-data")
            .with_description("JSON data for the given id")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
                    .with_mime_type("text/plain")
            }
            "test://static-binary" => {
                ResourceContents::blob(PNG_1X1, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => ResourceContents::text("Watched resource content.", uri)
                .with_mime_type("text/plain"),
            _ => match template_id(uri) {
                Some(id) => {
                    let data = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                    ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
                }
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri:?}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let mut subscriptions = self
            .shared
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A test fixture, but still bounded: the URIs are the client's to choose.
        if subscriptions.len() >= 1024 && !subscriptions.contains(&request.uri) {
            return Err(ErrorData::invalid_request("too many subscriptions", None));
        }
        subscriptions.insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg = |name: &str, description: &str| {
            PromptArgument::new(name)
                .with_description(description)
                .with_required(true)
        };
        let prompts = vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A prompt without arguments"),
                None,
            ),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two required arguments"),
                Some(vec![
                    arg("arg1", "First test argument"),
                    arg("arg2", "Second test argument"),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![arg("resourceUri", "URI of the resource to embed")]),
            ),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt with an image"),
                None,
            ),
            Prompt::new(
                "test_input_required_result_prompt",
                Some("Asks for context (input_required), then builds the prompt from it"),
                None,
            ),
        ];
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let arg = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or("");
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    arg("arg1"),
                    arg("arg2")
                ),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(
                        ResourceContents::text(
                            "Embedded resource content for testing.",
                            arg("resourceUri"),
                        )
                        .with_mime_type("text/plain"),
                    ),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_input_required_result_prompt" => {
                let given = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_context"))
                    .filter(|v| v.is_object());
                let Some(answer) = given else {
                    let mut requests = InputRequests::new();
                    requests.insert(
                        "user_context".to_owned(),
                        ask("What context should the prompt use?", "context", "string")?,
                    );
                    return Ok(InputRequiredResult::from_input_requests(requests).into());
                };
                vec![PromptMessage::new_text(
                    Role::User,
                    format!(
                        "Prompt with elicited context: {}",
                        answered(answer, "context")
                    ),
                )]
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_1X1, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt {other:?}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let known = match &request.r#ref {
            Reference::Prompt(p) => p.name == "test_prompt_with_arguments",
            Reference::Resource(r) => r.uri == TEMPLATE,
            _ => false,
        };
        let prefix = request.argument.value.as_str();
        let values: Vec<String> = if known {
            COMPLETIONS
                .iter()
                .filter(|v| v.starts_with(prefix))
                .map(|v| (*v).to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let info = CompletionInfo::with_all_values(values).map_err(|e| {
            ErrorData::internal_error(format!("completion values refused: {e}"), None)
        })?;
        Ok(CompleteResult::new(info))
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.shared.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.tasks.cancel_task(&request.task_id)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // rmcp has sent the acknowledgement; keep the sink for the trigger tools until the
        // client goes away.
        let number = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        {
            let mut listeners = self
                .shared
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if listeners.len() >= MAX_LISTENERS {
                return Err(ErrorData::internal_error("too many listen streams", None));
            }
            listeners.insert(number, context.sink().clone());
        }
        context.cancelled().await;
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&number);
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(request.level);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,rmcp=error")),
        )
        .init();
    let mode = Mode::from_args()?;
    let bind: SocketAddr = std::env::var("MCP_BIND")
        .unwrap_or_else(|_| DEFAULT_BIND.to_owned())
        .parse()
        .context("MCP_BIND must be an address like 127.0.0.1:8090")?;

    // rmcp's Host allowlist is off in both modes: bare measures the server alone, and behind the
    // stack a refused rebinding attempt is the Origin guard's doing.
    let mcp_config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let shutdown_token = mcp_config.cancellation_token.clone();
    let shared = Arc::new(Shared::new()?);
    let mcp = StreamableHttpService::new(
        move || Ok(ConformanceServer::new(shared.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );
    let router = Router::new().nest_service(MCP_PATH, mcp);

    let mut security = None;
    let app = match mode {
        Mode::Bare => router,
        Mode::Stacked => {
            let config = SecurityConfig::builder_from_env(&Env::new("MCP"))?
                .environment(Environment::Development)
                .bind_addr(bind)
                .mcp_path(MCP_PATH)
                .dev_bypass(true)
                .rate_limit_quota(STACKED_RATE_LIMIT, Duration::from_secs(60), None)
                .build()?;
            let layer = config.layer()?;
            tracing::info!("controls: {}", layer.summary());
            security = Some(layer.clone());
            router.layer(layer)
        }
    };

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    let local = listener.local_addr().context("no local address")?;
    eprintln!("conformance_server ({mode:?}) on http://{local}{MCP_PATH}");
    axum::serve(
        listener.tap_io(|tcp| {
            // Without this, each SSE reply waits ~40 ms on Nagle + delayed ACK.
            let _ = tcp.set_nodelay(true);
        }),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        common::shutdown_signal().await;
        shutdown_token.cancel();
    })
    .await
    .context("server error")?;
    if let Some(layer) = security {
        layer.audit().close().await.context("audit log")?;
    }
    Ok(())
}
