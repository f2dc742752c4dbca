//! [`SecurityHeadersLayer`]: security response headers on every response, rejections from inner
//! layers included.
//!
//! Two presets, built once into [`HeaderValue`]s when the layer is built and cloned onto each
//! response:
//!
//! | header | [`api()`](SecurityHeadersLayer::api) (default) | [`web()`](SecurityHeadersLayer::web) |
//! |---|---|---|
//! | `X-Content-Type-Options` | `nosniff` | `nosniff` |
//! | `X-Frame-Options` | `DENY` | `DENY` |
//! | `Strict-Transport-Security` | `max-age=31536000; includeSubDomains` | same |
//! | `Referrer-Policy` | `strict-origin-when-cross-origin` | same |
//! | `Permissions-Policy` | `geolocation=(), microphone=(), camera=()` | same |
//! | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` | [`CspBuilder::web`] |
//! | `Cache-Control` | `no-store` | — (pages and assets may be cached) |
//! | `Cross-Origin-Opener-Policy` | — | `same-origin` |
//! | `Cross-Origin-Resource-Policy` | `same-origin` | `same-origin` |
//! | `X-XSS-Protection` | `0` | `0` |
//!
//! `X-XSS-Protection: 0` follows OWASP: the filter that `1; mode=block` switched on was itself
//! exploitable and is gone from every current browser. Deployments that must send the old value
//! (as many deployment guides still do) write `.header("x-xss-protection", "1; mode=block")`.
//!
//! Options ([`SecurityHeadersLayerBuilder`]): keep what the inner service set or overwrite it
//! ([`HeaderMode`]); override, add or omit any header; a typed CSP ([`CspBuilder`]); `Server` and
//! `X-Powered-By` removed (on by default); and HSTS sent only when the request arrived over TLS
//! or through a trusted proxy that says `https` ([`HstsWhen`]), because a browser ignores HSTS
//! over plain HTTP and a plain-HTTP development server should not teach it anything.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Request, Response};
use mcp_security_core::client_addr::{ClientAddr, ClientAddrResolver, ForwardedHeader, peer_addr};
use mcp_security_core::config::ConfigError;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::csp::{ContentSecurityPolicy, CspBuilder};

const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");
const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");
const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// How many inner-service headers a response's map has index room for before it grows.
const INNER_HEADERS_ROOM: usize = 16;

/// The default HSTS value: one year, subdomains included.
pub const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";

/// Headers a response must not have set from configuration: they frame the message.
const FRAMING_HEADERS: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TRAILER,
    header::TE,
];

/// A starting set of headers; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preset {
    /// For JSON and MCP responses (the default).
    #[default]
    Api,
    /// For servers that also serve HTML.
    Web,
}

impl Preset {
    fn headers(self) -> Vec<(HeaderName, HeaderValue)> {
        let common_head = [
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(DEFAULT_HSTS),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("strict-origin-when-cross-origin"),
            ),
            (
                PERMISSIONS_POLICY,
                HeaderValue::from_static("geolocation=(), microphone=(), camera=()"),
            ),
        ];
        let mut headers = common_head.to_vec();
        match self {
            Preset::Api => headers.extend([
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ]),
            Preset::Web => {
                let csp = CspBuilder::web()
                    .build()
                    .map(|c| c.header_value().clone())
                    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
                headers.extend([
                    (header::CONTENT_SECURITY_POLICY, csp),
                    (
                        CROSS_ORIGIN_OPENER_POLICY,
                        HeaderValue::from_static("same-origin"),
                    ),
                ]);
            }
        }
        headers.extend([
            (
                CROSS_ORIGIN_RESOURCE_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
            (header::X_XSS_PROTECTION, HeaderValue::from_static("0")),
        ]);
        headers
    }
}

/// What to do when the inner service already set one of the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeaderMode {
    /// Leave the inner service's value (the default): a handler that knows better — a page with
    /// its own CSP, a metadata document that may be cached — wins.
    #[default]
    KeepExisting,
    /// Replace it: the layer's values are the policy, whatever the handler said.
    Overwrite,
}

