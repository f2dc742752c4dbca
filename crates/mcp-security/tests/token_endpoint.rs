//! The built-in token endpoint in the stack (`MCP_TOKEN_ENDPOINT`): on from the environment, its
//! tokens accepted by the stack's own verifier (HS256 and Ed25519), listed as the authorization
//! server, refused settings named, and the production checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::core::config::{Env, Environment};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityError, SecurityLayer};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const SECRET: &str = "jwt-7Hq2LmN9pX4vR8sT1wY6zB3cD5fG0jK2mP4rS7uV9xA";
const RESOURCE: &str = "https://mcp.example.com/mcp";
/// An Ed25519 private key (seed 07…07), PKCS#8 PEM: a test key, never a real one.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n\
    -----END PRIVATE KEY-----\n";

fn runtime() -> RuntimeEnvironment {
    RuntimeEnvironment::new().euid(Some(1000))
}

fn env(extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_API_KEY", KEY),
        ("MCP_JWT_SECRET", SECRET),
        ("MCP_RESOURCE_URL", RESOURCE),
        ("MCP_ALLOWED_HOSTS", "mcp.example.com"),
        ("MCP_TOKEN_ENDPOINT", "true"),
    ];
    pairs.extend_from_slice(extra);
    Env::from_pairs("MCP", pairs)
}

fn stack(env: &Env) -> Result<SecurityLayer, SecurityError> {
    SecurityConfig::builder_from_env(env)?
        .build()?
        .layer_with(&runtime())
}

fn app(stack: SecurityLayer) -> Router {
    Router::new()
        .route("/api", get(|| async { "api" }))
        .layer(stack)
}

