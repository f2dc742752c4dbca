//! [`RedisStore`]: one set of limits shared by every replica, through Redis (the `redis` cargo
//! feature).
//!
//! Per-process limits multiply by the replica count behind a load balancer, and a client that
//! spreads its requests evades them. With a [`RedisStore`] on the [`RateLimitLayer`](crate::RateLimitLayer) builder
//! ([`RateLimitLayerBuilder::redis`](crate::RateLimitLayerBuilder::redis)) every limit of the
//! layer is counted in Redis instead: the layer's backend becomes [`RedisBackend`]
//! (`RateLimitLayer<RedisBackend>`), whose service needs the inner service to be
//! `Clone + Send + 'static` — only such layers do; the default in-memory layer never does,
//! with or without this feature.
//!
//! # One round trip, atomic, Redis's clock
//!
//! Each decision is one Lua script call (`EVALSHA`, falling back to `SCRIPT LOAD` + `EVALSHA` on
//! `NOSCRIPT` after a Redis restart, which [`::redis::Script`] does): every limit that applies to
//! the request is checked in the same call, with **all-or-nothing** semantics — the script
//! computes every key's new TAT first and writes them only if all admit, so a refusal by one
//! limit charges none (the in-memory store refunds instead; here nothing needs undoing). The
//! GCRA is the in-memory store's ([`crate::quota`]) in integer microseconds, with the emission
//! interval rounded *up* to a whole microsecond, so the bound is the same: in any window `W` at
//! most `burst + ⌊W × requests / window⌋` requests are admitted, fleet-wide. Time comes from
//! Redis `TIME` inside the script, never from the replicas' clocks. Each key is written with a
//! `PX` TTL equal to the time until its bucket is full again, so an idle client costs nothing.
//!
//! # Key names
//!
//! `<prefix><32 hex digits>`: the digits are the first 128 bits of SHA-256 over the limit's name
//! and the selected parts (client address, principal, class, MCP method, tool), length-prefixed.
//! Whatever a client sends (`{`, spaces, 10 KiB, binary), the key has the same prefix and length,
//! and it cannot choose a Redis key or a Cluster hash slot. The same client gets the same key on
//! every replica, so limits with the same name share buckets across the fleet (give every replica
//! the same limits). Standalone Redis (or a primary behind Sentinel/a proxy); a multi-key script
//! across Redis Cluster slots is not supported.
//!
//! # TLS and credentials
//!
//! `rediss://` connects over TLS (rustls, with its ring provider installed explicitly as the
//! process default unless the application installed one: no OpenSSL, and no build that finds no
//! provider at the first connection). The server's certificate must verify, for the URL's host
//! name, against the Mozilla roots bundled at build time (webpki-roots) or, with
//! [`RedisStoreBuilder::ca_file`] (`RATE_LIMIT_REDIS_CA_FILE`), against that CA file only;
//! [`RedisStoreBuilder::client_cert_files`] adds a client certificate for mutual TLS. There is
//! no switch that skips the check: a `rediss://…#insecure` URL is refused at build time. A
//! certificate that does not verify refuses the connection, and the failure policy applies, as
//! for any other outage.
//!
//! The ACL user and password come from the URL (`rediss://user:password@host:6380/0`) or from
//! [`RedisStoreBuilder::username`] / [`RedisStoreBuilder::password`]
//! (`RATE_LIMIT_REDIS_USERNAME`, `RATE_LIMIT_REDIS_PASSWORD` / `_FILE`), which win over the
//! URL's. The password never appears in `Debug`, errors, logs or the summary: they show
//! [`RedisStore::display_url`] (`rediss://user:***@host:6380/0`). Redis refusing the
//! credentials is logged once, in words, when the failure policy takes over.
//!
//! # Local deny cache
//!
//! When Redis refuses a key until `T`, the replica remembers it (bounded, default 10 000 keys;
//! evicting an entry only costs a round trip): further requests on that key before `T` are
//! refused locally, without a round trip — Envoy's ratelimit local cache does the same. `T` is
//! measured from when the request was *sent*, so the cache never refuses past the time Redis
//! would; and it only ever refuses, so it never admits what Redis would refuse.
//!
//! # Failure policy
//!
//! Every decision has a time budget ([`RedisStoreBuilder::timeout`], default
//! [`DEFAULT_TIMEOUT`] = 20 ms, Envoy's rate-limit filter default; a loopback round trip takes
//! about 0.1 ms, one in the same zone under 1 ms). On an error or an exceeded budget:
//!
//! - [`FailurePolicy::Closed`] (the default): `503 Service Unavailable` with `Retry-After: 1`,
//!   code `rate_limit_unavailable`, in the caller's format (gRPC `14`). Not `429`: the client did
//!   not exceed anything, and `429` would tell it (and the audit trail, and dashboards) that it
//!   did; `503` + `Retry-After` is the status clients and load balancers already retry with
//!   back-off. The audit layer records [`RateLimitOutcome::Unavailable`](mcp_security_core::RateLimitOutcome).
//! - [`FailurePolicy::Open`]: the request is decided by a local in-memory limiter whose quotas
//!   are each limit's divided by [`RedisStoreBuilder::replicas`] (rounded down, at least 1), so
//!   the fleet as a whole stays near the limit. Recorded as `RateLimitOutcome::Degraded`.
//!
//! The connection is a [`::redis::aio::ConnectionManager`], created on the first request (building
//! the store needs no runtime and no reachable Redis) and reconnecting by itself: when Redis
//! returns, limits are shared again without a restart. A connection Redis refused the
//! credentials of is replaced (at most once a second) rather than retried, so fixing the password
//! on the server side also resumes decisions without a restart. [`RedisStore::stats`] reports round trips,
//! local refusals, failures and whether the store is degraded now.

