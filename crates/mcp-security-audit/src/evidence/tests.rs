//! Tool-call evidence through the audit layer: JSON and SSE answers, `isError`, a result
//! rewritten inside the layer, the cap, early drops, refused and other requests, the file
//! trail and its verification.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use mcp_security_core::config::Env;
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::response::{RawObject, ResponseKind, RewriteBody, RewriteResponse, Targets};
use mcp_security_core::{McpCall, Rejection};
use tower::ServiceExt;
use tower_layer::Layer;

use super::*;
use crate::record::ToolCallEvidence;
use crate::sink::MemorySink;
use crate::test_support::{TempDir, key, other_key};
use crate::verify::{VerifyOptions, verify_files};
use crate::{AuditBody, AuditLayer, FileSink};

const ARGS: &str = r#"{ "text": "hi", "n": 7 }"#;
const RESULT_OK: &str = r#"{"content":[{"type":"text","text":"hi"}],"isError":false}"#;
const RESULT_ERR: &str = r#"{"content":[{"type":"text","text":"no such note"}], "isError" : true}"#;
const NOTIFICATION: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n";

fn call_body(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{ARGS}}}}}"#
    )
}

fn answer(id: u32, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// A body that hands out its steps one poll at a time; `None` is one `Pending`.
struct Script(VecDeque<Option<Bytes>>);

impl Script {
    fn new<I: IntoIterator<Item = Option<String>>>(steps: I) -> Self {
        Script(steps.into_iter().map(|s| s.map(Bytes::from)).collect())
    }
}

impl Body for Script {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.pop_front() {
            Some(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(None) => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

fn response<B>(content_type: &str, body: B) -> Response<B> {
    let mut res = Response::new(body);
    res.headers_mut()
        .insert(CONTENT_TYPE, content_type.parse().unwrap());
    res
}

fn layer(sink: &MemorySink, max: Option<usize>) -> AuditLayer {
    let mut b = AuditLayer::builder()
        .sink(sink.clone())
        .metrics(false)
        .tool_call_evidence(key());
    if let Some(max) = max {
        b = b.tool_call_evidence_max_bytes(max);
    }
    b.build().unwrap()
}

/// One request through the layer to a service that answers with `res` and, like the inspect
/// layer, puts the request's `McpCall` into the response.
async fn run<B>(layer: &AuditLayer, body: String, res: Response<B>) -> Response<AuditBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
{
    let call: McpCall = parse_envelope(body.as_bytes()).unwrap();
    let res = Mutex::new(Some(res));
    let svc = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = res.lock().unwrap().take().unwrap();
        res.extensions_mut().insert(call.clone());
        async move { Ok::<_, Infallible>(res) }
    });
    layer
        .layer(svc)
        .oneshot(
            Request::post("/mcp")
                .header("x-request-id", "call-1")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap()
}

fn poll<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Poll<Option<Bytes>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame.into_data().unwrap_or_default())),
        Poll::Ready(Some(Err(_))) => panic!("body error"),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    }
}

async fn collect<B>(body: B) -> String
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn only_evidence(sink: &MemorySink) -> (ToolCallEvidence, bool) {
    let done = sink.completions();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].request_id(), "call-1");
    (
        done[0].tool_call().expect("evidence"),
        done[0].body_complete(),
    )
}

fn args_digest() -> Option<String> {
    Some(digest(&key(), DigestPart::Arguments, ARGS))
}

#[tokio::test]
async fn a_json_answer_is_digested_and_passed_on_byte_for_byte() {
    let sink = MemorySink::new();
    let text = answer(1, RESULT_OK);
    let mut res = response("application/json", Full::new(Bytes::from(text.clone())));
    res.headers_mut()
        .insert(CONTENT_LENGTH, text.len().to_string().parse().unwrap());
    let res = run(&layer(&sink, None), call_body(1), res).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[CONTENT_LENGTH].to_str().unwrap(),
        text.len().to_string(),
        "the length still holds: nothing is changed"
    );
    assert!(res.body().is_digesting());
    assert!(
        sink.completions().is_empty(),
        "nothing before the body ends"
    );
    assert_eq!(collect(res.into_body()).await, text);
    let (evidence, complete) = only_evidence(&sink);
    assert!(complete);
    assert_eq!(evidence.args_digest, args_digest());
    assert_eq!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, RESULT_OK))
    );
    assert_eq!(evidence.is_error, Some(false));
    assert_eq!(evidence.result_not_digested, None);
    // Keyed: another key gives other digests; the parts are kept apart.
    assert_ne!(
        evidence.result_digest,
        Some(digest(&other_key(), DigestPart::Result, RESULT_OK))
    );
    assert_ne!(
        evidence.args_digest,
        Some(digest(&key(), DigestPart::Result, ARGS))
    );
}

