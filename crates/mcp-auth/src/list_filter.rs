//! [`ListFilterLayer`]: callers see only what they may use. `tools/list`, `prompts/list`,
//! `resources/list` and `resources/templates/list` results are cut to the entries the caller's
//! principal may call, get or read under the same [`AuthPolicy`] that guards `tools/call`,
//! `prompts/get` and `resources/read`, so a list and a call never disagree.
//!
//! # Where it goes
//!
//! Inside [`AuthLayer`](crate::AuthLayer) (it reads the [`Principal`] authentication inserted)
//! and [`McpInspectLayer`](mcp_security_core::inspect::McpInspectLayer) (it reads the request's
//! [`McpCall`]), next to the service:
//!
//! ```text
//! AuditLayer -> … -> McpInspectLayer -> AuthLayer -> RateLimitLayer -> ListFilterLayer -> service
//! ```
//!
//! # What it does
//!
//! - Every entry the caller may not use is removed; every other byte of the response is kept:
//!   the remaining entries and their order, `nextCursor`, `_meta`, fields it does not know. An
//!   entry without a name (or URI) is removed. Templates follow the rule in
//!   [`policy`](crate::policy#targets-and-patterns).
//! - Both response forms, through [`mcp_security_core::response::RewriteBody`]: `application/json`, and
//!   `text/event-stream` where only the event carrying the list's response is rewritten and every
//!   other event (notifications, progress, pings) is forwarded as it arrives, unbuffered.
//! - A `GET` with `Last-Event-ID` (a stream replaying stored events) goes through the same filter:
//!   any response in it whose result carries `tools`, `prompts`, `resources` or
//!   `resourceTemplates` is filtered as that list.
//! - MCP 2026-07-28 (`MCP-Protocol-Version: 2026-07-28` or later on the request): every list
//!   result it touched carries `cacheScope: "private"`, added when the server omitted it. A
//!   `cacheScope` the server set (say `"public"`) becomes `"private"` in every era: a filtered
//!   list is never public.
//! - Bounded: a JSON body, or one SSE event, over `max_list_bytes` (default 4 MiB,
//!   `MAX_LIST_BYTES`) is never passed unfiltered: it fails closed with a JSON-RPC error
//!   (`-32603`, `data.code: "response_too_large"`), as does a body that is not JSON
//!   (`"response_invalid_json"`) or a list result of the wrong shape (`"response_refused"`).
//! - Facts for the audit trail: with an [`AuditLayer`](https://docs.rs/mcp-security-audit) outside it,
//!   each filtered list records [`ResponseFact::ListFiltered`] (entries kept and hidden) and each
//!   failure [`ResponseFact::FailedClosed`], through [`ResponseFacts`].
//!
//! Every other request costs one branch: its body is passed through untouched.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use mcp_auth::list_filter::ListFilterLayer;
//! use mcp_auth::policy::AuthPolicy;
//! use mcp_security_core::jsonrpc::parse_envelope;
//! use mcp_security_core::{Principal, PrincipalKind};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = AuthPolicy::builder()
//!     .require_mcp("tools/call:delete_note", ["notes:delete"])
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(ListFilterLayer::new(policy))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_note"},{"name":"delete_note"}]}}"#;
//!         Ok::<_, Infallible>(
//!             Response::builder()
//!                 .header("content-type", "application/json")
//!                 .body(Full::new(Bytes::from(body)))
//!                 .unwrap(),
//!         )
//!     });
//! let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
//! let reader = Principal::builder("reader", PrincipalKind::ApiKey).scopes(["notes:read"]).build();
//! let mut req = Request::post("/mcp").body(Full::new(Bytes::new()))?;
//! req.extensions_mut().insert(call);
//! req.extensions_mut().insert(reader);
//! let res = svc.oneshot(req).await?;
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_note"}]}}"#);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderName, Method, Request, Response};
use http_body::Body;
use mcp_security_core::config::{ConfigError, Env};
use mcp_security_core::facts::{FactRecorder, ResponseFact, ResponseFacts};
use mcp_security_core::jsonrpc::{JsonRpcId, MessageKind};
use mcp_security_core::response::{
    DEFAULT_MAX_RESPONSE_BYTES, ResponseKind, RewriteBody, RewriteFailure, RewriteResponse,
    Targets, prepare_head,
};
use mcp_security_core::{McpCall, Principal};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tower_layer::Layer;
use tower_service::Service;

use crate::policy::AuthPolicy;

/// The default cap on a list response (or one SSE event): 4 MiB.
pub const DEFAULT_MAX_LIST_BYTES: usize = DEFAULT_MAX_RESPONSE_BYTES;

/// The list methods filtered, with the result member holding the entries.
pub const LIST_METHODS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// The first protocol version whose list results carry `cacheScope`.
pub const CACHE_SCOPE_VERSION: &str = "2026-07-28";

