//! Resume integrity: a restart compares the log's tail with the head file and says what it
//! found; the verifier fails on a cut tail and lists every unclean restart.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use mcp_security_core::clock::ManualClock;

use super::*;
use crate::test_support::{TempDir, key, kinds, lines, other_key, record, submit, t0};
use crate::verify::{VerifyError, VerifyOptions, verify_files};

fn manual() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// A closed chain: start (0), 20 requests (1..=20), a checkpoint (21), 5 requests (22..=26),
/// close (27).
async fn closed_chain(path: &Path) {
    let sink = FileSink::builder(path, key())
        .clock(manual())
        .build()
        .unwrap();
    for i in 0..20 {
        submit(&sink, &record(i)).await;
    }
    sink.checkpoint().await.unwrap();
    for i in 20..25 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
}

async fn restart_with_one_request(path: &Path) {
    let sink = FileSink::builder(path, key())
        .clock(manual())
        .build()
        .unwrap();
    submit(&sink, &record(99)).await;
    sink.close().await.unwrap();
}

#[tokio::test]
async fn a_cut_tail_is_not_hidden_by_a_restart() {
    let dir = TempDir::new("cut-tail");
    let path = dir.join("audit.jsonl");
    closed_chain(&path).await;
    assert!(dir.join("audit.jsonl.head").exists(), "{:?}", dir.files());
    // The attacker deletes the tail: the last 3 requests, and the close record (seq 24..=27).
    let mut kept = lines(&path);
    kept.truncate(24);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let later = t0() + Duration::from_secs(3600);
    let err = verify_files(&[&path], &key(), &VerifyOptions::new().now(later)).unwrap_err();
    assert_eq!(err.kind(), "truncated", "{err}");

    // The server restarts on that file and serves one request.
    restart_with_one_request(&path).await;
    let all = lines(&path);
    let resume = json(&all[24]);
    assert_eq!(resume["kind"], "resume");
    assert_eq!(resume["seq"], 24);
    assert_eq!(resume["previous"], "missing_tail");
    assert_eq!(
        (resume["lost_first"].as_u64(), resume["lost_last"].as_u64()),
        (Some(24), Some(27))
    );
    let alert = json(&all[25]);
    assert_eq!(alert["kind"], "security");
    assert_eq!(alert["detector"], "audit_tail_missing");
    assert_eq!(alert["lost_first"], 24);
    assert_eq!(alert["lost_last"], 27);

    // The verifier no longer says OK: it names the lost records.
    let err = verify_files(&[&path], &key(), &VerifyOptions::new().now(later)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::TailLost {
            file: path.clone(),
            line: 25,
            first: 24,
            last: 27
        }
    );
    assert!(
        err.to_string().ends_with(
            "audit.jsonl:25: tail lost: when the writer restarted, the log ended before the head it had last written: records 24..=27 were cut from the end"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_clean_close_resumes_quietly() {
    let dir = TempDir::new("clean-resume");
    let path = dir.join("audit.jsonl");
    closed_chain(&path).await;
    restart_with_one_request(&path).await;
    let resume = json(&lines(&path)[28]);
    assert_eq!(resume["kind"], "resume");
    assert_eq!(resume["previous"], "clean_close");
    assert!(resume.get("lost_first").is_none());
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert!(report.closed);
    assert!(
        report.unclean_resumes.is_empty(),
        "{:?}",
        report.unclean_resumes
    );
}

#[tokio::test]
async fn a_deleted_head_file_is_reported() {
    let dir = TempDir::new("no-head");
    let path = dir.join("audit.jsonl");
    closed_chain(&path).await;
    std::fs::remove_file(dir.join("audit.jsonl.head")).unwrap();
    restart_with_one_request(&path).await;
    let resume = json(&lines(&path)[28]);
    assert_eq!(resume["previous"], "head_missing");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(
        report.unclean_resumes.len(),
        1,
        "{:?}",
        report.unclean_resumes
    );
    assert!(
        report.unclean_resumes[0].ends_with(
            "audit.jsonl:29 (seq 28): the writer resumed without its head file: a cut tail could not be checked"
        ),
        "{:?}",
        report.unclean_resumes
    );
    // The restart wrote a new head: the next restart is clean again.
    restart_with_one_request(&path).await;
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.unclean_resumes.len(), 1);
}

#[tokio::test]
async fn a_forged_or_foreign_head_file_is_reported() {
    let dir = TempDir::new("forged-head");
    let path = dir.join("audit.jsonl");
    let head = dir.join("audit.jsonl.head");
    closed_chain(&path).await;
    // Moving the head back to before the cut needs the key: an edited head does not verify.
    let text = std::fs::read_to_string(&head).unwrap();
    assert!(text.contains("\"seq\":27,"), "{text}");
    std::fs::write(&head, text.replace("\"seq\":27,", "\"seq\":23,")).unwrap();
    let mut kept = lines(&path);
    kept.truncate(24);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    restart_with_one_request(&path).await;
    assert_eq!(json(&lines(&path)[24])["previous"], "head_invalid");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert!(
        report.unclean_resumes[0].contains("with a head file that does not verify"),
        "{:?}",
        report.unclean_resumes
    );
    // A head written with another key does not verify either.
    let dir = TempDir::new("foreign-head");
    let path = dir.join("audit.jsonl");
    closed_chain(&path).await;
    let other = FileSink::builder(dir.join("other.jsonl"), other_key())
        .head_file(dir.join("audit.jsonl.head"))
        .clock(manual())
        .build()
        .unwrap();
    other.close().await.unwrap();
    restart_with_one_request(&path).await;
    assert_eq!(json(&lines(&path)[28])["previous"], "head_invalid");
}

#[tokio::test]
async fn a_deleted_log_with_its_head_left_is_a_lost_tail() {
    let dir = TempDir::new("deleted-log");
    let path = dir.join("audit.jsonl");
    let head = dir.join("elsewhere.head");
    let sink = FileSink::builder(&path, key())
        .head_file(&head)
        .clock(manual())
        .build()
        .unwrap();
    submit(&sink, &record(0)).await;
    sink.close().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        !dir.join("audit.jsonl.head").exists(),
        "the head is where it was put"
    );
    let sink = FileSink::builder(&path, key())
        .head_file(&head)
        .clock(manual())
        .build()
        .unwrap();
    sink.close().await.unwrap();
    let start = json(&lines(&path)[0]);
    assert_eq!(start["kind"], "start");
    assert_eq!(start["previous"], "missing_tail");
    let err = verify_files(&[&path], &key(), &VerifyOptions::new()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TailLost {
                line: 1,
                first: 0,
                last: 2,
                ..
            }
        ),
        "{err}"
    );
}

