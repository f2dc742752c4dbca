//! The Redis rate-limit store warmed up when the stack is built, against a real `redis-server`
//! with an ACL user (started by each test): a wrong password is one `ERROR` line at start-up
//! naming `MCP_RATE_LIMIT_REDIS_PASSWORD` and the URL with the password masked, the stack is
//! built all the same and requests get the failure policy's answer; the right password makes
//! the start-up line an `INFO` one and decisions are shared. A server certificate from another
//! CA names `…_REDIS_CA_FILE` (with the deployment's own prefix); without a Tokio runtime the
//! stack is built and only a `DEBUG` line says the first request connects.
#![cfg(feature = "redis")]

#[allow(unused_imports)]
#[path = "../../mcp-ratelimit/tests/redis_support/mod.rs"]
mod redis_support;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use redis_support::{Options, RedisServer, wait_for};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const USER: &str = "mcp-ratelimit";
const PASSWORD: &str = "Pw-7f3c1a9e-correct";
const WRONG: &str = "Pw-0000-wrong-one";

// ---------------------------------------------------------------------------------------------
// Log capture: every event of target `mcp_security`, as "LEVEL message field=value …".
// ---------------------------------------------------------------------------------------------

fn lines() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        Mutex::new(Vec::new())
    })
}

struct Capture;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!(" {value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(&format!(" {value}"));
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "mcp_security" {
            return;
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        lines()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.0);
    }
}

