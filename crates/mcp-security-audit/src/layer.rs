//! [`AuditLayer`]: one [`AuditRecord`] per request, rejected ones included, to every sink;
//! security metrics; detectors.
//!
//! # Where it goes
//!
//! Outermost, so it times and records every request, including those an inner layer refuses:
//!
//! ```text
//! AuditLayer -> SecurityHeadersLayer -> OriginGuard + CORS -> RateLimitLayer (ip)
//!   -> McpInspectLayer -> AuthLayer -> RateLimitLayer (principal, tool) -> service
//! ```
//!
//! Inner layers report what they decided through response extensions, which the layer reads
//! when the response head comes back: `AuthOutcome` (principal, failure, credential
//! fingerprint), `RateLimitOutcome`, the `Rejection` (code and internal detail), and an
//! `McpCall` when the inspect layer puts one there. Because the inspect layer sits inside, the
//! request itself carries no `McpCall` here: the MCP method and tool come from an `McpCall` in the
//! response extensions, else one in the request extensions (an inspect layer outside this one),
//! else the client's MCP 2026-07-28 `Mcp-Method` / `Mcp-Name` headers (recorded as
//! `mcp_source: "headers"`: the client's claim, which the inspect layer refuses with 400 when
//! it disagrees with the body).
//!
//! # On the request path
//!
//! On the way in the layer notes the time, the request id, and reference-counted handles to the
//! method, URI, user agent and credential header (no copies). On the way out it builds the
//! record (one allocation), records the metrics, runs the detectors, and offers the record to
//! each sink. The record is emitted at the response head, so a long SSE stream does not hold its
//! record back; its `response_bytes` is then unknown (`null`). A request dropped before its
//! response (the client went away) is recorded as `cancelled`; an error from the service as
//! `error`.
//!
//! # Facts from the body
//!
//! Each request carries a [`ResponseFacts`](mcp_security_core::facts::ResponseFacts) handle in its
//! extensions. A response-side layer inside this one (`ListFilterLayer`, the tool guard's result
//! guard) takes a recorder from it and records what the body revealed; when the body ends, or is
//! dropped early, the layer writes a `completion` record with the same `request_id`
//! ([`crate::record#completion-records`]). A request no layer recorded a fact for gets no
//! completion record. For a `tools/call` the layer records a fact of its own, over the body it
//! hands on ([`AuditBody`]): the tool-call evidence of [`crate::evidence`].
//!
//! # Environment
//!
//! [`AuditLayer::builder_from_env`] reads into [`AuditSettings`], with the
//! [`Env`](mcp_security_core::config::Env)'s prefix (`MCP_` in the facade):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUDIT_ENABLED` | record at all | `true` |
//! | `AUDIT_LOG_FILE` | the JSON-lines file ([`FileSink`]); unset: `tracing` only | — |
//! | `AUDIT_HMAC_KEY` / `AUDIT_HMAC_KEY_FILE` | the chain key, at least 32 bytes; required with `AUDIT_LOG_FILE` | — |
//! | `AUDIT_TRACING` | also emit `tracing` events (target `mcp_security_audit`) | `true` |
//! | `AUDIT_OVERFLOW`, `AUDIT_CHANNEL_CAPACITY`, `AUDIT_MAX_FILE_BYTES`, `AUDIT_CHECKPOINT_INTERVAL`, `AUDIT_FSYNC`, `AUDIT_BATCH_DELAY`, `AUDIT_HEAD_FILE`, `AUDIT_SIGNING_KEY_FILE`, `AUDIT_ANCHOR_FILE` | the file sink: see [`crate::file#environment`] | |
//! | `AUDIT_FINGERPRINT_KEY` / `AUDIT_FINGERPRINT_KEY_FILE` | credential fingerprint key (give `mcp-auth` the same) | derived from the HMAC key, else random per process |
//! | `AUDIT_MASK_PREFIXES` | more key prefixes to mask, comma-separated | (`mcp-sk-` always) |
//! | `AUDIT_MASK_PARAMS` | more query parameters to mask | (see [`crate::mask`]) |
//! | `API_KEY_HEADER` | the API-key header `mcp-auth` reads, fingerprinted here | — |
//! | `TRUSTED_PROXIES` | CIDRs whose `X-Forwarded-For` is believed | none |
//! | `AUDIT_TOOL_CALL_EVIDENCE` | keyed digests of each `tools/call`'s arguments and result, and `isError` ([`crate::evidence`]); needs `AUDIT_HMAC_KEY` | `true` |
//! | `AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES` | the most buffered to digest one result (larger: not digested, passed on unchanged) | `4194304` |
//! | `AUDIT_METRICS` | record metrics | `true` |
//! | `AUDIT_AUTH_FAILURE_THRESHOLD`, `AUDIT_AUTH_FAILURE_WINDOW` | per-client auth-failure burst (`0`: off) | `10`, `60s` |
//! | `AUDIT_GLOBAL_AUTH_FAILURE_THRESHOLD` | all clients, same window (`0`: off) | `100` |
//! | `AUDIT_FLOOD_THRESHOLD`, `AUDIT_FLOOD_WINDOW` | per-client request flood (`0`: off) | `100`, `60s` |
//! | `AUDIT_BAN_ON_AUTH_FAILURES`, `AUDIT_BAN_ON_FLOOD` | ban (needs a ban list in code) | `true`, `false` |
//! | `AUDIT_BAN_DURATION` | ban length | `15m` |
//! | `AUDIT_BAN_SCOPE` | which requests of a banned client are refused: `failed` (no credential, or one that fails) or `all`; read by the `mcp-security` facade and enforced by the rate limiter (`RateLimitLayerBuilder::ban_scope`), not by this layer | `failed` |
//! | `AUDIT_TOKEN_EXPIRY_WARNING` | token-expiry warning time (`0`: off) | `1h` |
//! | `AUDIT_DETECTOR_MAX_CLIENTS` | clients tracked per detector | `10000` |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_LENGTH, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use mcp_security_core::client_addr::{ClientAddr, ClientAddrResolver};
use mcp_security_core::clock::{Clock, MonotonicClock, SystemClock, SystemMonotonicClock};
use mcp_security_core::config::{ConfigError, Secret};
use mcp_security_core::inspect::{MCP_METHOD, MCP_NAME};
use mcp_security_core::{
    AuthFailure, AuthOutcome, BanList, BudgetOutcome, McpCall, RateLimitOutcome, Rejection,
};

