//! The in-memory backend: GCRA state per tracked key, a hard cap on keys, amortized eviction
//! on the request path, and, once the store is full, buckets per network prefix and then the
//! overflow bucket.
//!
//! # Why not governor's keyed store
//!
//! `governor`'s keyed limiters keep a `DashMap<K, AtomicU64>` that grows with every distinct key
//! and is only pruned by a full scan the user must schedule (`retain_recent`, governor #171); it
//! has no bound and nowhere to put a key once a bound is reached. Its quota constructors also
//! round the emission interval *down* (so a window can admit one request more than the quota).
//! The GCRA itself is a few lines of integer arithmetic ([`crate::quota`]); the store is where
//! the work is, so this crate owns both.
//!
//! # Layout
//!
//! A power-of-two number of shards (up to 64), each a `Mutex` around an insertion-ordered map
//! (`indexmap`) from a 128-bit keyed digest to the key's TAT, hashed by the digest itself. The
//! critical section is one lookup and a few integer operations; a `DashMap` would need the same
//! shard lock (read) plus a CAS, and could not be swept incrementally.
//!
//! # Bound and eviction
//!
//! Each shard holds at most its share of `max_keys`; the shares sum to `max_keys` exactly
//! (keys spread unevenly over shards, so a store fed exactly `max_keys` distinct keys tracks
//! about 99.7 % of them at 1 M keys and counts the rest in the fallback buckets). An entry whose
//! TAT is not after `now` describes a full bucket — exactly what an unseen key gets — so
//! evicting it changes no decision. Eviction is amortized on the request path: each insert first
//! examines the next 4 entries at the shard's cursor (removing idle ones), and a shard at its cap
//! examines up to 64 more. A key that still finds its shard full is not tracked: it is counted
//! in a fallback bucket (below). So a flood of distinct keys costs O(1) work per request, never
//! grows memory past the cap, and is still limited, while keys already tracked keep their own
//! buckets.
//!
//! # Key flood: prefix buckets, then the overflow bucket
//!
//! A spray of addresses (a botnet, many IPv6 /56s, spoofed forwarding headers behind a
//! misconfigured proxy) fills the store; if every new key then shared one bucket, the spray
//! would throttle every new legitimate client too. So a new key that finds the store full is
//! charged to the bucket of its **network prefix** — IPv4 /24, IPv6 /48 (of the address the
//! resolver reports) — or, for a key chosen by principal, of its **principal kind**
//! (`api_key`, `jwt`, ...). Those buckets live in a second bounded store of their own, the
//! prefix table ([`RateLimitLayerBuilder::max_prefixes`](crate::RateLimitLayerBuilder::max_prefixes),
//! default [`DEFAULT_MAX_PREFIXES`]), with the same sharding, cap and idle eviction. Only when the
//! prefix table is full too (or the key has no prefix: global, class, method or tool keys) is the
//! key charged to the limit's single overflow bucket. A flood from one prefix then exhausts
//! that prefix's bucket and nobody else's, as long as the table has room; spraying across
//! more prefixes than the table holds falls back to the shared bucket, as before. Prefix and
//! overflow buckets run at the limit's overflow quota ([`Limit::overflow_quota`](crate::Limit::overflow_quota),
//! by default the limit's own), are shared by every key of all limits' rules for that prefix
//! (the class, method and tool are not part of a prefix key), and are reported as `overflow` in
//! [`RateLimitOutcome`](mcp_security_core::RateLimitOutcome).
//!
//! # Memory
//!
//! Hard-bounded: at most `max_keys + max_prefixes` entries, plus one overflow bucket (8 bytes)
//! per limit. A tracked key costs about 52 bytes (the `ratelimit` bench measures it with a
//! counting allocator at 1 M keys; governor's keyed store: 69 bytes): a 32-byte entry (digest,
//! TAT, map hash) plus the index table; a prefix entry costs the same. Shards grow by doubling,
//! reserved exactly, never past their share. With the defaults (100 000 keys, 4 096 prefixes)
//! the bound is about 5.4 MB per layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use indexmap::IndexMap;

use std::hash::RandomState;

use crate::backend::sealed::Spec;
use crate::decision::{Charge, Counted, Decision, Report, Small};
use crate::key::{PassThrough, StoreKey};
use crate::quota::{Gcra, ceil_secs};

