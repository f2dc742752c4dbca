//! The end-to-end harness (cargo feature `e2e`): a real MCP server behind the whole
//! mcp-security stack on an ephemeral 127.0.0.1 port, a stub OAuth authorization server, and
//! runners for the Python and TypeScript MCP clients in `tests/clients/`.
//!
//! The server is built in-process, as a user would build theirs: rmcp 3.9's streamable HTTP
//! service (legacy sessions on through `LocalSessionManager`, so both the 2025-11-25 session era
//! and the 2026-07-28 stateless era work) with two tools, `whoami` and `echo`, inside an axum
//! `Router`, behind [`SecurityLayer`] built from a [`SecurityConfig`] in code, with an API key
//! (principal [`API_KEY_NAME`], every scope) and an HS256 JWT secret whose tokens must name the
//! server's URL as audience. TCP_NODELAY is set on every connection.
//!
//! The clients are external programs: a missing one fails the test with the setup command
//! ([`SETUP_COMMAND`]); nothing is skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Form, Json, Router};
use base64::Engine as _;
use mcp_security::auth::JwtVerifier;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::auth::jwt::TokenRequest;
use mcp_security::core::config::{Environment, Secret};
use mcp_security::core::{Principal, Scopes};
use mcp_security::{SecurityConfig, SecurityConfigBuilder, SecurityLayer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What to run when a client is missing.
pub const SETUP_COMMAND: &str = "bash .ci/e2e-setup.sh";

/// The variable naming the Python interpreter of the venv with `mcp` 2.x.
pub const PYTHON_VAR: &str = "MCP_E2E_PYTHON";

/// The name (principal id) of the server's API key.
pub const API_KEY_NAME: &str = "e2e-key";

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";

/// How long one client run may take before the test fails (a bound, not a measurement).
const CLIENT_BOUND: Duration = Duration::from_secs(120);

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), PathBuf::from)
}

// ---------------------------------------------------------------------------------------------
// The MCP server under test
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct E2eServer {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoParams {
    /// The text to send back.
    text: String,
}

#[tool_router]
impl E2eServer {
    fn new(tool_router: ToolRouter<Self>) -> Self {
        Self { tool_router }
    }

    #[tool(description = "Return the caller's principal (id, kind) as JSON text.")]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> String {
        let principal = match parts.extensions.get::<Principal>() {
            Some(p) => json!({
                "id": p.id(),
                "kind": p.kind().as_str(),
                "scopes": p.scopes().iter().collect::<Vec<_>>(),
            }),
            None => json!("anonymous"),
        };
        json!({ "principal": principal }).to_string()
    }

    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoParams { text }): Parameters<EchoParams>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router, name = "mcp-security-e2e")]
impl ServerHandler for E2eServer {}

/// Settings of a [`TestServer`] beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// RFC 9728 `authorization_servers` in the protected-resource metadata.
    pub authorization_servers: Vec<String>,
    /// The HS256 secret (default: a fresh random one), e.g. one shared with a
    /// [`StubAuthServer`] through [`jwt_signer`].
    pub jwt_secret: Option<String>,
}

/// A fresh random HS256 secret.
///
/// # Panics
/// When the system has no random source.
pub fn random_jwt_secret() -> String {
    generate_key("jwt-").expect("generate a JWT secret")
}

/// A signer for `secret` (HS256), for a [`StubAuthServer`].
///
/// # Panics
/// When the secret is refused.
pub fn jwt_signer(secret: &str) -> JwtVerifier {
    JwtVerifier::builder()
        .secret(Secret::new(secret))
        .build()
        .expect("JWT signer")
}

