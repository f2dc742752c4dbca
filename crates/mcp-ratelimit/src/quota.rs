//! [`Quota`] and the GCRA arithmetic behind it, in integer nanoseconds.
//!
//! # The algorithm
//!
//! The generic cell rate algorithm keeps one number per key: the *theoretical arrival time*
//! (TAT) of the next request if the client sent exactly at the quota's rate. With the emission
//! interval `T = window / requests` and the tolerance `τ = (burst − 1) × T`, a request at time
//! `now` conforms when `max(TAT, now) ≤ now + τ`; a conforming request moves the TAT to
//! `max(TAT, now) + T`, a refused one leaves it alone. A request of weight `n` (a batch) conforms
//! when its last cell does: `max(TAT, now) + (n − 1) × T ≤ now + τ`.
//!
//! # The bound, exactly
//!
//! Over any closed interval of length `W`, at most `burst + ⌊W × requests / window⌋` requests
//! are admitted. Proof sketch: if `k` requests are admitted in the interval, the first at `t₁` and
//! the last at `tₖ`, then after the first the TAT is at least `t₁ + T` and every later admission
//! adds `T`, so the last one needed `t₁ + (k − 1)T ≤ tₖ + τ = tₖ + (burst − 1)T`, that is
//! `k ≤ burst + (tₖ − t₁)/T ≤ burst + W/T`.
//!
//! With weights the same argument counts cells: if requests of weights `w₁ … wₖ` (`Σ = n`
//! cells) are admitted in the interval, the last one's last cell needed
//! `t₁ + (n − 1)T ≤ tₖ + τ`, so `n ≤ burst + ⌊W/T⌋` — over any interval of length `W` at most
//! `burst + ⌊W × requests / window⌋` *units* are admitted, whatever the weights (a budget of `N`
//! units per window is `requests = burst = N`, see [`crate::budget`]).
//!
//! `T` is `window / requests` rounded **up** to a whole nanosecond, so `W/T ≤ W × requests /
//! window` and the bound holds for the quota as written, not just for a rounded one (rounding
//! down, as `governor::Quota::per_minute` does, can admit one request more than the quota in
//! some windows). The rate is thereby at most one nanosecond per request slower than asked.
//! Everything is `u64` nanoseconds with saturating arithmetic; no floats.

use std::time::Duration;

use mcp_security_core::config::ConfigError;

/// How much a key may do: `requests` per `window`, with bursts of up to `burst` requests at once
/// (by default `burst = requests`).
///
/// ```
/// use std::time::Duration;
/// use mcp_ratelimit::Quota;
///
/// let q = Quota::per_minute(100);
/// assert_eq!((q.requests(), q.window(), q.burst()), (100, Duration::from_secs(60), 100));
/// let q = Quota::new(20, Duration::from_secs(60)).with_burst(5);
/// assert_eq!(q.burst(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Quota {
    requests: u64,
    window: Duration,
    burst: u64,
}

impl Quota {
    /// `requests` per `window`, bursts of up to `requests`.
    pub const fn new(requests: u64, window: Duration) -> Self {
        Quota {
            requests,
            window,
            burst: requests,
        }
    }

    /// `requests` per second.
    pub const fn per_second(requests: u64) -> Self {
        Self::new(requests, Duration::from_secs(1))
    }

    /// `requests` per minute.
    pub const fn per_minute(requests: u64) -> Self {
        Self::new(requests, Duration::from_secs(60))
    }

    /// `requests` per hour.
    pub const fn per_hour(requests: u64) -> Self {
        Self::new(requests, Duration::from_secs(3600))
    }

    /// The same rate with bursts of up to `burst` requests.
    pub const fn with_burst(mut self, burst: u64) -> Self {
        self.burst = burst;
        self
    }

    /// Requests per window.
    pub const fn requests(&self) -> u64 {
        self.requests
    }

    /// The window.
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// The most requests admitted at once.
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// The window in whole seconds, rounded up (at least 1), as the `w` parameter of
    /// `RateLimit-Policy` needs.
    pub(crate) fn window_secs_ceil(&self) -> u64 {
        let secs = self.window.as_secs() + u64::from(self.window.subsec_nanos() > 0);
        secs.max(1)
    }

