//! Agent-readable refusals, opt-in: [`ToolErrorsAsResultsLayer`] turns a `tools/call` refused
//! for a missing scope (403 `insufficient_scope`) or a per-caller / per-tool rate limit (429
//! `rate_limited`) into what an MCP agent reads and adapts to: HTTP 200 with a JSON-RPC
//! *result*
//!
//! ```json
//! {"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"…"}],"isError":true}}
//! ```
//!
//! whose text names the missing scopes or the seconds until a retry. MCP clients hand tool
//! errors of this form to the model; a JSON-RPC error or an HTTP 403/429 usually ends the turn.
//!
//! - Only a single `tools/call` request with an id is converted. Authentication failures (401,
//!   and the 400 for two credentials) are never: a client must see the `WWW-Authenticate`
//!   challenge. Other refusals (a ban, a per-IP limit, a deny-listed path) keep their status.
//! - The audit record is the same refusal either way: the [`Rejection`], `AuthOutcome` and
//!   `RateLimitOutcome` stay in the response extensions; only the HTTP status the client got
//!   (200) differs. Response headers are kept (`Retry-After`, `RateLimit-*`) except
//!   `WWW-Authenticate`.
//!
//! # Where it goes
//!
//! Inside [`McpInspectLayer`](crate::inspect::McpInspectLayer) (it reads the request's
//! [`McpCall`]) and outside the layers whose refusals it converts:
//!
//! ```text
//! … -> McpInspectLayer -> ToolErrorsAsResultsLayer -> AuthLayer -> SessionBindingLayer
//!   -> RateLimitLayer (principal, tool) -> …
//! ```
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use mcp_security_core::jsonrpc::parse_envelope;
//! use mcp_security_core::refusal::ToolErrorsAsResultsLayer;
//! use mcp_security_core::rejection::{Rejection, ResponseFormat};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(ToolErrorsAsResultsLayer::new())
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         // What a rate limiter inside answers.
//!         let format = ResponseFormat::for_request(req.headers(), req.extensions());
//!         Ok::<_, Infallible>(
//!             Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
//!                 .field("retry_after", 12)
//!                 .into_response::<Full<Bytes>>(&format),
//!         )
//!     });
//! let mut req = Request::post("/mcp").body(Full::new(Bytes::new())).unwrap();
//! req.extensions_mut().insert(
//!     parse_envelope(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"}}"#)
//!         .unwrap(),
//! );
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["result"]["isError"], true);
//! assert!(v["result"]["content"][0]["text"].as_str().unwrap().contains("12 seconds"));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use serde_json::{Value, json};
use tower_layer::Layer;
use tower_service::Service;

use crate::McpCall;
use crate::jsonrpc::{JsonRpcId, MessageKind};
use crate::outcome::AuthOutcome;
use crate::rejection::{GuardBody, Rejection};

/// Converts `tools/call` scope and rate-limit refusals into tool results with `isError: true`;
/// see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct ToolErrorsAsResultsLayer {
    enabled: bool,
}

impl ToolErrorsAsResultsLayer {
    /// The layer.
    pub fn new() -> Self {
        Self { enabled: true }
    }

    /// A layer that converts nothing: every refusal keeps its HTTP status (the default of the
    /// specification), while the stack keeps one service type.
    pub fn disabled() -> Self {
        Self { enabled: false }
    }

    /// Whether refusals are converted (`false` only for [`disabled`](Self::disabled)).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

impl Default for ToolErrorsAsResultsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ToolErrorsAsResultsLayer {
    type Service = ToolErrorsAsResults<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolErrorsAsResults {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service built by [`ToolErrorsAsResultsLayer`].
#[derive(Debug, Clone)]
pub struct ToolErrorsAsResults<S> {
    inner: S,
    enabled: bool,
}

crate::impl_inner_service!(ToolErrorsAsResults, inner);

impl<S, B, ResBody> Service<Request<B>> for ToolErrorsAsResults<S>
where
    S: Service<Request<B>, Response = Response<GuardBody<ResBody>>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.enabled {
            return ResponseFuture {
                inner: self.inner.call(req),
                id: None,
            };
        }
        let id = req
            .extensions()
            .get::<McpCall>()
            .filter(|c| !c.is_batch())
            .and_then(McpCall::single)
            .filter(|m| m.kind() == MessageKind::Request && m.method() == Some("tools/call"))
            .and_then(|m| m.id().cloned());
        ResponseFuture {
            inner: self.inner.call(req),
            id,
        }
    }
}

pin_project! {
    /// The response future of [`ToolErrorsAsResults`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<JsonRpcId>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<GuardBody<B>>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        let Some(id) = this.id.take() else {
            return Poll::Ready(Ok(res));
        };
        Poll::Ready(Ok(convert(res, &id)))
    }
}

