//! The one way every layer says no: [`Rejection`], rendered in the caller's format into a
//! [`GuardBody`] response.
//!
//! The format follows the caller:
//!
//! | caller | answer |
//! |---|---|
//! | gRPC (`content-type: application/grpc…`) | trailers-only: HTTP 200, `grpc-status` (16, 7, 8 …) and `grpc-message` |
//! | a rejection carrying a [`BearerChallenge`] (401/403 from authentication) | RFC 6750: `WWW-Authenticate: Bearer …` and `{"error":…,"error_description":…}` |
//! | an MCP JSON-RPC request | a JSON-RPC error object with the request's `id` (an array of them for a batch) |
//! | any other HTTP request | `{"error": code, "message": …}` |
//!
//! Public messages never reveal internals; [`Rejection::detail`] carries what the audit record
//! should know and is never sent to the client. The rejection itself is put into the response's
//! extensions so an outer audit layer can read status, code and detail.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use serde_json::{Map, Value, json};

use crate::jsonrpc::{self, JsonRpcId, McpCall, MessageKind};

/// An `error` code of RFC 6750 §3.1, for a [`BearerChallenge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// The request is malformed (e.g. two credentials). HTTP 400.
    InvalidRequest,
    /// The token is expired, revoked, malformed or invalid. HTTP 401.
    InvalidToken,
    /// The token lacks the scope the request needs. HTTP 403.
    InsufficientScope,
}

impl BearerError {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1).
///
/// Every parameter is written as a quoted string with `"` and `\` escaped and control or
/// non-ASCII characters replaced by `?`, so no value can break out of the header.
///
/// ```
/// use mcp_security_core::rejection::{BearerChallenge, BearerError};
///
/// let c = BearerChallenge::new()
///     .realm("mcp")
///     .error(BearerError::InvalidToken)
///     .error_description("token \"expired\"")
///     .resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource");
/// assert_eq!(
///     c.to_header_value().to_str().unwrap(),
///     "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"token \\\"expired\\\"\", \
///      resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\""
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct BearerChallenge {
    realm: Option<Cow<'static, str>>,
    error: Option<BearerError>,
    error_description: Option<Cow<'static, str>>,
    scope: Option<Cow<'static, str>>,
    resource_metadata: Option<Cow<'static, str>>,
}

impl BearerChallenge {
    /// A bare `Bearer` challenge: what a request without any credential gets (RFC 6750 §3.1 says
    /// no `error` then).
    pub fn new() -> Self {
        Self::default()
    }

    /// The `realm` parameter.
    pub fn realm(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The `error` parameter.
    pub fn error(mut self, error: BearerError) -> Self {
        self.error = Some(error);
        self
    }

    /// The `error_description` parameter: human-readable, and public.
    pub fn error_description(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.error_description = Some(description.into());
        self
    }

    /// The `scope` parameter: the space-separated scopes the request needs.
    pub fn scope(mut self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `resource_metadata` parameter of RFC 9728: the URL of the protected-resource metadata
    /// document, which MCP clients use to discover the authorization server.
    pub fn resource_metadata(mut self, url: impl Into<Cow<'static, str>>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The challenge's `error` code, if any.
    pub fn error_code(&self) -> Option<BearerError> {
        self.error
    }

    /// Render the header value.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = String::from("Bearer");
        let mut first = true;
        let params = [
            ("realm", self.realm.as_deref()),
            ("error", self.error.map(BearerError::as_str)),
            ("error_description", self.error_description.as_deref()),
            ("resource_metadata", self.resource_metadata.as_deref()),
            ("scope", self.scope.as_deref()),
        ];
        for (name, value) in params {
            let Some(value) = value else { continue };
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            push_quoted(&mut out, value);
            out.push('"');
        }
        // Every byte is visible ASCII or a space by construction.
        HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// Append `value` as the inside of an RFC 9110 quoted-string.
fn push_quoted(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '!'..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
}

/// How a rejection is rendered; see the [module docs](self). Pick it with
/// [`ResponseFormat::for_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// A gRPC trailers-only response.
    Grpc,
    /// A JSON-RPC error, answering the given envelope (or `id: null` when none was read).
    JsonRpc(Option<McpCall>),
    /// A JSON-RPC error answering one request by its id, for an envelope that was invalid but
    /// whose id could still be read.
    JsonRpcId(JsonRpcId),
    /// A small JSON object.
    Json,
}

impl ResponseFormat {
    /// The format a request expects: gRPC by content type, JSON-RPC when
    /// [`McpInspectLayer`](crate::inspect::McpInspectLayer) found an envelope, JSON otherwise.
    pub fn for_request(headers: &HeaderMap, extensions: &http::Extensions) -> Self {
        if is_grpc(headers) {
            ResponseFormat::Grpc
        } else if let Some(call) = extensions.get::<McpCall>() {
            ResponseFormat::JsonRpc(Some(call.clone()))
        } else {
            ResponseFormat::Json
        }
    }
}

/// Whether the request is gRPC (`content-type: application/grpc`, `application/grpc+proto`, …).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
        })
}

