//! Masking: what an audit record must never contain, and the keyed credential fingerprint it
//! carries instead.
//!
//! An [`AuditRecord`](crate::AuditRecord) never holds a request header other than `User-Agent`,
//! so `Authorization`, API-key headers and cookies are never recorded at all. What it does
//! hold — path, query, user agent, a rejection's internal detail, a client-chosen request id —
//! goes through a [`Masker`] on the way out:
//!
//! - a query parameter whose (percent-decoded, case-insensitive) name is sensitive (`token`,
//!   `access_token`, `api_key`, … see [`DEFAULT_SENSITIVE_PARAMS`]) keeps its name and loses its
//!   value: `token=[redacted]`;
//! - any run of token characters (`A-Z a-z 0-9 - . _ ~ + = %`) that contains a configured key
//!   prefix (default [`DEFAULT_KEY_PREFIXES`], `mcp-sk-`, the prefix `mcp-auth` generates keys
//!   with; compared case-insensitively, after percent-decoding) or a JWT-shaped token (three
//!   base64url segments, the first starting with `eyJ`, i.e. `{"`) is replaced by
//!   [`REDACTED`], wherever it appears: a path segment, a query name or value, the user agent.
//!
//! Instead of any part of the credential, the record carries a [`fingerprint`](Fingerprinter):
//! the first 8 bytes of HMAC-SHA256(fingerprint key, credential) in hex, defined once in
//! [`mcp_security_core::credential`] and put by `mcp-auth` into `AuthOutcome::Rejected`. With the same key on both layers, one
//! credential's requests correlate across successes and failures without the credential ever
//! being stored.
//!
//! ```
//! use mcp_security_audit::mask::Masker;
//!
//! let masker = Masker::default();
//! assert_eq!(masker.mask_query("page=2&token=abc"), "page=2&token=[redacted]");
//! assert_eq!(masker.mask_text("/keys/mcp-sk-AbC123/info"), "/keys/[redacted]/info");
//! assert_eq!(masker.mask_text("curl/8.0"), "curl/8.0");
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderValue;
use mcp_security_core::credential::{QUERY_CREDENTIAL_PARAMS, has_jwt_shape, has_prefixed_key};
use mcp_security_core::percent::{self, Plus};

/// What replaces a masked value.
pub const REDACTED: &str = "[redacted]";

/// The key prefixes masked by default: [`mcp_security_core::credential::KEY_PREFIX`], the prefix
/// `mcp-auth` generates keys with.
pub const DEFAULT_KEY_PREFIXES: &[&str] = &[mcp_security_core::credential::KEY_PREFIX];

/// Query parameters whose values are always masked.
pub const DEFAULT_SENSITIVE_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "client_secret",
    "password",
    "secret",
];

/// Masks secrets out of text that goes into audit records; see the [module docs](self).
/// Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Masker {
    inner: Arc<MaskerInner>,
}

#[derive(Debug)]
struct MaskerInner {
    /// Lower-cased.
    prefixes: Box<[Box<str>]>,
    /// Lower-cased.
    params: Box<[Box<str>]>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new(
            DEFAULT_KEY_PREFIXES.iter().copied(),
            DEFAULT_SENSITIVE_PARAMS.iter().copied(),
        )
    }
}

