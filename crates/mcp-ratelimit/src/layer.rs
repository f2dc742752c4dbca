//! [`RateLimitLayer`]: GCRA limits per client, principal, route class and MCP tool, with
//! `X-RateLimit-*` and IETF `RateLimit` headers and `429` answers in the caller's format.
//!
//! # What a request goes through
//!
//! 1. **Ban list.** If a [`BanList`] is configured and the client's address (or its IPv6 prefix)
//!    is banned, the answer is `429` with `Retry-After` = the seconds left on the ban, and no
//!    limit is consulted or charged. Why `429` and not `403`: a ban here is temporary and
//!    automatic (a detector or an operator set it for a while), and `429` + `Retry-After` is the
//!    status every HTTP and MCP client already backs off on; MCP clients read `403` as an
//!    authorization problem (insufficient scope, a step-up authorization flow), which would send
//!    them re-authenticating instead of waiting. The public answer is the same as a rate-limit
//!    answer — a banned client learns nothing about which detector fired; the audit layer reads
//!    [`RateLimitOutcome::Banned`](mcp_security_core::RateLimitOutcome::Banned). With the
//!    default [`mcp_security_core::BanScope::Failed`]
//!    ([`RateLimitLayerBuilder::ban_scope`]) only a request without a credential is refused
//!    here; one with a credential is counted as usual and marked, and gets the same `429`
//!    unless a principal authenticated (checked by the per-caller layer after authentication,
//!    and on the way out when authentication refused it).
//! 2. **Limits.** Every [`Limit`] that applies charges its key (see [`KeySelector`]); the request
//!    passes only if all admit it. If one refuses, charges already made for this request are
//!    refunded (unless another request touched that key in between) and the answer is `429`
//!    with the longest wait among the refusing limits.
//! 3. **Budgets.** With [`budget`](RateLimitLayerBuilder::budget)s (on the per-caller layer),
//!    an admitted request of an authenticated principal is charged its weighted cost; if a
//!    budget cannot take it, `429` naming the budget ([`crate::budget`]).
//! 4. **Headers.** Admitted responses carry the headers of the tightest limit (fewest requests
//!    remaining); when a second rate-limit layer already reported a tighter one, it is kept.
//!
//! # Answers
//!
//! | field | admitted | refused (`429`) |
//! |---|---|---|
//! | `X-RateLimit-Limit` | the limit's burst (the most `Remaining` can be) | same |
//! | `X-RateLimit-Remaining` | requests that would be admitted right now | `0` |
//! | `X-RateLimit-Reset` | Unix time (seconds) when the bucket is full again | same |
//! | `RateLimit` | `"name";r=<remaining>;t=<seconds until full>` | `"name";r=0;t=<Retry-After>` |
//! | `RateLimit-Policy` | `"name";q=<requests>;w=<window seconds>` | same |
//! | `Retry-After` | — | seconds until the request would be admitted, rounded up, at least 1 |
//!
//! `RateLimit` and `RateLimit-Policy` follow the structured-field form of
//! draft-ietf-httpapi-ratelimit-headers-11 (May 2026); `X-RateLimit-*` follow the common
//! convention (GitHub-style, `Reset` as a Unix timestamp). Both sets can be switched off
//! ([`RateLimitLayerBuilder::legacy_headers`], [`RateLimitLayerBuilder::ietf_headers`]).
//!
//! The `429` body follows the caller ([`mcp_security_core::rejection`]):
//!
//! | caller | body |
//! |---|---|
//! | plain HTTP | `{"error":"rate_limited","message":"Rate limit exceeded. Please try again later.","detail":"Rate limit exceeded. Please try again later.","retry_after":N}` — the common `detail` + `retry_after`, plus the house `error` + `message` |
//! | MCP (JSON-RPC) | `{"jsonrpc":"2.0","id":<the request's id>,"error":{"code":-32000,"message":"Rate limit exceeded. Please try again later.","data":{"status":429,"code":"rate_limited","retry_after":N}}}`; before [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) has read the body, a POST to the MCP path gets the same with `id: null` |
//! | gRPC | trailers-only, `grpc-status: 8` (resource exhausted), the same headers |
//!
//! The decision goes into the response extensions as a [`RateLimitOutcome`](mcp_security_core::RateLimitOutcome) (and refusals also
//! as the [`Rejection`](mcp_security_core::Rejection)), for the audit layer.
//!
//! # Backends
//!
//! Where the counts live is the layer's type parameter ([`crate::backend`]):
//! `RateLimitLayer` is `RateLimitLayer<Memory>`, the bounded in-memory store, whose service
//! works around any inner service. With a `RedisStore` (the `redis` feature, module `redis`;
//! `builder().redis(store)` gives a `RateLimitLayer<RedisBackend>`), the limits are counted in
//! Redis and shared by every replica; the answers are the same, plus, when Redis fails or
//! exceeds its time budget, either `503` (`rate_limit_unavailable`, `Retry-After: 1`; outcome
//! `Unavailable`) or a decision by a local limiter at `limit / replicas` (outcome `Degraded`).
//! Only that service needs the inner service to be `Clone + Send + 'static`.
//!
//! # Where to put it
//!
//! Twice, as the stack's request path has it (see ARCHITECTURE.md): a per-client layer before authentication (cheap,
//! before any crypto or body read), and a per-principal / per-class / per-tool layer after
//! [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) and authentication, where
//! [`McpCall`](mcp_security_core::McpCall) and [`Principal`](mcp_security_core::Principal) are in the request extensions. The client address comes from a
//! [`ClientAddr`](mcp_security_core::client_addr::ClientAddr) extension when a
//! [`ClientAddrLayer`](mcp_security_core::client_addr::ClientAddrLayer) put one there, otherwise the layer
//! resolves it with its own [`ClientAddrResolver`] (which trusts no proxy unless configured).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use mcp_security_core::client_addr::ClientAddrResolver;
use mcp_security_core::clock::{Clock, MonotonicClock, SystemClock, SystemMonotonicClock};
use mcp_security_core::config::ConfigError;
use mcp_security_core::{BanList, BanScope, GuardBody};

