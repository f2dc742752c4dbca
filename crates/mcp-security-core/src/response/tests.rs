use std::convert::Infallible;

use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use http::HeaderValue;

/// Drops every entry of `result.items` whose name starts with `secret`, and records failures.
#[derive(Default)]
struct HideSecrets {
    failures: Vec<(RewriteFailure, Value)>,
    rewritten: usize,
    finished: bool,
}

impl RewriteResponse for HideSecrets {
    fn rewrite(&mut self, message: &str) -> Result<Option<String>, ()> {
        self.rewritten += 1;
        let msg = RawObject::parse(message).map_err(|_| ())?;
        let Some(result) = msg.get("result") else {
            return Ok(None);
        };
        let result = RawObject::parse(result.get()).map_err(|_| ())?;
        let items: Vec<&RawValue> = match result.get("items") {
            Some(v) => serde_json::from_str(v.get()).map_err(|_| ())?,
            None => return Ok(None),
        };
        let kept: Vec<&str> = items
            .iter()
            .map(|v| v.get())
            .filter(|v| !v.contains("\"secret"))
            .collect();
        let mut new_result = String::new();
        result.write(
            &mut new_result,
            |k| (k == "items").then(|| format!("[{}]", kept.join(","))),
            &[],
        );
        let mut out = String::new();
        msg.write(
            &mut out,
            |k| (k == "result").then(|| new_result.clone()),
            &[],
        );
        Ok(Some(out))
    }

    fn failed(&mut self, failure: RewriteFailure, id: &Value) {
        self.failures.push((failure, id.clone()));
    }

    fn finished(&mut self) {
        self.finished = true;
    }
}

fn ids(ids: &[i64]) -> Targets {
    Targets::Ids(ids.iter().map(|i| JsonRpcId::Number((*i).into())).collect())
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"items":[{"name":"a"},{"name":"secret_b"},{"name":"c"}],"nextCursor":"x","_meta":{"k":1},"zzz":true}}"#;
const FILTERED: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"items":[{"name":"a"},{"name":"c"}],"nextCursor":"x","_meta":{"k":1},"zzz":true}}"#;

async fn collect<R: RewriteResponse>(body: RewriteBody<Full<Bytes>, R>) -> String {
    let bytes = body.collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json_body(text: &str, targets: Targets, max: usize) -> RewriteBody<Full<Bytes>, HideSecrets> {
    RewriteBody::new(
        Full::new(Bytes::from(text.to_owned())),
        ResponseKind::Json,
        targets,
        max,
        None,
        HideSecrets::default(),
    )
}

#[tokio::test]
async fn json_rewrites_the_matching_response_and_keeps_order_and_fields() {
    assert_eq!(collect(json_body(LIST, ids(&[7]), 4096)).await, FILTERED);
}

#[tokio::test]
async fn json_other_ids_and_errors_pass_byte_for_byte() {
    let other = LIST.replace("\"id\":7", "\"id\":8");
    assert_eq!(collect(json_body(&other, ids(&[7]), 4096)).await, other);
    let err = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"nope"}}"#;
    assert_eq!(collect(json_body(err, ids(&[7]), 4096)).await, err);
    // A string id "7" is not the number 7.
    let s = LIST.replace("\"id\":7", "\"id\":\"7\"");
    assert_eq!(collect(json_body(&s, ids(&[7]), 4096)).await, s);
}

#[tokio::test]
async fn json_batch_rewrites_each_target() {
    let second = LIST.replace("\"id\":7", "\"id\":9");
    let body = format!("[{LIST},{second}]");
    let out = collect(json_body(&body, ids(&[7, 9]), 4096)).await;
    let expected = format!("[{FILTERED},{}]", FILTERED.replace("\"id\":7", "\"id\":9"));
    assert_eq!(out, expected);
}

#[tokio::test]
async fn json_over_the_cap_fails_closed() {
    let out = collect(json_body(LIST, ids(&[7]), 20)).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["error"]["code"], INTERNAL_ERROR);
    assert_eq!(v["error"]["data"]["code"], "response_too_large");
    assert!(!out.contains("secret"));
    // Declared over the cap: fails without buffering.
    let body = RewriteBody::new(
        Full::new(Bytes::from(LIST)),
        ResponseKind::Json,
        ids(&[7]),
        100,
        Some(1 << 30),
        HideSecrets::default(),
    );
    let v: Value = serde_json::from_str(&collect(body).await).unwrap();
    assert_eq!(v["error"]["data"]["code"], "response_too_large");
}

