//! The JSON-RPC 2.0 envelope of an MCP message: just enough of the body to route, limit, authorize
//! and audit it, read without building a JSON tree.
//!
//! [`parse_envelope`] reads `jsonrpc`, `id`, `method`, `params.name` / `params.uri` /
//! `params.taskId` (the fields the `Mcp-Name` header mirrors) and the protocol version a
//! 2026-07-28 request names in `params._meta`; every other value (tool arguments, results) is skipped by serde's `IgnoredAny`, which in serde_json
//! walks nested arrays and objects iteratively, so a deeply nested body cannot overflow the stack.
//! Duplicate envelope keys are refused: a JSON parser that keeps the first and one that keeps the
//! last would otherwise disagree about which tool is being called.
//!
//! The body is read once, in place: [`parse_envelope_bytes`] keeps a handle on the body's
//! [`Bytes`] and the string fields (`method`, `params.name`, `params.uri`, `params.taskId`) as
//! ranges of it, so those fields cost no allocation unless they hold JSON escapes; well-known
//! method names and protocol versions are interned. The messages are shared by every clone of the
//! [`McpCall`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod wire;

use wire::Top;

/// A JSON-RPC request id: a string, a number, or `null`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JsonRpcId {
    /// A string id.
    String(Box<str>),
    /// A numeric id.
    Number(serde_json::Number),
    /// An explicit `null` id.
    Null,
}

impl JsonRpcId {
    /// The id as a JSON value, for echoing it in a response.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            JsonRpcId::String(s) => serde_json::Value::String(s.to_string()),
            JsonRpcId::Number(n) => serde_json::Value::Number(n.clone()),
            JsonRpcId::Null => serde_json::Value::Null,
        }
    }
}

impl fmt::Display for JsonRpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonRpcId::String(s) => write!(f, "{s:?}"),
            JsonRpcId::Number(n) => write!(f, "{n}"),
            JsonRpcId::Null => f.write_str("null"),
        }
    }
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A request: `method` and `id`.
    Request,
    /// A notification: `method`, no `id`.
    Notification,
    /// A response to a request the server sent: `id` and `result` or `error`, no `method`.
    Response,
}

/// A string field of a message: a well-known value, a range of the body (a JSON string without
/// escapes, borrowed), or an owned copy (a JSON string with escapes, decoded).
#[derive(Clone)]
enum Text {
    Static(&'static str),
    Span(u32, u32),
    Owned(Box<str>),
}

impl Text {
    /// `value`, read from `body`: interned when `intern` knows it, a range of `body` when it lies
    /// within it (serde_json lends unescaped strings from the input), owned otherwise.
    fn new(body: &[u8], value: Cow<'_, str>, intern: fn(&str) -> Option<&'static str>) -> Text {
        if let Some(known) = intern(&value) {
            return Text::Static(known);
        }
        match value {
            Cow::Borrowed(v) => {
                let start = (v.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
                let end = start.wrapping_add(v.len());
                match (u32::try_from(start), u32::try_from(end)) {
                    (Ok(s), Ok(e)) if start <= end && end <= body.len() => Text::Span(s, e),
                    _ => Text::Owned(v.into()),
                }
            }
            Cow::Owned(v) => Text::Owned(v.into_boxed_str()),
        }
    }

    fn get<'a>(&'a self, body: &'a Bytes) -> Option<&'a str> {
        match self {
            Text::Static(s) => Some(s),
            Text::Owned(s) => Some(s),
            // The range was a `&str` of these very bytes when it was recorded.
            Text::Span(start, end) => {
                std::str::from_utf8(body.get(*start as usize..*end as usize)?).ok()
            }
        }
    }
}

/// Interns the MCP method names, so the common ones are never copied or re-validated.
fn known_method(method: &str) -> Option<&'static str> {
    Some(match method {
        "tools/call" => "tools/call",
        "tools/list" => "tools/list",
        "initialize" => "initialize",
        "ping" => "ping",
        "notifications/initialized" => "notifications/initialized",
        "notifications/cancelled" => "notifications/cancelled",
        "notifications/progress" => "notifications/progress",
        "notifications/roots/list_changed" => "notifications/roots/list_changed",
        "resources/list" => "resources/list",
        "resources/templates/list" => "resources/templates/list",
        "resources/read" => "resources/read",
        "resources/subscribe" => "resources/subscribe",
        "resources/unsubscribe" => "resources/unsubscribe",
        "prompts/list" => "prompts/list",
        "prompts/get" => "prompts/get",
        "completion/complete" => "completion/complete",
        "logging/setLevel" => "logging/setLevel",
        "tasks/get" => "tasks/get",
        "tasks/list" => "tasks/list",
        "tasks/update" => "tasks/update",
        "tasks/cancel" => "tasks/cancel",
        "tasks/result" => "tasks/result",
        _ => return None,
    })
}

fn not_interned(_: &str) -> Option<&'static str> {
    None
}

