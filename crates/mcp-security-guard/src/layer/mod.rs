//! [`ToolGuardLayer`]: the tool-call guards, innermost in the stack.
//!
//! # The result guard
//!
//! With [`ResultGuardMode::Redact`] or [`ResultGuardMode::Block`], the answers to `tools/call`,
//! `resources/read` and `prompts/get` (and every response of a replayed stream, a `GET` with
//! `Last-Event-ID`) are scanned for credentials, as described in [`crate::result`]:
//!
//! - `redact`: each match becomes `[redacted]` (a value under a secret-named key is replaced
//!   whole); everything else is kept byte for byte, members in order.
//! - `block`: the answer becomes a JSON-RPC error for its id: `-32603`, message
//!   `"The result was withheld: it contained a credential"`, `data.code: "secret_in_result"`.
//! - Both response forms through [`mcp_security_core::response::RewriteBody`]: `application/json`, and
//!   `text/event-stream` where only the answer's event is read and every other event
//!   (progress, notifications) is forwarded as it arrives.
//! - Bounded, fail closed: a JSON body or one SSE event over `max_result_bytes` (default 4 MiB,
//!   `RESULT_GUARD_MAX_BYTES`), or an answer that is not JSON, is never passed unscanned: it is
//!   replaced by a JSON-RPC error (`-32603`, `data.code: "response_too_large"` /
//!   `"response_invalid_json"`), in both modes.
//! - Each hit is a security event for the audit trail — a [`ResponseFact::SecretFound`] with
//!   the kind of secret, the method and the tool, prompt or URI, never the secret — through the
//!   request's [`ResponseFacts`]; a count in [`GuardStats`]; and the metric
//!   [`SECRETS_METRIC`] (`mcp_result_guard_secrets_total{kind, action}`).
//!
//! Every other request costs one branch, and `off` costs one branch on every request.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mcp_security_core::jsonrpc::parse_envelope;
//! use mcp_security_guard::{ResultGuardMode, ToolGuardLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = ToolGuardLayer::builder().result_guard(ResultGuardMode::Redact).build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(guard.clone())
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         let body = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"key=AKIAIOSFODNN7EXAMPLE"}]}}"#;
//!         Ok::<_, Infallible>(
//!             Response::builder()
//!                 .header("content-type", "application/json")
//!                 .body(Full::new(Bytes::from(body)))
//!                 .unwrap(),
//!         )
//!     });
//! let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"env"}}"#)?;
//! let mut req = Request::post("/mcp").body(Full::new(Bytes::new()))?;
//! req.extensions_mut().insert(call);
//! let res = svc.oneshot(req).await?;
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     &body[..],
//!     br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"key=[redacted]"}]}}"#
//! );
//! assert_eq!(guard.stats().secrets_found, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Blocked patterns
//!
//! With rules ([`ToolGuardLayerBuilder::blocked_pattern`]), a `tools/call` whose arguments
//! match one is answered by the layer (JSON-RPC `-32602` naming the rule's pointer and id)
//! before the server sees it, in the place argument validation answers; see
//! [`crate::patterns`]. Without rules it costs one branch per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderName, Method, Request, Response};
use http_body::Body;
use mcp_security_core::config::{ConfigError, Env};
use mcp_security_core::credential::SecretScanner;
#[cfg(doc)]
use mcp_security_core::facts::ResponseFact;
use mcp_security_core::facts::ResponseFacts;
use mcp_security_core::jsonrpc::{JsonRpcId, MessageKind};
use mcp_security_core::response::{
    DEFAULT_MAX_RESPONSE_BYTES, ResponseKind, RewriteBody, Targets, prepare_head,
};
use mcp_security_core::{GuardBody, McpCall};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::patterns::{BlockedPattern, BlockedPatterns};
use crate::result::{GuardedIds, Hits, ResultGuardMode, ResultRewriter};

/// The default cap on a scanned answer (a JSON body or one SSE event): 4 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = DEFAULT_MAX_RESPONSE_BYTES;

/// The methods whose answers the result guard scans.
pub const GUARDED_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// The counter of credentials found, labelled `kind` and `action` (`redacted`, `blocked`).
pub const SECRETS_METRIC: &str = "mcp_result_guard_secrets_total";

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

#[derive(Debug, Default)]
struct Counters {
    refused: AtomicU64,
    blocked_args: AtomicU64,
    drift: AtomicU64,
    answers: AtomicU64,
    secrets: AtomicU64,
    blocked: AtomicU64,
    failed_closed: AtomicU64,
}

