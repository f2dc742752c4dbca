use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_security_core::clock::ManualClock;
use mcp_security_core::config::{Env, Secret};
use mcp_security_core::{AuthFailure, AuthOutcome, GuardBody, Rejection, Scopes};
use serde_json::{Value, json};
use tower_layer::Layer;
use tower_service::Service;

use super::request::{decode_secret, parse_basic};
use super::*;
use crate::jwt::JwtVerifier;

const KEY: &str = "mcp-sk-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
const OTHER_KEY: &str = "mcp-sk-b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVy";
const SECRET: &str = "a-token-endpoint-secret-of-32-bytes-or-more";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const NOW: u64 = 1_800_000_000;

fn store() -> ApiKeyStore {
    ApiKeyStore::builder()
        .key("ci-bot", KEY, Scopes::new(["notes:read", "notes:write"]))
        .key("ops", OTHER_KEY, Scopes::new(["notes"]))
        .build()
        .unwrap()
}

fn builder() -> TokenEndpointLayerBuilder {
    TokenEndpointLayer::builder()
        .api_keys(store())
        .resource(RESOURCE)
        .hs256_secret(Secret::new(SECRET))
        .fingerprint_key(Secret::new("fingerprints"))
        .clock(Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(NOW),
        )))
}

type Svc = TokenEndpoint<
    tower::util::ServiceFn<
        fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
    >,
>;

fn inner(_: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"inner")))))
}

fn service(layer: &TokenEndpointLayer) -> Svc {
    layer.layer(tower::service_fn(inner as fn(_) -> _))
}

async fn call(
    layer: &TokenEndpointLayer,
    req: Request<Full<Bytes>>,
) -> Response<GuardBody<Full<Bytes>>> {
    service(layer).call(req).await.unwrap()
}

