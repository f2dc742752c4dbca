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
//!
//! ## Layout
//!
//! This file starts the server; the fixtures live in `examples/conformance/`:
//! `state.rs` (what sessions share), `tools.rs` (`tools/list` and the one-response tools),
//! `mrtr.rs` (multi-round `input_required` tools), `tasks.rs` (Tasks-extension tools) and
//! `handler.rs` (the `ServerHandler`: resources, prompts, completion, tasks, listen streams).

// Most scenarios exercise the 2025-11-25 era: logging, sampling and server-to-client requests,
// which rmcp marks deprecated in favour of the 2026-07-28 forms.
#![allow(deprecated)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use axum::{Router, serve::ListenerExt};
use mcp_security::SecurityConfig;
use mcp_security::core::config::{Env, Environment};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tracing_subscriber::EnvFilter;

use crate::state::{ConformanceServer, Shared};

mod common;
#[path = "conformance/handler.rs"]
mod handler;
#[path = "conformance/mrtr.rs"]
mod mrtr;
#[path = "conformance/state.rs"]
mod state;
#[path = "conformance/tasks.rs"]
mod tasks;
#[path = "conformance/tools.rs"]
mod tools;

/// Where the MCP endpoint is mounted.
const MCP_PATH: &str = "/mcp";
/// Listen address when `MCP_BIND` is unset.
const DEFAULT_BIND: &str = "127.0.0.1:8090";
/// The per-client request budget per minute in `stacked` mode: high enough that the suite
/// (a few hundred requests from one address) never meets it.
const STACKED_RATE_LIMIT: u64 = 100_000;

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