/// The envelope of one JSON-RPC message.
///
/// Its string fields are ranges of the body it was read from (a cheap [`Bytes`] handle, shared
/// with the request), so cloning one copies no text unless a field had JSON escapes.
#[derive(Clone)]
pub struct JsonRpcMessage {
    kind: MessageKind,
    id: Option<JsonRpcId>,
    method: Option<Text>,
    name: Option<Text>,
    uri: Option<Text>,
    task_id: Option<Text>,
    /// `params.arguments` as sent: always a range of the body.
    arguments: Option<Text>,
    protocol_version: Option<Cow<'static, str>>,
    /// The body the `Text::Span` fields index.
    body: Bytes,
}

impl fmt::Debug for JsonRpcMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRpcMessage")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("method", &self.method())
            .field("name", &self.param_name())
            .field("uri", &self.param_uri())
            .field("task_id", &self.param_task_id())
            // The arguments may carry secrets: only their size.
            .field("arguments_len", &self.param_arguments().map(str::len))
            .field("protocol_version", &self.meta_protocol_version())
            .finish()
    }
}

impl PartialEq for JsonRpcMessage {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.id == other.id
            && self.method() == other.method()
            && self.param_name() == other.param_name()
            && self.param_uri() == other.param_uri()
            && self.param_task_id() == other.param_task_id()
            && self.param_arguments() == other.param_arguments()
            && self.meta_protocol_version() == other.meta_protocol_version()
    }
}

impl Eq for JsonRpcMessage {}

impl JsonRpcMessage {
    fn text<'a>(&'a self, field: &'a Option<Text>) -> Option<&'a str> {
        field.as_ref()?.get(&self.body)
    }

    /// Request, notification or response.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The `id`, absent for notifications.
    pub fn id(&self) -> Option<&JsonRpcId> {
        self.id.as_ref()
    }

    /// The `method`, absent for responses.
    pub fn method(&self) -> Option<&str> {
        self.text(&self.method)
    }

    /// `params.name` when it is a string (the tool of `tools/call`, the prompt of `prompts/get`).
    pub fn param_name(&self) -> Option<&str> {
        self.text(&self.name)
    }

    /// `params.uri` when it is a string (the resource of `resources/read`).
    pub fn param_uri(&self) -> Option<&str> {
        self.text(&self.uri)
    }

    /// `params.taskId` when it is a string (the task of `tasks/get`, `tasks/update`,
    /// `tasks/cancel`).
    pub fn param_task_id(&self) -> Option<&str> {
        self.text(&self.task_id)
    }

    /// The raw JSON text of `params.arguments` exactly as the client sent it (the arguments of
    /// `tools/call` and `prompts/get`), whitespace and key order included: a range of the body,
    /// found while the envelope was read, so a layer that needs the arguments parses only them
    /// (or digests these very bytes) instead of the whole body again. `None` when `params` has
    /// no `arguments` member, or repeats it (which copy a server would read is not guessed).
    ///
    /// ```
    /// use mcp_security_core::jsonrpc::parse_envelope;
    ///
    /// let env = parse_envelope(
    ///     br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text": "hi"}}}"#,
    /// )?;
    /// assert_eq!(env.messages()[0].param_arguments(), Some(r#"{"text": "hi"}"#));
    /// # Ok::<(), mcp_security_core::jsonrpc::EnvelopeError>(())
    /// ```
    pub fn param_arguments(&self) -> Option<&str> {
        self.text(&self.arguments)
    }

    /// The protocol version the message names in
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (MCP 2026-07-28), when it is a
    /// string.
    pub fn meta_protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// The POST body this message was read from (the whole body, a batch's included), shared
    /// with the request: a layer that needs more than the envelope (`params.arguments`) parses
    /// it from here instead of reading the body again.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The tool being called, for `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match self.method() {
            Some("tools/call") => self.param_name(),
            _ => None,
        }
    }

    /// What the `Mcp-Name` header names for this message: `params.name` for `tools/call` and
    /// `prompts/get`, `params.uri` for `resources/read|subscribe|unsubscribe`, `params.taskId`
    /// for `tasks/get|update|cancel`, nothing for other methods (see
    /// [`mcp_headers::name_field`](crate::mcp_headers::name_field)).
    pub fn target(&self) -> Option<&str> {
        use crate::mcp_headers::{NameField, name_field};
        match name_field(self.method()?)? {
            NameField::Name => self.param_name(),
            NameField::Uri => self.param_uri(),
            NameField::TaskId => self.param_task_id(),
        }
    }
}

