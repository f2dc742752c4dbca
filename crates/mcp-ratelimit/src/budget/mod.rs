//! [`Budget`]: how many weighted units one principal may spend over a long window (an hour, a
//! day, 30 days), charged after authentication by the per-caller [`RateLimitLayer`](crate::RateLimitLayer).
//!
//! "This principal may spend 1,000 units of tool calls per day, and `delete_note` costs 10":
//!
//! ```
//! use mcp_ratelimit::{Budget, KeySelector, Limit, Quota, RateLimitLayer};
//!
//! let per_caller = RateLimitLayer::builder()
//!     .limit(Limit::new("principal", Quota::per_minute(300), KeySelector::principal()))
//!     .budget(Budget::per_day("daily", 1_000).weight("tools/call:delete_note", 10))
//!     .build()?;
//! # let _ = per_caller;
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```
//!
//! # What a call costs
//!
//! Each JSON-RPC message with a method costs the weight of the first rule that matches it:
//! `method:target` (`tools/call:delete_note`, `prompts/get:summary`, `resources/read:<uri>`),
//! then `method` (`tools/call`), then the budget's [default weight](Budget::default_weight)
//! (1 unless set). A batch costs the sum of its messages; a request that is not a JSON-RPC call
//! (plain HTTP) costs the default weight once. A weight of 0 makes a call free (a budget with
//! `default_weight(0)` and `weight("tools/call", 1)` counts tool calls only).
//!
//! # Who pays, and when
//!
//! - Only an authenticated principal: a request without a
//!   [`Principal`](mcp_security_core::Principal) in its extensions (anonymous, an exempt path)
//!   never spends a budget, and the layer must sit after authentication.
//! - Only once every rate limit of the layer admitted the request: a call the limits refuse
//!   spends nothing. A call its budget refuses still counted against those limits.
//! - Before the call runs: a call refused by a later layer (a tool guard, a schema error, the
//!   server itself) **still spends its cost**. The budget buys attempts, not successes, so a
//!   client cannot probe for free by sending calls that fail.
//! - All budgets of one request are charged all-or-nothing: if one refuses, none is charged.
//!
//! # The algorithm: a continuous refill, not a calendar
//!
//! A budget of `N` units per window `W` is the limiter's exact integer GCRA ([`crate::quota`])
//! with cost `n`: burst `N` (a fresh principal may spend the whole budget at once) and one unit
//! coming back every `W / N` (rounded up to a nanosecond). A "day" budget therefore **refills
//! continuously** — a unit spent at 14:00 is back by 14:00 the next day, one `W / N` at a time —
//! rather than resetting at midnight. The proven bound holds with weights: over any interval of
//! length `T` at most `N + ⌊T × N / W⌋` units are admitted; over any one window, at most `2N`
//! in the worst case (a full budget spent at its start, then the refill), and a principal that
//! keeps spending gets `N` per window on average.
//!
//! # Answers
//!
//! A refused call gets the limiter's `429` (same body and `code: rate_limited`, in the caller's
//! format) with `Retry-After` = the seconds until its cost fits again, `RateLimit:
//! "<budget>";r=0;t=<Retry-After>` and `RateLimit-Policy: "<budget>";q=<units>;w=<window
//! seconds>` naming the budget (and `X-RateLimit-*` for it when those are on); a call that costs
//! more than the whole budget can never fit and waits until the budget is full. An admitted
//! call's response carries each budget's remaining units as one more item of `RateLimit` and
//! `RateLimit-Policy` (`"daily";r=990;t=864`), next to the tightest rate limit's. The audit
//! record gets a refusal as [`RateLimitOutcome::Limited`](mcp_security_core::RateLimitOutcome)
//! with the budget's name as the policy (and the cost in the internal detail), an admission as
//! a [`BudgetOutcome`](mcp_security_core::BudgetOutcome) in the response extensions.
//!
//! # Where the units live: `BudgetStore`
//!
//! `MemoryBudgets` (the default) keeps one entry per principal, with one GCRA state per
//! budget, in a sharded map bounded by [`max_principals`](crate::RateLimitLayerBuilder::max_budget_principals).
//! A principal whose budgets are all full again holds nothing a fresh entry would not, so such
//! entries are dropped first when a shard is full; only when none is full does the entry closest
//! to full go, handing that principal back what it had still to wait for (bounded memory wins
//! over exactness for the one evicted principal; size the bound to the number of principals).
//! This state is per process. With a Redis store on the layer
//! (`RateLimitLayerBuilder::redis`, the `redis` feature;
//! the facade does this whenever `RATE_LIMIT_REDIS_URL` is set) the budgets are counted in Redis
//! instead, shared by every replica: one call of the limiter's own decision script per
//! decision, the same integer GCRA with the request's cost as the weight, all-or-nothing over
//! every budget of the request. Keys are `<prefix>b:{<principal digest>}<budget digest>`: the
//! principal digest (the first 64 bits of SHA-256 over the principal's kind and id, the hash tag
//! of the principal's limit keys too) puts all budgets of one decision in one Redis Cluster hash
//! slot, so the call is one atomic script on one node, while different principals spread over
//! the slots; the budget digest covers the budget's name and the principal. Time is Redis
//! `TIME`, and each key expires when its budget is full again. A replica that restarts loses
//! nothing: the state is in Redis.
//!
//! When Redis fails or exceeds the store's time budget, the store's
//! failure policy (`FailurePolicy`) applies, as for the limits:
//! `closed` answers `503` with `Retry-After: 1` (`rate_limit_unavailable`), `open` charges this
//! replica's in-memory budgets instead (each replica then grants up to the whole budget, for as
//! long as Redis is away).

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderValue;
use mcp_security_core::config::ConfigError;
use mcp_security_core::jsonrpc::JsonRpcMessage;

