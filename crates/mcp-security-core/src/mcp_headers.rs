//! The MCP transport headers that mirror the JSON-RPC body: `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` (MCP 2026-07-28, SEP-2243), their `=?base64?…?=` value encoding,
//! and the per-method table of which body field `Mcp-Name` mirrors.
//!
//! Intermediaries route, limit and log on these headers without reading the body, so a header
//! that says one thing while the body says another must never reach the server.
//! [`check_headers`] is the rule [`McpInspectLayer`](crate::inspect::McpInspectLayer) applies;
//! it is public so tests and other transports can apply the same rule.
//!
//! | method | `Mcp-Name` mirrors | required from 2026-07-28 |
//! |---|---|---|
//! | `tools/call`, `prompts/get` | `params.name` | yes |
//! | `resources/read` | `params.uri` | yes |
//! | `resources/subscribe`, `resources/unsubscribe` | `params.uri` | no (checked when sent) |
//! | `tasks/get`, `tasks/update`, `tasks/cancel` | `params.taskId` | yes |
//! | any other method | nothing: an `Mcp-Name` header is refused | — |
//!
//! `Mcp-Method` mirrors `method` and, from 2026-07-28, is required on every request except
//! `initialize` (notifications may omit it: the specification leaves their headers undefined).
//! Before 2026-07-28 clients sent none of these headers, so absence is fine there; a header that
//! is sent must still agree with the body in every era.
//!
//! Leading and trailing spaces and tabs of each header value are ignored ([`trim_ows`]):
//! HTTP/2 and other transports may pass them through untrimmed.
//!
//! The era of a request is its `MCP-Protocol-Version` header. A body that names its version in
//! `params._meta["io.modelcontextprotocol/protocolVersion"]` must carry the same version in the
//! header.
//!
//! Differences from rmcp 3.9's server (the reference implementation), each deliberate: rmcp
//! requires `Mcp-Name` on `resources/subscribe|unsubscribe` (the TypeScript SDK's client does not
//! send it there) and `Mcp-Method` on notifications (the specification no longer asks for it);
//! rmcp ignores an `Mcp-Name` on a method that names nothing, which we refuse, since a proxy would
//! route on a name the server never sees. `Mcp-Param-*` headers need each tool's input schema and
//! are not checked here.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::jsonrpc::{JsonRpcMessage, McpCall, MessageKind};

/// The `Mcp-Method` header of MCP 2026-07-28.
pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// The `Mcp-Name` header of MCP 2026-07-28.
pub static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// The `MCP-Protocol-Version` header (MCP 2025-06-18 and later).
pub static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// What starts a Base64-encoded header value: `=?base64?<standard Base64, padded>?=`.
pub const BASE64_PREFIX: &str = "=?base64?";
/// What ends a Base64-encoded header value.
pub const BASE64_SUFFIX: &str = "?=";

/// The `_meta` key in which a 2026-07-28 request names its protocol version.
pub const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// The first protocol version whose requests must carry `Mcp-Method` / `Mcp-Name`.
pub const STANDARD_HEADERS_VERSION: &str = "2026-07-28";

/// The protocol versions accepted by default: exactly those the bundled rmcp (3.9) knows
/// (`rmcp::model::ProtocolVersion::KNOWN_VERSIONS`), oldest first. A test in the workspace's
/// `tests` package fails when an rmcp upgrade changes that list.
pub const DEFAULT_PROTOCOL_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// Whether a protocol version is one whose requests must carry the standard headers
/// (2026-07-28 or later). MCP versions are dated `YYYY-MM-DD`, so they compare as text.
pub fn requires_standard_headers(version: &str) -> bool {
    version >= STANDARD_HEADERS_VERSION
}

/// Whether `version` has the shape of an MCP protocol version, `YYYY-MM-DD`.
pub fn is_version_shaped(version: &str) -> bool {
    let b = version.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// The body field an `Mcp-Name` header mirrors; see [`name_field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameField {
    /// `params.name`: `tools/call`, `prompts/get`.
    Name,
    /// `params.uri`: `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    Uri,
    /// `params.taskId`: `tasks/get`, `tasks/update`, `tasks/cancel`.
    TaskId,
}

