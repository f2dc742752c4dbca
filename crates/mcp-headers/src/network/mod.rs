//! [`NetworkPolicyLayer`]: CIDR allow and deny lists for the whole server and per path prefix,
//! checked against the resolved client address before any other work.
//!
//! Admin-style routes (`/metrics`, an internal tool prefix) are commonly limited to a VPN or
//! cluster network, and some deployments only ever serve a known set of networks. This layer
//! says so in the stack, next to the [`OriginGuardLayer`](crate::OriginGuardLayer), with the
//! same shape of refusal.
//!
//! # Why here
//!
//! It lives in `mcp-headers`, beside the Origin guard, because both answer the same question —
//! *may this caller reach the server at all?* — from facts of the request head alone, before
//! the rate limiter, the body read and authentication spend anything on it; both render their
//! 403 through [`Rejection`] the same way. `mcp-security-core` holds shared plumbing and no policy, so
//! the client address resolution it provides ([`ClientAddrResolver`]) is used here rather than
//! the policy being put there.
//!
//! # Semantics
//!
//! | question | answer |
//! |---|---|
//! | which lists apply? | the path rule with the longest matching prefix (`/metrics` matches `/metrics` and `/metrics/…`, not `/metricsx`); without one, the server-wide lists. A rule **replaces** the server-wide lists for its prefix: it is not merged with them |
//! | allow and deny both match? | **deny wins** |
//! | the allow list is empty? | any address is allowed (only the deny list counts) |
//! | both lists empty? | every request passes untouched, without resolving the address (a rule with empty lists opens its prefix, e.g. `/health`, under server-wide lists) |
//! | which address? | the resolved client ([`ClientAddr`]): the peer, or the forwarding header's client when the peer is a trusted proxy of the [`ClientAddrResolver`]; a `ClientAddr` already in the request extensions is used as is |
//! | IPv4-mapped IPv6? | `::ffff:192.0.2.1` is `192.0.2.1`, for clients and list entries alike; IPv4 clients match IPv4 entries only, so `::/0` covers IPv6 clients only |
//! | no client address (the server passes no peer address) while a list applies? | **refused** (fail closed): serve with axum's `ConnectInfo`, tonic's TCP transport, or insert [`PeerAddr`](mcp_security_core::client_addr::PeerAddr) |
//! | a path spelled with `%XX`, `//`, `.` or `..`? | it must pass the lists of its raw spelling **and** of its normalised one, so `/%6Detrics` or `/x/../metrics` does not slip past the `/metrics` rule |
//!
//! A refusal is a 403 [`Rejection`] with the code `network_not_allowed` in the caller's format:
//! for a `POST` to the MCP path a JSON-RPC error with `"id": null` (the body has not been read),
//! for gRPC a trailers-only `grpc-status: 7`, otherwise
//! `{"error":"network_not_allowed","message":"Network not allowed"}`. The rejection travels in the
//! response extensions, so the audit layer records the decision `rejected`, the reason
//! `network_not_allowed`, and a detail the client never sees (the address, the matching denied
//! network, and which lists decided).
//!
//! Forwarding headers from a peer that is not a trusted proxy are ignored: a client cannot put
//! itself into an allowed network by sending `X-Forwarded-For`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode};
use mcp_security_core::client_addr::{ClientAddr, ClientAddrResolver};
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{GuardBody, Rejection};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

mod builder;
mod matcher;

pub use builder::{NetworkPolicyLayerBuilder, NetworkRule, parse_network};

use matcher::{Refusal, Rules};

/// The rejection's machine code.
pub const REJECTION_CODE: &str = "network_not_allowed";

#[derive(Debug)]
struct Config {
    /// No list has an entry: nothing to check.
    open: bool,
    rules: Rules,
    resolver: ClientAddrResolver,
    mcp_path: Box<str>,
}

impl Config {
    fn is_mcp_post<B>(&self, req: &Request<B>) -> bool {
        req.method() == Method::POST
            && match req.uri().path().strip_prefix(&*self.mcp_path) {
                Some(rest) => rest.is_empty() || rest.starts_with('/') || &*self.mcp_path == "/",
                None => false,
            }
    }

    fn format<B>(&self, req: &Request<B>) -> ResponseFormat {
        match ResponseFormat::for_request(req.headers(), req.extensions()) {
            ResponseFormat::Json if self.is_mcp_post(req) => ResponseFormat::JsonRpc(None),
            format => format,
        }
    }

    /// The rejection for `req`, or `None` when it passes.
    fn refusal<B>(&self, req: &Request<B>) -> Option<Rejection> {
        let path = req.uri().path();
        // Resolve the address only when some list applies to this path: without an address,
        // the decision fails exactly when one does.
        if self.open || self.rules.decide(path, None).is_ok() {
            return None;
        }
        let ip = req
            .extensions()
            .get::<ClientAddr>()
            .copied()
            .or_else(|| self.resolver.resolve(req.headers(), req.extensions()))
            .map(|c| c.ip());
        self.rules
            .decide(path, ip)
            .err()
            .map(|(refusal, scope)| rejection(&refusal, scope))
    }
}

