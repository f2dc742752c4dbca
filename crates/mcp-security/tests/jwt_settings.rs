//! The JWT settings for real identity providers through the stack (`MCP_JWT_SCOPE_CLAIMS`,
//! `MCP_JWT_MAX_LIFETIME`, `MCP_JWT_CACHE_*`): a Keycloak-shaped token's realm roles become
//! scopes that the policy checks, an over-long token is refused, and bad values are named.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::auth::JwtVerifier;
use mcp_security::core::config::{Env, Secret};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityError, SecurityLayer};
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "jwt-7Hq2LmN9pX4vR8sT1wY6zB3cD5fG0jK2mP4rS7uV9xA";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const POLICY: &str = "[[auth.path_scopes]]\nprefix = \"/api\"\nscopes = [\"notes:read\"]\n";

fn stack(extra: &[(&str, &str)]) -> Result<SecurityLayer, SecurityError> {
    // One file per stack: the tests run in parallel, and a file rewritten while another test
    // reads it would be read empty (no policy at all).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mcp-jwt-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join(format!("policy-{n}.toml"));
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.to_str().unwrap().to_owned();
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_JWT_SECRET", SECRET),
        ("MCP_JWT_AUDIENCE", RESOURCE),
        ("MCP_ALLOWED_HOSTS", "mcp.example.com"),
        ("MCP_CONFIG_FILE", policy.as_str()),
    ];
    pairs.extend_from_slice(extra);
    SecurityConfig::builder_from_env(&Env::from_pairs("MCP", pairs))?
        .build()?
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
}

fn token(claims: Value) -> String {
    JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .build()
        .unwrap()
        .sign_claims(&claims)
        .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn get_api(stack: SecurityLayer, token: &str) -> (StatusCode, Value) {
    let app = Router::new()
        .route("/api", get(|| async { "api" }))
        .layer(stack);
    let req = Request::get("/api")
        .header("host", "mcp.example.com")
        .header("authorization", format!("Bearer {token}"))
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

#[tokio::test]
async fn keycloak_realm_roles_are_scopes_when_configured() {
    let n = now();
    let keycloak = token(json!({
        "sub": "agent", "aud": RESOURCE, "iat": n, "exp": n + 300,
        "scope": "openid profile",
        "realm_access": {"roles": ["notes:read", "offline_access"]}
    }));
    // By default realm roles are not scopes: the path's scope is missing.
    let (status, body) = get_api(stack(&[]).unwrap(), &keycloak).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // With the pointer configured they are.
    let configured = stack(&[("MCP_JWT_SCOPE_CLAIMS", "scope,/realm_access/roles")]).unwrap();
    let (status, body) = get_api(configured, &keycloak).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused() {
    let n = now();
    let long = token(json!({
        "sub": "agent", "aud": RESOURCE, "iat": n, "exp": n + 2 * 3600, "scope": "notes:read"
    }));
    let (status, body) = get_api(stack(&[("MCP_JWT_MAX_LIFETIME", "1h")]).unwrap(), &long).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = get_api(stack(&[("MCP_JWT_MAX_LIFETIME", "off")]).unwrap(), &long).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The cache, on or off, changes nothing about the verdicts.
    for size in ["0", "10"] {
        let layer = stack(&[("MCP_JWT_CACHE_SIZE", size), ("MCP_JWT_MAX_LIFETIME", "1h")]).unwrap();
        for _ in 0..2 {
            let (status, _) = get_api(layer.clone(), &long).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}

#[test]
fn bad_values_name_the_variable() {
    for (var, value) in [
        ("MCP_JWT_CACHE_SIZE", "many"),
        ("MCP_JWT_CACHE_TTL", "soon"),
        ("MCP_JWT_MAX_LIFETIME", "forever"),
    ] {
        let err = SecurityConfig::builder_from_env(&Env::from_pairs("MCP", [(var, value)]))
            .and_then(|b| b.build())
            .unwrap_err();
        assert_eq!(err.setting(), var, "{err}");
    }
}