    /// Validate and derive the GCRA parameters. `setting` names the quota in errors (e.g.
    /// `limit.ip`), so errors read `limit.ip.requests: …`.
    pub(crate) fn gcra(&self, setting: &str) -> Result<Gcra, ConfigError> {
        let err = |field: &str, reason: &str, value: String| {
            ConfigError::new(format!("{setting}.{field}"), reason).with_value(value)
        };
        if self.requests == 0 {
            return Err(err("requests", "must be at least 1", "0".into()));
        }
        if self.burst == 0 {
            return Err(err("burst", "must be at least 1", "0".into()));
        }
        let window = u64::try_from(self.window.as_nanos()).map_err(|_| {
            err(
                "window",
                "must be shorter than 584 years",
                format!("{:?}", self.window),
            )
        })?;
        if window == 0 {
            return Err(err("window", "must be longer than zero", "0s".into()));
        }
        if window < self.requests {
            return Err(err(
                "requests",
                "more than one request per nanosecond of the window is not supported",
                self.requests.to_string(),
            ));
        }
        let interval = window.div_ceil(self.requests);
        // Keep `now + burst × T` far from overflow for any plausible uptime.
        let span = interval
            .checked_mul(self.burst)
            .filter(|span| *span <= MAX_SPAN)
            .ok_or_else(|| {
                err(
                    "burst",
                    "burst × (window / requests) must not exceed 100 years",
                    self.burst.to_string(),
                )
            })?;
        Ok(Gcra {
            interval,
            tolerance: span - interval,
            burst: self.burst,
        })
    }
}

/// 100 years in nanoseconds: the longest a key can be made to wait for a full bucket.
const MAX_SPAN: u64 = 100 * 365 * 24 * 3600 * 1_000_000_000;

/// The GCRA parameters of a validated [`Quota`], in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// The emission interval `T`: window / requests, rounded up.
    interval: u64,
    /// The tolerance `τ = (burst − 1) × T`.
    tolerance: u64,
    burst: u64,
}

impl Gcra {
    /// A placeholder (one request per nanosecond, no burst) for fixed-size arrays of charges.
    pub(crate) const UNIT: Gcra = Gcra {
        interval: 1,
        tolerance: 0,
        burst: 1,
    };

    /// Check a request of `weight` cells against the stored `tat` (0 for an unseen key) at
    /// `now`. `Ok(new_tat)` when admitted; `Err(wait)` with the nanoseconds until it would be
    /// (at least 1), or, for a weight above the burst, which can never conform, the time until
    /// the bucket is full.
    pub(crate) fn check(&self, tat: u64, now: u64, weight: u64) -> Result<u64, u64> {
        let base = tat.max(now);
        let weight = weight.max(1);
        if weight > self.burst {
            return Err(base.saturating_sub(now).max(1));
        }
        let last = base.saturating_add((weight - 1).saturating_mul(self.interval));
        let limit = now.saturating_add(self.tolerance);
        if last <= limit {
            Ok(last.saturating_add(self.interval))
        } else {
            Err(last - limit)
        }
    }

    /// Requests that would be admitted right now, back to back: `burst − ⌈(TAT − now)/T⌉`.
    pub(crate) fn remaining(&self, tat: u64, now: u64) -> u64 {
        let used = tat.saturating_sub(now).div_ceil(self.interval);
        self.burst.saturating_sub(used)
    }

    /// Nanoseconds until the bucket is full again (0 when it is).
    pub(crate) fn reset(tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }

    pub(crate) fn burst(&self) -> u64 {
        self.burst
    }

    /// The emission interval `T` in nanoseconds.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }
}