use crate::backend::Backend;
use crate::backend::memory::Memory;
use crate::backend::sealed::{LimitSpec, Spec};
use crate::class::{Classifier, RouteClass, check_name};
use crate::decision::Decision;
use crate::engine::{Admitted, BanHold, Concluded, Engine, LimitRt, Prepared, ScopeRt};
use crate::headers::{WallSecs, fixed_number, fixed_value, intern};
use crate::key::{KeyHasher, KeySelector};
use crate::quota::Quota;

pub use crate::backend::memory::DEFAULT_MAX_PREFIXES;
#[cfg(feature = "redis")]
pub use crate::engine::UNAVAILABLE_MESSAGE;
pub use crate::headers::{
    RATE_LIMITED_MESSAGE, RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
};

/// The default bound on tracked keys per layer.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The default MCP endpoint path.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Any,
    Class(String),
    Tool(String),
}

/// One limit: a name (reported in headers and audit records), a [`Quota`], what it counts per
/// ([`KeySelector`]), and optionally which requests it applies to (a route class or an MCP
/// tool).
///
/// A limit keyed on (or restricted to) something inside the JSON-RPC body — the route class, the
/// MCP method or tool — counts each message of a JSON-RPC batch separately, so a batch of ten
/// `delete_note` calls costs ten; other limits count each HTTP request once.
///
/// ```
/// use mcp_ratelimit::{KeySelector, Limit, Quota};
///
/// let per_ip = Limit::new("ip", Quota::per_minute(100), KeySelector::client_addr());
/// let deletes = Limit::new("delete", Quota::per_minute(10), KeySelector::principal())
///     .for_class("delete");
/// let echo = Limit::new("echo", Quota::per_second(5), KeySelector::principal_or_client_addr())
///     .for_tool("echo");
/// assert_eq!(per_ip.name(), "ip");
/// # let _ = (deletes, echo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Limit {
    name: Cow<'static, str>,
    quota: Quota,
    key: KeySelector,
    scope: Scope,
    overflow_quota: Option<Quota>,
}

