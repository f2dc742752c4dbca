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
//! | an `initialize` (no `Mcp-Session-Id`) from a principal holding [`max_sessions_per_principal`](SessionBindingLayerBuilder::max_sessions_per_principal) live sessions | its least-recently-used session's binding is evicted if idle longer than the [`eviction_grace`](SessionBindingLayerBuilder::eviction_grace), and the request passes; otherwise 503 `too_many_sessions`, before the server sees it |
//! | no `Mcp-Session-Id`; the response issues one | passed through; the session is bound to the caller (kind + id) |
//! | more than one `Mcp-Session-Id` value | the unknown-session 404 below, before the server (it would read one value, this layer another) |
//! | a session id bound to the caller | passed through; the binding's idle timer restarts when the answer is not a 404, and again (at most every eighth of the idle timeout) while the answer's body streams data |
//! | a session id bound to another principal | 404, byte for byte the server's own unknown-session answer ([`UnknownSessionResponse`]) |
//! | a session id this layer does not know (never bound, expired, deleted) | the same 404: never passed through |
//! | `DELETE` by the owner, answered 2xx | the binding is forgotten |
//! | the owner's request answered with the [`UnknownSessionResponse`] (status and body) | the server dropped the session: the binding is forgotten |
//! | the owner's request answered any other 404 | the binding is kept but its idle timer not restarted (it expires when idle): a 404 from some other route must not unbind a live session, nor retries keep a dead one |
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
//! - **Idle expiry**: a binding without traffic on its session for
//!   [`idle_timeout`](SessionBindingLayerBuilder::idle_timeout) expires (default
//!   [`DEFAULT_IDLE_TIMEOUT`], rmcp's session keep-alive: five minutes). Traffic is what the
//!   server's keep-alive counts: the owner's requests the server answers (other than with a
//!   404), and data the server streams on them (a tool's progress notifications, a GET stream's
//!   messages). The streamed data restarts the timer at most every eighth of the idle timeout;
//!   it is counted per data frame rather than by holding the binding while a stream is open, so
//!   an open stream that stays silent (the server's session expires under it too) does not pin
//!   a binding, and a stream whose client vanished without the body being dropped cannot keep
//!   one forever.
//! - **Per principal**: at most [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`] live sessions each. One
//!   credential shared by many clients (a single API key, the development bypass) shares that
//!   cap, and clients that never end their sessions (some SDKs send no `DELETE` on close) leave
//!   them open until they expire; so at the cap a new session evicts the principal's
//!   least-recently-used binding when it has been idle for longer than
//!   [`eviction_grace`](SessionBindingLayerBuilder::eviction_grace) (default
//!   [`DEFAULT_EVICTION_GRACE`], one minute). The evicted id gets the unknown-session 404 from
//!   then on (still failing closed: its holder starts a new session). Only when none of the
//!   principal's sessions has been idle that long is the new one refused with the 503. With
//!   [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) outside (as in the `mcp-security`
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use sha2::Sha256;
use tower_layer::Layer;
use tower_service::Service;

use mcp_security_core::clock::{MonotonicClock, SystemMonotonicClock};
use mcp_security_core::config::ConfigError;
use mcp_security_core::rejection::ResponseFormat;
use mcp_security_core::{GuardBody, McpCall, Principal, Rejection};

mod body;
mod table;

pub use body::SessionBody;
use body::Watch;
use table::{Lookup, Owner, Reservation, SessionHash, Shared, Table};

/// The header carrying a legacy MCP session id (`Mcp-Session-Id`).
pub static SESSION_ID_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// The default bound on live bindings.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The default bound on one principal's live sessions.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 64;

/// The default eviction grace: at the per-principal cap, a new session evicts the principal's
/// least-recently-used one when that has been idle for longer than a minute.
pub const DEFAULT_EVICTION_GRACE: Duration = Duration::from_secs(60);

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

