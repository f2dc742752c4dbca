//! [`AuditBody`]: the audit layer's response body, which digests a `tools/call` result on its
//! way out without changing a byte of it.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use mcp_security_core::facts::{FactRecorder, ResponseFact};
use mcp_security_core::jsonrpc::JsonRpcId;
use mcp_security_core::response::{
    ResponseKind, RewriteBody, RewriteFailure, RewriteResponse, Targets,
};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{DigestPart, EvidenceConfig, mac};

/// Why no result digest was taken: the answer was a JSON-RPC error.
const JSONRPC_ERROR: &str = "jsonrpc_error";
/// Why no result digest was taken: the response is neither JSON nor an event stream.
const NOT_JSON_OR_SSE: &str = "not_json_or_sse";
/// Why no result digest was taken: the body ended, or was dropped, before the answer.
const NO_RESPONSE: &str = "no_response";

pin_project! {
    /// The response body of the [`Audit`](crate::Audit) service: the inner body, unchanged.
    /// For a `tools/call` it also digests the answer as it passes (see [`crate::evidence`]);
    /// for every other response it is the inner body and nothing more.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use mcp_security_audit::chain::AuditKey;
    /// use mcp_security_audit::evidence::{DigestPart, digest};
    /// use mcp_security_audit::{AuditLayer, MemorySink};
    /// use mcp_security_core::inspect::McpInspectLayer;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let key = AuditKey::from_bytes(b"at least thirty-two bytes of key!")?;
    /// let records = MemorySink::new();
    /// let svc = ServiceBuilder::new()
    ///     .layer(AuditLayer::builder().sink(records.clone()).tool_call_evidence(key.clone()).build()?)
    ///     .layer(McpInspectLayer::new())
    ///     .service_fn(|_req: Request<_>| async {
    ///         let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#;
    ///         let mut res = Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
    ///         res.headers_mut().insert("content-type", "application/json".parse().unwrap());
    ///         Ok::<_, Infallible>(res)
    ///     });
    ///
    /// let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    /// let req = Request::post("/mcp")
    ///     .header("content-type", "application/json")
    ///     .header("accept", "application/json, text/event-stream")
    ///     .body(Full::new(Bytes::from_static(call.as_bytes())))?;
    /// let res = svc.oneshot(req).await?;
    /// let body = res.into_body().collect().await?.to_bytes(); // unchanged
    /// assert!(body.starts_with(br#"{"jsonrpc":"2.0","id":1,"result""#));
    ///
    /// let evidence = records.completions()[0].tool_call().unwrap();
    /// assert_eq!(evidence.args_digest, Some(digest(&key, DigestPart::Arguments, r#"{"text":"hi"}"#)));
    /// assert_eq!(
    ///     evidence.result_digest,
    ///     Some(digest(&key, DigestPart::Result, r#"{"content":[],"isError":false}"#))
    /// );
    /// assert_eq!(evidence.is_error, Some(false));
    /// # Ok(())
    /// # }
    /// ```
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        evidence: Option<Box<Evidence>>,
    }

    impl<B> PinnedDrop for AuditBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // The client went away before the end (or the body was never read).
            if let Some(mut evidence) = this.project().evidence.take() {
                evidence.finish(false);
            }
        }
    }
}

impl<B> fmt::Debug for AuditBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditBody")
            .field("digesting", &self.evidence.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> AuditBody<B> {
    /// The body as it is (no evidence).
    pub(crate) fn plain(inner: B) -> Self {
        AuditBody {
            inner,
            evidence: None,
        }
    }

    pub(crate) fn with_evidence(inner: B, evidence: Option<Box<Evidence>>) -> Self {
        AuditBody { inner, evidence }
    }

    /// Whether this body is digesting a `tools/call` answer.
    pub fn is_digesting(&self) -> bool {
        self.evidence.is_some()
    }
}

impl<B> Body for AuditBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let out = this.inner.as_mut().poll_frame(cx);
        if let Some(evidence) = this.evidence.as_mut() {
            match &out {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        evidence.feed(data);
                    }
                    // A body that knows it has ended, or has sent its declared length, is not
                    // polled again (hyper stops there and drops it): this was its last frame.
                    if (this.inner.is_end_stream() || evidence.remaining == Some(0))
                        && let Some(mut evidence) = this.evidence.take()
                    {
                        evidence.finish(true);
                    }
                }
                Poll::Ready(None) => {
                    if let Some(mut evidence) = this.evidence.take() {
                        evidence.finish(true);
                    }
                }
                // An error ends the body; the drop records what was seen.
                Poll::Ready(Some(Err(_))) | Poll::Pending => {}
            }
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the shadow reader found.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Digested {
        mac: [u8; 32],
        is_error: Option<bool>,
    },
    NotDigested(&'static str),
}

/// Shared between [`Evidence`] and the reader inside its shadow body: the next frame to read,
/// and what the reader found.
#[derive(Debug, Default)]
struct Slot {
    next: Option<Bytes>,
    ended: bool,
    outcome: Option<Outcome>,
}

type SharedSlot = Arc<Mutex<Slot>>;

fn lock(slot: &SharedSlot) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The body the shadow reader reads: the copies handed to it one frame at a time.
struct Feed(SharedSlot);

impl Body for Feed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut slot = lock(&self.0);
        match slot.next.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if slot.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Keeps every message as it is and notes the digest of the target's `result`.
