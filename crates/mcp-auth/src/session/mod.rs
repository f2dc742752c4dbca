//! [`SessionBindingLayer`]: bind each legacy MCP session (`Mcp-Session-Id`, the 2025-era
//! streamable HTTP transport) to the principal that created it.
//!
//! The MCP security best practices ask servers to bind session ids to the authenticated user so
//! that a leaked or guessed session id is useless to anyone else; rmcp (and most SDKs) do not.
//! This layer sits right after [`AuthLayer`](crate::AuthLayer), where the request's
//! [`Principal`] is known:
//!
//! | request | answer |
//! |---|---|
//! | no [`Principal`] (auth off, an exempt path) | passed through unchanged |
//! | an `initialize` (no `Mcp-Session-Id`) from a principal holding [`max_sessions_per_principal`](SessionBindingLayerBuilder::max_sessions_per_principal) live sessions | 503 `too_many_sessions`, before the server sees it |
//! | no `Mcp-Session-Id`; the response issues one | passed through; the session is bound to the caller (kind + id) |
//! | a session id bound to the caller | passed through; the binding's idle timer restarts |
//! | a session id bound to another principal | 404, byte for byte the server's own unknown-session answer ([`UnknownSessionResponse`]) |
//! | a session id this layer does not know (never bound, expired, deleted) | the same 404: never passed through |
//! | `DELETE` by the owner, answered 2xx | the binding is forgotten |
//! | the owner's request answered 404 | the binding is kept (it expires when idle): a 404 from some other route must not unbind a live session |
//!
//! Refusing unknown ids is what lets a binding expire before the server's session does: a session
//! whose binding is gone is unusable for everyone, its owner included (who, as the MCP transport
//! specification says of a 404, starts a new session). A foreign id and an unknown id get the
//! same answer, which is also what the server answers for a session it does not know, so a holder
//! of someone else's session id learns nothing from it. The default answer is rmcp's
//! ([`UnknownSessionResponse::rmcp`]); set another with
//! [`unknown_session_response`](SessionBindingLayerBuilder::unknown_session_response) to match
//! another server.
//!
//! Bindings live in this process: behind several replicas that restore each other's sessions
//! (rmcp's external session store), route each session to the replica that created it.
//!
//! # Limits
//!
//! - **Idle expiry**: a binding without a request naming its session for
//!   [`idle_timeout`](SessionBindingLayerBuilder::idle_timeout) expires (default
//!   [`DEFAULT_IDLE_TIMEOUT`], rmcp's session keep-alive: five minutes).
//! - **Per principal**: at most [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`] live sessions each. With
//!   [`McpInspectLayer`](mcp_core::inspect::McpInspectLayer) outside (as in the `mcp-security`
//!   stack) an `initialize` over the cap is refused before it reaches the server, so no orphan
//!   session is created; without it, the cap is applied when the server's answer issues the id,
//!   and the answer is replaced with the 503 (the client never learns the id, and the server
//!   expires the session).
//! - **In total**: at most [`DEFAULT_MAX_SESSIONS`]; over it, the same 503 (failing closed: an
//!   unbound session could be used by anyone who learns its id).
//!
//! Only a keyed hash (HMAC-SHA256 with a per-process random key) of each session id is kept,
//! never the id itself. The one lock is a `std` mutex held only for hash-map work, never across
//! an `.await`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use sha2::Sha256;
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::clock::{MonotonicClock, SystemMonotonicClock};
use mcp_core::config::ConfigError;
use mcp_core::rejection::ResponseFormat;
use mcp_core::{GuardBody, McpCall, Principal, PrincipalKind, Rejection};

/// The header carrying a legacy MCP session id (`Mcp-Session-Id`).
pub static SESSION_ID_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// The default bound on live bindings.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The default bound on one principal's live sessions.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 64;

/// The default idle timeout of a binding: five minutes, rmcp 3.9's session keep-alive
/// (`SessionConfig::DEFAULT_KEEP_ALIVE` of its `LocalSessionManager`: a session without any
/// traffic for that long is closed by the server).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The body rmcp 3.9's `StreamableHttpService` answers, with status 404 and no `Content-Type`,
/// for an `Mcp-Session-Id` it does not know.
pub const RMCP_UNKNOWN_SESSION_BODY: &str = "Not Found: Session not found";

