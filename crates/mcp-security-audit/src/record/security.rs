//! [`SecurityEvent`]: what a detector saw, and which one ([`DetectorKind`]).

use super::*;

/// Which detector fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DetectorKind {
    /// Too many authentication failures from one client.
    AuthFailureBurst,
    /// Too many authentication failures from all clients together.
    GlobalAuthFailureBurst,
    /// Too many requests from one client.
    RequestFlood,
    /// An authenticated token expires soon.
    TokenExpiringSoon,
}

impl DetectorKind {
    /// `auth_failure_burst`, `global_auth_failure_burst`, `request_flood`,
    /// `token_expiring_soon`.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::AuthFailureBurst => "auth_failure_burst",
            DetectorKind::GlobalAuthFailureBurst => "global_auth_failure_burst",
            DetectorKind::RequestFlood => "request_flood",
            DetectorKind::TokenExpiringSoon => "token_expiring_soon",
        }
    }
}

/// A detector fired: a security event, written to every sink (a `security` line in the file, a
/// `WARN` event for `tracing`).
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub(crate) time: SystemTime,
    pub(crate) detector: DetectorKind,
    pub(crate) client: Option<IpAddr>,
    pub(crate) principal: Option<Principal>,
    pub(crate) count: u64,
    pub(crate) threshold: u64,
    pub(crate) window: Duration,
    pub(crate) ban_until: Option<SystemTime>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) request_id: RequestId,
    pub(crate) masker: Masker,
}

impl SecurityEvent {
    /// When it fired.
    pub fn time(&self) -> SystemTime {
        self.time
    }

    /// Which detector.
    pub fn detector(&self) -> DetectorKind {
        self.detector
    }

    /// The client it is about (for per-client detectors, the rate-limit key: IPv6 clients by
    /// prefix).
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// The principal it is about (token expiry).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The (estimated, sliding-window) count that crossed the threshold.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The threshold crossed (the detector fires above it).
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The window of the count.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Until when the client was banned, when the detector banned it.
    pub fn ban_until(&self) -> Option<SystemTime> {
        self.ban_until
    }

    /// When the token expires (token expiry).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The id of the request that triggered it.
    pub fn request_id(&self) -> Cow<'_, str> {
        self.request_id.to_text(&self.masker)
    }

    /// `ban` when the client was banned, else `alert`.
    pub fn action(&self) -> &'static str {
        if self.ban_until.is_some() {
            "ban"
        } else {
            "alert"
        }
    }

    pub(crate) fn write_body(&self, buf: &mut Vec<u8>, seq: u64) {
        let mut o = JsonObject::begin(buf, seq, RecordKind::Security, self.time);
        o.str("detector", Some(self.detector.as_str()));
        o.str("action", Some(self.action()));
        o.display("client_ip", self.client);
        let principal = self
            .principal
            .as_ref()
            .map(|p| truncate(self.masker.mask_text(p.id()), MAX_NAME_BYTES));
        o.str("principal_id", principal.as_deref());
        o.u64("count", Some(self.count));
        o.u64("threshold", Some(self.threshold));
        o.u64("window_secs", Some(self.window.as_secs()));
        o.time("ban_until", self.ban_until);
        o.time("expires_at", self.expires_at);
        o.str("request_id", Some(&self.request_id()));
    }
}
