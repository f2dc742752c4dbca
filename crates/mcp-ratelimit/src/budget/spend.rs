//! [`Budgets`]: a layer's validated budgets and their store, charging one request; and the
//! headers and outcome of an admission ([`BudgetReport`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Response};
use mcp_security_core::{BudgetOutcome, McpCall, Principal};

use super::BudgetRt;
use super::store::{BudgetCharge, BudgetStore, Left, MemoryBudgets, Spent};
use crate::decision::Small;
use crate::headers::{HeaderBuf, RATELIMIT, RATELIMIT_POLICY};
use crate::key::{KeyHasher, KeyParts, KeySelector, Selected};
use crate::quota::ceil_secs;

/// A layer's budgets and where they are counted.
pub(crate) struct Budgets {
    pub(crate) list: Box<[BudgetRt]>,
    store: Box<dyn BudgetStore>,
    hasher: KeyHasher,
    /// Counted in Redis instead (the in-memory store is then the fail-open fallback).
    #[cfg(feature = "redis")]
    redis: Option<crate::backend::redis::RedisStore>,
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field(
                "budgets",
                &self.list.iter().map(|b| &*b.name).collect::<Vec<_>>(),
            )
            .field("store", &self.store)
            .finish()
    }
}

/// What [`Budgets::spend`] decided for a request with a principal and a cost.
pub(crate) enum Charged {
    Allowed(BudgetReport),
    Refused {
        budget: u16,
        cost: u64,
        /// Nanoseconds until the cost fits.
        wait: u64,
    },
    /// Redis failed and the failure policy is closed: `503`, as the limiter answers.
    #[cfg(feature = "redis")]
    Unavailable,
}