#[tokio::test]
async fn json_invalid_fails_closed() {
    for bad in [
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"items\":[{\"name\":\"secret\"}]",
        "\u{1}garbage",
        "{\"id\":7,\"id\":8,\"result\":{}}",
    ] {
        let out = collect(json_body(bad, ids(&[7]), 4096)).await;
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], 7, "{bad}");
        assert_eq!(v["error"]["data"]["code"], "response_invalid_json", "{bad}");
    }
    // Non-UTF-8 bytes.
    let body = RewriteBody::new(
        Full::new(Bytes::from_static(b"\xff\xfe")),
        ResponseKind::Json,
        ids(&[7]),
        4096,
        None,
        HideSecrets::default(),
    );
    assert!(collect(body).await.contains("response_invalid_json"));
}

#[tokio::test]
async fn refused_rewrite_fails_closed() {
    let bad_result = r#"{"jsonrpc":"2.0","id":7,"result":[1,2]}"#;
    let out = collect(json_body(bad_result, ids(&[7]), 4096)).await;
    assert!(out.contains("response_refused"), "{out}");
}

#[tokio::test]
async fn passthrough_and_no_targets_are_untouched() {
    let body: RewriteBody<_, HideSecrets> = RewriteBody::passthrough(Full::new(Bytes::from(LIST)));
    assert!(!body.is_rewriting());
    assert_eq!(collect(body).await, LIST);
    assert_eq!(collect(json_body(LIST, ids(&[]), 4096)).await, LIST);
}

fn sse(text: &str, targets: Targets, max: usize) -> RewriteBody<Full<Bytes>, HideSecrets> {
    RewriteBody::new(
        Full::new(Bytes::from(text.to_owned())),
        ResponseKind::EventStream,
        targets,
        max,
        None,
        HideSecrets::default(),
    )
}

const NOTE: &str = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;

#[tokio::test]
async fn sse_rewrites_only_the_matching_event() {
    let stream = format!(
        "id: 0\ndata:\n\nevent: message\ndata: {NOTE}\n\nid: 2\nevent: message\nretry: 10\ndata: {LIST}\n\n"
    );
    let out = collect(sse(&stream, ids(&[7]), 4096)).await;
    assert_eq!(
        out,
        format!(
            "id: 0\ndata:\n\nevent: message\ndata: {NOTE}\n\nid: 2\nevent: message\nretry: 10\ndata: {FILTERED}\n\n"
        )
    );
}

#[tokio::test]
async fn sse_line_endings_multiline_data_and_split_frames() {
    // CRLF, CR, a data payload split over two data lines, and every possible frame split.
    let split = LIST.replacen(",", ",\r\ndata:", 1);
    let stream = format!(": comment\r\ndata: {NOTE}\r\r\ndata:{split}\r\n\r\n");
    for cut in 0..stream.len() {
        let (a, b) = stream.as_bytes().split_at(cut);
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::copy_from_slice(a))),
            Ok(Frame::data(Bytes::copy_from_slice(b))),
        ];
        let body = RewriteBody::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            ResponseKind::EventStream,
            ids(&[7]),
            4096,
            None,
            HideSecrets::default(),
        );
        let out = body.collect().await.unwrap().to_bytes();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(out.contains(NOTE), "cut {cut}: {out:?}");
        assert!(
            out.contains(&format!("data: {FILTERED}\n\n")),
            "cut {cut}: {out:?}"
        );
        assert!(!out.contains("secret"), "cut {cut}");
    }
}

#[tokio::test]
async fn sse_after_the_target_passes_through_unparsed() {
    let stream = format!("data: {LIST}\n\ndata: not json at all\n\n");
    let out = collect(sse(&stream, ids(&[7]), 4096)).await;
    assert_eq!(
        out,
        format!("data: {FILTERED}\n\ndata: not json at all\n\n")
    );
}

#[tokio::test]
async fn sse_invalid_json_before_the_target_fails_closed() {
    let stream = format!("data: {{nope\n\ndata: {LIST}\n\n");
    let out = collect(sse(&stream, ids(&[7]), 4096)).await;
    assert!(out.contains("response_invalid_json"));
    assert!(!out.contains("secret"));
}