impl NameField {
    /// The key under `params`.
    pub fn key(self) -> &'static str {
        match self {
            NameField::Name => "name",
            NameField::Uri => "uri",
            NameField::TaskId => "taskId",
        }
    }
}

/// The body field `Mcp-Name` mirrors for `method`, or `None` for methods that name nothing.
///
/// ```
/// use mcp_security_core::mcp_headers::{NameField, name_field};
///
/// assert_eq!(name_field("tools/call"), Some(NameField::Name));
/// assert_eq!(name_field("resources/subscribe"), Some(NameField::Uri));
/// assert_eq!(name_field("tasks/cancel"), Some(NameField::TaskId));
/// assert_eq!(name_field("tools/list"), None);
/// ```
pub fn name_field(method: &str) -> Option<NameField> {
    match method {
        "tools/call" | "prompts/get" => Some(NameField::Name),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some(NameField::Uri),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some(NameField::TaskId),
        _ => None,
    }
}

/// Whether a 2026-07-28 request of `method` must carry `Mcp-Name` (when its body has the field).
pub fn name_required(method: &str) -> bool {
    name_field(method).is_some()
        && !matches!(method, "resources/subscribe" | "resources/unsubscribe")
}

/// A header value in the `=?base64?…?=` form whose content is not padded standard Base64 of
/// UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEncoding;

impl fmt::Display for InvalidEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not valid =?base64?…?= encoding of UTF-8 text")
    }
}

impl std::error::Error for InvalidEncoding {}

/// The Base64 text inside `=?base64?…?=`, or `None` when the value is plain.
fn encoded_part(raw: &str) -> Option<&str> {
    raw.strip_prefix(BASE64_PREFIX)?.strip_suffix(BASE64_SUFFIX)
}

/// Decode a header value: the text inside `=?base64?…?=` (padded standard Base64 of UTF-8), or
/// the value itself when it is not in that form. Plain values are borrowed.
///
/// ```
/// use mcp_security_core::mcp_headers::decode_value;
///
/// assert_eq!(decode_value("echo").unwrap(), "echo");
/// assert_eq!(decode_value("=?base64?w6ljaG8=?=").unwrap(), "écho");
/// assert!(decode_value("=?base64?w6lja?=").is_err());
/// ```
///
/// # Errors
/// [`InvalidEncoding`] when the value is in the encoded form but is not padded standard Base64,
/// or decodes to bytes that are not UTF-8.
pub fn decode_value(raw: &str) -> Result<Cow<'_, str>, InvalidEncoding> {
    match encoded_part(raw) {
        None => Ok(Cow::Borrowed(raw)),
        Some(inner) => {
            let bytes = BASE64.decode(inner).map_err(|_| InvalidEncoding)?;
            String::from_utf8(bytes)
                .map(Cow::Owned)
                .map_err(|_| InvalidEncoding)
        }
    }
}

/// Whether a header value, decoded as by [`decode_value`], equals `expected`. Allocation-free
/// for plain values and for encoded values of up to 256 decoded bytes.
///
/// # Errors
/// [`InvalidEncoding`] as for [`decode_value`].
pub fn value_matches(raw: &str, expected: &str) -> Result<bool, InvalidEncoding> {
    let Some(inner) = encoded_part(raw) else {
        return Ok(raw == expected);
    };
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if inner.len() / 4 * 3 <= stack.len() {
        &mut stack
    } else {
        heap.resize(inner.len() / 4 * 3 + 3, 0);
        &mut heap
    };
    let n = BASE64
        .decode_slice(inner, buf)
        .map_err(|_| InvalidEncoding)?;
    let decoded = buf.get(..n).ok_or(InvalidEncoding)?;
    let decoded = std::str::from_utf8(decoded).map_err(|_| InvalidEncoding)?;
    Ok(decoded == expected)
}

