//! Network allow and deny lists through the whole stack behind an axum `Router` served with
//! `ConnectInfo`: the variables and the TOML `[[network]]` rules, forwarding headers believed
//! only from a trusted proxy, refusals before the rate limiter and authentication in the
//! caller's format, and the audit record of each refusal.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::audit::{AuditLayer, Decision, MemorySink};
use mcp_security::core::client_addr::ClientAddrResolver;
use mcp_security::core::config::{Env, Environment};
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use serde_json::json;
use tower::ServiceExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const PROXY: &str = "172.16.0.1";

/// `[[network]]` rules: `/metrics` only from the cluster, `/health` open to everyone.
const TOML: &str = r#"
[auth]
exempt_paths = ["/health", "/metrics"]

[[network]]
path = "/metrics"
allow = ["10.0.0.0/8"]

[[network]]
path = "/health"
"#;

fn env(extra: &[(&str, &str)]) -> Env {
    let mut vars = vec![
        ("MCP_ENV", "development"),
        ("MCP_BIND", "127.0.0.1:8080"),
        ("MCP_API_KEY", KEY),
        ("MCP_CORS_ORIGINS", "https://app.example.com"),
        ("MCP_TRUSTED_PROXIES", PROXY),
        ("MCP_ALLOW_NETWORKS", "10.0.0.0/8, 192.0.2.0/24, fd00::/8"),
        ("MCP_DENY_NETWORKS", "192.0.2.66"),
        ("MCP_RATE_LIMIT_REQUESTS", "2"),
        ("MCP_AUDIT_ENABLED", "false"),
    ];
    vars.extend_from_slice(extra);
    Env::from_pairs("MCP", vars)
}

