//! [`Auth`], the service: find the credential, verify it, authorize the call, and answer
//! refusals and metadata requests itself.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use mcp_core::rejection::{BearerError, ResponseFormat};
use mcp_core::{AuthFailure, AuthOutcome, GuardBody, McpCall, Principal, PrincipalKind, Rejection};

use super::credentials::{Extracted, Source, strip_query_tokens};
use super::{AuthLayer, ResponseFuture, Shared};

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service built by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

mcp_core::impl_inner_service!(Auth, inner);

impl<S, B, ResBody> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(shared) = self.shared.clone() else {
            return ResponseFuture::pass_through(self.inner.call(req));
        };
        let path = req.uri().path();
        if shared.is_metadata_path(path) {
            return ResponseFuture::ready(shared.metadata_response(&req));
        }
        if shared.policy.is_denied(path) {
            let rejection = Rejection::new(StatusCode::FORBIDDEN, "forbidden")
                .message("Forbidden")
                .detail("deny-listed path");
            return Box::new(Refusal::new(rejection, AuthFailure::DeniedPath)).respond(&req);
        }
        if shared.policy.is_exempt(path) {
            if shared.strip_credentials {
                shared.strip_credential_headers(req.headers_mut());
            }
            return ResponseFuture::inner(self.inner.call(req), AuthOutcome::Exempt);
        }

        let required =
            shared
                .policy
                .required_scopes(req.method(), path, req.extensions().get::<McpCall>());
        let (principal, source) = match shared
            .authenticate(&req, &required)
            .and_then(|(principal, source)| shared.authorize(&req, principal, source, &required))
        {
            Ok(authorized) => authorized,
            Err(refusal) => return refusal.respond(&req),
        };

        if let Some((source, _)) = source {
            if source == Source::Query {
                *req.uri_mut() = strip_query_tokens(req.uri());
            }
            if shared.strip_credentials {
                shared.strip_credential_headers(req.headers_mut());
            }
        }
        req.extensions_mut().insert(principal.clone());
        ResponseFuture::inner(
            self.inner.call(req),
            AuthOutcome::Authenticated { principal },
        )
    }
}

/// Why a request is refused: the answer, and what the audit record gets in `AuthOutcome`.
struct Refusal {
    rejection: Rejection,
    failure: AuthFailure,
    principal: Option<Principal>,
    fingerprint: Option<String>,
}

impl Refusal {
    fn new(rejection: Rejection, failure: AuthFailure) -> Self {
        Refusal {
            rejection,
            failure,
            principal: None,
            fingerprint: None,
        }
    }

    /// The refusal in the request's format, with its outcome in the response extensions.
    fn respond<B, F, ResBody>(self: Box<Self>, req: &Request<B>) -> ResponseFuture<F, ResBody> {
        let format = ResponseFormat::for_request(req.headers(), req.extensions());
        ResponseFuture::rejected(
            self.rejection.into_response(&format),
            AuthOutcome::Rejected {
                failure: self.failure,
                principal: self.principal,
                fingerprint: self.fingerprint,
            },
        )
    }
}

/// A verified caller, and where its credential came from (none for the development bypass).
type Authenticated = (Principal, Option<(Source, String)>);

impl Shared {
    /// The one credential the request carries, verified; or the development bypass's principal
    /// when there is none and the bypass is on.
    fn authenticate<B>(
        &self,
        req: &Request<B>,
        required: &[&str],
    ) -> Result<Authenticated, Box<Refusal>> {
        let challenged = |status, code, error, message: &'static str| {
            let rejection = Rejection::new(status, code).message(message);
            self.challenge(req, rejection, Some(error), Some(message), required)
        };
        match self.extract(req) {
            Extracted::None if self.dev_bypass => {
                let principal = Principal::builder("dev", PrincipalKind::DevBypass)
                    .scopes(["*"])
                    .build();
                Ok((principal, None))
            }
            Extracted::None => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                    .message("Authentication required");
                let rejection = self.challenge(req, rejection, None, None, required);
                Err(Box::new(Refusal::new(
                    rejection,
                    AuthFailure::MissingCredential,
                )))
            }
            Extracted::Many => Err(Box::new(Refusal::new(
                challenged(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    BearerError::InvalidRequest,
                    "Send exactly one credential",
                ),
                AuthFailure::MultipleCredentials,
            ))),
            Extracted::Malformed => Err(Box::new(Refusal::new(
                challenged(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    BearerError::InvalidToken,
                    "The credential is malformed",
                ),
                AuthFailure::MalformedCredential,
            ))),
            Extracted::One(credential, source) => match self.verify(&credential) {
                Ok(principal) => Ok((principal, Some((source, credential)))),
                Err(failure) => {
                    let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                        .message("The credential is invalid, expired or revoked")
                        .detail(failure.as_str());
                    let rejection = self.challenge(
                        req,
                        rejection,
                        Some(BearerError::InvalidToken),
                        Some("The credential is invalid, expired or revoked"),
                        required,
                    );
                    Err(Box::new(Refusal {
                        fingerprint: Some(self.fingerprint(&credential)),
                        ..Refusal::new(rejection, failure)
                    }))
                }
            },
        }
    }

    /// The caller, if it holds every scope the request needs (403 `insufficient_scope` if not).
    fn authorize<B>(
        &self,
        req: &Request<B>,
        principal: Principal,
        source: Option<(Source, String)>,
        required: &[&str],
    ) -> Result<Authenticated, Box<Refusal>> {
        if required.iter().all(|scope| principal.has_scope(scope)) {
            return Ok((principal, source));
        }
        let rejection = Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
            .message("The credential lacks a scope this request needs")
            .field("required_scopes", required.to_vec());
        let rejection = self.challenge(
            req,
            rejection,
            Some(BearerError::InsufficientScope),
            Some("The credential lacks a scope this request needs"),
            required,
        );
        Err(Box::new(Refusal {
            principal: Some(principal),
            fingerprint: source.as_ref().map(|(_, c)| self.fingerprint(c)),
            ..Refusal::new(rejection, AuthFailure::InsufficientScope)
        }))
    }
}
