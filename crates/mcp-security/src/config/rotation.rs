//! Rotation: `KEY_MAX_AGE`, `JWT_SECRET_MAX_AGE` and `JWT_SECRET_CREATED_AT`; the key file's
//! dates for the checks (`MCP-KEY-004`, `MCP-KEY-005`, `MCP-JWT-007`); the credentials the
//! gauge `mcp_credential_oldest_age_seconds` dates.

use std::time::SystemTime;

use mcp_auth::ApiKeyStore;
use mcp_auth::api_key::{parse_key_time, read_key_dates};
use mcp_auth::credential_age::CredentialAges;
use mcp_prodcheck::ApiKeyDates;
use mcp_prodcheck::input::{DEFAULT_JWT_SECRET_MAX_AGE, DEFAULT_KEY_MAX_AGE};

use super::*;

/// How old keys and the HS256 secret may get, and when the secret was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RotationSettings {
    key_max_age: Duration,
    jwt_secret_max_age: Duration,
    jwt_secret_created_at: Option<SystemTime>,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            key_max_age: DEFAULT_KEY_MAX_AGE,
            jwt_secret_max_age: DEFAULT_JWT_SECRET_MAX_AGE,
            jwt_secret_created_at: None,
        }
    }
}

impl RotationSettings {
    /// `KEY_MAX_AGE`, `JWT_SECRET_MAX_AGE` (durations such as `90d`, more than zero) and
    /// `JWT_SECRET_CREATED_AT` (RFC 3339 in UTC).
    pub(crate) fn read_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        self.key_max_age = max_age(env, "KEY_MAX_AGE", self.key_max_age)?;
        self.jwt_secret_max_age = max_age(env, "JWT_SECRET_MAX_AGE", self.jwt_secret_max_age)?;
        if let Some(value) = env.string("JWT_SECRET_CREATED_AT")? {
            let at = parse_key_time(&value).ok_or_else(|| {
                ConfigError::new(
                    env.var_name("JWT_SECRET_CREATED_AT"),
                    "expected an RFC 3339 time in UTC, such as 2026-12-07T00:00:00Z",
                )
                .with_value(&value)
            })?;
            self.jwt_secret_created_at = Some(at);
        }
        Ok(())
    }
}

fn max_age(env: &Env, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let age = env.duration(name, default)?;
    if age.is_zero() {
        return Err(
            ConfigError::new(env.var_name(name), "must be more than zero, such as 90d")
                .with_value("0"),
        );
    }
    Ok(age)
}

impl SecurityConfigBuilder {
    /// API keys of the key file whose `created_at` is older than this are reported
    /// (`MCP-KEY-004`, a warning in production); `KEY_MAX_AGE`, default 90 days.
    pub fn key_max_age(mut self, age: Duration) -> Self {
        self.s.rotation.key_max_age = age;
        self
    }

    /// An HS256 secret older than this is reported (`MCP-JWT-007`, a warning in production);
    /// `JWT_SECRET_MAX_AGE`, default 30 days.
    pub fn jwt_secret_max_age(mut self, age: Duration) -> Self {
        self.s.rotation.jwt_secret_max_age = age;
        self
    }

    /// When the HS256 secret was made (`JWT_SECRET_CREATED_AT`); without it, a
    /// `JWT_SECRET_FILE` secret is dated by the file's modification time.
    pub fn jwt_secret_created_at(mut self, at: SystemTime) -> Self {
        self.s.rotation.jwt_secret_created_at = Some(at);
        self
    }
}

impl SecurityConfig {
    /// The dates of the key file's entries (`API_KEYS_FILE`): none without a file, or when it
    /// is not present here (an offline check; the server reads it when it starts).
    ///
    /// # Errors
    /// An entry the server would refuse (a `created_at` that is not RFC 3339 in UTC, say),
    /// naming `API_KEYS_FILE` and the entry.
    pub(crate) fn api_key_dates(&self) -> Result<Vec<ApiKeyDates>, ConfigError> {
        let Some(path) = &self.s.api_keys_file else {
            return Ok(Vec::new());
        };
        if !path.exists() {
            return Ok(Vec::new());
        }
        let dates = read_key_dates(path).map_err(|e| self.s.named(e))?;
        Ok(dates
            .into_iter()
            .map(|d| ApiKeyDates {
                enabled: d.enabled,
                ..ApiKeyDates::new(d.name, d.created_at, d.expires_at)
            })
            .collect())
    }

