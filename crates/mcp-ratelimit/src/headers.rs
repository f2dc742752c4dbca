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

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use mcp_core::clock::Clock;

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

/// The public message of every `429`, as the seed words it.
pub const RATE_LIMITED_MESSAGE: &str = "Rate limit exceeded. Please try again later.";

/// Numbers below this come from a static table.
const SMALL: u64 = 1024;

/// `s` as a `'static` string: one leaked copy per distinct value, ever.
fn intern(s: &str) -> &'static str {
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

/// A header value that is the same on many responses, built once: cloning it copies two
/// pointers. `None` if `value` is not a valid header value.
pub(crate) fn fixed_value(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()?;
    Some(HeaderValue::from_static(intern(value)))
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
pub(crate) struct WallSecs {
    clock: Arc<dyn Clock>,
}

impl WallSecs {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        WallSecs { clock }
    }

    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Unix time in whole seconds.
    #[inline]
    pub(crate) fn epoch_secs(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The numbers behind one response's rate-limit headers, formatted when applied.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// `X-RateLimit-Limit`: the bucket's burst (prebuilt for the limit's own quotas).
    pub(crate) burst: HeaderValue,
    /// The limit's prebuilt `RateLimit-Policy` value.
    pub(crate) policy: HeaderValue,
    pub(crate) remaining: u64,
    /// `t` of `RateLimit`: seconds until full, or the `Retry-After` of a refusal.
    pub(crate) t: u64,
    /// `X-RateLimit-Reset`: Unix seconds when the bucket is full.
    pub(crate) reset_at: u64,
    pub(crate) legacy: bool,
    pub(crate) ietf: bool,
}

impl Stamp {
    /// Add the headers to `headers`; `name` is the limit's name.
    #[inline]
    pub(crate) fn apply(self, name: &str, headers: &mut HeaderMap) {
        headers.reserve(5);
        if self.legacy {
            headers.insert(X_RATELIMIT_LIMIT, self.burst);
            headers.insert(X_RATELIMIT_REMAINING, number_value(self.remaining));
            headers.insert(X_RATELIMIT_RESET, number_value(self.reset_at));
        }
        if self.ietf {
            // Names are validated to [A-Za-z0-9_.:/-]: nothing to escape in an sf-string.
            let mut buf = HeaderBuf::default();
            buf.push(b"\"");
            buf.push(name.as_bytes());
            buf.push(b"\";r=");
            buf.push_u64(self.remaining);
            buf.push(b";t=");
            buf.push_u64(self.t);
            if let Some(value) = buf.value() {
                headers.insert(RATELIMIT, value);
            }
            headers.insert(RATELIMIT_POLICY, self.policy);
        }
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
    fn fixed_values_are_interned() {
        let a = fixed_value("\"ip\";q=10;w=60").unwrap();
        let b = fixed_value("\"ip\";q=10;w=60").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        assert!(fixed_value("bad\nvalue").is_none());
    }
}
