use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::facts::{BodyFacts, ResponseFact, ResponseFacts};
use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::response::RewriteFailure;
use tower::{ServiceBuilder, ServiceExt};

use super::*;

const AWS: &str = "AKIAIOSFODNN7EXAMPLE";

fn guard(mode: ResultGuardMode) -> ToolGuardLayer {
    ToolGuardLayer::builder()
        .result_guard(mode)
        .build()
        .unwrap()
}

/// One request through `layer` to a server answering `body` as `content_type`: status, the
/// response's content-length header, body, and the facts recorded.
async fn run(
    layer: &ToolGuardLayer,
    request: &str,
    content_type: &'static str,
    body: String,
) -> (StatusCode, Option<String>, String, BodyFacts) {
    let len = body.len();
    let svc =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(move |_req: Request<Full<Bytes>>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", content_type)
                            .header("content-length", len)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
    let seen: Arc<Mutex<Option<BodyFacts>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let (facts, audit) = ResponseFacts::new(move |c| *sink.lock().unwrap() = Some(c));
    let mut req = Request::post("/mcp").body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut()
        .insert(parse_envelope(request.as_bytes()).unwrap());
    req.extensions_mut().insert(facts);
    let res = svc.oneshot(req).await.unwrap();
    drop(audit);
    let status = res.status();
    let cl = res
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let facts = seen.lock().unwrap().take().unwrap();
    (status, cl, String::from_utf8(body.to_vec()).unwrap(), facts)
}

fn call(tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
}

fn text_result(text_json: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":{text_json}}}],"isError":false}}}}"#
    )
}

