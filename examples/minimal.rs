//! The smallest MCP server behind the whole stack: one tool, `SecurityConfig::from_env()`.
//! `MCP_API_KEY=… MCP_BIND=127.0.0.1:8080 cargo run -p examples --example minimal`.
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars::JsonSchema, tool, tool_handler, tool_router};
#[derive(serde::Deserialize, JsonSchema)]
struct Text {
    text: String,
}
#[derive(Clone)]
struct Echo(ToolRouter<Self>);
#[tool_router]
impl Echo {
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text
    }
}
#[tool_handler(router = self.0)]
impl ServerHandler for Echo {}
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = mcp_security::SecurityConfig::from_env()?; // MCP_* variables, checked
    let security = config.layer()?; // refuses unsafe production settings
    let hosts = config.allowed_hosts().unwrap_or_default().to_vec();
    let mcp_config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let sessions = std::sync::Arc::new(LocalSessionManager::default());
    let mcp = StreamableHttpService::new(|| Ok(Echo(Echo::tool_router())), sessions, mcp_config);
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(security);
    let listener = tokio::net::TcpListener::bind(config.bind_addr().ok_or("MCP_BIND")?).await?;
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    Ok(axum::serve(listener, app).await?)
}