use crate::chain::AuditKey;
use crate::detect::{DetectorSettings, Detectors, Observation, Rule};
use crate::evidence::{DEFAULT_MAX_EVIDENCE_BYTES, EvidenceConfig};
use crate::file::FileSink;
use crate::mask::{
    Credential, CredentialSource, DEFAULT_KEY_PREFIXES, DEFAULT_SENSITIVE_PARAMS, Fingerprinter,
    Masker, find_credential,
};
use crate::metrics as m;
use crate::record::{
    AuditEvent, AuditRecord, AuthSummary, Completion, FingerprintText, McpInfo, RejectionSummary,
    RequestId,
};
use crate::sink::{AuditSink, Submit, TracingSink};

/// The request-id header read by default.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

struct Shared {
    enabled: bool,
    sinks: Box<[Arc<dyn AuditSink>]>,
    file: Option<FileSink>,
    masker: Masker,
    fingerprinter: Fingerprinter,
    api_key_headers: Box<[HeaderName]>,
    request_id_header: Option<HeaderName>,
    resolver: ClientAddrResolver,
    clock: Arc<dyn Clock>,
    mono: Arc<dyn MonotonicClock>,
    detectors: Detectors,
    metrics: bool,
    id_prefix: u32,
    counter: AtomicU64,
    evidence: Option<Arc<EvidenceConfig>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLayer")
            .field("enabled", &self.enabled)
            .field("sinks", &self.sinks.len())
            .field("file", &self.file.as_ref().map(FileSink::path))
            .field("masker", &self.masker)
            .field("api_key_headers", &self.api_key_headers)
            .field("detectors", &self.detectors)
            .field("metrics", &self.metrics)
            .field("tool_call_evidence", &self.evidence.is_some())
            .finish_non_exhaustive()
    }
}

