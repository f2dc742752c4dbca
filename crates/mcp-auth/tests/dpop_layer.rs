//! DPoP (RFC 9449) through AuthLayer over real sockets: an axum server on 127.0.0.1 behind the
//! layer with an HS256 JwtVerifier, a test issuer minting tokens bound by `cnf.jkt`, and proofs
//! signed with real P-256 and Ed25519 keys. Every refusal is checked for status, both
//! `WWW-Authenticate` challenges, `DPoP-Nonce`, body and the audit outcome.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_auth::api_key::ApiKeyStore;
use mcp_auth::dpop::{DpopMode, DpopVerifier};
use mcp_auth::jwt::JwtVerifier;
use mcp_auth::layer::{AuthLayer, AuthLayerBuilder};
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::clock::ManualClock;
use mcp_security_core::config::{Env, Secret};
use mcp_security_core::{AuthOutcome, Principal, Scopes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::util::MapResponseLayer;

const SECRET: &str = "dpop-layer-test-secret-0123456789abcdef";
const AUDIENCE: &str = "mcp-test";
/// The public URL of the resource: what clients sign as `htu` behind the proxy, whatever `Host`
/// the server sees (127.0.0.1:<port>).
const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const API_KEY: &str = "mcp-sk-dpopAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const NOW: u64 = 1_800_000_000;
const ALGS: &str = r#"DPoP algs="ES256 EdDSA RS256 PS256""#;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A client's DPoP key: signs proofs, knows its public JWK and thumbprint.
struct ClientKey {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl ClientKey {
    fn es256() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().unwrap();
        Self {
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
        }
    }

    fn ed25519() -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().unwrap();
        Self {
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
            }),
        }
    }

    fn jkt(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    /// A compact JWS with `typ: dpop+jwt` and this key's public JWK in the header.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({
            "typ": "dpop+jwt",
            "alg": serde_json::to_value(self.alg).unwrap(),
            "jwk": self.jwk,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg);
        format!("{input}.{}", signature.unwrap())
    }

    /// A proof for `method url` with `token`, at `NOW`, with a fresh `jti`.
    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&proof_claims(method, url, token))
    }
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn jti() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).unwrap();
    URL_SAFE_NO_PAD.encode(raw)
}

fn proof_claims(method: &str, url: &str, token: &str) -> Value {
    json!({"jti": jti(), "htm": method, "htu": url, "iat": NOW, "ath": ath(token)})
}

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// The test issuer: a token for `sub`, bound to `jkt` when given.
fn mint(sub: &str, jkt: Option<&str>) -> String {
    let mut claims = json!({
        "sub": sub, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 600, "scope": "notes:read",
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    verifier().sign_claims(&claims).unwrap()
}

fn builder(mode: DpopMode, nonce: bool) -> AuthLayerBuilder {
    AuthLayer::builder()
        .jwt(verifier())
        .dpop(DpopVerifier::builder().nonce(nonce).build().unwrap())
        .dpop_mode(mode)
        .policy(
            AuthPolicy::builder()
                .require_path("/admin", None, ["admin"])
                .build()
                .unwrap(),
        )
        .clock(Arc::new(ManualClock::new(now())))
}

/// An outer layer that exposes the audit outcome's failure label to the test client.
fn outcome_header<B>(mut res: Response<B>) -> Response<B> {
    if let Some(AuthOutcome::Rejected { failure, .. }) = res.extensions().get::<AuthOutcome>() {
        let label = HeaderValue::from_static(failure.as_str());
        res.headers_mut().insert("x-auth-failure", label);
    }
    res
}

/// Serve `layer` on 127.0.0.1:0 in front of a handler that reports what it saw.
async fn serve(layer: AuthLayer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(|req: axum::extract::Request| async move {
            let principal = req.extensions().get::<Principal>();
            json!({
                "principal": principal.map(|p| p.id().to_owned()),
                "jkt": principal.and_then(|p| p.confirmation_jkt().map(str::to_owned)),
                "authorization": req.headers().contains_key("authorization"),
                "dpop": req.headers().contains_key("dpop"),
            })
            .to_string()
        })
        .layer(layer)
        .layer(MapResponseLayer::new(outcome_header::<axum::body::Body>));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    failure: Option<String>,
    body: Value,
}

/// `method base+path` with `Authorization: <authorization>` and each of `proofs` as a `DPoP`
/// header.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    authorization: Option<String>,
    proofs: &[&str],
) -> Answer {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    for proof in proofs {
        req = req.header("dpop", *proof);
    }
    let res = req.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let challenges = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = header("dpop-nonce");
    let failure = header("x-auth-failure");
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    Answer {
        status,
        challenges,
        nonce,
        failure,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

fn dpop_auth(token: &str) -> Option<String> {
    Some(format!("DPoP {token}"))
}

/// The refusal of a bad proof: 401, the Bearer challenge without an error (bearer tokens are
/// still accepted), the DPoP challenge with `invalid_dpop_proof`, the OAuth JSON body.
fn assert_invalid_proof(a: &Answer, failure: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\""),
            format!("{ALGS}, error=\"invalid_dpop_proof\""),
        ]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_dpop_proof","error_description":"The DPoP proof is invalid"})
    );
    assert_eq!(a.nonce, None);
    assert_eq!(a.failure.as_deref(), Some(failure));
}

