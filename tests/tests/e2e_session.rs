#![cfg(feature = "e2e")]
//! Legacy-session binding over real sockets: a session created by one principal is a 404 for
//! every other principal, whatever the method; its owner keeps using it and can end it. Our 404
//! for a foreign or unknown session id is byte for byte bare rmcp's answer for an unknown one.
//! The per-principal session cap, and the protected-resource metadata with a hostile `Host`:
//! with a resource URL configured, derived from an allowlisted `Host` when there is none (with
//! `Vary: Host`), and absent (404) when any `Host` is accepted and there is none.
//!
//! Raw HTTP/1.1 requests (hyper-util's client), so every header and body is checked as sent.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tests::e2e_support::{API_KEY_NAME, ServerOptions, TestServer, start_bare};
use tests::raw_http::{self, Answer, HttpClient};

async fn send(
    http: &HttpClient,
    server: &TestServer,
    method: Method,
    token: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(&server.url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::default(),
    };
    raw_http::send(http, req.body(body).expect("request")).await
}

fn assert_security_headers(a: &Answer) {
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principal_presenting_a_session_id_gets_404() {
    let server = TestServer::start().await;
    let http = raw_http::client();
    let alice = server.api_key.clone();
    let bob = server.jwt("bob");

    // Alice (the API key) opens a 2025-11-25 session.
    let init = send(
        &http,
        &server,
        Method::POST,
        &alice,
        None,
        Some(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e-raw", "version": "0"}}}),
        ),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK, "{:?}", init.body);
    let session = init.headers["mcp-session-id"]
        .to_str()
        .expect("ASCII session id")
        .to_owned();
    assert_eq!(init.message()["result"]["protocolVersion"], "2025-11-25");
    let note = send(
        &http,
        &server,
        Method::POST,
        &alice,
        Some(&session),
        Some(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
    )
    .await;
    assert_eq!(note.status, StatusCode::ACCEPTED);

    let whoami = json!({"jsonrpc": "2.0", "id": "w-1", "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let own = send(
        &http,
        &server,
        Method::POST,
        &alice,
        Some(&session),
        Some(whoami.clone()),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    let text = own.message()["result"]["content"][0]["text"]
        .as_str()
        .expect("whoami text")
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("whoami JSON")["principal"]["id"],
        API_KEY_NAME
    );

    // Bob (a valid JWT) presents Alice's session id: rmcp's own unknown-session 404.
    let stolen = send(
        &http,
        &server,
        Method::POST,
        &bob,
        Some(&session),
        Some(
            json!({"jsonrpc": "2.0", "id": "steal-1", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}}}),
        ),
    )
    .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    assert!(stolen.headers.get("content-type").is_none());
    assert!(stolen.headers.get("mcp-session-id").is_none());
    assert!(stolen.headers.get("www-authenticate").is_none());
    assert_security_headers(&stolen);
    assert_eq!(stolen.body, RMCP_UNKNOWN_SESSION);

    // Nor can Bob open Alice's SSE stream or end her session.
    for method in [Method::GET, Method::DELETE] {
        let refused = send(&http, &server, method.clone(), &bob, Some(&session), None).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{method}");
        assert!(refused.headers.get("content-type").is_none());
        assert_security_headers(&refused);
        assert_eq!(refused.body, RMCP_UNKNOWN_SESSION, "{method}");
    }

    // Alice's session is untouched.
    let again = send(
        &http,
        &server,
        Method::POST,
        &alice,
        Some(&session),
        Some(whoami.clone()),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.message()["id"], "w-1");
    assert_eq!(
        server.security().session_binding().len(),
        1,
        "only Alice's session is bound"
    );

    // Alice ends it; it is gone for her too (rmcp's own 404), and forgotten by the binding.
    let ended = send(&http, &server, Method::DELETE, &alice, Some(&session), None).await;
    assert!(ended.status.is_success(), "{}", ended.status);
    assert!(server.security().session_binding().is_empty());
    let gone = send(
        &http,
        &server,
        Method::POST,
        &alice,
        Some(&session),
        Some(whoami),
    )
    .await;
    // The binding is gone, so the id is refused before rmcp: with rmcp's own answer.
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.headers.get("content-type").is_none());
    assert_security_headers(&gone);
    assert_eq!(gone.body, RMCP_UNKNOWN_SESSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_principal_on_another_connection_keeps_its_session() {
    let server = TestServer::start().await;
    let alice = server.jwt("alice");
    let first = raw_http::client();
    let init = send(
        &first,
        &server,
        Method::POST,
        &alice,
        None,
        Some(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e-raw", "version": "0"}}}),
        ),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK);
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_owned();
    // A fresh token for the same subject, on a fresh connection pool: the same principal.
    let second = raw_http::client();
    let token = server.jwt("alice");
    let note = send(
        &second,
        &server,
        Method::POST,
        &token,
        Some(&session),
        Some(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
    )
    .await;
    assert_eq!(note.status, StatusCode::ACCEPTED);
    // The API key is another principal, even with every scope.
    let key = server.api_key.clone();
    let other = send(
        &second,
        &server,
        Method::POST,
        &key,
        Some(&session),
        Some(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.headers.get("content-type").is_none());
    assert_eq!(other.body, RMCP_UNKNOWN_SESSION);
}

const RMCP_UNKNOWN_SESSION: &str = "Not Found: Session not found";

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "e2e-raw", "version": "0"}}})
}

