//! AuthLayer end to end over its public API: every answer's status, headers and body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_auth::api_key::{ApiKeyStore, KeyHasher, hash_line};
use mcp_auth::jwt::{JwtVerifier, TokenRequest};
use mcp_auth::layer::AuthLayer;
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::clock::ManualClock;
use mcp_security_core::config::{Environment, Secret};
use mcp_security_core::inspect::McpInspectLayer;
use mcp_security_core::{AuthFailure, AuthOutcome, Principal, PrincipalKind, Scopes};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

const READER: &str = "mcp-sk-readerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const WRITER: &str = "mcp-sk-readerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB";
const ADMIN: &str = "mcp-sk-adminAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const SECRET_OLD: &str = "old-secret-0123456789abcdef0123456789abcdef";
const SECRET_NEW: &str = "new-secret-0123456789abcdef0123456789abcdef";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn policy() -> AuthPolicy {
    AuthPolicy::builder()
        .require_mcp("tools/call:read_note", ["notes:read"])
        .require_mcp("tools/call:write_note", ["notes:write"])
        .require_mcp("tools/call:delete_note", ["notes:delete", "audit:write"])
        .deny_prefix("/internal/")
        .build()
        .unwrap()
}

fn keys() -> ApiKeyStore {
    ApiKeyStore::builder()
        .key("reader", READER, Scopes::new(["notes:read"]))
        .key("writer", WRITER, Scopes::new(["notes:read", "notes:write"]))
        .key("admin", ADMIN, Scopes::new(["notes"]))
        .build()
        .unwrap()
}

fn verifier(secrets: &[&str]) -> JwtVerifier {
    let mut b = JwtVerifier::builder().audience(RESOURCE);
    for s in secrets {
        b = b.secret(Secret::new(*s));
    }
    b.build().unwrap()
}

fn layer_with(
    clock: Arc<ManualClock>,
    configure: impl FnOnce(mcp_auth::layer::AuthLayerBuilder) -> mcp_auth::layer::AuthLayerBuilder,
) -> AuthLayer {
    configure(
        AuthLayer::builder()
            .api_keys(keys())
            .jwt(verifier(&[SECRET_NEW, SECRET_OLD]))
            .policy(policy())
            .resource(RESOURCE)
            .clock(clock),
    )
    .build()
    .unwrap()
}

fn layer() -> AuthLayer {
    layer_with(Arc::new(ManualClock::new(now())), |b| b)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    outcome: Option<AuthOutcome>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn challenge(&self) -> &str {
        self.headers["www-authenticate"].to_str().unwrap()
    }

    fn failure(&self) -> AuthFailure {
        match &self.outcome {
            Some(AuthOutcome::Rejected { failure, .. }) => *failure,
            other => panic!("expected a rejection outcome, got {other:?}"),
        }
    }
}

