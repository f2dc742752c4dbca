//! [`OriginGuardLayer`]: the MCP transport's `Origin` check (DNS-rebinding defence), an optional
//! `Host` allowlist, and CORS, in one layer driven by one [`CorsPolicy`].
//!
//! The MCP specification says servers MUST validate `Origin` on every incoming request and
//! answer 403 when it is present and not allowed. A browser page on `https://evil.example` that
//! rebinds its name to `127.0.0.1` can otherwise drive a local MCP server; its requests carry
//! `Origin: https://evil.example`.
//!
//! | request | answer |
//! |---|---|
//! | no `Origin` (curl, SDK clients, same-origin `GET`) | passed on |
//! | `Origin` in the policy's allowed set | passed on through tower-http's `CorsLayer`: preflights answered, CORS headers added |
//! | `Origin` not allowed, unparseable, `null`, or more than one `Origin` header | 403 |
//! | `Host` (or `:authority`) not on the allowlist, missing, or repeated, when an allowlist is on | 403 |
//! | a path in [`exempt_paths`](OriginGuardLayerBuilder::exempt_paths) | passed on untouched, without CORS |
//!
//! The 403 is a [`Rejection`] in the caller's format: for a `POST` to the MCP path a JSON-RPC
//! error with `"id": null` (the guard runs before the body is read), for gRPC a trailers-only
//! `grpc-status: 7`, otherwise `{"error":"origin_not_allowed","message":"Origin not allowed"}`.
//!
//! Same-host origins are **not** allowed implicitly: after DNS rebinding, the attacker's
//! `Origin` and `Host` name the same host, so "Origin matches Host" is exactly what the attack
//! satisfies. Same-origin `GET`s carry no `Origin` at all, which is why the `Host` allowlist
//! matters too: it is on by default when the server tells the builder it is bound to loopback.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//! origin is answered here with an empty 200; any other `OPTIONS` goes to the inner service.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use mcp_security_core::config::ConfigError;
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{GuardBody, Rejection};
use pin_project_lite::pin_project;
use tower_http::cors::{Cors, CorsLayer};
use tower_layer::Layer;
use tower_service::Service;

use crate::cors::CorsPolicy;
use crate::origin::{HostSet, LOOPBACK_HOSTS};

/// The default MCP endpoint path.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

/// The RFC 9728 protected-resource metadata path (and everything under it), exempt by default:
/// it is public, and `mcp-auth` serves it with its own `Access-Control-Allow-Origin: *`.
pub const DEFAULT_EXEMPT_PATHS: [&str; 1] = ["/.well-known/oauth-protected-resource"];

#[derive(Debug)]
struct Config {
    policy: CorsPolicy,
    cors: CorsLayer,
    hosts: Option<HostSet>,
    mcp_path: Box<str>,
    exempt_paths: Box<[Box<str>]>,
}

/// Why a request was refused (for the audit detail; the client sees one public message).
enum Refusal {
    DuplicateHost,
    MissingHost,
    HostNotAllowed,
    DuplicateOrigin,
    NullOrigin,
    OriginNotAllowed,
}

impl Refusal {
    fn rejection(self) -> Rejection {
        let (code, message, detail) = match self {
            Refusal::DuplicateHost => (
                "host_not_allowed",
                "Host not allowed",
                "more than one Host header",
            ),
            Refusal::MissingHost => (
                "host_not_allowed",
                "Host not allowed",
                "no Host header or authority",
            ),
            Refusal::HostNotAllowed => (
                "host_not_allowed",
                "Host not allowed",
                "Host is not on the allowlist",
            ),
            Refusal::DuplicateOrigin => (
                "origin_not_allowed",
                "Origin not allowed",
                "more than one Origin header",
            ),
            Refusal::NullOrigin => ("origin_not_allowed", "Origin not allowed", "Origin is null"),
            Refusal::OriginNotAllowed => (
                "origin_not_allowed",
                "Origin not allowed",
                "Origin is not in the allowed set",
            ),
        };
        Rejection::new(StatusCode::FORBIDDEN, code)
            .message(message)
            .detail(detail)
    }
}