/// When `Strict-Transport-Security` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HstsWhen {
    /// Only for requests that arrived over TLS: the request URI's scheme is `https`, or the
    /// peer is a trusted proxy (see [`SecurityHeadersLayerBuilder::trusted_proxies`]) whose
    /// `X-Forwarded-Proto` (or `Forwarded: proto=`, when the resolver reads `Forwarded`) says
    /// `https`. The default.
    ///
    /// HTTP/1.1 request URIs carry no scheme (only HTTP/2 has `:scheme`), so a server that
    /// terminates TLS itself should choose [`Always`](Self::Always).
    #[default]
    SecureRequests,
    /// On every response: for servers that terminate TLS themselves, or that are only ever
    /// reached over HTTPS.
    Always,
}

struct Config {
    headers: Box<[(HeaderName, HeaderValue)]>,
    hsts: Option<HeaderValue>,
    hsts_when: HstsWhen,
    mode: HeaderMode,
    strip_server_headers: bool,
    resolver: Option<ClientAddrResolver>,
    /// `headers` as one map, hashed once at build: a response's map starts as a clone of it
    /// (two allocations, no hashing) and the inner service's few headers are merged in, instead
    /// of hashing and inserting every configured header into the inner service's map.
    template: HeaderMap,
    /// `template` with `Strict-Transport-Security`.
    template_hsts: HeaderMap,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHeaders")
            .field("headers", &self.headers)
            .field("hsts", &self.hsts)
            .field("hsts_when", &self.hsts_when)
            .field("mode", &self.mode)
            .field("strip_server_headers", &self.strip_server_headers)
            .field("trusted_proxies", &self.resolver.is_some())
            .finish()
    }
}

impl Config {
    fn wants_hsts<B>(&self, req: &Request<B>) -> bool {
        if self.hsts.is_none() {
            return false;
        }
        match self.hsts_when {
            HstsWhen::Always => true,
            HstsWhen::SecureRequests => is_secure(req, self.resolver.as_ref()),
        }
    }

    /// Put the configured headers on a response's `headers`.
    ///
    /// The response's map is replaced by a clone of the prebuilt template and the inner
    /// service's headers (usually one to three) are merged back: with
    /// [`HeaderMode::KeepExisting`] an inner value replaces the template's, with
    /// [`HeaderMode::Overwrite`] it is dropped when the template has that name; `Server` and
    /// `X-Powered-By` are dropped when stripping is on. Multiple values of one name stay
    /// together. No header is formatted or hashed per request beyond the inner ones.
    fn apply(&self, headers: &mut HeaderMap, hsts: bool) {
        let template = if hsts {
            &self.template_hsts
        } else {
            &self.template
        };
        let inner = std::mem::replace(headers, template.clone());
        if inner.is_empty() {
            return;
        }
        headers.reserve(inner.len());
        // Whether the values following a name (`None` in the iterator) are kept.
        let mut current: Option<HeaderName> = None;
        for (name, value) in inner {
            match name {
                Some(name) => {
                    current = None;
                    if self.strip_server_headers && (name == header::SERVER || name == X_POWERED_BY)
                    {
                        continue;
                    }
                    match self.mode {
                        HeaderMode::KeepExisting => {
                            headers.insert(&name, value);
                        }
                        HeaderMode::Overwrite => match headers.entry(&name) {
                            http::header::Entry::Vacant(slot) => {
                                slot.insert(value);
                            }
                            http::header::Entry::Occupied(_) => continue,
                        },
                    }
                    current = Some(name);
                }
                None => {
                    if let Some(name) = &current {
                        headers.append(name, value);
                    }
                }
            }
        }
    }
}

/// Whether the request arrived over TLS: an `https` URI, or a trusted proxy saying so.
fn is_secure<B>(req: &Request<B>, resolver: Option<&ClientAddrResolver>) -> bool {
    if req.uri().scheme() == Some(&Scheme::HTTPS) {
        return true;
    }
    let Some(resolver) = resolver else {
        return false;
    };
    let peer = req
        .extensions()
        .get::<ClientAddr>()
        .map(ClientAddr::peer)
        .or_else(|| peer_addr(req.extensions()));
    let Some(peer) = peer else {
        return false;
    };
    resolver.is_trusted_proxy(peer.ip())
        && forwarded_proto_is_https(req.headers(), resolver.forwarded_header())
}

