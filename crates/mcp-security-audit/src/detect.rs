//! Detectors: sliding-window counts over what the audit layer sees, with bounded memory, that
//! emit [`SecurityEvent`]s and can add a client to the rate limiter's [`BanList`].
//!
//! | detector | counts | default | bans (with a ban list) |
//! |---|---|---|---|
//! | [`auth_failure_burst`](crate::AuditLayerBuilder::detect_auth_failures) | authentication failures per client (every `AuthOutcome::Rejected` except `insufficient_scope`) | more than 10 in 60 s | yes |
//! | [`global_auth_failure_burst`](crate::AuditLayerBuilder::detect_global_auth_failures) | authentication failures from all clients | more than 100 in 60 s | never (no single client) |
//! | [`request_flood`](crate::AuditLayerBuilder::detect_floods) | requests per client | more than 100 in 60 s | no (a NAT or an unconfigured proxy would ban everyone behind it); turn on with [`Rule::ban`] |
//! | [`token_expiring_soon`](crate::AuditLayerBuilder::detect_expiring_tokens) | authenticated tokens expiring within the warning time, once per token | 1 h | never |
//!
//! The thresholds are the alert thresholds production MCP deployments commonly use (more than 10
//! auth failures a minute, more than 100 requests a minute from one IP, tokens expiring within
//! the hour).
//!
//! # Windows
//!
//! A sliding window is estimated from two fixed windows, the current and the previous one: the
//! count is `previous × (time left of the window) / window + current`, which needs two counters
//! per client instead of one timestamp per event. A detector fires when the count goes *above*
//! its threshold, then stays quiet for that client for one window (a ban, if configured, is made
//! once). Clients are keyed by their rate-limit key ([`ClientAddr::rate_limit_key`]: IPv6 by
//! prefix). Time comes from the layer's monotonic clock, so tests are deterministic.
//!
//! # Memory
//!
//! Each per-client detector tracks at most [`max_clients`](crate::AuditLayerBuilder::detector_max_clients)
//! clients (default 10 000) in 16 shards; when a shard is full, the client tracked longest is
//! forgotten. Token expiry remembers at most as many tokens. Under a spray from many addresses a
//! detector therefore forgets, never grows: the rate limiter remains the hard control.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcp_security_core::client_addr::ClientAddr;
use mcp_security_core::clock::{Clock, MonotonicClock};
use mcp_security_core::{BanList, Principal};

use crate::mask::Masker;
use crate::metrics as m;
use crate::record::{DetectorKind, RequestId, SecurityEvent};

/// The default bound on clients tracked per detector.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// The default ban length.
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(15 * 60);
/// The default token-expiry warning time: 1 h.
pub const DEFAULT_TOKEN_WARNING: Duration = Duration::from_secs(3600);

const SHARDS: usize = 16;

/// A detector's threshold: fire when more than `threshold` events fall within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    threshold: u64,
    window: Duration,
    ban: bool,
}

impl Rule {
    /// Fire above `threshold` events per `window`; no ban.
    pub const fn new(threshold: u64, window: Duration) -> Self {
        Rule {
            threshold,
            window,
            ban: false,
        }
    }

    /// Whether firing bans the client (when the layer has a ban list).
    #[must_use]
    pub const fn ban(mut self, ban: bool) -> Self {
        self.ban = ban;
        self
    }

    /// The threshold.
    pub const fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The window.
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// Whether firing bans.
    pub const fn bans(&self) -> bool {
        self.ban
    }

    pub(crate) fn validate(
        &self,
        setting: &str,
    ) -> Result<(), mcp_security_core::config::ConfigError> {
        use mcp_security_core::config::ConfigError;
        if self.threshold == 0 {
            return Err(
                ConfigError::new(setting, "the threshold must be at least 1").with_value("0"),
            );
        }
        if self.window < Duration::from_secs(1) {
            return Err(ConfigError::new(setting, "the window must be at least 1 s")
                .with_value(format!("{:?}", self.window)));
        }
        Ok(())
    }
}

/// The per-client auth-failure default: more than 10 in a minute, banning.
pub const DEFAULT_AUTH_FAILURE_RULE: Rule = Rule::new(10, Duration::from_secs(60)).ban(true);
/// The global auth-failure default: more than 100 in a minute.
pub const DEFAULT_GLOBAL_AUTH_FAILURE_RULE: Rule = Rule::new(100, Duration::from_secs(60));
/// The per-client flood default: more than 100 requests in a minute, alert only.
pub const DEFAULT_FLOOD_RULE: Rule = Rule::new(100, Duration::from_secs(60));

/// Two-window sliding count.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: u64,
    current: u64,
    previous: u64,
    quiet_until: u64,
}

impl Window {
    fn new(now: u64) -> Self {
        Window {
            start: now,
            ..Window::default()
        }
    }