impl Config {
    fn is_exempt(&self, path: &str) -> bool {
        self.exempt_paths
            .iter()
            .any(|p| match path.strip_prefix(&**p) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            })
    }

    fn is_mcp_post<B>(&self, req: &Request<B>) -> bool {
        req.method() == Method::POST
            && match req.uri().path().strip_prefix(&*self.mcp_path) {
                Some(rest) => rest.is_empty() || rest.starts_with('/') || &*self.mcp_path == "/",
                None => false,
            }
    }

    fn check<B>(&self, req: &Request<B>) -> Result<(), Refusal> {
        if let Some(hosts) = &self.hosts {
            let mut values = req.headers().get_all(header::HOST).iter();
            let host = match (values.next(), values.next()) {
                (Some(_), Some(_)) => return Err(Refusal::DuplicateHost),
                (Some(v), None) => v.as_bytes(),
                (None, _) => match req.uri().authority() {
                    Some(a) => a.as_str().as_bytes(),
                    None => return Err(Refusal::MissingHost),
                },
            };
            if !hosts.allows(host) {
                return Err(Refusal::HostNotAllowed);
            }
        }
        let mut values = req.headers().get_all(header::ORIGIN).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(()),
            (Some(_), Some(_)) => Err(Refusal::DuplicateOrigin),
            (Some(origin), None) if origin.as_bytes().eq_ignore_ascii_case(b"null") => {
                Err(Refusal::NullOrigin)
            }
            (Some(origin), None) if self.policy.allows_origin_bytes(origin.as_bytes()) => Ok(()),
            (Some(_), None) => Err(Refusal::OriginNotAllowed),
        }
    }

    fn format<B>(&self, req: &Request<B>) -> ResponseFormat {
        match ResponseFormat::for_request(req.headers(), req.extensions()) {
            ResponseFormat::Json if self.is_mcp_post(req) => ResponseFormat::JsonRpc(None),
            format => format,
        }
    }
}

fn is_preflight(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Refuses requests from origins (and hosts) the [`CorsPolicy`] does not allow, and applies the
/// policy's CORS headers to the rest; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mcp_headers::{CorsPolicy, OriginGuardLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let cors = CorsPolicy::builder().origins(["https://app.example.com"]).build()?;
/// let guard = OriginGuardLayer::builder(&cors)
///     .bind_addr("127.0.0.1:8080".parse()?) // loopback: Host must be localhost/127.0.0.1/[::1]
///     .build()?;
/// let svc = ServiceBuilder::new().layer(guard).service_fn(|_req: Request<Full<Bytes>>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// });
///
/// // An allowed origin gets through, with CORS headers.
/// let req = Request::post("/mcp")
///     .header("host", "127.0.0.1:8080")
///     .header("origin", "https://app.example.com")
///     .body(Full::default())?;
/// let res = svc.clone().oneshot(req).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
///
/// // A DNS-rebinding page does not.
/// let req = Request::post("/mcp")
///     .header("host", "127.0.0.1:8080")
///     .header("origin", "http://evil.example:8080")
///     .body(Full::default())?;
/// let res = svc.oneshot(req).await?;
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// let body: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
/// assert_eq!(
///     body,
///     serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
///         "message": "Origin not allowed", "data": {"status": 403, "code": "origin_not_allowed"}}})
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OriginGuardLayer {
    config: Arc<Config>,
}

impl OriginGuardLayer {
    /// The guard for this policy, with the defaults: no `Host` allowlist, MCP path `/mcp`, the
    /// protected-resource metadata exempt.
    pub fn from_policy(policy: &CorsPolicy) -> Self {
        Self::make(
            policy,
            None,
            DEFAULT_MCP_PATH.into(),
            DEFAULT_EXEMPT_PATHS.iter().map(|&p| p.into()).collect(),
        )
    }

    /// A builder for this policy.
    pub fn builder(policy: &CorsPolicy) -> OriginGuardLayerBuilder {
        OriginGuardLayerBuilder {
            policy: policy.clone(),
            hosts: HostsSetting::Default,
            bind_addr: None,
            mcp_path: DEFAULT_MCP_PATH.to_owned(),
            exempt_paths: DEFAULT_EXEMPT_PATHS.map(str::to_owned).to_vec(),
        }
    }

    fn make(
        policy: &CorsPolicy,
        hosts: Option<HostSet>,
        mcp_path: Box<str>,
        exempt_paths: Box<[Box<str>]>,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                policy: policy.clone(),
                // The guard has checked the origin; the CORS layer only echoes it.
                cors: policy.cors_layer_behind_guard(),
                hosts,
                mcp_path,
                exempt_paths,
            }),
        }
    }

    /// The policy the guard enforces.
    pub fn policy(&self) -> &CorsPolicy {
        &self.config.policy
    }

    /// The `Host` allowlist (normalised), or `None` when any host is accepted.
    pub fn allowed_hosts(&self) -> Option<Vec<String>> {
        self.config.hosts.as_ref().map(HostSet::entries)
    }

    /// A one-line summary for start-up logs.
    pub fn summary(&self) -> String {
        let hosts = self
            .allowed_hosts()
            .map_or_else(|| "any".to_owned(), |h| h.join(", "));
        format!(
            "origin guard: hosts [{hosts}], exempt [{}]; {}",
            self.config.exempt_paths.join(", "),
            self.config.policy.summary()
        )
    }
}

