//! Write errors under each overflow policy, with an injected writer error: nothing crashes, the
//! chain stays valid, and what was lost is counted in the trail.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::clock::ManualClock;
use tower::{Layer, ServiceExt};

use super::*;
use crate::AuditLayer;
use crate::test_support::{TempDir, key, lines, record, submit, t0};
use crate::verify::{VerifyOptions, verify_files};

fn manual() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// The lines of `kind` in a file.
fn of_kind(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| json(l))
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// One POST through the stack: the response head and body.
async fn call<S, B>(svc: &S) -> (http::response::Parts, String)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc
        .clone()
        .oneshot(Request::post("/mcp").body(Full::default()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, String::from_utf8(body.to_vec()).unwrap())
}

/// Wait (bounded) for the writer thread to get somewhere.
fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the writer did not get there");
}

/// A sink with a manual clock on `audit.jsonl` in a new directory `name`, `settings` applied
/// to its builder.
fn sink_in(
    name: &str,
    settings: impl FnOnce(FileSinkBuilder) -> FileSinkBuilder,
) -> (TempDir, PathBuf, Arc<ManualClock>, FileSink) {
    let dir = TempDir::new(name);
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = settings(FileSink::builder(&path, key()))
        .clock(clock.clone())
        .build()
        .unwrap();
    (dir, path, clock, sink)
}

#[test]
fn the_policies_parse() {
    assert_eq!(
        OverflowPolicy::parse("X", " Refuse ").unwrap(),
        OverflowPolicy::Refuse
    );
    assert_eq!(OverflowPolicy::Refuse.as_str(), "refuse");
    let e = OverflowPolicy::parse("MCP_AUDIT_OVERFLOW", "wait").unwrap_err();
    assert_eq!(e.setting(), "MCP_AUDIT_OVERFLOW");
    assert!(
        e.to_string().contains("expected block, drop or refuse"),
        "{e}"
    );
}

#[tokio::test]
async fn drop_counts_what_a_write_error_lost_and_writes_a_gap_record() {
    let (_dir, path, clock, sink) = sink_in("fault-drop", |b| b.overflow(OverflowPolicy::Drop));
    for i in 0..3 {
        submit(&sink, &record(i)).await;
    }
    sink.flush().await.unwrap();
    sink.inject_write_errors(true);
    for i in 3..8 {
        submit(&sink, &record(i)).await;
    }
    assert!(sink.flush().await.is_err());
    assert!(sink.is_failing());
    assert!(sink.accepting(), "drop does not refuse requests");
    assert_eq!(sink.dropped(), 5);
    // The disk comes back; the next batch after a tick reopens the file.
    sink.inject_write_errors(false);
    clock.advance(Duration::from_secs(1));
    submit(&sink, &record(8)).await;
    sink.flush().await.unwrap();
    assert!(!sink.is_failing());
    sink.close().await.unwrap();

    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0]["detector"], "audit_records_dropped");
    assert_eq!(gap[0]["count"], 5);
    let resume = of_kind(&path, "resume");
    assert_eq!(resume[0]["previous"], "write_error");
    assert_eq!(resume[0]["dropped"], 5);
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 4);
    assert!(report.closed);
    assert_eq!(
        report.unclean_resumes.len(),
        1,
        "{:?}",
        report.unclean_resumes
    );
    assert!(report.unclean_resumes[0].contains("after a write error"));
}

#[tokio::test]
async fn block_holds_records_back_and_writes_them_when_the_disk_recovers() {
    let (_dir, path, clock, sink) = sink_in("fault-block", |b| b.channel_capacity(4));
    submit(&sink, &record(0)).await;
    sink.flush().await.unwrap();
    sink.inject_write_errors(true);
    for i in 1..4 {
        submit(&sink, &record(i)).await;
    }
    // (A flush would wait for the disk too: the writer holds everything back.)
    wait_until(|| sink.is_failing());
    // The writer takes nothing more: the queue fills and submitters wait (backpressure).
    let mut next = 4;
    let wait = loop {
        match sink.submit(&record(next)) {
            Submit::Done => next += 1,
            Submit::Wait(wait) => break wait,
        }
        assert!(
            next < 12,
            "a failing disk under the block policy must push back"
        );
    };
    let mut wait = pin!(wait);
    assert!(
        wait.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    sink.inject_write_errors(false);
    clock.advance(Duration::from_secs(1));
    wait.await;
    sink.close().await.unwrap();
    assert_eq!(sink.dropped(), 0, "nothing lost");
    let report = verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, next + 1, "records 0..={next}");
    assert!(report.closed);
    assert!(of_kind(&path, "security").is_empty(), "no gap");
}

