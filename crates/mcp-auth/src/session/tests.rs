use super::*;
use mcp_security_core::PrincipalKind;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use mcp_security_core::clock::ManualMonotonicClock;
use mcp_security_core::inspect::McpInspectLayer;
use mcp_security_core::jsonrpc::parse_envelope;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

type Res = Response<GuardBody<SessionBody<Full<Bytes>>>>;

/// An MCP server stand-in: issues `s-<n>` on a request without a session id (unless it has
/// `x-no-session`), answers rmcp's unknown-session 404 for a session id in `gone`, a 404 of
/// another route for a request with `x-other-404`, 202 for DELETE, 200 otherwise; echoes the
/// principal it saw. `calls` counts the requests it saw.
fn inner_counting<B: Send + 'static>(
    gone: &'static [&'static str],
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    let counter = Arc::new(AtomicUsize::new(0));
    tower::service_fn(move |req: Request<B>| {
        let counter = Arc::clone(&counter);
        calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let who = req
                .extensions()
                .get::<Principal>()
                .map_or("-".to_owned(), |p| p.id().to_owned());
            let mut res = Response::new(Full::new(Bytes::from(who)));
            if req.headers().contains_key("x-other-404") {
                *res.status_mut() = StatusCode::NOT_FOUND;
                *res.body_mut() = Full::new(Bytes::from_static(b"no such route"));
                return Ok::<_, Infallible>(res);
            }
            match req.headers().get("mcp-session-id") {
                None if req.headers().contains_key("x-no-session") => {}
                None => {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    res.headers_mut().insert(
                        "mcp-session-id",
                        HeaderValue::from_str(&format!("s-{n}")).unwrap(),
                    );
                }
                Some(id) if gone.iter().any(|g| id == g) => {
                    *res.status_mut() = StatusCode::NOT_FOUND;
                    *res.body_mut() =
                        Full::new(Bytes::from_static(RMCP_UNKNOWN_SESSION_BODY.as_bytes()));
                }
                Some(_) if req.method() == Method::DELETE => {
                    *res.status_mut() = StatusCode::ACCEPTED;
                }
                Some(_) => {}
            }
            Ok::<_, Infallible>(res)
        }
    })
}

fn inner<B: Send + 'static>(
    gone: &'static [&'static str],
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    inner_counting(gone, Arc::new(AtomicUsize::new(0)))
}

fn principal(id: &str, kind: PrincipalKind) -> Principal {
    Principal::builder(id, kind).scopes(["*"]).build()
}

fn request(method: Method, session: Option<&str>, who: Option<&Principal>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri("/mcp");
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    let mut req = b.body(Full::default()).unwrap();
    if let Some(p) = who {
        req.extensions_mut().insert(p.clone());
    }
    req
}

/// An `initialize` POST as `McpInspectLayer` leaves it: the envelope in the extensions.
fn initialize(who: &Principal) -> Request<Full<Bytes>> {
    let body = br#"{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{}}"#;
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    req.extensions_mut().insert(parse_envelope(body).unwrap());
    req.extensions_mut().insert(who.clone());
    req
}

async fn call<S>(svc: &mut S, req: Request<Full<Bytes>>) -> Res
where
    S: Service<Request<Full<Bytes>>, Response = Res, Error = Infallible>,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

async fn body(res: Res) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

fn layer_with_clock(clock: Arc<ManualMonotonicClock>, max: usize) -> SessionBindingLayer {
    SessionBindingLayer::builder()
        .clock(clock)
        .max_sessions(max)
        .idle_timeout(Duration::from_secs(60))
        .hash_key(*b"0123456789abcdef0123456789abcdef")
        .build()
        .unwrap()
}

const FOREIGN: &str = "the session id is bound to another principal";
const UNKNOWN: &str = "the session id is not bound (never issued, expired or ended)";

/// rmcp's own unknown-session answer: 404, no content type, its text; the rejection (with
/// why) in the extensions for the audit.
async fn assert_not_found(res: Res, detail: &str) {
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers().get("content-type").is_none());
    assert!(res.headers().get("mcp-session-id").is_none());
    assert!(res.headers().get("www-authenticate").is_none());
    assert_eq!(res.headers().len(), 0, "{:?}", res.headers());
    let r = res.extensions().get::<Rejection>().unwrap();
    assert_eq!(r.code(), "session_not_found");
    assert_eq!(r.internal_detail(), Some(detail));
    assert_eq!(body(res).await, RMCP_UNKNOWN_SESSION_BODY);
}