/// Records every request to the configured sinks; see the [module docs](self).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use mcp_security_audit::{AuditLayer, Decision, MemorySink};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let records = MemorySink::new();
/// let svc = ServiceBuilder::new()
///     .layer(AuditLayer::builder().sink(records.clone()).build()?)
///     .service_fn(|_req: Request<Full<Bytes>>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
///     });
///
/// let req = Request::get("/notes?page=2&token=mcp-sk-secret")
///     .header("authorization", "Bearer mcp-sk-secret")
///     .body(Full::default())?;
/// let res = svc.oneshot(req).await?;
/// assert_eq!(res.status(), StatusCode::OK);
///
/// let record = &records.requests()[0];
/// assert_eq!(record.path(), "/notes");
/// assert_eq!(record.query().as_deref(), Some("page=2&token=[redacted]"));
/// assert_eq!(record.decision(), Decision::Allowed);
/// assert_eq!(record.credential_fingerprint().map(|f| f.len()), Some(16));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuditLayer {
    shared: Arc<Shared>,
}

impl AuditLayer {
    /// A builder with the defaults: the `tracing` sink (unless other sinks are added), the
    /// default masking, the default detector thresholds, metrics on.
    pub fn builder() -> AuditLayerBuilder {
        AuditLayerBuilder::default()
    }

    /// A layer that records nothing and passes every request through.
    pub fn disabled() -> Self {
        AuditLayerBuilder::default()
            .enabled(false)
            .build()
            .unwrap_or_else(|_| unreachable!("the default settings are valid"))
    }

    /// The file sink, when one is configured: close it on shutdown, read its drop counter.
    pub fn file_sink(&self) -> Option<&FileSink> {
        self.shared.file.as_ref()
    }

    /// Records the file sink dropped so far (0 without a file sink).
    pub fn dropped(&self) -> u64 {
        self.shared.file.as_ref().map_or(0, FileSink::dropped)
    }

    /// Close the file sink, if any: write what is queued and a `close` record, and sync. Call it
    /// after the server stopped serving.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn close(&self) -> std::io::Result<()> {
        match &self.shared.file {
            Some(f) => f.close().await,
            None => Ok(()),
        }
    }

    /// A one-line summary of what is on, for start-up logs.
    pub fn summary(&self) -> String {
        let s = &self.shared;
        if !s.enabled {
            return "audit: off".to_owned();
        }
        format!(
            "audit: {} sink(s){}, metrics {}",
            s.sinks.len(),
            s.file
                .as_ref()
                .map(|f| format!(
                    " incl. file {} ({}, key {})",
                    f.path().display(),
                    f.overflow_policy().as_str(),
                    f.key_id()
                ))
                .unwrap_or_default(),
            if s.metrics { "on" } else { "off" },
        )
    }
}

/// Builds an [`AuditLayer`]; see [`AuditLayer::builder`].
#[must_use]
pub struct AuditLayerBuilder {
    enabled: bool,
    sinks: Vec<Arc<dyn AuditSink>>,
    file: Option<FileSink>,
    tracing: Option<bool>,
    prefixes: Vec<String>,
    params: Vec<String>,
    api_key_headers: Vec<String>,
    request_id_header: Option<String>,
    fingerprinter: Option<Fingerprinter>,
    fingerprint_key_error: bool,
    resolver: ClientAddrResolver,
    clock: Arc<dyn Clock>,
    mono: Arc<dyn MonotonicClock>,
    detectors: DetectorSettings,
    metrics: bool,
    /// `None`: the file sink's key, if any; `Some(None)`: off.
    evidence: Option<Option<AuditKey>>,
    evidence_max_bytes: usize,
}