#[tokio::test]
async fn an_sse_answer_is_digested_and_other_events_pass_at_once() {
    let sink = MemorySink::new();
    // The answer is split over two frames, its data over two lines (joined with `\n`).
    let event = format!(
        "id: 7\nevent: message\ndata: {}\ndata: {}}}\n\n",
        r#"{"jsonrpc":"2.0","id":"a-1","result":"#, RESULT_ERR
    );
    let (first, second) = event.split_at(20);
    let script = Script::new([
        Some(NOTIFICATION.to_owned()),
        None,
        Some(first.to_owned()),
        None,
        Some(second.to_owned()),
        Some(NOTIFICATION.to_owned()),
    ]);
    let body = r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"find","arguments":{ "text": "hi", "n": 7 }}}"#;
    let res = run(
        &layer(&sink, None),
        body.to_owned(),
        response("text/event-stream", script),
    )
    .await;
    let mut body = res.into_body();
    // The notification comes out as it went in, before the answer exists.
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(NOTIFICATION)))
    );
    assert_eq!(poll(&mut body), Poll::Pending);
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(first.to_owned())))
    );
    assert_eq!(poll(&mut body), Poll::Pending);
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(second.to_owned())))
    );
    assert!(
        sink.completions().is_empty(),
        "the record follows the body's end"
    );
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(NOTIFICATION)))
    );
    assert_eq!(poll(&mut body), Poll::Ready(None));
    let (evidence, complete) = only_evidence(&sink);
    assert!(complete);
    assert_eq!(evidence.args_digest, args_digest());
    // The result text as the SSE rules assemble it: the data lines joined with `\n`.
    assert_eq!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, RESULT_ERR))
    );
    assert_eq!(evidence.is_error, Some(true));
}

/// What a result guard does inside the audit layer: rewrites the result on its way out.
struct Redact;

impl RewriteResponse for Redact {
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()> {
        Ok(Some(
            message.replace("AKIAIOSFODNN7EXAMPLE", "[redacted:aws]"),
        ))
    }
}

#[tokio::test]
async fn a_rewritten_result_is_digested_as_the_client_got_it() {
    let sink = MemorySink::new();
    let original = r#"{"content":[{"type":"text","text":"key AKIAIOSFODNN7EXAMPLE"}]}"#;
    let redacted = r#"{"content":[{"type":"text","text":"key [redacted:aws]"}]}"#;
    let inner = Script::new([Some(format!(
        "event: message\ndata: {}\n\n",
        answer(3, original)
    ))]);
    let guarded = RewriteBody::new(
        inner,
        ResponseKind::EventStream,
        Targets::Ids(vec![mcp_security_core::jsonrpc::JsonRpcId::Number(
            3.into(),
        )]),
        1 << 20,
        None,
        Redact,
    );
    let res = run(
        &layer(&sink, None),
        call_body(3),
        response("text/event-stream", guarded),
    )
    .await;
    let got = collect(res.into_body()).await;
    assert_eq!(
        got,
        format!("event: message\ndata: {}\n\n", answer(3, redacted))
    );
    let (evidence, _) = only_evidence(&sink);
    assert_eq!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, redacted))
    );
    assert_ne!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, original))
    );
    // What the client holds is enough to recompute it.
    let data = got
        .strip_prefix("event: message\ndata: ")
        .unwrap()
        .trim_end();
    let msg = RawObject::parse(data).unwrap();
    assert_eq!(
        evidence.result_digest,
        Some(digest(
            &key(),
            DigestPart::Result,
            msg.get("result").unwrap().get()
        ))
    );
    assert_eq!(evidence.is_error, Some(false), "no isError is false");
}

