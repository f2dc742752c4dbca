//! [`AuditGateLayer`]: answers 503 while a sink refuses new requests (the file sink with the
//! `refuse` policy, while its queue is full or its file cannot be written).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use mcp_security_core::GuardBody;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{AuditLayer, Shared};

/// The body of the 503 the gate answers.
pub const REFUSED_BODY: &str = "{\"error\":\"audit_unavailable\",\"error_description\":\"the audit trail cannot be written at the moment; try again later\"}";

impl AuditLayer {
    /// Whether every sink takes new requests (see
    /// [`AuditSink::accepting`](crate::AuditSink::accepting)): `false` while the file sink,
    /// with the `refuse` policy, has a full queue or cannot write its file.
    pub fn accepting(&self) -> bool {
        self.shared.sinks.iter().all(|s| s.accepting())
    }

    /// A layer that answers 503 (`Retry-After: 1`) to new requests while
    /// [`accepting`](Self::accepting) is `false`. Put it right inside this layer, so that the
    /// refusals are recorded (best effort) and timed:
    ///
    /// ```
    /// use mcp_security_audit::AuditLayer;
    /// use tower::ServiceBuilder;
    ///
    /// let audit = AuditLayer::builder().build()?;
    /// let stack = ServiceBuilder::new().layer(audit.clone()).layer(audit.gate());
    /// assert!(audit.accepting());
    /// # let _ = stack;
    /// # Ok::<(), mcp_security_core::config::ConfigError>(())
    /// ```
    pub fn gate(&self) -> AuditGateLayer {
        AuditGateLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Answers 503 while the audit trail refuses new requests; see [`AuditLayer::gate`].
#[derive(Clone)]
pub struct AuditGateLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditGateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditGateLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuditGateLayer {
    type Service = AuditGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditGate {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`AuditGateLayer`].
#[derive(Clone)]
pub struct AuditGate<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AuditGate<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditGate")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuditGate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.shared.sinks.iter().all(|s| s.accepting()) {
            return GateFuture {
                kind: Kind::Inner {
                    future: self.inner.call(req),
                },
            };
        }
        let mut res = Response::new(GuardBody::rejection(Bytes::from_static(
            REFUSED_BODY.as_bytes(),
        )));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        GateFuture {
            kind: Kind::Refused {
                response: Some(res),
            },
        }
    }
}

pin_project! {
    /// The response future of [`AuditGate`].
    pub struct GateFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<GuardBody<B>>> },
    }
}

impl<F, B, E> Future for GateFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(GuardBody::inner)),
            // Polled again after it was ready: nothing more to give.
            KindProj::Refused { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}