#[tokio::test]
async fn an_escaped_secret_is_found_after_decoding_and_redacted() {
    let layer = guard(ResultGuardMode::Redact);
    // "AKIA…" with its first letter as a \u escape: invisible to a byte search.
    let body = text_result(r#""aws \u0041KIAIOSFODNN7EXAMPLE ok""#);
    assert!(!body.contains(AWS));
    let (status, cl, out, facts) = run(&layer, &call("env"), "application/json", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cl, None, "the length changed: no stale Content-Length");
    assert_eq!(out, text_result(r#""aws [redacted] ok""#));
    assert_eq!(
        facts.facts,
        [ResponseFact::SecretFound {
            kind: "aws_access_key_id",
            count: 1,
            method: Some("tools/call"),
            target: Some("env".into()),
            action: "redacted",
        }]
    );
    assert!(facts.body_complete);
    assert!(!format!("{facts:?}").contains("IOSFODNN7"));
    let stats = layer.stats();
    assert_eq!(
        (
            stats.answers_with_secrets,
            stats.secrets_found,
            stats.answers_blocked
        ),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_pem_key_with_escaped_line_breaks_is_found() {
    let layer = guard(ResultGuardMode::Redact);
    let pem = r#""-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n""#;
    let (_, _, out, facts) = run(
        &layer,
        &call("read_key"),
        "application/json",
        text_result(pem),
    )
    .await;
    assert_eq!(out, text_result(r#""[redacted]\n""#));
    assert!(matches!(
        &facts.facts[..],
        [ResponseFact::SecretFound {
            kind: "private_key",
            ..
        }]
    ));
}

#[tokio::test]
async fn block_replaces_the_answer_with_a_json_rpc_error() {
    let layer = guard(ResultGuardMode::Block);
    let body = text_result(&format!(
        r#""token ghp_0123456789abcdefghijABCDEFGHIJ012345 and {AWS}""#
    ));
    let (status, _, out, facts) = run(&layer, &call("env"), "application/json", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        out,
        r#"{"error":{"code":-32603,"data":{"code":"secret_in_result"},"message":"The result was withheld: it contained a credential"},"id":7,"jsonrpc":"2.0"}"#
    );
    let kinds: Vec<&str> = facts
        .facts
        .iter()
        .map(|f| match f {
            ResponseFact::SecretFound { kind, action, .. } => {
                assert_eq!(*action, "blocked");
                *kind
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["github_token", "aws_access_key_id"]);
    assert_eq!(layer.stats().answers_blocked, 1);
    assert_eq!(layer.stats().secrets_found, 2);
}

#[tokio::test]
async fn sse_only_the_answer_event_is_rewritten() {
    let layer = guard(ResultGuardMode::Redact);
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"AKIAIOSFODNN7EXAMPLE"}}"#;
    let body = format!(
        "id: 1\nevent: message\ndata: {progress}\n\nid: 2\nevent: message\ndata: {}\n\n",
        text_result(r#""key: AKIAIOSFODNN7EXAMPLE""#)
    );
    let (_, _, out, facts) = run(&layer, &call("env"), "text/event-stream", body).await;
    assert_eq!(
        out,
        format!(
            "id: 1\nevent: message\ndata: {progress}\n\nid: 2\nevent: message\ndata: {}\n\n",
            text_result(r#""key: [redacted]""#)
        )
    );
    assert_eq!(facts.facts.len(), 1);
}

#[tokio::test]
async fn sse_block_replaces_the_event() {
    let layer = guard(ResultGuardMode::Block);
    let body = format!("data: {}\n\n", text_result(&format!("\"{AWS}\"")));
    let (_, _, out, _) = run(&layer, &call("env"), "text/event-stream", body).await;
    assert_eq!(
        out,
        "data: {\"error\":{\"code\":-32603,\"data\":{\"code\":\"secret_in_result\"},\"message\":\"The result was withheld: it contained a credential\"},\"id\":7,\"jsonrpc\":\"2.0\"}\n\n"
    );
}

#[tokio::test]
async fn an_answer_over_the_cap_fails_closed_in_both_modes() {
    for mode in [ResultGuardMode::Redact, ResultGuardMode::Block] {
        let layer = ToolGuardLayer::builder()
            .result_guard(mode)
            .max_result_bytes(64)
            .build()
            .unwrap();
        let body = text_result(&format!("\"{}\"", "a".repeat(100)));
        let (status, _, out, facts) = run(&layer, &call("big"), "application/json", body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            out,
            r#"{"error":{"code":-32603,"data":{"code":"response_too_large"},"message":"The server's response could not be checked"},"id":7,"jsonrpc":"2.0"}"#
        );
        assert_eq!(
            facts.facts,
            [ResponseFact::FailedClosed {
                layer: "result_guard",
                reason: RewriteFailure::TooLarge
            }]
        );
        assert_eq!(layer.stats().failed_closed, 1);
        // One SSE event over the cap too.
        let body = format!(
            "data: {}\n\n",
            text_result(&format!("\"{}\"", "a".repeat(100)))
        );
        let (_, _, out, _) = run(&layer, &call("big"), "text/event-stream", body).await;
        assert_eq!(
            out,
            "event: message\ndata: {\"error\":{\"code\":-32603,\"data\":{\"code\":\"response_too_large\"},\"message\":\"The server's response could not be checked\"},\"id\":7,\"jsonrpc\":\"2.0\"}\n\n"
        );
    }
}

#[tokio::test]
async fn ordinary_results_pass_byte_for_byte() {
    let layer = guard(ResultGuardMode::Block);
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"Ticket 550e8400-e29b-41d4-a716-446655440000 closed at 12:04, \u00e9t\u00e9 ok"}],"structuredContent":{"id":"123e4567-e89b-12d3-a456-426614174000","password_policy":"min 12 chars","count":3}}}"#.to_string();
    let (_, _, out, facts) = run(&layer, &call("tickets"), "application/json", body.clone()).await;
    assert_eq!(out, body);
    assert!(facts.facts.is_empty());
    assert_eq!(layer.stats(), GuardStats::default());
}

#[tokio::test]
async fn structured_content_errors_resources_and_prompts_are_scanned() {
    let layer = guard(ResultGuardMode::Redact);
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"structuredContent":{"db":{"password":"s3cr3tV4lue!","host":"db1"}},"_meta":{"k":1}}}"#;
    let (_, _, out, _) = run(&layer, &call("cfg"), "application/json", body.into()).await;
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"structuredContent":{"db":{"password":"[redacted]","host":"db1"}},"_meta":{"k":1}}}"#
    );

    let body = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"login failed for mcp-sk-AbCdEf0123456789"}}"#;
    let (_, _, out, _) = run(&layer, &call("login"), "application/json", body.into()).await;
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"login failed for [redacted]"}}"#
    );

    let read = r#"{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"file:///etc/app.env"}}"#;
    let body = r#"{"jsonrpc":"2.0","id":"r","result":{"contents":[{"uri":"file:///etc/app.env","text":"SLACK=xoxb-123456789012-abcdefABCDEF\n"}]}}"#;
    let (_, _, out, facts) = run(&layer, read, "application/json", body.into()).await;
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":"r","result":{"contents":[{"uri":"file:///etc/app.env","text":"SLACK=[redacted]\n"}]}}"#
    );
    assert!(matches!(
        &facts.facts[..],
        [ResponseFact::SecretFound { kind: "slack_token", method: Some("resources/read"), target: Some(t), .. }] if &**t == "file:///etc/app.env"
    ));

    let get = r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"deploy"}}"#;
    let body = r#"{"jsonrpc":"2.0","id":3,"result":{"messages":[{"role":"user","content":{"type":"text","text":"use glpat-abcdefghij0123456789"}}]}}"#;
    let (_, _, out, _) = run(&layer, get, "application/json", body.into()).await;
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":3,"result":{"messages":[{"role":"user","content":{"type":"text","text":"use [redacted]"}}]}}"#
    );
}

