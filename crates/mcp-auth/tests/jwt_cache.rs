//! The verified-token cache behind a real AuthLayer, with a JWKS served by the test on
//! 127.0.0.1: a token whose key the issuer withdrew is refused after the refresh although it was
//! cached; an identical refresh keeps the cache. And the cache, scope-claim and lifetime
//! variables of `jwt_from_env`.
#![cfg(feature = "jwks")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth::jwks::JwksKeySource;
use mcp_auth::jwt::JwtVerifier;
use mcp_auth::layer::AuthLayer;
use mcp_security_core::clock::{ManualClock, ManualMonotonicClock};
use mcp_security_core::config::Env;
use mcp_security_core::{AuthFailure, AuthOutcome};
use serde_json::{Value, json};

mod support;

use support::{Answer, call};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const GAP: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_800_000_000;

struct EdKey {
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

fn ed_key(kid: &'static str, seed: u8) -> EdKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let private = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let x = URL_SAFE_NO_PAD.encode(private.verifying_key().to_bytes());
    EdKey {
        kid,
        encoding: EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x}),
    }
}

fn jwks_of(keys: &[&EdKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn sign(key: &EdKey, sub: &str) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.to_owned());
    let claims = json!({"sub": sub, "aud": RESOURCE, "iat": T, "exp": T + 600,
        "scope": "notes:read"});
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// The issuer's JWK Set on 127.0.0.1; what it serves can be changed.
async fn serve_jwks(jwks: Arc<Mutex<String>>) -> String {
    async fn handler(State(jwks): State<Arc<Mutex<String>>>) -> impl IntoResponse {
        let body = jwks.lock().unwrap().clone();
        ([("content-type", "application/jwk-set+json")], body)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/jwks", get(handler))
        .with_state(jwks);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks")
}

fn assert_accepted(answer: &Answer, sub: &str) {
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get("www-authenticate").is_none());
    assert_eq!(answer.body, json!({"sub": sub, "scopes": ["notes:read"]}));
    assert!(matches!(
        answer.outcome,
        Some(AuthOutcome::Authenticated { .. })
    ));
}

fn assert_refused(answer: &Answer, failure: AuthFailure) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"The credential is invalid, expired or revoked\", resource_metadata=\"{METADATA}\""
        )
    );
    assert_eq!(
        answer.body,
        json!({"error":"invalid_token","error_description":"The credential is invalid, expired or revoked"})
    );
    match &answer.outcome {
        Some(AuthOutcome::Rejected { failure: f, .. }) => assert_eq!(*f, failure),
        other => panic!("not a rejection: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_is_refused_once_its_key_is_withdrawn() {
    let (old, kept) = (ed_key("ed-old", 1), ed_key("ed-kept", 2));
    let jwks = Arc::new(Mutex::new(jwks_of(&[&old, &kept])));
    let url = serve_jwks(jwks.clone()).await;
    let gap_clock = Arc::new(ManualMonotonicClock::new(1_000_000_000_000));
    let source = JwksKeySource::builder()
        .jwks_url(url)
        .min_refresh_gap(GAP)
        .clock(gap_clock.clone())
        .build()
        .unwrap();
    assert!(source.wait_loaded(WAIT).await, "the JWKS never loaded");
    let verifier = JwtVerifier::builder()
        .jwks(source.clone())
        .audience(RESOURCE)
        .build()
        .unwrap();
    let layer = AuthLayer::builder()
        .jwt(verifier.clone())
        .resource(RESOURCE)
        .clock(Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(T + 60),
        )))
        .build()
        .unwrap();

    let (withdrawn, kept_token) = (sign(&old, "alice"), sign(&kept, "bob"));
    for _ in 0..2 {
        assert_accepted(&call(&layer, &withdrawn).await, "alice");
        assert_accepted(&call(&layer, &kept_token).await, "bob");
    }
    assert_eq!(verifier.cached_tokens(), 2, "both tokens are cached");

    // A refresh that serves the same set changes nothing: the cache stays.
    let generation = source.key_generation();
    gap_clock.advance(GAP);
    assert!(source.wait_next_load(WAIT).await, "no refresh");
    assert_eq!(source.key_generation(), generation);
    assert_eq!(verifier.cached_tokens(), 2);
    assert_accepted(&call(&layer, &withdrawn).await, "alice");

    // The issuer withdraws a key: after the refresh, its cached token is refused.
    *jwks.lock().unwrap() = jwks_of(&[&kept]);
    gap_clock.advance(GAP);
    assert!(source.wait_next_load(WAIT).await, "no refresh");
    assert_ne!(source.key_generation(), generation);
    assert_refused(&call(&layer, &withdrawn).await, AuthFailure::UnknownKey);
    assert_refused(&call(&layer, &withdrawn).await, AuthFailure::UnknownKey);
    // The other token is verified afresh with the new set, and cached again.
    assert_accepted(&call(&layer, &kept_token).await, "bob");
    assert_eq!(verifier.cached_tokens(), 1);
}

