//! Request spans for OpenTelemetry (cargo feature `otel`).
//!
//! With the feature on (and `OTEL_SPANS` not `false`), the stack opens one `tracing` span per
//! request, named and shaped after OpenTelemetry's semantic conventions for MCP, so an
//! application that exports `tracing` spans with
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) sees, for every request —
//! refused ones included:
//!
//! | attribute | value |
//! |---|---|
//! | span name (`otel.name`) | `{mcp.method.name} {target}` (`tools/call get_weather`), the method alone when it names no target, `{http.request.method}` for requests that are not MCP messages |
//! | `otel.kind` | `server` |
//! | `mcp.method.name` | the JSON-RPC method |
//! | `gen_ai.tool.name` / `gen_ai.prompt.name` / `mcp.resource.uri` | the tool of `tools/call`, the prompt of `prompts/get`, the resource of `resources/*` |
//! | `jsonrpc.request.id` | the request id |
//! | `mcp.protocol.version` | the `MCP-Protocol-Version` header, else the body's `_meta` version |
//! | `mcp.session.id` | the `Mcp-Session-Id` header (legacy sessions) |
//! | `enduser.id` | the authenticated principal |
//! | `error.type` | the refusal's code (`invalid_token`, `insufficient_scope`, `rate_limited`, …) or the status code of a 5xx; with `otel.status_code = ERROR` |
//! | `http.request.method`, `url.path`, `http.response.status_code` | as in the HTTP conventions |
//!
//! **Trace context.** The span's parent is the W3C `traceparent` (and `tracestate`) header of
//! the request when it has one, else `params._meta.traceparent` / `tracestate` of the MCP
//! message (the MCP specification's place for it in a JSON-RPC body). Spans the service opens
//! while handling the request are children of this one: the span is entered from the MCP
//! envelope inspection inwards (the body is read there, and the parent must be known before the
//! span starts). Refusals of the layers before it (Origin guard, network lists, the per-client
//! limit) get a span too, with the header's parent.
//!
//! Without the feature both layers are pass-throughs: the stack's type stays the same and the
//! cost is a branch.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mcp_security_core::jsonrpc::JsonRpcId;
use mcp_security_core::{AuthOutcome, McpCall, Rejection};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};

/// The request's span, handed by [`RequestSpanLayer`] to [`SpanContextLayer`] in the request
/// extensions.
#[derive(Clone)]
struct RequestSpan {
    span: Span,
    /// Whether the parent came from the `traceparent` header (the body's is then ignored).
    parent_from_header: bool,
}

/// Opens the request span, outermost in the stack; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct RequestSpanLayer {
    enabled: bool,
}

impl RequestSpanLayer {
    /// Spans on when `on` and the crate was built with the `otel` feature.
    pub fn new(on: bool) -> Self {
        RequestSpanLayer {
            enabled: on && cfg!(feature = "otel"),
        }
    }

    /// Whether requests get spans.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpanService {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub struct RequestSpanService<S> {
    inner: S,
    enabled: bool,
}

impl<S, B, ResB> Service<Request<B>> for RequestSpanService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequestSpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !self.enabled {
            return RequestSpanFuture {
                inner: self.inner.call(req),
                span: None,
            };
        }
        let span = open_span(&req);
        let parent_from_header = set_parent_from_headers(&span, req.headers());
        req.extensions_mut().insert(RequestSpan {
            span: span.clone(),
            parent_from_header,
        });
        RequestSpanFuture {
            inner: self.inner.call(req),
            span: Some(span),
        }
    }
}

pin_project! {
    /// The future of [`RequestSpanService`]: records the response's facts on the span.
    pub struct RequestSpanFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F, ResB, E> Future for RequestSpanFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some(span) = this.span.take() {
            match &out {
                Ok(res) => record_response(&span, res),
                Err(_) => {
                    span.record("error.type", "service_error");
                    span.record("otel.status_code", "ERROR");
                }
            }
        }
        Poll::Ready(out)
    }
}

