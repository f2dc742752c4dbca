//! Rotation: API keys older than `KEY_MAX_AGE` or expiring within 7 days, and an HS256 secret
//! older than `JWT_SECRET_MAX_AGE` (dated by `JWT_SECRET_CREATED_AT`, else by its
//! `JWT_SECRET_FILE`'s modification time). Ages are taken at
//! [`RuntimeEnvironment::current_time`], so tests give the time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Checker;
use crate::input::{ApiKeyDates, KEY_EXPIRY_WARNING};
use crate::rules;
use crate::runtime::RuntimeEnvironment;

const DAY: u64 = 86_400;

impl Checker<'_> {
    pub(super) fn key_age(&mut self, runtime: &RuntimeEnvironment) {
        let now = runtime.current_time();
        let i = self.input;
        for key in &i.api_key_dates {
            if !is_usable(key, now) {
                continue;
            }
            self.api_key_age(key, now);
            self.api_key_expiry(key, now);
        }
        self.jwt_secret_age(now);
    }

    fn api_key_age(&mut self, key: &ApiKeyDates, now: SystemTime) {
        let max = self.input.key_max_age;
        let Some(created) = key.created_at else {
            return;
        };
        let Ok(age) = now.duration_since(created) else {
            return;
        };
        if age <= max {
            return;
        }
        let file = self.var("API_KEYS_FILE");
        self.add(
            &rules::API_KEY_OLD,
            format!(
                "the API key {:?} in {file} was created {} ({} ago), more than {} = {} ago: a \
                 key that leaked unnoticed keeps working until it is rotated",
                key.name,
                timestamp(created),
                span(age),
                self.var("KEY_MAX_AGE"),
                span(max),
            ),
            format!(
                "rotate it: `mcp-security keygen --name {}` prints a new key and its entry (with \
                 created_at); add the entry to {file}, move the client to the new key, then \
                 disable or remove the old entry",
                key.name,
            ),
            Some(file),
        );
    }

    fn api_key_expiry(&mut self, key: &ApiKeyDates, now: SystemTime) {
        let Some(left) = key.expires_at.and_then(|at| at.duration_since(now).ok()) else {
            return;
        };
        if left > KEY_EXPIRY_WARNING {
            return;
        }
        let expires = key.expires_at.map(timestamp).unwrap_or_default();
        let file = self.var("API_KEYS_FILE");
        self.add(
            &rules::API_KEY_EXPIRING,
            format!(
                "the API key {:?} in {file} expires {expires} (in {}): its clients are refused \
                 from then on",
                key.name,
                span(left),
            ),
            format!(
                "issue its replacement now: `mcp-security keygen --name {}` prints a new key and \
                 its entry; add the entry to {file} and move the client to it before {expires}",
                key.name,
            ),
            Some(file),
        );
    }

    fn jwt_secret_age(&mut self, now: SystemTime) {
        let i = self.input;
        let Some(secret) = &i.jwt_secret else {
            return;
        };
        let (created, source, setting) = match (i.jwt_secret_created_at, &secret.file) {
            (Some(at), _) => (
                at,
                self.var("JWT_SECRET_CREATED_AT"),
                self.var("JWT_SECRET_CREATED_AT"),
            ),
            (None, Some(file)) => match modified(file) {
                Some(at) => (
                    at,
                    format!("the modification time of {}", file.display()),
                    secret.setting.clone(),
                ),
                None => return,
            },
            (None, None) => return,
        };
        let Ok(age) = now.duration_since(created) else {
            return;
        };
        let max = i.jwt_secret_max_age;
        if age <= max {
            return;
        }
        self.add(
            &rules::JWT_SECRET_OLD,
            format!(
                "the HS256 secret ({}) was created {} (by {source}), {} ago, more than {} = {}: \
                 anyone who learned it can still mint tokens",
                secret.setting,
                timestamp(created),
                span(age),
                self.var("JWT_SECRET_MAX_AGE"),
                span(max),
            ),
            format!(
                "rotate it: put a new secret (`openssl rand -base64 32`, or the key line of \
                 `mcp-security keygen`) first in {}, keep the old one after it until the tokens \
                 it signed have expired, and set {} to the time of the change",
                secret.setting,
                self.var("JWT_SECRET_CREATED_AT"),
            ),
            Some(setting),
        );
    }
}

/// Enabled, and not expired at `now`.
fn is_usable(key: &ApiKeyDates, now: SystemTime) -> bool {
    key.enabled && key.expires_at.is_none_or(|at| at > now)
}

/// The modification time of `path` (following symlinks), if it can be read.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// RFC 3339 in UTC, to the second; times outside the years 1970 to 9999 (which humantime cannot
/// write) as the nearest end of that range.
fn timestamp(at: SystemTime) -> String {
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_seconds(at.clamp(SystemTime::UNIX_EPOCH, last)).to_string()
}