/// The envelope of an MCP POST body: one message or a batch. Inserted into request extensions by
/// [`McpInspectLayer`](crate::inspect::McpInspectLayer); cloning is cheap (the messages are
/// shared, and their text is shared with the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCall {
    messages: Arc<[JsonRpcMessage]>,
    batch: bool,
}

impl McpCall {
    /// Every message, in body order (one unless [`is_batch`](Self::is_batch)).
    pub fn messages(&self) -> &[JsonRpcMessage] {
        &self.messages
    }

    /// Whether the body was a JSON array (a batch, allowed by MCP 2025-03-26 only).
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The message, when the body held exactly one and was not a batch.
    pub fn single(&self) -> Option<&JsonRpcMessage> {
        match &*self.messages {
            [one] if !self.batch => Some(one),
            _ => None,
        }
    }

    /// The method of a single-message body.
    pub fn method(&self) -> Option<&str> {
        self.single().and_then(JsonRpcMessage::method)
    }

    /// The tool of a single `tools/call` body.
    pub fn tool(&self) -> Option<&str> {
        self.single().and_then(JsonRpcMessage::tool)
    }

    /// Every tool called in the body (more than one only in a batch).
    pub fn tools(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().filter_map(JsonRpcMessage::tool)
    }
}

/// Why a body is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not valid JSON (JSON-RPC `-32700`). The text is serde_json's, with line and column.
    Parse(String),
    /// Valid JSON, but not a JSON-RPC 2.0 message (JSON-RPC `-32600`).
    InvalidRequest {
        /// What is wrong, e.g. "`jsonrpc` must be \"2.0\"".
        reason: &'static str,
        /// The request's id, when one could be read.
        id: Option<JsonRpcId>,
    },
}

