//! `mcp-headers` against tower-http doing the same job.
//!
//! - `security_headers_api`: the nine headers of `SecurityHeadersLayer::api()` (HSTS included)
//!   set on a 200, by our layer (overwriting, so it does exactly what the peers do; and with its
//!   defaults: keep-existing, `Server`/`X-Powered-By` stripped, HSTS decided from the request),
//!   by nine stacked tower-http `SetResponseHeaderLayer::overriding` layers, and by one
//!   tower-http `SetMultipleResponseHeadersLayer::overriding`.
//! - `cors_origin_guard_{preflight,simple}`: `OriginGuardLayer` (Host allowlist + Origin check +
//!   tower-http `CorsLayer` driven by our `CorsPolicy`) answering a preflight and passing a
//!   `POST /mcp` from an allowed origin, next to a bare tower-http `CorsLayer` with the same
//!   origin list, methods and headers (no Origin or Host check); plus the price of our 403.
//!
//! Every inner service answers at once, so each call is driven by polling with a no-op waker
//! instead of a runtime: what is timed is `poll_ready` + `call` + the response future of the
//! layers, with the request built outside the timed section (`iter_batched`) and the response
//! dropped outside it. A bare service gives the floor.
//!
//! Run: `cargo bench -p benches --bench headers`
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use mcp_headers::{CorsPolicy, HeaderMode, HstsWhen, OriginGuardLayer, SecurityHeadersLayer};
use tower::{Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::set_header::response::SetMultipleResponseHeadersLayer;

const ORIGIN: &str = "https://app.example.com";

/// The inner service every variant wraps: a small JSON 200.
async fn ok(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// Drive one call to completion; every service here is ready at once and answers at once.
fn call_now<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("service not ready"),
    }
    let mut future = pin!(svc.call(req));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("response not ready"),
    }
}

/// The nine headers of the api() preset, HSTS included, as (name, value).
fn api_headers() -> Vec<(HeaderName, HeaderValue)> {
    SecurityHeadersLayer::api()
        .headers()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn get() -> Request<Full<Bytes>> {
    Request::get("https://mcp.example.com/mcp")
        .body(Full::default())
        .expect("request")
}

fn bench_headers(c: &mut Criterion) {
    let headers = api_headers();
    assert_eq!(headers.len(), 9);

    let mut bare = ServiceBuilder::new().service_fn(ok);
    let mut ours_overwrite = ServiceBuilder::new()
        .layer(
            SecurityHeadersLayer::builder()
                .header_mode(HeaderMode::Overwrite)
                .hsts_when(HstsWhen::Always)
                .strip_server_headers(false)
                .build()
                .expect("layer"),
        )
        .service_fn(ok);
    let mut ours_default = ServiceBuilder::new()
        .layer(SecurityHeadersLayer::api())
        .service_fn(ok);
    let mut stacked = {
        let h = |i: usize| {
            let (name, value) = headers[i].clone();
            SetResponseHeaderLayer::overriding(name, value)
        };
        ServiceBuilder::new()
            .layer(h(0))
            .layer(h(1))
            .layer(h(2))
            .layer(h(3))
            .layer(h(4))
            .layer(h(5))
            .layer(h(6))
            .layer(h(7))
            .layer(h(8))
            .service_fn(ok)
    };
    let mut multiple = ServiceBuilder::new()
        .layer(SetMultipleResponseHeadersLayer::overriding(
            headers.iter().cloned().map(Into::into).collect(),
        ))
        .service_fn(ok);

    // Every variant sets the same nine headers (plus the inner content-type).
    for res in [
        call_now(&mut ours_overwrite, get()),
        call_now(&mut ours_default, get()),
        call_now(&mut stacked, get()),
        call_now(&mut multiple, get()),
    ] {
        assert_eq!(res.headers().len(), 10);
        for (name, value) in &headers {
            assert_eq!(&res.headers()[name], value, "{name}");
        }
    }

    let mut group = c.benchmark_group("security_headers_api");
    group.bench_function("bare service", |b| {
        b.iter_batched(get, |req| call_now(&mut bare, req), BatchSize::SmallInput)
    });
    group.bench_function("mcp_headers::SecurityHeadersLayer (overwrite)", |b| {
        b.iter_batched(
            get,
            |req| call_now(&mut ours_overwrite, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("mcp_headers::SecurityHeadersLayer (defaults)", |b| {
        b.iter_batched(
            get,
            |req| call_now(&mut ours_default, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tower_http::SetResponseHeaderLayer x9 (overriding)", |b| {
        b.iter_batched(
            get,
            |req| call_now(&mut stacked, req),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        "tower_http::SetMultipleResponseHeadersLayer (overriding)",
        |b| {
            b.iter_batched(
                get,
                |req| call_now(&mut multiple, req),
                BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

fn preflight() -> Request<Full<Bytes>> {
    Request::options("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, ORIGIN)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type,mcp-protocol-version",
        )
        .body(Full::default())
        .expect("request")
}

fn simple() -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer mcp-sk-0123456789")
        .body(Full::default())
        .expect("request")
}

fn refused() -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::default())
        .expect("request")
}

fn bench_cors(c: &mut Criterion) {
    let policy = CorsPolicy::builder()
        .origins([ORIGIN, "https://admin.example.com"])
        .build()
        .expect("policy");
    let guard = OriginGuardLayer::builder(&policy)
        .bind_addr("127.0.0.1:8080".parse().expect("addr"))
        .build()
        .expect("guard");
    let mut ours = ServiceBuilder::new().layer(guard).service_fn(ok);

    // The same origins, methods, headers and max-age, as a bare tower-http list.
    let mut peer = ServiceBuilder::new()
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list([
                    HeaderValue::from_static(ORIGIN),
                    HeaderValue::from_static("https://admin.example.com"),
                ]))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers(mcp_headers::cors::MCP_ALLOW_HEADERS.map(HeaderName::from_static))
                .expose_headers(mcp_headers::cors::MCP_EXPOSE_HEADERS.map(HeaderName::from_static))
                .max_age(Duration::from_secs(7200)),
        )
        .service_fn(ok);
    let mut bare = ServiceBuilder::new().service_fn(ok);

    // Both answer alike before timing.
    for make in [preflight, simple] {
        let a = call_now(&mut ours, make());
        let b = call_now(&mut peer, make());
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    }
    assert_eq!(
        call_now(&mut ours, refused()).status(),
        StatusCode::FORBIDDEN
    );

    for (name, make) in [
        ("preflight", preflight as fn() -> Request<Full<Bytes>>),
        ("simple", simple),
    ] {
        let mut group = c.benchmark_group(format!("cors_origin_guard_{name}"));
        if name == "simple" {
            group.bench_function("bare service", |b| {
                b.iter_batched(make, |req| call_now(&mut bare, req), BatchSize::SmallInput)
            });
        }
        group.bench_function(
            "mcp_headers::OriginGuardLayer (Host + Origin + CORS)",
            |b| b.iter_batched(make, |req| call_now(&mut ours, req), BatchSize::SmallInput),
        );
        group.bench_function("tower_http::CorsLayer (origin list, no guard)", |b| {
            b.iter_batched(make, |req| call_now(&mut peer, req), BatchSize::SmallInput)
        });
        group.finish();
    }

    let mut group = c.benchmark_group("cors_origin_guard_refused");
    group.bench_function("mcp_headers::OriginGuardLayer 403 (JSON-RPC body)", |b| {
        b.iter_batched(
            refused,
            |req| black_box(call_now(&mut ours, req)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_headers, bench_cors);
criterion_main!(benches);
