//! Key files: reading one within a bound, parsing its TOML or JSON entries, and merging them
//! with the keys given in code. Errors name the file and the entry and never hold key material.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use mcp_security_core::config::ConfigError;
use mcp_security_core::{Principal, PrincipalKind, Scopes};
use serde::Deserialize;

use super::digest::{HashKind, HmacSha256, is_visible_ascii, parse_hash};
use super::{Entry, FILE_SETTING, MAX_FILE_LEN, MAX_NAME_LEN};

/// The key file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyFile {
    keys: Vec<FileEntry>,
}

/// One `[[keys]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEntry {
    name: String,
    hash: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// A string in either format, or a bare TOML datetime.
    #[serde(default)]
    expires_at: Option<toml::Value>,
    /// When the key was made (`mcp-security keygen` writes it); same forms as `expires_at`.
    #[serde(default)]
    created_at: Option<toml::Value>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

pub(super) fn enabled_by_default() -> bool {
    true
}

pub(super) fn file_error(path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(FILE_SETTING, reason).with_value(path.display().to_string())
}

/// Read the key file, refusing files over [`MAX_FILE_LEN`] bytes.
pub(super) fn read_key_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let file = std::fs::File::open(path)
        .map_err(|e| file_error(path, format!("cannot open the key file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, format!("cannot read the key file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(file_error(
            path,
            format!("the key file is larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    Ok(bytes)
}

pub(super) enum Format {
    Toml,
    Json,
}

/// Parse and validate a key file's entries (not yet checked against the keys given in code).
/// With `check_pepper` false (reading only the dates), `hmac-sha256` entries are accepted
/// without a pepper.
pub(super) fn parse_key_file(
    path: &Path,
    bytes: &[u8],
    hmac: Option<&HmacSha256>,
    check_pepper: bool,
) -> Result<Vec<Entry>, ConfigError> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        _ => {
            return Err(file_error(
                path,
                "expected a .toml or .json key file (by its extension)",
            ));
        }
    };
    let parsed: KeyFile = match format {
        Format::Toml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| file_error(path, "the key file is not valid UTF-8"))?;
            // The error's `Display` quotes the offending line, which may hold a key: use only
            // the message and the position.
            toml::from_str(text).map_err(|e| {
                let at = e
                    .span()
                    .map(|span| position(bytes, span.start))
                    .map(|(line, column)| format!(" at line {line}, column {column}"))
                    .unwrap_or_default();
                file_error(
                    path,
                    format!("invalid TOML{at}: {}", redact_quoted(e.message().trim())),
                )
            })?
        }
        Format::Json => serde_json::from_slice(bytes).map_err(|e| {
            file_error(
                path,
                format!("invalid JSON: {}", redact_quoted(&e.to_string())),
            )
        })?,
    };

    let mut entries: Vec<Entry> = Vec::with_capacity(parsed.keys.len());
    for (i, raw) in parsed.keys.into_iter().enumerate() {
        let refuse =
            |reason: &str| file_error(path, format!("keys[{i}] ({:?}): {reason}", raw.name));
        check_name(&raw.name).map_err(|reason| refuse(&reason))?;
        let (kind, digest) = parse_hash(&raw.hash).ok_or_else(|| {
            refuse(
                "hash must be \"sha256:<64 hex digits>\" or \"hmac-sha256:<64 hex digits>\" \
                 (from `mcp-security hash-key`), never the key itself",
            )
        })?;
        if check_pepper && kind == HashKind::HmacSha256 && hmac.is_none() {
            return Err(refuse(
                "an hmac-sha256 hash needs the server's pepper, and none is configured",
            ));
        }
        if raw
            .scopes
            .iter()
            .any(|s| s.is_empty() || !is_visible_ascii(s))
        {
            return Err(refuse(
                "scopes must be non-empty and without whitespace or control characters",
            ));
        }
        let expires_at = match &raw.expires_at {
            None => None,
            Some(value) => Some(parse_expiry(value).ok_or_else(|| {
                refuse(
                    "expires_at must be an RFC 3339 timestamp in UTC, such as \
                     \"2027-01-01T00:00:00Z\"",
                )
            })?),
        };
        let created_at = match &raw.created_at {
            None => None,
            Some(value) => Some(parse_expiry(value).ok_or_else(|| {
                refuse(
                    "created_at must be an RFC 3339 timestamp in UTC, such as \
                     \"2026-12-07T00:00:00Z\" (`mcp-security keygen` writes it)",
                )
            })?),
        };
        if let (Some(created), Some(expires)) = (created_at, expires_at)
            && created >= expires
        {
            return Err(refuse("created_at is not before expires_at"));
        }
        if let Some(j) = entries.iter().position(|e| e.principal.id() == raw.name) {
            return Err(refuse(&format!("duplicate name (also keys[{j}])")));
        }
        if let Some(j) = entries
            .iter()
            .position(|e| e.kind == kind && e.digest == digest)
        {
            return Err(refuse(&format!("the same hash as keys[{j}]")));
        }
        let mut principal = Principal::builder(raw.name.as_str(), PrincipalKind::ApiKey)
            .scope_set(Scopes::new(&raw.scopes))
            .single_credential();
        if let Some(at) = expires_at {
            principal = principal.expires_at(at);
        }
        entries.push(Entry {
            principal: principal.build(),
            enabled: raw.enabled,
            created_at,
            kind,
            digest,
        });
    }
    Ok(entries)
}

/// The keys given in code followed by the file's, refusing names or keys given in both.
pub(super) fn combine(
    fixed: &[Entry],
    file: Vec<Entry>,
    path: &Path,
) -> Result<Vec<Entry>, ConfigError> {
    for (i, entry) in file.iter().enumerate() {
        let name = entry.principal.id();
        if fixed.iter().any(|f| f.principal.id() == name) {
            return Err(file_error(
                path,
                format!("keys[{i}] ({name:?}): duplicate name (also a key given in code)"),
            ));
        }
        if let Some(f) = fixed
            .iter()
            .find(|f| f.kind == entry.kind && f.digest == entry.digest)
        {
            return Err(file_error(
                path,
                format!(
                    "keys[{i}] ({name:?}): the same key as {:?}, given in code",
                    f.principal.id()
                ),
            ));
        }
    }
    let mut entries = Vec::with_capacity(fixed.len() + file.len());
    entries.extend_from_slice(fixed);
    entries.extend(file);
    Ok(entries)
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("the name must be 1 to {MAX_NAME_LEN} bytes"));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err("the name has surrounding whitespace or control characters".into());
    }
    Ok(())
}