impl Masker {
    /// A masker for these key prefixes and sensitive query parameter names (both compared
    /// case-insensitively; empty entries are ignored). [`Masker::default`] uses
    /// [`DEFAULT_KEY_PREFIXES`] and [`DEFAULT_SENSITIVE_PARAMS`].
    pub fn new<P, Q>(prefixes: P, params: Q) -> Self
    where
        P: IntoIterator,
        P::Item: AsRef<str>,
        Q: IntoIterator,
        Q::Item: AsRef<str>,
    {
        let lower = |s: &str| -> Option<Box<str>> {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_ascii_lowercase().into_boxed_str())
        };
        let mut prefixes: Vec<Box<str>> = prefixes
            .into_iter()
            .filter_map(|p| lower(p.as_ref()))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let mut params: Vec<Box<str>> = params
            .into_iter()
            .filter_map(|p| lower(p.as_ref()))
            .collect();
        params.sort();
        params.dedup();
        Masker {
            inner: Arc::new(MaskerInner {
                prefixes: prefixes.into(),
                params: params.into(),
            }),
        }
    }

    /// The key prefixes masked (lower case).
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.inner.prefixes.iter().map(|p| &**p)
    }

    /// The query parameter names whose values are masked (lower case).
    pub fn sensitive_params(&self) -> impl Iterator<Item = &str> {
        self.inner.params.iter().map(|p| &**p)
    }

    /// Whether `text` holds a secret-looking token (a configured prefix or a JWT shape), after
    /// percent-decoding.
    pub fn contains_secret(&self, text: &str) -> bool {
        let decoded = percent_decode_lossy(text);
        runs(&decoded).any(|(start, end)| self.is_secret_run(decoded.get(start..end).unwrap_or("")))
            || runs(text).any(|(start, end)| self.is_secret_run(text.get(start..end).unwrap_or("")))
    }

    fn is_secret_run(&self, run: &str) -> bool {
        if run.len() < 8 {
            return false;
        }
        // A prefix followed by at least 4 more token characters; the shapes are the ones the
        // result guard detects too (`mcp_security_core::credential`).
        self.inner.prefixes.iter().any(|p| has_prefixed_key(run, p)) || has_jwt_shape(run)
    }

    /// `text` with every secret-looking run of token characters replaced by [`REDACTED`]
    /// (free text: a path, a user agent, a rejection detail).
    pub fn mask_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for (start, end) in runs(text) {
            let run = text.get(start..end).unwrap_or("");
            let secret = self.is_secret_run(run)
                || (run.contains('%') && self.is_secret_run(&percent_decode_lossy(run)));
            if secret {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(text.get(copied..start).unwrap_or(""));
                o.push_str(REDACTED);
                copied = end;
            }
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(text.get(copied..).unwrap_or(""));
                Cow::Owned(o)
            }
        }
    }

    /// A query string with sensitive parameters' values and secret-looking names or values
    /// replaced by [`REDACTED`].
    pub fn mask_query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        if !query.split('&').any(|pair| self.mask_pair(pair).is_some()) {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match self.mask_pair(pair) {
                Some(masked) => out.push_str(&masked),
                None => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }

    /// The masked form of one `name=value` pair, when it needs masking.
    fn mask_pair(&self, pair: &str) -> Option<String> {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let decoded_name = percent_decode_lossy(name);
        let sensitive_name = self
            .inner
            .params
            .iter()
            .any(|p| decoded_name.trim().eq_ignore_ascii_case(p));
        let name_secret = self.contains_secret(name);
        let value_secret = value.is_some_and(|v| sensitive_name || self.contains_secret(v));
        if !name_secret && !value_secret {
            return None;
        }
        let mut out = String::from(if name_secret { REDACTED } else { name });
        if let Some(v) = value {
            out.push('=');
            out.push_str(if value_secret { REDACTED } else { v });
        }
        Some(out)
    }
}

/// The byte ranges of maximal runs of token characters.
fn runs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while bytes.get(i).is_some_and(|b| !is_token_byte(*b)) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while bytes.get(i).is_some_and(|b| is_token_byte(*b)) {
            i += 1;
        }
        Some((start, i))
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b'%')
}

/// Percent-decode lossily (`+` is a space); invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode_lossy(value: &str) -> Cow<'_, str> {
    if !value.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(value);
    }
    match percent_decode(value) {
        Ok(s) => Cow::Owned(s),
        Err(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// Percent-decode as `mcp-auth` does for query credentials (`+` is a space): the string, or the
/// raw bytes when they are not UTF-8.
pub(crate) fn percent_decode(value: &str) -> Result<String, Vec<u8>> {
    String::from_utf8(percent::decode(value, Plus::Space)).map_err(|e| e.into_bytes())
}

/// Cut `text` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut s = String::with_capacity(end + 12);
    s.push_str(text.get(..end).unwrap_or(""));
    s.push_str("[truncated]");
    Cow::Owned(s)
}

/// The keyed credential fingerprint, defined once in [`mcp_security_core::credential`] so that `mcp-auth`
/// and this crate compute the same one.
pub use mcp_security_core::credential::{Fingerprint, Fingerprinter};

/// How a request presented its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `Authorization: Bearer …`.
    Bearer,
    /// `Authorization: DPoP …` (RFC 9449): a token bound to the client's key.
    Dpop,
    /// `Authorization: Basic …`.
    Basic,
    /// `Authorization` with another scheme.
    OtherScheme,
    /// A configured API-key header such as `X-API-Key`.
    ApiKeyHeader,
    /// A `token` / `access_token` query parameter.
    Query,
    /// More than one of the above.
    Multiple,
}