#[tokio::test]
async fn a_good_proof_with_p256_or_ed25519_is_accepted_and_stripped() {
    let base = serve(
        builder(DpopMode::Allowed, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    for key in [ClientKey::es256(), ClientKey::ed25519()] {
        let token = mint("agent", Some(&key.jkt()));
        let proof = key.proof("POST", RESOURCE, &token);
        let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        assert_eq!(
            a.body,
            json!({"principal":"agent","jkt":key.jkt(),"authorization":false,"dpop":false})
        );
        assert_eq!(a.failure, None);
        assert_eq!(a.nonce, None, "no server nonces here");
        // The scheme is case-insensitive; the query is not part of htu.
        let proof = key.proof("GET", RESOURCE, &token);
        let a = send(
            &base,
            "GET",
            "/mcp?x=1",
            Some(format!("dpop {token}")),
            &[&proof],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    }
}

#[tokio::test]
async fn replayed_wrong_url_method_time_token_or_key_are_invalid_proofs() {
    let base = serve(
        builder(DpopMode::Allowed, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let auth = || dpop_auth(&token);

    // Replay: the first use passes, the same proof again is refused (the token itself is
    // unchanged, so this also holds when the verified token is remembered).
    let proof = key.proof("POST", RESOURCE, &token);
    let a = send(&base, "POST", "/mcp", auth(), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(&base, "POST", "/mcp", auth(), &[&proof]).await;
    assert_invalid_proof(&a, "invalid_dpop_proof");

    // htu names another server, or the Host the server sees instead of the public URL.
    for url in [
        "https://other.example.com/mcp".to_owned(),
        format!("{base}/mcp"),
    ] {
        let proof = key.proof("POST", &url, &token);
        let a = send(&base, "POST", "/mcp", auth(), &[&proof]).await;
        assert_invalid_proof(&a, "invalid_dpop_proof");
    }
    // htu of another path.
    let proof = key.proof("POST", "https://mcp.example.com/other", &token);
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&proof]).await,
        "invalid_dpop_proof",
    );
    // htm.
    let proof = key.proof("GET", RESOURCE, &token);
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&proof]).await,
        "invalid_dpop_proof",
    );
    // iat an hour old, and an hour ahead.
    for iat in [NOW - 3600, NOW + 3600] {
        let mut claims = proof_claims("POST", RESOURCE, &token);
        claims["iat"] = json!(iat);
        let proof = key.sign(&claims);
        assert_invalid_proof(
            &send(&base, "POST", "/mcp", auth(), &[&proof]).await,
            "invalid_dpop_proof",
        );
    }
    // ath of another token, and none.
    let other = mint("agent", Some(&key.jkt())) + "x";
    let proof = key.proof("POST", RESOURCE, &other);
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&proof]).await,
        "invalid_dpop_proof",
    );
    let mut claims = proof_claims("POST", RESOURCE, &token);
    claims.as_object_mut().unwrap().remove("ath");
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&key.sign(&claims)]).await,
        "invalid_dpop_proof",
    );
    // A valid proof by another key than the token's.
    let thief = ClientKey::ed25519();
    let proof = thief.proof("POST", RESOURCE, &token);
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&proof]).await,
        "dpop_binding_mismatch",
    );
    // No proof, two proofs, garbage.
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[]).await,
        "invalid_dpop_proof",
    );
    let (p1, p2) = (
        key.proof("POST", RESOURCE, &token),
        key.proof("POST", RESOURCE, &token),
    );
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &[&p1, &p2]).await,
        "invalid_dpop_proof",
    );
    assert_invalid_proof(
        &send(&base, "POST", "/mcp", auth(), &["not.a.proof"]).await,
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn a_bound_token_as_bearer_is_refused_in_every_mode() {
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", RESOURCE, &token);
    for (mode, challenges) in [
        (
            DpopMode::Allowed,
            vec![
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"A DPoP-bound access \
                     token needs the DPoP scheme and a proof\", resource_metadata=\"{METADATA}\""
                ),
                ALGS.to_owned(),
            ],
        ),
        (
            // No DPoP challenge: this server does not take DPoP at all.
            DpopMode::Off,
            vec![format!(
                "Bearer error=\"invalid_token\", error_description=\"A DPoP-bound access token \
                 needs the DPoP scheme and a proof\", resource_metadata=\"{METADATA}\""
            )],
        ),
    ] {
        let base = serve(builder(mode, false).resource(RESOURCE).build().unwrap()).await;
        let a = send(
            &base,
            "POST",
            "/mcp",
            Some(format!("Bearer {token}")),
            &[&proof],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{mode}");
        assert_eq!(a.challenges, challenges, "{mode}");
        assert_eq!(
            a.body,
            json!({"error":"invalid_token",
                   "error_description":"A DPoP-bound access token needs the DPoP scheme and a proof"})
        );
        assert_eq!(a.failure.as_deref(), Some("bound_token_as_bearer"));
    }
}

#[tokio::test]
async fn off_mode_treats_the_dpop_scheme_as_malformed() {
    let base = serve(
        builder(DpopMode::Off, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", RESOURCE, &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [format!(
            "Bearer error=\"invalid_token\", error_description=\"The credential is malformed\", \
             resource_metadata=\"{METADATA}\""
        )]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_token","error_description":"The credential is malformed"})
    );
    assert_eq!(a.failure.as_deref(), Some("malformed_credential"));
    // Unbound bearer tokens work as before.
    let plain = mint("reader", None);
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn allowed_mode_takes_unbound_bearer_tokens_but_not_unbound_dpop_tokens() {
    let base = serve(
        builder(DpopMode::Allowed, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let plain = mint("reader", None);
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"principal":"reader","jkt":null,"authorization":false,"dpop":false})
    );

    let key = ClientKey::es256();
    let proof = key.proof("POST", RESOURCE, &plain);
    let a = send(&base, "POST", "/mcp", dpop_auth(&plain), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\""),
            format!("{ALGS}, error=\"invalid_token\""),
        ]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_token",
               "error_description":"The access token is not bound to a DPoP key"})
    );
    assert_eq!(a.failure.as_deref(), Some("dpop_binding_mismatch"));

    // A token that fails verification with the DPoP scheme: the error on the DPoP challenge.
    let proof = key.proof("POST", RESOURCE, "forged");
    let a = send(&base, "POST", "/mcp", dpop_auth("a.b.c"), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\""),
            format!("{ALGS}, error=\"invalid_token\""),
        ]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_token",
               "error_description":"The credential is invalid, expired or revoked"})
    );

    // No credential at all: both schemes offered, no error.
    let a = send(&base, "POST", "/mcp", None, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\""),
            ALGS.to_owned()
        ]
    );
    assert_eq!(a.failure.as_deref(), Some("missing_credential"));

    // A bound token with a good proof but without the scope: 403 on the DPoP challenge.
    let token = mint("agent", Some(&key.jkt()));
    let url = "https://mcp.example.com/admin";
    let proof = key.proof("POST", url, &token);
    let a = send(&base, "POST", "/admin", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\", scope=\"admin\""),
            format!("{ALGS}, error=\"insufficient_scope\""),
        ]
    );
    assert_eq!(
        a.body,
        json!({"error":"insufficient_scope",
               "error_description":"The credential lacks a scope this request needs",
               "required_scopes":["admin"]})
    );
}

