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
//! | no `Mcp-Session-Id`; the response issues one | passed through; the session is bound to the caller (kind + id) |
//! | a session id bound to the caller | passed through; the binding's idle timer restarts |
//! | a session id bound to another principal | 404, as for an unknown session (JSON-RPC error with the request's id for MCP POSTs) |
//! | a session id this layer does not know | passed through: the inner server answers 404 itself |
//! | `DELETE` by the owner, answered 2xx | the binding is forgotten |
//! | the owner's request answered 404 | the binding is kept (it expires when idle): a 404 from some other route must not unbind a live session |
//!
//! Only a keyed hash (HMAC-SHA256 with a per-process random key) of each session id is kept,
//! never the id itself. The table is bounded: an entry idle for longer than
//! [`idle_timeout`](SessionBindingLayerBuilder::idle_timeout) (default one hour, far above rmcp's
//! five-minute session keep-alive) expires, and when [`max_sessions`](SessionBindingLayerBuilder::max_sessions)
//! live bindings exist a response issuing one more session is replaced with a 503: failing
//! closed, since an unbound session could be used by anyone who learns its id.
//!
//! The one lock is a `std` mutex held only for a hash-map lookup or insert, never across an
//! `.await`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http::header::HeaderName;
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use sha2::Sha256;
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::clock::{MonotonicClock, SystemMonotonicClock};
use mcp_core::config::ConfigError;
use mcp_core::rejection::ResponseFormat;
use mcp_core::{GuardBody, Principal, PrincipalKind, Rejection};

/// The header carrying a legacy MCP session id (`Mcp-Session-Id`).
pub static SESSION_ID_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// The default bound on live bindings.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The default idle timeout of a binding: one hour.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// A session id's keyed hash.
type SessionHash = [u8; 32];

/// Who owns a session.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Default)]
struct Table {
    bindings: HashMap<SessionHash, Binding>,
    /// When a full table may next be swept for expired bindings (monotonic nanoseconds).
    next_sweep: u64,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Unknown,
    Owner,
    Foreign,
}

struct Shared {
    enabled: bool,
    key: Hmac<Sha256>,
    max_sessions: usize,
    idle_nanos: u64,
    clock: Arc<dyn MonotonicClock>,
    table: Mutex<Table>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBindingLayer")
            .field("enabled", &self.enabled)
            .field("max_sessions", &self.max_sessions)
            .field("idle_nanos", &self.idle_nanos)
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

    fn expired(&self, binding: &Binding, now: u64) -> bool {
        now.saturating_sub(binding.last_seen) > self.idle_nanos
    }

    /// Who owns `hash`, restarting the idle timer when it is the caller.
    fn lookup(&self, hash: &SessionHash, principal: &Principal) -> Lookup {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        let Some(binding) = table.bindings.get_mut(hash) else {
            return Lookup::Unknown;
        };
        if self.expired(binding, now) {
            table.bindings.remove(hash);
            return Lookup::Unknown;
        }
        if binding.owner.is(principal) {
            binding.last_seen = now;
            Lookup::Owner
        } else {
            Lookup::Foreign
        }
    }

    /// Bind `hash` to `owner`; `false` when the table is full of live bindings.
    fn bind(&self, hash: SessionHash, owner: Owner) -> bool {
        let now = self.clock.now_nanos();
        let mut table = self.table();
        if !table.bindings.contains_key(&hash) && table.bindings.len() >= self.max_sessions {
            if now < table.next_sweep {
                return false;
            }
            let idle = self.idle_nanos;
            table
                .bindings
                .retain(|_, b| now.saturating_sub(b.last_seen) <= idle);
            // A full table of live sessions is swept at most every eighth of the idle timeout.
            table.next_sweep = now.saturating_add(idle / 8);
            if table.bindings.len() >= self.max_sessions {
                return false;
            }
        }
        table.bindings.insert(
            hash,
            Binding {
                owner,
                last_seen: now,
            },
        );
        true
    }

    fn forget(&self, hash: &SessionHash) {
        self.table().bindings.remove(hash);
    }
}

/// Binds legacy MCP sessions to the principal that created them; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
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
/// let stolen = svc.ready().await?.call(as_principal("mallory", Some("s-1"))).await?;
/// assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SessionBindingLayer {
    shared: Arc<Shared>,
}

