//! Configuration helpers: errors that name the setting, and environment lookup with a prefix.
//!
//! [`Env`] reads `PREFIX_NAME` variables with typed parsers whose errors name the variable and,
//! unless it is a secret, the refused value. Secrets come from `PREFIX_NAME` or from the file
//! named by `PREFIX_NAME_FILE` (Docker and Kubernetes secrets), never both.
//!
//! ```
//! use std::time::Duration;
//! use mcp_security_core::config::Env;
//!
//! let env = Env::from_pairs("IQ", [("IQ_RATE_LIMIT_WINDOW", "90s"), ("IQ_URL_AUTH", "yes")]);
//! assert_eq!(env.duration("RATE_LIMIT_WINDOW", Duration::from_secs(60))?, Duration::from_secs(90));
//! assert!(env.bool("URL_AUTH", false)?);
//! assert_eq!(env.usize("MAX_BODY_BYTES", 1 << 20)?, 1 << 20);
//! let err = Env::from_pairs("IQ", [("IQ_DEBUG", "maybe")]).bool("DEBUG", false).unwrap_err();
//! assert_eq!(err.to_string(), "IQ_DEBUG: expected true/false, 1/0, yes/no or on/off (got \"maybe\")");
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// A configuration value that was refused, naming the setting (a builder method such as
/// `McpInspectLayer::max_body_bytes` or an environment variable such as `MCP_MAX_BODY_BYTES`),
/// the offending value when it is not a secret, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: String,
    value: Option<String>,
    reason: String,
}

impl ConfigError {
    /// An error about `setting`, without echoing its value (use this for secrets).
    pub fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            value: None,
            reason: reason.into(),
        }
    }

    /// Attach the refused value to the message. Never call this with a secret.
    #[must_use]
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// The same error about another name for the setting: a builder's `max_body_bytes` becomes
    /// the variable `MCP_MAX_BODY_BYTES` it was read from. Value and reason are kept.
    #[must_use]
    pub fn renamed(mut self, setting: impl Into<String>) -> Self {
        self.setting = setting.into();
        self
    }

    /// The setting or environment variable that was refused.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// The refused value, when it is not a secret.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)?;
        if let Some(value) = &self.value {
            write!(f, " (got {value:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

type Lookup = dyn Fn(&str) -> Option<std::ffi::OsString> + Send + Sync;

/// Where the server runs. The library's default is production: every check is on unless the
/// deployment says it is a development machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Environment {
    /// A production deployment (the default).
    #[default]
    Production,
    /// A developer's machine.
    Development,
}

impl Environment {
    /// Parse `production`/`prod` or `development`/`dev` (any case).
    ///
    /// # Errors
    /// Any other value, naming `setting`.
    pub fn parse(setting: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "development" | "dev" => Ok(Environment::Development),
            _ => Err(
                ConfigError::new(setting, "expected production or development").with_value(value),
            ),
        }
    }

    /// `production` or `development`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Development => "development",
        }
    }
}

/// Typed, prefixed environment lookup. Empty values count as unset.
#[derive(Clone)]
pub struct Env {
    prefix: String,
    lookup: Arc<Lookup>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Read the process environment; `Env::new("MCP")` reads `MCP_API_KEY` for `"API_KEY"`.
    /// An empty prefix reads the names as given.
    pub fn new(prefix: &str) -> Self {
        Self::with_lookup(prefix, |name| std::env::var_os(name))
    }

    /// Read variables through `lookup` (tests, or another source of settings).
    pub fn with_lookup<F>(prefix: &str, lookup: F) -> Self
    where
        F: Fn(&str) -> Option<std::ffi::OsString> + Send + Sync + 'static,
    {
        Self {
            prefix: prefix.trim_end_matches('_').to_owned(),
            lookup: Arc::new(lookup),
        }
    }

    /// Read variables from fixed pairs of full names and values.
    pub fn from_pairs<I, K, V>(prefix: &str, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::with_lookup(prefix, move |name| map.get(name).map(Into::into))
    }