use crate::quota::{Gcra, Quota};

mod store;
pub use store::DEFAULT_MAX_PRINCIPALS;
#[cfg(feature = "redis")]
pub(crate) use store::{BudgetCharge, Left, Spent};

mod toml;
pub use toml::from_toml;

mod spend;
pub(crate) use spend::{BudgetHeaders, BudgetReport, Budgets, Charged};

/// A budget: `units` per `window` for each principal, with weights per MCP method or tool; see
/// the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use mcp_ratelimit::Budget;
///
/// let daily = Budget::per_day("daily", 1_000).weight("tools/call:delete_note", 10);
/// assert_eq!(daily.units(), 1_000);
/// assert_eq!(daily.window(), Duration::from_secs(86_400));
/// assert_eq!(daily.weight_of("tools/call", Some("delete_note")), 10);
/// assert_eq!(daily.weight_of("tools/call", Some("read_note")), 1);
/// let tools_only = Budget::new("monthly", 20_000, Duration::from_secs(30 * 86_400))
///     .default_weight(0)
///     .weight("tools/call", 1);
/// assert_eq!(tools_only.weight_of("tools/list", None), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Budget {
    name: Cow<'static, str>,
    units: u64,
    window: Duration,
    weights: Vec<(String, u64)>,
    default_weight: u64,
}

impl Budget {
    /// `units` per `window` for each principal; a fresh principal may spend them all at once.
    pub fn new(name: impl Into<Cow<'static, str>>, units: u64, window: Duration) -> Self {
        Budget {
            name: name.into(),
            units,
            window,
            weights: Vec::new(),
            default_weight: 1,
        }
    }

    /// `units` per hour.
    pub fn per_hour(name: impl Into<Cow<'static, str>>, units: u64) -> Self {
        Self::new(name, units, Duration::from_secs(3_600))
    }

    /// `units` per day (24 h, refilled continuously).
    pub fn per_day(name: impl Into<Cow<'static, str>>, units: u64) -> Self {
        Self::new(name, units, Duration::from_secs(86_400))
    }

    /// `units` per 30 days.
    pub fn per_30_days(name: impl Into<Cow<'static, str>>, units: u64) -> Self {
        Self::new(name, units, Duration::from_secs(30 * 86_400))
    }

