//! The local deny cache: keys Redis refused, answered without a round trip until they would
//! conform again.

use super::*;

type DenyMap = IndexMap<StoreKey, (u64, u64), BuildHasherDefault<PassThrough>>;

/// Keys Redis refused, until when (local monotonic nanoseconds), bounded.
pub(super) struct DenyCache {
    pub(super) cap: usize,
    map: Mutex<(DenyMap, usize)>,
}

impl DenyCache {
    pub(super) fn new(cap: usize) -> Self {
        DenyCache {
            cap,
            map: Mutex::new((DenyMap::default(), 0)),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }

    /// `(refused until, full at)` if `key` is refused at `now`.
    pub(super) fn get(&self, key: StoreKey, now: u64) -> Option<(u64, u64)> {
        let mut guard = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let (until, full) = *guard.0.get(&key)?;
        if until > now {
            Some((until, full))
        } else {
            guard.0.swap_remove(&key);
            None
        }
    }

    pub(super) fn insert(&self, key: StoreKey, until: u64, full: u64, now: u64) {
        if self.cap == 0 {
            return;
        }
        let mut guard = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, cursor) = &mut *guard;
        if map.len() >= self.cap && !map.contains_key(&key) {
            // Drop expired entries first; if none, the one at the cursor (forgetting a refusal
            // only costs a round trip).
            for _ in 0..16 {
                if map.is_empty() {
                    break;
                }
                if *cursor >= map.len() {
                    *cursor = 0;
                }
                let expired = map.get_index(*cursor).is_some_and(|(_, (u, _))| *u <= now);
                if expired {
                    map.swap_remove_index(*cursor);
                } else {
                    *cursor += 1;
                }
            }
            if map.len() >= self.cap {
                if *cursor >= map.len() {
                    *cursor = 0;
                }
                map.swap_remove_index(*cursor);
            }
        }
        map.insert(key, (until, full));
    }
}
