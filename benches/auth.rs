//! What `AuthLayer` adds to one request: a full `tower` call (poll_ready + call + the response
//! future) through a trivial inner service that answers an empty 200, bare and behind the layer,
//! once with an API key (`Authorization: Bearer <key>` checked in constant time against a store
//! of ten keys) and once with an HS256 JWT (signed once, signature and claims verified on every
//! request), and with asymmetric JWTs whose keys come from a JWKS (`JwksKeySource`, a fixed
//! inline set: the key lookup by `kid` and the signature check are what is measured, no network):
//! RS256 (2048-bit RSA), ES256 (P-256) and EdDSA (Ed25519), all in the same group as HS256.
//! Each JWT is measured twice: at first sight (a verifier with its verified-token cache off, so
//! every request pays the signature and claims checks, as the first request with a new token
//! does) and cached (the default verifier: the same token again, as an agent sends it for
//! minutes; SHA-256 of the token, a sharded map lookup and the time checks).
//! A second group prices the refusals: no credential at all, and a JWT whose signature does not
//! verify (refusals are never cached). The request is built fresh on every iteration.
//!
//! Run: `cargo bench -p benches --bench auth` (short: add
//! `-- --warm-up-time 1 --measurement-time 3`)
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth::api_key::{ApiKeyStore, DEFAULT_KEY_PREFIX, generate_key};
use mcp_auth::jwks::JwksKeySource;
use mcp_auth::jwt::{JwtVerifier, TokenRequest};
use mcp_auth::layer::AuthLayer;
use mcp_auth::policy::AuthPolicy;
use mcp_security_core::Scopes;
use mcp_security_core::config::Secret;
use tower::{Service, ServiceBuilder, ServiceExt};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &str = "other-secret-0123456789abcdef0123456789abcdef";
const KEYS: usize = 10;

/// The inner service every variant wraps: an empty 200.
async fn ok(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

fn verifier(secret: &str) -> JwtVerifier {
    JwtVerifier::builder()
        .secret(Secret::new(secret))
        .audience(RESOURCE)
        .build()
        .expect("verifier")
}

fn token(verifier: &JwtVerifier) -> HeaderValue {
    let token = verifier
        .sign(
            &TokenRequest {
                sub: "alice".into(),
                audience: vec![RESOURCE.into()],
                issuer: None,
                ttl: Duration::from_secs(3600),
                scopes: vec!["notes:read".into(), "notes:write".into()],
            },
            SystemTime::now(),
        )
        .expect("token");
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

/// An asymmetric key: its signing key and its public JWK.
struct AsymmetricKey {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn asymmetric_keys() -> Vec<AsymmetricKey> {
    // One trait (the `pkcs8` crate) for both the P-256 and the Ed25519 key.
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::rand_core::{OsRng, RngCore as _};
    use rsa::traits::PublicKeyParts as _;

    let rsa = rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key");
    let ec = p256::ecdsa::SigningKey::random(&mut OsRng);
    let point = ec.verifying_key().to_encoded_point(false);
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let ed = ed25519_dalek::SigningKey::from_bytes(&seed);
    vec![
        AsymmetricKey {
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(rsa.to_pkcs1_der().expect("der").as_bytes()),
            jwk: serde_json::json!({"kty": "RSA", "kid": "rsa", "n": b64(&rsa.n().to_bytes_be()),
                "e": b64(&rsa.e().to_bytes_be())}),
        },
        AsymmetricKey {
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(ec.to_pkcs8_der().expect("der").as_bytes()),
            jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec",
                "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}),
        },
        AsymmetricKey {
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(ed.to_pkcs8_der().expect("der").as_bytes()),
            jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                "x": b64(&ed.verifying_key().to_bytes())}),
        },
    ]
}

fn asymmetric_token(key: &AsymmetricKey) -> HeaderValue {
    let mut header = Header::new(key.alg);
    header.kid = key.jwk["kid"].as_str().map(str::to_owned);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"sub": "alice", "aud": RESOURCE, "iat": now,
        "exp": now + 3600, "scope": "notes:read notes:write"});
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding).expect("token");
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

