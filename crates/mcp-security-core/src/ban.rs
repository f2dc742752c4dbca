//! [`BanList`]: clients refused outright until a point in time.
//!
//! The rate limiter checks the list before it touches any limit; the audit layer's detectors and
//! operators add to it. It lives in `mcp-security-core` so neither of those crates depends on the other:
//! both hold a clone of the same list (clones share one table).
//!
//! Bans are keyed by IP address, in canonical form (an IPv4-mapped IPv6 address is its IPv4
//! address). [`BanList::ban_client`] bans a client's [rate-limit key](ClientAddr::rate_limit_key)
//! — for IPv6 the whole prefix (a /56 by default) — because a client that holds a prefix can
//! rotate through its addresses; [`BanList::check_client`] matches either the client's own
//! address or its prefix key.
//!
//! The list is bounded ([`BanList::with_max_entries`], default [`DEFAULT_MAX_ENTRIES`]). When it
//! is full, a new ban evicts the ban that ends soonest (expired bans end soonest, so they go
//! first); a ban that would itself end before every recorded ban is not recorded. Lookups on an
//! empty list take no lock.
//!
//! # Sharing a list: [`BanObserver`]
//!
//! A list can be shared by several processes (replicas behind a load balancer) through a store
//! such as Redis (`mcp-ratelimit`'s `RedisBanSync`): [`BanList::observe`] installs the one
//! observer told of every ban and unban made here ([`ban`](BanList::ban),
//! [`ban_client`](BanList::ban_client), [`unban`](BanList::unban)), and the bans learned from
//! the store are applied with [`apply_shared`](BanList::apply_shared) and
//! [`lift_shared`](BanList::lift_shared), which tell nobody. A [`WeakBanList`] lets a
//! background task follow the list without keeping it alive.
//!
//! # What a ban refuses: [`BanScope`]
//!
//! Remote MCP servers are called from shared egress addresses (hosted agent platforms, corporate
//! networks), so one misbehaving client behind an address must not lock out every user behind
//! it. With [`BanScope::Failed`] (the default) a ban refuses the banned address's requests that
//! carry no credential (at once, before any cryptography) or a credential that fails
//! authentication; a request with a *valid* credential is served and limited per principal as
//! usual. [`BanScope::All`] refuses every request from the address. The rate limiter enforces
//! it (`mcp-ratelimit`'s per-client and per-caller layers).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use mcp_security_core::ban::BanList;
//!
//! let bans = BanList::new();
//! let now = SystemTime::now();
//! let ip = "203.0.113.9".parse()?;
//! bans.ban(ip, now + Duration::from_secs(600));
//! assert_eq!(bans.banned_until(ip, now), Some(now + Duration::from_secs(600)));
//! assert_eq!(bans.banned_until(ip, now + Duration::from_secs(601)), None);
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::SystemTime;

use crate::client_addr::ClientAddr;
use crate::config::ConfigError;

/// The default bound on recorded bans.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Table {
    by_ip: HashMap<IpAddr, SystemTime>,
    by_until: BTreeSet<(SystemTime, IpAddr)>,
}

struct Inner {
    table: RwLock<Table>,
    len: AtomicUsize,
    max_entries: usize,
    observer: OnceLock<Arc<dyn BanObserver>>,
}

/// Told of every ban and unban made on a [`BanList`] (not of those applied from a shared store
/// with [`BanList::apply_shared`] / [`BanList::lift_shared`]); see the
/// [module docs](self#sharing-a-list-banobserver). Called with the list's lock released; must
/// not block (queue the change and return).
pub trait BanObserver: Send + Sync + 'static {
    /// `ip` (canonical) is banned until `until` (a new ban or a longer one).
    fn banned(&self, ip: IpAddr, until: SystemTime);
    /// The ban on `ip` (canonical) was lifted.
    fn unbanned(&self, ip: IpAddr);
}

/// A [`BanList`] that does not keep the list alive; see [`BanList::downgrade`].
#[derive(Clone, Debug)]
pub struct WeakBanList(Weak<Inner>);

impl WeakBanList {
    /// The list, while a [`BanList`] clone still holds it.
    pub fn upgrade(&self) -> Option<BanList> {
        self.0.upgrade().map(|inner| BanList { inner })
    }
}

/// A shared, bounded map of client address → banned-until; see the [module docs](self).
/// Cloning is cheap and clones share the list.
#[derive(Clone)]
pub struct BanList {
    inner: Arc<Inner>,
}