/// The default size of the prefix table: buckets for this many network prefixes (or principal
/// kinds) once the key store is full.
pub const DEFAULT_MAX_PREFIXES: usize = 4096;

/// Entries examined at the cursor on every insert.
pub(crate) const SWEEP_STEP: usize = 4;
/// Further entries examined when a shard is full.
pub(crate) const SWEEP_FULL: usize = 64;
const MAX_SHARDS: usize = 64;
/// Keys per shard below which fewer shards are used.
const KEYS_PER_SHARD_HINT: usize = 256;

type Map = IndexMap<StoreKey, u64, std::hash::BuildHasherDefault<PassThrough>>;

struct ShardMap {
    map: Map,
    cap: usize,
    cursor: usize,
}

impl ShardMap {
    /// Make room for one more entry: double, but never past the cap, and reserve exactly (left
    /// to itself, `IndexMap` grows its entries to its index table's capacity, about half again
    /// the memory per key).
    fn grow(&mut self) {
        let len = self.map.len();
        if len < self.map.capacity() {
            return;
        }
        let extra = len.max(8).min(self.cap.saturating_sub(len)).max(1);
        self.map.reserve_exact(extra);
    }

    /// Examine up to `budget` entries from the cursor, removing those idle at `now`.
    fn sweep(&mut self, now: u64, budget: usize) {
        for _ in 0..budget {
            if self.map.is_empty() {
                self.cursor = 0;
                return;
            }
            if self.cursor >= self.map.len() {
                self.cursor = 0;
            }
            let idle = self
                .map
                .get_index(self.cursor)
                .is_some_and(|(_, tat)| *tat <= now);
            if idle {
                // The last entry moves into the hole; it is examined next.
                self.map.swap_remove_index(self.cursor);
            } else {
                self.cursor += 1;
            }
        }
    }
}

