//! The report as text, for a terminal: every string from the trail passes [`clean`] first, so a
//! principal or tool name cannot move the cursor, recolour the screen or reverse the text.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::Report;
use super::timeline::width_text;
use super::top::TopCounts;

/// `s` with control characters (escape sequences included) and bidirectional overrides
/// written as `\u{…}`, so text from the trail cannot act on the terminal.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A time as RFC 3339, UTC, to the second.
pub(crate) fn time_text(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration in words, to the second (`1h 2m 3s`).
pub(crate) fn duration_text(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The text report: the verification first (a failure in capitals, with a warning that the
/// numbers below come from records that did not verify), then the summary.
pub(crate) fn render(report: &Report<'_>) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcp-security audit report: {} file(s)",
        report.files.len()
    );
    if report.verified {
        let _ = writeln!(out, "Verified: yes");
        for line in report.verification.lines() {
            let _ = writeln!(out, "  {}", clean(line));
        }
    } else {
        let _ = writeln!(out, "!!! VERIFICATION FAILED !!!");
        for line in report.verification.lines() {
            let _ = writeln!(out, "!!! {}", clean(line));
        }
        let _ = writeln!(
            out,
            "!!! The trail did not verify: the numbers below are read from records that may have been altered."
        );
    }
    out.push('\n');
    match (s.first, s.last) {
        (Some(a), Some(b)) => {
            let span = b.duration_since(a).unwrap_or(Duration::ZERO);
            let _ = writeln!(
                out,
                "Time range: {} .. {} ({})",
                time_text(a),
                time_text(b),
                duration_text(span)
            );
        }
        _ => {
            let _ = writeln!(out, "Time range: no records");
        }
    }
    let d = s.decisions;
    let _ = writeln!(
        out,
        "Requests: {} (allowed {}, refused {}, error {}, cancelled {})",
        s.requests, d.allowed, d.rejected, d.error, d.cancelled
    );
    let c = s.status.by_class;
    let _ = writeln!(
        out,
        "Status: 2xx {}, 3xx {}, 4xx {}, 5xx {}, none {}",
        c[1], c[2], c[3], c[4], s.status.none
    );
    let _ = writeln!(
        out,
        "Principals: {} ({} requests without one); client addresses: {}",
        s.principals.distinct_text(),
        s.anonymous,
        s.clients.distinct_text()
    );
    let bans = s.bans.total().total;
    let _ = writeln!(
        out,
        "Bans: {bans} by detectors; {} requests refused while banned",
        s.refused_while_banned
    );
    if !s.secrets.is_empty() || s.manifest_drift > 0 || s.failed_closed > 0 {
        let _ = writeln!(
            out,
            "Answers with credentials found: {}; tool lists drifted from the manifest: {}; responses failed closed: {}",
            s.secrets.total().total,
            s.manifest_drift,
            s.failed_closed
        );
    }
    if let Some((_, b)) = s.timeline.buckets().iter().max_by_key(|(_, b)| b.requests) {
        let _ = writeln!(
            out,
            "Busiest {}: {} requests ({} refused)",
            width_text(s.timeline.width()),
            b.requests,
            b.refused
        );
    }
    let n = report.top;
    table(
        &mut out,
        "Refusals by reason",
        "refusals",
        &s.reasons,
        n,
        false,
    );
    table(
        &mut out,
        "Top principals",
        "requests",
        &s.principals,
        n,
        true,
    );
    table(&mut out, "Top tools", "calls", &s.tools, n, true);
    table(&mut out, "Top MCP methods", "requests", &s.methods, n, true);
    table(
        &mut out,
        "Top client addresses",
        "requests",
        &s.clients,
        n,
        true,
    );
    table(
        &mut out,
        "Bans by client address",
        "bans",
        &s.bans,
        n,
        false,
    );
    table(
        &mut out,
        "Detector alerts",
        "alerts",
        &s.detectors,
        n,
        false,
    );
    if s.unreadable > 0 {
        let _ = writeln!(
            out,
            "\nUnreadable lines: {} of {} (not records; skipped)",
            s.unreadable, s.lines
        );
    }
    for f in &s.unreadable_files {
        let _ = writeln!(out, "Unreadable file: {}", clean(f));
    }
    out
}

fn table(out: &mut String, title: &str, what: &str, t: &TopCounts, n: usize, refused: bool) {
    if t.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{title} ({what}{}):",
        if refused { ", refused" } else { "" }
    );
    let rows = t.top(n);
    let width = rows
        .iter()
        .map(|(k, _)| clean(k).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 48);
    let mut line = |key: &str, total: u64, refused_count: u64| {
        let _ = write!(out, "  {key:<width$}  {total:>8}");
        if refused {
            let _ = write!(out, "  {refused_count:>8}");
        }
        out.push('\n');
    };
    for (key, count) in &rows {
        line(&clean(key), count.total, count.refused);
    }
    let rest = t.rest(n);
    if rest.total > 0 {
        line("(other)", rest.total, rest.refused);
    }
}
