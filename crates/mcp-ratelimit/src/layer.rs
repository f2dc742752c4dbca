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
//!    [`RateLimitOutcome::Banned`](mcp_core::RateLimitOutcome::Banned).
//! 2. **Limits.** Every [`Limit`] that applies charges its key (see [`KeySelector`]); the request
//!    passes only if all admit it. If one refuses, charges already made for this request are
//!    refunded (unless another request touched that key in between) and the answer is `429`
//!    with the longest wait among the refusing limits.
//! 3. **Headers.** Admitted responses carry the headers of the tightest limit (fewest requests
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
//! draft-ietf-httpapi-ratelimit-headers-11 (May 2026); `X-RateLimit-*` follow the seed's
//! convention (GitHub-style, `Reset` as a Unix timestamp). Both sets can be switched off
//! ([`RateLimitLayerBuilder::legacy_headers`], [`RateLimitLayerBuilder::ietf_headers`]).
//!
//! The `429` body follows the caller ([`mcp_core::rejection`]):
//!
//! | caller | body |
//! |---|---|
//! | plain HTTP | `{"error":"rate_limited","message":"Rate limit exceeded. Please try again later.","detail":"Rate limit exceeded. Please try again later.","retry_after":N}` — the seed's `detail` + `retry_after`, plus the house `error` + `message` |
//! | MCP (JSON-RPC) | `{"jsonrpc":"2.0","id":<the request's id>,"error":{"code":-32000,"message":"Rate limit exceeded. Please try again later.","data":{"status":429,"code":"rate_limited","retry_after":N}}}`; before [`McpInspectLayer`](mcp_core::inspect::McpInspectLayer) has read the body, a POST to the MCP path gets the same with `id: null` |
//! | gRPC | trailers-only, `grpc-status: 8` (resource exhausted), the same headers |
//!
//! The decision goes into the response extensions as a [`RateLimitOutcome`](mcp_core::RateLimitOutcome) (and refusals also
//! as the [`Rejection`](mcp_core::Rejection)), for the audit layer.
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
//! Twice, as DESIGN.md's request path has it: a per-client layer before authentication (cheap,
//! before any crypto or body read), and a per-principal / per-class / per-tool layer after
//! [`McpInspectLayer`](mcp_core::inspect::McpInspectLayer) and authentication, where
//! [`McpCall`](mcp_core::McpCall) and [`Principal`](mcp_core::Principal) are in the request extensions. The client address comes from a
//! [`ClientAddr`](mcp_core::client_addr::ClientAddr) extension when a
//! [`ClientAddrLayer`](mcp_core::client_addr::ClientAddrLayer) put one there, otherwise the layer
//! resolves it with its own [`ClientAddrResolver`] (which trusts no proxy unless configured).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::client_addr::ClientAddrResolver;
use mcp_core::clock::{Clock, MonotonicClock, SystemClock, SystemMonotonicClock};
use mcp_core::config::ConfigError;
use mcp_core::{BanList, GuardBody};

use crate::backend::Backend;
use crate::backend::memory::Memory;
use crate::backend::sealed::{LimitSpec, Spec};
use crate::class::{Classifier, RouteClass, check_name};
use crate::decision::Decision;
use crate::engine::{Admitted, Concluded, Engine, LimitRt, Prepared, ScopeRt};
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
    /// Decide in memory (the backend's local store).
    #[inline]
    pub(crate) fn decide(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Decision {
        match self.engine.prepare(method, path, headers, ext) {
            Prepared::Done(decision) => decision,
            Prepared::Charges(charges) => {
                self.backend
                    .local()
                    .apply(charges.as_slice(), self.engine.now(), false)
            }
        }
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
/// use mcp_core::client_addr::PeerAddr;
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
        if self.shared.engine.bans.is_some() {
            parts.push("ban list".to_owned());
        }
        if let Some(described) = self.shared.backend.describe() {
            return format!("{} ({described})", parts.join("; "));
        }
        format!("{} (max {} keys)", parts.join("; "), self.max_keys())
    }
}

/// Builds a [`RateLimitLayer`]; see [`RateLimitLayer::builder`]. `B` is the backend the
/// layer counts in: [`Memory`] unless
/// `redis(..)` (the `redis` feature) chose Redis.
#[must_use]
pub struct RateLimitLayerBuilder<B = Memory> {
    limits: Vec<Limit>,
    classes: Vec<RouteClass>,
    max_keys: usize,
    max_prefixes: usize,
    bans: Option<BanList>,
    resolver: Option<ClientAddrResolver>,
    mcp_path: String,
    clock: Arc<dyn MonotonicClock>,
    wall: Arc<dyn Clock>,
    /// Neither clock injected: the wall time can be derived from the monotonic one.
    system_clocks: bool,
    legacy_headers: bool,
    ietf_headers: bool,
    enabled: bool,
    #[cfg(feature = "redis")]
    redis: Option<crate::backend::redis::RedisStore>,
    backend: PhantomData<fn() -> B>,
}