/// Cache-line aligned so shards do not share lines.
#[repr(align(128))]
struct Shard(Mutex<ShardMap>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardMap> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outcome of one [`KeyStore::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Admitted; the TAT moved from `before` to `after`.
    Admitted { before: u64, after: u64 },
    /// Refused; `wait` nanoseconds until it would conform, `tat` the key's current TAT.
    Denied { wait: u64, tat: u64 },
    /// A new key, and its shard is full even after sweeping: use the overflow bucket.
    Full,
}

/// Per-key GCRA state with a hard bound on tracked keys; see the [module docs](self).
pub(crate) struct KeyStore {
    shards: Box<[Shard]>,
    mask: usize,
    max_keys: usize,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store tracking at most `max_keys` keys (at least 1).
    pub(crate) fn new(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let n = (max_keys / KEYS_PER_SHARD_HINT)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let (base, extra) = (max_keys / n, max_keys % n);
        let shards = (0..n)
            .map(|i| {
                Shard(Mutex::new(ShardMap {
                    map: Map::default(),
                    cap: base + usize::from(i < extra),
                    cursor: 0,
                }))
            })
            .collect();
        KeyStore {
            shards,
            mask: n - 1,
            max_keys,
        }
    }

    fn shard(&self, key: StoreKey) -> &Shard {
        // The second half of the digest picks the shard; the first half the map bucket.
        let index = (key.1 as usize) & self.mask;
        &self.shards[index]
    }

    /// Charge `weight` cells to `key` at `now`.
    pub(crate) fn acquire(&self, key: StoreKey, gcra: &Gcra, weight: u64, now: u64) -> Acquired {
        let mut shard = self.shard(key).lock();
        if let Some(tat) = shard.map.get_mut(&key) {
            let before = *tat;
            return match gcra.check(before, now, weight) {
                Ok(after) => {
                    *tat = after;
                    Acquired::Admitted { before, after }
                }
                Err(wait) => Acquired::Denied { wait, tat: before },
            };
        }
        match gcra.check(0, now, weight) {
            Err(wait) => Acquired::Denied { wait, tat: 0 },
            Ok(after) => {
                shard.sweep(now, SWEEP_STEP);
                if shard.map.len() >= shard.cap {
                    shard.sweep(now, SWEEP_FULL);
                    if shard.map.len() >= shard.cap {
                        return Acquired::Full;
                    }
                }
                shard.grow();
                shard.map.insert(key, after);
                Acquired::Admitted { before: 0, after }
            }
        }
    }

    /// The TAT of a tracked key.
    pub(crate) fn tat(&self, key: StoreKey) -> Option<u64> {
        self.shard(key).lock().map.get(&key).copied()
    }

    /// Undo an admission that a later limit refused, if nothing else touched the key since
    /// (otherwise keep the charge: refunding after an interleaved update could give away a cell
    /// the bound does not allow).
    pub(crate) fn refund(&self, key: StoreKey, before: u64, after: u64) {
        let mut shard = self.shard(key).lock();
        if let Some(tat) = shard.map.get_mut(&key)
            && *tat == after
        {
            *tat = before;
        }
    }

    /// Keys tracked now (takes every shard lock in turn; for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }
}

/// One GCRA state shared by every key a limit could not track.
#[derive(Debug, Default)]
pub(crate) struct OverflowBucket {
    tat: AtomicU64,
}

impl OverflowBucket {
    pub(crate) fn acquire(&self, gcra: &Gcra, weight: u64, now: u64) -> Acquired {
        let mut before = self.tat.load(Ordering::Acquire);
        loop {
            match gcra.check(before, now, weight) {
                Err(wait) => return Acquired::Denied { wait, tat: before },
                Ok(after) => match self.tat.compare_exchange_weak(
                    before,
                    after,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Acquired::Admitted { before, after },
                    Err(current) => before = current,
                },
            }
        }
    }

    pub(crate) fn tat(&self) -> u64 {
        self.tat.load(Ordering::Acquire)
    }

    pub(crate) fn refund(&self, before: u64, after: u64) {
        let _ = self
            .tat
            .compare_exchange(after, before, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The GCRA state a limit is counted in besides its tracked keys.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) gcra: Gcra,
    pub(crate) overflow_gcra: Gcra,
    overflow: OverflowBucket,
}

impl Bucket {
    pub(crate) fn new(gcra: Gcra, overflow_gcra: Gcra) -> Self {
        Bucket {
            gcra,
            overflow_gcra,
            overflow: OverflowBucket::default(),
        }
    }

    fn gcra(&self, counted: Counted) -> &Gcra {
        if counted.shared() {
            &self.overflow_gcra
        } else {
            &self.gcra
        }
    }
}

/// An admitted charge, for refunds and the report.
#[derive(Debug, Clone, Copy, Default)]
struct Applied {
    limit: u16,
    /// The tracked key or prefix key charged (`None`: the overflow bucket).
    key: Option<StoreKey>,
    counted: Counted,
    before: u64,
    after: u64,
}

/// The in-memory backend: the bounded key store, the prefix table and each limit's overflow
/// bucket; see the [module docs](self). Built by
/// [`RateLimitLayerBuilder::build`](crate::RateLimitLayerBuilder::build); it is the default
/// backend of [`RateLimitLayer`](crate::RateLimitLayer).
pub struct Memory {
    store: KeyStore,
    /// `None` when the prefix table is off (`max_prefixes(0)`).
    prefixes: Option<KeyStore>,
    prefix_state: RandomState,
    /// One per limit, in the layer's order.
    buckets: Box<[Bucket]>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("max_keys", &self.store.max_keys())
            .field("max_prefixes", &self.max_prefixes())
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// A store for `buckets.len()` limits: at most `max_keys` keys and `max_prefixes` prefix
    /// buckets (0: no prefix table).
    pub(crate) fn new(buckets: Vec<Bucket>, max_keys: usize, max_prefixes: usize) -> Self {
        Memory {
            store: KeyStore::new(max_keys),
            prefixes: (max_prefixes > 0).then(|| KeyStore::new(max_prefixes)),
            prefix_state: RandomState::new(),
            buckets: buckets.into_boxed_slice(),
        }
    }

    /// A store for the limits of `spec`, each at its own and overflow quotas.
    pub(crate) fn from_spec(spec: &Spec<'_>) -> Self {
        let buckets = spec
            .limits
            .iter()
            .map(|l| Bucket::new(l.gcra, l.overflow_gcra))
            .collect();
        Memory::new(buckets, spec.max_keys, spec.max_prefixes)
    }

    /// Keys tracked now (takes every shard lock in turn).
    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.store.max_keys()
    }

    /// Prefix buckets held now.
    pub(crate) fn prefixes_len(&self) -> usize {
        self.prefixes.as_ref().map_or(0, KeyStore::len)
    }

    pub(crate) fn max_prefixes(&self) -> usize {
        self.prefixes.as_ref().map_or(0, KeyStore::max_keys)
    }

    /// Charge one request's `charges` at `now`, all or nothing: if one refuses, the charges
    /// already made are refunded (unless another request touched that bucket in between) and
    /// the longest wait among the refusing charges is reported; otherwise the tightest limit.
    pub(crate) fn apply(&self, charges: &[Charge], now: u64, degraded: bool) -> Decision {
        let mut applied = Small::<Applied, 4>::new();
        for (n, charge) in charges.iter().enumerate() {
            let Some(bucket) = self.buckets.get(usize::from(charge.limit)) else {
                continue;
            };
            let (result, counted, key) = self.acquire(bucket, charge, now);
            match result {
                Acquired::Admitted { before, after } => applied.push(Applied {
                    limit: charge.limit,
                    key,
                    counted,
                    before,
                    after,
                }),
                Acquired::Denied { wait, tat } => {
                    self.refund(applied.as_slice());
                    let mut worst = (
                        wait,
                        Report {
                            limit: charge.limit,
                            remaining: 0,
                            reset: Gcra::reset(tat, now),
                            overflow: counted.shared(),
                            prefix: counted == Counted::Prefix,
                            burst: bucket.gcra(counted).burst(),
                            degraded,
                            at: now,
                        },
                    );
                    for rest in charges.iter().skip(n + 1) {
                        if let Some((wait, report)) = self.peek(rest, now, degraded)
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
            let Some(bucket) = self.buckets.get(usize::from(a.limit)) else {
                continue;
            };
            let gcra = bucket.gcra(a.counted);
            let report = Report {
                limit: a.limit,
                remaining: gcra.remaining(a.after, now),
                reset: Gcra::reset(a.after, now),
                overflow: a.counted.shared(),
                prefix: a.counted == Counted::Prefix,
                burst: gcra.burst(),
                degraded,
                at: now,
            };
            if report.tighter(tightest.as_ref()) {
                tightest = Some(report);
            }
        }
        match tightest {
            Some(report) => Decision::Allowed(report),
            None => Decision::NotLimited,
        }
    }

    /// Charge one charge: its own bucket if tracked (or trackable), else its prefix bucket,
    /// else the overflow bucket.
    #[inline]
    fn acquire(
        &self,
        bucket: &Bucket,
        charge: &Charge,
        now: u64,
    ) -> (Acquired, Counted, Option<StoreKey>) {
        let key = charge.key.filter(|_| !charge.overflow);
        if let Some(key) = key {
            match self.store.acquire(key, &bucket.gcra, charge.weight, now) {
                Acquired::Full => {}
                result => return (result, Counted::Own, Some(key)),
            }
            if let (Some(prefixes), Some(pkey)) = (
                &self.prefixes,
                charge.prefix.key(&self.prefix_state, charge.limit),
            ) {
                match prefixes.acquire(pkey, &bucket.overflow_gcra, charge.weight, now) {
                    Acquired::Full => {}
                    result => return (result, Counted::Prefix, Some(pkey)),
                }
            }
        }
        let result = bucket
            .overflow
            .acquire(&bucket.overflow_gcra, charge.weight, now);
        (result, Counted::Overflow, None)
    }

    /// The wait of a charge that was not attempted, if it would be refused.
    fn peek(&self, charge: &Charge, now: u64, degraded: bool) -> Option<(u64, Report)> {
        let bucket = self.buckets.get(usize::from(charge.limit))?;
        let (tat, gcra, counted) = match charge.key.filter(|_| !charge.overflow) {
            Some(key) => (self.store.tat(key).unwrap_or(0), &bucket.gcra, Counted::Own),
            None => (
                bucket.overflow.tat(),
                &bucket.overflow_gcra,
                Counted::Overflow,
            ),
        };
        let wait = gcra.check(tat, now, charge.weight).err()?;
        Some((
            wait,
            Report {
                limit: charge.limit,
                remaining: 0,
                reset: Gcra::reset(tat, now),
                overflow: counted.shared(),
                prefix: false,
                burst: gcra.burst(),
                degraded,
                at: now,
            },
        ))
    }

    fn refund(&self, applied: &[Applied]) {
        for a in applied {
            let Some(bucket) = self.buckets.get(usize::from(a.limit)) else {
                continue;
            };
            match (a.counted, a.key) {
                (Counted::Own, Some(key)) => self.store.refund(key, a.before, a.after),
                (Counted::Prefix, Some(key)) => {
                    if let Some(prefixes) = &self.prefixes {
                        prefixes.refund(key, a.before, a.after);
                    }
                }
                _ => bucket.overflow.refund(a.before, a.after),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;

    fn gcra(q: Quota) -> Gcra {
        q.gcra("limit.t").unwrap()
    }

    fn key(i: u64) -> StoreKey {
        // Spread like real digests.
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        StoreKey(h, h.rotate_left(29) ^ i)
    }

    #[test]
    fn shares_sum_to_max_keys() {
        for max in [1, 2, 63, 255, 256, 1000, 4097, 100_000, 1_000_003] {
            let s = KeyStore::new(max);
            assert!(s.shards.len().is_power_of_two());
            assert!(s.shards.len() <= MAX_SHARDS);
            let total: usize = s.shards.iter().map(|sh| sh.lock().cap).sum();
            assert_eq!(total, max);
            assert!(s.shards.iter().all(|sh| sh.lock().cap >= 1));
        }
        assert_eq!(KeyStore::new(0).max_keys(), 1);
    }

    #[test]
    fn full_store_overflows_then_evicts_idle_keys() {
        let g = gcra(Quota::per_second(10));
        let store = KeyStore::new(100);
        let mut tracked = 0;
        let mut full = 0;
        for i in 0..1000 {
            match store.acquire(key(i), &g, 1, 0) {
                Acquired::Admitted { .. } => tracked += 1,
                Acquired::Full => full += 1,
                Acquired::Denied { .. } => panic!("fresh key refused"),
            }
        }
        assert_eq!(tracked, 100);
        assert_eq!(full, 900);
        assert_eq!(store.len(), 100);
        // A tracked key keeps its own bucket (burst 10, one used).
        for _ in 0..9 {
            assert!(matches!(
                store.acquire(key(0), &g, 1, 0),
                Acquired::Admitted { .. }
            ));
        }
        assert!(matches!(
            store.acquire(key(0), &g, 1, 0),
            Acquired::Denied { .. }
        ));
        // Every bucket is full again after 1 s: new keys displace idle ones.
        let later = 2_000_000_000;
        let mut admitted_new = 0;
        for i in 1000..1100 {
            if matches!(
                store.acquire(key(i), &g, 1, later),
                Acquired::Admitted { .. }
            ) {
                admitted_new += 1;
            }
            assert!(store.len() <= 100);
        }
        assert_eq!(admitted_new, 100);
    }

    #[test]
    fn refund_only_when_untouched() {
        let g = gcra(Quota::per_second(1).with_burst(2));
        let store = KeyStore::new(10);
        let Acquired::Admitted { before, after } = store.acquire(key(1), &g, 1, 0) else {
            panic!()
        };
        store.refund(key(1), before, after);
        assert_eq!(store.tat(key(1)), Some(0));
        let Acquired::Admitted { before, after } = store.acquire(key(1), &g, 1, 0) else {
            panic!()
        };
        assert!(matches!(
            store.acquire(key(1), &g, 1, 0),
            Acquired::Admitted { .. }
        ));
        store.refund(key(1), before, after); // interleaved: kept
        assert!(matches!(
            store.acquire(key(1), &g, 1, 0),
            Acquired::Denied {
                wait: 1_000_000_000,
                ..
            }
        ));
    }

    #[test]
    fn refused_new_keys_are_not_inserted() {
        let g = gcra(Quota::per_second(1).with_burst(2));
        let store = KeyStore::new(10);
        assert!(matches!(
            store.acquire(key(1), &g, 3, 0),
            Acquired::Denied { .. }
        ));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn overflow_bucket_is_a_gcra_state() {
        let g = gcra(Quota::per_second(10).with_burst(2));
        let b = OverflowBucket::default();
        let Acquired::Admitted { before, after } = b.acquire(&g, 1, 0) else {
            panic!()
        };
        b.refund(before, after);
        assert!(matches!(b.acquire(&g, 1, 0), Acquired::Admitted { .. }));
        assert!(matches!(b.acquire(&g, 1, 0), Acquired::Admitted { .. }));
        assert_eq!(g.check(b.tat(), 0, 1), Err(100_000_000));
        assert!(matches!(
            b.acquire(&g, 1, 0),
            Acquired::Denied {
                wait: 100_000_000,
                ..
            }
        ));
    }
}
