//! The shared ban list: [`RedisBanSync`] and the store's `ban`/`unban`/`bans`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use mcp_security_core::BanList;
use mcp_security_core::ban::{BanObserver, WeakBanList};
use tokio::sync::Notify;

use super::{RedisStore, StoreUnavailable, connect};

/// How often each replica reads the shared ban list.
pub const BAN_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// The default bound on bans held in Redis and on bans waiting to be pushed.
pub const DEFAULT_MAX_SHARED_BANS: usize = 100_000;

/// Push the changes, drop ended bans, bound the set, return it if its version changed.
/// `KEYS`: the set, the version. `ARGV`: now (ms), max, the version last read, a fresh epoch
/// (the version's start when the key is missing), then triples `op` (`b`/`u`), address, end.
/// Reply: `{version, changed, fresh, {address, end, …}}`.
const SCRIPT: &str = r"
local set, ver = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
if not redis.call('GET', ver) then
  redis.call('SET', ver, ARGV[4])
end
local changed = 0
for i = 5, #ARGV - 2, 3 do
  local ip = ARGV[i + 1]
  if ARGV[i] == 'b' then
    local untl = tonumber(ARGV[i + 2])
    local cur = tonumber(redis.call('ZSCORE', set, ip) or '0') or 0
    if untl > now and untl > cur then
      redis.call('ZADD', set, untl, ip)
      changed = 1
    end
  elseif redis.call('ZREM', set, ip) == 1 then
    changed = 1
  end
end
local n = redis.call('ZCARD', set)
if n > max then
  redis.call('ZREMRANGEBYRANK', set, 0, n - max - 1)
end
if changed == 1 then
  redis.call('INCR', ver)
end
local last = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', set, math.max(tonumber(last[2]) - now, 1))
end
local v = redis.call('GET', ver)
if v == ARGV[3] then
  return {v, changed, 0, {}}
end
return {v, changed, 1, redis.call('ZRANGE', set, 0, -1, 'WITHSCORES')}
";

static BANS: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(SCRIPT));

/// One change made on this replica: a ban until a time, or an unban.
type Change = Option<SystemTime>;

/// What one sync call answered.
struct Synced {
    version: String,
    changed: bool,
    /// The whole set, when its version differs from the one last read.
    list: Option<Vec<(IpAddr, SystemTime)>>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RedisStore {
    /// One sync call: push `changes`, read the set if its version is not `seen`.
    async fn sync_bans(
        &self,
        changes: &[(IpAddr, Change)],
        seen: &str,
        max: usize,
    ) -> Result<Synced, StoreUnavailable> {
        let set = format!("{}{{bans}}", self.inner.prefix);
        let ver = format!("{set}v");
        let now = SystemTime::now();
        let mut call = BANS.prepare_invoke();
        call.key(&set)
            .key(&ver)
            .arg(millis(now))
            .arg(max.max(1))
            .arg(seen)
            .arg(format!(
                "{}",
                millis(now).wrapping_mul(1_000_003) % 1_000_000_007
            ));
        for (ip, change) in changes {
            match change {
                Some(until) => call.arg("b").arg(ip.to_string()).arg(millis(*until)),
                None => call.arg("u").arg(ip.to_string()).arg(0),
            };
        }
        let budget = self.inner.timeout.max(Duration::from_secs(1));
        let work = async {
            let mut conn = self.connection().await?;
            call.invoke_async::<(String, i64, i64, Vec<String>)>(&mut conn)
                .await
        };
        let reply = match tokio::time::timeout(budget, work).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                self.inner.link.after_failure(Some(&e));
                return Err(StoreUnavailable(format!(
                    "{}: {}",
                    self.inner.display_url,
                    connect::explain(&e)
                )));
            }
            Err(_) => {
                self.inner.link.after_failure(None);
                return Err(StoreUnavailable(format!(
                    "{}: no answer within {budget:?}",
                    self.inner.display_url
                )));
            }
        };
        let (version, changed, fresh, flat) = reply;
        let list = (fresh == 1).then(|| {
            flat.chunks_exact(2)
                .filter_map(|pair| {
                    let ip: IpAddr = pair[0].parse().ok()?;
                    let ms: f64 = pair[1].parse().ok()?;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let until = UNIX_EPOCH + Duration::from_millis(ms.max(0.0) as u64);
                    Some((ip, until))
                })
                .collect()
        });
        Ok(Synced {
            version,
            changed: changed == 1,
            list,
        })
    }

    /// Ban `ip` until `until` in the shared list (every replica running a [`RedisBanSync`]
    /// enforces it within about 500 ms); a longer stored ban is kept.
    ///
    /// # Errors
    /// Redis is unreachable or refuses the call.
    pub async fn ban(&self, ip: IpAddr, until: SystemTime) -> Result<(), StoreUnavailable> {
        self.sync_bans(
            &[(ip.to_canonical(), Some(until))],
            "",
            DEFAULT_MAX_SHARED_BANS,
        )
        .await
        .map(|_| ())
    }

    /// Lift the ban on `ip` in the shared list (every replica running a [`RedisBanSync`] lifts
    /// it within about 500 ms). Returns whether Redis held one.
    ///
    /// # Errors
    /// Redis is unreachable or refuses the call.
    pub async fn unban(&self, ip: IpAddr) -> Result<bool, StoreUnavailable> {
        self.sync_bans(&[(ip.to_canonical(), None)], "", DEFAULT_MAX_SHARED_BANS)
            .await
            .map(|s| s.changed)
    }

    /// The bans in the shared list now, those ending soonest first.
    ///
    /// # Errors
    /// Redis is unreachable or refuses the call.
    pub async fn bans(&self) -> Result<Vec<(IpAddr, SystemTime)>, StoreUnavailable> {
        self.sync_bans(&[], "", DEFAULT_MAX_SHARED_BANS)
            .await
            .map(|s| s.list.unwrap_or_default())
    }
}

