//! Tool-call evidence through the whole stack, in front of an axum MCP endpoint served on a
//! real socket, with the result guard redacting: the audit file's `completion` record of each
//! `tools/call` carries keyed digests of the arguments the client sent and of the result the
//! client received — the redacted one — recomputable with the audit key from what the client
//! holds, never the contents; JSON and SSE answers alike; the trail still verifies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use mcp_security::audit::chain::AuditKey;
use mcp_security::audit::evidence::{DigestPart, digest};
use mcp_security::audit::verify::{VerifyOptions, verify_files};
use mcp_security::core::config::Env;
use mcp_security::core::response::RawObject;
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use serde_json::Value;

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const HMAC: &str = "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52";
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
const NOTIFICATION: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n";

/// A scratch directory no other test (or run) shares.
fn scratch() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "mcp-tool-call-evidence-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stack(log: &Path) -> SecurityLayer {
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development".to_owned()),
            ("MCP_API_KEY", KEY.to_owned()),
            ("MCP_ALLOWED_HOSTS", "127.0.0.1:8080".to_owned()),
            ("MCP_AUDIT_LOG_FILE", log.display().to_string()),
            ("MCP_AUDIT_HMAC_KEY", HMAC.to_owned()),
            ("MCP_AUDIT_TRACING", "false".to_owned()),
            ("MCP_RESULT_GUARD", "redact".to_owned()),
        ],
    );
    SecurityConfig::builder_from_env(&env)
        .unwrap()
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

/// The MCP endpoint: `leak_json` answers in JSON, `leak_sse` as an event stream with a
/// notification first; both results carry a credential.
async fn serve(stack: SecurityLayer) -> SocketAddr {
    let app = Router::new()
        .route(
            "/mcp",
            post(|body: String| async move {
                let req: Value = serde_json::from_str(&body).unwrap();
                let answer = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[{{"type":"text","text":"key={SECRET}"}}],"isError":{}}}}}"#,
                    req["id"],
                    req["params"]["arguments"]["fail"] == true,
                );
                if req["params"]["name"] == "leak_sse" {
                    (
                        [("content-type", "text/event-stream")],
                        format!("{NOTIFICATION}event: message\ndata: {answer}\n\n"),
                    )
                } else {
                    ([("content-type", "application/json")], answer)
                }
            }),
        )
        .layer(stack);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 POST over a fresh connection (`Connection: close`), read to the end.
async fn post_mcp(addr: SocketAddr, body: String) -> Answer {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nauthorization: Bearer {KEY}\r\n\
             content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let body = if header("transfer-encoding").contains("chunked") {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        Answer {
            status,
            content_type: header("content-type"),
            body,
        }
    })
    .await
    .unwrap()
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// The raw text of the `result` member in the JSON-RPC message the client received.
fn result_text(message: &str) -> String {
    RawObject::parse(message)
        .unwrap()
        .get("result")
        .unwrap()
        .get()
        .to_owned()
}

/// The `completion` records of the file, as JSON.
fn completions(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "completion")
        .collect()
}

#[tokio::test]
async fn the_trail_holds_digests_of_what_the_client_sent_and_got() {
    let dir = scratch();
    let log = dir.join("audit.jsonl");
    let stack = stack(&log);
    let addr = serve(stack.clone()).await;
    let key = AuditKey::from_bytes(HMAC.as_bytes()).unwrap();

    // JSON: arguments with spaces, as a client may send them; the result redacted.
    let args_json = r#"{ "path" : "notes/today.md" }"#;
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{{"name":"leak_json","arguments":{args_json}}}}}"#
    );
    let json = post_mcp(addr, call).await;
    assert_eq!(json.status, 200, "{}", json.body);
    assert_eq!(json.content_type, "application/json");
    assert!(!json.body.contains(SECRET), "{}", json.body);
    assert!(json.body.contains("[redacted"), "{}", json.body);
    let json_result = result_text(&json.body);

    // SSE: the notification reaches the client as the server sent it; the answer redacted.
    let args_sse = r#"{"fail":true}"#;
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":"s-2","method":"tools/call","params":{{"name":"leak_sse","arguments":{args_sse}}}}}"#
    );
    let sse = post_mcp(addr, call).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    assert_eq!(sse.content_type, "text/event-stream");
    assert!(sse.body.starts_with(NOTIFICATION), "{}", sse.body);
    assert!(!sse.body.contains(SECRET), "{}", sse.body);
    let data = sse.body[NOTIFICATION.len()..]
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let sse_result = result_text(data);
    assert!(sse_result.contains("\"isError\":true"), "{sse_result}");

    stack.audit().close().await.unwrap();
    let records = completions(&log);
    assert_eq!(records.len(), 2, "{records:?}");
    for (record, args, result, is_error) in [
        (&records[0], args_json, &json_result, false),
        (&records[1], args_sse, &sse_result, true),
    ] {
        assert_eq!(record["body"], "complete", "{record}");
        assert_eq!(
            record["args_digest"],
            digest(&key, DigestPart::Arguments, args)
        );
        // The digest of the redacted result the client got, not of what the tool returned.
        assert_eq!(
            record["result_digest"],
            digest(&key, DigestPart::Result, result),
            "{record}"
        );
        assert_ne!(
            record["result_digest"],
            digest(
                &key,
                DigestPart::Result,
                &result.replace("[redacted]", SECRET)
            )
        );
        assert_eq!(record["is_error"], is_error);
        assert_eq!(record["result_not_digested"], Value::Null);
        // The result guard's own fact lands in the same record.
        assert_eq!(record["secrets_action"], "redacted", "{record}");
    }
    let file = std::fs::read_to_string(&log).unwrap();
    assert!(!file.contains(SECRET) && !file.contains("notes/today.md"));
    let report = verify_files(&[&log], &key, &VerifyOptions::new()).unwrap();
    assert_eq!(report.requests, 2);
    assert!(report.closed);
    let _ = std::fs::remove_dir_all(&dir);
}
