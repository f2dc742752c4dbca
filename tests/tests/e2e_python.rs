#![cfg(feature = "e2e")]
//! The official Python MCP client (PyPI `mcp` 2.x) through the whole stack, in both protocol
//! eras: `mode="legacy"` (2025-11-25, initialize + `Mcp-Session-Id`) and `mode="auto"`
//! (negotiates the stateless 2026-07-28 era with rmcp, `Mcp-Method` / `Mcp-Name` headers), with
//! an API key, with a JWT, and refused (401) without a credential or with a wrong one.
//!
//! Setup: `bash .ci/e2e-setup.sh` (or `MCP_E2E_PYTHON=/path/to/python` with `mcp` 2.x).

use serde_json::Value;
use tests::e2e_support::{
    API_KEY_NAME, ClientRun, ServerOptions, TestServer, run_python, run_python_script,
};

const LEGACY: &str = "2025-11-25";
const STATELESS: &str = "2026-07-28";

fn requests(run: &ClientRun) -> &Vec<Value> {
    run.report["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests in the report: {}", run.describe()))
}

/// The client connected, listed and called the tools as `principal` (`kind`), in `mode`'s era.
fn assert_served(run: &ClientRun, mode: &str, principal: &str, kind: &str) {
    let r = &run.report;
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(r["ok"], true, "{}", run.describe());
    assert_eq!(r["mode"], mode);
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tools, ["echo", "whoami"], "{}", run.describe());
    assert_eq!(r["whoami"]["principal"]["id"], principal);
    assert_eq!(r["whoami"]["principal"]["kind"], kind);
    assert_eq!(r["echo"]["got"], r["echo"]["sent"]);
    assert_eq!(r["echo"]["is_error"], false);

    let posts: Vec<&Value> = requests(run)
        .iter()
        .filter(|q| q["method"] == "POST")
        .collect();
    assert!(!posts.is_empty());
    for q in &posts {
        assert!(
            q["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
            "every POST succeeds: {q}"
        );
    }
    let calls: Vec<&&Value> = posts
        .iter()
        .filter(|q| q["mcp_method"] == "tools/call")
        .collect();
    match mode {
        "auto" => {
            assert_eq!(r["protocol"], STATELESS, "{}", run.describe());
            for q in &posts {
                assert_eq!(q["protocol_version"], STATELESS, "{q}");
                assert_eq!(q["session"], false, "stateless: no session id: {q}");
                assert!(q["mcp_method"].is_string(), "Mcp-Method on every POST: {q}");
            }
            let names: Vec<&str> = calls
                .iter()
                .filter_map(|q| q["mcp_name"].as_str())
                .collect();
            assert_eq!(names, ["whoami", "echo"], "Mcp-Name on tools/call");
        }
        _ => {
            assert_eq!(r["protocol"], LEGACY, "{}", run.describe());
            assert_eq!(posts[0]["session"], false, "initialize opens the session");
            for q in &posts[1..] {
                assert_eq!(q["session"], true, "then every request names it: {q}");
                assert_eq!(q["protocol_version"], LEGACY, "{q}");
            }
        }
    }
}