/// A running MCP server behind the whole stack; stopped when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT/mcp`, also the resource URL and the JWT audience.
    pub url: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// The API key (principal [`API_KEY_NAME`], every scope).
    pub api_key: String,
    jwt: JwtVerifier,
    security: SecurityLayer,
    /// rmcp's session manager, for a server started with the default MCP endpoint.
    sessions: Option<Arc<LocalSessionManager>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Start a server with the default options.
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerOptions::default()).await
    }

    /// Start a server.
    ///
    /// # Panics
    /// When the port cannot be bound or the stack refuses its configuration.
    pub async fn start_with(options: ServerOptions) -> TestServer {
        TestServer::start_configured(options, |b| b).await
    }

    /// Start a server whose configuration `configure` refines last (a session cap, …).
    ///
    /// # Panics
    /// When the port cannot be bound or the stack refuses its configuration.
    pub async fn start_configured(
        options: ServerOptions,
        configure: impl FnOnce(SecurityConfigBuilder) -> SecurityConfigBuilder,
    ) -> TestServer {
        let sessions = Arc::new(LocalSessionManager::default());
        let manager = Arc::clone(&sessions);
        let mut server = TestServer::start_serving(options, configure, move |config| {
            let allowed_hosts = config.allowed_hosts().map(<[String]>::to_vec);
            let mcp_config = StreamableHttpServerConfig::default()
                .with_allowed_hosts(allowed_hosts.unwrap_or_default())
                .with_max_request_body_bytes(config.max_body_bytes());
            let tool_router = E2eServer::tool_router();
            let mcp = StreamableHttpService::new(
                move || Ok(E2eServer::new(tool_router.clone())),
                manager,
                mcp_config,
            );
            Router::new().nest_service(MCP_PATH, mcp)
        })
        .await;
        server.sessions = Some(sessions);
        server
    }

    /// Start a server like [`TestServer::start_configured`] whose MCP endpoint is not the
    /// default `whoami`/`echo` server: `routes` builds it from the finished configuration (to
    /// mount at [`MCP_PATH`]), and it is served behind the stack next to `/health`.
    ///
    /// # Panics
    /// When the port cannot be bound or the stack refuses its configuration.
    pub async fn start_serving(
        options: ServerOptions,
        configure: impl FnOnce(SecurityConfigBuilder) -> SecurityConfigBuilder,
        routes: impl FnOnce(&SecurityConfig) -> Router,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let url = format!("http://{addr}{MCP_PATH}");
        let api_key = generate_key(DEFAULT_KEY_PREFIX).expect("generate an API key");
        let jwt_secret = options.jwt_secret.clone().unwrap_or_else(random_jwt_secret);

        let mut builder = SecurityConfig::builder()
            .environment(Environment::Production)
            .bind_addr(addr)
            .mcp_path(MCP_PATH)
            .named_api_key(API_KEY_NAME, Secret::new(&api_key), Scopes::new(["*"]))
            .jwt_secret(Secret::new(&jwt_secret))
            .jwt_audience(&url)
            .resource_url(&url)
            // A few hundred requests from one address per test run.
            .rate_limit_quota(10_000, Duration::from_secs(60), None);
        if !options.authorization_servers.is_empty() {
            builder = builder.authorization_servers(options.authorization_servers.clone());
        }
        builder = configure(builder);
        let config = builder.build().expect("valid e2e configuration");
        let security = config
            .layer()
            .expect("the stack accepts the e2e configuration");

        let jwt = JwtVerifier::builder()
            .secret(Secret::new(&jwt_secret))
            .audience(&url)
            .build()
            .expect("JWT signer");

        let app = Router::new()
            .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
            .merge(routes(&config))
            .layer(security.clone());
        let task = tokio::spawn(async move {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        TestServer {
            url,
            addr,
            api_key,
            jwt,
            security,
            sessions: None,
            task,
        }
    }

    /// How many sessions rmcp's session manager holds (0 for a server started with
    /// [`TestServer::start_serving`], whose sessions are its own).
    pub async fn server_sessions(&self) -> usize {
        match &self.sessions {
            Some(sessions) => sessions.sessions.read().await.len(),
            None => 0,
        }
    }

    /// A 10-minute HS256 JWT for `sub` with this server's URL as audience.
    ///
    /// # Panics
    /// When signing fails.
    pub fn jwt(&self, sub: &str) -> String {
        let mut req = TokenRequest::new(sub, Duration::from_secs(600));
        req.audience = vec![self.url.clone()];
        self.jwt.sign(&req, SystemTime::now()).expect("sign a JWT")
    }

    /// The stack in front of the server.
    pub fn security(&self) -> &SecurityLayer {
        &self.security
    }

    /// `http://127.0.0.1:PORT/.well-known/oauth-protected-resource/mcp`.
    pub fn resource_metadata_url(&self) -> String {
        format!(
            "http://{}/.well-known/oauth-protected-resource{MCP_PATH}",
            self.addr
        )
    }
}

/// The same MCP server without the stack (rmcp's defaults, loopback Host allowlist), to compare
/// our answers with rmcp's own; stopped when the handle is aborted.
///
/// # Panics
/// When the port cannot be bound.
pub async fn start_bare() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let tool_router = E2eServer::tool_router();
    let mcp = StreamableHttpService::new(
        move || Ok(E2eServer::new(tool_router.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = Router::new().nest_service(MCP_PATH, mcp);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// A stub OAuth authorization server
// ---------------------------------------------------------------------------------------------

/// What the stub authorization server's token endpoint received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCall {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// The RFC 8707 `resource` indicator.
    pub resource: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// The client id it authenticated, from `Authorization: Basic` or the form.
    pub client_id: Option<String>,
    /// How the client authenticated: `basic`, `post` or `none`.
    pub client_auth: &'static str,
    /// The status the endpoint answered.
    pub status: u16,
}

struct AsState {
    issuer: String,
    client_id: String,
    client_secret: String,
    signer: JwtVerifier,
    calls: Mutex<Vec<TokenCall>>,
}

/// A stub OAuth 2.0 authorization server (RFC 8414 metadata, a `client_credentials` token
/// endpoint minting HS256 JWTs with the requested `resource` as audience); stopped when
/// dropped.
pub struct StubAuthServer {
    /// `http://127.0.0.1:PORT`, the issuer.
    pub issuer: String,
    /// The one registered client.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    state: Arc<AsState>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for StubAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubAuthServer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl StubAuthServer {
    /// Start the stub with one client, signing tokens with `signer`'s first secret.
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub async fn start(signer: JwtVerifier) -> StubAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let issuer = format!("http://{addr}");
        let client_id = "e2e-machine-client".to_owned();
        let client_secret = generate_key("cs-").expect("client secret");
        let state = Arc::new(AsState {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            signer,
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(as_metadata))
            .route("/token", post(as_token))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StubAuthServer {
            issuer,
            client_id,
            client_secret,
            state,
            task,
        }
    }

    /// Every call its token endpoint received, in order.
    pub fn token_calls(&self) -> Vec<TokenCall> {
        self.state
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StubAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn as_metadata(State(state): State<Arc<AsState>>) -> Json<Value> {
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn as_token(
    State(state): State<Arc<AsState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let (client, client_auth) = match basic_credentials(&headers) {
        Some(c) => (Some(c), "basic"),
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (Some((id.clone(), secret.clone())), "post"),
            _ => (None, "none"),
        },
    };
    let mut call = TokenCall {
        grant_type: form.get("grant_type").cloned(),
        resource: form.get("resource").cloned(),
        scope: form.get("scope").cloned(),
        client_id: client.as_ref().map(|(id, _)| id.clone()),
        client_auth,
        status: 200,
    };
    let answer = |call: &mut TokenCall, status: StatusCode, body: Value| {
        call.status = status.as_u16();
        state
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call.clone());
        (status, [("cache-control", "no-store")], Json(body)).into_response()
    };
    let authenticated = client
        .as_ref()
        .is_some_and(|(id, secret)| *id == state.client_id && *secret == state.client_secret);
    if !authenticated {
        return answer(
            &mut call,
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client"}),
        );
    }
    if call.grant_type.as_deref() != Some("client_credentials") {
        return answer(
            &mut call,
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let Some(resource) = call.resource.clone() else {
        return answer(
            &mut call,
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_target", "error_description": "resource is required"}),
        );
    };
    let mut req = TokenRequest::new(&state.client_id, Duration::from_secs(600));
    req.audience = vec![resource];
    req.issuer = Some(state.issuer.clone());
    req.scopes = call
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match state.signer.sign(&req, SystemTime::now()) {
        Ok(token) => answer(
            &mut call,
            StatusCode::OK,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": 600}),
        ),
        Err(e) => answer(
            &mut call,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "server_error", "error_description": e.to_string()}),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------------------------

/// What a client run reported.
#[derive(Debug)]
pub struct ClientRun {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// The last JSON line the client printed on stdout (`Value::Null` when none).
    pub report: Value,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl ClientRun {
    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The Python interpreter with `mcp` 2.x: `$MCP_E2E_PYTHON`, else
/// `~/.cache/mcp-security/venv/bin/python`.
///
/// # Panics
/// With the setup command, when it does not exist or cannot import `mcp` and `httpx2`.
pub fn python() -> PathBuf {
    let path = std::env::var_os(PYTHON_VAR).map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/mcp-security/venv/bin/python")
        },
        PathBuf::from,
    );
    let ok = std::process::Command::new(&path)
        .args(["-c", "import mcp.client, httpx2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Python MCP client is not set up: {} cannot import `mcp` 2.x (set {PYTHON_VAR} to a \
         Python with `pip install -r .ci/requirements.txt`, or run `{SETUP_COMMAND}` at the \
         repository root)",
        path.display()
    );
    path
}

/// `tests/clients/ts`, with its `node_modules` installed.
///
/// # Panics
/// With the setup command, when `node` is missing or `npm ci` has not run there.
pub fn typescript_client_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/ts");
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        node,
        "`node` is not on PATH: install Node.js 20+ (`apt-get install -y nodejs npm`), then run \
         `{SETUP_COMMAND}` at the repository root"
    );
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk/package.json");
    assert!(
        sdk.is_file(),
        "the TypeScript MCP client is not set up: {} is missing; run `{SETUP_COMMAND}` at the \
         repository root (it runs `npm ci` in tests/clients/ts)",
        sdk.display()
    );
    dir
}

async fn run(mut cmd: tokio::process::Command, what: &str) -> ClientRun {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {what} client: {e}"));
    let output = tokio::time::timeout(CLIENT_BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the {what} client did not finish within {CLIENT_BOUND:?}"))
        .unwrap_or_else(|e| panic!("the {what} client failed to run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    ClientRun {
        code: output.status.code(),
        report,
        stdout,
        stderr,
    }
}

/// Run `tests/clients/python/e2e_client.py URL --mode MODE [--token TOKEN]`.
pub async fn run_python(url: &str, mode: &str, token: Option<&str>) -> ClientRun {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/python/e2e_client.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script).arg(url).args(["--mode", mode]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    run(cmd, "Python").await
}

/// Run `node tests/clients/ts/e2e_client.mjs ARGS…`.
pub async fn run_typescript(args: &[&str]) -> ClientRun {
    let dir = typescript_client_dir();
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&dir).arg("e2e_client.mjs").args(args);
    run(cmd, "TypeScript").await
}

/// Run `tests/clients/python/SCRIPT ARGS…` with the e2e Python.
pub async fn run_python_script(script: &str, args: &[&str]) -> ClientRun {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients/python")
        .join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script).args(args);
    run(cmd, "Python").await
}

/// Run `node tests/clients/ts/SCRIPT ARGS…`.
pub async fn run_typescript_script(script: &str, args: &[&str]) -> ClientRun {
    let dir = typescript_client_dir();
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&dir).arg(script).args(args);
    run(cmd, "TypeScript").await
}