/// A raw request to `url` (no credential unless given), answered in full.
async fn raw(
    http: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Full::default, |v| Full::new(Bytes::from(v.to_string())));
    raw_http::send(http, req.body(body).expect("request")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_unknown_ids_get_exactly_bare_rmcps_unknown_session_answer() {
    let http = raw_http::client();
    let (bare_addr, bare) = start_bare().await;
    let bare_url = format!("http://{bare_addr}/mcp");
    let server = TestServer::start().await;
    let alice = server.api_key.clone();
    let bob = server.jwt("bob");
    let init = send(
        &http,
        &server,
        Method::POST,
        &alice,
        None,
        Some(initialize_body()),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK);
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_owned();

    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
        ("mcp-session-id", "0b7c4c1e-unknown-session"),
    ];
    for method in [Method::POST, Method::GET] {
        let body = (method == Method::POST).then(|| call.clone());
        // rmcp alone, an id it never issued.
        let reference = raw(&http, method.clone(), &bare_url, &headers, body.clone()).await;
        assert_eq!(reference.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(reference.body, RMCP_UNKNOWN_SESSION, "{method}");
        // Behind the stack: Bob with Alice's id, Alice with an id never issued.
        for (token, id) in [
            (&bob, session.as_str()),
            (&alice, "0b7c4c1e-unknown-session"),
        ] {
            let ours = send(
                &http,
                &server,
                method.clone(),
                token,
                Some(id),
                body.clone(),
            )
            .await;
            assert_eq!(ours.status, reference.status, "{method} {id}");
            assert_eq!(
                ours.headers.get("content-type"),
                reference.headers.get("content-type"),
                "{method} {id}"
            );
            assert_eq!(ours.body, reference.body, "{method} {id}");
        }
    }
    bare.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_principal_cap_refuses_initialize_before_rmcp() {
    let server =
        TestServer::start_configured(ServerOptions::default(), |b| b.session_max_per_principal(2))
            .await;
    let http = raw_http::client();
    let alice = server.api_key.clone();
    let bob = server.jwt("bob");
    for _ in 0..2 {
        let init = send(
            &http,
            &server,
            Method::POST,
            &alice,
            None,
            Some(initialize_body()),
        )
        .await;
        assert_eq!(init.status, StatusCode::OK);
    }
    assert_eq!(server.server_sessions().await, 2);
    let refused = send(
        &http,
        &server,
        Method::POST,
        &alice,
        None,
        Some(initialize_body()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["content-type"], "application/json");
    assert!(refused.headers.get("mcp-session-id").is_none());
    assert_security_headers(&refused);
    assert_eq!(
        refused.json(),
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000,
            "message": "Too many open sessions for this credential; end one (DELETE) or let one expire",
            "data": {"status": 503, "code": "too_many_sessions", "max_sessions": 2}}})
    );
    assert_eq!(
        server.server_sessions().await,
        2,
        "rmcp opened no orphan session"
    );
    // Bob is unaffected.
    let init = send(
        &http,
        &server,
        Method::POST,
        &bob,
        None,
        Some(initialize_body()),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(server.server_sessions().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_metadata_ignores_a_hostile_host() {
    let server = TestServer::start().await;
    let http = raw_http::client();
    let a = raw(
        &http,
        Method::GET,
        &server.resource_metadata_url(),
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "public, max-age=3600");
    assert!(
        !a.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("host")),
        "a configured resource does not depend on Host"
    );
    assert_eq!(a.json()["resource"], server.url.as_str());
    assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
    // The MCP endpoint itself refuses that Host (the Origin guard) before any challenge.
    let a = raw(
        &http,
        Method::POST,
        &server.url,
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
}

// ---------------------------------------------------------------------------------------------
// No resource URL or audience configured: the metadata's resource comes from an allowlisted
// Host, or (any Host accepted) there is no metadata at all.
// ---------------------------------------------------------------------------------------------

/// The stack with an API key only (no `MCP_RESOURCE_URL`, no JWT audience) in front of a
/// router answering POST /mcp, on a fresh port; `any_host` is `MCP_ALLOWED_HOSTS=*`.
async fn start_without_resource(
    any_host: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::serve::ListenerExt;
    use mcp_security::SecurityConfig;
    use mcp_security::core::config::{Environment, Secret};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let key = mcp_security::auth::api_key::generate_key("mcp-sk-").expect("key");
    let mut builder = SecurityConfig::builder()
        .environment(Environment::Development)
        .bind_addr(addr)
        .api_key(Secret::new(&key));
    if any_host {
        builder = builder.any_host();
    }
    let stack = builder.build().expect("config").layer().expect("the stack");
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(|| async { "{}" }))
        .layer(stack);
    let task = tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    (addr, task)
}

fn varies_by_host(a: &Answer) -> bool {
    a.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("host")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resource_url_the_metadata_follows_only_an_allowlisted_host() {
    let http = raw_http::client();
    let (addr, task) = start_without_resource(false).await;
    let meta = format!("http://{addr}/.well-known/oauth-protected-resource/mcp");
    let mcp = format!("http://{addr}/mcp");

    // An allowlisted Host (the loopback defaults for a loopback bind): 200, the resource
    // derived from it, and `Vary: Host` because the answer depends on it.
    for host in [
        format!("127.0.0.1:{}", addr.port()),
        format!("localhost:{}", addr.port()),
    ] {
        let a = raw(&http, Method::GET, &meta, &[("host", &host)], None).await;
        assert_eq!(a.status, StatusCode::OK, "{host}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["cache-control"], "public, max-age=3600");
        assert!(varies_by_host(&a), "{host}: {:?}", a.headers);
        assert_eq!(a.json()["resource"], format!("http://{host}/mcp"), "{host}");
        // The 401 challenge points at the same derived metadata URL.
        let a = raw(
            &http,
            Method::POST,
            &mcp,
            &[("host", &host), ("content-type", "application/json")],
            Some(initialize_body()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{host}");
        assert_eq!(
            a.header("www-authenticate"),
            format!(
                "Bearer resource_metadata=\"http://{host}/.well-known/oauth-protected-resource/mcp\""
            )
        );
        assert!(varies_by_host(&a), "{host}: {:?}", a.headers);
    }

    // A hostile Host: the metadata is a 404 that never names it (still `Vary: Host`, and not
    // cacheable), and the MCP endpoint refuses it (the Origin guard's Host check) with 403.
    let a = raw(&http, Method::GET, &meta, &[("host", "evil.example")], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "no-store");
    assert!(varies_by_host(&a), "{:?}", a.headers);
    assert_eq!(a.json()["error"], "not_found");
    assert!(
        !String::from_utf8_lossy(&a.body).contains("evil"),
        "{:?}",
        a.body
    );
    assert!(
        !a.headers
            .values()
            .any(|v| v.to_str().unwrap_or("").contains("evil")),
        "{:?}",
        a.headers
    );
    let a = raw(
        &http,
        Method::POST,
        &mcp,
        &[
            ("host", "evil.example"),
            ("content-type", "application/json"),
        ],
        Some(initialize_body()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["content-type"], "application/json");
    assert!(a.headers.get("www-authenticate").is_none());
    assert_eq!(a.json()["error"]["data"]["code"], "host_not_allowed");
    assert!(
        !String::from_utf8_lossy(&a.body).contains("evil"),
        "{:?}",
        a.body
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_host_and_no_resource_url_means_no_metadata() {
    let http = raw_http::client();
    let (addr, task) = start_without_resource(true).await;
    let meta = format!("http://{addr}/.well-known/oauth-protected-resource/mcp");
    let mcp = format!("http://{addr}/mcp");
    let own = format!("127.0.0.1:{}", addr.port());
    for host in [own.as_str(), "evil.example"] {
        // Nothing to derive the resource from safely: 404, whatever the Host.
        let a = raw(&http, Method::GET, &meta, &[("host", host)], None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{host}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["cache-control"], "no-store");
        assert_eq!(a.json()["error"], "not_found");
        assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
        // The challenge names no metadata URL rather than one built from the Host.
        let a = raw(
            &http,
            Method::POST,
            &mcp,
            &[("host", host), ("content-type", "application/json")],
            Some(initialize_body()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{host}");
        assert_eq!(a.header("www-authenticate"), "Bearer");
        assert!(!String::from_utf8_lossy(&a.body).contains("evil"));
    }
    task.abort();
}