#[tokio::test]
async fn over_the_cap_nothing_is_digested_and_nothing_is_changed() {
    let big = format!(
        r#"{{"content":[{{"type":"text","text":"{}"}}]}}"#,
        "x".repeat(500)
    );
    // JSON, read until it overflows.
    let sink = MemorySink::new();
    let text = answer(1, &big);
    let res = run(
        &layer(&sink, Some(256)),
        call_body(1),
        response(
            "application/json",
            Script::new(
                text.as_bytes()
                    .chunks(100)
                    .map(|c| Some(String::from_utf8(c.to_vec()).unwrap())),
            ),
        ),
    )
    .await;
    assert_eq!(collect(res.into_body()).await, text);
    let (evidence, complete) = only_evidence(&sink);
    assert!(complete);
    assert_eq!(evidence.args_digest, args_digest());
    assert_eq!(evidence.result_digest, None);
    assert_eq!(evidence.is_error, None);
    assert_eq!(evidence.result_not_digested, Some("response_too_large"));
    // JSON declared over the cap: never buffered.
    let sink = MemorySink::new();
    let mut res = response("application/json", Full::new(Bytes::from(text.clone())));
    res.headers_mut()
        .insert(CONTENT_LENGTH, text.len().to_string().parse().unwrap());
    let res = run(&layer(&sink, Some(256)), call_body(1), res).await;
    assert_eq!(collect(res.into_body()).await, text);
    assert_eq!(
        only_evidence(&sink).0.result_not_digested,
        Some("response_too_large")
    );
    // One SSE event over the cap; the stream goes on unchanged after it.
    let sink = MemorySink::new();
    let stream = format!("data: {text}\n\n{NOTIFICATION}");
    let res = run(
        &layer(&sink, Some(256)),
        call_body(1),
        response("text/event-stream", Full::new(Bytes::from(stream.clone()))),
    )
    .await;
    assert_eq!(collect(res.into_body()).await, stream);
    assert_eq!(
        only_evidence(&sink).0.result_not_digested,
        Some("response_too_large")
    );
}

#[tokio::test]
async fn a_client_that_drops_the_body_early_leaves_a_dropped_record() {
    let sink = MemorySink::new();
    let script = Script::new([Some(NOTIFICATION.to_owned()), None]);
    let res = run(
        &layer(&sink, None),
        call_body(1),
        response("text/event-stream", script),
    )
    .await;
    let mut body = res.into_body();
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(NOTIFICATION)))
    );
    assert_eq!(poll(&mut body), Poll::Pending);
    assert!(sink.completions().is_empty());
    drop(body);
    let (evidence, complete) = only_evidence(&sink);
    assert!(!complete);
    assert_eq!(evidence.args_digest, args_digest());
    assert_eq!(evidence.result_digest, None);
    assert_eq!(evidence.result_not_digested, Some("no_response"));
}

#[tokio::test]
async fn errors_other_types_and_missing_arguments_say_why() {
    // A JSON-RPC error answer.
    let sink = MemorySink::new();
    let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown tool"}}"#;
    let res = run(
        &layer(&sink, None),
        call_body(1),
        response("application/json", Full::new(Bytes::from(error))),
    )
    .await;
    assert_eq!(collect(res.into_body()).await, error);
    let (evidence, _) = only_evidence(&sink);
    assert_eq!(evidence.result_not_digested, Some("jsonrpc_error"));
    assert_eq!((evidence.result_digest, evidence.is_error), (None, None));
    // Another content type; and a call without arguments.
    let sink = MemorySink::new();
    let res = run(
        &layer(&sink, None),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"now"}}"#.to_owned(),
        response("text/plain", Full::new(Bytes::from("hello"))),
    )
    .await;
    assert_eq!(collect(res.into_body()).await, "hello");
    let (evidence, _) = only_evidence(&sink);
    assert_eq!(evidence.args_digest, None);
    assert_eq!(evidence.result_not_digested, Some("not_json_or_sse"));
    // An answer to another id only: the stream ended before ours.
    let sink = MemorySink::new();
    let other = format!("data: {}\n\n", answer(9, RESULT_OK));
    let res = run(
        &layer(&sink, None),
        call_body(1),
        response("text/event-stream", Full::new(Bytes::from(other.clone()))),
    )
    .await;
    assert_eq!(collect(res.into_body()).await, other);
    assert_eq!(
        only_evidence(&sink).0.result_not_digested,
        Some("no_response")
    );
}