#[derive(Debug, Clone)]
enum HostsSetting {
    Default,
    Any,
    List(Vec<String>),
}

/// Builds an [`OriginGuardLayer`]; see [`OriginGuardLayer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OriginGuardLayerBuilder {
    policy: CorsPolicy,
    hosts: HostsSetting,
    bind_addr: Option<SocketAddr>,
    mcp_path: String,
    exempt_paths: Vec<String>,
}

/// The former name of [`OriginGuardLayerBuilder`].
#[deprecated(note = "renamed to `OriginGuardLayerBuilder`")]
pub type OriginGuardBuilder = OriginGuardLayerBuilder;

impl OriginGuardLayerBuilder {
    /// Accept only requests whose `Host` (or HTTP/2 `:authority`) is one of these: `name`,
    /// `name:port`, an IPv4 address, or an IPv6 address with or without brackets. An entry
    /// without a port matches any port. Refused at build under `allowed_hosts`: malformed
    /// entries, and an empty list (use [`any_host`](Self::any_host)).
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts = HostsSetting::List(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// Accept any `Host`, even when bound to loopback (for a server behind a proxy that checks
    /// `Host` itself).
    pub fn any_host(mut self) -> Self {
        self.hosts = HostsSetting::Any;
        self
    }

    /// The address the server listens on. When it is loopback and no allowlist is given, only
    /// `localhost`, `127.0.0.1` and `[::1]` (any port) are accepted as `Host`.
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.bind_addr = Some(addr);
        self
    }

    /// The MCP endpoint path (default `/mcp`): `POST`s to it and under it are refused with a
    /// JSON-RPC error.
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.mcp_path = path.into();
        self
    }

    /// Paths (and everything under them) passed to the inner service without any check or CORS
    /// handling, replacing the default (`/.well-known/oauth-protected-resource`). Only list
    /// public documents that answer CORS themselves.
    pub fn exempt_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exempt_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// Names the setting: `allowed_hosts`, `mcp_path` or `exempt_paths`.
    pub fn build(self) -> Result<OriginGuardLayer, ConfigError> {
        let hosts = match (&self.hosts, self.bind_addr) {
            (HostsSetting::Any, _) => None,
            (HostsSetting::List(list), _) if list.is_empty() => {
                return Err(ConfigError::new(
                    "allowed_hosts",
                    "the list is empty; call any_host() to accept every Host",
                ));
            }
            (HostsSetting::List(list), _) => Some(
                HostSet::parse_list(list.iter().map(String::as_str)).map_err(
                    |(value, reason)| ConfigError::new("allowed_hosts", reason).with_value(value),
                )?,
            ),
            (HostsSetting::Default, Some(addr)) if addr.ip().is_loopback() => Some(
                HostSet::parse_list(LOOPBACK_HOSTS).map_err(|(value, reason)| {
                    ConfigError::new("allowed_hosts", reason).with_value(value)
                })?,
            ),
            (HostsSetting::Default, _) => None,
        };
        debug_assert!(hosts.as_ref().is_none_or(|h| !h.is_empty()));
        let path_ok = |p: &str| p.starts_with('/') && (p.len() == 1 || !p.ends_with('/'));
        if !path_ok(&self.mcp_path) {
            return Err(
                ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                    .with_value(self.mcp_path),
            );
        }
        for p in &self.exempt_paths {
            if !path_ok(p) || p == "/" {
                return Err(ConfigError::new(
                    "exempt_paths",
                    "each must start with '/', not end with '/', and not be '/' itself",
                )
                .with_value(p));
            }
        }
        Ok(OriginGuardLayer::make(
            &self.policy,
            hosts,
            self.mcp_path.into(),
            self.exempt_paths.into_iter().map(Into::into).collect(),
        ))
    }
}

