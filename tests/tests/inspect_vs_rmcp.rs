//! `McpInspectLayer` against rmcp's own transport-header rules, case by case.
//!
//! Each case is one HTTP POST. It runs (a) through our `McpInspectLayer` in front of a service
//! that records what reaches it, and (b) through rmcp's `StreamableHttpService` (stateless,
//! `NeverSessionManager`, JSON responses). rmcp's answer may be an error for reasons that have
//! nothing to do with headers (no such prompt, no tasks support), so rmcp's outcome is reduced to
//! "refused at the header stage" (HTTP 400 with JSON-RPC `-32020` / `-32022`, or its plain-text
//! `MCP-Protocol-Version` refusal) or "not".
//!
//! The invariants, asserted for every case:
//! - a request that follows the specification and that rmcp does not refuse for its headers
//!   passes our layer, and the inner service receives the identical bytes;
//! - a request whose headers disagree with its body (or lack what the 2026-07-28 table requires)
//!   is refused by us with 400 and a JSON-RPC error answering its id, before the server;
//! - each case's expected rmcp outcome holds too, so an rmcp upgrade that changes its rules
//!   fails here and gets looked at. Where we deliberately differ from rmcp the case says why.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::inspect::{InspectBody, McpInspectLayer};
use mcp_security_core::mcp_headers::DEFAULT_PROTOCOL_VERSIONS;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ProtocolVersion;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

#[derive(Clone)]
struct Server {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Server {
    #[tool(description = "Answer ok.")]
    async fn echo(&self) -> String {
        "ok".to_owned()
    }