impl EnvelopeError {
    /// The JSON-RPC error code: `-32700` or `-32600`.
    pub fn code(&self) -> i32 {
        match self {
            EnvelopeError::Parse(_) => PARSE_ERROR,
            EnvelopeError::InvalidRequest { .. } => INVALID_REQUEST,
        }
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Parse(e) => write!(f, "invalid JSON: {e}"),
            EnvelopeError::InvalidRequest { reason, .. } => {
                write!(f, "not a JSON-RPC 2.0 message: {reason}")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i32 = -32600;
/// MCP 2026-07-28 "HeaderMismatch": the `Mcp-Method` / `Mcp-Name` headers disagree with the body.
pub const HEADER_MISMATCH: i32 = -32020;
/// MCP 2026-07-28 "UnsupportedProtocolVersion".
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
/// JSON-RPC implementation-defined server error, used for rejections that have no better code.
pub const SERVER_ERROR: i32 = -32000;

/// Parse the envelope of an MCP POST body (copying it; [`parse_envelope_bytes`] reads a body
/// already held as [`Bytes`] in place).
///
/// ```
/// use mcp_security_core::jsonrpc::{parse_envelope, MessageKind};
///
/// let call = parse_envelope(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call",
///     "params":{"name":"echo","arguments":{"text":"hi"}}}"#)?;
/// assert_eq!(call.method(), Some("tools/call"));
/// assert_eq!(call.tool(), Some("echo"));
/// assert_eq!(call.messages()[0].kind(), MessageKind::Request);
/// # Ok::<(), mcp_security_core::jsonrpc::EnvelopeError>(())
/// ```
///
/// # Errors
/// [`EnvelopeError::Parse`] for a body that is not JSON, [`EnvelopeError::InvalidRequest`] for
/// JSON that is not a JSON-RPC 2.0 message or batch.
pub fn parse_envelope(body: &[u8]) -> Result<McpCall, EnvelopeError> {
    parse_envelope_bytes(&Bytes::copy_from_slice(body))
}

/// [`parse_envelope`] of a body held as [`Bytes`], without copying it: the [`McpCall`] keeps a
/// handle on `body` and reads its string fields from it.
///
/// ```
/// use bytes::Bytes;
/// use mcp_security_core::jsonrpc::parse_envelope_bytes;
///
/// let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#);
/// assert_eq!(parse_envelope_bytes(&body)?.tool(), Some("echo"));
/// # Ok::<(), mcp_security_core::jsonrpc::EnvelopeError>(())
/// ```
///
/// # Errors
/// As for [`parse_envelope`].
pub fn parse_envelope_bytes(body: &Bytes) -> Result<McpCall, EnvelopeError> {
    let top: Top<'_> =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::Parse(e.to_string()))?;
    match top {
        Top::Single(Ok(message)) => Ok(McpCall {
            messages: Arc::from([message.finish(body)]),
            batch: false,
        }),
        Top::Single(Err(invalid)) => Err(invalid.into_error()),
        Top::Batch(Ok(messages)) if messages.is_empty() => Err(EnvelopeError::InvalidRequest {
            reason: "an empty batch",
            id: None,
        }),
        Top::Batch(Ok(messages)) => Ok(McpCall {
            messages: messages.into_iter().map(|m| m.finish(body)).collect(),
            batch: true,
        }),
        Top::Batch(Err(invalid)) => Err(EnvelopeError::InvalidRequest {
            reason: invalid.reason,
            id: None,
        }),
        Top::Other => Err(EnvelopeError::InvalidRequest {
            reason: "the body must be a JSON object or an array of them",
            id: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_reason(body: &[u8]) -> &'static str {
        match parse_envelope(body) {
            Err(EnvelopeError::InvalidRequest { reason, .. }) => reason,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn arguments_are_a_span_of_the_body_as_sent() {
        let body = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments": {"x" : "\u0041", "n": [1, 2]} }},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":[],"name":"b"}},
                {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"c","arguments":{},"arguments":{"a":1}}},
                {"jsonrpc":"2.0","id":4,"method":"ping","params":{"_meta":{"arguments":1}},"arguments":2}]"#,
        );
        let call = parse_envelope_bytes(&body).unwrap();
        let args: Vec<_> = call
            .messages()
            .iter()
            .map(|m| m.param_arguments())
            .collect();
        assert_eq!(
            args,
            [
                Some(r#"{"x" : "\u0041", "n": [1, 2]}"#),
                Some("[]"),
                None,
                None
            ],
            "as sent (escapes, spaces); a repeated member is not guessed; only params.arguments"
        );
        let first = call.messages()[0].param_arguments().unwrap();
        let start = first.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(
            &body[start..start + first.len()],
            first.as_bytes(),
            "borrowed, not copied"
        );
        let debug = format!("{:?}", call.messages()[0]);
        assert!(
            debug.contains("arguments_len: Some(29)") && !debug.contains("u0041"),
            "{debug}"
        );
    }

    #[test]
    fn single_request_with_tool() {
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"arguments":{"name":"not this"},"name":"echo"}}"#,
        )
        .unwrap();
        assert!(!call.is_batch());
        let m = call.single().unwrap();
        assert_eq!(m.kind(), MessageKind::Request);
        assert_eq!(m.id(), Some(&JsonRpcId::String("a-1".into())));
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(
            m.tool(),
            Some("echo"),
            "only the top-level params.name counts"
        );
        assert_eq!(m.target(), Some("echo"));
    }