#[tokio::test]
async fn refuse_answers_503_until_the_disk_recovers() {
    let (_dir, path, clock, sink) = sink_in("fault-refuse", |b| b.overflow(OverflowPolicy::Refuse));
    let audit = AuditLayer::builder()
        .file_sink(sink.clone())
        .tracing(false)
        .build()
        .unwrap();
    let svc = audit.layer(audit.gate().layer(tower::service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        },
    )));
    let (parts, body) = call(&svc).await;
    assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "ok"));
    sink.flush().await.unwrap();
    sink.inject_write_errors(true);
    let (parts, _) = call(&svc).await;
    assert_eq!(parts.status, StatusCode::OK, "not failing yet");
    assert!(sink.flush().await.is_err());
    assert!(!audit.accepting());

    let (parts, body) = call(&svc).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers["retry-after"], "1");
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(parts.headers["cache-control"], "no-store");
    // The refusal's own record cannot be written either: counted.
    assert!(sink.flush().await.is_err());
    assert_eq!(body, crate::layer::REFUSED_BODY);

    sink.inject_write_errors(false);
    clock.advance(Duration::from_secs(1));
    sink.flush().await.unwrap();
    assert!(audit.accepting());
    let (parts, body) = call(&svc).await;
    assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "ok"));
    audit.close().await.unwrap();

    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(
        gap[0]["count"], 2,
        "the second request's record and the refusal's"
    );
    assert_eq!(sink.dropped(), 2);
    let requests = of_kind(&path, "request");
    assert_eq!(requests.len(), 2, "the first and the last request");
    assert!(verify_files(&[&path], &key(), &VerifyOptions::new().now(t0())).is_ok());
}