/// The changes made on this replica, waiting to be pushed (bounded).
struct Outbox {
    pending: Mutex<IndexMap<IpAddr, Change>>,
    max: usize,
    wake: Notify,
}

impl Outbox {
    fn put(&self, ip: IpAddr, change: Change, replace: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !replace && pending.contains_key(&ip) {
            return;
        }
        if !pending.contains_key(&ip) && pending.len() >= self.max {
            // The oldest change goes first; the local list still enforces it.
            pending.shift_remove_index(0);
        }
        pending.insert(ip, change);
    }

    fn take(&self) -> Vec<(IpAddr, Change)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain(..).collect()
    }
}

impl BanObserver for Outbox {
    fn banned(&self, ip: IpAddr, until: SystemTime) {
        self.put(ip, Some(until), true);
        self.wake.notify_one();
    }

    fn unbanned(&self, ip: IpAddr) {
        self.put(ip, None, true);
        self.wake.notify_one();
    }
}

/// One [`BanList`] shared by every replica through the [`RedisStore`] (the same
/// connection as the limits: one server, TLS, Cluster or Sentinel alike).
///
/// # Polling, not pub/sub
///
/// The bans live in one sorted set, `<prefix>{bans}` (member: the banned address, score: the
/// end of the ban in Unix milliseconds), next to a version counter `<prefix>{bans}v`; the hash
/// tag puts both in one slot of their own. Each replica runs one background task that, every
/// [`BAN_SYNC_INTERVAL`] (500 ms) and at once after a local ban or unban, makes **one script
/// call**: it pushes the bans and unbans made here since the last call (a ban only ever extends
/// the stored one), drops ended bans, and returns the set only when its version changed since
/// this replica last read it (otherwise a few bytes). A ban decided on any replica is therefore
/// enforced by every replica within about half a second (one interval plus a round trip), and
/// an unban the same way.
///
/// Pub/sub was not chosen: a subscription needs a dedicated connection besides the store's
/// multiplexed one, a message published while a replica reconnects is lost (so a poll would be
/// needed anyway), and on a Redis Cluster classic pub/sub is broadcast to every node. Polling
/// one key works identically on one server, over TLS, on a Cluster and behind Sentinel, over
/// the connection the limits already use, and costs one small round trip per replica every
/// 500 ms.
///
/// # Bounded
///
/// The shared set holds at most `max` bans (default [`DEFAULT_MAX_SHARED_BANS`] = 100 000, the
/// [`BanList`]'s own default bound): beyond that the bans ending soonest are dropped, as the
/// local list does. The local list stays the fast path: checking a ban never costs a round trip.
///
/// # When Redis fails
///
/// The local list keeps enforcing every ban it knows (its own and those it learned); bans and
/// unbans made meanwhile are kept (at most `max`) and pushed when Redis answers again. The
/// limiter's failure policy is unaffected: bans never refuse or admit a request because Redis
/// is down.
///
/// ```no_run
/// use mcp_ratelimit::redis::{RedisBanSync, RedisStore};
/// use mcp_security_core::BanList;
///
/// # async fn run() -> Result<(), mcp_security_core::config::ConfigError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379/").build()?;
/// let bans = BanList::new();
/// assert!(RedisBanSync::start(&store, &bans));
/// bans.ban("203.0.113.9".parse().unwrap(), std::time::SystemTime::now() + std::time::Duration::from_secs(900));
/// // every replica running the same sync refuses 203.0.113.9 within about 500 ms
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RedisBanSync;

