//! [`McpInspectLayer`]: read the JSON-RPC envelope of MCP POSTs, within a bound, before any
//! policy needs it.
//!
//! For a `POST` to the MCP path (the path itself or anything under it), the layer reads at most
//! `max_body_bytes` of the body — enforced while the body streams, and up front from
//! `Content-Length` — parses the envelope with
//! [`parse_envelope_bytes`], checks the MCP transport
//! headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) against it with [`check_headers`],
//! inserts the [`McpCall`] into the request extensions and hands the inner service the identical
//! bytes. The `McpCall` is also put into the
//! response's extensions, so layers outside this one (audit) can record what was called. Every
//! other request (GET streams, DELETE, other paths) passes through untouched and unbuffered.
//!
//! The header rules mirror the MCP 2026-07-28 transport table (see [`crate::mcp_headers`] for the
//! per-method table): `Mcp-Name` is compared with the field its method names (`params.name`,
//! `params.uri` or `params.taskId`) after decoding its `=?base64?…?=` form; in the 2026-07-28
//! era (an `MCP-Protocol-Version` of 2026-07-28 or later) `Mcp-Method` and, where the table
//! requires it, `Mcp-Name` must be present; before it, clients sent neither and their absence is
//! fine. Every JSON-RPC error answers with the request's id.
//!
//! | problem | answer |
//! |---|---|
//! | body over the limit | 413, JSON-RPC `-32600`, `id: null` |
//! | not JSON | 400, JSON-RPC `-32700` (Parse error) |
//! | JSON but not JSON-RPC 2.0, or a repeated envelope key | 400, JSON-RPC `-32600` (Invalid Request) |
//! | `MCP-Protocol-Version` not in [`protocol_versions`](McpInspectLayerBuilder::protocol_versions) | 400, JSON-RPC `-32022`, message and `data.supported` list the supported versions |
//! | the body names a protocol version in `params._meta` and `MCP-Protocol-Version` is absent or different | 400, JSON-RPC `-32020` (HeaderMismatch) |
//! | `Mcp-Method` / `Mcp-Name` disagreeing with the body (`Mcp-Name` decoded) | 400, JSON-RPC `-32020` |
//! | `MCP-Protocol-Version`, `Mcp-Method` or `Mcp-Name` sent twice (even with equal values) | 400, JSON-RPC `-32020` |
//! | `Mcp-Name` on a method that names nothing (`tools/list`, `initialize`, …) | 400, JSON-RPC `-32020` |
//! | `Mcp-Name` in the `=?base64?…?=` form that is not padded Base64 of UTF-8 | 400, JSON-RPC `-32020` |
//! | 2026-07-28 era: `Mcp-Method` missing on a request (not `initialize`), or `Mcp-Name` missing where the table requires it | 400, JSON-RPC `-32020`, the message names the header |
//! | the body could not be read | 400, JSON-RPC `-32600` |
//!
//! Each `-32020` / `-32022` rejection's message names the header concerned. `Mcp-Param-*`
//! headers need each tool's input schema and are not checked here. The `MCP-Protocol-Version`
//! of GET and DELETE requests is left to the server (the layer does not touch those requests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::ConfigError;
use crate::jsonrpc::{self, EnvelopeError, McpCall, parse_envelope_bytes};
use crate::mcp_headers::{DEFAULT_PROTOCOL_VERSIONS, HeaderProblem, check_headers};
use crate::rejection::{GuardBody, Rejection, ResponseFormat, is_grpc};

/// The request body the inner service sees: the original body (passed through) or the bytes
/// that were read (identical to what the client sent).
pub type InspectBody<B> = Either<B, Full<Bytes>>;

pub use crate::mcp_headers::{MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION};

/// The default MCP endpoint path.
pub const DEFAULT_PATH: &str = "/mcp";
/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
struct Config {
    path: Box<str>,
    max_body_bytes: usize,
    protocol_versions: Box<[String]>,
    /// `"2024-11-05, 2025-03-26, …"`, for the unsupported-version message.
    supported_list: Box<str>,
}

impl Config {
    fn applies_to<B>(&self, req: &Request<B>) -> bool {
        if req.method() != Method::POST {
            return false;
        }
        let path = req.uri().path();
        match path.strip_prefix(&*self.path) {
            Some(rest) => rest.is_empty() || rest.starts_with('/') || &*self.path == "/",
            None => false,
        }
    }
}

/// Reads the JSON-RPC envelope of MCP POSTs into an [`McpCall`] request extension; see the
/// [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use mcp_security_core::McpCall;
/// use mcp_security_core::inspect::{InspectBody, McpInspectLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let svc = ServiceBuilder::new()
///     .layer(McpInspectLayer::builder().path("/mcp").max_body_bytes(64 * 1024).build()?)
///     .service_fn(|req: Request<InspectBody<Full<Bytes>>>| async move {
///         let tool = req.extensions().get::<McpCall>().and_then(|c| c.tool()).map(str::to_owned);
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(tool.unwrap_or_default()))))
///     });
///
/// let req = Request::post("/mcp").body(Full::new(Bytes::from_static(
///     br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
/// )))?;
/// let res = svc.oneshot(req).await?;
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "echo");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct McpInspectLayer {
    config: Arc<Config>,
}