use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use indexmap::IndexMap;
use mcp_security_core::config::{ConfigError, Env, Secret};

use mcp_security_core::clock::MonotonicClock;

use crate::backend::memory::{Bucket, Memory};
use crate::backend::sealed::{Sealed, Spec};
use crate::decision::{Charge, Charges, Decision, Report};
use crate::key::{KeyHasher, PassThrough, StoreKey};
use crate::quota::{Gcra, ceil_secs};

mod builder;
mod connect;
mod deny_cache;
mod env;
pub use builder::RedisStoreBuilder;
use deny_cache::DenyCache;

/// The default time budget of one decision: 20 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "mcp:rl:";
/// The default bound on the local deny cache.
pub const DEFAULT_DENY_CACHE: usize = 10_000;
/// The longest accepted key prefix.
pub const MAX_PREFIX_LEN: usize = 64;

/// The GCRA of [`crate::quota`], for several keys at once, all-or-nothing, in microseconds of
/// Redis `TIME`. `ARGV` holds four numbers per key: interval, tolerance, weight, burst. The reply
/// is `{admitted, wait₁, tat₁ − now, wait₂, tat₂ − now, …}`: the wait is 0 for a key that admits;
/// the TAT is the new one when all admitted, the unchanged one otherwise.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local out = {1}
for i = 1, #KEYS do
  local k = KEYS[i]
  local interval = tonumber(ARGV[4 * i - 3])
  local tolerance = tonumber(ARGV[4 * i - 2])
  local weight = tonumber(ARGV[4 * i - 1])
  local burst = tonumber(ARGV[4 * i])
  local tat = tats[k]
  if tat == nil then
    tat = tonumber(redis.call('GET', k) or '0') or 0
  end
  local base = math.max(tat, now)
  local wait = 0
  if weight > burst then
    wait = math.max(base - now, 1)
  else
    local last = base + (weight - 1) * interval
    local limit = now + tolerance
    if last <= limit then
      tat = last + interval
      tats[k] = tat
    else
      wait = last - limit
    end
  end
  if wait > 0 then
    out[1] = 0
  end
  out[2 * i] = wait
  out[2 * i + 1] = math.max(tat - now, 0)
end
if out[1] == 1 then
  for k, tat in pairs(tats) do
    redis.call('SET', k, string.format('%.0f', tat), 'PX', math.max(math.ceil((tat - now) / 1000), 1))
  end
end
return out
";

/// What happens when Redis fails or exceeds the time budget; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse with `503` and `Retry-After: 1` (the default).
    #[default]
    Closed,
    /// Decide with a local in-memory limiter at each limit divided by the replica count.
    Open,
}

