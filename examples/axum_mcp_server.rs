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
//! ## Run it
//!
//! ```text
//! cargo run --release --example axum_mcp_server
//! ```
//!
//! Environment:
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
//!   `MCP_DEV_BYPASS`. In development with none of the credential variables
//!   set, the example generates a key for the run and prints it once with a
//!   ready-to-paste `mcpServers` client configuration; in production it
//!   refuses to start.
//! * `MCP_CORS_ORIGINS` — comma-separated browser origins allowed to call the
//!   server (CORS and the MCP Origin check). Unset in development: the
//!   localhost defaults; unset in production: no browser origin. The MCP
//!   Inspector needs `MCP_CORS_ORIGINS=http://localhost:6274`.
//! * Rate and resource limits: `MCP_RATE_LIMIT_ENABLED`, `MCP_RATE_LIMIT_REQUESTS`
//!   (100), `MCP_RATE_LIMIT_WINDOW` (60 s), `MCP_RATE_LIMIT_BURST` (= requests),
//!   `MCP_RATE_LIMIT_MAX_KEYS`, `MCP_TRUSTED_PROXIES`, `MCP_CONFIG_FILE` (a TOML
//!   `[rate_limit]` section with classes and per-tool limits),
//!   `MCP_MAX_CONCURRENCY` (1000), `MCP_REQUEST_TIMEOUT` (30 s).
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
//! and its default list is loopback only. This example makes the list follow
//! the bind address:
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

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
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
use mcp_security::auth::api_key::{ApiKeyStore, DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::auth::{AuthLayer, AuthPolicy};
use mcp_security::core::BanList;
use mcp_security::core::Scopes;
use mcp_security::core::config::{Env, Environment};
use mcp_security::core::inspect::McpInspectLayer;
use mcp_security::headers::{CorsPolicy, OriginGuardLayer, SecurityHeadersLayer};
use mcp_security::ratelimit::{
    KeySelector, Limit, Quota, RateLimitLayer, ResourceLimitLayer, RouteClass,
};
use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{CallToolResult, ContentBlock},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// Default listen address: loopback only.
const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Where the MCP endpoint is mounted.
const MCP_PATH: &str = "/mcp";
/// Default request body cap: 1 MiB.
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The note store is a demo; refuse to grow it without bound.
const MAX_NOTES: usize = 10_000;
/// rmcp's own default `Host` allowlist.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

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

#[tool_handler(
    router = self.tool_router,
    name = "mcp-security-example",
    instructions = "A demo note store. Tools: whoami, echo, read_note, write_note, delete_note."
)]
impl ServerHandler for NotesServer {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // rmcp logs several INFO lines per stateless request; keep its warnings.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();

    // Unset means development: this example is a loopback demo. (The library's
    // own default is production.)
    let env = Env::new("MCP");
    let (environment, env_source) = match env.string("ENV")? {
        Some(v) => (Environment::parse("MCP_ENV", &v)?, "MCP_ENV"),
        None => (Environment::Development, "default, MCP_ENV unset"),
    };
    let bind: SocketAddr = std::env::var("MCP_BIND")
        .unwrap_or_else(|_| DEFAULT_BIND.to_owned())
        .parse()
        .context("MCP_BIND must be an address like 127.0.0.1:8080")?;
    let max_body_bytes = env.usize("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
    let allowed_hosts = allowed_hosts(bind)?;

    // rmcp's own body cap is set to the same value as a backstop behind
    // `McpInspectLayer`.
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts.clone())
        .with_max_request_body_bytes(max_body_bytes);
    // Cancelling rmcp's token on shutdown ends open SSE streams, which would
    // otherwise keep the graceful shutdown waiting.
    let shutdown_token = mcp_config.cancellation_token.clone();

