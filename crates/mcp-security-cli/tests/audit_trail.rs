//! `mcp-security audit verify` on trails written by the audit layer's file sink: a restart on
//! a log whose tail was cut, an unclean restart, and (with `--public-key`) the signed
//! checkpoints an outside auditor checks without the chain key.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mcp_security::audit::chain::AuditKey;
use mcp_security::audit::file::FileSink;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");
const AUDIT_KEY: &str = "0123456789abcdef0123456789abcdef-audit-trail-test";

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

/// A fresh directory with the chain key's file.
fn dir(name: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("mcp-cli-trail-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("audit.key");
    std::fs::write(&key_file, format!("{AUDIT_KEY}\n")).unwrap();
    (dir, key_file.display().to_string())
}

fn key() -> AuditKey {
    AuditKey::from_bytes(AUDIT_KEY.as_bytes()).unwrap()
}

/// Open the sink on `log`, write `checkpoints` checkpoints, close.
async fn run_server(log: &Path, checkpoints: usize) {
    let sink = FileSink::builder(log, key()).build().unwrap();
    for _ in 0..checkpoints {
        sink.checkpoint().await.unwrap();
    }
    sink.close().await.unwrap();
}

#[tokio::test]
async fn a_restart_does_not_hide_a_cut_tail() {
    let (dir, key_file) = dir("cut");
    let log = dir.join("audit.jsonl");
    run_server(&log, 4).await; // start, 4 checkpoints, close: seq 0..=5
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    run_server(&log, 1).await;
    let (code, out, err) = run(&[
        "audit",
        "verify",
        &log.display().to_string(),
        "--key-file",
        &key_file,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("FAILED: ")
            && out.trim_end().ends_with("audit.jsonl:4: tail lost: when the writer restarted, the log ended before the head it had last written: records 3..=5 were cut from the end"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_unclean_resume_is_a_warning() {
    let (dir, key_file) = dir("unclean");
    let log = dir.join("audit.jsonl");
    run_server(&log, 1).await;
    std::fs::remove_file(dir.join("audit.jsonl.head")).unwrap();
    run_server(&log, 0).await;
    let (code, out, err) = run(&[
        "audit",
        "verify",
        &log.display().to_string(),
        "--key-file",
        &key_file,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("OK: 1 file(s), 5 lines"), "{out}");
    assert!(
        lines[1].starts_with("warning: unclean resume: ")
            && lines[1].ends_with("audit.jsonl:4 (seq 3): the writer resumed without its head file: a cut tail could not be checked"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `keygen --ed25519 --out FILE`: the key in FILE (0600), the public key on standard output.
fn keygen(dir: &Path) -> (PathBuf, PathBuf, String) {
    let pem = dir.join("audit-signing.pem");
    let (code, out, err) = run(&["keygen", "--ed25519", "--out", &pem.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("MCP_AUDIT_SIGNING_KEY_FILE"), "{err}");
    let public = out.trim_end().to_owned();
    assert_eq!(out, format!("{public}\n"), "one line on standard output");
    assert_eq!(public.len(), 44, "32 bytes of base64: {public}");
    let pub_file = dir.join("audit-signing.pub");
    std::fs::write(&pub_file, &out).unwrap();
    (pem, pub_file, public)
}

#[test]
fn keygen_ed25519_writes_a_private_key_and_prints_the_public_one() {
    use mcp_security::audit::signing::SigningKey;
    let (dir, _) = dir("keygen");
    let (pem, _, public) = keygen(&dir);
    let key = SigningKey::from_file(&pem).unwrap();
    assert_eq!(key.public_key().to_base64(), public);
    assert!(
        std::fs::read_to_string(&pem)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over an existing key; --out is required.
    let (code, out, err) = run(&["keygen", "--ed25519", "--out", &pem.display().to_string()]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("the file exists; a key is never overwritten"),
        "{err}"
    );
    assert_eq!(
        SigningKey::from_file(&pem)
            .unwrap()
            .public_key()
            .to_base64(),
        public
    );
    let (code, _, err) = run(&["keygen", "--ed25519"]);
    assert_eq!(code, 2);
    assert!(err.contains("keygen --ed25519 needs --out FILE"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The round trip an outside auditor makes: a server whose audit layer signs its checkpoints
/// (configured from the environment, as the facade does) serves requests over a real socket;
/// the CLI verifies the trail with the public key alone, and refuses a tampered copy.
#[tokio::test]
async fn a_signed_trail_round_trips_through_the_public_key() {
    use mcp_security::audit::AuditSettings;
    use mcp_security::core::config::Env;

    let (dir, key_file) = dir("public");
    let (pem, pub_file, _) = keygen(&dir);
    let log = dir.join("audit.jsonl");
    let anchor = dir.join("anchor.jsonl");
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_AUDIT_LOG_FILE", log.display().to_string()),
            ("MCP_AUDIT_HMAC_KEY", AUDIT_KEY.to_owned()),
            ("MCP_AUDIT_SIGNING_KEY_FILE", pem.display().to_string()),
            ("MCP_AUDIT_ANCHOR_FILE", anchor.display().to_string()),
        ],
    );
    let audit = AuditSettings::from_env(&env)
        .unwrap()
        .into_builder()
        .unwrap()
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(|| async { "ok" }))
        .layer(audit.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    for i in 0..6 {
        let response = client
            .post(format!("http://{addr}/mcp"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
        if i == 2 {
            audit.file_sink().unwrap().checkpoint().await.unwrap();
        }
    }
    server.abort();
    audit.close().await.unwrap();

    let log_s = log.display().to_string();
    let pub_s = pub_file.display().to_string();
    let (code, out, err) = run(&["audit", "verify", &log_s, "--public-key", &pub_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("OK: 1 file(s), 9 lines, 2 signatures by key "),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with(": 9 of 9 lines proven, seq 0..=8, closed"),
        "{out}"
    );
    // With the chain key too: both checks.
    let (code, out, err) = run(&[
        "audit",
        "verify",
        &log_s,
        "--public-key",
        &pub_s,
        "--key-file",
        &key_file,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("OK: 1 file(s), 9 lines (6 requests"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");

    // With the anchor: the log holds the checkpoint and the close it recorded.
    let anchor_s = anchor.display().to_string();
    let (code, out, err) = run(&[
        "audit",
        "verify",
        &log_s,
        "--public-key",
        &pub_s,
        "--anchor",
        &anchor_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().last(),
        Some("OK: the log holds 2 of 2 anchored checkpoints, the last at seq 8"),
        "{out}"
    );
    // A copy cut after the checkpoint passes as an open chain, but not against the anchor.
    let cut = dir.join("cut.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(5).collect();
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    let cut_s = cut.display().to_string();
    let (code, out, err) = run(&["audit", "verify", &cut_s, "--key-file", &key_file]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&[
        "audit",
        "verify",
        &cut_s,
        "--key-file",
        &key_file,
        "--anchor",
        &anchor_s,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED: ")
            && out
                .contains("cut.jsonl:5: anchor: the log ends at seq 4, but seq 8 was anchored at ")
            && out
                .trim_end()
                .ends_with("records 5..=8 were cut from the end, or the log was rolled back"),
        "{out}"
    );

    // A tampered copy: the status of the 5th request changed (line 7, after the checkpoint).
    let tampered = dir.join("tampered.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines[6].contains("\"status_code\":200"), "{}", lines[6]);
    lines[6] = lines[6].replacen("\"status_code\":200", "\"status_code\":403", 1);
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, out, err) = run(&[
        "audit",
        "verify",
        &tampered.display().to_string(),
        "--public-key",
        &pub_s,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("FAILED: ")
            && out.contains("tampered.jsonl:9: bad signature: the records it signs are not the records in the file; first bad record: seq 5 at ")
            && out.trim_end().ends_with("tampered.jsonl:6 (records 5..=8 are not proven: one was modified, removed or inserted)"),
        "{out}"
    );
    // A line removed is named exactly.
    lines = text.lines().map(str::to_owned).collect();
    lines.remove(2);
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = run(&[
        "audit",
        "verify",
        &tampered.display().to_string(),
        "--public-key",
        &pub_s,
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("tampered.jsonl:3: missing: expected seq 2, found 3"),
        "{out}"
    );
    // Another public key is refused.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, other_pub, _) = keygen(&other);
    let (code, out, _) = run(&[
        "audit",
        "verify",
        &log_s,
        "--public-key",
        &other_pub.display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("audit.jsonl:1: unsigned: this run signs with key "),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
