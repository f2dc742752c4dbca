//! What `AuthLayer` adds to one request: a full `tower` call (poll_ready + call + the response
//! future) through a trivial inner service that answers an empty 200, bare and behind the layer,
//! once with an API key (`Authorization: Bearer <key>` checked in constant time against a store
//! of ten keys) and once with an HS256 JWT (signed once, signature and claims verified on every
//! request). A second group prices the refusals: no credential at all, and a JWT whose signature
//! does not verify. The request is built fresh on every iteration.
//!
//! Run: `cargo bench -p benches --bench auth`
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use mcp_auth::api_key::{ApiKeyStore, DEFAULT_KEY_PREFIX, generate_key};
use mcp_auth::jwt::{JwtVerifier, TokenRequest};
use mcp_auth::layer::AuthLayer;
use mcp_auth::policy::AuthPolicy;
use mcp_core::Scopes;
use mcp_core::config::Secret;
use tower::{Service, ServiceBuilder, ServiceExt};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &str = "other-secret-0123456789abcdef0123456789abcdef";
const KEYS: usize = 10;

/// The inner service every variant wraps: an empty 200.
async fn ok(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

fn verifier(secret: &str) -> JwtVerifier {
    JwtVerifier::builder()
        .secret(Secret::new(secret))
        .audience(RESOURCE)
        .build()
        .expect("verifier")
}

fn token(verifier: &JwtVerifier) -> HeaderValue {
    let token = verifier
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
        .expect("token");
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

fn request(authorization: Option<&HeaderValue>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/api");
    if let Some(value) = authorization {
        req = req.header(AUTHORIZATION, value.clone());
    }
    req.body(Full::default()).expect("request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut store = ApiKeyStore::builder();
    let mut key = String::new();
    for i in 0..KEYS {
        key = generate_key(DEFAULT_KEY_PREFIX).expect("key");
        store = store.key(format!("client-{i}"), &key, Scopes::new(["notes:read"]));
    }
    // The last key in the store; the scan is constant time, so which one does not matter.
    let api_key = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
    let jwt = verifier(SECRET);
    let good_jwt = token(&jwt);
    let bad_jwt = token(&verifier(OTHER_SECRET));

    let auth = AuthLayer::builder()
        .api_keys(store.build().expect("store"))
        .jwt(jwt)
        .policy(
            AuthPolicy::builder()
                .require_path("/api", None, ["notes:read"])
                .build()
                .expect("policy"),
        )
        .resource(RESOURCE)
        .build()
        .expect("layer");

    let bare = ServiceBuilder::new().service_fn(ok);
    let guarded = ServiceBuilder::new().layer(auth).service_fn(ok);

    // Check each case answers as expected before timing it.
    let status = |authorization: Option<&HeaderValue>| {
        rt.block_on(guarded.clone().oneshot(request(authorization)))
            .expect("call")
            .status()
    };
    assert_eq!(status(Some(&api_key)), StatusCode::OK);
    assert_eq!(status(Some(&good_jwt)), StatusCode::OK);
    assert_eq!(status(None), StatusCode::UNAUTHORIZED);
    assert_eq!(status(Some(&bad_jwt)), StatusCode::UNAUTHORIZED);

    let mut group = c.benchmark_group("auth_per_request");
    group.bench_function("bare service", |b| {
        b.iter(|| {
            let mut svc = bare;
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request(None)).await.expect("call"))
            })
        })
    });
    for (name, authorization) in [
        ("AuthLayer + API key", &api_key),
        ("AuthLayer + HS256 JWT", &good_jwt),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut svc = guarded.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(Some(authorization))).await.expect("call"))
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("auth_rejection");
    for (name, authorization) in [
        ("missing credential", None),
        ("bad JWT signature", Some(&bad_jwt)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut svc = guarded.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(authorization)).await.expect("call"))
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
