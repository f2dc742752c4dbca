use std::convert::Infallible;
use std::sync::Mutex;

use http::StatusCode;
use http_body_util::{BodyExt, Full};
use mcp_security_core::PrincipalKind;
use mcp_security_core::facts::BodyFacts;
use mcp_security_core::jsonrpc::parse_envelope;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

use super::*;

fn policy() -> AuthPolicy {
    AuthPolicy::builder()
        .require_mcp("tools/call:read_note", ["notes:read"])
        .require_mcp("tools/call:delete_note", ["notes:delete"])
        .require_mcp("prompts/get:admin_report", ["admin"])
        .require_mcp("resources/read:file:///notes/*", ["notes:read"])
        .require_mcp("resources/read:file:///admin/*", ["admin"])
        .build()
        .unwrap()
}

fn who(scopes: &[&str]) -> Principal {
    Principal::builder("caller", PrincipalKind::ApiKey)
        .scopes(scopes.iter().copied())
        .build()
}

const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"read_note","x":1},{"name":"delete_note"},{"nameless":true},7],"nextCursor":"abc","_meta":{"m":true},"future":[1]}}"#;

struct Served {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn serve(
    layer: ListFilterLayer,
    request: &str,
    principal: Option<Principal>,
    content_type: &'static str,
    body: String,
    headers: &[(&'static str, &'static str)],
    facts: Option<ResponseFacts>,
) -> Served {
    let declared = body.len();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |_req: Request<Full<Bytes>>| {
            let body = body.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", content_type)
                        .header("content-length", declared)
                        .body(Full::new(Bytes::from(body)))
                        .unwrap(),
                )
            }
        });
    let mut req = Request::post("/mcp");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Full::new(Bytes::new())).unwrap();
    if !request.is_empty() {
        req.extensions_mut()
            .insert(parse_envelope(request.as_bytes()).unwrap());
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    if let Some(f) = facts {
        req.extensions_mut().insert(f);
    }
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Served {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

const LIST_REQ: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

#[tokio::test]
async fn tools_are_cut_to_what_the_caller_may_call_and_the_rest_is_intact() {
    let layer = ListFilterLayer::new(policy());
    let r = serve(
        layer.clone(),
        LIST_REQ,
        Some(who(&["notes:read"])),
        "application/json",
        TOOLS.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("content-length").is_none());
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"read_note","x":1}],"nextCursor":"abc","_meta":{"m":true},"future":[1]}}"#
    );
    // No tool scopes: only the unscoped tool. No principal at all: the same.
    for p in [Some(who(&[])), None] {
        let r = serve(
            layer.clone(),
            LIST_REQ,
            p,
            "application/json",
            TOOLS.into(),
            &[],
            None,
        )
        .await;
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v["result"]["tools"],
            json!([{"name":"echo","inputSchema":{}}])
        );
    }
}

#[tokio::test]
async fn admin_sees_every_named_tool_byte_for_byte() {
    let clean =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"delete_note"}]}}"#;
    let r = serve(
        ListFilterLayer::new(policy()),
        LIST_REQ,
        Some(who(&["*"])),
        "application/json",
        clean.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(r.body, clean);
}

#[tokio::test]
async fn cache_scope_private_in_the_2026_era_and_never_public() {
    let layer = ListFilterLayer::new(policy());
    let v2026 = [("mcp-protocol-version", "2026-07-28")];
    let clean = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}],"ttlMs":5}}"#;
    let r = serve(
        layer.clone(),
        LIST_REQ,
        Some(who(&["*"])),
        "application/json",
        clean.into(),
        &v2026,
        None,
    )
    .await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}],"ttlMs":5,"cacheScope":"private"}}"#
    );
    // Older era: untouched.
    let r = serve(
        layer.clone(),
        LIST_REQ,
        Some(who(&["*"])),
        "application/json",
        clean.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(r.body, clean);
    // A server's "public" becomes private in any era.
    let public = r#"{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"public","tools":[{"name":"delete_note"}]}}"#;
    for h in [&v2026[..], &[]] {
        let r = serve(
            layer.clone(),
            LIST_REQ,
            Some(who(&[])),
            "application/json",
            public.into(),
            h,
            None,
        )
        .await;
        assert_eq!(
            r.body,
            r#"{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"private","tools":[]}}"#
        );
    }
}

