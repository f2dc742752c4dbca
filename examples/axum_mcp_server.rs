//! # A real MCP server inside an axum `Router`
//!
//! This example serves the [Model Context Protocol] over rmcp's streamable
//! HTTP transport (`StreamableHttpService`), mounted at `/mcp` in an axum
//! [`Router`], next to a plain `GET /health` route. It is the server the
//! mcp-security middleware is meant to wrap, and the one CI drives with a real
//! MCP client (`.ci/mcp_smoke.py`).
//!
//! It exposes five tools over an in-memory note store shared by all sessions:
//!
//! | tool          | what it does                          | scope it needs     |
//! |---------------|---------------------------------------|--------------------|
//! | `whoami`      | the caller's principal, as JSON text  | —                  |
//! | `echo`        | returns `text` unchanged              | —                  |
//! | `read_note`   | returns note `name`                   | `notes:read`       |
//! | `write_note`  | stores `content` under `name`         | `notes:write`      |
//! | `delete_note` | removes note `name`                   | `notes:delete`     |
//!
//! one prompt and the notes as resources:
//!
//! | what                          | what it does                              | scope it needs |
//! |-------------------------------|-------------------------------------------|----------------|
//! | prompt `summarize_notes`      | asks the model to summarize every note    | `notes:read`   |
//! | resource `note://index`       | the names of all notes                    | `notes:read`   |
//! | template `note://notes/{name}`| one note's content                        | `notes:read`   |
//!
//! (`resources/read:note://*` is a prefix rule: every `note://` URI needs `notes:read`.)
//! A caller's `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list` show
//! only what its scopes allow: the stack's `ListFilterLayer` is on because these rules are MCP
//! rules (`MCP_FILTER_LISTS=false` turns it off), and the same policy refuses the calls.
//!
//! ## Run it
//!
//! ```text
//! cargo run --release --example axum_mcp_server
//! ```
//!
//! Environment (read by `mcp_security::SecurityConfig`; its `config` module
//! has the full table, and `mcp-security check` checks a configuration in CI):
//!
//! * `MCP_BIND` — listen address, default `127.0.0.1:8080`.
//! * `MCP_ENV` — `development` or `production`; unset means `development`
//!   (this example is a demo meant for loopback). The value is logged.
//! * `MCP_MAX_BODY_BYTES` — largest accepted request body, default 1 MiB
//!   (`1048576`).
//! * `MCP_ALLOWED_HOSTS` — comma-separated `Host` header values the MCP
//!   endpoint accepts (`example.com`, `example.com:8443`, `10.0.0.5`). See
//!   "Host allowlist" below.
//! * Authentication (the `mcp_auth::AuthLayer` env contract): `MCP_API_KEY`
//!   / `MCP_API_KEY_FILE` (one key with every scope; its principal is `env`),
//!   `MCP_API_KEYS_FILE` (hashed keys with scopes, reloaded on change),
//!   `MCP_JWT_SECRET` / `MCP_JWT_SECRET_FILE` (HS256, comma-separated for
//!   rotation), `MCP_JWT_AUDIENCE`, `MCP_JWT_ISSUER`, `MCP_API_KEY_HEADER`,
//!   `MCP_URL_AUTH`, `MCP_RESOURCE_URL`, `MCP_AUTHORIZATION_SERVERS`,
//!   `MCP_AUTH_EXEMPT_PATHS` (default `/health`), `MCP_AUTH_DENY_PREFIXES`,
//!   `MCP_DEV_BYPASS`, `MCP_REQUIRE_AUTH` (default `true`). In development with
//!   none of the credential variables set, the example generates a key for the
//!   run and prints it once with a ready-to-paste `mcpServers` client
//!   configuration (with `MCP_REQUIRE_AUTH=false` it runs without
//!   authentication instead, and says so).
//! * Production checks: at start the `mcp-prodcheck` rules run against the
//!   settings. In production any error (no credential source, a placeholder or
//!   short key, `MCP_DEBUG=true`, CORS `*`, trusted proxies `0.0.0.0/0`, …)
//!   refuses the start with a message listing each finding and its fix; in
//!   development the findings are logged as warnings.
//! * `MCP_CORS_ORIGINS` — comma-separated browser origins allowed to call the
//!   server (CORS and the MCP Origin check). Unset in development: the
//!   localhost defaults; unset in production: no browser origin. The MCP
//!   Inspector needs `MCP_CORS_ORIGINS=http://localhost:6274`.
//! * Rate and resource limits: `MCP_RATE_LIMIT_ENABLED`, `MCP_RATE_LIMIT_REQUESTS`
//!   (100), `MCP_RATE_LIMIT_WINDOW` (60 s), `MCP_RATE_LIMIT_BURST` (= requests),
//!   `MCP_RATE_LIMIT_MAX_KEYS`, `MCP_TRUSTED_PROXIES`, `MCP_CONFIG_FILE` (a TOML
//!   `[rate_limit]` section with classes and per-tool limits),
//!   `MCP_MAX_CONCURRENCY` (1000), `MCP_REQUEST_TIMEOUT` (30 s).
//! * Audit: `MCP_AUDIT_ENABLED` (true), `MCP_AUDIT_LOG_FILE` (a tamper-evident
//!   JSON-lines trail; verify it with `mcp-security audit verify FILE
//!   --key-file KEY`), `MCP_AUDIT_HMAC_KEY` / `MCP_AUDIT_HMAC_KEY_FILE`
//!   (required with the file, ≥ 32 bytes), and the `MCP_AUDIT_*` detector
//!   settings. Metrics are served in Prometheus format on `GET /metrics`
//!   (behind auth).
//! * `RUST_LOG` — tracing filter, default `info,rmcp=warn` (rmcp logs every
//!   stateless request at INFO).
//!
//! ## Connect a client
//!
//! The MCP endpoint is `http://127.0.0.1:8080/mcp` (streamable HTTP; both the
//! 2025-11-25 session era and the 2026-07-28 stateless era work). With the
//! Python SDK (`pip install 'mcp>=2,<3'`), as `.ci/mcp_smoke.py` does:
//!
//! ```text
//! .venv/bin/python .ci/mcp_smoke.py http://127.0.0.1:8080/mcp --token "$MCP_API_KEY"
//! ```
//!
//! or the MCP Inspector (`npx @modelcontextprotocol/inspector`, transport
//! "Streamable HTTP", URL as above). By hand, every POST must send
//! `Accept: application/json, text/event-stream` (rmcp answers 406 otherwise):
//!
//! ```text
//! curl -s http://127.0.0.1:8080/health
//! curl -si http://127.0.0.1:8080/mcp \
//!   -H 'Content-Type: application/json' \
//!   -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'
//! ```
//!
//! ## Host allowlist (DNS-rebinding protection)
//!
//! rmcp rejects (403) MCP requests whose `Host` header is not on its allowlist,
//! and its default list is loopback only. `SecurityConfig` makes the list
//! follow the bind address, and the example gives rmcp and the stack's Origin
//! guard the same list (`SecurityConfig::allowed_hosts`):
//!
//! * loopback bind (the default): `localhost`, `127.0.0.1`, `::1`;
//! * a specific non-loopback address: that address;
//! * a wildcard bind (`0.0.0.0`, `[::]`): loopback only, with a warning —
//!   the server cannot know which names clients will use.
//!
//! Set `MCP_ALLOWED_HOSTS` to replace the list, e.g.
//! `MCP_ALLOWED_HOSTS=mcp.example.com,mcp.example.com:8443` (an entry without a
//! port matches any port). `MCP_ALLOWED_HOSTS=*` turns the check off, which is
//! only reasonable behind a proxy that validates `Host` itself.
//!
//! [Model Context Protocol]: https://modelcontextprotocol.io

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, PoisonError, RwLock},
};

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::ConnectInfo,
    http::{StatusCode, request::Parts},
    routing::get,
    serve::ListenerExt,
};
use mcp_security::SecurityConfig;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::core::Scopes;
use mcp_security::core::config::{Env, Environment, Secret};
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RouteClass};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
        Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        PaginatedRequestParams, Prompt, PromptMessage, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
        Role, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// OTLP export of the spans (feature `otel`): the OpenTelemetry SDK with its standard
