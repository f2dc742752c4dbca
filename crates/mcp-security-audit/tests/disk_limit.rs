//! Write errors from the operating system itself: `RLIMIT_FSIZE` caps how far any file of this
//! process may grow, just above what the audit file holds, so the writer's `write(2)` really
//! fails (`EFBIG`, after a short write: a torn line, as a full disk leaves it), and raising the
//! limit again is the disk recovering. Each overflow policy must hold: nothing panics, the trail
//! verifies, and what could not be written is held back (`block`) or counted in a gap record
//! (`drop`, `refuse`), with 503 answers under `refuse`.
//!
//! The limit is process-wide: the scenarios run one after another in a single test, and nothing
//! else in this process writes files while it is low.
#![cfg(target_os = "linux")]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_audit::AuditLayer;
use mcp_security_audit::chain::AuditKey;
use mcp_security_audit::file::{FileSink, OverflowPolicy};
use mcp_security_audit::layer::REFUSED_BODY;
use mcp_security_audit::verify::{VerifyOptions, VerifyReport, verify_files};
use mcp_security_core::clock::ManualClock;
use tower::{Layer, Service, ServiceExt};

/// Bytes of the next line the kernel lets through before it refuses: the line is torn.
const TORN_BYTES: u64 = 16;

/// A bound on waits that must end (a hang is a failure, not a slow run).
const LIVENESS: Duration = Duration::from_secs(30);

/// Panics anywhere in the process (the writer thread included).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn key() -> AuditKey {
    AuditKey::from_bytes(b"a disk-limit test key of at least thirty-two bytes").unwrap()
}

/// 2026-01-01T00:00:00Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// The file-size limit of this process; restores the saved one when dropped (also on a failed
/// assertion, so the report can be written).
struct FileSizeLimit {
    saved: libc::rlimit,
}

impl FileSizeLimit {
    fn save() -> Self {
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes one `rlimit` through a valid pointer.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut saved) };
        assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
        FileSizeLimit { saved }
    }

    /// No file of this process may grow past `bytes` (the soft limit; the hard one stays).
    fn cap(&self, bytes: u64) {
        assert!(
            self.saved.rlim_max == libc::RLIM_INFINITY || bytes <= self.saved.rlim_max,
            "the hard limit is below {bytes}"
        );
        self.set(bytes);
    }

    /// The disk recovers: the saved limit again.
    fn lift(&self) {
        self.set(self.saved.rlim_cur);
    }

    fn set(&self, cur: libc::rlim_t) {
        let limit = libc::rlimit {
            rlim_cur: cur,
            rlim_max: self.saved.rlim_max,
        };
        // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
}

impl Drop for FileSizeLimit {
    fn drop(&mut self) {
        self.lift();
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcp-audit-disk-limit-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The audit files (not the head file), sorted by name: rotated ones first, the live one
    /// last.
    fn logs(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The records of `kind` in a file (complete lines only).
fn of_kind(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// The `request_id` of every request record in the set; each must be there once (a record
/// written again after a recovery would show twice).
fn unique_request_ids(dir: &TempDir) -> usize {
    let mut ids: Vec<String> = dir
        .logs()
        .iter()
        .flat_map(|f| of_kind(f, "request"))
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "a request record written twice");
    all
}

/// A sink with `policy` on a manual clock (the writer retries a failed file once per second of
/// it), an audit layer with its gate, and the stack they guard.
fn stack(
    path: &Path,
    policy: OverflowPolicy,
    capacity: usize,
) -> (
    FileSink,
    AuditLayer,
    Arc<ManualClock>,
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<impl http_body::Body<Error: std::fmt::Debug>>,
        Error: std::fmt::Debug,
    > + Clone,
) {
    let clock = Arc::new(ManualClock::new(t0()));
    let sink = FileSink::builder(path, key())
        .overflow(policy)
        .channel_capacity(capacity)
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = AuditLayer::builder()
        .file_sink(sink.clone())
        .tracing(false)
        .build()
        .unwrap();
    let svc = audit.layer(audit.gate().layer(tower::service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        },
    )));
    (sink, audit, clock, svc)
}

/// One POST through the stack: the response head and body.
async fn call<S, B>(svc: &S) -> (http::response::Parts, String)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
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

/// A request that must be served 200 "ok" (bounded: a hang fails).
async fn served<S, B>(svc: &S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = tokio::time::timeout(LIVENESS, call(svc))
        .await
        .expect("the request was not served");
    assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "ok"));
}

/// Wait (bounded) for the writer thread to get somewhere.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the writer did not get there: {what}");
}