    #[test]
    fn resources_read_targets_uri_and_escaped_keys_match() {
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"u\u0072i":"file:///a"}}"#,
        )
        .unwrap();
        assert_eq!(call.single().unwrap().target(), Some("file:///a"));
        assert_eq!(call.tool(), None);
    }

    #[test]
    fn notification_and_response() {
        let n =
            parse_envelope(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.single().unwrap().kind(), MessageKind::Notification);
        assert_eq!(n.single().unwrap().id(), None);
        let r = parse_envelope(br#"{"jsonrpc":"2.0","id":5,"result":{"x":[1,2]}}"#).unwrap();
        assert_eq!(r.single().unwrap().kind(), MessageKind::Response);
        assert_eq!(r.method(), None);
    }

    #[test]
    fn batch() {
        let call = parse_envelope(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
                 {"jsonrpc":"2.0","method":"notifications/progress","params":{}},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#,
        )
        .unwrap();
        assert!(call.is_batch());
        assert_eq!(call.messages().len(), 3);
        assert_eq!(call.single(), None);
        assert_eq!(call.method(), None);
        assert_eq!(call.tools().collect::<Vec<_>>(), ["a", "b"]);
        // A batch of one is still a batch.
        let one = parse_envelope(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert!(one.is_batch());
        assert_eq!(one.single(), None);
    }

    #[test]
    fn parse_errors() {
        for body in [
            &b""[..],
            b"{",
            b"{\"jsonrpc\":\"2.0\",}",
            b"nul",
            b"{} {}",
            b"\xff",
        ] {
            match parse_envelope(body) {
                Err(e @ EnvelopeError::Parse(_)) => assert_eq!(e.code(), -32700),
                other => panic!("{body:?}: expected a parse error, got {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_requests() {
        assert_eq!(invalid_reason(b"[]"), "an empty batch");
        assert_eq!(
            invalid_reason(b"42"),
            "the body must be a JSON object or an array of them"
        );
        assert_eq!(
            invalid_reason(br#"{"id":1,"method":"ping"}"#),
            "`jsonrpc` must be \"2.0\""
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            "`jsonrpc` must be \"2.0\""
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            "`method` must be a string"
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            "`id` must be a string, a number or null"
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#),
            "`params` must be an object or an array"
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"2.0","id":1}"#),
            "a message needs `method`, or `id` with exactly one of `result`/`error`"
        );
        assert_eq!(
            invalid_reason(br#"{"jsonrpc":"2.0","result":1}"#),
            "a response needs an `id`"
        );
        assert_eq!(
            invalid_reason(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 3]"#),
            "every batch element must be a JSON object"
        );
    }

    #[test]
    fn invalid_request_keeps_the_id() {
        match parse_envelope(br#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#) {
            Err(EnvelopeError::InvalidRequest { id, .. }) => {
                assert_eq!(id, Some(JsonRpcId::Number(9.into())))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            invalid_reason(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#
            ),
            "a duplicate key in the message"
        );
        assert_eq!(
            invalid_reason(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#
            ),
            "a duplicate key in `params`"
        );
    }

    #[test]
    fn task_ids_and_the_meta_protocol_version() {
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-9",
                "_meta":{"other":{"io.modelcontextprotocol/protocolVersion":"no"},
                "io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .unwrap();
        let m = call.single().unwrap();
        assert_eq!(m.param_task_id(), Some("t-9"));
        assert_eq!(m.target(), Some("t-9"));
        assert_eq!(m.meta_protocol_version(), Some("2026-07-28"));
        // Known versions are interned; others kept as sent; non-strings and non-objects ignored.
        assert!(matches!(m.protocol_version, Some(Cow::Borrowed(_))));
        // Unescaped strings are ranges of the body, escaped ones decoded copies; known methods
        // are interned.
        assert!(matches!(m.task_id, Some(Text::Span(..))));
        assert!(matches!(m.method, Some(Text::Static("tasks/get"))));
        let odd = parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2031-01-01"}}}"#,
        )
        .unwrap();
        assert_eq!(
            odd.messages()[0].meta_protocol_version(),
            Some("2031-01-01")
        );
        for meta in [
            r#"{"io.modelcontextprotocol/protocolVersion":7}"#,
            "[]",
            "3",
            "null",
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"_meta":{meta}}}}}"#
            );
            let call = parse_envelope(body.as_bytes()).unwrap();
            assert_eq!(call.messages()[0].meta_protocol_version(), None, "{meta}");
        }
        // The version key outside `_meta` is not the version.
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
        )
        .unwrap();
        assert_eq!(call.messages()[0].meta_protocol_version(), None);
        // The resources methods target their uri.
        for method in ["resources/subscribe", "resources/unsubscribe"] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"u"}}}}"#);
            assert_eq!(
                parse_envelope(body.as_bytes()).unwrap().messages()[0].target(),
                Some("u")
            );
        }
    }

    #[test]
    fn duplicate_task_ids_and_meta_versions_are_refused() {
        assert_eq!(
            invalid_reason(
                br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","taskId":"b"}}"#
            ),
            "a duplicate key in `params`"
        );
        assert_eq!(
            invalid_reason(
                br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{},"_meta":{}}}"#
            ),
            "a duplicate key in `params`"
        );
        assert_eq!(
            invalid_reason(
                br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#
            ),
            "a duplicate key in `params._meta`"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_envelope(deep.as_bytes()),
            Err(EnvelopeError::Parse(_))
        ));
        // Deep but well-formed nesting inside params is skipped without recursion.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_envelope(body.as_bytes()).unwrap().tool(), Some("x"));
        // ... and as a batch element.
        let body = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            invalid_reason(body.as_bytes()),
            "every batch element must be a JSON object"
        );
    }
}
