//! How old the oldest credential is: the gauge `mcp_credential_oldest_age_seconds`, with the
//! label `kind` = `api_key` (the earliest `created_at` among the usable keys of an
//! [`ApiKeyStore`], read at each call so reloads count) or `jwt_secret` (when the HS256 secret
//! was made: `MCP_JWT_SECRET_CREATED_AT`, or its `*_FILE`'s modification time).
//!
//! The value is computed when [`CredentialAges::record`] runs, so call it right before the
//! metrics are rendered (in the `/metrics` handler): the gauge then grows between rotations
//! instead of freezing at the start-up value. A kind without a dated credential is not set.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use mcp_auth::credential_age::{CredentialAges, CredentialKind};
//!
//! let made = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
//! let ages = CredentialAges::new().jwt_secret_created_at(made);
//! let now = made + Duration::from_secs(31 * 86_400);
//! assert_eq!(ages.oldest(now), [(CredentialKind::JwtSecret, Duration::from_secs(31 * 86_400))]);
//! // In the /metrics handler, before rendering:
//! ages.record(SystemTime::now());
//! ```

use std::time::{Duration, SystemTime};

use crate::api_key::ApiKeyStore;

/// `mcp_credential_oldest_age_seconds`.
pub const CREDENTIAL_OLDEST_AGE_SECONDS: &str = "mcp_credential_oldest_age_seconds";

/// What kind of credential an age is about: the gauge's `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// An API key from a key file (`created_at`).
    ApiKey,
    /// The HS256 JWT secret.
    JwtSecret,
}

impl CredentialKind {
    /// `api_key` or `jwt_secret`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::JwtSecret => "jwt_secret",
        }
    }
}

/// The credentials whose age the gauge shows; see the [module docs](self). Cheap to clone (the
/// store is an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct CredentialAges {
    api_keys: Option<ApiKeyStore>,
    jwt_secret_created_at: Option<SystemTime>,
}

impl CredentialAges {
    /// No credential yet: [`record`](Self::record) sets nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Date API keys by the `created_at` of this store's usable entries (as loaded at each
    /// call: a reload that drops the oldest key lowers the gauge).
    #[must_use]
    pub fn api_keys(mut self, store: ApiKeyStore) -> Self {
        self.api_keys = Some(store);
        self
    }

    /// When the HS256 secret was made.
    #[must_use]
    pub fn jwt_secret_created_at(mut self, at: SystemTime) -> Self {
        self.jwt_secret_created_at = Some(at);
        self
    }

    /// Whether any credential can be dated now (the store may hold no dated key).
    pub fn is_empty(&self, now: SystemTime) -> bool {
        self.oldest(now).is_empty()
    }

    /// The age of the oldest dated credential of each kind at `now`, API keys first; a creation
    /// time in the future counts as age zero.
    pub fn oldest(&self, now: SystemTime) -> Vec<(CredentialKind, Duration)> {
        let age = |at: SystemTime| now.duration_since(at).unwrap_or(Duration::ZERO);
        let keys = self
            .api_keys
            .as_ref()
            .and_then(|store| store.oldest_created_at(now))
            .map(|at| (CredentialKind::ApiKey, age(at)));
        let secret = self
            .jwt_secret_created_at
            .map(|at| (CredentialKind::JwtSecret, age(at)));
        keys.into_iter().chain(secret).collect()
    }

    /// Set `mcp_credential_oldest_age_seconds{kind}` for each kind [`oldest`](Self::oldest)
    /// knows, through the installed `metrics` recorder.
    pub fn record(&self, now: SystemTime) {
        for (kind, age) in self.oldest(now) {
            metrics::gauge!(CREDENTIAL_OLDEST_AGE_SECONDS, "kind" => kind.as_str())
                .set(age.as_secs_f64());
        }
    }