impl Limit {
    /// A limit applying to every request (that its selector can key).
    pub fn new(name: impl Into<Cow<'static, str>>, quota: Quota, key: KeySelector) -> Self {
        Limit {
            name: name.into(),
            quota,
            key,
            scope: Scope::Any,
            overflow_quota: None,
        }
    }

    /// Apply only to requests (messages) in the route class `class`.
    pub fn for_class(mut self, class: impl Into<String>) -> Self {
        self.scope = Scope::Class(class.into());
        self
    }

    /// Apply only to MCP `tools/call` messages calling `tool`.
    pub fn for_tool(mut self, tool: impl Into<String>) -> Self {
        self.scope = Scope::Tool(tool.into());
        self
    }

    /// The quota of the shared buckets that keys the store cannot track are counted in — the
    /// network-prefix buckets and the overflow bucket (default: the limit's own quota). See
    /// [`crate::backend::memory`].
    pub fn overflow_quota(mut self, quota: Quota) -> Self {
        self.overflow_quota = Some(quota);
        self
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// What the limit counts per.
    pub fn key(&self) -> KeySelector {
        self.key
    }
}

/// A layer's state: the engine (configuration) and the backend (the counts).
pub(crate) struct Shared<B> {
    pub(crate) engine: Engine,
    pub(crate) backend: B,
}

impl<B: Backend> Shared<B> {
    /// Decide in memory (the backend's local store), for a request without a query.
    #[cfg(test)]
    pub(crate) fn decide(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Decision {
        self.decide_held(method, path, None, headers, ext).0
    }

    /// Decide in memory (the backend's local store); a banned client's credentialed request
    /// (ban scope `failed`) also gets its [`BanHold`].
    #[inline]
    pub(crate) fn decide_held(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> (Decision, Option<BanHold>) {
        let (prepared, hold) = self.engine.prepare(method, path, query, headers, ext);
        let decision = match prepared {
            Prepared::Done(decision) => decision,
            Prepared::Charges(charges) => {
                self.backend
                    .local()
                    .apply(charges.as_slice(), self.engine.now(), false)
            }
        };
        (decision, hold)
    }
}

/// Rate-limits requests; see the [module docs](self). Cheap to clone (an `Arc` of validated
/// configuration and the shared key store): every service it makes shares one set of buckets.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use mcp_security_core::client_addr::PeerAddr;
/// use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let limit = RateLimitLayer::builder()
///     .limit(Limit::new("ip", Quota::per_minute(2), KeySelector::client_addr()))
///     .build()?;
/// let svc = ServiceBuilder::new()
///     .layer(limit)
///     .service_fn(|_req: Request<Full<Bytes>>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
///     });
///
/// let request = || {
///     let mut req = Request::get("/api").body(Full::default()).unwrap();
///     req.extensions_mut().insert(PeerAddr("198.51.100.4:50000".parse().unwrap()));
///     req
/// };
/// let first = svc.clone().oneshot(request()).await?;
/// assert_eq!(first.status(), StatusCode::OK);
/// assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
/// assert_eq!(first.headers()["ratelimit-policy"], r#""ip";q=2;w=60"#);
/// svc.clone().oneshot(request()).await?;
/// let third = svc.oneshot(request()).await?;
/// assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(third.headers()["retry-after"], "30");
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<B = Memory> {
    pub(crate) shared: Arc<Shared<B>>,
}

impl<B> Clone for RateLimitLayer<B> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Backend> fmt::Debug for RateLimitLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("enabled", &self.shared.engine.enabled)
            .field(
                "limits",
                &self
                    .shared
                    .engine
                    .limits
                    .iter()
                    .map(|l| &*l.name)
                    .collect::<Vec<_>>(),
            )
            .field("max_keys", &self.max_keys())
            .field("ban_list", &self.shared.engine.bans.is_some())
            .field("backend", &self.shared.backend)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A builder. At least one limit (or a ban list) is required.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::default()
    }

