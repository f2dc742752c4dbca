//! [`Summary`]: what a trail holds, read one line at a time (the file is never held whole).

use std::borrow::Cow;
use std::io::BufRead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::timeline::Timeline;
use super::top::TopCounts;

/// The longest line read; longer ones are counted as unreadable and skipped. The audit writer's
/// own limit (`mcp_security_audit::chain::MAX_LINE_BYTES`).
pub(crate) const MAX_LINE_BYTES: usize = mcp_security::audit::chain::MAX_LINE_BYTES;

/// The members of a trail line the report reads (see `mcp_security_audit::record` and
/// `mcp_security_audit::chain` for the format); unknown members are skipped, so records with
/// more fields read the same.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    // request
    #[serde(default)]
    status_code: Option<u64>,
    #[serde(borrow, default)]
    client_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    principal_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    mcp_method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    mcp_tool: Option<Cow<'a, str>>,
    #[serde(default)]
    mcp_batch: Option<u64>,
    #[serde(borrow, default)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rate_limit: Option<Cow<'a, str>>,
    // security
    #[serde(borrow, default)]
    detector: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    // completion
    #[serde(borrow, default)]
    secrets: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    secrets_action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    manifest_drift: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    failed_closed: Option<Cow<'a, str>>,
}

/// Requests by how they ended (`decision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decisions {
    /// `allowed`: every layer let it through.
    pub(crate) allowed: u64,
    /// `rejected`: a layer refused it.
    pub(crate) rejected: u64,
    /// `error`: the service failed.
    pub(crate) error: u64,
    /// `cancelled`: the client went away first.
    pub(crate) cancelled: u64,
}

/// Requests by status class; `none` when the service failed or the request was cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatusClasses {
    /// 1xx, 2xx, 3xx, 4xx, 5xx.
    pub(crate) by_class: [u64; 5],
    /// No status.
    pub(crate) none: u64,
}

/// Everything the report shows, added up over the lines of every file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    /// Lines read, readable or not.
    pub(crate) lines: u64,
    /// Lines that are not records (too long, not JSON, no timestamp).
    pub(crate) unreadable: u64,
    /// Files that could not be opened or read to their end, with why.
    pub(crate) unreadable_files: Vec<String>,
    /// Records by kind (`request`, `security`, `checkpoint`, …).
    pub(crate) kinds: TopCounts,
    /// The first and last record time over every file.
    pub(crate) first: Option<SystemTime>,
    /// See `first`.
    pub(crate) last: Option<SystemTime>,
    /// `request` records.
    pub(crate) requests: u64,
    /// Requests by decision.
    pub(crate) decisions: Decisions,
    /// Requests by status class.
    pub(crate) status: StatusClasses,
    /// Refused requests by `reason`.
    pub(crate) reasons: TopCounts,
    /// Requests by principal (`refused` counts its refusals).
    pub(crate) principals: TopCounts,
    /// Requests without a principal (not authenticated, or exempt).
    pub(crate) anonymous: u64,
    /// Tool calls by tool (each tool of a batch counted).
    pub(crate) tools: TopCounts,
    /// Requests by MCP method.
    pub(crate) methods: TopCounts,
    /// Requests by client address.
    pub(crate) clients: TopCounts,
    /// Requests and refusals over time.
    pub(crate) timeline: Timeline,
    /// Bans by a detector (`security` records with `action` `ban`), by client address.
    pub(crate) bans: TopCounts,
    /// Requests refused because their client was banned (`rate_limit` `banned`).
    pub(crate) refused_while_banned: u64,
    /// Detector firings by detector (`refused` counts those that banned).
    pub(crate) detectors: TopCounts,
    /// Answers in which the result guard found credentials, by action (`redacted`, `blocked`).
    pub(crate) secrets: TopCounts,
    /// Tool lists that differed from the pinned manifest.
    pub(crate) manifest_drift: u64,
    /// Responses replaced by a JSON-RPC error by a response-side layer.
    pub(crate) failed_closed: u64,
}