impl fmt::Debug for BanList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BanList")
            .field("len", &self.len())
            .field("max_entries", &self.inner.max_entries)
            .finish()
    }
}

impl Default for BanList {
    fn default() -> Self {
        Self::new()
    }
}

impl BanList {
    /// An empty list holding at most [`DEFAULT_MAX_ENTRIES`] bans.
    pub fn new() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// An empty list holding at most `max_entries` bans (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        BanList {
            inner: Arc::new(Inner {
                table: RwLock::new(Table::default()),
                len: AtomicUsize::new(0),
                max_entries: max_entries.max(1),
                observer: OnceLock::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.inner
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Ban `ip` until `until`. A ban already recorded for `ip` that ends later is kept (bans are
    /// only ever extended here; use [`unban`](Self::unban) to lift one). Returns whether the ban
    /// is recorded: `false` only when the list is full and every recorded ban ends after
    /// `until`.
    pub fn ban(&self, ip: IpAddr, until: SystemTime) -> bool {
        let ip = ip.to_canonical();
        match self.record(ip, until) {
            Some(changed) => {
                if changed && let Some(observer) = self.inner.observer.get() {
                    observer.banned(ip, until);
                }
                true
            }
            None => false,
        }
    }

    /// Apply a ban learned from a shared store: as [`ban`](Self::ban), without telling the
    /// [observer](Self::observe).
    pub fn apply_shared(&self, ip: IpAddr, until: SystemTime) -> bool {
        self.record(ip.to_canonical(), until).is_some()
    }

    /// Lift a ban a shared store no longer holds: as [`unban`](Self::unban), without telling
    /// the [observer](Self::observe).
    pub fn lift_shared(&self, ip: IpAddr) -> bool {
        self.remove(ip.to_canonical())
    }

    /// Install the observer told of every ban and unban made on this list (and its clones).
    /// Returns `false`, and installs nothing, when one is installed already.
    pub fn observe(&self, observer: Arc<dyn BanObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// A handle that does not keep the list alive (for a background task following it).
    pub fn downgrade(&self) -> WeakBanList {
        WeakBanList(Arc::downgrade(&self.inner))
    }

    /// Every recorded ban still in force at `now`, at most `max`, those ending last first.
    pub fn snapshot(&self, now: SystemTime, max: usize) -> Vec<(IpAddr, SystemTime)> {
        self.read()
            .by_until
            .iter()
            .rev()
            .take_while(|(until, _)| *until > now)
            .take(max)
            .map(|(until, ip)| (*ip, *until))
            .collect()
    }

    /// Record a ban: `None` when not recorded (full), `Some(changed)` otherwise.
    fn record(&self, ip: IpAddr, until: SystemTime) -> Option<bool> {
        let mut table = self.write();
        match table.by_ip.get(&ip).copied() {
            Some(existing) if existing >= until => return Some(false),
            Some(existing) => {
                table.by_until.remove(&(existing, ip));
            }
            None if table.by_ip.len() >= self.inner.max_entries => {
                let &(soonest, victim) = table.by_until.first()?;
                if soonest >= until {
                    return None;
                }
                table.by_until.remove(&(soonest, victim));
                table.by_ip.remove(&victim);
            }
            None => {}
        }
        table.by_ip.insert(ip, until);
        table.by_until.insert((until, ip));
        self.inner.len.store(table.by_ip.len(), Ordering::Release);
        Some(true)
    }

    /// Ban a client by its [rate-limit key](ClientAddr::rate_limit_key): its address for IPv4,
    /// its prefix for IPv6. See [`ban`](Self::ban).
    pub fn ban_client(&self, client: &ClientAddr, until: SystemTime) -> bool {
        self.ban(client.rate_limit_key(), until)
    }

    /// Lift the ban on `ip`. Returns whether there was one.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let removed = self.remove(ip);
        if let Some(observer) = self.inner.observer.get() {
            // Told even when this list had no such ban: another replica's may.
            observer.unbanned(ip);
        }
        removed
    }

    fn remove(&self, ip: IpAddr) -> bool {
        let mut table = self.write();
        let Some(until) = table.by_ip.remove(&ip) else {
            return false;
        };
        table.by_until.remove(&(until, ip));
        self.inner.len.store(table.by_ip.len(), Ordering::Release);
        true
    }

    /// When the ban on `ip` ends, if it is banned at `now`.
    pub fn banned_until(&self, ip: IpAddr, now: SystemTime) -> Option<SystemTime> {
        if self.is_empty() {
            return None;
        }
        let until = self.read().by_ip.get(&ip.to_canonical()).copied()?;
        (until > now).then_some(until)
    }

    /// When the ban on `client` ends, if its address or its rate-limit key (its IPv6 prefix) is
    /// banned at `now`; the later end when both are.
    pub fn check_client(&self, client: &ClientAddr, now: SystemTime) -> Option<SystemTime> {
        if self.is_empty() {
            return None;
        }
        let table = self.read();
        let ip = client.ip().to_canonical();
        let key = client.rate_limit_key().to_canonical();
        let own = table.by_ip.get(&ip).copied();
        let prefix = if key == ip {
            None
        } else {
            table.by_ip.get(&key).copied()
        };
        own.max(prefix).filter(|until| *until > now)
    }

    /// Remove every ban that has ended at `now`; returns how many were removed.
    pub fn purge_expired(&self, now: SystemTime) -> usize {
        let mut table = self.write();
        let mut removed = 0;
        while let Some(&(until, ip)) = table.by_until.first() {
            if until > now {
                break;
            }
            table.by_until.remove(&(until, ip));
            table.by_ip.remove(&ip);
            removed += 1;
        }
        self.inner.len.store(table.by_ip.len(), Ordering::Release);
        removed
    }

    /// Recorded bans, including ended ones not yet purged or evicted.
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether no ban is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on recorded bans.
    pub fn max_entries(&self) -> usize {
        self.inner.max_entries
    }
}

/// Which requests of a banned address are refused; see the [module docs](self#what-a-ban-refuses-banscope).
///
/// ```
/// use mcp_security_core::ban::BanScope;
///
/// assert_eq!(BanScope::default(), BanScope::Failed);
/// assert_eq!(BanScope::parse("MCP_AUDIT_BAN_SCOPE", "all")?, BanScope::All);
/// let err = BanScope::parse("MCP_AUDIT_BAN_SCOPE", "some").unwrap_err();
/// assert_eq!(err.setting(), "MCP_AUDIT_BAN_SCOPE");
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanScope {
    /// Refuse requests without a credential (before any cryptography) and requests whose
    /// credential fails authentication; serve requests with a valid credential.
    #[default]
    Failed,
    /// Refuse every request from the address.
    All,
}

impl BanScope {
    /// `failed` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            BanScope::Failed => "failed",
            BanScope::All => "all",
        }
    }

    /// Parse `failed` or `all` (ASCII case-insensitive, surrounding blanks ignored).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `setting` for any other value.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim() {
            v if v.eq_ignore_ascii_case("failed") => Ok(BanScope::Failed),
            v if v.eq_ignore_ascii_case("all") => Ok(BanScope::All),
            v => Err(ConfigError::new(setting, "must be `failed` or `all`").with_value(v)),
        }
    }
}

