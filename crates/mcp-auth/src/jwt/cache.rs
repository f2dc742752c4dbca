//! The verified-token cache: the [`Principal`] of a token that verified, keyed by the SHA-256 of
//! the whole token, so an agent that presents the same token for minutes pays for its signature
//! once.
//!
//! What keeps a cached verdict equal to a fresh one:
//!
//! - Only successful verifications are inserted; a refused token is verified again every time.
//! - The token's time claims are kept with the principal and checked again on every hit, with
//!   the verifier's leeway and lifetime limit, against the `now` of that call.
//! - An entry is used for at most the cache TTL after it was verified, and never after `exp`.
//! - Each entry records the key generation of the verifier's JWKS source it was verified
//!   under; a refresh that changes the key set bumps the generation, which flushes the cache and
//!   makes every older entry a miss. HS256 secrets are fixed for a verifier's life.
//!
//! Bounded: a fixed number of shards, each a `Mutex<HashMap>` with a capacity. A full shard
//! first drops its dead entries (past `exp` or the TTL, or of an older key generation); if that
//! frees too little, it drops an arbitrary eighth of itself. Since an entry is inserted only
//! after a successful signature check, a flood of distinct tokens can evict no faster than it
//! can be verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mcp_security_core::Principal;
use sha2::{Digest as _, Sha256};

use super::TokenTimes;

/// The most shards a cache is split into.
const MAX_SHARDS: usize = 16;

/// A token's cache key: the SHA-256 of the whole token.
pub(super) type TokenDigest = [u8; 32];

/// One cached verdict.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) principal: Principal,
    pub(super) times: TokenTimes,
    /// Since the Unix epoch: when the entry stops being served (the cache TTL after it was
    /// verified).
    fresh_until: Duration,
    /// Since the Unix epoch: when the entry is dead for the sweep (the earlier of `exp` plus the
    /// leeway and `fresh_until`).
    dead_at: Duration,
    generation: u64,
}

type Shard = Mutex<HashMap<TokenDigest, Entry>>;

pub(super) struct TokenCache {
    shards: Box<[Shard]>,
    /// Every shard holds this many entries; the first `extra` one more.
    per_shard: usize,
    extra: usize,
    ttl: Duration,
    /// The verifier's leeway: an entry is dead once `exp` plus this has passed.
    leeway: Duration,
    /// The key generation the cache was last flushed for.
    generation: AtomicU64,
}

impl TokenCache {
    /// A cache of at most `capacity` entries (at least one), each served for at most `ttl`.
    pub(super) fn new(capacity: usize, ttl: Duration, leeway: Duration) -> Self {
        let capacity = capacity.max(1);
        let shards = capacity.min(MAX_SHARDS);
        TokenCache {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity / shards,
            extra: capacity % shards,
            ttl,
            leeway,
            generation: AtomicU64::new(0),
        }
    }

    /// The cache key of `token`.
    pub(super) fn digest(token: &str) -> TokenDigest {
        let mut key = [0u8; 32];
        key.copy_from_slice(&Sha256::digest(token.as_bytes()));
        key
    }

    /// The shard of `key`, and how many entries it may hold.
    fn shard(&self, key: &TokenDigest) -> (&Shard, usize) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key[..8]);
        // `shards.len()` is at most 16, so the remainder fits any usize.
        let index = (u64::from_le_bytes(head) % self.shards.len() as u64) as usize;
        let capacity = self.per_shard + usize::from(index < self.extra);
        (&self.shards[index], capacity)
    }

    /// The entry for `key`, if it was verified under key generation `generation` and is within
    /// the TTL at `now`. A stale entry is removed. The caller re-checks the time claims.
    pub(super) fn get(&self, key: &TokenDigest, generation: u64, now: Duration) -> Option<Entry> {
        self.flush_if_stale(generation);
        let mut shard = self
            .shard(key)
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = shard.get(key)?;
        if entry.generation == generation && now < entry.fresh_until {
            return Some(entry.clone());
        }
        shard.remove(key);
        None
    }

    /// Forget `key` (its token has expired).
    pub(super) fn remove(&self, key: &TokenDigest) {
        self.shard(key)
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Remember a successful verification made at `now` under key generation `generation` (the
    /// caller checks that the keys did not change while it verified). Nothing is inserted when
    /// the entry would already be dead.
    pub(super) fn insert(
        &self,
        key: TokenDigest,
        principal: Principal,
        times: TokenTimes,
        generation: u64,
        now: Duration,
    ) {
        let fresh_until = now.saturating_add(self.ttl);
        let dead_at = times.exp.saturating_add(self.leeway).min(fresh_until);
        if dead_at <= now {
            return;
        }
        let (shard, capacity) = self.shard(&key);
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= capacity && !shard.contains_key(&key) {
            make_room(&mut shard, capacity, generation, now);
        }
        shard.insert(
            key,
            Entry {
                principal,
                times,
                fresh_until,
                dead_at,
                generation,
            },
        );
    }

    /// Empty every shard once the key generation has moved on from the one last flushed for.
    fn flush_if_stale(&self, current: u64) {
        let seen = self.generation.load(Ordering::Acquire);
        // Generations only grow; a caller that read an older one must not flush again.
        if current <= seen {
            return;
        }
        if self
            .generation
            .compare_exchange(seen, current, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            for shard in &self.shards {
                shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
            }
        }
    }

    /// How many entries are held (dead ones included, until they are swept).
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// The most entries held at once.
    pub(super) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len() + self.extra
    }

    /// How long an entry is served at most.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Drop the dead entries of a full shard; if fewer than an eighth of it (at least one) went,
/// drop arbitrary live ones up to that count, so the next inserts find room without a scan.
fn make_room(
    shard: &mut HashMap<TokenDigest, Entry>,
    per_shard: usize,
    generation: u64,
    now: Duration,
) {
    shard.retain(|_, e| e.generation == generation && now < e.dead_at);
    let target = per_shard.saturating_sub((per_shard / 8).max(1));
    let mut excess = shard.len().saturating_sub(target);
    if excess > 0 {
        shard.retain(|_, _| {
            if excess > 0 {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}