/// Counts kept by a [`ToolGuardLayer`] (shared by its clones), from [`ToolGuardLayer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardStats {
    /// Answers that carried at least one credential.
    pub answers_with_secrets: u64,
    /// Credentials found (every match).
    pub secrets_found: u64,
    /// Answers replaced by an error because of a credential (`block`).
    pub answers_blocked: u64,
    /// Answers that could not be scanned (over the cap, not JSON) and failed closed.
    pub failed_closed: u64,
    /// `tools/call` requests answered by the layer because their arguments failed the tool's
    /// schema (feature `schema`).
    pub arguments_refused: u64,
    /// `tools/call` requests answered by the layer because an argument matched a blocked
    /// pattern (see [`crate::patterns`]).
    pub arguments_blocked: u64,
    /// Listed tools found differing from the pinned manifest (each time a list shows one).
    pub manifest_drift: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) mode: ResultGuardMode,
    pub(crate) scanner: SecretScanner,
    pub(crate) max_result_bytes: usize,
    /// Arguments are checked against the learned schemas.
    validate: bool,
    /// The pinned manifest, if any.
    pub(crate) pinning: Option<crate::manifest::Pinning>,
    /// Blocked argument patterns (empty: none).
    patterns: BlockedPatterns,
    #[cfg(feature = "schema")]
    pub(crate) schemas: crate::schema::SchemaStore,
    counters: Counters,
}