impl Default for AuditLayerBuilder {
    fn default() -> Self {
        AuditLayerBuilder {
            enabled: true,
            sinks: Vec::new(),
            file: None,
            tracing: None,
            prefixes: DEFAULT_KEY_PREFIXES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            params: DEFAULT_SENSITIVE_PARAMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            api_key_headers: Vec::new(),
            request_id_header: Some(DEFAULT_REQUEST_ID_HEADER.to_owned()),
            fingerprinter: None,
            fingerprint_key_error: false,
            resolver: ClientAddrResolver::default(),
            clock: Arc::new(SystemClock),
            mono: Arc::new(SystemMonotonicClock::new()),
            detectors: DetectorSettings::default(),
            metrics: true,
            evidence: None,
            evidence_max_bytes: DEFAULT_MAX_EVIDENCE_BYTES,
        }
    }
}

impl fmt::Debug for AuditLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLayerBuilder")
            .field("enabled", &self.enabled)
            .field("sinks", &self.sinks.len())
            .field("file", &self.file.as_ref().map(FileSink::path))
            .field("tracing", &self.tracing)
            .field("prefixes", &self.prefixes)
            .field("api_key_headers", &self.api_key_headers)
            .field("detectors", &self.detectors)
            .finish_non_exhaustive()
    }
}

impl AuditLayerBuilder {
    /// Record at all (default `true`); a disabled layer passes requests through untouched.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Add a sink.
    pub fn sink(mut self, sink: impl AuditSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Add the tamper-evident file sink (kept so [`AuditLayer::close`] can close it).
    pub fn file_sink(mut self, sink: FileSink) -> Self {
        self.sinks.push(Arc::new(sink.clone()));
        self.file = Some(sink);
        self
    }

    /// Emit `tracing` events (target `mcp_security_audit`). Default: on when no other sink is added.
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = Some(on);
        self
    }

    /// Also mask tokens containing this key prefix (`mcp-sk-` is always masked unless
    /// [`mask_prefixes`](Self::mask_prefixes) replaces the list).
    pub fn mask_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Replace the masked key prefixes.
    pub fn mask_prefixes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Also mask the value of this query parameter.
    pub fn mask_param(mut self, name: impl Into<String>) -> Self {
        self.params.push(name.into());
        self
    }

    /// A header that carries an API key (as `mcp-auth`'s `api_key_header`): its value is
    /// fingerprinted, never recorded.
    pub fn api_key_header(mut self, name: impl Into<String>) -> Self {
        self.api_key_headers.push(name.into());
        self
    }

    /// The header a client's request id is read from (default `x-request-id`); `None` always
    /// generates ids.
    pub fn request_id_header(mut self, name: Option<&str>) -> Self {
        self.request_id_header = name.map(str::to_owned);
        self
    }

    /// The key of credential fingerprints. Give `mcp-auth`'s `AuthLayerBuilder::fingerprint_key`
    /// the same one so failures and successes of one credential correlate. Default: random per
    /// process.
    pub fn fingerprint_key(mut self, key: Secret) -> Self {
        self.fingerprint_key_error = key.expose().is_empty();
        self.fingerprinter = Some(Fingerprinter::new(key.expose().as_bytes()));
        self
    }