async fn assert_too_many(res: Res, body_json: Value) {
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(
        res.headers().get("mcp-session-id").is_none(),
        "no session id reaches the client"
    );
    assert_eq!(
        res.extensions().get::<Rejection>().unwrap().code(),
        "too_many_sessions"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body(res).await).unwrap(),
        body_json
    );
}

#[tokio::test]
async fn owner_passes_another_principal_gets_the_servers_404() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let mallory = principal("mallory", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner(&[]));

    let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    assert_eq!(layer.len(), 1);

    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "alice");

    for method in [Method::GET, Method::POST, Method::DELETE] {
        let res = call(&mut svc, request(method, Some("s-0"), Some(&mallory))).await;
        assert_not_found(res, FOREIGN).await;
    }
    // The owner is unaffected by the attempts.
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn same_id_of_another_kind_is_another_principal() {
    let as_key = principal("alice", PrincipalKind::ApiKey);
    let as_jwt = principal("alice", PrincipalKind::Jwt);
    let mut svc = SessionBindingLayer::new().layer(inner(&[]));
    let res = call(&mut svc, request(Method::POST, None, Some(&as_key))).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&as_jwt))).await;
    assert_not_found(res, FOREIGN).await;
    // Same kind and id but other scopes: the same principal.
    let narrower = Principal::builder("alice", PrincipalKind::ApiKey)
        .scopes(["notes:read"])
        .build();
    let res = call(
        &mut svc,
        request(Method::POST, Some("s-0"), Some(&narrower)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_jsonrpc_request_gets_the_same_404_as_any_other() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    // McpInspectLayer outside, as in the stack: the McpCall lands in the extensions, yet
    // the answer stays the server's (rmcp answers an unknown session without JSON-RPC).
    let layer = SessionBindingLayer::new();
    let mut svc = ServiceBuilder::new()
        .layer(McpInspectLayer::new())
        .map_request(move |mut req: Request<_>| {
            let who = if req.headers().contains_key("x-bob") {
                bob.clone()
            } else {
                alice.clone()
            };
            req.extensions_mut().insert(who);
            req
        })
        .layer(layer.clone())
        .service(inner(&[]));
    let post = |session: Option<&str>, bob: bool| {
        let mut b = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        if bob {
            b = b.header("x-bob", "1");
        }
        b.body(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"echo"}}"#,
        )))
        .unwrap()
    };
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(None, false))
        .await
        .unwrap();
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    for (session, bob) in [(Some("s-0"), true), (Some("s-9"), false)] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(post(session, bob))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.headers().get("content-type").is_none());
        assert!(res.headers().get("mcp-session-id").is_none());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, RMCP_UNKNOWN_SESSION_BODY);
    }
}

#[tokio::test]
async fn unknown_session_ids_are_refused_never_passed_through() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
    for method in [Method::POST, Method::GET, Method::DELETE] {
        let res = call(&mut svc, request(method, Some("nope"), Some(&alice))).await;
        assert_not_found(res, UNKNOWN).await;
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "the server saw none of them"
    );
    assert!(layer.is_empty());
}

#[tokio::test]
async fn requests_without_principal_pass_through() {
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner(&[]));
    let res = call(&mut svc, request(Method::POST, None, None)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    assert!(layer.is_empty());
    let res = call(&mut svc, request(Method::POST, Some("s-0"), None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "-");
    let res = call(&mut svc, request(Method::POST, Some("never"), None)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_custom_unknown_session_answer() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::builder()
        .unknown_session_response(UnknownSessionResponse::new(
            StatusCode::NOT_FOUND,
            Some(HeaderValue::from_static("application/json")),
            r#"{"error":"session not found"}"#,
        ))
        .build()
        .unwrap();
    let mut svc = layer.layer(inner(&[]));
    let res = call(&mut svc, request(Method::POST, Some("nope"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(body(res).await, r#"{"error":"session not found"}"#);
}

#[tokio::test]
async fn disabled_layer_binds_nothing() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::disabled();
    assert!(!layer.is_enabled());
    assert_eq!(layer.summary(), "session binding off");
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = call(&mut svc, request(Method::POST, Some("never"), Some(&bob))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(layer.is_empty());
}

#[tokio::test]
async fn owner_delete_forgets_the_binding() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    // Someone else's DELETE is refused and forgets nothing.
    let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&bob))).await;
    assert_not_found(res, FOREIGN).await;
    assert_eq!(layer.len(), 1);
    let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(layer.is_empty());
    // Ended: refused for its owner too, without asking the server.
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_not_found(res, UNKNOWN).await;
}

#[tokio::test]
async fn another_404_keeps_the_binding_without_restarting_its_timer() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let layer = layer_with_clock(Arc::clone(&clock), 10);
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_eq!(layer.len(), 1);
    // The owner's request answered by some other route's 404: not the server's
    // unknown-session answer, so the binding stays ...
    clock.advance(Duration::from_secs(50));
    let mut req = request(Method::POST, Some("s-0"), Some(&alice));
    req.headers_mut()
        .insert("x-other-404", HeaderValue::from_static("1"));
    let res = call(&mut svc, req).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.extensions().get::<Rejection>().is_none());
    assert_eq!(body(res).await, "no such route");
    assert_eq!(layer.len(), 1);
    // ... still bound: another principal gets our 404, not the inner service ...
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
    assert_not_found(res, FOREIGN).await;
    // ... but the 404 did not restart the idle timer: 61 s after the last answered request
    // the binding has expired.
    clock.advance(Duration::from_secs(11));
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_not_found(res, UNKNOWN).await;
    assert!(layer.is_empty());
}