const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

#[derive(Debug)]
struct Shared {
    policy: AuthPolicy,
    max_list_bytes: usize,
    enabled: bool,
}

/// Cuts MCP list results to what the caller may use; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ListFilterLayer {
    shared: Arc<Shared>,
}

impl ListFilterLayer {
    /// A layer filtering with `policy` (give it the [`AuthLayer`](crate::AuthLayer)'s), with
    /// the default cap.
    pub fn new(policy: AuthPolicy) -> Self {
        ListFilterLayer {
            shared: Arc::new(Shared {
                policy,
                max_list_bytes: DEFAULT_MAX_LIST_BYTES,
                enabled: true,
            }),
        }
    }

    /// A layer that passes every response through untouched (lists included): for a stack
    /// whose list filtering is switched off (`MCP_FILTER_LISTS=false` in the facade) while
    /// keeping one service type.
    pub fn disabled() -> Self {
        ListFilterLayer {
            shared: Arc::new(Shared {
                policy: AuthPolicy::default(),
                max_list_bytes: DEFAULT_MAX_LIST_BYTES,
                enabled: false,
            }),
        }
    }

    /// Whether lists are filtered (`false` only for [`disabled`](Self::disabled)).
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled
    }

    /// A builder, to set the cap.
    pub fn builder(policy: AuthPolicy) -> ListFilterLayerBuilder {
        ListFilterLayerBuilder {
            policy,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
        }
    }

    /// A builder with the cap from `MAX_LIST_BYTES` (with the [`Env`]'s prefix; default 4 MiB).
    ///
    /// # Errors
    /// A malformed `MAX_LIST_BYTES`, naming it.
    pub fn builder_from_env(
        env: &Env,
        policy: AuthPolicy,
    ) -> Result<ListFilterLayerBuilder, ConfigError> {
        Ok(Self::builder(policy)
            .max_list_bytes(env.usize("MAX_LIST_BYTES", DEFAULT_MAX_LIST_BYTES)?))
    }

    /// The policy it filters with.
    pub fn policy(&self) -> &AuthPolicy {
        &self.shared.policy
    }

    /// The cap on a list response or one SSE event.
    pub fn max_list_bytes(&self) -> usize {
        self.shared.max_list_bytes
    }
}

/// Builds a [`ListFilterLayer`]; see [`ListFilterLayer::builder`].
#[derive(Debug)]
#[must_use]
pub struct ListFilterLayerBuilder {
    policy: AuthPolicy,
    max_list_bytes: usize,
}

