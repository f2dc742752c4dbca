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
//! `<prefix>{<16 hex digits>}<16 hex digits>`. For a limit keyed on a caller (client address,
//! principal), the part in braces is the first 64 bits of SHA-256 over that caller alone and the
//! rest the first 64 bits of SHA-256 over the limit's name and all the selected parts (client
//! address, principal, class, MCP method, tool), length-prefixed; for a limit without a caller
//! (global, class, method, tool) both are the latter's first 128 bits. Whatever a client sends
//! (`{`, spaces, 10 KiB, binary), the key has the same prefix and length, and it cannot choose a
//! Redis key or a Cluster hash slot. The same client gets the same key on every replica, so
//! limits with the same name share buckets across the fleet (give every replica the same
//! limits). The names are the same on one server and on a cluster.
//!
//! # Redis Cluster
//!
//! With [`RedisStoreBuilder::cluster`] (`RATE_LIMIT_REDIS_CLUSTER=true`; the URL is one seed
//! node, [`RedisStoreBuilder::cluster_nodes`] adds more) the store uses the `redis` crate's
//! cluster client: it learns the nodes and slots from the seeds, sends each call to the primary
//! of its key's slot, follows `MOVED` and `ASK` redirections and refreshes its slot map when
//! slots move. The part in braces is the Redis hash tag, so **every key of one caller is in one
//! slot**: a request whose limits all key on the same caller (per address, per address and tool,
//! per principal and method, …) is still one atomic script on one node, and the exactness above
//! holds unchanged, while different callers spread over the cluster. The script is loaded on
//! every node by [`RedisStore::warm_up`] (`SCRIPT LOAD` goes to all of them), or on `NOSCRIPT` by
//! the first call that needs it, on whichever node answered so.
//!
//! A request whose limits key on different callers (per address *and* per principal) or on none
//! (a global limit next to a per-caller one) touches several slots, which no single script may
//! do on a cluster. Then each slot's keys are one atomic script, the scripts run at once, and if
//! any refuses, the slots that admitted get back exactly what they were charged (a second
//! script), so a refused request still charges no limit. The bound on each limit is unaffected —
//! each key's check-and-charge is atomic on its node, so no key ever admits more than on one
//! server — and the only difference is that the refunded cells are held for one round trip,
//! which can make a concurrent request on those keys be refused, never admitted, wrongly. (Tagging
//! every key of a request by its first key instead would put one principal's bucket in a
//! different key for each address it comes from, and a global limit in one key per caller:
//! neither would be a limit.) On one server everything stays one script.
//!
//! # Bans and budgets
//!
//! The same store, over the same connection, shares the [`BanList`](mcp_security_core::BanList)
//! ([`RedisBanSync`]: polled every 500 ms, see there why not pub/sub; [`RedisStore::ban`],
//! [`RedisStore::unban`] and [`RedisStore::bans`] for operators) and counts the layer's
//! [budgets](crate::budget) (keys `<prefix>b:{<principal digest>}<budget digest>`, one script call
//! per decision), in every mode below.
//!
//! # Failover
//!
//! After a restart of the server (or of a cluster node, which keeps its slots), the connection
//! reconnects by itself and decisions resume with the same store; the failure policy answers
//! meanwhile. With Sentinel ([`RedisStoreBuilder::sentinel`], `RATE_LIMIT_REDIS_SENTINEL` and
//! `RATE_LIMIT_REDIS_SENTINEL_MASTER`) the primary is the one the sentinels name; after any
//! failed call (at most every 200 ms) it is asked for again, so a replica the sentinels
//! promoted is used as soon as they announce it. State written to the old primary and not yet
//! replicated is lost in a failover, as for any Redis client: some callers get a little more
//! than their limit once.
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
//! The connection is a [`::redis::aio::ConnectionManager`] (a cluster connection on a cluster),
//! created on the first request (building the store needs no runtime and no reachable Redis) and
//! reconnecting by itself: when Redis
//! returns, limits are shared again without a restart. A connection Redis refused the
//! credentials of is replaced (at most once a second) rather than retried, so fixing the password
//! on the server side also resumes decisions without a restart. [`RedisStore::stats`] reports round trips,
//! local refusals, failures and whether the store is degraded now.

use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indexmap::IndexMap;
use mcp_security_core::config::{ConfigError, Env, Secret};

use mcp_security_core::clock::MonotonicClock;

use crate::backend::memory::{Bucket, Memory};
use crate::backend::sealed::{Sealed, Spec};
use crate::decision::{Charge, Charges, Decision, Report};
use crate::key::{KeyHasher, PassThrough, StoreKey};
use crate::quota::{Gcra, ceil_secs};

mod backend;
mod bans;
mod budget;
mod builder;
mod connect;
mod deny_cache;
mod env;
mod link;
mod script;
mod topology;
pub use backend::RedisBackend;
pub use bans::{BAN_SYNC_INTERVAL, DEFAULT_MAX_SHARED_BANS, RedisBanSync};
pub use builder::RedisStoreBuilder;
use deny_cache::DenyCache;
use link::Conn;

/// The default time budget of one decision: 20 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "mcp:rl:";
/// The default bound on the local deny cache.
pub const DEFAULT_DENY_CACHE: usize = 10_000;
/// The longest accepted key prefix.
pub const MAX_PREFIX_LEN: usize = 64;

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
    /// The connection, replaced when it cannot recover by itself (refused credentials, a
    /// primary Sentinel may have replaced).
    link: link::Link,
    /// The URL with the password masked.
    display_url: String,
    scripts: script::Scripts,
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
            cluster: false,
            cluster_nodes: Vec::new(),
            sentinel: None,
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
        let budget = self.inner.timeout.max(Duration::from_secs(1));
        let loaded = tokio::time::timeout(budget, async {
            let conn = self.connection().await.map_err(Some)?;
            connect::load_script(conn, &self.inner.scripts.decide, budget).await
        })
        .await
        .unwrap_or(Err(None));
        loaded.map_err(|e| {
            self.inner.link.after_failure(e.as_ref());
            StoreUnavailable(format!("{url}: {}", connect::reason(e.as_ref(), budget)))
        })
    }

    /// The Redis key of a stored key: the prefix, the key's first half as the Redis Cluster
    /// hash tag (the caller's digest, so one caller's keys share a slot) and its second half.
    fn key_name(&self, key: StoreKey) -> String {
        format!("{}{{{:016x}}}{:016x}", self.inner.prefix, key.0, key.1)
    }

    async fn connection(&self) -> Result<Conn, ::redis::RedisError> {
        let timeouts = link::Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(1).max(self.inner.timeout),
        };
        self.inner
            .link
            .conn(
                timeouts,
                &self.inner.scripts.decide,
                &self.inner.display_url,
            )
            .await
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