/// The torn tail the kernel left: the file that was live when the limit was set now ends
/// `torn` bytes into a line at byte `at`, and the live file opens with a `restart` record after
/// a write error that acknowledges exactly that byte.
fn assert_torn_and_restarted(
    dir: &TempDir,
    live: &Path,
    at: u64,
    torn: u64,
    prev_seq: u64,
) -> PathBuf {
    let logs = dir.logs();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let rotated = logs[0].clone();
    assert_eq!(logs[1], live);
    assert_eq!(
        len(&rotated),
        at + torn,
        "the kernel let exactly the bytes below the limit through"
    );
    let text = std::fs::read(&rotated).unwrap();
    assert_ne!(text.last(), Some(&b'\n'), "the last line is torn");
    let restart = of_kind(live, "restart");
    assert_eq!(restart.len(), 1, "{restart:?}");
    assert_eq!(restart[0]["previous"], "write_error");
    assert_eq!(restart[0]["torn_offset"], at);
    assert_eq!(restart[0]["prev_seq"], prev_seq);
    assert_eq!(restart[0]["reason"], "the last line was torn");
    assert_eq!(
        restart[0]["prev_file"],
        rotated.file_name().unwrap().to_str().unwrap()
    );
    rotated
}

/// The verifier passes the whole set, names the torn line (if any) it accepted as acknowledged
/// and the restart after a write error.
fn assert_verifies(dir: &TempDir, torn_at: Option<u64>) -> VerifyReport {
    let report = verify_files(&dir.logs(), &key(), &VerifyOptions::new()).unwrap();
    assert!(report.closed, "{report}");
    let torn: Vec<&String> = report
        .notices
        .iter()
        .filter(|n| n.contains("torn line"))
        .collect();
    match torn_at {
        Some(at) => {
            assert_eq!(torn.len(), 1, "{:?}", report.notices);
            assert!(
                torn[0].contains(&format!("torn line at byte {at}, acknowledged")),
                "{torn:?}"
            );
        }
        None => assert!(torn.is_empty(), "{:?}", report.notices),
    }
    assert_eq!(
        report.unclean_resumes.len(),
        1,
        "{:?}",
        report.unclean_resumes
    );
    assert!(
        report.unclean_resumes[0].contains("after a write error"),
        "{:?}",
        report.unclean_resumes
    );
    report
}

/// The file could not grow by a single byte, so nothing was torn: the writer continues the same
/// file with a `resume` record after a write error.
fn assert_resumed(dir: &TempDir, live: &Path, dropped: u64) {
    assert_eq!(dir.logs(), [live], "no rotation");
    let resume = of_kind(live, "resume");
    assert_eq!(resume.len(), 1, "{resume:?}");
    assert_eq!(resume[0]["previous"], "write_error");
    assert_eq!(resume[0]["dropped"], dropped);
}

/// `drop`: requests are served while the file cannot grow, the lost records are counted, and
/// the trail says so in a gap record once the disk recovers. `torn`: the bytes of the next line
/// the kernel lets through (0: it refuses the first byte).
async fn drop_policy(limit: &FileSizeLimit, torn: u64) {
    let dir = TempDir::new(&format!("drop-{torn}"));
    let path = dir.join("audit.jsonl");
    let (sink, audit, clock, svc) = stack(&path, OverflowPolicy::Drop, 64);
    for _ in 0..3 {
        served(&svc).await;
    }
    sink.flush().await.unwrap();
    let at = len(&path);
    let last_seq = of_kind(&path, "request")[2]["seq"].as_u64().unwrap();

    limit.cap(at + torn);
    for _ in 0..5 {
        served(&svc).await;
    }
    let flushed = sink.flush().await;
    assert!(flushed.is_err(), "the kernel refused the write");
    assert!(sink.is_failing());
    assert!(sink.accepting() && audit.accepting(), "drop serves on");
    served(&svc).await;
    assert!(sink.flush().await.is_err(), "still failing");
    assert_eq!(sink.dropped(), 6, "every record while the file cannot grow");
    assert_eq!(len(&path), at + torn, "nothing past the limit");

    limit.lift();
    clock.advance(Duration::from_secs(1));
    served(&svc).await;
    sink.flush().await.unwrap();
    assert!(!sink.is_failing());
    audit.close().await.unwrap();

    let torn_at = if torn == 0 {
        assert_resumed(&dir, &path, 6);
        None
    } else {
        assert_torn_and_restarted(&dir, &path, at, torn, last_seq);
        assert_eq!(of_kind(&path, "restart")[0]["dropped"], 6);
        Some(at)
    };
    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0]["detector"], "audit_records_dropped");
    assert_eq!(gap[0]["count"], 6);
    assert_eq!(of_kind(&path, "close")[0]["dropped"], 6);
    let report = assert_verifies(&dir, torn_at);
    assert_eq!(report.requests, 4, "three before, one after: {report}");
    assert_eq!(unique_request_ids(&dir), 4);
    assert_eq!(
        report.requests + sink.dropped(),
        10,
        "all ten accounted for"
    );
}