/// What the layer answers for a session id that is not the caller's (another principal's, or
/// unknown): by default exactly what the server itself answers for an unknown session, so the
/// two cannot be told apart.
///
/// ```
/// use http::{HeaderValue, StatusCode};
/// use mcp_auth::session::{RMCP_UNKNOWN_SESSION_BODY, UnknownSessionResponse};
///
/// let rmcp = UnknownSessionResponse::rmcp();
/// assert_eq!(rmcp.status(), StatusCode::NOT_FOUND);
/// assert_eq!(rmcp.content_type(), None);
/// assert_eq!(rmcp.body(), RMCP_UNKNOWN_SESSION_BODY.as_bytes());
///
/// // A server that answers unknown sessions with JSON:
/// let other = UnknownSessionResponse::new(
///     StatusCode::NOT_FOUND,
///     Some(HeaderValue::from_static("application/json")),
///     r#"{"error":"session not found"}"#,
/// );
/// assert_eq!(other.content_type().unwrap(), "application/json");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSessionResponse {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl UnknownSessionResponse {
    /// rmcp 3.9's answer: `404`, no `Content-Type`, body [`RMCP_UNKNOWN_SESSION_BODY`]
    /// (`Not Found: Session not found`). The default.
    pub fn rmcp() -> Self {
        UnknownSessionResponse {
            status: StatusCode::NOT_FOUND,
            content_type: None,
            body: Bytes::from_static(RMCP_UNKNOWN_SESSION_BODY.as_bytes()),
        }
    }

    /// Another server's answer: its status, `Content-Type` (if it sends one) and body.
    pub fn new(
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: impl Into<Bytes>,
    ) -> Self {
        UnknownSessionResponse {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Content-Type`, if any.
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.content_type.as_ref()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The response, with `rejection` in its extensions for the audit layer.
    fn to_response<B>(&self, rejection: Rejection) -> Response<GuardBody<B>> {
        let mut res = Response::new(GuardBody::rejection(self.body.clone()));
        *res.status_mut() = self.status;
        if let Some(ct) = &self.content_type {
            res.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        res.extensions_mut().insert(rejection);
        res
    }
}

impl Default for UnknownSessionResponse {
    fn default() -> Self {
        UnknownSessionResponse::rmcp()
    }
}

/// A session id's keyed hash.
type SessionHash = [u8; 32];

/// Who owns a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Owner {
    kind: PrincipalKind,
    id: Box<str>,
}

impl Owner {
    fn of(principal: &Principal) -> Self {
        Owner {
            kind: principal.kind(),
            id: principal.id().into(),
        }
    }

    fn is(&self, principal: &Principal) -> bool {
        self.kind == principal.kind() && *self.id == *principal.id()
    }
}

#[derive(Debug)]
struct Binding {
    owner: Owner,
    last_seen: u64,
}

/// One principal's sessions and the `initialize` requests of theirs in flight.
#[derive(Debug, Default)]
struct OwnerEntry {
    sessions: Vec<SessionHash>,
    pending: usize,
}

#[derive(Debug, Default)]
struct Table {
    bindings: HashMap<SessionHash, Binding>,
    owners: HashMap<Owner, OwnerEntry>,
    /// `initialize` requests in flight, each holding a slot.
    pending: usize,
    /// When a full table may next be swept for expired bindings (monotonic nanoseconds).
    next_sweep: u64,
}

impl Table {
    /// Remove a binding and its owner's reference to it.
    fn remove(&mut self, hash: &SessionHash) {
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
    fn owner_load(&mut self, owner: &Owner, now: u64, idle: u64) -> usize {
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

    /// Whether one more session fits in the table, sweeping expired bindings when full (at
    /// most every eighth of the idle timeout).
    fn has_room(&mut self, max: usize, now: u64, idle: u64) -> bool {
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

    fn insert(&mut self, hash: SessionHash, owner: Owner, now: u64) {
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
enum Lookup {
    Unknown,
    Owner,
    Foreign,
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    Principal,
    Table,
}

impl Full {
    fn rejection(self, per_principal: usize) -> Rejection {
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

struct Shared {
    enabled: bool,
    key: Hmac<Sha256>,
    max_sessions: usize,
    max_per_principal: usize,
    idle_nanos: u64,
    unknown: UnknownSessionResponse,
    clock: Arc<dyn MonotonicClock>,
    table: Mutex<Table>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBindingLayer")
            .field("enabled", &self.enabled)
            .field("max_sessions", &self.max_sessions)
            .field("max_per_principal", &self.max_per_principal)
            .field("idle_nanos", &self.idle_nanos)
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn hash(&self, session_id: &[u8]) -> SessionHash {
        let mut mac = self.key.clone();
        mac.update(session_id);
        mac.finalize().into_bytes().into()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who owns `hash`, restarting the idle timer when it is the caller.
    fn lookup(&self, hash: &SessionHash, principal: &Principal) -> Lookup {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        let Some(binding) = table.bindings.get_mut(hash) else {
            return Lookup::Unknown;
        };
        if now.saturating_sub(binding.last_seen) > self.idle_nanos {
            table.remove(hash);
            return Lookup::Unknown;
        }
        if binding.owner.is(principal) {
            binding.last_seen = now;
            Lookup::Owner
        } else {
            Lookup::Foreign
        }
    }

    /// Whether `owner` may open one more session now.
    fn room_for(&self, table: &mut Table, owner: &Owner, now: u64) -> Result<(), Full> {
        if table.owner_load(owner, now, self.idle_nanos) >= self.max_per_principal {
            return Err(Full::Principal);
        }
        if !table.has_room(self.max_sessions, now, self.idle_nanos) {
            return Err(Full::Table);
        }
        Ok(())
    }

    /// Hold a slot for `owner`'s `initialize` while the server answers it.
    fn reserve(&self, owner: &Owner) -> Result<(), Full> {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        self.room_for(&mut table, owner, now)?;
        table.owners.entry(owner.clone()).or_default().pending += 1;
        table.pending += 1;
        Ok(())
    }

    fn release(table: &mut Table, owner: &Owner) {
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
    fn bind(&self, hash: SessionHash, owner: Owner, reserved: bool) -> Result<(), Full> {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        if reserved {
            Self::release(&mut table, &owner);
        } else if !table.bindings.contains_key(&hash) {
            self.room_for(&mut table, &owner, now)?;
        }
        table.insert(hash, owner, now);
        Ok(())
    }

    fn forget(&self, hash: &SessionHash) {
        self.table().remove(hash);
    }
}

/// A slot held for an `initialize` in flight; released when dropped unconsumed (the server
/// failed, issued no session, or the client went away).
struct Reservation {
    shared: Arc<Shared>,
    owner: Owner,
    armed: bool,
}

impl Reservation {
    /// The owner, the slot now to be turned into a binding.
    fn take(mut self) -> Owner {
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

/// Binds legacy MCP sessions to the principal that created them; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mcp_auth::session::SessionBindingLayer;
/// use mcp_core::{Principal, PrincipalKind};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // Stands in for AuthLayer + an MCP server that issues session "s-1" on initialize.
/// let mut svc = ServiceBuilder::new()
///     .layer(SessionBindingLayer::new())
///     .service_fn(|req: Request<Full<Bytes>>| async move {
///         let mut res = Response::new(Full::new(Bytes::new()));
///         if !req.headers().contains_key("mcp-session-id") {
///             res.headers_mut().insert("mcp-session-id", "s-1".parse().unwrap());
///         }
///         Ok::<_, Infallible>(res)
///     });
/// let as_principal = |id: &str, session: Option<&str>| {
///     let mut req = Request::post("/mcp");
///     if let Some(s) = session {
///         req = req.header("mcp-session-id", s);
///     }
///     let mut req = req.body(Full::default()).unwrap();
///     req.extensions_mut().insert(Principal::builder(id, PrincipalKind::Jwt).build());
///     req
/// };
///
/// let created = svc.ready().await?.call(as_principal("alice", None)).await?;
/// assert_eq!(created.headers()["mcp-session-id"], "s-1");
/// let own = svc.ready().await?.call(as_principal("alice", Some("s-1"))).await?;
/// assert_eq!(own.status(), StatusCode::OK);
/// // Another principal, or an id never issued: rmcp's own unknown-session answer.
/// for (who, id) in [("mallory", "s-1"), ("alice", "s-2")] {
///     let refused = svc.ready().await?.call(as_principal(who, Some(id))).await?;
///     assert_eq!(refused.status(), StatusCode::NOT_FOUND);
///     assert!(refused.headers().get("content-type").is_none());
///     assert_eq!(refused.into_body().collect().await?.to_bytes(), "Not Found: Session not found");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SessionBindingLayer {
    shared: Arc<Shared>,
}

impl SessionBindingLayer {
    /// The layer with the defaults: at most [`DEFAULT_MAX_SESSIONS`] bindings,
    /// [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`] per principal, each expiring after
    /// [`DEFAULT_IDLE_TIMEOUT`] without a request; rmcp's unknown-session 404.
    ///
    /// # Panics
    /// When the operating system has no random source for the hash key; use
    /// [`builder`](Self::builder) to get that as an error instead.
    pub fn new() -> Self {
        match SessionBindingLayer::builder().build() {
            Ok(layer) => layer,
            Err(e) => panic!("session binding: {e}"),
        }
    }

    /// A builder.
    pub fn builder() -> SessionBindingLayerBuilder {
        SessionBindingLayerBuilder::default()
    }

    /// A layer that passes every request through untouched (binding turned off).
    pub fn disabled() -> Self {
        SessionBindingLayer {
            shared: Arc::new(Shared {
                enabled: false,
                key: <Hmac<Sha256> as KeyInit>::new(&Default::default()),
                max_sessions: 0,
                max_per_principal: 0,
                idle_nanos: 0,
                unknown: UnknownSessionResponse::rmcp(),
                clock: Arc::new(SystemMonotonicClock::new()),
                table: Mutex::new(Table::default()),
            }),
        }
    }

    /// Whether sessions are bound (`false` for [`disabled`](Self::disabled)).
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled
    }

    /// How many bindings are held (expired ones included until they are looked up or swept).
    pub fn len(&self) -> usize {
        self.shared.table().bindings.len()
    }

    /// Whether no binding is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long a binding lives without a request naming its session.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_nanos(self.shared.idle_nanos)
    }

    /// The most live sessions one principal may hold.
    pub fn max_sessions_per_principal(&self) -> usize {
        self.shared.max_per_principal
    }

    /// The most bindings held at once.
    pub fn max_sessions(&self) -> usize {
        self.shared.max_sessions
    }

    /// The answer for a session id that is not the caller's.
    pub fn unknown_session_response(&self) -> &UnknownSessionResponse {
        &self.shared.unknown
    }

    /// A one-line summary for start-up logs.
    pub fn summary(&self) -> String {
        if self.shared.enabled {
            format!(
                "session binding (max {}, {} per principal, idle {:?})",
                self.shared.max_sessions,
                self.shared.max_per_principal,
                Duration::from_nanos(self.shared.idle_nanos)
            )
        } else {
            "session binding off".to_owned()
        }
    }
}