impl McpInspectLayer {
    /// The layer with its defaults: path `/mcp`, at most 1 MiB of body, the protocol versions of
    /// [`DEFAULT_PROTOCOL_VERSIONS`].
    pub fn new() -> Self {
        let versions: Box<[String]> = DEFAULT_PROTOCOL_VERSIONS
            .iter()
            .map(|v| (*v).to_owned())
            .collect();
        Self {
            config: Arc::new(Config {
                path: DEFAULT_PATH.into(),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                supported_list: versions.join(", ").into(),
                protocol_versions: versions,
            }),
        }
    }

    /// A builder that validates the settings.
    pub fn builder() -> McpInspectLayerBuilder {
        McpInspectLayerBuilder {
            path: DEFAULT_PATH.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            protocol_versions: DEFAULT_PROTOCOL_VERSIONS
                .iter()
                .map(|v| (*v).to_owned())
                .collect(),
        }
    }

    /// The accepted `MCP-Protocol-Version` values, as configured (oldest first when the
    /// configuration was).
    pub fn protocol_versions(&self) -> &[String] {
        &self.config.protocol_versions
    }

    /// The MCP endpoint path.
    pub fn path(&self) -> &str {
        &self.config.path
    }

    /// The body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }
}

impl Default for McpInspectLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds an [`McpInspectLayer`]; see [`McpInspectLayer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct McpInspectLayerBuilder {
    path: String,
    max_body_bytes: usize,
    protocol_versions: Vec<String>,
}

impl McpInspectLayerBuilder {
    /// The MCP endpoint path (default `/mcp`). POSTs to it and to paths under it are inspected.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The most body bytes read (default 1 MiB); larger bodies get 413.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The `MCP-Protocol-Version` values accepted (default [`DEFAULT_PROTOCOL_VERSIONS`], the
    /// versions the bundled rmcp speaks). A request naming another version gets 400 with a
    /// JSON-RPC error listing these. Repeats are dropped; the order is kept.
    ///
    /// ```
    /// use mcp_security_core::inspect::McpInspectLayer;
    ///
    /// let layer = McpInspectLayer::builder()
    ///     .protocol_versions(["2025-11-25", "2026-07-28"])
    ///     .build()?;
    /// assert_eq!(layer.protocol_versions(), ["2025-11-25", "2026-07-28"]);
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    pub fn protocol_versions<I, S>(mut self, versions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocol_versions.clear();
        for v in versions {
            let v = v.into();
            if !self.protocol_versions.contains(&v) {
                self.protocol_versions.push(v);
            }
        }
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `path` when it does not start with `/` or ends with `/` (other than `/` itself);
    /// `max_body_bytes` when it is 0; `protocol_versions` when it is empty or names something
    /// that is not a dated version (`YYYY-MM-DD`).
    pub fn build(self) -> Result<McpInspectLayer, ConfigError> {
        if !self.path.starts_with('/') {
            return Err(ConfigError::new("path", "must start with '/'").with_value(self.path));
        }
        if self.path.len() > 1 && self.path.ends_with('/') {
            return Err(ConfigError::new("path", "must not end with '/'").with_value(self.path));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1").with_value("0"));
        }
        if self.protocol_versions.is_empty() {
            return Err(ConfigError::new(
                "protocol_versions",
                "must name at least one version",
            ));
        }
        if let Some(bad) = self
            .protocol_versions
            .iter()
            .find(|v| !crate::mcp_headers::is_version_shaped(v))
        {
            return Err(ConfigError::new(
                "protocol_versions",
                "every version must be a date, YYYY-MM-DD",
            )
            .with_value(bad.clone()));
        }
        Ok(McpInspectLayer {
            config: Arc::new(Config {
                path: self.path.into(),
                max_body_bytes: self.max_body_bytes,
                supported_list: self.protocol_versions.join(", ").into(),
                protocol_versions: self.protocol_versions.into(),
            }),
        })
    }
}

impl<S> Layer<S> for McpInspectLayer {
    type Service = McpInspect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpInspect {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`McpInspectLayer`].
#[derive(Debug, Clone)]
pub struct McpInspect<S> {
    inner: S,
    config: Arc<Config>,
}

crate::impl_inner_service!(McpInspect, inner);

impl<S, B, ResBody> Service<Request<B>> for McpInspect<S>
where
    S: Service<Request<InspectBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.config.applies_to(&req) {
            let future = self.inner.call(req.map(Either::Left));
            return ResponseFuture {
                state: State::Calling { future, call: None },
            };
        }
        let limit = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            let format = if is_grpc(req.headers()) {
                ResponseFormat::Grpc
            } else {
                ResponseFormat::JsonRpc(None)
            };
            return ResponseFuture {
                state: State::Rejected {
                    response: Some(too_large(limit).into_response(&format)),
                },
            };
        }
        // Take the service that was driven to readiness; leave a clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture {
            state: State::Reading {
                body,
                read: Read::Empty,
                pending: Some((parts, inner)),
                config: Arc::clone(&self.config),
            },
        }
    }
}