/// `block`: nothing is lost; while the disk refuses, the queue fills and the next response is
/// held back until the disk recovers.
async fn block_policy(limit: &FileSizeLimit) {
    const CAPACITY: usize = 4;
    let dir = TempDir::new("block");
    let path = dir.join("audit.jsonl");
    let (sink, audit, clock, svc) = stack(&path, OverflowPolicy::Block, CAPACITY);
    served(&svc).await;
    sink.flush().await.unwrap();
    let at = len(&path);
    let last_seq = of_kind(&path, "request")[0]["seq"].as_u64().unwrap();

    limit.cap(at + TORN_BYTES);
    // The writer takes this one, the kernel refuses it, and the writer holds it.
    served(&svc).await;
    wait_until("the write error", || sink.is_failing());
    assert!(audit.accepting(), "block does not refuse");
    // The writer takes no more: the queue fills ...
    for _ in 0..CAPACITY {
        served(&svc).await;
    }
    // ... and the next response waits for room.
    let mut held = Box::pin(call(&svc));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut held)
            .await
            .is_err(),
        "a request must be held while the disk refuses"
    );
    assert!(sink.is_failing());
    assert_eq!(sink.dropped(), 0);
    assert_eq!(len(&path), at + TORN_BYTES, "nothing past the limit");

    limit.lift();
    clock.advance(Duration::from_secs(1));
    let (parts, body) = tokio::time::timeout(LIVENESS, held)
        .await
        .expect("the held request is served once the disk recovers");
    assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "ok"));
    served(&svc).await;
    audit.close().await.unwrap();
    assert!(!sink.is_failing());
    assert_eq!(sink.dropped(), 0, "nothing lost");

    assert_torn_and_restarted(&dir, &path, at, TORN_BYTES, last_seq);
    assert!(of_kind(&path, "security").is_empty(), "no gap");
    assert_eq!(of_kind(&path, "close")[0]["dropped"], 0);
    let report = assert_verifies(&dir, Some(at));
    let sent = 1 + 1 + CAPACITY as u64 + 1 + 1;
    assert_eq!(report.requests, sent, "every record: {report}");
    assert_eq!(unique_request_ids(&dir) as u64, sent, "each once");
    assert_eq!(report.security_events, 0);
}

/// The length of the first complete line of `kind` in a file, newline included.
fn line_len(path: &Path, kind: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .find(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"] == kind)
        .map(|l| l.len() as u64)
        .unwrap()
}

/// `block`, a short write in the middle of a batch of several records: the kernel takes two
/// whole lines and half the third. The two are in the trail once, the rest of the batch is
/// written after the restart, none twice.
///
/// The batch is made deterministic by the policy itself: while the writer holds a record back
/// after a write error it takes nothing, so the four requests served meanwhile are queued and
/// taken together after the resume record and the held record. A first round (refused at the
/// first byte, then recovered) measures the resume record the second round writes again.
async fn block_policy_short_batch(limit: &FileSizeLimit) {
    const CAPACITY: usize = 4;
    let dir = TempDir::new("block-batch");
    let path = dir.join("audit.jsonl");
    let (sink, audit, clock, svc) = stack(&path, OverflowPolicy::Block, CAPACITY);
    served(&svc).await;
    sink.flush().await.unwrap();

    // Round 1: the file cannot grow by a byte; the held record is written after a resume.
    limit.cap(len(&path));
    served(&svc).await;
    wait_until("the first write error", || sink.is_failing());
    limit.lift();
    clock.advance(Duration::from_secs(1));
    wait_until("the first recovery", || !sink.is_failing());
    sink.flush().await.unwrap();
    let resume = line_len(&path, "resume");
    let request = line_len(&path, "request");

    // Round 2: refused at the first byte again; four requests queue up meanwhile.
    let at = len(&path);
    limit.cap(at);
    served(&svc).await;
    wait_until("the second write error", || sink.is_failing());
    for _ in 0..CAPACITY {
        served(&svc).await;
    }
    // The file takes the resume record, the held record, then two lines and a half of the
    // batch.
    let batch_at = at + resume + request;
    let cap = batch_at + 2 * request + request / 2;
    limit.cap(cap);
    clock.advance(Duration::from_secs(1));
    wait_until("the short write", || len(&path) == cap && sink.is_failing());
    limit.lift();
    clock.advance(Duration::from_secs(1));
    served(&svc).await;
    audit.close().await.unwrap();
    assert!(!sink.is_failing());
    assert_eq!(sink.dropped(), 0, "nothing lost");

    let logs = dir.logs();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let rotated = &logs[0];
    assert_eq!(
        len(rotated),
        cap,
        "the kernel let exactly the bytes below the limit through"
    );
    let text = std::fs::read_to_string(rotated).unwrap();
    let batch = text.get(usize::try_from(batch_at).unwrap()..).unwrap();
    let whole: Vec<&str> = batch
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert_eq!(
        whole.len(),
        2,
        "two whole lines of the batch, then a torn one"
    );
    let torn_offset = batch_at + whole.iter().map(|l| l.len() as u64).sum::<u64>();
    assert!(torn_offset < cap, "a torn line after them");
    let last: serde_json::Value = serde_json::from_str(whole[1]).unwrap();
    assert_eq!(last["kind"], "request");
    let restart = of_kind(&path, "restart");
    assert_eq!(restart.len(), 1, "{restart:?}");
    assert_eq!(restart[0]["previous"], "write_error");
    assert_eq!(restart[0]["reason"], "the last line was torn");
    assert_eq!(restart[0]["torn_offset"], torn_offset);
    assert_eq!(restart[0]["prev_seq"], last["seq"]);
    assert!(of_kind(&path, "security").is_empty(), "no gap");

    let report = verify_files(&logs, &key(), &VerifyOptions::new()).unwrap();
    assert!(report.closed, "{report}");
    let sent = 1 + 1 + 1 + CAPACITY as u64 + 1;
    assert_eq!(report.requests, sent, "every record: {report}");
    assert_eq!(unique_request_ids(&dir) as u64, sent, "each once");
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.contains(&format!("torn line at byte {torn_offset}, acknowledged"))),
        "{:?}",
        report.notices
    );
    assert_eq!(
        report.unclean_resumes.len(),
        3,
        "{:?}",
        report.unclean_resumes
    );
    assert!(
        report
            .unclean_resumes
            .iter()
            .all(|r| r.contains("after a write error")),
        "{:?}",
        report.unclean_resumes
    );
}