    /// How the client address is found when no `ClientAddr` is in the request extensions
    /// (default: the peer address, no trusted proxies).
    pub fn client_addr_resolver(mut self, resolver: ClientAddrResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The wall clock for timestamps and token expiry (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The monotonic clock for durations and detector windows (default the system's).
    pub fn monotonic_clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.mono = clock;
        self
    }

    /// Record metrics through the `metrics` facade (default `true`).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// The per-client auth-failure detector (default: more than 10 in 60 s, banning); `None`
    /// turns it off.
    pub fn detect_auth_failures(mut self, rule: impl Into<Option<Rule>>) -> Self {
        self.detectors.auth_failures = rule.into();
        self
    }

    /// The global auth-failure detector (default: more than 100 in 60 s); `None` turns it off.
    pub fn detect_global_auth_failures(mut self, rule: impl Into<Option<Rule>>) -> Self {
        self.detectors.global_auth_failures = rule.into();
        self
    }

    /// The per-client request-flood detector (default: more than 100 in 60 s, alert only);
    /// `None` turns it off.
    pub fn detect_floods(mut self, rule: impl Into<Option<Rule>>) -> Self {
        self.detectors.flood = rule.into();
        self
    }

    /// Warn about tokens expiring within this time (default 1 h); `None` turns it off.
    pub fn detect_expiring_tokens(mut self, within: impl Into<Option<Duration>>) -> Self {
        self.detectors.token_warning = within.into();
        self
    }

    /// The ban list detectors add clients to (share it with the rate limiter). Without one,
    /// detectors only alert.
    pub fn ban_list(mut self, bans: BanList) -> Self {
        self.detectors.bans = Some(bans);
        self
    }

    /// How long a detector bans a client (default 15 min).
    pub fn ban_duration(mut self, duration: Duration) -> Self {
        self.detectors.ban_for = duration;
        self
    }

    /// Clients tracked per detector (default 10 000).
    pub fn detector_max_clients(mut self, max: usize) -> Self {
        self.detectors.max_clients = max;
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// `api_key_header` / `request_id_header` when not a valid header name, `fingerprint_key`
    /// when empty, `detect_auth_failures` / `detect_global_auth_failures` / `detect_floods` with
    /// a zero threshold or a window under 1 s, `detect_expiring_tokens` when zero,
    /// `ban_duration` when zero, `detector_max_clients` when zero,
    /// `tool_call_evidence_max_bytes` when zero.
    pub fn build(self) -> Result<AuditLayer, ConfigError> {
        let header = |setting: &str, name: &str| {
            HeaderName::try_from(name.trim())
                .map_err(|_| ConfigError::new(setting, "not a valid header name").with_value(name))
        };
        let api_key_headers = self
            .api_key_headers
            .iter()
            .map(|h| header("api_key_header", h))
            .collect::<Result<Vec<_>, _>>()?;
        let request_id_header = self
            .request_id_header
            .as_deref()
            .map(|h| header("request_id_header", h))
            .transpose()?;
        if self.fingerprint_key_error {
            return Err(ConfigError::new("fingerprint_key", "must not be empty"));
        }
        let d = &self.detectors;
        for (setting, rule) in [
            ("detect_auth_failures", d.auth_failures),
            ("detect_global_auth_failures", d.global_auth_failures),
            ("detect_floods", d.flood),
        ] {
            if let Some(rule) = rule {
                rule.validate(setting)?;
            }
        }
        if d.token_warning.is_some_and(|w| w.is_zero()) {
            return Err(ConfigError::new(
                "detect_expiring_tokens",
                "must be more than 0 (use None to turn it off)",
            ));
        }
        if d.ban_for.is_zero() {
            return Err(ConfigError::new("ban_duration", "must be more than 0").with_value("0s"));
        }
        if d.max_clients == 0 {
            return Err(
                ConfigError::new("detector_max_clients", "must be at least 1").with_value("0"),
            );
        }
        if self.evidence_max_bytes == 0 {
            return Err(
                ConfigError::new("tool_call_evidence_max_bytes", "must be at least 1")
                    .with_value("0"),
            );
        }
        let evidence = match self.evidence {
            Some(key) => key,
            None => self.file.as_ref().map(|f| f.key().clone()),
        }
        .map(|key| {
            Arc::new(EvidenceConfig {
                key,
                max_bytes: self.evidence_max_bytes,
            })
        });
        let masker = Masker::new(&self.prefixes, &self.params);
        let mut sinks = self.sinks;
        if self.tracing.unwrap_or(sinks.is_empty()) {
            sinks.insert(0, Arc::new(TracingSink));
        }
        let mut prefix = [0u8; 4];
        let _ = getrandom::fill(&mut prefix);
        let detectors = Detectors::new(
            self.detectors,
            Arc::clone(&self.clock),
            Arc::clone(&self.mono),
            masker.clone(),
        );
        Ok(AuditLayer {
            shared: Arc::new(Shared {
                enabled: self.enabled,
                sinks: sinks.into(),
                file: self.file,
                masker,
                fingerprinter: self.fingerprinter.unwrap_or_else(Fingerprinter::random),
                api_key_headers: api_key_headers.into(),
                request_id_header,
                resolver: self.resolver,
                clock: self.clock,
                mono: self.mono,
                detectors,
                metrics: self.metrics,
                id_prefix: u32::from_be_bytes(prefix),
                counter: AtomicU64::new(0),
                evidence,
            }),
        })
    }
}

/// What the layer notes about a request on the way in.
struct Pending {
    time: SystemTime,
    start: u64,
    request_id: RequestId,
    method: Method,
    uri: Uri,
    version: Version,
    client: Option<ClientAddr>,
    user_agent: Option<HeaderValue>,
    request_bytes: Option<u64>,
    mcp: McpInfo,
    credential: Option<(CredentialSource, Credential)>,
}

impl Shared {
    fn capture<B>(&self, req: &Request<B>) -> Pending {
        let headers = req.headers();
        let request_id = self
            .request_id_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(RequestId::from_header)
            .unwrap_or_else(|| RequestId::Generated {
                prefix: self.id_prefix,
                counter: self.counter.fetch_add(1, Ordering::Relaxed),
            });
        let client = req
            .extensions()
            .get::<ClientAddr>()
            .copied()
            .or_else(|| self.resolver.resolve(headers, req.extensions()));
        let mcp = match req.extensions().get::<McpCall>() {
            Some(call) => McpInfo::Call(call.clone()),
            None => match headers.get(&MCP_METHOD) {
                Some(method) => McpInfo::Headers {
                    method: method.clone(),
                    name: headers.get(&MCP_NAME).cloned(),
                },
                None => McpInfo::None,
            },
        };
        Pending {
            time: self.clock.now(),
            start: self.mono.now_nanos(),
            request_id,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            client,
            user_agent: headers.get(USER_AGENT).cloned(),
            request_bytes: headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
            mcp,
            credential: find_credential(headers, &self.api_key_headers, req.uri().query()),
        }
    }

    /// Build the record and the detectors' events, and record the metrics.
    fn finish(
        &self,
        p: Pending,
        response: Option<ResponseView<'_>>,
        completion: Completion,
    ) -> (AuditRecord, Vec<crate::record::SecurityEvent>) {
        let duration = Duration::from_nanos(self.mono.now_nanos().saturating_sub(p.start));
        let mut status = None;
        let mut response_bytes = None;
        let mut auth = None;
        let mut principal = None;
        let mut auth_fingerprint = None;
        let mut rate_limit = None;
        let mut budget = None;
        let mut rejection = None;
        let mut mcp = p.mcp;
        if let Some(res) = response {
            status = Some(res.status);
            response_bytes = res.bytes;
            let ext = res.extensions;
            match ext.get::<AuthOutcome>() {
                Some(AuthOutcome::Authenticated { principal: p }) => {
                    auth = Some(AuthSummary::Authenticated);
                    principal = Some(p.clone());
                }
                Some(AuthOutcome::Exempt) => auth = Some(AuthSummary::Exempt),
                Some(AuthOutcome::Rejected {
                    failure,
                    principal: p,
                    fingerprint,
                }) => {
                    auth = Some(AuthSummary::Rejected(*failure));
                    principal = p.clone();
                    auth_fingerprint = fingerprint.clone();
                }
                // A future outcome this version does not know.
                Some(_) | None => {}
            }
            rate_limit = ext.get::<RateLimitOutcome>().cloned();
            budget = ext.get::<BudgetOutcome>().cloned();
            rejection = ext.get::<Rejection>().map(|r| RejectionSummary {
                code: r.code(),
                detail: r.internal_detail().map(|d| d.to_owned().into()),
            });
            if let Some(call) = ext.get::<McpCall>() {
                mcp = McpInfo::Call(call.clone());
            }
        }
        let fingerprint = match auth_fingerprint {
            Some(f) => Some(FingerprintText::FromAuth(f)),
            None => p.credential.as_ref().map(|(source, c)| {
                let compute = || c.fingerprint(&self.fingerprinter);
                FingerprintText::Own(match (source, &auth, &principal) {
                    // The one credential, in `Authorization: Bearer`, which authentication always
                    // reads: it is the credential that authenticated the principal, so an API
                    // key's principal may remember its fingerprint (one HMAC per key, not per
                    // request). From another source it might not be (authentication may read
                    // another header), so it is computed.
                    (CredentialSource::Bearer, Some(AuthSummary::Authenticated), Some(who)) => {
                        who.credential_fingerprint(&self.fingerprinter, compute)
                    }
                    _ => compute(),
                })
            }),
        };
        // A missing scope, or a DPoP nonce to retry with (RFC 9449 §8), is not a failed
        // credential: neither counts towards the auth-failure detectors.
        let auth_failed = matches!(auth, Some(AuthSummary::Rejected(f))
            if !matches!(f, AuthFailure::InsufficientScope | AuthFailure::DpopNonceRequired));
        if self.metrics {
            if completion != Completion::Cancelled {
                m::duration(m::status_class(status), duration.as_secs_f64());
            }
            if let Some(AuthSummary::Rejected(f)) = auth {
                m::auth_failure(f.as_str());
            }
            let limited = match &rate_limit {
                Some(
                    RateLimitOutcome::Limited { policy, .. }
                    | RateLimitOutcome::Degraded {
                        policy,
                        admitted: false,
                        ..
                    },
                ) => {
                    m::rate_limited(policy);
                    true
                }
                Some(RateLimitOutcome::Banned { .. }) => {
                    m::rate_limited("ban");
                    true
                }
                _ => false,
            };
            if let Some(r) = &rejection
                && !limited
                && !matches!(auth, Some(AuthSummary::Rejected(_)))
            {
                m::violation(r.code);
            }
        }
        let authenticated = match (&auth, &principal) {
            (Some(AuthSummary::Authenticated), Some(p)) => Some(p),
            _ => None,
        };
        let events = self.detectors.observe(
            &Observation {
                client: p.client.as_ref(),
                auth_failed,
                authenticated,
                request_id: &p.request_id,
            },
            self.metrics,
        );
        let record = AuditRecord {
            time: p.time,
            request_id: p.request_id,
            method: p.method,
            uri: p.uri,
            version: p.version,
            client: p.client,
            user_agent: p.user_agent,
            request_bytes: p.request_bytes,
            mcp,
            auth_type: p.credential.as_ref().map(|(s, _)| *s),
            fingerprint,
            status,
            duration,
            response_bytes,
            principal,
            auth,
            rate_limit,
            budget,
            rejection,
            completion,
            masker: self.masker.clone(),
        };
        if self.metrics {
            m::request(&record);
        }
        (record, events)
    }

    /// Offer the record and events to every sink; the waits of sinks that push back.
    fn submit(
        &self,
        record: AuditRecord,
        events: Vec<crate::record::SecurityEvent>,
    ) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let mut waits = Vec::new();
        let mut offer = |event: Arc<AuditEvent>| {
            for sink in &*self.sinks {
                if let Submit::Wait(w) = sink.submit(&event) {
                    waits.push(w);
                }
            }
        };
        offer(Arc::new(AuditEvent::Request(record)));
        for e in events {
            offer(Arc::new(AuditEvent::Security(e)));
        }
        waits
    }
}

mod env;
mod evidence;
mod gate;
mod service;

pub use crate::evidence::AuditBody;
pub use env::AuditSettings;
pub use gate::{AuditGate, AuditGateLayer, GateFuture, REFUSED_BODY};
use service::ResponseView;
pub use service::{Audit, ResponseFuture};

#[cfg(test)]
mod tests;
