//! The tamper-evident line format of the file sink: an HMAC-SHA256 chain over JSON lines.
//!
//! # A line
//!
//! Every line is one JSON object whose first member is `seq` and whose last member is `mac`:
//!
//! ```text
//! {"seq":41,"kind":"request","timestamp":"2026-05-01T12:00:00.123Z",…,"mac":"9f2c…(64 hex)"}
//! ```
//!
//! The *body* of a line is its bytes up to, not including, `,"mac":"`. The MAC of record *i* is
//!
//! ```text
//! MAC_i = HMAC-SHA256(key, MAC_{i-1} || body_i)        (MAC_{-1} = 32 zero bytes)
//! ```
//!
//! over the exact bytes written, so no canonical re-serialization is needed: changing any byte of
//! a body (the sequence number included), deleting, inserting or reordering lines breaks the
//! chain from that line on. Sequence numbers (`seq`) increase by one per line across files and
//! restarts, which lets the verifier tell a missing line from a modified one.
//!
//! # Record kinds
//!
//! | kind | written | carries |
//! |---|---|---|
//! | `start` | first line of a new chain | `key_id`, `chain`, `version`, `checkpoint_interval_secs`, `reason` |
//! | `resume` | the writer restarted and continues the chain in the same file | `checkpoint_interval_secs`, `previous` (and `lost_first`, `lost_last`) |
//! | `request` | one per HTTP request | the audit record |
//! | `security` | a detector fired | detector, client, counts, ban |
//! | `checkpoint` | every checkpoint interval, also when idle | `head` (the MAC before it), `records`, `dropped` (and with a signing key `seg_from`, `seg_hash`, `sig`: see [`crate::signing`]) |
//! | `rotate` | last line of a file that reached its size limit | `file`: the name the file is renamed to |
//! | `link` | first line of the file after a rotation | `prev_file`, `prev_seq`, `prev_mac` |
//! | `restart` | first line of a new file after a crash left a torn line | `prev_file`, `prev_seq`, `prev_mac`, `torn_offset` |
//! | `close` | the writer shut down cleanly | `head` |
//!
//! Checkpoints are records of the chain like any other, so each is signed by its own MAC; they
//! are also emitted as `tracing` events (target `mcp_security_audit`), which gives an external copy of
//! the chain head that a log shipper can keep out of an attacker's reach.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac as _};
use mcp_security_core::config::{ConfigError, Secret};
use serde::Deserialize;
use sha2::Sha256;

/// The format version written in `start` records.
pub const FORMAT_VERSION: u64 = 1;

/// The shortest HMAC key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A chain MAC: HMAC-SHA256 output.
pub type Mac = [u8; 32];

/// The MAC before the first record of a chain.
pub const GENESIS: Mac = [0; 32];

/// What separates a line's body from its MAC.
pub(crate) const MAC_MEMBER: &[u8] = b",\"mac\":\"";

/// `,"mac":"` + 64 hex digits + `"}`.
pub(crate) const SUFFIX_LEN: usize = MAC_MEMBER.len() + 64 + 2;

/// The longest line the parser accepts, in bytes. Records are far smaller: their free-text
/// fields are capped when written.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The secret key of the chain, with its derived public identifier.
///
/// The key is the secret's bytes as given (at least [`MIN_KEY_BYTES`]); generate one with
/// `openssl rand -hex 32` or `mcp-security keygen`. Its [`id`](Self::id), written in every
/// `start` record, lets the verifier tell "wrong key" from "modified record".
///
/// ```
/// use mcp_security_audit::chain::AuditKey;
/// use mcp_security_core::config::Secret;
///
/// let key = AuditKey::new(&Secret::new("0123456789abcdef0123456789abcdef"))?;
/// assert_eq!(key.id().len(), 16);
/// assert!(AuditKey::new(&Secret::new("short")).is_err());
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AuditKey {
    keyed: HmacSha256,
    id: [u8; 8],
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// A key from a secret (the setting is called `hmac_key`).
    ///
    /// # Errors
    /// `hmac_key` when the secret is shorter than [`MIN_KEY_BYTES`].
    pub fn new(secret: &Secret) -> Result<Self, ConfigError> {
        Self::from_bytes(secret.expose().as_bytes())
    }

    /// A key from raw bytes.
    ///
    /// # Errors
    /// `hmac_key` when shorter than [`MIN_KEY_BYTES`].
    pub fn from_bytes(key: &[u8]) -> Result<Self, ConfigError> {
        Self::named("hmac_key", key)
    }

    fn named(setting: &str, key: &[u8]) -> Result<Self, ConfigError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(ConfigError::new(
                setting,
                format!(
                    "must be at least {MIN_KEY_BYTES} bytes (got {}); generate one with `openssl rand -hex 32`",
                    key.len()
                ),
            ));
        }
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(key)
            .map_err(|_| ConfigError::new(setting, "is not a usable HMAC key"))?;
        let mut key = AuditKey { keyed, id: [0; 8] };
        let derived = key.derive(b"mcp-security-audit key id v1");
        key.id.copy_from_slice(&derived[..8]);
        Ok(key)
    }

    /// A key read from a file: its contents with one trailing newline removed, as Docker and
    /// Kubernetes secrets are written.
    ///
    /// # Errors
    /// `key_file` when the file cannot be read or the key is too short (the error never contains
    /// the key).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new("key_file", format!("cannot read the key file: {e}"))
                .with_value(&shown)
        })?;
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        Self::named("key_file", trimmed)
    }

    /// The key's public identifier: 16 hex digits of HMAC(key, "mcp-security-audit key id v1").
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    /// `HMAC(key, prev || body)`.
    pub fn mac(&self, prev: &Mac, body: &[u8]) -> Mac {
        let mut m = self.keyed.clone();
        m.update(prev);
        m.update(body);
        let mut out = [0; 32];
        out.copy_from_slice(&m.finalize().into_bytes());
        out
    }

    /// A value derived from the key for another purpose (`HMAC(key, label)`).
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        self.hmac(label, b"")
    }

    /// `HMAC(key, prefix || text)`: the keyed digests of [`crate::evidence`].
    pub(crate) fn hmac(&self, prefix: &[u8], text: &[u8]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(prefix);
        m.update(text);
        let mut out = [0; 32];
        out.copy_from_slice(&m.finalize().into_bytes());
        out
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex_byte(&mut s, *b);
    }
    s
}