    /// Count one event at `now`; the sliding estimate, and whether it fires.
    fn hit(&mut self, now: u64, window: u64, threshold: u64) -> Option<u64> {
        let window = window.max(1);
        let elapsed = now.saturating_sub(self.start);
        if elapsed >= window.saturating_mul(2) {
            self.previous = 0;
            self.current = 0;
            self.start = now;
        } else if elapsed >= window {
            self.previous = self.current;
            self.current = 0;
            self.start = self.start.saturating_add(window);
        }
        self.current = self.current.saturating_add(1);
        let into = now.saturating_sub(self.start).min(window);
        let carried = u128::from(self.previous) * u128::from(window - into) / u128::from(window);
        let estimate = u64::try_from(carried)
            .unwrap_or(u64::MAX)
            .saturating_add(self.current);
        if estimate > threshold && now >= self.quiet_until {
            self.quiet_until = now.saturating_add(window);
            Some(estimate)
        } else {
            None
        }
    }
}

struct Shard {
    map: HashMap<IpAddr, Window>,
    order: VecDeque<IpAddr>,
}

/// Per-client windows, sharded and bounded.
struct ClientWindows {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl ClientWindows {
    fn new(max_clients: usize) -> Self {
        let per_shard = max_clients.div_ceil(SHARDS).max(1);
        ClientWindows {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    fn hit(&self, ip: IpAddr, now: u64, rule: &Rule) -> Option<u64> {
        let index = usize::try_from(self.hasher.hash_one(ip) % SHARDS as u64).unwrap_or(0);
        let shard = self.shards.get(index)?;
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let window = nanos(rule.window);
        if !shard.map.contains_key(&ip) {
            while shard.map.len() >= self.per_shard {
                match shard.order.pop_front() {
                    Some(old) => {
                        shard.map.remove(&old);
                    }
                    None => break,
                }
            }
            shard.map.insert(ip, Window::new(now));
            shard.order.push_back(ip);
        }
        shard
            .map
            .get_mut(&ip)
            .and_then(|w| w.hit(now, window, rule.threshold))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }
}

/// Tokens already warned about, bounded.
struct Seen {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    max: usize,
}

impl Seen {
    /// Whether `key` is new (and remember it).
    fn insert(&mut self, key: u64) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        while self.set.len() >= self.max {
            match self.order.pop_front() {
                Some(old) => {
                    self.set.remove(&old);
                }
                None => break,
            }
        }
        self.set.insert(key);
        self.order.push_back(key);
        true
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The detectors' settings, as the layer builder collects them.
#[derive(Debug, Clone)]
pub(crate) struct DetectorSettings {
    pub(crate) auth_failures: Option<Rule>,
    pub(crate) global_auth_failures: Option<Rule>,
    pub(crate) flood: Option<Rule>,
    pub(crate) token_warning: Option<Duration>,
    pub(crate) bans: Option<BanList>,
    pub(crate) ban_for: Duration,
    pub(crate) max_clients: usize,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            auth_failures: Some(DEFAULT_AUTH_FAILURE_RULE),
            global_auth_failures: Some(DEFAULT_GLOBAL_AUTH_FAILURE_RULE),
            flood: Some(DEFAULT_FLOOD_RULE),
            token_warning: Some(DEFAULT_TOKEN_WARNING),
            bans: None,
            ban_for: DEFAULT_BAN_DURATION,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// What one finished request tells the detectors.
pub(crate) struct Observation<'a> {
    pub(crate) client: Option<&'a ClientAddr>,
    pub(crate) auth_failed: bool,
    pub(crate) authenticated: Option<&'a Principal>,
    pub(crate) request_id: &'a RequestId,
}

pub(crate) struct Detectors {
    settings: DetectorSettings,
    auth: Option<ClientWindows>,
    flood: Option<ClientWindows>,
    global: Mutex<Window>,
    tokens: Mutex<Seen>,
    hasher: RandomState,
    wall: Arc<dyn Clock>,
    mono: Arc<dyn MonotonicClock>,
    masker: Masker,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detectors")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Detectors {
    pub(crate) fn new(
        settings: DetectorSettings,
        wall: Arc<dyn Clock>,
        mono: Arc<dyn MonotonicClock>,
        masker: Masker,
    ) -> Self {
        let now = mono.now_nanos();
        Detectors {
            auth: settings
                .auth_failures
                .map(|_| ClientWindows::new(settings.max_clients)),
            flood: settings
                .flood
                .map(|_| ClientWindows::new(settings.max_clients)),
            global: Mutex::new(Window::new(now)),
            tokens: Mutex::new(Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
                max: settings.max_clients,
            }),
            hasher: RandomState::new(),
            settings,
            wall,
            mono,
            masker,
        }
    }

    /// Count one finished request; the events it triggers (usually none, and then no allocation).
    pub(crate) fn observe(&self, obs: &Observation<'_>, metrics: bool) -> Vec<SecurityEvent> {
        let mut events = Vec::new();
        let now = self.mono.now_nanos();
        let key = obs.client.map(ClientAddr::rate_limit_key);
        if let (Some(rule), Some(windows), Some(ip)) = (&self.settings.flood, &self.flood, key)
            && let Some(count) = windows.hit(ip, now, rule)
        {
            events.push(self.fire(DetectorKind::RequestFlood, rule, count, obs, metrics));
        }
        if obs.auth_failed {
            if let (Some(rule), Some(windows), Some(ip)) =
                (&self.settings.auth_failures, &self.auth, key)
                && let Some(count) = windows.hit(ip, now, rule)
            {
                events.push(self.fire(DetectorKind::AuthFailureBurst, rule, count, obs, metrics));
            }
            if let Some(rule) = &self.settings.global_auth_failures {
                let fired = self
                    .global
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .hit(now, nanos(rule.window), rule.threshold);
                if let Some(count) = fired {
                    events.push(self.fire(
                        DetectorKind::GlobalAuthFailureBurst,
                        rule,
                        count,
                        obs,
                        metrics,
                    ));
                }
            }
        }
        if let (Some(within), Some(principal)) = (self.settings.token_warning, obs.authenticated)
            && let Some(expires) = principal.expires_at()
        {
            let wall = self.wall.now();
            let soon = expires
                .duration_since(wall)
                .is_ok_and(|left| left <= within);
            if soon {
                let id = self
                    .hasher
                    .hash_one((principal.id(), principal.kind().as_str(), expires));
                let new = self
                    .tokens
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
                if new {
                    if metrics {
                        m::token_expiring_soon();
                    }
                    events.push(SecurityEvent {
                        time: wall,
                        detector: DetectorKind::TokenExpiringSoon,
                        client: obs.client.map(ClientAddr::ip),
                        principal: Some(principal.clone()),
                        count: 1,
                        threshold: 0,
                        window: within,
                        ban_until: None,
                        expires_at: Some(expires),
                        request_id: obs.request_id.clone(),
                        masker: self.masker.clone(),
                    });
                }
            }
        }
        events
    }

    fn fire(
        &self,
        detector: DetectorKind,
        rule: &Rule,
        count: u64,
        obs: &Observation<'_>,
        metrics: bool,
    ) -> SecurityEvent {
        let wall = self.wall.now();
        let per_client = detector != DetectorKind::GlobalAuthFailureBurst;
        let mut ban_until = None;
        if per_client
            && rule.ban
            && let (Some(bans), Some(client)) = (&self.settings.bans, obs.client)
        {
            let until = wall + self.settings.ban_for;
            if bans.ban_client(client, until) {
                ban_until = Some(until);
                if metrics {
                    m::ban(detector.as_str());
                }
            }
        }
        if metrics {
            m::violation(detector.as_str());
        }
        SecurityEvent {
            time: wall,
            detector,
            client: if per_client {
                obs.client.map(ClientAddr::rate_limit_key)
            } else {
                None
            },
            principal: None,
            count,
            threshold: rule.threshold,
            window: rule.window,
            ban_until,
            expires_at: None,
            request_id: obs.request_id.clone(),
            masker: self.masker.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn window_fires_above_the_threshold_once_per_window() {
        let mut w = Window::new(0);
        for i in 1..=10 {
            assert_eq!(w.hit(i, 60 * S, 10), None, "hit {i}");
        }
        assert_eq!(w.hit(11, 60 * S, 10), Some(11));
        assert_eq!(w.hit(12, 60 * S, 10), None, "quiet for a window");
        // Half-way through the next window, half of the previous 12 still count: 6 + 1.
        let mut w2 = w;
        assert_eq!(w2.hit(90 * S, 60 * S, 6), Some(7));
        // Two windows later everything is forgotten.
        assert_eq!(w.hit(200 * S, 60 * S, 10), None);
        assert_eq!(w.current, 1);
        assert_eq!(w.previous, 0);
    }

    #[test]
    fn windows_are_bounded() {
        let windows = ClientWindows::new(32);
        let rule = Rule::new(5, Duration::from_secs(60));
        for i in 0..10_000u32 {
            windows.hit(IpAddr::from(i.to_be_bytes()), 0, &rule);
        }
        assert!(windows.len() <= 32, "{}", windows.len());
    }

    #[test]
    fn seen_is_bounded() {
        let mut seen = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            max: 3,
        };
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        for k in 2..10 {
            assert!(seen.insert(k));
        }
        assert_eq!(seen.set.len(), 3);
        assert!(seen.insert(1), "forgotten after eviction");
    }
}