impl Summary {
    /// Read every line of `reader` (one file of the trail), in bounded memory.
    pub(crate) fn read(&mut self, name: &str, mut reader: impl BufRead) {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            let limit = MAX_LINE_BYTES as u64 + 1;
            match std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    self.unreadable_files.push(format!("{name}: {e}"));
                    return;
                }
            }
            self.lines += 1;
            if buf.last() != Some(&b'\n') && buf.len() as u64 == limit {
                // too long: skip to the end of the line
                self.unreadable += 1;
                if let Err(e) = reader.skip_until(b'\n') {
                    self.unreadable_files.push(format!("{name}: {e}"));
                    return;
                }
                continue;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if !self.add_line(line) {
                self.unreadable += 1;
            }
        }
    }

    /// Count one line; `false` when it is not a record.
    fn add_line(&mut self, line: &[u8]) -> bool {
        let Ok(l) = serde_json::from_slice::<Line<'_>>(line) else {
            return false;
        };
        let Ok(time) = humantime::parse_rfc3339(&l.timestamp) else {
            return false;
        };
        self.kinds.add(&l.kind, false);
        self.first = Some(self.first.map_or(time, |f| f.min(time)));
        self.last = Some(self.last.map_or(time, |f| f.max(time)));
        match &*l.kind {
            "request" => self.add_request(&l, time),
            "security" => self.add_security(&l),
            "completion" => self.add_completion(&l),
            _ => {}
        }
        true
    }

    fn add_request(&mut self, l: &Line<'_>, time: SystemTime) {
        self.requests += 1;
        let decision = l.decision.as_deref().unwrap_or("");
        let refused = decision == "rejected";
        match decision {
            "allowed" => self.decisions.allowed += 1,
            "rejected" => self.decisions.rejected += 1,
            "error" => self.decisions.error += 1,
            "cancelled" => self.decisions.cancelled += 1,
            _ => {}
        }
        match l.status_code.map(|s| s / 100) {
            Some(c @ 1..=5) => self.status.by_class[c as usize - 1] += 1,
            _ => self.status.none += 1,
        }
        if refused {
            self.reasons
                .add(l.reason.as_deref().unwrap_or("(no reason)"), true);
        }
        match l.principal_id.as_deref() {
            Some(p) => self.principals.add(p, refused),
            None => self.anonymous += 1,
        }
        if let Some(m) = l.mcp_method.as_deref() {
            self.methods.add(m, refused);
        }
        if let Some(tool) = l.mcp_tool.as_deref() {
            if l.mcp_batch.is_some() {
                // a batch's tools are joined by ','
                for t in tool.split(',').filter(|t| !t.is_empty()) {
                    self.tools.add(t, refused);
                }
            } else {
                self.tools.add(tool, refused);
            }
        }
        self.clients
            .add(l.client_ip.as_deref().unwrap_or("(unknown)"), refused);
        if l.rate_limit.as_deref() == Some("banned") {
            self.refused_while_banned += 1;
        }
        let secs = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        self.timeline.add(secs, refused);
    }

    fn add_security(&mut self, l: &Line<'_>) {
        let banned = l.action.as_deref() == Some("ban");
        self.detectors
            .add(l.detector.as_deref().unwrap_or("(unknown)"), banned);
        if banned {
            self.bans
                .add(l.client_ip.as_deref().unwrap_or("(unknown)"), true);
        }
    }

    fn add_completion(&mut self, l: &Line<'_>) {
        if l.secrets.is_some() {
            self.secrets
                .add(l.secrets_action.as_deref().unwrap_or("(unknown)"), false);
        }
        if l.manifest_drift.is_some() {
            self.manifest_drift += 1;
        }
        if l.failed_closed.is_some() {
            self.failed_closed += 1;
        }
    }
}
