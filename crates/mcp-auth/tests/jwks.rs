//! Asymmetric JWTs from a JWKS served by the test itself on 127.0.0.1, through the real
//! AuthLayer: every answer's status, `WWW-Authenticate` and body; rotation, refresh limits,
//! an unreachable issuer, discovery.
#![cfg(feature = "jwks")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth::jwks::JwksKeySource;
use mcp_auth::jwt::JwtVerifier;
use mcp_auth::layer::AuthLayer;
use mcp_security_core::clock::{ManualClock, ManualMonotonicClock};
use mcp_security_core::config::Env;
use mcp_security_core::{AuthFailure, AuthOutcome};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

mod support;

use support::{Answer, call};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const GAP: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---------------------------------------------------------------------------------------------
// Keys, generated once per test binary (RSA generation is slow in debug builds)
// ---------------------------------------------------------------------------------------------

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key's bytes (for the HS256 confusion attack).
    public_bytes: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &str) -> TestKey {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let public = private.to_public_key();
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({
            "kty": "RSA", "kid": kid, "use": "sig",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        }),
        public_bytes: public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
    }
}

fn ec_key(kid: &str) -> TestKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let point = private.verifying_key().to_encoded_point(false);
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        }),
        public_bytes: point.as_bytes().to_vec(),
    }
}

fn ed_key(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let private = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = private.verifying_key().to_bytes();
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&public) }),
        public_bytes: public.to_vec(),
    }
}

struct Keys {
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    /// Never published.
    rogue_rsa: TestKey,
    /// Published only after a rotation.
    next_rsa: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (rsa, (rogue_rsa, next_rsa)) = std::thread::scope(|s| {
            let a = s.spawn(|| rsa_key("rsa-1"));
            let b = s.spawn(|| rsa_key("rsa-1"));
            let c = rsa_key("rsa-2");
            (a.join().unwrap(), (b.join().unwrap(), c))
        });
        Keys {
            rsa,
            ec: ec_key("ec-1"),
            ed: ed_key("ed-1"),
            rogue_rsa,
            next_rsa,
        }
    })
}

fn jwks_of(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn claims(issuer: &str) -> Value {
    json!({
        "sub": "alice",
        "iss": issuer,
        "aud": RESOURCE,
        "iat": secs(now()),
        "exp": secs(now()) + 600,
        "scope": "notes:read",
    })
}

fn sign_with(key: &TestKey, kid: Option<&str>, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn sign(key: &TestKey, claims: &Value) -> String {
    sign_with(key, Some(&key.kid), key.alg, claims)
}

fn header_json(token: &str) -> Value {
    let first = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The issuer, on 127.0.0.1
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Issuer {
    jwks: Arc<Mutex<String>>,
    fetches: Arc<AtomicU64>,
    discoveries: Arc<AtomicU64>,
    up: Arc<AtomicBool>,
    base: String,
    /// The `issuer` the metadata claims (normally `base`).
    claimed_issuer: Arc<Mutex<String>>,
}

impl Issuer {
    async fn start(jwks: String) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let issuer = Issuer {
            jwks: Arc::new(Mutex::new(jwks)),
            fetches: Arc::new(AtomicU64::new(0)),
            discoveries: Arc::new(AtomicU64::new(0)),
            up: Arc::new(AtomicBool::new(true)),
            claimed_issuer: Arc::new(Mutex::new(base.clone())),
            base,
        };
        let app = axum::Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_metadata))
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        issuer
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, jwks: String) {
        *self.jwks.lock().unwrap() = jwks;
    }
}

async fn serve_jwks(State(issuer): State<Issuer>) -> impl IntoResponse {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    if !issuer.up.load(Ordering::SeqCst) {
        return (
            AxumStatus::SERVICE_UNAVAILABLE,
            AxumHeaders::new(),
            String::new(),
        );
    }
    let mut headers = AxumHeaders::new();
    headers.insert("content-type", "application/jwk-set+json".parse().unwrap());
    headers.insert("cache-control", "public, max-age=600".parse().unwrap());
    (AxumStatus::OK, headers, issuer.jwks.lock().unwrap().clone())
}