async fn json_body(res: Response<GuardBody<Full<Bytes>>>) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn form(body: &str) -> Request<Full<Bytes>> {
    Request::post(TOKEN_PATH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn basic(id: &str, secret: &str, body: &str) -> Request<Full<Bytes>> {
    let mut req = form(body);
    let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    req.headers_mut()
        .insert("authorization", value.parse().unwrap());
    req
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn outcome(res: &Response<GuardBody<Full<Bytes>>>) -> AuthOutcome {
    res.extensions().get::<AuthOutcome>().cloned().unwrap()
}

#[tokio::test]
async fn a_form_post_mints_a_token_the_verifier_accepts() {
    let layer = builder().build().unwrap();
    let res = call(
        &layer,
        form(&format!(
            "grant_type=client_credentials&client_id=ci-bot&client_secret={KEY}&scope=notes%3Aread"
        )),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert_eq!(res.headers()["content-type"], "application/json");
    match outcome(&res) {
        AuthOutcome::Authenticated { principal } => assert_eq!(principal.id(), "ci-bot"),
        other => panic!("{other:?}"),
    }
    assert!(res.extensions().get::<Rejection>().is_none());
    let body = json_body(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "notes:read");
    let token = body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["iss"], "https://mcp.example.com");
    assert_eq!(c["sub"], "ci-bot");
    assert_eq!(c["client_id"], "ci-bot");
    assert_eq!(c["aud"], RESOURCE);
    assert_eq!(c["scope"], "notes:read");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 900);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(c["jti"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );

    let verifier = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(RESOURCE)
        .issuer("https://mcp.example.com")
        .build()
        .unwrap();
    let principal = verifier
        .verify(token, UNIX_EPOCH + Duration::from_secs(NOW + 1))
        .unwrap();
    assert_eq!(principal.id(), "ci-bot");
    assert!(principal.has_scope("notes:read"));
    assert!(!principal.has_scope("notes:write"));
}

#[tokio::test]
async fn every_token_has_its_own_jti_and_all_the_key_scopes_by_default() {
    let layer = builder().build().unwrap();
    let mut jtis = Vec::new();
    for _ in 0..2 {
        let res = call(
            &layer,
            basic("ci-bot", KEY, "grant_type=client_credentials"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = json_body(res).await;
        assert_eq!(body["scope"], "notes:read notes:write");
        jtis.push(claims(body["access_token"].as_str().unwrap())["jti"].clone());
    }
    assert_ne!(jtis[0], jtis[1]);
}

#[tokio::test]
async fn a_hierarchical_key_scope_covers_a_narrower_request() {
    let layer = builder().build().unwrap();
    let res = call(
        &layer,
        basic(
            "ops",
            OTHER_KEY,
            "grant_type=client_credentials&scope=notes:read+notes:read",
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["scope"], "notes:read");
}

async fn refused(
    layer: &TokenEndpointLayer,
    req: Request<Full<Bytes>>,
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response<GuardBody<Full<Bytes>>> {
    let res = call(layer, req).await;
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let rejection = res.extensions().get::<Rejection>().cloned().unwrap();
    assert_eq!(rejection.code(), error);
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body,
        json!({ "error": error, "error_description": description })
    );
    assert!(!String::from_utf8_lossy(&bytes).contains(KEY));
    Response::from_parts(parts, GuardBody::rejection(bytes))
}

fn rejected_with(res: &Response<GuardBody<Full<Bytes>>>) -> (AuthFailure, bool, bool) {
    match outcome(res) {
        AuthOutcome::Rejected {
            failure,
            principal,
            fingerprint,
        } => (failure, principal.is_some(), fingerprint.is_some()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_client_get_the_same_answer() {
    let layer = builder().build().unwrap();
    let challenge = "Basic realm=\"https://mcp.example.com\", charset=\"UTF-8\"";
    for req in [
        basic("ci-bot", "mcp-sk-wrong", "grant_type=client_credentials"),
        basic("nobody", KEY, "grant_type=client_credentials"),
        // Another key's secret under this name.
        basic("ci-bot", OTHER_KEY, "grant_type=client_credentials"),
        form(&format!(
            "grant_type=client_credentials&client_id=nobody&client_secret={KEY}"
        )),
    ] {
        let res = refused(
            &layer,
            req,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )
        .await;
        assert_eq!(res.headers()["www-authenticate"], challenge);
        assert_eq!(rejected_with(&res), (AuthFailure::UnknownKey, false, true));
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.internal_detail(), Some("unknown_key"));
    }
}

#[tokio::test]
async fn the_fingerprint_is_the_secret_s_keyed_one_and_never_the_secret() {
    let layer = builder().build().unwrap();
    let res = call(
        &layer,
        basic("nobody", KEY, "grant_type=client_credentials"),
    )
    .await;
    let AuthOutcome::Rejected { fingerprint, .. } = outcome(&res) else {
        panic!()
    };
    let expected = mcp_security_core::credential::Fingerprinter::new(b"fingerprints")
        .fingerprint(KEY.as_bytes())
        .to_string();
    assert_eq!(fingerprint.as_deref(), Some(expected.as_str()));
    let debug = format!("{:?}", res.extensions().get::<Rejection>());
    assert!(!debug.contains(KEY), "{debug}");
}

#[tokio::test]
async fn missing_malformed_and_doubled_client_authentication() {
    let layer = builder().build().unwrap();
    let res = refused(
        &layer,
        form("grant_type=client_credentials"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication is required",
    )
    .await;
    assert_eq!(
        rejected_with(&res),
        (AuthFailure::MissingCredential, false, false)
    );

    let mut req = form("grant_type=client_credentials");
    req.headers_mut()
        .insert("authorization", "Bearer abc".parse().unwrap());
    let res = refused(
        &layer,
        req,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "The client credentials are malformed",
    )
    .await;
    assert_eq!(
        rejected_with(&res),
        (AuthFailure::MalformedCredential, false, false)
    );

    let res = refused(
        &layer,
        basic(
            "ci-bot",
            KEY,
            &format!("grant_type=client_credentials&client_secret={KEY}"),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Use exactly one client authentication method",
    )
    .await;
    assert!(res.headers().get("www-authenticate").is_none());
    assert_eq!(
        rejected_with(&res),
        (AuthFailure::MultipleCredentials, false, false)
    );

    refused(
        &layer,
        basic("ci-bot", KEY, "grant_type=client_credentials&client_id=ops"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The client_id parameter names another client than the Authorization header",
    )
    .await;
    // The same client id in the form as in the header is fine.
    let res = call(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&client_id=ci-bot",
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn grant_type_scope_and_target_refusals() {
    let layer = builder().build().unwrap();
    refused(
        &layer,
        basic("ci-bot", KEY, "scope=notes:read"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The grant_type parameter is missing",
    )
    .await;
    let res = refused(
        &layer,
        basic("ci-bot", KEY, "grant_type=password"),
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        "Only the client_credentials grant is supported",
    )
    .await;
    assert!(matches!(outcome(&res), AuthOutcome::Authenticated { .. }));
    let res = refused(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&scope=notes:read%20admin",
        ),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "The scope admin is not granted to this client",
    )
    .await;
    assert_eq!(
        rejected_with(&res),
        (AuthFailure::InsufficientScope, true, false)
    );
    refused(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&scope=notes%22read",
        ),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "The scope parameter is malformed",
    )
    .await;
    refused(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&resource=https%3A%2F%2Fother.example.com%2Fmcp",
        ),
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "This server issues tokens only for https://mcp.example.com/mcp",
    )
    .await;
    refused(
        &layer,
        basic("ci-bot", KEY, "grant_type=client_credentials&resource=mcp"),
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "The resource parameter must be an absolute URI without a fragment",
    )
    .await;
    // Several resources, each this server (one with a trailing slash): fine.
    let res = call(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&resource=https://mcp.example.com/mcp&resource=https://mcp.example.com/mcp/",
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_bodies_are_invalid_requests() {
    let layer = builder().build().unwrap();
    refused(
        &layer,
        basic(
            "ci-bot",
            KEY,
            "grant_type=client_credentials&grant_type=client_credentials",
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The parameter grant_type is repeated",
    )
    .await;
    refused(
        &layer,
        basic("ci-bot", KEY, "grant_type=client_credentials&scope=%FF"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The request body is not valid form data",
    )
    .await;
    let mut req = basic("ci-bot", KEY, "{\"grant_type\":\"client_credentials\"}");
    req.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let res = refused(
        &layer,
        req,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The request body must be application/x-www-form-urlencoded",
    )
    .await;
    assert!(res.extensions().get::<AuthOutcome>().is_none());
}

#[tokio::test]
async fn an_oversize_body_is_413_declared_or_not() {
    let layer = builder().build().unwrap();
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(9000));
    refused(
        &layer,
        form(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "The request body is larger than 8192 bytes",
    )
    .await;
    let mut req = form(&big);
    req.headers_mut()
        .insert("content-length", "9041".parse().unwrap());
    refused(
        &layer,
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "The request body is larger than 8192 bytes",
    )
    .await;
}

#[tokio::test]
async fn other_methods_get_405_and_other_paths_pass_through() {
    let layer = builder().build().unwrap();
    let res = refused(
        &layer,
        Request::get(TOKEN_PATH).body(Full::default()).unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "Use POST",
    )
    .await;
    assert_eq!(res.headers()["allow"], "POST");
    for path in ["/mcp", API_KEY_LOGIN_PATH, JWKS_PATH, "/oauth/token/x"] {
        let res = call(&layer, Request::post(path).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(!res.body().is_rejection(), "{path}");
    }
    let res = refused(
        &layer,
        Request::get("/oauth/authorize?response_type=code")
            .body(Full::default())
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "unsupported_response_type",
        "This server has no interactive authorization; use the client_credentials grant at the \
         token endpoint",
    )
    .await;
    assert!(res.extensions().get::<AuthOutcome>().is_none());
}

#[tokio::test]
async fn the_disabled_layer_passes_everything_through() {
    let layer = TokenEndpointLayer::disabled();
    assert!(!layer.is_enabled());
    assert_eq!(layer.summary(), "off");
    assert!(layer.paths().is_empty());
    let res = call(&layer, form("grant_type=client_credentials")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.body().is_rejection());
}

#[tokio::test]
async fn the_api_key_login_returns_the_same_token() {
    let layer = builder().api_key_login(true).build().unwrap();
    let login = |body: &str| {
        Request::post(API_KEY_LOGIN_PATH)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let res = call(&layer, login(&json!({ "api_key": KEY }).to_string())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json_body(res).await;
    assert_eq!(body["scope"], "notes:read notes:write");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["sub"],
        "ci-bot"
    );

    let res = refused(
        &layer,
        login(&json!({ "api_key": "mcp-sk-wrong" }).to_string()),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed",
    )
    .await;
    assert_eq!(rejected_with(&res), (AuthFailure::UnknownKey, false, true));
    refused(
        &layer,
        login("{}"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication is required",
    )
    .await;
    refused(
        &layer,
        login("[1]"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The request body must be a JSON object",
    )
    .await;
    refused(
        &layer,
        login(&format!("{{\"api_key\":\"{KEY}\",\"api_key\":\"{KEY}\"}}")),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "api_key, scope and resource must each be one string",
    )
    .await;
    refused(
        &layer,
        login(&json!({ "api_key": KEY, "scope": "admin" }).to_string()),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "The scope admin is not granted to this client",
    )
    .await;
}

#[tokio::test]
async fn metadata_lists_the_endpoint_and_follows_the_issuer_path() {
    let layer = builder()
        .issuer("https://id.example.com/tenant")
        .scopes_supported(["notes:read"])
        .build()
        .unwrap();
    assert_eq!(
        layer.metadata_url().as_deref(),
        Some("https://id.example.com/.well-known/oauth-authorization-server/tenant")
    );
    assert_eq!(
        layer.token_endpoint().as_deref(),
        Some("https://id.example.com/tenant/oauth/token")
    );
    for path in [
        METADATA_PATH,
        "/.well-known/oauth-authorization-server/tenant",
    ] {
        let res = call(&layer, Request::get(path).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        assert_eq!(outcome(&res), AuthOutcome::Exempt);
        assert_eq!(
            json_body(res).await,
            json!({
                "issuer": "https://id.example.com/tenant",
                "token_endpoint": "https://id.example.com/tenant/oauth/token",
                "authorization_endpoint": "https://id.example.com/tenant/oauth/authorize",
                "response_types_supported": [],
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["notes:read"],
            })
        );
    }
    let res = call(
        &layer,
        Request::post(METADATA_PATH).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, HEAD, OPTIONS");
    // HS256: no JWK Set.
    assert!(layer.jwks().is_none() && layer.jwks_url().is_none());
    assert_eq!(layer.algorithm(), Some("HS256"));
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn ed25519_pem() -> (String, [u8; 32]) {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    (
        pem(key.to_pkcs8_der().unwrap().as_bytes()),
        key.verifying_key().to_bytes(),
    )
}

#[tokio::test]
async fn an_ed25519_key_signs_and_publishes_its_public_half() {
    let (pem, public) = ed25519_pem();
    let layer = builder().signing_key_pem(Secret::new(pem)).build().unwrap();
    assert_eq!(layer.algorithm(), Some("EdDSA"));
    let jwks: Value = serde_json::from_str(layer.jwks().unwrap()).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(public));
    assert!(jwk.get("d").is_none());
    let kid = jwk["kid"].as_str().unwrap().to_owned();

    let res = call(
        &layer,
        Request::get(JWKS_PATH).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    assert_eq!(json_body(res).await, jwks);
    let res = call(
        &layer,
        Request::get(METADATA_PATH).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(
        json_body(res).await["jwks_uri"],
        "https://mcp.example.com/.well-known/jwks.json"
    );

    let res = call(
        &layer,
        basic("ci-bot", KEY, "grant_type=client_credentials"),
    )
    .await;
    let token = json_body(res).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_audience(&[RESOURCE]);
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
    assert_eq!(data.claims["sub"], "ci-bot");
}

#[tokio::test]
async fn an_es256_key_signs_too() {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    let layer = builder()
        .signing_key_pem(Secret::new(pem(key.to_pkcs8_der().unwrap().as_bytes())))
        .build()
        .unwrap();
    assert_eq!(layer.algorithm(), Some("ES256"));
    let jwks: Value = serde_json::from_str(layer.jwks().unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(jwks["keys"][0].get("d").is_none());
    let res = call(
        &layer,
        basic("ci-bot", KEY, "grant_type=client_credentials"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let token = json_body(res).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
}

#[test]
fn bad_keys_are_refused_with_the_setting_and_no_key_material() {
    let (good, _) = ed25519_pem();
    for (pem, reason) in [
        ("not a key".to_owned(), "expected a PKCS#8 PEM private key"),
        (
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".to_owned(),
            "convert it with `openssl pkcs8 -topk8 -nocrypt`",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            "the key is encrypted",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".to_owned(),
            "not valid base64",
        ),
        (
            pem(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            "not an Ed25519 or P-256",
        ),
        (format!("{good}{good}"), "more than one PEM block"),
    ] {
        let e = builder()
            .signing_key_pem(Secret::new(pem.clone()))
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "token_signing_key", "{pem}");
        assert!(e.reason().contains(reason), "{e}");
        assert!(!e.to_string().contains("MC4CAQAw"), "{e}");
    }
    let e = builder()
        .signing_key_file("/nonexistent/token-key.pem")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "token_signing_key");
    assert!(
        e.reason()
            .contains("/nonexistent/token-key.pem: cannot be opened"),
        "{e}"
    );
}

#[test]
fn builder_errors_name_the_setting() {
    let e = TokenEndpointLayer::builder()
        .resource(RESOURCE)
        .hs256_secret(Secret::new(SECRET))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "api_keys");
    let e = TokenEndpointLayer::builder()
        .api_keys(store())
        .hs256_secret(Secret::new(SECRET))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "resource");
    let e = builder()
        .resource("mcp.example.com/mcp")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "resource");
    let e = builder()
        .issuer("https://id.example.com/?x=1")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "token_issuer");
    let e = TokenEndpointLayer::builder()
        .api_keys(store())
        .resource(RESOURCE)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_secret");
    assert!(e.reason().contains("token_signing_key"), "{e}");
    let e = builder()
        .hs256_secret(Secret::new("tiny-s3cret"))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_secret");
    assert!(!e.to_string().contains("tiny-s3cret"), "{e}");
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(3601),
    ] {
        let e = builder().ttl(ttl).build().unwrap_err();
        assert_eq!(e.setting(), "token_ttl", "{ttl:?}");
    }
    let e = builder()
        .ttl(Duration::from_secs(1200))
        .max_token_lifetime(Duration::from_secs(600))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "token_ttl");
    assert!(
        e.reason().contains("longer than jwt_max_lifetime (10m)"),
        "{e}"
    );
    assert!(builder().ttl(Duration::from_secs(3600)).build().is_ok());
    let e = builder().max_body_bytes(10).build().unwrap_err();
    assert_eq!(e.setting(), "max_body_bytes");
    let e = builder().realm("bad\nrealm").build().unwrap_err();
    assert_eq!(e.setting(), "realm");
    let debug = format!("{:?}", builder());
    assert!(!debug.contains(SECRET), "{debug}");
}

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v)))
}

#[test]
fn the_environment_turns_it_on_and_errors_name_the_variables() {
    assert!(
        TokenEndpointLayer::builder_from_env(&env(&[]))
            .unwrap()
            .is_none()
    );
    assert!(
        TokenEndpointLayer::builder_from_env(&env(&[
            ("MCP_TOKEN_ENDPOINT", "false"),
            ("MCP_TOKEN_TTL", "x")
        ]))
        .unwrap()
        .is_none()
    );
    let e =
        TokenEndpointLayer::builder_from_env(&env(&[("MCP_TOKEN_ENDPOINT", "maybe")])).unwrap_err();
    assert_eq!(e.setting(), "MCP_TOKEN_ENDPOINT");

    let on = [
        ("MCP_TOKEN_ENDPOINT", "true"),
        (
            "MCP_JWT_SECRET",
            "a-token-endpoint-secret-of-32-bytes-or-more,old-secret-of-32-bytes-or-more!!",
        ),
        ("MCP_RESOURCE_URL", RESOURCE),
    ];
    let layer = TokenEndpointLayer::builder_from_env(&env(&on))
        .unwrap()
        .unwrap()
        .api_keys(store())
        .build()
        .unwrap();
    assert_eq!(layer.issuer(), Some("https://mcp.example.com"));
    assert_eq!(layer.ttl(), Some(DEFAULT_TTL));
    assert_eq!(layer.algorithm(), Some("HS256"));
    assert!(!layer.paths().contains(&API_KEY_LOGIN_PATH.to_owned()));

    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = on.to_vec();
        pairs.extend_from_slice(extra);
        TokenEndpointLayer::builder_from_env(&env(&pairs)).and_then(|b| {
            b.map(|b| b.api_keys(store()).build())
                .transpose()
                .map(Option::unwrap)
        })
    };
    let layer = with(&[
        ("MCP_TOKEN_ISSUER", "https://id.example.com"),
        ("MCP_TOKEN_TTL", "5m"),
        ("MCP_TOKEN_API_KEY_LOGIN", "on"),
    ])
    .unwrap();
    assert_eq!(layer.issuer(), Some("https://id.example.com"));
    assert_eq!(layer.ttl(), Some(Duration::from_secs(300)));
    assert!(layer.paths().contains(&API_KEY_LOGIN_PATH.to_owned()));

    for (extra, var) in [
        (("MCP_TOKEN_TTL", "2h"), "MCP_TOKEN_TTL"),
        (("MCP_TOKEN_TTL", "soon"), "MCP_TOKEN_TTL"),
        (("MCP_TOKEN_ISSUER", "id.example.com"), "MCP_TOKEN_ISSUER"),
        (("MCP_TOKEN_API_KEY_LOGIN", "2"), "MCP_TOKEN_API_KEY_LOGIN"),
        (
            ("MCP_TOKEN_SIGNING_KEY_FILE", "/nonexistent/key.pem"),
            "MCP_TOKEN_SIGNING_KEY_FILE",
        ),
    ] {
        let e = with(&[extra]).unwrap_err();
        assert_eq!(e.setting(), var, "{extra:?}: {e}");
    }
    let e = with(&[("MCP_TOKEN_TTL", "20m"), ("MCP_JWT_MAX_LIFETIME", "10m")]).unwrap_err();
    assert_eq!(e.setting(), "MCP_TOKEN_TTL");
    assert!(
        e.reason()
            .contains("longer than MCP_JWT_MAX_LIFETIME (10m)"),
        "{e}"
    );

    let e = TokenEndpointLayer::builder_from_env(&env(&[
        ("MCP_TOKEN_ENDPOINT", "1"),
        ("MCP_RESOURCE_URL", RESOURCE),
    ]))
    .unwrap()
    .unwrap()
    .api_keys(store())
    .build()
    .unwrap_err();
    assert_eq!(e.setting(), "MCP_JWT_SECRET");
    assert!(e.reason().contains("MCP_TOKEN_SIGNING_KEY_FILE"), "{e}");
    let e = TokenEndpointLayer::builder_from_env(&env(&[
        ("MCP_TOKEN_ENDPOINT", "1"),
        ("MCP_JWT_SECRET", SECRET),
    ]))
    .unwrap()
    .unwrap()
    .api_keys(store())
    .build()
    .unwrap_err();
    assert_eq!(e.setting(), "MCP_RESOURCE_URL");
    // The first http(s) audience stands in for the resource URL, as for the AuthLayer.
    let layer = TokenEndpointLayer::builder_from_env(&env(&[
        ("MCP_TOKEN_ENDPOINT", "1"),
        ("MCP_JWT_SECRET", SECRET),
        ("MCP_JWT_AUDIENCE", "mcp-api, https://api.example.com/mcp"),
    ]))
    .unwrap()
    .unwrap()
    .api_keys(store())
    .build()
    .unwrap();
    assert_eq!(layer.resource(), Some("https://api.example.com/mcp"));
}

#[test]
fn basic_credentials_are_form_decoded_and_tolerate_unencoded_secrets() {
    let parse = |raw: &str| {
        parse_basic(format!("Basic {}", STANDARD.encode(raw)).as_bytes())
            .map(|c| (c.id, c.secret.expose().to_owned()))
    };
    assert_eq!(parse("ci+bot:a%2Bb"), Some(("ci bot".into(), "a+b".into())));
    assert_eq!(parse("ci-bot:a+b"), Some(("ci-bot".into(), "a+b".into())));
    assert_eq!(parse("a%3Ab:s:t"), Some(("a:b".into(), "s:t".into())));
    assert_eq!(parse(":secret"), None);
    assert_eq!(parse("no-colon"), None);
    assert!(parse_basic(b"Basic !!!").is_none());
    assert!(parse_basic(b"Digest abc").is_none());
    assert!(parse_basic(b"Basic").is_none());
    let unpadded = format!("basic {}", STANDARD.encode("id:s").trim_end_matches('='));
    assert!(parse_basic(unpadded.as_bytes()).is_some());
    assert_eq!(decode_secret("x%20y").as_deref(), Some("x y"));
}

#[test]
fn summary_and_debug_never_show_secrets() {
    let layer = builder().build().unwrap();
    assert_eq!(
        layer.summary(),
        "issuer: https://mcp.example.com, audience: https://mcp.example.com/mcp, algorithm: \
         HS256, ttl: 900s, api-key login: off"
    );
    let debug = format!("{layer:?}");
    assert!(!debug.contains(SECRET), "{debug}");
}

#[tokio::test]
async fn a_request_for_too_many_scopes_is_invalid_scope() {
    let layer = builder().build().unwrap();
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("notes:s{i}"))
            .collect::<Vec<_>>()
            .join("%20")
    };
    refused(
        &layer,
        basic(
            "ops",
            OTHER_KEY,
            &format!("grant_type=client_credentials&scope={}", many(65)),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "At most 64 scopes may be requested",
    )
    .await;
    let res = call(
        &layer,
        basic(
            "ops",
            OTHER_KEY,
            &format!("grant_type=client_credentials&scope={}", many(64)),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_never_outlives_the_key_that_bought_it() {
    // NOW is 2027-01-15T08:00:00Z; the key expires a minute later, the TTL is 15 minutes.
    let dir = std::env::temp_dir().join(format!("mcp-token-expiry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.toml");
    std::fs::write(
        &file,
        format!(
            "[[keys]]\nname = \"short\"\nhash = \"{}\"\nscopes = [\"notes\"]\n\
             expires_at = \"2027-01-15T08:01:00Z\"\n",
            crate::api_key::hash_line(&crate::api_key::KeyHasher::Sha256, KEY)
        ),
    )
    .unwrap();
    let store = ApiKeyStore::builder().file(&file).build().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let layer = builder().api_keys(store).build().unwrap();
    let res = call(&layer, basic("short", KEY, "grant_type=client_credentials")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_body(res).await;
    assert_eq!(body["expires_in"], 60);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["exp"], NOW + 60);
}
