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

    /// The protocol version the message names in
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (MCP 2026-07-28), when it is a
    /// string.
    pub fn meta_protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
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
/// use mcp_core::jsonrpc::{parse_envelope, MessageKind};
///
/// let call = parse_envelope(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call",
///     "params":{"name":"echo","arguments":{"text":"hi"}}}"#)?;
/// assert_eq!(call.method(), Some("tools/call"));
/// assert_eq!(call.tool(), Some("echo"));
/// assert_eq!(call.messages()[0].kind(), MessageKind::Request);
/// # Ok::<(), mcp_core::jsonrpc::EnvelopeError>(())
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
/// use mcp_core::jsonrpc::parse_envelope_bytes;
///
/// let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#);
/// assert_eq!(parse_envelope_bytes(&body)?.tool(), Some("echo"));
/// # Ok::<(), mcp_core::jsonrpc::EnvelopeError>(())
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

/// A message as read, its strings borrowed from the body where they had no escapes.
struct RawMessage<'de> {
    kind: MessageKind,
    id: Option<JsonRpcId>,
    method: Option<Cow<'de, str>>,
    name: Option<Cow<'de, str>>,
    uri: Option<Cow<'de, str>>,
    task_id: Option<Cow<'de, str>>,
    protocol_version: Option<Cow<'static, str>>,
}

impl RawMessage<'_> {
    fn finish(self, body: &Bytes) -> JsonRpcMessage {
        let text = |v: Option<Cow<'_, str>>, intern| v.map(|v| Text::new(body, v, intern));
        JsonRpcMessage {
            kind: self.kind,
            id: self.id,
            method: text(self.method, known_method),
            name: text(self.name, not_interned),
            uri: text(self.uri, not_interned),
            task_id: text(self.task_id, not_interned),
            protocol_version: self.protocol_version,
            body: body.clone(),
        }
    }
}

/// A structurally invalid message, found while the rest of the body is still consumed (so JSON
/// syntax errors later in the body are still reported as such).
struct Invalid {
    reason: &'static str,
    id: Option<JsonRpcId>,
}

impl Invalid {
    fn into_error(self) -> EnvelopeError {
        EnvelopeError::InvalidRequest {
            reason: self.reason,
            id: self.id,
        }
    }
}