impl FailurePolicy {
    /// `closed` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Closed => "closed",
            FailurePolicy::Open => "open",
        }
    }
}

/// Counters and state of a [`RedisStore`], for metrics. Counters only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedisStats {
    /// Script calls sent to Redis (each one round trip, plus a `SCRIPT LOAD` after a restart).
    pub round_trips: u64,
    /// Requests Redis refused.
    pub remote_denials: u64,
    /// Requests the local deny cache refused without a round trip.
    pub local_denials: u64,
    /// Calls that failed (connection refused or lost, a Redis error).
    pub errors: u64,
    /// Calls that exceeded the time budget.
    pub timeouts: u64,
    /// Requests decided by the fail-open fallback limiter.
    pub fallback_decisions: u64,
    /// Requests refused with `503` by the fail-closed policy.
    pub unavailable_rejections: u64,
    /// Whether the last call failed (the failure policy is in force until one succeeds).
    pub degraded: bool,
    /// Keys in the local deny cache now.
    pub deny_cache_len: u64,
}

/// Limits shared by every replica through Redis; see the [module docs](self). Cheap to clone.
///
/// ```no_run
/// use std::time::Duration;
/// use mcp_ratelimit::redis::{FailurePolicy, RedisStore};
/// use mcp_ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("notes-prod:rl:")
///     .failure_policy(FailurePolicy::Open)
///     .replicas(3)
///     .timeout(Duration::from_millis(20))
///     .build()?;
/// let layer = RateLimitLayer::builder()
///     .limit(Limit::new("ip", Quota::per_minute(100), KeySelector::client_addr()))
///     .redis(store)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.display_url)
            .field("prefix", &self.inner.prefix)
            .field("failure", &self.inner.failure)
            .field("timeout", &self.inner.timeout)
            .field("replicas", &self.inner.replicas)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// The connection, replaced when Redis refuses it for good (refused credentials).
    link: connect::Link,
    /// The URL with the password masked.
    display_url: String,
    script: ::redis::Script,
    prefix: String,
    failure: FailurePolicy,
    timeout: Duration,
    replicas: u64,
    deny: DenyCache,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    round_trips: AtomicU64,
    remote_denials: AtomicU64,
    local_denials: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    fallback_decisions: AtomicU64,
    unavailable_rejections: AtomicU64,
    degraded: AtomicBool,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

