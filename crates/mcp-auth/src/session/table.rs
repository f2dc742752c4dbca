//! The binding table: which principal owns each session (by the id's keyed hash), the
//! per-principal and total caps, idle expiry, and the slot an `initialize` holds while in flight.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use mcp_security_core::clock::MonotonicClock;
use mcp_security_core::{Principal, PrincipalKind, Rejection};

use super::UnknownSessionResponse;

/// A session id's keyed hash.
pub(super) type SessionHash = [u8; 32];

/// Who owns a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Owner {
    pub(super) kind: PrincipalKind,
    pub(super) id: Box<str>,
}

impl Owner {
    pub(super) fn of(principal: &Principal) -> Self {
        Owner {
            kind: principal.kind(),
            id: principal.id().into(),
        }
    }

    pub(super) fn is(&self, principal: &Principal) -> bool {
        self.kind == principal.kind() && *self.id == *principal.id()
    }
}

#[derive(Debug)]
pub(super) struct Binding {
    pub(super) owner: Owner,
    pub(super) last_seen: u64,
}

/// One principal's sessions and the `initialize` requests of theirs in flight.
#[derive(Debug, Default)]
pub(super) struct OwnerEntry {
    pub(super) sessions: Vec<SessionHash>,
    pub(super) pending: usize,
}

#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) bindings: HashMap<SessionHash, Binding>,
    pub(super) owners: HashMap<Owner, OwnerEntry>,
    /// `initialize` requests in flight, each holding a slot.
    pub(super) pending: usize,
    /// When a full table may next be swept for expired bindings (monotonic nanoseconds).
    pub(super) next_sweep: u64,
}

impl Table {
    /// Remove a binding and its owner's reference to it.
    pub(super) fn remove(&mut self, hash: &SessionHash) {
        let Some(binding) = self.bindings.remove(hash) else {
            return;
        };
        if let Entry::Occupied(mut e) = self.owners.entry(binding.owner) {
            let entry = e.get_mut();
            entry.sessions.retain(|h| h != hash);
            if entry.sessions.is_empty() && entry.pending == 0 {
                e.remove();
            }
        }
    }

    /// Forget `owner`'s expired bindings; how many live ones (and pending) it holds.
    pub(super) fn owner_load(&mut self, owner: &Owner, now: u64, idle: u64) -> usize {
        let Some(entry) = self.owners.get(owner) else {
            return 0;
        };
        let expired: Vec<SessionHash> = entry
            .sessions
            .iter()
            .filter(|h| {
                self.bindings
                    .get(*h)
                    .is_none_or(|b| now.saturating_sub(b.last_seen) > idle)
            })
            .copied()
            .collect();
        for hash in &expired {
            self.remove(hash);
        }
        self.owners
            .get(owner)
            .map_or(0, |e| e.sessions.len() + e.pending)
    }

    /// Forget `owner`'s least-recently-used binding if it has been idle longer than `grace`;
    /// whether one was forgotten.
    pub(super) fn evict_idlest(&mut self, owner: &Owner, now: u64, grace: u64) -> bool {
        let Some(entry) = self.owners.get(owner) else {
            return false;
        };
        let idlest = entry
            .sessions
            .iter()
            .filter_map(|h| self.bindings.get(h).map(|b| (*h, b.last_seen)))
            .min_by_key(|&(_, last_seen)| last_seen);
        match idlest {
            Some((hash, last_seen)) if now.saturating_sub(last_seen) > grace => {
                self.remove(&hash);
                true
            }
            _ => false,
        }
    }

    /// Whether one more session fits in the table, sweeping expired bindings when full (at
    /// most every eighth of the idle timeout).
    pub(super) fn has_room(&mut self, max: usize, now: u64, idle: u64) -> bool {
        if self.bindings.len() + self.pending < max {
            return true;
        }
        if now < self.next_sweep {
            return false;
        }
        self.bindings
            .retain(|_, b| now.saturating_sub(b.last_seen) <= idle);
        let bindings = &self.bindings;
        self.owners.retain(|_, e| {
            e.sessions.retain(|h| bindings.contains_key(h));
            !e.sessions.is_empty() || e.pending > 0
        });
        self.next_sweep = now.saturating_add(idle / 8);
        self.bindings.len() + self.pending < max
    }