async fn serve_metadata(State(issuer): State<Issuer>) -> impl IntoResponse {
    issuer.discoveries.fetch_add(1, Ordering::SeqCst);
    let claimed = issuer.claimed_issuer.lock().unwrap().clone();
    let doc = json!({
        "issuer": claimed,
        "jwks_uri": issuer.jwks_url(),
        "authorization_endpoint": format!("{}/authorize", issuer.base),
        "token_endpoint": format!("{}/token", issuer.base),
    });
    let mut headers = AxumHeaders::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    (headers, doc.to_string())
}

/// Poll `done` (yielding in between) until it holds; panics after a generous bound. Waits for an
/// event, never measures time.
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

// ---------------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------------

struct Setup {
    issuer: Issuer,
    source: JwksKeySource,
    layer: AuthLayer,
    gap_clock: Arc<ManualMonotonicClock>,
}

async fn setup_with(
    jwks: String,
    configure: impl FnOnce(
        mcp_auth::jwks::JwksKeySourceBuilder,
        &Issuer,
    ) -> mcp_auth::jwks::JwksKeySourceBuilder,
) -> Setup {
    let issuer = Issuer::start(jwks).await;
    let gap_clock = Arc::new(ManualMonotonicClock::new(1_000_000_000_000));
    let source = configure(
        JwksKeySource::builder()
            .min_refresh_gap(GAP)
            .clock(gap_clock.clone()),
        &issuer,
    )
    .build()
    .unwrap();
    assert!(source.wait_loaded(WAIT).await, "the JWKS never loaded");
    let verifier = JwtVerifier::builder()
        .jwks(source.clone())
        .issuer(issuer.base.clone())
        .audience(RESOURCE)
        .build()
        .unwrap();
    let layer = AuthLayer::builder()
        .jwt(verifier)
        .resource(RESOURCE)
        .clock(Arc::new(ManualClock::new(now())))
        .build()
        .unwrap();
    Setup {
        issuer,
        source,
        layer,
        gap_clock,
    }
}

async fn setup() -> Setup {
    let k = keys();
    setup_with(jwks_of(&[&k.rsa, &k.ec, &k.ed]), |b, issuer| {
        b.jwks_url(issuer.jwks_url())
    })
    .await
}