#[tokio::test]
async fn refused_calls_other_methods_and_evidence_off_get_none() {
    // Refused by a layer inside: the request record says so; no evidence.
    let sink = MemorySink::new();
    let mut res = response(
        "application/json",
        Full::new(Bytes::from(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"no"}}"#,
        )),
    );
    *res.status_mut() = StatusCode::FORBIDDEN;
    res.extensions_mut()
        .insert(Rejection::new(StatusCode::FORBIDDEN, "insufficient_scope"));
    let res = run(&layer(&sink, None), call_body(1), res).await;
    assert!(!res.body().is_digesting());
    drop(res);
    assert!(sink.completions().is_empty());
    assert_eq!(sink.requests().len(), 1);
    // Another method.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let res = run(
        &layer(&sink, None),
        list.to_owned(),
        response("application/json", Full::new(Bytes::from(answer(2, "{}")))),
    )
    .await;
    assert!(!res.body().is_digesting());
    collect(res.into_body()).await;
    // Evidence off.
    let off = AuditLayer::builder()
        .sink(sink.clone())
        .metrics(false)
        .tool_call_evidence(None)
        .build()
        .unwrap();
    let res = run(
        &off,
        call_body(1),
        response(
            "application/json",
            Full::new(Bytes::from(answer(1, RESULT_OK))),
        ),
    )
    .await;
    assert!(!res.body().is_digesting());
    collect(res.into_body()).await;
    assert!(sink.completions().is_empty());
    assert_eq!(sink.requests().len(), 3);
}

#[tokio::test]
async fn the_file_trail_carries_the_evidence_and_still_verifies() {
    let dir = TempDir::new("evidence");
    let path = dir.join("audit.jsonl");
    // Evidence is on by default with a file sink, keyed with its key.
    let layer = AuditLayer::builder()
        .file_sink(FileSink::builder(&path, key()).build().unwrap())
        .tracing(false)
        .metrics(false)
        .build()
        .unwrap();
    for (id, result) in [(1, RESULT_OK), (2, RESULT_ERR)] {
        let res = run(
            &layer,
            call_body(id),
            response(
                "application/json",
                Full::new(Bytes::from(answer(id, result))),
            ),
        )
        .await;
        collect(res.into_body()).await;
    }
    layer.close().await.unwrap();
    let file = std::fs::read_to_string(&path).unwrap();
    let completions: Vec<&str> = file
        .lines()
        .filter(|l| l.contains("\"kind\":\"completion\""))
        .collect();
    assert_eq!(completions.len(), 2, "{file}");
    for (line, result, is_error) in [
        (completions[0], RESULT_OK, false),
        (completions[1], RESULT_ERR, true),
    ] {
        let expected = format!(
            "\"args_digest\":\"{}\",\"result_digest\":\"{}\",\"is_error\":{is_error},\"result_not_digested\":null",
            digest(&key(), DigestPart::Arguments, ARGS),
            digest(&key(), DigestPart::Result, result),
        );
        assert!(line.contains(&expected), "{line}");
    }
    assert!(!file.contains("no such note") && !file.contains("\"text\":\"hi\""));
    let report = verify_files(&[&path], &key(), &VerifyOptions::new()).unwrap();
    assert_eq!(report.requests, 2);
    // The chain covers the new fields: a changed digest fails verification.
    let tampered = file.replacen("\"is_error\":true", "\"is_error\":false", 1);
    std::fs::write(&path, tampered).unwrap();
    assert!(verify_files(&[&path], &key(), &VerifyOptions::new()).is_err());
}

#[test]
fn settings_name_their_variable() {
    let env = |pairs: &[(&str, &str)]| Env::from_pairs("MCP", pairs.iter().copied());
    let err =
        AuditLayer::from_env(&env(&[("MCP_AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES", "0")])).unwrap_err();
    assert_eq!(err.setting(), "MCP_AUDIT_TOOL_CALL_EVIDENCE_MAX_BYTES");
    let err = AuditLayer::builder()
        .tool_call_evidence_max_bytes(0)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "tool_call_evidence_max_bytes");
    // With a key from the environment it is on, and can be turned off.
    let key_hex = "0123456789abcdef0123456789abcdef";
    let on = AuditLayer::from_env(&env(&[("MCP_AUDIT_HMAC_KEY", key_hex)])).unwrap();
    assert!(
        format!("{on:?}").contains("tool_call_evidence: true"),
        "{on:?}"
    );
    let off = AuditLayer::from_env(&env(&[
        ("MCP_AUDIT_HMAC_KEY", key_hex),
        ("MCP_AUDIT_TOOL_CALL_EVIDENCE", "false"),
    ]))
    .unwrap();
    assert!(format!("{off:?}").contains("tool_call_evidence: false"));
    let keyless = AuditLayer::from_env(&env(&[])).unwrap();
    assert!(format!("{keyless:?}").contains("tool_call_evidence: false"));
}

