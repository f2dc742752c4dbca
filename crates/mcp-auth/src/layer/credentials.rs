//! Finding the one credential a request carries (`Authorization: Bearer`, `Authorization: DPoP`
//! when DPoP is on, an API-key header, or the query when URL auth is on), verifying it, and its
//! fingerprint for the audit trail.

use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, Uri};

use mcp_security_core::credential::QUERY_CREDENTIAL_PARAMS;
use mcp_security_core::percent::{self, Plus};
use mcp_security_core::{AuthFailure, Principal};

use crate::jwt::looks_like_jwt;

use super::Shared;

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1), only when DPoP is on.
    Dpop,
    ApiKeyHeader,
    Query,
}

/// The outcome of looking for a credential.
#[derive(Debug)]
pub(super) enum Extracted {
    None,
    One(String, Source),
    Many,
    Malformed,
}

impl Shared {
    /// Find the one credential a request carries.
    pub(super) fn extract<B>(&self, req: &Request<B>) -> Extracted {
        let mut found: Option<(String, Source)> = None;
        let mut count = 0usize;
        let mut malformed = false;
        let mut authorization = req.headers().get_all(AUTHORIZATION).iter();
        if let Some(value) = authorization.next() {
            count += 1 + authorization.count();
            match parse_bearer(value) {
                Some(token) => found = Some((token.to_owned(), Source::Bearer)),
                None => match parse_scheme(value, "dpop") {
                    Some(token) if self.accepts_dpop_scheme() => {
                        found = Some((token.to_owned(), Source::Dpop));
                    }
                    _ => malformed = true,
                },
            }
        }
        if let Some(name) = &self.api_key_header {
            let mut values = req.headers().get_all(name).iter();
            if let Some(value) = values.next() {
                count += 1 + values.count();
                match value.to_str().map(str::trim) {
                    Ok(v) if !v.is_empty() => found = Some((v.to_owned(), Source::ApiKeyHeader)),
                    _ => malformed = true,
                }
            }
        }
        if self.url_auth {
            for (_, value) in query_tokens(req.uri()) {
                count += 1;
                match percent_decode(value) {
                    Some(v) if !v.is_empty() => found = Some((v, Source::Query)),
                    _ => malformed = true,
                }
            }
        }
        match (count, found) {
            (0, _) => Extracted::None,
            (1, Some((v, s))) if !malformed => Extracted::One(v, s),
            (1, _) => Extracted::Malformed,
            _ => Extracted::Many,
        }
    }

    pub(super) fn verify(&self, credential: &str) -> Result<Principal, AuthFailure> {
        let now = self.clock.now();
        match (&self.jwt, &self.api_keys) {
            // Only JWTs accepted: no need to look at the credential's shape first.
            (Some(jwt), None) => jwt.verify(credential, now),
            // A key that happens to be JWT-shaped still works; the JWT's failure is what is
            // reported otherwise.
            (Some(jwt), Some(keys)) if looks_like_jwt(credential) => jwt
                .verify(credential, now)
                .or_else(|failure| keys.verify(credential, now).map_err(|_| failure)),
            (_, Some(keys)) => keys.verify(credential, now),
            (None, None) => Err(AuthFailure::UnknownKey),
        }
    }

    pub(super) fn strip_credential_headers(&self, headers: &mut http::HeaderMap) {
        headers.remove(AUTHORIZATION);
        if self.dpop.is_some() {
            headers.remove(&super::dpop::DPOP);
        }
        if let Some(name) = &self.api_key_header {
            headers.remove(name);
        }
    }

    pub(super) fn fingerprint(&self, credential: &str) -> String {
        self.fingerprinter
            .fingerprint(credential.as_bytes())
            .to_string()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, token68
/// characters only), or `None`.
pub fn parse_bearer(value: &HeaderValue) -> Option<&str> {
    parse_scheme(value, "bearer")
}

/// The token68 of an `Authorization: <scheme> <token>` header, `scheme` in lower case and
/// matched case-insensitively.
fn parse_scheme<'a>(value: &'a HeaderValue, scheme: &str) -> Option<&'a str> {
    let value = value.to_str().ok()?.trim();
    let (name, token) = value.split_once(' ')?;
    if !name.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    token68.then_some(token)
}

/// The `token` / `access_token` query parameters, as raw (still percent-encoded) values.
pub(super) fn query_tokens(uri: &Uri) -> impl Iterator<Item = (&str, &str)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| QUERY_CREDENTIAL_PARAMS.contains(k))
}

/// Percent-decode a query value (`+` is a space); `None` if it is not UTF-8.
pub(super) fn percent_decode(value: &str) -> Option<String> {
    String::from_utf8(percent::decode(value, Plus::Space)).ok()
}

/// The URI without `token` / `access_token` query parameters.
pub(super) fn strip_query_tokens(uri: &Uri) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !QUERY_CREDENTIAL_PARAMS.contains(&key)
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}