impl Shared {
    pub(crate) fn record_hits(&self, hits: &Hits, blocked: bool) {
        let c = &self.counters;
        c.answers.fetch_add(1, Ordering::Relaxed);
        let n: u64 = hits.iter().map(|(_, n)| u64::from(n)).sum();
        c.secrets.fetch_add(n, Ordering::Relaxed);
        if blocked {
            c.blocked.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[cfg(feature = "schema")]
    pub(crate) fn validates(&self) -> bool {
        self.validate
    }

    pub(crate) fn record_drift(&self, n: u64) {
        self.counters.drift.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether `tools/list` answers are read (schemas learned or the manifest checked).
    fn reads_lists(&self) -> bool {
        self.validate || self.pinning.is_some()
    }

    pub(crate) fn record_failed_closed(&self) {
        self.counters.failed_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tool-call guards; see the [module docs](self). Cheap to clone (clones share counts).
#[derive(Debug, Clone)]
pub struct ToolGuardLayer {
    shared: Arc<Shared>,
}

impl Default for ToolGuardLayer {
    /// Every guard off: responses pass untouched.
    fn default() -> Self {
        ToolGuardLayer::builder().into_layer(BlockedPatterns::default())
    }
}

impl ToolGuardLayer {
    /// A builder: result guard off, default cap and detectors.
    pub fn builder() -> ToolGuardLayerBuilder {
        ToolGuardLayerBuilder {
            mode: ResultGuardMode::Off,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            scanner: SecretScanner::default(),
            validate: false,
            manifest: None,
            patterns: Vec::new(),
        }
    }

    /// A builder from the environment (with the [`Env`]'s prefix): `RESULT_GUARD`
    /// (`off`|`redact`|`block`, default `off`), `RESULT_GUARD_MAX_BYTES` (default 4 MiB) and,
    /// with the feature `schema`, `VALIDATE_TOOL_ARGS` (default `true`); `TOOL_MANIFEST_FILE`
    /// (a lock file from `mcp-security manifest snapshot`) and `TOOL_MANIFEST_MODE`
    /// (`warn`|`enforce`, default `warn`); `BLOCK_PATH_TRAVERSAL` and
    /// `BLOCK_SHELL_METACHARACTERS` (see [`crate::patterns::from_env`]).
    ///
    /// # Errors
    /// A malformed value, naming its variable.
    pub fn builder_from_env(env: &Env) -> Result<ToolGuardLayerBuilder, ConfigError> {
        let mut b = Self::builder();
        if let Some(v) = env.string("RESULT_GUARD")? {
            b = b.result_guard(ResultGuardMode::parse(&env.var_name("RESULT_GUARD"), &v)?);
        }
        let max = env.usize("RESULT_GUARD_MAX_BYTES", DEFAULT_MAX_RESULT_BYTES)?;
        if max == 0 {
            return Err(ConfigError::new(
                env.var_name("RESULT_GUARD_MAX_BYTES"),
                "must be at least 1",
            )
            .with_value("0"));
        }
        #[cfg(feature = "schema")]
        {
            b = b.validate_arguments(env.bool("VALIDATE_TOOL_ARGS", true)?);
        }
        if let Some(path) = env.string("TOOL_MANIFEST_FILE")? {
            let var = env.var_name("TOOL_MANIFEST_FILE");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(&var, format!("cannot be read: {e}")).with_value(&path)
            })?;
            let lock = crate::manifest::ToolManifest::parse(&text)
                .map_err(|e| ConfigError::new(&var, e).with_value(&path))?;
            let mode = match env.string("TOOL_MANIFEST_MODE")? {
                Some(v) => {
                    crate::manifest::ManifestMode::parse(&env.var_name("TOOL_MANIFEST_MODE"), &v)?
                }
                None => crate::manifest::ManifestMode::Warn,
            };
            b = b.manifest(lock, mode);
        }
        b = b.blocked_patterns(crate::patterns::from_env(env)?);
        Ok(b.max_result_bytes(max))
    }

    /// The result guard's mode.
    pub fn result_guard(&self) -> ResultGuardMode {
        self.shared.mode
    }

    /// The cap on a scanned answer.
    pub fn max_result_bytes(&self) -> usize {
        self.shared.max_result_bytes
    }

    /// Whether any guard is on (`false`: every response passes untouched).
    pub fn is_enabled(&self) -> bool {
        self.shared.mode != ResultGuardMode::Off
            || self.shared.reads_lists()
            || !self.shared.patterns.is_empty()
    }

    /// The blocked argument patterns (empty: none); see [`crate::patterns`].
    pub fn blocked_patterns(&self) -> &BlockedPatterns {
        &self.shared.patterns
    }

    /// The pinned manifest and its mode, if one is configured.
    pub fn manifest(
        &self,
    ) -> Option<(
        &crate::manifest::ToolManifest,
        crate::manifest::ManifestMode,
    )> {
        self.shared.pinning.as_ref().map(|p| (&p.lock, p.mode))
    }

    /// Whether `tools/call` arguments are checked against the tools' schemas (feature
    /// `schema`; see its `schema` module).
    pub fn validates_arguments(&self) -> bool {
        self.shared.validate
    }

    /// The counts so far, over every clone of this layer.
    pub fn stats(&self) -> GuardStats {
        let c = &self.shared.counters;
        GuardStats {
            answers_with_secrets: c.answers.load(Ordering::Relaxed),
            secrets_found: c.secrets.load(Ordering::Relaxed),
            answers_blocked: c.blocked.load(Ordering::Relaxed),
            failed_closed: c.failed_closed.load(Ordering::Relaxed),
            arguments_refused: c.refused.load(Ordering::Relaxed),
            arguments_blocked: c.blocked_args.load(Ordering::Relaxed),
            manifest_drift: c.drift.load(Ordering::Relaxed),
        }
    }
}

/// Builds a [`ToolGuardLayer`]; see [`ToolGuardLayer::builder`].
#[derive(Debug)]
#[must_use]
pub struct ToolGuardLayerBuilder {
    mode: ResultGuardMode,
    max_result_bytes: usize,
    scanner: SecretScanner,
    validate: bool,
    manifest: Option<(crate::manifest::ToolManifest, crate::manifest::ManifestMode)>,
    patterns: Vec<BlockedPattern>,
}

impl ToolGuardLayerBuilder {
    /// What to do with a credential in an answer (default [`ResultGuardMode::Off`]).
    pub fn result_guard(mut self, mode: ResultGuardMode) -> Self {
        self.mode = mode;
        self
    }

    /// The most bytes of an answer (a JSON body, or one SSE event) buffered and scanned; a
    /// larger one fails closed (default 4 MiB).
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes;
        self
    }

    /// The API-key prefixes detected besides the well-known formats (default `mcp-sk-`); give
    /// the auth layer's, e.g. a deployment's own `iq-sk-`.
    pub fn key_prefixes<I>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.scanner = SecretScanner::with_key_prefixes(prefixes);
        self
    }

    /// Check `tools/call` arguments against each tool's `inputSchema` learned from
    /// `tools/list` answers (feature `schema`; default off in the builder, on from
    /// [`ToolGuardLayer::builder_from_env`] unless `VALIDATE_TOOL_ARGS=false`); see
    /// [`crate::schema`].
    #[cfg(feature = "schema")]
    pub fn validate_arguments(mut self, on: bool) -> Self {
        self.validate = on;
        self
    }

    /// Compare every listed tool with this pinned manifest; see [`crate::manifest`].
    pub fn manifest(
        mut self,
        lock: crate::manifest::ToolManifest,
        mode: crate::manifest::ManifestMode,
    ) -> Self {
        self.manifest = Some((lock, mode));
        self
    }

    /// Refuse `tools/call` requests whose arguments match this rule, before the server sees
    /// them; see [`crate::patterns`].
    pub fn blocked_pattern(mut self, rule: BlockedPattern) -> Self {
        self.patterns.push(rule);
        self
    }

    /// Add blocked-pattern rules; see [`blocked_pattern`](Self::blocked_pattern).
    pub fn blocked_patterns<I>(mut self, rules: I) -> Self
    where
        I: IntoIterator<Item = BlockedPattern>,
    {
        self.patterns.extend(rules);
        self
    }

    fn into_layer(self, patterns: BlockedPatterns) -> ToolGuardLayer {
        ToolGuardLayer {
            shared: Arc::new(Shared {
                mode: self.mode,
                scanner: self.scanner,
                max_result_bytes: self.max_result_bytes,
                validate: self.validate,
                pinning: self
                    .manifest
                    .map(|(lock, mode)| crate::manifest::Pinning::new(lock, mode)),
                patterns,
                #[cfg(feature = "schema")]
                schemas: crate::schema::SchemaStore::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `max_result_bytes` when zero; `blocked_pattern`, naming the rule, when a blocked-pattern
    /// rule is invalid (see [`BlockedPatterns::new`]).
    pub fn build(mut self) -> Result<ToolGuardLayer, ConfigError> {
        if self.max_result_bytes == 0 {
            return Err(ConfigError::new("max_result_bytes", "must be at least 1").with_value("0"));
        }
        let patterns = BlockedPatterns::new(std::mem::take(&mut self.patterns))?;
        Ok(self.into_layer(patterns))
    }
}

impl<S> Layer<S> for ToolGuardLayer {
    type Service = ToolGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolGuard {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`ToolGuardLayer`].
#[derive(Debug, Clone)]
pub struct ToolGuard<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ToolGuard<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn guarded_method(method: &str) -> Option<&'static str> {
    GUARDED_METHODS.iter().copied().find(|m| *m == method)
}

/// Which answers of this request to read, decided on the way in: those of the guarded
/// methods (result guard on) and of `tools/list` (arguments checked: the schemas are learned).
fn plan<B>(req: &Request<B>, shared: &Shared) -> Option<GuardedIds> {
    let scan = shared.mode != ResultGuardMode::Off;
    if req.method() == Method::POST {
        let call = req.extensions().get::<McpCall>()?;
        let ids: Vec<(JsonRpcId, &'static str, Option<Box<str>>)> = call
            .messages()
            .iter()
            .filter(|m| m.kind() == MessageKind::Request)
            .filter_map(|m| {
                let method = match m.method()? {
                    "tools/list" if shared.reads_lists() => "tools/list",
                    other if scan => guarded_method(other)?,
                    _ => return None,
                };
                Some((m.id()?.clone(), method, m.target().map(Into::into)))
            })
            .collect();
        (!ids.is_empty()).then_some(Some(ids))
    } else if scan && req.method() == Method::GET && req.headers().contains_key(LAST_EVENT_ID) {
        Some(None)
    } else {
        None
    }
}

/// A `tools/call` of a tool the pinned manifest refuses (enforce mode): answered as an unknown
/// tool.
fn refuse_unpinned<B>(req: &Request<B>, shared: &Shared) -> Option<Response<Bytes>> {
    let pinning = shared.pinning.as_ref()?;
    if req.method() != Method::POST {
        return None;
    }
    let call = req.extensions().get::<McpCall>()?;
    let (id, tool) = call
        .messages()
        .iter()
        .find_map(|m| Some((m.id()?, m.tool().filter(|t| pinning.refuses(t))?)))?;
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.to_json(),
        "error": {"code": -32602, "message": format!("Unknown tool: {tool}")},
    })
    .to_string();
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res.extensions_mut().insert(
        mcp_security_core::Rejection::new(http::StatusCode::FORBIDDEN, "tool_not_pinned")
            .message("The tool differs from the pinned manifest")
            .detail(format!("tool {tool} differs from the pinned manifest")),
    );
    Some(res)
}

/// A single `tools/call` whose arguments fail the tool's schema: the layer's answer.
#[cfg(feature = "schema")]
fn refuse_arguments<B>(req: &Request<B>, shared: &Shared) -> Option<Response<Bytes>> {
    if !shared.validate || req.method() != Method::POST {
        return None;
    }
    let message = req.extensions().get::<McpCall>()?.single()?;
    let tool = message.tool()?;
    let id = message.id()?.to_json();
    if req.headers().contains_key("mcp-method")
        && let Err(reason) = shared
            .schemas
            .check_params(tool, req.headers(), message.body())
    {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": mcp_security_core::jsonrpc::HEADER_MISMATCH, "message": reason,
                "data": {"status": 400, "code": "header_mismatch"}},
        })
        .to_string();
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = http::StatusCode::BAD_REQUEST;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res.extensions_mut().insert(
            mcp_security_core::Rejection::new(http::StatusCode::BAD_REQUEST, "header_mismatch")
                .message(reason)
                .jsonrpc_code(mcp_security_core::jsonrpc::HEADER_MISMATCH),
        );
        return Some(res);
    }
    let text = shared.schemas.check(tool, message.body()).err()?;
    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"content": [{"type": "text", "text": text}], "isError": true},
    })
    .to_string();
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res.extensions_mut().insert(
        mcp_security_core::Rejection::new(http::StatusCode::BAD_REQUEST, "invalid_tool_arguments")
            .message("The tool's arguments do not match its input schema")
            .detail(text),
    );
    Some(res)
}

