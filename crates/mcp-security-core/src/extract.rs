//! axum extractors (feature `axum`): [`Principal`] and `Option<Principal>` in handlers.
//!
//! Authentication (`mcp-auth`'s `AuthLayer`, or the `mcp-security` facade) puts the caller's
//! [`Principal`] into the request extensions; these extractors read it back out:
//!
//! - `principal: Principal` — the handler needs a caller. Without one (the route is exempt from
//!   authentication, or no auth layer is in front) the request is refused with
//!   [`PrincipalRejection`]: the same 401 the auth layer sends for a missing credential, an
//!   RFC 6750 `WWW-Authenticate: Bearer` challenge and
//!   `{"error":"invalid_token","error_description":"Authentication required"}` (a trailers-only
//!   `grpc-status: 16` for gRPC callers).
//! - `principal: Option<Principal>` — the handler serves anonymous callers too (a public route
//!   that says more to a known caller); never refuses.
//!
//! ```
//! use axum::{Router, routing::get};
//! use mcp_security_core::Principal;
//!
//! async fn whoami(principal: Principal) -> String {
//!     format!("{} ({})", principal.id(), principal.kind())
//! }
//!
//! async fn hello(principal: Option<Principal>) -> String {
//!     match principal {
//!         Some(p) => format!("hello, {}", p.id()),
//!         None => "hello, stranger".to_owned(),
//!     }
//! }
//!
//! // Put the auth layer (or `mcp_security::SecurityConfig::layer()`) around the router.
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/hello", get(hello));
//! ```

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use http_body_util::Empty;

use crate::principal::Principal;
use crate::rejection::{BearerChallenge, Rejection, ResponseFormat};

/// The public message of [`PrincipalRejection`], the auth layer's for a missing credential.
const AUTHENTICATION_REQUIRED: &str = "Authentication required";

/// Why the [`Principal`] extractor refused a request: no principal in the request extensions.
///
/// Renders as the auth layer's answer to a request without a credential: `401`,
/// `WWW-Authenticate: Bearer` and `{"error":"invalid_token","error_description":"Authentication
/// required"}` (gRPC callers get `grpc-status: 16` instead), with the [`Rejection`] in the
/// response extensions for an outer audit layer.
#[derive(Debug, Clone)]
pub struct PrincipalRejection {
    rejection: Rejection,
    format: ResponseFormat,
}

impl PrincipalRejection {
    fn for_request(parts: &Parts) -> Self {
        Self {
            rejection: Rejection::new(StatusCode::UNAUTHORIZED, "invalid_token")
                .message(AUTHENTICATION_REQUIRED)
                .challenge(BearerChallenge::new())
                .detail("no principal in the request extensions (route exempt or no auth layer)"),
            format: ResponseFormat::for_request(&parts.headers, &parts.extensions),
        }
    }

    /// The rejection that will be rendered.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }

    /// The rejection, to render it differently.
    pub fn into_rejection(self) -> Rejection {
        self.rejection
    }
}

impl fmt::Display for PrincipalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(AUTHENTICATION_REQUIRED)
    }
}

impl std::error::Error for PrincipalRejection {}

impl IntoResponse for PrincipalRejection {
    fn into_response(self) -> Response {
        self.rejection
            .into_response::<Empty<Bytes>>(&self.format)
            .map(axum::body::Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| PrincipalRejection::for_request(parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrincipalKind;
    use axum::Router;
    use axum::routing::get;
    use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
    use http::{HeaderValue, Request};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    async fn whoami(principal: Principal) -> String {
        format!("{}:{}", principal.id(), principal.kind())
    }

    async fn maybe(principal: Option<Principal>) -> String {
        principal.map_or_else(|| "anonymous".to_owned(), |p| p.id().to_owned())
    }

    fn app() -> Router {
        Router::new()
            .route("/whoami", get(whoami))
            .route("/maybe", get(maybe))
    }

    fn alice() -> Principal {
        Principal::builder("alice", PrincipalKind::Jwt)
            .scopes(["notes:read"])
            .build()
    }

    async fn call(req: Request<axum::body::Body>) -> (StatusCode, http::HeaderMap, Bytes) {
        let res = app().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    fn get_req(path: &str, principal: Option<Principal>) -> Request<axum::body::Body> {
        let mut req = Request::get(path).body(axum::body::Body::empty()).unwrap();
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        req
    }

    #[tokio::test]
    async fn principal_present() {
        let (status, _, body) = call(get_req("/whoami", Some(alice()))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "alice:jwt");
    }

    #[tokio::test]
    async fn principal_missing_is_the_auth_layers_401() {
        let (status, headers, body) = call(get_req("/whoami", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": "Authentication required"})
        );
    }

    #[tokio::test]
    async fn rejection_is_left_for_the_audit_layer() {
        let res = app().oneshot(get_req("/whoami", None)).await.unwrap();
        let r = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(r.code(), "invalid_token");
        assert!(r.internal_detail().is_some());
        assert_eq!(r.grpc_status(), 16);
    }

    #[tokio::test]
    async fn principal_missing_for_grpc_is_unauthenticated() {
        let mut req = get_req("/whoami", None);
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let (status, headers, body) = call(req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["grpc-status"], "16");
        assert_eq!(headers["grpc-message"], "Authentication required");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn optional_principal_never_refuses() {
        let (status, _, body) = call(get_req("/maybe", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "anonymous");
        let (status, _, body) = call(get_req("/maybe", Some(alice()))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "alice");
    }

    #[test]
    fn rejection_accessors() {
        let parts = Request::get("/").body(()).unwrap().into_parts().0;
        let r = PrincipalRejection::for_request(&parts);
        assert_eq!(r.to_string(), "Authentication required");
        assert_eq!(r.rejection().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.into_rejection().public_message(),
            "Authentication required"
        );
    }
}