#[tokio::test]
async fn the_servers_unknown_session_answer_forgets_the_binding() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = layer_with_clock(Arc::clone(&clock), 10);
    // The server issues "s-0", then drops it (answers its unknown-session 404).
    let mut svc = layer.layer(inner_counting(&["s-0"], Arc::clone(&calls)));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_eq!(layer.len(), 2);
    clock.advance(Duration::from_secs(30));
    let res = call(&mut svc, request(Method::GET, Some("s-0"), Some(&alice))).await;
    // The server's own answer reaches the client unchanged ...
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.extensions().get::<Rejection>().is_none());
    assert!(res.headers().get("content-type").is_none());
    assert_eq!(body(res).await, RMCP_UNKNOWN_SESSION_BODY);
    // ... and the binding is gone: the owner's retries are refused here, the server unasked,
    // however often they come (the retries never kept the dead binding alive).
    assert_eq!(layer.len(), 1);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(30));
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_not_found(res, UNKNOWN).await;
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // The other session was not touched (it expired on its own: 120 s idle).
    let res = call(&mut svc, request(Method::POST, Some("s-1"), Some(&alice))).await;
    assert_not_found(res, UNKNOWN).await;
}

/// A response body that streams `frames` data frames, advancing the clock by `step` before
/// each: a tool's progress notifications, a GET stream's messages.
struct TickingBody {
    clock: Arc<ManualMonotonicClock>,
    step: Duration,
    frames: usize,
}

impl http_body::Body for TickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.frames == 0 {
            return Poll::Ready(None);
        }
        self.frames -= 1;
        self.clock.advance(self.step);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            b"event: message\ndata: {}\n\n",
        )))))
    }
}

/// A streaming MCP server stand-in: issues `s-0` on a request without a session id; every
/// answer streams `frames` frames, `step` apart.
fn streaming(
    clock: Arc<ManualMonotonicClock>,
    step: Duration,
    frames: usize,
) -> impl Service<Request<Full<Bytes>>, Response = Response<TickingBody>, Error = Infallible> + Clone
{
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let clock = Arc::clone(&clock);
        async move {
            let mut res = Response::new(TickingBody {
                clock,
                step,
                frames,
            });
            if !req.headers().contains_key("mcp-session-id") {
                res.headers_mut()
                    .insert("mcp-session-id", HeaderValue::from_static("s-0"));
            }
            Ok::<_, Infallible>(res)
        }
    })
}

#[tokio::test]
async fn streamed_data_keeps_the_binding_alive() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let layer = layer_with_clock(Arc::clone(&clock), 10);
    // Each answer streams for 400 s, a message every 40 s (the idle timeout is 60 s).
    let mut svc = layer.layer(streaming(Arc::clone(&clock), Duration::from_secs(40), 10));
    let mut plain = layer.layer(inner(&[]));
    // The initialize's own stream ...
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(initialize(&alice))
        .await
        .unwrap();
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    res.into_body().collect().await.unwrap();
    assert_eq!(clock.now_nanos(), 400_000_000_000);
    // ... kept the binding: still alice's.
    let res = call(&mut plain, request(Method::POST, Some("s-0"), Some(&bob))).await;
    assert_not_found(res, FOREIGN).await;
    // A GET stream on the session (notifications for 400 s) keeps it too.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, Some("s-0"), Some(&alice)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
    assert_eq!(clock.now_nanos(), 800_000_000_000);
    let res = call(&mut plain, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "alice");
    // A silent minute after that, it expires as usual.
    clock.advance(Duration::from_secs(61));
    let res = call(&mut plain, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_not_found(res, UNKNOWN).await;
}

