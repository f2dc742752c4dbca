//! The peer: the stack a user assembles by hand from the ecosystem for the same controls, written
//! the way the axum and tower-http documentation shows it (one `Router::layer` per middleware).
//!
//! | control | crate |
//! |---|---|
//! | request traces | tower-http `TraceLayer::new_for_http()` |
//! | security headers | seven tower-http `SetResponseHeaderLayer::overriding` |
//! | CORS | tower-http `CorsLayer` with an origin list, the MCP methods and headers |
//! | per-IP rate limit | tower_governor `GovernorLayer` (`PeerIpKeyExtractor`) |
//! | body size | tower-http `RequestBodyLimitLayer` (1 MiB) |
//! | bearer token | tower-http `ValidateRequestHeaderLayer::bearer` |
//!
//! What it does not have, and the full stack does: the MCP envelope read and header conformance,
//! scopes, JWT/JWKS, the audit trail, per-caller/tool limits, the Origin/Host guard, session
//! binding, `Server` stripping, HSTS only over TLS.
use std::time::Duration;

use axum::Router;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// The peer stack around `app` (the MCP router), guarding it with `token`.
///
/// `quota_per_second` and `burst` configure tower_governor per client IP; the server must be
/// served with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn stack(app: Router, token: &str, origin: &str, quota_per_second: u64, burst: u32) -> Router {
    let governor = GovernorConfigBuilder::default()
        .period(Duration::from_nanos(
            1_000_000_000 / quota_per_second.max(1),
        ))
        .burst_size(burst)
        .finish()
        .expect("governor config");
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list([
            HeaderValue::from_str(origin).expect("origin")
        ]))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
        ])
        .expose_headers([HeaderName::from_static("mcp-session-id")])
        .max_age(Duration::from_secs(7200));
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };

    // Innermost first: `Router::layer` wraps everything added before it. (tower-http 0.7
    // deprecates `bearer` as "too basic": one static token compared with `==`. It is still the
    // ecosystem's one-line bearer check, and what the peer stack names.)
    #[allow(deprecated)]
    let bearer = ValidateRequestHeaderLayer::bearer(token);
    app.layer(bearer)
        .layer(RequestBodyLimitLayer::new(1024 * 1024))
        .layer(GovernorLayer::new(governor))
        .layer(cors)
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
        .layer(set(
            header::REFERRER_POLICY,
            "strict-origin-when-cross-origin",
        ))
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(set(header::CACHE_CONTROL, "no-store"))
        .layer(set(
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ))
        .layer(TraceLayer::new_for_http())
}
