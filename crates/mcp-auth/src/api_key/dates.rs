//! Key dates: when each key was made and when it expires, for rotation checks
//! (`mcp-security check`) and the credential-age gauge. Never a hash or a key.

use std::path::Path;
use std::time::SystemTime;

use mcp_security_core::config::ConfigError;

use super::file::{parse_key_file, parse_time, read_key_file};
use super::{ApiKeyStore, Entry};

/// When one key was made and when it expires, with its name and whether it is enabled; what a
/// rotation check needs, and nothing that could verify the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyDates {
    /// The key's name (its principal id).
    pub name: String,
    /// `created_at` from the key file; `None` for keys given in code and entries without it.
    pub created_at: Option<SystemTime>,
    /// `expires_at`; `None` when the key does not expire.
    pub expires_at: Option<SystemTime>,
    /// `false` when the entry is disabled (revoked).
    pub enabled: bool,
}

impl KeyDates {
    fn of(entry: &Entry) -> Self {
        KeyDates {
            name: entry.principal.id().to_owned(),
            created_at: entry.created_at,
            expires_at: entry.principal.expires_at(),
            enabled: entry.enabled,
        }
    }

    /// Whether the key is accepted at `now`: enabled and not expired.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.enabled && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Read the dates of every entry of a key file, validated as [`ApiKeyStore`] validates it
/// except that `hmac-sha256` entries need no pepper: an offline check (CI) can date the keys
/// without the server's pepper.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_auth::api_key::read_key_dates;
///
/// let dir = std::env::temp_dir().join(format!("key-dates-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("keys.toml");
/// std::fs::write(
///     &path,
///     "[[keys]]\nname = \"ci\"\n\
///      hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
///      created_at = \"2026-01-01T00:00:00Z\"\n",
/// )?;
/// let dates = read_key_dates(&path)?;
/// assert_eq!(dates[0].name, "ci");
/// assert_eq!(dates[0].created_at, Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
/// assert_eq!(dates[0].expires_at, None);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`ApiKeyStoreBuilder::build`](super::ApiKeyStoreBuilder::build) for the file: the
/// setting `api_keys_file`, the file and the entry; a `created_at` that is not an RFC 3339
/// timestamp in UTC, or not before `expires_at`, is an error too.
pub fn read_key_dates(path: &Path) -> Result<Vec<KeyDates>, ConfigError> {
    let bytes = read_key_file(path)?;
    let entries = parse_key_file(path, &bytes, None, false)?;
    Ok(entries.iter().map(KeyDates::of).collect())
}

/// `at` as key files write times: RFC 3339 in UTC, to the second, such as
/// `2026-12-07T00:00:00Z` (what `mcp-security keygen` writes as `created_at`). Times outside
/// the years 1970 to 9999 are written as the nearest end of that range.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_auth::api_key::format_key_time;
///
/// let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600) + Duration::from_millis(900);
/// assert_eq!(format_key_time(at), "2026-01-01T00:00:00Z");
/// ```
pub fn format_key_time(at: SystemTime) -> String {
    // 9999-12-31T23:59:59Z: humantime's last formattable second.
    let last = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    let at = at.clamp(SystemTime::UNIX_EPOCH, last);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Read a time as key files write it ([`format_key_time`]): RFC 3339 in UTC
/// (`2026-12-07T00:00:00Z`; `z`, `+00:00`, a space for the `T`, a fraction of a second and no
/// zone at all are accepted too), or `None`. Other offsets are refused rather than guessed.
///
/// ```
/// use mcp_auth::api_key::{format_key_time, parse_key_time};
///
/// let at = parse_key_time("2026-12-07T00:00:00Z").unwrap();
/// assert_eq!(format_key_time(at), "2026-12-07T00:00:00Z");
/// assert_eq!(parse_key_time("2026-12-07T01:00:00+01:00"), None);
/// assert_eq!(parse_key_time("yesterday"), None);
/// ```
pub fn parse_key_time(text: &str) -> Option<SystemTime> {
    parse_time(text)
}

impl ApiKeyStore {
    /// The dates of every key the store holds now (keys given in code first, without
    /// `created_at`), disabled and expired ones included; a reload changes them.
    pub fn key_dates(&self) -> Vec<KeyDates> {
        self.snapshot().entries.iter().map(KeyDates::of).collect()
    }

    /// The earliest `created_at` among the keys usable at `now` (enabled, not expired), or
    /// `None` when no usable key is dated. The credential-age gauge reads it.
    pub fn oldest_created_at(&self, now: SystemTime) -> Option<SystemTime> {
        self.snapshot()
            .entries
            .iter()
            .filter(|e| e.enabled && e.principal.expires_at().is_none_or(|at| at > now))
            .filter_map(|e| e.created_at)
            .min()
    }
}