impl Default for SessionBindingLayer {
    fn default() -> Self {
        SessionBindingLayer::new()
    }
}

/// Builds a [`SessionBindingLayer`]; see [`SessionBindingLayer::builder`].
#[must_use]
pub struct SessionBindingLayerBuilder {
    max_sessions: usize,
    max_per_principal: usize,
    idle_timeout: Duration,
    unknown: UnknownSessionResponse,
    clock: Arc<dyn MonotonicClock>,
    key: Option<Vec<u8>>,
}

impl Default for SessionBindingLayerBuilder {
    fn default() -> Self {
        SessionBindingLayerBuilder {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            unknown: UnknownSessionResponse::rmcp(),
            clock: Arc::new(SystemMonotonicClock::new()),
            key: None,
        }
    }
}

impl fmt::Debug for SessionBindingLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBindingLayerBuilder")
            .field("max_sessions", &self.max_sessions)
            .field("max_per_principal", &self.max_per_principal)
            .field("idle_timeout", &self.idle_timeout)
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

impl SessionBindingLayerBuilder {
    /// The most bindings held at once (default [`DEFAULT_MAX_SESSIONS`]). When that many live
    /// sessions are bound, a new session is refused with a 503.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// The most live sessions one principal may hold (default
    /// [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`]); its next `initialize` is refused with a 503
    /// until one ends or expires. Other principals are unaffected.
    pub fn max_sessions_per_principal(mut self, max: usize) -> Self {
        self.max_per_principal = max;
        self
    }

