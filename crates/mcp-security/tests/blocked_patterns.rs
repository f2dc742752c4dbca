//! Blocked input patterns through the whole stack, in front of an axum MCP endpoint served on a
//! real socket whose tool counts its calls: a traversal attempt is refused with JSON-RPC
//! `-32602` before the tool runs, a benign call reaches it, and the audit file records the
//! refusal (reason `blocked_pattern`, the rule, never the attack string). The rules come from
//! the TOML file (`[[blocked_pattern]]`) and the environment (`BLOCK_SHELL_METACHARACTERS`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Json, Router};
use mcp_security::core::config::Env;
use mcp_security::prodcheck::RuntimeEnvironment;
use mcp_security::{SecurityConfig, SecurityLayer};
use serde_json::{Value, json};

const KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";
const HMAC: &str = "4f9a1c7e2b8d3f60a5e9c1b7d2f84a36e0c9b5a17d3f8e2c6b0a4d9f1e7c3b52";

const TOML: &str = r#"
[[blocked_pattern]]
id = "files"
tool = "read_file"
pointer = "/path"
preset = "path_traversal"

[[blocked_pattern]]
id = "no_env_files"
tool = "*"
pointer = "/paths"
patterns = ['(?i)(^|/)\.env$']
"#;

/// A scratch directory no other test (or run) shares.
fn scratch() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "mcp-blocked-patterns-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stack(log: &std::path::Path) -> SecurityLayer {
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_ENV", "development".to_owned()),
            ("MCP_API_KEY", KEY.to_owned()),
            ("MCP_ALLOWED_HOSTS", "127.0.0.1:8080".to_owned()),
            ("MCP_AUDIT_LOG_FILE", log.display().to_string()),
            ("MCP_AUDIT_HMAC_KEY", HMAC.to_owned()),
            ("MCP_AUDIT_TRACING", "false".to_owned()),
            (
                "MCP_BLOCK_SHELL_METACHARACTERS",
                "run_command:/command".to_owned(),
            ),
        ],
    );
    SecurityConfig::builder_from_env(&env)
        .unwrap()
        .config_toml(TOML)
        .build()
        .unwrap()
        .layer_with(&RuntimeEnvironment::new().euid(Some(1000)))
        .unwrap()
}

