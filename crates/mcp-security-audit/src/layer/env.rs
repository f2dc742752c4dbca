//! [`AuditSettings`]: the `AUDIT_*` table typed, read by [`AuditLayer::builder_from_env`] or
//! filled in code (the `mcp-security` facade fills it from its own configuration).

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use mcp_security_core::client_addr::ClientAddrResolver;
use mcp_security_core::config::{ConfigError, Env, Secret};

use super::{AuditLayer, AuditLayerBuilder};
use crate::chain::AuditKey;
use crate::detect::{
    DEFAULT_AUTH_FAILURE_RULE, DEFAULT_BAN_DURATION, DEFAULT_FLOOD_RULE,
    DEFAULT_GLOBAL_AUTH_FAILURE_RULE, DEFAULT_MAX_CLIENTS, DEFAULT_TOKEN_WARNING, Rule,
};
use crate::evidence::DEFAULT_MAX_EVIDENCE_BYTES;
use crate::file::{
    DEFAULT_BATCH_DELAY, DEFAULT_CHANNEL_CAPACITY, DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MAX_FILE_BYTES, FileSink, OverflowPolicy, SyncPolicy,
};
use crate::mask::Fingerprinter;

/// The audit layer's settings, one field per row of the [module docs](super)' table, typed.
///
/// [`AuditSettings::from_env`] reads them; code can fill them directly (start from
/// [`AuditSettings::new`] with the variable prefix that errors should name) and turn them into
/// a builder with [`AuditSettings::into_builder`], which checks what needs checking (key
/// lengths, the header name, the file) and names the variable in its errors.
#[derive(Clone)]
#[non_exhaustive]
pub struct AuditSettings {
    /// `AUDIT_ENABLED`.
    pub enabled: bool,
    /// `AUDIT_METRICS`.
    pub metrics: bool,
    /// `AUDIT_TRACING`.
    pub tracing: bool,
    /// `AUDIT_HMAC_KEY` / `_FILE`: the file's chain key (at least 32 bytes).
    pub hmac_key: Option<Secret>,
    /// `AUDIT_FINGERPRINT_KEY` / `_FILE`; unset, derived from the HMAC key when there is one.
    pub fingerprint_key: Option<Secret>,
    /// `AUDIT_MASK_PREFIXES`: key prefixes masked in addition to the defaults.
    pub mask_prefixes: Vec<String>,
    /// `AUDIT_MASK_PARAMS`: query parameters masked in addition to the defaults.
    pub mask_params: Vec<String>,
    /// `API_KEY_HEADER`: the API-key header whose value is fingerprinted.
    pub api_key_header: Option<String>,
    /// `TRUSTED_PROXIES`, resolved.
    pub client_addr_resolver: ClientAddrResolver,
    /// `AUDIT_AUTH_FAILURE_THRESHOLD` / `_WINDOW` / `AUDIT_BAN_ON_AUTH_FAILURES`.
    pub auth_failures: Option<Rule>,
    /// `AUDIT_GLOBAL_AUTH_FAILURE_THRESHOLD` (window: `AUDIT_AUTH_FAILURE_WINDOW`).
    pub global_auth_failures: Option<Rule>,
    /// `AUDIT_FLOOD_THRESHOLD` / `_WINDOW` / `AUDIT_BAN_ON_FLOOD`.
    pub floods: Option<Rule>,
    /// `AUDIT_TOKEN_EXPIRY_WARNING`.
    pub token_expiry_warning: Option<Duration>,
    /// `AUDIT_BAN_DURATION` (more than 0).
    pub ban_duration: Duration,
    /// `AUDIT_DETECTOR_MAX_CLIENTS` (at least 1).
    pub detector_max_clients: usize,
    /// `AUDIT_LOG_FILE`: the JSON-lines file; needs [`hmac_key`](Self::hmac_key).
    pub log_file: Option<PathBuf>,
    /// `AUDIT_OVERFLOW`.
    pub overflow: OverflowPolicy,
    /// `AUDIT_FSYNC`.
    pub fsync: SyncPolicy,
    /// `AUDIT_CHANNEL_CAPACITY`.
    pub channel_capacity: usize,
    /// `AUDIT_MAX_FILE_BYTES`.
    pub max_file_bytes: u64,
    /// `AUDIT_CHECKPOINT_INTERVAL`.
    pub checkpoint_interval: Duration,
    /// `AUDIT_BATCH_DELAY`: how long the file writer lets records gather (at most 1 s).
    pub batch_delay: Duration,
    /// `AUDIT_HEAD_FILE`: where the file sink keeps its head (default `<log file>.head`).
    pub head_file: Option<PathBuf>,
    /// `AUDIT_SIGNING_KEY_FILE`: an Ed25519 private key (PKCS#8 PEM) that signs checkpoints.
    pub signing_key_file: Option<PathBuf>,
    /// `AUDIT_ANCHOR_FILE`: an append-only file that gets a copy of every checkpoint.
    pub anchor_file: Option<PathBuf>,
    /// `AUDIT_TOOL_CALL_EVIDENCE`: digests of each `tools/call`'s arguments and result, keyed
    /// with [`hmac_key`](Self::hmac_key) (off without one); see [`crate::evidence`].
    pub tool_call_evidence: bool,
    /// `AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES`: the most buffered to digest one result (at
    /// least 1).
    pub tool_call_evidence_max_bytes: usize,
    /// Names the variables in errors (`MCP_AUDIT_HMAC_KEY`).
    names: Env,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("enabled", &self.enabled)
            .field("log_file", &self.log_file)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "[redacted]"))
            .field(
                "fingerprint_key",
                &self.fingerprint_key.as_ref().map(|_| "[redacted]"),
            )
            .field("api_key_header", &self.api_key_header)
            .finish_non_exhaustive()
    }
}