async fn send(app: &Router, req: http::request::Builder, body: &str) -> (StatusCode, Value) {
    let req = req
        .header("host", "mcp.example.com")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

async fn mint(app: &Router) -> String {
    let (status, body) = send(
        app,
        Request::post("/oauth/token").header("content-type", "application/x-www-form-urlencoded"),
        &format!("grant_type=client_credentials&client_id=env&client_secret={KEY}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hs256_tokens_from_the_endpoint_authenticate_and_it_is_the_authorization_server() {
    let stack = stack(&env(&[])).unwrap();
    assert!(stack.token_endpoint().is_enabled());
    assert_eq!(stack.token_endpoint().algorithm(), Some("HS256"));
    assert!(
        stack
            .summary()
            .contains("token endpoint (issuer: https://mcp.example.com"),
        "{}",
        stack.summary()
    );
    let app = app(stack);
    let token = mint(&app).await;
    let (status, body) = send(
        &app,
        Request::get("/api").header("authorization", format!("Bearer {token}")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "api");

    let (status, prm) = send(
        &app,
        Request::get("/.well-known/oauth-protected-resource/mcp"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prm["authorization_servers"][0], "https://mcp.example.com");
    let (status, asm) = send(
        &app,
        Request::get("/.well-known/oauth-authorization-server"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(asm["token_endpoint"], "https://mcp.example.com/oauth/token");

    // A token for another audience, signed with the same secret, is refused: the stack's
    // verifier requires the resource once the endpoint is on.
    let other = mcp_security::auth::JwtVerifier::builder()
        .secret(mcp_security::core::config::Secret::new(SECRET))
        .build()
        .unwrap();
    let mut req =
        mcp_security::auth::jwt::TokenRequest::new("env", std::time::Duration::from_secs(60));
    req.audience = vec!["https://other.example.com/mcp".to_owned()];
    let foreign = other.sign(&req, std::time::SystemTime::now()).unwrap();
    let (status, body) = send(
        &app,
        Request::get("/api").header("authorization", format!("Bearer {foreign}")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn ed25519_tokens_are_verified_with_the_endpoints_own_key() {
    let dir = std::env::temp_dir().join(format!("mcp-token-stack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key: PathBuf = dir.join("token-key.pem");
    std::fs::write(&key, ED25519_PEM).unwrap();
    let env = env(&[("MCP_TOKEN_SIGNING_KEY_FILE", key.to_str().unwrap())]);
    let stack = stack(&env).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stack.token_endpoint().algorithm(), Some("EdDSA"));
    let app = app(stack);

    let token = mint(&app).await;
    let (status, body) = send(
        &app,
        Request::get("/api").header("authorization", format!("Bearer {token}")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, jwks) = send(&app, Request::get("/.well-known/jwks.json"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    // A tampered signature is refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = send(
        &app,
        Request::get("/api").header("authorization", format!("Bearer {forged}")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn config_error(env: &Env) -> (String, String) {
    match stack(env) {
        Err(SecurityError::Config(e)) => (e.setting().to_owned(), e.to_string()),
        Err(other) => panic!("expected a setting error, got {other}"),
        Ok(_) => panic!("the stack was built"),
    }
}

#[tokio::test]
async fn settings_that_would_refuse_the_endpoints_tokens_are_named() {
    // No API key to exchange.
    let no_keys = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_JWT_SECRET", SECRET),
            ("MCP_RESOURCE_URL", RESOURCE),
            ("MCP_TOKEN_ENDPOINT", "true"),
        ],
    );
    let (setting, message) = config_error(&no_keys);
    assert_eq!(setting, "MCP_TOKEN_ENDPOINT");
    assert!(message.contains("MCP_API_KEYS_FILE"), "{message}");

    // No resource URL: the tokens would have no audience.
    let no_resource = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_API_KEY", KEY),
            ("MCP_JWT_SECRET", SECRET),
            ("MCP_TOKEN_ENDPOINT", "true"),
        ],
    );
    assert_eq!(config_error(&no_resource).0, "MCP_RESOURCE_URL");

    // No signing key at all.
    let no_signer = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_API_KEY", KEY),
            ("MCP_RESOURCE_URL", RESOURCE),
            ("MCP_TOKEN_ENDPOINT", "true"),
        ],
    );
    let (setting, message) = config_error(&no_signer);
    assert_eq!(setting, "MCP_JWT_SECRET");
    assert!(message.contains("MCP_TOKEN_SIGNING_KEY_FILE"), "{message}");

    // An audience list without the resource.
    let (setting, message) = config_error(&env(&[(
        "MCP_JWT_AUDIENCE",
        "https://other.example.com/mcp",
    )]));
    assert_eq!(setting, "MCP_JWT_AUDIENCE");
    assert!(message.contains(RESOURCE), "{message}");

    // A required issuer other than the endpoint's.
    let (setting, message) = config_error(&env(&[("MCP_JWT_ISSUER", "https://id.example.com")]));
    assert_eq!(setting, "MCP_TOKEN_ISSUER");
    assert!(message.contains("https://id.example.com"), "{message}");
    // Compared exactly, as the verifier compares `iss`: a trailing slash is another issuer.
    let (setting, _) = config_error(&env(&[("MCP_JWT_ISSUER", "https://mcp.example.com/")]));
    assert_eq!(setting, "MCP_TOKEN_ISSUER");
    // Bearer tokens from the endpoint under DPOP=required would all be refused.
    let (setting, message) = config_error(&env(&[("MCP_DPOP", "required")]));
    assert_eq!(setting, "MCP_TOKEN_ENDPOINT");
    assert!(message.contains("MCP_DPOP=allowed"), "{message}");
    // … which the same value in TOKEN_ISSUER fixes.
    let fixed = env(&[
        ("MCP_JWT_ISSUER", "https://id.example.com"),
        ("MCP_TOKEN_ISSUER", "https://id.example.com"),
    ]);
    assert!(stack(&fixed).is_ok());

    // An unreadable signing key file names its variable.
    let (setting, _) = config_error(&env(&[(
        "MCP_TOKEN_SIGNING_KEY_FILE",
        "/nonexistent/token-key.pem",
    )]));
    assert_eq!(setting, "MCP_TOKEN_SIGNING_KEY_FILE");
}

#[tokio::test]
async fn the_production_checks_refuse_a_long_ttl_and_a_plaintext_endpoint() {
    let long = env(&[("MCP_ENV", "production"), ("MCP_TOKEN_TTL", "2h")]);
    let config = SecurityConfig::builder_from_env(&long)
        .unwrap()
        .build()
        .unwrap();
    let report = config.check(&runtime());
    assert!(
        report
            .findings()
            .iter()
            .any(|f| f.id() == "MCP-TOKEN-002" && f.setting() == Some("MCP_TOKEN_TTL")),
        "{report:?}"
    );
    match config.layer_with(&runtime()) {
        Err(SecurityError::Refused(report)) => {
            assert!(
                report.refusal().contains("MCP-TOKEN-002"),
                "{}",
                report.refusal()
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let open = env(&[
        ("MCP_ENV", "production"),
        ("MCP_BIND", "0.0.0.0:8080"),
        ("MCP_RESOURCE_URL", "http://mcp.example.com/mcp"),
    ]);
    let config = SecurityConfig::builder_from_env(&open)
        .unwrap()
        .build()
        .unwrap();
    let ids: Vec<&str> = config
        .check(&runtime())
        .findings()
        .iter()
        .map(|f| f.id())
        .filter(|id| id.starts_with("MCP-TOKEN"))
        .collect();
    assert_eq!(ids, ["MCP-TOKEN-001"]);

    // Environment::Development keeps it a warning.
    let config = SecurityConfig::builder_from_env(&open)
        .unwrap()
        .environment(Environment::Development)
        .build()
        .unwrap();
    let finding = config
        .check(&runtime())
        .findings()
        .iter()
        .find(|f| f.id() == "MCP-TOKEN-001")
        .cloned()
        .unwrap();
    assert_eq!(
        finding.severity(),
        mcp_security::prodcheck::Severity::Warning
    );
}
