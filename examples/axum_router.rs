//! # Ordinary REST routes behind mcp-security: the MCP Tool Registry
//!
//! The suite is not MCP-only. This example is a tool registry: a plain axum JSON API with
//! create/read/update/delete endpoints, protected by the same one-layer stack
//! (`SecurityConfig::layer()`) as `axum_mcp_server`, with a permission per operation and
//! per-endpoint-class limits:
//!
//! | endpoint | scope | limit per caller |
//! |---|---|---|
//! | `GET /tools`, `GET /tools/{id}` | `read` | 60 / min (class `read`) |
//! | `POST /tools` | `create` | 20 / min (class `write`) |
//! | `PUT /tools/{id}` | `update` | 20 / min (class `write`) |
//! | `DELETE /tools/{id}` | `delete` | 10 / min (class `delete`) |
//! | `GET /whoami` | any credential | — |
//! | `GET /health` | none (exempt) | — |
//!
//! plus the per-client limit of every request (`MCP_RATE_LIMIT_REQUESTS`, 100 / min). Handlers
//! read the caller with the `Principal` extractor (`mcp_security::core::Principal`); a tool
//! records who created and last changed it.
//!
//! ## Run it
//!
//! ```text
//! cargo run --release --example axum_router
//! ```
//!
//! It listens on `MCP_BIND` (default `127.0.0.1:8080`) and reads every `MCP_*` variable of
//! `mcp_security::config` (`MCP_ENV`, `MCP_API_KEY(_FILE)`, `MCP_API_KEYS_FILE`,
//! `MCP_JWT_SECRET`, `MCP_CORS_ORIGINS`, `MCP_RATE_LIMIT_*`, `MCP_AUDIT_*`, …). Unset `MCP_ENV`
//! means development here. In development with no credential it makes up two keys for the run
//! and prints them: `admin` (every scope) and `reader` (`read` only). With
//! `MCP_ENV=production` and no credential it refuses to start. A key file
//! (`MCP_API_KEYS_FILE`, entries from `mcp-security keygen --name svc --scope read --scope
//! create`) gives each service its own permissions; `MCP_CONFIG_FILE` with
//! `examples/deployments/tool-registry.toml` replaces the limits above with the deployment's.
//!
//! ```text
//! curl -s http://127.0.0.1:8080/tools                                    # 401, WWW-Authenticate: Bearer
//! curl -s -H "Authorization: Bearer $READER" http://127.0.0.1:8080/tools # 200 []
//! curl -s -H "Authorization: Bearer $READER" -H 'content-type: application/json' \
//!      -d '{"name":"grep","description":"search text"}' http://127.0.0.1:8080/tools   # 403 insufficient_scope
//! curl -s -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
//!      -d '{"name":"grep","description":"search text"}' http://127.0.0.1:8080/tools   # 201
//! ```

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use mcp_security::SecurityConfig;
use mcp_security::core::Principal;
use mcp_security::core::config::{Env, Environment};
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RouteClass};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The registry is a demo: refuse to grow it without bound.
const MAX_TOOLS: usize = 10_000;
/// Longest accepted name or description, in bytes.
const MAX_FIELD: usize = 1_000;

/// One registered tool.
#[derive(Debug, Clone, Serialize)]
struct Tool {
    id: u64,
    name: String,
    description: String,
    created_by: String,
    updated_by: String,
}

/// The body of `POST /tools` and `PUT /tools/{id}`.
#[derive(Debug, Deserialize)]
struct ToolInput {
    name: String,
    #[serde(default)]
    description: String,
}