/// The client was refused with 401 on its first request.
fn assert_refused(run: &ClientRun, mode: &str) {
    let r = &run.report;
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert_eq!(r["ok"], false, "{}", run.describe());
    assert_eq!(r["mode"], mode);
    assert_eq!(r["status"], 401, "{}", run.describe());
    assert!(r["error"].is_string());
    assert!(
        r.get("tools").is_none(),
        "nothing was listed: {}",
        run.describe()
    );
    assert_eq!(requests(run)[0]["status"], 401, "{}", run.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_with_an_api_key_in_both_eras() {
    let server = TestServer::start().await;
    for mode in ["legacy", "auto"] {
        let run = run_python(&server.url, mode, Some(&server.api_key)).await;
        assert_served(&run, mode, API_KEY_NAME, "api_key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_with_a_jwt_in_both_eras() {
    let server = TestServer::start().await;
    let token = server.jwt("py-jwt-user");
    for mode in ["legacy", "auto"] {
        let run = run_python(&server.url, mode, Some(&token)).await;
        assert_served(&run, mode, "py-jwt-user", "jwt");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_without_a_credential_is_refused_in_both_eras() {
    let server = TestServer::start().await;
    for mode in ["legacy", "auto"] {
        let run = run_python(&server.url, mode, None).await;
        assert_refused(&run, mode);
        let run = run_python(&server.url, mode, Some("mcp-sk-not-a-real-key")).await;
        assert_refused(&run, mode);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_credentials_against_the_server_alone_in_both_eras() {
    // No authorization server: the stack's own token endpoint (TOKEN_ENDPOINT) exchanges the API
    // key (the client secret) for a token; the SDK's ClientCredentialsOAuthProvider is given only
    // the key's name, the key and the issuer.
    let server =
        TestServer::start_configured(ServerOptions::default(), |b| b.token_endpoint(true)).await;
    let origin = format!("http://{}", server.addr);
    for mode in ["legacy", "auto"] {
        let run = run_python_script(
            "e2e_client.py",
            &[
                &server.url,
                "--mode",
                mode,
                "--oauth-client-id",
                API_KEY_NAME,
                "--oauth-client-secret",
                &server.api_key,
                "--oauth-issuer",
                &origin,
            ],
        )
        .await;
        let r = &run.report;
        assert_eq!(run.code, Some(0), "{}", run.describe());
        assert_eq!(r["ok"], true, "{}", run.describe());
        assert_eq!(r["whoami"]["principal"]["id"], API_KEY_NAME);
        assert_eq!(
            r["whoami"]["principal"]["kind"],
            "jwt",
            "{}",
            run.describe()
        );
        assert_eq!(r["echo"]["got"], r["echo"]["sent"]);
        assert_eq!(r["oauth"]["token_type"], "Bearer", "{}", run.describe());
        assert_eq!(r["oauth"]["got_token"], true);
        assert_eq!(r["oauth"]["scope"], "*");

        // Our 401 first; one token request to our endpoint; after it, only MCP requests, all
        // served.
        let seen: Vec<(String, String, u64)> = requests(&run)
            .iter()
            .map(|q| {
                (
                    q["method"].as_str().unwrap_or_default().to_owned(),
                    q["path"].as_str().unwrap_or_default().to_owned(),
                    q["status"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            seen[0],
            ("POST".to_owned(), "/mcp".to_owned(), 401),
            "{seen:#?}"
        );
        let token_requests: Vec<usize> = seen
            .iter()
            .enumerate()
            .filter(|(_, (_, path, _))| path == "/oauth/token")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(token_requests.len(), 1, "{seen:#?}");
        let at = token_requests[0];
        assert_eq!(seen[at].2, 200, "{seen:#?}");
        assert!(
            seen[..at].iter().any(|(m, path, status)| m == "GET"
                && path == "/.well-known/oauth-authorization-server"
                && *status == 200),
            "the SDK read our RFC 8414 metadata: {seen:#?}"
        );
        assert!(
            seen[at + 1..]
                .iter()
                .all(|(_, path, status)| path == "/mcp" && (200..300).contains(status)),
            "{seen:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_gets_a_credential_in_a_tool_result_redacted_in_both_eras() {
    // The result guard in redact mode; `echo` returns what it is given, here text holding the
    // AWS documentation's example key id (the shape of a real one, valid nowhere).
    let server = TestServer::start_configured(ServerOptions::default(), |b| {
        b.result_guard(mcp_security::guard::ResultGuardMode::Redact)
    })
    .await;
    for mode in ["legacy", "auto"] {
        let run = run_python_script(
            "e2e_client.py",
            &[
                &server.url,
                "--mode",
                mode,
                "--token",
                &server.api_key,
                "--echo-text",
                "the key is AKIAIOSFODNN7EXAMPLE, keep it",
            ],
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.describe());
        let echo = &run.report["echo"];
        assert_eq!(echo["sent"], "the key is AKIAIOSFODNN7EXAMPLE, keep it");
        assert_eq!(
            echo["got"],
            "the key is [redacted], keep it",
            "{}",
            run.describe()
        );
        assert_eq!(echo["is_error"], false);
    }
    assert!(server.security().tool_guard().stats().secrets_found >= 2);
}