enum Top<'de> {
    Single(Result<RawMessage<'de>, Invalid>),
    Batch(Result<Vec<RawMessage<'de>>, Invalid>),
    Other,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message or batch")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
                Ok(Top::Single(visit_message(map)?))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                let mut messages = Vec::new();
                let mut invalid = None;
                while let Some(element) = seq.next_element::<Element<'de>>()? {
                    match (element.0, &invalid) {
                        (Ok(m), None) => messages.push(m),
                        (Err(e), None) => invalid = Some(e),
                        (_, Some(_)) => {}
                    }
                }
                Ok(Top::Batch(match invalid {
                    Some(e) => Err(e),
                    None => Ok(messages),
                }))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a batch: a message, or anything else (consumed without recursion).
struct Element<'de>(Result<RawMessage<'de>, Invalid>);

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_OBJECT: Invalid = Invalid {
            reason: "every batch element must be a JSON object",
            id: None,
        };
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element<'de>, A::Error> {
                Ok(Element(visit_message(map)?))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
            fn visit_unit<E>(self) -> Result<Element<'de>, E> {
                Ok(Element(Err(NOT_OBJECT)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON value of which only strings (borrowed from the body when they have no escapes),
/// numbers and null are kept.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    Num(serde_json::Number),
    Null,
    Other,
}

impl Scalar<'_> {
    /// Read a string through `keep`, or skip any other value (without recursion) as `None`.
    fn deserialize_with<'de, D, T>(d: D, keep: fn(&str) -> T) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
    {
        struct V<T>(fn(&str) -> T);
        impl<'de, T> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Option<T>, E> {
                Ok(Some((self.0)(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(V(keep))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The envelope keys we read; everything else is skipped.
enum Key {
    JsonRpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Name,
    Uri,
    TaskId,
    Meta,
    ProtocolVersion,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::JsonRpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    "name" => Key::Name,
                    "uri" => Key::Uri,
                    "taskId" => Key::TaskId,
                    "_meta" => Key::Meta,
                    crate::mcp_headers::PROTOCOL_VERSION_META_KEY => Key::ProtocolVersion,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `params`: an object (whose `name`, `uri`, `taskId` and `_meta` protocol version we keep), an
/// array, or something invalid.
#[derive(Default)]
struct Params<'de> {
    name: Option<Cow<'de, str>>,
    uri: Option<Cow<'de, str>>,
    task_id: Option<Cow<'de, str>>,
    protocol_version: Option<Cow<'static, str>>,
    invalid: Option<&'static str>,
}

/// `params._meta`: only the protocol version is kept; anything but an object is ignored.
#[derive(Default)]
struct Meta {
    protocol_version: Option<Cow<'static, str>>,
    duplicate: bool,
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("_meta")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
                let mut meta = Meta::default();
                let mut seen = false;
                while let Some(key) = map.next_key::<Key>()? {
                    if !matches!(key, Key::ProtocolVersion) {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let VersionValue(value) = map.next_value()?;
                    meta.duplicate |= std::mem::replace(&mut seen, true);
                    meta.protocol_version = value;
                }
                Ok(meta)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Meta, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Meta::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Meta, E> {
                Ok(Meta::default())
            }
            fn visit_unit<E>(self) -> Result<Meta, E> {
                Ok(Meta::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A `_meta` protocol version: a string, kept as a `&'static str` when it is a known version so
/// the common case allocates nothing; any other JSON value reads as no version.
struct VersionValue(Option<Cow<'static, str>>);

impl<'de> Deserialize<'de> for VersionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Scalar::deserialize_with(d, |v: &str| {
            crate::mcp_headers::DEFAULT_PROTOCOL_VERSIONS
                .iter()
                .find(|known| **known == v)
                .map_or_else(|| Cow::Owned(v.to_owned()), |known| Cow::Borrowed(*known))
        })?;
        Ok(VersionValue(value))
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_STRUCTURED: Params<'static> = Params {
            name: None,
            uri: None,
            task_id: None,
            protocol_version: None,
            invalid: Some("`params` must be an object or an array"),
        };
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
                let mut params = Params::default();
                let (mut seen_name, mut seen_uri, mut seen_task, mut seen_meta) =
                    (false, false, false, false);
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, seen) = match key {
                        Key::Name => (&mut params.name, &mut seen_name),
                        Key::Uri => (&mut params.uri, &mut seen_uri),
                        Key::TaskId => (&mut params.task_id, &mut seen_task),
                        Key::Meta => {
                            let meta = map.next_value::<Meta>()?;
                            if std::mem::replace(&mut seen_meta, true) {
                                params.invalid = Some("a duplicate key in `params`");
                            }
                            if meta.duplicate {
                                params.invalid = Some("a duplicate key in `params._meta`");
                            }
                            params.protocol_version = meta.protocol_version;
                            continue;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Scalar>()?;
                    if std::mem::replace(seen, true) {
                        params.invalid = Some("a duplicate key in `params`");
                    }
                    *slot = match value {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    };
                }
                Ok(params)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_str<E>(self, _: &str) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
            fn visit_unit<E>(self) -> Result<Params<'de>, E> {
                Ok(NOT_STRUCTURED)
            }
        }
        d.deserialize_any(V)
    }
}

fn visit_message<'de, A: MapAccess<'de>>(
    mut map: A,
) -> Result<Result<RawMessage<'de>, Invalid>, A::Error> {
    let mut jsonrpc = None;
    let mut id = None;
    let mut method = None;
    let mut params: Option<Params<'de>> = None;
    let mut has_result = false;
    let mut has_error = false;
    let mut duplicate = false;
    while let Some(key) = map.next_key::<Key>()? {
        let repeated = match key {
            Key::JsonRpc => jsonrpc.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Id => id.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Method => method.replace(map.next_value::<Scalar>()?).is_some(),
            Key::Params => params.replace(map.next_value::<Params>()?).is_some(),
            Key::Result => {
                map.next_value::<IgnoredAny>()?;
                std::mem::replace(&mut has_result, true)
            }
            Key::Error => {
                map.next_value::<IgnoredAny>()?;
                std::mem::replace(&mut has_error, true)
            }
            Key::Name | Key::Uri | Key::TaskId | Key::Meta | Key::ProtocolVersion | Key::Other => {
                map.next_value::<IgnoredAny>()?;
                false
            }
        };
        duplicate |= repeated;
    }

    let id = match id {
        None => None,
        Some(Scalar::Str(s)) => Some(JsonRpcId::String(s.into())),
        Some(Scalar::Num(n)) => Some(JsonRpcId::Number(n)),
        Some(Scalar::Null) => Some(JsonRpcId::Null),
        Some(Scalar::Other) => {
            return Ok(Err(Invalid {
                reason: "`id` must be a string, a number or null",
                id: None,
            }));
        }
    };
    let invalid = |reason| {
        Ok(Err(Invalid {
            reason,
            id: id.clone(),
        }))
    };
    if duplicate {
        return invalid("a duplicate key in the message");
    }
    if !matches!(&jsonrpc, Some(Scalar::Str(v)) if v == "2.0") {
        return invalid("`jsonrpc` must be \"2.0\"");
    }
    let params = params.unwrap_or_default();
    if let Some(reason) = params.invalid {
        return invalid(reason);
    }
    let (kind, method) = match method {
        Some(Scalar::Str(m)) if has_result || has_error => {
            let _ = m;
            return invalid("a message cannot have both `method` and `result`/`error`");
        }
        Some(Scalar::Str(m)) if id.is_some() => (MessageKind::Request, Some(m)),
        Some(Scalar::Str(m)) => (MessageKind::Notification, Some(m)),
        Some(_) => return invalid("`method` must be a string"),
        None if has_result == has_error => {
            return invalid(
                "a message needs `method`, or `id` with exactly one of `result`/`error`",
            );
        }
        None if id.is_none() => return invalid("a response needs an `id`"),
        None => (MessageKind::Response, None),
    };
    Ok(Ok(RawMessage {
        kind,
        id,
        method,
        name: params.name,
        uri: params.uri,
        task_id: params.task_id,
        protocol_version: params.protocol_version,
    }))
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