#[tokio::test]
async fn required_mode_refuses_bearer_jwts_and_unbound_tokens() {
    let base = serve(
        builder(DpopMode::Required, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let plain = mint("reader", None);
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // No bearer credential can succeed here: only the DPoP challenge, with the metadata URL.
    assert_eq!(
        a.challenges,
        [format!(
            "{ALGS}, error=\"invalid_token\", resource_metadata=\"{METADATA}\""
        )]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_token",
               "error_description":"A DPoP-bound access token and proof are required"})
    );
    assert_eq!(a.failure.as_deref(), Some("dpop_required"));

    let a = send(&base, "POST", "/mcp", None, &[]).await;
    assert_eq!(
        a.challenges,
        [format!("{ALGS}, resource_metadata=\"{METADATA}\"")]
    );
    assert_eq!(
        a.body,
        json!({"error":"invalid_token","error_description":"Authentication required"})
    );

    let key = ClientKey::ed25519();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", RESOURCE, &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn required_mode_with_api_keys_keeps_the_bearer_challenge() {
    let layer = builder(DpopMode::Required, false)
        .resource(RESOURCE)
        .api_keys(
            ApiKeyStore::builder()
                .key("ci", API_KEY, Scopes::new(["*"]))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let base = serve(layer).await;
    let a = send(
        &base,
        "POST",
        "/mcp",
        Some(format!("Bearer {API_KEY}")),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let plain = mint("reader", None);
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!(
                "Bearer error=\"invalid_token\", error_description=\"A DPoP-bound access token \
                 and proof are required\", resource_metadata=\"{METADATA}\""
            ),
            ALGS.to_owned(),
        ]
    );
    assert_eq!(a.failure.as_deref(), Some("dpop_required"));
}