impl<S> Layer<S> for OriginGuardLayer {
    type Service = OriginGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginGuard {
            // Cannot panic: the policy was validated against every tower-http assertion.
            inner: self.config.cors.layer(WithDefaultBody(inner)),
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`OriginGuardLayer`].
#[derive(Debug, Clone)]
pub struct OriginGuard<S> {
    inner: Cors<WithDefaultBody<S>>,
    config: Arc<Config>,
}

impl<S> OriginGuard<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner.get_ref().0
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner.get_mut().0
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OriginGuard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        if config.is_exempt(req.uri().path()) {
            return ResponseFuture::plain(self.get_mut().call(req));
        }
        if let Err(refusal) = config.check(&req) {
            let format = config.format(&req);
            return ResponseFuture::rejected(refusal.rejection().into_response(&format));
        }
        if req.method() == Method::OPTIONS && !is_preflight(req.headers()) {
            return ResponseFuture::plain(self.get_mut().call(req));
        }
        ResponseFuture {
            kind: Kind::Cors {
                future: self.inner.call(req),
            },
        }
    }
}

/// Lets tower-http's `Cors` (which needs a `Default` body for the preflight answers it makes
/// itself) wrap any service: the body becomes `Option<B>`, `None` for a preflight answer.
#[derive(Debug, Clone)]
struct WithDefaultBody<S>(S);

impl<S, ReqBody, B> Service<Request<ReqBody>> for WithDefaultBody<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
{
    type Response = Response<Option<B>>;
    type Error = S::Error;
    type Future = WithDefaultBodyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        WithDefaultBodyFuture {
            future: self.0.call(req),
        }
    }
}

pin_project! {
    struct WithDefaultBodyFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F, B, E> Future for WithDefaultBodyFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Option<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(cx).map_ok(|res| res.map(Some))
    }
}

