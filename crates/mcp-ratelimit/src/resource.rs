//! [`ResourceLimitLayer`]: a cap on concurrent requests that sheds the excess, and a request
//! timeout that spares long-lived SSE streams — tower's and tower-http's middleware, answering in
//! the house format.
//!
//! A production MCP deployment caps concurrency (1000 connections by default), body size (1 MB) and time. This layer
//! composes, rather than re-writes:
//!
//! - tower's [`ConcurrencyLimit`] on one semaphore shared by every
//!   service the layer makes (axum applies a layer to each route separately; the cap is still
//!   global), behind tower's [`LoadShed`], so a request over the cap
//!   is refused at once instead of queueing: `503`, `Retry-After: 1`, `grpc-status: 14`;
//! - tower-http's [`Timeout`](tower_http::timeout::Timeout) on the time to the response head:
//!   `504`, `grpc-status: 4`. tower-http answers a timeout with an empty body of the inner
//!   body's `Default`; this layer gives the inner body a private `Default` variant, so it
//!   recognises exactly tower-http's timeout answer (not an inner `504`) and replaces it with a
//!   [`Rejection`] in the caller's format. A `GET` to the MCP path (the streamable-HTTP SSE
//!   stream, which stays open for as long as the session) is exempt from the timeout.
//!
//! Body size is bounded by [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) on the MCP
//! path (its 413 is already in the house format); for other routes use tower-http's
//! `RequestBodyLimitLayer` or axum's `DefaultBodyLimit`.
//!
//! The timeout needs a Tokio runtime with the time driver (as tower-http's does).
//!
//! | situation | HTTP | JSON-RPC (POST to the MCP path) | gRPC |
//! |---|---|---|---|
//! | over `max_concurrency` | `503 {"error":"overloaded",…}`, `Retry-After: 1` | `503`, error `-32000`, `id: null` | `grpc-status: 14` |
//! | no response head within `request_timeout` | `504 {"error":"timeout",…}` | `504`, error `-32000`, `id: null` | `grpc-status: 4` |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::future::Either;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::sync::Semaphore;
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::load_shed::error::Overloaded;
use tower_layer::Layer;
use tower_service::Service;

use mcp_security_core::config::{ConfigError, Env};
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{GuardBody, Rejection};

use crate::class::path_has_prefix;
use crate::layer::DEFAULT_MCP_PATH;

/// The default cap on concurrent requests (1000).
pub const DEFAULT_MAX_CONCURRENCY: usize = 1000;
/// The default request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Config {
    max_concurrency: usize,
    request_timeout: Duration,
    mcp_path: Box<str>,
    semaphore: Arc<Semaphore>,
}

impl Config {
    fn timeout_exempt<B>(&self, req: &Request<B>) -> bool {
        req.method() == Method::GET && path_has_prefix(req.uri().path(), &self.mcp_path)
    }

    fn format<B>(&self, req: &Request<B>) -> ResponseFormat {
        match ResponseFormat::for_request(req.headers(), req.extensions()) {
            ResponseFormat::Json
                if req.method() == Method::POST
                    && path_has_prefix(req.uri().path(), &self.mcp_path) =>
            {
                ResponseFormat::JsonRpc(None)
            }
            format => format,
        }
    }
}

/// Caps concurrency (shedding the excess) and times requests out; see the
/// [module docs](self). Cheap to clone; every service it makes shares one concurrency cap.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use mcp_ratelimit::ResourceLimitLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let limits = ResourceLimitLayer::builder()
///     .max_concurrency(1000)
///     .request_timeout(Duration::from_secs(30))
///     .build()?;
/// let svc = ServiceBuilder::new().layer(limits).service_fn(|req: Request<Full<Bytes>>| async move {
///     if req.uri().path() == "/slow" {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///     }
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// });
///
/// let ok = svc.clone().oneshot(Request::get("/fast").body(Full::default())?).await?;
/// assert_eq!(ok.status(), StatusCode::OK);
/// let slow = svc.oneshot(Request::get("/slow").body(Full::default())?).await?;
/// assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResourceLimitLayer {
    config: Arc<Config>,
}

impl ResourceLimitLayer {
    /// A builder with the defaults: 1000 concurrent requests, 30 s timeout, MCP path `/mcp`.
    pub fn builder() -> ResourceLimitLayerBuilder {
        ResourceLimitLayerBuilder::default()
    }