#[tokio::test]
async fn server_nonces_first_use_dpop_nonce_then_accept_the_retry() {
    let base = serve(
        builder(DpopMode::Allowed, true)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", RESOURCE, &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!("Bearer resource_metadata=\"{METADATA}\""),
            format!("{ALGS}, error=\"use_dpop_nonce\""),
        ]
    );
    assert_eq!(
        a.body,
        json!({"error":"use_dpop_nonce",
               "error_description":"Authorization server requires nonce in DPoP proof"})
    );
    assert_eq!(a.failure.as_deref(), Some("dpop_nonce_required"));
    let nonce = a.nonce.expect("a DPoP-Nonce header");

    // A nonce this server never issued is answered the same way.
    let mut claims = proof_claims("POST", RESOURCE, &token);
    claims["nonce"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let a = send(
        &base,
        "POST",
        "/mcp",
        dpop_auth(&token),
        &[&key.sign(&claims)],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure.as_deref(), Some("dpop_nonce_required"));
    assert!(a.nonce.is_some());

    let mut claims = proof_claims("POST", RESOURCE, &token);
    claims["nonce"] = json!(nonce);
    let a = send(
        &base,
        "POST",
        "/mcp",
        dpop_auth(&token),
        &[&key.sign(&claims)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["jkt"], json!(key.jkt()));
    // Accepted DPoP requests carry the current nonce, to move on to before this one expires.
    assert_eq!(a.nonce.as_deref(), Some(nonce.as_str()));
    // Bearer requests do not.
    let plain = mint("reader", None);
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.nonce, None);
}

#[tokio::test]
async fn without_a_resource_htu_is_the_allowed_host_url() {
    // The audience is not a URL, so the resource is derived from an allowed Host
    // (127.0.0.1 is on the default loopback list) with http://.
    let base = serve(builder(DpopMode::Allowed, false).build().unwrap()).await;
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", &format!("{base}/mcp"), &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let proof = key.proof(
        "POST",
        &format!("{base}/mcp").replace("http:", "https:"),
        &token,
    );
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure.as_deref(), Some("invalid_dpop_proof"));
}

