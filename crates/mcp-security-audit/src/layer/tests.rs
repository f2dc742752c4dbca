use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::clock::ManualClock;
use mcp_security_core::config::Env;
use mcp_security_core::facts::ResponseFacts;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::rejection::{BearerChallenge, BearerError, ResponseFormat};
use mcp_security_core::{GuardBody, Principal, PrincipalKind};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::detect::Rule;
use crate::file::FileSink;
use crate::mask::Fingerprinter;
use crate::record::{Decision, DetectorKind, McpSource};
use crate::sink::MemorySink;
use crate::test_support::{TempDir, key, lines, t0};
use crate::verify::{VerifyOptions, verify_files};

const API_KEY: &str = "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
const LIMITED_KEY: &str = "mcp-sk-bGltaXRlZGtleWxpbWl0ZWRrZXlsaW1pdGVka2V5";
const JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaS1ib3QiLCJleHAiOjF9.c2lnbmF0dXJlLWJ5dGVzLXNpZ25hdHVyZQ";
const QUERY_TOKEN: &str = "qt9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const COOKIE: &str = "sessionsecret0123456789abcdef";
const PATH_KEY: &str = "mcp-sk-cGF0aHNlY3JldHBhdGhzZWNyZXRwYXRo";
const REQUEST_ID_KEY: &str = "mcp-sk-cmVxdWVzdGlkc2VjcmV0";
const FP_KEY: &str = "fingerprint-key-shared-with-mcp-auth";
const AUTH_FP: &str = "0011223344556677";
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

type Res = Response<GuardBody<Full<Bytes>>>;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

fn peer(ip: &str) -> PeerAddr {
    PeerAddr(SocketAddr::new(ip.parse().unwrap(), 50_000))
}

/// Stands in for the inner layers (inspect, auth, rate limit) and the service: answers by the
/// `x-scenario` header the way those layers do, with their outcomes in the response extensions,
/// and takes 5 ms of the test clock.
fn stack(
    clock: Arc<ManualClock>,
) -> impl Service<Request<Full<Bytes>>, Response = Res, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let clock = clock.clone();
        async move {
            clock.advance(Duration::from_millis(5));
            let scenario = req
                .headers()
                .get("x-scenario")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("ok")
                .to_owned();
            let format = ResponseFormat::for_request(req.headers(), req.extensions());
            let res: Res = match scenario.as_str() {
                "ok" => {
                    let mut res = Response::new(GuardBody::inner(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))));
                    let principal = Principal::builder("ci-bot", PrincipalKind::ApiKey)
                        .scopes(["notes:read"])
                        .build();
                    res.extensions_mut()
                        .insert(AuthOutcome::Authenticated { principal });
                    res.extensions_mut().insert(RateLimitOutcome::Allowed {
                        policy: "ip".into(),
                        remaining: 99,
                        overflow: false,
                    });
                    res.extensions_mut().insert(parse_envelope(CALL).unwrap());
                    res
                }
                "401" => {
                    let mut res = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                        .message("The credential is invalid, expired or revoked")
                        .challenge(BearerChallenge::new().error(BearerError::InvalidToken))
                        .detail(format!("token {JWT} refused"))
                        .into_response(&format);
                    res.extensions_mut().insert(AuthOutcome::Rejected {
                        failure: AuthFailure::BadSignature,
                        principal: None,
                        fingerprint: Some(AUTH_FP.to_owned()),
                    });
                    res
                }
                "403" => {
                    let principal = Principal::builder("limited", PrincipalKind::ApiKey).build();
                    let mut res = Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
                        .challenge(BearerChallenge::new().error(BearerError::InsufficientScope))
                        .into_response(&format);
                    res.extensions_mut().insert(AuthOutcome::Rejected {
                        failure: AuthFailure::InsufficientScope,
                        principal: Some(principal),
                        fingerprint: None,
                    });
                    res
                }
                "401-dpop-nonce" => {
                    let mut res = Rejection::new(StatusCode::UNAUTHORIZED, "use_dpop_nonce")
                        .challenge(BearerChallenge::new())
                        .into_response(&format);
                    res.extensions_mut().insert(AuthOutcome::Rejected {
                        failure: AuthFailure::DpopNonceRequired,
                        principal: None,
                        fingerprint: Some(AUTH_FP.to_owned()),
                    });
                    res
                }
                "429" => {
                    let mut res = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                        .header(http::header::RETRY_AFTER, HeaderValue::from_static("7"))
                        .into_response(&format);
                    res.extensions_mut().insert(RateLimitOutcome::Limited {
                        policy: "ip".into(),
                        retry_after_secs: 7,
                        overflow: false,
                    });
                    res
                }
                "503" => {
                    let mut res =
                        Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "rate_limit_unavailable")
                            .header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
                            .into_response(&format);
                    res.extensions_mut().insert(RateLimitOutcome::Unavailable {
                        retry_after_secs: 1,
                    });
                    res
                }
                "429-degraded" => {
                    let mut res = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                        .header(http::header::RETRY_AFTER, HeaderValue::from_static("30"))
                        .into_response(&format);
                    res.extensions_mut().insert(RateLimitOutcome::Degraded {
                        policy: "caller".into(),
                        admitted: false,
                        remaining: 0,
                        retry_after_secs: 30,
                    });
                    res
                }
                "413" => Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                    .into_response(&format),
                other => panic!("unknown scenario {other}"),
            };
            Ok::<_, Infallible>(res)
        }
    })
}