    /// Messages matching `rule` cost `weight` units: `method:target` (`tools/call:delete_note`)
    /// or `method` (`tools/call`). A later rule for the same text replaces an earlier one.
    pub fn weight(mut self, rule: impl Into<String>, weight: u64) -> Self {
        let rule = rule.into();
        self.weights.retain(|(r, _)| *r != rule);
        self.weights.push((rule, weight));
        self
    }

    /// What a message no rule matches costs, and a plain HTTP request (default 1).
    pub fn default_weight(mut self, weight: u64) -> Self {
        self.default_weight = weight;
        self
    }

    /// The budget's name, as `RateLimit` / `RateLimit-Policy` and the audit record name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Units per window.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// What a message of `method` (acting on `target`: the tool, prompt or resource) costs.
    pub fn weight_of(&self, method: &str, target: Option<&str>) -> u64 {
        weight_of(&self.weights, self.default_weight, method, target)
    }
}

fn weight_of(rules: &[(String, u64)], default: u64, method: &str, target: Option<&str>) -> u64 {
    let exact = target.and_then(|target| {
        rules.iter().find(|(rule, _)| {
            rule.strip_prefix(method)
                .and_then(|rest| rest.strip_prefix(':'))
                == Some(target)
        })
    });
    exact
        .or_else(|| rules.iter().find(|(rule, _)| rule == method))
        .map_or(default, |(_, w)| *w)
}

/// A validated budget.
#[derive(Debug)]
pub(crate) struct BudgetRt {
    pub(crate) name: Cow<'static, str>,
    pub(crate) quota: Quota,
    pub(crate) gcra: Gcra,
    weights: Vec<(String, u64)>,
    default_weight: u64,
    /// `RateLimit-Policy: "<name>";q=<units>;w=<seconds>`, built once.
    pub(crate) policy_header: &'static HeaderValue,
    /// `X-RateLimit-Limit`: the units.
    pub(crate) units_header: &'static HeaderValue,
}

impl BudgetRt {
    /// Validate `budget`; errors name `budget.<name>.*`.
    pub(crate) fn new(budget: Budget) -> Result<Self, ConfigError> {
        crate::class::check_name("budget", &budget.name)?;
        let setting = format!("budget.{}", budget.name);
        let quota = Quota::new(budget.units, budget.window);
        let gcra = quota.gcra(&setting).map_err(|e| {
            // The quota calls its amount `requests` and its burst `burst`: a budget's is `units`.
            match e.setting().rsplit_once('.') {
                Some((base, "requests" | "burst")) => {
                    let units = format!("{base}.units");
                    e.renamed(units)
                }
                _ => e,
            }
        })?;
        for (rule, _) in &budget.weights {
            let (method, target) = rule.split_once(':').unwrap_or((rule, ""));
            if method.is_empty()
                || !rule.bytes().all(|b| b.is_ascii_graphic())
                || (rule.contains(':') && target.is_empty())
            {
                return Err(ConfigError::new(
                    format!("{setting}.weights"),
                    "a rule is `method` or `method:target` (e.g. `tools/call:delete_note`)",
                )
                .with_value(rule.clone()));
            }
        }
        let policy_header = crate::headers::fixed_value(&format!(
            "\"{}\";q={};w={}",
            budget.name,
            budget.units,
            quota.window_secs_ceil()
        ))
        .ok_or_else(|| {
            ConfigError::new(format!("{setting}.name"), "not usable in a header")
                .with_value(budget.name.to_string())
        })?;
        Ok(BudgetRt {
            name: Cow::Borrowed(crate::headers::intern(&budget.name)),
            quota,
            gcra,
            weights: budget.weights,
            default_weight: budget.default_weight,
            policy_header,
            units_header: crate::headers::fixed_number(budget.units),
        })
    }

    /// What `messages` cost (the default weight once when there is no call with a method).
    pub(crate) fn cost(&self, messages: &[JsonRpcMessage]) -> u64 {
        let mut any = false;
        let mut cost = 0u64;
        for m in messages {
            let Some(method) = m.method() else { continue };
            any = true;
            cost = cost.saturating_add(weight_of(
                &self.weights,
                self.default_weight,
                method,
                m.target(),
            ));
        }
        if any { cost } else { self.default_weight }
    }
}

#[cfg(test)]
mod tests;