#[tokio::test]
async fn an_empty_cnf_jkt_is_an_invalid_token() {
    let base = serve(
        builder(DpopMode::Allowed, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let bad = verifier()
        .sign_claims(&json!({"sub":"agent","aud":AUDIENCE,"exp":NOW + 600,"cnf":{"jkt":""}}))
        .unwrap();
    let a = send(&base, "POST", "/mcp", Some(format!("Bearer {bad}")), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure.as_deref(), Some("invalid_claims"));
    assert_eq!(
        a.body,
        json!({"error":"invalid_token",
               "error_description":"The credential is invalid, expired or revoked"})
    );
}

#[tokio::test]
async fn metadata_advertises_dpop() {
    for (mode, required) in [(DpopMode::Allowed, None), (DpopMode::Required, Some(true))] {
        let base = serve(builder(mode, false).resource(RESOURCE).build().unwrap()).await;
        let a = send(
            &base,
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
            None,
            &[],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.body["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA", "RS256", "PS256"])
        );
        assert_eq!(
            a.body.get("dpop_bound_access_tokens_required"),
            required.map(Value::Bool).as_ref()
        );
    }
    let base = serve(
        builder(DpopMode::Off, false)
            .resource(RESOURCE)
            .build()
            .unwrap(),
    )
    .await;
    let a = send(
        &base,
        "GET",
        "/.well-known/oauth-protected-resource",
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.get("dpop_signing_alg_values_supported"), None);
}

#[test]
fn the_environment_sets_mode_and_nonces_and_names_bad_variables() {
    let env = |pairs: &[(&str, &str)]| {
        let mut all = vec![("MCP_JWT_SECRET", SECRET)];
        all.extend_from_slice(pairs);
        Env::from_pairs("MCP", all.iter().map(|(k, v)| (*k, *v)))
    };
    let layer = AuthLayer::builder_from_env(&env(&[]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(layer.dpop_mode(), DpopMode::Off);
    let layer = AuthLayer::builder_from_env(&env(&[("MCP_DPOP", "required")]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(layer.dpop_mode(), DpopMode::Required);
    assert!(layer.summary().ends_with("dpop: required"));
    let (mode, v) = DpopVerifier::from_env(&env(&[
        ("MCP_DPOP", "Allowed"),
        ("MCP_DPOP_NONCE", "true"),
        (
            "MCP_DPOP_NONCE_KEY",
            "a-shared-nonce-key-of-32-bytes-or-more",
        ),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(mode, DpopMode::Allowed);
    assert!(v.requires_nonce());

    for (pairs, var, reason) in [
        (
            &[("MCP_DPOP", "sometimes")][..],
            "MCP_DPOP",
            "is not a DPoP mode",
        ),
        (
            &[("MCP_DPOP_NONCE", "true")][..],
            "MCP_DPOP_NONCE",
            "set MCP_DPOP to allowed or required",
        ),
        (
            &[("MCP_DPOP", "allowed"), ("MCP_DPOP_NONCE", "maybe")][..],
            "MCP_DPOP_NONCE",
            "expected true/false",
        ),
        (
            &[
                ("MCP_DPOP", "allowed"),
                ("MCP_DPOP_NONCE", "true"),
                ("MCP_DPOP_NONCE_KEY", "short"),
            ][..],
            "MCP_DPOP_NONCE_KEY",
            "at least 32 bytes",
        ),
        (
            &[
                ("MCP_DPOP", "allowed"),
                (
                    "MCP_DPOP_NONCE_KEY",
                    "a-shared-nonce-key-of-32-bytes-or-more",
                ),
            ][..],
            "MCP_DPOP_NONCE_KEY",
            "set MCP_DPOP_NONCE=true",
        ),
    ] {
        let e = AuthLayer::builder_from_env(&env(pairs)).unwrap_err();
        assert_eq!(e.setting(), var, "{pairs:?}");
        assert!(e.to_string().contains(reason), "{pairs:?}: {e}");
        assert!(!e.to_string().contains("a-shared-nonce-key"), "{e}");
    }
}

#[test]
fn dpop_without_a_jwt_verifier_is_refused_naming_the_setting() {
    let keys = ApiKeyStore::builder()
        .key("ci", API_KEY, Scopes::new(["*"]))
        .build()
        .unwrap();
    let e = AuthLayer::builder()
        .api_keys(keys)
        .dpop_mode(DpopMode::Required)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "dpop");
    assert!(e.to_string().contains("configure a JWT verifier"), "{e}");
}

#[tokio::test]
async fn behind_a_proxy_that_rewrites_the_path_htu_is_the_resource_url() {
    // The proxy serves https://mcp.example.com/tenant/mcp from this server's /mcp.
    let public = "https://mcp.example.com/tenant/mcp";
    let base = serve(
        builder(DpopMode::Allowed, false)
            .resource(public)
            .build()
            .unwrap(),
    )
    .await;
    let key = ClientKey::es256();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("POST", public, &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    // Other paths keep their own path under the public origin.
    let proof = key.proof("GET", "https://mcp.example.com/status", &token);
    let a = send(&base, "GET", "/status", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    // The path the server sees is not what the client signed.
    let proof = key.proof("POST", "https://mcp.example.com/mcp", &token);
    let a = send(&base, "POST", "/mcp", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.failure.as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(
        a.challenges[1],
        format!("{ALGS}, error=\"invalid_dpop_proof\"")
    );
}

#[tokio::test]
async fn with_no_trusted_host_htu_is_the_request_url() {
    let base = serve(
        builder(DpopMode::Allowed, false)
            .any_host()
            .build()
            .unwrap(),
    )
    .await;
    let key = ClientKey::ed25519();
    let token = mint("agent", Some(&key.jkt()));
    let proof = key.proof("PUT", &format!("{base}/items/7"), &token);
    let a = send(&base, "PUT", "/items/7", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let proof = key.proof("PUT", &format!("{base}/items/8"), &token);
    let a = send(&base, "PUT", "/items/7", dpop_auth(&token), &[&proof]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // No resource is known: neither challenge names the metadata.
    assert_eq!(
        a.challenges,
        [
            "Bearer".to_owned(),
            format!("{ALGS}, error=\"invalid_dpop_proof\"")
        ]
    );
    assert_eq!(a.failure.as_deref(), Some("invalid_dpop_proof"));
}
