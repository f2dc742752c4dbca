//! Header formatting: the `X-RateLimit-*` and IETF `RateLimit` / `RateLimit-Policy` values of
//! one response, written with as little work per request as possible.
//!
//! - Values that are the same on every response of a limit (`RateLimit-Policy`, and
//!   `X-RateLimit-Limit`, the burst) are built once, when the layer is built, as `'static`
//!   header values: cloning one per response is a copy of two pointers, with no reference count
//!   shared between threads. The strings are interned (one copy per distinct value for the life
//!   of the process), so rebuilding a layer with the same limits does not grow memory.
//! - Small numbers (0 to 1023 — `X-RateLimit-Remaining` of most quotas) come from a static
//!   table the same way; larger ones and the `RateLimit` value (which carries the remaining
//!   count and the seconds left) are formatted on the stack and copied into the header value
//!   once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use mcp_security_core::clock::{Clock, MonotonicClock, SystemClock};

/// `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (Unix time in seconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The public message of every `429`, in the wording clients of common MCP deployments expect.
pub const RATE_LIMITED_MESSAGE: &str = "Rate limit exceeded. Please try again later.";

/// Numbers below this come from a static table.
const SMALL: u64 = 1024;

/// `s` as a `'static` string: one leaked copy per distinct value, ever.
pub(crate) fn intern(s: &str) -> &'static str {
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    pool.insert(leaked);
    leaked
}

/// A header value that is the same on many responses, built once and interned: a reference
/// is one pointer to carry, and cloning the value copies two. `None` if `value` is not a valid
/// header value.
pub(crate) fn fixed_value(value: &str) -> Option<&'static HeaderValue> {
    HeaderValue::from_str(value).ok()?;
    Some(interned_value(intern(value)))
}

/// `n` as an interned header value (digits are always valid).
pub(crate) fn fixed_number(n: u64) -> &'static HeaderValue {
    interned_value(intern(&n.to_string()))
}

/// The one `HeaderValue` of a valid interned string.
fn interned_value(text: &'static str) -> &'static HeaderValue {
    static POOL: OnceLock<Mutex<HashMap<&'static str, &'static HeaderValue>>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    pool.entry(text)
        .or_insert_with(|| Box::leak(Box::new(HeaderValue::from_static(text))))
}

/// The decimal digits of `n`, for `n` below [`SMALL`], as a `'static` string.
fn small_number(n: u64) -> Option<&'static str> {
    static TABLE: OnceLock<(&'static str, [u16; SMALL as usize + 1])> = OnceLock::new();
    let (text, ends) = TABLE.get_or_init(|| {
        let mut text = String::new();
        let mut ends = [0u16; SMALL as usize + 1];
        for i in 0..SMALL {
            text.push_str(&i.to_string());
            ends[i as usize + 1] = u16::try_from(text.len()).unwrap_or(u16::MAX);
        }
        (intern(&text), ends)
    });
    let i = usize::try_from(n).ok().filter(|&i| i < SMALL as usize)?;
    text.get(usize::from(ends[i])..usize::from(ends[i + 1]))
}

/// `n` as a header value: from the static table when small, otherwise formatted.
#[inline]
pub(crate) fn number_value(n: u64) -> HeaderValue {
    match small_number(n) {
        Some(s) => HeaderValue::from_static(s),
        None => {
            let mut buf = HeaderBuf::default();
            buf.push_u64(n);
            buf.value().unwrap_or_else(|| HeaderValue::from_static("0"))
        }
    }
}

/// A stack buffer for header values: a quoted name (at most 64 bytes) and two integers fit.
pub(crate) struct HeaderBuf {
    bytes: [u8; 112],
    len: usize,
}

impl Default for HeaderBuf {
    #[inline]
    fn default() -> Self {
        HeaderBuf {
            bytes: [0; 112],
            len: 0,
        }
    }
}

impl HeaderBuf {
    #[inline]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    #[inline]
    pub(crate) fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    #[inline]
    pub(crate) fn value(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.bytes[..self.len]).ok()
    }
}

