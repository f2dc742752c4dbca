use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use mcp_security_core::clock::ManualClock;

use super::*;
use crate::chain::hex;
use crate::test_support::{TempDir, key, kinds, lines, other_key, record, submit, t0};
use crate::verify::{VerifyError, VerifyOptions, verify_files};
use std::fs::OpenOptions;
use std::io::Write as _;

fn manual() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

fn sink_at(path: &Path, clock: &Arc<ManualClock>) -> FileSinkBuilder {
    FileSink::builder(path, key()).clock(clock.clone())
}

#[tokio::test]
async fn hundred_thousand_records_in_block_mode() {
    let dir = TempDir::new("100k");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual())
        .channel_capacity(64)
        .max_file_bytes(0)
        .build()
        .unwrap();
    for i in 0..100_000 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    assert_eq!(sink.dropped(), 0);
    assert_eq!(sink.written(), 100_000);
    let kinds = kinds(&path);
    assert_eq!(kinds.len(), 100_002);
    assert_eq!(kinds.iter().filter(|k| *k == "request").count(), 100_000);
    assert_eq!(kinds.first().map(String::as_str), Some("start"));
    assert_eq!(kinds.last().map(String::as_str), Some("close"));
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 100_000);
    assert_eq!(
        (report.first_seq, report.last_seq),
        (Some(0), Some(100_001))
    );
    assert!(report.closed);
    assert!(report.notices.is_empty(), "{:?}", report.notices);
}

#[tokio::test]
async fn lines_carry_every_field_and_a_verifiable_mac() {
    let dir = TempDir::new("fields");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual()).build().unwrap();
    submit(&sink, &record(3)).await;
    sink.close().await.unwrap();
    let lines = lines(&path);
    let start: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(start["seq"], 0);
    assert_eq!(start["kind"], "start");
    assert_eq!(start["timestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(start["version"], 1);
    assert_eq!(start["key_id"], key().id());
    assert_eq!(start["checkpoint_interval_secs"], 60);
    assert_eq!(start["reason"], serde_json::Value::Null);
    let req: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(req["seq"], 1);
    assert_eq!(req["kind"], "request");
    assert_eq!(req["timestamp"], "2026-01-01T00:00:00.003Z");
    assert_eq!(req["path"], "/mcp");
    assert_eq!(req["query_params"], "page=2");
    assert_eq!(req["status_code"], 200);
    assert_eq!(req["process_time"], 0.00025);
    assert_eq!(req["request_id"], "00000007-000000000003");
    assert_eq!(req["mac"].as_str().unwrap().len(), 64);
    // The body of the line (everything before ,"mac":") is what the MAC covers.
    let body = &lines[1][..lines[1].find(",\"mac\":\"").unwrap()];
    let start_mac = crate::chain::unhex_mac(start["mac"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        hex(&key().mac(&start_mac, body.as_bytes())),
        req["mac"].as_str().unwrap()
    );
    let close: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(close["kind"], "close");
    assert_eq!(close["head"], req["mac"]);
    assert_eq!(close["dropped"], 0);
}

#[tokio::test]
async fn restart_continues_the_chain() {
    let dir = TempDir::new("restart");
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = sink_at(&path, &clock).build().unwrap();
    for i in 0..10 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    clock.advance(Duration::from_secs(5));
    let sink = sink_at(&path, &clock).build().unwrap();
    for i in 10..20 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();

    assert_eq!(
        dir.files(),
        vec![path.clone()],
        "continued in the same file"
    );
    let kinds = kinds(&path);
    assert_eq!(kinds[11], "close");
    assert_eq!(kinds[12], "resume");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 20);
    assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(23)));
    assert!(report.closed);
}

#[tokio::test]
async fn a_writer_that_is_dropped_closes_the_chain() {
    let dir = TempDir::new("drop");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual()).build().unwrap();
    submit(&sink, &record(0)).await;
    sink.flush().await.unwrap();
    drop(sink);
    // The writer closes on its own thread; wait for the close line (bounded).
    for _ in 0..500 {
        if kinds(&path).last().map(String::as_str) == Some("close") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(kinds(&path), ["start", "request", "close"]);
}