enum Failure {
    Timeout,
    /// The failure in words ([`connect::explain`]).
    Error(String),
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `unix:///path`). The URL may carry a password: it is kept out of `Debug` and errors.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: Secret::new(url.into()),
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            failure: FailurePolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            replicas: 1,
            deny_cache: DEFAULT_DENY_CACHE,
        }
    }

    /// The URL the store connects to, with the password masked
    /// (`rediss://user:***@host:port/db`) and the user and password that won (the builder's
    /// over the URL's): for summaries and logs.
    pub fn display_url(&self) -> &str {
        &self.inner.display_url
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.failure
    }

    /// The time budget of one decision.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Counters and state, for metrics.
    pub fn stats(&self) -> RedisStats {
        let c = &self.inner.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisStats {
            round_trips: load(&c.round_trips),
            remote_denials: load(&c.remote_denials),
            local_denials: load(&c.local_denials),
            errors: load(&c.errors),
            timeouts: load(&c.timeouts),
            fallback_decisions: load(&c.fallback_decisions),
            unavailable_rejections: load(&c.unavailable_rejections),
            degraded: c.degraded.load(Ordering::Relaxed),
            deny_cache_len: self.inner.deny.len() as u64,
        }
    }

    /// Connect and load the script now, within the time budget or 1 s, whichever is longer
    /// (optional: otherwise the first request does both, which can exceed a tight budget once).
    /// For start-up and readiness checks; needs a Tokio runtime. The first connection also
    /// logs, once, whether Redis answers (`info`) or why it does not (`error`: refused
    /// credentials, a certificate that does not verify, …), whether it is made here or by the
    /// first request.
    ///
    /// # Errors
    /// Redis is unreachable, refuses the TLS handshake, the credentials or the script, or is
    /// slower than the budget. The message shows [`display_url`](Self::display_url), never the
    /// password.
    pub async fn warm_up(&self) -> Result<(), StoreUnavailable> {
        let url = &self.inner.display_url;
        let conn = self
            .connection()
            .map_err(|e| StoreUnavailable(format!("{url}: {e}")))?;
        let budget = self.inner.timeout.max(Duration::from_secs(1));
        connect::load_script(conn, &self.inner.script, budget)
            .await
            .map_err(|e| {
                if let Some(e) = &e {
                    self.inner.link.after_error(e);
                }
                StoreUnavailable(format!("{url}: {}", connect::reason(e.as_ref(), budget)))
            })
    }

    /// The Redis key of a stored key: the prefix and 32 hex digits.
    fn key_name(&self, key: StoreKey) -> String {
        format!("{}{:016x}{:016x}", self.inner.prefix, key.0, key.1)
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
        let config = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1).max(self.inner.timeout)))
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(500))
                .set_number_of_retries(3)
        };
        self.inner
            .link
            .manager(config, &self.inner.script, &self.inner.display_url)
    }

    /// One script call for `charges`, within the time budget.
    async fn eval(&self, charges: &[Charge], params: &[Params]) -> Result<Vec<i64>, Failure> {
        let mut conn = self.connection().map_err(Failure::Error)?;
        let mut call = self.inner.script.prepare_invoke();
        for charge in charges {
            let (Some(key), Some(p)) = (charge.key, params.get(usize::from(charge.limit))) else {
                continue;
            };
            let g = if charge.overflow {
                &p.overflow
            } else {
                &p.main
            };
            call.key(self.key_name(key))
                .arg(g.interval_us)
                .arg(g.tolerance_us)
                .arg(charge.weight)
                .arg(g.burst);
        }
        bump(&self.inner.stats.round_trips);
        match tokio::time::timeout(self.inner.timeout, call.invoke_async(&mut conn)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.inner.link.after_error(&e);
                let reason = connect::explain(&e);
                tracing::debug!(redis = %self.inner.display_url, error = %reason, "rate-limit store: Redis call failed");
                Err(Failure::Error(reason))
            }
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// Redis could not be reached or used; see [`RedisStore::warm_up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUnavailable(String);

impl std::fmt::Display for StoreUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the Redis rate-limit store is unavailable: {}", self.0)
    }
}

impl std::error::Error for StoreUnavailable {}

/// A GCRA in whole microseconds (the interval rounded up).
#[derive(Debug, Clone, Copy)]
struct MicroGcra {
    interval_us: u64,
    tolerance_us: u64,
    burst: u64,
}

impl MicroGcra {
    fn new(g: &Gcra) -> Self {
        let interval_us = g.interval().div_ceil(1_000).max(1);
        MicroGcra {
            interval_us,
            tolerance_us: interval_us.saturating_mul(g.burst().saturating_sub(1)),
            burst: g.burst(),
        }
    }

    /// `burst − ⌈(TAT − now)/T⌉`.
    fn remaining(&self, tat_offset_us: u64) -> u64 {
        self.burst
            .saturating_sub(tat_offset_us.div_ceil(self.interval_us))
    }
}

#[derive(Debug)]
struct Params {
    main: MicroGcra,
    overflow: MicroGcra,
}

/// The Redis backend of a [`RateLimitLayer`](crate::RateLimitLayer): limits counted in Redis
/// when a [`RedisStore`] is configured, in memory otherwise; see the [module docs](self). Chosen
/// with [`RateLimitLayerBuilder::redis`](crate::RateLimitLayerBuilder::redis) or
/// [`maybe_redis`](crate::RateLimitLayerBuilder::maybe_redis).
pub struct RedisBackend {
    /// Decisions when no store is configured (and for requests no limit applies to).
    local: Memory,
    remote: Option<Remote>,
    /// Re-keys stable (Redis) keys for the local deny cache and the fallback store.
    hasher: KeyHasher,
}

/// A layer's Redis state: the store, each limit's GCRA in microseconds, the fail-open fallback.
struct Remote {
    store: RedisStore,
    params: Box<[Params]>,
    fallback: Option<Memory>,
}