    /// The rotation part of the checker's input.
    pub(crate) fn rotation_input(&self, i: &mut CheckInput) {
        let r = &self.s.rotation;
        i.api_key_dates = self.api_key_dates().unwrap_or_default();
        i.key_max_age = r.key_max_age;
        i.jwt_secret_max_age = r.jwt_secret_max_age;
        i.jwt_secret_created_at = r.jwt_secret_created_at;
    }

    /// When the HS256 secret was made: `JWT_SECRET_CREATED_AT`, else the modification time of
    /// `JWT_SECRET_FILE`; `None` without a secret or a date.
    pub(crate) fn jwt_secret_created(&self) -> Option<SystemTime> {
        let secret = self.s.jwt_secret.as_ref()?;
        self.s.rotation.jwt_secret_created_at.or_else(|| {
            let file = secret.file.as_ref()?;
            std::fs::metadata(file).ok()?.modified().ok()
        })
    }

    /// The credentials the stack accepts, dated for `mcp_credential_oldest_age_seconds`.
    pub(crate) fn credential_ages(&self, store: Option<&ApiKeyStore>) -> CredentialAges {
        let mut ages = CredentialAges::new();
        if let Some(store) = store {
            ages = ages.api_keys(store.clone());
        }
        if let Some(at) = self.jwt_secret_created() {
            ages = ages.jwt_secret_created_at(at);
        }
        ages
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use mcp_auth::api_key::{KeyHasher, hash_line, parse_key_time};
    use mcp_auth::credential_age::CredentialKind;
    use mcp_prodcheck::RuntimeEnvironment;
    use mcp_security_core::config::Env;

    use crate::SecurityConfig;

    const DAY: Duration = Duration::from_secs(86_400);
    const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
    const JWT: &str = "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=";

    fn now() -> SystemTime {
        parse_key_time("2026-12-07T00:00:00Z").unwrap()
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mcp-security-rotation-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn key_file(dir: &std::path::Path, created: &str) -> String {
        let path = dir.join("keys.toml");
        std::fs::write(
            &path,
            format!(
                "[[keys]]\nname = \"ci-bot\"\nhash = \"{}\"\nscopes = [\"*\"]\n\
                 created_at = {created}\n",
                hash_line(&KeyHasher::Sha256, KEY)
            ),
        )
        .unwrap();
        path.display().to_string()
    }

    fn base<'a>(file: &'a str, extra: &[(&'a str, &'a str)]) -> Env {
        let mut pairs = vec![
            ("IQ_API_KEYS_FILE", file),
            ("IQ_JWT_SECRET", JWT),
            ("IQ_JWT_AUDIENCE", "https://mcp.example.com/mcp"),
            ("IQ_CORS_ORIGINS", "https://app.example.com"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs("IQ", pairs)
    }

    #[test]
    fn the_environment_dates_keys_and_the_secret_for_the_checks() {
        let d = dir("check");
        let file = key_file(&d, "\"2026-09-07T00:00:00Z\"");
        let runtime = RuntimeEnvironment::new().euid(Some(1000)).now(now());
        let env = base(
            &file,
            &[("IQ_JWT_SECRET_CREATED_AT", "2026-10-01T00:00:00Z")],
        );
        let report = SecurityConfig::check_env(&env, None, &runtime);
        let ids = report.ids();
        assert!(ids.contains(&"MCP-KEY-004"), "{report}");
        assert!(ids.contains(&"MCP-JWT-007"), "{report}");
        assert!(!report.has_errors(), "{report}");
        let key = report
            .findings()
            .iter()
            .find(|f| f.id() == "MCP-KEY-004")
            .unwrap();
        assert!(key.message().contains("IQ_KEY_MAX_AGE = 90 days"), "{key}");
        assert_eq!(key.setting(), Some("IQ_API_KEYS_FILE"));
        // Longer periods: nothing to report.
        let env = base(
            &file,
            &[
                ("IQ_JWT_SECRET_CREATED_AT", "2026-10-01T00:00:00Z"),
                ("IQ_KEY_MAX_AGE", "120d"),
                ("IQ_JWT_SECRET_MAX_AGE", "2400h"),
            ],
        );
        let report = SecurityConfig::check_env(&env, None, &runtime);
        assert!(
            !report.ids().contains(&"MCP-KEY-004") && !report.ids().contains(&"MCP-JWT-007"),
            "{report}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_settings_and_entries_name_the_variable() {
        let d = dir("bad");
        let file = key_file(&d, "\"2026-09-07T00:00:00Z\"");
        let runtime = RuntimeEnvironment::new().now(now());
        for (var, value, reason) in [
            (
                "IQ_KEY_MAX_AGE",
                "quarterly",
                "expected a duration such as 30, 30s, 500ms, 5m, 1h or 1d",
            ),
            (
                "IQ_KEY_MAX_AGE",
                "0d",
                "must be more than zero, such as 90d",
            ),
            (
                "IQ_JWT_SECRET_MAX_AGE",
                "-1",
                "expected a duration such as 30, 30s, 500ms, 5m, 1h or 1d",
            ),
            (
                "IQ_JWT_SECRET_CREATED_AT",
                "2026-10-01",
                "expected an RFC 3339 time in UTC, such as 2026-12-07T00:00:00Z",
            ),
        ] {
            let env = base(&file, &[(var, value)]);
            let err = SecurityConfig::builder_from_env(&env).unwrap_err();
            assert_eq!(err.setting(), var);
            assert_eq!(err.reason(), reason, "{var}={value}");
            let report = SecurityConfig::check_env(&env, None, &runtime);
            assert_eq!(report.ids(), ["MCP-CONFIG-001"], "{var}");
            assert_eq!(report.findings()[0].setting(), Some(var));
        }
        // An entry the server would refuse is a configuration error in the check too.
        let file = key_file(&d, "\"last spring\"");
        let report = SecurityConfig::check_env(&base(&file, &[]), None, &runtime);
        assert_eq!(report.ids(), ["MCP-CONFIG-001"], "{report}");
        let f = &report.findings()[0];
        assert_eq!(f.setting(), Some("IQ_API_KEYS_FILE"));
        assert!(
            f.message()
                .contains("keys[0] (\"ci-bot\"): created_at must be"),
            "{}",
            f.message()
        );
        // A key file that is not mounted here is not read.
        let env = base("/run/secrets/not-here.toml", &[]);
        let report = SecurityConfig::check_env(&env, None, &runtime);
        assert!(!report.ids().contains(&"MCP-CONFIG-001"), "{report}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_stack_dates_its_credentials_for_the_gauge() {
        let d = dir("gauge");
        let file = key_file(&d, "2026-09-07T00:00:00Z");
        let secret = d.join("jwt_secret");
        std::fs::write(&secret, JWT).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&secret)
            .unwrap()
            .set_modified(now() - 40 * DAY)
            .unwrap();
        let secret = secret.display().to_string();
        let env = Env::from_pairs(
            "IQ",
            [
                ("IQ_API_KEYS_FILE", file.as_str()),
                ("IQ_JWT_SECRET_FILE", secret.as_str()),
                ("IQ_JWT_AUDIENCE", "https://mcp.example.com/mcp"),
                ("IQ_CORS_ORIGINS", "https://app.example.com"),
            ],
        );
        let config = SecurityConfig::builder_from_env(&env)
            .unwrap()
            .build()
            .unwrap();
        let layer = config
            .layer_with(&RuntimeEnvironment::new().euid(Some(1000)).now(now()))
            .unwrap();
        assert!(
            layer.report().ids().contains(&"MCP-JWT-007"),
            "{}",
            layer.report()
        );
        assert_eq!(
            layer.credential_ages().oldest(now()),
            [
                (CredentialKind::ApiKey, 91 * DAY),
                (CredentialKind::JwtSecret, 40 * DAY),
            ]
        );
        // The setting wins over the file's time.
        let config = SecurityConfig::builder_from_env(&env)
            .unwrap()
            .jwt_secret_created_at(now() - DAY)
            .build()
            .unwrap();
        assert_eq!(config.jwt_secret_created(), Some(now() - DAY));
        std::fs::remove_dir_all(d).unwrap();
    }
}