fn base_builder(clock: &Arc<ManualClock>) -> AuditLayerBuilder {
    AuditLayer::builder()
        .clock(clock.clone())
        .monotonic_clock(clock.clone())
        .fingerprint_key(Secret::new(FP_KEY))
        .api_key_header("x-api-key")
}

/// The four acceptance requests, with a secret in every place one could hide.
fn requests() -> Vec<Request<Full<Bytes>>> {
    let ok = Request::post("/mcp")
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("user-agent", "test-agent/1.0")
        .header("x-request-id", "req-1")
        .header("content-type", "application/json")
        .header("content-length", CALL.len())
        .header("cookie", format!("session={COOKIE}"))
        .extension(peer("203.0.113.9"))
        .body(Full::new(Bytes::from_static(CALL)))
        .unwrap();
    let unauthorized = Request::post(format!("/mcp?page=2&api_key={QUERY_TOKEN}"))
        .header("authorization", format!("Bearer {JWT}"))
        .header("x-scenario", "401")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("user-agent", format!("agent ({JWT})"))
        .extension(peer("203.0.113.9"))
        .body(Full::new(Bytes::from_static(CALL)))
        .unwrap();
    let forbidden = Request::get("/api/notes")
        .header("x-api-key", LIMITED_KEY)
        .header("x-scenario", "403")
        .header("cookie", COOKIE)
        .extension(peer("198.51.100.7"))
        .body(Full::default())
        .unwrap();
    let limited = Request::get(format!("/mcp/{PATH_KEY}?access_token={JWT}"))
        .header("x-scenario", "429")
        .header("x-request-id", REQUEST_ID_KEY)
        .extension(peer("2001:db8::1"))
        .body(Full::default())
        .unwrap();
    vec![ok, unauthorized, forbidden, limited]
}

/// A `tracing` subscriber writing into a buffer, for the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

async fn run_all(layer: &AuditLayer, clock: &Arc<ManualClock>) -> Vec<StatusCode> {
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(stack(clock.clone()));
    let mut statuses = Vec::new();
    for req in requests() {
        statuses.push(svc.clone().oneshot(req).await.unwrap().status());
    }
    statuses
}

