//! [`ResponseFuture`]: the inner service's future, or a ready refusal, carrying the
//! [`AuthOutcome`] into the response's extensions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use mcp_security_core::{AuthOutcome, GuardBody};

pin_project! {
    /// The response future of [`Auth`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
        outcome: Option<AuthOutcome>,
        // A fresh `DPoP-Nonce` for the client (RFC 9449 §8.2), when server nonces are on.
        dpop_nonce: Option<HeaderValue>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<GuardBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn inner(future: F, outcome: AuthOutcome) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            outcome: Some(outcome),
            dpop_nonce: None,
        }
    }

    /// The inner response gets this `DPoP-Nonce` header.
    pub(super) fn with_dpop_nonce(mut self, nonce: Option<HeaderValue>) -> Self {
        self.dpop_nonce = nonce;
        self
    }

    /// A disabled layer's future: the inner response, no outcome.
    pub(super) fn pass_through(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            outcome: None,
            dpop_nonce: None,
        }
    }

    pub(super) fn ready(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: None,
            dpop_nonce: None,
        }
    }

    pub(super) fn rejected(response: Response<GuardBody<B>>, outcome: AuthOutcome) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: Some(outcome),
            dpop_nonce: None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => res.map(GuardBody::inner),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            },
            KindProj::Ready { response } => response
                .take()
                .expect("ResponseFuture polled after completion"),
        };
        if let Some(outcome) = this.outcome.take() {
            response.extensions_mut().insert(outcome);
        }
        if let Some(nonce) = this.dpop_nonce.take() {
            response
                .headers_mut()
                .insert(super::dpop::DPOP_NONCE.clone(), nonce);
        }
        Poll::Ready(Ok(response))
    }
}