    pub(super) fn insert(&mut self, hash: SessionHash, owner: Owner, now: u64) {
        self.remove(&hash);
        self.owners
            .entry(owner.clone())
            .or_default()
            .sessions
            .push(hash);
        self.bindings.insert(
            hash,
            Binding {
                owner,
                last_seen: now,
            },
        );
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    Unknown,
    Owner,
    Foreign,
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    Principal,
    Table,
}

impl Full {
    pub(super) fn rejection(self, per_principal: usize) -> Rejection {
        let rejection = Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions");
        match self {
            Full::Principal => rejection
                .message(
                    "Too many open sessions for this credential; end one (DELETE) or let one \
                     expire",
                )
                .field("max_sessions", per_principal)
                .detail("the principal holds its maximum of live sessions"),
            Full::Table => rejection
                .message("Too many sessions; try again later")
                .detail("the session-binding table is full"),
        }
    }
}

pub(super) struct Shared {
    pub(super) enabled: bool,
    pub(super) key: Hmac<Sha256>,
    pub(super) max_sessions: usize,
    pub(super) max_per_principal: usize,
    pub(super) idle_nanos: u64,
    pub(super) grace_nanos: u64,
    pub(super) unknown: UnknownSessionResponse,
    pub(super) clock: Arc<dyn MonotonicClock>,
    pub(super) table: Mutex<Table>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBindingLayer")
            .field("enabled", &self.enabled)
            .field("max_sessions", &self.max_sessions)
            .field("max_per_principal", &self.max_per_principal)
            .field("idle_nanos", &self.idle_nanos)
            .field("grace_nanos", &self.grace_nanos)
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn hash(&self, session_id: &[u8]) -> SessionHash {
        let mut mac = self.key.clone();
        mac.update(session_id);
        mac.finalize().into_bytes().into()
    }

    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who owns `hash`. The idle timer is not restarted here: that waits for the server's
    /// answer ([`refresh`](Self::refresh)), so a session the server no longer knows (answered
    /// 404) is not kept alive by its owner's retries.
    pub(super) fn lookup(&self, hash: &SessionHash, principal: &Principal) -> Lookup {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        let Some(binding) = table.bindings.get(hash) else {
            return Lookup::Unknown;
        };
        if now.saturating_sub(binding.last_seen) > self.idle_nanos {
            table.remove(hash);
            return Lookup::Unknown;
        }
        if binding.owner.is(principal) {
            Lookup::Owner
        } else {
            Lookup::Foreign
        }
    }

    /// Restart the idle timer of `hash`'s binding, if it is still held (a request of its
    /// owner's was answered, or the answer's stream yielded data).
    pub(super) fn refresh(&self, hash: &SessionHash, now: u64) {
        if let Some(binding) = self.table().bindings.get_mut(hash) {
            binding.last_seen = binding.last_seen.max(now);
        }
    }

    /// Whether `owner` may open one more session now: at the per-principal cap, the owner's
    /// least-recently-used binding is forgotten when idle longer than the eviction grace.
    pub(super) fn room_for(&self, table: &mut Table, owner: &Owner, now: u64) -> Result<(), Full> {
        if table.owner_load(owner, now, self.idle_nanos) >= self.max_per_principal
            && !table.evict_idlest(owner, now, self.grace_nanos)
        {
            return Err(Full::Principal);
        }
        if !table.has_room(self.max_sessions, now, self.idle_nanos) {
            return Err(Full::Table);
        }
        Ok(())
    }

    /// Hold a slot for `owner`'s `initialize` while the server answers it.
    pub(super) fn reserve(&self, owner: &Owner) -> Result<(), Full> {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        self.room_for(&mut table, owner, now)?;
        table.owners.entry(owner.clone()).or_default().pending += 1;
        table.pending += 1;
        Ok(())
    }

    pub(super) fn release(table: &mut Table, owner: &Owner) {
        table.pending = table.pending.saturating_sub(1);
        if let Entry::Occupied(mut e) = table.owners.entry(owner.clone()) {
            let entry = e.get_mut();
            entry.pending = entry.pending.saturating_sub(1);
            if entry.sessions.is_empty() && entry.pending == 0 {
                e.remove();
            }
        }
    }

    /// Bind `hash` to `owner`: with a reservation, always (the slot was held); without, when
    /// the limits allow.
    /// The binding's time (`now`) on success.
    pub(super) fn bind(
        &self,
        hash: SessionHash,
        owner: Owner,
        reserved: bool,
    ) -> Result<u64, Full> {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        if reserved {
            Self::release(&mut table, &owner);
        } else if !table.bindings.contains_key(&hash) {
            self.room_for(&mut table, &owner, now)?;
        }
        table.insert(hash, owner, now);
        Ok(now)
    }

    pub(super) fn forget(&self, hash: &SessionHash) {
        self.table().remove(hash);
    }
}

/// A slot held for an `initialize` in flight; released when dropped unconsumed (the server
/// failed, issued no session, or the client went away).
pub(super) struct Reservation {
    pub(super) shared: Arc<Shared>,
    pub(super) owner: Owner,
    pub(super) armed: bool,
}

impl Reservation {
    /// The owner, the slot now to be turned into a binding.
    pub(super) fn take(mut self) -> Owner {
        self.armed = false;
        self.owner.clone()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            Shared::release(&mut self.shared.table(), &self.owner);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