pub(crate) fn push_hex_byte(s: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.push(char::from(DIGITS[usize::from(b >> 4)]));
    s.push(char::from(DIGITS[usize::from(b & 15)]));
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decode exactly 64 lower-case hex digits.
pub(crate) fn unhex_mac(s: &[u8]) -> Option<Mac> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let (Some(&h), Some(&l)) = (pair.first(), pair.get(1)) else {
            return None;
        };
        let byte = hex_value(h)? << 4 | hex_value(l)?;
        if let Some(slot) = out.get_mut(i) {
            *slot = byte;
        }
    }
    Some(out)
}

/// Finish a line whose body (`{"seq":…` without the closing brace) is in `buf` from `start` on:
/// append the MAC member, the closing brace and a newline. Returns the MAC.
pub(crate) fn seal_line(key: &AuditKey, prev: &Mac, buf: &mut Vec<u8>, start: usize) -> Mac {
    let mac = key.mac(prev, buf.get(start..).unwrap_or(&[]));
    buf.extend_from_slice(MAC_MEMBER);
    buf.extend_from_slice(hex(&mac).as_bytes());
    buf.extend_from_slice(b"\"}\n");
    mac
}

/// The kind of a chain record; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// The first record of a chain.
    Start,
    /// The writer restarted and continues the chain in the same file.
    Resume,
    /// One HTTP request.
    Request,
    /// A detector fired.
    Security,
    /// What response-side layers learned from a request's body, after its `request` record.
    Completion,
    /// A periodic signed checkpoint.
    Checkpoint,
    /// The last record of a file that was rotated.
    Rotate,
    /// The first record of a file after a rotation.
    Link,
    /// The first record of a file after a crash left a torn line.
    Restart,
    /// The writer shut down cleanly.
    Close,
}

impl RecordKind {
    /// The `kind` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Start => "start",
            RecordKind::Resume => "resume",
            RecordKind::Request => "request",
            RecordKind::Security => "security",
            RecordKind::Completion => "completion",
            RecordKind::Checkpoint => "checkpoint",
            RecordKind::Rotate => "rotate",
            RecordKind::Link => "link",
            RecordKind::Restart => "restart",
            RecordKind::Close => "close",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "start" => RecordKind::Start,
            "resume" => RecordKind::Resume,
            "request" => RecordKind::Request,
            "security" => RecordKind::Security,
            "completion" => RecordKind::Completion,
            "checkpoint" => RecordKind::Checkpoint,
            "rotate" => RecordKind::Rotate,
            "link" => RecordKind::Link,
            "restart" => RecordKind::Restart,
            "close" => RecordKind::Close,
            _ => return None,
        })
    }

    /// Whether records of this kind may only open a file (`start`, `link`, `restart`).
    pub fn opens_file(self) -> bool {
        matches!(
            self,
            RecordKind::Start | RecordKind::Link | RecordKind::Restart
        )
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line is not a chain record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// Longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// The line does not end with `,"mac":"<64 hex digits>"}`.
    NoMac,
    /// The body does not start with `{"seq":`.
    NoSeq,
    /// The MAC suffix is there but the JSON is not a valid record (the text says why).
    Json(String),
    /// An unknown `kind`.
    UnknownKind(String),
    /// A member has the wrong form (the text names it).
    Field(&'static str),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(f, "longer than {MAX_LINE_BYTES} bytes"),
            LineError::NoMac => f.write_str("does not end with a \"mac\" member"),
            LineError::NoSeq => f.write_str("does not start with a \"seq\" member"),
            LineError::Json(e) => write!(f, "not a valid record: {e}"),
            LineError::UnknownKind(k) => write!(f, "unknown record kind {k:?}"),
            LineError::Field(name) => write!(f, "member {name:?} is malformed"),
        }
    }
}