    // Built once; every session's server value clones it.
    let notes = Notes::default();
    let tool_router = NotesServer::tool_router();
    let mcp = StreamableHttpService::new(
        move || Ok(NotesServer::new(notes.clone(), tool_router.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );

    // `McpInspectLayer` reads the JSON-RPC envelope of MCP POSTs (bounded by
    // `max_body_bytes`; 413 beyond it, 400 for bodies that are not JSON-RPC)
    // and inserts an `mcp_security::core::McpCall`, which the auth policy reads.
    let inspect = McpInspectLayer::builder()
        .path(MCP_PATH)
        .max_body_bytes(max_body_bytes)
        .build()
        .context("invalid MCP_MAX_BODY_BYTES")?;

    // Authentication from the environment (MCP_API_KEY, MCP_API_KEYS_FILE,
    // MCP_JWT_SECRET, ...), with the scopes each tool needs.
    let policy = AuthPolicy::builder_from_env(&env)?
        .require_mcp("tools/call:read_note", ["notes:read"])
        .require_mcp("tools/call:write_note", ["notes:write"])
        .require_mcp("tools/call:delete_note", ["notes:delete"])
        .build()?;
    let mut auth = AuthLayer::builder_from_env(&env)?
        .environment(environment)
        .bind_addr(bind)
        .mcp_path(MCP_PATH)
        .policy(policy);
    let mut generated_key = None;
    if !auth.has_credential_source() && environment == Environment::Development {
        // A demo must still not run open: invent a key for this run and say so.
        let key = generate_key(DEFAULT_KEY_PREFIX)?;
        let store = ApiKeyStore::builder()
            .key("dev-generated", &key, Scopes::new(["*"]))
            .build()?;
        auth = auth.api_keys(store);
        generated_key = Some(key);
    }
    // In production with no credential source this refuses to start, naming
    // the setting and the variables to set.
    let auth = auth.build().context(
        "refusing to start: authentication is misconfigured (credential sources are \
         MCP_API_KEY(_FILE), MCP_API_KEYS_FILE and MCP_JWT_SECRET(_FILE))",
    )?;
    let controls = format!(
        "mcp-inspect (max body {max_body_bytes} bytes), auth ({})",
        auth.summary()
    );

    // CORS from MCP_CORS_ORIGINS (comma-separated). This example defaults to
    // development, where an unset list means http://localhost:3000/8080/8501
    // and any http://127.0.0.1:<port>; production without a list allows no
    // cross-origin access at all.
    let cors = CorsPolicy::builder_from_env(&env)?
        .environment(environment)
        .build()
        .context("invalid MCP_CORS_ORIGINS")?;
    // The MCP Origin check (DNS-rebinding defence) and CORS from that one
    // policy, with the same Host allowlist rmcp gets (MCP_ALLOWED_HOSTS=* →
    // any host).
    let guard = OriginGuardLayer::builder(&cors)
        .mcp_path(MCP_PATH)
        .bind_addr(bind);
    let guard = if allowed_hosts.is_empty() {
        guard.any_host()
    } else {
        guard.allowed_hosts(allowed_hosts.iter().cloned())
    };
    let guard = guard.build().context("invalid MCP_ALLOWED_HOSTS")?;
    let headers = SecurityHeadersLayer::api();

    // Rate limits. Per client address before the body is read or any
    // credential checked (MCP_RATE_LIMIT_*: 100 per 60 s by default); then per
    // caller and per endpoint class after auth, from MCP_CONFIG_FILE's
    // [rate_limit] section when there is one, else the seed's classes.
    let bans = BanList::new();
    let per_ip = RateLimitLayer::builder_from_env(&env)?
        .mcp_path(MCP_PATH)
        .ban_list(bans.clone())
        .build()
        .context("invalid MCP_RATE_LIMIT_* settings")?;
    let mut per_caller = RateLimitLayer::builder()
        .mcp_path(MCP_PATH)
        .config_file_from_env(&env)?;
    if per_caller.limits().is_empty() {
        let caller = KeySelector::principal_or_client_addr;
        per_caller = per_caller
            .route_class(
                RouteClass::new("read")
                    .mcp("tools/call:read_note")
                    .mcp("resources/read"),
            )
            .route_class(RouteClass::new("write").mcp("tools/call:write_note"))
            .route_class(RouteClass::new("delete").mcp("tools/call:delete_note"))
            .limit(Limit::new("principal", Quota::per_minute(100), caller()))
            .limit(Limit::new("read", Quota::per_minute(60), caller()).for_class("read"))
            .limit(Limit::new("write", Quota::per_minute(20), caller()).for_class("write"))
            .limit(Limit::new("delete", Quota::per_minute(10), caller()).for_class("delete"));
    }
    let per_caller = per_caller
        .build()
        .context("invalid rate-limit configuration")?;
    // MCP_MAX_CONCURRENCY (1000) and MCP_REQUEST_TIMEOUT (30 s; SSE GETs exempt).
    let resources = ResourceLimitLayer::from_env(&env)?;
    let controls = format!(
        "{controls}, security headers (api), {}, rate limit per ip ({}), per caller ({})",
        guard.summary(),
        per_ip.summary(),
        per_caller.summary()
    );

    // axum runs the layer added last first: headers, Origin guard + CORS,
    // per-IP limit, resource limits, inspect, auth, per-caller limits, then
    // the router. The guard sits outside auth so browser preflights are
    // answered without a credential; the per-IP limit sits before any crypto.
    let app = Router::new()
        .route("/health", get(health))
        .nest_service(MCP_PATH, mcp)
        .layer(per_caller)
        .layer(auth)
        .layer(inspect)
        .layer(resources)
        .layer(per_ip)
        .layer(guard)
        .layer(headers);

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    let local = listener.local_addr().context("no local address")?;
    tracing::info!(
        env = environment.as_str(),
        env_source,
        allowed_hosts = ?allowed_hosts,
        "listening on http://{local}, MCP endpoint http://{local}{MCP_PATH}, controls: {controls}"
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
        shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown_token.cancel();
    })
    .await
    .context("server error")?;
    Ok(())
}

/// Print the generated development key once, with a ready-to-paste client
/// configuration (the `mcpServers` block MCP hosts read).
fn print_client_config(key: &str, local: SocketAddr) {
    let config = json!({
        "mcpServers": {
            "notes": {
                "url": format!("http://{local}{MCP_PATH}"),
                "headers": { "Authorization": format!("Bearer {key}") }
            }
        }
    });
    let pretty = serde_json::to_string_pretty(&config).unwrap_or_else(|_| config.to_string());
    println!(
        "\nNo credential configured (MCP_API_KEY, MCP_API_KEYS_FILE, MCP_JWT_SECRET): \
         generated a development API key with every scope, valid until this process exits:\n\n  \
         {key}\n\nClient configuration:\n{pretty}\n"
    );
}

/// `GET /health`.
async fn health() -> (StatusCode, Json<serde_json::Value>) {
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}

/// The `Host` values the MCP endpoint accepts (empty = any). See the module docs.
fn allowed_hosts(bind: SocketAddr) -> anyhow::Result<Vec<String>> {
    if let Ok(list) = std::env::var("MCP_ALLOWED_HOSTS") {
        if list.trim() == "*" {
            tracing::warn!("MCP_ALLOWED_HOSTS=*: Host header check disabled");
            return Ok(Vec::new());
        }
        let hosts: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(
            !hosts.is_empty(),
            "MCP_ALLOWED_HOSTS is set but names no host (use `*` to disable the check)"
        );
        return Ok(hosts);
    }
    let ip = bind.ip();
    if ip.is_loopback() {
        Ok(LOOPBACK_HOSTS.map(str::to_owned).to_vec())
    } else if ip.is_unspecified() {
        tracing::warn!(
            "bound to {ip}: only loopback Host headers are accepted on {MCP_PATH}; \
             set MCP_ALLOWED_HOSTS to the names clients use"
        );
        Ok(LOOPBACK_HOSTS.map(str::to_owned).to_vec())
    } else {
        Ok(vec![match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        }])
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