    /// Register the gauge's help text and unit with the installed recorder.
    pub fn describe() {
        metrics::describe_gauge!(
            CREDENTIAL_OLDEST_AGE_SECONDS,
            metrics::Unit::Seconds,
            "Age of the oldest API key (created_at) or HS256 secret in use, by kind"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key::KeyHasher;
    use crate::api_key::hash_line;
    use metrics_exporter_prometheus::PrometheusBuilder;

    const DAY: u64 = 86_400;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn store(name: &str, entries: &str) -> (ApiKeyStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "mcp-auth-credential-age-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(&path, entries).unwrap();
        (ApiKeyStore::builder().file(&path).build().unwrap(), dir)
    }

    fn entry(name: &str, created: &str, extra: &str) -> String {
        format!(
            "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\ncreated_at = \"{created}\"\n{extra}\n",
            hash_line(&KeyHasher::Sha256, &format!("{name}-key"))
        )
    }

    /// The exposition of the gauge for `kind`, as Prometheus would scrape it.
    fn scraped(ages: &CredentialAges, now: SystemTime) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            CredentialAges::describe();
            ages.record(now);
        });
        handle.render()
    }

    #[test]
    fn the_gauge_shows_the_oldest_usable_key_and_the_secret_and_grows() {
        let keys = [
            entry("new", "2026-12-01T00:00:00Z", ""),
            entry("old", "2026-09-01T00:00:00Z", ""),
            // Older, but revoked or expired: not in use.
            entry("revoked", "2025-01-01T00:00:00Z", "enabled = false"),
            entry(
                "expired",
                "2025-02-01T00:00:00Z",
                "expires_at = \"2026-12-06T00:00:00Z\"",
            ),
            // Written before created_at existed: not dated.
            format!(
                "[[keys]]\nname = \"legacy\"\nhash = \"{}\"\n",
                hash_line(&KeyHasher::Sha256, "legacy-key")
            ),
        ]
        .concat();
        let (store, dir) = store("gauge", &keys);
        let ages = CredentialAges::new()
            .api_keys(store)
            .jwt_secret_created_at(at("2026-11-07T00:00:00Z"));
        let now = at("2026-12-07T00:00:00Z");
        assert_eq!(
            ages.oldest(now),
            [
                (CredentialKind::ApiKey, Duration::from_secs(97 * DAY)),
                (CredentialKind::JwtSecret, Duration::from_secs(30 * DAY)),
            ]
        );
        let text = scraped(&ages, now);
        assert!(
            text.contains("# TYPE mcp_credential_oldest_age_seconds gauge"),
            "{text}"
        );
        assert!(
            text.contains("mcp_credential_oldest_age_seconds{kind=\"api_key\"} 8380800\n"),
            "{text}"
        );
        assert!(
            text.contains("mcp_credential_oldest_age_seconds{kind=\"jwt_secret\"} 2592000\n"),
            "{text}"
        );
        // Computed when recorded: an hour later it is an hour older.
        let later = scraped(&ages, now + Duration::from_secs(3600));
        assert!(
            later.contains("mcp_credential_oldest_age_seconds{kind=\"api_key\"} 8384400\n"),
            "{later}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nothing_dated_sets_nothing() {
        let (store, dir) = store(
            "undated",
            &format!(
                "[[keys]]\nname = \"legacy\"\nhash = \"{}\"\n",
                hash_line(&KeyHasher::Sha256, "legacy-key")
            ),
        );
        let ages = CredentialAges::new().api_keys(store);
        let now = at("2026-12-07T00:00:00Z");
        assert!(ages.is_empty(now));
        let text = scraped(&ages, now);
        assert!(
            !text.contains("mcp_credential_oldest_age_seconds{"),
            "{text}"
        );
        // A creation time in the future is age zero, not a panic.
        let ahead = CredentialAges::new().jwt_secret_created_at(now + Duration::from_secs(60));
        assert_eq!(
            ahead.oldest(now),
            [(CredentialKind::JwtSecret, Duration::ZERO)]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