    #[tool(name = "tööl", description = "A tool whose name is not ASCII.")]
    async fn unicode(&self) -> String {
        "ok".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {}

fn rmcp_service() -> StreamableHttpService<Server, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None);
    StreamableHttpService::new(
        || {
            Ok(Server {
                tool_router: Server::tool_router(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

const NEW: &str = "2026-07-28";
const OLD: &str = "2025-11-25";

/// What our layer must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ours {
    /// Forward the identical bytes.
    Pass,
    /// 400 with this JSON-RPC code, answering the request's id.
    Refuse(i64),
}

/// What rmcp is expected to do at its header stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rmcp {
    /// Refused for its headers (400, `-32020`/`-32022` or its version text).
    Headers,
    /// Not refused for its headers (it may still answer an error for other reasons).
    Not,
    /// Refused before its header stage, for a body it could not read as a message (its 415
    /// "unrecognized JSON-RPC message"): the request never runs, whatever the headers say.
    Body,
}

struct Case {
    what: &'static str,
    method: &'static str,
    params: Value,
    /// `MCP-Protocol-Version`.
    version: Option<&'static str>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (with client capabilities).
    meta: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    /// The body as written, instead of one built from `method`, `params` and `meta` (escaped
    /// or duplicate keys, batches).
    raw: Option<&'static str>,
    /// Whether the request follows the specification.
    spec: bool,
    ours: Ours,
    rmcp: Rmcp,
}

impl Case {
    fn body(&self) -> Vec<u8> {
        if let Some(raw) = self.raw {
            return raw.as_bytes().to_vec();
        }
        let mut params = self.params.clone();
        if let (Some(meta), Some(obj)) = (self.meta, params.as_object_mut()) {
            obj.insert(
                "_meta".into(),
                json!({
                    "io.modelcontextprotocol/protocolVersion": meta,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "agreement", "version": "1"},
                }),
            );
        }
        let body = if self.method.starts_with("notifications/") {
            json!({"jsonrpc": "2.0", "method": self.method, "params": params})
        } else {
            json!({"jsonrpc": "2.0", "id": 41, "method": self.method, "params": params})
        };
        serde_json::to_vec(&body).unwrap()
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder = Request::post("http://localhost/mcp")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(v) = self.version {
            builder = builder.header("mcp-protocol-version", v);
        }
        for (k, v) in &self.headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Full::new(Bytes::from(self.body()))).unwrap()
    }
}

/// One case per row; `c(..)` fills the defaults of a well-formed request in `era`.
fn c(
    what: &'static str,
    method: &'static str,
    params: Value,
    era: Option<&'static str>,
    headers: &[(&'static str, &'static str)],
) -> Case {
    Case {
        what,
        method,
        params,
        version: era,
        meta: era.filter(|v| *v == NEW),
        headers: headers.to_vec(),
        raw: None,
        spec: true,
        ours: Ours::Pass,
        rmcp: Rmcp::Not,
    }
}

impl Case {
    fn refused(mut self, code: i64) -> Self {
        self.spec = false;
        self.ours = Ours::Refuse(code);
        self.rmcp = Rmcp::Headers;
        self
    }
    /// We differ from rmcp here; the caller says why.
    fn rmcp(mut self, rmcp: Rmcp) -> Self {
        self.rmcp = rmcp;
        self
    }
    fn meta(mut self, meta: Option<&'static str>) -> Self {
        self.meta = meta;
        self
    }
}

/// A case whose body is written out (`method` only labels it; a notification or a batch is
/// answered with id `null`).
fn raw(
    what: &'static str,
    method: &'static str,
    body: &'static str,
    headers: &[(&'static str, &'static str)],
) -> Case {
    Case {
        raw: Some(body),
        ..c(what, method, json!({}), Some(NEW), headers)
    }
}

/// The `_meta` every 2026-07-28 request carries, for the written-out bodies.
macro_rules! meta {
    () => {
        r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#
    };
}

/// Parser differentials: bodies and headers that two parsers could read differently (escaped
/// keys, duplicate keys, repeated header values, `Mcp-Name` on a notification, batches). What
/// matters is that we never pass a request the server reads differently from us.
fn differential_cases() -> Vec<Case> {
    const CALL: &[(&str, &str)] = &[("mcp-method", "tools/call"), ("mcp-name", "echo")];
    vec![
        // Escaped keys and values are the same keys and values to every JSON parser.
        raw(
            "escaped keys",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            CALL,
        ),
        raw(
            "escaped tool name",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            CALL,
        ),
        raw(
            "escaped key, Mcp-Name names another",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            &[("mcp-method", "tools/call"), ("mcp-name", "other")],
        )
        .refused(-32020),
        raw(
            "escaped method key, Mcp-Method names another",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            &[("mcp-method", "tools/list"), ("mcp-name", "echo")],
        )
        .refused(-32020),
        // Spaces and tabs around header values (HTTP/2 may pass them through): ignored, as the
        // conformance suite's ServerAcceptsWhitespaceHeaderValue expects. rmcp 3.9 compares
        // them untrimmed (over HTTP/1 hyper has trimmed them before either of us sees them).
        c(
            "spaces and tabs around header values",
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            Some(NEW),
            &[("mcp-method", " tools/call\t"), ("mcp-name", "\techo ")],
        )
        .rmcp(Rmcp::Headers),
        // Duplicate keys: serde_json keeps the last, other parsers the first; we refuse them
        // (-32600). rmcp cannot read a duplicate envelope key as a message (415); a duplicate
        // `params.name` gets past its header stage and fails later (-32601), so no tool runs.
        raw(
            "duplicate params.name",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"other","name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            CALL,
        )
        .refused(-32600)
        .rmcp(Rmcp::Not),
        raw(
            "duplicate method",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/list","method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            CALL,
        )
        .refused(-32600)
        .rmcp(Rmcp::Body),
        raw(
            "duplicate escaped method",
            "tools/call",
            concat!(
                r#"{"jsonrpc":"2.0","id":41,"method":"tools/list","method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}"
            ),
            CALL,
        )
        .refused(-32600)
        .rmcp(Rmcp::Body),
        // Repeated header values: a proxy may read any of them or join them. rmcp refuses a
        // repeated Mcp-Name / Mcp-Method, and reads the first MCP-Protocol-Version.
        c(
            "repeated Mcp-Name, first matches",
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            Some(NEW),
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-name", "other"),
            ],
        )
        .refused(-32020),
        c(
            "repeated Mcp-Name, same value",
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            Some(NEW),
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-name", "echo"),
            ],
        )
        .refused(-32020),
        c(
            "repeated Mcp-Method, first matches",
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            Some(NEW),
            &[
                ("mcp-method", "tools/call"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "echo"),
            ],
        )
        .refused(-32020),
        c(
            "repeated MCP-Protocol-Version",
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            Some(NEW),
            &[
                ("mcp-protocol-version", OLD),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        )
        .refused(-32020)
        .rmcp(Rmcp::Not),
        // Mcp-Name on a notification: nothing for it to mirror. rmcp ignores it; a proxy would
        // route on a name the server never sees.
        c(
            "Mcp-Name on a notification",
            "notifications/initialized",
            json!({}),
            Some(NEW),
            &[
                ("mcp-method", "notifications/initialized"),
                ("mcp-name", "echo"),
            ],
        )
        .meta(None)
        .refused(-32020)
        .rmcp(Rmcp::Not),
        c(
            "Mcp-Name on a cancellation naming the request",
            "notifications/cancelled",
            json!({"requestId": 41, "name": "echo"}),
            Some(NEW),
            &[
                ("mcp-method", "notifications/cancelled"),
                ("mcp-name", "echo"),
            ],
        )
        .meta(None)
        .refused(-32020)
        .rmcp(Rmcp::Not),
        // Batches (gone from the protocol since 2025-06-18; rmcp cannot read them): every message
        // must agree with the headers, and each gets its own refusal.
        raw(
            "batch, the second message names another tool",
            "tools/call",
            concat!(
                r#"[{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                r#"}},{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"other","arguments":{},"#,
                meta!(),
                "}}]"
            ),
            CALL,
        )
        .refused(-32020)
        .rmcp(Rmcp::Body),
        raw(
            "batch, the second message is another method",
            "tools/call",
            concat!(
                r#"[{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                r#"}},{"jsonrpc":"2.0","id":42,"method":"tools/list","params":{"#,
                meta!(),
                "}}]"
            ),
            CALL,
        )
        .refused(-32020)
        .rmcp(Rmcp::Body),
        raw(
            "batch, both agree",
            "tools/call",
            concat!(
                r#"[{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                r#"}},{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{},"#,
                meta!(),
                "}}]"
            ),
            CALL,
        )
        .rmcp(Rmcp::Body),
    ]
}

/// The methods of rmcp's `Mcp-Name` table, with the field each mirrors, a matching value, and
/// that value in the `=?base64?…?=` form.
fn table() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            "echo",
            "=?base64?ZWNobw==?=",
        ),
        (
            "prompts/get",
            json!({"name": "greet"}),
            "greet",
            "=?base64?Z3JlZXQ=?=",
        ),
        (
            "resources/read",
            json!({"uri": "file:///n"}),
            "file:///n",
            "=?base64?ZmlsZTovLy9u?=",
        ),
        (
            "resources/subscribe",
            json!({"uri": "file:///n"}),
            "file:///n",
            "=?base64?ZmlsZTovLy9u?=",
        ),
        (
            "resources/unsubscribe",
            json!({"uri": "file:///n"}),
            "file:///n",
            "=?base64?ZmlsZTovLy9u?=",
        ),
        (
            "tasks/get",
            json!({"taskId": "t-1"}),
            "t-1",
            "=?base64?dC0x?=",
        ),
        (
            "tasks/update",
            json!({"taskId": "t-1", "status": "working"}),
            "t-1",
            "=?base64?dC0x?=",
        ),
        (
            "tasks/cancel",
            json!({"taskId": "t-1"}),
            "t-1",
            "=?base64?dC0x?=",
        ),
    ]
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (method, params, name, encoded) in table() {
        let subscribe = method.starts_with("resources/") && method.ends_with("subscribe");
        let m = ("mcp-method", method);
        // 2026-07-28: plain and encoded Mcp-Name pass everywhere.
        out.push(c(
            "2026: plain Mcp-Name",
            method,
            params.clone(),
            Some(NEW),
            &[m, ("mcp-name", name)],
        ));
        out.push(c(
            "2026: Base64 Mcp-Name",
            method,
            params.clone(),
            Some(NEW),
            &[m, ("mcp-name", encoded)],
        ));
        // Missing Mcp-Name.
        let missing = c("2026: no Mcp-Name", method, params.clone(), Some(NEW), &[m]);
        out.push(if subscribe {
            // The TypeScript SDK's client does not send Mcp-Name on resources/(un)subscribe and
            // the specification lists it "when present"; we let the server decide. rmcp refuses.
            missing.rmcp(Rmcp::Headers)
        } else {
            missing.refused(-32020)
        });
        // Missing Mcp-Method.
        out.push(
            c(
                "2026: no Mcp-Method",
                method,
                params.clone(),
                Some(NEW),
                &[("mcp-name", name)],
            )
            .refused(-32020),
        );
        // Disagreeing values.
        out.push(
            c(
                "2026: Mcp-Name names another",
                method,
                params.clone(),
                Some(NEW),
                &[m, ("mcp-name", "other")],
            )
            .refused(-32020),
        );
        out.push(
            c(
                "2026: Base64 Mcp-Name names another",
                method,
                params.clone(),
                Some(NEW),
                &[m, ("mcp-name", "=?base64?b3RoZXI=?=")],
            )
            .refused(-32020),
        );
        out.push(
            c(
                "2026: malformed Base64 Mcp-Name",
                method,
                params.clone(),
                Some(NEW),
                &[m, ("mcp-name", "=?base64?ZWNobw?=")],
            )
            .refused(-32020),
        );
        out.push(
            c(
                "2026: Mcp-Method names another",
                method,
                params.clone(),
                Some(NEW),
                &[("mcp-method", "tools/list"), ("mcp-name", name)],
            )
            .refused(-32020),
        );
        // 2025-11-25 and no version at all: clients sent no headers; sent ones must agree.
        for era in [Some(OLD), None] {
            out.push(c("legacy: no headers", method, params.clone(), era, &[]));
            out.push(c(
                "legacy: matching headers",
                method,
                params.clone(),
                era,
                &[m, ("mcp-name", name)],
            ));
            out.push(c(
                "legacy: Base64 Mcp-Name",
                method,
                params.clone(),
                era,
                &[m, ("mcp-name", encoded)],
            ));
            // rmcp checks these headers only from 2026-07-28; a proxy routing on them is fooled
            // in any era, so we refuse a disagreeing header whatever the version.
            out.push(
                c(
                    "legacy: Mcp-Name names another",
                    method,
                    params.clone(),
                    era,
                    &[m, ("mcp-name", "other")],
                )
                .refused(-32020)
                .rmcp(Rmcp::Not),
            );
        }
    }

    // A non-ASCII tool name travels encoded.
    out.push(c(
        "2026: non-ASCII tool name, Base64",
        "tools/call",
        json!({"name": "tööl", "arguments": {}}),
        Some(NEW),
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?dMO2w7Zs?="),
        ],
    ));

    // Methods without a name field.
    out.push(c(
        "2026: tools/list",
        "tools/list",
        json!({}),
        Some(NEW),
        &[("mcp-method", "tools/list")],
    ));
    out.push(c(
        "2026: ping",
        "ping",
        json!({}),
        Some(NEW),
        &[("mcp-method", "ping")],
    ));
    out.push(c(
        "legacy: tools/list without headers",
        "tools/list",
        json!({}),
        Some(OLD),
        &[],
    ));
    out.push(
        c(
            "2026: tools/list without Mcp-Method",
            "tools/list",
            json!({}),
            Some(NEW),
            &[],
        )
        .refused(-32020),
    );
    // An Mcp-Name where the method names nothing: rmcp ignores it; a proxy would route on a name
    // the server never sees, and no client sends one, so we refuse it.
    out.push(
        c(
            "2026: Mcp-Name on tools/list",
            "tools/list",
            json!({}),
            Some(NEW),
            &[("mcp-method", "tools/list"), ("mcp-name", "x")],
        )
        .refused(-32020)
        .rmcp(Rmcp::Not),
    );
    // initialize needs no Mcp-Method, but a sent one must agree.
    let init = json!({"protocolVersion": NEW, "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}});
    out.push(
        c(
            "2026: initialize without Mcp-Method",
            "initialize",
            init.clone(),
            Some(NEW),
            &[],
        )
        .meta(None),
    );
    out.push(
        c(
            "2026: initialize with another Mcp-Method",
            "initialize",
            init,
            Some(NEW),
            &[("mcp-method", "tools/list")],
        )
        .meta(None)
        .refused(-32020),
    );
    // Notifications: the specification (after modelcontextprotocol#2891) requires Mcp-Method on
    // requests only; rmcp still requires it on notifications.
    out.push(
        c(
            "2026: notification without Mcp-Method",
            "notifications/initialized",
            json!({}),
            Some(NEW),
            &[],
        )
        .meta(None)
        .rmcp(Rmcp::Headers),
    );
    out.push(
        c(
            "2026: notification with another Mcp-Method",
            "notifications/initialized",
            json!({}),
            Some(NEW),
            &[("mcp-method", "tools/list")],
        )
        .meta(None)
        .refused(-32020),
    );

    // MCP-Protocol-Version.
    out.push(
        c(
            "unsupported version",
            "tools/list",
            json!({}),
            Some("2099-01-01"),
            &[("mcp-method", "tools/list")],
        )
        .meta(None)
        .refused(-32022),
    );
    out.push(
        c(
            "not a version",
            "tools/list",
            json!({}),
            Some("latest"),
            &[],
        )
        .meta(None)
        .refused(-32022),
    );
    out.push(
        c(
            "header 2025-11-25, body 2026-07-28",
            "tools/list",
            json!({}),
            Some(OLD),
            &[("mcp-method", "tools/list")],
        )
        .meta(Some(NEW))
        .refused(-32020),
    );
    out.push(
        c(
            "body 2026-07-28, no header",
            "tools/list",
            json!({}),
            None,
            &[("mcp-method", "tools/list")],
        )
        .meta(Some(NEW))
        .refused(-32020),
    );
    out.extend(differential_cases());
    for v in DEFAULT_PROTOCOL_VERSIONS.iter().filter(|v| **v < NEW) {
        out.push(c(
            "every older supported version",
            "tools/list",
            json!({}),
            Some(*v),
            &[],
        ));
    }
    out
}

/// Our layer in front of a recorder; returns the status, the JSON body on refusal, and the
/// bytes that reached the inner service.
async fn ours(req: Request<Full<Bytes>>) -> (StatusCode, String, Option<Value>, Option<Bytes>) {
    let seen: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let record = Arc::clone(&seen);
    let svc =
        McpInspectLayer::new().layer(service_fn(move |req: Request<InspectBody<Full<Bytes>>>| {
            let record = Arc::clone(&record);
            async move {
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                *record.lock().unwrap() = Some(bytes);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"recorded"))))
            }
        }));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json = (status != StatusCode::OK).then(|| serde_json::from_slice(&body).unwrap());
    let seen = seen.lock().unwrap().take();
    (status, content_type, json, seen)
}