/// The protocol the nearest proxy reports: the last `X-Forwarded-Proto` entry, or the `proto`
/// of the last `Forwarded` element.
fn forwarded_proto_is_https(headers: &HeaderMap, which: ForwardedHeader) -> bool {
    let is_https = |v: &[u8]| trim(v).eq_ignore_ascii_case(b"https");
    match which {
        ForwardedHeader::XForwardedFor => headers
            .get_all(X_FORWARDED_PROTO)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(is_https),
        ForwardedHeader::Forwarded => headers
            .get_all(header::FORWARDED)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .and_then(|element| {
                element.split(|&b| b == b';').find_map(|pair| {
                    let pair = trim(pair);
                    let eq = pair.iter().position(|&b| b == b'=')?;
                    let (name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
                    name.eq_ignore_ascii_case(b"proto").then_some(value)
                })
            })
            .map(|v| {
                let v = trim(v);
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v)
            })
            .is_some_and(is_https),
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Sets security headers on every response; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use mcp_headers::{HeaderMode, SecurityHeadersLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let headers = SecurityHeadersLayer::builder() // the api() preset
///     .header("x-xss-protection", "1; mode=block") // the legacy value some guides send
///     .omit("cache-control")
///     .header_mode(HeaderMode::Overwrite)
///     .build()?;
/// let svc = ServiceBuilder::new()
///     .layer(headers)
///     .service_fn(|_req: Request<String>| async {
///         let mut res = Response::new(String::new());
///         res.headers_mut().insert("server", http::HeaderValue::from_static("demo/1.0"));
///         Ok::<_, Infallible>(res)
///     });
///
/// let res = svc.oneshot(Request::new(String::new())).await?;
/// assert_eq!(res.headers()["x-content-type-options"], "nosniff");
/// assert_eq!(res.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
/// assert_eq!(res.headers()["x-xss-protection"], "1; mode=block");
/// assert!(res.headers().get("cache-control").is_none());
/// assert!(res.headers().get("server").is_none());
/// // Plain HTTP, no trusted proxy: no HSTS.
/// assert!(res.headers().get("strict-transport-security").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    config: Arc<Config>,
}

impl SecurityHeadersLayer {
    /// The [`Preset::Api`] headers with the defaults: keep what the inner service set, strip
    /// `Server`/`X-Powered-By`, HSTS over TLS only.
    pub fn api() -> Self {
        Self::from_builder(SecurityHeadersLayerBuilder::new(Preset::Api))
    }

    /// The [`Preset::Web`] headers with the same defaults.
    pub fn web() -> Self {
        Self::from_builder(SecurityHeadersLayerBuilder::new(Preset::Web))
    }

    /// A builder starting from the [`Preset::Api`] headers.
    pub fn builder() -> SecurityHeadersLayerBuilder {
        SecurityHeadersLayerBuilder::new(Preset::Api)
    }

    fn from_builder(b: SecurityHeadersLayerBuilder) -> Self {
        let (headers, hsts) = split_hsts(b.headers);
        // Index room for what inner layers usually add (content type, CORS `Vary`, two sets of
        // rate-limit headers, a session id): merging them then never rehashes the map. A clone
        // copies the index table as it is (a few hundred bytes), so the room costs no hashing.
        let mut template = HeaderMap::with_capacity(headers.len() + INNER_HEADERS_ROOM);
        for (name, value) in &*headers {
            template.insert(name, value.clone());
        }
        let mut template_hsts = template.clone();
        if let Some(value) = &hsts {
            template_hsts.insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
        }
        Self {
            config: Arc::new(Config {
                headers,
                hsts,
                template,
                template_hsts,
                hsts_when: b.hsts_when,
                mode: b.mode,
                strip_server_headers: b.strip_server_headers,
                resolver: b.resolver,
            }),
        }
    }

    /// The headers set on every response, in order, and `Strict-Transport-Security` last when
    /// configured (it is sent as [`hsts_when`](Self::hsts_when) says).
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.config.headers.iter().map(|(n, v)| (n, v)).chain(
            self.config
                .hsts
                .iter()
                .map(|v| (&header::STRICT_TRANSPORT_SECURITY, v)),
        )
    }

    /// When HSTS is sent.
    pub fn hsts_when(&self) -> HstsWhen {
        self.config.hsts_when
    }

    /// Keep or overwrite the inner service's values.
    pub fn header_mode(&self) -> HeaderMode {
        self.config.mode
    }
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::api()
    }
}

