#![cfg(feature = "e2e")]
//! The official TypeScript MCP SDK (`@modelcontextprotocol/sdk` 1.x) through the whole stack:
//! with an API key, with a JWT, refused (401) without a credential, and the OAuth discovery
//! flow: on our 401 the SDK's `ClientCredentialsProvider` reads our RFC 9728 metadata, accepts
//! its `resource`, gets a token from a stub authorization server (the `resource` as audience)
//! and calls the tools with it.
//!
//! The SDK 1.x speaks the 2025-era protocol only (initialize + `Mcp-Session-Id`); it has no
//! 2026-07-28 stateless mode, so only that era is driven here.
//!
//! Setup: `bash .ci/e2e-setup.sh` (`npm ci` in tests/clients/ts).

use serde_json::Value;
use tests::e2e_support::{
    API_KEY_NAME, ClientRun, ServerOptions, StubAuthServer, TestServer, jwt_signer,
    random_jwt_secret, run_typescript,
};

/// The HTTP exchanges the client reported: (method, URL, status).
fn exchanges(run: &ClientRun) -> Vec<(String, String, u64)> {
    run.report["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|q| {
            (
                q["method"].as_str().unwrap_or_default().to_owned(),
                q["url"].as_str().unwrap_or_default().to_owned(),
                q["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The exchanges began with `expected`, and every later one was a served request to `mcp_url`
/// (the token was carried: nothing else was refused).
fn assert_starts_then_served(run: &ClientRun, expected: &[(String, String, u64)], mcp_url: &str) {
    let seen = exchanges(run);
    assert!(seen.len() > expected.len(), "{seen:#?}\n{}", run.describe());
    assert_eq!(seen[..expected.len()], *expected, "{seen:#?}");
    assert!(
        seen[expected.len()..]
            .iter()
            .all(|(_, url, status)| url == mcp_url && (200..300).contains(status)),
        "{seen:#?}"
    );
}

fn assert_served(run: &ClientRun, principal: &str, kind: &str) {
    let r = &run.report;
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(r["ok"], true, "{}", run.describe());
    assert_eq!(r["client"], "typescript");
    assert_eq!(r["protocol"], "2025-11-25", "{}", run.describe());
    assert_eq!(r["session"], true, "a legacy session: {}", run.describe());
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
    assert_eq!(r["echo"]["isError"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_with_an_api_key() {
    let server = TestServer::start().await;
    let run = run_typescript(&["--url", &server.url, "--token", &server.api_key]).await;
    assert_served(&run, API_KEY_NAME, "api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_with_a_jwt() {
    let server = TestServer::start().await;
    let token = server.jwt("ts-jwt-user");
    let run = run_typescript(&["--url", &server.url, "--token", &token]).await;
    assert_served(&run, "ts-jwt-user", "jwt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_without_a_credential_is_refused() {
    let server = TestServer::start().await;
    for args in [
        vec!["--url", server.url.as_str()],
        vec![
            "--url",
            server.url.as_str(),
            "--token",
            "mcp-sk-not-a-real-key",
        ],
    ] {
        let run = run_typescript(&args).await;
        let r = &run.report;
        assert_eq!(run.code, Some(1), "{}", run.describe());
        assert_eq!(r["ok"], false, "{}", run.describe());
        assert_eq!(r["status"], 401, "{}", run.describe());
        // The SDK's StreamableHTTPError carries the status (401) and our RFC 6750 body.
        assert!(
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("Streamable HTTP error")
                    && e.contains(r#""error":"invalid_token""#)),
            "{}",
            run.describe()
        );
        assert!(r.get("tools").is_none());
        let requests = r["requests"].as_array().expect("requests");
        assert_eq!(requests.len(), 1, "{}", run.describe());
        assert_eq!(requests[0]["method"], "POST");
        assert_eq!(requests[0]["url"], server.url.as_str());
        assert_eq!(requests[0]["status"], 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_oauth_discovery_with_client_credentials() {
    // The stub authorization server signs with the MCP server's HS256 secret; the MCP server
    // names it in its protected-resource metadata.
    let secret = random_jwt_secret();
    let auth_server = StubAuthServer::start(jwt_signer(&secret)).await;
    let server = TestServer::start_with(ServerOptions {
        authorization_servers: vec![auth_server.issuer.clone()],
        jwt_secret: Some(secret),
    })
    .await;

    let run = run_typescript(&[
        "--url",
        &server.url,
        "--oauth-client-id",
        &auth_server.client_id,
        "--oauth-client-secret",
        &auth_server.client_secret,
        "--oauth-issuer",
        &auth_server.issuer,
    ])
    .await;
    assert_served(&run, &auth_server.client_id, "jwt");
    let r = &run.report;

    // The SDK accepted our metadata's resource and used the advertised authorization server.
    assert_eq!(
        r["oauth"]["resource"],
        server.url.as_str(),
        "{}",
        run.describe()
    );
    assert_eq!(
        r["oauth"]["authorization_server"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some(auth_server.issuer.as_str()),
        "{}",
        run.describe()
    );
    assert_eq!(r["oauth"]["token_type"], "Bearer");
    assert_eq!(r["oauth"]["got_token"], true);

    // The exchanges, in order: our 401, our RFC 9728 document (the URL in WWW-Authenticate),
    // the authorization server's RFC 8414 metadata, its token endpoint, then the MCP POST again.
    let expected_start = [
        ("POST".to_owned(), server.url.clone(), 401),
        ("GET".to_owned(), server.resource_metadata_url(), 200),
        (
            "GET".to_owned(),
            format!(
                "{}/.well-known/oauth-authorization-server",
                auth_server.issuer
            ),
            200,
        ),
        (
            "POST".to_owned(),
            format!("{}/token", auth_server.issuer),
            200,
        ),
        ("POST".to_owned(), server.url.clone(), 200),
    ];
    assert_starts_then_served(&run, &expected_start, &server.url);

    // What the authorization server was asked: one client_credentials grant, the client
    // authenticated with HTTP Basic, for our resource (RFC 8707).
    let calls = auth_server.token_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = &calls[0];
    assert_eq!(call.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(
        call.client_id.as_deref(),
        Some(auth_server.client_id.as_str())
    );
    assert_eq!(call.client_auth, "basic");
    assert_eq!(call.resource.as_deref(), Some(server.url.as_str()));
    assert_eq!(call.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_client_credentials_against_the_server_alone() {
    // No authorization server: the stack's own token endpoint (TOKEN_ENDPOINT) exchanges the
    // API key for a token. The SDK is configured with only a client id (the key's name) and
    // secret (the key).
    let server =
        TestServer::start_configured(ServerOptions::default(), |b| b.token_endpoint(true)).await;
    let origin = format!("http://{}", server.addr);

    let run = run_typescript(&[
        "--url",
        &server.url,
        "--oauth-client-id",
        API_KEY_NAME,
        "--oauth-client-secret",
        &server.api_key,
        "--oauth-issuer",
        &origin,
    ])
    .await;
    assert_served(&run, API_KEY_NAME, "jwt");
    let r = &run.report;
    assert_eq!(
        r["oauth"]["resource"],
        server.url.as_str(),
        "{}",
        run.describe()
    );
    assert_eq!(
        r["oauth"]["authorization_server"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some(origin.as_str()),
        "{}",
        run.describe()
    );
    assert_eq!(r["oauth"]["token_type"], "Bearer");
    assert_eq!(r["oauth"]["got_token"], true);

    // Our 401, our RFC 9728 document, our RFC 8414 document, our token endpoint, the MCP POST.
    let expected_start = [
        ("POST".to_owned(), server.url.clone(), 401),
        ("GET".to_owned(), server.resource_metadata_url(), 200),
        (
            "GET".to_owned(),
            format!("{origin}/.well-known/oauth-authorization-server"),
            200,
        ),
        ("POST".to_owned(), format!("{origin}/oauth/token"), 200),
        ("POST".to_owned(), server.url.clone(), 200),
    ];
    assert_starts_then_served(&run, &expected_start, &server.url);
}