/// rmcp's outcome at its header stage, and a description for failure messages.
async fn rmcp(req: Request<Full<Bytes>>) -> (Rmcp, String) {
    let res = rmcp_service().oneshot(req).await.unwrap();
    let status = res.status();
    // The request got past rmcp's transport checks (Host, Accept, Content-Type, size), so a
    // "not refused for headers" is a real answer about the headers; a 415 here is rmcp
    // refusing a body it could not read as a message.
    assert!(
        !matches!(status.as_u16(), 403 | 406 | 413),
        "rmcp refused the transport: {status}"
    );
    if status != StatusCode::BAD_REQUEST && status != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return (Rmcp::Not, status.to_string());
    }
    let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect())
        .await
        .expect("rmcp's refusal body arrives")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status != StatusCode::BAD_REQUEST {
        return (Rmcp::Body, format!("{status} {text}"));
    }
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_i64());
    let headers = matches!(code, Some(-32020 | -32022)) || text.contains("MCP-Protocol-Version");
    (
        if headers { Rmcp::Headers } else { Rmcp::Not },
        format!("400 {text}"),
    )
}

#[tokio::test]
async fn our_layer_agrees_with_rmcp_on_every_case() {
    let cases = cases();
    assert!(cases.len() > 100, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let label = format!(
            "{} | {} | version {:?} meta {:?} | {:?}",
            case.what, case.method, case.version, case.meta, case.headers
        );
        let sent = Bytes::from(case.body());
        let (status, content_type, body, seen) = ours(case.request()).await;
        let (rmcp_outcome, rmcp_said) = rmcp(case.request()).await;

        eprintln!(
            "{label}: ours {status}, rmcp {}",
            rmcp_said.lines().next().unwrap_or("")
        );
        // The case's own expectations.
        match case.ours {
            Ours::Pass => {
                if status != StatusCode::OK || seen.as_ref() != Some(&sent) {
                    failures.push(format!(
                        "{label}: we refused ({status} {body:?}), expected pass"
                    ));
                }
            }
            Ours::Refuse(code) => {
                let refusal = |b: &Value, id: &Value| {
                    b["jsonrpc"] == "2.0"
                        && b["id"] == *id
                        && b["error"]["code"] == code
                        && b["error"]["data"]["status"] == 400
                };
                let answers = match body.as_ref() {
                    // A batch: one refusal per message, answering its id.
                    Some(Value::Array(items)) => {
                        let ids: Vec<Value> = serde_json::from_slice::<Vec<Value>>(&sent)
                            .unwrap()
                            .iter()
                            .map(|m| m["id"].clone())
                            .collect();
                        items.len() == ids.len()
                            && items.iter().zip(&ids).all(|(b, id)| refusal(b, id))
                    }
                    Some(b) => {
                        let expected_id = if case.method.starts_with("notifications/") {
                            Value::Null
                        } else {
                            json!(41)
                        };
                        refusal(b, &expected_id)
                    }
                    None => false,
                };
                let ok = status == StatusCode::BAD_REQUEST
                    && content_type == "application/json"
                    && seen.is_none()
                    && answers;
                if !ok {
                    failures.push(format!(
                        "{label}: expected our 400 {code}, got {status} {content_type} {body:?} (reached inner: {})",
                        seen.is_some()
                    ));
                }
            }
        }
        if rmcp_outcome != case.rmcp {
            failures.push(format!(
                "{label}: rmcp {rmcp_outcome:?} ({rmcp_said}), the table expects {:?}",
                case.rmcp
            ));
        }
        // The invariants.
        if case.spec && rmcp_outcome == Rmcp::Not && seen.as_ref() != Some(&sent) {
            failures.push(format!(
                "{label}: rmcp accepts a spec-following request we refused"
            ));
        }
        if !case.spec && case.ours == Ours::Pass {
            failures.push(format!("{label}: an off-spec request is expected to pass"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn default_protocol_versions_are_rmcps_known_versions() {
    let known: Vec<&str> = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .map(ProtocolVersion::as_str)
        .collect();
    assert_eq!(
        DEFAULT_PROTOCOL_VERSIONS, known,
        "rmcp's known protocol versions changed: update mcp_security_core::mcp_headers::DEFAULT_PROTOCOL_VERSIONS"
    );
    assert_eq!(
        McpInspectLayer::new().protocol_versions(),
        known,
        "the layer's default list"
    );
    assert_eq!(
        mcp_security_core::mcp_headers::STANDARD_HEADERS_VERSION,
        ProtocolVersion::STANDARD_HEADERS.as_str()
    );
}

/// A legacy session's binding expires after the same idle time as rmcp's session itself: the
/// binding table's default (`MCP_SESSION_IDLE_TIMEOUT`) is rmcp's session keep-alive, so a
/// binding outlives neither the session it guards nor, by default, expires long before it.
#[test]
fn session_idle_timeout_defaults_to_rmcps_session_keep_alive() {
    use rmcp::transport::streamable_http_server::session::local::{
        LocalSessionManager, SessionConfig,
    };
    let rmcp_keep_alive = SessionConfig::DEFAULT_KEEP_ALIVE;
    assert_eq!(
        mcp_security::auth::session::DEFAULT_IDLE_TIMEOUT,
        rmcp_keep_alive,
        "rmcp's session keep-alive changed: update mcp_auth::session::DEFAULT_IDLE_TIMEOUT"
    );
    // What rmcp's session manager really uses by default, not only its constant.
    assert_eq!(
        LocalSessionManager::default().session_config.keep_alive,
        Some(rmcp_keep_alive)
    );
    // The layer's and the facade's defaults are that constant.
    assert_eq!(
        mcp_security::auth::SessionBindingLayer::new().idle_timeout(),
        rmcp_keep_alive
    );
    let config = mcp_security::SecurityConfig::builder()
        .api_key(mcp_security::core::config::Secret::new(
            "mcp-sk-an-api-key-long-enough-for-the-checks-0123456789",
        ))
        .build()
        .expect("config");
    assert_eq!(config.session_idle_timeout(), rmcp_keep_alive);
}