fn open_span<B>(req: &Request<B>) -> Span {
    let method = req.method().as_str();
    let span = tracing::info_span!(
        target: "mcp_security::request",
        "mcp.request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.path = req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        mcp.method.name = tracing::field::Empty,
        gen_ai.tool.name = tracing::field::Empty,
        gen_ai.prompt.name = tracing::field::Empty,
        mcp.resource.uri = tracing::field::Empty,
        jsonrpc.request.id = tracing::field::Empty,
        mcp.protocol.version = tracing::field::Empty,
        mcp.session.id = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let headers = req.headers();
    if let Some(v) = header_str(headers, "mcp-protocol-version") {
        span.record("mcp.protocol.version", v.trim());
    }
    if let Some(v) = header_str(headers, "mcp-session-id") {
        span.record("mcp.session.id", v);
    }
    span
}

fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn record_response<B>(span: &Span, res: &Response<B>) {
    let status = res.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    let ext = res.extensions();
    if let Some(message) = ext.get::<McpCall>().and_then(McpCall::single) {
        if let Some(method) = message.method() {
            span.record("mcp.method.name", method);
            let target = message.target();
            match (method, target) {
                ("tools/call", Some(t)) => {
                    span.record("gen_ai.tool.name", t);
                }
                ("prompts/get", Some(t)) => {
                    span.record("gen_ai.prompt.name", t);
                }
                (m, Some(t)) if m.starts_with("resources/") => {
                    span.record("mcp.resource.uri", t);
                }
                _ => {}
            }
            let name = match target {
                Some(t) => format!("{method} {t}"),
                None => method.to_owned(),
            };
            rename(span, name);
        }
        match message.id() {
            Some(JsonRpcId::String(id)) => {
                span.record("jsonrpc.request.id", &**id);
            }
            Some(JsonRpcId::Number(id)) => {
                span.record("jsonrpc.request.id", id.to_string());
            }
            Some(JsonRpcId::Null) | None => {}
        }
        if let Some(v) = message.meta_protocol_version() {
            span.record("mcp.protocol.version", v);
        }
    }
    match ext.get::<AuthOutcome>() {
        Some(AuthOutcome::Authenticated { principal })
        | Some(AuthOutcome::Rejected {
            principal: Some(principal),
            ..
        }) => {
            span.record("enduser.id", principal.id());
        }
        _ => {}
    }
    if let Some(rejection) = ext.get::<Rejection>() {
        span.record("error.type", rejection.code());
        span.record("otel.status_code", "ERROR");
    } else if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// Names the span: `otel.name` renames a span OpenTelemetry has not started yet; one that was
/// entered (from the envelope inspection inwards) is renamed through the OpenTelemetry span.
fn rename(span: &Span, name: String) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.record("otel.name", name.as_str());
        span.context().span().update_name(name);
    }
    #[cfg(not(feature = "otel"))]
    span.record("otel.name", name);
}

/// Sets the span's parent from the request's W3C `traceparent` / `tracestate` headers; whether
/// there was a `traceparent` header.
#[cfg(feature = "otel")]
fn set_parent_from_headers(span: &Span, headers: &http::HeaderMap) -> bool {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Some(traceparent) = header_str(headers, "traceparent") else {
        return false;
    };
    let carrier = Carrier {
        traceparent,
        tracestate: header_str(headers, "tracestate"),
    };
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    // Without a tracing-opentelemetry layer in the subscriber there is nothing to set.
    let _ = span.set_parent(cx);
    true
}

#[cfg(not(feature = "otel"))]
fn set_parent_from_headers(_: &Span, _: &http::HeaderMap) -> bool {
    false
}

/// Sets the span's parent from `params._meta.traceparent` / `tracestate` of a single MCP message.
#[cfg(feature = "otel")]
fn set_parent_from_meta(span: &Span, call: &McpCall) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Some(message) = call.single() else {
        return;
    };
    let Some(meta) = meta::trace_context(message.body()) else {
        return;
    };
    let carrier = Carrier {
        traceparent: &meta.traceparent,
        tracestate: meta.tracestate.as_deref(),
    };
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

#[cfg(not(feature = "otel"))]
fn set_parent_from_meta(_: &Span, _: &McpCall) {}

/// The two W3C trace-context fields, as an OpenTelemetry propagation carrier.
#[cfg(feature = "otel")]
struct Carrier<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

#[cfg(feature = "otel")]
impl opentelemetry::propagation::Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec!["traceparent"];
        if self.tracestate.is_some() {
            keys.push("tracestate");
        }
        keys
    }
}

#[cfg(feature = "otel")]
mod meta {
    //! `params._meta.traceparent` / `tracestate` of a JSON-RPC message body.
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }

    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default, rename = "_meta")]
        meta: Option<Meta<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Meta<'a> {
        #[serde(borrow)]
        pub(super) traceparent: Cow<'a, str>,
        #[serde(borrow, default)]
        pub(super) tracestate: Option<Cow<'a, str>>,
    }

    /// The trace context of a single message, when `params._meta` has a string `traceparent`;
    /// anything else (a batch, other types, no `_meta`) is no context.
    pub(super) fn trace_context(body: &[u8]) -> Option<Meta<'_>> {
        serde_json::from_slice::<Message<'_>>(body)
            .ok()?
            .params?
            .meta
    }
}

/// Enters the request span from the MCP envelope inspection inwards, after taking its parent
/// from `params._meta.traceparent` when the request had no `traceparent` header; see the
/// [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanContextLayer;

impl<S> Layer<S> for SpanContextLayer {
    type Service = SpanContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SpanContextService { inner }
    }
}

/// The service of [`SpanContextLayer`].
#[derive(Debug, Clone)]
pub struct SpanContextService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for SpanContextService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(RequestSpan {
            span,
            parent_from_header,
        }) = req.extensions_mut().remove::<RequestSpan>()
        else {
            return self.inner.call(req).instrument(Span::none());
        };
        if !parent_from_header && let Some(call) = req.extensions().get::<McpCall>() {
            set_parent_from_meta(&span, call);
        }
        let fut = span.in_scope(|| self.inner.call(req));
        fut.instrument(span)
    }
}