/// Set in the child process of [`sigkill_then_restart_is_an_unclean_stop`]: the log to write.
const CHILD_LOG: &str = "MCP_AUDIT_TEST_SIGKILL_CHILD_LOG";

#[tokio::test]
async fn sigkill_then_restart_is_an_unclean_stop() {
    if let Some(path) = std::env::var_os(CHILD_LOG) {
        // The child: write, flush, say so, and wait to be killed.
        let sink = FileSink::builder(PathBuf::from(path), key())
            .clock(manual())
            .build()
            .unwrap();
        for i in 0..5 {
            submit(&sink, &record(i)).await;
        }
        sink.flush().await.unwrap();
        println!("child: flushed");
        std::future::pending::<()>().await;
        return;
    }
    let dir = TempDir::new("sigkill");
    let path = dir.join("audit.jsonl");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "file::resume_tests::sigkill_then_restart_is_an_unclean_stop",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_LOG, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let flushed = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("child: flushed"));
    assert!(flushed, "the child did not write its records");
    child.kill().unwrap(); // SIGKILL: no close record, no destructor
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        kinds(&path),
        [
            "start", "request", "request", "request", "request", "request"
        ]
    );

    restart_with_one_request(&path).await;
    assert_eq!(kinds(&path)[6..], ["resume", "request", "close"]);
    assert_eq!(json(&lines(&path)[6])["previous"], "unclean_stop");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert!(report.closed);
    assert_eq!(report.requests, 6);
    assert_eq!(
        report.unclean_resumes.len(),
        1,
        "{:?}",
        report.unclean_resumes
    );
    assert!(
        report.unclean_resumes[0].ends_with(
            "(seq 6): the writer resumed after an unclean stop (no close record; nothing missing)"
        ),
        "{:?}",
        report.unclean_resumes
    );
}

#[tokio::test]
async fn records_after_the_saved_head_are_an_unclean_stop_not_a_loss() {
    // A crash between a batch's write and the head's: the log holds more than the head says.
    let dir = TempDir::new("head-behind");
    let path = dir.join("audit.jsonl");
    let head = dir.join("audit.jsonl.head");
    let sink = FileSink::builder(&path, key())
        .clock(manual())
        .build()
        .unwrap();
    submit(&sink, &record(0)).await;
    sink.flush().await.unwrap();
    let saved = std::fs::read(&head).unwrap();
    submit(&sink, &record(1)).await;
    sink.close().await.unwrap();
    std::fs::write(&head, saved).unwrap();
    let mut kept = lines(&path);
    kept.pop(); // no close record: the process died
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    restart_with_one_request(&path).await;
    assert_eq!(json(&lines(&path)[3])["previous"], "unclean_stop");
    assert!(verify_files(&[&path], &key(), &VerifyOptions::new()).is_ok());
}

#[test]
fn an_unwritable_head_file_is_a_named_error() {
    let dir = TempDir::new("head-unwritable");
    let e = FileSink::builder(dir.join("audit.jsonl"), key())
        .head_file(dir.join("no-such-dir").join("audit.head"))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "head_file");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    let mut s = crate::AuditSettings::new("MCP");
    s.log_file = Some(dir.join("other.jsonl"));
    s.hmac_key = Some(mcp_security_core::config::Secret::new(
        "0123456789abcdef0123456789abcdef-env",
    ));
    s.head_file = Some(dir.join("no-such-dir").join("other.head"));
    let e = s.into_builder().unwrap_err();
    assert_eq!(e.setting(), "MCP_AUDIT_HEAD_FILE");
}