/// Send through McpInspectLayer + AuthLayer to an inner service that reports what it saw.
async fn send(layer: AuthLayer, req: Request<Full<Bytes>>) -> Answer {
    let svc = ServiceBuilder::new()
        .layer(McpInspectLayer::new())
        .layer(layer)
        .service_fn(|req: Request<_>| async move {
            let seen = json!({
                "principal": req.extensions().get::<Principal>().map(|p| p.id().to_owned()),
                "kind": req.extensions().get::<Principal>().map(|p| p.kind().as_str()),
                "authorization": req.headers().get("authorization").is_some(),
                "x_api_key": req.headers().get("x-api-key").is_some(),
                "uri": req.uri().to_string(),
            });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen.to_string()))))
        });
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        outcome: parts.extensions.get::<AuthOutcome>().cloned(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn tool_call(tool: &str) -> Request<Full<Bytes>> {
    let body =
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":tool,"arguments":{}}});
    Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn with_bearer(mut req: Request<Full<Bytes>>, token: &str) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

fn jwt(claims: Value) -> String {
    verifier(&[SECRET_NEW]).sign_claims(&claims).unwrap()
}

fn valid_claims() -> Value {
    let t = 1_800_000_000u64;
    json!({"sub":"alice","aud":RESOURCE,"iat":t,"exp":t + 600,"scope":"notes:read notes:write"})
}

#[tokio::test]
async fn missing_credential_is_401_without_error_param() {
    let a = send(layer(), tool_call("echo")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(
        a.challenge(),
        format!("Bearer resource_metadata=\"{METADATA}\"")
    );
    assert_eq!(
        a.json(),
        json!({"error":"invalid_token","error_description":"Authentication required"})
    );
    assert_eq!(a.failure(), AuthFailure::MissingCredential);
}

#[tokio::test]
async fn missing_credential_names_the_scopes_the_operation_needs() {
    let a = send(layer(), tool_call("delete_note")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenge(),
        format!("Bearer resource_metadata=\"{METADATA}\", scope=\"notes:delete audit:write\"")
    );
}

#[tokio::test]
async fn api_key_with_lowercase_bearer_reaches_the_service_without_the_header() {
    let mut req = tool_call("read_note");
    req.headers_mut()
        .insert("authorization", format!("bearer {READER}").parse().unwrap());
    let a = send(layer(), req).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        json!({"principal":"reader","kind":"api_key","authorization":false,"x_api_key":false,"uri":"/mcp"})
    );
    match a.outcome {
        Some(AuthOutcome::Authenticated { principal }) => assert_eq!(principal.id(), "reader"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn keys_sharing_a_prefix_are_told_apart() {
    let a = send(layer(), with_bearer(tool_call("write_note"), READER)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(layer(), with_bearer(tool_call("write_note"), WRITER)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], "writer");
}

#[tokio::test]
async fn unknown_key_is_401_invalid_token_and_the_reason_stays_internal() {
    let a = send(layer(), with_bearer(tool_call("echo"), "mcp-sk-nope")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(
        a.challenge(),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"The credential is invalid, expired or revoked\", resource_metadata=\"{METADATA}\""
        )
    );
    assert_eq!(
        a.json(),
        json!({"error":"invalid_token","error_description":"The credential is invalid, expired or revoked"})
    );
    assert_eq!(a.failure(), AuthFailure::UnknownKey);
    assert!(!String::from_utf8_lossy(&a.body).contains("unknown"));
    match a.outcome {
        Some(AuthOutcome::Rejected {
            fingerprint: Some(f),
            ..
        }) => {
            assert_eq!(f.len(), 16);
            assert!(!f.contains("nope"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn insufficient_scope_is_403_listing_every_required_scope() {
    let a = send(layer(), with_bearer(tool_call("delete_note"), ADMIN)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(
        a.challenge(),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"The credential lacks a scope this request needs\", resource_metadata=\"{METADATA}\", scope=\"notes:delete audit:write\""
        )
    );
    assert_eq!(
        a.json(),
        json!({"error":"insufficient_scope","error_description":"The credential lacks a scope this request needs","required_scopes":["notes:delete","audit:write"]})
    );
    match a.outcome {
        Some(AuthOutcome::Rejected {
            failure: AuthFailure::InsufficientScope,
            principal: Some(p),
            ..
        }) => {
            assert_eq!(p.id(), "admin")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn scope_hierarchy_parent_scope_covers_children() {
    // `admin` holds `notes`, which covers notes:read and notes:write.
    for tool in ["read_note", "write_note"] {
        let a = send(layer(), with_bearer(tool_call(tool), ADMIN)).await;
        assert_eq!(a.status, StatusCode::OK, "{tool}");
    }
}

#[tokio::test]
async fn tools_list_needs_only_a_valid_credential() {
    let req = Request::post("/mcp")
        .body(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )))
        .unwrap();
    let a = send(layer(), with_bearer(req, READER)).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn exempt_path_needs_no_credential() {
    let a = send(layer(), get("/health")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], Value::Null);
    assert_eq!(a.outcome, Some(AuthOutcome::Exempt));
    // Not a prefix match.
    let a = send(layer(), get("/health/x")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn internal_paths_are_403_even_with_a_valid_key() {
    for path in ["/internal/metrics", "/%69nternal/metrics", "//internal/x"] {
        let a = send(layer(), with_bearer(get(path), ADMIN)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert!(a.headers.get("www-authenticate").is_none());
        assert_eq!(a.json(), json!({"error":"forbidden","message":"Forbidden"}));
        assert_eq!(a.failure(), AuthFailure::DeniedPath);
    }
}

#[tokio::test]
async fn expired_key_is_refused() {
    let dir = tempdir("expired");
    let file = dir.join("keys.toml");
    std::fs::write(
        &file,
        format!(
            "[[keys]]\nname = \"temp\"\nhash = \"{}\"\nscopes = [\"notes\"]\nexpires_at = \"2027-01-15T08:00:00Z\"\n",
            hash_line(&KeyHasher::Sha256, READER)
        ),
    )
    .unwrap();
    let store = ApiKeyStore::builder().file(&file).build().unwrap();
    let clock = Arc::new(ManualClock::new(
        humantime::parse_rfc3339("2027-01-15T07:59:59Z").unwrap(),
    ));
    let layer = AuthLayer::builder()
        .api_keys(store)
        .resource(RESOURCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = send(layer.clone(), with_bearer(get("/api"), READER)).await;
    assert_eq!(a.status, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    let a = send(layer, with_bearer(get("/api"), READER)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure(), AuthFailure::ExpiredKey);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn revoked_key_via_file_reload_is_refused_on_the_next_request() {
    let dir = tempdir("revoke");
    let file = dir.join("keys.toml");
    let entry = |name: &str, key: &str, enabled: bool| {
        format!(
            "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [\"notes\"]\nenabled = {enabled}\n",
            hash_line(&KeyHasher::Sha256, key)
        )
    };
    std::fs::write(
        &file,
        entry("old", READER, true) + &entry("new", WRITER, true),
    )
    .unwrap();
    let store = ApiKeyStore::builder().file(&file).build().unwrap();
    let layer = AuthLayer::builder()
        .api_keys(store.clone())
        .resource(RESOURCE)
        .build()
        .unwrap();
    assert_eq!(
        send(layer.clone(), with_bearer(get("/api"), READER))
            .await
            .status,
        StatusCode::OK
    );
    // Rotate: the old key is disabled.
    std::fs::write(
        &file,
        entry("old", READER, false) + &entry("new", WRITER, true),
    )
    .unwrap();
    assert!(store.reload().unwrap());
    let a = send(layer.clone(), with_bearer(get("/api"), READER)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure(), AuthFailure::DisabledKey);
    assert_eq!(
        send(layer.clone(), with_bearer(get("/api"), WRITER))
            .await
            .status,
        StatusCode::OK
    );
    // Remove it altogether.
    std::fs::write(&file, entry("new", WRITER, true)).unwrap();
    assert!(store.reload().unwrap());
    let a = send(layer, with_bearer(get("/api"), READER)).await;
    assert_eq!(a.failure(), AuthFailure::UnknownKey);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn query_token_is_refused_when_url_auth_is_off() {
    let a = send(layer(), get(&format!("/api?token={READER}"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure(), AuthFailure::MissingCredential);
}

#[tokio::test]
async fn query_token_is_accepted_and_stripped_when_url_auth_is_on() {
    let layer = layer_with(Arc::new(ManualClock::new(now())), |b| b.url_auth(true));
    let a = send(
        layer.clone(),
        get(&format!("/api/x?a=1&token={READER}&b=2")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], "reader");
    assert_eq!(a.json()["uri"], "/api/x?a=1&b=2");
    let a = send(layer.clone(), get(&format!("/api?access_token={READER}"))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["uri"], "/api");
    let a = send(layer, get(&format!("/api?token={READER}&"))).await;
    assert_eq!(a.json()["uri"], "/api");
}

#[tokio::test]
async fn exempt_paths_do_not_pass_credentials_through() {
    let a = send(layer(), with_bearer(get("/health"), READER)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["authorization"], false);
}

#[tokio::test]
async fn a_jwt_shaped_api_key_still_works_when_jwts_are_on() {
    let odd = "abc.def.ghi";
    let store = ApiKeyStore::builder()
        .key("dotted", odd, Scopes::new(["notes"]))
        .build()
        .unwrap();
    let layer = AuthLayer::builder()
        .api_keys(store)
        .jwt(verifier(&[SECRET_NEW]))
        .build()
        .unwrap();
    let a = send(layer.clone(), with_bearer(get("/api"), odd)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], "dotted");
    // A JWT-shaped credential that is neither reports the JWT's failure.
    let a = send(layer, with_bearer(get("/api"), "abc.def.ghj")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_ne!(a.failure(), AuthFailure::UnknownKey);
}

#[tokio::test]
async fn two_credentials_are_400_invalid_request() {
    let layer = layer_with(Arc::new(ManualClock::new(now())), |b| {
        b.api_key_header("X-API-Key")
    });
    let mut req = with_bearer(get("/api"), READER);
    req.headers_mut()
        .insert("x-api-key", READER.parse().unwrap());
    let a = send(layer, req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.challenge(),
        format!(
            "Bearer error=\"invalid_request\", error_description=\"Send exactly one credential\", resource_metadata=\"{METADATA}\""
        )
    );
    assert_eq!(
        a.json(),
        json!({"error":"invalid_request","error_description":"Send exactly one credential"})
    );
    assert_eq!(a.failure(), AuthFailure::MultipleCredentials);
}

#[tokio::test]
async fn api_key_header_works_and_is_stripped() {
    let layer = layer_with(Arc::new(ManualClock::new(now())), |b| {
        b.api_key_header("X-API-Key")
    });
    let mut req = get("/api");
    req.headers_mut()
        .insert("x-api-key", READER.parse().unwrap());
    let a = send(layer, req).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], "reader");
    assert_eq!(a.json()["x_api_key"], false);
}

#[tokio::test]
async fn strip_credentials_can_be_turned_off() {
    let layer = layer_with(Arc::new(ManualClock::new(now())), |b| {
        b.strip_credentials(false)
    });
    let a = send(layer, with_bearer(get("/api"), READER)).await;
    assert_eq!(a.json()["authorization"], true);
}

#[tokio::test]
async fn malformed_authorization_is_401() {
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer a b",
        "Bearer \"quoted\"",
    ] {
        let mut req = get("/api");
        req.headers_mut()
            .insert("authorization", value.parse().unwrap());
        let a = send(layer(), req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(a.failure(), AuthFailure::MalformedCredential, "{value}");
        assert_eq!(a.json()["error"], "invalid_token");
    }
}

#[tokio::test]
async fn jwt_valid_and_rotated_secrets() {
    let a = send(
        layer(),
        with_bearer(tool_call("write_note"), &jwt(valid_claims())),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["principal"], "alice");
    assert_eq!(a.json()["kind"], "jwt");
    // Signed with the second (old) secret: still verifies during rotation.
    let old = verifier(&[SECRET_OLD])
        .sign_claims(&valid_claims())
        .unwrap();
    assert_eq!(
        send(layer(), with_bearer(tool_call("read_note"), &old))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwt_failures_are_401_with_the_reason_only_in_the_outcome() {
    let t = 1_800_000_000u64;
    let wrong_secret = verifier(&["another-secret-0123456789abcdef0123456789"])
        .sign_claims(&valid_claims())
        .unwrap();
    let cases = [
        (wrong_secret, AuthFailure::BadSignature),
        (
            jwt(json!({"sub":"a","aud":RESOURCE,"exp":t - 31})),
            AuthFailure::Expired,
        ),
        (
            jwt(json!({"sub":"a","aud":RESOURCE,"exp":t + 600,"nbf":t + 120})),
            AuthFailure::NotYetValid,
        ),
        (
            jwt(json!({"sub":"a","aud":RESOURCE,"exp":t + 600,"iat":t + 120})),
            AuthFailure::IssuedInFuture,
        ),
        (
            jwt(json!({"sub":"a","aud":"https://other.example.com/mcp","exp":t + 600})),
            AuthFailure::WrongAudience,
        ),
        (
            jwt(json!({"sub":"a","exp":t + 600})),
            AuthFailure::WrongAudience,
        ),
        (
            jwt(json!({"sub":"a","aud":RESOURCE,"exp":"9999999999"})),
            AuthFailure::InvalidClaims,
        ),
    ];
    for (token, failure) in cases {
        let a = send(layer(), with_bearer(tool_call("echo"), &token)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{failure:?}");
        assert_eq!(a.failure(), failure);
        assert_eq!(
            a.json(),
            json!({"error":"invalid_token","error_description":"The credential is invalid, expired or revoked"})
        );
    }
    // aud as an array that contains us.
    let token = jwt(json!({"sub":"a","aud":["x", RESOURCE],"exp":t + 600}));
    assert_eq!(
        send(layer(), with_bearer(tool_call("echo"), &token))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwt_signed_by_cli_style_request_carries_scopes() {
    let token = verifier(&[SECRET_NEW])
        .sign(
            &TokenRequest {
                sub: "admin".into(),
                audience: vec![RESOURCE.into()],
                issuer: None,
                ttl: Duration::from_secs(900),
                scopes: vec!["notes:read".into()],
            },
            now(),
        )
        .unwrap();
    assert_eq!(
        send(layer(), with_bearer(tool_call("read_note"), &token))
            .await
            .status,
        StatusCode::OK
    );
    let a = send(layer(), with_bearer(tool_call("write_note"), &token)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.json()["required_scopes"], json!(["notes:write"]));
}

#[tokio::test]
async fn grpc_callers_get_16_and_7() {
    let grpc = |token: Option<&str>| {
        let mut req = Request::post("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .body(Full::default())
            .unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        req
    };
    let a = send(layer(), grpc(None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["grpc-status"], "16");
    assert_eq!(a.headers["grpc-message"], "Authentication required");
    assert!(a.body.is_empty());

    let layer = AuthLayer::builder()
        .api_keys(keys())
        .policy(
            AuthPolicy::builder()
                .require_path("/grpc.health.v1.Health", None, ["health:read"])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let a = send(layer, grpc(Some(READER))).await;
    assert_eq!(a.headers["grpc-status"], "7");
}

#[tokio::test]
async fn protected_resource_metadata() {
    let layer = layer_with(Arc::new(ManualClock::new(now())), |b| {
        b.authorization_servers(["https://auth.example.com"])
    });
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let a = send(layer.clone(), get(path)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["access-control-allow-origin"], "*");
        assert_eq!(
            a.json(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["audit:write","notes:delete","notes:read","notes:write"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let pre = Request::builder()
        .method(Method::OPTIONS)
        .uri("/.well-known/oauth-protected-resource/mcp")
        .header("origin", "http://localhost:6274")
        .body(Full::default())
        .unwrap();
    let a = send(layer.clone(), pre).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(a.headers["access-control-allow-methods"], "GET, OPTIONS");
    assert!(a.body.is_empty());
    let post = Request::post("/.well-known/oauth-protected-resource")
        .body(Full::default())
        .unwrap();
    let a = send(layer.clone(), post).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET, HEAD, OPTIONS");
    assert_eq!(a.json()["error"], "method_not_allowed");
    // Other suffixes are not metadata: they need auth.
    let a = send(layer, get("/.well-known/oauth-protected-resource/other")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn resource_is_derived_from_host_when_not_configured() {
    let layer = AuthLayer::builder().api_keys(keys()).build().unwrap();
    let mut req = tool_call("echo");
    req.headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    let a = send(layer.clone(), req).await;
    assert_eq!(
        a.challenge(),
        "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
    );
    let mut req = get("/.well-known/oauth-protected-resource/mcp");
    req.headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        send(layer.clone(), req).await.json()["resource"],
        "http://127.0.0.1:8080/mcp"
    );
    // A hostile Host cannot inject into the challenge.
    let mut req = tool_call("echo");
    req.headers_mut()
        .insert("host", "evil\", x=\"y".parse().unwrap());
    let a = send(layer, req).await;
    assert_eq!(a.challenge(), "Bearer");
}

#[tokio::test]
async fn dev_bypass_only_in_development_on_loopback() {
    let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let e = AuthLayer::builder()
        .dev_bypass(true)
        .bind_addr(loopback)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "dev_bypass");
    assert_eq!(e.value(), Some("production"));
    let e = AuthLayer::builder()
        .dev_bypass(true)
        .environment(Environment::Development)
        .bind_addr(public)
        .build()
        .unwrap_err();
    assert_eq!(
        (e.setting(), e.value()),
        ("dev_bypass", Some("0.0.0.0:8080"))
    );
    let e = AuthLayer::builder()
        .dev_bypass(true)
        .environment(Environment::Development)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "dev_bypass");

    let layer = AuthLayer::builder()
        .dev_bypass(true)
        .environment(Environment::Development)
        .bind_addr(loopback)
        .policy(policy())
        .build()
        .unwrap();
    let a = send(layer, tool_call("delete_note")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["kind"], PrincipalKind::DevBypass.as_str());
}

#[test]
fn builder_errors_name_the_setting() {
    let e = AuthLayer::builder().build().unwrap_err();
    assert_eq!(e.setting(), "credentials");
    let e = AuthLayer::builder()
        .api_keys(keys())
        .resource("mcp.example.com")
        .build()
        .unwrap_err();
    assert_eq!(
        (e.setting(), e.value()),
        ("resource", Some("mcp.example.com"))
    );
    let e = AuthLayer::builder()
        .api_keys(keys())
        .resource("https://x/mcp#frag")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "resource");
    let e = AuthLayer::builder()
        .api_keys(keys())
        .api_key_header("bad header")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "api_key_header");
    let e = AuthLayer::builder()
        .api_keys(keys())
        .api_key_header("Authorization")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "api_key_header");
    let e = AuthLayer::builder()
        .api_keys(keys())
        .authorization_servers(["auth.example.com"])
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "authorization_servers");
}

#[test]
fn from_env_reads_prefixed_variables() {
    let env = mcp_security_core::config::Env::from_pairs(
        "IQ",
        [
            ("IQ_API_KEY", READER),
            ("IQ_API_KEY_HEADER", "X-API-Key"),
            ("IQ_URL_AUTH", "true"),
            ("IQ_JWT_SECRET", &format!("{SECRET_NEW},{SECRET_OLD}")),
            ("IQ_JWT_AUDIENCE", RESOURCE),
            ("IQ_AUTH_DENY_PREFIXES", "/internal/"),
        ],
    );
    let layer = AuthLayer::builder_from_env(&env).unwrap().build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = send(layer.clone(), get(&format!("/api?token={READER}"))).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json()["principal"], "env");
        let a = send(
            layer.clone(),
            // This layer runs on the system clock.
            with_bearer(
                get("/api"),
                &jwt(json!({"sub":"bob","aud":RESOURCE,"exp":unix_now() + 600})),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            send(layer, get("/internal/x")).await.status,
            StatusCode::FORBIDDEN
        );
    });
    let bad = mcp_security_core::config::Env::from_pairs("IQ", [("IQ_JWT_SECRET", "short")]);
    let e = AuthLayer::builder_from_env(&bad).unwrap_err();
    assert_eq!(e.setting(), "IQ_JWT_SECRET");
    assert!(!e.to_string().contains("short\""));
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
