//! Agent-readable refusals through the real layers: `McpInspectLayer` ->
//! `ToolErrorsAsResultsLayer` -> `AuthLayer` -> `RateLimitLayer` (per caller and tool) ->
//! service. A `tools/call` refused for a missing scope or a per-tool limit is a tool result with
//! `isError: true` naming the scope or the wait; an authentication failure stays 401; the
//! `Rejection` and outcomes the audit layer reads are unchanged.
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security::auth::api_key::ApiKeyStore;
use mcp_security::auth::layer::AuthLayer;
use mcp_security::auth::policy::AuthPolicy;
use mcp_security::core::inspect::McpInspectLayer;
use mcp_security::core::refusal::ToolErrorsAsResultsLayer;
use mcp_security::core::{AuthOutcome, RateLimitOutcome, Rejection, Scopes};
use mcp_security::ratelimit::{KeySelector, Limit, Quota, RateLimitLayer};
use serde_json::Value;
use tower::{Service, ServiceBuilder, ServiceExt};

const READER: &str = "mcp-sk-cmVhZGVycmVhZGVycmVhZGVycmVhZGVycmVhZGVy";

fn stack(
    convert: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl hyper::body::Body<Data = Bytes, Error = Infallible>>,
    Error = Infallible,
> + Clone {
    let auth = AuthLayer::builder()
        .api_keys(
            ApiKeyStore::builder()
                .key("reader", READER, Scopes::new(["notes:read"]))
                .build()
                .expect("keys"),
        )
        .policy(
            AuthPolicy::builder()
                .require_mcp("tools/call:delete_note", ["notes:delete"])
                .require_mcp("tools/call:read_note", ["notes:read"])
                .build()
                .expect("policy"),
        )
        .resource("https://mcp.example.com/mcp")
        .build()
        .expect("auth");
    let limits = RateLimitLayer::builder()
        .mcp_path("/mcp")
        .limit(
            Limit::new("read_note", Quota::per_minute(1), KeySelector::principal())
                .for_tool("read_note"),
        )
        .build()
        .expect("limits");
    ServiceBuilder::new()
        .layer(McpInspectLayer::builder().build().expect("inspect"))
        .option_layer(convert.then(ToolErrorsAsResultsLayer::new))
        .layer(auth)
        .layer(limits)
        .service_fn(|_req: Request<_>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#,
            ))))
        })
}

fn call(tool: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    );
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::from(body))).expect("request")
}

async fn send<S, B>(
    svc: &S,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, http::Extensions, Value)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(req).await.expect("call");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, parts.extensions, value)
}

#[tokio::test]
async fn missing_scope_and_tool_limit_become_tool_errors_when_on() {
    let svc = stack(true);
    let (status, headers, ext, v) = send(&svc, call("delete_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["isError"], true);
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("notes:delete"), "{text}");
    // The audit layer reads the same refusal.
    assert_eq!(
        ext.get::<Rejection>().map(Rejection::code),
        Some("insufficient_scope")
    );
    assert!(matches!(
        ext.get::<AuthOutcome>(),
        Some(AuthOutcome::Rejected { .. })
    ));

    let (status, _, _, _) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, ext, v) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("retry-after").is_some());
    let text = v["result"]["content"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with("Rate limit exceeded for this tool. Retry in "),
        "{text}"
    );
    assert_eq!(
        ext.get::<Rejection>().map(Rejection::code),
        Some("rate_limited")
    );
    assert!(matches!(
        ext.get::<RateLimitOutcome>(),
        Some(RateLimitOutcome::Limited { .. })
    ));

    // Authentication failures keep their 401 and challenge.
    let (status, headers, _, _) = send(&svc, call("read_note", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("www-authenticate").is_some());
}

#[tokio::test]
async fn default_stays_403_and_429() {
    let svc = stack(false);
    let (status, _, _, v) = send(&svc, call("delete_note", Some(READER))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "insufficient_scope");
    let _ = send(&svc, call("read_note", Some(READER))).await;
    let (status, _, _, _) = send(&svc, call("read_note", Some(READER))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
