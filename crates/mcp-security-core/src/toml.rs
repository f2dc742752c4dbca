//! Reading TOML configuration (feature `toml`): typed values whose errors name the key's path.
//!
//! The facade's `CONFIG_FILE` and the sections other crates read from it (mcp-ratelimit's
//! `[rate_limit]`) use these, so a document is parsed once and every refusal names where it
//! came from: `rate_limit.classes.read.window`, `auth.path_scopes[0].prefix`.
//!
//! ```
//! use mcp_security_core::toml;
//!
//! let doc = toml::parse("[cors]\nallow_credentials = \"yes\"\n", "config_toml")?;
//! let cors = toml::table(&doc["cors"], "cors")?;
//! let err = toml::boolean(&cors["allow_credentials"], "cors.allow_credentials").unwrap_err();
//! assert_eq!(err.to_string(), "cors.allow_credentials: must be true or false");
//! # Ok::<(), mcp_security_core::config::ConfigError>(())
//! ```

use std::path::Path;
use std::time::Duration;

pub use ::toml::{Table, Value};

use crate::config::{ConfigError, parse_duration};

/// Parse a TOML document; an error names `setting` (the variable or builder method that gave
/// the document) and says what is wrong, without echoing the text.
///
/// # Errors
/// Invalid TOML.
pub fn parse(text: &str, setting: &str) -> Result<Table, ConfigError> {
    text.parse().map_err(|e: ::toml::de::Error| {
        ConfigError::new(setting, format!("invalid TOML: {}", e.message()))
    })
}

/// Read the file at `path`; an error names `setting` and shows the path.
///
/// # Errors
/// The file cannot be read as UTF-8 text.
pub fn read_file(path: &Path, setting: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(setting, format!("cannot read the file: {e}"))
            .with_value(path.display().to_string())
    })
}

/// The error for a key nobody reads: `hint` says what is expected or where to look.
pub fn unknown_key(path: &str, hint: &str) -> ConfigError {
    ConfigError::new(path, format!("unknown key ({hint})"))
}

/// `value` as a table.
///
/// # Errors
/// Any other type, naming `path`.
pub fn table<'a>(value: &'a Value, path: &str) -> Result<&'a Table, ConfigError> {
    value
        .as_table()
        .ok_or_else(|| ConfigError::new(path, "must be a table"))
}

/// `value` as a boolean.
///
/// # Errors
/// Any other type, naming `path`.
pub fn boolean(value: &Value, path: &str) -> Result<bool, ConfigError> {
    value
        .as_bool()
        .ok_or_else(|| ConfigError::new(path, "must be true or false"))
}

/// `value` as a string.
///
/// # Errors
/// Any other type, naming `path`.
pub fn string(value: &Value, path: &str) -> Result<String, ConfigError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::new(path, "must be a string"))
}

/// `value` as an array of strings.
///
/// # Errors
/// Not an array (naming `path`), or an entry that is not a string (naming `path[i]`).
pub fn strings(value: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| string(v, &format!("{path}[{i}]")))
            .collect(),
        _ => Err(ConfigError::new(path, "must be an array of strings")),
    }
}

/// `value` as a non-negative integer.
///
/// # Errors
/// A negative integer or another type, naming `path` and the value.
pub fn integer(value: &Value, path: &str) -> Result<u64, ConfigError> {
    match value {
        Value::Integer(n) => u64::try_from(*n)
            .map_err(|_| ConfigError::new(path, "must not be negative").with_value(n.to_string())),
        other => Err(ConfigError::new(path, "must be an integer").with_value(other.to_string())),
    }
}

/// `value` as a duration: whole seconds (`60`) or a string with a unit (`"60s"`, `"1m"`,
/// `"500ms"`; see [`parse_duration`]).
///
/// # Errors
/// Another form, naming `path` and the value.
pub fn duration(value: &Value, path: &str) -> Result<Duration, ConfigError> {
    match value {
        Value::Integer(_) => Ok(Duration::from_secs(integer(value, path)?)),
        Value::String(s) => parse_duration(s).ok_or_else(|| {
            ConfigError::new(
                path,
                "expected a duration such as 60, \"60s\", \"1m\" or \"500ms\"",
            )
            .with_value(s.as_str())
        }),
        other => Err(
            ConfigError::new(path, "expected a duration such as 60 or \"1m\"")
                .with_value(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_errors() {
        let doc = parse(
            r#"
            n = 5
            neg = -1
            d = "2m"
            names = ["a", "b"]
            mixed = ["a", 1]
            flag = true
            "#,
            "config_toml",
        )
        .unwrap();
        assert_eq!(integer(&doc["n"], "n").unwrap(), 5);
        assert_eq!(
            integer(&doc["neg"], "neg").unwrap_err().to_string(),
            "neg: must not be negative (got \"-1\")"
        );
        assert_eq!(
            integer(&doc["d"], "d").unwrap_err().to_string(),
            "d: must be an integer (got \"\\\"2m\\\"\")"
        );
        assert_eq!(duration(&doc["n"], "n").unwrap(), Duration::from_secs(5));
        assert_eq!(duration(&doc["d"], "d").unwrap(), Duration::from_secs(120));
        assert_eq!(
            duration(&doc["flag"], "flag").unwrap_err().setting(),
            "flag"
        );
        assert_eq!(strings(&doc["names"], "names").unwrap(), ["a", "b"]);
        assert_eq!(
            strings(&doc["mixed"], "mixed").unwrap_err().setting(),
            "mixed[1]"
        );
        assert!(boolean(&doc["flag"], "flag").unwrap());
        assert_eq!(
            table(&doc["n"], "n").unwrap_err().reason(),
            "must be a table"
        );
        assert_eq!(
            unknown_key("x.y", "expected a or b").to_string(),
            "x.y: unknown key (expected a or b)"
        );
        let err = parse("[x", "config_toml").unwrap_err();
        assert_eq!(err.setting(), "config_toml");
        assert!(err.reason().starts_with("invalid TOML: "), "{err}");
        let err = read_file(Path::new("/nonexistent/mcp.toml"), "MCP_CONFIG_FILE").unwrap_err();
        assert_eq!(err.setting(), "MCP_CONFIG_FILE");
        assert_eq!(err.value(), Some("/nonexistent/mcp.toml"));
    }
}