/// Binds legacy MCP sessions to the principal that created them; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use mcp_auth::session::SessionBindingLayer;
/// use mcp_security_core::{Principal, PrincipalKind};
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
    /// [`DEFAULT_IDLE_TIMEOUT`] without traffic; rmcp's unknown-session 404.
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
                grace_nanos: 0,
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

    /// How long a binding lives without traffic on its session (see the
    /// [module docs](self#limits)).
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_nanos(self.shared.idle_nanos)
    }

    /// How long a principal's least-recently-used session must have been idle to be evicted
    /// for a new one over the per-principal cap.
    pub fn eviction_grace(&self) -> Duration {
        Duration::from_nanos(self.shared.grace_nanos)
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
    eviction_grace: Duration,
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
            eviction_grace: DEFAULT_EVICTION_GRACE,
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
            .field("eviction_grace", &self.eviction_grace)
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
    /// [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`]). At the cap, its next `initialize` evicts its
    /// least-recently-used session if that has been idle for longer than the
    /// [`eviction_grace`](Self::eviction_grace), and is refused with a 503 otherwise (until one
    /// ends, expires or idles past the grace). Other principals are unaffected.
    pub fn max_sessions_per_principal(mut self, max: usize) -> Self {
        self.max_per_principal = max;
        self
    }

    /// How long a binding lives without traffic on its session (default
    /// [`DEFAULT_IDLE_TIMEOUT`], rmcp's session keep-alive). Once it expires the session id is
    /// refused like an unknown one, its owner's requests included, so a shorter timeout than the
    /// server's only ends sessions early; it never leaves one usable by others.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How long a principal's least-recently-used session must have been idle before a new
    /// `initialize` over [`max_sessions_per_principal`](Self::max_sessions_per_principal)
    /// evicts its binding (default [`DEFAULT_EVICTION_GRACE`]); when none of its sessions is
    /// that idle, the `initialize` gets the 503. The evicted id then gets the unknown-session
    /// 404, like an expired one. A grace at least as long as
    /// [`idle_timeout`](Self::idle_timeout) turns eviction off.
    pub fn eviction_grace(mut self, grace: Duration) -> Self {
        self.eviction_grace = grace;
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
                grace_nanos: u64::try_from(self.eviction_grace.as_nanos()).unwrap_or(u64::MAX),
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
    /// succeeded, or when the answer is the server's unknown-session response (status and
    /// body: the server dropped the session); otherwise, unless the answer is a 404, restart
    /// the idle timer, and again while the answer streams data. Any other 404 neither unbinds
    /// (it may come from another route: the layer sees every path) nor keeps the binding alive.
    Owned { hash: SessionHash, delete: bool },
}

/// Whether the request holds an `initialize` (as read by `McpInspectLayer`).
fn is_initialize(call: &McpCall) -> bool {
    call.messages()
        .iter()
        .any(|m| m.method() == Some("initialize"))
}

mcp_security_core::impl_inner_service!(SessionBinding, inner);

impl<S, B, ResBody> Service<Request<B>> for SessionBinding<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<SessionBody<ResBody>>>;
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
        let mut values = req.headers().get_all(&SESSION_ID_HEADER).iter();
        let Some(value) = values.next() else {
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
        };
        // The server reads one of several values (rmcp the first) and this layer could act on
        // another (a DELETE forgetting the wrong binding): refuse them all, like an unknown id.
        let detail = if values.next().is_some() {
            "more than one Mcp-Session-Id value"
        } else {
            let hash = shared.hash(value.as_bytes());
            match shared.lookup(&hash, principal) {
                Lookup::Owner => {
                    let after = After::Owned {
                        hash,
                        delete: req.method() == Method::DELETE,
                    };
                    return ResponseFuture::inner(
                        self.inner.call(req),
                        after,
                        Some(Arc::clone(&self.shared)),
                    );
                }
                Lookup::Foreign => "the session id is bound to another principal",
                Lookup::Unknown => "the session id is not bound (never issued, expired or ended)",
            }
        };
        let rejection = Rejection::new(shared.unknown.status, "session_not_found")
            .message("Session not found")
            .detail(detail);
        ResponseFuture::rejected(shared.unknown.to_response(rejection))
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
        Ready { response: Option<Response<GuardBody<SessionBody<B>>>> },
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

    fn rejected(response: Response<GuardBody<SessionBody<B>>>) -> Self {
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
    type Output = Result<Response<GuardBody<SessionBody<B>>>, E>;

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
                    return Poll::Ready(Ok(res.map(|b| GuardBody::inner(SessionBody::plain(b)))));
                };
                Poll::Ready(Ok(settle(&shared, after, res)))
            }
        }
    }
}

/// Record, refresh or forget a binding after the inner service answered.
fn settle<B>(
    shared: &Arc<Shared>,
    after: After,
    res: Response<B>,
) -> Response<GuardBody<SessionBody<B>>> {
    if let After::Owned { hash, delete } = after {
        let status = res.status();
        if delete && status.is_success() {
            shared.forget(&hash);
            return res.map(|b| GuardBody::inner(SessionBody::plain(b)));
        }
        let watch = if status == shared.unknown.status {
            Watch::unknown_session(Arc::clone(shared), hash)
        } else if status == StatusCode::NOT_FOUND {
            return res.map(|b| GuardBody::inner(SessionBody::plain(b)));
        } else {
            let now = shared.clock.now_nanos();
            shared.refresh(&hash, now);
            Watch::refreshing(Arc::clone(shared), hash, now)
        };
        return res.map(|b| GuardBody::inner(SessionBody::watched(b, watch)));
    }
    let issued = match res.headers().get(&SESSION_ID_HEADER) {
        Some(id) if res.status().is_success() => id,
        // Nothing to bind; a reservation is released as `after` drops.
        _ => return res.map(|b| GuardBody::inner(SessionBody::plain(b))),
    };
    let hash = shared.hash(issued.as_bytes());
    let bound = match after {
        After::BindIssued(owner) => shared.bind(hash, owner, false),
        After::BindReserved(reservation) => shared.bind(hash, reservation.take(), true),
        After::Nothing | After::Owned { .. } => {
            return res.map(|b| GuardBody::inner(SessionBody::plain(b)));
        }
    };
    match bound {
        Ok(now) => {
            let watch = Watch::refreshing(Arc::clone(shared), hash, now);
            res.map(|b| GuardBody::inner(SessionBody::watched(b, watch)))
        }
        // The client never learns the session id, so the unbound session is useless and the
        // session manager expires it.
        Err(full) => full
            .rejection(shared.max_per_principal)
            .into_response(&ResponseFormat::Json),
    }
}
#[cfg(test)]
mod tests;
