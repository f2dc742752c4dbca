//! The report's numbers on a trail the audit layer really wrote (see `test_trail.rs`).

use std::io::Cursor;

use super::summary::MAX_LINE_BYTES;
use super::test_trail::{self, HOSTILE_PRINCIPAL, HOSTILE_TOOL};
use super::timeline::Bucket;
use super::top::Count;
use super::*;

fn count(total: u64, refused: u64) -> Count {
    Count { total, refused }
}

fn files(trail: &test_trail::Trail) -> Vec<String> {
    vec![trail.log.display().to_string()]
}

#[tokio::test]
async fn the_numbers_of_a_real_trail() {
    let trail = test_trail::write("numbers").await;
    let files = files(&trail);
    let report = Report::build(&files, true, "OK: checked elsewhere\n".into(), 10);
    let s = &report.summary;
    assert_eq!(s.unreadable, 0);
    assert!(s.unreadable_files.is_empty());
    assert_eq!(s.requests, 21);
    assert_eq!(
        (
            s.decisions.allowed,
            s.decisions.rejected,
            s.decisions.error,
            s.decisions.cancelled
        ),
        (13, 8, 0, 0)
    );
    assert_eq!(s.status.by_class, [0, 13, 0, 8, 0]);
    assert_eq!(s.status.none, 0);
    // the ip rate limit (bob's last 2, the banned request) refuses before the body is read
    // and before authentication: those records have neither tool nor principal
    assert_eq!(
        s.reasons.top(10),
        vec![
            ("invalid_token", count(5, 5)),
            ("rate_limited", count(3, 3))
        ]
    );
    let principals = s.principals.top(10);
    assert_eq!(
        principals,
        vec![
            ("alice", count(5, 0)),
            ("bob", count(5, 0)),
            (HOSTILE_PRINCIPAL, count(3, 0)),
        ],
        "{principals:?}"
    );
    // no token (2), a forged one (3), refused by the ip limit (3)
    assert_eq!(s.anonymous, 8);
    // each tool of the batch counts
    assert_eq!(
        s.tools.top(10),
        vec![
            ("echo", count(4 + 1 + 2 + 5 + 3, 2 + 3)),
            (HOSTILE_TOOL, count(2, 0)),
            ("search", count(1, 0)),
        ]
    );
    assert_eq!(
        s.methods.top(10),
        vec![
            ("tools/call", count(16, 5)),
            ("batch", count(1, 0)),
            ("tools/list", count(1, 0)),
        ]
    );
    assert_eq!(
        s.clients.top(10),
        vec![
            ("203.0.113.20", count(7, 2)),
            ("203.0.113.10", count(5, 0)),
            ("203.0.113.66", count(4, 4)),
            ("203.0.113.11", count(3, 0)),
            ("203.0.113.12", count(2, 2)),
        ]
    );
    assert_eq!(s.bans.top(10), vec![("203.0.113.66", count(1, 1))]);
    assert_eq!(s.refused_while_banned, 1);
    // tokens of 15 minutes expire "soon": one alert per principal that authenticated
    assert_eq!(
        s.detectors.top(10),
        vec![
            ("token_expiring_soon", count(3, 0)),
            ("auth_failure_burst", count(1, 1))
        ]
    );
    // kinds: start, 21 requests, 1 security event, close
    assert_eq!(s.kinds.top(10)[0], ("request", count(21, 0)));
    assert!(s.kinds.top(10).iter().any(|(k, _)| *k == "close"));
    // time range and timeline
    let (first, last) = (s.first.unwrap(), s.last.unwrap());
    assert!(first <= last);
    let buckets = s.timeline.buckets();
    let total = buckets.iter().fold(Bucket::default(), |mut t, (_, b)| {
        t.requests += b.requests;
        t.refused += b.refused;
        t
    });
    assert_eq!(
        total,
        Bucket {
            requests: 21,
            refused: 8
        }
    );
    std::fs::remove_dir_all(&trail.dir).unwrap();
}

