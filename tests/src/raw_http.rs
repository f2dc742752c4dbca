//! Raw HTTP/1.1 exchanges for the end-to-end tests (hyper-util's client), so every header and
//! body is checked as sent and as answered.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The client the tests send with.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A fresh client (its own connection pool).
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An answer, read in full.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The JSON-RPC message of an SSE (or JSON) answer: the first `data:` line that is JSON.
    ///
    /// # Panics
    /// When there is none.
    pub fn message(&self) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        if self
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        {
            return self.json();
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .find_map(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| panic!("no JSON-RPC message in {text:?}"))
    }

    /// A header's value as text.
    ///
    /// # Panics
    /// When the header is missing or not visible ASCII.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// Send `req` and read the whole answer.
///
/// # Panics
/// When the server does not answer or the body cannot be read.
pub async fn send(http: &HttpClient, req: Request<Full<Bytes>>) -> Answer {
    let res = http.request(req).await.expect("the server answers");
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}