    /// How long a binding lives without a request naming its session (default
    /// [`DEFAULT_IDLE_TIMEOUT`], rmcp's session keep-alive). Once it expires the session id is
    /// refused like an unknown one, its owner's requests included, so a shorter timeout than the
    /// server's only ends sessions early; it never leaves one usable by others.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The answer for a session id that is not the caller's (default
    /// [`UnknownSessionResponse::rmcp`]): set it to the server's own answer for an unknown
    /// session.
    pub fn unknown_session_response(mut self, response: UnknownSessionResponse) -> Self {
        self.unknown = response;
        self
    }

    /// The clock for idle expiry (default the system's monotonic clock).
    pub fn clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HMAC key for session-id hashes (default: 32 random bytes per process).
    pub fn hash_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `max_sessions`, `max_sessions_per_principal` or `idle_timeout` of zero; `hash_key` when
    /// no key was given and the system has no random source.
    pub fn build(self) -> Result<SessionBindingLayer, ConfigError> {
        if self.max_sessions == 0 {
            return Err(ConfigError::new("max_sessions", "must be more than zero"));
        }
        if self.max_per_principal == 0 {
            return Err(ConfigError::new(
                "max_sessions_per_principal",
                "must be more than zero",
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new("idle_timeout", "must be more than zero"));
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let mut bytes = vec![0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    ConfigError::new("hash_key", format!("no system randomness: {e}"))
                })?;
                bytes
            }
        };
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .map_err(|_| ConfigError::new("hash_key", "not a valid HMAC key"))?;
        Ok(SessionBindingLayer {
            shared: Arc::new(Shared {
                enabled: true,
                key,
                max_sessions: self.max_sessions,
                max_per_principal: self.max_per_principal,
                idle_nanos: u64::try_from(self.idle_timeout.as_nanos()).unwrap_or(u64::MAX),
                unknown: self.unknown,
                clock: self.clock,
                table: Mutex::new(Table::default()),
            }),
        })
    }
}

