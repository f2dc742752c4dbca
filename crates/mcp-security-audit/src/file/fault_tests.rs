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
    let dir = TempDir::new("fault-drop");
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = FileSink::builder(&path, key())
        .overflow(OverflowPolicy::Drop)
        .clock(clock.clone())
        .build()
        .unwrap();
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
    let dir = TempDir::new("fault-block");
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = FileSink::builder(&path, key())
        .channel_capacity(4)
        .clock(clock.clone())
        .build()
        .unwrap();
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
    let dir = TempDir::new("fault-refuse");
    let path = dir.join("audit.jsonl");
    let clock = manual();
    let sink = FileSink::builder(&path, key())
        .overflow(OverflowPolicy::Refuse)
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