pin_project! {
    /// The response future of [`McpInspect`].
    pub struct ResponseFuture<S, B, ResBody>
    where
        S: Service<Request<InspectBody<B>>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, ResBody>
    where
        S: Service<Request<InspectBody<B>>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        Reading {
            #[pin]
            body: B,
            read: Read,
            pending: Option<(Parts, S)>,
            config: Arc<Config>,
        },
        Calling {
            #[pin]
            future: S::Future,
            call: Option<McpCall>,
        },
        Rejected {
            response: Option<Response<GuardBody<ResBody>>>,
        },
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B, ResBody>
where
    S: Service<Request<InspectBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Calling { future, call } => {
                    let res = ready!(future.poll(cx))?;
                    let mut res = res.map(GuardBody::inner);
                    // Outer layers (audit) see what was called.
                    if let Some(call) = call.take() {
                        res.extensions_mut().insert(call);
                    }
                    return Poll::Ready(Ok(res));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Reading {
                    mut body,
                    read,
                    pending,
                    config,
                } => {
                    let read = ready!(read_body(body.as_mut(), read, config.max_body_bytes, cx));
                    let (mut parts, mut inner) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match inspect(read, &parts.headers, config) {
                        Ok((bytes, call)) => {
                            parts.extensions.insert(call.clone());
                            let req = Request::from_parts(parts, Either::Right(Full::new(bytes)));
                            State::Calling {
                                future: inner.call(req),
                                call: Some(call),
                            }
                        }
                        Err(refused) => {
                            let (rejection, format) = *refused;
                            let format = if is_grpc(&parts.headers) {
                                ResponseFormat::Grpc
                            } else {
                                format
                            };
                            let mut response = rejection.into_response(&format);
                            if let ResponseFormat::JsonRpc(Some(call)) = format {
                                response.extensions_mut().insert(call);
                            }
                            State::Rejected {
                                response: Some(response),
                            }
                        }
                    }
                }
            };
            state.set(next);
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body read so far. A body that arrives in one frame (the usual case) is kept as that
/// frame's `Bytes`, without a copy; later frames are gathered into one buffer.
enum Read {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Read {
    fn len(&self) -> usize {
        match self {
            Read::Empty => 0,
            Read::One(b) => b.len(),
            Read::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        match std::mem::replace(self, Read::Empty) {
            Read::Empty => *self = Read::One(data),
            Read::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + data.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                *self = Read::Many(buf);
            }
            Read::Many(mut buf) => {
                buf.extend_from_slice(&data);
                *self = Read::Many(buf);
            }
        }
    }

    fn take(&mut self) -> Bytes {
        match std::mem::replace(self, Read::Empty) {
            Read::Empty => Bytes::new(),
            Read::One(b) => b,
            Read::Many(b) => b.freeze(),
        }
    }
}

/// Why the body was not read whole.
enum ReadError {
    /// More than the limit arrived (or was coming).
    TooLarge,
    /// The body failed.
    Body(BoxError),
}

/// Read the body to its end within `limit` bytes: the bytes, in order, as one `Bytes`. Stops
/// at the frame that crosses the limit; trailers are ignored.
fn read_body<B>(
    mut body: Pin<&mut B>,
    read: &mut Read,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<Bytes, ReadError>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if data.len() > limit - read.len() {
                        return Poll::Ready(Err(ReadError::TooLarge));
                    }
                    if !data.is_empty() {
                        read.push(data);
                    }
                }
                if body.is_end_stream() {
                    return Poll::Ready(Ok(read.take()));
                }
            }
            Some(Err(e)) => return Poll::Ready(Err(ReadError::Body(e.into()))),
            None => return Poll::Ready(Ok(read.take())),
        }
    }
}

