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
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
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
        let shared = Arc::clone(&self.shared);
        let path = req.uri().path();
        if shared.is_metadata_path(path) {
            return ResponseFuture::ready(shared.metadata_response(&req));
        }
        if shared.policy.is_denied(path) {
            let rejection = Rejection::new(StatusCode::FORBIDDEN, "forbidden")
                .message("Forbidden")
                .detail("deny-listed path");
            let format = ResponseFormat::for_request(req.headers(), req.extensions());
            return ResponseFuture::rejected(
                rejection.into_response(&format),
                AuthOutcome::Rejected {
                    failure: AuthFailure::DeniedPath,
                    principal: None,
                    fingerprint: None,
                },
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
        let reject = |req: &Request<B>, rejection: Rejection, failure, principal, fingerprint| {
            let format = ResponseFormat::for_request(req.headers(), req.extensions());
            ResponseFuture::rejected(
                rejection.into_response(&format),
                AuthOutcome::Rejected {
                    failure,
                    principal,
                    fingerprint,
                },
            )
        };

        let (principal, source) = match shared.extract(&req) {
            Extracted::None if shared.dev_bypass => {
                let principal = Principal::builder("dev", PrincipalKind::DevBypass)
                    .scopes(["*"])
                    .build();
                (principal, None)
            }
            Extracted::None => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                    .message("Authentication required");
                let rejection = shared.challenge(&req, rejection, None, None, &required);
                return reject(&req, rejection, AuthFailure::MissingCredential, None, None);
            }
            Extracted::Many => {
                let rejection = Rejection::new(StatusCode::BAD_REQUEST, "invalid_request")
                    .message("Send exactly one credential");
                let rejection = shared.challenge(
                    &req,
                    rejection,
                    Some(BearerError::InvalidRequest),
                    Some("Send exactly one credential"),
                    &required,
                );
                return reject(
                    &req,
                    rejection,
                    AuthFailure::MultipleCredentials,
                    None,
                    None,
                );
            }
            Extracted::Malformed => {
                let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                    .message("The credential is malformed");
                let rejection = shared.challenge(
                    &req,
                    rejection,
                    Some(BearerError::InvalidToken),
                    Some("The credential is malformed"),
                    &required,
                );
                return reject(
                    &req,
                    rejection,
                    AuthFailure::MalformedCredential,
                    None,
                    None,
                );
            }
            Extracted::One(credential, source) => match shared.verify(&credential) {
                Ok(principal) => (principal, Some((source, credential))),
                Err(failure) => {
                    let rejection = Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                        .message("The credential is invalid, expired or revoked")
                        .detail(failure.as_str());
                    let rejection = shared.challenge(
                        &req,
                        rejection,
                        Some(BearerError::InvalidToken),
                        Some("The credential is invalid, expired or revoked"),
                        &required,
                    );
                    let fingerprint = Some(shared.fingerprint(&credential));
                    return reject(&req, rejection, failure, None, fingerprint);
                }
            },
        };

        let missing = required.iter().any(|scope| !principal.has_scope(scope));
        if missing {
            let rejection = Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope")
                .message("The credential lacks a scope this request needs")
                .field("required_scopes", required.clone());
            let rejection = shared.challenge(
                &req,
                rejection,
                Some(BearerError::InsufficientScope),
                Some("The credential lacks a scope this request needs"),
                &required,
            );
            let fingerprint = source.as_ref().map(|(_, c)| shared.fingerprint(c));
            return reject(
                &req,
                rejection,
                AuthFailure::InsufficientScope,
                Some(principal),
                fingerprint,
            );
        }

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