impl Default for AuditSettings {
    /// [`AuditSettings::new`] with the prefix `MCP`.
    fn default() -> Self {
        AuditSettings::new("MCP")
    }
}

impl AuditSettings {
    /// The defaults of the table; errors name variables with `prefix` (`MCP`:
    /// `MCP_AUDIT_HMAC_KEY`).
    pub fn new(prefix: &str) -> Self {
        AuditSettings {
            enabled: true,
            metrics: true,
            tracing: true,
            hmac_key: None,
            fingerprint_key: None,
            mask_prefixes: Vec::new(),
            mask_params: Vec::new(),
            api_key_header: None,
            client_addr_resolver: ClientAddrResolver::default(),
            auth_failures: Some(DEFAULT_AUTH_FAILURE_RULE),
            global_auth_failures: Some(DEFAULT_GLOBAL_AUTH_FAILURE_RULE),
            floods: Some(DEFAULT_FLOOD_RULE),
            token_expiry_warning: Some(DEFAULT_TOKEN_WARNING),
            ban_duration: DEFAULT_BAN_DURATION,
            detector_max_clients: DEFAULT_MAX_CLIENTS,
            log_file: None,
            overflow: OverflowPolicy::Block,
            fsync: SyncPolicy::Checkpoint,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            batch_delay: DEFAULT_BATCH_DELAY,
            head_file: None,
            signing_key_file: None,
            anchor_file: None,
            tool_call_evidence: true,
            tool_call_evidence_max_bytes: DEFAULT_MAX_EVIDENCE_BYTES,
            names: Env::with_lookup(prefix, |_| None),
        }
    }

    /// The settings from the environment (the table in the [module docs](super)).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable: a malformed value, a detector window under 1 s, a
    /// zero ban duration or detector size.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let var = |name: &str| env.var_name(name);
        let mut s = AuditSettings::new("");
        s.names = env.clone();
        s.enabled = env.bool("AUDIT_ENABLED", true)?;
        s.metrics = env.bool("AUDIT_METRICS", true)?;
        s.hmac_key = env.secret("AUDIT_HMAC_KEY")?;
        s.fingerprint_key = env.secret("AUDIT_FINGERPRINT_KEY")?;
        s.mask_prefixes = env.list("AUDIT_MASK_PREFIXES")?.unwrap_or_default();
        s.mask_params = env.list("AUDIT_MASK_PARAMS")?.unwrap_or_default();
        s.api_key_header = env.string("API_KEY_HEADER")?;
        let proxies = env.cidrs("TRUSTED_PROXIES")?;
        s.client_addr_resolver = ClientAddrResolver::builder()
            .trusted_proxy_nets(proxies)
            .build()
            .map_err(|e| e.renamed(var("TRUSTED_PROXIES")))?;