/// Turn the read body into the bytes to forward and the envelope, or a rejection (with the
/// envelope when one was parsed, so the error can carry the request's id).
fn inspect(
    read: Result<Bytes, ReadError>,
    headers: &HeaderMap,
    config: &Config,
) -> Result<(Bytes, McpCall), Box<(Rejection, ResponseFormat)>> {
    let limit = config.max_body_bytes;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => {
            return Err(Box::new((too_large(limit), ResponseFormat::JsonRpc(None))));
        }
        Err(ReadError::Body(e)) => {
            let rejection = Rejection::new(StatusCode::BAD_REQUEST, "body_read_error")
                .message("The request body could not be read")
                .jsonrpc_code(jsonrpc::INVALID_REQUEST)
                .detail(format!("reading the request body failed: {e}"));
            return Err(Box::new((rejection, ResponseFormat::JsonRpc(None))));
        }
    };
    let call = match parse_envelope_bytes(&bytes) {
        Ok(call) => call,
        Err(EnvelopeError::Parse(e)) => {
            let rejection = Rejection::new(StatusCode::BAD_REQUEST, "parse_error")
                .message("Parse error: the body is not valid JSON")
                .jsonrpc_code(jsonrpc::PARSE_ERROR)
                .detail(e);
            return Err(Box::new((rejection, ResponseFormat::JsonRpc(None))));
        }
        Err(EnvelopeError::InvalidRequest { reason, id }) => {
            let rejection = Rejection::new(StatusCode::BAD_REQUEST, "invalid_request")
                .message(format!("Invalid Request: {reason}"))
                .jsonrpc_code(jsonrpc::INVALID_REQUEST);
            // Answer with the id when one was read, as JSON-RPC asks.
            let format = match id {
                Some(id) => ResponseFormat::JsonRpcId(id),
                None => ResponseFormat::JsonRpc(None),
            };
            return Err(Box::new((rejection, format)));
        }
    };
    if let Err(problem) = check_headers(headers, &call, &config.protocol_versions) {
        let rejection = header_rejection(&problem, config);
        return Err(Box::new((rejection, ResponseFormat::JsonRpc(Some(call)))));
    }
    Ok((bytes, call))
}

