//! The response side: one bounded rewriter for MCP responses, `application/json` and
//! `text/event-stream`, that every response-side layer (list filtering, result guards, tool-call
//! digests) builds on instead of writing its own SSE parser.
//!
//! [`RewriteBody`] wraps a response body. It finds the JSON-RPC responses the layer asked for
//! ([`Targets`]: the ids of the request, or every response for a replayed stream) and hands
//! each one, as raw JSON text, to a [`RewriteResponse`], which returns a replacement or keeps it
//! byte for byte. Everything else passes through untouched:
//!
//! - `application/json`: the body is buffered up to `max_bytes` (a single message or a batch
//!   array), then parsed once. A body that declares or reaches more than `max_bytes`, or that is
//!   not JSON, is replaced by a JSON-RPC error for the request's id: it fails closed.
//! - `text/event-stream`: events are parsed incrementally, one at a time, each bounded by
//!   `max_bytes`. An event that is not a target (a notification, a progress update, a ping, a
//!   priming event without data) is forwarded as soon as its terminating blank line arrives,
//!   zero-copy; nothing is held back beyond the event being read. Only the event whose `data` is
//!   a target response is rewritten (its `id:`, `event:` and `retry:` lines are kept). Once every
//!   target has been answered, the rest of the stream is forwarded frame by frame without parsing.
//!   An event over the cap, or a data payload that is not JSON while a target is still
//!   outstanding, is replaced by a JSON-RPC error event: it fails closed.
//!
//! The layer wrapping a body must also call [`prepare_head`], which drops `Content-Length` (the
//! body's length may change). [`RewriteBody::passthrough`] is the zero-cost form for responses a
//! layer does not touch, so a layer has one body type.
//!
//! Nothing here panics on any input, and no buffer grows beyond `max_bytes` plus one frame.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::JsonRpcId;

mod sse;
use sse::{Scanner, event_bytes, field_value, lines, rebuild_event};

/// The default cap on a buffered JSON response or one SSE event: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// JSON-RPC "internal error", the code of a fail-closed replacement.
pub const INTERNAL_ERROR: i32 = -32603;

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// `application/json` (or `+json`): one JSON-RPC message or a batch array.
    Json,
    /// `text/event-stream`: Server-Sent Events whose `data` are JSON-RPC messages.
    EventStream,
}

impl ResponseKind {
    /// The framing named by the response's `Content-Type`, if it is one the rewriter reads.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("text/event-stream") {
            Some(ResponseKind::EventStream)
        } else if essence.eq_ignore_ascii_case("application/json")
            || essence.rsplit_once('+').is_some_and(|(t, s)| {
                t.starts_with("application/") && s.eq_ignore_ascii_case("json")
            })
        {
            Some(ResponseKind::Json)
        } else {
            None
        }
    }
}

/// Drop the headers a rewritten body invalidates (`Content-Length`). Call it on every response
/// wrapped with [`RewriteBody::new`].
pub fn prepare_head(headers: &mut HeaderMap) {
    headers.remove(CONTENT_LENGTH);
}

/// Which JSON-RPC responses are handed to the [`RewriteResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// The responses answering these request ids (the request's, or a batch's). When all are
    /// answered, an event stream is passed through without parsing.
    Ids(Vec<JsonRpcId>),
    /// Every response in the body, whatever its id: for a stream that replays stored events
    /// (`GET` with `Last-Event-ID`), whose requests this layer never saw.
    AnyResponse,
}

/// Why a body could not be checked and was replaced by a JSON-RPC error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RewriteFailure {
    /// The JSON body, or one SSE event, is larger than the cap.
    TooLarge,
    /// The JSON body, or an SSE event's data, is not valid JSON (or has duplicate keys where the
    /// rewriter reads).
    InvalidJson,
    /// The [`RewriteResponse`] refused the message (e.g. a result of the wrong shape).
    Refused,
}

