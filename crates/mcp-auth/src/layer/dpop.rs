//! DPoP (RFC 9449) in the layer: which scheme a token may come with, the proof check on every
//! request (after the token is verified, so a cached principal is checked too), the URL the
//! proof must name, and the `WWW-Authenticate: DPoP` challenge.

use std::borrow::Cow;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, StatusCode};

use mcp_security_core::rejection::BearerError;
use mcp_security_core::{AuthFailure, Principal, PrincipalKind, Rejection};

use crate::dpop::{DpopError, DpopMode, DpopVerifier, ProofRequest};

use super::Shared;
use super::credentials::Source;
use super::metadata::Resolved;
use super::service::Refusal;

/// The `DPoP` request header (the proof) and response header name prefix.
pub(super) static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `DPoP-Nonce` response header (RFC 9449 §8).
pub(super) static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// DPoP as the layer was built with it: on (allowed or required).
#[derive(Debug)]
pub(super) struct DpopSettings {
    pub(super) verifier: DpopVerifier,
    pub(super) mode: DpopMode,
    /// Whether a `Bearer` credential can still be accepted (not required mode, or API keys are
    /// configured), so whether refusals keep the `Bearer` challenge.
    pub(super) bearer_allowed: bool,
    /// The accepted proof algorithms, space-separated.
    pub(super) algs: String,
}

/// The error of a refusal on the `DPoP` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DpopChallengeError {
    InvalidToken,
    InvalidDpopProof,
    UseDpopNonce,
    InsufficientScope,
    InvalidRequest,
}

impl DpopChallengeError {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRequest => "invalid_request",
        }
    }

    pub(super) fn from_bearer(error: BearerError) -> Self {
        match error {
            BearerError::InvalidRequest => Self::InvalidRequest,
            BearerError::InvalidToken => Self::InvalidToken,
            BearerError::InsufficientScope => Self::InsufficientScope,
            // A code added to RFC 6750's set later: the request is refused either way.
            _ => Self::InvalidRequest,
        }
    }
}

/// Append `value` as the inside of an RFC 9110 quoted-string (as `BearerChallenge` does).
fn push_quoted(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '!'..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
}

impl DpopSettings {
    /// `DPoP [realm="…", ]algs="…"[, error="…"][, resource_metadata="…"][, scope="…"]`; the
    /// resource metadata and scope only when no `Bearer` challenge carries them.
    pub(super) fn challenge(
        &self,
        realm: Option<&str>,
        error: Option<DpopChallengeError>,
        resource_metadata: Option<&str>,
        scope: Option<&str>,
    ) -> HeaderValue {
        let mut out = String::from("DPoP ");
        if let Some(realm) = realm {
            out.push_str("realm=\"");
            push_quoted(&mut out, realm);
            out.push_str("\", ");
        }
        out.push_str("algs=\"");
        push_quoted(&mut out, &self.algs);
        out.push('"');
        let params = [
            ("error", error.map(DpopChallengeError::as_str)),
            ("resource_metadata", resource_metadata),
            ("scope", scope),
        ];
        for (name, value) in params {
            let Some(value) = value else { continue };
            out.push_str(", ");
            out.push_str(name);
            out.push_str("=\"");
            push_quoted(&mut out, value);
            out.push('"');
        }
        // Every byte is visible ASCII or a space by construction.
        HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
    }
}

impl Shared {
    /// With server nonces on, the current nonce for the response to an accepted DPoP request,
    /// so the client moves on to it before the one it used expires (RFC 9449 §8.2).
    pub(super) fn fresh_dpop_nonce(&self) -> Option<HeaderValue> {
        let nonce = self.dpop.as_ref()?.verifier.nonce(self.clock.now())?;
        HeaderValue::from_str(&nonce).ok()
    }

    /// Whether `Authorization: DPoP` is accepted.
    pub(super) fn accepts_dpop_scheme(&self) -> bool {
        self.dpop.is_some()
    }