impl std::error::Error for LineError {}

/// The MAC-relevant split of a line: its body and the MAC it claims. The first step of
/// [`parse_line`]; enough to check a MAC even when the JSON is damaged.
///
/// # Errors
/// [`LineError::TooLong`], [`LineError::NoMac`], [`LineError::NoSeq`].
pub fn split_line(line: &[u8]) -> Result<(&[u8], Mac), LineError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong);
    }
    let Some(mac_at) = line.len().checked_sub(SUFFIX_LEN) else {
        return Err(LineError::NoMac);
    };
    let (body, suffix) = line.split_at(mac_at);
    let (member, rest) = suffix.split_at(MAC_MEMBER.len());
    if member != MAC_MEMBER || !rest.ends_with(b"\"}") {
        return Err(LineError::NoMac);
    }
    let mac = rest.get(..64).and_then(unhex_mac).ok_or(LineError::NoMac)?;
    if !body.starts_with(b"{\"seq\":") {
        return Err(LineError::NoSeq);
    }
    Ok((body, mac))
}

/// What the chain needs from one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    /// The bytes the MAC covers.
    pub body: &'a [u8],
    /// The MAC the line carries.
    pub mac: Mac,
    /// The sequence number.
    pub seq: u64,
    /// The record kind.
    pub kind: RecordKind,
    /// When the record was written.
    pub timestamp: SystemTime,
    /// `start`: the key identifier.
    pub key_id: Option<String>,
    /// `start`, `resume`, `link`, `restart`: the checkpoint interval in seconds.
    pub checkpoint_interval_secs: Option<u64>,
    /// `link`, `restart`: the name of the previous file.
    pub prev_file: Option<String>,
    /// `link`, `restart`: the last sequence number of the previous file.
    pub prev_seq: Option<u64>,
    /// `link`, `restart`: the last MAC of the previous file.
    pub prev_mac: Option<Mac>,
    /// `checkpoint`, `close`: the MAC of the record before it.
    pub head: Option<Mac>,
    /// `restart` (and `start` after a torn tail): the byte offset of the torn line in the
    /// previous file.
    pub torn_offset: Option<u64>,
    /// `rotate`: the name the file is renamed to.
    pub file: Option<String>,
    /// `start`: why a new chain began, when it did not start from nothing.
    pub reason: Option<String>,
    /// `resume`, `restart`, `start`: how the writer's previous run ended, as its head file
    /// says (`clean_close`, `unclean_stop`, `missing_tail`, `head_mismatch`, `head_missing`,
    /// `head_invalid`).
    pub previous: Option<String>,
    /// With `previous`: the first and last sequence numbers lost.
    pub lost: Option<(u64, u64)>,
    /// Signed records: the first sequence number of the segment they sign.
    pub seg_from: Option<u64>,
    /// Signed records: SHA-256 over the segment's lines.
    pub seg_hash: Option<Mac>,
    /// Signed records: the Ed25519 signature, base64 (see [`crate::signing`]).
    pub sig: Option<String>,
    /// `start`, `resume`, `restart`: the identifier of the key that signs this run's records.
    pub sign_key: Option<String>,
}

#[derive(Deserialize)]
struct RawLine<'a> {
    seq: u64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow, default)]
    key_id: Option<Cow<'a, str>>,
    #[serde(default)]
    checkpoint_interval_secs: Option<u64>,
    #[serde(borrow, default)]
    prev_file: Option<Cow<'a, str>>,
    #[serde(default)]
    prev_seq: Option<u64>,
    #[serde(borrow, default)]
    prev_mac: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    head: Option<Cow<'a, str>>,
    #[serde(default)]
    torn_offset: Option<u64>,
    #[serde(borrow, default)]
    file: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    previous: Option<Cow<'a, str>>,
    #[serde(default)]
    lost_first: Option<u64>,
    #[serde(default)]
    lost_last: Option<u64>,
    #[serde(default)]
    seg_from: Option<u64>,
    #[serde(borrow, default)]
    seg_hash: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sig: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sign_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[allow(dead_code)]
    mac: Cow<'a, str>,
}