impl fmt::Display for BanScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::ClientAddrResolver;
    use std::time::{Duration, UNIX_EPOCH};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn ban_expires_and_unban_lifts() {
        let bans = BanList::new();
        assert!(bans.is_empty());
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), None);
        assert!(bans.ban(ip("192.0.2.1"), at(100)));
        assert_eq!(bans.len(), 1);
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(99)), Some(at(100)));
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(100)), None);
        assert_eq!(bans.banned_until(ip("192.0.2.2"), at(0)), None);
        assert!(bans.unban(ip("192.0.2.1")));
        assert!(!bans.unban(ip("192.0.2.1")));
        assert!(bans.is_empty());
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), None);
    }

    #[test]
    fn the_longer_ban_is_kept() {
        let bans = BanList::new();
        bans.ban(ip("192.0.2.1"), at(100));
        bans.ban(ip("192.0.2.1"), at(50));
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), Some(at(100)));
        bans.ban(ip("192.0.2.1"), at(200));
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), Some(at(200)));
        assert_eq!(bans.len(), 1);
        assert_eq!(bans.purge_expired(at(150)), 0);
        assert_eq!(bans.purge_expired(at(200)), 1);
        assert!(bans.is_empty());
    }

    #[test]
    fn full_list_evicts_the_ban_ending_soonest() {
        let bans = BanList::with_max_entries(2);
        assert!(bans.ban(ip("192.0.2.1"), at(10)));
        assert!(bans.ban(ip("192.0.2.2"), at(30)));
        assert!(bans.ban(ip("192.0.2.3"), at(20)));
        assert_eq!(bans.len(), 2);
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), None);
        assert_eq!(bans.banned_until(ip("192.0.2.3"), at(0)), Some(at(20)));
        // shorter than every recorded ban: not recorded
        assert!(!bans.ban(ip("192.0.2.4"), at(5)));
        assert_eq!(bans.banned_until(ip("192.0.2.4"), at(0)), None);
        assert_eq!(bans.len(), 2);
        assert_eq!(BanList::with_max_entries(0).max_entries(), 1);
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let bans = BanList::new();
        bans.ban(ip("::ffff:192.0.2.1"), at(10));
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), Some(at(10)));
        assert!(bans.unban(ip("192.0.2.1")));
    }

    #[test]
    fn client_bans_cover_the_ipv6_prefix() {
        let resolver = ClientAddrResolver::default();
        let client =
            |s: &str| resolver.resolve_from_peer(s.parse().unwrap(), &http::HeaderMap::new());
        let bans = BanList::new();
        let a = client("[2001:db8:1:100::1]:1000");
        let b = client("[2001:db8:1:1ff::9]:1000");
        let other = client("[2001:db8:1:200::1]:1000");
        assert!(bans.ban_client(&a, at(10)));
        assert_eq!(bans.check_client(&b, at(0)), Some(at(10)));
        assert_eq!(bans.check_client(&other, at(0)), None);
        assert_eq!(bans.check_client(&b, at(10)), None);

        // a single address ban matches that address only
        let bans = BanList::new();
        bans.ban(ip("2001:db8:1:200::1"), at(10));
        assert_eq!(bans.check_client(&other, at(0)), Some(at(10)));
        assert_eq!(bans.check_client(&a, at(0)), None);
        // both: the later end
        bans.ban(ip("2001:db8:1:200::"), at(20));
        assert_eq!(bans.check_client(&other, at(0)), Some(at(20)));
    }

    #[test]
    fn ban_scope_parses_and_names_the_setting() {
        assert_eq!(BanScope::parse("X", " Failed ").unwrap(), BanScope::Failed);
        assert_eq!(BanScope::parse("X", "ALL").unwrap(), BanScope::All);
        let e = BanScope::parse("MCP_AUDIT_BAN_SCOPE", "none").unwrap_err();
        assert_eq!(
            (e.setting(), e.value()),
            ("MCP_AUDIT_BAN_SCOPE", Some("none"))
        );
        assert_eq!(BanScope::All.to_string(), "all");
    }

    #[derive(Default)]
    struct Log(std::sync::Mutex<Vec<String>>);

    impl BanObserver for Log {
        fn banned(&self, ip: IpAddr, until: SystemTime) {
            let secs = until.duration_since(UNIX_EPOCH).unwrap().as_secs();
            self.0.lock().unwrap().push(format!("ban {ip} {secs}"));
        }
        fn unbanned(&self, ip: IpAddr) {
            self.0.lock().unwrap().push(format!("unban {ip}"));
        }
    }

    #[test]
    fn the_observer_hears_local_changes_only() {
        let bans = BanList::new();
        let log = Arc::new(Log::default());
        assert!(bans.observe(log.clone()));
        assert!(!bans.observe(Arc::new(Log::default())));
        bans.ban(ip("::ffff:192.0.2.1"), at(100));
        bans.ban(ip("192.0.2.1"), at(50)); // shorter: no change
        bans.apply_shared(ip("192.0.2.2"), at(70));
        assert_eq!(bans.banned_until(ip("192.0.2.2"), at(0)), Some(at(70)));
        assert!(bans.lift_shared(ip("192.0.2.2")));
        bans.unban(ip("192.0.2.1"));
        assert_eq!(
            *log.0.lock().unwrap(),
            ["ban 192.0.2.1 100", "unban 192.0.2.1"]
        );
        bans.ban(ip("192.0.2.3"), at(10));
        bans.ban(ip("192.0.2.4"), at(30));
        assert_eq!(bans.snapshot(at(5), 1), [(ip("192.0.2.4"), at(30))]);
        assert_eq!(bans.snapshot(at(20), 10).len(), 1);
        let weak = bans.downgrade();
        assert!(weak.upgrade().is_some());
        drop(bans);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn clones_share_the_list() {
        let bans = BanList::new();
        let clone = bans.clone();
        clone.ban(ip("192.0.2.1"), at(10));
        assert_eq!(bans.banned_until(ip("192.0.2.1"), at(0)), Some(at(10)));
        assert_eq!(
            format!("{bans:?}"),
            "BanList { len: 1, max_entries: 100000 }"
        );
    }
}
