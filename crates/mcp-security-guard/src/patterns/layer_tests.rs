//! Blocked patterns through [`ToolGuardLayer`]: the refusal's exact answer, the audit's
//! rejection, the server never called; batches; benign calls pass.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::Rejection;
use mcp_security_core::config::Env;
use mcp_security_core::jsonrpc::parse_envelope;
use tower::{ServiceBuilder, ServiceExt};

use super::{BlockedPattern, PatternPreset};
use crate::ToolGuardLayer;

const RESULT: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#;

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    rejection: Option<Rejection>,
    body: String,
}

/// One request through the layer in front of a server that counts the requests it sees.
async fn send(layer: &ToolGuardLayer, calls: &Arc<AtomicUsize>, body: &str) -> Answer {
    let counter = Arc::clone(calls);
    let svc =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(move |_req: Request<Full<Bytes>>| {
                counter.fetch_add(1, Ordering::Relaxed);
                async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(RESULT)))
                            .unwrap(),
                    )
                }
            });
    let mut req = Request::post("/mcp")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    req.extensions_mut()
        .insert(parse_envelope(body.as_bytes()).unwrap());
    let res = svc.oneshot(req).await.unwrap();
    let rejection = res.extensions().get::<Rejection>().cloned();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        rejection,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn call(tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

fn layer() -> ToolGuardLayer {
    ToolGuardLayer::builder()
        .blocked_pattern(
            BlockedPattern::new("files", "read_file", "/path").preset(PatternPreset::PathTraversal),
        )
        .blocked_pattern(
            BlockedPattern::new("no_shell", "*", "").preset(PatternPreset::ShellMetacharacters),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_traversal_is_refused_with_invalid_params_before_the_server() {
    let layer = layer();
    assert!(layer.is_enabled());
    assert_eq!(layer.blocked_patterns().len(), 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let a = send(
        &layer,
        &calls,
        &call("read_file", r#"{"path":"notes/%2e%2e/%2e%2e/etc/passwd"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        a.body,
        r#"{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/path","rule":"files"},"message":"Invalid params: argument /path refused by blocked-pattern rule files"},"id":7,"jsonrpc":"2.0"}"#
    );
    assert!(!a.body.contains("%2e") && !a.body.contains("passwd") && !a.body.contains("read_file"));
    let r = a.rejection.expect("a rejection for the audit record");
    assert_eq!(r.code(), "blocked_pattern");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.internal_detail(),
        Some("tool read_file: /path matched path_traversal: dot-dot segment of rule files")
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0, "the server never saw it");
    assert_eq!(layer.stats().arguments_blocked, 1);

    // The whole-arguments rule names no pointer; the detail names the leaf.
    let a = send(&layer, &calls, &call("run", r#"{"cmd":["ls","-l; id"]}"#)).await;
    assert_eq!(
        a.body,
        r#"{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"","rule":"no_shell"},"message":"Invalid params: arguments refused by blocked-pattern rule no_shell"},"id":7,"jsonrpc":"2.0"}"#
    );
    assert_eq!(
        a.rejection.unwrap().internal_detail(),
        Some("tool run: /cmd/1 matched shell_metacharacters: command separator of rule no_shell")
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(layer.stats().arguments_blocked, 2);
}

#[tokio::test]
async fn benign_calls_and_other_tools_reach_the_server() {
    let layer = layer();
    let calls = Arc::new(AtomicUsize::new(0));
    for body in [
        call("read_file", r#"{"path":"notes/my..file.txt"}"#),
        call("read_file", r#"{"path":"a-b","limit":10}"#),
        // `path` is checked for read_file only; shell characters only by `no_shell`.
        call("search", r#"{"path":"../x"}"#),
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file"}}"#
            .to_owned(),
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#.to_owned(),
    ] {
        let a = send(&layer, &calls, &body).await;
        assert_eq!(a.body, RESULT, "{body}");
        assert!(a.rejection.is_none());
    }
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    assert_eq!(layer.stats().arguments_blocked, 0);
}

#[tokio::test]
async fn a_batch_with_a_refused_call_is_answered_whole() {
    let layer = layer();
    let calls = Arc::new(AtomicUsize::new(0));
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"ok.txt"}}},{"jsonrpc":"2.0","method":"notifications/progress","params":{}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"read_file","arguments":{"path":"..\\..\\secret"}}}]"#;
    let a = send(&layer, &calls, batch).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        r#"[{"error":{"code":-32000,"message":"Not processed: another call in the batch was refused"},"id":1,"jsonrpc":"2.0"},{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/path","rule":"files"},"message":"Invalid params: argument /path refused by blocked-pattern rule files"},"id":"b","jsonrpc":"2.0"}]"#
    );
    assert_eq!(a.rejection.unwrap().code(), "blocked_pattern");
    assert_eq!(calls.load(Ordering::Relaxed), 0);

    // A batch of benign calls passes.
    let fine = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"ok.txt"}}}]"#;
    let a = send(&layer, &calls, fine).await;
    assert!(a.rejection.is_none());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn a_bad_rule_fails_the_build_naming_it() {
    let e = ToolGuardLayer::builder()
        .blocked_pattern(BlockedPattern::new("broken", "t", "/a").pattern("[z-a]"))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "blocked_pattern");
    assert!(
        e.reason()
            .starts_with("rule `broken`: pattern 1 does not compile")
    );
}

#[test]
fn the_environment_adds_preset_rules() {
    let layer = ToolGuardLayer::builder_from_env(&Env::from_pairs(
        "MCP",
        [("MCP_BLOCK_PATH_TRAVERSAL", "read_file:/path")],
    ))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(
        layer.blocked_patterns().ids().collect::<Vec<_>>(),
        ["path_traversal"]
    );
    assert!(layer.is_enabled());
    let off = ToolGuardLayer::builder_from_env(&Env::from_pairs("MCP", [("X", "y")]))
        .unwrap()
        .build()
        .unwrap();
    assert!(off.blocked_patterns().is_empty());
}