impl ToolInput {
    fn validate(&self) -> Result<(), ApiError> {
        if self.name.trim().is_empty() {
            return Err(ApiError::bad_request("name must not be empty"));
        }
        if self.name.len() > MAX_FIELD || self.description.len() > MAX_FIELD {
            return Err(ApiError::bad_request("name or description too long"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    tools: BTreeMap<u64, Tool>,
}

/// Shared by every request; a `std` lock is enough, it is never held across an `.await`.
type Db = Arc<RwLock<Registry>>;

/// An application error as `{"error": code, "message": …}`, the stack's own JSON shape.
struct ApiError(StatusCode, &'static str, &'static str);

impl ApiError {
    fn bad_request(message: &'static str) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "invalid_input", message)
    }
    fn not_found() -> Self {
        ApiError(StatusCode::NOT_FOUND, "not_found", "No tool with that id")
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (self.0, Json(json!({ "error": self.1, "message": self.2 }))).into_response()
    }
}

/// `GET /tools` (scope `read`).
async fn list_tools(State(db): State<Db>) -> Json<Vec<Tool>> {
    let db = db.read().unwrap_or_else(PoisonError::into_inner);
    Json(db.tools.values().cloned().collect())
}

/// `GET /tools/{id}` (scope `read`).
async fn get_tool(State(db): State<Db>, Path(id): Path<u64>) -> Result<Json<Tool>, ApiError> {
    let db = db.read().unwrap_or_else(PoisonError::into_inner);
    db.tools
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// `POST /tools` (scope `create`): the caller becomes the tool's creator.
async fn create_tool(
    principal: Principal,
    State(db): State<Db>,
    Json(input): Json<ToolInput>,
) -> Result<(StatusCode, Json<Tool>), ApiError> {
    input.validate()?;
    let mut db = db.write().unwrap_or_else(PoisonError::into_inner);
    if db.tools.len() >= MAX_TOOLS {
        return Err(ApiError(
            StatusCode::INSUFFICIENT_STORAGE,
            "registry_full",
            "The registry is full; delete a tool first",
        ));
    }
    db.next_id += 1;
    let tool = Tool {
        id: db.next_id,
        name: input.name,
        description: input.description,
        created_by: principal.id().to_owned(),
        updated_by: principal.id().to_owned(),
    };
    db.tools.insert(tool.id, tool.clone());
    tracing::info!(id = tool.id, by = principal.id(), "tool registered");
    Ok((StatusCode::CREATED, Json(tool)))
}

/// `PUT /tools/{id}` (scope `update`).
async fn update_tool(
    principal: Principal,
    State(db): State<Db>,
    Path(id): Path<u64>,
    Json(input): Json<ToolInput>,
) -> Result<Json<Tool>, ApiError> {
    input.validate()?;
    let mut db = db.write().unwrap_or_else(PoisonError::into_inner);
    let tool = db.tools.get_mut(&id).ok_or_else(ApiError::not_found)?;
    tool.name = input.name;
    tool.description = input.description;
    principal.id().clone_into(&mut tool.updated_by);
    Ok(Json(tool.clone()))
}

/// `DELETE /tools/{id}` (scope `delete`).
async fn delete_tool(
    principal: Principal,
    State(db): State<Db>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let mut db = db.write().unwrap_or_else(PoisonError::into_inner);
    db.tools.remove(&id).ok_or_else(ApiError::not_found)?;
    tracing::info!(id, by = principal.id(), "tool deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /whoami` (any credential): who the stack says the caller is.
async fn whoami(principal: Principal) -> Json<Value> {
    Json(json!({
        "id": principal.id(),
        "kind": principal.kind().as_str(),
        "scopes": principal.scopes().iter().collect::<Vec<_>>(),
    }))
}

/// `GET /health` (exempt from authentication, so there is never a principal: `Option` says so
/// without refusing).
async fn health(principal: Option<Principal>) -> Json<Value> {
    Json(json!({ "status": "ok", "authenticated": principal.is_some() }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();

    // The registry's permissions as scopes per method (a GET rule also covers HEAD), and its
    // per-endpoint-class limits per caller (the key or token's principal, else the client
    // address). MCP_CONFIG_FILE's [rate_limit] section replaces the limits; its
    // [[auth.path_scopes]] add to the scopes.
    let caller = KeySelector::principal_or_client_addr;
    let settings = SecurityConfig::builder_from_env(&Env::new("MCP"))?
        .default_environment(Environment::Development)
        .require_path("/tools", Some(&[Method::GET]), ["read"])
        .require_path("/tools", Some(&[Method::POST]), ["create"])
        .require_path("/tools", Some(&[Method::PUT, Method::PATCH]), ["update"])
        .require_path("/tools", Some(&[Method::DELETE]), ["delete"])
        .caller_route_class(RouteClass::new("read").http(Method::GET, "/tools"))
        .caller_route_class(
            RouteClass::new("write")
                .http(Method::POST, "/tools")
                .http(Method::PUT, "/tools")
                .http(Method::PATCH, "/tools"),
        )
        .caller_route_class(RouteClass::new("delete").http(Method::DELETE, "/tools"))
        .caller_limit(Limit::new("read", Quota::per_minute(60), caller()).for_class("read"))
        .caller_limit(Limit::new("write", Quota::per_minute(20), caller()).for_class("write"))
        .caller_limit(Limit::new("delete", Quota::per_minute(10), caller()).for_class("delete"));
    let (settings, dev_keys) = common::dev_keys(
        settings,
        &[
            ("admin", &["read", "create", "update", "delete"]),
            ("reader", &["read"]),
        ],
    )?;
    let config = settings.build()?;
    // The production checks run here: an unsafe production setting refuses the start.
    let security = config.layer()?;
    let bind = config.bind_addr().context("MCP_BIND must be set")?;

    let app = Router::new()
        .route("/health", get(health))
        .route("/whoami", get(whoami))
        .route("/tools", get(list_tools).post(create_tool))
        .route(
            "/tools/{id}",
            get(get_tool).put(update_tool).delete(delete_tool),
        )
        .with_state(Db::default())
        .layer(security.clone());

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    let local = listener.local_addr().context("no local address")?;
    tracing::info!(
        env = config.environment().as_str(),
        "tool registry on http://{local}/tools, controls: {}",
        security.summary()
    );
    common::print_dev_keys(&dev_keys);

    axum::serve(
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        // The client address (per-client limit, audit) comes from ConnectInfo.
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(common::shutdown_signal())
    .await
    .context("server error")?;
    security.audit().close().await.context("audit log")?;
    Ok(())
}