/// A `tools/call` (single, or any in a batch) with an argument a blocked pattern refuses: the
/// layer's answer.
fn refuse_blocked<B>(req: &Request<B>, shared: &Shared) -> Option<Response<Bytes>> {
    let res = crate::patterns::refuse::refuse(req, &shared.patterns)?;
    shared.counters.blocked_args.fetch_add(1, Ordering::Relaxed);
    Some(res)
}

#[cfg(not(feature = "schema"))]
fn refuse_arguments<B>(_req: &Request<B>, _shared: &Shared) -> Option<Response<Bytes>> {
    None
}

impl<S, B, ResBody> Service<Request<B>> for ToolGuard<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<RewriteBody<GuardBody<ResBody>, ResultRewriter>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let refused = refuse_unpinned(&req, &self.shared)
            .or_else(|| refuse_blocked(&req, &self.shared))
            .or_else(|| refuse_arguments(&req, &self.shared));
        if let Some(answer) = refused {
            return ResponseFuture {
                kind: Kind::Answered {
                    answer: Some(answer),
                },
            };
        }
        let plan = if !self.is_on() {
            None
        } else {
            plan(&req, &self.shared).map(|ids| ResultRewriter {
                shared: Arc::clone(&self.shared),
                ids,
                recorder: req
                    .extensions()
                    .get::<ResponseFacts>()
                    .and_then(ResponseFacts::recorder),
            })
        };
        ResponseFuture {
            kind: Kind::Inner {
                inner: self.inner.call(req),
                plan,
            },
        }
    }
}