/// Encode a value for an `Mcp-Name` (or other mirrored) header as MCP clients do: values that
/// cannot travel as a plain header value — leading or trailing space or tab, characters outside
/// printable ASCII, or text that would itself read as the encoded form — become
/// `=?base64?…?=`; every other value is borrowed unchanged. `decode_value(&encode_value(v))`
/// is `v`.
///
/// ```
/// use mcp_security_core::mcp_headers::encode_value;
///
/// assert_eq!(encode_value("read_note"), "read_note");
/// assert_eq!(encode_value("écho"), "=?base64?w6ljaG8=?=");
/// ```
pub fn encode_value(value: &str) -> Cow<'_, str> {
    let edge_space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let bytes = value.as_bytes();
    let needs = edge_space(bytes.first())
        || edge_space(bytes.last())
        || bytes.iter().any(|b| !(0x20..=0x7e).contains(b))
        || encoded_part(value).is_some();
    if needs {
        Cow::Owned(format!(
            "{BASE64_PREFIX}{}{BASE64_SUFFIX}",
            BASE64.encode(value)
        ))
    } else {
        Cow::Borrowed(value)
    }
}

/// Why a request's transport headers are refused; see [`check_headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// `MCP-Protocol-Version` names a version that is not supported (or is not text).
    UnsupportedVersion {
        /// The header's value, when it was text (at most 64 characters of it).
        requested: Option<Box<str>>,
    },
    /// A header that may appear once appears more than once.
    Repeated(&'static str),
    /// A header required in the request's era is absent.
    Missing(&'static str),
    /// A header disagrees with the body.
    Mismatch(&'static str),
    /// A header in the `=?base64?…?=` form does not decode.
    InvalidEncoding(&'static str),
}

impl HeaderProblem {
    /// The header concerned, as the specification spells it.
    pub fn header(&self) -> &'static str {
        match self {
            HeaderProblem::UnsupportedVersion { .. } => "MCP-Protocol-Version",
            HeaderProblem::Repeated(h)
            | HeaderProblem::Missing(h)
            | HeaderProblem::Mismatch(h)
            | HeaderProblem::InvalidEncoding(h) => h,
        }
    }
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::UnsupportedVersion { requested: Some(v) } => {
                write!(f, "Unsupported MCP-Protocol-Version {v:?}")
            }
            HeaderProblem::UnsupportedVersion { requested: None } => {
                f.write_str("Unsupported MCP-Protocol-Version (not text)")
            }
            HeaderProblem::Repeated(h) => write!(f, "The {h} header is repeated"),
            HeaderProblem::Missing(h) => {
                write!(
                    f,
                    "The {h} header is required for this request and is missing"
                )
            }
            HeaderProblem::Mismatch(h) => {
                write!(f, "The {h} header does not match the request body")
            }
            HeaderProblem::InvalidEncoding(h) => {
                write!(f, "The {h} header is not valid =?base64?...?= encoding")
            }
        }
    }
}

impl std::error::Error for HeaderProblem {}

/// The one value of a singleton header: `Ok(None)` when absent, an error when repeated or when
/// not text (visible ASCII, space, tab).
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<Option<&'a HeaderValue>, HeaderProblem> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderProblem::Repeated(label));
    }
    Ok(Some(value))
}

/// A header value without its leading and trailing spaces and tabs (optional whitespace,
/// RFC 9110 §5.5). HTTP/1 parsers drop it; HTTP/2 and other transports may pass it through,
/// and a client must not be refused for it. A value whose own text begins or ends with
/// whitespace travels in the `=?base64?…?=` form ([`encode_value`]), so trimming loses nothing.
pub fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

fn text<'a>(value: &'a HeaderValue, label: &'static str) -> Result<&'a str, HeaderProblem> {
    value
        .to_str()
        .map(trim_ows)
        .map_err(|_| HeaderProblem::Mismatch(label))
}

/// The field `Mcp-Name` mirrors in this message, when the method has one and the body holds it
/// as a string.
fn mirrored_name(message: &JsonRpcMessage) -> Option<&str> {
    match name_field(message.method()?)? {
        NameField::Name => message.param_name(),
        NameField::Uri => message.param_uri(),
        NameField::TaskId => message.param_task_id(),
    }
}

