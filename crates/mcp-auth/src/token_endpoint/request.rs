//! Reading a token request: the form body (RFC 6749 §4.4.2, RFC 8707), the client's
//! credentials from `Authorization: Basic` or the form (RFC 6749 §2.3.1), and the JSON body of
//! the compatibility login.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use mcp_security_core::config::Secret;
use mcp_security_core::percent::{Plus, decode};
use serde::Deserialize;

use super::error::Refusal;

/// The parameters of a token request this endpoint reads; others are ignored (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub(super) struct TokenForm {
    pub(super) grant_type: Option<String>,
    pub(super) scope: Option<String>,
    /// Every `resource` (RFC 8707 allows several).
    pub(super) resources: Vec<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<Secret>,
}

/// Whether the body is declared as `application/x-www-form-urlencoded`.
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    media_type_is(headers, "application/x-www-form-urlencoded")
}

/// Whether the body is declared as `application/json`.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    media_type_is(headers, "application/json")
}

fn media_type_is(headers: &HeaderMap, expected: &str) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok().is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
        }),
        _ => false,
    }
}

/// Parse an `application/x-www-form-urlencoded` body. A parameter other than `resource` given
/// twice, or a name or value that is not UTF-8 once decoded, is `invalid_request`.
pub(super) fn parse_form(body: &[u8]) -> Result<TokenForm, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal::invalid_request("The request body is not valid form data"))?;
    let mut form = TokenForm::default();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = String::from_utf8(decode(name, Plus::Space))
            .map_err(|_| Refusal::invalid_request("The request body is not valid form data"))?;
        let value = String::from_utf8(decode(value, Plus::Space))
            .map_err(|_| Refusal::invalid_request("The request body is not valid form data"))?;
        let slot = match name.as_str() {
            "resource" => {
                form.resources.push(value);
                continue;
            }
            "client_secret" => {
                if form.client_secret.is_some() {
                    return Err(repeated("client_secret"));
                }
                form.client_secret = Some(Secret::new(value));
                continue;
            }
            "grant_type" => &mut form.grant_type,
            "scope" => &mut form.scope,
            "client_id" => &mut form.client_id,
            _ => continue,
        };
        if slot.is_some() {
            return Err(repeated(&name));
        }
        *slot = Some(value);
    }
    Ok(form)
}

fn repeated(name: &str) -> Refusal {
    Refusal::invalid_request(format!("The parameter {name} is repeated"))
}

/// The client's credentials: its id (the key's name) and secret (the key).
#[derive(Debug)]
pub(super) struct ClientCredentials {
    pub(super) id: String,
    pub(super) secret: Secret,
}

/// Why no credentials could be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CredentialError {
    /// Neither `Authorization: Basic` nor `client_secret` in the form.
    Missing,
    /// Both, or two `Authorization` headers.
    Multiple,
    /// An `Authorization` that is not well-formed Basic, or an empty client id.
    Malformed,
    /// A `client_id` in the form that differs from the Basic one.
    Conflicting,
}

/// The credentials of `client_secret_basic` (the `Authorization` header) or
/// `client_secret_post` (the form), exactly one of them. With Basic, a `client_id` in the form
/// (which some clients add) must name the same client.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    form: &mut TokenForm,
) -> Result<ClientCredentials, CredentialError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let header = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v),
        (Some(_), Some(_)) => return Err(CredentialError::Multiple),
    };
    match (header, form.client_secret.take()) {
        (Some(_), Some(_)) => Err(CredentialError::Multiple),
        (Some(value), None) => {
            let credentials = parse_basic(value.as_bytes()).ok_or(CredentialError::Malformed)?;
            match &form.client_id {
                Some(id) if *id != credentials.id => Err(CredentialError::Conflicting),
                _ => Ok(credentials),
            }
        }
        (None, Some(secret)) => match form.client_id.take() {
            Some(id) if !id.is_empty() => Ok(ClientCredentials { id, secret }),
            Some(_) => Err(CredentialError::Malformed),
            None => Err(CredentialError::Missing),
        },
        (None, None) => Err(CredentialError::Missing),
    }
}

/// `Basic <base64(id ":" secret)>` with the id and secret form-encoded (RFC 6749 §2.3.1).
pub(super) fn parse_basic(value: &[u8]) -> Option<ClientCredentials> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = rest.trim_start();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = String::from_utf8(decode(id, Plus::Space)).ok()?;
    if id.is_empty() {
        return None;
    }
    Some(ClientCredentials {
        id,
        secret: Secret::new(decode_secret(secret)?),
    })
}

/// A form-encoded secret; a `+` that would put a space into it (never valid in an API key) is
/// read as a literal `+`, for clients that do not form-encode it.
pub(super) fn decode_secret(secret: &str) -> Option<String> {
    let spaced = String::from_utf8(decode(secret, Plus::Space)).ok()?;
    if spaced.contains(' ') && secret.contains('+') {
        return String::from_utf8(decode(secret, Plus::Literal)).ok();
    }
    Some(spaced)
}

/// The compatibility login's body: `{"api_key": "…"}`, with an optional `scope` and `resource`
/// as in the form. Other members are ignored; a repeated or mistyped one is refused.
#[derive(Deserialize)]
pub(super) struct LoginBody {
    pub(super) api_key: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) resource: Option<String>,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .field("resource", &self.resource)
            .finish()
    }
}

/// Parse the compatibility login's JSON object.
pub(super) fn parse_login(body: &[u8]) -> Result<LoginBody, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Refusal::invalid_request("The request body is not valid JSON"))?;
    if !value.is_object() {
        return Err(Refusal::invalid_request(
            "The request body must be a JSON object",
        ));
    }
    // A repeated member is lost in a `Value`; parse the text again into the struct, which
    // refuses duplicates of the members it reads.
    serde_json::from_slice::<LoginBody>(body).map_err(|_| {
        Refusal::invalid_request("api_key, scope and resource must each be one string")
    })
}