        let rule = |threshold: &str, default: Rule, window: &str, ban: &str, ban_default: bool| {
            let n = env.u64(threshold, default.threshold())?;
            let w = env.duration(window, default.window())?;
            let ban = env.bool(ban, ban_default)?;
            if n == 0 {
                return Ok(None);
            }
            if w < Duration::from_secs(1) {
                return Err(ConfigError::new(var(window), "must be at least 1 s")
                    .with_value(format!("{w:?}")));
            }
            Ok::<_, ConfigError>(Some(Rule::new(n, w).ban(ban)))
        };
        s.auth_failures = rule(
            "AUDIT_AUTH_FAILURE_THRESHOLD",
            DEFAULT_AUTH_FAILURE_RULE,
            "AUDIT_AUTH_FAILURE_WINDOW",
            "AUDIT_BAN_ON_AUTH_FAILURES",
            true,
        )?;
        let global = env.u64(
            "AUDIT_GLOBAL_AUTH_FAILURE_THRESHOLD",
            DEFAULT_GLOBAL_AUTH_FAILURE_RULE.threshold(),
        )?;
        let window = env.duration(
            "AUDIT_AUTH_FAILURE_WINDOW",
            DEFAULT_GLOBAL_AUTH_FAILURE_RULE.window(),
        )?;
        s.global_auth_failures = (global > 0).then(|| Rule::new(global, window));
        s.floods = rule(
            "AUDIT_FLOOD_THRESHOLD",
            DEFAULT_FLOOD_RULE,
            "AUDIT_FLOOD_WINDOW",
            "AUDIT_BAN_ON_FLOOD",
            false,
        )?;
        let warning = env.duration("AUDIT_TOKEN_EXPIRY_WARNING", DEFAULT_TOKEN_WARNING)?;
        s.token_expiry_warning = (!warning.is_zero()).then_some(warning);
        s.ban_duration = env.duration("AUDIT_BAN_DURATION", DEFAULT_BAN_DURATION)?;
        if s.ban_duration.is_zero() {
            return Err(
                ConfigError::new(var("AUDIT_BAN_DURATION"), "must be more than 0").with_value("0"),
            );
        }
        s.detector_max_clients = env.usize("AUDIT_DETECTOR_MAX_CLIENTS", DEFAULT_MAX_CLIENTS)?;
        if s.detector_max_clients == 0 {
            return Err(
                ConfigError::new(var("AUDIT_DETECTOR_MAX_CLIENTS"), "must be at least 1")
                    .with_value("0"),
            );
        }
        s.tracing = env.bool("AUDIT_TRACING", true)?;
        s.tool_call_evidence = env.bool("AUDIT_TOOL_CALL_EVIDENCE", true)?;
        s.tool_call_evidence_max_bytes = env.usize(
            "AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES",
            DEFAULT_MAX_EVIDENCE_BYTES,
        )?;
        if s.tool_call_evidence_max_bytes == 0 {
            return Err(ConfigError::new(
                var("AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES"),
                "must be at least 1",
            )
            .with_value("0"));
        }
        s.log_file = env.string("AUDIT_LOG_FILE")?.map(PathBuf::from);
        if s.log_file.is_some() && s.enabled {
            s.file_from_env(env)?;
        }
        Ok(s)
    }

    /// Read the file sink's knobs (`AUDIT_OVERFLOW`, `AUDIT_FSYNC`, `AUDIT_CHANNEL_CAPACITY`,
    /// `AUDIT_MAX_FILE_BYTES`, `AUDIT_CHECKPOINT_INTERVAL`, `AUDIT_BATCH_DELAY`,
    /// `AUDIT_HEAD_FILE`, `AUDIT_SIGNING_KEY_FILE`, `AUDIT_ANCHOR_FILE`) from `env`.
    /// [`from_env`](Self::from_env) does when [`log_file`](Self::log_file) is set and the layer
    /// enabled; code that sets those itself calls this after.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the malformed variable.
    pub fn file_from_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        let var = |name: &str| env.var_name(name);
        if let Some(v) = env.string("AUDIT_OVERFLOW")? {
            self.overflow = OverflowPolicy::parse(&var("AUDIT_OVERFLOW"), &v)?;
        }
        if let Some(v) = env.string("AUDIT_FSYNC")? {
            self.fsync = SyncPolicy::parse(&var("AUDIT_FSYNC"), &v)?;
        }
        self.channel_capacity = env.usize("AUDIT_CHANNEL_CAPACITY", DEFAULT_CHANNEL_CAPACITY)?;
        self.max_file_bytes = env.u64("AUDIT_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)?;
        self.checkpoint_interval =
            env.duration("AUDIT_CHECKPOINT_INTERVAL", DEFAULT_CHECKPOINT_INTERVAL)?;
        self.batch_delay = env.duration("AUDIT_BATCH_DELAY", DEFAULT_BATCH_DELAY)?;
        if let Some(v) = env.string("AUDIT_HEAD_FILE")? {
            self.head_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env.string("AUDIT_SIGNING_KEY_FILE")? {
            self.signing_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env.string("AUDIT_ANCHOR_FILE")? {
            self.anchor_file = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// A builder with these settings; add a ban list or sinks in code before building. With a
    /// [`log_file`](Self::log_file) (and the layer enabled) this opens the file and starts its
    /// writer thread.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable: a key that is too short, a header name that is
    /// not one, a log file without an HMAC key, a file that cannot be opened.
    pub fn into_builder(self) -> Result<AuditLayerBuilder, ConfigError> {
        let var = |name: &str| self.names.var_name(name);
        let mut b = AuditLayer::builder()
            .enabled(self.enabled)
            .metrics(self.metrics);
        let hmac_key = self
            .hmac_key
            .map(|s| AuditKey::new(&s).map_err(|e| e.renamed(var("AUDIT_HMAC_KEY"))))
            .transpose()?;
        match self.fingerprint_key {
            Some(k) => b = b.fingerprint_key(k),
            None => {
                if let Some(key) = &hmac_key {
                    b.fingerprinter = Some(Fingerprinter::new(
                        &key.derive(b"mcp-security-audit fingerprint key v1"),
                    ));
                }
            }
        }
        for p in self.mask_prefixes {
            b = b.mask_prefix(p);
        }
        for p in self.mask_params {
            b = b.mask_param(p);
        }
        if let Some(h) = &self.api_key_header {
            HeaderName::try_from(h.trim()).map_err(|_| {
                ConfigError::new(var("API_KEY_HEADER"), "not a valid header name").with_value(h)
            })?;
            b = b.api_key_header(h.trim());
        }
        b = b
            .client_addr_resolver(self.client_addr_resolver)
            .detect_auth_failures(self.auth_failures)
            .detect_global_auth_failures(self.global_auth_failures)
            .detect_floods(self.floods)
            .detect_expiring_tokens(self.token_expiry_warning)
            .ban_duration(self.ban_duration)
            .detector_max_clients(self.detector_max_clients)
            .tracing(self.tracing)
            .tool_call_evidence(hmac_key.clone().filter(|_| self.tool_call_evidence))
            .tool_call_evidence_max_bytes(self.tool_call_evidence_max_bytes);
        if let Some(path) = &self.log_file
            && b.enabled
        {
            let key = hmac_key.ok_or_else(|| {
                ConfigError::new(
                    var("AUDIT_HMAC_KEY"),
                    format!(
                        "is required with {} (or set {}_FILE); generate one with `openssl rand -hex 32`",
                        var("AUDIT_LOG_FILE"),
                        var("AUDIT_HMAC_KEY")
                    ),
                )
            })?;
            let mut sink = FileSink::builder(path, key);
            if let Some(head) = &self.head_file {
                sink = sink.head_file(head);
            }
            if let Some(file) = &self.signing_key_file {
                let key = crate::signing::SigningKey::from_file(file)
                    .map_err(|e| e.renamed(var("AUDIT_SIGNING_KEY_FILE")))?;
                sink = sink.signing_key(key);
            }
            if let Some(file) = &self.anchor_file {
                let anchor = crate::anchor::FileAnchor::open(file)
                    .map_err(|e| e.renamed(var("AUDIT_ANCHOR_FILE")))?;
                sink = sink.anchor(std::sync::Arc::new(anchor));
            }
            let sink = sink
                .channel_capacity(self.channel_capacity)
                .overflow(self.overflow)
                .max_file_bytes(self.max_file_bytes)
                .checkpoint_interval(self.checkpoint_interval)
                .batch_delay(self.batch_delay)
                .sync(self.fsync)
                .build()
                .map_err(|e| {
                    let name = match e.setting() {
                        "channel_capacity" => "AUDIT_CHANNEL_CAPACITY",
                        "max_file_bytes" => "AUDIT_MAX_FILE_BYTES",
                        "checkpoint_interval" => "AUDIT_CHECKPOINT_INTERVAL",
                        "batch_delay" => "AUDIT_BATCH_DELAY",
                        "head_file" => "AUDIT_HEAD_FILE",
                        _ => "AUDIT_LOG_FILE",
                    };
                    e.renamed(var(name))
                })?;
            b = b.file_sink(sink);
        }
        Ok(b)
    }
}

impl AuditLayer {
    /// A layer configured from the environment; see [`builder_from_env`](Self::builder_from_env).
    ///
    /// # Errors
    /// As [`builder_from_env`](Self::builder_from_env).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::builder_from_env(env)?.build()
    }

    /// A builder filled from the environment (the table in the [module docs](super)); add a ban
    /// list or sinks in code before building. With `AUDIT_LOG_FILE` set this opens the file and
    /// starts its writer thread. [`AuditSettings::from_env`], then
    /// [`AuditSettings::into_builder`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable: a malformed value, `AUDIT_LOG_FILE` without
    /// `AUDIT_HMAC_KEY(_FILE)`, a key that is too short, a file that cannot be opened.
    pub fn builder_from_env(env: &Env) -> Result<AuditLayerBuilder, ConfigError> {
        AuditSettings::from_env(env)?.into_builder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_filled_in_code_name_the_prefixed_variable() {
        let mut s = AuditSettings::new("IQ");
        s.log_file = Some(PathBuf::from("/nonexistent/audit.jsonl"));
        let err = s.clone().into_builder().unwrap_err();
        assert_eq!(err.setting(), "IQ_AUDIT_HMAC_KEY");
        assert!(err.to_string().contains("IQ_AUDIT_LOG_FILE"), "{err}");
        s.hmac_key = Some(Secret::new("short-secret-value"));
        let err = s.clone().into_builder().unwrap_err();
        assert_eq!(err.setting(), "IQ_AUDIT_HMAC_KEY");
        assert!(!err.to_string().contains("short-secret-value"), "{err}");
        assert!(!format!("{s:?}").contains("short-secret-value"));
        s.log_file = None;
        s.hmac_key = None;
        s.api_key_header = Some("bad header".to_owned());
        let err = s.into_builder().unwrap_err();
        assert_eq!(err.setting(), "IQ_API_KEY_HEADER");
    }

    #[test]
    fn the_defaults_are_the_environments_defaults() {
        let from_env = AuditSettings::from_env(&Env::from_pairs("MCP", [("", "")])).unwrap();
        let layer = from_env.into_builder().unwrap().build().unwrap();
        let code = AuditSettings::default()
            .into_builder()
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(layer.summary(), code.summary());
        assert_eq!(
            format!(
                "{:?}",
                AuditSettings::from_env(&Env::from_pairs("MCP", [("", "")])).unwrap()
            ),
            format!("{:?}", AuditSettings::default())
        );
    }
}