/// `OTEL_EXPORTER_OTLP_*` variables, over HTTP/protobuf.
#[cfg(feature = "otel")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// A tracer provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT`, when it is set.
    pub fn provider() -> anyhow::Result<Option<SdkTracerProvider>> {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("axum_mcp_server")
            .build();
        Ok(Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build(),
        ))
    }

    /// The `tracing` layer that hands spans to `provider`.
    pub fn layer<S>(
        provider: &SdkTracerProvider,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("axum_mcp_server"))
    }
}

/// Where the MCP endpoint is mounted.
const MCP_PATH: &str = "/mcp";
/// The note store is a demo; refuse to grow it without bound.
const MAX_NOTES: usize = 10_000;

/// Notes shared by every session (and every protocol era) of this process.
///
/// A `std` lock is enough: it is never held across an `.await`.
type Notes = Arc<RwLock<HashMap<String, String>>>;

/// The MCP server. One value is created per session (legacy era) or per
/// request (2026-07-28 stateless era); the clones share `notes` and the tool
/// router, which is built once in `main`.
#[derive(Clone)]
struct NotesServer {
    notes: Notes,
    tool_router: ToolRouter<Self>,
}

/// Parameters of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
struct EchoParams {
    /// The text to send back.
    text: String,
}

/// Parameters naming one note.
#[derive(Debug, Deserialize, JsonSchema)]
struct NoteName {
    /// The note's name.
    name: String,
}