#[tokio::test]
async fn prompts_resources_and_templates() {
    let layer = ListFilterLayer::new(policy());
    let reader = Some(who(&["notes:read"]));
    let prompts = r#"{"jsonrpc":"2.0","id":"p","result":{"prompts":[{"name":"summary"},{"name":"admin_report"}]}}"#;
    let r = serve(
        layer.clone(),
        r#"{"jsonrpc":"2.0","id":"p","method":"prompts/list"}"#,
        reader.clone(),
        "application/json",
        prompts.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":"p","result":{"prompts":[{"name":"summary"}]}}"#
    );
    let resources = r#"{"jsonrpc":"2.0","id":2,"result":{"resources":[{"uri":"file:///notes/a","name":"a"},{"uri":"file:///admin/b","name":"b"},{"uri":"mem://c","name":"c"}]}}"#;
    let r = serve(
        layer.clone(),
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/list"}"#,
        reader.clone(),
        "application/json",
        resources.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":2,"result":{"resources":[{"uri":"file:///notes/a","name":"a"},{"uri":"mem://c","name":"c"}]}}"#
    );
    let templates = r#"{"jsonrpc":"2.0","id":3,"result":{"resourceTemplates":[{"uriTemplate":"file:///notes/{id}","name":"n"},{"uriTemplate":"file:///admin/{id}","name":"a"},{"uriTemplate":"file:///{path}","name":"any"}]}}"#;
    let r = serve(
        layer.clone(),
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/templates/list"}"#,
        reader.clone(),
        "application/json",
        templates.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":3,"result":{"resourceTemplates":[{"uriTemplate":"file:///notes/{id}","name":"n"},{"uriTemplate":"file:///{path}","name":"any"}]}}"#
    );
}

#[tokio::test]
async fn sse_only_the_list_event_is_rewritten() {
    let note = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"delete_note"}}"#;
    let stream = format!("id: 1\ndata: {note}\n\nid: 2\ndata: {TOOLS}\n\n");
    let r = serve(
        ListFilterLayer::new(policy()),
        LIST_REQ,
        Some(who(&[])),
        "text/event-stream",
        stream,
        &[],
        None,
    )
    .await;
    let (first, second) = r.body.split_once("\n\n").unwrap();
    assert_eq!(first, format!("id: 1\ndata: {note}"));
    assert!(second.starts_with("id: 2\ndata: "));
    assert!(!second.contains("delete_note") && !second.contains("read_note"));
}