fn json_lines(path: &std::path::Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn redis_outages_are_recorded_with_their_policy_and_retry_after() {
    let dir = TempDir::new("redis-outage");
    let path = dir.join("audit.jsonl");
    let clock = clock();
    let layer = base_builder(&clock)
        .file_sink(
            FileSink::builder(&path, key())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(stack(clock.clone()));
    for scenario in ["503", "429-degraded"] {
        let req = Request::get("/mcp")
            .header("x-scenario", scenario)
            .extension(peer("203.0.113.9"))
            .body(Full::default())
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    layer.close().await.unwrap();
    let lines = json_lines(&path);
    let requests: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "request").collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["status_code"], 503);
    assert_eq!(requests[0]["rate_limit"], "unavailable");
    assert_eq!(requests[0]["rate_limit_policy"], "store_unavailable");
    assert_eq!(requests[0]["retry_after"], 1);
    assert_eq!(requests[0]["reason"], "rate_limit_unavailable");
    assert_eq!(requests[1]["status_code"], 429);
    assert_eq!(requests[1]["rate_limit"], "limited_degraded");
    assert_eq!(requests[1]["rate_limit_policy"], "caller");
    assert_eq!(requests[1]["retry_after"], 30);
}

#[tokio::test]
async fn allowed_401_403_429_records_have_every_field() {
    let dir = TempDir::new("fields");
    let path = dir.join("audit.jsonl");
    let clock = clock();
    let memory = MemorySink::new();
    let layer = base_builder(&clock)
        .file_sink(
            FileSink::builder(&path, key())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .sink(memory.clone())
        .build()
        .unwrap();
    let statuses = run_all(&layer, &clock).await;
    assert_eq!(statuses, [200, 401, 403, 429]);
    layer.close().await.unwrap();

    let lines = json_lines(&path);
    let requests: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "request").collect();
    assert_eq!(requests.len(), 4);
    let fp = |secret: &str| {
        Fingerprinter::new(FP_KEY.as_bytes())
            .fingerprint(secret.as_bytes())
            .to_string()
    };
    let without_mac = |v: &Value| {
        let mut v = v.clone();
        let map = v.as_object_mut().unwrap();
        assert_eq!(map.remove("mac").unwrap().as_str().unwrap().len(), 64);
        map.remove("seq").unwrap();
        v
    };
    assert_eq!(
        without_mac(requests[0]),
        serde_json::json!({
            "kind": "request",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "method": "POST",
            "path": "/mcp",
            "query_params": null,
            "client_ip": "203.0.113.9",
            "user_agent": "test-agent/1.0",
            "status_code": 200,
            "process_time": 0.005,
            "auth_type": "bearer",
            "content_length": CALL.len(),
            "request_id": "req-1",
            "peer_ip": null,
            "response_bytes": 11,
            "principal_id": "ci-bot",
            "principal_kind": "api_key",
            "credential_fp": fp(API_KEY),
            "mcp_method": "tools/call",
            "mcp_tool": "echo",
            "mcp_batch": null,
            "mcp_source": "body",
            "decision": "allowed",
            "reason": null,
            "auth": "authenticated",
            "auth_failure": null,
            "rate_limit": "allowed",
            "rate_limit_policy": "ip",
            "retry_after": null,
            "detail": null,
        })
    );
    let r401 = without_mac(requests[1]);
    assert_eq!(r401["timestamp"], "2026-01-01T00:00:00.005Z");
    assert_eq!(r401["status_code"], 401);
    assert_eq!(r401["query_params"], "page=2&api_key=[redacted]");
    assert_eq!(r401["user_agent"], "agent ([redacted])");
    assert_eq!(r401["auth_type"], "bearer");
    assert_eq!(
        r401["credential_fp"], AUTH_FP,
        "the auth layer's fingerprint wins"
    );
    assert_eq!(r401["principal_id"], Value::Null);
    assert_eq!(r401["mcp_method"], "tools/call");
    assert_eq!(r401["mcp_tool"], "echo");
    assert_eq!(r401["mcp_source"], "headers");
    assert_eq!(r401["decision"], "rejected");
    assert_eq!(r401["reason"], "invalid_token");
    assert_eq!(r401["auth"], "rejected");
    assert_eq!(r401["auth_failure"], "bad_signature");
    assert_eq!(r401["rate_limit"], Value::Null);
    assert_eq!(r401["detail"], "token [redacted] refused");
    assert!(r401["response_bytes"].as_u64().unwrap() > 0);

    let r403 = without_mac(requests[2]);
    assert_eq!(r403["method"], "GET");
    assert_eq!(r403["path"], "/api/notes");
    assert_eq!(r403["client_ip"], "198.51.100.7");
    assert_eq!(r403["status_code"], 403);
    assert_eq!(r403["auth_type"], "api_key");
    assert_eq!(r403["credential_fp"], fp(LIMITED_KEY));
    assert_eq!(r403["principal_id"], "limited");
    assert_eq!(r403["principal_kind"], "api_key");
    assert_eq!(r403["reason"], "insufficient_scope");
    assert_eq!(r403["auth_failure"], "insufficient_scope");
    assert_eq!(r403["mcp_method"], Value::Null);
    assert_eq!(r403["mcp_source"], Value::Null);
    assert_eq!(r403["content_length"], Value::Null);

    let r429 = without_mac(requests[3]);
    assert_eq!(r429["status_code"], 429);
    assert_eq!(r429["path"], "/mcp/[redacted]");
    assert_eq!(r429["query_params"], "access_token=[redacted]");
    assert_eq!(r429["client_ip"], "2001:db8::1");
    assert_eq!(r429["request_id"], "[redacted]");
    assert_eq!(r429["auth_type"], "query");
    assert_eq!(r429["credential_fp"], fp(JWT));
    assert_eq!(r429["decision"], "rejected");
    assert_eq!(r429["reason"], "rate_limited");
    assert_eq!(r429["auth"], Value::Null);
    assert_eq!(r429["rate_limit"], "limited");
    assert_eq!(r429["rate_limit_policy"], "ip");
    assert_eq!(r429["retry_after"], 7);

    // The in-memory records say the same through their accessors.
    let records = memory.requests();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].decision(), Decision::Allowed);
    assert_eq!(records[0].mcp_source(), Some(McpSource::Body));
    assert_eq!(records[0].principal().map(|p| p.id()), Some("ci-bot"));
    assert_eq!(records[0].duration(), Duration::from_millis(5));
    assert_eq!(records[1].auth_failure(), Some(AuthFailure::BadSignature));
    assert_eq!(records[3].retry_after(), Some(7));
    // And the file verifies.
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(clock.now())).unwrap();
    assert_eq!(report.requests, 4);
}