    /// From the environment: `MAX_CONCURRENCY` (default 1000) and `REQUEST_TIMEOUT` (default
    /// 30 s; `30`, `30s`, `500ms`, `1m`), with the [`Env`]'s prefix.
    ///
    /// # Errors
    /// A malformed or zero variable, naming it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max = env.usize("MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)?;
        let timeout = env.duration("REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)?;
        Self::builder()
            .max_concurrency(max)
            .request_timeout(timeout)
            .build()
            .map_err(|e| {
                let var = match e.setting() {
                    "max_concurrency" => env.var_name("MAX_CONCURRENCY"),
                    _ => env.var_name("REQUEST_TIMEOUT"),
                };
                let err = ConfigError::new(var, e.reason());
                match e.value() {
                    Some(v) => err.with_value(v),
                    None => err,
                }
            })
    }

    /// The cap on concurrent requests.
    pub fn max_concurrency(&self) -> usize {
        self.config.max_concurrency
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// Requests that could start right now without being shed.
    pub fn available_permits(&self) -> usize {
        self.config.semaphore.available_permits()
    }
}

/// Builds a [`ResourceLimitLayer`]; see [`ResourceLimitLayer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceLimitLayerBuilder {
    max_concurrency: usize,
    request_timeout: Duration,
    mcp_path: String,
}

impl Default for ResourceLimitLayerBuilder {
    fn default() -> Self {
        ResourceLimitLayerBuilder {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            mcp_path: DEFAULT_MCP_PATH.to_owned(),
        }
    }
}

impl ResourceLimitLayerBuilder {
    /// The most requests in flight at once (default 1000); more are refused with `503`.
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max;
        self
    }

    /// The longest a request may take to produce its response head (default 30 s); then `504`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The MCP endpoint path (default `/mcp`): `GET` to it (the SSE stream) is exempt from the
    /// timeout, and refused `POST`s to it are answered as JSON-RPC.
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.mcp_path = path.into();
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `max_concurrency` (zero or beyond Tokio's semaphore limit), `request_timeout` (zero),
    /// `mcp_path` (not starting with `/`, or ending with `/`).
    pub fn build(self) -> Result<ResourceLimitLayer, ConfigError> {
        if self.max_concurrency == 0 || self.max_concurrency > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_concurrency",
                format!("must be between 1 and {}", Semaphore::MAX_PERMITS),
            )
            .with_value(self.max_concurrency.to_string()));
        }
        if self.request_timeout.is_zero() {
            return Err(
                ConfigError::new("request_timeout", "must be longer than zero").with_value("0s"),
            );
        }
        if !self.mcp_path.starts_with('/')
            || (self.mcp_path.len() > 1 && self.mcp_path.ends_with('/'))
        {
            return Err(
                ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                    .with_value(self.mcp_path),
            );
        }
        Ok(ResourceLimitLayer {
            config: Arc::new(Config {
                max_concurrency: self.max_concurrency,
                request_timeout: self.request_timeout,
                mcp_path: self.mcp_path.into(),
                semaphore: Arc::new(Semaphore::new(self.max_concurrency)),
            }),
        })
    }
}

impl<S> Layer<S> for ResourceLimitLayer {
    type Service = ResourceLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let timeout = tower_http::timeout::Timeout::with_status_code(
            MarkResponse { inner },
            StatusCode::GATEWAY_TIMEOUT,
            self.config.request_timeout,
        );
        let selective = SelectiveTimeout {
            timeout,
            config: Arc::clone(&self.config),
        };
        let limited =
            ConcurrencyLimit::with_semaphore(selective, Arc::clone(&self.config.semaphore));
        ResourceLimit {
            inner: LoadShed::new(limited),
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`ResourceLimitLayer`].
pub struct ResourceLimit<S> {
    inner: LoadShed<ConcurrencyLimit<SelectiveTimeout<S>>>,
    config: Arc<Config>,
}

impl<S: Clone> Clone for ResourceLimit<S> {
    fn clone(&self) -> Self {
        ResourceLimit {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S> fmt::Debug for ResourceLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceLimit")
            .field("max_concurrency", &self.config.max_concurrency)
            .field("request_timeout", &self.config.request_timeout)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResourceLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Debug + Send + Sync + 'static,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // LoadShed is always ready unless the inner service failed.
        match ready!(self.inner.poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => match e.downcast::<InnerError<S::Error>>() {
                Ok(inner) => Poll::Ready(Err(inner.0)),
                // Nothing else can fail readiness; stay ready and let `call` answer.
                Err(_) => Poll::Ready(Ok(())),
            },
        }
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let format = self.config.format(&req);
        ResponseFuture {
            inner: self.inner.call(req),
            format: Some(format),
        }
    }
}

pin_project! {
    /// The response future of [`ResourceLimit`].
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Error: fmt::Debug,
        S::Error: Send,
        S::Error: Sync,
        S::Error: 'static,
    {
        #[pin]
        inner: <LoadShed<ConcurrencyLimit<SelectiveTimeout<S>>> as Service<Request<ReqBody>>>::Future,
        format: Option<ResponseFormat>,
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Debug + Send + Sync + 'static,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let format = this.format.take().unwrap_or(ResponseFormat::Json);
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                match body {
                    MarkedBody::Inner(body) => {
                        Ok(Response::from_parts(parts, GuardBody::inner(body)))
                    }
                    MarkedBody::TimedOut => {
                        Ok(Rejection::new(StatusCode::GATEWAY_TIMEOUT, "timeout")
                            .message("The request took too long. Please try again later.")
                            .detail("request timeout elapsed")
                            .into_response(&format))
                    }
                }
            }
            Err(e) if e.is::<Overloaded>() => Ok(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
            )
            .message("The server is busy. Please try again later.")
            .header(RETRY_AFTER, HeaderValue::from_static("1"))
            .field("retry_after", 1)
            .detail("concurrency limit reached")
            .into_response(&format)),
            Err(e) => match e.downcast::<InnerError<S::Error>>() {
                Ok(inner) => Err(inner.0),
                Err(other) => Ok(Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                )
                .message("Internal error")
                .detail(other.to_string())
                .into_response(&format)),
            },
        })
    }
}