/// The first captured line containing every one of `parts`, waited for (bounded; the test
/// runtime has worker threads, so the warm-up runs while this thread sleeps).
fn line_with(parts: &[&str]) -> String {
    wait_for(
        &format!("a log line with {parts:?}"),
        Duration::from_secs(20),
        || {
            let lines = lines().lock().unwrap_or_else(PoisonError::into_inner);
            lines
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .cloned()
                .ok_or_else(|| format!("{lines:#?}"))
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The stack behind an axum Router, five requests an hour per client, limits in Redis.
// ---------------------------------------------------------------------------------------------

fn stack(redis: &RedisServer, password: &str, failure: &str) -> SecurityLayer {
    let url = redis.url();
    let port = redis.port.to_string();
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_API_KEY", KEY),
            ("MCP_RATE_LIMIT_REQUESTS", "5"),
            ("MCP_RATE_LIMIT_WINDOW", "1h"),
            ("MCP_RATE_LIMIT_REDIS_URL", url.as_str()),
            ("MCP_RATE_LIMIT_REDIS_USERNAME", USER),
            ("MCP_RATE_LIMIT_REDIS_PASSWORD", password),
            ("MCP_RATE_LIMIT_REDIS_FAILURE", failure),
            // Generous: the test asserts on statuses and log lines, never on time.
            ("MCP_RATE_LIMIT_REDIS_TIMEOUT", "3s"),
            ("MCP_RATE_LIMIT_REDIS_PREFIX", &format!("warm-up-{port}:")),
        ],
    );
    SecurityConfig::builder_from_env(&env)
        .and_then(|b| b.build())
        .expect("configuration")
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .expect("the stack is built whatever Redis says")
}

async fn get_api(app: &Router) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get("/api")
        .header("host", "127.0.0.1:8080")
        .header("authorization", format!("Bearer {KEY}"))
        .extension(ConnectInfo(
            "198.51.100.7:40000".parse::<SocketAddr>().unwrap(),
        ))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn app(stack: SecurityLayer) -> Router {
    Router::new()
        .route("/api", get(|| async { "api" }))
        .layer(stack)
}

fn acl_redis() -> RedisServer {
    RedisServer::start_with(Options {
        acl_user: Some((USER.to_owned(), PASSWORD.to_owned())),
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_start_up_error_naming_the_setting_and_the_policy_answers() {
    lines();
    let redis = acl_redis();
    let masked = format!("redis://{USER}:***@127.0.0.1:{}/", redis.port);
    let app = app(stack(&redis, WRONG, "closed"));

    // Logged by the warm-up, before any request was sent.
    let line = line_with(&["ERROR", &masked, "MCP_RATE_LIMIT_REDIS_PASSWORD"]);
    assert!(line.contains("refused the credentials"), "{line}");
    assert!(
        line.contains("setting=MCP_RATE_LIMIT_REDIS_PASSWORD"),
        "{line}"
    );
    assert!(
        line.contains("MCP_RATE_LIMIT_REDIS_FAILURE=closed"),
        "{line}"
    );
    assert!(line.contains("503 and Retry-After: 1"), "{line}");
    assert!(
        !line.contains(WRONG),
        "the password is never logged: {line}"
    );
    assert!(
        !lines()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| l.contains(WRONG)),
        "no line shows the password"
    );

    // Fail closed: 503 with Retry-After: 1, in JSON, for every request the limits apply to.
    for _ in 0..2 {
        let (status, headers, body) = get_api(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "rate_limit_unavailable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_with_fail_open_limits_locally_and_says_so() {
    lines();
    let redis = acl_redis();
    let masked = format!("redis://{USER}:***@127.0.0.1:{}/", redis.port);
    let app = app(stack(&redis, WRONG, "open"));
    let line = line_with(&["ERROR", &masked, "MCP_RATE_LIMIT_REDIS_PASSWORD"]);
    assert!(line.contains("MCP_RATE_LIMIT_REDIS_FAILURE=open"), "{line}");
    assert!(line.contains("MCP_RATE_LIMIT_REPLICAS"), "{line}");

    // The local fallback: 5 per hour in this replica (one replica), then 429.
    for i in 0..5 {
        let (status, _, body) = get_api(&app).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        assert_eq!(body, "api");
    }
    let (status, headers, body) = get_api(&app).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_is_an_info_line_and_limits_are_shared() {
    lines();
    let redis = acl_redis();
    let masked = format!("redis://{USER}:***@127.0.0.1:{}/", redis.port);
    let first = app(stack(&redis, PASSWORD, "closed"));
    let line = line_with(&["INFO", &masked, "Redis answered at start-up"]);
    assert!(!line.contains(PASSWORD), "{line}");
    // The script was loaded before any request.
    let memory = redis.cli(&["info", "memory"]);
    let scripts: u64 = memory
        .lines()
        .find_map(|l| l.trim().strip_prefix("number_of_cached_scripts:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(scripts >= 1, "{memory}");

    // A second stack (another replica) on the same Redis: 5 of 12 admitted between them.
    let second = app(stack(&redis, PASSWORD, "closed"));
    let mut admitted = 0;
    for i in 0..12 {
        let (status, headers, body) = get_api(if i % 2 == 0 { &first } else { &second }).await;
        match status {
            StatusCode::OK => {
                assert_eq!(body, "api");
                admitted += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(headers["x-ratelimit-limit"], "5");
                assert_eq!(headers["x-ratelimit-remaining"], "0");
                assert!(headers.contains_key("retry-after"));
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["error"], "rate_limited");
            }
            other => panic!("request {i}: {other} {body}"),
        }
    }
    assert_eq!(admitted, 5);
    assert!(
        !lines()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| l.contains(&masked) && l.starts_with("ERROR")),
        "no error for the right password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_names_the_ca_file_and_fails_closed() {
    lines();
    let pki = redis_support::Pki::new();
    let redis = RedisServer::start_with(Options {
        tls: Some(pki.server("other-server", false)),
        ..Options::default()
    });
    let url = redis.tls_url();
    let ca = pki.path("ca.crt").display().to_string();
    let env = Env::from_pairs(
        "IQ",
        [
            ("IQ_ENV", "development"),
            ("IQ_API_KEY", KEY),
            ("IQ_RATE_LIMIT_REQUESTS", "5"),
            ("IQ_RATE_LIMIT_REDIS_URL", url.as_str()),
            ("IQ_RATE_LIMIT_REDIS_CA_FILE", ca.as_str()),
            ("IQ_RATE_LIMIT_REDIS_TIMEOUT", "3s"),
        ],
    );
    let stack = SecurityConfig::builder_from_env(&env)
        .and_then(|b| b.build())
        .expect("configuration")
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .expect("the stack is built whatever Redis says");
    let app = app(stack);
    // The deployment's own prefix names the settings.
    let line = line_with(&["ERROR", &url, "setting=IQ_RATE_LIMIT_REDIS_CA_FILE"]);
    assert!(line.contains("TLS connection failed"), "{line}");
    assert!(
        line.contains("IQ_RATE_LIMIT_REDIS_CLIENT_CERT_FILE"),
        "{line}"
    );
    assert!(!line.contains("MCP_"), "{line}");
    let (status, headers, body) = get_api(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "rate_limit_unavailable");
}

#[test]
fn without_a_runtime_the_stack_is_built_and_the_first_request_connects() {
    lines();
    // Nothing listens on this port: were a connection attempted here, it would fail loudly.
    let port = redis_support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development"),
            ("MCP_API_KEY", KEY),
            ("MCP_RATE_LIMIT_REDIS_URL", url.as_str()),
        ],
    );
    let stack = SecurityConfig::builder_from_env(&env)
        .and_then(|b| b.build())
        .expect("configuration")
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)));
    assert!(stack.is_ok(), "built without a Tokio runtime");
    let line = line_with(&["DEBUG", &url, "no Tokio runtime"]);
    assert!(line.contains("connects at the first request"), "{line}");
}