#[tokio::test]
async fn no_secret_reaches_the_file_or_tracing() {
    let (tracing_out, _guard) = capture();
    let dir = TempDir::new("secrets");
    let path = dir.join("audit.jsonl");
    let clock = clock();
    let layer = base_builder(&clock)
        .file_sink(
            FileSink::builder(&path, key())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .tracing(true)
        .build()
        .unwrap();
    let statuses = run_all(&layer, &clock).await;
    assert_eq!(statuses, [200, 401, 403, 429]);
    layer.close().await.unwrap();

    let file = std::fs::read_to_string(&path).unwrap();
    let traced = tracing_out.text();
    assert_eq!(file.matches("\"kind\":\"request\"").count(), 4);
    // Four requests, and the tool-call evidence of the allowed `tools/call` (on by default with
    // a file sink): digests, never the arguments.
    assert_eq!(traced.matches("mcp_security_audit").count(), 5, "{traced}");
    assert_eq!(file.matches("\"kind\":\"completion\"").count(), 1);
    assert!(file.contains("\"args_digest\":\"hmac-sha256:"), "{file}");
    assert!(!file.contains("\"text\":\"hi\""), "{file}");
    assert!(traced.contains("[redacted]"), "{traced}");
    for secret in [
        API_KEY,
        LIMITED_KEY,
        JWT,
        QUERY_TOKEN,
        COOKIE,
        PATH_KEY,
        REQUEST_ID_KEY,
    ] {
        // The secret, and its distinctive tail (the part after any prefix).
        let tail = &secret[secret.len() - 16..];
        for needle in [secret, tail] {
            assert!(!file.contains(needle), "{needle} in the file:\n{file}");
            assert!(
                !traced.contains(needle),
                "{needle} in tracing output:\n{traced}"
            );
        }
    }
}

#[tokio::test]
async fn errors_and_cancellations_are_recorded() {
    let clock = clock();
    let memory = MemorySink::new();
    let layer = base_builder(&clock).sink(memory.clone()).build().unwrap();
    let failing = layer.layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Res, _>(std::io::Error::other("backend down"))
    }));
    let err = failing
        .oneshot(Request::get("/x").body(Full::default()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "backend down");

    let mut hanging = layer.layer(tower::service_fn(|_req: Request<Full<Bytes>>| {
        std::future::pending::<Result<Res, Infallible>>()
    }));
    {
        let fut = hanging.call(Request::get("/slow").body(Full::default()).unwrap());
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    let records = memory.requests();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].decision(), Decision::Error);
    assert_eq!(records[0].status(), None);
    assert_eq!(records[1].decision(), Decision::Cancelled);
    assert_eq!(records[1].path(), "/slow");
}

/// A sink that pushes back until told to let go, and says when a held record got through.
#[derive(Clone)]
struct Gate {
    gate: Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
    through: Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    fn new() -> (Self, tokio::sync::oneshot::Sender<()>) {
        let (open, gate) = tokio::sync::oneshot::channel();
        let gate = Gate {
            gate: Arc::new(Mutex::new(Some(gate))),
            through: Arc::default(),
        };
        (gate, open)
    }
}

impl AuditSink for Gate {
    fn submit(&self, _event: &Arc<AuditEvent>) -> Submit {
        match self.gate.lock().unwrap().take() {
            Some(rx) => {
                let through = self.through.clone();
                Submit::Wait(Box::pin(async move {
                    let _ = rx.await;
                    through.store(true, Ordering::SeqCst);
                }))
            }
            None => Submit::Done,
        }
    }
}

#[tokio::test]
async fn backpressure_holds_the_response() {
    let clock = clock();
    let (gate, open) = Gate::new();
    let layer = base_builder(&clock).sink(gate.clone()).build().unwrap();
    let mut svc = layer.layer(stack(clock.clone()));
    let fut = svc.call(Request::get("/x").body(Full::default()).unwrap());
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "held by the sink");
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    open.send(()).unwrap();
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
        other => panic!(
            "expected the response, got {:?}",
            other.map(|r| r.map(|r| r.status()))
        ),
    }
}

