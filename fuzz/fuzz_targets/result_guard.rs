//! Fuzz the result guard: `ToolGuardLayer` (redact and block) over
//! `mcp_core::response::RewriteBody`, JSON and SSE, with the body cut into frames at
//! fuzzer-chosen sizes, and the secret scanner on its own.
//!
//! Input: byte 0 picks the framing (bit 0: SSE, else JSON) and the mode (bit 1: block, else
//! redact); byte 1 is the frame size (1..=256); the rest is the body the server sends,
//! answering `tools/call` with id 1.
//!
//! Invariants: no panic and no hang on any bytes, in any framing; the scanner's matches are in
//! order, on character boundaries and never overlap; and the first answer with id 1 the client
//! gets carries no string in which the scanner still finds a credential (it was redacted,
//! blocked, or the answer failed closed); in block mode, an answer that had one is an error.
#![no_main]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use mcp_core::credential::SecretScanner;
use mcp_core::jsonrpc::parse_envelope;
use mcp_security_guard::{ResultGuardMode, ToolGuardLayer};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

/// The server's body, in frames of a fixed size.
struct Chunks {
    data: Bytes,
    size: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.size.min(self.data.len());
        let frame = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

#[derive(Clone)]
struct Server {
    body: Bytes,
    size: usize,
    content_type: &'static str,
}

impl Service<Request<()>> for Server {
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Chunks>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        let mut res = Response::new(Chunks {
            data: self.body.clone(),
            size: self.size,
        });
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.content_type),
        );
        ready(Ok(res))
    }
}

/// The first JSON-RPC response with id 1 in what the client got, if any.
fn first_answer(out: &[u8], sse: bool) -> Option<Value> {
    let text = std::str::from_utf8(out).ok()?;
    if !sse {
        let v: Value = serde_json::from_str(text).ok()?;
        return match v {
            Value::Array(items) => items.into_iter().find(|m| m["id"] == 1),
            v if v["id"] == 1 => Some(v),
            _ => None,
        };
    }
    // Events as a client reads them: data lines joined, dispatched at a blank line.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut data: Option<String> = None;
    for line in normalized.split('\n') {
        if line.is_empty() {
            if let Some(d) = data.take()
                && let Ok(v) = serde_json::from_str::<Value>(&d)
                && v["id"] == 1
                && (v.get("result").is_some() || v.get("error").is_some())
            {
                return Some(v);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("data") {
            let value = rest
                .strip_prefix(':')
                .map(|v| v.strip_prefix(' ').unwrap_or(v));
            if let Some(value) = value.or(rest.is_empty().then_some("")) {
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                }
            }
        }
    }
    None
}

/// Every string and key in `v` is free of credentials.
fn clean(scanner: &SecretScanner, v: &Value) -> bool {
    match v {
        Value::String(s) => !scanner.contains(s),
        Value::Array(items) => items.iter().all(|i| clean(scanner, i)),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| !scanner.contains(k) && clean(scanner, v)),
        _ => true,
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, size, body @ ..] = input else {
        return;
    };
    let sse = flags & 1 == 1;
    let block = flags & 2 == 2;
    let scanner = SecretScanner::default();
    if let Ok(text) = std::str::from_utf8(body) {
        let mut last = 0;
        for m in scanner.find(text) {
            assert!(m.range.start >= last && m.range.start < m.range.end);
            assert!(text.is_char_boundary(m.range.start) && text.is_char_boundary(m.range.end));
            last = m.range.end;
        }
        let _ = scanner.redact(text, "[redacted]");
    }
    let layer = ToolGuardLayer::builder()
        .result_guard(if block {
            ResultGuardMode::Block
        } else {
            ResultGuardMode::Redact
        })
        .max_result_bytes(4096)
        .build()
        .expect("layer");
    let mut svc = layer.layer(Server {
        body: Bytes::copy_from_slice(body),
        size: usize::from(*size) + 1,
        content_type: if sse {
            "text/event-stream"
        } else {
            "application/json"
        },
    });
    let mut req = Request::new(());
    *req.method_mut() = http::Method::POST;
    req.extensions_mut().insert(
        parse_envelope(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"env"}}"#,
        )
        .expect("call"),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = svc.call(req);
    let Poll::Ready(Ok(res)) = Pin::new(&mut fut).poll(&mut cx) else {
        panic!("the response future is ready");
    };
    let mut body = res.into_body();
    let mut out = Vec::new();
    // Every frame is ready; a bounded number of polls (the body cannot stall).
    for _ in 0..body_len_bound(input.len()) {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Pending => panic!("a ready body never pends"),
        }
    }
    assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
    if let Some(answer) = first_answer(&out, sse) {
        for member in ["result", "error"] {
            if let Some(v) = answer.get(member) {
                assert!(
                    clean(&scanner, v),
                    "a credential reached the client: {answer}"
                );
            }
        }
        if block && layer.stats().answers_blocked > 0 {
            assert!(
                answer.get("result").is_none(),
                "blocked yet answered: {answer}"
            );
        }
    }
});

fn body_len_bound(len: usize) -> usize {
    2 * len + 16
}
