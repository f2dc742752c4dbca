//! [`TopCounts`]: counts per key (principal, tool, client address, reason) in bounded memory.

use std::collections::HashMap;

/// The most distinct keys one table keeps; later new keys are counted as "other".
pub(crate) const MAX_KEYS: usize = 10_000;

/// The longest key kept, in bytes (the audit writer caps names at 256 bytes already; this
/// bounds what a damaged or forged file can make the report hold).
pub(crate) const MAX_KEY_BYTES: usize = 256;

/// Two counts per key: all the records, and the refused ones among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    /// Records with this key.
    pub(crate) total: u64,
    /// Of those, refused requests.
    pub(crate) refused: u64,
}

impl Count {
    fn add(&mut self, refused: bool) {
        self.total += 1;
        self.refused += u64::from(refused);
    }
}

/// Counts per key. The first [`MAX_KEYS`] distinct keys are counted exactly; records with a key
/// seen only after the table is full go to [`other`](Self::other), so memory stays bounded
/// whatever the file holds (a top-N of a trail with millions of client addresses is exact for
/// every address that appeared before the table filled).
#[derive(Debug, Clone)]
pub(crate) struct TopCounts {
    map: HashMap<String, Count>,
    cap: usize,
    other: Count,
}

impl Default for TopCounts {
    fn default() -> Self {
        TopCounts::with_cap(MAX_KEYS)
    }
}

impl TopCounts {
    /// A table that keeps at most `cap` distinct keys.
    pub(crate) fn with_cap(cap: usize) -> Self {
        TopCounts {
            map: HashMap::new(),
            cap,
            other: Count::default(),
        }
    }

    /// Count one record with `key`.
    pub(crate) fn add(&mut self, key: &str, refused: bool) {
        let key = clip(key);
        if let Some(count) = self.map.get_mut(key) {
            count.add(refused);
        } else if self.map.len() < self.cap {
            let mut count = Count::default();
            count.add(refused);
            self.map.insert(key.to_owned(), count);
        } else {
            self.other.add(refused);
        }
    }

    /// Distinct keys counted exactly.
    #[cfg(test)]
    pub(crate) fn distinct(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty() && self.other.total == 0
    }

    /// `distinct()` as text: `10000+` when the table filled and later keys went to "other".
    pub(crate) fn distinct_text(&self) -> String {
        if self.other.total > 0 {
            format!("{}+", self.map.len())
        } else {
            self.map.len().to_string()
        }
    }

    /// Records whose key arrived after the table was full.
    #[cfg(test)]
    pub(crate) fn other(&self) -> Count {
        self.other
    }

    /// The sum over every key, "other" included.
    pub(crate) fn total(&self) -> Count {
        let mut sum = self.other;
        for c in self.map.values() {
            sum.total += c.total;
            sum.refused += c.refused;
        }
        sum
    }

    /// The `n` keys with the most records, most first (ties by key, so the order is stable).
    pub(crate) fn top(&self, n: usize) -> Vec<(&str, Count)> {
        let mut all: Vec<(&str, Count)> = self.map.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        all.sort_unstable_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// What the keys beyond the top `n` add up to (the untracked "other" included).
    pub(crate) fn rest(&self, n: usize) -> Count {
        let total = self.total();
        let shown = self
            .top(n)
            .into_iter()
            .fold(Count::default(), |mut s, (_, c)| {
                s.total += c.total;
                s.refused += c.refused;
                s
            });
        Count {
            total: total.total - shown.total,
            refused: total.refused - shown.refused,
        }
    }
}

/// `key` cut to at most [`MAX_KEY_BYTES`], on a character boundary.
fn clip(key: &str) -> &str {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let mut end = MAX_KEY_BYTES;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_until_the_table_is_full_then_other() {
        let mut t = TopCounts::with_cap(2);
        t.add("a", false);
        t.add("b", true);
        t.add("a", true);
        t.add("c", false); // table full: other
        t.add("d", true);
        t.add("b", false); // known key: still exact
        assert_eq!(t.distinct(), 2);
        assert_eq!(
            t.top(5),
            vec![
                (
                    "a",
                    Count {
                        total: 2,
                        refused: 1
                    }
                ),
                (
                    "b",
                    Count {
                        total: 2,
                        refused: 1
                    }
                )
            ]
        );
        assert_eq!(
            t.other(),
            Count {
                total: 2,
                refused: 1
            }
        );
        assert_eq!(
            t.total(),
            Count {
                total: 6,
                refused: 3
            }
        );
        assert_eq!(
            t.rest(1),
            Count {
                total: 4,
                refused: 2
            }
        );
        assert!(!t.is_empty());
        assert_eq!(t.distinct_text(), "2+");
        assert_eq!(TopCounts::default().distinct_text(), "0");
    }

    #[test]
    fn long_keys_are_clipped_on_a_character_boundary() {
        let mut t = TopCounts::default();
        let long = "é".repeat(200); // 400 bytes
        t.add(&long, false);
        let (key, _) = t.top(1)[0];
        assert!(key.len() <= MAX_KEY_BYTES && key.len() >= MAX_KEY_BYTES - 1);
        assert!(long.starts_with(key));
    }
}