/// The 400 for a transport-header problem: `-32022` naming the supported versions for an
/// unsupported `MCP-Protocol-Version`, `-32020` (HeaderMismatch) naming the header otherwise.
fn header_rejection(problem: &HeaderProblem, config: &Config) -> Rejection {
    match problem {
        HeaderProblem::UnsupportedVersion { requested } => {
            let mut rejection =
                Rejection::new(StatusCode::BAD_REQUEST, "unsupported_protocol_version")
                    .message(format!("{problem}; supported: {}", config.supported_list))
                    .jsonrpc_code(jsonrpc::UNSUPPORTED_PROTOCOL_VERSION)
                    .field("supported", config.protocol_versions.to_vec());
            if let Some(requested) = requested {
                rejection = rejection.field("requested", &**requested);
            }
            rejection
        }
        _ => Rejection::new(StatusCode::BAD_REQUEST, "header_mismatch")
            .message(problem.to_string())
            .jsonrpc_code(jsonrpc::HEADER_MISMATCH),
    }
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        .message(format!(
            "The request body exceeds the limit of {limit} bytes"
        ))
        .jsonrpc_code(jsonrpc::INVALID_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::JsonRpcId;
    use http_body::Frame;
    use http_body_util::BodyExt;
    use http_body_util::StreamBody;
    use serde_json::{Value, json};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    /// An inner service that echoes the body it got, and says how it got it.
    async fn echo<B>(req: Request<InspectBody<B>>) -> Result<Response<Full<Bytes>>, Infallible>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let variant = match &body {
            Either::Left(_) => "passthrough",
            Either::Right(_) => "buffered",
        };
        let bytes = body.collect().await.expect("body").to_bytes();
        let mut res = Response::new(Full::new(bytes));
        res.headers_mut()
            .insert("x-variant", variant.parse().unwrap());
        if let Some(call) = parts.extensions.get::<McpCall>() {
            let summary = format!(
                "{} {} {}",
                call.messages().len(),
                call.is_batch(),
                call.tools().collect::<Vec<_>>().join(",")
            );
            res.headers_mut().insert("x-call", summary.parse().unwrap());
        }
        Ok(res)
    }

    async fn run<B>(layer: McpInspectLayer, req: Request<B>) -> (StatusCode, HeaderMap, Bytes)
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError> + std::fmt::Debug,
    {
        let svc = ServiceBuilder::new().layer(layer).service_fn(echo::<B>);
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, bytes)
    }

    fn post(path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    fn json(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    const CALL: &[u8] =
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"h\u00e9"}}}"#;

    #[tokio::test]
    async fn forwards_identical_bytes_and_inserts_the_call() {
        let (status, headers, body) = run(McpInspectLayer::new(), post("/mcp", CALL)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-variant"], "buffered");
        assert_eq!(headers["x-call"], "1 false echo");
        assert_eq!(&body[..], CALL);
    }

    #[tokio::test]
    async fn the_call_is_also_in_the_response_extensions() {
        let svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .service_fn(echo::<Full<Bytes>>);
        let res = svc.oneshot(post("/mcp", CALL)).await.unwrap();
        assert_eq!(
            res.extensions().get::<McpCall>().and_then(McpCall::tool),
            Some("echo")
        );
        // And on a header-mismatch rejection, which answers with the request's id.
        let mut req = post("/mcp", CALL);
        req.headers_mut()
            .insert(&MCP_METHOD, "tools/list".parse().unwrap());
        let svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .service_fn(echo::<Full<Bytes>>);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.extensions().get::<McpCall>().and_then(McpCall::tool),
            Some("echo")
        );
        // Passed-through requests carry none.
        let svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .service_fn(echo::<Full<Bytes>>);
        let res = svc
            .oneshot(Request::get("/mcp").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert!(res.extensions().get::<McpCall>().is_none());
    }

    #[tokio::test]
    async fn chunked_body_is_reassembled_byte_for_byte() {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = CALL
            .chunks(7)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let req = Request::post("/mcp")
            .body(StreamBody::new(futures_util::stream::iter(chunks)))
            .unwrap();
        let (status, headers, body) = run(McpInspectLayer::new(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-call"], "1 false echo");
        assert_eq!(&body[..], CALL);
    }

    #[tokio::test]
    async fn oversize_chunked_body_without_content_length_is_413() {
        let polled = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = polled.clone();
        // 100 chunks of 1 KiB against a 4 KiB limit; the stream stops being read at the limit.
        let stream = futures_util::stream::iter((0..100).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 1024])))
        }));
        let req = Request::post("/mcp").body(StreamBody::new(stream)).unwrap();
        let layer = McpInspectLayer::builder()
            .max_body_bytes(4096)
            .build()
            .unwrap();
        let (status, headers, body) = run(layer, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            headers.get("x-variant").is_none(),
            "inner service must not run"
        );
        assert_eq!(
            json(&body),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,
                "message":"The request body exceeds the limit of 4096 bytes",
                "data":{"status":413,"code":"payload_too_large"}}})
        );
        assert!(
            polled.load(Ordering::SeqCst) <= 6,
            "read stopped near the limit"
        );
    }

    #[tokio::test]
    async fn declared_content_length_over_limit_is_413_without_reading() {
        let layer = McpInspectLayer::builder()
            .max_body_bytes(10)
            .build()
            .unwrap();
        let mut req = post("/mcp", CALL);
        req.headers_mut()
            .insert("content-length", CALL.len().to_string().parse().unwrap());
        let (status, headers, body) = run(layer, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(headers.get("x-variant").is_none());
        assert_eq!(json(&body)["error"]["data"]["code"], "payload_too_large");
        // Exactly at the limit is fine.
        let layer = McpInspectLayer::builder()
            .max_body_bytes(CALL.len())
            .build()
            .unwrap();
        let (status, _, _) = run(layer, post("/mcp", CALL)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn invalid_json_is_parse_error() {
        let (status, headers, body) = run(
            McpInspectLayer::new(),
            post("/mcp", b"{\"jsonrpc\":\"2.0\","),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("x-variant").is_none());
        assert_eq!(
            json(&body),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,
                "message":"Parse error: the body is not valid JSON",
                "data":{"status":400,"code":"parse_error"}}})
        );
    }

    #[tokio::test]
    async fn deep_nesting_is_400_not_a_stack_overflow() {
        let deep: &'static [u8] = "[".repeat(100_000).leak().as_bytes();
        let (status, _, body) = run(McpInspectLayer::new(), post("/mcp", deep)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json(&body)["error"]["code"], -32700);
    }

    #[tokio::test]
    async fn not_jsonrpc_is_invalid_request_with_id() {
        let (status, _, body) = run(
            McpInspectLayer::new(),
            post("/mcp", br#"{"jsonrpc":"1.0","id":"x1","method":"ping"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json(&body),
            json!({"jsonrpc":"2.0","id":"x1","error":{"code":-32600,
                "message":"Invalid Request: `jsonrpc` must be \"2.0\"",
                "data":{"status":400,"code":"invalid_request"}}})
        );
        let (status, _, body) = run(McpInspectLayer::new(), post("/mcp", b"[]")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json(&body)["id"], Value::Null);
        assert_eq!(
            json(&body)["error"]["message"],
            "Invalid Request: an empty batch"
        );
    }

    #[tokio::test]
    async fn batch_is_inspected() {
        const BATCH: &[u8] = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#;
        let (status, headers, body) = run(McpInspectLayer::new(), post("/mcp", BATCH)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-call"], "2 true a,b");
        assert_eq!(&body[..], BATCH);
    }

    fn with_headers(method: Option<&str>, name: Option<&str>) -> Request<Full<Bytes>> {
        let mut req = post("/mcp", CALL);
        if let Some(m) = method {
            req.headers_mut().insert(&MCP_METHOD, m.parse().unwrap());
        }
        if let Some(n) = name {
            req.headers_mut().insert(&MCP_NAME, n.parse().unwrap());
        }
        req
    }

    #[tokio::test]
    async fn matching_mcp_headers_pass() {
        for (m, n) in [
            (None, None),
            (Some("tools/call"), None),
            (Some("tools/call"), Some("echo")),
        ] {
            let (status, headers, _) = run(McpInspectLayer::new(), with_headers(m, n)).await;
            assert_eq!(status, StatusCode::OK, "{m:?} {n:?}");
            assert_eq!(headers["x-variant"], "buffered");
        }
    }

    #[tokio::test]
    async fn header_body_mismatch_is_400() {
        for (m, n, which) in [
            (Some("tools/list"), None, "Mcp-Method"),
            (Some("tools/call"), Some("delete_note"), "Mcp-Name"),
            (None, Some("ECHO"), "Mcp-Name"),
        ] {
            let (status, headers, body) = run(McpInspectLayer::new(), with_headers(m, n)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(headers["content-type"], "application/json");
            assert!(headers.get("x-variant").is_none());
            assert_eq!(
                json(&body),
                json!({"jsonrpc":"2.0","id":3,"error":{"code":-32020,
                    "message":format!("The {which} header does not match the request body"),
                    "data":{"status":400,"code":"header_mismatch"}}})
            );
        }
        // A repeated header is a mismatch even if one copy agrees.
        let mut req = with_headers(Some("tools/call"), None);
        req.headers_mut()
            .append(&MCP_METHOD, "tools/list".parse().unwrap());
        let (status, _, _) = run(McpInspectLayer::new(), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn other_methods_and_paths_pass_through_unread() {
        for req in [
            Request::get("/mcp")
                .body(Full::new(Bytes::from_static(b"not json")))
                .unwrap(),
            Request::delete("/mcp")
                .body(Full::new(Bytes::from_static(b"not json")))
                .unwrap(),
            post("/health", b"not json"),
            post("/mcpx", b"not json"),
            post("/", b"not json"),
        ] {
            let label = format!("{} {}", req.method(), req.uri());
            let (status, headers, body) = run(McpInspectLayer::new(), req).await;
            assert_eq!(status, StatusCode::OK, "{label}");
            assert_eq!(headers["x-variant"], "passthrough", "{label}");
            assert!(headers.get("x-call").is_none(), "{label}");
            assert_eq!(&body[..], b"not json", "{label}");
        }
    }

    #[tokio::test]
    async fn paths_under_the_endpoint_are_inspected() {
        let (status, _, body) = run(McpInspectLayer::new(), post("/mcp/", b"nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json(&body)["error"]["code"], -32700);
        let layer = McpInspectLayer::builder().path("/").build().unwrap();
        let (status, _, _) = run(layer, post("/anything", b"nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn grpc_callers_get_trailers_only() {
        let mut req = post("/mcp", b"\0\0\0\0\x05hello");
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        let (status, headers, body) = run(McpInspectLayer::new(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "3");
        assert_eq!(
            headers["grpc-message"],
            "Parse error: the body is not valid JSON"
        );
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn body_read_errors_are_400() {
        let stream = futures_util::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"{"))),
            Err(std::io::Error::other("connection reset")),
        ]);
        let req = Request::post("/mcp").body(StreamBody::new(stream)).unwrap();
        let svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .service_fn(echo::<StreamBody<_>>);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.code(), "body_read_error");
        assert!(
            rejection
                .internal_detail()
                .unwrap()
                .contains("connection reset")
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            json(&body)["error"]["message"],
            "The request body could not be read"
        );
    }

    #[test]
    fn builder_errors_name_the_setting() {
        let e = McpInspectLayer::builder().path("mcp").build().unwrap_err();
        assert_eq!((e.setting(), e.value()), ("path", Some("mcp")));
        let e = McpInspectLayer::builder()
            .path("/mcp/")
            .build()
            .unwrap_err();
        assert_eq!(e.to_string(), "path: must not end with '/' (got \"/mcp/\")");
        let e = McpInspectLayer::builder()
            .max_body_bytes(0)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "max_body_bytes");
        let layer = McpInspectLayer::default();
        assert_eq!((layer.path(), layer.max_body_bytes()), ("/mcp", 1 << 20));
    }

    #[test]
    fn request_ids_round_trip() {
        assert_eq!(JsonRpcId::Number(3.into()).to_json(), json!(3));
    }

    #[tokio::test]
    async fn poll_ready_is_driven_before_call() {
        // The service taken into the future is the one that was made ready.
        let svc = McpInspectLayer::new().layer(service_fn(echo::<Full<Bytes>>));
        let res = svc.oneshot(post("/mcp", CALL)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    fn post_with(body: &str, pairs: &[(&str, &[u8])]) -> Request<Full<Bytes>> {
        let mut req = Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        for (k, v) in pairs {
            req.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        req
    }

    /// A 400 -32020 answering id 7 with `message`, and the inner service never ran.
    async fn assert_header_rejection(req: Request<Full<Bytes>>, message: &str) {
        let (status, headers, body) = run(McpInspectLayer::new(), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("x-variant").is_none(), "inner service ran");
        assert_eq!(
            json(&body),
            json!({"jsonrpc":"2.0","id":7,"error":{"code":-32020,"message":message,
                "data":{"status":400,"code":"header_mismatch"}}})
        );
    }

    const V_NEW: (&str, &[u8]) = ("mcp-protocol-version", b"2026-07-28");
    const V_OLD: (&str, &[u8]) = ("mcp-protocol-version", b"2025-11-25");

    fn call_body(method: &str, params: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{params}}}"#)
    }

    #[tokio::test]
    async fn base64_mcp_name_is_decoded() {
        let body = call_body("tools/call", r#"{"name":"read_note"}"#);
        for era in [V_OLD, V_NEW] {
            let req = post_with(
                &body,
                &[
                    era,
                    ("mcp-method", b"tools/call"),
                    ("mcp-name", b"=?base64?cmVhZF9ub3Rl?="),
                ],
            );
            let (status, headers, got) = run(McpInspectLayer::new(), req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["x-variant"], "buffered");
            assert_eq!(
                &got[..],
                body.as_bytes(),
                "the same bytes reach the service"
            );
        }
        // Non-ASCII names travel encoded.
        let body = call_body("tools/call", r#"{"name":"tööl"}"#);
        let req = post_with(
            &body,
            &[
                V_NEW,
                ("mcp-method", b"tools/call"),
                ("mcp-name", b"=?base64?dMO2w7Zs?="),
            ],
        );
        assert_eq!(run(McpInspectLayer::new(), req).await.0, StatusCode::OK);
        // An encoded name that names another tool is a mismatch.
        let body = call_body("tools/call", r#"{"name":"delete_note"}"#);
        let req = post_with(
            &body,
            &[
                V_NEW,
                ("mcp-method", b"tools/call"),
                ("mcp-name", b"=?base64?cmVhZF9ub3Rl?="),
            ],
        );
        assert_header_rejection(req, "The Mcp-Name header does not match the request body").await;
    }

    #[tokio::test]
    async fn whitespace_around_header_values_is_accepted() {
        // ServerAcceptsWhitespaceHeaderValue: an HTTP/2 peer may pass values untrimmed.
        let body = call_body("tools/call", r#"{"name":"read_note"}"#);
        let req = post_with(
            &body,
            &[
                ("mcp-protocol-version", b" 2026-07-28\t"),
                ("mcp-method", b"\ttools/call "),
                ("mcp-name", b" read_note "),
            ],
        );
        let (status, headers, got) = run(McpInspectLayer::new(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-variant"], "buffered");
        assert_eq!(&got[..], body.as_bytes());
        // Trimmed, a value that names another tool is still refused.
        let req = post_with(
            &body,
            &[
                V_NEW,
                ("mcp-method", b" tools/call "),
                ("mcp-name", b" delete_note "),
            ],
        );
        assert_header_rejection(req, "The Mcp-Name header does not match the request body").await;
    }

    #[tokio::test]
    async fn malformed_base64_mcp_name_is_400() {
        let body = call_body("tools/call", r#"{"name":"echo"}"#);
        for bad in [
            &b"=?base64?ZWNobw?="[..], // missing padding
            b"=?base64?ZWNobx==?=",    // non-canonical trailing bits
            b"=?base64?ZW*obw==?=",    // outside the alphabet
            b"=?base64?/w==?=",        // not UTF-8
        ] {
            let req = post_with(&body, &[("mcp-name", bad)]);
            assert_header_rejection(
                req,
                "The Mcp-Name header is not valid =?base64?...?= encoding",
            )
            .await;
        }
    }

    #[tokio::test]
    async fn every_method_in_the_table_compares_its_own_field() {
        for (method, params, name) in [
            ("resources/subscribe", r#"{"uri":"file:///n"}"#, "file:///n"),
            (
                "resources/unsubscribe",
                r#"{"uri":"file:///n"}"#,
                "file:///n",
            ),
            ("tasks/get", r#"{"taskId":"t1"}"#, "t1"),
            ("tasks/update", r#"{"taskId":"t1"}"#, "t1"),
            ("tasks/cancel", r#"{"taskId":"t1"}"#, "t1"),
            ("resources/read", r#"{"uri":"file:///n"}"#, "file:///n"),
            ("prompts/get", r#"{"name":"p"}"#, "p"),
        ] {
            let body = call_body(method, params);
            // With the header, without it (2025-11-25), with it in 2026-07-28: all pass.
            for pairs in [
                vec![
                    ("mcp-method", method.as_bytes()),
                    ("mcp-name", name.as_bytes()),
                ],
                vec![],
                vec![V_OLD],
                vec![
                    V_NEW,
                    ("mcp-method", method.as_bytes()),
                    ("mcp-name", name.as_bytes()),
                ],
            ] {
                let (status, _, got) = run(McpInspectLayer::new(), post_with(&body, &pairs)).await;
                assert_eq!(status, StatusCode::OK, "{method} {pairs:?}");
                assert_eq!(&got[..], body.as_bytes());
            }
            let req = post_with(&body, &[("mcp-name", b"other")]);
            assert_header_rejection(req, "The Mcp-Name header does not match the request body")
                .await;
        }
    }

    #[tokio::test]
    async fn missing_headers_in_the_2026_era_are_400() {
        let body = call_body("tools/call", r#"{"name":"echo"}"#);
        assert_header_rejection(
            post_with(&body, &[V_NEW]),
            "The Mcp-Method header is required for this request and is missing",
        )
        .await;
        assert_header_rejection(
            post_with(&body, &[V_NEW, ("mcp-method", b"tools/call")]),
            "The Mcp-Name header is required for this request and is missing",
        )
        .await;
        // The era can also come from the body, which then needs the version header.
        let meta = call_body(
            "tools/call",
            r#"{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
        );
        assert_header_rejection(
            post_with(
                &meta,
                &[("mcp-method", b"tools/call"), ("mcp-name", b"echo")],
            ),
            "The MCP-Protocol-Version header is required for this request and is missing",
        )
        .await;
        // Before 2026-07-28 absence is fine.
        for pairs in [vec![], vec![V_OLD]] {
            let (status, _, _) = run(McpInspectLayer::new(), post_with(&body, &pairs)).await;
            assert_eq!(status, StatusCode::OK);
        }
        // Methods that name nothing need no Mcp-Name; notifications need no Mcp-Method.
        let list = call_body("tools/list", "{}");
        let (status, _, _) = run(
            McpInspectLayer::new(),
            post_with(&list, &[V_NEW, ("mcp-method", b"tools/list")]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let (status, _, _) = run(McpInspectLayer::new(), post_with(note, &[V_NEW])).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn protocol_version_disagreeing_with_the_body_is_400() {
        let meta = call_body(
            "ping",
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
        );
        assert_header_rejection(
            post_with(&meta, &[V_OLD, ("mcp-method", b"ping")]),
            "The MCP-Protocol-Version header does not match the request body",
        )
        .await;
        let (status, _, _) = run(
            McpInspectLayer::new(),
            post_with(&meta, &[V_NEW, ("mcp-method", b"ping")]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // Repeated, even when equal.
        assert_header_rejection(
            post_with(&meta, &[V_NEW, V_NEW, ("mcp-method", b"ping")]),
            "The MCP-Protocol-Version header is repeated",
        )
        .await;
    }

    #[tokio::test]
    async fn unsupported_protocol_version_is_400_naming_the_supported_ones() {
        let body = call_body("tools/list", "{}");
        let req = post_with(&body, &[("mcp-protocol-version", b"2099-01-01")]);
        let svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .service_fn(echo::<Full<Bytes>>);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(res.headers().get("x-variant").is_none());
        assert_eq!(
            res.extensions().get::<Rejection>().map(Rejection::code),
            Some("unsupported_protocol_version")
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            json(&body),
            json!({"jsonrpc":"2.0","id":7,"error":{"code":-32022,
                "message":"Unsupported MCP-Protocol-Version \"2099-01-01\"; supported: 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25, 2026-07-28",
                "data":{"status":400,"code":"unsupported_protocol_version",
                    "supported":["2024-11-05","2025-03-26","2025-06-18","2025-11-25","2026-07-28"],
                    "requested":"2099-01-01"}}})
        );
        // A configured list; a value that is not text is unsupported too.
        let layer = McpInspectLayer::builder()
            .protocol_versions(["2026-07-28"])
            .build()
            .unwrap();
        for (value, message) in [
            (
                &b"2025-11-25"[..],
                "Unsupported MCP-Protocol-Version \"2025-11-25\"; supported: 2026-07-28",
            ),
            (
                b"2026-07-28\xff",
                "Unsupported MCP-Protocol-Version (not text); supported: 2026-07-28",
            ),
        ] {
            let req = post_with(
                &call_body("tools/list", "{}"),
                &[("mcp-protocol-version", value)],
            );
            let (status, _, body) = run(layer.clone(), req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(json(&body)["error"]["message"], message);
            assert_eq!(json(&body)["error"]["code"], -32022);
        }
    }

    #[test]
    fn protocol_versions_builder() {
        assert_eq!(
            McpInspectLayer::new().protocol_versions(),
            crate::mcp_headers::DEFAULT_PROTOCOL_VERSIONS
        );
        let layer = McpInspectLayer::builder()
            .protocol_versions(["2026-07-28", "2025-11-25", "2026-07-28"])
            .build()
            .unwrap();
        assert_eq!(layer.protocol_versions(), ["2026-07-28", "2025-11-25"]);
        let e = McpInspectLayer::builder()
            .protocol_versions(Vec::<String>::new())
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "protocol_versions");
        let e = McpInspectLayer::builder()
            .protocol_versions(["latest"])
            .build()
            .unwrap_err();
        assert_eq!(
            (e.setting(), e.value()),
            ("protocol_versions", Some("latest"))
        );
    }

    #[tokio::test]
    async fn no_panic_on_odd_headers() {
        let bodies = [
            call_body("tools/call", r#"{"name":"x"}"#),
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}},{"jsonrpc":"2.0","id":2,"result":{}}]"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_owned(),
        ];
        let values: [&[u8]; 8] = [
            b"",
            b"=?base64?",
            b"=?base64??=",
            b"=?base64?=?=",
            b"\xff\xfe",
            b"=?base64?////////?=",
            b"tools/call",
            b"2026-07-28",
        ];
        for body in &bodies {
            for v in values {
                for h in ["mcp-method", "mcp-name", "mcp-protocol-version"] {
                    let (status, _, _) =
                        run(McpInspectLayer::new(), post_with(body, &[V_NEW, (h, v)])).await;
                    assert!(matches!(status.as_u16(), 200 | 400), "{h} {v:?}");
                }
            }
        }
    }
}
