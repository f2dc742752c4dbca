//! The report as one self-contained HTML page: inline CSS and SVG, no script, no font, image or
//! stylesheet from anywhere, and a Content-Security-Policy that would forbid them anyway. Every
//! string from the trail (principals, tools, reasons, addresses: chosen by whoever sent the
//! requests) goes through [`esc`].

use std::fmt::Write as _;
use std::time::Duration;

use super::Report;
use super::svg;
use super::text::{duration_text, time_text};
use super::timeline::width_text;
use super::top::TopCounts;

/// The page's `<title>`.
pub(crate) const TITLE: &str = "mcp-security audit report";

/// No script, no network: styles only from the page itself.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;padding:24px 32px;color:#1f2328;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.sub{color:#57606a;margin:0 0 16px}
.banner{padding:14px 18px;border-radius:6px;margin:0 0 18px;font-size:15px}
.banner.ok{background:#dafbe1;border:1px solid #4ac26b}
.banner.failed{background:#ffebe9;border:2px solid #cf222e;color:#82071e}
.banner.failed strong{font-size:20px}
.banner pre{white-space:pre-wrap;word-break:break-all;margin:6px 0 0;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;min-width:130px}
.card .n{font-size:26px;font-weight:600}.card .l{color:#57606a;font-size:13px}
.card.bad .n{color:#c0392b}
.chart{width:100%;height:auto;max-width:1000px;display:block}
.chart text{font-size:13px;fill:#1f2328}.chart .axis{fill:#57606a;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px 32px}
table{border-collapse:collapse;font-size:14px;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;word-break:break-all}
td.n,th.n{text-align:right;white-space:nowrap}
footer{margin-top:32px;color:#57606a;font-size:12px}
";

/// `s` safe as HTML text and as a quoted attribute value.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && !matches!(c, '\n' | '\t') => {
                out.push('\u{fffd}');
            }
            c => out.push(c),
        }
    }
    out
}

/// The page.
pub(crate) fn render(report: &Report<'_>) -> String {
    let s = &report.summary;
    let mut p = String::with_capacity(64 * 1024);
    let _ = write!(
        p,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>{TITLE}</title><style>{STYLE}</style></head><body>"#
    );
    let _ = write!(p, "<h1>Audit report</h1>");
    let range = match (s.first, s.last) {
        (Some(a), Some(b)) => format!(
            "{} to {} ({})",
            time_text(a),
            time_text(b),
            duration_text(b.duration_since(a).unwrap_or(Duration::ZERO))
        ),
        _ => "no records".to_owned(),
    };
    let _ = write!(
        p,
        r#"<p class="sub" id="range">{} · {} file(s): {}</p>"#,
        esc(&range),
        report.files.len(),
        esc(&report.files.join(", "))
    );
    if report.verified {
        let _ = write!(
            p,
            r#"<div class="banner ok" id="verification"><strong>Chain verified.</strong><pre>{}</pre></div>"#,
            esc(report.verification.trim_end())
        );
    } else {
        let _ = write!(
            p,
            r#"<div class="banner failed" id="verification"><strong>VERIFICATION FAILED.</strong> The numbers below are read from records that may have been altered.<pre>{}</pre></div>"#,
            esc(report.verification.trim_end())
        );
    }
    let d = s.decisions;
    let cards: [(&str, String, bool); 7] = [
        ("requests", s.requests.to_string(), false),
        ("refused", d.rejected.to_string(), d.rejected > 0),
        ("errors", d.error.to_string(), d.error > 0),
        ("principals", s.principals.distinct_text(), false),
        ("client addresses", s.clients.distinct_text(), false),
        (
            "bans",
            s.bans.total().total.to_string(),
            s.bans.total().total > 0,
        ),
        (
            "detector alerts",
            s.detectors.total().total.to_string(),
            s.detectors.total().total > 0,
        ),
    ];
    p.push_str(r#"<div class="cards" id="cards">"#);
    for (label, n, bad) in cards {
        let _ = write!(
            p,
            r#"<div class="card{}"><div class="n">{n}</div><div class="l">{label}</div></div>"#,
            if bad { " bad" } else { "" }
        );
    }
    p.push_str("</div>");

    let buckets = s.timeline.buckets();
    let _ = write!(
        p,
        "<h2>Requests and refusals over time <small>(per {})</small></h2>",
        esc(&width_text(s.timeline.width()))
    );
    p.push_str(&svg::timeline(&buckets, s.timeline.width()));

    let n = report.top;
    p.push_str(r#"<div class="grid"><div>"#);
    p.push_str("<h2>Refusals by reason</h2>");
    p.push_str(&svg::bars(
        "reasons",
        "Refusals by reason",
        &rows(&s.reasons, n),
        svg::REFUSED,
    ));
    p.push_str("</div><div><h2>Top tools</h2>");
    p.push_str(&svg::bars(
        "tools",
        "Top tools by calls",
        &rows(&s.tools, n),
        svg::ALLOWED,
    ));
    p.push_str("</div></div>");

    p.push_str(r#"<div class="grid">"#);
    table(
        &mut p,
        "principals",
        "Top principals",
        "requests",
        &s.principals,
        n,
    );
    table(
        &mut p,
        "clients",
        "Top client addresses",
        "requests",
        &s.clients,
        n,
    );
    table(&mut p, "tools-table", "Tools", "calls", &s.tools, n);
    table(&mut p, "methods", "MCP methods", "requests", &s.methods, n);
    table(&mut p, "bans", "Bans by client address", "bans", &s.bans, n);
    table(
        &mut p,
        "detectors",
        "Detector alerts (refused: banned)",
        "alerts",
        &s.detectors,
        n,
    );
    p.push_str("</div>");

    let c = s.status.by_class;
    let _ = write!(
        p,
        "<h2>Details</h2><table id=\"details\"><tr><td>status 2xx / 3xx / 4xx / 5xx / none</td><td class=\"n\">{} / {} / {} / {} / {}</td></tr><tr><td>requests without a principal</td><td class=\"n\">{}</td></tr><tr><td>requests refused while banned</td><td class=\"n\">{}</td></tr><tr><td>answers with credentials found (result guard)</td><td class=\"n\">{}</td></tr><tr><td>tool lists drifted from the manifest</td><td class=\"n\">{}</td></tr><tr><td>responses failed closed</td><td class=\"n\">{}</td></tr><tr><td>lines read / unreadable</td><td class=\"n\">{} / {}</td></tr></table>",
        c[1],
        c[2],
        c[3],
        c[4],
        s.status.none,
        s.anonymous,
        s.refused_while_banned,
        s.secrets.total().total,
        s.manifest_drift,
        s.failed_closed,
        s.lines,
        s.unreadable
    );
    for f in &s.unreadable_files {
        let _ = write!(
            p,
            "<p class=\"banner failed\">Unreadable file: {}</p>",
            esc(f)
        );
    }
    let _ = writeln!(
        p,
        "<footer>mcp-security {} · audit report</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    p
}

fn rows(t: &TopCounts, n: usize) -> Vec<(&str, u64)> {
    let mut rows: Vec<(&str, u64)> = t.top(n).into_iter().map(|(k, c)| (k, c.total)).collect();
    let rest = t.rest(n).total;
    if rest > 0 {
        rows.push(("(other)", rest));
    }
    rows
}

fn table(p: &mut String, id: &str, title: &str, what: &str, t: &TopCounts, n: usize) {
    let _ = write!(
        p,
        "<div><h2>{title}</h2><table id=\"{id}\"><tr><th>name</th><th class=\"n\">{what}</th><th class=\"n\">refused</th></tr>"
    );
    if t.is_empty() {
        p.push_str("<tr><td>none</td><td></td><td></td></tr>");
    }
    for (key, c) in t.top(n) {
        let _ = write!(
            p,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(key),
            c.total,
            c.refused
        );
    }
    let rest = t.rest(n);
    if rest.total > 0 {
        let _ = write!(
            p,
            "<tr><td>(other)</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            rest.total, rest.refused
        );
    }
    p.push_str("</table></div>");
}
