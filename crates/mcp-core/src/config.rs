//! Configuration helpers: errors that name the setting, and environment lookup with a prefix.

use std::fmt;

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