/// Check a request's `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers against its
/// envelope, in that order, with the rules of the [module docs](self). `supported` is the list of
/// accepted protocol versions.
///
/// Allocation-free unless a problem is found or an `Mcp-Name` is Base64-encoded beyond 256 bytes.
///
/// ```
/// use http::HeaderMap;
/// use mcp_security_core::jsonrpc::parse_envelope;
/// use mcp_security_core::mcp_headers::{DEFAULT_PROTOCOL_VERSIONS, HeaderProblem, check_headers};
///
/// let call = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call",
///     "params":{"name":"echo"}}"#)?;
/// let mut headers = HeaderMap::new();
/// headers.insert("mcp-protocol-version", "2026-07-28".parse()?);
/// headers.insert("mcp-method", "tools/call".parse()?);
/// assert_eq!(
///     check_headers(&headers, &call, DEFAULT_PROTOCOL_VERSIONS),
///     Err(HeaderProblem::Missing("Mcp-Name"))
/// );
/// headers.insert("mcp-name", "=?base64?ZWNobw==?=".parse()?);
/// assert_eq!(check_headers(&headers, &call, DEFAULT_PROTOCOL_VERSIONS), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The first [`HeaderProblem`] found.
pub fn check_headers<S: AsRef<str>>(
    headers: &HeaderMap,
    call: &McpCall,
    supported: &[S],
) -> Result<(), HeaderProblem> {
    const VERSION: &str = "MCP-Protocol-Version";
    const METHOD: &str = "Mcp-Method";
    const NAME: &str = "Mcp-Name";

    // MCP-Protocol-Version: supported, and the same as any version the body names.
    let version = match single(headers, &MCP_PROTOCOL_VERSION, VERSION)? {
        None => None,
        Some(value) => {
            let Ok(v) = value.to_str().map(trim_ows) else {
                return Err(HeaderProblem::UnsupportedVersion { requested: None });
            };
            if !supported.iter().any(|s| s.as_ref() == v) {
                let cut = v.char_indices().nth(64).map_or(v.len(), |(i, _)| i);
                return Err(HeaderProblem::UnsupportedVersion {
                    requested: Some(v.get(..cut).unwrap_or(v).into()),
                });
            }
            Some(v)
        }
    };
    for message in call.messages() {
        match (message.meta_protocol_version(), version) {
            (None, _) => {}
            (Some(_), None) => return Err(HeaderProblem::Missing(VERSION)),
            (Some(body), Some(header)) if body != header => {
                return Err(HeaderProblem::Mismatch(VERSION));
            }
            (Some(_), Some(_)) => {}
        }
    }
    let stateless = version.is_some_and(requires_standard_headers);
    let is_request = |m: &JsonRpcMessage| m.kind() == MessageKind::Request;

    // Mcp-Method: equal to every message's method; required on 2026-07-28 requests.
    match single(headers, &MCP_METHOD, METHOD)? {
        Some(value) => {
            let value = text(value, METHOD)?;
            if call.messages().iter().any(|m| m.method() != Some(value)) {
                return Err(HeaderProblem::Mismatch(METHOD));
            }
        }
        None if stateless
            && call
                .messages()
                .iter()
                .any(|m| is_request(m) && m.method() != Some("initialize")) =>
        {
            return Err(HeaderProblem::Missing(METHOD));
        }
        None => {}
    }

    // Mcp-Name: equal (decoded) to every message's mirrored field; required on 2026-07-28
    // requests of the methods that require it, when the body holds the field.
    match single(headers, &MCP_NAME, NAME)? {
        Some(value) => {
            let value = text(value, NAME)?;
            for message in call.messages() {
                let Some(expected) = mirrored_name(message) else {
                    return Err(HeaderProblem::Mismatch(NAME));
                };
                match value_matches(value, expected) {
                    Ok(true) => {}
                    Ok(false) => return Err(HeaderProblem::Mismatch(NAME)),
                    Err(InvalidEncoding) => return Err(HeaderProblem::InvalidEncoding(NAME)),
                }
            }
        }
        None if stateless
            && call.messages().iter().any(|m| {
                is_request(m) && m.method().is_some_and(name_required) && mirrored_name(m).is_some()
            }) =>
        {
            return Err(HeaderProblem::Missing(NAME));
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse_envelope;

    #[test]
    fn surrounding_spaces_and_tabs_are_ignored() {
        // The conformance case ServerAcceptsWhitespaceHeaderValue: values as an HTTP/2 peer
        // may pass them, untrimmed.
        let call = parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",
                "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .unwrap();
        let headers = |version: &str, method: &str, name: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                &MCP_PROTOCOL_VERSION,
                HeaderValue::from_str(version).unwrap(),
            );
            h.insert(&MCP_METHOD, HeaderValue::from_str(method).unwrap());
            h.insert(&MCP_NAME, HeaderValue::from_str(name).unwrap());
            h
        };
        for (version, method, name) in [
            (" 2026-07-28", "tools/call ", "\techo"),
            ("2026-07-28\t", " \ttools/call\t ", "echo  "),
            ("  2026-07-28  ", "\ttools/call", " =?base64?ZWNobw==?=\t"),
        ] {
            assert_eq!(
                check_headers(
                    &headers(version, method, name),
                    &call,
                    DEFAULT_PROTOCOL_VERSIONS
                ),
                Ok(()),
                "{version:?} {method:?} {name:?}"
            );
        }
        // Only the edges: inner whitespace and other values still disagree.
        let v = "2026-07-28";
        for (h, problem) in [
            (
                headers(v, "tools/call", " ec ho "),
                HeaderProblem::Mismatch("Mcp-Name"),
            ),
            (
                headers(v, " tools/list ", "echo"),
                HeaderProblem::Mismatch("Mcp-Method"),
            ),
            (
                headers(" 2025-11-25 ", "tools/call", "echo"),
                HeaderProblem::Mismatch("MCP-Protocol-Version"),
            ),
            (
                headers(" 2099-01-01 ", "tools/call", "echo"),
                HeaderProblem::UnsupportedVersion {
                    requested: Some("2099-01-01".into()),
                },
            ),
        ] {
            assert_eq!(
                check_headers(&h, &call, DEFAULT_PROTOCOL_VERSIONS),
                Err(problem)
            );
        }
        assert_eq!(trim_ows(" \t a b\t "), "a b");
    }

    #[test]
    fn base64_decoding() {
        // valid, plain, empty
        assert_eq!(
            decode_value("=?base64?cmVhZF9ub3Rl?=").unwrap(),
            "read_note"
        );
        assert_eq!(decode_value("read_note").unwrap(), "read_note");
        assert!(matches!(decode_value("read_note"), Ok(Cow::Borrowed(_))));
        assert_eq!(decode_value("").unwrap(), "");
        assert_eq!(decode_value("=?base64??=").unwrap(), "");
        // Not the encoded form: taken as plain text.
        for plain in [
            "=?base64?",
            "=?base64?=",
            "?=",
            "=?BASE64?ZWNobw==?=",
            "=?base64?ZWNobw==",
        ] {
            assert_eq!(decode_value(plain).unwrap(), plain, "{plain}");
        }
        // invalid padding, bad alphabet, non-canonical trailing bits
        for bad in [
            "=?base64?ZWNobw?=",
            "=?base64?ZWNobw=?=",
            "=?base64?ZWNobw===?=",
            "=?base64?ZWN*bw==?=",
            "=?base64?ZWNobx==?=",
            "=?base64?ZWNo bw==?=",
            "=?base64?=?=",
            "=?base64?Z?=",
        ] {
            assert_eq!(decode_value(bad), Err(InvalidEncoding), "{bad}");
            assert_eq!(value_matches(bad, "echo"), Err(InvalidEncoding), "{bad}");
        }
        // URL-safe alphabet is not the standard one.
        assert_eq!(decode_value("=?base64?-_8=?="), Err(InvalidEncoding));
        // non-UTF-8
        assert_eq!(decode_value("=?base64?/w==?="), Err(InvalidEncoding));
        assert_eq!(
            value_matches("=?base64?/w==?=", "\u{ff}"),
            Err(InvalidEncoding)
        );
        // huge: 1 MiB of text, both through the stack-free path and decode_value
        let big = "é".repeat(512 * 1024);
        let encoded = encode_value(&big);
        assert_eq!(decode_value(&encoded).unwrap(), big);
        assert_eq!(value_matches(&encoded, &big), Ok(true));
        assert_eq!(value_matches(&encoded, "é"), Ok(false));
        // boundaries of the stack buffer
        for len in [0, 1, 2, 3, 190, 191, 192, 193, 255, 256, 257, 258, 600] {
            let v = "x".repeat(len) + "\u{1}";
            let e = encode_value(&v);
            assert_eq!(value_matches(&e, &v), Ok(true), "{len}");
            assert_eq!(decode_value(&e).unwrap(), v, "{len}");
        }
    }

    #[test]
    fn encoding_round_trips_and_is_a_valid_header_value() {
        for v in [
            "",
            "echo",
            "a b",
            " lead",
            "trail\t",
            "tööl_unicode",
            "line\nbreak",
            "=?base64?ZWNobw==?=",
            "=?base64?=",
            "\u{7f}",
            "日本語",
        ] {
            let e = encode_value(v);
            assert_eq!(decode_value(&e).unwrap(), v, "{v:?}");
            assert!(HeaderValue::from_str(&e).is_ok(), "{v:?} -> {e:?}");
        }
        assert_eq!(
            encode_value("tööl_unicode"),
            "=?base64?dMO2w7ZsX3VuaWNvZGU=?="
        );
        assert!(matches!(encode_value("a b"), Cow::Borrowed("a b")));
    }

    #[test]
    fn the_table() {
        for (m, f, required) in [
            ("tools/call", Some(NameField::Name), true),
            ("prompts/get", Some(NameField::Name), true),
            ("resources/read", Some(NameField::Uri), true),
            ("resources/subscribe", Some(NameField::Uri), false),
            ("resources/unsubscribe", Some(NameField::Uri), false),
            ("tasks/get", Some(NameField::TaskId), true),
            ("tasks/update", Some(NameField::TaskId), true),
            ("tasks/cancel", Some(NameField::TaskId), true),
            ("tasks/list", None, false),
            ("tools/list", None, false),
            ("initialize", None, false),
        ] {
            assert_eq!(name_field(m), f, "{m}");
            assert_eq!(name_required(m), required, "{m}");
        }
        assert_eq!(NameField::TaskId.key(), "taskId");
        assert!(requires_standard_headers("2026-07-28"));
        assert!(requires_standard_headers("2027-01-01"));
        assert!(!requires_standard_headers("2025-11-25"));
        assert!(is_version_shaped("2025-11-25"));
        for bad in ["", "2025-11-2", "2025/11/25", "2025-11-25 ", "x025-11-25"] {
            assert!(!is_version_shaped(bad), "{bad}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn check(pairs: &[(&str, &str)], body: &str) -> Result<(), HeaderProblem> {
        let call = parse_envelope(body.as_bytes()).unwrap();
        check_headers(&headers(pairs), &call, DEFAULT_PROTOCOL_VERSIONS)
    }

    const NEW: (&str, &str) = ("mcp-protocol-version", "2026-07-28");
    const OLD: (&str, &str) = ("mcp-protocol-version", "2025-11-25");

    #[test]
    fn each_method_compares_its_own_field() {
        for (method, params, name) in [
            ("tools/call", r#"{"name":"n1"}"#, "n1"),
            ("prompts/get", r#"{"name":"p"}"#, "p"),
            ("resources/read", r#"{"uri":"file:///a"}"#, "file:///a"),
            ("resources/subscribe", r#"{"uri":"file:///a"}"#, "file:///a"),
            (
                "resources/unsubscribe",
                r#"{"uri":"file:///a"}"#,
                "file:///a",
            ),
            ("tasks/get", r#"{"taskId":"t-1"}"#, "t-1"),
            ("tasks/update", r#"{"taskId":"t-1","name":"x"}"#, "t-1"),
            ("tasks/cancel", r#"{"taskId":"t-1","uri":"y"}"#, "t-1"),
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
            for era in [OLD, NEW] {
                assert_eq!(
                    check(&[era, ("mcp-method", method), ("mcp-name", name)], &body),
                    Ok(())
                );
                let encoded = format!("=?base64?{}?=", BASE64.encode(name));
                assert_eq!(
                    check(
                        &[era, ("mcp-method", method), ("mcp-name", &encoded)],
                        &body
                    ),
                    Ok(())
                );
                assert_eq!(
                    check(&[era, ("mcp-method", method), ("mcp-name", "other")], &body),
                    Err(HeaderProblem::Mismatch("Mcp-Name")),
                    "{method}"
                );
                assert_eq!(
                    check(
                        &[era, ("mcp-method", method), ("mcp-name", "=?base64?@?=")],
                        &body
                    ),
                    Err(HeaderProblem::InvalidEncoding("Mcp-Name"))
                );
            }
            // Absent: fine before 2026-07-28; required after, except subscribe/unsubscribe.
            assert_eq!(check(&[OLD], &body), Ok(()));
            assert_eq!(check(&[], &body), Ok(()));
            assert_eq!(
                check(&[NEW], &body),
                Err(HeaderProblem::Missing("Mcp-Method"))
            );
            let expected = if name_required(method) {
                Err(HeaderProblem::Missing("Mcp-Name"))
            } else {
                Ok(())
            };
            assert_eq!(
                check(&[NEW, ("mcp-method", method)], &body),
                expected,
                "{method}"
            );
        }
    }

    #[test]
    fn methods_without_a_name_field() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert_eq!(check(&[NEW, ("mcp-method", "tools/list")], body), Ok(()));
        assert_eq!(check(&[], body), Ok(()));
        assert_eq!(
            check(&[("mcp-name", "x")], body),
            Err(HeaderProblem::Mismatch("Mcp-Name"))
        );
        // initialize needs no Mcp-Method, but one that is sent must agree.
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28"}}"#;
        assert_eq!(check(&[NEW], init), Ok(()));
        assert_eq!(
            check(&[NEW, ("mcp-method", "tools/list")], init),
            Err(HeaderProblem::Mismatch("Mcp-Method"))
        );
        // Notifications and responses need none.
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(check(&[NEW], note), Ok(()));
        let response = r#"{"jsonrpc":"2.0","id":4,"result":{}}"#;
        assert_eq!(check(&[NEW], response), Ok(()));
        // A call without the field needs no header (the server refuses the params itself).
        let nameless = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#;
        assert_eq!(
            check(&[NEW, ("mcp-method", "tools/call")], nameless),
            Ok(())
        );
    }

    #[test]
    fn protocol_version_rules() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert_eq!(
            check(&[("mcp-protocol-version", "1999-01-01")], body),
            Err(HeaderProblem::UnsupportedVersion {
                requested: Some("1999-01-01".into())
            })
        );
        let long = "9".repeat(500);
        match check(&[("mcp-protocol-version", &long)], body) {
            Err(HeaderProblem::UnsupportedVersion { requested: Some(v) }) => {
                assert_eq!(v.len(), 64)
            }
            other => panic!("{other:?}"),
        }
        let mut map = HeaderMap::new();
        map.insert(
            MCP_PROTOCOL_VERSION.clone(),
            HeaderValue::from_bytes(b"2026-07-28\xff").unwrap(),
        );
        let call = parse_envelope(body.as_bytes()).unwrap();
        assert_eq!(
            check_headers(&map, &call, DEFAULT_PROTOCOL_VERSIONS),
            Err(HeaderProblem::UnsupportedVersion { requested: None })
        );
        assert_eq!(
            check(&[OLD, OLD], body),
            Err(HeaderProblem::Repeated("MCP-Protocol-Version"))
        );
        // The body's _meta version must match the header.
        let meta = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(check(&[NEW, ("mcp-method", "ping")], meta), Ok(()));
        assert_eq!(
            check(&[OLD, ("mcp-method", "ping")], meta),
            Err(HeaderProblem::Mismatch("MCP-Protocol-Version"))
        );
        assert_eq!(
            check(&[("mcp-method", "ping")], meta),
            Err(HeaderProblem::Missing("MCP-Protocol-Version"))
        );
        // A configured list.
        let call = parse_envelope(body.as_bytes()).unwrap();
        assert_eq!(
            check_headers(&headers(&[OLD]), &call, &["2026-07-28"]),
            Err(HeaderProblem::UnsupportedVersion {
                requested: Some("2025-11-25".into())
            })
        );
    }

    #[test]
    fn messages_name_the_header() {
        assert_eq!(
            HeaderProblem::Missing("Mcp-Name").to_string(),
            "The Mcp-Name header is required for this request and is missing"
        );
        assert_eq!(HeaderProblem::Repeated("Mcp-Method").header(), "Mcp-Method");
        assert_eq!(
            HeaderProblem::UnsupportedVersion { requested: None }.header(),
            "MCP-Protocol-Version"
        );
    }
}