/// The wall clock, for `X-RateLimit-Reset` and the ban list.
///
/// With the default clocks (the system's wall and monotonic clocks, neither injected), the
/// Unix time of `X-RateLimit-Reset` is derived from the monotonic reading the decision already
/// took, plus an offset re-sampled from the wall clock at most once a second: one clock read
/// per request instead of two. A wall-clock step shows in the header within a second.
pub(crate) struct WallSecs {
    clock: Arc<dyn Clock>,
    derived: Option<Derived>,
}

struct Derived {
    /// Unix nanoseconds minus monotonic nanoseconds.
    offset: AtomicU64,
    /// The monotonic time of the last sample.
    sampled: AtomicU64,
}

const RESAMPLE: u64 = 1_000_000_000;

impl WallSecs {
    /// `clock` read on every use.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        WallSecs {
            clock,
            derived: None,
        }
    }

    /// The system wall clock, derived from `mono` (the system monotonic clock the decisions
    /// use) between samples.
    pub(crate) fn derived_from(mono: &dyn MonotonicClock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let now = mono.now_nanos();
        let derived = Derived {
            offset: AtomicU64::new(unix_nanos(clock.now()).wrapping_sub(now)),
            sampled: AtomicU64::new(now),
        };
        WallSecs {
            clock,
            derived: Some(derived),
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Unix time in whole seconds; `mono` is the decision's monotonic time.
    #[inline]
    pub(crate) fn epoch_secs(&self, mono: u64) -> u64 {
        let Some(d) = &self.derived else {
            return unix_nanos(self.now()) / 1_000_000_000;
        };
        let sampled = d.sampled.load(Ordering::Relaxed);
        if mono.wrapping_sub(sampled) > RESAMPLE {
            d.offset
                .store(unix_nanos(self.now()).wrapping_sub(mono), Ordering::Relaxed);
            d.sampled.store(mono, Ordering::Relaxed);
        }
        mono.wrapping_add(d.offset.load(Ordering::Relaxed)) / 1_000_000_000
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The last dynamic values this thread formatted: consecutive responses often repeat them (a
/// client that is not bursting sees `burst − 1` remaining every time; the reset instant moves
/// once a second), and a clone of a cached value is a reference-count increment on memory
/// only this thread touches, where formatting one is an allocation.
struct Recent {
    remaining: Option<(u64, HeaderValue)>,
    reset: Option<(u64, HeaderValue)>,
    /// `RateLimit`: the limit (by its interned policy string), remaining and `t`.
    ratelimit: Option<(usize, u64, u64, HeaderValue)>,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            remaining: None,
            reset: None,
            ratelimit: None,
        })
    };
}

/// `n` as a header value: the static table, this thread's last value in `slot`, or formatted.
#[inline]
fn recent_number(slot: &mut Option<(u64, HeaderValue)>, n: u64) -> HeaderValue {
    if let Some(s) = small_number(n) {
        return HeaderValue::from_static(s);
    }
    if let Some((last, value)) = slot
        && *last == n
    {
        return value.clone();
    }
    let value = number_value(n);
    *slot = Some((n, value.clone()));
    value
}

/// The rate-limit header names, in the order [`Stamp::apply`] sets them.
static NAMES: [HeaderName; 5] = [
    X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
    RATELIMIT,
    RATELIMIT_POLICY,
];

/// A map of the rate-limit headers a layer sends (legacy, IETF, or both), with placeholder
/// values, built once: cloning it copies the names with their hashes already computed.
fn template(legacy: bool, ietf: bool) -> &'static HeaderMap {
    static TEMPLATES: OnceLock<[HeaderMap; 3]> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        let build = |range: std::ops::Range<usize>| {
            let mut map = HeaderMap::with_capacity(range.len());
            for name in &NAMES[range] {
                map.insert(name.clone(), HeaderValue::from_static("0"));
            }
            map
        };
        [build(0..5), build(0..3), build(3..5)]
    });
    match (legacy, ietf) {
        (true, true) => &templates[0],
        (true, false) => &templates[1],
        _ => &templates[2],
    }
}

