//! The whole stack in process: what `mcp_security::SecurityLayer` (every layer `SecurityConfig`
//! builds, in the order ARCHITECTURE.md gives) adds to one allowed MCP request, and what `AuthLayer`'s
//! HS256 path costs next to a raw `jsonwebtoken` decode of the same token.
//!
//! - `whole_stack_tools_call_200B`: a stateless 2026-07-28 `tools/call` of ~200 bytes (with the
//!   `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers and `params._meta`), through a
//!   service that reads the whole body and answers 200, bare and behind the whole stack: API key,
//!   audit on with the chained file sink + HMAC key, rate limits on (per client and per caller)
//!   with a quota far above the load, CORS/Origin guard, security headers, resource limits,
//!   session binding. Once with the API key, once with an HS256 JWT, and once with the API key
//!   and the audit records going to `tracing` only (no file sink), which prices the sink's
//!   hand-off to its writer thread.
//! - `auth_hs256_first_sight`: `AuthLayer` with an HS256 verifier around a trivial inner service
//!   (there is no verified-token cache, so every call verifies the signature and the claims), the
//!   bare service, and `jsonwebtoken::decode` of the same token with the `rust_crypto` backend
//!   and the validation a user would write (HS256, `aud`, `exp`). The layer's own overhead is
//!   `AuthLayer − bare − raw decode`.
//!
//! Each call is polled in place inside the context of a runtime with one worker thread (the
//! audit file writer runs on it, as in a server); a call that is not ready at once waits on the
//! runtime, and the bench prints how many did (none should: a wait costs a thread park and a
//! wake-up, tens of µs, and would mean a layer pends on the allowed path). Compare rows against
//! the bare row of the same run. The request is built outside the timed
//! section (`iter_batched`) and the response dropped outside it.
//!
//! Run: `cargo bench -p benches --bench stack` (short: add
//! `-- --warm-up-time 1 --measurement-time 3`)
//!
//! For instruction and allocation counts, `MCP_STACK_PROFILE=<row>:<n>` makes the bench binary
//! send `n` requests through one row (`bare`, `api_key`, `api_key_no_file` or `jwt`) and exit
//! before criterion starts; run it under valgrind twice with different `n` and divide the
//! difference, e.g. (the binary is the path `cargo bench --no-run` prints):
//! `MCP_STACK_PROFILE=api_key:2000 valgrind --tool=callgrind --callgrind-out-file=/dev/null <binary>`
//! (the total `Collected` line) and the same under `--tool=memcheck` (the heap summary's
//! allocation count).
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_auth::jwt::{JwtVerifier, TokenRequest};
use mcp_auth::layer::AuthLayer;
use mcp_security::SecurityConfig;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::core::config::{Environment, Secret};
use serde::Deserialize;
use tower::{Layer, Service, ServiceExt};

const BIND: &str = "127.0.0.1:8080";
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";

/// A ~200-byte stateless `tools/call` (2026-07-28: `params._meta` carries the version).
const BODY: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","#,
    r#""arguments":{"text":"hello from the bench"},"_meta":{"#,
    r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientCapabilities":{}}}}"#
);

/// The inner service: reads the whole body, answers a small JSON 200.
#[derive(Clone, Copy)]
struct ReadBody;

impl<B> Service<Request<B>> for ReadBody
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(async move {
            let read = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes().len(),
                Err(_) => 0,
            };
            black_box(read);
            let mut res = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(res)
        })
    }
}

