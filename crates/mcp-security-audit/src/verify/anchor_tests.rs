use std::sync::Arc;

use mcp_security_core::clock::ManualClock;

use super::*;
use crate::anchor::FileAnchor;
use crate::file::FileSink;
use crate::test_support::{TempDir, key, record, submit, t0};
use crate::verify::{VerifyOptions, verify_files};

fn sink(log: &Path, anchor: &Path) -> FileSink {
    FileSink::builder(log, key())
        .anchor(Arc::new(FileAnchor::open(anchor).unwrap()))
        .clock(Arc::new(ManualClock::new(t0())))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_checkpoint_is_anchored_and_found() {
    let dir = TempDir::new("anchor-ok");
    let (log, anchor) = (dir.join("audit.jsonl"), dir.join("anchor.jsonl"));
    let s = sink(&log, &anchor);
    for i in 0..3 {
        submit(&s, &record(i)).await;
    }
    s.checkpoint().await.unwrap();
    submit(&s, &record(3)).await;
    s.close().await.unwrap();
    let text = std::fs::read_to_string(&anchor).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 4);
    assert_eq!(first["kind"], "checkpoint");
    assert_eq!(first["file"], "audit.jsonl");
    assert_eq!(first["key_id"], key().id());
    let report = verify_anchor(&[&log], &anchor).unwrap();
    assert_eq!((report.anchored, report.matched), (2, 2));
    assert_eq!(
        report.to_string(),
        "OK: the log holds 2 of 2 anchored checkpoints, the last at seq 6"
    );
}

#[tokio::test]
async fn a_log_rolled_back_with_its_head_file_fails_against_the_anchor() {
    let dir = TempDir::new("anchor-rollback");
    let (log, anchor) = (dir.join("audit.jsonl"), dir.join("anchor.jsonl"));
    let head = dir.join("audit.jsonl.head");
    let s = sink(&log, &anchor);
    submit(&s, &record(0)).await;
    s.checkpoint().await.unwrap(); // seq 2, anchored
    let (old_log, old_head) = (std::fs::read(&log).unwrap(), std::fs::read(&head).unwrap());
    for i in 1..4 {
        submit(&s, &record(i)).await;
    }
    s.checkpoint().await.unwrap(); // seq 6, anchored
    s.close().await.unwrap(); // seq 7, anchored
    // Someone with write access puts back the older log and its head.
    std::fs::write(&log, &old_log).unwrap();
    std::fs::write(&head, &old_head).unwrap();
    // The log alone cannot tell: its chain and its head agree.
    let report = verify_files(&[&log], &key(), &VerifyOptions::new()).unwrap();
    assert!(!report.closed);
    let err = verify_anchor(&[&log], &anchor).unwrap_err();
    assert_eq!(err.kind(), "anchor");
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string().contains(
            "the log ends at seq 2, but seq 6 was anchored at 2026-01-01T00:00:00.000Z ("
        ) && err.to_string().ends_with(
            "anchor.jsonl:2): records 3..=6 were cut from the end, or the log was rolled back"
        ),
        "{err}"
    );
    // The server restarts on the rolled-back log and writes on: the anchored sequence numbers
    // now hold other records.
    let s = sink(&log, &anchor);
    for i in 10..16 {
        submit(&s, &record(i)).await;
    }
    s.close().await.unwrap();
    assert!(verify_files(&[&log], &key(), &VerifyOptions::new()).is_ok());
    let err = verify_anchor(&[&log], &anchor).unwrap_err();
    assert!(
        err.to_string().contains("seq 6 has MAC ")
            && err.to_string().contains("the log was rewritten"),
        "{err}"
    );
    assert_eq!(err.line(), Some(7));
}

#[tokio::test]
async fn older_anchors_and_bad_lines() {
    let dir = TempDir::new("anchor-misc");
    let (log, anchor) = (dir.join("audit.jsonl"), dir.join("anchor.jsonl"));
    let s = FileSink::builder(&log, key())
        .anchor(Arc::new(FileAnchor::open(&anchor).unwrap()))
        .max_file_bytes(4096)
        .clock(Arc::new(ManualClock::new(t0())))
        .build()
        .unwrap();
    for i in 0..40 {
        submit(&s, &record(i)).await;
    }
    s.close().await.unwrap();
    let rotations = std::fs::read_to_string(&anchor)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"rotate\""))
        .count() as u64;
    assert!(rotations >= 2, "{rotations}");
    // Only the live file: the rotations anchored before it are in files not given.
    let report = verify_anchor(&[&log], &anchor).unwrap();
    assert_eq!((report.anchored, report.matched), (rotations + 1, 1));
    assert_eq!(
        report.notices,
        [format!(
            "{rotations} anchored checkpoint(s) before seq {} are in files not given",
            crate::verify::first_seq(&log).unwrap().unwrap()
        )]
    );
    assert_eq!(
        verify_anchor(
            &dir.files()
                .iter()
                .filter(|f| **f != anchor)
                .collect::<Vec<_>>(),
            &anchor
        )
        .unwrap()
        .matched,
        rotations + 1
    );
    // A line that is not an anchored record, and an empty anchor.
    let mut text = std::fs::read_to_string(&anchor).unwrap();
    text.push_str("not json\n");
    std::fs::write(&anchor, &text).unwrap();
    let err = verify_anchor(&[&log], &anchor).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Malformed {
            file: anchor.clone(),
            line: rotations + 2,
            reason: "not an anchored checkpoint".into()
        }
    );
    std::fs::write(&anchor, "").unwrap();
    assert_eq!(
        verify_anchor(&[&log], &anchor).unwrap_err().kind(),
        "malformed"
    );
}