/// `97 days`, `1 day`, `5 hours`, `42s`: whole days from a day on.
fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= DAY {
        plural(secs / DAY, "day")
    } else if secs >= 3600 {
        plural(secs / 3600, "hour")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::input::ApiKeyDates;
    use crate::{CheckInput, Finding, Report, RuntimeEnvironment, SecretInput, Severity, check};
    use mcp_security_core::config::Environment;

    const DAY: Duration = Duration::from_secs(86_400);
    const JWT: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-12-07T00:00:00Z").unwrap()
    }

    fn keys(dates: Vec<ApiKeyDates>) -> CheckInput {
        CheckInput {
            api_keys_file: Some("/etc/mcp/keys.toml".into()),
            api_key_dates: dates,
            resource_url: Some("https://mcp.example.com/mcp".into()),
            ..CheckInput::default()
        }
    }

    fn run(input: &CheckInput) -> Report {
        check(
            input,
            &RuntimeEnvironment::new().euid(Some(1000)).now(now()),
        )
    }

    fn only<'a>(r: &'a Report, id: &str) -> Vec<&'a Finding> {
        r.findings().iter().filter(|f| f.id() == id).collect()
    }

    #[test]
    fn an_old_key_is_a_warning_with_the_rotation_command() {
        let r = run(&keys(vec![
            ApiKeyDates::new("ci-bot", Some(now() - 91 * DAY), None),
            ApiKeyDates::new("fresh", Some(now() - 10 * DAY), None),
            ApiKeyDates::new("legacy", None, None),
        ]));
        let old = only(&r, "MCP-KEY-004");
        assert_eq!(old.len(), 1, "{r}");
        let f = old[0];
        assert_eq!(f.severity(), Severity::Warning);
        assert_eq!(
            f.message(),
            "the API key \"ci-bot\" in MCP_API_KEYS_FILE was created 2026-09-07T00:00:00Z (91 \
             days ago), more than MCP_KEY_MAX_AGE = 90 days ago: a key that leaked unnoticed \
             keeps working until it is rotated"
        );
        assert!(
            f.fix()
                .starts_with("rotate it: `mcp-security keygen --name ci-bot` prints a new key"),
            "{}",
            f.fix()
        );
        assert_eq!(f.setting(), Some("MCP_API_KEYS_FILE"));
        assert!(!r.has_errors(), "a warning, never an error: {r}");
        assert!(only(&r, "MCP-KEY-005").is_empty(), "{r}");
    }

    #[test]
    fn a_young_key_has_no_finding_and_the_period_is_a_setting() {
        let mut input = keys(vec![ApiKeyDates::new(
            "fresh",
            Some(now() - 10 * DAY),
            Some(now() + 300 * DAY),
        )]);
        let r = run(&input);
        assert!(
            only(&r, "MCP-KEY-004").is_empty() && only(&r, "MCP-KEY-005").is_empty(),
            "{r}"
        );
        // Exactly the period is not over it; a shorter period is.
        input.key_max_age = 10 * DAY;
        assert!(only(&run(&input), "MCP-KEY-004").is_empty());
        input.key_max_age = 7 * DAY;
        input.prefix = "IQ".into();
        let r = run(&input);
        let f = only(&r, "MCP-KEY-004");
        assert_eq!(f.len(), 1, "{r}");
        assert!(
            f[0].message()
                .contains("more than IQ_KEY_MAX_AGE = 7 days ago"),
            "{}",
            f[0].message()
        );
        assert_eq!(f[0].setting(), Some("IQ_API_KEYS_FILE"));
    }

    #[test]
    fn a_key_expiring_within_a_week_is_a_warning() {
        let r = run(&keys(vec![
            ApiKeyDates::new("soon", Some(now() - 10 * DAY), Some(now() + 3 * DAY)),
            ApiKeyDates::new("later", None, Some(now() + 8 * DAY)),
            // Already expired, or disabled: no longer accepted, nothing to rotate.
            ApiKeyDates::new("gone", Some(now() - 400 * DAY), Some(now() - DAY)),
            ApiKeyDates {
                enabled: false,
                ..ApiKeyDates::new("revoked", Some(now() - 400 * DAY), Some(now() + DAY))
            },
        ]));
        let soon = only(&r, "MCP-KEY-005");
        assert_eq!(soon.len(), 1, "{r}");
        let f = soon[0];
        assert_eq!(f.severity(), Severity::Warning);
        assert_eq!(
            f.message(),
            "the API key \"soon\" in MCP_API_KEYS_FILE expires 2026-12-10T00:00:00Z (in 3 days): \
             its clients are refused from then on"
        );
        assert!(
            f.fix()
                .starts_with("issue its replacement now: `mcp-security keygen --name soon`"),
            "{}",
            f.fix()
        );
        assert!(only(&r, "MCP-KEY-004").is_empty(), "{r}");
        // In development too (the clients break there as well); the age rule is production's.
        let mut dev = keys(vec![ApiKeyDates::new(
            "soon",
            Some(now() - 100 * DAY),
            Some(now() + 3 * DAY),
        )]);
        dev.environment = Environment::Development;
        let r = run(&dev);
        assert_eq!(only(&r, "MCP-KEY-005").len(), 1, "{r}");
        assert!(only(&r, "MCP-KEY-004").is_empty(), "{r}");
    }

    #[test]
    fn an_old_jwt_secret_by_its_creation_setting() {
        let mut input = CheckInput {
            jwt_secret: Some(SecretInput::list("MCP_JWT_SECRET", JWT)),
            jwt_secret_created_at: Some(now() - 31 * DAY),
            ..CheckInput::default()
        };
        let r = run(&input);
        let old = only(&r, "MCP-JWT-007");
        assert_eq!(old.len(), 1, "{r}");
        let f = old[0];
        assert_eq!(f.severity(), Severity::Warning);
        assert_eq!(
            f.message(),
            "the HS256 secret (MCP_JWT_SECRET) was created 2026-11-06T00:00:00Z (by \
             MCP_JWT_SECRET_CREATED_AT), 31 days ago, more than MCP_JWT_SECRET_MAX_AGE = 30 \
             days: anyone who learned it can still mint tokens"
        );
        assert!(f.fix().contains("`mcp-security keygen`"), "{}", f.fix());
        assert!(f.fix().contains("first in MCP_JWT_SECRET,"), "{}", f.fix());
        assert_eq!(f.setting(), Some("MCP_JWT_SECRET_CREATED_AT"));
        // Younger than the period: nothing; a longer period: nothing.
        input.jwt_secret_created_at = Some(now() - 29 * DAY);
        assert!(only(&run(&input), "MCP-JWT-007").is_empty());
        input.jwt_secret_created_at = Some(now() - 31 * DAY);
        input.jwt_secret_max_age = 60 * DAY;
        assert!(only(&run(&input), "MCP-JWT-007").is_empty());
        // Without a creation time or a file there is nothing to date it by.
        input.jwt_secret_created_at = None;
        input.jwt_secret_max_age = DAY;
        assert!(only(&run(&input), "MCP-JWT-007").is_empty());
    }

    #[test]
    fn an_old_jwt_secret_file_by_its_modification_time() {
        let dir =
            std::env::temp_dir().join(format!("mcp-prodcheck-jwt-age-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwt_secret");
        std::fs::write(&path, JWT).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(now() - 45 * DAY).unwrap();
        drop(file);
        let mut input = CheckInput {
            jwt_secret: Some(SecretInput::file(
                "MCP_JWT_SECRET_FILE",
                &path,
                Ok(JWT),
                true,
            )),
            ..CheckInput::default()
        };
        let r = run(&input);
        let old = only(&r, "MCP-JWT-007");
        assert_eq!(old.len(), 1, "{r}");
        let f = old[0];
        assert_eq!(f.severity(), Severity::Warning);
        assert!(
            f.message().starts_with(&format!(
                "the HS256 secret (MCP_JWT_SECRET_FILE) was created 2026-10-23T00:00:00Z (by the \
                 modification time of {}), 45 days ago",
                path.display()
            )),
            "{}",
            f.message()
        );
        assert!(
            f.fix().contains("first in MCP_JWT_SECRET_FILE,"),
            "{}",
            f.fix()
        );
        assert_eq!(f.setting(), Some("MCP_JWT_SECRET_FILE"));
        // The setting wins over the file's time.
        input.jwt_secret_created_at = Some(now() - DAY);
        assert!(only(&run(&input), "MCP-JWT-007").is_empty());
        // A file that is not mounted here cannot be dated.
        input.jwt_secret_created_at = None;
        input.jwt_secret = Some(SecretInput::file(
            "MCP_JWT_SECRET_FILE",
            dir.join("missing"),
            Err("No such file or directory".into()),
            true,
        ));
        assert!(only(&run(&input), "MCP-JWT-007").is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn times_humantime_cannot_write_do_not_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(super::timestamp(far), "9999-12-31T23:59:59Z");
        let before = SystemTime::UNIX_EPOCH - DAY;
        assert_eq!(super::timestamp(before), "1970-01-01T00:00:00Z");
        let r = run(&keys(vec![ApiKeyDates::new(
            "odd",
            Some(before),
            Some(far),
        )]));
        assert_eq!(only(&r, "MCP-KEY-004").len(), 1, "{r}");
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(super::span(DAY), "1 day");
        assert_eq!(super::span(91 * DAY + Duration::from_secs(7)), "91 days");
        assert_eq!(super::span(Duration::from_secs(7200)), "2 hours");
        assert_eq!(super::span(Duration::from_secs(3600)), "1 hour");
        assert_eq!(super::span(Duration::from_secs(42)), "42s");
    }
}