#[tokio::test]
async fn request_ids_and_client_addresses() {
    let clock = clock();
    let memory = MemorySink::new();
    let resolver = ClientAddrResolver::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    let layer = base_builder(&clock)
        .sink(memory.clone())
        .client_addr_resolver(resolver.clone())
        .build()
        .unwrap();
    let svc = layer.layer(stack(clock.clone()));
    let reqs = [
        // behind a trusted proxy
        Request::get("/a")
            .header("x-forwarded-for", "203.0.113.50")
            .header("x-request-id", "not valid!")
            .extension(peer("10.0.0.1"))
            .body(Full::default())
            .unwrap(),
        // a ClientAddr already resolved by an outer layer wins
        Request::get("/b")
            .extension(
                resolver
                    .resolve_from_peer("198.51.100.20:1".parse().unwrap(), &http::HeaderMap::new()),
            )
            .extension(peer("10.9.9.9"))
            .body(Full::default())
            .unwrap(),
        // no peer at all
        Request::get("/c").body(Full::default()).unwrap(),
    ];
    for req in reqs {
        svc.clone().oneshot(req).await.unwrap();
    }
    let r = memory.requests();
    assert_eq!(r[0].client_ip(), Some("203.0.113.50".parse().unwrap()));
    assert!(r[0].client().unwrap().via_proxy());
    assert_eq!(r[1].client_ip(), Some("198.51.100.20".parse().unwrap()));
    assert_eq!(r[2].client_ip(), None);
    let ids: Vec<String> = r.iter().map(|r| r.request_id().into_owned()).collect();
    for id in &ids {
        assert_eq!(id.len(), 21, "{id}");
        assert_eq!(id.as_bytes()[8], b'-');
    }
    assert_ne!(ids[0], ids[1]);
    assert!(ids[1].ends_with("000000000001"));
}

#[tokio::test]
async fn batches_and_disabled_layers() {
    let clock = clock();
    let memory = MemorySink::new();
    let layer = base_builder(&clock).sink(memory.clone()).build().unwrap();
    let batch = parse_envelope(
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#,
    )
    .unwrap();
    // An McpCall in the request (an inspect layer outside the audit layer).
    let req = Request::post("/mcp")
        .extension(batch)
        .body(Full::default())
        .unwrap();
    layer
        .layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }))
        .oneshot(req)
        .await
        .unwrap();
    let r = &memory.requests()[0];
    assert_eq!(r.mcp_method().as_deref(), Some("batch"));
    assert_eq!(r.mcp_tool().as_deref(), Some("a,b"));
    assert_eq!(r.mcp_batch_size(), Some(2));

    let off = AuditLayer::disabled();
    assert_eq!(off.summary(), "audit: off");
    let res = off
        .layer(stack(clock.clone()))
        .oneshot(Request::get("/x").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(memory.requests().len(), 1);
}

fn failing(ip: &str) -> Request<Full<Bytes>> {
    Request::get("/mcp")
        .header("x-scenario", "401")
        .extension(peer(ip))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn auth_failure_detector_bans_after_the_threshold_and_not_before() {
    let clock = clock();
    let memory = MemorySink::new();
    let bans = BanList::new();
    let layer = base_builder(&clock)
        .sink(memory.clone())
        .ban_list(bans.clone())
        .ban_duration(Duration::from_secs(600))
        .detect_auth_failures(Rule::new(10, Duration::from_secs(60)).ban(true))
        .detect_global_auth_failures(Rule::new(15, Duration::from_secs(60)))
        .detect_floods(None)
        .build()
        .unwrap();
    let svc = layer.layer(stack(clock.clone()));
    let attacker: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    for i in 1..=10 {
        svc.clone().oneshot(failing("203.0.113.9")).await.unwrap();
        assert_eq!(
            bans.banned_until(attacker, clock.now()),
            None,
            "banned after {i}"
        );
    }
    assert!(memory.security_events().is_empty());
    svc.clone().oneshot(failing("203.0.113.9")).await.unwrap();
    let until = bans
        .banned_until(attacker, clock.now())
        .expect("banned after 11");
    let events = memory.security_events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.detector(), DetectorKind::AuthFailureBurst);
    assert_eq!(e.client(), Some(attacker));
    assert_eq!(e.count(), 11);
    assert_eq!(e.threshold(), 10);
    assert_eq!(e.action(), "ban");
    assert_eq!(e.ban_until(), Some(until));
    assert_eq!(until, clock.now() + Duration::from_secs(600));
    // More failures in the same window: no more events for this client.
    svc.clone().oneshot(failing("203.0.113.9")).await.unwrap();
    assert_eq!(memory.security_events().len(), 1);
    // 4 failures from another client cross the global threshold (15), which only alerts.
    for _ in 0..4 {
        svc.clone().oneshot(failing("198.51.100.7")).await.unwrap();
    }
    let events = memory.security_events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].detector(), DetectorKind::GlobalAuthFailureBurst);
    assert_eq!(events[1].count(), 16);
    assert_eq!(events[1].client(), None);
    assert_eq!(events[1].ban_until(), None);
    assert_eq!(
        bans.banned_until("198.51.100.7".parse().unwrap(), clock.now()),
        None
    );
    // Insufficient scope, and a DPoP nonce to retry with, are not authentication failures.
    let memory2 = MemorySink::new();
    let layer = base_builder(&clock)
        .sink(memory2.clone())
        .detect_auth_failures(Rule::new(1, Duration::from_secs(60)))
        .build()
        .unwrap();
    let svc = layer.layer(stack(clock.clone()));
    for scenario in ["403", "401-dpop-nonce", "403", "401-dpop-nonce"] {
        let req = Request::get("/x")
            .header("x-scenario", scenario)
            .extension(peer("192.0.2.1"))
            .body(Full::default())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_ne!(res.status(), StatusCode::OK, "{scenario}");
    }
    assert!(memory2.security_events().is_empty());
}