    /// The full variable name for `name`: `MCP_API_KEY`.
    pub fn var_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }

    fn raw(&self, var: &str, secret: bool) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(var) {
            None => Ok(None),
            Some(value) => match value.into_string() {
                Ok(s) if s.is_empty() => Ok(None),
                Ok(s) => Ok(Some(s)),
                Err(bad) => {
                    let err = ConfigError::new(var, "is not valid UTF-8");
                    Err(if secret {
                        err
                    } else {
                        err.with_value(bad.to_string_lossy())
                    })
                }
            },
        }
    }

    /// The deployment environment from `NAME` (`production` when unset).
    ///
    /// # Errors
    /// A value other than production/development.
    pub fn environment(&self, name: &str) -> Result<Environment, ConfigError> {
        let var = self.var_name(name);
        match self.raw(&var, false)? {
            None => Ok(Environment::Production),
            Some(v) => Environment::parse(&var, &v),
        }
    }

    /// A plain string.
    ///
    /// # Errors
    /// When the value is not UTF-8.
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.raw(&self.var_name(name), false)
    }

    /// A secret from `NAME` or from the file named by `NAME_FILE` (trailing newline trimmed).
    ///
    /// # Errors
    /// When both are set, the file cannot be read or is empty, or the value is not UTF-8. The
    /// error never contains the secret.
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        let var = self.var_name(name);
        let file_var = format!("{var}_FILE");
        let direct = self.raw(&var, true)?;
        let file = self.raw(&file_var, false)?;
        match (direct, file) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                var,
                format!("set either it or {file_var}, not both"),
            )),
            (Some(value), None) => Ok(Some(Secret(value))),
            (None, Some(path)) => read_secret_file(&file_var, Path::new(&path)).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
    ///
    /// # Errors
    /// Any other value.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let var = self.var_name(name);
        let Some(value) = self.raw(&var, false)? else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(
                ConfigError::new(var, "expected true/false, 1/0, yes/no or on/off")
                    .with_value(value),
            ),
        }
    }

    /// An unsigned integer.
    ///
    /// # Errors
    /// A value that is not a non-negative integer that fits.
    pub fn u64(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        let var = self.var_name(name);
        match self.raw(&var, false)? {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                ConfigError::new(var, "expected a non-negative integer").with_value(v)
            }),
        }
    }

    /// An unsigned integer that fits in `usize`.
    ///
    /// # Errors
    /// As [`Env::u64`].
    pub fn usize(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        let var = self.var_name(name);
        match self.raw(&var, false)? {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                ConfigError::new(var, "expected a non-negative integer").with_value(v)
            }),
        }
    }

    /// A duration: a number with an optional unit `ms`, `s` (the default), `m`, `h` or `d`,
    /// such as `30`, `500ms`, `5m`.
    ///
    /// # Errors
    /// Any other form, or an overflow.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        let var = self.var_name(name);
        match self.raw(&var, false)? {
            None => Ok(default),
            Some(v) => parse_duration(&v).ok_or_else(|| {
                ConfigError::new(
                    var,
                    "expected a duration such as 30, 30s, 500ms, 5m, 1h or 1d",
                )
                .with_value(v)
            }),
        }
    }

    /// A comma-separated list; entries are trimmed and empty ones dropped. `None` when unset.
    ///
    /// # Errors
    /// When the value is not UTF-8.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        Ok(self.string(name)?.map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }))
    }

    /// A comma-separated list of CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses (a single
    /// host). Empty when unset.
    ///
    /// # Errors
    /// Names the first entry that is neither.
    pub fn cidrs(&self, name: &str) -> Result<Vec<IpNet>, ConfigError> {
        let var = self.var_name(name);
        let entries = self.list(name)?.unwrap_or_default();
        entries
            .iter()
            .map(|entry| {
                parse_cidr(entry).ok_or_else(|| {
                    ConfigError::new(&var, "expected a CIDR such as 10.0.0.0/8 or an IP address")
                        .with_value(entry)
                })
            })
            .collect()
    }
}

/// Parse a CIDR (`10.0.0.0/8`) or a bare IP address (a /32 or /128).
pub fn parse_cidr(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Parse a duration: a number with an optional unit `ms`, `s` (the default), `m`, `h` or `d`.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = |factor: u64| n.checked_mul(factor).map(Duration::from_secs);
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    }
}

fn read_secret_file(var: &str, path: &Path) -> Result<Secret, ConfigError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(var, format!("cannot read the secret file: {e}")).with_value(&shown)
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ConfigError::new(var, "the secret file is not valid UTF-8").with_value(&shown)
    })?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(ConfigError::new(var, "the secret file is empty").with_value(shown));
    }
    Ok(Secret(trimmed.to_owned()))
}