    /// A layer that passes every request through untouched (what
    /// [`from_env`](Self::from_env) builds when `RATE_LIMIT_ENABLED=false`). For another
    /// backend: `RateLimitLayer::default()`.
    pub fn disabled() -> Self {
        Self::default()
    }
}

/// A disabled layer (see [`RateLimitLayer::disabled`]).
impl<B: Backend> Default for RateLimitLayer<B> {
    fn default() -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                engine: Engine {
                    enabled: false,
                    limits: Box::new([]),
                    classifier: Classifier::default(),
                    hasher: KeyHasher::default(),
                    bans: None,
                    ban_scope: BanScope::default(),
                    credential_header: None,
                    budgets: None,
                    resolver: ClientAddrResolver::default(),
                    mcp_path: DEFAULT_MCP_PATH.into(),
                    clock: Arc::new(SystemMonotonicClock::new()),
                    wall: WallSecs::new(Arc::new(SystemClock)),
                    legacy_headers: false,
                    ietf_headers: false,
                    needs_client: false,
                    stable_keys: false,
                },
                backend: B::disabled(),
            }),
        }
    }
}

impl<B: Backend> RateLimitLayer<B> {
    /// Whether the layer limits anything.
    pub fn is_enabled(&self) -> bool {
        self.shared.engine.enabled
    }

    /// Keys tracked in memory now (takes each shard's lock in turn: for metrics and tests, not
    /// the hot path). Never more than [`max_keys`](Self::max_keys).
    pub fn tracked_keys(&self) -> usize {
        self.shared.backend.local().len()
    }

    /// The bound on tracked keys.
    pub fn max_keys(&self) -> usize {
        self.shared.backend.local().max_keys()
    }

    /// Network-prefix buckets held now (see [`crate::backend::memory`]). Never more than
    /// [`max_prefixes`](Self::max_prefixes).
    pub fn tracked_prefixes(&self) -> usize {
        self.shared.backend.local().prefixes_len()
    }

    /// The bound on network-prefix buckets (0: none; new keys of a full store share the
    /// overflow bucket).
    pub fn max_prefixes(&self) -> usize {
        self.shared.backend.local().max_prefixes()
    }

    /// Principals whose [budgets](crate::budget) are tracked now (0 without budgets; takes each
    /// shard's lock in turn: for metrics and tests).
    pub fn tracked_budget_principals(&self) -> usize {
        self.shared.engine.budgets.as_ref().map_or(0, |b| b.len())
    }

    /// A one-line description for start-up logs: each limit's name, quota and key.
    pub fn summary(&self) -> String {
        if !self.shared.engine.enabled {
            return "disabled".to_owned();
        }
        let mut parts: Vec<String> = self
            .shared
            .engine
            .limits
            .iter()
            .map(|l| {
                let scope = match &l.scope {
                    ScopeRt::Any => String::new(),
                    ScopeRt::Class(c) => format!(
                        " in class {}",
                        self.shared.engine.classifier.name(*c).unwrap_or("?")
                    ),
                    ScopeRt::Tool(t) => format!(" for tool {t}"),
                };
                format!(
                    "{}: {}/{:?} burst {} per {}{scope}",
                    l.name,
                    l.quota.requests(),
                    l.quota.window(),
                    l.quota.burst(),
                    l.key
                )
            })
            .collect();
        if let Some(budgets) = &self.shared.engine.budgets {
            parts.extend(budgets.list.iter().map(|b| {
                format!(
                    "budget {}: {} units/{:?} per principal",
                    b.name,
                    b.quota.requests(),
                    b.quota.window()
                )
            }));
        }
        if self.shared.engine.bans.is_some() {
            parts.push(format!("ban list (scope {})", self.shared.engine.ban_scope));
        }
        if let Some(described) = self.shared.backend.describe() {
            return format!("{} ({described})", parts.join("; "));
        }
        format!("{} (max {} keys)", parts.join("; "), self.max_keys())
    }
}

impl<S, B: Backend> Layer<S> for RateLimitLayer<B> {
    type Service = RateLimit<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`RateLimitLayer`]. With the default [`Memory`]