fn split_hsts(
    headers: Vec<(HeaderName, HeaderValue)>,
) -> (Box<[(HeaderName, HeaderValue)]>, Option<HeaderValue>) {
    let mut hsts = None;
    let rest: Vec<_> = headers
        .into_iter()
        .filter_map(|(name, value)| {
            if name == header::STRICT_TRANSPORT_SECURITY {
                hsts = Some(value);
                None
            } else {
                Some((name, value))
            }
        })
        .collect();
    (rest.into_boxed_slice(), hsts)
}

/// Builds a [`SecurityHeadersLayer`]; see [`SecurityHeadersLayer::builder`]. Methods record the
/// first invalid value; [`build`](Self::build) reports it, naming the setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct SecurityHeadersLayerBuilder {
    headers: Vec<(HeaderName, HeaderValue)>,
    hsts_when: HstsWhen,
    mode: HeaderMode,
    strip_server_headers: bool,
    resolver: Option<ClientAddrResolver>,
    error: Option<ConfigError>,
}

/// The former name of [`SecurityHeadersLayerBuilder`].
#[deprecated(note = "renamed to `SecurityHeadersLayerBuilder`")]
pub type SecurityHeadersBuilder = SecurityHeadersLayerBuilder;

impl SecurityHeadersLayerBuilder {
    fn new(preset: Preset) -> Self {
        Self {
            headers: preset.headers(),
            hsts_when: HstsWhen::default(),
            mode: HeaderMode::default(),
            strip_server_headers: true,
            resolver: None,
            error: None,
        }
    }