impl ListFilterLayerBuilder {
    /// The most bytes of a list response (JSON) or of one SSE event buffered; more fails closed
    /// (default 4 MiB).
    pub fn max_list_bytes(mut self, bytes: usize) -> Self {
        self.max_list_bytes = bytes;
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `max_list_bytes` when zero.
    pub fn build(self) -> Result<ListFilterLayer, ConfigError> {
        if self.max_list_bytes == 0 {
            return Err(ConfigError::new("max_list_bytes", "must be at least 1").with_value("0"));
        }
        Ok(ListFilterLayer {
            shared: Arc::new(Shared {
                policy: self.policy,
                max_list_bytes: self.max_list_bytes,
                enabled: true,
            }),
        })
    }
}

impl<S> Layer<S> for ListFilterLayer {
    type Service = ListFilter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ListFilter {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`ListFilterLayer`].
#[derive(Debug, Clone)]
pub struct ListFilter<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ListFilter<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Which list each target id asked for, or (replayed streams) the result's shape decides.
#[derive(Debug)]
enum Methods {
    Ids(Vec<(JsonRpcId, &'static str)>),
    ByShape,
}

/// What a list request needs filtered, decided on the way in.
#[derive(Debug)]
struct Plan {
    methods: Methods,
    principal: Option<Principal>,
    cache_scope: bool,
    recorder: Option<FactRecorder>,
}

fn list_member(method: &str) -> Option<(&'static str, &'static str)> {
    LIST_METHODS.iter().copied().find(|(m, _)| *m == method)
}

fn plan<B>(req: &Request<B>) -> Option<Plan> {
    let methods = if req.method() == Method::POST {
        let call = req.extensions().get::<McpCall>()?;
        let ids: Vec<(JsonRpcId, &'static str)> = call
            .messages()
            .iter()
            .filter(|m| m.kind() == MessageKind::Request)
            .filter_map(|m| {
                let (method, _) = list_member(m.method()?)?;
                Some((m.id()?.clone(), method))
            })
            .collect();
        if ids.is_empty() {
            return None;
        }
        Methods::Ids(ids)
    } else if req.method() == Method::GET && req.headers().contains_key(LAST_EVENT_ID) {
        Methods::ByShape
    } else {
        return None;
    };
    let cache_scope = req
        .headers()
        .get(PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() >= CACHE_SCOPE_VERSION);
    Some(Plan {
        methods,
        principal: req.extensions().get::<Principal>().cloned(),
        cache_scope,
        recorder: req
            .extensions()
            .get::<ResponseFacts>()
            .and_then(ResponseFacts::recorder),
    })
}

impl<S, B, ResBody> Service<Request<B>> for ListFilter<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<RewriteBody<ResBody, ListRewriter>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let plan = if self.shared.enabled {
            plan(&req).map(|p| (p, Arc::clone(&self.shared)))
        } else {
            None
        };
        ResponseFuture {
            inner: self.inner.call(req),
            plan,
        }
    }
}

pin_project! {
    /// The response future of [`ListFilter`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        plan: Option<(Plan, Arc<Shared>)>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("filtering", &self.plan.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<RewriteBody<B, ListRewriter>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let Some((plan, shared)) = this.plan.take() else {
            return Poll::Ready(Ok(res.map(RewriteBody::passthrough)));
        };
        let kind = ResponseKind::of(res.headers());
        let Some(kind) = kind.filter(|_| res.status().is_success()) else {
            return Poll::Ready(Ok(res.map(RewriteBody::passthrough)));
        };
        let (mut parts, body) = res.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        prepare_head(&mut parts.headers);
        let targets = match &plan.methods {
            Methods::Ids(ids) => Targets::Ids(ids.iter().map(|(id, _)| id.clone()).collect()),
            Methods::ByShape => Targets::AnyResponse,
        };
        let max = shared.max_list_bytes;
        let rewriter = ListRewriter { shared, plan };
        let body = RewriteBody::new(body, kind, targets, max, declared, rewriter);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

/// The [`RewriteResponse`] of [`ListFilter`]: filters one list result.
#[derive(Debug)]
pub struct ListRewriter {
    shared: Arc<Shared>,
    plan: Plan,
}

fn push_key(out: &mut String, index: usize, key: &str) {
    if index > 0 {
        out.push(',');
    }
    // A string always serializes.
    out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into()));
    out.push(':');
}

/// A JSON-RPC message read in one pass: members in order as raw text, except `result`, whose
/// members are raw text too except the list members (`tools`, `prompts`, `resources`,
/// `resourceTemplates`) when they are arrays, whose entries are kept one by one. Duplicate keys
/// are refused.
struct ListMessage<'a> {
    members: Vec<(String, MessageMember<'a>)>,
}

enum MessageMember<'a> {
    Raw(&'a RawValue),
    Result(ListResult<'a>),
}

struct ListResult<'a> {
    members: Vec<(String, ResultMember<'a>)>,
}

enum ResultMember<'a> {
    Raw(&'a RawValue),
    /// A list's entries.
    Items(Vec<&'a RawValue>),
}

impl<'a> ListMessage<'a> {
    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find_map(|(k, v)| match v {
            MessageMember::Raw(r) if k == key => Some(*r),
            _ => None,
        })
    }

    fn result(&self) -> Option<&ListResult<'a>> {
        self.members.iter().find_map(|(_, v)| match v {
            MessageMember::Result(r) => Some(r),
            MessageMember::Raw(_) => None,
        })
    }
}

impl<'a> ListResult<'a> {
    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find_map(|(k, v)| match v {
            ResultMember::Raw(r) if k == key => Some(*r),
            _ => None,
        })
    }

    fn items(&self, key: &str) -> Option<&[&'a RawValue]> {
        self.members.iter().find_map(|(k, v)| match v {
            ResultMember::Items(items) if k == key => Some(items.as_slice()),
            _ => None,
        })
    }
}

fn duplicate<E: serde::de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key {key:?}"))
}