#[test]
fn env_configures_the_cache_scope_claims_and_lifetime() {
    let secret = "env-secret-0123456789abcdef0123456789abcdef";
    let env = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("MCP_JWT_SECRET", secret)];
        pairs.extend_from_slice(extra);
        Env::from_pairs("MCP", pairs)
    };
    let v = AuthLayer::jwt_from_env(&env(&[])).unwrap().unwrap();
    assert_eq!(v.cache_size(), 10_000);
    assert_eq!(v.cache_ttl(), Duration::from_secs(300));
    assert_eq!(
        v.scope_claims().collect::<Vec<_>>(),
        ["scope", "scp", "scopes", "permissions"]
    );
    assert_eq!(v.max_lifetime(), (Some(Duration::from_secs(86_400)), None));

    let v = AuthLayer::jwt_from_env(&env(&[
        ("MCP_JWT_CACHE_SIZE", "0"),
        ("MCP_JWT_CACHE_TTL", "1m"),
        ("MCP_JWT_SCOPE_CLAIMS", "scope, /realm_access/roles"),
        ("MCP_JWT_MAX_LIFETIME", "1h"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(v.cache_size(), 0);
    assert_eq!(
        v.scope_claims().collect::<Vec<_>>(),
        ["scope", "/realm_access/roles"]
    );
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(v.max_lifetime(), (hour, hour));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(T);
    let token = v
        .sign_claims(&json!({"sub": "a", "iat": T, "exp": T + 600,
            "realm_access": {"roles": ["mcp-admin"]}}))
        .unwrap();
    assert_eq!(
        v.verify(&token, now)
            .unwrap()
            .scopes()
            .iter()
            .collect::<Vec<_>>(),
        ["mcp-admin"]
    );
    let v = AuthLayer::jwt_from_env(&env(&[
        ("MCP_JWT_CACHE_SIZE", "50"),
        ("MCP_JWT_MAX_LIFETIME", "off"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(v.cache_size(), 50);
    assert_eq!(v.max_lifetime(), (None, None));

    for (var, value) in [
        ("MCP_JWT_CACHE_SIZE", "lots"),
        ("MCP_JWT_CACHE_SIZE", "99999999999"),
        ("MCP_JWT_CACHE_TTL", "0"),
        ("MCP_JWT_CACHE_TTL", "soon"),
        ("MCP_JWT_SCOPE_CLAIMS", "scope,/a~2"),
        ("MCP_JWT_SCOPE_CLAIMS", ","),
        ("MCP_JWT_MAX_LIFETIME", "0"),
        ("MCP_JWT_MAX_LIFETIME", "forever"),
    ] {
        let e = AuthLayer::jwt_from_env(&env(&[(var, value)])).unwrap_err();
        assert_eq!(e.setting(), var, "{var}={value}: {e}");
    }
}