impl SessionBindingLayer {
    /// The layer with the defaults: at most [`DEFAULT_MAX_SESSIONS`] bindings, each expiring after
    /// [`DEFAULT_IDLE_TIMEOUT`] without a request.
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
                idle_nanos: 0,
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

    /// A one-line summary for start-up logs.
    pub fn summary(&self) -> String {
        if self.shared.enabled {
            format!(
                "session binding (max {}, idle {:?})",
                self.shared.max_sessions,
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
    idle_timeout: Duration,
    clock: Arc<dyn MonotonicClock>,
    key: Option<Vec<u8>>,
}

impl Default for SessionBindingLayerBuilder {
    fn default() -> Self {
        SessionBindingLayerBuilder {
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            clock: Arc::new(SystemMonotonicClock::new()),
            key: None,
        }
    }
}

impl fmt::Debug for SessionBindingLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBindingLayerBuilder")
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl SessionBindingLayerBuilder {
    /// The most bindings held at once (default [`DEFAULT_MAX_SESSIONS`]). When that many live
    /// sessions are bound, a response issuing another is replaced with a 503.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// How long a binding lives without a request naming its session (default
    /// [`DEFAULT_IDLE_TIMEOUT`]). Keep it above the session manager's own keep-alive (rmcp's
    /// `LocalSessionManager`: 5 minutes), so no session outlives its binding.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
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
    /// `max_sessions` or `idle_timeout` of zero; `hash_key` when no key was given and the system
    /// has no random source.
    pub fn build(self) -> Result<SessionBindingLayer, ConfigError> {
        if self.max_sessions == 0 {
            return Err(ConfigError::new("max_sessions", "must be more than zero"));
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
                idle_nanos: u64::try_from(self.idle_timeout.as_nanos()).unwrap_or(u64::MAX),
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
    /// Bind a session id the response issues to this owner.
    BindIssued(Owner),
    /// The owner's request on a bound session: forget the binding when the owner's DELETE
    /// succeeded. A 404 does not unbind: it may come from another route (the layer sees every
    /// path), and an unbound live session could be used by anyone holding its id.
    Owned { hash: SessionHash, delete: bool },
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
            let after = After::BindIssued(Owner::of(principal));
            return ResponseFuture::inner(
                self.inner.call(req),
                after,
                Some(Arc::clone(&self.shared)),
            );
        }
        let mut owned = None;
        for value in values {
            let hash = shared.hash(value.as_bytes());
            match shared.lookup(&hash, principal) {
                Lookup::Foreign => {
                    let rejection = Rejection::new(StatusCode::NOT_FOUND, "session_not_found")
                        .message("Session not found")
                        .detail("the session id is bound to another principal");
                    let format = ResponseFormat::for_request(req.headers(), req.extensions());
                    return ResponseFuture::rejected(rejection.into_response(&format));
                }
                Lookup::Owner => owned = Some(hash),
                Lookup::Unknown => {}
            }
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
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
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
    match after {
        After::Nothing => {}
        After::BindIssued(owner) => {
            if !res.status().is_success() {
                return res.map(GuardBody::inner);
            }
            let Some(issued) = res.headers().get(&SESSION_ID_HEADER) else {
                return res.map(GuardBody::inner);
            };
            let hash = shared.hash(issued.as_bytes());
            if !shared.bind(hash, owner) {
                // The client never learns the session id, so the unbound session is useless
                // and the session manager expires it.
                return Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions")
                    .message("Too many sessions; try again later")
                    .detail("the session-binding table is full")
                    .into_response(&ResponseFormat::Json);
            }
        }
        After::Owned { hash, delete } => {
            let status = res.status();
            if delete && status.is_success() {
                shared.forget(&hash);
            }
        }
    }
    res.map(GuardBody::inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::HeaderValue;
    use http_body_util::{BodyExt, Full};
    use mcp_core::clock::ManualMonotonicClock;
    use mcp_core::inspect::McpInspectLayer;
    use serde_json::{Value, json};
    use tower::{ServiceBuilder, ServiceExt};

    type Res = Response<GuardBody<Full<Bytes>>>;

    /// An MCP server stand-in: issues `s-<n>` on a request without a session id, answers 404
    /// for a session id in `gone`, 202 for DELETE, 200 otherwise; echoes the principal it saw.
    fn inner<B: Send + 'static>(
        gone: &'static [&'static str],
    ) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tower::service_fn(move |req: Request<B>| {
            let counter = Arc::clone(&counter);
            async move {
                let who = req
                    .extensions()
                    .get::<Principal>()
                    .map_or("-".to_owned(), |p| p.id().to_owned());
                let mut res = Response::new(Full::new(Bytes::from(who)));
                match req.headers().get("mcp-session-id") {
                    None => {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    fn assert_not_found_json(res: &Res) {
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(res.headers().get("mcp-session-id").is_none());
        assert!(res.headers().get("www-authenticate").is_none());
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(r.code(), "session_not_found");
        assert_eq!(
            r.internal_detail(),
            Some("the session id is bound to another principal")
        );
    }

    #[tokio::test]
    async fn owner_passes_another_principal_gets_404() {
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

        let res = call(&mut svc, request(Method::GET, Some("s-0"), Some(&mallory))).await;
        assert_not_found_json(&res);
        assert_eq!(
            serde_json::from_slice::<Value>(&body(res).await).unwrap(),
            json!({"error": "session_not_found", "message": "Session not found"})
        );
        // The owner is unaffected by the attempt.
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
        assert_not_found_json(&res);
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
    async fn jsonrpc_404_carries_the_request_id() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        // McpInspectLayer outside, as in the stack: the McpCall lands in the extensions.
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
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(post(Some("s-0"), true))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(res.headers().get("mcp-session-id").is_none());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"jsonrpc": "2.0", "id": "call-7", "error": {"code": -32000,
                "message": "Session not found",
                "data": {"status": 404, "code": "session_not_found"}}})
        );
    }

    #[tokio::test]
    async fn unknown_sessions_and_requests_without_principal_pass_through() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let layer = SessionBindingLayer::new();
        let mut svc = layer.layer(inner(&[]));
        // Unknown session id: the inner server decides.
        let res = call(&mut svc, request(Method::POST, Some("nope"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(layer.is_empty());
        // No principal: nothing bound, nothing checked.
        let res = call(&mut svc, request(Method::POST, None, None)).await;
        assert_eq!(res.headers()["mcp-session-id"], "s-0");
        assert!(layer.is_empty());
        let res = call(&mut svc, request(Method::POST, Some("s-0"), None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "-");
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
        assert_not_found_json(&res);
        assert_eq!(layer.len(), 1);
        let res = call(&mut svc, request(Method::DELETE, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert!(layer.is_empty());
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
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            res.extensions().get::<Rejection>().map(Rejection::code),
            Some("session_not_found")
        );
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
        let layer = layer_with_clock(Arc::clone(&clock), 10);
        let mut svc = layer.layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        clock.advance(Duration::from_secs(50));
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::OK);
        clock.advance(Duration::from_secs(50)); // 50 s since the last request: still bound
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
        assert_not_found_json(&res);
        clock.advance(Duration::from_secs(61));
        // Expired: unknown to the layer now, so the inner server decides.
        let res = call(&mut svc, request(Method::POST, Some("s-0"), Some(&bob))).await;
        assert_eq!(res.status(), StatusCode::OK);
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

        let res = call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(
            res.headers().get("mcp-session-id").is_none(),
            "the unbound session id must not reach the client"
        );
        assert_eq!(
            res.extensions().get::<Rejection>().unwrap().code(),
            "too_many_sessions"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body(res).await).unwrap(),
            json!({"error": "too_many_sessions", "message": "Too many sessions; try again later"})
        );
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
    async fn any_foreign_value_among_several_session_headers_is_refused() {
        let alice = principal("alice", PrincipalKind::Jwt);
        let bob = principal("bob", PrincipalKind::Jwt);
        let mut svc = SessionBindingLayer::new().layer(inner(&[]));
        call(&mut svc, request(Method::POST, None, Some(&alice))).await;
        let mut req = request(Method::POST, Some("unknown"), Some(&bob));
        req.headers_mut()
            .append("mcp-session-id", HeaderValue::from_static("s-0"));
        let res = call(&mut svc, req).await;
        assert_not_found_json(&res);
    }

    #[test]
    fn builder_refuses_zero_limits() {
        let e = SessionBindingLayer::builder()
            .max_sessions(0)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "max_sessions");
        let e = SessionBindingLayer::builder()
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "idle_timeout");
        let layer = SessionBindingLayer::new();
        assert!(layer.is_enabled());
        assert_eq!(layer.summary(), "session binding (max 100000, idle 3600s)");
    }
}
