#![cfg(feature = "e2e")]
//! Tokens over real sockets, through the whole stack.
//!
//! The built-in token endpoint (`TOKEN_ENDPOINT`): the requests a client would send with curl
//! (form with `client_secret_post`, HTTP Basic with `client_secret_basic`), their RFC 6749
//! answers and refusals, the token calling the MCP server, the metadata documents, the
//! compatibility login, and brute force banned like bad bearer credentials. The MCP SDKs'
//! client-credentials flows against the same server live in `e2e_typescript.rs` and
//! `e2e_python.rs`.
//!
//! Tokens shaped like real identity providers' (Entra ID, Auth0, Okta, Keycloak): their scopes
//! found where each issuer puts them (`JWT_SCOPE_CLAIMS`), checked by the per-tool policy on
//! every request, the verified-token cache included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use mcp_security::auth::JwtVerifier;
use mcp_security::auth::api_key::{KeyHasher, generate_key, hash_line};
use mcp_security::core::Scopes;
use mcp_security::core::config::Secret;
use serde_json::{Value, json};
use tests::e2e_support::{API_KEY_NAME, ServerOptions, TestServer, random_jwt_secret};
use tests::raw_http::{Answer, HttpClient, client as http, send};

/// `POST /oauth/token` with a form body and, optionally, an `Authorization` header.
async fn token(http: &HttpClient, server: &TestServer, form: &str, auth: Option<&str>) -> Answer {
    let mut req = Request::post(format!("http://{}/oauth/token", server.addr))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    send(
        http,
        req.body(Full::new(Bytes::from(form.to_owned()))).unwrap(),
    )
    .await
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A `tools/call` of `whoami` (2026-07-28, stateless) with a bearer token.
async fn whoami(http: &HttpClient, server: &TestServer, bearer: &str) -> Answer {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {},
                   "_meta": {
                       "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                       "io.modelcontextprotocol/clientCapabilities": {},
                       "io.modelcontextprotocol/clientInfo": {"name": "token-e2e", "version": "1"}}}
    });
    let req = Request::post(&server.url)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(http, req).await
}