fn stack(extra: &[(&str, &str)]) -> SecurityLayer {
    SecurityConfig::builder_from_env(&env(extra))
        .unwrap()
        .config_toml(TOML)
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

/// The app behind the stack, and an audit layer (memory sink) outside it, as the stack would
/// put its own.
fn app(stack: SecurityLayer) -> (Router, AuditLayer, Arc<MemorySink>) {
    let memory = Arc::new(MemorySink::new());
    let audit = AuditLayer::builder()
        .sink(Arc::clone(&memory))
        .client_addr_resolver(
            ClientAddrResolver::builder()
                .trusted_proxies([PROXY])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(|| async { "metrics" }))
        .route("/api", get(|| async { "api" }))
        .route("/mcp", post(|| async { "{}" }))
        .layer(stack)
        .layer(audit.clone());
    (router, audit, memory)
}

fn request(method: &str, path: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .extension(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<(String, String)>, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The headers of a refusal whose body is `len` bytes: its content type, the API preset's
/// security headers and the CORS policy's `Vary` / exposed headers, nothing from the rate
/// limiter or authentication (they never saw the request).
fn refusal_headers(len: usize) -> Vec<(String, String)> {
    let len = len.to_string();
    [
        (
            "access-control-expose-headers",
            "www-authenticate,mcp-session-id,mcp-protocol-version,dpop-nonce",
        ),
        ("cache-control", "no-store"),
        ("content-length", len.as_str()),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("content-type", "application/json"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "geolocation=(), microphone=(), camera=()",
        ),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("vary", "origin"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("x-xss-protection", "0"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

const PLAIN_403: &str = r#"{"error":"network_not_allowed","message":"Network not allowed"}"#;

#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_change_nothing() {
    let (app, audit, memory) = app(stack(&[]));
    let xff = [("x-forwarded-for", "10.1.2.3")];

    // An outsider claiming a cluster address: refused, with the plain JSON body.
    let (status, headers, body) =
        send(&app, request("GET", "/metrics", "198.51.100.4:40000", &xff)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers, refusal_headers(PLAIN_403.len()));
    assert_eq!(body, PLAIN_403);
    // Even from inside the server-wide allow list: /metrics has its own, narrower rule.
    let (status, _, body) = send(&app, request("GET", "/metrics", "192.0.2.1:40000", &xff)).await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, PLAIN_403));

    // The trusted proxy's header is believed.
    let (status, _, body) = send(&app, request("GET", "/metrics", "172.16.0.1:40000", &xff)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "metrics"));
    // And through it, a client outside the rule is refused: the proxy is not the client.
    let outside = [("x-forwarded-for", "198.51.100.4")];
    let (status, _, body) = send(
        &app,
        request("GET", "/metrics", "172.16.0.1:40000", &outside),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, PLAIN_403));
    // An IPv4-mapped IPv6 peer is its IPv4 address.
    let (status, _, body) =
        send(&app, request("GET", "/metrics", "[::ffff:10.0.0.5]:1", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "metrics"));

    // The refusals are in the audit trail, with what the client never sees.
    audit.close().await.unwrap();
    let records = memory.requests();
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.decision() == Decision::Rejected)
        .map(|r| {
            (
                r.client_ip().map(|ip| ip.to_string()),
                r.status().map(|s| s.as_u16()),
                r.reason(),
                r.detail().map(|d| d.into_owned()),
            )
        })
        .collect();
    let detail = |ip: &str| {
        (
            Some(ip.to_owned()),
            Some(403),
            Some("network_not_allowed"),
            Some(format!(
                "client {ip} is in no allowed network (the path rule /metrics)"
            )),
        )
    };
    assert_eq!(
        refused,
        [
            detail("198.51.100.4"),
            detail("192.0.2.1"),
            detail("198.51.100.4")
        ]
    );
    assert_eq!(records.len(), 5);
}

#[tokio::test]
async fn refused_before_the_rate_limiter_and_authentication() {
    let (app, _, _) = app(stack(&[]));
    // The MCP endpoint: a JSON-RPC error with id null, no credential needed to be refused, no
    // rate-limit headers (the limiter never counted it).
    let mcp = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    for _ in 0..3 {
        let (status, headers, body) =
            send(&app, request("POST", "/mcp", "198.51.100.4:40000", &mcp)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers, refusal_headers(body.len()));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
                "message": "Network not allowed",
                "data": {"status": 403, "code": "network_not_allowed"}}})
        );
    }
    // Deny wins over the allow list's 192.0.2.0/24.
    let (status, headers, body) = send(&app, request("GET", "/api", "192.0.2.66:1", &[])).await;
    assert_eq!(
        (status, headers, body.as_str()),
        (
            StatusCode::FORBIDDEN,
            refusal_headers(PLAIN_403.len()),
            PLAIN_403
        )
    );
    // An allowed client still meets authentication and the rate limiter afterwards.
    let (status, _, _) = send(&app, request("GET", "/api", "192.0.2.1:1", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {KEY}");
    let (status, headers, body) = send(
        &app,
        request("GET", "/api", "[fd00::7]:1", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api"));
    assert!(
        headers.iter().any(|(k, _)| k == "ratelimit-policy"),
        "{headers:?}"
    );
    // /health has a rule with no lists: open to everyone.
    let (status, _, body) = send(&app, request("GET", "/health", "198.51.100.4:1", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[test]
fn settings_from_code_env_and_toml_with_named_errors() {
    let layer = stack(&[]);
    let network = layer.network_policy();
    assert!(network.is_enabled());
    assert_eq!(
        network
            .allow_networks()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.0.0.0/8", "192.0.2.0/24", "fd00::/8"]
    );
    assert_eq!(network.path_prefixes(), ["/metrics", "/health"]);
    assert!(
        layer.summary().contains(
            "network lists: allow [10.0.0.0/8, 192.0.2.0/24, fd00::/8] deny [192.0.2.66/32]; \
             /metrics: allow [10.0.0.0/8]; /health: open, rate limit per client"
        ),
        "{}",
        layer.summary()
    );
    // From code.
    let config = SecurityConfig::builder()
        .environment(Environment::Development)
        .api_key(mcp_security::core::config::Secret::new(KEY))
        .allow_networks(["10.0.0.0/8".parse().unwrap()])
        .deny_networks(["10.9.0.0/16".parse().unwrap()])
        .network_rule("/admin", ["10.1.0.0/16".parse().unwrap()], [])
        .build()
        .unwrap();
    let built = config
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap();
    assert_eq!(built.network_policy().path_prefixes(), ["/admin"]);
    assert_eq!(
        built.network_policy().deny_networks()[0].to_string(),
        "10.9.0.0/16"
    );
    // Without any list the layer passes everything.
    let open = SecurityConfig::builder()
        .environment(Environment::Development)
        .api_key(mcp_security::core::config::Secret::new(KEY))
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap();
    assert!(!open.network_policy().is_enabled());

    // Errors name the variable or the TOML key.
    let err = |vars: &[(&str, &str)], toml: &str| {
        SecurityConfig::builder_from_env(&env(vars))
            .and_then(|b| b.config_toml(toml).build())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&[("MCP_ALLOW_NETWORKS", "10.0.0.1/8")], ""),
        "MCP_ALLOW_NETWORKS: has host bits set; write the network (10.0.0.0/8) or the single \
         address (10.0.0.1) (got \"10.0.0.1/8\")"
    );
    assert_eq!(
        err(&[("MCP_DENY_NETWORKS", "10.0.0.0/8,nope")], ""),
        "MCP_DENY_NETWORKS: expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address \
         (got \"nope\")"
    );
    for (toml, message) in [
        (
            "[[network]]\npath = \"/m\"\nallow = [\"10.0.0.0/33\"]\n",
            "network[0].allow: expected a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address \
             (got \"10.0.0.0/33\")",
        ),
        (
            "[[network]]\npath = \"/m\"\n[[network]]\npath = \"/x\"\ndeny = [\"fd00::1/8\"]\n",
            "network[1].deny: has host bits set; write the network (fd00::/8) or the single \
             address (fd00::1) (got \"fd00::1/8\")",
        ),
        (
            "[[network]]\nallow = [\"10.0.0.0/8\"]\n",
            "network[0].path: is required",
        ),
        (
            "[[network]]\npath = \"metrics/\"\n",
            "network[0].path: a path prefix must start with '/' and not end with '/' (got \
             \"metrics/\")",
        ),
        (
            "[[network]]\npath = \"/m\"\n[[network]]\npath = \"/m\"\n",
            "network[1].path: another rule has the same path prefix; merge their lists (got \
             \"/m\")",
        ),
        (
            "[network]\npath = \"/m\"\n",
            "network: must be an array of tables ([[network]])",
        ),
    ] {
        assert_eq!(err(&[], toml), message, "{toml}");
    }
    let unknown = err(&[], "[[network]]\npath = \"/m\"\nalow = []\n");
    assert!(unknown.starts_with("network[0].alow: "), "{unknown}");
    // A host-bits entry given in code is refused when the stack is built, naming the variable.
    let e = SecurityConfig::builder()
        .environment(Environment::Development)
        .api_key(mcp_security::core::config::Secret::new(KEY))
        .allow_networks(["10.0.0.1/8".parse().unwrap()])
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("MCP_ALLOW_NETWORKS: has host bits set"),
        "{e}"
    );
}