impl Remote {
    fn new(store: RedisStore, spec: &Spec<'_>) -> Result<Self, ConfigError> {
        let mut params = Vec::with_capacity(spec.limits.len());
        let mut buckets = Vec::with_capacity(spec.limits.len());
        let replicas = store.inner.replicas.max(1);
        for limit in spec.limits {
            let setting = format!("limit.{}", limit.name);
            params.push(Params {
                main: MicroGcra::new(&limit.gcra),
                overflow: MicroGcra::new(&limit.overflow_gcra),
            });
            let share = |q: crate::Quota| {
                crate::Quota::new((q.requests() / replicas).max(1), q.window())
                    .with_burst((q.burst() / replicas).max(1))
            };
            let fb = share(limit.quota).gcra(&format!("{setting}.fallback"))?;
            let fb_overflow = share(limit.overflow_quota).gcra(&format!("{setting}.fallback"))?;
            buckets.push(Bucket::new(fb, fb_overflow));
        }
        let fallback = (store.inner.failure == FailurePolicy::Open)
            .then(|| Memory::new(buckets, spec.max_keys, spec.max_prefixes));
        Ok(Remote {
            store,
            params: params.into_boxed_slice(),
            fallback,
        })
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("store", &self.store())
            .finish_non_exhaustive()
    }
}

impl crate::backend::Backend for RedisBackend {}

impl Sealed for RedisBackend {
    fn build(spec: Spec<'_>) -> Result<Self, ConfigError> {
        let local = Memory::from_spec(&spec);
        let remote = match spec.redis.clone() {
            Some(store) => Some(Remote::new(store, &spec)?),
            None => None,
        };
        Ok(RedisBackend {
            local,
            remote,
            hasher: KeyHasher::default(),
        })
    }

    fn disabled() -> Self {
        RedisBackend {
            local: Memory::new(Vec::new(), 1, 0),
            remote: None,
            hasher: KeyHasher::default(),
        }
    }

    fn local(&self) -> &Memory {
        &self.local
    }

    fn stable_keys(&self) -> bool {
        self.remote.is_some()
    }

    fn describe(&self) -> Option<String> {
        let store = self.store()?;
        Some(format!(
            "shared in Redis at {}, prefix {}, failure policy {}, budget {:?}",
            store.display_url(),
            store.prefix(),
            store.failure_policy().as_str(),
            store.timeout()
        ))
    }
}

impl RedisBackend {
    /// The Redis store, when one is configured.
    pub fn store(&self) -> Option<&RedisStore> {
        self.remote.as_ref().map(|r| &r.store)
    }

    /// A refusal the deny cache can give without a round trip.
    pub(crate) fn cached_denial(&self, charges: &[Charge], now: u64) -> Option<Decision> {
        let backend = self.remote.as_ref()?;
        let deny = &backend.store.inner.deny;
        if deny.cap == 0 {
            return None;
        }
        let mut worst: Option<(u64, Report)> = None;
        for charge in charges {
            let Some(key) = charge.key else { continue };
            let Some((until, full)) = deny.get(self.hasher.rekey(key), now) else {
                continue;
            };
            let wait = until - now;
            if worst.as_ref().is_none_or(|(w, _)| wait > *w) {
                let burst = backend
                    .params
                    .get(usize::from(charge.limit))
                    .map_or(1, |p| {
                        if charge.overflow {
                            p.overflow.burst
                        } else {
                            p.main.burst
                        }
                    });
                worst = Some((
                    wait,
                    Report {
                        limit: charge.limit,
                        remaining: 0,
                        reset: full.saturating_sub(now),
                        overflow: charge.overflow,
                        prefix: false,
                        burst,
                        degraded: false,
                        at: now,
                    },
                ));
            }
        }
        let (wait, report) = worst?;
        bump(&backend.store.inner.stats.local_denials);
        Some(Decision::Limited {
            report,
            retry_after: ceil_secs(wait).max(1),
        })
    }