#[tokio::test]
async fn restart_after_a_torn_line_links_to_the_last_complete_record() {
    let dir = TempDir::new("torn");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual()).build().unwrap();
    for i in 0..5 {
        submit(&sink, &record(i)).await;
    }
    sink.flush().await.unwrap();
    sink.close().await.unwrap();
    // A crash in the middle of writing the next line.
    let before = std::fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"seq":7,"kind":"request","timestamp":"2026-01"#)
        .unwrap();
    drop(f);

    let sink = sink_at(&path, &manual()).build().unwrap();
    submit(&sink, &record(9)).await;
    sink.close().await.unwrap();

    let rotated = dir.join("audit-00000000000000000000.jsonl");
    assert_eq!(dir.files(), vec![rotated.clone(), path.clone()]);
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["kind"], "restart");
    assert_eq!(first["seq"], 7);
    assert_eq!(first["prev_seq"], 6);
    assert_eq!(first["prev_file"], "audit-00000000000000000000.jsonl");
    assert_eq!(first["torn_offset"], before);

    let report = verify_files(&[&path, &rotated], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 6);
    assert!(report.closed);
    assert!(
        report.notices.iter().any(|n| n.contains("acknowledged")),
        "{:?}",
        report.notices
    );
    // The old file alone ends torn.
    let err = verify_files(&[&rotated], &key(), &VerifyOptions::new()).unwrap_err();
    assert!(
        matches!(err, VerifyError::TornTail { line: 8, offset, .. } if offset == before),
        "{err}"
    );
}

#[tokio::test]
async fn a_tail_that_does_not_verify_starts_a_new_chain() {
    let dir = TempDir::new("newchain");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual()).build().unwrap();
    for i in 0..3 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    // Another key: the old chain cannot be continued.
    let sink = FileSink::builder(&path, other_key())
        .clock(manual())
        .build()
        .unwrap();
    submit(&sink, &record(3)).await;
    sink.close().await.unwrap();

    let rotated = dir.join("audit-00000000000000000000.jsonl");
    assert_eq!(dir.files(), vec![rotated.clone(), path.clone()]);
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["kind"], "start");
    assert_eq!(first["seq"], 5, "numbering goes on");
    assert_eq!(
        first["reason"],
        "the last record does not verify with this key"
    );
    assert_eq!(first["prev_file"], "audit-00000000000000000000.jsonl");
    // Each chain verifies with its own key.
    let old = verify_files(&[&rotated], &key(), &VerifyOptions::new()).unwrap();
    assert!(old.closed);
    let new = verify_files(&[&path], &other_key(), &VerifyOptions::new()).unwrap();
    assert!(new.closed);
    assert!(new.notices.iter().any(|n| n.contains("starts anew")));
    let err = verify_files(&[&rotated, &path], &other_key(), &VerifyOptions::new()).unwrap_err();
    assert_eq!(err.kind(), "wrong_key", "{err}");
}

#[tokio::test]
async fn rotation_keeps_the_chain_across_files() {
    let dir = TempDir::new("rotate");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual())
        .max_file_bytes(4096)
        .build()
        .unwrap();
    for i in 0..100 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    let files = dir.files();
    assert!(files.len() >= 5, "{files:?}");
    assert_eq!(files.last(), Some(&path), "the live file sorts last");
    for f in &files[1..] {
        assert_eq!(kinds(f)[0], "link", "{}", f.display());
    }
    for f in &files[..files.len() - 1] {
        assert_eq!(kinds(f).last().unwrap(), "rotate", "{}", f.display());
        assert!(std::fs::metadata(f).unwrap().len() < 4096 + 2048);
    }
    let opts = VerifyOptions::new().now(t0());
    let report = verify_files(&files, &key(), &opts).unwrap();
    assert_eq!(report.requests, 100);
    assert!(report.closed);
    assert!(report.notices.is_empty(), "{:?}", report.notices);
    // Any order.
    let mut shuffled = files.clone();
    shuffled.reverse();
    shuffled.swap(0, 2);
    assert_eq!(verify_files(&shuffled, &key(), &opts).unwrap(), {
        let mut r = report.clone();
        r.files = files.clone();
        r
    });
    // Older files removed by retention: fine, with a notice.
    let report = verify_files(&files[2..], &key(), &opts).unwrap();
    assert!(report.notices[0].contains("which was not given"));
    // The newest missing: not fine.
    let err = verify_files(&files[..files.len() - 1], &key(), &opts).unwrap_err();
    assert_eq!(err.kind(), "ends_at_rotation", "{err}");
    assert!(verify_files(&files[..2], &key(), &opts.clone().allow_rotated_end(true)).is_ok());
    // A file in the middle missing.
    let mut gap = files.clone();
    gap.remove(2);
    let err = verify_files(&gap, &key(), &opts).unwrap_err();
    assert!(matches!(err, VerifyError::Missing { line: 1, .. }), "{err}");
}