impl RewriteFailure {
    /// A stable snake_case label, for audit records and the error's `data.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            RewriteFailure::TooLarge => "response_too_large",
            RewriteFailure::InvalidJson => "response_invalid_json",
            RewriteFailure::Refused => "response_refused",
        }
    }
}

impl fmt::Display for RewriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a response-side layer does with each target response; see the [module docs](self).
pub trait RewriteResponse {
    /// Rewrite one target JSON-RPC response (`message` is its raw JSON text, a result or an
    /// error). Return `Ok(Some(text))` to replace it (valid JSON, one message), `Ok(None)` to keep
    /// it byte for byte, or `Err(())` to fail closed.
    ///
    /// # Errors
    /// `Err(())` replaces the message with a JSON-RPC error and reports
    /// [`RewriteFailure::Refused`] to [`failed`](Self::failed).
    #[allow(clippy::result_unit_err)]
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()>;

    /// The response (or one event) could not be checked and was replaced by a JSON-RPC error for
    /// `id`. Record the fact; the default does nothing.
    fn failed(&mut self, failure: RewriteFailure, id: &Value) {
        let _ = (failure, id);
    }

    /// The body reached its end (called once). The default does nothing.
    fn finished(&mut self) {}
}

/// The fail-closed replacement: a JSON-RPC error for `id`, `data.code` naming the failure.
pub fn failure_message(id: &Value, failure: RewriteFailure) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": INTERNAL_ERROR,
            "message": "The server's response could not be checked",
            "data": { "code": failure.as_str() },
        },
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Order-preserving raw JSON objects.