impl<'de: 'a, 'a> Deserialize<'de> for ListMessage<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ListMessage<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, MessageMember<'a>)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if members.iter().any(|(m, _)| *m == k) {
                        return Err(duplicate(&k));
                    }
                    let v = if k == "result" {
                        MessageMember::Result(map.next_value::<ListResult<'a>>()?)
                    } else {
                        MessageMember::Raw(map.next_value::<&'de RawValue>()?)
                    };
                    members.push((k, v));
                }
                Ok(ListMessage { members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ListResult<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ListResult<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a result object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, ResultMember<'a>)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if members.iter().any(|(m, _)| *m == k) {
                        return Err(duplicate(&k));
                    }
                    // A list member that is not an array fails the parse: the wrong shape
                    // fails closed.
                    let v = if LIST_METHODS.iter().any(|(_, m)| *m == k) {
                        ResultMember::Items(map.next_value::<Vec<&'de RawValue>>()?)
                    } else {
                        ResultMember::Raw(map.next_value::<&'de RawValue>()?)
                    };
                    members.push((k, v));
                }
                Ok(ListResult { members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default, rename = "uriTemplate")]
    uri_template: Option<String>,
}

impl ListRewriter {
    fn permits(&self, method: &str, entry: &RawValue) -> bool {
        let Ok(entry) = serde_json::from_str::<Entry>(entry.get()) else {
            return false;
        };
        let policy = &self.shared.policy;
        let who = self.plan.principal.as_ref();
        match method {
            "tools/list" => entry
                .name
                .is_some_and(|n| policy.permits(who, "tools/call", &n)),
            "prompts/list" => entry
                .name
                .is_some_and(|n| policy.permits(who, "prompts/get", &n)),
            "resources/list" => entry
                .uri
                .is_some_and(|u| policy.permits(who, "resources/read", &u)),
            "resources/templates/list" => entry
                .uri_template
                .is_some_and(|t| policy.permits_template(who, &t)),
            _ => false,
        }
    }
}

impl RewriteResponse for ListRewriter {
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()> {
        // One pass over the structure: the message's members, the result's members, and the
        // entries of any list member, each kept as raw text.
        let msg: ListMessage<'_> = serde_json::from_str(message).map_err(|_| ())?;
        let Some(result) = msg.result() else {
            // An error answer: nothing to filter.
            return Ok(None);
        };
        let method = match &self.plan.methods {
            Methods::Ids(ids) => {
                let id = msg
                    .raw("id")
                    .and_then(|v| serde_json::from_str::<Value>(v.get()).ok());
                let Some(id) = id else { return Ok(None) };
                match ids.iter().find(|(t, _)| t.to_json() == id) {
                    Some((_, m)) => *m,
                    None => return Ok(None),
                }
            }
            Methods::ByShape => match LIST_METHODS
                .iter()
                .find(|(_, member)| result.items(member).is_some())
            {
                Some((m, _)) => *m,
                // A replayed response that is not a list.
                None => return Ok(None),
            },
        };
        let member = list_member(method).map_or("tools", |(_, m)| m);
        let mut new_list: Option<String> = None;
        let (mut kept, mut hidden) = (0u32, 0u32);
        if let Some(items) = result.items(member) {
            let mut list = String::with_capacity(message.len());
            list.push('[');
            for item in items {
                if self.permits(method, item) {
                    if kept > 0 {
                        list.push(',');
                    }
                    list.push_str(item.get());
                    kept = kept.saturating_add(1);
                } else {
                    hidden = hidden.saturating_add(1);
                }
            }
            list.push(']');
            if hidden > 0 {
                new_list = Some(list);
            }
        }
        if let Some(r) = &self.plan.recorder {
            r.record(ResponseFact::ListFiltered {
                method,
                kept,
                hidden,
            });
        }
        const PRIVATE: &str = "\"private\"";
        let scope = result.raw("cacheScope");
        let add_scope = scope.is_none() && self.plan.cache_scope;
        let fix_scope = scope.is_some_and(|s| s.get() != PRIVATE);
        if new_list.is_none() && !add_scope && !fix_scope {
            return Ok(None);
        }
        let mut out = String::with_capacity(message.len());
        out.push('{');
        for (i, (k, v)) in msg.members.iter().enumerate() {
            push_key(&mut out, i, k);
            match v {
                MessageMember::Raw(raw) => out.push_str(raw.get()),
                MessageMember::Result(result) => {
                    out.push('{');
                    for (j, (rk, rv)) in result.members.iter().enumerate() {
                        push_key(&mut out, j, rk);
                        if rk == member && new_list.is_some() {
                            out.push_str(new_list.as_deref().unwrap_or("[]"));
                        } else if rk == "cacheScope" {
                            out.push_str(PRIVATE);
                        } else {
                            match rv {
                                ResultMember::Raw(raw) => out.push_str(raw.get()),
                                ResultMember::Items(items) => {
                                    out.push('[');
                                    for (n, item) in items.iter().enumerate() {
                                        if n > 0 {
                                            out.push(',');
                                        }
                                        out.push_str(item.get());
                                    }
                                    out.push(']');
                                }
                            }
                        }
                    }
                    if add_scope {
                        push_key(&mut out, result.members.len(), "cacheScope");
                        out.push_str(PRIVATE);
                    }
                    out.push('}');
                }
            }
        }
        out.push('}');
        Ok(Some(out))
    }

    fn failed(&mut self, failure: RewriteFailure, _id: &Value) {
        if let Some(r) = &self.plan.recorder {
            r.record(ResponseFact::FailedClosed {
                layer: "list_filter",
                reason: failure,
            });
        }
    }

    fn finished(&mut self) {
        if let Some(r) = &self.plan.recorder {
            r.body_complete();
        }
    }
}

#[cfg(test)]
mod tests;