    fn record(&mut self, err: ConfigError) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.headers.push((name, value)),
        }
    }

    /// Start again from a preset: the header list is replaced by the preset's, so call this
    /// before [`header`](Self::header), [`omit`](Self::omit), [`csp`](Self::csp) and
    /// [`hsts`](Self::hsts).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.headers = preset.headers();
        self
    }

    /// Set a header (replacing the preset's value, or adding a new header). Refused at build,
    /// under the setting `header`: an invalid name or value, and the framing headers
    /// (`Content-Length`, `Transfer-Encoding`, `Connection`, `Upgrade`, `Trailer`, `TE`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let parsed = match HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                self.record(ConfigError::new("header", "not a valid header name").with_value(name));
                return self;
            }
        };
        if FRAMING_HEADERS.contains(&parsed) {
            self.record(
                ConfigError::new("header", "frames the message; it cannot be a fixed header")
                    .with_value(name),
            );
            return self;
        }
        match HeaderValue::from_str(value.trim()) {
            Ok(v) => self.set(parsed, v),
            Err(_) => self.record(
                ConfigError::new(
                    "header",
                    format!("{parsed}: not a valid header value (visible ASCII only)"),
                )
                .with_value(value),
            ),
        }
        self
    }

    /// Do not set this header (for example `cache-control`, or `strict-transport-security` to
    /// turn HSTS off). An invalid name is refused at build under the setting `omit`.
    pub fn omit(mut self, name: &str) -> Self {
        match HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(parsed) => self.headers.retain(|(n, _)| *n != parsed),
            Err(_) => {
                self.record(ConfigError::new("omit", "not a valid header name").with_value(name));
            }
        }
        self
    }

    /// The `Content-Security-Policy`, built with [`CspBuilder`].
    pub fn csp(mut self, policy: ContentSecurityPolicy) -> Self {
        self.set(
            header::CONTENT_SECURITY_POLICY,
            policy.header_value().clone(),
        );
        self
    }

    /// A `Content-Security-Policy-Report-Only` policy, to try a stricter policy out.
    pub fn csp_report_only(mut self, policy: ContentSecurityPolicy) -> Self {
        self.set(
            header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
            policy.header_value().clone(),
        );
        self
    }

    /// The HSTS value: `max-age` (whole seconds), `includeSubDomains`, `preload`. Refused at
    /// build, under the setting `hsts`: `preload` without `includeSubDomains` or with a
    /// `max-age` under one year (the preload list's requirements).
    pub fn hsts(mut self, max_age: Duration, include_subdomains: bool, preload: bool) -> Self {
        let secs = max_age.as_secs();
        if preload && (!include_subdomains || secs < 31_536_000) {
            self.record(
                ConfigError::new(
                    "hsts",
                    "preload needs includeSubDomains and a max-age of at least one year (31536000 s)",
                )
                .with_value(format!("max-age={secs}")),
            );
            return self;
        }
        let mut value = format!("max-age={secs}");
        if include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if preload {
            value.push_str("; preload");
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.set(header::STRICT_TRANSPORT_SECURITY, v);
        }
        self
    }

    /// When HSTS is sent (default [`HstsWhen::SecureRequests`]).
    pub fn hsts_when(mut self, when: HstsWhen) -> Self {
        self.hsts_when = when;
        self
    }

    /// The trusted proxies whose `X-Forwarded-Proto: https` (or `Forwarded: proto=https`) makes
    /// a request secure for HSTS. The peer address is read from a [`ClientAddr`] in the request
    /// extensions, else as [`peer_addr`] finds it. Without this, only requests whose URI scheme
    /// is `https` count as secure.
    pub fn trusted_proxies(mut self, resolver: ClientAddrResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Keep or overwrite values the inner service set (default [`HeaderMode::KeepExisting`]).
    pub fn header_mode(mut self, mode: HeaderMode) -> Self {
        self.mode = mode;
        self
    }

    /// Remove `Server` and `X-Powered-By` from responses (default on): they tell an attacker
    /// which software and version to look up.
    pub fn strip_server_headers(mut self, on: bool) -> Self {
        self.strip_server_headers = on;
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// The first refused value, naming the setting: `header`, `omit` or `hsts`.
    pub fn build(self) -> Result<SecurityHeadersLayer, ConfigError> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(SecurityHeadersLayer::from_builder(self)),
        }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> SecurityHeaders<S> {
    /// Wrap `inner` with the layer's settings.
    pub fn new(inner: S, layer: &SecurityHeadersLayer) -> Self {
        Self {
            inner,
            config: Arc::clone(&layer.config),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let hsts = self.config.wants_hsts(&req);
        ResponseFuture {
            future: self.inner.call(req),
            config: Arc::clone(&self.config),
            hsts,
        }
    }
}

pin_project! {
    /// The response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        config: Arc<Config>,
        hsts: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        this.config.apply(response.headers_mut(), *this.hsts);
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt, Empty, Full};
    use mcp_security_core::client_addr::PeerAddr;
    use mcp_security_core::rejection::{BearerChallenge, ResponseFormat};
    use mcp_security_core::{GuardBody, Rejection};
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    const API: [(&str, &str); 8] = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        (
            "permissions-policy",
            "geolocation=(), microphone=(), camera=()",
        ),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cache-control", "no-store"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-xss-protection", "0"),
    ];

    /// Every header of `res`, as (name, value) strings, in order.
    fn all_headers<B>(res: &Response<B>) -> Vec<(String, String)> {
        res.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    fn expected(extra: &[(&str, &str)], hsts: bool) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = extra
            .iter()
            .chain(API.iter())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        if hsts {
            v.push((
                "strict-transport-security".into(),
                "max-age=31536000; includeSubDomains".into(),
            ));
        }
        v.sort();
        v
    }

    fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
        v.sort();
        v
    }

    async fn call<S, B>(layer: SecurityHeadersLayer, svc: S, req: Request<()>) -> Response<B>
    where
        S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    {
        ServiceBuilder::new()
            .layer(layer)
            .service(svc)
            .oneshot(req)
            .await
            .unwrap()
    }

    fn ok_service()
    -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
        service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(res)
        })
    }

    async fn body_json(res: Response<GuardBody<Empty<Bytes>>>) -> Value {
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn every_api_header_on_a_200() {
        let res = call(SecurityHeadersLayer::api(), ok_service(), Request::new(())).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            sorted(all_headers(&res)),
            expected(&[("content-type", "application/json")], false)
        );
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "{\"ok\":true}"
        );
    }

    #[tokio::test]
    async fn every_api_header_and_hsts_on_an_https_200() {
        let req = Request::get("https://mcp.example.com/mcp")
            .body(())
            .unwrap();
        let res = call(SecurityHeadersLayer::api(), ok_service(), req).await;
        assert_eq!(
            sorted(all_headers(&res)),
            expected(&[("content-type", "application/json")], true)
        );
    }

    /// An inner layer (authentication) says no with its `GuardBody`: the headers are still
    /// there, next to the challenge, and the body is untouched.
    #[tokio::test]
    async fn every_api_header_on_a_401_from_an_inner_rejection() {
        let inner = service_fn(|_req: Request<()>| async {
            let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                .message("Authentication required")
                .challenge(BearerChallenge::new().realm("mcp"));
            let res: Response<GuardBody<Empty<Bytes>>> =
                rejection.into_response(&ResponseFormat::Json);
            Ok::<_, Infallible>(res)
        });
        let svc = ServiceBuilder::new()
            .layer(
                SecurityHeadersLayer::builder()
                    .hsts_when(HstsWhen::Always)
                    .build()
                    .unwrap(),
            )
            .service(inner);
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            sorted(all_headers(&res)),
            expected(
                &[
                    ("content-type", "application/json"),
                    ("www-authenticate", "Bearer realm=\"mcp\""),
                ],
                true
            )
        );
        assert!(res.extensions().get::<Rejection>().is_some());
        assert_eq!(
            body_json(res).await,
            json!({"error":"invalid_token","error_description":"Authentication required"})
        );
    }

    #[tokio::test]
    async fn every_api_header_on_a_429_with_retry_after() {
        let inner = service_fn(|_req: Request<()>| async {
            let rejection = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                .message("Rate limit exceeded. Please try again later.")
                .header(header::RETRY_AFTER, HeaderValue::from_static("7"))
                .field("retry_after", 7);
            let res: Response<GuardBody<Empty<Bytes>>> =
                rejection.into_response(&ResponseFormat::JsonRpc(None));
            Ok::<_, Infallible>(res)
        });
        let svc = ServiceBuilder::new()
            .layer(SecurityHeadersLayer::api())
            .service(inner);
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            sorted(all_headers(&res)),
            expected(
                &[("content-type", "application/json"), ("retry-after", "7")],
                false
            )
        );
        assert_eq!(
            body_json(res).await,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
                "message":"Rate limit exceeded. Please try again later.",
                "data":{"status":429,"code":"rate_limited","retry_after":7}}})
        );
    }

    #[tokio::test]
    async fn web_preset() {
        let layer = SecurityHeadersLayer::web();
        let req = Request::get("https://example.com/").body(()).unwrap();
        let res = call(layer, ok_service(), req).await;
        assert_eq!(
            sorted(all_headers(&res)),
            sorted(
                [
                    ("content-type", "application/json"),
                    ("x-content-type-options", "nosniff"),
                    ("x-frame-options", "DENY"),
                    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
                    ("referrer-policy", "strict-origin-when-cross-origin"),
                    ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
                    (
                        "content-security-policy",
                        "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; \
                         form-action 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'"
                    ),
                    ("cross-origin-opener-policy", "same-origin"),
                    ("cross-origin-resource-policy", "same-origin"),
                    ("x-xss-protection", "0"),
                ]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
            )
        );
    }

    fn inner_setting_headers()
    -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
        service_fn(|_req: Request<()>| async {
            let res = Response::builder()
                .header("cache-control", "public, max-age=3600")
                .header("x-frame-options", "SAMEORIGIN")
                .header("server", "hyper/1.0")
                .header("x-powered-by", "Express")
                .body(Full::default())
                .unwrap();
            Ok::<_, Infallible>(res)
        })
    }

    #[tokio::test]
    async fn keep_existing_is_the_default() {
        let res = call(
            SecurityHeadersLayer::api(),
            inner_setting_headers(),
            Request::new(()),
        )
        .await;
        assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
        assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
        assert_eq!(res.headers().get_all("x-frame-options").iter().count(), 1);
        assert!(res.headers().get("server").is_none());
        assert!(res.headers().get("x-powered-by").is_none());
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn overwrite_replaces_inner_values() {
        let layer = SecurityHeadersLayer::builder()
            .header_mode(HeaderMode::Overwrite)
            .strip_server_headers(false)
            .build()
            .unwrap();
        assert_eq!(layer.header_mode(), HeaderMode::Overwrite);
        let res = call(layer, inner_setting_headers(), Request::new(())).await;
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert_eq!(res.headers().get_all("cache-control").iter().count(), 1);
        assert_eq!(res.headers()["server"], "hyper/1.0");
        assert_eq!(res.headers()["x-powered-by"], "Express");
    }

    /// An inner response with repeated headers: two cookies, two cache-control values, two
    /// `Server` lines.
    fn inner_with_repeated_headers()
    -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
        service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::new()));
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
            h.append(header::SERVER, HeaderValue::from_static("one"));
            h.append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
            h.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
            h.append(header::SERVER, HeaderValue::from_static("two"));
            h.append(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
            Ok::<_, Infallible>(res)
        })
    }

    fn values<B>(res: &Response<B>, name: &str) -> Vec<String> {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn repeated_inner_headers_merge_whole() {
        // Keep existing: every inner value of a name survives, in order; Server lines all go.
        let res = call(
            SecurityHeadersLayer::api(),
            inner_with_repeated_headers(),
            Request::new(()),
        )
        .await;
        assert_eq!(values(&res, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(values(&res, "cache-control"), ["private", "max-age=5"]);
        assert!(values(&res, "server").is_empty());
        assert_eq!(res.headers().len(), API.len() - 1 + 4);

        // Overwrite: the layer's single value replaces both inner values; the rest stay.
        let layer = SecurityHeadersLayer::builder()
            .header_mode(HeaderMode::Overwrite)
            .strip_server_headers(false)
            .build()
            .unwrap();
        let res = call(layer, inner_with_repeated_headers(), Request::new(())).await;
        assert_eq!(values(&res, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(values(&res, "cache-control"), ["no-store"]);
        assert_eq!(values(&res, "server"), ["one", "two"]);

        // Nothing from the inner service: exactly the layer's headers.
        let empty = service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let res = call(SecurityHeadersLayer::api(), empty, Request::new(())).await;
        assert_eq!(sorted(all_headers(&res)), expected(&[], false));
    }

    #[tokio::test]
    async fn override_add_omit_csp_and_hsts() {
        let layer = SecurityHeadersLayer::builder()
            .header("X-XSS-Protection", "1; mode=block")
            .header("x-custom", "yes")
            .omit("cache-control")
            .omit("cross-origin-resource-policy")
            .csp(CspBuilder::api().connect_src(["'self'"]).build().unwrap())
            .csp_report_only(CspBuilder::new().default_src(["'none'"]).build().unwrap())
            .hsts(Duration::from_secs(63_072_000), true, true)
            .hsts_when(HstsWhen::Always)
            .build()
            .unwrap();
        assert_eq!(layer.hsts_when(), HstsWhen::Always);
        let names: Vec<&str> = layer.headers().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-content-type-options",
                "x-frame-options",
                "referrer-policy",
                "permissions-policy",
                "content-security-policy",
                "x-xss-protection",
                "x-custom",
                "content-security-policy-report-only",
                "strict-transport-security",
            ]
        );
        let res = call(layer, ok_service(), Request::new(())).await;
        let h = res.headers();
        assert_eq!(h["x-xss-protection"], "1; mode=block");
        assert_eq!(h["x-custom"], "yes");
        assert!(h.get("cache-control").is_none());
        assert!(h.get("cross-origin-resource-policy").is_none());
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'; connect-src 'self'"
        );
        assert_eq!(
            h["content-security-policy-report-only"],
            "default-src 'none'"
        );
        assert_eq!(
            h["strict-transport-security"],
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(h.len(), 10);
    }

    #[tokio::test]
    async fn omitting_hsts_turns_it_off() {
        let layer = SecurityHeadersLayer::builder()
            .omit("Strict-Transport-Security")
            .hsts_when(HstsWhen::Always)
            .build()
            .unwrap();
        let req = Request::get("https://example.com/").body(()).unwrap();
        let res = call(layer, ok_service(), req).await;
        assert!(res.headers().get("strict-transport-security").is_none());
    }

    #[test]
    fn builder_errors_name_the_setting() {
        let cases = [
            (
                SecurityHeadersLayer::builder().header("bad name", "x"),
                "header: not a valid header name (got \"bad name\")",
            ),
            (
                SecurityHeadersLayer::builder().header("x-a", "line\nbreak"),
                "header: x-a: not a valid header value (visible ASCII only) (got \"line\\nbreak\")",
            ),
            (
                SecurityHeadersLayer::builder().header("Content-Length", "0"),
                "header: frames the message; it cannot be a fixed header (got \"Content-Length\")",
            ),
            (
                SecurityHeadersLayer::builder().omit("bad:name"),
                "omit: not a valid header name (got \"bad:name\")",
            ),
            (
                SecurityHeadersLayer::builder().hsts(Duration::from_secs(86_400), true, true),
                "hsts: preload needs includeSubDomains and a max-age of at least one year (31536000 s) (got \"max-age=86400\")",
            ),
            (
                SecurityHeadersLayer::builder()
                    .header("bad name", "x")
                    .header("Content-Length", "0"),
                "header: not a valid header name (got \"bad name\")",
            ),
        ];
        for (builder, message) in cases {
            assert_eq!(builder.build().unwrap_err().to_string(), message);
        }
    }

    fn proxied(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        for (n, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(PeerAddr(peer));
        req
    }

    #[tokio::test]
    async fn hsts_only_when_a_trusted_proxy_says_https() {
        let resolver = ClientAddrResolver::builder()
            .trusted_proxies(["10.0.0.0/8"])
            .build()
            .unwrap();
        let layer = SecurityHeadersLayer::builder()
            .trusted_proxies(resolver)
            .build()
            .unwrap();
        for (req, hsts) in [
            (
                proxied("10.0.0.1:1", &[("x-forwarded-proto", "https")]),
                true,
            ),
            (
                proxied("10.0.0.1:1", &[("x-forwarded-proto", " HTTPS ")]),
                true,
            ),
            (
                proxied("10.0.0.1:1", &[("x-forwarded-proto", "http, https")]),
                true,
            ),
            (
                proxied("10.0.0.1:1", &[("x-forwarded-proto", "https, http")]),
                false,
            ),
            (
                proxied(
                    "10.0.0.1:1",
                    &[
                        ("x-forwarded-proto", "https"),
                        ("x-forwarded-proto", "http"),
                    ],
                ),
                false,
            ),
            (
                proxied("10.0.0.1:1", &[("x-forwarded-proto", "http")]),
                false,
            ),
            (proxied("10.0.0.1:1", &[]), false),
            // An untrusted peer cannot claim https.
            (
                proxied("203.0.113.9:1", &[("x-forwarded-proto", "https")]),
                false,
            ),
            // Forwarded is not read when the resolver reads X-Forwarded-For.
            (
                proxied("10.0.0.1:1", &[("forwarded", "proto=https")]),
                false,
            ),
            (Request::new(()), false),
        ] {
            let label = format!(
                "{:?} {:?}",
                req.headers(),
                req.extensions().get::<PeerAddr>()
            );
            let res = call(layer.clone(), ok_service(), req).await;
            assert_eq!(
                res.headers().get("strict-transport-security").is_some(),
                hsts,
                "{label}"
            );
        }

        // A ClientAddr inserted by ClientAddrLayer is used too.
        let resolver = ClientAddrResolver::builder()
            .trusted_proxies(["10.0.0.0/8"])
            .forwarded_header(ForwardedHeader::Forwarded)
            .build()
            .unwrap();
        let layer = SecurityHeadersLayer::builder()
            .trusted_proxies(resolver.clone())
            .build()
            .unwrap();
        for (value, hsts) in [
            ("for=203.0.113.9;proto=https", true),
            ("for=203.0.113.9;Proto=\"https\"", true),
            ("for=1.1.1.1;proto=https, for=203.0.113.9;proto=http", false),
            (
                "for=1.1.1.1;proto=http, for=203.0.113.9; proto=https ",
                true,
            ),
            ("for=203.0.113.9", false),
            ("proto", false),
        ] {
            let mut req = Request::new(());
            req.headers_mut()
                .insert(header::FORWARDED, HeaderValue::from_static(value));
            let client = resolver.resolve_from_peer("10.0.0.1:1".parse().unwrap(), req.headers());
            req.extensions_mut().insert(client);
            let res = call(layer.clone(), ok_service(), req).await;
            assert_eq!(
                res.headers().get("strict-transport-security").is_some(),
                hsts,
                "{value}"
            );
        }
    }
}
