//! Where budgets are counted: the `BudgetStore` seam and [`MemoryBudgets`], the bounded
//! in-memory store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::decision::Small;
use crate::key::StoreKey;
use crate::quota::Gcra;

/// The default bound on principals whose budgets are tracked in memory.
pub const DEFAULT_MAX_PRINCIPALS: usize = 100_000;

const SHARDS: usize = 64;

/// One shard: principal → one TAT per budget (0: never charged).
type Shard = Mutex<HashMap<StoreKey, Box<[u64]>>>;

/// One budget's charge for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BudgetCharge {
    /// The budget's index in the layer.
    pub(crate) budget: u16,
    pub(crate) gcra: Gcra,
    pub(crate) cost: u64,
}

impl Default for BudgetCharge {
    fn default() -> Self {
        BudgetCharge {
            budget: 0,
            gcra: Gcra::UNIT,
            cost: 0,
        }
    }
}

/// What is left of one budget after an admission.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Left {
    pub(crate) budget: u16,
    pub(crate) cost: u64,
    /// Units that would still be admitted right now.
    pub(crate) remaining: u64,
    /// Nanoseconds until the budget is full.
    pub(crate) reset: u64,
}

/// A store's answer for one request's charges.
pub(crate) enum Spent {
    /// Every budget admitted its cost, now charged.
    Allowed(Small<Left, 2>),
    /// A budget refused (the one with the longest wait); nothing was charged.
    Refused {
        budget: u16,
        cost: u64,
        /// Nanoseconds until the cost fits (at least 1).
        wait: u64,
    },
}

/// The seam for where budgets live: [`MemoryBudgets`] in this process; a shared store (Redis)
/// implements the same all-or-nothing charge of every budget of one principal (see the
/// [module docs](super) for its key plan).
pub(crate) trait BudgetStore: fmt::Debug + Send + Sync + 'static {
    /// Charge `charges` (every budget of one request, each at most once) to `principal` at
    /// `now` (monotonic nanoseconds), all or nothing. `slots` is the number of budgets of the
    /// layer.
    fn spend(&self, principal: StoreKey, slots: usize, charges: &[BudgetCharge], now: u64)
    -> Spent;

    /// Principals tracked now.
    fn len(&self) -> usize;
}

/// Budgets in memory: one entry per principal holding one GCRA state (TAT) per budget, in
/// `SHARDS` maps each bounded to its share of `max_principals`; see the
/// [module docs](super#where-the-units-live-budgetstore) for what a full shard evicts.
pub(crate) struct MemoryBudgets {
    shards: Box<[Shard]>,
    per_shard: usize,
    max_principals: usize,
}

impl fmt::Debug for MemoryBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudgets")
            .field("max_principals", &self.max_principals)
            .finish_non_exhaustive()
    }
}

impl MemoryBudgets {
    /// A store for at most `max_principals` principals (at least one per shard).
    pub(crate) fn new(max_principals: usize) -> Self {
        let per_shard = max_principals.div_ceil(SHARDS).max(1);
        MemoryBudgets {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            max_principals,
        }
    }

    fn shard(&self, key: StoreKey) -> &Shard {
        // The second half picks the shard; the map hashes the first.
        let index = usize::try_from(key.1 % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }
}

impl BudgetStore for MemoryBudgets {
    fn spend(
        &self,
        principal: StoreKey,
        slots: usize,
        charges: &[BudgetCharge],
        now: u64,
    ) -> Spent {
        let mut map = self
            .shard(principal)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut tats = map.get_mut(&principal);
        let tat_of = |tats: &Option<&mut Box<[u64]>>, budget: u16| {
            tats.as_ref()
                .and_then(|t| t.get(usize::from(budget)))
                .copied()
                .unwrap_or(0)
        };
        let mut next: Small<(u16, u64), 2> = Small::new();
        let mut refused: Option<(u16, u64, u64)> = None;
        for c in charges {
            match c.gcra.check(tat_of(&tats, c.budget), now, c.cost) {
                Ok(tat) => next.push((c.budget, tat)),
                Err(wait) => {
                    if refused.is_none_or(|(_, _, w)| wait > w) {
                        refused = Some((c.budget, c.cost, wait));
                    }
                }
            }
        }
        if let Some((budget, cost, wait)) = refused {
            return Spent::Refused { budget, cost, wait };
        }
        let mut left = Small::new();
        let mut commit = |tats: &mut [u64]| {
            for (&(budget, tat), c) in next.as_slice().iter().zip(charges) {
                if let Some(slot) = tats.get_mut(usize::from(budget)) {
                    *slot = tat;
                }
                left.push(Left {
                    budget,
                    cost: c.cost,
                    remaining: c.gcra.remaining(tat, now),
                    reset: Gcra::reset(tat, now),
                });
            }
        };
        if let Some(tats) = tats.as_mut() {
            commit(tats);
            return Spent::Allowed(left);
        }
        {
            // A new principal: make room if the shard is full.
            if map.len() >= self.per_shard {
                // Full budgets hold nothing a fresh entry would not: drop those first.
                map.retain(|_, tats| tats.iter().any(|tat| *tat > now));
            }
            if map.len() >= self.per_shard {
                let closest = map
                    .iter()
                    .min_by_key(|(_, tats)| tats.iter().copied().max().unwrap_or(0))
                    .map(|(k, _)| *k);
                if let Some(victim) = closest {
                    map.remove(&victim);
                }
            }
            let mut tats = vec![0; slots].into_boxed_slice();
            commit(&mut tats);
            map.insert(principal, tats);
        }
        Spent::Allowed(left)
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