pin_project! {
    /// The response future of [`OriginGuard`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Cors {
            #[pin]
            future: tower_http::cors::ResponseFuture<WithDefaultBodyFuture<F>>,
        },
        Plain {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<Response<GuardBody<B>>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn plain(future: F) -> Self {
        Self {
            kind: Kind::Plain { future },
        }
    }

    fn rejected(response: Response<GuardBody<B>>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Cors { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(|body| match body {
                    Some(body) => GuardBody::inner(body),
                    None => GuardBody::rejection(Bytes::new()),
                })))
            }
            KindProj::Plain { future } => future.poll(cx).map_ok(|res| res.map(GuardBody::inner)),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use http::HeaderValue;
    use http_body_util::{BodyExt, Full};
    use mcp_security_core::config::Environment;
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    fn policy() -> CorsPolicy {
        CorsPolicy::builder()
            .origins(["https://app.example.com"])
            .build()
            .unwrap()
    }

    /// Echoes the method and path, and sets a header of its own.
    fn inner()
    -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        service_fn(|req: Request<Full<Bytes>>| async move {
            let mut res = Response::new(Full::new(Bytes::from(format!(
                "{} {}",
                req.method(),
                req.uri().path()
            ))));
            res.headers_mut()
                .insert("x-inner", HeaderValue::from_static("1"));
            Ok::<_, Infallible>(res)
        })
    }

    async fn send(
        layer: &OriginGuardLayer,
        req: Request<Full<Bytes>>,
    ) -> Response<GuardBody<Full<Bytes>>> {
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(inner())
            .oneshot(req)
            .await
            .unwrap()
    }

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(path);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(Full::default()).unwrap()
    }

    async fn body(res: Response<GuardBody<Full<Bytes>>>) -> Bytes {
        res.into_body().collect().await.unwrap().to_bytes()
    }

    fn header_names<B>(res: &Response<B>) -> Vec<&str> {
        let mut names: Vec<&str> = res.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    async fn body_json(res: Response<GuardBody<Full<Bytes>>>) -> Value {
        serde_json::from_slice(&body(res).await).unwrap()
    }

    fn jsonrpc_403(code: &str, message: &str) -> Value {
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":message,
            "data":{"status":403,"code":code}}})
    }

    #[tokio::test]
    async fn absent_origin_passes_without_allow_origin() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let res = send(&layer, req(Method::POST, "/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        // tower-http adds the exposed headers and `Vary` to every non-preflight response; without
        // `Access-Control-Allow-Origin` they grant nothing.
        assert_eq!(
            header_names(&res),
            ["access-control-expose-headers", "vary", "x-inner"]
        );
        assert_eq!(res.headers()["vary"], "origin");
        assert_eq!(body(res).await, "POST /mcp");
    }

    #[tokio::test]
    async fn allowed_origin_gets_cors_headers() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let res = send(
            &layer,
            req(
                Method::POST,
                "/mcp",
                &[("origin", "https://app.example.com")],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_names(&res),
            [
                "access-control-allow-origin",
                "access-control-expose-headers",
                "vary",
                "x-inner"
            ]
        );
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(
            h["access-control-expose-headers"],
            "www-authenticate,mcp-session-id,mcp-protocol-version,dpop-nonce"
        );
        assert_eq!(body(res).await, "POST /mcp");
    }

    #[tokio::test]
    async fn preflight_allowed_is_answered_here() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let res = send(
            &layer,
            req(
                Method::OPTIONS,
                "/mcp",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization,content-type",
                    ),
                ],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_names(&res),
            [
                "access-control-allow-headers",
                "access-control-allow-methods",
                "access-control-allow-origin",
                "access-control-max-age",
                "vary"
            ]
        );
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-methods"], "GET,POST,DELETE");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,content-type,mcp-session-id,mcp-protocol-version,mcp-method,mcp-name,last-event-id,dpop"
        );
        assert_eq!(h["access-control-max-age"], "7200");
        assert!(
            res.body().is_rejection(),
            "answered by the layer, not the inner service"
        );
        assert_eq!(body(res).await, "");
    }

    #[tokio::test]
    async fn preflight_refused_is_a_403_without_cors_headers() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let res = send(
            &layer,
            req(
                Method::OPTIONS,
                "/mcp",
                &[
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "POST"),
                ],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(header_names(&res), ["content-type"]);
        assert_eq!(res.headers()["content-type"], "application/json");
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(
            r.internal_detail(),
            Some("Origin is not in the allowed set")
        );
        assert_eq!(
            body_json(res).await,
            json!({"error":"origin_not_allowed","message":"Origin not allowed"})
        );
    }

    #[tokio::test]
    async fn other_options_go_to_the_inner_service() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let res = send(&layer, req(Method::OPTIONS, "/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header_names(&res), ["x-inner"]);
        assert_eq!(body(res).await, "OPTIONS /mcp");
    }

    #[tokio::test]
    async fn refused_origins_on_an_mcp_post_get_a_jsonrpc_error_with_null_id() {
        let layer = OriginGuardLayer::from_policy(&policy());
        for (headers, detail) in [
            (
                vec![("origin", "https://evil.example")],
                "Origin is not in the allowed set",
            ),
            (
                vec![("origin", "http://app.example.com")],
                "Origin is not in the allowed set",
            ),
            (
                vec![("origin", "https://app.example.com.evil.example")],
                "Origin is not in the allowed set",
            ),
            (
                vec![("origin", "https://app.example.com/")],
                "Origin is not in the allowed set",
            ),
            (
                vec![("origin", "garbage")],
                "Origin is not in the allowed set",
            ),
            (vec![("origin", "")], "Origin is not in the allowed set"),
            (vec![("origin", "null")], "Origin is null"),
            (vec![("origin", "NULL")], "Origin is null"),
            (
                vec![
                    ("origin", "https://app.example.com"),
                    ("origin", "https://app.example.com"),
                ],
                "more than one Origin header",
            ),
            (
                vec![
                    ("origin", "https://app.example.com"),
                    ("origin", "https://evil.example"),
                ],
                "more than one Origin header",
            ),
        ] {
            for path in ["/mcp", "/mcp/", "/mcp/session"] {
                let res = send(&layer, req(Method::POST, path, &headers)).await;
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
                assert_eq!(header_names(&res), ["content-type"]);
                assert_eq!(res.headers()["content-type"], "application/json");
                let r = res.extensions().get::<Rejection>().unwrap();
                assert_eq!(r.code(), "origin_not_allowed");
                assert_eq!(r.internal_detail(), Some(detail), "{headers:?}");
                assert_eq!(
                    body_json(res).await,
                    jsonrpc_403("origin_not_allowed", "Origin not allowed"),
                    "{headers:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn refused_origin_formats_follow_the_caller() {
        let layer = OriginGuardLayer::from_policy(&policy());
        let evil = ("origin", "https://evil.example");
        // Not the MCP endpoint, or not a POST: plain JSON.
        for (method, path) in [
            (Method::GET, "/mcp"),
            (Method::POST, "/mcpx"),
            (Method::GET, "/health"),
        ] {
            let res = send(&layer, req(method, path, &[evil])).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            assert_eq!(
                body_json(res).await,
                json!({"error":"origin_not_allowed","message":"Origin not allowed"})
            );
        }
        // gRPC: trailers-only, permission denied.
        let res = send(
            &layer,
            req(
                Method::POST,
                "/pkg.Svc/Call",
                &[evil, ("content-type", "application/grpc")],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_names(&res),
            ["content-type", "grpc-message", "grpc-status"]
        );
        assert_eq!(res.headers()["grpc-status"], "7");
        assert_eq!(res.headers()["grpc-message"], "Origin not allowed");
        assert_eq!(body(res).await, "");
        // A custom MCP path.
        let layer = OriginGuardLayer::builder(&policy())
            .mcp_path("/rpc")
            .build()
            .unwrap();
        let res = send(&layer, req(Method::POST, "/rpc", &[evil])).await;
        assert_eq!(
            body_json(res).await,
            jsonrpc_403("origin_not_allowed", "Origin not allowed")
        );
    }

    #[tokio::test]
    async fn production_without_origins_refuses_every_origin() {
        let layer = OriginGuardLayer::from_policy(&CorsPolicy::default());
        let res = send(
            &layer,
            req(Method::POST, "/mcp", &[("origin", "http://localhost:3000")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            body_json(res).await,
            jsonrpc_403("origin_not_allowed", "Origin not allowed")
        );
        let res = send(&layer, req(Method::POST, "/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn development_defaults_and_wildcard() {
        let dev = CorsPolicy::builder()
            .environment(Environment::Development)
            .build()
            .unwrap();
        let layer = OriginGuardLayer::from_policy(&dev);
        for (origin, status) in [
            ("http://localhost:8501", StatusCode::OK),
            ("http://127.0.0.1:6274", StatusCode::OK),
            ("http://localhost:6274", StatusCode::FORBIDDEN),
        ] {
            let res = send(&layer, req(Method::POST, "/mcp", &[("origin", origin)])).await;
            assert_eq!(res.status(), status, "{origin}");
        }
        let any = CorsPolicy::builder()
            .environment(Environment::Development)
            .origins(["*"])
            .build()
            .unwrap();
        let layer = OriginGuardLayer::from_policy(&any);
        let res = send(
            &layer,
            req(Method::POST, "/mcp", &[("origin", "https://x.example")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        let res = send(&layer, req(Method::POST, "/mcp", &[("origin", "null")])).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn credentials_echo_the_allowed_origin_only() {
        let policy = CorsPolicy::builder()
            .origins(["https://app.example.com"])
            .allow_credentials(true)
            .build()
            .unwrap();
        let layer = OriginGuardLayer::from_policy(&policy);
        let res = send(
            &layer,
            req(
                Method::OPTIONS,
                "/mcp",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                ],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(res.headers()["access-control-allow-credentials"], "true");
        let res = send(
            &layer,
            req(Method::POST, "/mcp", &[("origin", "https://evil.example")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(header_names(&res), ["content-type"]);
    }

    #[tokio::test]
    async fn host_allowlist_when_bound_to_loopback() {
        let layer = OriginGuardLayer::builder(&policy())
            .bind_addr("127.0.0.1:8080".parse().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            layer.allowed_hosts().unwrap(),
            ["localhost", "127.0.0.1", "[::1]"]
        );
        for (host, ok) in [
            ("localhost:8080", true),
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("evil.example:8080", false),
            ("localhost.evil.example", false),
        ] {
            let res = send(&layer, req(Method::GET, "/mcp", &[("host", host)])).await;
            if ok {
                assert_eq!(res.status(), StatusCode::OK, "{host}");
            } else {
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{host}");
                let r = res.extensions().get::<Rejection>().unwrap();
                assert_eq!(r.internal_detail(), Some("Host is not on the allowlist"));
                assert_eq!(
                    body_json(res).await,
                    json!({"error":"host_not_allowed","message":"Host not allowed"})
                );
            }
        }
        // The HTTP/2 authority counts when there is no Host header.
        let res = send(&layer, req(Method::GET, "http://localhost:8080/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = send(&layer, req(Method::GET, "http://evil.example/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // No host at all, or two.
        let res = send(&layer, req(Method::POST, "/mcp", &[])).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.extensions()
                .get::<Rejection>()
                .unwrap()
                .internal_detail(),
            Some("no Host header or authority")
        );
        assert_eq!(
            body_json(res).await,
            jsonrpc_403("host_not_allowed", "Host not allowed")
        );
        let res = send(
            &layer,
            req(
                Method::GET,
                "/mcp",
                &[("host", "localhost"), ("host", "evil.example")],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.extensions()
                .get::<Rejection>()
                .unwrap()
                .internal_detail(),
            Some("more than one Host header")
        );
    }

    #[tokio::test]
    async fn host_allowlist_explicit_any_and_non_loopback() {
        let layer = OriginGuardLayer::builder(&policy())
            .allowed_hosts(["mcp.example.com", "10.0.0.5:8443"])
            .build()
            .unwrap();
        for (host, status) in [
            ("mcp.example.com", StatusCode::OK),
            ("MCP.example.com:443", StatusCode::OK),
            ("10.0.0.5:8443", StatusCode::OK),
            ("10.0.0.5:8080", StatusCode::FORBIDDEN),
            ("localhost", StatusCode::FORBIDDEN),
        ] {
            let res = send(&layer, req(Method::GET, "/", &[("host", host)])).await;
            assert_eq!(res.status(), status, "{host}");
        }
        let layer = OriginGuardLayer::builder(&policy())
            .bind_addr("127.0.0.1:8080".parse().unwrap())
            .any_host()
            .build()
            .unwrap();
        assert_eq!(layer.allowed_hosts(), None);
        let res = send(&layer, req(Method::GET, "/", &[("host", "evil.example")])).await;
        assert_eq!(res.status(), StatusCode::OK);
        let layer = OriginGuardLayer::builder(&policy())
            .bind_addr("0.0.0.0:8080".parse().unwrap())
            .build()
            .unwrap();
        assert_eq!(layer.allowed_hosts(), None);
    }

    #[tokio::test]
    async fn exempt_paths_skip_checks_and_cors() {
        let layer = OriginGuardLayer::builder(&policy())
            .bind_addr("127.0.0.1:8080".parse().unwrap())
            .build()
            .unwrap();
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            let res = send(
                &layer,
                req(
                    Method::OPTIONS,
                    path,
                    &[
                        ("host", "evil.example"),
                        ("origin", "https://inspector.example"),
                        ("access-control-request-method", "GET"),
                    ],
                ),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(header_names(&res), ["x-inner"]);
            assert_eq!(body(res).await, format!("OPTIONS {path}"));
        }
        let res = send(
            &layer,
            req(
                Method::GET,
                "/.well-known/oauth-protected-resourcex",
                &[
                    ("host", "localhost"),
                    ("origin", "https://inspector.example"),
                ],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn builder_errors_name_the_setting() {
        let cases = [
            (
                OriginGuardLayer::builder(&policy()).allowed_hosts(Vec::<String>::new()),
                "allowed_hosts: the list is empty; call any_host() to accept every Host",
            ),
            (
                OriginGuardLayer::builder(&policy()).allowed_hosts(["https://mcp.example.com"]),
                "allowed_hosts: a host has no scheme or path: write host[:port] (got \"https://mcp.example.com\")",
            ),
            (
                OriginGuardLayer::builder(&policy()).mcp_path("mcp"),
                "mcp_path: must start with '/' and not end with '/' (got \"mcp\")",
            ),
            (
                OriginGuardLayer::builder(&policy()).exempt_paths(["/"]),
                "exempt_paths: each must start with '/', not end with '/', and not be '/' itself (got \"/\")",
            ),
        ];
        for (builder, message) in cases {
            assert_eq!(builder.build().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn summary() {
        let layer = OriginGuardLayer::builder(&policy())
            .bind_addr("[::1]:8080".parse().unwrap())
            .build()
            .unwrap();
        assert!(layer.policy().allows_origin("https://app.example.com"));
        assert!(
            layer
                .summary()
                .starts_with("origin guard: hosts [localhost, 127.0.0.1, [::1]], exempt [/.well-known/oauth-protected-resource]; cors (production): origins [https://app.example.com]")
        );
    }
}
