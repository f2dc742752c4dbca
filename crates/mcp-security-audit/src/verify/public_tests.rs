use std::sync::Arc;
use std::time::Duration;

use mcp_security_core::clock::ManualClock;

use super::*;
use crate::file::FileSink;
use crate::signing::SigningKey;
use crate::test_support::{TempDir, key, lines, record, submit, t0};
use crate::verify::verify_files;

/// A signed, closed trail: start (0), requests 1..=10, checkpoint (11), requests 12..=16,
/// close (17).
async fn signed_trail(dir: &TempDir, signer: &SigningKey) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let sink = FileSink::builder(&path, key())
        .signing_key(signer.clone())
        .clock(Arc::new(ManualClock::new(t0())))
        .build()
        .unwrap();
    for i in 0..10 {
        submit(&sink, &record(i)).await;
    }
    sink.checkpoint().await.unwrap();
    for i in 10..15 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    path
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn check(path: &Path, signer: &SigningKey) -> Result<PublicReport, VerifyError> {
    verify_public(
        &[path],
        &signer.public_key(),
        &VerifyOptions::new().now(t0()),
    )
}

#[tokio::test]
async fn a_signed_trail_verifies_with_the_public_key_alone() {
    let dir = TempDir::new("pub-ok");
    let signer = SigningKey::generate().unwrap();
    let path = signed_trail(&dir, &signer).await;
    let report = check(&path, &signer).unwrap();
    assert_eq!(report.lines, 18);
    assert_eq!(report.proven, 18);
    assert_eq!(report.signatures, 2);
    assert!(report.closed);
    assert!(report.unproven.is_empty(), "{:?}", report.unproven);
    assert_eq!(
        report.to_string(),
        format!(
            "OK: 1 file(s), 18 lines, 2 signatures by key {}: 18 of 18 lines proven, seq 0..=17, closed",
            signer.public_key().id()
        )
    );
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["sign_key"], signer.public_key().id());
    let checkpoint: serde_json::Value = serde_json::from_str(&lines(&path)[11]).unwrap();
    assert_eq!(checkpoint["seg_from"], 0);
    assert_eq!(checkpoint["seg_hash"].as_str().map(str::len), Some(64));
    // The HMAC chain is as before.
    assert!(verify_files(&[&path], &key(), &VerifyOptions::new()).is_ok());
}

#[tokio::test]
async fn a_modified_record_is_named_by_the_next_signature() {
    let dir = TempDir::new("pub-modified");
    let signer = SigningKey::generate().unwrap();
    let path = signed_trail(&dir, &signer).await;
    let mut l = lines(&path);
    l[5] = l[5].replacen("\"/mcp\"", "\"/mcq\"", 1);
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            file: path.clone(),
            line: 12,
            seq: 11,
            first_file: path.clone(),
            first_line: 1,
            first_seq: 0,
            reason: "the records it signs are not the records in the file".into(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("audit.jsonl:12: bad signature: the records it signs are not the records in the file; first bad record: seq 0 at ")
            && text.ends_with("audit.jsonl:1 (records 0..=11 are not proven: one was modified, removed or inserted)"),
        "{text}"
    );
    // A modified signed record is named itself.
    let mut l = lines(&signed_trail(&TempDir::new("pub-cp"), &signer).await);
    l[11] = l[11].replacen("\"records\":10", "\"records\":9", 1);
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::BadSignature {
                line: 12,
                seq: 11,
                first_seq: 11,
                first_line: 12,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the signature does not verify with the key given"),
        "{err}"
    );
}

#[tokio::test]
async fn removed_and_swapped_records_are_named_exactly() {
    let dir = TempDir::new("pub-order");
    let signer = SigningKey::generate().unwrap();
    let path = signed_trail(&dir, &signer).await;
    let original = lines(&path);
    let mut l = original.clone();
    l.remove(3);
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Missing {
            file: path.clone(),
            line: 4,
            expected: 3,
            found: 4
        }
    );
    let mut l = original.clone();
    l.swap(3, 4);
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert_eq!(err.kind(), "missing", "{err}");
    assert_eq!(err.line(), Some(4));
    // Renumbering the lines to hide a deletion breaks the signature instead.
    let mut l = original.clone();
    l.remove(3);
    for (i, line) in l.iter_mut().enumerate().skip(3) {
        *line = line.replacen(
            &format!("{{\"seq\":{},", i + 1),
            &format!("{{\"seq\":{i},"),
            1,
        );
    }
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert_eq!(err.kind(), "bad_signature", "{err}");
}

#[tokio::test]
async fn stripped_foreign_or_missing_signatures_fail() {
    let dir = TempDir::new("pub-unsigned");
    let signer = SigningKey::generate().unwrap();
    let path = signed_trail(&dir, &signer).await;
    let original = lines(&path);
    // Another public key.
    let other = SigningKey::generate().unwrap();
    let err = check(&path, &other).unwrap_err();
    assert_eq!(err.kind(), "unsigned", "{err}");
    assert_eq!(err.line(), Some(1));
    assert!(
        err.to_string().contains(&format!(
            "this run signs with key {}",
            signer.public_key().id()
        )),
        "{err}"
    );
    // A signature removed.
    let mut l = original.clone();
    let at = l[11].find(",\"sig\":\"").unwrap();
    let end = l[11].find(",\"mac\":\"").unwrap();
    l[11].replace_range(at..end, "");
    write_lines(&path, &l);
    let err = check(&path, &signer).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Unsigned {
            file: path.clone(),
            line: 12,
            reason: "the checkpoint record carries no signature, but its run signs".into()
        }
    );
    // A trail written without a signing key.
    let unsigned = dir.join("unsigned.jsonl");
    let sink = FileSink::builder(&unsigned, key()).build().unwrap();
    sink.close().await.unwrap();
    let err = check(&unsigned, &signer).unwrap_err();
    assert_eq!(err.kind(), "unsigned", "{err}");
    assert!(
        err.to_string().contains("written without a signing key"),
        "{err}"
    );
}

#[tokio::test]
async fn unsigned_tails_and_rotated_files_are_reported() {
    let dir = TempDir::new("pub-rotate");
    let signer = SigningKey::generate().unwrap();
    let path = dir.join("audit.jsonl");
    let clock = Arc::new(ManualClock::new(t0()));
    let sink = FileSink::builder(&path, key())
        .signing_key(signer.clone())
        .max_file_bytes(4096)
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..60 {
        submit(&sink, &record(i)).await;
    }
    sink.flush().await.unwrap();
    let files = dir.files();
    assert!(files.len() >= 3, "{files:?}");
    let opts = VerifyOptions::new().now(t0());
    let report = verify_public(&files, &signer.public_key(), &opts).unwrap();
    assert!(!report.closed);
    assert_eq!(report.unproven.len(), 1, "{:?}", report.unproven);
    assert!(
        report.unproven[0].contains("follow the last signed record"),
        "{:?}",
        report.unproven
    );
    assert!(report.proven < report.lines);
    // Older files removed: the first segment cannot be checked, the rest can.
    let report = verify_public(&files[1..], &signer.public_key(), &opts).unwrap();
    assert!(
        report.unproven[0].contains("a segment that begins in a file not given"),
        "{:?}",
        report.unproven
    );
    sink.close().await.unwrap();
    clock.advance(Duration::from_secs(1));
    let report = verify_public(&dir.files(), &signer.public_key(), &opts).unwrap();
    assert!(report.closed);
    assert_eq!(report.proven, report.lines);
}