/// The arguments digested: the span the envelope reader recorded (`param_arguments`).
fn arguments_text(body: &[u8]) -> Option<String> {
    let call = mcp_security_core::jsonrpc::parse_envelope(body).ok()?;
    call.single()?.param_arguments().map(str::to_owned)
}

#[test]
fn arguments_are_read_raw_and_ambiguity_is_not_guessed() {
    assert_eq!(
        arguments_text(call_body(1).as_bytes()).as_deref(),
        Some(ARGS),
        "the bytes as sent, spaces included"
    );
    let msg = |params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
    };
    assert_eq!(
        arguments_text(msg(r#"{"name":"x","arguments":[1, 2]}"#).as_bytes()).as_deref(),
        Some("[1, 2]")
    );
    assert_eq!(
        arguments_text(msg(r#"{"name":"x","arguments":"a\u0041"}"#).as_bytes()).as_deref(),
        Some(r#""a\u0041""#),
        "escapes stay as sent"
    );
    assert_eq!(arguments_text(msg(r#"{"name":"x"}"#).as_bytes()), None);
    assert_eq!(arguments_text(msg("null").as_bytes()), None);
    assert_eq!(
        arguments_text(msg(r#"{"arguments":{},"arguments":{"a":1}}"#).as_bytes()),
        None
    );
    assert_eq!(
        arguments_text(msg(r#"{"_meta":{"arguments":1}}"#).as_bytes()),
        None,
        "only params.arguments counts"
    );
    assert_eq!(arguments_text(b"not json"), None);
    // The digest over those bytes is HMAC-SHA256(key, domain || text).
    let mac = key().hmac(
        b"mcp-security-audit tool-call arguments v1\n",
        ARGS.as_bytes(),
    );
    assert_eq!(digest(&key(), DigestPart::Arguments, ARGS), format(&mac));
}

#[tokio::test]
async fn a_body_that_knows_its_end_is_digested_at_its_last_frame() {
    // hyper stops polling once `is_end_stream` says so, and drops the body.
    let sink = MemorySink::new();
    let text = answer(1, RESULT_OK);
    let res = run(
        &layer(&sink, None),
        call_body(1),
        response("application/json", Full::new(Bytes::from(text.clone()))),
    )
    .await;
    let mut body = res.into_body();
    assert_eq!(poll(&mut body), Poll::Ready(Some(Bytes::from(text))));
    assert!(body.is_end_stream());
    drop(body);
    let (evidence, complete) = only_evidence(&sink);
    assert!(complete);
    assert_eq!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, RESULT_OK))
    );
}

#[tokio::test]
async fn a_body_that_sent_its_declared_length_is_digested_then() {
    // A streaming body with a Content-Length: hyper stops once that many bytes went out.
    let sink = MemorySink::new();
    let text = answer(1, RESULT_OK);
    let (a, b) = text.split_at(30);
    let mut res = response(
        "application/json",
        Script::new([Some(a.to_owned()), None, Some(b.to_owned()), None]),
    );
    res.headers_mut()
        .insert(CONTENT_LENGTH, text.len().to_string().parse().unwrap());
    let res = run(&layer(&sink, None), call_body(1), res).await;
    let mut body = res.into_body();
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(a.to_owned())))
    );
    assert_eq!(poll(&mut body), Poll::Pending);
    assert_eq!(
        poll(&mut body),
        Poll::Ready(Some(Bytes::from(b.to_owned())))
    );
    assert!(
        !body.is_end_stream(),
        "the inner body does not know it ended"
    );
    drop(body);
    let (evidence, complete) = only_evidence(&sink);
    assert!(complete);
    assert_eq!(
        evidence.result_digest,
        Some(digest(&key(), DigestPart::Result, RESULT_OK))
    );
}

#[test]
fn the_body_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<AuditBody<Full<Bytes>>>();
}
