//! [`Timeline`]: requests and refusals per time bucket, with a bucket width that grows with
//! the time range so a chart has at most [`MAX_BUCKETS`] bars, in bounded memory.

use std::collections::BTreeMap;

/// The most buckets a timeline spans.
pub(crate) const MAX_BUCKETS: u64 = 120;

/// Bucket widths in seconds, each a multiple of the one before, so buckets aligned to the Unix
/// epoch merge exactly when the width steps up. Past the last, the width doubles.
const WIDTHS: &[u64] = &[
    1,
    5,
    15,
    60,
    5 * 60,
    15 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    7 * 86_400,
];

/// Requests and refusals in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Requests that arrived in it.
    pub(crate) requests: u64,
    /// Of those, refused.
    pub(crate) refused: u64,
}

/// Requests over time. Adding a request whose bucket would make the span exceed
/// [`MAX_BUCKETS`] steps the width up (1 s, 5 s, 15 s, 1 min, 5 min, 15 min, 1 h, 3 h, 6 h,
/// 12 h, 1 day, 1 week, then doubling) and merges the buckets, so the map never holds more
/// than [`MAX_BUCKETS`] entries whatever the file's size.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    width: u64,
    level: usize,
    buckets: BTreeMap<u64, Bucket>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: WIDTHS[0],
            level: 0,
            buckets: BTreeMap::new(),
        }
    }
}

impl Timeline {
    /// Count one request at `secs` since the Unix epoch.
    pub(crate) fn add(&mut self, secs: u64, refused: bool) {
        let index = secs / self.width;
        let bucket = self.buckets.entry(index).or_default();
        bucket.requests += 1;
        bucket.refused += u64::from(refused);
        while self.span() > MAX_BUCKETS {
            self.step_up();
        }
    }

    /// The bucket width in seconds.
    pub(crate) fn width(&self) -> u64 {
        self.width
    }

    /// Buckets from the first to the last request, empty ones included, each with its start
    /// (seconds since the Unix epoch).
    pub(crate) fn buckets(&self) -> Vec<(u64, Bucket)> {
        let (Some(first), Some(last)) = (
            self.buckets.keys().next().copied(),
            self.buckets.keys().next_back().copied(),
        ) else {
            return Vec::new();
        };
        (first..=last)
            .map(|i| {
                (
                    i.saturating_mul(self.width),
                    self.buckets.get(&i).copied().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn span(&self) -> u64 {
        match (self.buckets.keys().next(), self.buckets.keys().next_back()) {
            (Some(first), Some(last)) => last - first + 1,
            _ => 0,
        }
    }

    fn step_up(&mut self) {
        self.level += 1;
        let next = match WIDTHS.get(self.level) {
            Some(w) => *w,
            None => self.width.saturating_mul(2),
        };
        let factor = next / self.width;
        self.width = next;
        let old = std::mem::take(&mut self.buckets);
        for (index, b) in old {
            let merged = self.buckets.entry(index / factor).or_default();
            merged.requests += b.requests;
            merged.refused += b.refused;
        }
    }
}

/// A width in words: `1 s`, `5 min`, `3 h`, `1 day`, `2 weeks`.
pub(crate) fn width_text(secs: u64) -> String {
    match secs {
        s if s % (7 * 86_400) == 0 => {
            let n = s / (7 * 86_400);
            format!("{n} week{}", if n == 1 { "" } else { "s" })
        }
        s if s % 86_400 == 0 => {
            let n = s / 86_400;
            format!("{n} day{}", if n == 1 { "" } else { "s" })
        }
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_range_keeps_one_second_buckets() {
        let mut t = Timeline::default();
        t.add(1_000, false);
        t.add(1_000, true);
        t.add(1_003, false);
        assert_eq!(t.width(), 1);
        let b = t.buckets();
        assert_eq!(b.len(), 4);
        assert_eq!(
            b[0],
            (
                1_000,
                Bucket {
                    requests: 2,
                    refused: 1
                }
            )
        );
        assert_eq!(b[1].1, Bucket::default());
        assert_eq!(b[3].1.requests, 1);
    }

    #[test]
    fn the_width_steps_up_with_the_range_and_merges_exactly() {
        let mut t = Timeline::default();
        // one request a minute for 3 hours: 180 minutes do not fit 120 buckets of 1 min
        let start = 1_765_000_000 - 1_765_000_000 % 3600;
        for m in 0..180u64 {
            t.add(start + m * 60, m % 3 == 0);
        }
        assert_eq!(t.width(), 300);
        let b = t.buckets();
        assert_eq!(b.len(), 36);
        assert!(b.iter().all(|(_, b)| b.requests == 5));
        let total: u64 = b.iter().map(|(_, b)| b.requests).sum();
        let refused: u64 = b.iter().map(|(_, b)| b.refused).sum();
        assert_eq!((total, refused), (180, 60));
        // a year-long range: weeks, still at most MAX_BUCKETS
        t.add(start + 365 * 86_400, false);
        assert!(t.buckets().len() as u64 <= MAX_BUCKETS);
        assert_eq!(t.width(), 7 * 86_400);
        assert_eq!(width_text(t.width()), "1 week");
        // past the ladder the width doubles
        t.add(start + 10 * 365 * 86_400, false);
        assert!(t.buckets().len() as u64 <= MAX_BUCKETS);
        assert_eq!(t.width() % (7 * 86_400), 0);
        let total: u64 = t.buckets().iter().map(|(_, b)| b.requests).sum();
        assert_eq!(total, 182);
    }

    #[test]
    fn widths_in_words() {
        assert_eq!(width_text(1), "1 s");
        assert_eq!(width_text(900), "15 min");
        assert_eq!(width_text(10_800), "3 h");
        assert_eq!(width_text(86_400), "1 day");
        assert_eq!(width_text(14 * 86_400), "2 weeks");
    }
}