    /// Decide `charges` in Redis; on failure, apply the failure policy. `sent` is the local
    /// monotonic time the decision started at.
    pub(crate) async fn decide(
        &self,
        charges: Charges,
        sent: u64,
        clock: &dyn MonotonicClock,
    ) -> Decision {
        let Some(backend) = self.remote.as_ref() else {
            return Decision::Pass;
        };
        let store = &backend.store;
        let stats = &store.inner.stats;
        let charges = charges.as_slice();
        let reply = match store.eval(charges, &backend.params).await {
            Ok(reply) => reply,
            Err(failure) => {
                let reason = match failure {
                    Failure::Timeout => {
                        bump(&stats.timeouts);
                        format!("no answer within the budget of {:?}", store.inner.timeout)
                    }
                    Failure::Error(reason) => {
                        bump(&stats.errors);
                        reason
                    }
                };
                if !stats.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        policy = store.inner.failure.as_str(),
                        redis = %store.inner.display_url,
                        reason = %reason,
                        "rate-limit store: Redis unavailable or slower than its budget; applying the failure policy"
                    );
                }
                return match &backend.fallback {
                    Some(fallback) => {
                        bump(&stats.fallback_decisions);
                        let local = self.rekeyed(charges);
                        fallback.apply(local.as_slice(), clock.now_nanos(), true)
                    }
                    None => {
                        bump(&stats.unavailable_rejections);
                        Decision::Unavailable { retry_after: 1 }
                    }
                };
            }
        };
        if stats.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate-limit store: Redis answers again; limits are shared");
        }
        let admitted = reply.first().copied() == Some(1);
        let mut worst: Option<(u64, Report)> = None;
        let mut tightest: Option<Report> = None;
        let mut n = 0usize;
        for charge in charges {
            let (Some(key), Some(p)) = (charge.key, backend.params.get(usize::from(charge.limit)))
            else {
                continue;
            };
            let g = if charge.overflow {
                &p.overflow
            } else {
                &p.main
            };
            let wait_us = reply
                .get(1 + 2 * n)
                .map_or(0, |w| u64::try_from(*w).unwrap_or(0));
            let tat_us = reply
                .get(2 + 2 * n)
                .map_or(0, |t| u64::try_from(*t).unwrap_or(0));
            n += 1;
            let reset = tat_us.saturating_mul(1_000);
            if admitted {
                let report = Report {
                    limit: charge.limit,
                    remaining: g.remaining(tat_us),
                    reset,
                    overflow: charge.overflow,
                    prefix: false,
                    burst: g.burst,
                    degraded: false,
                    at: sent,
                };
                if report.tighter(tightest.as_ref()) {
                    tightest = Some(report);
                }
                continue;
            }
            // When a single request (weight 1) on this refusing key conforms again. Only
            // refusing keys are remembered: the others' TATs in a refused call are what they
            // would have become, and nothing was written.
            let conform_us = tat_us.saturating_sub(g.tolerance_us);
            if wait_us > 0 && conform_us > 0 {
                store.inner.deny.insert(
                    self.hasher.rekey(key),
                    sent.saturating_add(conform_us.saturating_mul(1_000)),
                    sent.saturating_add(reset),
                    clock.now_nanos(),
                );
            }
            if wait_us > 0 && worst.as_ref().is_none_or(|(w, _)| wait_us > *w) {
                worst = Some((
                    wait_us,
                    Report {
                        limit: charge.limit,
                        remaining: 0,
                        reset,
                        overflow: charge.overflow,
                        prefix: false,
                        burst: g.burst,
                        degraded: false,
                        at: sent,
                    },
                ));
            }
        }
        if admitted {
            return match tightest {
                Some(report) => Decision::Allowed(report),
                None => Decision::NotLimited,
            };
        }
        bump(&stats.remote_denials);
        match worst {
            Some((wait_us, report)) => Decision::Limited {
                report,
                retry_after: ceil_secs(wait_us.saturating_mul(1_000)).max(1),
            },
            // A malformed reply: refuse rather than admit.
            None => Decision::Unavailable { retry_after: 1 },
        }
    }

    /// The charges with process-keyed local keys, for the fallback store.
    fn rekeyed(&self, charges: &[Charge]) -> Charges {
        let mut out = Charges::new();
        for c in charges {
            out.push(Charge {
                key: c.key.map(|k| self.hasher.rekey(k)),
                ..*c
            });
        }
        out
    }
}
