use std::time::Duration;

use mcp_security_core::clock::ManualClock;

use super::*;
use crate::file::FileSink;
use crate::test_support::{TempDir, key, lines, other_key, record, submit, t0};

/// A closed file of a start record, 20 requests (seq 1..=20) and a close record: 22 lines.
async fn closed_file(dir: &TempDir) -> PathBuf {
    for f in dir.files() {
        std::fs::remove_file(f).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("audit.jsonl.head"));
    let path = dir.join("audit.jsonl");
    let sink = FileSink::builder(&path, key())
        .clock(std::sync::Arc::new(ManualClock::new(t0())))
        .build()
        .unwrap();
    for i in 0..20 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    path
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn check(path: &Path) -> Result<VerifyReport, VerifyError> {
    verify_files(&[path], &key(), &VerifyOptions::new().now(t0()))
}

#[tokio::test]
async fn an_intact_file_verifies() {
    let dir = TempDir::new("intact");
    let path = closed_file(&dir).await;
    let report = check(&path).unwrap();
    assert_eq!(report.lines, 22);
    assert_eq!(report.requests, 20);
    assert!(report.closed);
    assert_eq!(report.unsealed, 0);
    assert_eq!(report.head.as_ref().map(String::len), Some(64));
    assert!(report.to_string().starts_with(
        "OK: 1 file(s), 22 lines (20 requests, 0 security events, 0 checkpoints), seq 0..=21, closed, head "
    ));
    // From a reader too.
    let bytes = std::fs::read(&path).unwrap();
    let report =
        verify_reader(Path::new("mem"), &bytes[..], &key(), &VerifyOptions::new()).unwrap();
    assert_eq!(report.requests, 20);
}

#[tokio::test]
async fn a_flipped_byte_is_a_modified_record() {
    let dir = TempDir::new("flip");
    let path = closed_file(&dir).await;
    let mut l = lines(&path);
    l[5] = l[5].replacen("\"/mcp\"", "\"/mcq\"", 1);
    write_lines(&path, &l);
    let err = check(&path).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Modified {
            file: path.clone(),
            line: 6,
            seq: Some(5)
        }
    );
    assert!(
        err.to_string()
            .ends_with("audit.jsonl:6: modified: record seq 5 does not match its MAC")
    );

    // A byte that breaks the JSON: still named as modified (the MAC is checked on the bytes).
    let mut l = lines(&closed_file(&dir).await);
    l[7] = l[7].replacen("{\"seq\":7,", "{\"seq\":7;", 1);
    write_lines(&path, &l);
    assert!(matches!(
        check(&path),
        Err(VerifyError::Modified { line: 8, .. })
    ));

    // The sequence number itself.
    let mut l = lines(&closed_file(&dir).await);
    l[9] = l[9].replacen("{\"seq\":9,", "{\"seq\":8,", 1);
    write_lines(&path, &l);
    assert_eq!(
        check(&path).unwrap_err(),
        VerifyError::Modified {
            file: path.clone(),
            line: 10,
            seq: Some(9)
        }
    );

    // The MAC.
    let mut l = lines(&closed_file(&dir).await);
    let n = l[3].len();
    let flipped = if l[3].as_bytes()[n - 4] == b'0' {
        "1"
    } else {
        "0"
    };
    l[3].replace_range(n - 4..n - 3, flipped);
    write_lines(&path, &l);
    assert!(matches!(
        check(&path),
        Err(VerifyError::Modified { line: 4, .. })
    ));
}

#[tokio::test]
async fn a_deleted_line_is_missing() {
    let dir = TempDir::new("delete");
    let path = closed_file(&dir).await;
    let mut l = lines(&path);
    l.remove(5);
    write_lines(&path, &l);
    let err = check(&path).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Missing {
            file: path.clone(),
            line: 6,
            expected: 5,
            found: 6
        }
    );
    assert!(err.to_string().contains("record 5 was removed"), "{err}");
    // Several.
    let mut l = lines(&closed_file(&dir).await);
    l.drain(5..8);
    write_lines(&path, &l);
    let err = check(&path).unwrap_err();
    assert!(
        err.to_string().contains("records 5..=7 were removed"),
        "{err}"
    );
}