impl<S> Layer<S> for SessionBindingLayer {
    type Service = SessionBinding<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionBinding {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`SessionBindingLayer`].
#[derive(Debug, Clone)]
pub struct SessionBinding<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What to do with the inner service's response.
#[derive(Debug)]
enum After {
    /// Nothing.
    Nothing,
    /// Bind a session id the response issues to this owner, if the limits allow.
    BindIssued(Owner),
    /// Bind a session id the response to an `initialize` issues, in the slot held for it.
    BindReserved(Reservation),
    /// The owner's request on a bound session: forget the binding when the owner's DELETE
    /// succeeded. A 404 does not unbind: it may come from another route (the layer sees every
    /// path), and an unbound live session could be used by anyone holding its id.
    Owned { hash: SessionHash, delete: bool },
}

/// Whether the request holds an `initialize` (as read by `McpInspectLayer`).
fn is_initialize(call: &McpCall) -> bool {
    call.messages()
        .iter()
        .any(|m| m.method() == Some("initialize"))
}

impl<S, B, ResBody> Service<Request<B>> for SessionBinding<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &self.shared;
        let principal = match req.extensions().get::<Principal>() {
            Some(p) if shared.enabled => p,
            _ => return ResponseFuture::inner(self.inner.call(req), After::Nothing, None),
        };
        let mut values = req.headers().get_all(&SESSION_ID_HEADER).iter().peekable();
        if values.peek().is_none() {
            let owner = Owner::of(principal);
            let initialize = req.method() == Method::POST
                && req.extensions().get::<McpCall>().is_some_and(is_initialize);
            let after = if initialize {
                if let Err(full) = shared.reserve(&owner) {
                    let format = ResponseFormat::for_request(req.headers(), req.extensions());
                    let rejection = full.rejection(shared.max_per_principal);
                    return ResponseFuture::rejected(rejection.into_response(&format));
                }
                After::BindReserved(Reservation {
                    shared: Arc::clone(shared),
                    owner,
                    armed: true,
                })
            } else {
                After::BindIssued(owner)
            };
            return ResponseFuture::inner(
                self.inner.call(req),
                after,
                Some(Arc::clone(&self.shared)),
            );
        }
        let mut owned = None;
        for value in values {
            let hash = shared.hash(value.as_bytes());
            let detail = match shared.lookup(&hash, principal) {
                Lookup::Owner => {
                    owned = Some(hash);
                    continue;
                }
                Lookup::Foreign => "the session id is bound to another principal",
                Lookup::Unknown => "the session id is not bound (never issued, expired or ended)",
            };
            let rejection = Rejection::new(shared.unknown.status, "session_not_found")
                .message("Session not found")
                .detail(detail);
            return ResponseFuture::rejected(shared.unknown.to_response(rejection));
        }
        let after = match owned {
            Some(hash) => After::Owned {
                hash,
                delete: req.method() == Method::DELETE,
            },
            None => After::Nothing,
        };
        ResponseFuture::inner(self.inner.call(req), after, Some(Arc::clone(&self.shared)))
    }
}

pin_project! {
    /// The response future of [`SessionBinding`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner {
            #[pin]
            future: F,
            after: After,
            shared: Option<Arc<Shared>>,
        },
        Ready { response: Option<Response<GuardBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F, after: After, shared: Option<Arc<Shared>>) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                future,
                after,
                shared,
            },
        }
    }

    fn rejected(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
            KindProj::Inner {
                future,
                after,
                shared,
            } => {
                let res = match future.poll(cx) {
                    Poll::Ready(Ok(res)) => res,
                    // Dropping `after` releases a reservation.
                    Poll::Ready(Err(e)) => {
                        *after = After::Nothing;
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => return Poll::Pending,
                };
                let after = std::mem::replace(after, After::Nothing);
                let Some(shared) = shared.take() else {
                    return Poll::Ready(Ok(res.map(GuardBody::inner)));
                };
                Poll::Ready(Ok(settle(&shared, after, res)))
            }
        }
    }
}