/// The numbers behind one response's rate-limit headers, formatted when applied.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// `X-RateLimit-Limit`: the bucket's burst.
    pub(crate) burst: u64,
    /// `burst` prebuilt (the limit's own quotas), or `None` (the fail-open fallback's share).
    pub(crate) burst_value: Option<&'static HeaderValue>,
    /// The limit's prebuilt `RateLimit-Policy` value.
    pub(crate) policy: &'static HeaderValue,
    pub(crate) remaining: u64,
    /// `t` of `RateLimit`: seconds until full, or the `Retry-After` of a refusal.
    pub(crate) t: u64,
    /// `X-RateLimit-Reset`: Unix seconds when the bucket is full.
    pub(crate) reset_at: u64,
    pub(crate) legacy: bool,
    pub(crate) ietf: bool,
}

impl Stamp {
    /// Add the headers to `headers`, replacing any of the same names; `name` is the limit's
    /// name.
    ///
    /// Inserting five custom names one by one hashes each name (byte by byte); instead a
    /// template's entries (hashes included) are cloned, the values set in place, and whatever
    /// the inner service already put in the map is moved over (standard names hash in a step).
    #[inline]
    pub(crate) fn apply(self, name: &str, headers: &mut HeaderMap) {
        if !(self.legacy || self.ietf) {
            return;
        }
        let template = template(self.legacy, self.ietf);
        let mut out = template.clone();
        let mut ratelimit_ok = true;
        {
            let mut slots = out.values_mut();
            let mut set = |value: HeaderValue| {
                if let Some(slot) = slots.next() {
                    *slot = value;
                }
            };
            let filled = RECENT.try_with(|recent| {
                let recent = &mut *recent.borrow_mut();
                if self.legacy {
                    set(match self.burst_value {
                        Some(value) => value.clone(),
                        None => number_value(self.burst),
                    });
                    set(recent_number(&mut recent.remaining, self.remaining));
                    set(recent_number(&mut recent.reset, self.reset_at));
                }
                if self.ietf {
                    // Keyed by the limit's interned policy string (a name is in one policy).
                    let limit = std::ptr::from_ref(self.policy) as usize;
                    let value = match &recent.ratelimit {
                        Some((l, r, t, value))
                            if (*l, *r, *t) == (limit, self.remaining, self.t) =>
                        {
                            Some(value.clone())
                        }
                        _ => {
                            let value = self.ratelimit_value(name);
                            if let Some(value) = &value {
                                recent.ratelimit =
                                    Some((limit, self.remaining, self.t, value.clone()));
                            }
                            value
                        }
                    };
                    ratelimit_ok = value.is_some();
                    set(value.unwrap_or_else(|| HeaderValue::from_static("")));
                    set(self.policy.clone());
                }
            });
            if filled.is_err() {
                // The thread is being torn down: format everything afresh.
                if self.legacy {
                    set(match self.burst_value {
                        Some(value) => value.clone(),
                        None => number_value(self.burst),
                    });
                    set(number_value(self.remaining));
                    set(number_value(self.reset_at));
                }
                if self.ietf {
                    let value = self.ratelimit_value(name);
                    ratelimit_ok = value.is_some();
                    set(value.unwrap_or_else(|| HeaderValue::from_static("")));
                    set(self.policy.clone());
                }
            }
        }
        if !ratelimit_ok {
            // Cannot happen (names are validated); never send an empty value.
            out.remove(RATELIMIT);
        }
        if !headers.is_empty() {
            let mut skipping = false;
            let rest = headers.drain().filter(|(name, _)| {
                if let Some(name) = name {
                    skipping = template.keys().any(|ours| ours == name);
                }
                !skipping
            });
            out.extend(rest);
        }
        *headers = out;
    }

