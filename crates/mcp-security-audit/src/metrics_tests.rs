use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{AuthFailure, AuthOutcome, GuardBody, RateLimitOutcome, Rejection};
use tower::ServiceExt;
use tower_layer::Layer;

use crate::AuditLayer;
use crate::sink::MemorySink;

type Res = Response<GuardBody<Full<Bytes>>>;

/// A refusal the way the inner layers send it: the rejection and the layer's outcome in the
/// response's extensions.
fn refused(status: StatusCode, code: &'static str) -> Res {
    Rejection::new(status, code).into_response(&ResponseFormat::Json)
}

/// Answers by the request path, the way the inner layers and the service would.
async fn inner(req: Request<Full<Bytes>>) -> Result<Res, Infallible> {
    let res = match req.uri().path() {
        "/ok" => Response::new(GuardBody::inner(Full::new(Bytes::from_static(b"ok")))),
        "/boom" => {
            let mut res = Response::new(GuardBody::inner(Full::default()));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res
        }
        "/unauthorized" => {
            let mut res = refused(StatusCode::UNAUTHORIZED, "invalid_token");
            res.extensions_mut().insert(AuthOutcome::Rejected {
                failure: AuthFailure::UnknownKey,
                principal: None,
                fingerprint: None,
            });
            res
        }
        "/limited" => {
            let mut res = refused(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            res.extensions_mut().insert(RateLimitOutcome::Limited {
                policy: "delete".into(),
                retry_after_secs: 6,
                overflow: false,
            });
            res
        }
        "/store-down" => {
            let mut res = refused(StatusCode::SERVICE_UNAVAILABLE, "rate_limit_unavailable");
            res.extensions_mut().insert(RateLimitOutcome::Unavailable {
                retry_after_secs: 1,
            });
            res
        }
        "/fallback" => {
            let mut res = Response::new(GuardBody::inner(Full::default()));
            res.extensions_mut().insert(RateLimitOutcome::Degraded {
                policy: "ip".into(),
                admitted: true,
                remaining: 3,
                retry_after_secs: 0,
            });
            res
        }
        other => panic!("no scenario {other}"),
    };
    Ok(res)
}

#[test]
fn requests_are_counted_by_status_class_and_decision() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let sink = MemorySink::new();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let svc = AuditLayer::builder()
                .sink(sink.clone())
                .build()
                .unwrap()
                .layer(tower::service_fn(inner));
            for (path, times, want) in [
                ("/ok", 3, StatusCode::OK),
                ("/boom", 1, StatusCode::INTERNAL_SERVER_ERROR),
                ("/unauthorized", 2, StatusCode::UNAUTHORIZED),
                ("/limited", 1, StatusCode::TOO_MANY_REQUESTS),
                ("/store-down", 1, StatusCode::SERVICE_UNAVAILABLE),
                ("/fallback", 1, StatusCode::OK),
            ] {
                for _ in 0..times {
                    let req = Request::get(path).body(Full::default()).unwrap();
                    let res = svc.clone().oneshot(req).await.unwrap();
                    assert_eq!(res.status(), want, "{path}");
                }
            }
        });
        crate::metrics::describe();
    });
    assert_eq!(sink.requests().len(), 9);
    let text = handle.render();
    for want in [
        "# TYPE mcp_requests_total counter",
        "mcp_requests_total{status_class=\"2xx\",decision=\"allowed\"} 4",
        "mcp_requests_total{status_class=\"5xx\",decision=\"allowed\"} 1",
        "mcp_requests_total{status_class=\"4xx\",decision=\"rejected\"} 3",
        "mcp_requests_total{status_class=\"5xx\",decision=\"rejected\"} 1",
        "# TYPE mcp_rate_limit_store_degraded_total counter",
        "mcp_rate_limit_store_degraded_total{outcome=\"unavailable\"} 1",
        "mcp_rate_limit_store_degraded_total{outcome=\"allowed_degraded\"} 1",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // Bounded labels only: neither the path nor the limit's name becomes a label of these.
    for line in text.lines().filter(|l| {
        l.starts_with("mcp_requests_total") || l.starts_with("mcp_rate_limit_store_degraded_total")
    }) {
        assert!(!line.contains('/') && !line.contains("delete"), "{line}");
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("mcp_requests_total{"))
            .count(),
        4,
        "{text}"
    );
}

#[test]
fn without_metrics_nothing_is_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let svc = AuditLayer::builder()
                .sink(MemorySink::new())
                .metrics(false)
                .build()
                .unwrap()
                .layer(tower::service_fn(inner));
            let req = Request::get("/ok").body(Full::default()).unwrap();
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        });
    });
    let text = handle.render();
    assert!(!text.contains("mcp_requests_total"), "{text}");
}