fn request(authorization: Option<&HeaderValue>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/api");
    if let Some(value) = authorization {
        req = req.header(AUTHORIZATION, value.clone());
    }
    req.body(Full::default()).expect("request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut store = ApiKeyStore::builder();
    let mut key = String::new();
    for i in 0..KEYS {
        key = generate_key(DEFAULT_KEY_PREFIX).expect("key");
        store = store.key(format!("client-{i}"), &key, Scopes::new(["notes:read"]));
    }
    // The last key in the store; the scan is constant time, so which one does not matter.
    let api_key = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
    let jwt = verifier(SECRET);
    let good_jwt = token(&jwt);
    let bad_jwt = token(&verifier(OTHER_SECRET));

    // The same verifier also takes asymmetric tokens, routed by `alg`, from a fixed JWK Set.
    let asymmetric = asymmetric_keys();
    let jwks = serde_json::json!({
        "keys": asymmetric.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()
    });
    let source = JwksKeySource::builder()
        .json(jwks.to_string())
        .build()
        .expect("jwks");
    // `cache_size` 0: every request verifies the token afresh, as for a token seen first.
    let jwt_with_cache = |size: usize| {
        JwtVerifier::builder()
            .secret(Secret::new(SECRET))
            .jwks(source.clone())
            .audience(RESOURCE)
            .cache_size(size)
            .build()
            .expect("verifier")
    };
    let asymmetric_jwts: Vec<(String, HeaderValue)> = asymmetric
        .iter()
        .map(|k| (format!("{:?} JWT (JWKS)", k.alg), asymmetric_token(k)))
        .collect();

    let store = store.build().expect("store");
    let auth = |jwt: JwtVerifier| {
        AuthLayer::builder()
            .api_keys(store.clone())
            .jwt(jwt)
            .policy(
                AuthPolicy::builder()
                    .require_path("/api", None, ["notes:read"])
                    .build()
                    .expect("policy"),
            )
            .resource(RESOURCE)
            .build()
            .expect("layer")
    };

    let bare = ServiceBuilder::new().service_fn(ok);
    let guarded = ServiceBuilder::new()
        .layer(auth(jwt_with_cache(mcp_auth::jwt::DEFAULT_CACHE_SIZE)))
        .service_fn(ok);
    let first_sight = ServiceBuilder::new()
        .layer(auth(jwt_with_cache(0)))
        .service_fn(ok);

    // Check each case answers as expected before timing it.
    for svc in [&guarded, &first_sight] {
        let status = |authorization: Option<&HeaderValue>| {
            rt.block_on(svc.clone().oneshot(request(authorization)))
                .expect("call")
                .status()
        };
        assert_eq!(status(Some(&api_key)), StatusCode::OK);
        assert_eq!(status(Some(&good_jwt)), StatusCode::OK);
        assert_eq!(status(None), StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some(&bad_jwt)), StatusCode::UNAUTHORIZED);
        for (_, token) in &asymmetric_jwts {
            assert_eq!(status(Some(token)), StatusCode::OK);
        }
    }

    let mut group = c.benchmark_group("auth_per_request");
    group.bench_function("bare service", |b| {
        b.iter(|| {
            let mut svc = bare;
            rt.block_on(async {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(request(None)).await.expect("call"))
            })
        })
    });
    let mut named = vec![("AuthLayer + API key".to_owned(), &guarded, &api_key)];
    let jwts = std::iter::once(("HS256 JWT".to_owned(), &good_jwt))
        .chain(asymmetric_jwts.iter().map(|(n, t)| (n.clone(), t)));
    for (name, token) in jwts {
        named.push((
            format!("AuthLayer + {name}, first sight"),
            &first_sight,
            token,
        ));
        named.push((format!("AuthLayer + {name}, cached"), &guarded, token));
    }
    for (name, service, authorization) in named {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut svc = service.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(Some(authorization))).await.expect("call"))
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("auth_rejection");
    for (name, authorization) in [
        ("missing credential", None),
        ("bad JWT signature", Some(&bad_jwt)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut svc = guarded.clone();
                rt.block_on(async {
                    let svc = svc.ready().await.expect("ready");
                    black_box(svc.call(request(authorization)).await.expect("call"))
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
