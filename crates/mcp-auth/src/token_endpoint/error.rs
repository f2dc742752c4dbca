//! RFC 6749 §5.2 error answers, and the success answer: the JSON body, the no-store headers,
//! and what the audit layer reads from the extensions.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use mcp_security_core::{AuthFailure, AuthOutcome, GuardBody, Principal, Rejection};

/// A refusal: the RFC 6749 error, its public description, and what the audit record gets.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    // Boxed: the outcome carries a principal, and the refusal travels in `Result::Err`.
    outcome: Option<Box<AuthOutcome>>,
    detail: Option<Cow<'static, str>>,
    allow: Option<&'static str>,
}

impl Refusal {
    fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal {
            status,
            error,
            description: description.into(),
            outcome: None,
            detail: None,
            allow: None,
        }
    }

    /// 400 `invalid_request`.
    pub(super) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client` with a `Basic` challenge: client authentication failed. The audit
    /// record gets the failure and the secret's fingerprint; the client one generic description.
    pub(super) fn invalid_client(failure: AuthFailure, fingerprint: Option<String>) -> Self {
        let description = match failure {
            AuthFailure::MissingCredential => "Client authentication is required",
            AuthFailure::MalformedCredential => "The client credentials are malformed",
            _ => "Client authentication failed",
        };
        Refusal::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
            .detail(failure.as_str())
            .outcome(AuthOutcome::Rejected {
                failure,
                principal: None,
                fingerprint,
            })
    }

    /// 400 `invalid_request` for two client authentication methods at once.
    pub(super) fn multiple_credentials() -> Self {
        Refusal::invalid_request("Use exactly one client authentication method")
            .detail(AuthFailure::MultipleCredentials.as_str())
            .outcome(AuthOutcome::Rejected {
                failure: AuthFailure::MultipleCredentials,
                principal: None,
                fingerprint: None,
            })
    }

    /// 400 `unsupported_grant_type`; the client did authenticate.
    pub(super) fn unsupported_grant_type(principal: Principal) -> Self {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only the client_credentials grant is supported",
        )
        .outcome(AuthOutcome::Authenticated { principal })
    }

    /// 400 `invalid_scope`: a scope the key does not cover (or a malformed one).
    pub(super) fn invalid_scope(
        principal: Principal,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "invalid_scope", description).outcome(
            AuthOutcome::Rejected {
                failure: AuthFailure::InsufficientScope,
                principal: Some(principal),
                fingerprint: None,
            },
        )
    }

    /// 400 `invalid_target`: a `resource` other than this server's.
    pub(super) fn invalid_target(
        principal: Principal,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "invalid_target", description)
            .outcome(AuthOutcome::Authenticated { principal })
    }

    /// 413 with an `invalid_request` body.
    pub(super) fn too_large(limit: usize) -> Self {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("The request body is larger than {limit} bytes"),
        )
        .detail("request body over the limit")
    }

    /// 405 with `Allow: POST`.
    pub(super) fn method_not_allowed() -> Self {
        let mut r = Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "Use POST",
        );
        r.allow = Some("POST");
        r
    }

    /// 400 `unsupported_response_type`, for the authorization endpoint.
    pub(super) fn unsupported_response_type() -> Self {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "This server has no interactive authorization; use the client_credentials grant at \
             the token endpoint",
        )
    }

    /// 500 `server_error`: signing or the system's randomness failed (detail for the audit).
    pub(super) fn server_error(detail: impl Into<Cow<'static, str>>) -> Self {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The token could not be issued",
        )
        .detail(detail)
    }

    /// The internal detail for the audit record (never sent; never a secret).
    pub(super) fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn outcome(mut self, outcome: AuthOutcome) -> Self {
        self.outcome = Some(Box::new(outcome));
        self
    }

    /// The answer: RFC 6749 JSON, no-store, a `Basic` challenge on 401, the [`Rejection`] and
    /// the outcome in the extensions.
    pub(super) fn into_response<B>(self, realm: &str) -> Response<GuardBody<B>> {
        let mut body = Map::new();
        body.insert("error".into(), self.error.into());
        body.insert(
            "error_description".into(),
            Value::from(self.description.as_ref()),
        );
        let mut res = json_response(self.status, &Value::Object(body));
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, basic_challenge(realm));
        }
        if let Some(allow) = self.allow {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        let mut rejection = Rejection::new(self.status, self.error).message(self.description);
        if let Some(detail) = self.detail {
            rejection = rejection.detail(detail);
        }
        res.extensions_mut().insert(rejection);
        if let Some(outcome) = self.outcome {
            res.extensions_mut().insert(*outcome);
        }
        res
    }
}

/// The RFC 6749 §5.1 answer for an issued token, with the key's principal for the audit record.
pub(super) fn token_response<B>(
    token: &str,
    expires_in: u64,
    scope: &str,
    principal: Principal,
) -> Response<GuardBody<B>> {
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if !scope.is_empty()
        && let Some(object) = body.as_object_mut()
    {
        object.insert("scope".into(), scope.into());
    }
    let mut res = json_response(StatusCode::OK, &body);
    res.extensions_mut()
        .insert(AuthOutcome::Authenticated { principal });
    res
}

/// A JSON answer that no cache keeps (RFC 6749 §5.1).
fn json_response<B>(status: StatusCode, body: &Value) -> Response<GuardBody<B>> {
    let mut res = Response::new(GuardBody::rejection(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// `Basic realm="…"`, the realm quoted (RFC 7617); validated printable at build.
fn basic_challenge(realm: &str) -> HeaderValue {
    let mut out = String::with_capacity(realm.len() + 16);
    out.push_str("Basic realm=\"");
    for c in realm.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '!'..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push_str("\", charset=\"UTF-8\"");
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}