#[tokio::test]
async fn a_missing_live_file_continues_from_the_newest_rotated_one() {
    let dir = TempDir::new("lost-live");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual())
        .max_file_bytes(4096)
        .build()
        .unwrap();
    for i in 0..20 {
        submit(&sink, &record(i)).await;
    }
    sink.close().await.unwrap();
    // The live file deleted (a crash between a rotation's rename and the new file looks the
    // same from the files alone; the head file tells them apart).
    let live = lines(&path);
    let last_seq = serde_json::from_str::<serde_json::Value>(live.last().unwrap()).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let first_seq = serde_json::from_str::<serde_json::Value>(&live[0]).unwrap()["seq"]
        .as_u64()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let sink = sink_at(&path, &manual())
        .max_file_bytes(4096)
        .build()
        .unwrap();
    sink.close().await.unwrap();
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["kind"], "restart");
    assert_eq!(first["reason"], "the live file was missing or empty");
    assert_eq!(first["previous"], "missing_tail");
    // The chain goes on from the newest rotated file, and the verifier names what was lost:
    // the deleted live file's records (its link record stays in the rotated file's chain).
    let err = verify_files(&dir.files(), &key(), &VerifyOptions::new()).unwrap_err();
    assert_eq!((err.kind(), err.line()), ("tail_lost", Some(1)), "{err}");
    assert!(
        err.to_string().ends_with(&format!(
            "records {first_seq}..={last_seq} were cut from the end"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn checkpoints_are_written_on_time_even_when_idle() {
    let dir = TempDir::new("checkpoint");
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = sink_at(&path, &clock)
        .checkpoint_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(kinds(&path), ["start"]);
    clock.advance(Duration::from_secs(59));
    sink.flush().await.unwrap();
    assert_eq!(kinds(&path), ["start"]);
    clock.advance(Duration::from_secs(1));
    sink.flush().await.unwrap();
    assert_eq!(kinds(&path), ["start", "checkpoint"]);
    submit(&sink, &record(1)).await;
    clock.advance(Duration::from_secs(600));
    sink.flush().await.unwrap();
    assert_eq!(
        kinds(&path),
        ["start", "checkpoint", "request", "checkpoint"]
    );
    sink.checkpoint().await.unwrap();
    let lines = lines(&path);
    let cp: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    assert_eq!(cp["records"], 1);
    assert_eq!(cp["dropped"], 0);
    assert_eq!(cp["timestamp"], "2026-01-01T00:11:00.000Z");
    let req: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(cp["head"], req["mac"]);
    assert_eq!(kinds(&path).len(), 5);
    // Open and recent: fine. Open and silent for more than two intervals: truncated.
    let now = clock.now();
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(now)).unwrap();
    assert_eq!(report.checkpoints, 3);
    assert!(!report.closed);
    let err = verify_files(
        &[&path],
        &key(),
        &VerifyOptions::new().now(now + Duration::from_secs(121)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "truncated", "{err}");
    sink.close().await.unwrap();
}

#[tokio::test]
async fn a_burst_costs_the_writer_one_wake_up() {
    let dir = TempDir::new("burst");
    let path = dir.join("audit.jsonl");
    let sink = sink_at(&path, &manual())
        .batch_delay(Duration::from_secs(1))
        .build()
        .unwrap();
    // Records arriving one by one, as requests do; below the high-water mark none of them wakes
    // the writer while it lets records gather (1 s here, far longer than the burst).
    for i in 0..50 {
        submit(&sink, &record(i)).await;
        std::thread::sleep(Duration::from_millis(1));
    }
    sink.flush().await.unwrap();
    // The first record (the writer was idle), then everything else with the flush.
    let batches = sink.shared.batches.load(Ordering::Relaxed);
    assert!(batches <= 3, "{batches} batches for one burst");
    assert_eq!(sink.written(), 50);
    sink.close().await.unwrap();
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 50);
    assert!(report.closed);
}

#[test]
fn submissions_wake_the_writer_only_from_the_high_water_mark() {
    fn woken(sink: &FileSink) -> bool {
        let notified = pin!(sink.shared.wake.notified());
        notified
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }
    let (sink, mut rx) = FileSink::detached(64, OverflowPolicy::Block);
    assert_eq!(sink.shared.high_water, 32);
    for i in 0..31 {
        assert!(matches!(sink.submit(&record(i)), Submit::Done));
    }
    assert!(!woken(&sink));
    assert!(matches!(sink.submit(&record(31)), Submit::Done));
    assert!(woken(&sink));
    // A flush, checkpoint or close request wakes it too.
    while rx.try_recv().is_ok() {}
    let mut flush = pin!(sink.flush());
    assert!(
        flush
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert!(matches!(rx.try_recv(), Ok(Msg::Flush(_))));
    assert!(woken(&sink));
    assert!(!woken(&sink));
}

#[test]
fn drop_policy_counts_what_it_drops() {
    let (sink, _rx) = FileSink::detached(2, OverflowPolicy::Drop);
    for i in 0..5 {
        assert!(matches!(sink.submit(&record(i)), Submit::Done));
    }
    assert_eq!(sink.dropped(), 3);
}

#[test]
fn block_policy_waits_for_room() {
    let (sink, mut rx) = FileSink::detached(1, OverflowPolicy::Block);
    assert!(matches!(sink.submit(&record(0)), Submit::Done));
    let Submit::Wait(wait) = sink.submit(&record(1)) else {
        panic!("a full channel in block mode must push back");
    };
    let mut wait = pin!(wait);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    assert!(rx.try_recv().is_ok());
    // Still waiting: the writer signals room once per batch.
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    sink.shared.room.notify_waiters();
    assert!(wait.as_mut().poll(&mut cx).is_ready());
    assert!(matches!(rx.try_recv(), Ok(Msg::Event(_))));
    assert_eq!(sink.dropped(), 0);
    // A closed writer: counted.
    drop(rx);
    assert!(matches!(sink.submit(&record(2)), Submit::Done));
    assert_eq!(sink.dropped(), 1);
}

#[test]
fn builder_errors_name_the_setting() {
    let dir = TempDir::new("builder");
    let b = || FileSink::builder(dir.join("a.jsonl"), key());
    let e = b().channel_capacity(0).build().unwrap_err();
    assert_eq!(e.setting(), "channel_capacity");
    let e = b().max_file_bytes(100).build().unwrap_err();
    assert_eq!(e.setting(), "max_file_bytes");
    let e = b()
        .checkpoint_interval(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "checkpoint_interval");
    let e = b().batch_delay(Duration::from_secs(2)).build().unwrap_err();
    assert_eq!(e.setting(), "batch_delay");
    let e = FileSink::builder(dir.path(), key()).build().unwrap_err();
    assert_eq!(e.setting(), "log_file");
    assert_eq!(
        OverflowPolicy::parse("MCP_AUDIT_OVERFLOW", "Drop").unwrap(),
        OverflowPolicy::Drop
    );
    assert_eq!(
        OverflowPolicy::parse("MCP_AUDIT_OVERFLOW", "x")
            .unwrap_err()
            .to_string(),
        "MCP_AUDIT_OVERFLOW: expected block, drop or refuse (got \"x\")"
    );
    assert_eq!(
        SyncPolicy::parse("s", "batch").unwrap(),
        SyncPolicy::EveryBatch
    );
}

#[cfg(unix)]
#[tokio::test]
async fn new_audit_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mcp-audit-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let key = AuditKey::from_bytes(&[7u8; 32]).unwrap();
    let sink = FileSink::builder(&path, key).build().unwrap();
    sink.close().await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}