/// A secret string whose `Debug` output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn prefix_and_names() {
        assert_eq!(
            Env::from_pairs("IQ_", [("a", "b")]).var_name("API_KEY"),
            "IQ_API_KEY"
        );
        assert_eq!(
            Env::from_pairs("", [("a", "b")]).var_name("API_KEY"),
            "API_KEY"
        );
        let e = env(&[("MCP_ENV", "production"), ("MCP_EMPTY", "")]);
        assert_eq!(e.string("ENV").unwrap().as_deref(), Some("production"));
        assert_eq!(e.string("EMPTY").unwrap(), None);
        assert_eq!(e.string("MISSING").unwrap(), None);
    }

    #[test]
    fn booleans() {
        for (v, b) in [
            ("true", true),
            ("1", true),
            ("YES", true),
            ("on", true),
            ("False", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            assert_eq!(env(&[("MCP_X", v)]).bool("X", !b).unwrap(), b, "{v}");
        }
        assert!(env(&[]).bool("X", true).unwrap());
        let err = env(&[("MCP_X", "2")]).bool("X", true).unwrap_err();
        assert_eq!((err.setting(), err.value()), ("MCP_X", Some("2")));
    }

    #[test]
    fn numbers_and_durations() {
        let e = env(&[
            ("MCP_N", "100"),
            ("MCP_BAD", "-1"),
            ("MCP_W", "60s"),
            ("MCP_M", "5m"),
            ("MCP_MS", "250ms"),
            ("MCP_P", "30"),
            ("MCP_D", "1d"),
            ("MCP_H", "2 h"),
        ]);
        assert_eq!(e.u64("N", 1).unwrap(), 100);
        assert_eq!(e.usize("N", 1).unwrap(), 100);
        assert_eq!(e.u64("UNSET", 7).unwrap(), 7);
        let err = e.u64("BAD", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MCP_BAD: expected a non-negative integer (got \"-1\")"
        );
        let d = Duration::from_secs;
        assert_eq!(e.duration("W", d(1)).unwrap(), d(60));
        assert_eq!(e.duration("M", d(1)).unwrap(), d(300));
        assert_eq!(e.duration("MS", d(1)).unwrap(), Duration::from_millis(250));
        assert_eq!(e.duration("P", d(1)).unwrap(), d(30));
        assert_eq!(e.duration("D", d(1)).unwrap(), d(86_400));
        assert_eq!(e.duration("H", d(1)).unwrap(), d(7_200));
        assert_eq!(e.duration("UNSET", d(9)).unwrap(), d(9));
        for bad in ["s", "1.5s", "10y", "-3", "99999999999999999999"] {
            let err = env(&[("MCP_T", bad)]).duration("T", d(1)).unwrap_err();
            assert_eq!((err.setting(), err.value()), ("MCP_T", Some(bad)));
        }
        let huge = format!("{}d", u64::MAX);
        assert!(env(&[("MCP_T", &huge)]).duration("T", d(1)).is_err());
    }

    #[test]
    fn lists_and_cidrs() {
        let e = env(&[
            (
                "MCP_CORS_ORIGINS",
                " https://a.example , ,https://b.example",
            ),
            ("MCP_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7, fd00::/8"),
            ("MCP_BAD", "10.0.0.0/8, 10.0.0.0/33"),
        ]);
        assert_eq!(
            e.list("CORS_ORIGINS").unwrap().unwrap(),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(e.list("UNSET").unwrap(), None);
        let nets = e.cidrs("TRUSTED_PROXIES").unwrap();
        assert_eq!(
            nets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]
        );
        assert!(e.cidrs("UNSET").unwrap().is_empty());
        let err = e.cidrs("BAD").unwrap_err();
        assert_eq!(
            (err.setting(), err.value()),
            ("MCP_BAD", Some("10.0.0.0/33"))
        );
    }

    #[test]
    fn secrets_direct_and_from_files() {
        let dir = std::env::temp_dir().join(format!("mcp-core-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let path = file.to_str().unwrap();

        let e = env(&[("MCP_API_KEY", "direct-value")]);
        assert_eq!(
            e.secret("API_KEY").unwrap().unwrap().expose(),
            "direct-value"
        );
        let e = env(&[("MCP_API_KEY_FILE", path)]);
        let s = e.secret("API_KEY").unwrap().unwrap();
        assert_eq!(s.expose(), "s3cret-value", "trailing newline trimmed");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(env(&[]).secret("API_KEY").unwrap(), None);

        let err = env(&[("MCP_API_KEY", "direct-value"), ("MCP_API_KEY_FILE", path)])
            .secret("API_KEY")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MCP_API_KEY: set either it or MCP_API_KEY_FILE, not both"
        );
        assert!(!err.to_string().contains("direct-value"));

        let missing = dir.join("missing");
        let err = env(&[("MCP_API_KEY_FILE", missing.to_str().unwrap())])
            .secret("API_KEY")
            .unwrap_err();
        assert_eq!(err.setting(), "MCP_API_KEY_FILE");
        assert!(err.reason().starts_with("cannot read the secret file"));
        assert_eq!(err.value(), missing.to_str());

        let err = env(&[("MCP_API_KEY_FILE", empty.to_str().unwrap())])
            .secret("API_KEY")
            .unwrap_err();
        assert_eq!(err.reason(), "the secret file is empty");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_secret_is_not_echoed() {
        use std::os::unix::ffi::OsStringExt;
        let e = Env::with_lookup("MCP", |name| {
            (name == "MCP_API_KEY").then(|| std::ffi::OsString::from_vec(b"ab\xffcd".to_vec()))
        });
        let err = e.secret("API_KEY").unwrap_err();
        assert_eq!(err.to_string(), "MCP_API_KEY: is not valid UTF-8");
        let err = e.string("API_KEY").unwrap_err();
        assert_eq!(err.value(), Some("ab\u{fffd}cd"));
    }
}