/// The principal id a `whoami` answer names (JSON or SSE).
fn principal_of(answer: &Answer) -> String {
    let message = answer.message();
    let inner = message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool result in {message}"));
    let inner: Value = serde_json::from_str(inner).expect("whoami JSON");
    inner["principal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Keys beyond the harness's every-scope key: `reader` (notes:read) and a disabled `retired`
/// key from a key file.
struct Keys {
    reader: String,
    retired: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keys() -> Keys {
    let reader = generate_key("mcp-sk-").unwrap();
    let retired = generate_key("mcp-sk-").unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-token-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.toml");
    std::fs::write(
        &file,
        format!(
            "[[keys]]\nname = \"retired\"\nhash = \"{}\"\nscopes = [\"*\"]\nenabled = false\n",
            hash_line(&KeyHasher::Sha256, &retired)
        ),
    )
    .unwrap();
    Keys {
        reader,
        retired,
        _dir: TempDir(dir),
    }
}

async fn start(keys: &Keys, login: bool) -> TestServer {
    let reader = keys.reader.clone();
    let file = keys._dir.0.join("keys.toml");
    TestServer::start_configured(ServerOptions::default(), move |b| {
        b.named_api_key("reader", Secret::new(&reader), Scopes::new(["notes:read"]))
            .api_keys_file(file)
            .token_endpoint(true)
            .token_ttl(Duration::from_secs(300))
            .token_api_key_login(login)
    })
    .await
}

fn assert_oauth_error(a: &Answer, status: StatusCode, error: &str) {
    assert_eq!(a.status, status, "{:?}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), "application/json");
    assert_eq!(a.header("cache-control"), "no-store");
    assert_eq!(a.header("pragma"), "no-cache");
    let body = a.json();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_buys_a_short_lived_token_that_calls_the_tools() {
    let keys = keys();
    let server = start(&keys, false).await;
    let http = http();

    // client_secret_post, as `curl -d grant_type=client_credentials -d client_id=… -d client_secret=…`.
    let form = format!(
        "grant_type=client_credentials&client_id={API_KEY_NAME}&client_secret={}",
        server.api_key
    );
    let a = token(&http, &server, &form, None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.header("cache-control"), "no-store");
    let body = a.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "*");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert!(!access.contains(&server.api_key));

    let called = whoami(&http, &server, &access).await;
    assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
    assert_eq!(principal_of(&called), API_KEY_NAME);

    // client_secret_basic with a narrower scope, as `curl -u reader:KEY`.
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials&scope=notes%3Aread",
        Some(&basic("reader", &keys.reader)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json()["scope"], "notes:read");
    let access = a.json()["access_token"].as_str().unwrap().to_owned();
    let called = whoami(&http, &server, &access).await;
    assert_eq!(called.status, StatusCode::OK);
    assert_eq!(principal_of(&called), "reader");

    // The resource parameter (RFC 8707) naming this server is accepted.
    let form = format!(
        "grant_type=client_credentials&resource={}",
        server.url.replace(':', "%3A").replace('/', "%2F")
    );
    let a = token(&http, &server, &form, Some(&basic("reader", &keys.reader))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_rfc_6749_bodies() {
    let keys = keys();
    let server = start(&keys, false).await;
    let http = http();

    // A wrong secret: invalid_client, 401, a Basic challenge, and the secret never echoed.
    let wrong = "mcp-sk-not-the-right-key-0123456789abcdefghijkl";
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials",
        Some(&basic("reader", wrong)),
    )
    .await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(a.header("www-authenticate").starts_with("Basic realm="));
    assert!(!String::from_utf8_lossy(&a.body).contains(wrong));

    // Another key's name with a valid secret is the same refusal.
    let form = format!(
        "grant_type=client_credentials&client_id=reader&client_secret={}",
        server.api_key
    );
    let a = token(&http, &server, &form, None).await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");

    // A disabled key mints nothing.
    let form = format!(
        "grant_type=client_credentials&client_id=retired&client_secret={}",
        keys.retired
    );
    let a = token(&http, &server, &form, None).await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");

    // Scope escalation: a read-only key asking for more.
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials&scope=notes%3Aread%20notes%3Adelete",
        Some(&basic("reader", &keys.reader)),
    )
    .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_scope");

    // A resource other than this server.
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials&resource=https%3A%2F%2Fother.example.com%2Fmcp",
        Some(&basic("reader", &keys.reader)),
    )
    .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "invalid_target");

    // Another grant.
    let a = token(
        &http,
        &server,
        "grant_type=password&username=a&password=b",
        Some(&basic("reader", &keys.reader)),
    )
    .await;
    assert_oauth_error(&a, StatusCode::BAD_REQUEST, "unsupported_grant_type");

    // No client authentication at all.
    let a = token(&http, &server, "grant_type=client_credentials", None).await;
    assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");

    // The compatibility login is off by default: the path belongs to the server (and needs auth).
    let req = Request::post(format!("http://{}/auth/api-key-login", server.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"api_key": server.api_key}).to_string(),
        )))
        .unwrap();
    let a = send(&http, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.header("www-authenticate").starts_with("Bearer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents_name_the_endpoint() {
    let keys = keys();
    let server = start(&keys, true).await;
    let http = http();
    let origin = format!("http://{}", server.addr);

    let get = |url: String| Request::get(url).body(Full::default()).unwrap();
    let a = send(&http, get(server.resource_metadata_url())).await;
    assert_eq!(a.status, StatusCode::OK);
    let prm = a.json();
    assert_eq!(prm["resource"], server.url.as_str());
    assert_eq!(prm["authorization_servers"], json!([origin]));

    let a = send(
        &http,
        get(format!("{origin}/.well-known/oauth-authorization-server")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let asm = a.json();
    assert_eq!(asm["issuer"], origin.as_str());
    assert_eq!(asm["token_endpoint"], format!("{origin}/oauth/token"));
    assert_eq!(asm["grant_types_supported"], json!(["client_credentials"]));
    let methods = asm["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("client_secret_basic") && methods.contains("client_secret_post"));

    // HS256 tokens publish no key.
    let a = send(&http, get(format!("{origin}/.well-known/jwks.json"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // The compatibility login, on here.
    let req = Request::post(format!("{origin}/auth/api-key-login"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"api_key": keys.reader}).to_string(),
        )))
        .unwrap();
    let a = send(&http, req).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let access = a.json()["access_token"].as_str().unwrap().to_owned();
    let called = whoami(&http, &server, &access).await;
    assert_eq!(principal_of(&called), "reader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_on_the_endpoint_is_banned_like_bad_bearer_credentials() {
    let keys = keys();
    let server = start(&keys, false).await;
    let http = http();

    // More wrong secrets than the auth-failure detector allows in a minute (10).
    for i in 0..11 {
        let a = token(
            &http,
            &server,
            "grant_type=client_credentials",
            Some(&basic(
                "reader",
                &format!("mcp-sk-guess-{i:02}-0123456789abcdefghijklm"),
            )),
        )
        .await;
        assert_oauth_error(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // The address is banned now: another wrong secret gets the ban's 429 …
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials",
        Some(&basic("reader", "mcp-sk-guess-99-0123456789abcdefghijklm")),
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", a.body);
    let retry: u64 = a
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!(retry > 0);
    assert!(
        server
            .security()
            .ban_list()
            .banned_until("127.0.0.1".parse().unwrap(), std::time::SystemTime::now())
            .is_some()
    );
    // … and no credential too, while the right key is still served (ban scope `failed`, the
    // default: one client misbehaving behind a shared address does not lock out the others).
    let a = token(&http, &server, "grant_type=client_credentials", None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", a.body);
    let a = token(
        &http,
        &server,
        "grant_type=client_credentials",
        Some(&basic("reader", &keys.reader)),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
}

/// An HS256 token with these claims (plus `aud`, `iat`, `exp`), signed with `secret`.
fn idp_token(secret: &str, audience: &str, claims: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = claims;
    claims["aud"] = json!(audience);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 300);
    JwtVerifier::builder()
        .secret(Secret::new(secret))
        .build()
        .unwrap()
        .sign_claims(&claims)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_claim_shapes_meet_the_tool_policy() {
    let secret = random_jwt_secret();
    let server = TestServer::start_configured(
        ServerOptions {
            jwt_secret: Some(secret.clone()),
            ..ServerOptions::default()
        },
        |b| {
            b.require_mcp("tools/call:whoami", ["notes:read"])
                .jwt_scope_claims([
                    "scope",
                    "scp",
                    "permissions",
                    "roles",
                    "/realm_access/roles",
                    "https://example.com/roles",
                ])
        },
    )
    .await;
    let http = http();
    let url = server.url.clone();
    let shapes = [
        // Entra ID v2: delegated scopes in `scp` (a string), app roles in `roles`.
        (
            "entra-scp",
            json!({"sub": "entra-scp", "scp": "notes:read profile"}),
        ),
        (
            "entra-role",
            json!({"sub": "entra-role", "roles": ["notes:read"]}),
        ),
        // Auth0: RBAC permissions, and roles in a namespaced claim.
        (
            "auth0-perm",
            json!({"sub": "auth0-perm", "scope": "openid", "permissions": ["notes:read"]}),
        ),
        (
            "auth0-ns",
            json!({"sub": "auth0-ns", "https://example.com/roles": ["notes:read"]}),
        ),
        // Okta: `scp` as an array.
        (
            "okta",
            json!({"sub": "okta", "scp": ["openid", "notes:read"]}),
        ),
        // Keycloak: realm roles.
        (
            "keycloak",
            json!({"sub": "keycloak", "scope": "openid", "realm_access": {"roles": ["notes:read"]}}),
        ),
    ];
    for (sub, claims) in shapes {
        let token = idp_token(&secret, &url, claims);
        // Twice: the second answer comes from the verified-token cache and is checked the same.
        for _ in 0..2 {
            let a = whoami(&http, &server, &token).await;
            assert_eq!(a.status, StatusCode::OK, "{sub}: {:?}", a.body);
            assert_eq!(principal_of(&a), sub);
        }
    }
    // A token whose scopes sit where nobody looks, or that lacks the scope, is refused: 403
    // insufficient_scope, naming the scope, cached or not.
    for claims in [
        json!({"sub": "elsewhere", "groups": ["notes:read"]}),
        json!({"sub": "reader-less", "scp": "profile"}),
    ] {
        let token = idp_token(&secret, &url, claims);
        for _ in 0..2 {
            let a = whoami(&http, &server, &token).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{:?}", a.body);
            let challenge = a.header("www-authenticate");
            assert!(
                challenge.contains(r#"error="insufficient_scope""#)
                    && challenge.contains(r#"scope="notes:read""#),
                "{challenge}"
            );
        }
    }
}