/// A refusal by one of the layers: status, machine code, public message, extra headers, and an
/// internal detail for the audit record only.
///
/// ```
/// use http::StatusCode;
/// use mcp_security_core::rejection::{Rejection, ResponseFormat};
///
/// let r = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
///     .message("Rate limit exceeded. Please try again later.")
///     .header(http::header::RETRY_AFTER, http::HeaderValue::from_static("3"))
///     .field("retry_after", 3)
///     .detail("ip 203.0.113.9 over 100/60s");
/// let response = r.into_response::<http_body_util::Empty<bytes::Bytes>>(&ResponseFormat::Json);
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "3");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    jsonrpc_code: i32,
    headers: HeaderMap,
    challenge: Option<BearerChallenge>,
    fields: Map<String, Value>,
    detail: Option<Cow<'static, str>>,
}

impl Rejection {
    /// A rejection with an HTTP status and a stable machine code (`"payload_too_large"`,
    /// `"invalid_token"`, `"rate_limited"` …). The public message defaults to the status's
    /// reason phrase and the JSON-RPC code to `-32000`.
    pub fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            message: Cow::Borrowed(status.canonical_reason().unwrap_or("Request rejected")),
            jsonrpc_code: jsonrpc::SERVER_ERROR,
            headers: HeaderMap::new(),
            challenge: None,
            fields: Map::new(),
            detail: None,
        }
    }

    /// The public message sent to the client. Never put internals here.
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// The JSON-RPC error code for MCP callers (default `-32000`).
    pub fn jsonrpc_code(mut self, code: i32) -> Self {
        self.jsonrpc_code = code;
        self
    }

    /// An extra response header, such as `Retry-After`.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// A `WWW-Authenticate: Bearer` challenge; the body becomes RFC 6750 JSON.
    pub fn challenge(mut self, challenge: BearerChallenge) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// An extra public field, added to the JSON body (and to a JSON-RPC error's `data`), such as
    /// `retry_after`.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Internal detail for the audit record; never sent to the client.
    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The HTTP status (gRPC callers get 200 and a `grpc-status` instead).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The public message.
    pub fn public_message(&self) -> &str {
        &self.message
    }

    /// The internal detail, if any.
    pub fn internal_detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// A public field set with [`field`](Self::field) (`retry_after`, `required_scopes`, …).
    pub fn field_value(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The challenge, if any.
    pub fn bearer_challenge(&self) -> Option<&BearerChallenge> {
        self.challenge.as_ref()
    }

    /// The gRPC status code this rejection maps to: 16 unauthenticated, 7 permission denied,
    /// 8 resource exhausted, 3 invalid argument, 5 not found, 12 unimplemented, 14 unavailable,
    /// 4 deadline exceeded, 13 internal, 2 unknown.
    pub fn grpc_status(&self) -> u8 {
        match self.status.as_u16() {
            401 => 16,
            403 => 7,
            413 | 429 => 8,
            400 | 405 | 406 | 415 | 422 => 3,
            404 => 5,
            501 => 12,
            503 => 14,
            408 | 504 => 4,
            500..=599 => 13,
            _ => 2,
        }
    }

    /// Render the rejection for the caller. A copy of the rejection is put into the response's
    /// extensions for outer layers (audit).
    pub fn into_response<B>(self, format: &ResponseFormat) -> Response<GuardBody<B>> {
        let mut response = Response::new(GuardBody::rejection(Bytes::new()));
        let mut headers = self.headers.clone();
        if let Some(challenge) = &self.challenge {
            headers.insert(WWW_AUTHENTICATE, challenge.to_header_value());
        }
        let body = match format {
            ResponseFormat::Grpc => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert(
                    HeaderName::from_static("grpc-status"),
                    HeaderValue::from(u16::from(self.grpc_status())),
                );
                if let Ok(v) = HeaderValue::from_str(&grpc_percent_encode(&self.message)) {
                    headers.insert(HeaderName::from_static("grpc-message"), v);
                }
                *response.status_mut() = StatusCode::OK;
                Bytes::new()
            }
            _ if self.challenge.is_some() => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *response.status_mut() = self.status;
                let error = self
                    .challenge
                    .as_ref()
                    .and_then(BearerChallenge::error_code)
                    .map_or(self.code, BearerError::as_str);
                let mut body = Map::new();
                body.insert("error".into(), error.into());
                body.insert("error_description".into(), self.message.clone().into());
                body.extend(self.fields.clone());
                Bytes::from(Value::Object(body).to_string())
            }
            ResponseFormat::JsonRpc(call) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *response.status_mut() = self.status;
                Bytes::from(self.jsonrpc_body(call.as_ref()).to_string())
            }
            ResponseFormat::JsonRpcId(id) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *response.status_mut() = self.status;
                Bytes::from(self.jsonrpc_error(id.to_json()).to_string())
            }
            ResponseFormat::Json => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *response.status_mut() = self.status;
                let mut body = Map::new();
                body.insert("error".into(), self.code.into());
                body.insert("message".into(), self.message.clone().into());
                body.extend(self.fields.clone());
                Bytes::from(Value::Object(body).to_string())
            }
        };
        *response.headers_mut() = headers;
        *response.body_mut() = GuardBody::rejection(body);
        response.extensions_mut().insert(self);
        response
    }

    fn jsonrpc_error(&self, id: Value) -> Value {
        let mut data = Map::new();
        data.insert("status".into(), self.status.as_u16().into());
        data.insert("code".into(), self.code.into());
        data.extend(self.fields.clone());
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": self.jsonrpc_code, "message": self.message, "data": data },
        })
    }

    fn jsonrpc_body(&self, call: Option<&McpCall>) -> Value {
        let error = |id: Value| self.jsonrpc_error(id);
        match call {
            Some(call) if call.is_batch() => {
                let errors: Vec<Value> = call
                    .messages()
                    .iter()
                    .filter(|m| m.kind() == MessageKind::Request)
                    .filter_map(|m| m.id().map(|id| error(id.to_json())))
                    .collect();
                if errors.is_empty() {
                    error(Value::Null)
                } else {
                    Value::Array(errors)
                }
            }
            Some(call) => error(
                call.single()
                    .filter(|m| m.kind() == MessageKind::Request)
                    .and_then(|m| m.id())
                    .map_or(Value::Null, JsonRpcId::to_json),
            ),
            None => error(Value::Null),
        }
    }
}

