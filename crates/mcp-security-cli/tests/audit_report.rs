//! `mcp-security audit report` on a trail the audit layer really wrote (the facade's stack on a
//! real socket, see `src/report/test_trail.rs`): exit codes, the summary lines, the HTML page,
//! and the page rendered by a real browser (Debian's `chromium`, headless).
//!
//! The browser test needs `chromium` on the PATH (or `MCP_CHROMIUM=/path/to/chromium`); without
//! it the test fails, unless `MCP_SKIP_BROWSER_TEST=1` says to skip it.

#[path = "../src/report/test_trail.rs"]
mod test_trail;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use test_trail::{HOSTILE_PRINCIPAL, HOSTILE_TOOL, Trail};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");

/// Run the binary with no audit key in the environment.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("MCP_AUDIT_HMAC_KEY")
        .env_remove("MCP_AUDIT_HMAC_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

fn report(trail: &Trail, html: &Path) -> (i32, String, String) {
    run(&[
        "audit",
        "report",
        &trail.log.display().to_string(),
        "--key-file",
        &trail.key_file.display().to_string(),
        "--html",
        &html.display().to_string(),
    ])
}

#[tokio::test]
async fn a_verified_trail_gives_a_summary_and_a_page() {
    let trail = test_trail::write("cli-ok").await;
    let html = trail.dir.join("report.html");
    let (code, out, err) = report(&trail, &html);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "mcp-security audit report: 1 file(s)");
    assert_eq!(lines[1], "Verified: yes");
    assert!(
        lines[2].starts_with("  OK: 1 file(s), ")
            && lines[2].contains("21 requests")
            && lines[2].contains("closed"),
        "{out}"
    );
    for expected in [
        "Requests: 21 (allowed 13, refused 8, error 0, cancelled 0)",
        "Status: 2xx 13, 3xx 0, 4xx 8, 5xx 0, none 0",
        "Principals: 3 (8 requests without one); client addresses: 5",
        "Bans: 1 by detectors; 1 requests refused while banned",
        "Refusals by reason (refusals):",
        "Top principals (requests, refused):",
        "Top tools (calls, refused):",
        "Top client addresses (requests, refused):",
        "Bans by client address (bans):",
    ] {
        assert!(lines.contains(&expected), "{expected:?} in\n{out}");
    }
    assert!(lines.iter().any(|l| l.starts_with("Time range: ")), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  invalid_token ") && l.ends_with(" 5")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  203.0.113.66 ") && l.ends_with(" 1")),
        "{out}"
    );
    // a terminal gets the attacker's text as it is (no control characters in it)
    assert!(
        out.contains(HOSTILE_PRINCIPAL) && out.contains(HOSTILE_TOOL),
        "{out}"
    );
    assert!(err.contains("wrote the report page to "), "{err}");

    let page = std::fs::read_to_string(&html).expect("the page was written");
    assert!(page.contains("<title>mcp-security audit report</title>"));
    assert!(
        page.contains(
            r#"<div class="banner ok" id="verification"><strong>Chain verified.</strong>"#
        )
    );
    assert!(!page.contains(HOSTILE_PRINCIPAL) && !page.contains(HOSTILE_TOOL));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    std::fs::remove_dir_all(&trail.dir).unwrap();
}