#[tokio::test]
async fn streamed_data_restarts_the_timer_at_most_every_eighth_of_the_idle_timeout() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = layer_with_clock(Arc::clone(&clock), 10);
    // A message every second for 100 s; the idle timeout is 60 s, an eighth of it 7.5 s.
    let mut svc = layer.layer(streaming(Arc::clone(&clock), Duration::from_secs(1), 100));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(initialize(&alice))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let last_seen = layer.shared.table().bindings[&layer.shared.hash(b"s-0")].last_seen;
    // Bound at 0 s; refreshed by the messages at 8, 16, ..., 96 s, not by every message.
    assert_eq!(last_seen, 96_000_000_000);
}

#[tokio::test]
async fn at_the_cap_the_idlest_session_past_the_grace_is_evicted() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::ApiKey);
    let bob = principal("bob", PrincipalKind::ApiKey);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SessionBindingLayer::builder()
        .clock(Arc::clone(&clock) as Arc<dyn MonotonicClock>)
        .max_sessions_per_principal(2)
        .build()
        .unwrap();
    assert_eq!(layer.eviction_grace(), DEFAULT_EVICTION_GRACE);
    assert_eq!(DEFAULT_EVICTION_GRACE, Duration::from_secs(60));
    let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
    // Two clients of one key open a session each and never end it (no DELETE).
    for expected in ["s-0", "s-1"] {
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(res.headers()["mcp-session-id"], expected);
    }
    clock.advance(Duration::from_secs(30));
    let res = call(&mut svc, request(Method::POST, Some("s-1"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Nobody idle past the grace yet: the third is refused before the server.
    clock.advance(Duration::from_secs(20));
    let res = call(&mut svc, initialize(&alice)).await;
    assert_too_many(
            res,
            json!({"jsonrpc": "2.0", "id": "init-1", "error": {"code": -32000,
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "data": {"status": 503, "code": "too_many_sessions", "max_sessions": 2}}}),
        )
        .await;
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // 61 s: "s-0" (idle since 0 s) is past the grace; the third evicts it, not "s-1".
    clock.advance(Duration::from_secs(11));
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["mcp-session-id"], "s-2");
    assert_eq!(layer.len(), 2);
    // The evicted id gets the unknown-session 404 (fail-closed), the server unasked.
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_not_found(res, UNKNOWN).await;
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    let res = call(&mut svc, request(Method::POST, Some("s-1"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Both sessions now active within the grace: the next is refused again.
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Another principal is unaffected throughout.
    let res = call(&mut svc, initialize(&bob)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-3");
}

#[tokio::test]
async fn only_a_hash_of_the_session_id_is_kept() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    let table = layer.shared.table();
    let (hash, _) = table.bindings.iter().next().unwrap();
    assert_ne!(&hash[..3], b"s-0");
    assert_eq!(*hash, layer.shared.hash(b"s-0"));
    // Another process (another key) hashes the same id differently.
    assert_ne!(*hash, SessionBindingLayer::new().shared.hash(b"s-0"));
}

#[tokio::test]
async fn idle_bindings_expire_and_activity_keeps_them() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = layer_with_clock(Arc::clone(&clock), 10);
    let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    clock.advance(Duration::from_secs(50));
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(50)); // 50 s since the last request: still bound
    let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
    assert_not_found(res, FOREIGN).await;
    clock.advance(Duration::from_secs(61));
    // Expired: refused for everyone, the owner included; the server is not asked.
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    for who in [&bob, &alice] {
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(who))).await;
        assert_not_found(res, UNKNOWN).await;
    }
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert!(layer.is_empty());
}

#[tokio::test]
async fn full_table_refuses_new_sessions_until_bindings_expire() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = layer_with_clock(Arc::clone(&clock), 2);
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_eq!(layer.len(), 2);

    // Without an envelope (no McpInspectLayer), refused when the server's answer issues it.
    let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_too_many(
        res,
        json!({"error": "too_many_sessions", "message": "Too many sessions; try again later"}),
    )
    .await;
    assert_eq!(layer.len(), 2);

    // Existing sessions keep working.
    let res = call(&mut svc, request(Method::POST, Some("s-1"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);

    clock.advance(Duration::from_secs(61));
    let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["mcp-session-id"], "s-3");
    assert_eq!(layer.len(), 1, "the expired bindings were swept");
}

