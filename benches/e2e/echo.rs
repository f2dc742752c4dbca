//! The MCP server every variant serves: rmcp's streamable HTTP service with one `echo` tool,
//! rmcp's defaults (loopback Host allowlist, SSE replies, legacy sessions available).
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone)]
pub struct Echo {
    tool_router: ToolRouter<Self>,
}

/// Parameters of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoParams {
    /// The text to send back.
    text: String,
}

#[tool_router]
impl Echo {
    /// Returns `text` unchanged.
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoParams { text }): Parameters<EchoParams>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {}

/// A fresh service; the tool router is built once and cloned per request.
pub fn service() -> StreamableHttpService<Echo, LocalSessionManager> {
    let router = Echo::tool_router();
    StreamableHttpService::new(
        move || {
            Ok(Echo {
                tool_router: router.clone(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    )
}