fn tools_call(authorization: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::post("/mcp")
        .header(HOST, BIND)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header(AUTHORIZATION, authorization.clone())
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("request");
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn sign(verifier: &JwtVerifier) -> String {
    verifier
        .sign(
            &TokenRequest {
                sub: "alice".into(),
                audience: vec![RESOURCE.into()],
                issuer: None,
                ttl: Duration::from_secs(3600),
                scopes: vec!["notes:read".into(), "notes:write".into()],
            },
            SystemTime::now(),
        )
        .expect("token")
}

/// The claims a user decodes into (jsonwebtoken checks `exp` and `aud` itself).
#[derive(Deserialize)]
#[allow(dead_code)]
struct UserClaims {
    sub: String,
    exp: u64,
    scope: Option<String>,
}

/// Calls that were not ready on their first poll and had to wait on the runtime.
static WAITED: AtomicU64 = AtomicU64::new(0);

/// One call to completion: polled once in place (inside the runtime's context, so timers and
/// spawns work); only a call that is not ready at once waits on `rt` (counted in `WAITED`).
fn call<S, B>(rt: &tokio::runtime::Runtime, svc: &S, req: Request<Full<Bytes>>) -> Response<B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    let mut future = pin!(async move {
        let svc = svc.ready().await.expect("ready");
        svc.call(req).await.expect("call")
    });
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res,
        Poll::Pending => {
            WAITED.fetch_add(1, Ordering::Relaxed);
            rt.block_on(future)
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    let dir = std::env::temp_dir().join(format!("mcp-stack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = generate_key(DEFAULT_KEY_PREFIX).expect("key");
    // A random HMAC key for the audit chain (the production checks refuse a weak one).
    let audit_key = generate_key(DEFAULT_KEY_PREFIX).expect("audit key");
    // A random HS256 secret, likewise.
    let secret = generate_key("hs256_").expect("jwt secret");
    let config = || {
        SecurityConfig::builder()
            .environment(Environment::Production)
            .bind_addr(BIND.parse().expect("bind"))
            .mcp_path("/mcp")
            .resource_url(RESOURCE)
            .api_key(Secret::new(&key))
            .jwt_secret(Secret::new(&secret))
            .jwt_audience(RESOURCE)
            .cors_origins(["https://app.example.com"])
            .rate_limit_quota(1_000_000_000, Duration::from_secs(60), None)
    };
    let security = config()
        .audit_log_file(dir.join("audit.jsonl"), Secret::new(&audit_key))
        .build()
        .expect("config")
        .layer()
        .expect("stack");
    // The same stack with the audit records going to `tracing` only (no subscriber here): what
    // the file sink's hand-off to its writer thread costs the request.
    let security_no_file = config().build().expect("config").layer().expect("stack");
    let verifier = JwtVerifier::builder()
        .secret(Secret::new(&secret))
        .audience(RESOURCE)
        .build()
        .expect("verifier");
    let jwt = sign(&verifier);
    let api_key = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
    let bearer_jwt = HeaderValue::from_str(&format!("Bearer {jwt}")).expect("header");

    let bare = ReadBody;
    let stacked = security.layer(ReadBody);
    let stacked_no_file = security_no_file.layer(ReadBody);
    for authorization in [&api_key, &bearer_jwt] {
        let res = call(&rt, &stacked, tools_call(authorization));
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
    }
    assert_eq!(
        call(&rt, &stacked_no_file, tools_call(&api_key)).status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&rt, &bare, tools_call(&api_key)).status(),
        StatusCode::OK
    );

    if let Ok(spec) = std::env::var("MCP_STACK_PROFILE") {
        let (row, n) = spec.split_once(':').expect("MCP_STACK_PROFILE=<row>:<n>");
        let n: u64 = n.parse().expect("a request count");
        for _ in 0..n {
            let req = match row {
                "jwt" => tools_call(&bearer_jwt),
                _ => tools_call(&api_key),
            };
            let status = match row {
                "bare" => call(&rt, &bare, req).status(),
                "api_key" | "jwt" => call(&rt, &stacked, req).status(),
                "api_key_no_file" => call(&rt, &stacked_no_file, req).status(),
                other => panic!("unknown row {other}"),
            };
            assert_eq!(status, StatusCode::OK);
        }
        rt.block_on(security.audit().close()).expect("audit close");
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(0);
    }

    let mut group = c.benchmark_group("whole_stack_tools_call_200B");
    group.bench_function("bare service (reads the body)", |b| {
        b.iter_batched(
            || tools_call(&api_key),
            |req| call(&rt, &bare, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("SecurityLayer + API key", |b| {
        b.iter_batched(
            || tools_call(&api_key),
            |req| call(&rt, &stacked, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        "SecurityLayer + API key, audit without the file sink",
        |b| {
            b.iter_batched(
                || tools_call(&api_key),
                |req| call(&rt, &stacked_no_file, req),
                BatchSize::SmallInput,
            )
        },
    );
    // The same token on every request, as an agent sends it: verified once, then served by the
    // verified-token cache (on by default).
    group.bench_function("SecurityLayer + HS256 JWT (repeated token, cached)", |b| {
        b.iter_batched(
            || tools_call(&bearer_jwt),
            |req| call(&rt, &stacked, req),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // AuthLayer's HS256 path vs the decode it wraps: first sight of a token (the verified-token
    // cache off, so every request verifies), and the same token again from the cache.
    let auth = AuthLayer::builder()
        .jwt(verifier.clone())
        .resource(RESOURCE)
        .build()
        .expect("auth");
    let uncached = JwtVerifier::builder()
        .secret(Secret::new(&secret))
        .audience(RESOURCE)
        .cache_size(0)
        .build()
        .expect("verifier");
    let auth_first_sight = AuthLayer::builder()
        .jwt(uncached)
        .resource(RESOURCE)
        .build()
        .expect("auth");
    let empty = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let authed = auth_first_sight.layer(empty);
    let authed_cached = auth.layer(empty);
    assert_eq!(
        call(&rt, &authed, tools_call(&bearer_jwt)).status(),
        StatusCode::OK
    );
    let decoding = DecodingKey::from_secret(secret.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[RESOURCE]);
    jsonwebtoken::decode::<UserClaims>(&jwt, &decoding, &validation).expect("raw decode");

    let mut group = c.benchmark_group("auth_hs256_first_sight");
    group.bench_function("bare service", |b| {
        b.iter_batched(
            || tools_call(&bearer_jwt),
            |req| call(&rt, &empty, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("AuthLayer + HS256 JWT", |b| {
        b.iter_batched(
            || tools_call(&bearer_jwt),
            |req| call(&rt, &authed, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("AuthLayer + HS256 JWT, repeated (cached)", |b| {
        b.iter_batched(
            || tools_call(&bearer_jwt),
            |req| call(&rt, &authed_cached, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("jsonwebtoken::decode HS256 (rust_crypto, aud + exp)", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<UserClaims>(black_box(&jwt), &decoding, &validation)
                .expect("decode")
        })
    });
    group.finish();

    println!(
        "calls that were not ready on their first poll: {}",
        WAITED.load(Ordering::Relaxed)
    );
    rt.block_on(security.audit().close()).expect("audit close");
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