#[tokio::test]
async fn a_trail_that_does_not_verify_exits_1_after_saying_so_first() {
    let trail = test_trail::write("cli-tampered").await;
    let text = std::fs::read_to_string(&trail.log).unwrap();
    let tampered = text.replacen("\"status_code\":429", "\"status_code\":200", 1);
    assert_ne!(tampered, text);
    std::fs::write(&trail.log, tampered).unwrap();
    let html = trail.dir.join("report.html");
    let (code, out, err) = report(&trail, &html);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "!!! VERIFICATION FAILED !!!", "{out}");
    assert!(
        lines[2].starts_with("!!! FAILED: ")
            && lines[2].contains("audit.jsonl:")
            && lines[2].contains("modified"),
        "{out}"
    );
    // still the numbers (as the altered records say)
    assert!(
        lines.contains(&"Status: 2xx 14, 3xx 0, 4xx 7, 5xx 0, none 0"),
        "{out}"
    );
    let page = std::fs::read_to_string(&html).expect("the page is written anyway");
    assert!(page.contains(
        r#"<div class="banner failed" id="verification"><strong>VERIFICATION FAILED.</strong>"#
    ));
    std::fs::remove_dir_all(&trail.dir).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    let (code, out, err) = run(&["audit", "report"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err, "mcp-security: audit report needs at least one file\n");
    let (code, _, err) = run(&[
        "audit",
        "report",
        "x.jsonl",
        "--top",
        "0",
        "--key-file",
        "k",
    ]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "mcp-security: --top: expected a number from 1 to 100, got \"0\"\n"
    );
    let (code, _, err) = run(&["audit", "report", "x.jsonl"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "mcp-security: no key: pass --key-file or --public-key, or set MCP_AUDIT_HMAC_KEY or MCP_AUDIT_HMAC_KEY_FILE\n"
    );
    let (code, _, err) = run(&["audit", "report", "x.jsonl", "--color", "red"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("mcp-security: unknown option --color\n"),
        "{err}"
    );
}

/// The browser: `MCP_CHROMIUM`, else `chromium` on the PATH; why not, when there is none.
fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MCP_CHROMIUM") {
        let path = PathBuf::from(path);
        return match path.is_file() {
            true => Ok(path),
            false => Err(format!("MCP_CHROMIUM={} is not a file", path.display())),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .ok_or_else(|| "no `chromium` on the PATH".to_owned())
}

/// Run headless chromium on `page` with its own profile directory, bounded by coreutils'
/// `timeout` so a hung browser fails the test instead of hanging it; no background networking
/// (the page needs none, and CI machines may have no network).
fn chromium_run(browser: &Path, profile: &Path, args: &[String], page: &Path) -> (String, String) {
    let out = Command::new("timeout")
        .args(["--kill-after=5", "120"])
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium failed ({}; 124 is the 120 s timeout): {stderr}",
        out.status
    );
    (stdout, stderr)
}

/// A screenshot of `page`, 1200×900: the PNG's bytes, checked to be a PNG of that size.
fn screenshot(browser: &Path, profile: &Path, page: &Path, png: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(png);
    chromium_run(
        browser,
        profile,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,900".to_owned(),
        ],
        page,
    );
    let bytes = std::fs::read(png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 900));
    bytes
}

#[tokio::test]
async fn the_page_renders_in_a_real_browser() {
    let browser = match chromium() {
        Ok(browser) => browser,
        Err(why) if std::env::var("MCP_SKIP_BROWSER_TEST").as_deref() == Ok("1") => {
            eprintln!("skipped ({why}): MCP_SKIP_BROWSER_TEST=1");
            return;
        }
        Err(why) => panic!(
            "{why}: this test renders the report page in a real browser; install Debian's \
             `chromium` (apt-get install -y chromium) or set MCP_CHROMIUM=/path/to/chromium \
             (MCP_SKIP_BROWSER_TEST=1 skips the test)"
        ),
    };
    let trail = test_trail::write("browser").await;
    let html = trail.dir.join("report.html");
    let (code, out, err) = report(&trail, &html);
    assert_eq!(code, 0, "{out}{err}");
    let profile = trail.dir.join("chromium-profile");

    // The DOM after the browser parsed and laid out the page.
    let (dom, _) = chromium_run(&browser, &profile, &["--dump-dom".to_owned()], &html);
    assert!(
        dom.contains("<title>mcp-security audit report</title>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<svg ").count(), 3, "three charts: {dom}");
    assert!(dom.contains(r#"<rect class="bar refused""#), "{dom}");
    assert!(dom.contains(r#"<rect class="bar allowed""#), "{dom}");
    assert!(dom.contains("Chain verified."), "{dom}");
    // the hostile names are text, not elements
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=\"alert(1)\"&gt;&amp;tool"),
        "{dom}"
    );

    // What a person sees: compared with an empty page of the same size, the report's
    // screenshot has far more to compress (text, bars, tables), so its PNG is several times
    // larger; a page that rendered blank would be about the same size as the empty one.
    let blank_page = trail.dir.join("blank.html");
    std::fs::write(
        &blank_page,
        "<!DOCTYPE html><title>blank</title><body></body>",
    )
    .unwrap();
    let blank = screenshot(
        &browser,
        &profile,
        &blank_page,
        &trail.dir.join("blank.png"),
    );
    let shot_path = trail.dir.join("report.png");
    let shot = screenshot(&browser, &profile, &html, &shot_path);
    assert!(
        shot.len() > 4 * blank.len(),
        "the report's screenshot ({} bytes) looks blank next to an empty page's ({} bytes): {}",
        shot.len(),
        blank.len(),
        shot_path.display()
    );
    if std::env::var_os("MCP_KEEP_REPORT_SCREENSHOT").is_some() {
        let keep = std::env::temp_dir().join("mcp-audit-report.png");
        std::fs::copy(&shot_path, &keep).unwrap();
        std::fs::copy(&html, std::env::temp_dir().join("mcp-audit-report.html")).unwrap();
        eprintln!("screenshot kept at {}", keep.display());
    }
    std::fs::remove_dir_all(&trail.dir).unwrap();
}