fn rejection(refusal: &Refusal, scope: Option<&str>) -> Rejection {
    let lists = match scope {
        Some(prefix) => format!("the path rule {prefix}"),
        None => "the server-wide lists".to_owned(),
    };
    let detail = match refusal {
        Refusal::NoClientAddr => format!(
            "no client address (the server passes no peer address) and {lists} apply: refused"
        ),
        Refusal::Denied { ip, net } => {
            format!("client {ip} is in the denied network {net} ({lists})")
        }
        Refusal::NotAllowed { ip } => {
            format!("client {ip} is in no allowed network ({lists})")
        }
    };
    Rejection::new(StatusCode::FORBIDDEN, REJECTION_CODE)
        .message("Network not allowed")
        .detail(detail)
}

/// Refuses clients outside the allowed networks (or inside denied ones), server-wide or per
/// path prefix; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mcp_headers::network::{NetworkPolicyLayer, NetworkRule};
/// use mcp_headers::mcp_security_core::client_addr::{ClientAddrResolver, PeerAddr};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let layer = NetworkPolicyLayer::builder()
///     .deny(["203.0.113.0/24"])
///     .path(NetworkRule::new("/metrics").allow(["10.0.0.0/8"]))
///     .client_addr_resolver(ClientAddrResolver::builder().trusted_proxies(["10.0.0.1"]).build()?)
///     .build()?;
/// let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: Request<Full<Bytes>>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// });
/// let from = |peer: &str, path: &str| {
///     Request::get(path)
///         .extension(PeerAddr(peer.parse().unwrap()))
///         .body(Full::default())
///         .unwrap()
/// };
///
/// // The cluster scrapes /metrics; the world does not.
/// let res = svc.clone().oneshot(from("10.1.2.3:40000", "/metrics")).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// let res = svc.clone().oneshot(from("198.51.100.4:40000", "/metrics")).await?;
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// let body = res.into_body().collect().await?.to_bytes();
/// assert_eq!(body, r#"{"error":"network_not_allowed","message":"Network not allowed"}"#);
///
/// // Elsewhere only the server-wide deny list applies.
/// let res = svc.clone().oneshot(from("198.51.100.4:40000", "/api")).await?;
/// assert_eq!(res.status(), StatusCode::OK);
/// let res = svc.oneshot(from("203.0.113.9:40000", "/api")).await?;
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NetworkPolicyLayer {
    config: Arc<Config>,
}

impl Default for NetworkPolicyLayer {
    fn default() -> Self {
        Self::disabled()
    }
}

impl NetworkPolicyLayer {
    /// A builder: no lists, no trusted proxy, MCP path `/mcp`.
    pub fn builder() -> NetworkPolicyLayerBuilder {
        NetworkPolicyLayerBuilder::default()
    }

    /// A layer with no lists: every request passes untouched.
    pub fn disabled() -> Self {
        Self {
            config: Arc::new(Config {
                open: true,
                rules: Rules::default(),
                resolver: ClientAddrResolver::default(),
                mcp_path: builder_default_mcp_path(),
            }),
        }
    }

    /// Whether any list has an entry (otherwise the layer passes every request).
    pub fn is_enabled(&self) -> bool {
        !self.config.open
    }

    /// The server-wide allowed networks (IPv4 first).
    pub fn allow_networks(&self) -> Vec<ipnet::IpNet> {
        self.config.rules.global.allow.iter().collect()
    }

    /// The server-wide denied networks (IPv4 first).
    pub fn deny_networks(&self) -> Vec<ipnet::IpNet> {
        self.config.rules.global.deny.iter().collect()
    }

    /// The path rules' prefixes, longest first (the order they are matched in).
    pub fn path_prefixes(&self) -> Vec<&str> {
        self.config.rules.paths.iter().map(|(p, _)| &**p).collect()
    }

    /// A one-line summary for start-up logs.
    pub fn summary(&self) -> String {
        if !self.is_enabled() {
            return "network lists off".to_owned();
        }
        let lists = |l: &matcher::Lists| {
            let mut parts = Vec::new();
            if !l.allow.is_empty() {
                parts.push(format!("allow [{}]", l.allow));
            }
            if !l.deny.is_empty() {
                parts.push(format!("deny [{}]", l.deny));
            }
            if parts.is_empty() {
                "open".to_owned()
            } else {
                parts.join(" ")
            }
        };
        let mut out = format!("network lists: {}", lists(&self.config.rules.global));
        for (prefix, l) in &self.config.rules.paths {
            out.push_str(&format!("; {prefix}: {}", lists(l)));
        }
        out
    }
}

fn builder_default_mcp_path() -> Box<str> {
    crate::origin_guard::DEFAULT_MCP_PATH.into()
}

impl<S> Layer<S> for NetworkPolicyLayer {
    type Service = NetworkPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NetworkPolicy {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service built by [`NetworkPolicyLayer`].
#[derive(Debug, Clone)]
pub struct NetworkPolicy<S> {
    inner: S,
    config: Arc<Config>,
}

mcp_security_core::impl_inner_service!(NetworkPolicy, inner);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NetworkPolicy<S>
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
        if let Some(rejection) = self.config.refusal(&req) {
            let format = self.config.format(&req);
            return ResponseFuture {
                kind: Kind::Rejected {
                    response: Some(rejection.into_response(&format)),
                },
            };
        }
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`NetworkPolicy`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<Response<GuardBody<B>>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|res| res.map(GuardBody::inner)),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests;