    /// `"name";r=<remaining>;t=<t>`.
    fn ratelimit_value(&self, name: &str) -> Option<HeaderValue> {
        // Names are validated to [A-Za-z0-9_.:/-]: nothing to escape in an sf-string.
        let mut buf = HeaderBuf::default();
        buf.push(b"\"");
        buf.push(name.as_bytes());
        buf.push(b"\";r=");
        buf.push_u64(self.remaining);
        buf.push(b";t=");
        buf.push_u64(self.t);
        buf.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_alike_from_the_table_and_the_stack() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            1000,
            1023,
            1024,
            65_535,
            1_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(number_value(n).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn stamps_replace_ours_and_keep_the_rest() {
        let v = HeaderValue::from_static;
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, v("application/json"));
        headers.append("x-foo", v("1"));
        headers.append("x-foo", v("2"));
        headers.append(X_RATELIMIT_REMAINING, v("old"));
        headers.append(X_RATELIMIT_REMAINING, v("older"));
        headers.insert(RATELIMIT, v("inner"));
        let stamp = |legacy: bool, ietf: bool| Stamp {
            burst: 10,
            burst_value: fixed_value("10"),
            policy: fixed_value("\"ip\";q=10;w=60").unwrap(),
            remaining: 9,
            t: 1,
            reset_at: 1_700_000_001,
            legacy,
            ietf,
        };
        let mut both = headers.clone();
        stamp(true, true).apply("ip", &mut both);
        assert_eq!(both.len(), 8);
        assert_eq!(both["content-type"], "application/json");
        let foo: Vec<_> = both.get_all("x-foo").iter().collect();
        assert_eq!(foo, ["1", "2"]);
        let remaining: Vec<_> = both.get_all(X_RATELIMIT_REMAINING).iter().collect();
        assert_eq!(remaining, ["9"]);
        assert_eq!(both[X_RATELIMIT_LIMIT], "10");
        assert_eq!(both[X_RATELIMIT_RESET], "1700000001");
        assert_eq!(both[RATELIMIT], "\"ip\";r=9;t=1");
        assert_eq!(both[RATELIMIT_POLICY], "\"ip\";q=10;w=60");

        // legacy only: an inner RateLimit header is not ours to replace
        let mut legacy = headers.clone();
        stamp(true, false).apply("ip", &mut legacy);
        assert_eq!(legacy[RATELIMIT], "inner");
        assert_eq!(legacy[X_RATELIMIT_REMAINING], "9");
        assert!(!legacy.contains_key(RATELIMIT_POLICY));

        // an empty map gets exactly ours
        let mut empty = HeaderMap::new();
        stamp(false, true).apply("ip", &mut empty);
        assert_eq!(empty.len(), 2);
        assert_eq!(empty[RATELIMIT], "\"ip\";r=9;t=1");

        // large numbers, twice (the second time from this thread's recent values)
        for _ in 0..2 {
            let mut big = HeaderMap::new();
            Stamp {
                remaining: 999_999_999,
                reset_at: 1_800_000_000,
                ..stamp(true, true)
            }
            .apply("ip", &mut big);
            assert_eq!(big[X_RATELIMIT_REMAINING], "999999999");
            assert_eq!(big[X_RATELIMIT_RESET], "1800000000");
            assert_eq!(big[RATELIMIT], "\"ip\";r=999999999;t=1");
        }
    }

    #[test]
    fn derived_wall_time_agrees_with_the_wall_clock() {
        let mono = mcp_security_core::clock::SystemMonotonicClock::new();
        let wall = WallSecs::derived_from(&mono);
        let derived = wall.epoch_secs(mono.now_nanos());
        let direct = unix_nanos(SystemTime::now()) / 1_000_000_000;
        assert!(derived.abs_diff(direct) <= 1, "{derived} vs {direct}");
        // a reading more than a second after the sample re-anchors on the wall clock
        let later = wall.epoch_secs(mono.now_nanos() + 5 * RESAMPLE);
        assert!(later.abs_diff(direct) <= 1, "{later} vs {direct}");
    }

    #[test]
    fn fixed_values_are_interned() {
        let a = fixed_value("\"ip\";q=10;w=60").unwrap();
        let b = fixed_value("\"ip\";q=10;w=60").unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a, b));
        assert!(fixed_value("bad\nvalue").is_none());
    }
}