#[tokio::test]
async fn swapped_or_replayed_lines_are_reordered() {
    let dir = TempDir::new("swap");
    let path = closed_file(&dir).await;
    let mut l = lines(&path);
    l.swap(5, 6);
    write_lines(&path, &l);
    assert_eq!(
        check(&path).unwrap_err(),
        VerifyError::Reordered {
            file: path.clone(),
            line: 6,
            expected: 5,
            found: 6
        }
    );
    // A line replayed later.
    let mut l = lines(&closed_file(&dir).await);
    let copy = l[3].clone();
    l.insert(10, copy);
    write_lines(&path, &l);
    assert_eq!(
        check(&path).unwrap_err(),
        VerifyError::Reordered {
            file: path.clone(),
            line: 11,
            expected: 10,
            found: 3
        }
    );
}

#[tokio::test]
async fn a_cut_tail_is_torn_or_truncated() {
    let dir = TempDir::new("cut");
    let path = closed_file(&dir).await;
    // Cut in the middle of the last line.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 30).unwrap();
    drop(f);
    let err = check(&path).unwrap_err();
    assert!(
        matches!(&err, VerifyError::TornTail { line: 22, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("audit.jsonl:22: torn tail"),
        "{err}"
    );

    // Cut at a line boundary: the close record is gone. Fine while the last record is recent;
    // truncation once a checkpoint is overdue.
    let mut l = lines(&closed_file(&dir).await);
    l.truncate(15);
    write_lines(&path, &l);
    let report = check(&path).unwrap();
    assert!(!report.closed);
    assert_eq!(report.unsealed, 14);
    assert!(
        report.notices[0].contains("the chain is open"),
        "{:?}",
        report.notices
    );
    let later = t0() + Duration::from_secs(3600);
    let err = verify_files(&[&path], &key(), &VerifyOptions::new().now(later)).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::Truncated {
                line: 15,
                seq: 14,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the next checkpoint was due by 2026-01-01T00:01:00.013Z"),
        "{err}"
    );
}

#[tokio::test]
async fn other_failures_are_named() {
    let dir = TempDir::new("other");
    let path = closed_file(&dir).await;
    // Another key.
    let err = verify_files(&[&path], &other_key(), &VerifyOptions::new()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::WrongKey { line: 1, .. }),
        "{err}"
    );
    // A file whose beginning was cut.
    let mut l = lines(&path);
    l.remove(0);
    write_lines(&path, &l);
    let err = check(&path).unwrap_err();
    assert!(
        matches!(&err, VerifyError::BrokenLink { line: 1, .. }),
        "{err}"
    );
    // Garbage.
    std::fs::write(&path, "hello\n").unwrap();
    assert!(matches!(
        check(&path),
        Err(VerifyError::Malformed { line: 1, .. })
    ));
    std::fs::write(&path, "").unwrap();
    assert!(matches!(check(&path), Err(VerifyError::Malformed { .. })));
    assert_eq!(
        verify_files::<&Path>(&[], &key(), &VerifyOptions::new()),
        Err(VerifyError::NoFiles)
    );
    let missing = dir.join("nope.jsonl");
    assert_eq!(check(&missing).unwrap_err().kind(), "io");
    // A forged line appended with a plausible MAC.
    let mut l = lines(&closed_file(&dir).await);
    let forged = l[5].replacen("{\"seq\":5,", "{\"seq\":22,", 1);
    l.push(forged);
    write_lines(&path, &l);
    assert!(matches!(
        check(&path),
        Err(VerifyError::Modified { line: 23, .. })
    ));
}