/// Parameters of `write_note`.
#[derive(Debug, Deserialize, JsonSchema)]
struct WriteNote {
    /// The note's name; an existing note of that name is replaced.
    name: String,
    /// The note's content.
    content: String,
}

#[tool_router]
impl NotesServer {
    fn new(notes: Notes, tool_router: ToolRouter<Self>) -> Self {
        Self { notes, tool_router }
    }

    /// Who the server thinks the caller is.
    ///
    /// Needs no scope: any authenticated caller may ask.
    #[tool(description = "Return the caller's principal (id, kind, scopes) as JSON text.")]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> String {
        // The auth layer inserts the caller's `Principal` (with no auth layer
        // in front, every caller would be anonymous).
        let principal = match parts.extensions.get::<mcp_security::core::Principal>() {
            Some(p) => json!({
                "id": p.id(),
                "kind": p.kind().as_str(),
                "scopes": p.scopes().iter().collect::<Vec<_>>(),
            }),
            None => json!("anonymous"),
        };
        // Inserted by `McpInspectLayer`: the JSON-RPC envelope it read.
        let method = parts
            .extensions
            .get::<mcp_security::core::McpCall>()
            .and_then(|call| call.method().map(str::to_owned));
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.to_string());
        json!({ "principal": principal, "method": method, "client_addr": client }).to_string()
    }

    /// Returns `text` unchanged. Needs no scope.
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoParams { text }): Parameters<EchoParams>) -> String {
        text
    }

    /// Reads one note. Needs scope `notes:read`.
    #[tool(description = "Read the note called `name`.")]
    async fn read_note(
        &self,
        Parameters(NoteName { name }): Parameters<NoteName>,
    ) -> CallToolResult {
        let notes = self.notes.read().unwrap_or_else(PoisonError::into_inner);
        match notes.get(&name) {
            Some(content) => CallToolResult::success(vec![ContentBlock::text(content.clone())]),
            None => no_such_note(&name),
        }
    }

    /// Creates or replaces one note. Needs scope `notes:write`.
    #[tool(description = "Store `content` as the note called `name`, replacing any existing note.")]
    async fn write_note(
        &self,
        Parameters(WriteNote { name, content }): Parameters<WriteNote>,
    ) -> CallToolResult {
        let mut notes = self.notes.write().unwrap_or_else(PoisonError::into_inner);
        if notes.len() >= MAX_NOTES && !notes.contains_key(&name) {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "the note store is full ({MAX_NOTES} notes); delete one first"
            ))]);
        }
        let bytes = content.len();
        let replaced = notes.insert(name.clone(), content).is_some();
        let verb = if replaced { "replaced" } else { "created" };
        CallToolResult::success(vec![ContentBlock::text(format!(
            "{verb} note {name:?} ({bytes} bytes)"
        ))])
    }

    /// Deletes one note. Needs scope `notes:delete`.
    #[tool(description = "Delete the note called `name`.")]
    async fn delete_note(
        &self,
        Parameters(NoteName { name }): Parameters<NoteName>,
    ) -> CallToolResult {
        let removed = self
            .notes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&name);
        match removed {
            Some(_) => {
                CallToolResult::success(vec![ContentBlock::text(format!("deleted note {name:?}"))])
            }
            None => no_such_note(&name),
        }
    }
}

/// A tool-level error (the call ran, the note is not there), not a protocol error.
fn no_such_note(name: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("no note named {name:?}"))])
}

