//! What the response-side fuzz targets share: a server whose body arrives in frames of a
//! fuzzer-chosen size, a driver that polls a layered service to the end without a runtime, and
//! the first JSON-RPC answer with id 1 as a client would read it (JSON or SSE).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use serde_json::Value;
use tower_service::Service;

/// The server's body, in frames of a fixed size.
pub struct Chunks {
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

/// A server answering every request with `body`, cut into frames of `size` bytes, as JSON or as
/// an SSE stream.
#[derive(Clone)]
pub struct Server {
    body: Bytes,
    size: usize,
    content_type: &'static str,
}

impl Server {
    /// `size_byte + 1` bytes a frame (1..=256).
    pub fn new(body: &[u8], size_byte: u8, sse: bool) -> Self {
        Server {
            body: Bytes::copy_from_slice(body),
            size: usize::from(size_byte) + 1,
            content_type: if sse {
                "text/event-stream"
            } else {
                "application/json"
            },
        }
    }
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

/// Call `svc` with `req` and read the whole body it answers. Every frame is ready, so the
/// future and the body are polled a bounded number of times (`input_len` bounds the frames):
/// a response that is not ready, or a body that pends or never ends, is a bug.
pub fn drive<S, B>(svc: &mut S, req: Request<()>, input_len: usize) -> Vec<u8>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes, Error = Infallible> + Unpin,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = std::pin::pin!(svc.call(req));
    let Poll::Ready(Ok(res)) = fut.as_mut().poll(&mut cx) else {
        panic!("the response future is ready");
    };
    let mut body = res.into_body();
    let mut out = Vec::new();
    for _ in 0..2 * input_len + 16 {
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
    out
}

/// The first JSON-RPC response with id 1 in what the client got, if any.
pub fn first_answer(out: &[u8], sse: bool) -> Option<Value> {
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
