//! # A tonic gRPC server behind mcp-security
//!
//! The standard gRPC health service (`grpc.health.v1.Health`, from `tonic-health`: no protoc,
//! no `.proto` files) served by tonic 0.14, with the whole stack of `SecurityConfig::layer()`
//! in front through `Server::builder().layer(…)`. gRPC callers get gRPC answers: the stack
//! picks the format by `content-type: application/grpc` and refuses with a trailers-only
//! response carrying the right `grpc-status`:
//!
//! | refusal | HTTP equivalent | `grpc-status` |
//! |---|---|---|
//! | no credential, a wrong / expired / revoked one | 401 | 16 `UNAUTHENTICATED` |
//! | a credential without the scope (`health:read`) | 403 | 7 `PERMISSION_DENIED` |
//! | over a rate limit, or banned | 429 | 8 `RESOURCE_EXHAUSTED` |
//!
//! Credentials travel as gRPC metadata: `authorization: Bearer <API key or JWT>` (or the
//! header named by `MCP_API_KEY_HEADER`). The client address comes from tonic's
//! `TcpConnectInfo` (mcp-security-core's `tonic` feature reads it).
//!
//! ## Run it
//!
//! ```text
//! cargo run --release --example tonic_server
//! ```
//!
//! Configured like `axum_mcp_server`, through every `MCP_*` variable of `mcp_security::config`
//! (`MCP_ENV`, unset means development here; `MCP_API_KEY(_FILE)`, `MCP_API_KEYS_FILE`,
//! `MCP_JWT_SECRET`, `MCP_RATE_LIMIT_*`, `MCP_AUDIT_*`, …); `MCP_BIND` defaults to
//! `127.0.0.1:50051` here. In development with no credential it makes up two keys for the run
//! and prints them: `monitor` (scope `health:read`) and `no-scope` (none, to see status 7). In
//! production without a credential it refuses to start. Per caller: 60 health calls a minute.
//!
//! curl speaks enough gRPC to see each answer (an empty `HealthCheckRequest` is five zero
//! bytes; `-D -` prints the trailers too):
//!
//! ```text
//! printf '\0\0\0\0\0' | curl -s -D - -o /dev/null --http2-prior-knowledge \
//!   -H 'content-type: application/grpc' -H "authorization: Bearer $KEY" --data-binary @- \
//!   http://127.0.0.1:50051/grpc.health.v1.Health/Check | grep grpc-
//! # monitor key: grpc-status: 0; none or a wrong one: 16; the no-scope key: 7
//! ```
//!
//! `cargo test -p tests --test tonic_client` drives every answer (8 included) with a tonic
//! client over a real socket.

mod common;

use anyhow::Context as _;
use http::Method;
use mcp_security::SecurityConfig;
use mcp_security::core::config::{Env, Environment};
use mcp_security::core::inspect::InspectBody;
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RouteClass};
use tonic::transport::Server;
use tower::ServiceBuilder;

/// The gRPC health service's path prefix (`/grpc.health.v1.Health/Check`, `/…/Watch`).
const HEALTH_PATH: &str = "/grpc.health.v1.Health";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();

    let default_bind = "127.0.0.1:50051".parse()?;
    let caller = KeySelector::principal_or_client_addr;
    let settings = SecurityConfig::builder()
        .bind_addr(default_bind) // MCP_BIND replaces it
        .read_env(&Env::new("MCP"))?
        .default_environment(Environment::Development)
        // gRPC calls are POSTs; every method of the service needs the scope.
        .require_path(HEALTH_PATH, None::<&[Method]>, ["health:read"])
        .caller_route_class(RouteClass::new("health").any_method(HEALTH_PATH))
        .caller_limit(Limit::new("health", Quota::per_minute(60), caller()).for_class("health"));
    let (settings, dev_keys) = common::dev_keys(
        settings,
        &[("monitor", &["health:read"]), ("no-scope", &[])],
    )?;
    let config = settings.build()?;
    // The production checks run here: an unsafe production setting refuses the start.
    let security = config.layer()?;
    let bind = config.bind_addr().context("MCP_BIND must be set")?;

    let (_reporter, health) = tonic_health::server::health_reporter();

    // The stack hands the inner service a body wrapper (McpInspectLayer's, which passes gRPC
    // bodies through unread); tonic's router wants its own body type back.
    let layer = ServiceBuilder::new().layer(security.clone()).map_request(
        |req: http::Request<InspectBody<tonic::body::Body>>| req.map(tonic::body::Body::new),
    );

    tracing::info!(
        env = config.environment().as_str(),
        "gRPC health service on {bind}, controls: {}",
        security.summary()
    );
    common::print_dev_keys(&dev_keys);

    Server::builder()
        .tcp_nodelay(true)
        .layer(layer)
        .add_service(health)
        .serve_with_shutdown(bind, common::shutdown_signal())
        .await
        .context("server error")?;
    security.audit().close().await.context("audit log")?;
    Ok(())
}
