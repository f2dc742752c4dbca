//! # Plain hyper 1 behind mcp-security
//!
//! No framework: a small tower service routing `/mcp` to rmcp's streamable-HTTP MCP service and
//! the rest to plain handlers, served by hyper-util's auto (HTTP/1 + HTTP/2) connection builder,
//! with the whole stack of `SecurityConfig::layer()` in front through
//! `hyper_util::service::TowerToHyperService`. What a framework would do, done by hand:
//!
//! - the peer address of each connection goes into every request's extensions as
//!   `mcp_security::core::client_addr::PeerAddr`, outside the stack, so the per-client limit and
//!   the audit record know the client (behind `MCP_TRUSTED_PROXIES`, the forwarded one);
//! - `TCP_NODELAY` on every accepted socket;
//! - graceful shutdown on Ctrl-C / SIGTERM: stop accepting, let open connections finish (10 s at
//!   most), then flush the audit trail.
//!
//! Routes: `/mcp`, an MCP server (both protocol eras) with one tool, `whoami`, reading the
//! principal the stack authenticated from the request's extensions; `GET /health` (exempt from
//! authentication), `GET /whoami` (the principal and the client address), `POST /echo` (the body
//! back; at most `MCP_MAX_BODY_BYTES`).
//!
//! ## Run it
//!
//! ```text
//! cargo run --release --example hyper_server
//! ```
//!
//! Configured like `axum_mcp_server`, through every `MCP_*` variable of `mcp_security::config`
//! (`MCP_BIND`, default `127.0.0.1:8080`; `MCP_ENV`, unset means development here;
//! `MCP_API_KEY(_FILE)`, `MCP_API_KEYS_FILE`, `MCP_JWT_SECRET`, `MCP_RATE_LIMIT_*`, …). In
//! development with no credential it makes up a key for the run and prints it; in production
//! without one it refuses to start.
//!
//! ```text
//! curl -si http://127.0.0.1:8080/whoami                                # 401, WWW-Authenticate: Bearer
//! curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/whoami # {"principal":{…},"client_addr":…}
//! ```

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mcp_security::SecurityConfig;
use mcp_security::core::Principal;
use mcp_security::core::client_addr::PeerAddr;
use mcp_security::core::config::{Env, Environment};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// How long open connections may take to finish after the shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// The body every route answers with: rmcp's, which the plain routes box too.
type Body = BoxBody<Bytes, Infallible>;

/// The MCP server at `/mcp`: one tool that says who the caller is.
#[derive(Clone)]
struct WhoAmI {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl WhoAmI {
    /// The `Principal` the auth layer put into the request's extensions.
    #[tool(description = "Return the caller's principal (id, kind, scopes) as JSON text.")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        principal_json(parts.extensions.get::<Principal>()).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WhoAmI {}

/// The caller, as `/whoami` and the MCP tool report it.
fn principal_json(principal: Option<&Principal>) -> Value {
    principal.map_or(Value::Null, |p| {
        json!({
            "id": p.id(),
            "kind": p.kind().as_str(),
            "scopes": p.scopes().iter().collect::<Vec<_>>(),
        })
    })
}

/// `/mcp` to rmcp's streamable-HTTP service, everything else to [`app`].
#[derive(Clone)]
struct Routes {
    mcp: StreamableHttpService<WhoAmI, LocalSessionManager>,
    max_body: usize,
}

impl<B> Service<Request<B>> for Routes
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mcp, max_body) = (self.mcp.clone(), self.max_body);
        Box::pin(async move {
            if req.uri().path() == "/mcp" {
                return mcp.oneshot(req).await;
            }
            Ok(app(req, max_body).await?.map(BodyExt::boxed))
        })
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// The application: three routes, nothing about security in it.
async fn app<B>(req: Request<B>, max_body: usize) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let res = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        (&Method::GET, "/whoami") => {
            // Inserted by the stack's authentication, and by the accept loop below.
            let principal = principal_json(req.extensions().get::<Principal>());
            let client = req
                .extensions()
                .get::<PeerAddr>()
                .map(|PeerAddr(addr)| addr.to_string());
            json_response(
                StatusCode::OK,
                &json!({ "principal": principal, "client_addr": client }),
            )
        }
        (&Method::POST, "/echo") => match Limited::new(req.into_body(), max_body).collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes())),
            Err(_) => json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({ "error": "payload_too_large", "message": "Payload Too Large" }),
            ),
        },
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not_found", "message": "Not Found" }),
        ),
    };
    Ok(res)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();

    let settings = SecurityConfig::builder_from_env(&Env::new("MCP"))?
        .default_environment(Environment::Development);
    let (settings, dev_keys) = common::dev_keys(settings, &[("dev", &["*"])])?;
    let config = settings.build()?;
    // The production checks run here: an unsafe production setting refuses the start.
    let security = config.layer()?;
    let bind = config.bind_addr().context("MCP_BIND must be set")?;

    // The stack around the application, built once; each request clones it (Arc clones).
    let hosts = config.allowed_hosts().unwrap_or_default().to_vec();
    let mcp = StreamableHttpService::new(
        || {
            Ok(WhoAmI {
                tool_router: WhoAmI::tool_router(),
            })
        },
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_max_request_body_bytes(config.max_body_bytes()),
    );
    let stack = security.layer(Routes {
        mcp,
        max_body: config.max_body_bytes(),
    });

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot bind {bind}"))?;
    let local = listener.local_addr().context("no local address")?;
    tracing::info!(
        env = config.environment().as_str(),
        "hyper server on http://{local}, controls: {}",
        security.summary()
    );
    common::print_dev_keys(&dev_keys);

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(common::shutdown_signal());
    loop {
        let (stream, remote): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without this, small responses wait on Nagle + delayed ACK (~40 ms each).
        let _ = stream.set_nodelay(true);
        // The peer address goes in outside the stack, so every layer sees it.
        let svc = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(remote));
                req
            })
            .service(stack.clone());
        let conn = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, "connection error: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(GRACE) => tracing::warn!("connections still open after {GRACE:?}; stopping"),
    }
    security.audit().close().await.context("audit log")?;
    Ok(())
}