#[tokio::test]
async fn flood_detector_and_sliding_window() {
    let clock = clock();
    let memory = MemorySink::new();
    let bans = BanList::new();
    let layer = base_builder(&clock)
        .sink(memory.clone())
        .ban_list(bans.clone())
        .detect_floods(Rule::new(5, Duration::from_secs(60)).ban(true))
        .build()
        .unwrap();
    let svc = layer.layer(stack(clock.clone()));
    let ok = |ip: &str| {
        Request::get("/x")
            .extension(peer(ip))
            .body(Full::default())
            .unwrap()
    };
    // IPv6 clients count by /56 prefix.
    for i in 0..5 {
        svc.clone()
            .oneshot(ok(&format!("2001:db8:0:1{i}::1")))
            .await
            .unwrap();
    }
    assert!(memory.security_events().is_empty());
    svc.clone().oneshot(ok("2001:db8:0:ff::7")).await.unwrap();
    let events = memory.security_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detector(), DetectorKind::RequestFlood);
    assert_eq!(events[0].client(), Some("2001:db8::".parse().unwrap()));
    assert!(
        bans.banned_until("2001:db8::".parse().unwrap(), clock.now())
            .is_some()
    );
    // Another client, spread out (about 2 a minute): never fires.
    for _ in 0..20 {
        svc.clone().oneshot(ok("192.0.2.44")).await.unwrap();
        clock.advance(Duration::from_secs(26));
    }
    assert_eq!(memory.security_events().len(), 1);
}

#[tokio::test]
async fn expiring_tokens_are_reported_once() {
    let clock = clock();
    let memory = MemorySink::new();
    let layer = base_builder(&clock)
        .sink(memory.clone())
        .detect_expiring_tokens(Duration::from_secs(3600))
        .build()
        .unwrap();
    let now = clock.now();
    let expiring = Principal::builder("soon", PrincipalKind::Jwt)
        .expires_at(now + Duration::from_secs(1800))
        .build();
    let fine = Principal::builder("later", PrincipalKind::Jwt)
        .expires_at(now + Duration::from_secs(7200))
        .build();
    for principal in [expiring.clone(), fine, expiring] {
        let svc = layer.layer(tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let principal = principal.clone();
            async move {
                let mut res = Response::new(Full::<Bytes>::default());
                res.extensions_mut()
                    .insert(AuthOutcome::Authenticated { principal });
                Ok::<_, Infallible>(res)
            }
        }));
        svc.oneshot(Request::get("/x").body(Full::default()).unwrap())
            .await
            .unwrap();
    }
    let events = memory.security_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detector(), DetectorKind::TokenExpiringSoon);
    assert_eq!(events[0].principal().map(|p| p.id()), Some("soon"));
    assert_eq!(
        events[0].expires_at(),
        Some(now + Duration::from_secs(1800))
    );
    assert_eq!(events[0].action(), "alert");
}

#[test]
fn metrics_are_recorded() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = clock();
            let layer = base_builder(&clock)
                .sink(MemorySink::new())
                .detect_expiring_tokens(None)
                .build()
                .unwrap();
            run_all(&layer, &clock).await;
            let svc = layer.layer(stack(clock.clone()));
            let req = Request::post("/mcp")
                .header("x-scenario", "413")
                .body(Full::default())
                .unwrap();
            svc.oneshot(req).await.unwrap();
        });
        crate::metrics::describe();
    });
    let text = handle.render();
    for want in [
        "mcp_auth_failures_total{reason=\"bad_signature\"} 1",
        "mcp_auth_failures_total{reason=\"insufficient_scope\"} 1",
        "mcp_rate_limit_exceeded_total{policy=\"ip\"} 1",
        "mcp_security_violations_total{reason=\"payload_too_large\"} 1",
        "mcp_request_duration_seconds_count{status=\"2xx\"} 1",
        "mcp_request_duration_seconds_count{status=\"4xx\"} 4",
        "mcp_concurrent_requests 0",
        "# HELP mcp_auth_failures_total",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

#[test]
fn builder_errors_name_the_setting() {
    let e = AuditLayer::builder()
        .api_key_header("bad header")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "api_key_header");
    let e = AuditLayer::builder()
        .request_id_header(Some("x y"))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "request_id_header");
    let e = AuditLayer::builder()
        .fingerprint_key(Secret::new(""))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "fingerprint_key");
    let e = AuditLayer::builder()
        .detect_floods(Rule::new(0, Duration::from_secs(60)))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "detect_floods");
    let e = AuditLayer::builder()
        .detect_auth_failures(Rule::new(3, Duration::from_millis(5)))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "detect_auth_failures");
    let e = AuditLayer::builder()
        .detect_expiring_tokens(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "detect_expiring_tokens");
    let e = AuditLayer::builder()
        .ban_duration(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "ban_duration");
    let e = AuditLayer::builder()
        .detector_max_clients(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "detector_max_clients");
}