/// The MCP endpoint: every `tools/call` counts, and is answered with a text result.
async fn serve(stack: SecurityLayer, calls: Arc<AtomicUsize>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/mcp",
            post(move |Json(req): Json<Value>| async move {
                if req["method"] == "tools/call" {
                    calls.fetch_add(1, Ordering::SeqCst);
                }
                Json(json!({
                    "jsonrpc": "2.0",
                    "id": req["id"],
                    "result": {"content": [{"type": "text", "text": "file contents"}]},
                }))
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
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
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
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        Answer {
            status,
            headers,
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

fn call(tool: &str, args: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    })
    .to_string()
}

#[tokio::test]
async fn a_traversal_is_refused_before_the_tool_runs_and_audited() {
    let dir = scratch();
    let log = dir.join("audit.jsonl");
    let stack = stack(&log);
    assert_eq!(stack.tool_guard().blocked_patterns().len(), 3);
    assert!(
        stack.summary().contains("blocked patterns (3 rules)"),
        "{}",
        stack.summary()
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = serve(stack.clone(), Arc::clone(&calls)).await;

    // Double-encoded traversal into /etc.
    const ATTACK: &str = "reports/%252e%252e/%252e%252e/etc/passwd";
    let refused = post_mcp(addr, call("read_file", json!({"path": ATTACK}))).await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        refused.body,
        r#"{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/path","rule":"files"},"message":"Invalid params: argument /path refused by blocked-pattern rule files"},"id":7,"jsonrpc":"2.0"}"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the tool never ran");

    // An operator expression on every tool, on an array's elements.
    let refused = post_mcp(
        addr,
        call("bulk_read", json!({"paths": ["a.txt", "config/.env"]})),
    )
    .await;
    assert_eq!(refused.status, 200);
    assert_eq!(
        refused.body,
        r#"{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/paths","rule":"no_env_files"},"message":"Invalid params: argument /paths refused by blocked-pattern rule no_env_files"},"id":7,"jsonrpc":"2.0"}"#
    );
    // The environment's preset rule.
    let refused = post_mcp(
        addr,
        call("run_command", json!({"command": "ls $(whoami)"})),
    )
    .await;
    assert_eq!(
        refused.body,
        r#"{"error":{"code":-32602,"data":{"code":"blocked_pattern","pointer":"/command","rule":"shell_metacharacters"},"message":"Invalid params: argument /command refused by blocked-pattern rule shell_metacharacters"},"id":7,"jsonrpc":"2.0"}"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Benign look-alikes reach the tool.
    for (tool, args) in [
        ("read_file", json!({"path": "reports/q3..final.txt"})),
        ("bulk_read", json!({"paths": ["a.txt", "my.env.example"]})),
        ("run_command", json!({"command": "ls -la reports"})),
    ] {
        let ok = post_mcp(addr, call(tool, args)).await;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.body,
            r#"{"id":7,"jsonrpc":"2.0","result":{"content":[{"text":"file contents","type":"text"}]}}"#
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(stack.tool_guard().stats().arguments_blocked, 3);

    stack.audit().close().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["kind"] == "request")
        .collect();
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|r| r["reason"] == "blocked_pattern")
        .collect();
    assert_eq!(blocked.len(), 3, "{text}");
    let first = blocked[0];
    assert_eq!(first["decision"], "rejected");
    assert_eq!(first["status_code"], 200);
    assert_eq!(first["mcp_method"], "tools/call");
    assert_eq!(first["mcp_tool"], "read_file");
    assert_eq!(
        first["detail"],
        "tool read_file: /path matched path_traversal: dot-dot segment of rule files"
    );
    assert_eq!(
        blocked[1]["detail"],
        "tool bulk_read: /paths/1 matched pattern 1 of rule no_env_files"
    );
    let allowed = records
        .iter()
        .filter(|r| r["decision"] == "allowed" && r["mcp_method"] == "tools/call")
        .count();
    assert_eq!(allowed, 3);
    // Neither the attack strings nor the key reach the audit trail.
    for secret in ["%252e", "passwd", ".env\"", "whoami", KEY] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_rule_in_the_toml_file_fails_the_build_naming_it() {
    let build = |toml: &str| {
        SecurityConfig::builder()
            .config_toml(toml)
            .build()
            .unwrap_err()
    };
    let e = build("[[blocked_pattern]]\nid = \"x\"\ntool = \"*\"\npatterns = [\"(unclosed\"]\n");
    assert_eq!(e.setting(), "blocked_pattern");
    assert!(
        e.reason()
            .starts_with("rule `x`: pattern 1 does not compile"),
        "{}",
        e.reason()
    );
    let e = build("[[blocked_pattern]]\nid = \"x\"\ntool = \"*\"\npreset = \"sql\"\n");
    assert_eq!(e.setting(), "blocked_pattern[0].preset");
    let e = build("[[blocked_pattern]]\ntool = \"*\"\npreset = \"path_traversal\"\n");
    assert_eq!(e.setting(), "blocked_pattern[0].id");
    let e = build("[[blocked_pattern]]\nid = \"x\"\ntool = \"*\"\npattern = \"a\"\n");
    assert_eq!(e.setting(), "blocked_pattern[0].pattern");
    let e = build("[[blocked_pattern]]\nid = \"x\"\ntool = \"*\"\n");
    assert_eq!(
        e.reason(),
        "rule `x`: give at least one pattern or a preset"
    );
    let e = SecurityConfig::builder_from_env(&Env::from_pairs(
        "IQ",
        [("IQ_BLOCK_PATH_TRAVERSAL", "read_file:path")],
    ))
    .unwrap_err();
    assert_eq!(e.setting(), "IQ_BLOCK_PATH_TRAVERSAL");
}