impl Default for RateLimitLayerBuilder {
    fn default() -> Self {
        RateLimitLayerBuilder {
            limits: Vec::new(),
            classes: Vec::new(),
            max_keys: DEFAULT_MAX_KEYS,
            max_prefixes: DEFAULT_MAX_PREFIXES,
            bans: None,
            resolver: None,
            mcp_path: DEFAULT_MCP_PATH.to_owned(),
            clock: Arc::new(SystemMonotonicClock::new()),
            wall: Arc::new(SystemClock),
            system_clocks: true,
            legacy_headers: true,
            ietf_headers: true,
            enabled: true,
            #[cfg(feature = "redis")]
            redis: None,
            backend: PhantomData,
        }
    }
}

impl<B> fmt::Debug for RateLimitLayerBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("limits", &self.limits)
            .field("classes", &self.classes)
            .field("max_keys", &self.max_keys)
            .field("max_prefixes", &self.max_prefixes)
            .field("ban_list", &self.bans.is_some())
            .field("mcp_path", &self.mcp_path)
            .finish_non_exhaustive()
    }
}

impl<B> RateLimitLayerBuilder<B> {
    /// The same settings, for another backend.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn into_backend<C>(self) -> RateLimitLayerBuilder<C> {
        RateLimitLayerBuilder {
            limits: self.limits,
            classes: self.classes,
            max_keys: self.max_keys,
            max_prefixes: self.max_prefixes,
            bans: self.bans,
            resolver: self.resolver,
            mcp_path: self.mcp_path,
            clock: self.clock,
            wall: self.wall,
            system_clocks: self.system_clocks,
            legacy_headers: self.legacy_headers,
            ietf_headers: self.ietf_headers,
            enabled: self.enabled,
            #[cfg(feature = "redis")]
            redis: self.redis,
            backend: PhantomData,
        }
    }

    /// The bound on network-prefix buckets (default [`DEFAULT_MAX_PREFIXES`]): once the key
    /// store is full, a new key is counted in the bucket of its network prefix (IPv4 /24,
    /// IPv6 /48) or principal kind, held in a table of this many entries, and only when that
    /// is full too in the limit's overflow bucket; see [`crate::backend::memory`]. 0 turns
    /// the table off.
    pub fn max_prefixes(mut self, max_prefixes: usize) -> Self {
        self.max_prefixes = max_prefixes;
        self
    }

    /// Add a limit. Every limit that applies must admit a request.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Add a route class, for [`Limit::for_class`] and [`KeySelector::route_class`].
    pub fn route_class(mut self, class: RouteClass) -> Self {
        self.classes.push(class);
        self
    }

    /// The bound on tracked keys, across all limits of this layer (default
    /// [`DEFAULT_MAX_KEYS`]). Keys beyond it are counted in each limit's shared overflow bucket.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Refuse clients on this list before any limit is consulted.
    pub fn ban_list(mut self, bans: BanList) -> Self {
        self.bans = Some(bans);
        self
    }

    /// How to resolve the client address when no
    /// [`ClientAddr`](mcp_core::client_addr::ClientAddr) is in the request extensions
    /// (default: the peer address, no trusted proxies).
    pub fn client_addr_resolver(mut self, resolver: ClientAddrResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The MCP endpoint path (default `/mcp`): a refused POST to it that
    /// [`McpInspectLayer`](mcp_core::inspect::McpInspectLayer) has not read yet is answered as
    /// JSON-RPC with `id: null`.
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        self.mcp_path = path.into();
        self
    }

    /// The monotonic clock the limits run on (default: the system's). Tests inject a manual
    /// one.
    pub fn clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.clock = clock;
        self.system_clocks = false;
        self
    }

    /// The wall clock for `X-RateLimit-Reset` and the ban list (default: the system's).
    pub fn wall_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.wall = clock;
        self.system_clocks = false;
        self
    }

    /// Whether to send `X-RateLimit-Limit`, `-Remaining` and `-Reset` (default on).
    pub fn legacy_headers(mut self, on: bool) -> Self {
        self.legacy_headers = on;
        self
    }

    /// Whether to send the IETF `RateLimit` and `RateLimit-Policy` headers (default on).
    pub fn ietf_headers(mut self, on: bool) -> Self {
        self.ietf_headers = on;
        self
    }

    /// Whether to limit at all (default on). When off, [`build`](Self::build) returns a
    /// [disabled](RateLimitLayer::disabled) layer without validating anything else.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// The limits added so far.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Validate and build.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting: `limit` (none configured, a bad or duplicate
    /// name), `limit.<name>.requests` / `.window` / `.burst` (an invalid quota),
    /// `limit.<name>.overflow_quota.*`, `limit.<name>.class` (an unknown class),
    /// `limit.<name>.tool`, `route_class` / `route_class.<name>` (a bad or conflicting rule),
    /// `max_keys` (zero), `mcp_path`.
    pub fn build(self) -> Result<RateLimitLayer<B>, ConfigError>
    where
        B: Backend,
    {
        if !self.enabled {
            return Ok(RateLimitLayer::default());
        }
        if self.limits.is_empty() && self.bans.is_none() {
            return Err(ConfigError::new(
                "limit",
                "add at least one limit (or a ban list); use RateLimitLayer::disabled() to limit nothing",
            ));
        }
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1").with_value("0"));
        }
        if !self.mcp_path.starts_with('/')
            || (self.mcp_path.len() > 1 && self.mcp_path.ends_with('/'))
        {
            return Err(
                ConfigError::new("mcp_path", "must start with '/' and not end with '/'")
                    .with_value(self.mcp_path),
            );
        }
        let classifier = Classifier::new(&self.classes)?;
        let mut limits = Vec::with_capacity(self.limits.len());
        let mut specs = Vec::with_capacity(self.limits.len());
        for (i, limit) in self.limits.into_iter().enumerate() {
            check_name("limit", &limit.name)?;
            if limits.iter().any(|l: &LimitRt| l.name == limit.name) {
                return Err(ConfigError::new("limit", "is declared twice")
                    .with_value(limit.name.into_owned()));
            }
            if u16::try_from(i).is_err() {
                return Err(ConfigError::new("limit", "at most 65535 limits"));
            }
            let setting = format!("limit.{}", limit.name);
            let gcra = limit.quota.gcra(&setting)?;
            let overflow_gcra = match limit.overflow_quota {
                Some(q) => q.gcra(&format!("{setting}.overflow_quota"))?,
                None => gcra,
            };
            let scope = match &limit.scope {
                Scope::Any => ScopeRt::Any,
                Scope::Class(name) => {
                    ScopeRt::Class(classifier.index_of(name).ok_or_else(|| {
                        ConfigError::new(
                            format!("{setting}.class"),
                            "no route class of that name is configured",
                        )
                        .with_value(name.clone())
                    })?)
                }
                Scope::Tool(tool) => {
                    if tool.is_empty() || !tool.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(ConfigError::new(
                            format!("{setting}.tool"),
                            "must be a non-empty tool name without spaces",
                        )
                        .with_value(tool.clone()));
                    }
                    ScopeRt::Tool(tool.as_str().into())
                }
            };
            let per_message = limit.key.per_message() || !matches!(scope, ScopeRt::Any);
            let needs_class = matches!(scope, ScopeRt::Class(_)) || limit.key.uses_class();
            let policy_header = fixed_value(&format!(
                "\"{}\";q={};w={}",
                limit.name,
                limit.quota.requests(),
                limit.quota.window_secs_ceil()
            ))
            .ok_or_else(|| {
                ConfigError::new(format!("{setting}.name"), "not usable in a header")
                    .with_value(limit.name.to_string())
            })?;
            let overflow_quota = limit.overflow_quota.unwrap_or(limit.quota);
            let burst_header = fixed_number;
            specs.push((gcra, overflow_gcra));
            limits.push(LimitRt {
                policy_header,
                burst_header: burst_header(gcra.burst()),
                overflow_burst_header: burst_header(overflow_gcra.burst()),
                // Interned: the name goes into every response's outcome, as a borrowed `Cow`.
                name: Cow::Borrowed(intern(&limit.name)),
                quota: limit.quota,
                overflow_quota,
                key: limit.key,
                scope,
                per_message,
                needs_class,
            });
        }
        let needs_client = self.bans.is_some() || limits.iter().any(|l| l.key.uses_client());
        let specs: Vec<LimitSpec<'_>> = limits
            .iter()
            .zip(specs)
            .map(|(l, (gcra, overflow_gcra))| LimitSpec {
                name: &l.name,
                quota: l.quota,
                overflow_quota: l.overflow_quota,
                gcra,
                overflow_gcra,
            })
            .collect();
        let backend = B::build(Spec {
            limits: &specs,
            max_keys: self.max_keys,
            max_prefixes: self.max_prefixes,
            #[cfg(feature = "redis")]
            redis: self.redis,
        })?;
        drop(specs);
        let stable_keys = backend.stable_keys();
        let wall = if self.system_clocks {
            WallSecs::derived_from(&*self.clock)
        } else {
            WallSecs::new(self.wall)
        };
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                engine: Engine {
                    enabled: true,
                    limits: limits.into_boxed_slice(),
                    classifier,
                    hasher: KeyHasher::default(),
                    bans: self.bans,
                    resolver: self.resolver.unwrap_or_default(),
                    mcp_path: self.mcp_path.into(),
                    clock: self.clock,
                    wall,
                    legacy_headers: self.legacy_headers,
                    ietf_headers: self.ietf_headers,
                    needs_client,
                    stable_keys,
                },
                backend,
            }),
        })
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
        req: Request<ReqBody>,
        decision: Option<Decision>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let shared = &*self.shared;
        let (method, path) = (req.method(), req.uri().path());
        let decision = match decision {
            Some(decision) => decision,
            None => shared.decide(method, path, req.headers(), req.extensions()),
        };
        match shared
            .engine
            .conclude(decision, method, path, req.headers(), req.extensions())
        {
            Concluded::Call(admitted) => ResponseFuture::inner(self.inner.call(req), admitted),
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

#[cfg(feature = "redis")]
mod shared_store {
    use super::*;
    use crate::backend::redis::{RedisBackend, RedisStats, RedisStore};

    impl RateLimitLayerBuilder {
        /// Count every limit of this layer in Redis, shared by every replica (the `redis`
        /// feature); see [`crate::redis`]. Requests are then decided asynchronously (one round
        /// trip, or none when the local deny cache refuses), inside a Tokio runtime, and the
        /// inner service must be `Clone + Send + 'static`.
        pub fn redis(self, store: RedisStore) -> RateLimitLayerBuilder<RedisBackend> {
            self.maybe_redis(Some(store))
        }

        /// The Redis backend, counting in Redis when `store` is `Some` and in memory otherwise
        /// (for a stack that decides at run time; the service has the Redis backend's bounds
        /// either way).
        pub fn maybe_redis(self, store: Option<RedisStore>) -> RateLimitLayerBuilder<RedisBackend> {
            let mut builder = self.into_backend::<RedisBackend>();
            builder.redis = store;
            builder
        }
    }

    impl RateLimitLayerBuilder<RedisBackend> {
        /// Replace the Redis store (`None`: count in memory).
        pub fn redis_store(mut self, store: Option<RedisStore>) -> Self {
            self.redis = store;
            self
        }
    }

    impl From<RateLimitLayerBuilder> for RateLimitLayerBuilder<RedisBackend> {
        fn from(builder: RateLimitLayerBuilder) -> Self {
            builder.into_backend()
        }
    }

    impl RateLimitLayer<RedisBackend> {
        /// The Redis store's counters, when the layer counts in Redis.
        pub fn redis_stats(&self) -> Option<RedisStats> {
            self.shared.backend.store().map(RedisStore::stats)
        }
    }

    impl<S> RateLimit<S, RedisBackend> {
        /// Decide through the shared store: one round trip unless the local deny cache
        /// answers. The inner service is called (the ready one, swapped for a clone) once
        /// admitted.
        fn call_remote<ReqBody, ResBody>(
            &mut self,
            req: Request<ReqBody>,
        ) -> ResponseFuture<S::Future, ResBody>
        where
            S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
            S::Future: Send + 'static,
            ReqBody: Send + 'static,
            ResBody: Send + 'static,
        {
            let shared = Arc::clone(&self.shared);
            let prepared = shared.engine.prepare(
                req.method(),
                req.uri().path(),
                req.headers(),
                req.extensions(),
            );
            let charges = match prepared {
                Prepared::Done(decision) => return self.call_local(req, Some(decision)),
                Prepared::Charges(charges) => charges,
            };
            let now = shared.engine.now();
            if let Some(decision) = shared.backend.cached_denial(charges.as_slice(), now) {
                return self.call_local(req, Some(decision));
            }
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            ResponseFuture::remote(Box::pin(async move {
                let decision = shared
                    .backend
                    .decide(charges, now, &*shared.engine.clock)
                    .await;
                let (method, path) = (req.method(), req.uri().path());
                match shared.engine.conclude(
                    decision,
                    method,
                    path,
                    req.headers(),
                    req.extensions(),
                ) {
                    Concluded::Call(admitted) => Ok((inner.call(req), admitted)),
                    Concluded::Answer(response) => Err(response),
                }
            }))
        }
    }

    /// The inner service must be `Clone + Send + 'static` (with `Send` futures and bodies): a
    /// request decided by Redis is handed to the inner service after the round trip, from
    /// inside this layer's response future.
    impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, RedisBackend>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        type Response = Response<GuardBody<ResBody>>;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future, ResBody>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
            if self.shared.backend.store().is_some() {
                return self.call_remote(req);
            }
            self.call_local(req, None)
        }
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
        }
    }

    fn ready(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(Box::new(response)),
            },
            admitted: None,
        }
    }

    #[cfg(feature = "redis")]
    fn remote(future: Pin<Box<dyn Future<Output = Step<F, B>> + Send>>) -> Self {
        ResponseFuture {
            kind: Kind::Remote { future },
            admitted: None,
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

#[cfg(test)]
mod tests;