/// Whole seconds, rounded up: what `Retry-After` and the reset fields carry.
pub(crate) fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn gcra(q: Quota) -> Gcra {
        q.gcra("limit.test").unwrap()
    }

    #[test]
    fn burst_then_one_per_interval() {
        let g = gcra(Quota::per_second(10).with_burst(3));
        assert_eq!(g.interval(), S / 10);
        let mut tat = 0;
        for i in 0..3 {
            assert_eq!(g.remaining(tat, 0), 3 - i);
            tat = g.check(tat, 0, 1).unwrap();
        }
        assert_eq!(g.remaining(tat, 0), 0);
        assert_eq!(g.check(tat, 0, 1), Err(S / 10));
        assert_eq!(Gcra::reset(tat, 0), 3 * S / 10);
        // one interval later exactly one more
        let now = S / 10;
        tat = g.check(tat, now, 1).unwrap();
        assert_eq!(g.check(tat, now, 1), Err(S / 10));
        // idle for a long time: full again
        assert_eq!(g.remaining(tat, 100 * S), 3);
    }

    #[test]
    fn weights() {
        let g = gcra(Quota::per_second(10).with_burst(5));
        let tat = g.check(0, 0, 5).unwrap();
        assert_eq!(g.remaining(tat, 0), 0);
        assert!(g.check(0, 0, 6).is_err());
        // a weight above the burst never conforms; the wait is until full, at least 1 ns
        assert_eq!(g.check(0, 0, 6), Err(1));
        assert_eq!(g.check(tat, 0, 6), Err(S / 2));
        // weight 3 after 2 intervals of a full bucket
        let tat = g.check(tat, 2 * S / 10, 2).unwrap();
        assert_eq!(g.check(tat, 2 * S / 10, 1), Err(S / 10));
    }

    #[test]
    fn interval_rounds_up() {
        let g = gcra(Quota::new(3, Duration::from_secs(1)));
        assert_eq!(g.interval(), 333_333_334);
        let g = gcra(Quota::new(7, Duration::from_secs(60)));
        assert_eq!(g.interval(), 8_571_428_572);
    }

    #[test]
    fn validation_names_the_setting() {
        let e = Quota::per_second(0).gcra("limit.ip").unwrap_err();
        assert_eq!((e.setting(), e.value()), ("limit.ip.requests", Some("0")));
        let e = Quota::per_second(5)
            .with_burst(0)
            .gcra("limit.ip")
            .unwrap_err();
        assert_eq!(e.setting(), "limit.ip.burst");
        let e = Quota::new(5, Duration::ZERO).gcra("limit.ip").unwrap_err();
        assert_eq!(e.setting(), "limit.ip.window");
        let e = Quota::new(5, Duration::MAX).gcra("limit.ip").unwrap_err();
        assert_eq!(e.setting(), "limit.ip.window");
        let e = Quota::new(2_000_000_000, Duration::from_secs(1))
            .gcra("limit.ip")
            .unwrap_err();
        assert_eq!(e.setting(), "limit.ip.requests");
        let e = Quota::per_hour(1)
            .with_burst(1_000_000)
            .gcra("limit.ip")
            .unwrap_err();
        assert_eq!(e.setting(), "limit.ip.burst");
        assert!(
            Quota::new(1_000_000_000, Duration::from_secs(1))
                .gcra("x")
                .is_ok()
        );
    }

    #[test]
    fn window_secs_for_the_policy_header() {
        assert_eq!(Quota::per_minute(1).window_secs_ceil(), 60);
        assert_eq!(
            Quota::new(1, Duration::from_millis(1500)).window_secs_ceil(),
            2
        );
        assert_eq!(
            Quota::new(1, Duration::from_millis(1)).window_secs_ceil(),
            1
        );
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(0), 0);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(S), 1);
        assert_eq!(ceil_secs(S + 1), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random quotas and arrival schedules (with clusters of simultaneous arrivals): in every
        /// window [tᵢ, tⱼ] of the schedule the admitted count is at most
        /// `burst + ⌊(tⱼ − tᵢ) × requests / window⌋`, and the integer-nanosecond limiter never
        /// admits a request the exact rational model refuses (it may refuse slightly more, by
        /// design: `T` is rounded up).
        #[test]
        fn gcra_bound_holds(
            requests in 1u64..50,
            window_ms in 1u64..5_000,
            burst in 1u64..20,
            gaps in proptest::collection::vec(
                prop_oneof![3 => Just(0u64), 5 => 0u64..50_000_000, 1 => 0u64..3_000_000_000],
                1..200,
            ),
        ) {
            let window = window_ms * 1_000_000;
            let g = Quota::new(requests, Duration::from_nanos(window))
                .with_burst(burst)
                .gcra("limit.p")
                .unwrap();
            let mut now = 1_000;
            let mut arrivals = Vec::with_capacity(gaps.len());
            for gap in &gaps {
                now += gap;
                arrivals.push(now);
            }
            let mut tat = 0;
            let mut admitted = Vec::new();
            for &t in &arrivals {
                match g.check(tat, t, 1) {
                    Ok(next) => {
                        prop_assert!(g.remaining(next, t) < burst);
                        tat = next;
                        admitted.push(t);
                    }
                    Err(wait) => {
                        prop_assert!(wait >= 1);
                        // after the wait, it conforms
                        prop_assert!(g.check(tat, t + wait, 1).is_ok());
                        // and not a nanosecond before
                        prop_assert!(g.check(tat, t + wait - 1, 1).is_err());
                    }
                }
            }
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let span = u128::from(admitted[j] - admitted[i]);
                    let bound = u128::from(burst)
                        + span * u128::from(requests) / u128::from(window);
                    prop_assert!(
                        (j - i + 1) as u128 <= bound,
                        "{} admitted in {span} ns, bound {bound}", j - i + 1
                    );
                }
            }
        }

        /// Cost `n`: random weights (1 to 12, some above the burst) on random schedules. In every
        /// window [tᵢ, tⱼ] the admitted *units* are at most `burst + ⌊(tⱼ − tᵢ) × requests /
        /// window⌋`; a refused weight within the burst conforms exactly after its wait; a weight
        /// above the burst is never admitted. With `burst = requests = N` (a budget) that is at
        /// most `N` weighted units in any interval shorter than `window / N`, and `N` plus the
        /// refill over longer ones.
        #[test]
        fn gcra_bound_holds_for_weighted_costs(
            requests in 1u64..60,
            window_ms in 1u64..5_000,
            burst_extra in 0u64..20,
            budget_like in proptest::bool::ANY,
            arrivals in proptest::collection::vec(
                (prop_oneof![3 => Just(0u64), 5 => 0u64..50_000_000, 1 => 0u64..3_000_000_000],
                 1u64..13),
                1..200,
            ),
        ) {
            let burst = if budget_like { requests } else { 1 + burst_extra };
            let window = window_ms * 1_000_000;
            let g = Quota::new(requests, Duration::from_nanos(window))
                .with_burst(burst)
                .gcra("budget.p")
                .unwrap();
            let mut now = 1_000;
            let mut tat = 0;
            let mut admitted: Vec<(u64, u64)> = Vec::new();
            for (gap, weight) in arrivals {
                now += gap;
                match g.check(tat, now, weight) {
                    Ok(next) => {
                        prop_assert!(weight <= burst);
                        tat = next;
                        admitted.push((now, weight));
                    }
                    Err(wait) => {
                        prop_assert!(wait >= 1);
                        if weight <= burst {
                            prop_assert!(g.check(tat, now + wait, weight).is_ok());
                            prop_assert!(g.check(tat, now + wait - 1, weight).is_err());
                        }
                    }
                }
            }
            for i in 0..admitted.len() {
                let mut units = 0u128;
                for j in i..admitted.len() {
                    units += u128::from(admitted[j].1);
                    let span = u128::from(admitted[j].0 - admitted[i].0);
                    let bound = u128::from(burst)
                        + span * u128::from(requests) / u128::from(window);
                    prop_assert!(units <= bound, "{units} units in {span} ns, bound {bound}");
                }
            }
        }

        /// Liveness: a fresh key admits a burst of `burst` at once, and a client never sending
        /// faster than the (rounded-up) emission interval is never refused.
        #[test]
        fn paced_clients_are_never_refused(
            requests in 1u64..1_000,
            window_ms in 1u64..100_000,
            burst in 1u64..50,
            extra in proptest::collection::vec(0u64..1_000_000_000, 1..100),
        ) {
            let g = Quota::new(requests, Duration::from_millis(window_ms))
                .with_burst(burst)
                .gcra("limit.p")
                .unwrap();
            let mut tat = 0;
            for _ in 0..burst {
                tat = g.check(tat, 0, 1).unwrap();
            }
            prop_assert_eq!(g.remaining(tat, 0), 0);
            let mut tat = 0;
            let mut now = 0;
            for gap in extra {
                now += g.interval() + gap;
                tat = g.check(tat, now, 1).unwrap();
            }
        }
    }
}