/// backend it is a `Service` for any inner service; with the Redis backend (the `redis`
/// feature) the inner service must be `Clone + Send + 'static`, because a request decided by
/// Redis is handed to it after the round trip.
pub struct RateLimit<S, B = Memory> {
    inner: S,
    shared: Arc<Shared<B>>,
}

impl<S: Clone, B> Clone for RateLimit<S, B> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, B: Backend> fmt::Debug for RateLimit<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field(
                "layer",
                &RateLimitLayer {
                    shared: Arc::clone(&self.shared),
                },
            )
            .finish()
    }
}

impl<S, B: Backend> RateLimit<S, B> {
    /// Decide locally (the in-memory store, or a request the shared store need not see) and
    /// call the inner service or answer.
    #[inline]
    fn call_local<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
        decided: Option<(Decision, Option<BanHold>)>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let shared = &*self.shared;
        let (method, uri) = (req.method(), req.uri());
        let (decision, hold) = match decided {
            Some(decided) => decided,
            None => shared.decide_held(
                method,
                uri.path(),
                uri.query(),
                req.headers(),
                req.extensions(),
            ),
        };
        match shared.engine.conclude(
            decision,
            method,
            uri.path(),
            req.headers(),
            req.extensions(),
        ) {
            Concluded::Call(admitted) => {
                let hold = hold.map(|hold| {
                    req.extensions_mut().insert(hold.clone());
                    Box::new(hold)
                });
                ResponseFuture::inner(self.inner.call(req), admitted).held(hold)
            }
            Concluded::Answer(response) => ResponseFuture::ready(response),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, Memory>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        self.call_local(req, None)
    }
}

/// The shared-store decision: the inner future and what to add to its response, or the answer.
type Step<F, B> = Result<(F, Option<Admitted>), Response<GuardBody<B>>>;

pin_project! {
    /// The response future of [`RateLimit`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
        admitted: Option<Admitted>,
        // A banned client's credentialed request (ban scope `failed`): an answer whose
        // credential failed becomes the ban's `429`.
        hold: Option<Box<BanHold>>,
    }
}

pin_project! {
    #[project = KindProj]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        // Boxed: refusals are rare, and the admitted path moves this future around.
        Ready { response: Option<Box<Response<GuardBody<B>>>> },
        Remote { future: Pin<Box<dyn Future<Output = Step<F, B>> + Send>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F, admitted: Option<Admitted>) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            admitted,
            hold: None,
        }
    }

    fn held(mut self, hold: Option<Box<BanHold>>) -> Self {
        self.hold = hold;
        self
    }

    fn ready(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(Box::new(response)),
            },
            admitted: None,
            hold: None,
        }
    }

    #[cfg(feature = "redis")]
    fn remote(future: Pin<Box<dyn Future<Output = Step<F, B>> + Send>>) -> Self {
        ResponseFuture {
            kind: Kind::Remote { future },
            admitted: None,
            hold: None,
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Inner { future } => {
                    let mut response = match future.poll(cx) {
                        Poll::Ready(Ok(response)) => response,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    };
                    if let Some(hold) = this.hold.take()
                        && !BanHold::credential_held(&response)
                    {
                        return Poll::Ready(Ok(hold.response()));
                    }
                    if let Some(admitted) = this.admitted.take() {
                        admitted.apply(&mut response);
                    }
                    return Poll::Ready(Ok(response.map(GuardBody::inner)));
                }
                KindProj::Ready { response } => {
                    return Poll::Ready(Ok(*response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                KindProj::Remote { future } => match future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(response)) => {
                        this.kind.set(Kind::Ready { response: None });
                        return Poll::Ready(Ok(response));
                    }
                    Poll::Ready(Ok((future, admitted))) => {
                        *this.admitted = admitted;
                        this.kind.set(Kind::Inner { future });
                    }
                },
            }
        }
    }
}

mod builder;
pub use builder::RateLimitLayerBuilder;
#[cfg(feature = "redis")]
mod shared_store;

#[cfg(test)]
mod ban_scope_tests;
#[cfg(test)]
mod tests;