impl<S> ToolGuard<S> {
    fn is_on(&self) -> bool {
        self.shared.mode != ResultGuardMode::Off || self.shared.reads_lists()
    }
}

pin_project! {
    /// The response future of [`ToolGuard`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] inner: F, plan: Option<ResultRewriter> },
        Answered { answer: Option<Response<Bytes>> },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.kind {
            Kind::Inner { plan, .. } if plan.is_some() => "guarding",
            Kind::Inner { .. } => "passing",
            Kind::Answered { .. } => "answered",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<RewriteBody<GuardBody<B>, ResultRewriter>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (inner, plan) = match self.project().kind.project() {
            KindProj::Answered { answer } => {
                let res = answer.take().unwrap_or_default();
                return Poll::Ready(Ok(
                    res.map(|b| RewriteBody::passthrough(GuardBody::rejection(b)))
                ));
            }
            KindProj::Inner { inner, plan } => (inner, plan),
        };
        let res = match inner.poll(cx) {
            Poll::Ready(Ok(res)) => res.map(GuardBody::inner),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let Some(rewriter) = plan.take() else {
            return Poll::Ready(Ok(res.map(RewriteBody::passthrough)));
        };
        // Any status: a JSON-RPC error on a 4xx/5xx can carry a secret in its message too.
        let Some(kind) = ResponseKind::of(res.headers()) else {
            return Poll::Ready(Ok(res.map(RewriteBody::passthrough)));
        };
        let (mut parts, body) = res.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        prepare_head(&mut parts.headers);
        let targets = match &rewriter.ids {
            Some(ids) => Targets::Ids(ids.iter().map(|(id, _, _)| id.clone()).collect()),
            None => Targets::AnyResponse,
        };
        let max = rewriter.shared.max_result_bytes;
        let body = RewriteBody::new(body, kind, targets, max, declared, rewriter);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

#[cfg(test)]
mod manifest_tests;
#[cfg(all(test, feature = "schema"))]
mod schema_tests;
#[cfg(test)]
mod tests;
