//! [`TokenEndpoint`], the service: answer the endpoint's paths (reading a bounded body for the
//! token requests), pass everything else to the inner service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use mcp_security_core::GuardBody;

use super::error::{Refusal, token_response};
use super::{Route, Shared, TokenEndpointLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> Layer<S> for TokenEndpointLayer {
    type Service = TokenEndpoint<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenEndpoint {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service built by [`TokenEndpointLayer`].
#[derive(Debug, Clone)]
pub struct TokenEndpoint<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

mcp_security_core::impl_inner_service!(TokenEndpoint, inner);

impl<S, B, ResBody> Service<Request<B>> for TokenEndpoint<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(shared) = self.shared.clone() else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        let Some(route) = shared.route(req.uri().path()) else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        match route {
            Route::Metadata => ResponseFuture::ready(shared.metadata_response(&req)),
            Route::Jwks => ResponseFuture::ready(shared.jwks_response(&req)),
            Route::Authorize => ResponseFuture::ready(
                Refusal::unsupported_response_type().into_response(&shared.realm),
            ),
            Route::Token | Route::ApiKeyLogin => {
                if req.method() != Method::POST {
                    return ResponseFuture::ready(
                        Refusal::method_not_allowed().into_response(&shared.realm),
                    );
                }
                let limit = shared.max_body_bytes;
                let declared = req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if declared.is_some_and(|len| len > limit as u64) {
                    return ResponseFuture::ready(
                        Refusal::too_large(limit).into_response(&shared.realm),
                    );
                }
                let (parts, body) = req.into_parts();
                ResponseFuture {
                    kind: Kind::Reading {
                        collect: Limited::new(body, limit).collect(),
                        parts: Some(parts),
                        shared,
                        route,
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`TokenEndpoint`].
    pub struct ResponseFuture<F, B, ResBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        kind: Kind<F, B, ResBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, ResBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        Inner { #[pin] future: F },
        Reading {
            #[pin]
            collect: Collect<Limited<B>>,
            parts: Option<Parts>,
            shared: Arc<Shared>,
            route: Route,
        },
        Ready { response: Option<Response<GuardBody<ResBody>>> },
    }
}

impl<F, B, ResBody> ResponseFuture<F, B, ResBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    fn ready(response: Response<GuardBody<ResBody>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, ResBody, E> Future for ResponseFuture<F, B, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<GuardBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => Poll::Ready(Ok(res.map(GuardBody::inner))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Reading {
                collect,
                parts,
                shared,
                route,
            } => {
                let read = match collect.poll(cx) {
                    Poll::Ready(read) => read,
                    Poll::Pending => return Poll::Pending,
                };
                let parts = parts
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(answer(shared, *route, &parts, read)))
            }
        }
    }
}

/// The answer to a token request whose body has been read.
fn answer<ResBody>(
    shared: &Shared,
    route: Route,
    parts: &Parts,
    read: Result<http_body_util::Collected<Bytes>, BoxError>,
) -> Response<GuardBody<ResBody>> {
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Refusal::too_large(shared.max_body_bytes).into_response(&shared.realm);
        }
        Err(_) => {
            return Refusal::invalid_request("The request body could not be read")
                .detail("reading the request body failed")
                .into_response(&shared.realm);
        }
    };
    let issued = match route {
        Route::ApiKeyLogin => shared.api_key_login(&parts.headers, &body),
        _ => shared.token_request(&parts.headers, &body),
    };
    match issued {
        Ok(issued) => token_response(
            &issued.token,
            issued.expires_in,
            &issued.scope,
            issued.principal,
        ),
        Err(refusal) => refusal.into_response(&shared.realm),
    }
}