/// The audit files in a directory (not the head file), sorted by name: rotated ones first, the
/// live one last.
fn logs(dir: &TempDir) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// How many times each request id is in the (complete lines of the) files.
fn request_counts(files: &[PathBuf]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().split_inclusive('\n') {
            if !line.ends_with('\n') {
                continue;
            }
            let v = json(line);
            if v["kind"] == "request" {
                let id = v["request_id"].as_str().unwrap().to_owned();
                *counts.entry(id).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn request_id(i: u64) -> String {
    let AuditEvent::Request(r) = &*record(i) else {
        unreachable!("a request record")
    };
    r.request_id().into_owned()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// What a short write left: records `0..3` written, then `3..7` taken in one batch whose write
/// stops `whole` complete lines and half a line into the batch, as at a full disk.
struct ShortWrite {
    /// The length of the file before the batch.
    at: u64,
    /// The length of each request line (newline included).
    line: u64,
    /// The sequence number of the last record before the batch.
    last_seq: u64,
    /// The bytes of the batch the file took.
    torn: u64,
}

async fn short_write(sink: &FileSink, path: &Path, whole: u64) -> ShortWrite {
    for i in 0..3 {
        submit(sink, &record(i)).await;
    }
    sink.flush().await.unwrap();
    let at = len(path);
    let last = lines(path).pop().unwrap();
    let last_seq = json(&last)["seq"].as_u64().unwrap();
    let line = last.len() as u64 + 1;
    // The writer takes nothing more until it is let go: the four records are one batch.
    sink.pause_writer(true);
    wait_until(|| sink.writer_paused());
    for i in 3..7 {
        submit(sink, &record(i)).await;
    }
    let torn = whole * line + line / 2;
    sink.inject_short_write(0, usize::try_from(torn).unwrap());
    sink.pause_writer(false);
    wait_until(|| sink.is_failing());
    assert_eq!(len(path), at + torn, "the file took the short write");
    let text = std::fs::read_to_string(path).unwrap();
    let batch = text.get(usize::try_from(at).unwrap()..).unwrap();
    assert_eq!(
        batch.matches('\n').count() as u64,
        whole,
        "whole lines, then a torn one: {batch}"
    );
    for (n, l) in batch.split_inclusive('\n').enumerate() {
        let i = 3 + n as u64;
        if l.ends_with('\n') {
            assert_eq!(json(l)["request_id"], request_id(i), "{l}");
            assert_eq!(json(l)["seq"], last_seq + 1 + n as u64, "{l}");
        }
    }
    ShortWrite {
        at,
        line,
        last_seq,
        torn,
    }
}

/// The torn file and the restart that continues the chain after its last whole line.
fn assert_restarted(dir: &TempDir, path: &Path, w: &ShortWrite, whole: u64) -> Vec<PathBuf> {
    let files = logs(dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[1], path);
    assert_eq!(len(&files[0]), w.at + w.torn, "the torn file is kept");
    let restart = of_kind(path, "restart");
    assert_eq!(restart.len(), 1, "{restart:?}");
    assert_eq!(restart[0]["previous"], "write_error");
    assert_eq!(restart[0]["reason"], "the last line was torn");
    assert_eq!(restart[0]["prev_seq"], w.last_seq + whole);
    assert_eq!(restart[0]["torn_offset"], w.at + whole * w.line);
    assert_eq!(restart[0]["seq"], w.last_seq + whole + 1);
    assert_eq!(
        restart[0]["prev_file"],
        files[0].file_name().unwrap().to_str().unwrap()
    );
    files
}

/// `block`, a short write: the records whose lines the file took whole are in the trail once,
/// the rest of the batch is written after the restart, none twice.
async fn block_after_a_short_write(whole: u64) {
    let (dir, path, clock, sink) = sink_in("fault-short-block", |b| b);
    let w = short_write(&sink, &path, whole).await;
    assert_eq!(sink.dropped(), 0);
    // The disk recovers: the writer reopens at its next retry.
    clock.advance(Duration::from_secs(1));
    sink.flush().await.unwrap();
    submit(&sink, &record(7)).await;
    sink.close().await.unwrap();

    let files = assert_restarted(&dir, &path, &w, whole);
    let counts = request_counts(&files);
    let expected: std::collections::BTreeMap<String, usize> =
        (0..8).map(|i| (request_id(i), 1)).collect();
    assert_eq!(counts, expected, "every record exactly once");
    assert_eq!(sink.dropped(), 0, "nothing lost");
    assert_eq!(sink.written(), 8);
    assert!(of_kind(&path, "security").is_empty(), "no gap");
    let resent: Vec<serde_json::Value> = of_kind(&path, "request");
    assert_eq!(
        resent.first().unwrap()["request_id"],
        request_id(3 + whole),
        "written again from the first record the file did not take whole"
    );
    assert_eq!(resent.first().unwrap()["seq"], w.last_seq + whole + 2);
    let report = verify_files(&files, &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 8, "{report}");
    assert!(report.closed);
    assert_eq!(report.unclean_resumes.len(), 1, "{report}");
    assert!(report.unclean_resumes[0].contains("after a write error"));
}

#[tokio::test]
async fn block_writes_each_record_once_after_a_short_write_of_one_line_and_a_half() {
    block_after_a_short_write(1).await;
}

#[tokio::test]
async fn block_writes_each_record_once_after_a_short_write_of_two_lines_and_a_half() {
    block_after_a_short_write(2).await;
}

/// `drop`, a short write: the records whose lines the file took whole are in the trail and not
/// counted as lost; the count (`dropped()`, the gap, restart, checkpoint and close records) is
/// exactly the records missing from the trail.
async fn drop_after_a_short_write(whole: u64) {
    let (dir, path, clock, sink) =
        sink_in("fault-short-drop", |b| b.overflow(OverflowPolicy::Drop));
    let w = short_write(&sink, &path, whole).await;
    assert!(sink.flush().await.is_err(), "still failing");
    assert_eq!(
        sink.dropped(),
        4 - whole,
        "the batch's records not in the file"
    );
    submit(&sink, &record(7)).await;
    assert!(sink.flush().await.is_err());
    let lost = 5 - whole;
    assert_eq!(sink.dropped(), lost);
    clock.advance(Duration::from_secs(1));
    submit(&sink, &record(8)).await;
    sink.flush().await.unwrap();
    assert!(!sink.is_failing());
    sink.checkpoint().await.unwrap();
    sink.close().await.unwrap();

    let files = assert_restarted(&dir, &path, &w, whole);
    assert_eq!(of_kind(&path, "restart")[0]["dropped"], lost);
    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0]["detector"], "audit_records_dropped");
    assert_eq!(gap[0]["count"], lost);
    assert_eq!(
        of_kind(&path, "checkpoint").last().unwrap()["dropped"],
        lost
    );
    assert_eq!(of_kind(&path, "close")[0]["dropped"], lost);
    let counts = request_counts(&files);
    let expected: std::collections::BTreeMap<String, usize> = (0..3 + whole)
        .chain([8])
        .map(|i| (request_id(i), 1))
        .collect();
    assert_eq!(counts, expected, "the records in the trail, each once");
    assert_eq!(sink.dropped(), lost);
    let report = verify_files(&files, &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 4 + whole, "{report}");
    assert_eq!(
        report.requests + sink.dropped(),
        9,
        "all nine accounted for"
    );
    assert_eq!(sink.written(), report.requests);
    assert!(report.closed);
}

#[tokio::test]
async fn drop_counts_exactly_the_records_a_short_write_of_one_line_and_a_half_lost() {
    drop_after_a_short_write(1).await;
}

#[tokio::test]
async fn drop_counts_exactly_the_records_a_short_write_of_two_lines_and_a_half_lost() {
    drop_after_a_short_write(2).await;
}

/// `drop`: the write of a recovery's gap record is short too (the record is torn): the next
/// recovery's gap record counts every record lost since the first failure, not only the ones
/// since the second.
#[tokio::test]
async fn drop_counts_again_what_a_torn_gap_record_reported() {
    let (dir, path, clock, sink) = sink_in("fault-torn-gap", |b| b.overflow(OverflowPolicy::Drop));
    for i in 0..3 {
        submit(&sink, &record(i)).await;
    }
    sink.flush().await.unwrap();
    sink.inject_write_errors(true);
    for i in 3..5 {
        submit(&sink, &record(i)).await;
    }
    assert!(sink.flush().await.is_err());
    assert_eq!(sink.dropped(), 2);
    // The file opens again (a resume record), but the gap record's write takes 10 bytes.
    sink.inject_write_errors(false);
    sink.inject_short_write(1, 10);
    clock.advance(Duration::from_secs(1));
    submit(&sink, &record(5)).await;
    assert!(sink.flush().await.is_err());
    assert!(sink.is_failing());
    assert_eq!(
        sink.dropped(),
        3,
        "and the record the torn batch could not take"
    );
    clock.advance(Duration::from_secs(1));
    submit(&sink, &record(6)).await;
    sink.flush().await.unwrap();
    sink.close().await.unwrap();

    let files = logs(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let torn = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!torn.ends_with('\n'), "the gap record is torn");
    let kinds: Vec<String> = torn
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| json(l)["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("resume"),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "security"), "{kinds:?}");
    let restart = of_kind(&path, "restart");
    assert_eq!(restart.len(), 1, "{restart:?}");
    assert_eq!(restart[0]["reason"], "the last line was torn");
    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0]["detector"], "audit_records_dropped");
    assert_eq!(
        gap[0]["count"], 3,
        "every record lost since the first failure"
    );
    assert_eq!(of_kind(&path, "close")[0]["dropped"], 3);
    let report = verify_files(&files, &key(), &VerifyOptions::new().now(t0())).unwrap();
    assert_eq!(report.requests, 4, "{report}");
    assert_eq!(
        report.requests + sink.dropped(),
        7,
        "all seven accounted for"
    );
    assert!(report.closed);
}
