//! Budgets counted in Redis: one call of the limiter's decision script per decision, with the
//! request's cost as the weight, over every budget of one principal.
//!
//! Keys are `<prefix>b:{<principal digest>}<budget digest>`: the part in braces is the first 64
//! bits of SHA-256 over the principal (kind and id) — the same tag as the principal's limit
//! keys — so every budget of one decision sits in one hash slot and the charge is one atomic,
//! all-or-nothing script on one node, on a single server and on a Redis Cluster alike; the rest
//! is the first 64 bits of SHA-256 over the budget's name and the principal. Time is Redis
//! `TIME`; each key's TTL is its time until the budget is full again.

use super::*;
use crate::budget::{BudgetCharge, Left, Spent};
use crate::key::{KeyParts, KeySelector, Selected};

impl RedisStore {
    /// Charge `charges` (every budget of one request, `names[i]` the name of budget `i`) to
    /// `principal`, all or nothing, within the time budget.
    pub(crate) async fn spend_budgets(
        &self,
        principal: &mcp_security_core::Principal,
        names: &[&str],
        charges: &[BudgetCharge],
    ) -> Result<Spent, StoreUnavailable> {
        let parts = KeyParts {
            principal: Some(principal),
            ..KeyParts::default()
        };
        let mut call = self.inner.scripts.decide.prepare_invoke();
        let mut gcras = Vec::with_capacity(charges.len());
        for c in charges {
            let name = names.get(usize::from(c.budget)).copied().unwrap_or("");
            let Selected::Key(key) =
                KeyHasher::select_stable(name, KeySelector::principal(), &parts)
            else {
                return Err(StoreUnavailable("a budget without a principal".into()));
            };
            let g = MicroGcra::new(&c.gcra);
            call.key(format!(
                "{}b:{{{:016x}}}{:016x}",
                self.inner.prefix, key.0, key.1
            ))
            .arg(g.interval_us)
            .arg(g.tolerance_us)
            .arg(c.cost)
            .arg(g.burst);
            gcras.push(g);
        }
        bump(&self.inner.stats.round_trips);
        let work = async {
            let mut conn = self.connection().await?;
            call.invoke_async::<Vec<i64>>(&mut conn).await
        };
        let reply = match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                self.inner.link.after_failure(Some(&e));
                bump(&self.inner.stats.errors);
                return Err(StoreUnavailable(format!(
                    "{}: {}",
                    self.inner.display_url,
                    connect::explain(&e)
                )));
            }
            Err(_) => {
                self.inner.link.after_failure(None);
                bump(&self.inner.stats.timeouts);
                return Err(StoreUnavailable(format!(
                    "{}: no answer within {:?}",
                    self.inner.display_url, self.inner.timeout
                )));
            }
        };
        let at = |i: usize| reply.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0));
        if reply.first().copied() == Some(1) {
            let mut left = crate::decision::Small::new();
            for (n, (c, g)) in charges.iter().zip(&gcras).enumerate() {
                let tat_us = at(2 + 2 * n);
                left.push(Left {
                    budget: c.budget,
                    cost: c.cost,
                    remaining: g.remaining(tat_us),
                    reset: tat_us.saturating_mul(1_000),
                });
            }
            return Ok(Spent::Allowed(left));
        }
        bump(&self.inner.stats.remote_denials);
        let mut refused: Option<(u16, u64, u64)> = None;
        for (n, c) in charges.iter().enumerate() {
            let wait = at(1 + 2 * n).saturating_mul(1_000);
            if wait > 0 && refused.is_none_or(|(_, _, w)| wait > w) {
                refused = Some((c.budget, c.cost, wait));
            }
        }
        let (budget, cost, wait) = refused.ok_or_else(|| {
            StoreUnavailable(format!("{}: a malformed reply", self.inner.display_url))
        })?;
        Ok(Spent::Refused { budget, cost, wait })
    }
}