/// An expiry written as an RFC 3339 string or a bare TOML datetime, in UTC.
pub(super) fn parse_expiry(value: &toml::Value) -> Option<SystemTime> {
    match value {
        toml::Value::String(s) => parse_time(s),
        toml::Value::Datetime(dt) => parse_time(&dt.to_string()),
        _ => None,
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|+00:00]`, surrounding whitespace ignored.
pub(super) fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    // `parse_rfc3339_weak` ignores some offsets and trailing text; accept only
    // `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|+00:00]`.
    let tail = text.get(19..)?;
    let tail = match tail.strip_prefix('.') {
        Some(rest) => rest.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => tail,
    };
    if !matches!(tail, "" | "Z" | "z" | "+00:00") {
        return None;
    }
    let normalised = text.replacen('z', "Z", 1);
    humantime::parse_rfc3339_weak(&normalised).ok()
}

/// 1-based line and column of byte `offset`.
pub(super) fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Replace the contents of every double-quoted string in a parser message with `…`: serde
/// quotes refused values that way, and a refused value may be a key pasted in the wrong place.
/// Backtick spans (field names, expected tokens such as `` `"` ``) are kept.
pub(super) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    let mut ticked = false;
    let mut escaped = false;
    for c in message.chars() {
        if !quoted {
            out.push(c);
            if c == '`' {
                ticked = !ticked;
            } else if c == '"' && !ticked {
                quoted = true;
            }
        } else if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            out.push_str("…\"");
            quoted = false;
        }
    }
    if quoted {
        out.push('…');
    }
    out
}
