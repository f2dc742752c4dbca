//! DPoP (RFC 9449) in the stack from the environment (`MCP_DPOP`, `MCP_DPOP_NONCE`): the mode
//! reaches the auth layer, the protected-resource metadata advertises it, a key-bound token sent
//! as a bearer token is refused, CORS lets browsers send proofs and read nonces, and bad values
//! are named. Proof verification itself is tested over sockets in mcp-auth.

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

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const SECRET: &str = "jwt-7Hq2LmN9pX4vR8sT1wY6zB3cD5fG0jK2mP4rS7uV9xA";
const RESOURCE: &str = "https://mcp.example.com/mcp";

fn stack(extra: &[(&str, &str)]) -> Result<SecurityLayer, SecurityError> {
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_API_KEY", KEY),
        ("MCP_JWT_SECRET", SECRET),
        ("MCP_JWT_AUDIENCE", RESOURCE),
        ("MCP_RESOURCE_URL", RESOURCE),
        ("MCP_ALLOWED_HOSTS", "mcp.example.com"),
        ("MCP_CORS_ORIGINS", "https://app.example.com"),
    ];
    pairs.extend_from_slice(extra);
    SecurityConfig::builder_from_env(&Env::from_pairs("MCP", pairs))?
        .build()?
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
}

async fn send(
    stack: SecurityLayer,
    req: http::request::Builder,
) -> (StatusCode, http::HeaderMap, Value) {
    let app = Router::new()
        .route("/api", get(|| async { "api" }))
        .layer(stack);
    let req = req
        .header("host", "mcp.example.com")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, json)
}

/// An HS256 token bound to a key thumbprint (`cnf.jkt`).
fn bound_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .build()
        .unwrap()
        .sign_claims(&json!({
            "sub": "agent", "aud": RESOURCE, "iat": now, "exp": now + 300,
            "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
        }))
        .unwrap()
}

#[tokio::test]
async fn required_mode_reaches_the_layer_and_the_metadata() {
    let stack = stack(&[("MCP_DPOP", "required"), ("MCP_DPOP_NONCE", "true")]).unwrap();
    assert!(
        stack.summary().contains("dpop: required"),
        "{}",
        stack.summary()
    );
    let (status, _, prm) = send(
        stack,
        Request::get("/.well-known/oauth-protected-resource/mcp"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prm["dpop_bound_access_tokens_required"], true);
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

#[tokio::test]
async fn a_bound_token_as_bearer_is_refused_with_a_dpop_challenge() {
    let stack = stack(&[("MCP_DPOP", "allowed")]).unwrap();
    let (status, headers, body) = send(
        stack.clone(),
        Request::get("/api").header("authorization", format!("Bearer {}", bound_token())),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let challenges: Vec<&str> = headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("DPoP ") && c.contains(r#"algs="ES256 EdDSA RS256 PS256""#)),
        "{challenges:?}"
    );
    // The API key still works.
    let (status, _, body) = send(
        stack,
        Request::get("/api").header("authorization", format!("Bearer {KEY}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn browsers_may_send_proofs_and_read_nonces() {
    let layer = stack(&[("MCP_DPOP", "allowed")]).unwrap();
    let (status, headers, _) = send(
        layer,
        Request::options("/mcp")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, dpop"),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("dpop"), "{allowed}");
    let (_, headers, _) = send(
        stack(&[("MCP_DPOP", "allowed")]).unwrap(),
        Request::get("/api")
            .header("origin", "https://app.example.com")
            .header("authorization", format!("Bearer {KEY}")),
    )
    .await;
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("dpop-nonce"), "{exposed}");
}

#[test]
fn bad_values_name_the_variable() {
    for (var, value) in [("MCP_DPOP", "maybe"), ("MCP_DPOP_NONCE", "sometimes")] {
        let mut extra = vec![(var, value)];
        if var != "MCP_DPOP" {
            extra.push(("MCP_DPOP", "allowed"));
        }
        match stack(&extra) {
            Err(SecurityError::Config(e)) => assert_eq!(e.setting(), var, "{e}"),
            Err(other) => panic!("{var}: {other}"),
            Ok(_) => panic!("{var}={value} was accepted"),
        }
    }
}