/// The text an agent reads for a refusal, if it is one this layer converts.
pub fn refusal_text(rejection: &Rejection, auth: Option<&AuthOutcome>) -> Option<String> {
    if !convertible(rejection) {
        return None;
    }
    match (rejection.status(), rejection.code()) {
        (StatusCode::FORBIDDEN, "insufficient_scope") => {
            let required: Vec<&str> = rejection
                .field_value("required_scopes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let principal = match auth {
                Some(AuthOutcome::Rejected { principal, .. }) => principal.as_ref(),
                _ => None,
            };
            let missing: Vec<&str> = required
                .iter()
                .copied()
                .filter(|s| !principal.is_some_and(|p| p.has_scope(s)))
                .collect();
            let missing = if missing.is_empty() {
                required
            } else {
                missing
            };
            Some(if missing.is_empty() {
                "Permission denied: this credential may not call this tool.".to_owned()
            } else {
                format!(
                    "Permission denied: calling this tool needs the scope{} {}, which this \
                     credential does not have. Use a different tool or ask for a credential with \
                     that scope.",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", ")
                )
            })
        }
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited") => {
            let secs = rejection.field_value("retry_after").and_then(Value::as_u64);
            Some(match secs {
                Some(s) => format!(
                    "Rate limit exceeded for this tool. Retry in {s} second{}.",
                    if s == 1 { "" } else { "s" }
                ),
                None => "Rate limit exceeded for this tool. Retry later.".to_owned(),
            })
        }
        _ => None,
    }
}

/// Whether a refusal may be converted at all: never one that challenges for authentication.
fn convertible(rejection: &Rejection) -> bool {
    rejection
        .bearer_challenge()
        .and_then(crate::rejection::BearerChallenge::error_code)
        .is_none_or(|e| e == crate::rejection::BearerError::InsufficientScope)
}

fn convert<B>(res: Response<GuardBody<B>>, id: &JsonRpcId) -> Response<GuardBody<B>> {
    let Some(rejection) = res.extensions().get::<Rejection>() else {
        return res;
    };
    let Some(text) = refusal_text(rejection, res.extensions().get::<AuthOutcome>()) else {
        return res;
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.to_json(),
        "result": {
            "content": [{ "type": "text", "text": text }],
            "isError": true,
        },
    })
    .to_string();
    let (mut parts, _) = res.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(WWW_AUTHENTICATE);
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, GuardBody::rejection(Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::jsonrpc::parse_envelope;
    use crate::rejection::{BearerChallenge, BearerError, ResponseFormat};
    use crate::{AuthFailure, Principal, PrincipalKind};

    type Res = Response<GuardBody<Full<Bytes>>>;

    async fn run(
        body: &str,
        answer: fn(&ResponseFormat) -> Res,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let svc = ServiceBuilder::new()
            .layer(ToolErrorsAsResultsLayer::new())
            .service_fn(move |req: Request<Full<Bytes>>| async move {
                let format = ResponseFormat::for_request(req.headers(), req.extensions());
                Ok::<_, Infallible>(answer(&format))
            });
        let mut req = Request::post("/mcp").body(Full::new(Bytes::new())).unwrap();
        req.extensions_mut()
            .insert(parse_envelope(body.as_bytes()).unwrap());
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        assert!(
            parts.extensions.get::<Rejection>().is_some(),
            "kept for the audit"
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"delete_note"}}"#;

    fn scope_refusal(format: &ResponseFormat) -> Res {
        let mut res = Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
            .challenge(BearerChallenge::new().error(BearerError::InsufficientScope))
            .field("required_scopes", vec!["notes:read", "notes:delete"])
            .into_response(format);
        let principal = Principal::builder("reader", PrincipalKind::ApiKey)
            .scopes(["notes:read"])
            .build();
        res.extensions_mut().insert(AuthOutcome::Rejected {
            failure: AuthFailure::InsufficientScope,
            principal: Some(principal),
            fingerprint: None,
        });
        res
    }

    #[tokio::test]
    async fn missing_scope_becomes_a_tool_error_naming_it() {
        let (status, headers, v) = run(CALL, scope_refusal).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(WWW_AUTHENTICATE).is_none());
        assert_eq!(v["id"], "c1");
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(v["result"]["content"][0]["type"], "text");
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("scope notes:delete,"), "{text}");
        assert!(!text.contains("notes:read"), "{text}");
    }

    #[tokio::test]
    async fn rate_limit_becomes_a_tool_error_with_the_wait() {
        let (status, headers, v) = run(CALL, |f| {
            Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                .header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
                .field("retry_after", 1)
                .into_response(f)
        })
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["retry-after"], "1");
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            text,
            "Rate limit exceeded for this tool. Retry in 1 second."
        );
    }

    #[tokio::test]
    async fn authentication_failures_and_other_methods_keep_their_status() {
        let (status, headers, v) = run(CALL, |f| {
            Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                .challenge(BearerChallenge::new().error(BearerError::InvalidToken))
                .into_response(f)
        })
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.get(WWW_AUTHENTICATE).is_some());
        assert_eq!(v["error"], "invalid_token");
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x"}}"#;
        let (status, _, _) = run(list, scope_refusal).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = run(CALL, |f| {
            Rejection::new(StatusCode::TOO_MANY_REQUESTS, "banned").into_response(f)
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
}