/// A JSON object read without building a tree: its members in order, each value as raw text.
/// Duplicate keys are refused (two parsers could disagree about which one counts). Write it back
/// with [`RawObject::write`]; values not touched are copied byte for byte.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// The members, in document order.
    pub members: Vec<(String, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parse a JSON object.
    ///
    /// # Errors
    /// Not a JSON object, or a duplicate key.
    pub fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The raw value of member `key`.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Write the object, with `replace` consulted for each member: `Some(text)` writes that raw
    /// JSON instead of the original value. `extra` members are appended at the end.
    pub fn write(
        &self,
        out: &mut String,
        mut replace: impl FnMut(&str) -> Option<String>,
        extra: &[(&str, &str)],
    ) {
        out.push('{');
        let mut first = true;
        let mut push_key = |out: &mut String, key: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            // A key always serializes.
            out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".into()));
            out.push(':');
        };
        for (k, v) in &self.members {
            push_key(out, k);
            match replace(k) {
                Some(text) => out.push_str(&text),
                None => out.push_str(v.get()),
            }
        }
        for (k, v) in extra {
            push_key(out, k);
            out.push_str(v);
        }
        out.push('}');
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(String, &'a RawValue)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    if members.iter().any(|(m, _)| *m == k) {
                        return Err(de::Error::custom(format_args!("duplicate key {k:?}")));
                    }
                    members.push((k, v));
                }
                Ok(RawObject { members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// What the rewriter reads of a message to decide whether it is a target.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

impl Probe {
    /// A message that carries `result` or `error` is read as a response even when it also has
    /// a `method`: such a message is malformed, and a client may take it for either, so the
    /// rewriter treats it as the answer it might be read as (fail closed).
    fn is_response(&self) -> bool {
        self.result.is_some() || self.error.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// The body.

pin_project! {
    /// A response body rewritten by a [`RewriteResponse`]; see the [module docs](self).
    pub struct RewriteBody<B, R> {
        #[pin]
        body: B,
        state: Option<Box<State<R>>>,
    }
}

struct State<R> {
    kind: ResponseKind,
    targets: Targets,
    max_bytes: usize,
    rewriter: R,
    buf: BytesMut,
    scanner: Scanner,
    /// Discarding the rest of an over-cap event.
    skipping: bool,
    out: VecDeque<Frame<Bytes>>,
    /// The inner body has ended.
    ended: bool,
    /// Every target answered: forward the rest untouched.
    passthrough: bool,
}

impl<B, R> fmt::Debug for RewriteBody<B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewriteBody")
            .field("rewriting", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B, R> RewriteBody<B, R> {
    /// The body passed through untouched (no allocation).
    pub fn passthrough(body: B) -> Self {
        RewriteBody { body, state: None }
    }

    /// Rewrite the target responses of `body`, framed as `kind`, buffering at most `max_bytes`
    /// (the whole JSON body, or one SSE event). `declared_len` is the response's
    /// `Content-Length`, if any: a JSON body declared over the cap fails closed before it is
    /// read. Call [`prepare_head`] on the response's headers too.
    pub fn new(
        body: B,
        kind: ResponseKind,
        targets: Targets,
        max_bytes: usize,
        declared_len: Option<u64>,
        rewriter: R,
    ) -> Self {
        let passthrough = matches!(&targets, Targets::Ids(ids) if ids.is_empty());
        let mut state = State {
            kind,
            targets,
            max_bytes,
            rewriter,
            buf: BytesMut::new(),
            scanner: Scanner::default(),
            skipping: false,
            out: VecDeque::new(),
            ended: false,
            passthrough,
        };
        if kind == ResponseKind::Json
            && !passthrough
            && declared_len.is_some_and(|n| n > max_bytes as u64)
        {
            // Fail before reading: the body is drained and dropped below.
            state.skipping = true;
        }
        RewriteBody {
            body,
            state: Some(Box::new(state)),
        }
    }

    /// Whether this body rewrites (false for [`passthrough`](Self::passthrough)).
    pub fn is_rewriting(&self) -> bool {
        self.state.is_some()
    }
}

impl<R: RewriteResponse> State<R> {
    fn first_target_id(&self) -> Value {
        match &self.targets {
            Targets::Ids(ids) => ids.first().map_or(Value::Null, JsonRpcId::to_json),
            Targets::AnyResponse => Value::Null,
        }
    }

    /// Whether a response with this id is a target; an `Ids` target is consumed.
    fn take_target(&mut self, id: Option<&Value>) -> bool {
        match &mut self.targets {
            Targets::AnyResponse => true,
            Targets::Ids(ids) => {
                let Some(id) = id else { return false };
                match ids.iter().position(|t| id_matches(t, id)) {
                    Some(i) => {
                        ids.swap_remove(i);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    fn targets_done(&self) -> bool {
        matches!(&self.targets, Targets::Ids(ids) if ids.is_empty())
    }

    fn outstanding(&self) -> bool {
        !self.targets_done()
    }

    /// Fail closed for every outstanding target (JSON) or the next one (SSE).
    fn fail_json(&mut self, failure: RewriteFailure) -> Bytes {
        let ids: Vec<Value> = match &mut self.targets {
            Targets::Ids(ids) => ids.drain(..).map(|i| i.to_json()).collect(),
            Targets::AnyResponse => vec![Value::Null],
        };
        let mut parts: Vec<String> = Vec::with_capacity(ids.len());
        for id in &ids {
            self.rewriter.failed(failure, id);
            parts.push(failure_message(id, failure));
        }
        let text = if parts.len() == 1 {
            parts.swap_remove(0)
        } else {
            format!("[{}]", parts.join(","))
        };
        Bytes::from(text)
    }

    fn fail_event(&mut self, failure: RewriteFailure, id: Option<Value>) -> Bytes {
        let id = match id {
            Some(id) => {
                self.take_target(Some(&id));
                id
            }
            None => {
                let id = self.first_target_id();
                if let Targets::Ids(ids) = &mut self.targets
                    && !ids.is_empty()
                {
                    ids.remove(0);
                }
                id
            }
        };
        self.rewriter.failed(failure, &id);
        // Fail closed: nothing after the replacement is sent, so a later copy of the response
        // (or the rest of an event that could not be read) cannot slip through.
        self.close();
        event_bytes(&failure_message(&id, failure))
    }

    /// End the body now: the rest of the inner body is not read.
    fn close(&mut self) {
        if !self.ended {
            self.ended = true;
            self.buf = BytesMut::new();
            self.rewriter.finished();
        }
    }

    /// Rewrite one message if it is a target. `Ok(None)`: keep it.
    fn message(&mut self, text: &str) -> Result<Option<String>, (RewriteFailure, Option<Value>)> {
        let probe: Probe =
            serde_json::from_str(text).map_err(|_| (RewriteFailure::InvalidJson, None))?;
        if !probe.is_response() || !self.take_target(probe.id.as_ref()) {
            return Ok(None);
        }
        let id = probe.id.unwrap_or(Value::Null);
        match self.rewriter.rewrite(text) {
            Ok(out) => Ok(out),
            Err(()) => Err((RewriteFailure::Refused, Some(id))),
        }
    }

    /// The whole JSON body is in `buf`.
    fn finish_json(&mut self) -> Bytes {
        let raw = self.buf.split().freeze();
        let Ok(text) = std::str::from_utf8(&raw) else {
            return self.fail_json(RewriteFailure::InvalidJson);
        };
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
                return self.fail_json(RewriteFailure::InvalidJson);
            };
            let mut changed = false;
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                match self.message(item.get()) {
                    Ok(Some(new)) => {
                        changed = true;
                        out.push(new);
                    }
                    Ok(None) => out.push(item.get().to_owned()),
                    Err((failure, id)) => {
                        changed = true;
                        let id = id.unwrap_or(Value::Null);
                        self.rewriter.failed(failure, &id);
                        out.push(failure_message(&id, failure));
                    }
                }
            }
            if changed {
                Bytes::from(format!("[{}]", out.join(",")))
            } else {
                raw
            }
        } else {
            match self.message(text) {
                Ok(Some(new)) => Bytes::from(new),
                Ok(None) => raw,
                Err((RewriteFailure::InvalidJson, _)) => {
                    self.fail_json(RewriteFailure::InvalidJson)
                }
                Err((failure, id)) => {
                    let id = id.unwrap_or(Value::Null);
                    self.rewriter.failed(failure, &id);
                    Bytes::from(failure_message(&id, failure))
                }
            }
        }
    }

    fn push_data(&mut self, data: Bytes) {
        if data.is_empty() || self.ended {
            return;
        }
        if self.passthrough {
            self.out.push_back(Frame::data(data));
            return;
        }
        match self.kind {
            ResponseKind::Json => {
                if self.skipping {
                    return;
                }
                if self.buf.len().saturating_add(data.len()) > self.max_bytes {
                    self.buf = BytesMut::new();
                    self.skipping = true;
                    return;
                }
                self.buf.extend_from_slice(&data);
            }
            ResponseKind::EventStream => self.push_sse(data),
        }
    }

    fn push_sse(&mut self, mut data: Bytes) {
        while !data.is_empty() && !self.ended {
            if self.passthrough {
                self.out.push_back(Frame::data(data));
                return;
            }
            let found = self.scanner.scan(&data);
            if self.skipping {
                // Drop the rest of an over-cap event, up to its blank line.
                let Some(end) = found else { return };
                self.skipping = false;
                let _ = data.split_to(end);
                continue;
            }
            match found {
                Some(end) => {
                    let piece = data.split_to(end);
                    if self.buf.len().saturating_add(end) > self.max_bytes {
                        self.buf = BytesMut::new();
                        self.too_large();
                        continue;
                    }
                    let event = if self.buf.is_empty() {
                        piece
                    } else {
                        self.buf.extend_from_slice(&piece);
                        self.buf.split().freeze()
                    };
                    self.event(event);
                }
                None => {
                    if self.buf.len().saturating_add(data.len()) > self.max_bytes {
                        self.buf = BytesMut::new();
                        self.skipping = true;
                        self.too_large();
                    } else {
                        self.buf.extend_from_slice(&data);
                    }
                    return;
                }
            }
        }
    }

    /// An SSE event over the cap: fail closed for the next outstanding target.
    fn too_large(&mut self) {
        if self.outstanding() {
            let b = self.fail_event(RewriteFailure::TooLarge, None);
            self.out.push_back(Frame::data(b));
            self.check_done();
        }
    }

    fn check_done(&mut self) {
        if self.targets_done() && !self.ended {
            self.passthrough = true;
            if !self.buf.is_empty() {
                let rest = self.buf.split().freeze();
                self.out.push_back(Frame::data(rest));
            }
        }
    }

    /// One complete event (with its terminating blank line, or the end of the stream).
    fn event(&mut self, event: Bytes) {
        let out = self.rewrite_event(&event);
        self.out.push_back(Frame::data(out.unwrap_or(event)));
        self.check_done();
    }

    fn rewrite_event(&mut self, event: &Bytes) -> Option<Bytes> {
        let text = match std::str::from_utf8(event) {
            Ok(t) => t,
            Err(_) if self.outstanding() => {
                return Some(self.fail_event(RewriteFailure::InvalidJson, None));
            }
            Err(_) => return None,
        };
        let mut data: Option<std::borrow::Cow<'_, str>> = None;
        for line in lines(text) {
            if let Some(value) = field_value(line, "data") {
                match &mut data {
                    Some(d) => {
                        let d = d.to_mut();
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(std::borrow::Cow::Borrowed(value)),
                }
            }
        }
        let data = data?;
        if data.trim().is_empty() {
            return None;
        }
        match self.message(&data) {
            Ok(None) => None,
            Ok(Some(new)) => Some(rebuild_event(text, &new)),
            Err((RewriteFailure::InvalidJson, _)) if !self.outstanding() => None,
            Err((failure, id)) => Some(self.fail_event(failure, id)),
        }
    }

    fn finish(&mut self) {
        if self.passthrough {
            if !self.buf.is_empty() {
                let rest = self.buf.split().freeze();
                self.out.push_back(Frame::data(rest));
            }
        } else {
            match self.kind {
                ResponseKind::Json => {
                    let body = if self.skipping {
                        self.fail_json(RewriteFailure::TooLarge)
                    } else if self.buf.is_empty() {
                        Bytes::new()
                    } else {
                        self.finish_json()
                    };
                    if !body.is_empty() {
                        self.out.push_back(Frame::data(body));
                    }
                }
                ResponseKind::EventStream => {
                    if !self.skipping && self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                        let event = self.buf.split().freeze();
                        // An unterminated last event: terminate it so it is read.
                        let mut owned = event.to_vec();
                        owned.extend_from_slice(b"\n\n");
                        self.event(Bytes::from(owned));
                    }
                }
            }
        }
        self.close();
    }
}

fn id_matches(target: &JsonRpcId, id: &Value) -> bool {
    match (target, id) {
        (JsonRpcId::String(a), Value::String(b)) => **a == **b,
        (JsonRpcId::Number(a), Value::Number(b)) => a == b,
        (JsonRpcId::Null, Value::Null) => true,
        _ => false,
    }
}

impl<B, R> Body for RewriteBody<B, R>
where
    B: Body<Data = Bytes>,
    R: RewriteResponse,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.body.poll_frame(cx);
        };
        loop {
            if let Some(frame) = state.out.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if state.ended {
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => state.push_data(data),
                    Err(trailers) => {
                        if !state.ended {
                            state.finish();
                            state.ended = true;
                        }
                        state.out.push_back(trailers);
                    }
                },
                Poll::Ready(None) => {
                    if !state.ended {
                        state.finish();
                        state.ended = true;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            None => self.body.is_end_stream(),
            Some(s) => s.ended && s.out.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            None => self.body.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