    /// RFC 9449 §7 for a verified caller, on every request (a cached principal included): a
    /// bound token only with the `DPoP` scheme and a valid proof of its key; the `DPoP` scheme
    /// only with a bound token; in required mode, no JWT without a proof.
    pub(super) fn check_dpop<B>(
        &self,
        req: &Request<B>,
        principal: &Principal,
        credential: &str,
        source: Source,
        required: &[&str],
    ) -> Result<(), Box<Refusal>> {
        let jkt = principal.confirmation_jkt();
        let refuse = |failure, message: &'static str, detail: Cow<'static, str>| {
            self.dpop_refusal(
                req,
                source,
                failure,
                DpopChallengeError::InvalidToken,
                message,
                detail,
                credential,
                required,
            )
        };
        match (source, jkt, &self.dpop) {
            (Source::Dpop, Some(jkt), Some(dpop)) => {
                self.check_proof(req, dpop, jkt, credential, required)
            }
            (Source::Dpop, _, _) => Err(refuse(
                AuthFailure::DpopBindingMismatch,
                "The access token is not bound to a DPoP key",
                Cow::Borrowed("the DPoP scheme with a token that has no cnf.jkt"),
            )),
            (_, Some(_), _) => Err(refuse(
                AuthFailure::BoundTokenAsBearer,
                "A DPoP-bound access token needs the DPoP scheme and a proof",
                Cow::Borrowed("a token with cnf.jkt sent without the DPoP scheme"),
            )),
            (_, None, Some(dpop))
                if dpop.mode == DpopMode::Required && principal.kind() == PrincipalKind::Jwt =>
            {
                Err(refuse(
                    AuthFailure::DpopRequired,
                    "A DPoP-bound access token and proof are required",
                    Cow::Borrowed("DPoP is required and the token came without it"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The proof in the one `DPoP` header, against this request and the token's key.
    fn check_proof<B>(
        &self,
        req: &Request<B>,
        dpop: &DpopSettings,
        jkt: &str,
        token: &str,
        required: &[&str],
    ) -> Result<(), Box<Refusal>> {
        let now = self.clock.now();
        let mut proofs = req.headers().get_all(&DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(value), None) => value
                .to_str()
                .map_err(|_| DpopError::Malformed("not ASCII")),
            (None, _) => Err(DpopError::Malformed("no DPoP header")),
            (Some(_), Some(_)) => Err(DpopError::Malformed("more than one DPoP header")),
        };
        let result = proof.and_then(|proof| {
            let url = self
                .request_url(req)
                .ok_or(DpopError::Malformed("the request's URL is unknown"))?;
            dpop.verifier.verify(
                proof,
                &ProofRequest {
                    method: req.method(),
                    url: &url,
                    access_token: token,
                    jkt,
                },
                now,
            )
        });
        let Err(error) = result else {
            return Ok(());
        };
        let (failure, challenge_error, message) = match error {
            DpopError::UseNonce => (
                AuthFailure::DpopNonceRequired,
                DpopChallengeError::UseDpopNonce,
                "Authorization server requires nonce in DPoP proof",
            ),
            DpopError::WrongKey => (
                AuthFailure::DpopBindingMismatch,
                DpopChallengeError::InvalidDpopProof,
                "The DPoP proof is invalid",
            ),
            _ => (
                AuthFailure::InvalidDpopProof,
                DpopChallengeError::InvalidDpopProof,
                "The DPoP proof is invalid",
            ),
        };
        let mut refusal = self.dpop_refusal(
            req,
            Source::Dpop,
            failure,
            challenge_error,
            message,
            Cow::Owned(error.to_string()),
            token,
            required,
        );
        if error == DpopError::UseNonce
            && let Some(nonce) = dpop.verifier.nonce(now)
            && let Ok(value) = HeaderValue::from_str(&nonce)
        {
            refusal.rejection = refusal.rejection.header(DPOP_NONCE.clone(), value);
        }
        Err(refusal)
    }

    /// A 401 about the token's binding or its proof, the error on the challenge of the scheme
    /// the client used (the `Bearer` one when the client used `Bearer` and it is still offered).
    #[allow(clippy::too_many_arguments)]
    fn dpop_refusal<B>(
        &self,
        req: &Request<B>,
        source: Source,
        failure: AuthFailure,
        error: DpopChallengeError,
        message: &'static str,
        detail: Cow<'static, str>,
        credential: &str,
        required: &[&str],
    ) -> Box<Refusal> {
        let rejection = Rejection::new(StatusCode::UNAUTHORIZED, error.as_str())
            .message(message)
            .detail(detail);
        let on_bearer = source != Source::Dpop
            && error == DpopChallengeError::InvalidToken
            && self.dpop.as_ref().is_none_or(|d| d.bearer_allowed);
        let rejection = if on_bearer {
            self.challenge(
                req,
                rejection,
                Some(BearerError::InvalidToken),
                Some(message),
                required,
            )
        } else {
            self.challenge(req, rejection, None, None, required)
        };
        let mut refusal = Refusal::new(rejection, failure);
        refusal.fingerprint = Some(self.fingerprint(credential));
        if !on_bearer {
            refusal.dpop_error = Some(error);
        }
        Box::new(refusal)
    }

    /// The URL a proof's `htu` must name: the configured resource's origin and the request's
    /// path (the resource URL itself when a proxy in front rewrote its path to the MCP path);
    /// else the origin derived from an allowed `Host` (`http://`); else the request's own
    /// scheme (`http` when it has none) and `Host`.
    pub(super) fn request_url<B>(&self, req: &Request<B>) -> Option<String> {
        let path = req.uri().path();
        match self.resource_url(req) {
            Resolved::Fixed(r) => Some(
                if !r.path.is_empty() && path != r.path && path == self.mcp_path {
                    r.url.clone()
                } else {
                    format!("{}{path}", r.origin)
                },
            ),
            Resolved::Derived(r) => Some(format!("{}{path}", r.origin)),
            Resolved::Unknown { .. } => {
                let mut hosts = req.headers().get_all(header::HOST).iter();
                let host = match (hosts.next(), hosts.next()) {
                    (Some(h), None) => h.to_str().ok()?,
                    (None, _) => req.uri().authority()?.as_str(),
                    (Some(_), Some(_)) => return None,
                };
                let scheme = req.uri().scheme_str().unwrap_or("http");
                Some(format!("{scheme}://{}{path}", host.trim()))
            }
        }
    }
}
