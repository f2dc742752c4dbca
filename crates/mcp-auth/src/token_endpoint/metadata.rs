//! The documents clients discover: RFC 8414 authorization-server metadata and, for an
//! asymmetric key, the JWK Set. Both are public, cacheable and readable cross-origin.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use mcp_security_core::{AuthOutcome, GuardBody};

use super::error::Refusal;
use super::{AUTHORIZE_PATH, JWKS_PATH, Shared, TOKEN_PATH};

/// The metadata document for an issuer whose endpoints live under `base`.
pub(super) fn document(issuer: &str, base: &str, scopes_supported: &[String], jwks: bool) -> Bytes {
    let mut doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        // Some clients require these two members; the authorization endpoint refuses every
        // request, and no response type is supported.
        "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    });
    if let Some(object) = doc.as_object_mut() {
        if !scopes_supported.is_empty() {
            object.insert("scopes_supported".into(), json!(scopes_supported));
        }
        if jwks {
            object.insert("jwks_uri".into(), format!("{base}{JWKS_PATH}").into());
        }
    }
    Bytes::from(doc.to_string())
}

impl Shared {
    /// `GET` / `HEAD` of the metadata.
    pub(super) fn metadata_response<B, ResBody>(
        &self,
        req: &Request<B>,
    ) -> Response<GuardBody<ResBody>> {
        public_document(req, self.metadata.clone(), "application/json", &self.realm)
    }

    /// `GET` / `HEAD` of the JWK Set.
    pub(super) fn jwks_response<B, ResBody>(
        &self,
        req: &Request<B>,
    ) -> Response<GuardBody<ResBody>> {
        let doc = self.signer.jwks().unwrap_or("{\"keys\":[]}").to_owned();
        public_document(
            req,
            Bytes::from(doc),
            "application/jwk-set+json",
            &self.realm,
        )
    }
}

/// A public document: `GET` and `HEAD` answer it, `OPTIONS` is a CORS preflight, anything else
/// is 405.
fn public_document<B, ResBody>(
    req: &Request<B>,
    doc: Bytes,
    content_type: &'static str,
    realm: &str,
) -> Response<GuardBody<ResBody>> {
    let mut res = match *req.method() {
        Method::GET => Response::new(GuardBody::rejection(doc)),
        Method::HEAD => Response::new(GuardBody::rejection(Bytes::new())),
        Method::OPTIONS => {
            let mut res = Response::new(GuardBody::rejection(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        _ => {
            let mut res = Refusal::method_not_allowed().into_response(realm);
            res.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            cors(&mut res);
            return res;
        }
    };
    if res.status() == StatusCode::OK {
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
    }
    cors(&mut res);
    res.extensions_mut().insert(AuthOutcome::Exempt);
    res
}

fn cors<B>(res: &mut Response<B>) {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("mcp-protocol-version, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
}