impl Budgets {
    pub(crate) fn new(list: Vec<BudgetRt>, max_principals: usize) -> Self {
        Budgets {
            list: list.into_boxed_slice(),
            store: Box::new(MemoryBudgets::new(max_principals)),
            hasher: KeyHasher::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Count in Redis (`None`: in memory).
    #[cfg(feature = "redis")]
    pub(crate) fn set_redis(&mut self, store: Option<crate::backend::redis::RedisStore>) {
        self.redis = store;
    }

    /// Whether the budgets are counted in Redis (charged by [`spend_remote`](Self::spend_remote)).
    #[cfg(feature = "redis")]
    pub(crate) fn is_remote(&self) -> bool {
        self.redis.is_some()
    }

    /// [`spend`](Self::spend) in Redis: one script call. When Redis fails, the store's failure
    /// policy applies: closed → [`Charged::Unavailable`]; open → the in-memory store.
    #[cfg(feature = "redis")]
    pub(crate) async fn spend_remote(&self, ext: &http::Extensions, now: u64) -> Option<Charged> {
        let Some(store) = &self.redis else {
            return self.spend(ext, now);
        };
        let principal = ext.get::<Principal>()?;
        let charges = self.charges(ext);
        if charges.as_slice().is_empty() {
            return None;
        }
        let names: Small<&str, 2> = {
            let mut names = Small::new();
            for b in &self.list {
                names.push(&*b.name);
            }
            names
        };
        match store
            .spend_budgets(principal, names.as_slice(), charges.as_slice())
            .await
        {
            Ok(Spent::Allowed(left)) => Some(Charged::Allowed(self.report(left))),
            Ok(Spent::Refused { budget, cost, wait }) => {
                Some(Charged::Refused { budget, cost, wait })
            }
            Err(e) => {
                tracing::debug!(error = %e, "budget store: Redis call failed");
                match store.failure_policy() {
                    crate::backend::redis::FailurePolicy::Open => self.spend(ext, now),
                    _ => Some(Charged::Unavailable),
                }
            }
        }
    }

    /// Each budget's cost for the request (those that cost something).
    fn charges(&self, ext: &http::Extensions) -> Small<BudgetCharge, 2> {
        let messages = ext.get::<McpCall>().map_or(&[][..], McpCall::messages);
        let mut charges: Small<BudgetCharge, 2> = Small::new();
        for (index, budget) in self.list.iter().enumerate() {
            let cost = budget.cost(messages);
            if cost > 0 {
                charges.push(BudgetCharge {
                    budget: u16::try_from(index).unwrap_or(u16::MAX),
                    gcra: budget.gcra,
                    cost,
                });
            }
        }
        charges
    }

    /// Principals tracked now.
    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    /// Charge the request's cost to its principal's budgets at `now`; `None` when there is no
    /// principal (nothing is ever charged without one) or the request costs nothing.
    pub(crate) fn spend(&self, ext: &http::Extensions, now: u64) -> Option<Charged> {
        let principal = ext.get::<Principal>()?;
        let charges = self.charges(ext);
        if charges.as_slice().is_empty() {
            return None;
        }
        let parts = KeyParts {
            principal: Some(principal),
            ..KeyParts::default()
        };
        let Selected::Key(key) = self
            .hasher
            .select(u16::MAX, KeySelector::principal(), &parts)
        else {
            return None;
        };
        Some(
            match self
                .store
                .spend(key, self.list.len(), charges.as_slice(), now)
            {
                Spent::Allowed(left) => Charged::Allowed(self.report(left)),
                Spent::Refused { budget, cost, wait } => Charged::Refused { budget, cost, wait },
            },
        )
    }

    fn report(&self, left: Small<Left, 2>) -> BudgetReport {
        let mut tightest: Option<(Left, &BudgetRt)> = None;
        for l in left.as_slice() {
            let Some(budget) = self.list.get(usize::from(l.budget)) else {
                continue;
            };
            if tightest.is_none_or(|(t, _)| l.remaining < t.remaining) {
                tightest = Some((*l, budget));
            }
        }
        let items: Arc<[(HeaderValue, &'static HeaderValue)]> = left
            .as_slice()
            .iter()
            .filter_map(|l| {
                let budget = self.list.get(usize::from(l.budget))?;
                // `"name";r=<remaining>;t=<seconds until full>`; names are validated.
                let mut buf = HeaderBuf::default();
                buf.push(b"\"");
                buf.push(budget.name.as_bytes());
                buf.push(b"\";r=");
                buf.push_u64(l.remaining);
                buf.push(b";t=");
                buf.push_u64(ceil_secs(l.reset));
                Some((buf.value()?, budget.policy_header))
            })
            .collect();
        BudgetReport {
            headers: BudgetHeaders(items),
            outcome: tightest.map(|(l, b)| BudgetOutcome::Allowed {
                policy: b.name.clone(),
                cost: l.cost,
                remaining: l.remaining,
            }),
        }
    }

    /// The name of budget `index`.
    pub(crate) fn name(&self, index: u16) -> Cow<'static, str> {
        self.list
            .get(usize::from(index))
            .map_or(Cow::Borrowed(""), |b| b.name.clone())
    }
}

/// The `RateLimit` / `RateLimit-Policy` items of an admission's budgets, kept in the response
/// extensions so an outer rate-limit layer that rewrites those headers puts them back.
#[derive(Debug, Clone)]
pub(crate) struct BudgetHeaders(Arc<[(HeaderValue, &'static HeaderValue)]>);

impl BudgetHeaders {
    /// Append the items to the response's `RateLimit` and `RateLimit-Policy` fields.
    pub(crate) fn append<B>(response: &mut Response<B>) {
        let Some(items) = response.extensions().get::<BudgetHeaders>().cloned() else {
            return;
        };
        let headers = response.headers_mut();
        for (ratelimit, policy) in items.0.iter() {
            headers.append(RATELIMIT, ratelimit.clone());
            headers.append(RATELIMIT_POLICY, (*policy).clone());
        }
    }
}

/// What an admission adds to the response: the budgets' header items (when the IETF headers
/// are on) and the tightest budget's outcome for the audit record.
#[derive(Debug)]
pub(crate) struct BudgetReport {
    headers: BudgetHeaders,
    pub(super) outcome: Option<BudgetOutcome>,
}

impl BudgetReport {
    /// Put the report into the response's extensions (the headers are appended by
    /// [`BudgetHeaders::append`]).
    pub(crate) fn insert<B>(self, response: &mut Response<B>, ietf: bool) {
        if ietf {
            response.extensions_mut().insert(self.headers);
        }
        if let Some(outcome) = self.outcome {
            response.extensions_mut().insert(outcome);
        }
    }
}