/// Every tag of a page (from `<` to `>`), for checks on attributes.
fn tags(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        out.push(&rest[start..start + len + 1]);
        rest = &rest[start + len + 1..];
    }
    out
}

#[tokio::test]
async fn text_and_page_of_a_verified_trail_escape_what_attackers_chose() {
    let trail = test_trail::write("page").await;
    let files = files(&trail);
    let flags = Flags::parse(
        &[
            "--key-file".to_owned(),
            trail.key_file.display().to_string(),
        ],
        &[],
    )
    .unwrap();
    let verdict = verify(&flags, &files).unwrap();
    assert!(verdict.ok, "{}", verdict.text);
    let report = Report::build(&files, verdict.ok, verdict.text, 3);
    let text = report.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mcp-security audit report: 1 file(s)");
    assert_eq!(lines[1], "Verified: yes");
    assert!(lines[2].starts_with("  OK: 1 file(s), "), "{text}");
    assert!(text.contains("\nRequests: 21 (allowed 13, refused 8, error 0, cancelled 0)\n"));
    assert!(text.contains("\nStatus: 2xx 13, 3xx 0, 4xx 8, 5xx 0, none 0\n"));
    assert!(text.contains("\nBans: 1 by detectors; 1 requests refused while banned\n"));
    // --top 3: three rows and the rest
    let clients = text
        .split("Top client addresses (requests, refused):\n")
        .nth(1)
        .unwrap();
    let rows: Vec<&str> = clients.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 4, "{clients}");
    assert!(rows[0].starts_with("  203.0.113.20 ") && rows[0].ends_with(" 7         2"));
    assert!(
        rows[3].starts_with("  (other) ") && rows[3].ends_with(" 5         2"),
        "{rows:?}"
    );

    let html = report.html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>mcp-security audit report</title>"));
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none';"));
    assert!(html.contains(r#"<div class="banner ok" id="verification">"#));
    // the attacker's strings appear only escaped
    assert!(!html.contains(HOSTILE_PRINCIPAL) && !html.contains(HOSTILE_TOOL));
    assert!(html.contains("&lt;script&gt;alert(&quot;p&quot;)&lt;/script&gt;&amp;amp;&#39;x"));
    assert!(html.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;tool"));
    let tags = tags(&html);
    assert_eq!(tags.iter().filter(|t| t.starts_with("<script")).count(), 0);
    for tag in &tags {
        let lower = tag.to_ascii_lowercase();
        for banned in [
            "src=", "href=", "url(", "onerror", "@import", "http:", "https:",
        ] {
            assert!(!lower.contains(banned), "{tag}");
        }
    }
    assert!(!html.contains("url(") && !html.contains("@import"));
    // three charts: the timeline with both series, reasons, tools
    assert_eq!(tags.iter().filter(|t| t.starts_with("<svg")).count(), 3);
    assert!(html.contains(r#"<svg class="chart" id="timeline""#));
    assert!(html.contains(r#"<rect class="bar refused""#));
    assert!(html.contains(r#"<rect class="bar allowed""#));
    assert!(html.contains(r#"<svg class="chart" id="reasons""#));
    assert!(html.contains(r#"<svg class="chart" id="tools""#));
    std::fs::remove_dir_all(&trail.dir).unwrap();
}

#[tokio::test]
async fn a_trail_that_does_not_verify_is_reported_as_such_first() {
    let trail = test_trail::write("tampered").await;
    let text = std::fs::read_to_string(&trail.log).unwrap();
    // an attacker moves a refusal to another address
    let tampered = text.replacen(
        "\"client_ip\":\"203.0.113.66\"",
        "\"client_ip\":\"203.0.113.99\"",
        1,
    );
    assert_ne!(tampered, text);
    std::fs::write(&trail.log, tampered).unwrap();
    let files = files(&trail);
    let flags = Flags::parse(
        &[
            "--key-file".to_owned(),
            trail.key_file.display().to_string(),
        ],
        &[],
    )
    .unwrap();
    let verdict = verify(&flags, &files).unwrap();
    assert!(!verdict.ok);
    let report = Report::build(&files, verdict.ok, verdict.text, 10);
    let text = report.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "!!! VERIFICATION FAILED !!!");
    assert!(
        lines[2].starts_with("!!! FAILED: ") && lines[2].contains("audit.jsonl:"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("!!! The trail did not verify"),
        "{text}"
    );
    // what can be read is still shown
    assert!(text.contains("\nRequests: 21 (allowed 13, refused 8, error 0, cancelled 0)\n"));
    assert!(text.contains("  203.0.113.99 "));
    let html = report.html();
    assert!(html.contains(
        r#"<div class="banner failed" id="verification"><strong>VERIFICATION FAILED.</strong>"#
    ));
    std::fs::remove_dir_all(&trail.dir).unwrap();
}

#[test]
fn lines_that_are_not_records_are_counted_and_skipped() {
    let mut input = Vec::new();
    input.extend_from_slice(b"not json\n\n");
    input.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + 10]);
    input.extend_from_slice(b"\n{\"kind\":\"request\",\"timestamp\":\"yesterday\"}\n");
    input.extend_from_slice(b"{\"seq\":1,\"kind\":\"request\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"decision\":\"rejected\",\"reason\":\"invalid_token\",\"client_ip\":\"\\u001b[31m10.0.0.1\",\"status_code\":401}\r\n");
    input.extend_from_slice(
        b"{\"seq\":2,\"kind\":\"request\",\"timestamp\":\"2026-01-01T00:00:01.000Z\"}",
    );
    let mut s = Summary::default();
    s.read("mem", Cursor::new(input));
    assert_eq!(s.lines, 6);
    assert_eq!(s.unreadable, 3); // not json, too long, bad timestamp
    assert_eq!(s.requests, 2);
    assert_eq!(s.decisions.rejected, 1);
    assert_eq!(s.status.by_class[3], 1);
    assert_eq!(s.status.none, 1);
    assert_eq!(s.reasons.top(1), vec![("invalid_token", count(1, 1))]);
    // an escape sequence from the trail never reaches the terminal
    let files = Vec::new();
    let report = Report {
        files: &files,
        verified: true,
        verification: String::new(),
        summary: s,
        top: 10,
    };
    let text = report.text();
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("  \\u{1b}[31m10.0.0.1 "), "{text}");
    assert!(text.contains("Unreadable lines: 3 of 6"));
}

#[tokio::test]
async fn a_rotated_trail_reads_the_same_across_its_files_in_any_order() {
    let trail = test_trail::write_with("rotated", &[("MCP_AUDIT_MAX_FILE_BYTES", "4096")]).await;
    let mut files: Vec<String> = std::fs::read_dir(&trail.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files.reverse(); // the live file first: not chain order
    assert!(files.len() >= 3, "{files:?}");
    let flags = Flags::parse(
        &[
            "--key-file".to_owned(),
            trail.key_file.display().to_string(),
        ],
        &[],
    )
    .unwrap();
    let verdict = verify(&flags, &files).unwrap();
    assert!(verdict.ok, "{}", verdict.text);
    let report = Report::build(&files, verdict.ok, verdict.text, 10);
    let s = &report.summary;
    assert_eq!(s.unreadable, 0);
    assert_eq!(
        (s.requests, s.decisions.allowed, s.decisions.rejected),
        (21, 13, 8)
    );
    assert_eq!(s.clients.top(1), vec![("203.0.113.20", count(7, 2))]);
    assert_eq!(s.bans.top(10), vec![("203.0.113.66", count(1, 1))]);
    // the rotation's own records are counted as records, not requests
    let kinds = s.kinds.top(20);
    assert!(
        kinds
            .iter()
            .any(|(k, c)| *k == "rotate" && c.total as usize == files.len() - 1)
    );
    assert!(
        kinds
            .iter()
            .any(|(k, c)| *k == "link" && c.total as usize == files.len() - 1)
    );
    let text = report.text();
    assert!(text.starts_with(&format!(
        "mcp-security audit report: {} file(s)\nVerified: yes\n",
        files.len()
    )));
    std::fs::remove_dir_all(&trail.dir).unwrap();
}