#[tokio::test]
async fn configured_from_the_environment() {
    let dir = TempDir::new("env");
    let file = dir.join("audit.jsonl").display().to_string();
    let key_text = std::str::from_utf8(crate::test_support::KEY).unwrap();
    let env = |pairs: &[(&str, &str)]| Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)));
    let err = AuditLayer::from_env(&env(&[("MCP_AUDIT_LOG_FILE", &file)])).unwrap_err();
    assert_eq!(err.setting(), "MCP_AUDIT_HMAC_KEY");
    assert!(err.to_string().contains("MCP_AUDIT_HMAC_KEY_FILE"), "{err}");
    let err = AuditLayer::from_env(&env(&[
        ("MCP_AUDIT_LOG_FILE", &file),
        ("MCP_AUDIT_HMAC_KEY", "short"),
    ]))
    .unwrap_err();
    assert_eq!(err.setting(), "MCP_AUDIT_HMAC_KEY");
    assert!(!err.to_string().contains("short"));
    for (var, value) in [
        ("MCP_AUDIT_OVERFLOW", "sometimes"),
        ("MCP_AUDIT_FSYNC", "never"),
        ("MCP_AUDIT_FLOOD_WINDOW", "0"),
        ("MCP_AUDIT_CHECKPOINT_INTERVAL", "0"),
        ("MCP_AUDIT_CHANNEL_CAPACITY", "0"),
        ("MCP_AUDIT_ENABLED", "maybe"),
        ("MCP_TRUSTED_PROXIES", "nope"),
        ("MCP_API_KEY_HEADER", "bad header"),
        ("MCP_AUDIT_BAN_DURATION", "0"),
    ] {
        let err = AuditLayer::from_env(&env(&[
            ("MCP_AUDIT_LOG_FILE", &file),
            ("MCP_AUDIT_HMAC_KEY", key_text),
            (var, value),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), var, "{err}");
    }
    let layer = AuditLayer::from_env(&env(&[
        ("MCP_AUDIT_LOG_FILE", &file),
        ("MCP_AUDIT_HMAC_KEY", key_text),
        ("MCP_AUDIT_OVERFLOW", "drop"),
        ("MCP_AUDIT_MASK_PREFIXES", "iqmcp-sk-"),
        ("MCP_API_KEY_HEADER", "X-API-Key"),
        ("MCP_AUDIT_FLOOD_THRESHOLD", "0"),
    ]))
    .unwrap();
    let summary = layer.summary();
    assert!(summary.contains("2 sink(s)"), "{summary}");
    assert!(summary.contains("(drop, key "), "{summary}");
    assert_eq!(layer.file_sink().unwrap().key_id(), key().id());
    assert_eq!(layer.dropped(), 0);
    layer.close().await.unwrap();
    let off = AuditLayer::from_env(&env(&[("MCP_AUDIT_ENABLED", "false")])).unwrap();
    assert_eq!(off.summary(), "audit: off");
    let plain = AuditLayer::from_env(&env(&[])).unwrap();
    assert_eq!(plain.summary(), "audit: 1 sink(s), metrics on");
}

/// A response-side layer's body: records a fact when it ends, holding a recorder until dropped.
struct FactBody {
    inner: Full<Bytes>,
    recorder: Option<mcp_security_core::facts::FactRecorder>,
}

impl Body for FactBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let out = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = out
            && let Some(r) = self.recorder.take()
        {
            r.record(mcp_security_core::facts::ResponseFact::ListFiltered {
                method: "tools/list",
                kept: 1,
                hidden: 2,
            });
            r.body_complete();
        }
        out
    }
}

fn fact_stack()
-> impl Service<Request<Full<Bytes>>, Response = Response<FactBody>, Error = Infallible> + Clone {
    tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let recorder = req
            .extensions()
            .get::<ResponseFacts>()
            .and_then(ResponseFacts::recorder);
        let failed = req.headers().contains_key("x-fail");
        if failed && let Some(r) = &recorder {
            r.record(mcp_security_core::facts::ResponseFact::FailedClosed {
                layer: "list_filter",
                reason: mcp_security_core::response::RewriteFailure::TooLarge,
            });
        }
        Ok::<_, Infallible>(Response::new(FactBody {
            inner: Full::new(Bytes::from_static(b"{}")),
            recorder,
        }))
    })
}

