//! `audit report FILE... [verify options] [--top N] [--html OUT.html]`: what an audit trail
//! holds, at a glance.
//!
//! The chain is verified first, exactly as `audit verify` does with the same options (the
//! chain key from `--key-file` or `MCP_AUDIT_HMAC_KEY(_FILE)`, and/or `--public-key`,
//! `--anchor`, `--allow-rotated-end`). Then every file is read once more, line by line (a
//! file is never held whole; per-key tables are bounded, see `top.rs`, and the timeline is,
//! see `timeline.rs`), and the report prints:
//!
//! - the verification's result: `Verified: yes` and the verifier's lines, or, when it failed,
//!   `!!! VERIFICATION FAILED !!!` with the failure at the very top and a warning that the
//!   numbers come from records that may have been altered;
//! - the time range, requests by decision and status class, distinct principals and client
//!   addresses, bans, result-guard findings, the busiest time bucket;
//! - tables (top N, default 10, with the rest as "(other)"): refusals by reason, principals,
//!   tools, MCP methods, client addresses, bans by client address, detector alerts.
//!
//! With `--html OUT.html` it also writes one self-contained page (`html.rs`): the same numbers
//! with inline SVG charts, no script, no external resource, a Content-Security-Policy that
//! forbids both, every string from the trail HTML-escaped.
//!
//! Exit status: 0 when the trail verified; 1 when it did not (the report and the page are
//! still produced, marked as unverified, because what happened is what an operator needs
//! then most); 2 for a usage error, a missing key or a page that cannot be written.

use std::io::BufReader;
use std::process::ExitCode;

use crate::args::Flags;
use crate::audit::{VERIFY_OPTIONS, VERIFY_SWITCHES, verify};
use crate::emit;

mod html;
mod summary;
mod svg;
mod text;
mod timeline;
mod top;

#[cfg(test)]
pub(crate) mod test_trail;
#[cfg(test)]
mod tests;

pub(crate) use summary::Summary;

/// The most rows a table may be asked for with `--top`.
const MAX_TOP: usize = 100;

/// What the report shows: the verification and the summary.
pub(crate) struct Report<'a> {
    /// The files, as given.
    pub(crate) files: &'a [String],
    /// Whether every verification check passed.
    pub(crate) verified: bool,
    /// The verifier's lines (`OK: …`, warnings, or `FAILED: …`).
    pub(crate) verification: String,
    /// What the records add up to.
    pub(crate) summary: Summary,
    /// Rows per table.
    pub(crate) top: usize,
}

impl<'a> Report<'a> {
    /// Read `files` (each once, line by line) into a report with the given verification.
    pub(crate) fn build(
        files: &'a [String],
        verified: bool,
        verification: String,
        top: usize,
    ) -> Self {
        let mut summary = Summary::default();
        let mut seen: Vec<&String> = Vec::new();
        for file in files {
            if seen.contains(&file) {
                continue;
            }
            seen.push(file);
            match std::fs::File::open(file) {
                Ok(f) => summary.read(file, BufReader::new(f)),
                Err(e) => summary.unreadable_files.push(format!("{file}: {e}")),
            }
        }
        Report {
            files,
            verified,
            verification,
            summary,
            top,
        }
    }

    /// The text report.
    pub(crate) fn text(&self) -> String {
        text::render(self)
    }

    /// The HTML page.
    pub(crate) fn html(&self) -> String {
        html::render(self)
    }
}

/// Run `audit report`; see the [module docs](self).
pub(crate) fn run(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args, VERIFY_SWITCHES)?;
    let mut allowed = VERIFY_OPTIONS.to_vec();
    allowed.extend(["html", "top"]);
    flags.only(&allowed)?;
    let files = flags.positional();
    if files.is_empty() {
        return Err("audit report needs at least one file".into());
    }
    let top = match flags.one("top")? {
        None => 10,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| format!("--top: expected a number from 1 to {MAX_TOP}, got {v:?}"))?,
    };
    let html_out = flags.one("html")?;
    let verdict = verify(&flags, files)?;
    let report = Report::build(files, verdict.ok, verdict.text, top);
    emit(&report.text())?;
    if let Some(out) = html_out {
        std::fs::write(out, report.html()).map_err(|e| format!("--html {out}: {e}"))?;
        eprintln!("mcp-security: wrote the report page to {out}");
    }
    Ok(if report.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