struct Observer {
    config: Arc<EvidenceConfig>,
    slot: SharedSlot,
}

impl Observer {
    fn note(&self, outcome: Outcome) {
        let mut slot = lock(&self.slot);
        if slot.outcome.is_none() {
            slot.outcome = Some(outcome);
        }
    }
}

/// The member of a response the digest is taken over, borrowed (other members are skipped).
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

/// The member of a result read for the record.
#[derive(Deserialize)]
struct ResultFlags<'a> {
    #[serde(rename = "isError", borrow, default)]
    is_error: Option<&'a RawValue>,
}

impl RewriteResponse for Observer {
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()> {
        let outcome = match serde_json::from_str::<Answer<'_>>(message) {
            Ok(Answer {
                result: Some(result),
            }) => Outcome::Digested {
                mac: mac(
                    &self.config.key,
                    DigestPart::Result,
                    result.get().as_bytes(),
                ),
                is_error: is_error(result.get()),
            },
            Ok(Answer { result: None }) => Outcome::NotDigested(JSONRPC_ERROR),
            // `result` repeated: which one a client reads is a guess.
            Err(_) => Outcome::NotDigested(RewriteFailure::InvalidJson.as_str()),
        };
        self.note(outcome);
        // Never a replacement: this reader sees a copy, and keeps it as it is.
        Ok(None)
    }

    fn failed(&mut self, failure: RewriteFailure, _id: &Value) {
        self.note(Outcome::NotDigested(failure.as_str()));
    }
}

/// `isError` of a result object: `true` only for the JSON literal; `None` when the result is
/// not an object or repeats `isError`.
fn is_error(result: &str) -> Option<bool> {
    let flags: ResultFlags<'_> = serde_json::from_str(result).ok()?;
    Some(flags.is_error.is_some_and(|v| v.get() == "true"))
}

/// The evidence of one `tools/call` answer in the making; see [`crate::evidence`].
pub(crate) struct Evidence {
    /// The audit layer's recorder: held until the body ends or is dropped, so the completion
    /// record follows the body.
    recorder: FactRecorder,
    arguments: Option<[u8; 32]>,
    /// `None` for a response that is not read (another content type), or once the answer was
    /// found: the copies stop.
    shadow: Option<RewriteBody<Feed, Observer>>,
    slot: SharedSlot,
    /// Decided at the head (the response is not one the reader can read).
    not_digested: Option<&'static str>,
    /// What is left of the declared `Content-Length`, if one was declared.
    remaining: Option<u64>,
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evidence")
            .field("reading", &self.shadow.is_some())
            .finish_non_exhaustive()
    }
}

impl Evidence {
    /// Evidence for the answer to request `id`, whose arguments digested to `arguments`, in a
    /// response with these headers.
    pub(crate) fn new(
        config: &Arc<EvidenceConfig>,
        recorder: FactRecorder,
        id: JsonRpcId,
        arguments: Option<[u8; 32]>,
        headers: &HeaderMap,
    ) -> Box<Self> {
        let slot = SharedSlot::default();
        let declared: Option<u64> = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let (shadow, not_digested) = match ResponseKind::of(headers) {
            Some(kind) => {
                let observer = Observer {
                    config: Arc::clone(config),
                    slot: Arc::clone(&slot),
                };
                let shadow = RewriteBody::new(
                    Feed(Arc::clone(&slot)),
                    kind,
                    Targets::Ids(vec![id]),
                    config.max_bytes,
                    declared,
                    observer,
                );
                (Some(shadow), None)
            }
            None => (None, Some(NOT_JSON_OR_SSE)),
        };
        Box::new(Evidence {
            recorder,
            arguments,
            shadow,
            slot,
            not_digested,
            remaining: declared,
        })
    }

    /// A copy of one frame the client is being sent.
    fn feed(&mut self, data: &Bytes) {
        if let Some(left) = &mut self.remaining {
            *left = left.saturating_sub(data.len() as u64);
        }
        if self.shadow.is_none() || data.is_empty() {
            return;
        }
        lock(&self.slot).next = Some(data.clone());
        self.drive();
    }

    /// Let the shadow reader read what it was given; its output is dropped (the client gets
    /// the original frames). The reader never waits on anything but its feed, so a no-op waker
    /// is enough.
    fn drive(&mut self) {
        let Some(shadow) = self.shadow.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let done = loop {
            match Pin::new(&mut *shadow).poll_frame(&mut cx) {
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => break true,
                Poll::Pending => break false,
            }
        };
        if done || lock(&self.slot).outcome.is_some() {
            self.shadow = None;
        }
    }

    /// The body ended (`complete`) or was dropped: record the evidence.
    fn finish(&mut self, complete: bool) {
        if complete && self.shadow.is_some() {
            lock(&self.slot).ended = true;
            self.drive();
        }
        let outcome = lock(&self.slot).outcome;
        let (result, is_error, not_digested) = match (outcome, self.not_digested) {
            (_, Some(why)) => (None, None, Some(why)),
            (Some(Outcome::Digested { mac, is_error }), None) => (Some(mac), is_error, None),
            (Some(Outcome::NotDigested(why)), None) => (None, None, Some(why)),
            (None, None) => (None, None, Some(NO_RESPONSE)),
        };
        self.recorder.record(ResponseFact::ToolCallEvidence {
            arguments: self.arguments,
            result,
            is_error,
            not_digested,
        });
        if complete {
            self.recorder.body_complete();
        }
    }
}
