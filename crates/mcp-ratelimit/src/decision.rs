//! The vocabulary between the engine and the backends: what a request charges ([`Charge`]),
//! what a limit reports ([`Report`]) and what was decided ([`Decision`]).
//!
//! A leaf module: it imports only [`crate::key`] and [`crate::quota`], so the engine, the
//! in-memory and the Redis backends can all speak it without importing one another.

use std::time::SystemTime;

use crate::key::{NetPrefix, StoreKey};

/// A charge of `weight` cells to one limit's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Charge {
    pub(crate) limit: u16,
    /// `None`: the limit's overflow bucket (in memory; no client address).
    pub(crate) key: Option<StoreKey>,
    pub(crate) weight: u64,
    /// The key is the limit's shared overflow key (Redis: requests without a client address).
    pub(crate) overflow: bool,
    /// Where a new key goes when the in-memory store is full: its network prefix or principal
    /// kind (see [`crate::backend::memory`]).
    pub(crate) prefix: NetPrefix,
}

/// Which bucket a charge was counted in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Counted {
    /// The key's own bucket.
    #[default]
    Own,
    /// The bucket of the key's network prefix or principal kind (the store was full).
    Prefix,
    /// The limit's single overflow bucket.
    Overflow,
}

impl Counted {
    pub(crate) fn shared(self) -> bool {
        self != Counted::Own
    }
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

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
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

/// The charges of one request.
pub(crate) type Charges = Small<Charge, 4>;

/// Sort and merge charges to the same key (a batch calling one tool twice costs 2 once).
pub(crate) fn merge(charges: &mut Charges) {
    let slice = charges.as_mut_slice();
    slice.sort_unstable_by_key(|c| (c.limit, c.key));
    let mut merged = Charges::new();
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

/// What a limit reports in headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub(crate) limit: u16,
    pub(crate) remaining: u64,
    /// Nanoseconds until the bucket is full.
    pub(crate) reset: u64,
    /// Counted in a shared bucket (a prefix bucket or the overflow bucket), not the key's own.
    pub(crate) overflow: bool,
    /// Counted in a network-prefix (or principal-kind) bucket.
    pub(crate) prefix: bool,
    /// The bucket's burst (`X-RateLimit-Limit`).
    pub(crate) burst: u64,
    /// Decided by the local fallback limiter because the shared store failed.
    pub(crate) degraded: bool,
    /// The local monotonic time of the decision.
    pub(crate) at: u64,
}

impl Report {
    /// Whether `self` is tighter than `than`: fewer remaining, or as many and a later reset.
    pub(crate) fn tighter(&self, than: Option<&Report>) -> bool {
        than.is_none_or(|t| {
            self.remaining < t.remaining || (self.remaining == t.remaining && self.reset > t.reset)
        })
    }
}

/// What the engine decided for a request.
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
    /// A banned client's credentialed request that no principal authenticated (ban scope
    /// `failed`): refused with the ban's answer.
    Held(Box<crate::engine::BanHold>),
    /// The shared store failed and the policy is fail-closed.
    #[cfg(feature = "redis")]
    Unavailable {
        retry_after: u64,
    },
}
