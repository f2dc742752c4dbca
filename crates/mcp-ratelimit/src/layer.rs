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
//!    [`RateLimitOutcome::Banned`].
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
//! The decision goes into the response extensions as a [`RateLimitOutcome`] (and refusals also
//! as the [`Rejection`]), for the audit layer.
//!
//! With a `RedisStore` (the `redis` feature, module `redis`), the limits are counted in Redis
//! and shared by every replica; the answers are the same, plus, when Redis fails or exceeds its
//! time budget, either `503` (`rate_limit_unavailable`, `Retry-After: 1`; outcome
//! `Unavailable`) or a decision by a local limiter at `limit / replicas` (outcome `Degraded`).
//!
//! # Where to put it
//!
//! Twice, as DESIGN.md's request path has it: a per-client layer before authentication (cheap,
//! before any crypto or body read), and a per-principal / per-class / per-tool layer after
//! [`McpInspectLayer`](mcp_core::inspect::McpInspectLayer) and authentication, where
//! [`McpCall`] and [`Principal`] are in the request extensions. The client address comes from a
//! [`ClientAddr`] extension when a
//! [`ClientAddrLayer`](mcp_core::client_addr::ClientAddrLayer) put one there, otherwise the layer
//! resolves it with its own [`ClientAddrResolver`] (which trusts no proxy unless configured).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::client_addr::{ClientAddr, ClientAddrResolver};
use mcp_core::clock::{Clock, MonotonicClock, SystemClock, SystemMonotonicClock};
use mcp_core::config::ConfigError;
use mcp_core::jsonrpc::JsonRpcMessage;
use mcp_core::rejection::ResponseFormat;
use mcp_core::{BanList, GuardBody, McpCall, Principal, RateLimitOutcome, Rejection};

use crate::class::{Classifier, RouteClass, check_name, path_has_prefix};
use crate::key::{KeyHasher, KeyParts, KeySelector, Selected, StoreKey};
use crate::quota::{Gcra, Quota, ceil_secs};
use crate::store::{Acquired, KeyStore, OverflowBucket};

/// `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (Unix time in seconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The public message of every `429`, as the seed words it.
pub const RATE_LIMITED_MESSAGE: &str = "Rate limit exceeded. Please try again later.";

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

    /// The quota of the shared bucket that keys the store cannot track are counted in (default:
    /// the limit's own quota). See [`crate::store`]'s design notes in the crate docs.
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

#[derive(Debug)]
enum ScopeRt {
    Any,
    Class(u16),
    Tool(Box<str>),
}

/// The GCRA state a limit is counted in (besides its tracked keys).
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) gcra: Gcra,
    pub(crate) overflow_gcra: Gcra,
    pub(crate) overflow: OverflowBucket,
}

impl Bucket {
    pub(crate) fn new(gcra: Gcra, overflow_gcra: Gcra) -> Self {
        Bucket {
            gcra,
            overflow_gcra,
            overflow: OverflowBucket::default(),
        }
    }

    fn gcra(&self, overflow: bool) -> &Gcra {
        if overflow {
            &self.overflow_gcra
        } else {
            &self.gcra
        }
    }
}

#[derive(Debug)]
pub(crate) struct LimitRt {
    pub(crate) name: Cow<'static, str>,
    pub(crate) quota: Quota,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) overflow_quota: Quota,
    key: KeySelector,
    scope: ScopeRt,
    per_message: bool,
    needs_class: bool,
    /// `RateLimit-Policy` is the same on every response of this limit: built once.
    policy_header: HeaderValue,
}

impl LimitRt {
    fn applies(&self, class: Option<u16>, message: Option<&JsonRpcMessage>) -> bool {
        match &self.scope {
            ScopeRt::Any => true,
            ScopeRt::Class(c) => class == Some(*c),
            ScopeRt::Tool(t) => message.and_then(JsonRpcMessage::tool) == Some(&**t),
        }
    }
}