/// The inner service's error, carried through `LoadShed`'s boxed error and recovered intact.
struct InnerError<E>(E);

impl<E: fmt::Debug> fmt::Debug for InnerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Debug> fmt::Display for InnerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inner service error: {:?}", self.0)
    }
}

impl<E: fmt::Debug> std::error::Error for InnerError<E> {}

/// The inner body, or tower-http's timeout answer (the only producer of `Default`).
#[derive(Default)]
enum MarkedBody<B> {
    Inner(B),
    #[default]
    TimedOut,
}

/// Marks the inner service's bodies and wraps its errors.
#[derive(Clone)]
struct MarkResponse<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MarkResponse<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MarkedBody<ResBody>>;
    type Error = InnerError<S::Error>;
    type Future = MarkFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(InnerError)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        MarkFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    struct MarkFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for MarkFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<MarkedBody<B>>, InnerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|r| r.map(|res| res.map(MarkedBody::Inner)).map_err(InnerError))
    }
}

/// tower-http's timeout, except for the MCP SSE stream.
#[derive(Clone)]
struct SelectiveTimeout<S> {
    timeout: tower_http::timeout::Timeout<MarkResponse<S>>,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SelectiveTimeout<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MarkedBody<ResBody>>;
    type Error = InnerError<S::Error>;
    type Future = Either<
        MarkFuture<S::Future>,
        <tower_http::timeout::Timeout<MarkResponse<S>> as Service<Request<ReqBody>>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.timeout.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.config.timeout_exempt(&req) {
            Either::Left(self.timeout.get_mut().call(req))
        } else {
            Either::Right(self.timeout.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};
    use std::convert::Infallible;
    use tower::ServiceExt;

    type Res = Response<GuardBody<Full<Bytes>>>;

    async fn slow_or_fast(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().query() == Some("slow") || req.uri().path().starts_with("/mcp") {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if req.uri().query() == Some("504") {
            let mut res = Response::new(Full::new(Bytes::from_static(b"upstream")));
            *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            return Ok(res);
        }
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }

    fn layer() -> ResourceLimitLayer {
        ResourceLimitLayer::builder()
            .max_concurrency(2)
            .request_timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    async fn body(res: Res) -> Bytes {
        res.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_answers_504_in_each_format() {
        let svc = layer().layer(tower::service_fn(slow_or_fast));
        let res: Res = svc
            .clone()
            .oneshot(Request::get("/api?slow").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(res.headers()["content-type"], "application/json");
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(r.code(), "timeout");
        let v: Value = serde_json::from_slice(&body(res).await).unwrap();
        assert_eq!(
            v,
            json!({"error":"timeout","message":"The request took too long. Please try again later."})
        );

        let res: Res = svc
            .clone()
            .oneshot(Request::post("/mcp").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        let v: Value = serde_json::from_slice(&body(res).await).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["error"]["data"]["status"], 504);

        let res: Res = svc
            .oneshot(
                Request::post("/grpc.Svc/Method?slow")
                    .header("content-type", "application/grpc")
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "4");
        assert!(body(res).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn sse_get_on_the_mcp_path_is_not_timed_out() {
        let svc = layer().layer(tower::service_fn(slow_or_fast));
        // The handler takes an hour (paused time auto-advances); the timeout is 30 s.
        let res: Res = svc
            .clone()
            .oneshot(
                Request::get("/mcp")
                    .header("accept", "text/event-stream")
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "ok");
        // ... but a GET elsewhere, or a POST to /mcp, is.
        let res: Res = svc
            .oneshot(Request::get("/mcpx?slow").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_504_is_passed_through() {
        let svc = layer().layer(tower::service_fn(slow_or_fast));
        let res: Res = svc
            .oneshot(Request::get("/api?504").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(res.extensions().get::<Rejection>().is_none());
        assert_eq!(body(res).await, "upstream");
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_cap_is_shed_with_503() {
        let layer = layer();
        // Two services from the same layer (as axum makes per route) share the cap.
        let a = layer.layer(tower::service_fn(slow_or_fast));
        let b = layer.layer(tower::service_fn(slow_or_fast));
        let mut held = Vec::new();
        for svc in [a.clone(), b.clone()] {
            let mut svc = svc;
            let fut = svc
                .ready()
                .await
                .unwrap()
                .call(Request::get("/mcp").body(Full::default()).unwrap());
            held.push(tokio::spawn(fut));
        }
        tokio::task::yield_now().await;
        assert_eq!(layer.available_permits(), 0);
        for (svc, format) in [
            (a.clone(), "json"),
            (b.clone(), "jsonrpc"),
            (a.clone(), "grpc"),
        ] {
            let req = match format {
                "json" => Request::get("/api").body(Full::default()).unwrap(),
                "jsonrpc" => Request::post("/mcp").body(Full::default()).unwrap(),
                _ => Request::post("/g.S/M")
                    .header("content-type", "application/grpc")
                    .body(Full::default())
                    .unwrap(),
            };
            let res: Res = svc.oneshot(req).await.unwrap();
            match format {
                "json" => {
                    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
                    assert_eq!(res.headers()["retry-after"], "1");
                    let v: Value = serde_json::from_slice(&body(res).await).unwrap();
                    assert_eq!(
                        v,
                        json!({"error":"overloaded","message":"The server is busy. Please try again later.","retry_after":1})
                    );
                }
                "jsonrpc" => {
                    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
                    let v: Value = serde_json::from_slice(&body(res).await).unwrap();
                    assert_eq!(v["error"]["data"]["code"], "overloaded");
                    assert_eq!(v["id"], Value::Null);
                }
                _ => {
                    assert_eq!(res.status(), StatusCode::OK);
                    assert_eq!(res.headers()["grpc-status"], "14");
                }
            }
        }
        for h in held {
            let res = h.await.unwrap().unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        assert_eq!(layer.available_permits(), 2);
        let res: Res = a
            .oneshot(Request::get("/api").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn inner_errors_come_back_intact() {
        #[derive(Debug, PartialEq)]
        struct Boom;
        let svc = layer().layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>(Boom)
        }));
        let err = svc
            .oneshot(Request::get("/").body(Full::default()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err, Boom);
    }

    #[test]
    fn builder_and_env_errors_name_the_setting() {
        let e = ResourceLimitLayer::builder()
            .max_concurrency(0)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "max_concurrency");
        let e = ResourceLimitLayer::builder()
            .request_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "request_timeout");
        let e = ResourceLimitLayer::builder()
            .mcp_path("mcp")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "mcp_path");

        let env =
            |pairs: &[(&str, &str)]| Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)));
        let l = ResourceLimitLayer::from_env(&env(&[])).unwrap();
        assert_eq!(
            (l.max_concurrency(), l.request_timeout()),
            (1000, Duration::from_secs(30))
        );
        let l = ResourceLimitLayer::from_env(&env(&[
            ("MCP_MAX_CONCURRENCY", "5"),
            ("MCP_REQUEST_TIMEOUT", "500ms"),
        ]))
        .unwrap();
        assert_eq!(
            (l.max_concurrency(), l.request_timeout()),
            (5, Duration::from_millis(500))
        );
        for (var, value) in [
            ("MCP_MAX_CONCURRENCY", "0"),
            ("MCP_MAX_CONCURRENCY", "x"),
            ("MCP_REQUEST_TIMEOUT", "0"),
            ("MCP_REQUEST_TIMEOUT", "soon"),
        ] {
            let e = ResourceLimitLayer::from_env(&env(&[(var, value)])).unwrap_err();
            assert_eq!(e.setting(), var);
        }
    }
}
