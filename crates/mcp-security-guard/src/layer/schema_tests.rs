//! Argument validation through the layer (feature `schema`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::Rejection;
use mcp_security_core::jsonrpc::parse_envelope;
use tower::{Service, ServiceBuilder, ServiceExt};

use super::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}}]}}"#;
const RESULT: &str =
    r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"3"}],"isError":false}}"#;

/// A server answering `tools/list` with one tool and every call with `3`, counting calls.
fn server(
    layer: &ToolGuardLayer,
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<RewriteBody<GuardBody<Full<Bytes>>, ResultRewriter>>,
    Error = Infallible,
> + Clone {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(move |req: Request<Full<Bytes>>| {
            let list =
                req.extensions().get::<McpCall>().and_then(McpCall::method) == Some("tools/list");
            if !list {
                calls.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(if list { LIST } else { RESULT })))
                        .unwrap(),
                )
            }
        })
}

async fn send<S>(svc: &S, body: &str) -> (StatusCode, http::HeaderMap, Option<Rejection>, String)
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<RewriteBody<GuardBody<Full<Bytes>>, ResultRewriter>>,
            Error = Infallible,
        > + Clone,
{
    let mut req = Request::post("/mcp")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    let rejection = res.extensions().get::<Rejection>().cloned();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        rejection,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

const LIST_REQ: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn call(args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"add","arguments":{args}}}}}"#
    )
}

#[tokio::test]
async fn bad_arguments_never_reach_the_server_once_the_schema_is_known() {
    let layer = ToolGuardLayer::builder()
        .validate_arguments(true)
        .build()
        .unwrap();
    assert!(layer.is_enabled() && layer.validates_arguments());
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = server(&layer, Arc::clone(&calls));

    // Before any list: passed to the server, which answers for unknown shapes itself.
    let (_, _, _, body) = send(&svc, &call(r#"{"a":"x"}"#)).await;
    assert_eq!(body, RESULT);
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    // The list is passed through byte for byte, and its schemas learned.
    let (_, _, _, body) = send(&svc, LIST_REQ).await;
    assert_eq!(body, LIST);

    let (status, headers, rejection, body) = send(&svc, &call(r#"{"a":"x","b":1}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        r#"{"id":2,"jsonrpc":"2.0","result":{"content":[{"text":"Invalid arguments for tool add: /a: \"x\" is not of type \"integer\" (keyword: type)","type":"text"}],"isError":true}}"#
    );
    let rejection = rejection.expect("a rejection for the audit record");
    assert_eq!(rejection.code(), "invalid_tool_arguments");
    assert_eq!(calls.load(Ordering::Relaxed), 1, "the server never saw it");
    assert_eq!(layer.stats().arguments_refused, 1);

    let (_, _, rejection, body) = send(&svc, &call(r#"{"a":1,"b":2}"#)).await;
    assert_eq!(body, RESULT);
    assert!(rejection.is_none());
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn validation_off_passes_every_call() {
    let layer = ToolGuardLayer::builder()
        .validate_arguments(false)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = server(&layer, Arc::clone(&calls));
    send(&svc, LIST_REQ).await;
    let (_, _, _, body) = send(&svc, &call(r#"{"a":"x"}"#)).await;
    assert_eq!(body, RESULT);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn validation_is_on_from_the_environment_unless_switched_off() {
    let on = ToolGuardLayer::builder_from_env(&Env::from_pairs("MCP", [("X", "y")]))
        .unwrap()
        .build()
        .unwrap();
    assert!(on.validates_arguments());
    let off = ToolGuardLayer::builder_from_env(&Env::from_pairs(
        "MCP",
        [("MCP_VALIDATE_TOOL_ARGS", "false")],
    ))
    .unwrap()
    .build()
    .unwrap();
    assert!(!off.validates_arguments());
    let err = ToolGuardLayer::builder_from_env(&Env::from_pairs(
        "MCP",
        [("MCP_VALIDATE_TOOL_ARGS", "maybe")],
    ))
    .unwrap_err();
    assert_eq!(err.setting(), "MCP_VALIDATE_TOOL_ARGS");
}

#[tokio::test]
async fn a_mismatched_mcp_param_header_is_a_400_before_the_server() {
    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"integer","x-mcp-header":"A"}}}}]}}"#;
    let layer = ToolGuardLayer::builder()
        .validate_arguments(true)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(move |req: Request<Full<Bytes>>| {
                let list = req.extensions().get::<McpCall>().and_then(McpCall::method)
                    == Some("tools/list");
                if !list {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(if list { LIST } else { RESULT })))
                            .unwrap(),
                    )
                }
            });
    send(&svc, LIST_REQ).await;
    let body = call(r#"{"a":1}"#);
    let mut req = Request::post("/mcp")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
        .header("mcp-param-a", "2")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.extensions().get::<Rejection>().unwrap().code(),
        "header_mismatch"
    );
    let out = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &out[..],
        br#"{"error":{"code":-32020,"data":{"code":"header_mismatch","status":400},"message":"Mcp-Param-A header does not match `a`"},"id":2,"jsonrpc":"2.0"}"#
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    // The same call with a matching header reaches the server.
    let mut req = Request::post("/mcp")
        .header("mcp-method", "tools/call")
        .header("mcp-param-a", "1")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}