/// The prompt's name.
const SUMMARIZE_PROMPT: &str = "summarize_notes";
/// The resource listing every note's name.
const INDEX_URI: &str = "note://index";
/// Notes as resources: `note://notes/{name}`.
const NOTE_URI_PREFIX: &str = "note://notes/";

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
        .with_server_info(Implementation::new(
            "mcp-security-example",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "A demo note store. Tools: whoami, echo, read_note, write_note, delete_note. \
             Prompt: summarize_notes. Resources: note://index, note://notes/{name}."
                .to_owned(),
        )
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            SUMMARIZE_PROMPT,
            Some("Summarize every note in the store (needs notes:read)."),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != SUMMARIZE_PROMPT {
            return Err(ErrorData::invalid_params("no such prompt", None));
        }
        let notes = self.notes.read().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::from("Summarize these notes in a few bullet points:\n");
        for (name, content) in notes.iter() {
            text.push_str(&format!("\n## {name}\n{content}\n"));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            INDEX_URI,
            "note index",
        )]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{NOTE_URI_PREFIX}{{name}}"), "note"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let notes = self.notes.read().unwrap_or_else(PoisonError::into_inner);
        let text = if request.uri == INDEX_URI {
            let mut names: Vec<&str> = notes.keys().map(String::as_str).collect();
            names.sort_unstable();
            names.join("\n")
        } else if let Some(content) = request
            .uri
            .strip_prefix(NOTE_URI_PREFIX)
            .and_then(|name| notes.get(name))
        {
            content.clone()
        } else {
            return Err(ErrorData::resource_not_found("no such note", None));
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri.clone())]).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = tracing_subscriber::registry()
        // rmcp logs several INFO lines per stateless request; keep its warnings.
        .with(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .with(tracing_subscriber::fmt::layer());
    // With `--features otel` and OTEL_EXPORTER_OTLP_ENDPOINT set, the stack's request spans
    // (`tools/call read_note`, with mcp.method.name, gen_ai.tool.name, enduser.id, error.type, the
    // caller's traceparent) and the tools' own spans go to an OTLP/HTTP collector.
    #[cfg(feature = "otel")]
    let otlp = otlp::provider()?;
    #[cfg(feature = "otel")]
    let logs = logs.with(otlp.as_ref().map(otlp::layer));
    logs.init();

    // Every MCP_* setting (the table in `mcp_security::config`), plus what this server adds:
    // the scopes its tools need and per-caller limits per endpoint class (MCP_CONFIG_FILE's
    // [rate_limit] section replaces those). Unset MCP_ENV means development here: this example
    // is a loopback demo (the library's default is production).
    let caller = KeySelector::principal_or_client_addr;
    let mut settings = SecurityConfig::builder_from_env(&Env::new("MCP"))?
        .default_environment(Environment::Development)
        .mcp_path(MCP_PATH)
        .require_mcp("tools/call:read_note", ["notes:read"])
        .require_mcp("tools/call:write_note", ["notes:write"])
        .require_mcp("tools/call:delete_note", ["notes:delete"])
        .require_mcp("prompts/get:summarize_notes", ["notes:read"])
        .require_mcp("resources/read:note://*", ["notes:read"])
        .caller_route_class(
            RouteClass::new("read")
                .mcp("tools/call:read_note")
                .mcp("resources/read"),
        )
        .caller_route_class(RouteClass::new("write").mcp("tools/call:write_note"))
        .caller_route_class(RouteClass::new("delete").mcp("tools/call:delete_note"))
        .caller_limit(Limit::new("principal", Quota::per_minute(100), caller()))
        .caller_limit(Limit::new("read", Quota::per_minute(60), caller()).for_class("read"))
        .caller_limit(Limit::new("write", Quota::per_minute(20), caller()).for_class("write"))
        .caller_limit(Limit::new("delete", Quota::per_minute(10), caller()).for_class("delete"));
    // A demo must still not run open: with no credential in development, invent a key for this
    // run and say so. (MCP_REQUIRE_AUTH=false runs without authentication instead.)
    let mut generated_key = None;
    if settings.current_environment() == Environment::Development
        && settings.requires_auth()
        && !settings.has_credential_source()
    {
        let key = generate_key(DEFAULT_KEY_PREFIX)?;
        settings = settings.named_api_key("dev-generated", Secret::new(&key), Scopes::new(["*"]));
        generated_key = Some(key);
    }
    let config = settings.build()?;
    // The security metrics the audit layer records (mcp_requests_total, mcp_auth_failures_total,
    // …), in Prometheus format on GET /metrics, behind auth. Installed before the stack is built,
    // so what the audit file sink counts at start (mcp_audit_resumes_total) is kept; the request
    // duration gets histogram buckets (without them the exporter renders a summary).
    let duration = mcp_security::audit::metrics::REQUEST_DURATION_SECONDS;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(duration.to_owned()),
            mcp_security::audit::metrics::DURATION_BUCKETS,
        )
        .context("histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    // A recorder installed this way keeps every histogram sample until it is drained: without a
    // scrape, memory grows with each request. Drain it every 5 s, as the exporter's own HTTP
    // listener would.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    mcp_security::audit::metrics::describe();
    mcp_security::auth::CredentialAges::describe();
    // The production checks: in production an unsafe setting (no credential source, a
    // placeholder key, MCP_DEBUG, CORS `*`, …) refuses the start, listing each with its fix; in
    // development the findings are logged as warnings.
    let security = config.layer()?;
    let bind = config
        .bind_addr()
        .context("MCP_BIND must be an address like 127.0.0.1:8080")?;

    // rmcp checks Host itself too (loopback only by default): give it the same allowlist (none
    // means any), and the same body cap as a backstop behind McpInspectLayer.
    let allowed_hosts = config.allowed_hosts().map(<[String]>::to_vec);
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts.clone().unwrap_or_default())
        .with_max_request_body_bytes(config.max_body_bytes());
    // Cancelling rmcp's token on shutdown ends open SSE streams, which would otherwise keep the
    // graceful shutdown waiting.
    let shutdown_token = mcp_config.cancellation_token.clone();

    // Built once; every session's server value clones it.
    let notes = Notes::default();
    let tool_router = NotesServer::tool_router();
    let mcp = StreamableHttpService::new(
        move || Ok(NotesServer::new(notes.clone(), tool_router.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );

    // mcp_credential_oldest_age_seconds{kind}: the oldest dated API key (created_at in
    // MCP_API_KEYS_FILE) and HS256 secret, computed at each scrape so it grows between rotations.
    let credentials = security.credential_ages().clone();
    let app = Router::new()
        .route("/health", get(health))
        .route(
            "/metrics",
            get(move || {
                credentials.record(std::time::SystemTime::now());
                std::future::ready(metrics.render())
            }),
        )
        .nest_service(MCP_PATH, mcp)
        .layer(security.clone());

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    let local = listener.local_addr().context("no local address")?;
    tracing::info!(
        env = config.environment().as_str(),
        env_source = %config.environment_source(),
        allowed_hosts = ?allowed_hosts,
        "listening on http://{local}, MCP endpoint http://{local}{MCP_PATH}, controls: {}",
        security.summary()
    );
    if let Some(key) = generated_key {
        print_client_config(&key, local);
    }

    axum::serve(
        listener.tap_io(|tcp| {
            // Without this, each SSE reply waits ~40 ms on Nagle + delayed ACK.
            let _ = tcp.set_nodelay(true);
        }),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        common::shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown_token.cancel();
    })
    .await
    .context("server error")?;
    // Write what the audit file sink still queues.
    security.audit().close().await.context("audit log")?;
    #[cfg(feature = "otel")]
    if let Some(provider) = otlp {
        provider.shutdown().context("OTLP export")?;
    }
    Ok(())
}