fn assert_invalid_token(answer: &Answer, failure: AuthFailure) {
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
    assert_eq!(answer.failure(), Some(failure));
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    b64(&bytes)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_are_accepted() {
    let s = setup().await;
    let k = keys();
    assert_eq!(s.source.key_count(), 3);
    for key in [&k.rsa, &k.ec, &k.ed] {
        let answer = call(&s.layer, &sign(key, &claims(&s.issuer.base))).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", key.alg);
        assert_eq!(
            answer.body,
            json!({"sub": "alice", "scopes": ["notes:read"]})
        );
        assert!(matches!(
            answer.outcome,
            Some(AuthOutcome::Authenticated { .. })
        ));
    }
    assert_eq!(s.issuer.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_401() {
    let s = setup().await;
    let k = keys();
    let good = claims(&s.issuer.base);

    // Signed by a key the issuer never published, under a published kid.
    let wrong_key = sign_with(&k.rogue_rsa, Some("rsa-1"), Algorithm::RS256, &good);
    assert_invalid_token(&call(&s.layer, &wrong_key).await, AuthFailure::BadSignature);

    // A kid the set does not have.
    let unknown = sign_with(&k.rsa, Some("nope"), Algorithm::RS256, &good);
    assert_invalid_token(&call(&s.layer, &unknown).await, AuthFailure::UnknownKey);

    // An ES256 token naming the RSA key's kid: the key's type does not fit the alg.
    let mismatch = sign_with(&k.ec, Some("rsa-1"), Algorithm::ES256, &good);
    assert_invalid_token(
        &call(&s.layer, &mismatch).await,
        AuthFailure::UnsupportedAlgorithm,
    );
    // A PS256 token naming the Ed25519 key: an OKP key verifies EdDSA only.
    let ps_on_ed = sign_with(&k.rsa, Some("ed-1"), Algorithm::PS256, &good);
    assert_invalid_token(
        &call(&s.layer, &ps_on_ed).await,
        AuthFailure::UnsupportedAlgorithm,
    );

    // The classic confusion: HS256, "signed" with the RSA public key's bytes as the secret.
    for key in [&k.rsa, &k.ec, &k.ed] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let confused =
            jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(&key.public_bytes))
                .unwrap();
        assert_invalid_token(
            &call(&s.layer, &confused).await,
            AuthFailure::UnsupportedAlgorithm,
        );
    }

    // Expired (beyond the 30 s leeway).
    let mut expired = good.clone();
    expired["exp"] = json!(secs(now()) - 31);
    expired["iat"] = json!(secs(now()) - 600);
    assert_invalid_token(
        &call(&s.layer, &sign(&k.ed, &expired)).await,
        AuthFailure::Expired,
    );

    // Another audience.
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://other.example.com/mcp");
    assert_invalid_token(
        &call(&s.layer, &sign(&k.ec, &wrong_aud)).await,
        AuthFailure::WrongAudience,
    );

    // Another issuer.
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    assert_invalid_token(
        &call(&s.layer, &sign(&k.rsa, &wrong_iss)).await,
        AuthFailure::WrongIssuer,
    );

    // Key references in the header are never followed: refused outright.
    for (name, value) in [
        ("jku", json!(s.issuer.jwks_url())),
        ("x5u", json!("https://evil.example.com/cert.pem")),
        ("jwk", k.rogue_rsa.jwk.clone()),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let token = jsonwebtoken::encode(&header, &good, &k.rsa.encoding).unwrap();
        // Splice the member into the signed header: the signature no longer matters, the
        // header is refused before any key is looked up.
        let mut parts = token.split('.');
        let mut h = header_json(&token);
        h[name] = value;
        let _ = parts.next();
        let spliced = format!(
            "{}.{}.{}",
            b64(h.to_string().as_bytes()),
            parts.next().unwrap(),
            parts.next().unwrap()
        );
        assert_invalid_token(
            &call(&s.layer, &spliced).await,
            AuthFailure::MalformedCredential,
        );
    }

    // None of this caused a fetch beyond the first: the gap clock has not moved.
    assert_eq!(s.issuer.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_picked_up_without_restart() {
    let s = setup().await;
    let k = keys();
    let token = sign(&k.next_rsa, &claims(&s.issuer.base));
    assert_invalid_token(&call(&s.layer, &token).await, AuthFailure::UnknownKey);

    // The issuer rotates: the new key in, the old one out.
    s.issuer.publish(jwks_of(&[&k.next_rsa, &k.ec, &k.ed]));
    s.gap_clock.advance(GAP);
    // The first request with the new kid asks for a refresh (and is refused: it never waits on
    // the network); once the refresh is in, the same token passes.
    assert_invalid_token(&call(&s.layer, &token).await, AuthFailure::UnknownKey);
    eventually(|| s.issuer.fetches() == 2).await;
    let mut passed = false;
    for _ in 0..2_000 {
        if call(&s.layer, &token).await.status == StatusCode::OK {
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(passed, "the rotated key was never picked up");
    let old = sign(&k.rsa, &claims(&s.issuer.base));
    assert_invalid_token(&call(&s.layer, &old).await, AuthFailure::UnknownKey);
    assert_eq!(s.issuer.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_kids_fetches_at_most_once_per_gap() {
    let s = setup().await;
    let k = keys();
    let base = s.issuer.base.clone();
    let flood = |layer: AuthLayer| {
        let base = base.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..1_000 {
                let layer = layer.clone();
                // The kid is looked up before any signature check: no need to sign each one.
                let header = json!({"alg": "ES256", "typ": "JWT", "kid": random_kid()});
                let token = format!(
                    "{}.{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(claims(&base).to_string().as_bytes()),
                    b64(&[7u8; 64])
                );
                tasks.spawn(async move { call(&layer, &token).await.failure() });
            }
            while let Some(failure) = tasks.join_next().await {
                assert_eq!(failure.unwrap(), Some(AuthFailure::UnknownKey));
            }
        }
    };

    // Within the gap of the first fetch: no fetch at all.
    flood(s.layer.clone()).await;
    assert_eq!(s.issuer.fetches(), 1);

    // A gap later: 1 000 concurrent unknown kids share one fetch.
    s.gap_clock.advance(GAP);
    flood(s.layer.clone()).await;
    eventually(|| s.issuer.fetches() >= 2).await;
    // Another flood within the same gap adds nothing; a later one-off refresh is the third fetch,
    // so a stray extra fetch from the floods would show as a fourth.
    flood(s.layer.clone()).await;
    s.gap_clock.advance(GAP);
    let _ = call(
        &s.layer,
        &sign_with(&k.ec, Some("one-more"), Algorithm::ES256, &claims(&base)),
    )
    .await;
    eventually(|| s.issuer.fetches() >= 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.issuer.fetches(), 3);
    assert_eq!(s.source.fetch_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_kids_still_verify_while_the_issuer_is_down() {
    let s = setup().await;
    let k = keys();
    s.issuer.up.store(false, Ordering::SeqCst);
    s.gap_clock.advance(GAP);
    // An unknown kid triggers a fetch, which fails.
    let unknown = sign_with(
        &k.ed,
        Some(&random_kid()),
        Algorithm::EdDSA,
        &claims(&s.issuer.base),
    );
    assert_invalid_token(&call(&s.layer, &unknown).await, AuthFailure::UnknownKey);
    eventually(|| s.issuer.fetches() == 2).await;
    // The failed fetch's outcome is processed on the task; keys must survive it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.source.key_count(), 3);
    for key in [&k.rsa, &k.ec, &k.ed] {
        let answer = call(&s.layer, &sign(key, &claims(&s.issuer.base))).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", key.alg);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_through_openid_configuration() {
    let k = keys();
    let s = setup_with(jwks_of(&[&k.rsa, &k.ec, &k.ed]), |b, issuer| {
        b.discover(issuer.base.clone())
    })
    .await;
    assert_eq!(s.issuer.discoveries.load(Ordering::SeqCst), 1);
    assert_eq!(s.source.issuer(), Some(s.issuer.base.as_str()));
    let answer = call(&s.layer, &sign(&k.rsa, &claims(&s.issuer.base))).await;
    assert_eq!(answer.status, StatusCode::OK);

    // The protected-resource metadata names the issuer as the authorization server.
    let svc =
        ServiceBuilder::new()
            .layer(s.layer.clone())
            .service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
    let res = svc
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/mcp")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let doc: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(doc["authorization_servers"], json!([s.issuer.base]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_metadata_naming_another_issuer() {
    let k = keys();
    let issuer = Issuer::start(jwks_of(&[&k.rsa])).await;
    *issuer.claimed_issuer.lock().unwrap() = "https://evil.example.com".to_owned();
    let source = JwksKeySource::builder()
        .discover(issuer.base.clone())
        .build()
        .unwrap();
    eventually(|| issuer.discoveries.load(Ordering::SeqCst) >= 1).await;
    assert!(!source.wait_loaded(Duration::from_millis(300)).await);
    assert_eq!(
        issuer.fetches(),
        0,
        "the jwks_uri of a mismatched issuer is never fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_and_jwks_side_by_side_from_env() {
    let k = keys();
    let issuer = Issuer::start(jwks_of(&[&k.rsa, &k.ec, &k.ed])).await;
    let secret = "env-secret-0123456789abcdef0123456789abcdef";
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_JWT_SECRET", secret.to_owned()),
            ("MCP_JWKS_URL", issuer.jwks_url()),
            ("MCP_JWT_ISSUER", issuer.base.clone()),
            ("MCP_JWT_AUDIENCE", RESOURCE.to_owned()),
            ("MCP_JWT_ALGORITHMS", "HS256,ES256".to_owned()),
            ("MCP_RESOURCE_URL", RESOURCE.to_owned()),
        ],
    );
    let verifier = AuthLayer::jwt_from_env(&env).unwrap().unwrap();
    assert!(verifier.has_secrets() && verifier.has_jwks());
    let source = verifier.jwks().unwrap().clone();
    assert_eq!(source.algorithms(), [Algorithm::ES256]);
    assert!(source.wait_loaded(WAIT).await);
    let layer = AuthLayer::builder_from_env(&env)
        .unwrap()
        .clock(Arc::new(ManualClock::new(now())))
        .build()
        .unwrap();

    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&issuer.base),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(call(&layer, &hs).await.status, StatusCode::OK);
    // The layer built its own key source from the environment, which loads in the background
    // (no request waits on a fetch): ES256 verifies once the issuer has served it the keys.
    let es = sign(&k.ec, &claims(&issuer.base));
    eventually(|| issuer.fetches() >= 2).await;
    let mut status = call(&layer, &es).await.status;
    for _ in 0..400 {
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        status = call(&layer, &es).await.status;
    }
    assert_eq!(status, StatusCode::OK);
    // RS256 is not on the allow-list, although the key is published.
    assert_invalid_token(
        &call(&layer, &sign(&k.rsa, &claims(&issuer.base))).await,
        AuthFailure::UnsupportedAlgorithm,
    );
    // HS256 signed with a public key: routed to the secrets, which do not verify it.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(&issuer.base),
        &EncodingKey::from_secret(&k.rsa.public_bytes),
    )
    .unwrap();
    assert_invalid_token(&call(&layer, &confused).await, AuthFailure::BadSignature);
}

#[test]
fn env_errors_name_the_variable() {
    let err = |pairs: &[(&str, &str)]| {
        AuthLayer::jwt_from_env(&Env::from_pairs("MCP", pairs.iter().map(|(k, v)| (*k, *v))))
            .unwrap_err()
    };
    let e = err(&[("MCP_JWKS_URL", "http://id.example.com/jwks")]);
    assert_eq!(e.setting(), "MCP_JWKS_URL");
    assert!(e.reason().contains("https"), "{e}");
    let e = err(&[("MCP_JWT_ISSUER", "http://id.example.com")]);
    assert_eq!(e.setting(), "MCP_JWT_ISSUER");
    let e = err(&[
        ("MCP_JWKS_URL", "https://id.example.com/jwks"),
        ("MCP_JWT_ALGORITHMS", "HS256,RS256"),
    ]);
    assert_eq!(e.setting(), "MCP_JWT_ALGORITHMS");
    let e = err(&[
        ("MCP_JWKS_URL", "https://id.example.com/jwks"),
        ("MCP_JWT_ALGORITHMS", "RS257"),
    ]);
    assert_eq!(e.setting(), "MCP_JWT_ALGORITHMS");
    let e = err(&[
        (
            "MCP_JWT_SECRET",
            "env-secret-0123456789abcdef0123456789abcdef",
        ),
        ("MCP_JWT_ALGORITHMS", "RS256"),
    ]);
    assert_eq!(e.setting(), "MCP_JWT_ALGORITHMS");
    // Issuer alone means discovery.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let v = AuthLayer::jwt_from_env(&Env::from_pairs(
            "MCP",
            [("MCP_JWT_ISSUER", "https://id.example.com/realms/mcp")],
        ))
        .unwrap()
        .unwrap();
        assert!(v.has_jwks() && !v.has_secrets());
        assert_eq!(
            v.jwks().unwrap().issuer(),
            Some("https://id.example.com/realms/mcp")
        );
    });
}

#[test]
fn a_jwks_only_verifier_cannot_sign() {
    let k = keys();
    let source = JwksKeySource::builder()
        .json(jwks_of(&[&k.ed]))
        .build()
        .unwrap();
    let v = JwtVerifier::builder().jwks(source).build().unwrap();
    let e = v.sign_claims(&json!({"sub": "a", "exp": 1})).unwrap_err();
    assert_eq!(e.setting(), "jwt_secret");
    // A fixed set verifies without any network.
    let token = sign(&k.ed, &json!({"sub": "a", "exp": secs(now()) + 60}));
    assert_eq!(v.verify(&token, now()).unwrap().id(), "a");
    // Without kid: fine when exactly one key fits the alg.
    let token = sign_with(
        &k.ed,
        None,
        Algorithm::EdDSA,
        &json!({"sub": "a", "exp": secs(now()) + 60}),
    );
    assert_eq!(v.verify(&token, now()).unwrap().id(), "a");
}

#[test]
fn built_outside_a_runtime_the_refresh_starts_on_first_use() {
    let k = keys();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let issuer = runtime.block_on(Issuer::start(jwks_of(&[&k.ed])));
    // No runtime is entered here: nothing can be fetched yet.
    let source = JwksKeySource::builder()
        .jwks_url(issuer.jwks_url())
        .build()
        .unwrap();
    assert_eq!(source.fetch_count(), 0);
    assert!(!source.is_loaded());
    assert!(runtime.block_on(source.wait_loaded(WAIT)));
    assert_eq!(issuer.fetches(), 1);
}
