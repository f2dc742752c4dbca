//! [`Auth`], the service: find the credential, verify it, authorize the call, and answer
//! refusals and metadata requests itself.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use mcp_security_core::rejection::{BearerError, ResponseFormat};
use mcp_security_core::{
    AuthFailure, AuthOutcome, GuardBody, McpCall, Principal, PrincipalKind, Rejection,
};

use super::credentials::{Extracted, Source, strip_query_tokens};
use super::dpop::DpopChallengeError;
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

mcp_security_core::impl_inner_service!(Auth, inner);

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
            return Box::new(Refusal::new(rejection, AuthFailure::DeniedPath)).respond(
                &shared,
                &req,
                &[],
            );
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
            Err(refusal) => return refusal.respond(&shared, &req, &required),
        };

        let dpop_nonce = match &source {
            Some((Source::Dpop, _)) => shared.fresh_dpop_nonce(),
            _ => None,
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
        .with_dpop_nonce(dpop_nonce)
    }
}

/// Why a request is refused: the answer, and what the audit record gets in `AuthOutcome`.
pub(super) struct Refusal {
    pub(super) rejection: Rejection,
    failure: AuthFailure,
    principal: Option<Principal>,
    pub(super) fingerprint: Option<String>,
    /// The error for the `DPoP` challenge (the client used that scheme, or the error is
    /// DPoP's own); `None`: the `Bearer` challenge carries it.
    pub(super) dpop_error: Option<DpopChallengeError>,
}

impl Refusal {
    pub(super) fn new(rejection: Rejection, failure: AuthFailure) -> Self {
        Refusal {
            rejection,
            failure,
            principal: None,
            fingerprint: None,
            dpop_error: None,
        }
    }

    /// The refusal in the request's format, with its outcome in the response extensions. With
    /// DPoP on, a challenged refusal also gets the `WWW-Authenticate: DPoP` challenge (instead
    /// of the `Bearer` one when bearer tokens cannot be accepted at all).
    fn respond<B, F, ResBody>(
        self: Box<Self>,
        shared: &Shared,
        req: &Request<B>,
        required: &[&str],
    ) -> ResponseFuture<F, ResBody> {
        let format = ResponseFormat::for_request(req.headers(), req.extensions());
        let bearer_error = self
            .rejection
            .bearer_challenge()
            .map(|c| c.error_code().map(DpopChallengeError::from_bearer));
        let mut response = self.rejection.into_response(&format);
        if let (Some(dpop), Some(bearer_error)) = (&shared.dpop, bearer_error) {
            let headers = response.headers_mut();
            let value = if dpop.bearer_allowed {
                dpop.challenge(shared.realm.as_deref(), self.dpop_error, None, None)
            } else {
                headers.remove(WWW_AUTHENTICATE);
                let metadata = shared.resource_url(req).url().map(|r| r.metadata_url());
                let scope = (!required.is_empty()).then(|| required.join(" "));
                dpop.challenge(
                    shared.realm.as_deref(),
                    self.dpop_error.or(bearer_error),
                    metadata.as_deref(),
                    scope.as_deref(),
                )
            };
            headers.append(WWW_AUTHENTICATE, value);
        }
        ResponseFuture::rejected(
            response,
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
                Ok(principal) => {
                    self.check_dpop(req, &principal, &credential, source, required)?;
                    Ok((principal, Some((source, credential))))
                }
                Err(failure) => {
                    let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                        .message("The credential is invalid, expired or revoked")
                        .detail(failure.as_str());
                    let dpop = source == Source::Dpop;
                    let rejection = self.challenge(
                        req,
                        rejection,
                        (!dpop).then_some(BearerError::InvalidToken),
                        (!dpop).then_some("The credential is invalid, expired or revoked"),
                        required,
                    );
                    Err(Box::new(Refusal {
                        fingerprint: Some(self.fingerprint(&credential)),
                        dpop_error: dpop.then_some(DpopChallengeError::InvalidToken),
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
        let dpop = matches!(source, Some((Source::Dpop, _)));
        let rejection = self.challenge(
            req,
            rejection,
            (!dpop).then_some(BearerError::InsufficientScope),
            (!dpop).then_some("The credential lacks a scope this request needs"),
            required,
        );
        Err(Box::new(Refusal {
            principal: Some(principal),
            fingerprint: source.as_ref().map(|(_, c)| self.fingerprint(c)),
            dpop_error: dpop.then_some(DpopChallengeError::InsufficientScope),
            ..Refusal::new(rejection, AuthFailure::InsufficientScope)
        }))
    }
}