impl CredentialSource {
    /// The label in audit records (`auth_type`): `bearer`, `dpop`, `basic`, `other`,
    /// `api_key`, `query`, `multiple`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Bearer => "bearer",
            CredentialSource::Dpop => "dpop",
            CredentialSource::Basic => "basic",
            CredentialSource::OtherScheme => "other",
            CredentialSource::ApiKeyHeader => "api_key",
            CredentialSource::Query => "query",
            CredentialSource::Multiple => "multiple",
        }
    }
}

/// The credential a request carries, held by reference-counted header value until the
/// fingerprint is needed (never stored in a record).
#[derive(Clone)]
pub(crate) enum Credential {
    /// The bearer token is the header value from `offset` on.
    Header { value: HeaderValue, offset: usize },
    /// A query value (still percent-encoded), as an owned copy: query credentials are rare.
    Query(Box<str>),
}

impl Credential {
    pub(crate) fn fingerprint(&self, f: &Fingerprinter) -> Fingerprint {
        match self {
            Credential::Header { value, offset } => {
                let bytes = value.as_bytes();
                let token = bytes.get(*offset..).unwrap_or(bytes);
                f.fingerprint(trim_ascii(token))
            }
            Credential::Query(raw) => match percent_decode(raw) {
                Ok(s) => f.fingerprint(s.as_bytes()),
                Err(bytes) => f.fingerprint(&bytes),
            },
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or(&[])
}

/// Find the credential of a request: `Authorization`, then the API-key headers, then the query.
pub(crate) fn find_credential(
    headers: &http::HeaderMap,
    api_key_headers: &[http::HeaderName],
    query: Option<&str>,
) -> Option<(CredentialSource, Credential)> {
    let mut found: Option<(CredentialSource, Credential)> = None;
    let mut count = 0usize;
    for value in headers.get_all(http::header::AUTHORIZATION) {
        count += 1;
        if found.is_none() {
            let bytes = value.as_bytes();
            let trimmed_start = bytes.iter().take_while(|b| **b == b' ').count();
            let rest = bytes.get(trimmed_start..).unwrap_or(&[]);
            let scheme_len = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
            let scheme = rest.get(..scheme_len).unwrap_or(&[]);
            let (source, offset) = if scheme.eq_ignore_ascii_case(b"bearer") {
                (CredentialSource::Bearer, trimmed_start + scheme_len)
            } else if scheme.eq_ignore_ascii_case(b"dpop") {
                (CredentialSource::Dpop, trimmed_start + scheme_len)
            } else if scheme.eq_ignore_ascii_case(b"basic") {
                (CredentialSource::Basic, 0)
            } else {
                (CredentialSource::OtherScheme, 0)
            };
            found = Some((
                source,
                Credential::Header {
                    value: value.clone(),
                    offset,
                },
            ));
        }
    }
    for name in api_key_headers {
        for value in headers.get_all(name) {
            count += 1;
            if found.is_none() {
                found = Some((
                    CredentialSource::ApiKeyHeader,
                    Credential::Header {
                        value: value.clone(),
                        offset: 0,
                    },
                ));
            }
        }
    }
    if let Some(query) = query {
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if QUERY_CREDENTIAL_PARAMS.contains(&k) {
                count += 1;
                if found.is_none() {
                    found = Some((CredentialSource::Query, Credential::Query(v.into())));
                }
            }
        }
    }
    match (count, found) {
        (0, _) | (_, None) => None,
        (1, found) => found,
        (_, Some((_, credential))) => Some((CredentialSource::Multiple, credential)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

    #[test]
    fn query_params_are_masked_by_name_and_shape() {
        let m = Masker::default();
        assert_eq!(m.mask_query("a=1&b=2"), "a=1&b=2");
        assert!(matches!(m.mask_query("a=1&b=2"), Cow::Borrowed(_)));
        assert_eq!(m.mask_query("token=abc"), "token=[redacted]");
        assert_eq!(
            m.mask_query("x=1&ACCESS_TOKEN=abc&y=2"),
            "x=1&ACCESS_TOKEN=[redacted]&y=2"
        );
        assert_eq!(m.mask_query("%61pi_key=abc"), "%61pi_key=[redacted]");
        assert_eq!(
            m.mask_query(&format!("q=hello&auth={JWT}")),
            "q=hello&auth=[redacted]"
        );
        assert_eq!(m.mask_query("mcp-sk-abcdefgh"), "[redacted]");
        assert_eq!(m.mask_query("k=mcp%2Dsk%2Dabcdefgh"), "k=[redacted]");
        assert_eq!(m.mask_query("token"), "token");
        assert_eq!(m.mask_query(""), "");
        assert_eq!(m.mask_query("a=1&&token=x"), "a=1&&token=[redacted]");
    }

    #[test]
    fn free_text_is_masked_by_shape() {
        let m = Masker::new(["iqmcp-sk-"], DEFAULT_SENSITIVE_PARAMS.iter().copied());
        assert_eq!(
            m.mask_text("agent/1.0 (IQMCP-SK-abcdefghij)"),
            "agent/1.0 ([redacted])"
        );
        assert_eq!(m.mask_text(&format!("Bearer {JWT}")), "Bearer [redacted]");
        assert_eq!(m.mask_text("/files/report.v2.pdf"), "/files/report.v2.pdf");
        assert_eq!(m.mask_text("example.com.au"), "example.com.au");
        assert_eq!(m.mask_text(""), "");
        // A prefix alone is not a key.
        assert_eq!(m.mask_text("iqmcp-sk-"), "iqmcp-sk-");
        // Percent-encoded secrets in paths.
        assert_eq!(m.mask_text("/x/iqmcp%2Dsk%2Dsecretvalue"), "/x/[redacted]");
        assert!(m.contains_secret(JWT));
        assert!(!m.contains_secret("hello world"));
    }

    #[test]
    fn truncation_marks_the_cut_on_a_char_boundary() {
        assert_eq!(truncate(Cow::Borrowed("abc"), 3), "abc");
        assert_eq!(truncate(Cow::Borrowed("abcdef"), 3), "abc[truncated]");
        assert_eq!(truncate(Cow::Borrowed("aé"), 2), "a[truncated]");
    }

    #[test]
    fn every_credential_source_fingerprints_the_bare_credential() {
        let f = Fingerprinter::new(b"fingerprint-key");
        let want = f.fingerprint(b"mcp-sk-secret").to_string();

        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer  mcp-sk-secret".parse().unwrap());
        let (source, c) = find_credential(&headers, &[], None).unwrap();
        assert_eq!(source, CredentialSource::Bearer);
        assert_eq!(c.fingerprint(&f).to_string(), want);

        headers.insert("authorization", "dpop mcp-sk-secret".parse().unwrap());
        let (source, c) = find_credential(&headers, &[], None).unwrap();
        assert_eq!(source, CredentialSource::Dpop);
        assert_eq!(source.as_str(), "dpop");
        assert_eq!(c.fingerprint(&f).to_string(), want);

        let (source, c) = find_credential(
            &http::HeaderMap::new(),
            &[],
            Some("a=1&token=mcp-sk-secret"),
        )
        .unwrap();
        assert_eq!(source, CredentialSource::Query);
        assert_eq!(c.fingerprint(&f).to_string(), want);

        let api = http::HeaderName::from_static("x-api-key");
        let mut headers = http::HeaderMap::new();
        headers.insert(&api, " mcp-sk-secret ".parse().unwrap());
        let (source, c) = find_credential(&headers, std::slice::from_ref(&api), None).unwrap();
        assert_eq!(source, CredentialSource::ApiKeyHeader);
        assert_eq!(c.fingerprint(&f).to_string(), want);

        headers.insert("authorization", "Basic eHl6".parse().unwrap());
        let (source, _) = find_credential(&headers, std::slice::from_ref(&api), None).unwrap();
        assert_eq!(source, CredentialSource::Multiple);
        assert!(find_credential(&http::HeaderMap::new(), &[], Some("a=b")).is_none());
    }
}
