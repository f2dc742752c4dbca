//! Issuing a token: authenticate the client through the key store, check the grant, the scope
//! and the target, then sign the claims.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use mcp_security_core::config::Secret;
use mcp_security_core::{AuthFailure, Principal};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::Shared;
use super::error::Refusal;
use super::request::{
    CredentialError, LoginBody, TokenForm, client_credentials, is_form, is_json, parse_form,
    parse_login,
};

/// A token ready to be answered.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) token: String,
    pub(super) expires_in: u64,
    pub(super) scope: String,
    pub(super) principal: Principal,
}

impl Shared {
    /// `POST /oauth/token`: a client-credentials grant.
    pub(super) fn token_request(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Issued, Refusal> {
        if !is_form(headers) {
            return Err(Refusal::invalid_request(
                "The request body must be application/x-www-form-urlencoded",
            ));
        }
        let mut form: TokenForm = parse_form(body)?;
        let Some(grant_type) = form.grant_type.take() else {
            return Err(Refusal::invalid_request(
                "The grant_type parameter is missing",
            ));
        };
        let credentials = client_credentials(headers, &mut form).map_err(|e| match e {
            CredentialError::Missing => {
                Refusal::invalid_client(AuthFailure::MissingCredential, None)
            }
            CredentialError::Multiple => Refusal::multiple_credentials(),
            CredentialError::Malformed => {
                Refusal::invalid_client(AuthFailure::MalformedCredential, None)
            }
            CredentialError::Conflicting => Refusal::invalid_request(
                "The client_id parameter names another client than the Authorization header",
            ),
        })?;
        let now = self.clock.now();
        let principal = self.authenticate(Some(&credentials.id), &credentials.secret, now)?;
        if grant_type != "client_credentials" {
            return Err(Refusal::unsupported_grant_type(principal)
                .detail(format!("grant_type {:?}", truncate(&grant_type))));
        }
        let scopes = self.grant(&principal, form.scope.as_deref(), &form.resources)?;
        self.mint(principal, scopes, now)
    }

    /// `POST /auth/api-key-login`: the compatibility form, `{"api_key": "…"}`.
    pub(super) fn api_key_login(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Issued, Refusal> {
        if !is_json(headers) {
            return Err(Refusal::invalid_request(
                "The request body must be application/json",
            ));
        }
        let LoginBody {
            api_key,
            scope,
            resource,
        } = parse_login(body)?;
        let Some(api_key) = api_key else {
            return Err(Refusal::invalid_client(
                AuthFailure::MissingCredential,
                None,
            ));
        };
        let now = self.clock.now();
        let principal = self.authenticate(None, &Secret::new(api_key), now)?;
        let resources: Vec<String> = resource.into_iter().collect();
        let scopes = self.grant(&principal, scope.as_deref(), &resources)?;
        self.mint(principal, scopes, now)
    }

    /// The key's principal when `secret` is a usable key named `client_id` (any name for the
    /// compatibility login). One store lookup whatever the client id, so an unknown id costs
    /// what a wrong secret costs.
    fn authenticate(
        &self,
        client_id: Option<&str>,
        secret: &Secret,
        now: SystemTime,
    ) -> Result<Principal, Refusal> {
        let verified = self.store.verify(secret.expose(), now);
        let failure = match verified {
            Ok(principal) => {
                let named = client_id
                    .is_none_or(|id| bool::from(id.as_bytes().ct_eq(principal.id().as_bytes())));
                if named {
                    return Ok(principal);
                }
                AuthFailure::UnknownKey
            }
            Err(failure) => failure,
        };
        let fingerprint = self
            .fingerprinter
            .fingerprint(secret.expose().as_bytes())
            .to_string();
        Err(Refusal::invalid_client(failure, Some(fingerprint)))
    }

    /// The scopes to grant: the requested ones, each covered by the key's, or all of the key's;
    /// and every `resource` must name this server.
    fn grant(
        &self,
        principal: &Principal,
        scope: Option<&str>,
        resources: &[String],
    ) -> Result<Vec<String>, Refusal> {
        let mut granted: Vec<String> = Vec::new();
        match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => granted.extend(principal.scopes().iter().map(str::to_owned)),
            Some(requested) => {
                if requested.split(' ').filter(|s| !s.is_empty()).count() > MAX_REQUESTED_SCOPES {
                    return Err(Refusal::invalid_scope(
                        principal.clone(),
                        format!("At most {MAX_REQUESTED_SCOPES} scopes may be requested"),
                    ));
                }
                for s in requested.split(' ').filter(|s| !s.is_empty()) {
                    if !s.bytes().all(is_scope_byte) {
                        return Err(Refusal::invalid_scope(
                            principal.clone(),
                            "The scope parameter is malformed",
                        ));
                    }
                    if !principal.has_scope(s) {
                        return Err(Refusal::invalid_scope(
                            principal.clone(),
                            format!("The scope {s} is not granted to this client"),
                        )
                        .detail(format!("requested scope {:?} not covered", truncate(s))));
                    }
                    if !granted.iter().any(|g| g == s) {
                        granted.push(s.to_owned());
                    }
                }
            }
        }
        for resource in resources {
            if !is_absolute_uri(resource) {
                return Err(Refusal::invalid_target(
                    principal.clone(),
                    "The resource parameter must be an absolute URI without a fragment",
                ));
            }
            if !same_resource(&self.resource, resource) {
                return Err(Refusal::invalid_target(
                    principal.clone(),
                    format!("This server issues tokens only for {}", self.resource),
                )
                .detail(format!("resource {:?}", truncate(resource))));
            }
        }
        Ok(granted)
    }

    /// Sign the token for `principal` with `scopes`.
    fn mint(
        &self,
        principal: Principal,
        scopes: Vec<String>,
        now: SystemTime,
    ) -> Result<Issued, Refusal> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Refusal::server_error("the clock is before 1970"))?
            .as_secs();
        // Never longer than the key itself lives: a key expiring in a minute buys a token for a
        // minute, not for the whole TTL.
        let key_left = principal
            .expires_at()
            .map(|at| at.duration_since(now).map_or(0, |left| left.as_secs()));
        let ttl = key_left.map_or(self.ttl.as_secs(), |left| left.min(self.ttl.as_secs()));
        let exp = iat
            .checked_add(ttl)
            .ok_or_else(|| Refusal::server_error("the expiry overflows"))?;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|e| Refusal::server_error(format!("no system randomness for jti: {e}")))?;
        let scope = scopes.join(" ");
        let mut claims = json!({
            "iss": self.issuer,
            "sub": principal.id(),
            "client_id": principal.id(),
            "aud": self.resource,
            "iat": iat,
            "exp": exp,
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        if !scope.is_empty()
            && let Some(object) = claims.as_object_mut()
        {
            object.insert("scope".into(), Value::from(scope.as_str()));
        }
        let token = self.signer.sign(&claims).map_err(Refusal::server_error)?;
        Ok(Issued {
            token,
            expires_in: ttl,
            scope,
            principal,
        })
    }
}

/// The most scopes one token request may name (each becomes part of the token and of the
/// verifier's cached principal).
const MAX_REQUESTED_SCOPES: usize = 64;

/// A scope-token character of RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`.
fn is_scope_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)
}

/// An absolute URI (a scheme, then `:`) without a fragment (RFC 8707 §2).
fn is_absolute_uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !value.contains('#')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The configured resource and a presented one name the same resource: equal, ignoring one
/// trailing slash on either side (the verifier's rule for `aud`).
fn same_resource(ours: &str, presented: &str) -> bool {
    let trim = |s: &'_ str| s.strip_suffix('/').unwrap_or(s).to_owned();
    trim(ours) == trim(presented)
}

/// A client-supplied value, cut for an audit detail.
fn truncate(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or("")
}