#[tokio::test]
async fn off_and_other_methods_pass_untouched() {
    let body = text_result(&format!("\"{AWS}\""));
    let (_, cl, out, facts) = run(
        &ToolGuardLayer::default(),
        &call("env"),
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!((cl, out), (Some(body.len().to_string()), body.clone()));
    assert!(facts.facts.is_empty());
    let list = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let (_, cl, out, _) = run(
        &guard(ResultGuardMode::Block),
        list,
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!((cl, out), (Some(body.len().to_string()), body));
}

#[test]
fn settings_from_env_and_builder_errors_name_the_setting() {
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_RESULT_GUARD", "Redact"),
            ("MCP_RESULT_GUARD_MAX_BYTES", "1024"),
        ],
    );
    let layer = ToolGuardLayer::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(layer.result_guard(), ResultGuardMode::Redact);
    assert_eq!(layer.max_result_bytes(), 1024);
    assert!(layer.is_enabled());

    let env = Env::from_pairs("MCP", [("MCP_RESULT_GUARD", "mask")]);
    let err = ToolGuardLayer::builder_from_env(&env).unwrap_err();
    assert_eq!(err.setting(), "MCP_RESULT_GUARD");
    assert_eq!(err.value(), Some("mask"));

    let env = Env::from_pairs("IQ", [("IQ_RESULT_GUARD_MAX_BYTES", "0")]);
    let err = ToolGuardLayer::builder_from_env(&env).unwrap_err();
    assert_eq!(err.setting(), "IQ_RESULT_GUARD_MAX_BYTES");

    let err = ToolGuardLayer::builder()
        .max_result_bytes(0)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "max_result_bytes");
    let off = ToolGuardLayer::builder_from_env(&Env::from_pairs("MCP", [("X", "y")]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(off.result_guard(), ResultGuardMode::Off);
    // Argument validation (feature `schema`) is on by default from the environment.
    assert_eq!(off.is_enabled(), cfg!(feature = "schema"));
    assert_eq!(ResultGuardMode::Block.to_string(), "block");
}

#[tokio::test]
async fn a_configured_key_prefix_is_detected() {
    let layer = ToolGuardLayer::builder()
        .result_guard(ResultGuardMode::Redact)
        .key_prefixes(["iq-sk-"])
        .build()
        .unwrap();
    let (_, _, out, _) = run(
        &layer,
        &call("k"),
        "application/json",
        text_result(r#""iq-sk-0123456789""#),
    )
    .await;
    assert_eq!(out, text_result(r#""[redacted]""#));
}