/// Record or forget a binding after the inner service answered.
fn settle<B>(shared: &Shared, after: After, res: Response<B>) -> Response<GuardBody<B>> {
    if let After::Owned { hash, delete } = &after {
        if *delete && res.status().is_success() {
            shared.forget(hash);
        }
        return res.map(GuardBody::inner);
    }
    let issued = match res.headers().get(&SESSION_ID_HEADER) {
        Some(id) if res.status().is_success() => id,
        // Nothing to bind; a reservation is released as `after` drops.
        _ => return res.map(GuardBody::inner),
    };
    let hash = shared.hash(issued.as_bytes());
    let bound = match after {
        After::BindIssued(owner) => shared.bind(hash, owner, false),
        After::BindReserved(reservation) => shared.bind(hash, reservation.take(), true),
        After::Nothing | After::Owned { .. } => Ok(()),
    };
    match bound {
        Ok(()) => res.map(GuardBody::inner),
        // The client never learns the session id, so the unbound session is useless and the
        // session manager expires it.
        Err(full) => full
            .rejection(shared.max_per_principal)
            .into_response(&ResponseFormat::Json),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::HeaderValue;
    use http_body_util::{BodyExt, Full};
    use mcp_core::clock::ManualMonotonicClock;
    use mcp_core::inspect::McpInspectLayer;
    use mcp_core::jsonrpc::parse_envelope;
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt};

    type Res = Response<GuardBody<Full<Bytes>>>;

    /// An MCP server stand-in: issues `s-<n>` on a request without a session id (unless the
    /// body is `no-session`), answers 404 for a session id in `gone`, 202 for DELETE, 200
    /// otherwise; echoes the principal it saw. `calls` counts the requests it saw.
    fn inner_counting<B: Send + 'static>(
        gone: &'static [&'static str],
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        let counter = Arc::new(AtomicUsize::new(0));
        tower::service_fn(move |req: Request<B>| {
            let counter = Arc::clone(&counter);
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                let who = req
                    .extensions()
                    .get::<Principal>()
                    .map_or("-".to_owned(), |p| p.id().to_owned());
                let mut res = Response::new(Full::new(Bytes::from(who)));
                match req.headers().get("mcp-session-id") {
                    None if req.headers().contains_key("x-no-session") => {}
                    None => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        res.headers_mut().insert(
                            "mcp-session-id",
                            HeaderValue::from_str(&format!("s-{n}")).unwrap(),
                        );
                    }
                    Some(id) if gone.iter().any(|g| id == g) => {
                        *res.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Some(_) if req.method() == Method::DELETE => {
                        *res.status_mut() = StatusCode::ACCEPTED;
                    }
                    Some(_) => {}
                }
                Ok::<_, Infallible>(res)
            }
        })
    }

    fn inner<B: Send + 'static>(
        gone: &'static [&'static str],
    ) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        inner_counting(gone, Arc::new(AtomicUsize::new(0)))
    }

    fn principal(id: &str, kind: PrincipalKind) -> Principal {
        Principal::builder(id, kind).scopes(["*"]).build()
    }

    fn request(
        method: Method,
        session: Option<&str>,
        who: Option<&Principal>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri("/mcp");
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        let mut req = b.body(Full::default()).unwrap();
        if let Some(p) = who {
            req.extensions_mut().insert(p.clone());
        }
        req
    }

    /// An `initialize` POST as `McpInspectLayer` leaves it: the envelope in the extensions.
    fn initialize(who: &Principal) -> Request<Full<Bytes>> {
        let body = br#"{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{}}"#;
        let mut req = Request::post("/mcp")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        req.extensions_mut().insert(parse_envelope(body).unwrap());
        req.extensions_mut().insert(who.clone());
        req
    }

    async fn call<S>(svc: &mut S, req: Request<Full<Bytes>>) -> Res
    where
        S: Service<Request<Full<Bytes>>, Response = Res, Error = Infallible>,
    {
        svc.ready().await.unwrap().call(req).await.unwrap()
    }

    async fn body(res: Res) -> Bytes {
        res.into_body().collect().await.unwrap().to_bytes()
    }

    fn layer_with_clock(clock: Arc<ManualMonotonicClock>, max: usize) -> SessionBindingLayer {
        SessionBindingLayer::builder()
            .clock(clock)
            .max_sessions(max)
            .idle_timeout(Duration::from_secs(60))
            .hash_key(*b"0123456789abcdef0123456789abcdef")
            .build()
            .unwrap()
    }

    const FOREIGN: &str = "the session id is bound to another principal";
    const UNKNOWN: &str = "the session id is not bound (never issued, expired or ended)";

    /// rmcp's own unknown-session answer: 404, no content type, its text; the rejection (with
    /// why) in the extensions for the audit.
    async fn assert_not_found(res: Res, detail: &str) {
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.headers().get("content-type").is_none());
        assert!(res.headers().get("mcp-session-id").is_none());
        assert!(res.headers().get("www-authenticate").is_none());
        assert_eq!(res.headers().len(), 0, "{:?}", res.headers());
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(r.code(), "session_not_found");
        assert_eq!(r.internal_detail(), Some(detail));
        assert_eq!(body(res).await, RMCP_UNKNOWN_SESSION_BODY);
    }

    async fn assert_too_many(res: Res, body_json: Value) {
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(
            res.headers().get("mcp-session-id").is_none(),
            "no session id reaches the client"
        );
        assert_eq!(
            res.extensions().get::<Rejection>().unwrap().code(),
            "too_many_sessions"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body(res).await).unwrap(),
            body_json
        );
    }

    #[tokio::test]
    async fn owner_passes_another_principal_gets_the_servers_404() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let mallory = principal("mallory", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner(&[]));

        let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        assert_eq!(layer.len(), 1);

        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "alice");

        for method in [Method::GET, Method::POST, Method::DELETE] {
            let res = call(&mut svc, request(method, Some("s-0"), Some(&mallory))).await;
            assert_not_found(res, FOREIGN).await;
        }
        // The owner is unaffected by the attempts.
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn same_id_of_another_kind_is_another_principal() {
        let as_key = principal("alice", PrincipalKind::ApiKey);
        let as_jwt = principal("alice", PrincipalKind::Jwt);
        let mut svc = SessionBindingLayer::new().layer(inner(&[]));
        let res = call(&mut svc, request(Method::POST, None, Some(&as_key))).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&as_jwt))).await;
        assert_not_found(res, FOREIGN).await;
        // Same kind and id but other scopes: the same principal.
        let narrower = Principal::builder("alice", PrincipalKind::ApiKey)
            .scopes(["notes:read"])
            .build();
        let res = call(
            &mut svc,
            request(Method::POST, Some("s-0"), Some(&narrower)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_jsonrpc_request_gets_the_same_404_as_any_other() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        // McpInspectLayer outside, as in the stack: the McpCall lands in the extensions, yet
        // the answer stays the server's (rmcp answers an unknown session without JSON-RPC).
        let layer = SessionBindingLayer::new();
        let mut svc = ServiceBuilder::new()
            .layer(McpInspectLayer::new())
            .map_request(move |mut req: Request<_>| {
                let who = if req.headers().contains_key("x-bob") {
                    bob.clone()
                } else {
                    alice.clone()
                };
                req.extensions_mut().insert(who);
                req
            })
            .layer(layer.clone())
            .service(inner(&[]));
        let post = |session: Option<&str>, bob: bool| {
            let mut b = Request::post("/mcp")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            if let Some(s) = session {
                b = b.header("mcp-session-id", s);
            }
            if bob {
                b = b.header("x-bob", "1");
            }
            b.body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"echo"}}"#,
            )))
            .unwrap()
        };
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(post(None, false))
            .await
            .unwrap();
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        for (session, bob) in [(Some("s-0"), true), (Some("s-9"), false)] {
            let res = svc
                .ready()
                .await
                .unwrap()
                .call(post(session, bob))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
            assert!(res.headers().get("content-type").is_none());
            assert!(res.headers().get("mcp-session-id").is_none());
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(bytes, RMCP_UNKNOWN_SESSION_BODY);
        }
    }

    #[tokio::test]
    async fn unknown_session_ids_are_refused_never_passed_through() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
        for method in [Method::POST, Method::GET, Method::DELETE] {
            let res = call(&mut svc, request(method, Some("nope"), Some(&alice))).await;
            assert_not_found(res, UNKNOWN).await;
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            0,
            "the server saw none of them"
        );
        assert!(layer.is_empty());
    }

    #[tokio::test]
    async fn requests_without_principal_pass_through() {
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner(&[]));
        let res = call(&mut svc, request(Method::POST, None, None)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        assert!(layer.is_empty());
        let res = call(&mut svc, request(Method::POST, Some("s-0"), None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "-");
        let res = call(&mut svc, request(Method::POST, Some("never"), None)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_custom_unknown_session_answer() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::builder()
            .unknown_session_response(UnknownSessionResponse::new(
                StatusCode::NOT_FOUND,
                Some(HeaderValue::from_static("application/json")),
                r#"{"error":"session not found"}"#,
            ))
            .build()
            .unwrap();
        let mut svc = layer.layer(inner(&[]));
        let res = call(&mut svc, request(Method::POST, Some("nope"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(body(res).await, r#"{"error":"session not found"}"#);
    }

    #[tokio::test]
    async fn disabled_layer_binds_nothing() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::disabled();
        assert!(!layer.is_enabled());
        assert_eq!(layer.summary(), "session binding off");
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = call(&mut svc, request(Method::POST, Some("never"), Some(&bob))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(layer.is_empty());
    }

    #[tokio::test]
    async fn owner_delete_forgets_the_binding() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        // Someone else's DELETE is refused and forgets nothing.
        let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&bob))).await;
        assert_not_found(res, FOREIGN).await;
        assert_eq!(layer.len(), 1);
        let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert!(layer.is_empty());
        // Ended: refused for its owner too, without asking the server.
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_not_found(res, UNKNOWN).await;
    }

    #[tokio::test]
    async fn an_inner_404_keeps_the_binding() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::new();
        // "s-0" is issued, then the owner gets a 404 (another route, or the session is gone).
        let mut svc = layer.layer(inner(&["s-0"]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_eq!(layer.len(), 1);
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.extensions().get::<Rejection>().is_none());
        assert_eq!(layer.len(), 1);
        // The session is still bound: another principal gets our 404, not the inner service.
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
        assert_not_found(res, FOREIGN).await;
    }

    #[tokio::test]
    async fn only_a_hash_of_the_session_id_is_kept() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        let table = layer.shared.table();
        let (hash, _) = table.bindings.iter().next().unwrap();
        assert_ne!(&hash[..3], b"s-0");
        assert_eq!(*hash, layer.shared.hash(b"s-0"));
        // Another process (another key) hashes the same id differently.
        assert_ne!(*hash, SessionBindingLayer::new().shared.hash(b"s-0"));
    }

    #[tokio::test]
    async fn idle_bindings_expire_and_activity_keeps_them() {
        let clock = Arc::new(ManualMonotonicClock::new(0));
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = layer_with_clock(Arc::clone(&clock), 10);
        let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        clock.advance(Duration::from_secs(50));
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        clock.advance(Duration::from_secs(50)); // 50 s since the last request: still bound
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
        assert_not_found(res, FOREIGN).await;
        clock.advance(Duration::from_secs(61));
        // Expired: refused for everyone, the owner included; the server is not asked.
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        for who in [&bob, &alice] {
            let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(who))).await;
            assert_not_found(res, UNKNOWN).await;
        }
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert!(layer.is_empty());
    }

    #[tokio::test]
    async fn full_table_refuses_new_sessions_until_bindings_expire() {
        let clock = Arc::new(ManualMonotonicClock::new(0));
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = layer_with_clock(Arc::clone(&clock), 2);
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_eq!(layer.len(), 2);

        // Without an envelope (no McpInspectLayer), refused when the server's answer issues it.
        let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_too_many(
            res,
            json!({"error": "too_many_sessions", "message": "Too many sessions; try again later"}),
        )
        .await;
        assert_eq!(layer.len(), 2);

        // Existing sessions keep working.
        let res = call(&mut svc, request(Method::POST, Some("s-1"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);

        clock.advance(Duration::from_secs(61));
        let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["mcp-session-id"], "s-3");
        assert_eq!(layer.len(), 1, "the expired bindings were swept");
    }

    #[tokio::test]
    async fn per_principal_cap_refuses_initialize_before_the_server() {
        let clock = Arc::new(ManualMonotonicClock::new(0));
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = SessionBindingLayer::builder()
            .clock(Arc::clone(&clock) as Arc<dyn MonotonicClock>)
            .idle_timeout(Duration::from_secs(60))
            .max_sessions_per_principal(2)
            .build()
            .unwrap();
        let mut svc = layer.layer(inner_counting(&[], Arc::clone(&calls)));
        for expected in ["s-0", "s-1"] {
            let res = call(&mut svc, initialize(&alice)).await;
            assert_eq!(res.headers()["mcp-session-id"], expected);
        }
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "the server never saw the third"
        );
        assert_too_many(
            res,
            json!({"jsonrpc": "2.0", "id": "init-1", "error": {"code": -32000,
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "data": {"status": 503, "code": "too_many_sessions", "max_sessions": 2}}}),
        )
        .await;
        // Bob is unaffected.
        let res = call(&mut svc, initialize(&bob)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-2");
        // Alice's sessions still work; ending one frees a slot.
        let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-3");
        assert_eq!(
            call(&mut svc, initialize(&alice)).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // So does idle expiry.
        clock.advance(Duration::from_secs(61));
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-4");
        assert_eq!(layer.len(), 2, "alice's new one and bob's expired one");
    }

    #[tokio::test]
    async fn initializes_in_flight_hold_their_slot_until_answered_or_dropped() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::builder()
            .max_sessions_per_principal(1)
            .build()
            .unwrap();
        let mut svc = layer.layer(inner(&[]));
        // The first initialize is in flight (not yet answered): the second is refused.
        let first = svc.ready().await.unwrap().call(initialize(&alice));
        let second = call(&mut svc, initialize(&alice)).await;
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The client goes away: the slot is free again.
        drop(first);
        let res = call(&mut svc, initialize(&alice)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        assert_eq!(
            call(&mut svc, initialize(&alice)).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // An initialize the server answers without a session (an error) frees its slot too.
        let other = principal("carol", PrincipalKind::Jwt);
        let mut req = initialize(&other);
        req.headers_mut()
            .insert("x-no-session", HeaderValue::from_static("1"));
        assert_eq!(call(&mut svc, req).await.status(), StatusCode::OK);
        let res = call(&mut svc, initialize(&other)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-1");
        assert_eq!(layer.shared.table().pending, 0);
    }

    #[tokio::test]
    async fn per_principal_cap_without_an_envelope_applies_when_the_id_is_issued() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::builder()
            .max_sessions_per_principal(1)
            .build()
            .unwrap();
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_too_many(
            res,
            json!({"error": "too_many_sessions",
                "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
                "max_sessions": 1}),
        )
        .await;
        assert_eq!(layer.len(), 1);
    }

    #[tokio::test]
    async fn any_value_not_the_callers_among_several_session_headers_is_refused() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let mut svc = SessionBindingLayer::new().layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        call(&mut svc, request(Method::POST, None, Some(&bob))).await;
        let mut req = request(Method::POST, Some("s-1"), Some(&bob));
        req.headers_mut()
            .append("mcp-session-id", HeaderValue::from_static("s-0"));
        let res = call(&mut svc, req).await;
        assert_not_found(res, FOREIGN).await;
        let mut req = request(Method::POST, Some("s-1"), Some(&bob));
        req.headers_mut()
            .append("mcp-session-id", HeaderValue::from_static("unknown"));
        let res = call(&mut svc, req).await;
        assert_not_found(res, UNKNOWN).await;
    }

    #[test]
    fn builder_refuses_zero_limits() {
        let e = SessionBindingLayer::builder()
            .max_sessions(0)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "max_sessions");
        let e = SessionBindingLayer::builder()
            .max_sessions_per_principal(0)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "max_sessions_per_principal");
        let e = SessionBindingLayer::builder()
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "idle_timeout");
        let layer = SessionBindingLayer::new();
        assert!(layer.is_enabled());
        assert_eq!(layer.idle_timeout(), Duration::from_secs(300));
        assert_eq!(layer.max_sessions_per_principal(), 64);
        assert_eq!(layer.max_sessions(), 100_000);
        assert_eq!(
            layer.unknown_session_response(),
            &UnknownSessionResponse::rmcp()
        );
        assert_eq!(
            layer.summary(),
            "session binding (max 100000, 64 per principal, idle 300s)"
        );
    }
}