#[tokio::test]
async fn body_facts_become_a_completion_record_after_the_request_record() {
    let dir = TempDir::new("facts");
    let path = dir.join("audit.jsonl");
    let clock = clock();
    let sink = MemorySink::new();
    let layer = base_builder(&clock)
        .sink(sink.clone())
        .file_sink(
            FileSink::builder(&path, key())
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(fact_stack());
    // Read to the end.
    let req = Request::post("/mcp")
        .header("x-request-id", "req-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert!(
        sink.completions().is_empty(),
        "nothing before the body ends"
    );
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    let done = sink.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request_id(), "req-1");
    assert!(done[0].body_complete());
    assert_eq!(done[0].list_method(), Some("tools/list"));
    assert_eq!(done[0].list_entries(), Some((1, 2)));
    let kinds: Vec<_> = sink.events().iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            crate::chain::RecordKind::Request,
            crate::chain::RecordKind::Completion
        ]
    );
    // Dropped before the end: still recorded, as dropped, with what was known.
    let req = Request::post("/mcp")
        .header("x-request-id", "req-2")
        .header("x-fail", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    drop(res);
    let done = sink.completions();
    assert_eq!(done.len(), 2);
    assert!(!done[1].body_complete());
    assert_eq!(
        done[1].failed_closed(),
        Some(("list_filter", "response_too_large"))
    );
    // No facts: no completion record.
    let req = Request::get("/health")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }))
        .oneshot(req)
        .await
        .unwrap();
    drop(res);
    assert_eq!(sink.completions().len(), 2);
    layer.close().await.unwrap();
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(file.matches("\"kind\":\"completion\"").count(), 2, "{file}");
    assert!(file.contains(
        "\"request_id\":\"req-1\",\"body\":\"complete\",\"list_method\":\"tools/list\",\"entries_kept\":1,\"entries_hidden\":2,\"failed_closed\":null,\"failed_closed_by\":null,\"facts_dropped\":0"
    ), "{file}");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(clock.now())).unwrap();
    assert_eq!(report.requests, 3);
}

#[tokio::test]
async fn an_api_keys_fingerprint_is_remembered_and_stays_the_same() {
    // One API key's principal, as the key store hands it out for every request of that key.
    let principal = Principal::builder("ci-bot", PrincipalKind::ApiKey)
        .single_credential()
        .build();
    let authenticated = {
        let principal = principal.clone();
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let principal = principal.clone();
            async move {
                let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
                res.extensions_mut()
                    .insert(AuthOutcome::Authenticated { principal });
                Ok::<_, Infallible>(res)
            }
        })
    };
    let request = |header: &str, value: &str| {
        Request::post("/mcp")
            .header(header, value)
            .body(Full::default())
            .unwrap()
    };
    let sink = MemorySink::new();
    let layer = AuditLayer::builder()
        .fingerprint_key(Secret::new("fingerprint-key"))
        .api_key_header("x-api-key")
        .sink(sink.clone())
        .build()
        .unwrap();
    let svc = layer.layer(authenticated.clone());
    for _ in 0..2 {
        svc.clone()
            .oneshot(request("authorization", "Bearer mcp-sk-secret"))
            .await
            .unwrap();
    }
    // HMAC-SHA256("fingerprint-key", "mcp-sk-secret"), first 8 bytes: the value records had
    // before fingerprints were remembered, so older trails correlate with newer ones.
    const PINNED: &str = "26f2bccaba374771";
    let f = Fingerprinter::new(b"fingerprint-key");
    assert_eq!(
        principal
            .credential_fingerprint(&f, || unreachable!("remembered by the first request"))
            .to_string(),
        PINNED
    );
    // A credential from another header is fingerprinted itself: authentication may not have
    // read that header, so it may not be the key that authenticated.
    svc.clone()
        .oneshot(request("x-api-key", "mcp-sk-other"))
        .await
        .unwrap();
    // Another fingerprint key: its own value, not the remembered one.
    let other_sink = MemorySink::new();
    AuditLayer::builder()
        .fingerprint_key(Secret::new("another-key"))
        .sink(other_sink.clone())
        .build()
        .unwrap()
        .layer(authenticated)
        .oneshot(request("authorization", "Bearer mcp-sk-secret"))
        .await
        .unwrap();
    let fps: Vec<String> = sink
        .requests()
        .iter()
        .chain(&other_sink.requests())
        .map(|r| r.credential_fingerprint().unwrap().into_owned())
        .collect();
    assert_eq!(
        fps,
        [
            PINNED.to_owned(),
            PINNED.to_owned(),
            f.fingerprint(b"mcp-sk-other").to_string(),
            Fingerprinter::new(b"another-key")
                .fingerprint(b"mcp-sk-secret")
                .to_string(),
        ]
    );
}
