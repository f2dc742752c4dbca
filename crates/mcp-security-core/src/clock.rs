//! Time as a dependency, so time-dependent logic is deterministic in tests.
//!
//! Two kinds of time: wall-clock time ([`Clock`], a [`SystemTime`]) for expiries and timestamps
//! that leave the process, and monotonic time ([`MonotonicClock`], integer nanoseconds from a
//! fixed origin) for measuring intervals, such as a rate limiter's schedule, which must not jump
//! when the wall clock is set.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; for tests.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_security_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(100));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(105));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: SystemTime) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Set the clock.
    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A source of monotonic time: nanoseconds since a fixed, arbitrary origin, never decreasing.
///
/// Integer nanoseconds keep interval arithmetic exact (a rate limiter's schedule needs no floats),
/// and `u64` nanoseconds last 584 years from the origin.
pub trait MonotonicClock: Send + Sync + Debug + 'static {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The system's monotonic clock ([`Instant`]), with its origin at construction.
#[derive(Debug, Clone, Copy)]
pub struct SystemMonotonicClock {
    origin: Instant,
}

impl SystemMonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemMonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for SystemMonotonicClock {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A monotonic clock that only moves when told to; for tests. Lock-free, so threads in a stress
/// test can read it concurrently.
///
/// ```
/// use std::time::Duration;
/// use mcp_security_core::clock::{ManualMonotonicClock, MonotonicClock};
///
/// let clock = ManualMonotonicClock::new(1_000);
/// clock.advance(Duration::from_micros(2));
/// assert_eq!(clock.now_nanos(), 3_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualMonotonicClock(AtomicU64);

impl ManualMonotonicClock {
    /// A clock stopped at `nanos`.
    pub fn new(nanos: u64) -> Self {
        ManualMonotonicClock(AtomicU64::new(nanos))
    }

    /// Move the clock forward (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// Set the clock. Setting it backwards breaks the monotonic promise; tests may still want to.
    pub fn set(&self, nanos: u64) {
        self.0.store(nanos, Ordering::Release);
    }
}

impl MonotonicClock for ManualMonotonicClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A [`ManualClock`] is also a monotonic clock reading nanoseconds since the Unix epoch, so one
/// test clock can drive both wall-clock and interval logic (and advancing it moves both). It is
/// monotonic only as long as the test does not [`set`](ManualClock::set) it backwards.
impl MonotonicClock for ManualClock {
    fn now_nanos(&self) -> u64 {
        let since_epoch = Clock::now(self)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_monotonic_clock_does_not_go_back() {
        let clock = SystemMonotonicClock::new();
        let a = clock.now_nanos();
        let b = clock.now_nanos();
        assert!(b >= a);
    }

    #[test]
    fn manual_monotonic_clock_moves_only_when_told() {
        let clock = ManualMonotonicClock::new(5);
        assert_eq!(clock.now_nanos(), 5);
        clock.advance(Duration::from_nanos(10));
        assert_eq!(clock.now_nanos(), 15);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_nanos(), u64::MAX);
        clock.set(7);
        assert_eq!(clock.now_nanos(), 7);
    }

    #[test]
    fn manual_clock_is_monotonic_in_epoch_nanos() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!(MonotonicClock::now_nanos(&clock), 2_000_000_000);
        clock.advance(Duration::from_millis(1));
        assert_eq!(MonotonicClock::now_nanos(&clock), 2_001_000_000);
        assert_eq!(
            Clock::now(&clock),
            UNIX_EPOCH + Duration::from_millis(2_001)
        );
    }
}
