//! [`RateLimitLayerBuilder`]: the limits, classes and bounds of a [`RateLimitLayer`], validated.

use super::*;

/// Builds a [`RateLimitLayer`]; see [`RateLimitLayer::builder`]. `B` is the backend the
/// layer counts in: [`Memory`] unless
/// `redis(..)` (the `redis` feature) chose Redis.
#[must_use]
pub struct RateLimitLayerBuilder<B = Memory> {
    pub(super) limits: Vec<Limit>,
    pub(super) classes: Vec<RouteClass>,
    pub(super) max_keys: usize,
    pub(super) max_prefixes: usize,
    pub(super) bans: Option<BanList>,
    pub(super) ban_scope: BanScope,
    pub(super) credential_header: Option<String>,
    pub(super) budgets: Vec<crate::budget::Budget>,
    pub(super) max_budget_principals: usize,
    pub(super) resolver: Option<ClientAddrResolver>,
    pub(super) mcp_path: String,
    pub(super) clock: Arc<dyn MonotonicClock>,
    pub(super) wall: Arc<dyn Clock>,
    /// Neither clock injected: the wall time can be derived from the monotonic one.
    pub(super) system_clocks: bool,
    pub(super) legacy_headers: bool,
    pub(super) ietf_headers: bool,
    pub(super) enabled: bool,
    #[cfg(feature = "redis")]
    pub(super) redis: Option<crate::backend::redis::RedisStore>,
    pub(super) backend: PhantomData<fn() -> B>,
}

impl Default for RateLimitLayerBuilder {
    fn default() -> Self {
        RateLimitLayerBuilder {
            limits: Vec::new(),
            classes: Vec::new(),
            max_keys: DEFAULT_MAX_KEYS,
            max_prefixes: DEFAULT_MAX_PREFIXES,
            bans: None,
            ban_scope: BanScope::default(),
            credential_header: None,
            budgets: Vec::new(),
            max_budget_principals: crate::budget::DEFAULT_MAX_PRINCIPALS,
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
    pub(super) fn into_backend<C>(self) -> RateLimitLayerBuilder<C> {
        RateLimitLayerBuilder {
            limits: self.limits,
            classes: self.classes,
            max_keys: self.max_keys,
            max_prefixes: self.max_prefixes,
            bans: self.bans,
            ban_scope: self.ban_scope,
            credential_header: self.credential_header,
            budgets: self.budgets,
            max_budget_principals: self.max_budget_principals,
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

    /// Refuse clients on this list before any limit is consulted (which of their requests:
    /// [`ban_scope`](Self::ban_scope)).
    pub fn ban_list(mut self, bans: BanList) -> Self {
        self.bans = Some(bans);
        self
    }

    /// Which requests of a banned client are refused (default [`BanScope::Failed`]):
    ///
    /// - [`BanScope::Failed`]: a request without a credential is refused here, before any
    ///   cryptography; one with a credential is charged as usual and let through marked, and
    ///   refused with the very same `429` unless a principal authenticated: right after
    ///   authentication by the next rate-limit layer of this crate (the per-caller one, which
    ///   checks the mark even when it limits nothing), and on the way out when authentication
    ///   refused the credential. The per-caller layer must therefore sit after the auth layer,
    ///   as the stack has it.
    /// - [`BanScope::All`]: every request of a banned client is refused here.
    ///
    /// A credential is an `Authorization` header, the [`credential_header`](Self::credential_header)
    /// or a `token` / `access_token` query parameter.
    pub fn ban_scope(mut self, scope: BanScope) -> Self {
        self.ban_scope = scope;
        self
    }

    /// Add a per-principal [`Budget`](crate::Budget): weighted units over a long window, charged
    /// after every limit of this layer admitted a request that has a
    /// [`Principal`](mcp_security_core::Principal) — so put budgets on the layer after
    /// authentication; see [`crate::budget`].
    pub fn budget(mut self, budget: crate::Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// The bound on principals whose budgets are tracked in memory (default
    /// [`DEFAULT_MAX_PRINCIPALS`](crate::budget::DEFAULT_MAX_PRINCIPALS)); see
    /// [`crate::budget`] for what a full store evicts.
    pub fn max_budget_principals(mut self, max: usize) -> Self {
        self.max_budget_principals = max;
        self
    }

    /// The budgets added so far.
    pub fn budgets(&self) -> &[crate::Budget] {
        &self.budgets
    }

    /// A header carrying a credential besides `Authorization` (the auth layer's API-key header,
    /// e.g. `X-API-Key`), for [`ban_scope`](Self::ban_scope).
    pub fn credential_header(mut self, name: impl Into<String>) -> Self {
        self.credential_header = Some(name.into());
        self
    }

    /// How to resolve the client address when no
    /// [`ClientAddr`](mcp_security_core::client_addr::ClientAddr) is in the request extensions
    /// (default: the peer address, no trusted proxies).
    pub fn client_addr_resolver(mut self, resolver: ClientAddrResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The MCP endpoint path (default `/mcp`): a refused POST to it that
    /// [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) has not read yet is answered as
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

    /// The route classes added so far.
    pub fn route_classes(&self) -> &[RouteClass] {
        &self.classes
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
    /// `max_keys` (zero), `mcp_path`, `credential_header`.
    pub fn build(self) -> Result<RateLimitLayer<B>, ConfigError>
    where
        B: Backend,
    {
        if !self.enabled {
            return Ok(RateLimitLayer::default());
        }
        if self.limits.is_empty() && self.bans.is_none() && self.budgets.is_empty() {
            return Err(ConfigError::new(
                "limit",
                "add at least one limit (or a ban list, or a budget); use RateLimitLayer::disabled() to limit nothing",
            ));
        }
        let budgets = if self.budgets.is_empty() {
            None
        } else {
            if self.max_budget_principals == 0 {
                return Err(
                    ConfigError::new("max_budget_principals", "must be at least 1").with_value("0"),
                );
            }
            let mut list: Vec<crate::budget::BudgetRt> = Vec::with_capacity(self.budgets.len());
            for budget in self.budgets {
                if list.iter().any(|b| b.name == budget.name()) {
                    return Err(ConfigError::new("budget", "is declared twice")
                        .with_value(budget.name().to_owned()));
                }
                if list.len() >= usize::from(u16::MAX) {
                    return Err(ConfigError::new("budget", "at most 65535 budgets"));
                }
                list.push(crate::budget::BudgetRt::new(budget)?);
            }
            #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
            let mut budgets = crate::budget::Budgets::new(list, self.max_budget_principals);
            #[cfg(feature = "redis")]
            budgets.set_redis(self.redis.clone());
            Some(Box::new(budgets))
        };
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
        let credential_header = match &self.credential_header {
            Some(name) => Some(HeaderName::try_from(name.as_str()).map_err(|_| {
                ConfigError::new("credential_header", "not a valid header name")
                    .with_value(name.clone())
            })?),
            None => None,
        };
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
                    ban_scope: self.ban_scope,
                    credential_header,
                    budgets,
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
