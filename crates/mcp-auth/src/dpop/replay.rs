//! The `jti` replay cache: every proof accepted is remembered until it could no longer be
//! accepted (its `iat` plus the acceptance window), so a captured proof cannot be played again.
//! Bounded: when a shard is full of live entries, new proofs are refused (fail closed) rather
//! than forgetting a live one, which would reopen the replay window.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

/// One shard: a proof's digest and the time after which it could no longer be accepted.
type Shard = Mutex<HashMap<[u8; 16], u64>>;

pub(super) struct ReplayCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    /// Mixed into every digest, so clients cannot choose `jti`s that all land in one shard and
    /// fill it (which would refuse every other client's proofs there).
    salt: [u8; 16],
}

/// Why a proof was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// The same key already signed a proof with this `jti` inside the window.
    Replayed,
    /// The cache holds as many live proofs as it may.
    Full,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let mut salt = [0u8; 16];
        // Without system randomness the shards are still correct, only predictable.
        let _ = getrandom::fill(&mut salt);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            salt,
        }
    }

    /// Record the proof `jti` of the key `jkt`, live until `expires` (Unix seconds).
    pub(super) fn record(&self, jkt: &str, jti: &str, expires: u64, now: u64) -> Result<(), Seen> {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update((jkt.len() as u64).to_be_bytes());
        hasher.update(jkt.as_bytes());
        hasher.update(jti.as_bytes());
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let mut seen = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&until) = seen.get(&key)
            && until >= now
        {
            return Err(Seen::Replayed);
        }
        if seen.len() >= self.per_shard {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.per_shard {
                return Err(Seen::Full);
            }
        }
        seen.insert(key, expires);
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}