/// Percent-encode a gRPC status message as the gRPC HTTP/2 protocol asks: bytes outside
/// `0x20..=0x7E`, and `%`, become `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pin_project! {
    /// A response body that is either the inner service's body or a small rejection body.
    ///
    /// Every layer that can reject returns `Response<GuardBody<B>>`, so no layer needs
    /// `B: Default` and the inner body's error type is kept.
    pub struct GuardBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { #[pin] body: Full<Bytes> },
    }
}

impl<B> GuardBody<B> {
    /// Wrap the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of fixed bytes, as rejections use.
    pub fn rejection(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Rejection {
                body: Full::new(bytes),
            },
        }
    }

    /// Whether this is a rejection body.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("GuardBody::Inner").field(body).finish(),
            Kind::Rejection { body } => f.debug_tuple("GuardBody::Rejection").field(body).finish(),
        }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse_envelope;
    use http_body_util::{BodyExt, Empty};

    type Res = Response<GuardBody<Empty<Bytes>>>;

    async fn body_json(res: Res) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn too_many() -> Rejection {
        Rejection::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            .message("Rate limit exceeded. Please try again later.")
            .header(http::header::RETRY_AFTER, HeaderValue::from_static("2"))
            .field("retry_after", 2)
            .detail("secret internal reason")
    }

    #[tokio::test]
    async fn plain_json() {
        let res: Res = too_many().into_response(&ResponseFormat::Json);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["retry-after"], "2");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(r.internal_detail(), Some("secret internal reason"));
        assert_eq!(
            body_json(res).await,
            json!({"error":"rate_limited","message":"Rate limit exceeded. Please try again later.","retry_after":2})
        );
    }

    #[tokio::test]
    async fn jsonrpc_single_uses_request_id() {
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":"q7","method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        let res: Res = too_many().into_response(&ResponseFormat::JsonRpc(Some(call)));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["retry-after"], "2");
        assert_eq!(
            body_json(res).await,
            json!({"jsonrpc":"2.0","id":"q7","error":{"code":-32000,
                "message":"Rate limit exceeded. Please try again later.",
                "data":{"status":429,"code":"rate_limited","retry_after":2}}})
        );
    }

    #[tokio::test]
    async fn jsonrpc_without_envelope_or_for_notification_has_null_id() {
        let r =
            Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").jsonrpc_code(-32600);
        let res: Res = r.clone().into_response(&ResponseFormat::JsonRpc(None));
        assert_eq!(res.status(), 413);
        let body = body_json(res).await;
        assert_eq!(body["id"], Value::Null);
        assert_eq!(body["error"]["code"], -32600);
        assert_eq!(body["error"]["message"], "Payload Too Large");

        let note = parse_envelope(br#"{"jsonrpc":"2.0","method":"notifications/x"}"#).unwrap();
        let res: Res = r.into_response(&ResponseFormat::JsonRpc(Some(note)));
        assert_eq!(body_json(res).await["id"], Value::Null);
    }

    #[tokio::test]
    async fn jsonrpc_batch_answers_each_request() {
        let call = parse_envelope(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"b","method":"b"}]"#,
        )
        .unwrap();
        let res: Res = too_many().into_response(&ResponseFormat::JsonRpc(Some(call)));
        let body = body_json(res).await;
        let ids: Vec<&Value> = body.as_array().unwrap().iter().map(|e| &e["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!("b")]);
        assert_eq!(body[1]["error"]["data"]["retry_after"], 2);
    }

    #[tokio::test]
    async fn oauth_challenge_overrides_jsonrpc() {
        let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        let r = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
            .message("The access token expired")
            .challenge(
                BearerChallenge::new()
                    .realm("mcp")
                    .error(BearerError::InvalidToken)
                    .error_description("The access token expired")
                    .resource_metadata(
                        "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
                    ),
            );
        let res: Res = r.into_response(&ResponseFormat::JsonRpc(Some(call)));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"The access token expired\", resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource\""
        );
        assert_eq!(
            body_json(res).await,
            json!({"error":"invalid_token","error_description":"The access token expired"})
        );
    }

    #[tokio::test]
    async fn missing_credentials_challenge_has_no_error_param() {
        let r = Rejection::new(StatusCode::UNAUTHORIZED, "missing_credentials")
            .message("Authentication required")
            .challenge(BearerChallenge::new().realm("mcp"));
        let res: Res = r.into_response(&ResponseFormat::Json);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer realm=\"mcp\"");
        assert_eq!(
            body_json(res).await,
            json!({"error":"missing_credentials","error_description":"Authentication required"})
        );
    }

    #[test]
    fn challenge_escapes_quotes_backslashes_and_controls() {
        let c = BearerChallenge::new()
            .error(BearerError::InsufficientScope)
            .error_description("a\"b\\c\r\nd\u{e9}")
            .scope("notes:read notes:write");
        let v = c.to_header_value();
        assert_eq!(
            v.to_str().unwrap(),
            r#"Bearer error="insufficient_scope", error_description="a\"b\\c??d?", scope="notes:read notes:write""#
        );
        assert_eq!(BearerChallenge::new().to_header_value(), "Bearer");
    }

    #[tokio::test]
    async fn grpc_trailers_only() {
        for (status, grpc) in [(401, "16"), (403, "7"), (429, "8"), (413, "8"), (400, "3")] {
            let r = Rejection::new(StatusCode::from_u16(status).unwrap(), "x")
                .message("nope 100% \"sure\"\n");
            let res: Res = r.into_response(&ResponseFormat::Grpc);
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["content-type"], "application/grpc");
            assert_eq!(res.headers()["grpc-status"], grpc, "for HTTP {status}");
            assert_eq!(res.headers()["grpc-message"], "nope 100%25 \"sure\"%0A");
            assert!(res.body().is_end_stream() || res.body().size_hint().exact() == Some(0));
            let collected = res.into_body().collect().await.unwrap();
            assert!(collected.to_bytes().is_empty());
        }
    }

    #[test]
    fn format_for_request() {
        let mut headers = HeaderMap::new();
        let mut ext = http::Extensions::new();
        assert_eq!(
            ResponseFormat::for_request(&headers, &ext),
            ResponseFormat::Json
        );
        let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        ext.insert(call.clone());
        assert_eq!(
            ResponseFormat::for_request(&headers, &ext),
            ResponseFormat::JsonRpc(Some(call))
        );
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC; charset=x", true),
            ("application/grpcx", false),
            ("application/json", false),
        ] {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(&headers), grpc, "{ct}");
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        assert_eq!(
            ResponseFormat::for_request(&headers, &ext),
            ResponseFormat::Grpc
        );
    }

    #[tokio::test]
    async fn guard_body_passes_inner_through() {
        let body: GuardBody<Full<Bytes>> = GuardBody::inner(Full::new(Bytes::from_static(b"hi")));
        assert!(!body.is_rejection());
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
    }
}
