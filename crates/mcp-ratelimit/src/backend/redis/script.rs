//! The decision script and its call: one atomic script per decision on one server; on a Redis
//! Cluster one per hash slot the request's keys fall in (one for a caller's own limits).

use super::*;

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

/// Hands back what an admitted call charged, when a call on another hash slot refused the same
/// request (Redis Cluster only). `ARGV[i]` is what key `i`'s TAT moved by (weight × interval, in
/// microseconds); a key whose TAT falls to now or before is deleted (an empty bucket).
const REFUND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local k = KEYS[i]
  local tat = tonumber(redis.call('GET', k) or '0') or 0
  if tat > 0 then
    local new = tat - tonumber(ARGV[i])
    if new <= now then
      redis.call('DEL', k)
    else
      redis.call('SET', k, string.format('%.0f', new), 'PX', math.max(math.ceil((new - now) / 1000), 1))
    end
  end
end
return 1
";

/// The scripts a store runs.
pub(super) struct Scripts {
    pub(super) decide: ::redis::Script,
    refund: ::redis::Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            decide: ::redis::Script::new(SCRIPT),
            refund: ::redis::Script::new(REFUND),
        }
    }
}

/// One key of a decision: its name, the script's four numbers, its hash tag and what an
/// admission moves its TAT by.
struct Entry {
    name: String,
    args: [u64; 4],
    tag: u64,
    moved_us: u64,
}

impl RedisStore {
    /// The decision for `charges` in Redis, within the time budget, as the decision script's
    /// reply `{admitted, wait₁, tat₁ − now, …}` over the charges that have a key.
    ///
    /// On one server (or a Sentinel-named primary) that is one script call. On a Redis Cluster
    /// the keys are grouped by hash tag (one caller's keys share one, see
    /// [`key_name`](Self::key_name)), each group one atomic call on its slot's primary; when
    /// the request's keys span several groups (limits on different callers, or a global limit)
    /// the calls run at once and, if any refuses, the groups that admitted are refunded, so a
    /// refused request charges nothing there either (it only held those cells for one round
    /// trip, which can refuse, never admit, a concurrent request).
    pub(super) async fn eval(
        &self,
        charges: &[Charge],
        params: &[Params],
    ) -> Result<Vec<i64>, Failure> {
        let mut entries = Vec::with_capacity(charges.len());
        for charge in charges {
            let (Some(key), Some(p)) = (charge.key, params.get(usize::from(charge.limit))) else {
                continue;
            };
            let g = if charge.overflow {
                &p.overflow
            } else {
                &p.main
            };
            entries.push(Entry {
                name: self.key_name(key),
                args: [g.interval_us, g.tolerance_us, charge.weight, g.burst],
                tag: key.0,
                moved_us: charge.weight.saturating_mul(g.interval_us),
            });
        }
        let cluster = self.inner.link.kind() == "cluster";
        let mut groups: Vec<(u64, Vec<usize>)> = Vec::with_capacity(1);
        for (n, entry) in entries.iter().enumerate() {
            let tag = if cluster { entry.tag } else { 0 };
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, members)) => members.push(n),
                None => groups.push((tag, vec![n])),
            }
        }
        self.inner
            .stats
            .round_trips
            .fetch_add(groups.len().max(1) as u64, Ordering::Relaxed);
        let attempt = || async {
            let conn = self.connection().await?;
            match groups.as_slice() {
                [] | [_] => {
                    let all: Vec<usize> = (0..entries.len()).collect();
                    self.call(conn, &entries, &all).await
                }
                _ => self.across_slots(conn, &entries, &groups).await,
            }
        };
        let work = async {
            match attempt().await {
                // With Sentinel, a failure on a connection old enough may mean the primary
                // moved: ask the sentinels again and retry once, within the same budget, so
                // the first request after a failover is decided by the new primary.
                Err(e) if self.inner.link.after_failure(Some(&e)) && self.inner.link.relooks() => {
                    bump(&self.inner.stats.round_trips);
                    attempt().await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.inner.link.after_failure(Some(&e));
                let reason = connect::explain(&e);
                tracing::debug!(redis = %self.inner.display_url, error = %reason, "rate-limit store: Redis call failed");
                Err(Failure::Error(reason))
            }
            Err(_) => {
                self.inner.link.after_failure(None);
                Err(Failure::Timeout)
            }
        }
    }

    /// One atomic decision script over `entries[members]`.
    async fn call(
        &self,
        mut conn: Conn,
        entries: &[Entry],
        members: &[usize],
    ) -> Result<Vec<i64>, ::redis::RedisError> {
        let mut call = self.inner.scripts.decide.prepare_invoke();
        for e in members.iter().filter_map(|n| entries.get(*n)) {
            call.key(&e.name)
                .arg(e.args[0])
                .arg(e.args[1])
                .arg(e.args[2])
                .arg(e.args[3]);
        }
        call.invoke_async(&mut conn).await
    }

    /// One call per group at once, the replies merged in the charges' order; the groups that
    /// admitted are refunded when another refused or failed.
    async fn across_slots(
        &self,
        conn: Conn,
        entries: &[Entry],
        groups: &[(u64, Vec<usize>)],
    ) -> Result<Vec<i64>, ::redis::RedisError> {
        let replies = futures_util::future::join_all(
            groups
                .iter()
                .map(|(_, members)| self.call(conn.clone(), entries, members)),
        )
        .await;
        let mut out = vec![0i64; 1 + 2 * entries.len()];
        let mut admitted = true;
        let mut failed = None;
        let mut charged = Vec::new();
        for ((_, members), reply) in groups.iter().zip(replies) {
            match reply {
                Ok(reply) => {
                    if reply.first().copied() == Some(1) {
                        charged.push(members);
                    } else {
                        admitted = false;
                    }
                    for (j, n) in members.iter().enumerate() {
                        for k in 1..=2 {
                            if let (Some(slot), Some(v)) =
                                (out.get_mut(2 * n + k), reply.get(2 * j + k))
                            {
                                *slot = *v;
                            }
                        }
                    }
                }
                Err(e) => {
                    admitted = false;
                    failed.get_or_insert(e);
                }
            }
        }
        if !admitted {
            for members in charged {
                bump(&self.inner.stats.round_trips);
                let mut call = self.inner.scripts.refund.prepare_invoke();
                for e in members.iter().filter_map(|n| entries.get(*n)) {
                    call.key(&e.name).arg(e.moved_us);
                }
                if let Err(e) = call.invoke_async::<i64>(&mut conn.clone()).await {
                    // The cells come back by themselves as the keys' TATs pass.
                    tracing::debug!(redis = %self.inner.display_url, error = %connect::explain(&e), "rate-limit store: refund failed");
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(first) = out.first_mut() {
            *first = i64::from(admitted);
        }
        Ok(out)
    }
}