/// `refuse`: 503 with `Retry-After: 1` while the disk refuses, 200 again once it recovers.
async fn refuse_policy(limit: &FileSizeLimit) {
    let dir = TempDir::new("refuse");
    let path = dir.join("audit.jsonl");
    let (sink, audit, clock, svc) = stack(&path, OverflowPolicy::Refuse, 64);
    served(&svc).await;
    sink.flush().await.unwrap();
    let at = len(&path);
    let last_seq = of_kind(&path, "request")[0]["seq"].as_u64().unwrap();

    limit.cap(at + TORN_BYTES);
    served(&svc).await; // not failing yet: its record is the one the kernel refuses
    assert!(sink.flush().await.is_err());
    assert!(sink.is_failing());
    assert!(!audit.accepting() && !sink.accepting());
    for _ in 0..3 {
        let (parts, body) = call(&svc).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parts.headers["retry-after"], "1");
        assert_eq!(parts.headers["content-type"], "application/json");
        assert_eq!(parts.headers["cache-control"], "no-store");
        assert_eq!(body, REFUSED_BODY);
    }
    // The refusals' own records cannot be written either: counted.
    assert!(sink.flush().await.is_err());
    assert_eq!(
        sink.dropped(),
        4,
        "the second request's record and three refusals"
    );
    assert_eq!(len(&path), at + TORN_BYTES, "nothing past the limit");

    limit.lift();
    clock.advance(Duration::from_secs(1));
    sink.flush().await.unwrap();
    assert!(!sink.is_failing());
    assert!(audit.accepting());
    served(&svc).await;
    audit.close().await.unwrap();

    assert_torn_and_restarted(&dir, &path, at, TORN_BYTES, last_seq);
    let gap = of_kind(&path, "security");
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0]["detector"], "audit_records_dropped");
    assert_eq!(gap[0]["count"], 4);
    let report = assert_verifies(&dir, Some(at));
    assert_eq!(
        report.requests, 2,
        "the first and the last request: {report}"
    );
    assert_eq!(sink.dropped(), 4);
}

#[tokio::test]
async fn the_kernel_refuses_the_writes_and_each_policy_holds() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    // SAFETY: ignoring a signal installs no handler; without it the kernel kills the process at
    // the first write past the limit instead of failing the write with EFBIG.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR);
    let limit = FileSizeLimit::save();

    drop_policy(&limit, TORN_BYTES).await;
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "drop, a torn line");
    drop_policy(&limit, 0).await;
    assert_eq!(
        PANICS.load(Ordering::Relaxed),
        0,
        "drop, refused at the first byte"
    );
    block_policy(&limit).await;
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "block");
    block_policy_short_batch(&limit).await;
    assert_eq!(
        PANICS.load(Ordering::Relaxed),
        0,
        "block, a batch torn in its third line"
    );
    refuse_policy(&limit).await;
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "refuse");
}