impl RedisBanSync {
    /// Start sharing `bans` through `store`, with at most [`DEFAULT_MAX_SHARED_BANS`] bans;
    /// see [`start_with`](Self::start_with).
    pub fn start(store: &RedisStore, bans: &BanList) -> bool {
        Self::start_with(store, bans, DEFAULT_MAX_SHARED_BANS)
    }

    /// Start sharing `bans` through `store`: installs the list's
    /// [observer](BanList::observe) and spawns the background task (on the current Tokio
    /// runtime, or on a thread of its own with a small runtime when there is none). The task
    /// ends once every clone of the list is dropped. Returns `false`, and starts nothing, when
    /// the list already has an observer (it is shared already).
    pub fn start_with(store: &RedisStore, bans: &BanList, max: usize) -> bool {
        let max = max.max(1);
        let outbox = std::sync::Arc::new(Outbox {
            pending: Mutex::new(IndexMap::new()),
            max,
            wake: Notify::new(),
        });
        if !bans.observe(outbox.clone()) {
            return false;
        }
        // Bans recorded before the sync started are pushed by the first call.
        for (ip, until) in bans.snapshot(SystemTime::now(), max) {
            outbox.put(ip, Some(until), false);
        }
        let task = run(store.clone(), bans.downgrade(), outbox, max);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(task);
            }
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("mcp-ban-sync".into())
                    .spawn(move || {
                        match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(rt) => rt.block_on(task),
                            Err(e) => tracing::error!(error = %e, "ban sync: no runtime"),
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "ban sync: the thread did not start");
                }
            }
        }
        true
    }
}

async fn run(store: RedisStore, weak: WeakBanList, outbox: std::sync::Arc<Outbox>, max: usize) {
    let mut seen = String::new();
    let mut shared: HashSet<IpAddr> = HashSet::new();
    let mut failing = false;
    let mut ticker = tokio::time::interval(BAN_SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = outbox.wake.notified() => {}
        }
        let Some(bans) = weak.upgrade() else {
            return;
        };
        let changes = outbox.take();
        match store.sync_bans(&changes, &seen, max).await {
            Ok(synced) => {
                if failing {
                    failing = false;
                    tracing::info!("ban sync: Redis answers again; bans are shared");
                }
                if let Some(list) = synced.list {
                    let mut now_shared = HashSet::with_capacity(list.len());
                    for (ip, until) in list {
                        bans.apply_shared(ip, until);
                        now_shared.insert(ip);
                    }
                    // Gone from Redis since the last read: lifted on another replica (or ended).
                    // A change made here during the call is pushed by the next one: kept.
                    let pending = outbox
                        .pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    for ip in shared.difference(&now_shared) {
                        if !pending.contains_key(ip) {
                            bans.lift_shared(*ip);
                        }
                    }
                    drop(pending);
                    shared = now_shared;
                }
                seen = synced.version;
            }
            Err(e) => {
                // Kept for the next call, unless a newer change for the same address came in.
                for (ip, change) in changes {
                    outbox.put(ip, change, false);
                }
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, "ban sync: Redis unavailable; local bans keep being enforced and are pushed when it answers");
                }
            }
        }
    }
}