/// Found by the response_rewriter fuzz target: a message with `method`, `id` and `result`
/// is malformed, and a client that reads it as the answer to `tools/list` must not see a
/// hidden tool in it.
#[tokio::test]
async fn a_response_that_also_names_a_method_is_still_filtered() {
    let odd = r#"{"jsonrpc":"2.0","method":"notifications","id":1,"result":{"tools":[{"name":"echo"},{"name":"delete_note"}]}}"#;
    for (content_type, body) in [
        ("application/json", odd.to_owned()),
        (
            "text/event-stream",
            format!("event: message\ndata: {odd}\n\n"),
        ),
    ] {
        let r = serve(
            ListFilterLayer::new(policy()),
            LIST_REQ,
            Some(who(&[])),
            content_type,
            body,
            &[],
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{content_type}");
        assert!(
            r.body.contains(r#"{"name":"echo"}"#),
            "{content_type}: {}",
            r.body
        );
        assert!(
            !r.body.contains("delete_note"),
            "{content_type}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn oversize_and_invalid_fail_closed_with_facts() {
    let seen: Arc<Mutex<Vec<BodyFacts>>> = Arc::default();
    let layer = ListFilterLayer::builder(policy())
        .max_list_bytes(64)
        .build()
        .unwrap();
    for (ct, body, code) in [
        ("application/json", TOOLS.to_owned(), "response_too_large"),
        (
            "text/event-stream",
            format!("data: {TOOLS}\n\n"),
            "response_too_large",
        ),
        (
            "application/json",
            "{\"jsonrpc\":".to_owned(),
            "response_invalid_json",
        ),
        (
            "text/event-stream",
            "data: [nope\n\n".to_owned(),
            "response_invalid_json",
        ),
    ] {
        let sink = Arc::clone(&seen);
        let (facts, guard) = ResponseFacts::new(move |c| sink.lock().unwrap().push(c));
        let r = serve(
            layer.clone(),
            LIST_REQ,
            Some(who(&["*"])),
            ct,
            body,
            &[],
            Some(facts),
        )
        .await;
        drop(guard);
        assert!(!r.body.contains("echo"), "{}", r.body);
        let data = r
            .body
            .trim()
            .strip_prefix("event: message\ndata: ")
            .unwrap_or(r.body.trim());
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["id"], 1);
        assert_eq!(v["error"]["code"], -32603);
        assert_eq!(v["error"]["data"]["code"], code);
        let c = seen.lock().unwrap().pop().unwrap();
        assert!(c.body_complete);
        assert!(
            matches!(c.facts[..], [ResponseFact::FailedClosed { layer: "list_filter", reason }] if reason.as_str() == code)
        );
    }
    assert!(
        ListFilterLayer::builder(policy())
            .max_list_bytes(0)
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn facts_record_hidden_entries() {
    let seen: Arc<Mutex<Vec<BodyFacts>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let (facts, guard) = ResponseFacts::new(move |c| sink.lock().unwrap().push(c));
    serve(
        ListFilterLayer::new(policy()),
        LIST_REQ,
        Some(who(&["notes:read"])),
        "application/json",
        TOOLS.into(),
        &[],
        Some(facts),
    )
    .await;
    drop(guard);
    let c = seen.lock().unwrap().pop().unwrap();
    assert_eq!(
        c.facts,
        [ResponseFact::ListFiltered {
            method: "tools/list",
            kept: 2,
            hidden: 3
        }]
    );
}

#[tokio::test]
async fn other_calls_pass_untouched() {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let r = serve(
        ListFilterLayer::new(policy()),
        call,
        Some(who(&[])),
        "application/json",
        TOOLS.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(r.body, TOOLS);
    assert!(r.headers.get("content-length").is_some());
    // No envelope at all (not an MCP POST).
    let r = serve(
        ListFilterLayer::new(policy()),
        "",
        None,
        "application/json",
        TOOLS.into(),
        &[],
        None,
    )
    .await;
    assert_eq!(r.body, TOOLS);
}

#[tokio::test]
async fn replayed_stream_is_filtered_by_shape() {
    let note = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
    let call_result =
        r#"{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"delete_note"}]}}"#;
    let stream =
        format!("id: 1\ndata: {note}\n\nid: 2\ndata: {TOOLS}\n\nid: 3\ndata: {call_result}\n\n");
    let svc = ServiceBuilder::new()
        .layer(ListFilterLayer::new(policy()))
        .service_fn(move |_req: Request<Full<Bytes>>| {
            let stream = stream.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Full::new(Bytes::from(stream)))
                        .unwrap(),
                )
            }
        });
    let mut req = Request::get("/mcp")
        .header("last-event-id", "0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(who(&[]));
    let res = svc.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let events: Vec<&str> = body.split("\n\n").collect();
    assert_eq!(events[0], format!("id: 1\ndata: {note}"));
    assert!(events[1].starts_with("id: 2\ndata: ") && !events[1].contains("read_note"));
    assert_eq!(events[2], format!("id: 3\ndata: {call_result}"));
}
