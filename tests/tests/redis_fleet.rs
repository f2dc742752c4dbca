//! Two servers, one Redis: a fleet-wide limit of 5 requests an hour per client admits exactly 5
//! of 12 requests sent alternately to two servers — through a TLS Redis with an ACL user (the
//! password in a file, the server's certificate checked against a CA file), and through a
//! three-node Redis Cluster over TLS. The Redis servers are real (`redis-server`, certificates
//! made by `openssl` at test time); so are the HTTP servers' sockets and the client.
//!
//! Each server is built the way `examples/axum_mcp_server.rs` builds its stack — from
//! `MCP_*` variables through `SecurityConfig` — and served by `axum::serve` on its own
//! 127.0.0.1 port, in this process. Two processes would add nothing Redis can see (each server
//! has its own store and connections; the shared state is in Redis alone), while a binary built
//! by a test would need a nested cargo build that `cargo test -p tests` does not do.
#![cfg(unix)]

#[allow(unused_imports)]
#[path = "../../crates/mcp-ratelimit/tests/redis_support/mod.rs"]
mod redis_support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_security::SecurityConfig;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::RuntimeEnvironment;
use redis_support::{Options, Pki, RedisCluster, RedisServer, TempDir};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const USER: &str = "mcp-fleet";
const PASSWORD: &str = "Pw-2c9e7b41-fleet";

/// One server of the fleet: its address and the task serving it (aborted on drop).
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A production server on a free 127.0.0.1 port whose stack is built from `redis_vars` plus an
/// API key and a per-client limit of 5 requests an hour.
async fn server(redis_vars: &[(&str, String)]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let mut vars: Vec<(String, String)> = [
        ("MCP_ENV", "production".to_owned()),
        ("MCP_BIND", addr.to_string()),
        ("MCP_API_KEY", KEY.to_owned()),
        ("MCP_RESOURCE_URL", format!("http://{addr}/mcp")),
        ("MCP_RATE_LIMIT_REQUESTS", "5".to_owned()),
        ("MCP_RATE_LIMIT_WINDOW", "1h".to_owned()),
        // Generous: the test counts statuses, it never measures time.
        ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "3s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(redis_vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let config = SecurityConfig::builder_from_env(&Env::from_pairs("MCP", vars))
        .and_then(|b| b.build())
        .expect("configuration");
    let stack = config
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .expect("the production checks pass");
    // The password file is the owner's alone: no finding on it.
    assert!(
        !stack.report().ids().contains(&"MCP-FILE-001"),
        "{}",
        stack.report()
    );
    let app = Router::new()
        .route("/api", get(|| async { "api" }))
        .layer(stack);
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Server { addr, task }
}

/// Sends 12 authenticated requests alternately to `a` and `b`; checks every answer (200 `api`,
/// or 429 with `Retry-After`, the limit headers and the JSON body) and returns how many were
/// admitted.
async fn twelve_over_two(a: &Server, b: &Server) -> usize {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let mut admitted = 0;
    for i in 0..12 {
        let server = if i % 2 == 0 { a } else { b };
        let req = Request::get(format!("http://{}/api", server.addr))
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::empty())
            .expect("request");
        let res = client.request(req).await.expect("an answer");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        match status {
            StatusCode::OK => {
                assert_eq!(body, "api", "request {i}");
                admitted += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(headers["x-ratelimit-limit"], "5", "request {i}");
                assert_eq!(headers["x-ratelimit-remaining"], "0", "request {i}");
                let retry: u64 = headers["retry-after"]
                    .to_str()
                    .expect("ASCII")
                    .parse()
                    .expect("seconds");
                assert!(retry >= 1, "request {i}: Retry-After {retry}");
                let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
                assert_eq!(json["error"], "rate_limited", "request {i}: {body}");
            }
            other => panic!("request {i} to {}: {other} {body}", server.addr),
        }
    }
    admitted
}

/// The rate-limit buckets among `keys`: `mcp:rl:{<16 hex digits>}<16 hex digits>` (other keys,
/// such as a shared ban list's, are not counted).
fn buckets<'a>(keys: impl Iterator<Item = &'a str>) -> usize {
    let keys: Vec<&str> = keys.collect();
    keys.iter()
        .filter(|k| {
            k.strip_prefix("mcp:rl:{")
                .and_then(|rest| rest.split_once('}'))
                .is_some_and(|(tag, rest)| {
                    tag.len() == 16
                        && rest.len() == 16
                        && tag
                            .bytes()
                            .chain(rest.bytes())
                            .all(|b| b.is_ascii_hexdigit())
                })
        })
        .count()
}

/// A secret file readable by its owner only, as a deployment mounts it.
fn secret_file(dir: &TempDir, name: &str, content: &str) -> String {
    let path = dir.path(name);
    std::fs::write(&path, content).expect("write the secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_admit_exactly_5_of_12_through_a_tls_redis_with_an_acl_user() {
    let pki = Pki::new();
    let redis = RedisServer::start_with(Options {
        tls: Some(pki.server("server", false)),
        acl_user: Some((USER.to_owned(), PASSWORD.to_owned())),
        ..Options::default()
    });
    let dir = TempDir::new("fleet-secrets");
    let vars = [
        ("MCP_RATE_LIMIT_REDIS_URL", redis.tls_url()),
        ("MCP_RATE_LIMIT_REDIS_USERNAME", USER.to_owned()),
        (
            "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE",
            secret_file(&dir, "redis-password", PASSWORD),
        ),
        (
            "MCP_RATE_LIMIT_REDIS_CA_FILE",
            pki.path("ca.crt").display().to_string(),
        ),
    ];
    let a = server(&vars).await;
    let b = server(&vars).await;
    assert_eq!(twelve_over_two(&a, &b).await, 5);
    // The counts are in this Redis: one bucket, the per-client one, shared by both servers.
    assert_eq!(buckets(redis.cli(&["--scan"]).lines()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_admit_exactly_5_of_12_through_a_three_node_cluster_over_tls() {
    let pki = Pki::new();
    let cluster = RedisCluster::start_with(Some(pki.server("server", false)));
    let vars = [
        ("MCP_RATE_LIMIT_REDIS_URL", cluster.tls_url()),
        ("MCP_RATE_LIMIT_REDIS_CLUSTER", "true".to_owned()),
        (
            "MCP_RATE_LIMIT_REDIS_CA_FILE",
            pki.path("ca.crt").display().to_string(),
        ),
    ];
    let a = server(&vars).await;
    let b = server(&vars).await;
    assert_eq!(twelve_over_two(&a, &b).await, 5);
    let keys = cluster.keys_per_node();
    assert_eq!(buckets(keys.iter().flatten().map(String::as_str)), 1);
}