#[tokio::test]
async fn sse_event_over_the_cap_fails_closed_and_ends_the_stream() {
    let stream = format!("data: {NOTE}\n\ndata: {LIST}\n\ndata: {LIST}\n\n");
    let out = collect(sse(&stream, ids(&[7]), NOTE.len() + 16)).await;
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0], format!("data: {NOTE}"));
    assert!(events[1].contains("response_too_large") && events[1].contains("\"id\":7"));
    // Split so the over-cap event is seen without its end.
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from(format!("data: {NOTE}\n\ndata: ")))),
        Ok(Frame::data(Bytes::from(LIST))),
        Ok(Frame::data(Bytes::from(format!("\n\ndata: {LIST}\n\n")))),
    ];
    let body = RewriteBody::new(
        StreamBody::new(futures_util::stream::iter(frames)),
        ResponseKind::EventStream,
        ids(&[7]),
        NOTE.len() + 16,
        None,
        HideSecrets::default(),
    );
    let out = body.collect().await.unwrap().to_bytes();
    let out = String::from_utf8(out.to_vec()).unwrap();
    assert!(
        out.contains("response_too_large") && !out.contains("secret"),
        "{out}"
    );
}

#[tokio::test]
async fn sse_unterminated_last_event_is_still_rewritten() {
    let out = collect(sse(&format!("data: {LIST}"), ids(&[7]), 4096)).await;
    assert_eq!(out, format!("data: {FILTERED}\n\n"));
}

#[tokio::test]
async fn sse_any_response_rewrites_every_response() {
    let second = LIST.replace("\"id\":7", "\"id\":\"x\"");
    let stream = format!("id: 1\ndata: {LIST}\n\nid: 2\ndata: {NOTE}\n\nid: 3\ndata: {second}\n\n");
    let out = collect(sse(&stream, Targets::AnyResponse, 4096)).await;
    assert!(!out.contains("secret"), "{out}");
    assert!(out.contains("id: 3\ndata: "));
    assert!(out.contains(NOTE));
}

type Tx = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

fn channel_body() -> (Tx, impl Body<Data = Bytes, Error = Infallible> + Unpin) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, StreamBody::new(Box::pin(stream)))
}

/// A notification ahead of the list is delivered before the list exists: nothing is buffered
/// beyond the current event.
#[tokio::test]
async fn sse_forwards_each_event_as_it_arrives() {
    let (tx, inner) = channel_body();
    let mut body = RewriteBody::new(
        inner,
        ResponseKind::EventStream,
        ids(&[7]),
        4096,
        None,
        HideSecrets::default(),
    );
    // Half an event: nothing yet.
    tx.send(Ok(Frame::data(Bytes::from("event: message\ndata: "))))
        .unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
    tx.send(Ok(Frame::data(Bytes::from(format!("{NOTE}\n\n")))))
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(frame, format!("event: message\ndata: {NOTE}\n\n"));
    // The list is sent only after the notification was received.
    tx.send(Ok(Frame::data(Bytes::from(format!("data: {LIST}\n\n")))))
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(frame, format!("data: {FILTERED}\n\n"));
    // Then pass-through, frame by frame.
    tx.send(Ok(Frame::data(Bytes::from("data: x")))).unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(frame, "data: x");
    drop(tx);
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn failures_and_end_are_reported() {
    let mut body = json_body("{", ids(&[7]), 4096);
    while body.frame().await.is_some() {}
    let state = body.state.as_ref().unwrap();
    assert_eq!(
        state.rewriter.failures,
        vec![(RewriteFailure::InvalidJson, json!(7))]
    );
    assert!(state.rewriter.finished);
}

#[test]
fn response_kind_from_content_type() {
    let kind = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        ResponseKind::of(&h)
    };
    assert_eq!(kind("application/json"), Some(ResponseKind::Json));
    assert_eq!(
        kind("Application/JSON; charset=utf-8"),
        Some(ResponseKind::Json)
    );
    assert_eq!(kind("application/problem+json"), Some(ResponseKind::Json));
    assert_eq!(kind("text/event-stream"), Some(ResponseKind::EventStream));
    assert_eq!(kind("text/plain"), None);
    assert_eq!(ResponseKind::of(&HeaderMap::new()), None);
}

#[test]
fn raw_object_refuses_duplicates_and_round_trips() {
    assert!(RawObject::parse(r#"{"a":1,"a":2}"#).is_err());
    assert!(RawObject::parse("[1]").is_err());
    let text = r#"{"b":[1, 2],"a\"q":{"x":null}}"#;
    let o = RawObject::parse(text).unwrap();
    let mut out = String::new();
    o.write(&mut out, |_| None, &[("c", "\"private\"")]);
    assert_eq!(out, r#"{"b":[1, 2],"a\"q":{"x":null},"c":"private"}"#);
}