pub(crate) struct Shared {
    enabled: bool,
    pub(crate) limits: Box<[LimitRt]>,
    /// One per limit, in the same order.
    buckets: Box<[Bucket]>,
    classifier: Classifier,
    store: KeyStore,
    hasher: KeyHasher,
    bans: Option<BanList>,
    resolver: ClientAddrResolver,
    mcp_path: Box<str>,
    clock: Arc<dyn MonotonicClock>,
    wall: Arc<dyn Clock>,
    legacy_headers: bool,
    ietf_headers: bool,
    needs_client: bool,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::redis::RedisBackend>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("enabled", &self.enabled)
            .field(
                "limits",
                &self.limits.iter().map(|l| &*l.name).collect::<Vec<_>>(),
            )
            .field("max_keys", &self.store.max_keys())
            .field("ban_list", &self.bans.is_some())
            .finish_non_exhaustive()
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
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// A builder. At least one limit (or a ban list) is required.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::default()
    }

    /// A layer that passes every request through untouched (what
    /// [`from_env`](Self::from_env) builds when `RATE_LIMIT_ENABLED=false`).
    pub fn disabled() -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                enabled: false,
                limits: Box::new([]),
                buckets: Box::new([]),
                classifier: Classifier::default(),
                store: KeyStore::new(1),
                hasher: KeyHasher::default(),
                bans: None,
                resolver: ClientAddrResolver::default(),
                mcp_path: DEFAULT_MCP_PATH.into(),
                clock: Arc::new(SystemMonotonicClock::new()),
                wall: Arc::new(SystemClock),
                legacy_headers: false,
                ietf_headers: false,
                needs_client: false,
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Whether the layer limits anything.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled
    }

    /// Keys tracked now (takes each shard's lock in turn: for metrics and tests, not the hot
    /// path). Never more than [`max_keys`](Self::max_keys).
    pub fn tracked_keys(&self) -> usize {
        self.shared.store.len()
    }

    /// The bound on tracked keys.
    pub fn max_keys(&self) -> usize {
        self.shared.store.max_keys()
    }

    /// A one-line description for start-up logs: each limit's name, quota and key.
    pub fn summary(&self) -> String {
        if !self.shared.enabled {
            return "disabled".to_owned();
        }
        let mut parts: Vec<String> = self
            .shared
            .limits
            .iter()
            .map(|l| {
                let scope = match &l.scope {
                    ScopeRt::Any => String::new(),
                    ScopeRt::Class(c) => format!(
                        " in class {}",
                        self.shared.classifier.name(*c).unwrap_or("?")
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
        if self.shared.bans.is_some() {
            parts.push("ban list".to_owned());
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.shared.redis {
            let store = redis.store();
            return format!(
                "{} (shared in Redis, prefix {}, failure policy {}, budget {:?})",
                parts.join("; "),
                store.prefix(),
                store.failure_policy().as_str(),
                store.timeout()
            );
        }
        format!("{} (max {} keys)", parts.join("; "), self.max_keys())
    }
}

/// Builds a [`RateLimitLayer`]; see [`RateLimitLayer::builder`].
#[must_use]
pub struct RateLimitLayerBuilder {
    limits: Vec<Limit>,
    classes: Vec<RouteClass>,
    max_keys: usize,
    bans: Option<BanList>,
    resolver: Option<ClientAddrResolver>,
    mcp_path: String,
    clock: Arc<dyn MonotonicClock>,
    wall: Arc<dyn Clock>,
    legacy_headers: bool,
    ietf_headers: bool,
    enabled: bool,
    #[cfg(feature = "redis")]
    redis: Option<crate::redis::RedisStore>,
}

impl Default for RateLimitLayerBuilder {
    fn default() -> Self {
        RateLimitLayerBuilder {
            limits: Vec::new(),
            classes: Vec::new(),
            max_keys: DEFAULT_MAX_KEYS,
            bans: None,
            resolver: None,
            mcp_path: DEFAULT_MCP_PATH.to_owned(),
            clock: Arc::new(SystemMonotonicClock::new()),
            wall: Arc::new(SystemClock),
            legacy_headers: true,
            ietf_headers: true,
            enabled: true,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("limits", &self.limits)
            .field("classes", &self.classes)
            .field("max_keys", &self.max_keys)
            .field("ban_list", &self.bans.is_some())
            .field("mcp_path", &self.mcp_path)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayerBuilder {
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

    /// How to resolve the client address when no [`ClientAddr`] is in the request extensions
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
        self
    }

    /// The wall clock for `X-RateLimit-Reset` and the ban list (default: the system's).
    pub fn wall_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.wall = clock;
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

    #[cfg(feature = "redis")]
    pub(crate) fn set_redis(&mut self, store: crate::redis::RedisStore) {
        self.redis = Some(store);
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
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        if !self.enabled {
            return Ok(RateLimitLayer::disabled());
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
        let mut buckets = Vec::with_capacity(self.limits.len());
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
            let policy_header = HeaderValue::from_str(&format!(
                "\"{}\";q={};w={}",
                limit.name,
                limit.quota.requests(),
                limit.quota.window_secs_ceil()
            ))
            .map_err(|_| {
                ConfigError::new(format!("{setting}.name"), "not usable in a header")
                    .with_value(limit.name.to_string())
            })?;
            buckets.push(Bucket::new(gcra, overflow_gcra));
            limits.push(LimitRt {
                policy_header,
                name: limit.name,
                quota: limit.quota,
                overflow_quota: limit.overflow_quota.unwrap_or(limit.quota),
                key: limit.key,
                scope,
                per_message,
                needs_class,
            });
        }
        let needs_client = self.bans.is_some() || limits.iter().any(|l| l.key.uses_client());
        #[cfg(feature = "redis")]
        let redis = match self.redis {
            Some(store) => Some(crate::redis::RedisBackend::new(
                store,
                &limits,
                self.max_keys,
            )?),
            None => None,
        };
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                enabled: true,
                limits: limits.into_boxed_slice(),
                buckets: buckets.into_boxed_slice(),
                classifier,
                store: KeyStore::new(self.max_keys),
                hasher: KeyHasher::default(),
                bans: self.bans,
                resolver: self.resolver.unwrap_or_default(),
                mcp_path: self.mcp_path.into(),
                clock: self.clock,
                wall: self.wall,
                legacy_headers: self.legacy_headers,
                ietf_headers: self.ietf_headers,
                needs_client,
                #[cfg(feature = "redis")]
                redis,
            }),
        })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// A charge of `weight` cells to one limit's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Charge {
    pub(crate) limit: u16,
    /// `None`: the limit's overflow bucket (in memory).
    pub(crate) key: Option<StoreKey>,
    pub(crate) weight: u64,
    /// The key is the limit's shared overflow key (Redis: requests without a client address).
    pub(crate) overflow: bool,
}

/// An admitted charge, for refunds and the report.
#[derive(Debug, Clone, Copy, Default)]
struct Applied {
    limit: u16,
    key: Option<StoreKey>,
    overflow: bool,
    before: u64,
    after: u64,
}

/// A few items inline, more on the heap: one request usually charges one or two limits.
pub(crate) struct Small<T: Copy + Default, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy + Default, const N: usize> Small<T, N> {
    pub(crate) fn new() -> Self {
        Small {
            inline: [T::default(); N],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if !self.spill.is_empty() {
            self.spill.push(item);
        } else if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        } else {
            self.spill.reserve(N * 2);
            self.spill.extend_from_slice(&self.inline);
            self.spill.push(item);
        }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        }
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

/// What a limit reports in headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub(crate) limit: u16,
    pub(crate) remaining: u64,
    /// Nanoseconds until the bucket is full.
    pub(crate) reset: u64,
    pub(crate) overflow: bool,
    /// The bucket's burst (`X-RateLimit-Limit`).
    pub(crate) burst: u64,
    /// Decided by the local fallback limiter because the shared store failed.
    pub(crate) degraded: bool,
}

pub(crate) enum Decision {
    Pass,
    NotLimited,
    Allowed(Report),
    Limited {
        report: Report,
        retry_after: u64,
    },
    Banned {
        until: SystemTime,
        retry_after: u64,
    },
    /// The shared store failed and the policy is fail-closed.
    #[cfg(feature = "redis")]
    Unavailable {
        retry_after: u64,
    },
}

/// What [`Shared::prepare`] made of a request.
pub(crate) enum Prepared {
    Done(Decision),
    Charges(Small<Charge, 4>),
}

static WARNED_NO_CLIENT: AtomicBool = AtomicBool::new(false);

impl Shared {
    #[inline]
    fn decide(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Decision {
        match self.prepare(method, path, headers, ext) {
            Prepared::Done(decision) => decision,
            Prepared::Charges(charges) => {
                let now = self.clock.now_nanos();
                self.apply_in(charges.as_slice(), &self.store, &self.buckets, now, false)
            }
        }
    }

    /// The ban list, then the charges a request makes.
    #[inline]
    pub(crate) fn prepare(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Prepared {
        if !self.enabled {
            return Prepared::Done(Decision::Pass);
        }
        let client: Option<ClientAddr> = if self.needs_client {
            ext.get::<ClientAddr>()
                .copied()
                .or_else(|| self.resolver.resolve(headers, ext))
        } else {
            None
        };
        if let (Some(bans), Some(client)) = (&self.bans, &client)
            && !bans.is_empty()
        {
            let now = self.wall.now();
            if let Some(until) = bans.check_client(client, now) {
                let left = until.duration_since(now).unwrap_or_default();
                let nanos = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
                return Prepared::Done(Decision::Banned {
                    until,
                    retry_after: ceil_secs(nanos).max(1),
                });
            }
        }
        let charges = self.charges(method, path, client, ext);
        if charges.as_slice().is_empty() {
            return Prepared::Done(Decision::NotLimited);
        }
        Prepared::Charges(charges)
    }

    /// The local monotonic time.
    #[cfg(feature = "redis")]
    pub(crate) fn clock_nanos(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// A stable (Redis) key re-keyed for local maps.
    #[cfg(feature = "redis")]
    pub(crate) fn rekey(&self, key: StoreKey) -> StoreKey {
        self.hasher.rekey(key)
    }

    /// The key of `parts` for limit `index`: per-process keyed in memory, stable across
    /// replicas with Redis.
    #[inline]
    fn select(&self, index: u16, limit: &LimitRt, parts: &KeyParts<'_>) -> Selected {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return KeyHasher::select_stable(&limit.name, limit.key, parts);
        }
        self.hasher.select(index, limit.key, parts)
    }

    fn charges(
        &self,
        method: &Method,
        path: &str,
        client: Option<ClientAddr>,
        ext: &http::Extensions,
    ) -> Small<Charge, 4> {
        let principal = ext.get::<Principal>();
        let messages = ext.get::<McpCall>().map_or(&[][..], McpCall::messages);
        let with_methods = || messages.iter().filter(|m| m.method().is_some());
        let method_count = with_methods().count();
        let single = match messages {
            [one] => Some(one),
            _ => None,
        };
        let base = KeyParts {
            client: client.map(|c| c.rate_limit_key()),
            principal,
            ..KeyParts::default()
        };
        let mut request_class: Option<Option<u16>> = None;
        let mut charges = Small::<Charge, 4>::new();
        let mut batched = false;
        for (index, limit) in self.limits.iter().enumerate() {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let charge = |parts: &KeyParts<'_>, charges: &mut Small<Charge, 4>| {
                #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
                let mut overflow = false;
                let key = match self.select(index, limit, parts) {
                    Selected::Key(k) => Some(k),
                    Selected::NoClient => {
                        if !WARNED_NO_CLIENT.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                limit = %limit.name,
                                "no client address for a request (the server inserts neither \
                                 PeerAddr nor ConnectInfo): such requests share the limit's \
                                 overflow bucket"
                            );
                        }
                        #[cfg(feature = "redis")]
                        if self.redis.is_some() {
                            overflow = true;
                            Some(KeyHasher::overflow_stable(&limit.name))
                        } else {
                            None
                        }
                        #[cfg(not(feature = "redis"))]
                        None
                    }
                    Selected::Skip => return,
                };
                charges.push(Charge {
                    limit: index,
                    key,
                    weight: 1,
                    overflow,
                });
            };
            if limit.per_message && method_count > 0 {
                batched |= method_count > 1;
                for message in with_methods() {
                    let class = if limit.needs_class {
                        self.classifier.classify(method, path, Some(message))
                    } else {
                        None
                    };
                    if !limit.applies(class, Some(message)) {
                        continue;
                    }
                    let parts = KeyParts {
                        class,
                        method: message.method(),
                        tool: message.tool(),
                        ..base
                    };
                    charge(&parts, &mut charges);
                }
            } else {
                let class = if limit.needs_class {
                    *request_class
                        .get_or_insert_with(|| self.classifier.classify(method, path, single))
                } else {
                    None
                };
                if !limit.applies(class, single) {
                    continue;
                }
                let parts = KeyParts {
                    class,
                    method: single.and_then(JsonRpcMessage::method),
                    tool: single.and_then(JsonRpcMessage::tool),
                    ..base
                };
                charge(&parts, &mut charges);
            }
        }
        if batched {
            merge(&mut charges);
        }
        charges
    }

    /// Charge `charges` to `store` and `buckets` (the layer's own, or the fail-open fallback's)
    /// at `now`: all admit, or the charges made are refunded.
    pub(crate) fn apply_in(
        &self,
        charges: &[Charge],
        store: &KeyStore,
        buckets: &[Bucket],
        now: u64,
        degraded: bool,
    ) -> Decision {
        let mut applied = Small::<Applied, 4>::new();
        for (n, charge) in charges.iter().enumerate() {
            let Some(bucket) = buckets.get(usize::from(charge.limit)) else {
                continue;
            };
            let key = charge.key.filter(|_| !charge.overflow);
            let tracked = key.map(|k| store.acquire(k, &bucket.gcra, charge.weight, now));
            let (result, overflow) = match tracked {
                Some(Acquired::Full) | None => (
                    bucket
                        .overflow
                        .acquire(&bucket.overflow_gcra, charge.weight, now),
                    true,
                ),
                Some(result) => (result, false),
            };
            match result {
                Acquired::Admitted { before, after } => applied.push(Applied {
                    limit: charge.limit,
                    key: key.filter(|_| !overflow),
                    overflow,
                    before,
                    after,
                }),
                Acquired::Denied { wait, tat } => {
                    Self::refund(store, buckets, applied.as_slice());
                    let mut worst = (
                        wait,
                        Report {
                            limit: charge.limit,
                            remaining: 0,
                            reset: Gcra::reset(tat, now),
                            overflow,
                            burst: bucket.gcra(overflow).burst(),
                            degraded,
                        },
                    );
                    for rest in charges.iter().skip(n + 1) {
                        if let Some((wait, report)) =
                            Self::peek(store, buckets, rest, now, degraded)
                            && wait > worst.0
                        {
                            worst = (wait, report);
                        }
                    }
                    return Decision::Limited {
                        report: worst.1,
                        retry_after: ceil_secs(worst.0).max(1),
                    };
                }
                Acquired::Full => {}
            }
        }
        let mut tightest: Option<Report> = None;
        for a in applied.as_slice() {
            let Some(bucket) = buckets.get(usize::from(a.limit)) else {
                continue;
            };
            let gcra = bucket.gcra(a.overflow);
            let report = Report {
                limit: a.limit,
                remaining: gcra.remaining(a.after, now),
                reset: Gcra::reset(a.after, now),
                overflow: a.overflow,
                burst: gcra.burst(),
                degraded,
            };
            let tighter = tightest.is_none_or(|t| {
                report.remaining < t.remaining
                    || (report.remaining == t.remaining && report.reset > t.reset)
            });
            if tighter {
                tightest = Some(report);
            }
        }
        match tightest {
            Some(report) => Decision::Allowed(report),
            None => Decision::NotLimited,
        }
    }

    /// The wait of a charge that was not attempted, if it would be refused.
    fn peek(
        store: &KeyStore,
        buckets: &[Bucket],
        charge: &Charge,
        now: u64,
        degraded: bool,
    ) -> Option<(u64, Report)> {
        let bucket = buckets.get(usize::from(charge.limit))?;
        let (tat, gcra, overflow) = match charge.key.filter(|_| !charge.overflow) {
            Some(key) => (store.tat(key).unwrap_or(0), &bucket.gcra, false),
            None => (bucket.overflow.tat(), &bucket.overflow_gcra, true),
        };
        let wait = gcra.check(tat, now, charge.weight).err()?;
        Some((
            wait,
            Report {
                limit: charge.limit,
                remaining: 0,
                reset: Gcra::reset(tat, now),
                overflow,
                burst: gcra.burst(),
                degraded,
            },
        ))
    }

    fn refund(store: &KeyStore, buckets: &[Bucket], applied: &[Applied]) {
        for a in applied {
            let Some(bucket) = buckets.get(usize::from(a.limit)) else {
                continue;
            };
            match a.key {
                Some(key) => store.refund(key, a.before, a.after),
                None => bucket.overflow.refund(a.before, a.after),
            }
        }
    }

    fn is_mcp_post(&self, method: &Method, path: &str) -> bool {
        method == Method::POST && path_has_prefix(path, &self.mcp_path)
    }

    fn format(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> ResponseFormat {
        match ResponseFormat::for_request(headers, ext) {
            ResponseFormat::Json if self.is_mcp_post(method, path) => ResponseFormat::JsonRpc(None),
            format => format,
        }
    }

    fn epoch_secs(&self) -> u64 {
        self.wall
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The header numbers for a report (`retry_after` for a refusal).
    fn stamp(&self, report: &Report, retry_after: Option<u64>) -> Option<Stamp> {
        let limit = self.limits.get(usize::from(report.limit))?;
        if !self.legacy_headers && !self.ietf_headers {
            return None;
        }
        let reset_secs = ceil_secs(report.reset);
        Some(Stamp {
            burst: report.burst,
            policy: limit.policy_header.clone(),
            remaining: report.remaining,
            t: retry_after.unwrap_or(reset_secs),
            reset_at: if self.legacy_headers {
                self.epoch_secs().saturating_add(reset_secs)
            } else {
                0
            },
            legacy: self.legacy_headers,
            ietf: self.ietf_headers,
        })
    }

    fn limit_name(&self, limit: u16) -> Cow<'static, str> {
        self.limits
            .get(usize::from(limit))
            .map_or(Cow::Borrowed(""), |l| l.name.clone())
    }

    fn too_many<B>(
        &self,
        format: &ResponseFormat,
        retry_after: u64,
        stamp: Option<Stamp>,
        outcome: RateLimitOutcome,
        detail: String,
    ) -> Response<GuardBody<B>> {
        let mut rejection = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            .message(RATE_LIMITED_MESSAGE)
            .header(RETRY_AFTER, HeaderValue::from(retry_after))
            .detail(detail);
        if *format == ResponseFormat::Json {
            rejection = rejection.field("detail", RATE_LIMITED_MESSAGE);
        }
        rejection = rejection.field("retry_after", retry_after);
        let mut response = rejection.into_response(format);
        if let (Some(stamp), RateLimitOutcome::Limited { policy, .. }) = (&stamp, &outcome) {
            stamp.apply(policy, response.headers_mut());
        }
        response.extensions_mut().insert(outcome);
        response
    }
}

/// Sort and merge charges to the same key (a batch calling one tool twice costs 2 once).
fn merge(charges: &mut Small<Charge, 4>) {
    let slice = charges.as_mut_slice();
    slice.sort_unstable_by_key(|c| (c.limit, c.key));
    let mut merged = Small::<Charge, 4>::new();
    for c in slice.iter() {
        let last = merged.as_mut_slice().last_mut();
        match last {
            Some(prev) if prev.limit == c.limit && prev.key == c.key => {
                prev.weight = prev.weight.saturating_add(c.weight);
            }
            _ => merged.push(*c),
        }
    }
    *charges = merged;
}

/// The numbers behind one response's rate-limit headers, formatted when applied.
#[derive(Debug, Clone)]
struct Stamp {
    burst: u64,
    /// The limit's prebuilt `RateLimit-Policy` value.
    policy: HeaderValue,
    remaining: u64,
    /// `t` of `RateLimit`: seconds until full, or the `Retry-After` of a refusal.
    t: u64,
    /// `X-RateLimit-Reset`: Unix seconds when the bucket is full.
    reset_at: u64,
    legacy: bool,
    ietf: bool,
}

impl Stamp {
    fn apply(&self, name: &str, headers: &mut HeaderMap) {
        headers.reserve(5);
        let mut buf = HeaderBuf::default();
        if self.legacy {
            for (name, n) in [
                (X_RATELIMIT_LIMIT, self.burst),
                (X_RATELIMIT_REMAINING, self.remaining),
                (X_RATELIMIT_RESET, self.reset_at),
            ] {
                buf.clear();
                buf.push_u64(n);
                buf.insert(headers, name);
            }
        }
        if self.ietf {
            // Names are validated to [A-Za-z0-9_.:/-]: nothing to escape in an sf-string.
            buf.clear();
            buf.push_quoted(name);
            buf.push(b";r=");
            buf.push_u64(self.remaining);
            buf.push(b";t=");
            buf.push_u64(self.t);
            buf.insert(headers, RATELIMIT);
            headers.insert(RATELIMIT_POLICY, self.policy.clone());
        }
    }
}

/// A stack buffer for header values: a quoted name (at most 64 bytes) and two integers fit.
struct HeaderBuf {
    bytes: [u8; 128],
    len: usize,
}

impl Default for HeaderBuf {
    fn default() -> Self {
        HeaderBuf {
            bytes: [0; 128],
            len: 0,
        }
    }
}

impl HeaderBuf {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    fn push_quoted(&mut self, name: &str) {
        self.push(b"\"");
        self.push(name.as_bytes());
        self.push(b"\"");
    }

    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn insert(&self, headers: &mut HeaderMap, name: HeaderName) {
        if let Ok(value) = HeaderValue::from_bytes(&self.bytes[..self.len]) {
            // A `const` name, built in place: cloning a `static` custom `HeaderName` costs more
            // than the insert itself.
            headers.insert(name, value);
        }
    }
}

/// What to add to an admitted response.
#[derive(Debug)]
struct Admitted {
    /// The tightest limit's name; `None` when no limit applied.
    policy: Option<Cow<'static, str>>,
    remaining: u64,
    overflow: bool,
    /// Admitted by the fail-open fallback limiter.
    degraded: bool,
    stamp: Option<Stamp>,
}

impl Admitted {
    /// Add the headers and outcome unless an inner rate-limit layer already reported something
    /// tighter.
    fn apply<B>(self, response: &mut Response<B>) {
        let keep = match response.extensions().get::<RateLimitOutcome>() {
            None | Some(RateLimitOutcome::NotLimited) => false,
            Some(RateLimitOutcome::Allowed { remaining, .. }) => {
                self.policy.is_none() || *remaining <= self.remaining
            }
            Some(_) => true,
        };
        if keep {
            return;
        }
        let outcome = match self.policy {
            Some(policy) => {
                if let Some(stamp) = &self.stamp {
                    stamp.apply(&policy, response.headers_mut());
                }
                if self.degraded {
                    RateLimitOutcome::Degraded {
                        policy,
                        admitted: true,
                        remaining: self.remaining,
                        retry_after_secs: 0,
                    }
                } else {
                    RateLimitOutcome::Allowed {
                        policy,
                        remaining: self.remaining,
                        overflow: self.overflow,
                    }
                }
            }
            None => RateLimitOutcome::NotLimited,
        };
        response.extensions_mut().insert(outcome);
    }
}

/// The public message of the fail-closed `503` (the shared store is unavailable).
#[cfg(feature = "redis")]
pub const UNAVAILABLE_MESSAGE: &str = "Service temporarily unavailable. Please try again later.";

impl Shared {
    /// What to do with a request once decided: call the inner service (with what to add to its
    /// response), or answer now.
    fn conclude<ResBody>(
        &self,
        decision: Decision,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ext: &http::Extensions,
    ) -> Concluded<ResBody> {
        match decision {
            Decision::Pass => Concluded::Call(None),
            Decision::NotLimited => Concluded::Call(Some(Admitted {
                policy: None,
                remaining: u64::MAX,
                overflow: false,
                degraded: false,
                stamp: None,
            })),
            Decision::Allowed(report) => Concluded::Call(Some(Admitted {
                policy: Some(self.limit_name(report.limit)),
                remaining: report.remaining,
                overflow: report.overflow,
                degraded: report.degraded,
                stamp: self.stamp(&report, None),
            })),
            Decision::Limited {
                report,
                retry_after,
            } => {
                let format = self.format(method, path, headers, ext);
                let name = self.limit_name(report.limit);
                let detail = format!(
                    "limit {name} exceeded{}{}",
                    if report.overflow {
                        " (shared overflow bucket)"
                    } else {
                        ""
                    },
                    if report.degraded {
                        " (local fallback limiter: the shared store is unavailable)"
                    } else {
                        ""
                    }
                );
                let outcome = if report.degraded {
                    RateLimitOutcome::Degraded {
                        policy: name,
                        admitted: false,
                        remaining: 0,
                        retry_after_secs: retry_after,
                    }
                } else {
                    RateLimitOutcome::Limited {
                        policy: name,
                        retry_after_secs: retry_after,
                        overflow: report.overflow,
                    }
                };
                let stamp = self.stamp(&report, Some(retry_after));
                Concluded::Answer(self.too_many(&format, retry_after, stamp, outcome, detail))
            }
            Decision::Banned { until, retry_after } => {
                let format = self.format(method, path, headers, ext);
                let outcome = RateLimitOutcome::Banned {
                    until,
                    retry_after_secs: retry_after,
                };
                Concluded::Answer(self.too_many(
                    &format,
                    retry_after,
                    None,
                    outcome,
                    "client is on the ban list".to_owned(),
                ))
            }
            #[cfg(feature = "redis")]
            Decision::Unavailable { retry_after } => {
                let format = self.format(method, path, headers, ext);
                let mut rejection =
                    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "rate_limit_unavailable")
                        .message(UNAVAILABLE_MESSAGE)
                        .header(RETRY_AFTER, HeaderValue::from(retry_after))
                        .detail(
                            "the shared rate-limit store did not answer within its budget \
                             (failure policy: closed)",
                        );
                rejection = rejection.field("retry_after", retry_after);
                let mut response = rejection.into_response(&format);
                response
                    .extensions_mut()
                    .insert(RateLimitOutcome::Unavailable {
                        retry_after_secs: retry_after,
                    });
                Concluded::Answer(response)
            }
        }
    }
}

/// What [`Shared::conclude`] decided: call the inner service, or answer now.
enum Concluded<B> {
    Call(Option<Admitted>),
    Answer(Response<GuardBody<B>>),
}

impl<S> RateLimit<S> {
    /// Decide locally (the in-memory store, or a request the shared store need not see) and
    /// call the inner service or answer.
    #[inline]
    fn call_local<B, ResBody>(
        &mut self,
        req: Request<B>,
        decision: Option<Decision>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
    {
        let shared = &*self.shared;
        let (method, path) = (req.method(), req.uri().path());
        let decision = match decision {
            Some(decision) => decision,
            None => shared.decide(method, path, req.headers(), req.extensions()),
        };
        match shared.conclude(decision, method, path, req.headers(), req.extensions()) {
            Concluded::Call(admitted) => ResponseFuture::inner(self.inner.call(req), admitted),
            Concluded::Answer(response) => ResponseFuture::ready(response),
        }
    }

    /// Decide through the shared store: one round trip unless the local deny cache answers.
    /// The inner service is called (the ready one, swapped for a clone) once admitted.
    #[cfg(feature = "redis")]
    fn call_remote<B, ResBody>(&mut self, req: Request<B>) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
        ResBody: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let prepared = shared.prepare(
            req.method(),
            req.uri().path(),
            req.headers(),
            req.extensions(),
        );
        let charges = match prepared {
            Prepared::Done(decision) => return self.call_local(req, Some(decision)),
            Prepared::Charges(charges) => charges,
        };
        let now = shared.clock.now_nanos();
        if let Some(decision) = crate::redis::cached_denial(&shared, charges.as_slice(), now) {
            return self.call_local(req, Some(decision));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::remote(Box::pin(async move {
            let decision = crate::redis::decide(&shared, charges, now).await;
            let (method, path) = (req.method(), req.uri().path());
            match shared.conclude(decision, method, path, req.headers(), req.extensions()) {
                Concluded::Call(admitted) => Ok((inner.call(req), admitted)),
                Concluded::Answer(response) => Err(response),
            }
        }))
    }
}

#[cfg(not(feature = "redis"))]
impl<S, B, ResBody> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.call_local(req, None)
    }
}

/// With the `redis` feature the inner service must be `Clone + Send + 'static` (with `Send`
/// futures and bodies): a request decided by Redis is handed to the inner service after the
/// round trip, from inside this layer's response future.
#[cfg(feature = "redis")]
impl<S, B, ResBody> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.shared.redis.is_some() {
            return self.call_remote(req);
        }
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
    }
}

pin_project! {
    #[project = KindProj]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<GuardBody<B>>> },
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
                response: Some(response),
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
                    return Poll::Ready(Ok(response
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
