//! Request spans with OpenTelemetry's MCP attributes (feature `otel`), exported through
//! `tracing-opentelemetry` to the SDK's in-memory exporter: names, attributes, the W3C parent
//! from the `traceparent` header or `params._meta.traceparent`, the handler's spans as children,
//! refusals of the outer layers, and the switch.
#![cfg(feature = "otel")]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::post;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const CALL: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
const RESULT: &str =
    r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn stack(extra: &[(&str, &str)]) -> SecurityLayer {
    let mut pairs = vec![
        ("MCP_ENV", "development"),
        ("MCP_API_KEY", KEY),
        ("MCP_ALLOWED_HOSTS", "127.0.0.1:8080"),
        ("MCP_CORS_ORIGINS", "https://app.example.com"),
    ];
    pairs.extend_from_slice(extra);
    SecurityConfig::builder_from_env(&Env::from_pairs("MCP", pairs))
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

/// Sends `body` through the stack around a handler that opens a span of its own; returns the
/// status and every span exported.
async fn traced(
    stack: SecurityLayer,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route(
            "/mcp",
            post(|| async {
                let _handler = tracing::info_span!("handler").entered();
                ([("content-type", "application/json")], RESULT)
            }),
        )
        .layer(stack);
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .extension(ConnectInfo(
            "192.0.2.10:50000".parse::<SocketAddr>().unwrap(),
        ));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = app
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    provider.force_flush().unwrap();
    (status, exporter.get_finished_spans().unwrap())
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| &kv.value)
}

fn string(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[tokio::test]
async fn a_tool_call_is_one_server_span_with_the_mcp_attributes_and_the_callers_parent() {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (status, spans) = traced(
        stack(&[]),
        CALL,
        &[
            ("authorization", &format!("Bearer {KEY}")),
            ("traceparent", &traceparent),
            ("mcp-protocol-version", "2025-11-25"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let span = named(&spans, "tools/call echo");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        string(span, "mcp.method.name").as_deref(),
        Some("tools/call")
    );
    assert_eq!(string(span, "gen_ai.tool.name").as_deref(), Some("echo"));
    assert_eq!(string(span, "jsonrpc.request.id").as_deref(), Some("5"));
    assert_eq!(
        string(span, "mcp.protocol.version").as_deref(),
        Some("2025-11-25")
    );
    // `MCP_API_KEY`'s principal.
    assert_eq!(string(span, "enduser.id").as_deref(), Some("env"));
    assert_eq!(string(span, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(string(span, "url.path").as_deref(), Some("/mcp"));
    assert_eq!(
        attr(span, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(attr(span, "error.type"), None);
    assert_eq!(span.status, Status::Unset);
    // The caller's trace, and our span under the caller's span.
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT).unwrap());
    // The handler's span is a child of ours.
    let handler = named(&spans, "handler");
    assert_eq!(
        handler.span_context.trace_id(),
        span.span_context.trace_id()
    );
    assert_eq!(handler.parent_span_id, span.span_context.span_id());
}

#[tokio::test]
async fn the_parent_comes_from_meta_traceparent_when_there_is_no_header() {
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta_parent = "b7ad6b7169203331";
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{{"name":"echo","arguments":{{}},"_meta":{{"traceparent":"00-{meta_trace}-{meta_parent}-01","tracestate":"vendor=1"}}}}}}"#
    );
    let (status, spans) = traced(
        stack(&[]),
        &body,
        &[("authorization", &format!("Bearer {KEY}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let span = named(&spans, "tools/call echo");
    assert_eq!(string(span, "jsonrpc.request.id").as_deref(), Some("r-1"));
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(meta_trace).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(meta_parent).unwrap());
    assert_eq!(
        span.span_context.trace_state().header(),
        "vendor=1",
        "tracestate travels with traceparent"
    );
    let handler = named(&spans, "handler");
    assert_eq!(handler.parent_span_id, span.span_context.span_id());

    // The header wins over the body.
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let (_, spans) = traced(
        stack(&[]),
        &body,
        &[
            ("authorization", &format!("Bearer {KEY}")),
            ("traceparent", &traceparent),
        ],
    )
    .await;
    let span = named(&spans, "tools/call echo");
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
}

#[tokio::test]
async fn refusals_carry_their_code_as_error_type() {
    // No credential: the auth layer's 401.
    let (status, spans) = traced(stack(&[]), CALL, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!spans.iter().any(|s| s.name == "handler"), "{spans:#?}");
    let span = named(&spans, "tools/call echo");
    assert_eq!(string(span, "error.type").as_deref(), Some("invalid_token"));
    assert_eq!(
        attr(span, "http.response.status_code"),
        Some(&Value::I64(401))
    );
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(attr(span, "enduser.id"), None);

    // A hostile Origin: refused by the Origin guard before the body is read, still one span,
    // named after the HTTP method.
    let (status, spans) = traced(
        stack(&[]),
        CALL,
        &[
            ("authorization", &format!("Bearer {KEY}")),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "POST");
    assert_eq!(
        string(span, "error.type").as_deref(),
        Some("origin_not_allowed")
    );
    assert_eq!(attr(span, "mcp.method.name"), None);
}

#[tokio::test]
async fn spans_can_be_switched_off() {
    let (status, spans) = traced(
        stack(&[("MCP_OTEL_SPANS", "false")]),
        CALL,
        &[("authorization", &format!("Bearer {KEY}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Only the handler's own span: no request span, and the handler's is a root.
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "handler");
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}
