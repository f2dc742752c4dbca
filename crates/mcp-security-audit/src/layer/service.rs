//! [`Audit`], the service, and its [`ResponseFuture`]: note the request on the way in, record
//! it at the response head, and hold the completion open until the record is out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use http_body::Body;
use mcp_security_core::facts::{FactRecorder, ResponseFacts};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{AuditLayer, Pending, Shared};
use crate::evidence::AuditBody;
use crate::metrics as m;
use crate::record::Completion;

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`AuditLayer`].
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Audit<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Audit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<AuditBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if !self.shared.enabled {
            return ResponseFuture {
                inner: self.inner.call(req),
                shared: Arc::clone(&self.shared),
                pending: None,
                facts: None,
                waiting: None,
                output: None,
            };
        }
        let pending = self.shared.capture(&req);
        if self.shared.metrics {
            m::in_flight(1.0);
        }
        let shared = Arc::clone(&self.shared);
        let request_id = pending.request_id.clone();
        let (facts, recorder) =
            ResponseFacts::new(move |completion| shared.complete(request_id, completion));
        req.extensions_mut().insert(facts);
        ResponseFuture {
            inner: self.inner.call(req),
            shared: Arc::clone(&self.shared),
            pending: Some(pending),
            facts: Some(recorder),
            waiting: None,
            output: None,
        }
    }
}

type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// The response future of [`Audit`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
        pending: Option<Pending>,
        // Holds the request's completion open until the record is written.
        facts: Option<FactRecorder>,
        waiting: Option<Vec<Wait>>,
        output: Option<Result<Response<AuditBody<B>>, E>>,
    }

    impl<F, B, E> PinnedDrop for ResponseFuture<F, B, E> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut waits = this.waiting.take().unwrap_or_default();
            if let Some(pending) = this.pending.take() {
                // Dropped before the response: record the request as cancelled, best effort.
                let shared = this.shared;
                if shared.metrics {
                    m::in_flight(-1.0);
                }
                let (record, events) = shared.finish(pending, None, Completion::Cancelled);
                waits.extend(shared.submit(record, events));
            }
            // After the request record: a completion record, if any, follows it.
            this.facts.take();
            // Records still waiting for room in a sink (block policy) are handed to the runtime
            // rather than lost with this future.
            if !waits.is_empty()
                && let Ok(handle) = tokio::runtime::Handle::try_current()
            {
                for w in waits {
                    handle.spawn(w);
                }
            }
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recording", &self.pending.is_some())
            .field("waiting", &self.waiting.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<AuditBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(waits) = this.waiting.as_mut() {
            waits.retain_mut(|w| w.as_mut().poll(cx).is_pending());
            if !waits.is_empty() {
                return Poll::Pending;
            }
            *this.waiting = None;
            return match this.output.take() {
                Some(out) => Poll::Ready(out),
                None => panic!("ResponseFuture polled after completion"),
            };
        }
        let out = match this.inner.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(out.map(|res| res.map(AuditBody::plain)));
        };
        let shared = &**this.shared;
        if shared.metrics {
            m::in_flight(-1.0);
        }
        let mut target = None;
        let (record, events) = match &out {
            Ok(res) => {
                target = shared.evidence_target(&pending, res);
                shared.finish(pending, Some(ResponseView::of(res)), Completion::Responded)
            }
            Err(_) => shared.finish(pending, None, Completion::Error),
        };
        let mut waits = shared.submit(record, events);
        // The request record is out; body-side facts now complete with the body (the layer's
        // own recorder goes with a body that digests a tool call, else it is dropped here).
        let recorder = this.facts.take();
        let out = out.map(|res| shared.wrap(res, target, recorder));
        waits.retain_mut(|w| w.as_mut().poll(cx).is_pending());
        if waits.is_empty() {
            return Poll::Ready(out);
        }
        *this.waiting = Some(waits);
        *this.output = Some(out);
        Poll::Pending
    }
}

/// What the layer reads from a response head.
pub(super) struct ResponseView<'a> {
    pub(super) status: http::StatusCode,
    pub(super) bytes: Option<u64>,
    pub(super) extensions: &'a http::Extensions,
}

impl<'a> ResponseView<'a> {
    pub(super) fn of<B: Body>(res: &'a Response<B>) -> Self {
        ResponseView {
            status: res.status(),
            bytes: res
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .or_else(|| res.body().size_hint().exact()),
            extensions: res.extensions(),
        }
    }
}