/// Parse one line (without its newline) of an audit file.
///
/// Only the members the chain needs are read; the others are skipped. Never panics, whatever
/// the input.
///
/// # Errors
/// A [`LineError`] saying what is wrong.
pub fn parse_line(line: &[u8]) -> Result<ParsedLine<'_>, LineError> {
    let (body, mac) = split_line(line)?;
    let raw: RawLine<'_> =
        serde_json::from_slice(line).map_err(|e| LineError::Json(e.to_string()))?;
    let kind = RecordKind::parse(&raw.kind)
        .ok_or_else(|| LineError::UnknownKind(raw.kind.chars().take(32).collect()))?;
    let timestamp =
        humantime::parse_rfc3339(&raw.timestamp).map_err(|_| LineError::Field("timestamp"))?;
    let mac_field = |v: Option<Cow<'_, str>>, name| match v {
        None => Ok(None),
        Some(s) => unhex_mac(s.as_bytes())
            .map(Some)
            .ok_or(LineError::Field(name)),
    };
    Ok(ParsedLine {
        body,
        mac,
        seq: raw.seq,
        kind,
        timestamp,
        key_id: raw.key_id.map(Cow::into_owned),
        checkpoint_interval_secs: raw.checkpoint_interval_secs,
        prev_file: raw.prev_file.map(Cow::into_owned),
        prev_seq: raw.prev_seq,
        prev_mac: mac_field(raw.prev_mac, "prev_mac")?,
        head: mac_field(raw.head, "head")?,
        torn_offset: raw.torn_offset,
        file: raw.file.map(Cow::into_owned),
        reason: raw.reason.map(Cow::into_owned),
        previous: raw.previous.map(Cow::into_owned),
        lost: raw.lost_first.zip(raw.lost_last),
        seg_from: raw.seg_from,
        seg_hash: mac_field(raw.seg_hash, "seg_hash")?,
        sig: raw.sig.map(Cow::into_owned),
        sign_key: raw.sign_key.map(Cow::into_owned),
    })
}

/// Format a time as RFC 3339 UTC with milliseconds, clamped to 1970..=9999.
pub(crate) fn rfc3339(t: SystemTime) -> impl fmt::Display {
    let max = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    let t = t.clamp(SystemTime::UNIX_EPOCH, max);
    humantime::format_rfc3339_millis(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn key_length_is_checked_and_named() {
        let e = AuditKey::from_bytes(b"short").unwrap_err();
        assert_eq!(e.setting(), "hmac_key");
        assert!(e.to_string().contains("at least 32 bytes (got 5)"));
        assert!(!format!("{:?}", key()).contains("0123"));
    }

    #[test]
    fn sealed_lines_parse_and_verify() {
        let k = key();
        let mut buf = b"{\"seq\":7,\"kind\":\"checkpoint\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"head\":\""
            .to_vec();
        buf.extend_from_slice(hex(&[1u8; 32]).as_bytes());
        buf.push(b'"');
        let mac = seal_line(&k, &GENESIS, &mut buf, 0);
        assert_eq!(buf.last(), Some(&b'\n'));
        let line = &buf[..buf.len() - 1];
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.seq, 7);
        assert_eq!(parsed.kind, RecordKind::Checkpoint);
        assert_eq!(parsed.mac, mac);
        assert_eq!(parsed.head, Some([1u8; 32]));
        assert_eq!(k.mac(&GENESIS, parsed.body), mac);
        assert_eq!(
            parsed.timestamp,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600)
        );
        // the MAC depends on the previous MAC
        assert_ne!(k.mac(&[9; 32], parsed.body), mac);
    }

    #[test]
    fn broken_lines_say_why() {
        assert_eq!(parse_line(b""), Err(LineError::NoMac));
        assert_eq!(parse_line(b"{\"seq\":1}"), Err(LineError::NoMac));
        let mut line = b"{\"kind\":\"close\"".to_vec();
        line.extend_from_slice(MAC_MEMBER);
        line.extend_from_slice(&[b'a'; 64]);
        line.extend_from_slice(b"\"}");
        assert_eq!(parse_line(&line), Err(LineError::NoSeq));
        let mut line =
            b"{\"seq\":1,\"kind\":\"nope\",\"timestamp\":\"2026-01-01T00:00:00Z\"".to_vec();
        line.extend_from_slice(MAC_MEMBER);
        line.extend_from_slice(&[b'a'; 64]);
        line.extend_from_slice(b"\"}");
        assert_eq!(
            parse_line(&line),
            Err(LineError::UnknownKind("nope".into()))
        );
        let n = line.len();
        line[n - 3] = b'G';
        assert_eq!(parse_line(&line), Err(LineError::NoMac));
    }

    #[test]
    fn times_are_clamped() {
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(5)).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        let far =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(u32::MAX) * 100);
        assert!(rfc3339(far).to_string().starts_with("9999-12-31T23:59:59"));
    }
}
