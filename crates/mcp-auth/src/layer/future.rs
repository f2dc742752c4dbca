//! [`ResponseFuture`]: the inner service's future, or a ready refusal, carrying the
//! [`AuthOutcome`] into the response's extensions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use mcp_core::{AuthOutcome, GuardBody};

pin_project! {
    /// The response future of [`Auth`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
        outcome: Option<AuthOutcome>,
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
        }
    }

    /// A disabled layer's future: the inner response, no outcome.
    pub(super) fn pass_through(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            outcome: None,
        }
    }

    pub(super) fn ready(response: Response<GuardBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: None,
        }
    }

    pub(super) fn rejected(response: Response<GuardBody<B>>, outcome: AuthOutcome) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
            outcome: Some(outcome),
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
        Poll::Ready(Ok(response))
    }
}