/// Print the generated development key once, with ready-to-paste client configurations: the
/// `mcpServers` block of Claude Code's `.mcp.json` (and Cursor's `mcp.json`), VS Code's
/// `.vscode/mcp.json` (`servers`), and `mcp-remote` for hosts that only speak stdio.
fn print_client_config(key: &str, local: SocketAddr) {
    let url = format!("http://{local}{MCP_PATH}");
    let bearer = format!("Bearer {key}");
    let server = json!({ "type": "http", "url": url, "headers": { "Authorization": bearer } });
    let pretty =
        |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    let claude = pretty(&json!({ "mcpServers": { "notes": server } }));
    let vscode = pretty(&json!({ "servers": { "notes": server } }));
    let stdio = pretty(&json!({ "mcpServers": { "notes": {
        "command": "npx",
        "args": ["mcp-remote", url, "--header", "Authorization:${MCP_AUTH}"],
        "env": { "MCP_AUTH": bearer }
    } } }));
    println!(
        "\nNo credential configured (MCP_API_KEY, MCP_API_KEYS_FILE, MCP_JWT_SECRET): \
         generated a development API key with every scope, valid until this process exits:\n\n  \
         {key}\n\nClaude Code (.mcp.json) or Cursor (mcp.json):\n{claude}\n\nVS Code \
         (.vscode/mcp.json):\n{vscode}\n\nA host that only speaks stdio, through mcp-remote:\n{stdio}\n"
    );
}

/// `GET /health`.
async fn health() -> (StatusCode, Json<serde_json::Value>) {
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}