#[tokio::test]
async fn per_principal_cap_refuses_initialize_before_the_server() {
    let clock = Arc::new(ManualMonotonicClock::new(0));
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SessionBindingLayer::builder()
        .clock(Arc::clone(&clock) as Arc<dyn MonotonicClock>)
        .idle_timeout(Duration::from_secs(60))
        .max_sessions_per_principal(2)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
    for expected in ["s-0", "s-1"] {
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(res.headers()["mcp-session-id"], expected);
    }
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "the server never saw the third"
    );
    assert_too_many(
            res,
            json!({"jsonrpc": "2.0", "id": "init-1", "error": {"code": -32000,
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "data": {"status": 503, "code": "too_many_sessions", "max_sessions": 2}}}),
        )
        .await;
    // Bob is unaffected.
    let res = call(&mut svc, initialize(&bob)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-2");
    // Alice's sessions still work; ending one frees a slot.
    let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-3");
    assert_eq!(
        call(&mut svc, initialize(&alice)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // So does idle expiry.
    clock.advance(Duration::from_secs(61));
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-4");
    assert_eq!(layer.len(), 2, "alice's new one and bob's expired one");
}

#[tokio::test]
async fn initializes_in_flight_hold_their_slot_until_answered_or_dropped() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::builder()
        .max_sessions_per_principal(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner(&[]));
    // The first initialize is in flight (not yet answered): the second is refused.
    let first = svc.ready().await.unwrap().call(initialize(&alice));
    let second = call(&mut svc, initialize(&alice)).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The client goes away: the slot is free again.
    drop(first);
    let res = call(&mut svc, initialize(&alice)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-0");
    assert_eq!(
        call(&mut svc, initialize(&alice)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // An initialize the server answers without a session (an error) frees its slot too.
    let other = principal("carol", PrincipalKind::Jwt);
    let mut req = initialize(&other);
    req.headers_mut()
        .insert("x-no-session", HeaderValue::from_static("1"));
    assert_eq!(call(&mut svc, req).await.status(), StatusCode::OK);
    let res = call(&mut svc, initialize(&other)).await;
    assert_eq!(res.headers()["mcp-session-id"], "s-1");
    assert_eq!(layer.shared.table().pending, 0);
}

#[tokio::test]
async fn per_principal_cap_without_an_envelope_applies_when_the_id_is_issued() {
    let alice = principal("alice", PrincipalKind::Jwt);
    let layer = SessionBindingLayer::builder()
        .max_sessions_per_principal(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner(&[]));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    assert_too_many(
            res,
            json!({"error": "too_many_sessions",
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "max_sessions": 1}),
        )
        .await;
    assert_eq!(layer.len(), 1);
}

#[tokio::test]
async fn more_than_one_session_id_value_is_refused_before_the_server() {
    const SEVERAL: &str = "more than one Mcp-Session-Id value";
    let alice = principal("alice", PrincipalKind::Jwt);
    let bob = principal("bob", PrincipalKind::Jwt);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SessionBindingLayer::new();
    let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    call(&mut svc, request(Method::POST, None, Some(&alice))).await;
    call(&mut svc, request(Method::POST, None, Some(&bob))).await;
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // Both the caller's own: the server would read the first, a DELETE here might forget
    // the other. Refused, whatever the method, and no binding is forgotten.
    for method in [Method::DELETE, Method::POST, Method::GET] {
        let mut req = request(method, Some("s-0"), Some(&alice));
        req.headers_mut()
            .append("mcp-session-id", HeaderValue::from_static("s-1"));
        let res = call(&mut svc, req).await;
        assert_not_found(res, SEVERAL).await;
    }
    assert_eq!(layer.len(), 3);
    // Another's, or an unknown one, among them: the same.
    for other in ["s-0", "unknown", "s-2"] {
        let mut req = request(Method::POST, Some("s-2"), Some(&bob));
        req.headers_mut()
            .append("mcp-session-id", HeaderValue::from_static(other));
        let res = call(&mut svc, req).await;
        assert_not_found(res, SEVERAL).await;
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "the server saw none of them"
    );
    let res = call(&mut svc, request(Method::DELETE, Some("s-1"), Some(&alice))).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(layer.len(), 2);
}

#[test]
fn builder_refuses_zero_limits() {
    let e = SessionBindingLayer::builder()
        .max_sessions(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "max_sessions");
    let e = SessionBindingLayer::builder()
        .max_sessions_per_principal(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "max_sessions_per_principal");
    let e = SessionBindingLayer::builder()
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "idle_timeout");
    let layer = SessionBindingLayer::new();
    assert!(layer.is_enabled());
    assert_eq!(layer.idle_timeout(), Duration::from_secs(300));
    assert_eq!(layer.max_sessions_per_principal(), 64);
    assert_eq!(layer.max_sessions(), 100_000);
    assert_eq!(
        layer.unknown_session_response(),
        &UnknownSessionResponse::rmcp()
    );
    assert_eq!(
        layer.summary(),
        "session binding (max 100000, 64 per principal, idle 300s)"
    );
}
