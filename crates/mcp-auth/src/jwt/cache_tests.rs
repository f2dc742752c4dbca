//! The verified-token cache and the lifetime limit: a cached verdict is the fresh one, expiry and
//! the TTL end entries, refusals are never cached, the bound holds under a flood.

use super::cache::TokenCache;
use super::times::TokenTimes;
use super::*;
use serde_json::json;

const SECRET: &str = "current-secret-0123456789-abcdefghijklmnop";
const OTHER_SECRET: &str = "another-secret-0123456789-abcdefghijklmno";
const AUD: &str = "https://mcp.example.com/mcp";
const T: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn builder() -> JwtVerifierBuilder {
    JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(AUD)
}

fn cached() -> JwtVerifier {
    builder().build().unwrap()
}

fn uncached() -> JwtVerifier {
    builder().cache_size(0).build().unwrap()
}

fn token(claims: serde_json::Value) -> String {
    uncached().sign_claims(&claims).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "aud": AUD, "iat": T, "nbf": T + 100, "exp": T + 600, "scope": "notes:read"})
}

#[test]
fn defaults_and_accessors() {
    let v = cached();
    assert_eq!(v.cache_size(), DEFAULT_CACHE_SIZE);
    assert_eq!(v.cache_ttl(), DEFAULT_CACHE_TTL);
    assert_eq!(v.cached_tokens(), 0);
    assert_eq!(v.max_lifetime(), (Some(DEFAULT_HS256_MAX_LIFETIME), None));
    let off = uncached();
    assert_eq!((off.cache_size(), off.cache_ttl()), (0, Duration::ZERO));
    let small = builder().cache_size(3).build().unwrap();
    assert_eq!(small.cache_size(), 3);
}

#[test]
fn a_cached_verdict_is_the_fresh_one_at_every_moment() {
    let with_cache = cached();
    let without = uncached();
    let token = token(claims("alice"));
    // First verified (and cached) inside the window, then asked about before and after it.
    let first = with_cache.verify(&token, at(T + 200)).unwrap();
    assert_eq!(with_cache.cached_tokens(), 1);
    assert_eq!(Ok(first), without.verify(&token, at(T + 200)));
    for secs in [
        T,       // nbf - 100: not yet valid, although cached
        T + 69,  // nbf - 31
        T + 70,  // nbf - leeway: valid
        T + 300, // valid
        T + 629, // exp + leeway - 1: valid
        T + 200, // valid again
        T + 630, // exp + leeway: expired (the entry goes)
        T + 300, // verified afresh: valid, cached again
    ] {
        assert_eq!(
            with_cache.verify(&token, at(secs)),
            without.verify(&token, at(secs)),
            "at T + {}",
            secs - T
        );
    }
    assert_eq!(
        with_cache.verify(&token, at(T)),
        Err(AuthFailure::NotYetValid)
    );
    let p = with_cache.verify(&token, at(T + 300)).unwrap();
    assert_eq!(p.id(), "alice");
    assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["notes:read"]);
    assert_eq!(p.expires_at(), Some(at(T + 600)));
    assert_eq!(with_cache.cached_tokens(), 1);
}

#[test]
fn an_expired_cached_token_is_refused_after_exp() {
    let v = cached();
    let token = token(claims("alice"));
    assert!(v.verify(&token, at(T + 100)).is_ok());
    assert!(v.verify(&token, at(T + 100)).is_ok());
    assert_eq!(v.cached_tokens(), 1);
    assert_eq!(v.verify(&token, at(T + 630)), Err(AuthFailure::Expired));
    assert_eq!(v.cached_tokens(), 0, "the expired entry is dropped");
    assert_eq!(v.verify(&token, at(T + 10_000)), Err(AuthFailure::Expired));
    assert_eq!(v.cached_tokens(), 0);
}

#[test]
fn refused_tokens_are_never_cached() {
    let v = cached();
    let forged = JwtVerifier::builder()
        .secret(Secret::new(OTHER_SECRET))
        .build()
        .unwrap()
        .sign_claims(&claims("mallory"))
        .unwrap();
    let cases = [
        (forged, AuthFailure::BadSignature),
        (
            token(json!({"sub": "a", "aud": "https://other.example.com", "exp": T + 600})),
            AuthFailure::WrongAudience,
        ),
        (
            token(json!({"sub": "a", "aud": AUD, "exp": T - 31})),
            AuthFailure::Expired,
        ),
        (
            token(json!({"sub": "", "aud": AUD, "exp": T + 600})),
            AuthFailure::InvalidClaims,
        ),
        (
            token(json!({"sub": "a", "aud": AUD, "exp": T + 600, "scope": 7})),
            AuthFailure::InvalidClaims,
        ),
        (
            token(json!({"sub": "a", "aud": AUD, "iat": T, "exp": T + 48 * 3600})),
            AuthFailure::InvalidClaims,
        ),
    ];
    for (token, failure) in &cases {
        for _ in 0..3 {
            assert_eq!(v.verify(token, at(T)), Err(*failure));
        }
    }
    assert_eq!(v.cached_tokens(), 0);

    // Refused as not yet valid, then accepted once it is: no refusal was remembered.
    let early = token(claims("bob"));
    assert_eq!(v.verify(&early, at(T)), Err(AuthFailure::NotYetValid));
    assert_eq!(v.cached_tokens(), 0);
    assert_eq!(v.verify(&early, at(T + 100)).unwrap().id(), "bob");
    assert_eq!(v.cached_tokens(), 1);
}

#[test]
fn the_size_bound_holds_under_a_flood_of_distinct_tokens() {
    for size in [1, 3, 64] {
        let v = builder().cache_size(size).build().unwrap();
        let signer = uncached();
        let mut last = String::new();
        for i in 0..600 {
            last = signer
                .sign_claims(&json!({"sub": format!("agent-{i}"), "aud": AUD, "exp": T + 600}))
                .unwrap();
            assert_eq!(v.verify(&last, at(T)).unwrap().id(), format!("agent-{i}"));
            assert!(v.cached_tokens() <= size, "{} > {size}", v.cached_tokens());
        }
        // The newest token is held.
        assert!(v.cached_tokens() >= 1);
        assert_eq!(v.verify(&last, at(T)).unwrap().id(), "agent-599");
    }
}

#[test]
fn the_cache_can_be_turned_off() {
    let v = uncached();
    let token = token(claims("alice"));
    assert!(v.verify(&token, at(T + 100)).is_ok());
    assert!(v.verify(&token, at(T + 100)).is_ok());
    assert_eq!(v.cached_tokens(), 0);
    // Oversized tokens are refused before any hashing, cache or not.
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        cached().verify(&huge, at(T)),
        Err(AuthFailure::TokenTooLarge)
    );
    assert_eq!(v.verify(&huge, at(T)), Err(AuthFailure::TokenTooLarge));
}

fn times(exp: u64) -> TokenTimes {
    TokenTimes {
        exp: Duration::from_secs(exp),
        nbf: None,
        iat: None,
        max_lifetime: None,
    }
}

#[test]
fn entries_end_at_the_ttl_and_at_exp() {
    let secs = Duration::from_secs;
    let cache = TokenCache::new(10, secs(60), secs(30));
    let p = Principal::builder("a", PrincipalKind::Jwt).build();
    let key = TokenCache::digest("a.b.c");
    cache.insert(key, p.clone(), times(T + 600), 0, secs(T));
    assert!(cache.get(&key, 0, secs(T + 59)).is_some());
    assert!(cache.get(&key, 0, secs(T + 60)).is_none(), "past the TTL");
    assert_eq!(cache.len(), 0);

    // Never inserted when already dead (exp + leeway passed).
    cache.insert(key, p.clone(), times(T - 30), 0, secs(T));
    assert_eq!(cache.len(), 0);
}

#[test]
fn a_new_key_generation_flushes_the_cache() {
    let secs = Duration::from_secs;
    let cache = TokenCache::new(100, secs(300), secs(30));
    let p = Principal::builder("a", PrincipalKind::Jwt).build();
    for i in 0..10u8 {
        cache.insert(
            TokenCache::digest(&i.to_string()),
            p.clone(),
            times(T + 600),
            0,
            secs(T),
        );
    }
    let key = TokenCache::digest("0");
    assert!(cache.get(&key, 0, secs(T)).is_some());
    assert!(cache.get(&key, 1, secs(T)).is_none());
    assert_eq!(cache.len(), 0, "every entry of the old generation is gone");
    // An entry tagged with an older generation than the current one is never served.
    cache.insert(key, p, times(T + 600), 1, secs(T));
    assert!(cache.get(&key, 2, secs(T)).is_none());
}

#[test]
fn hs256_tokens_live_at_most_24_hours_by_default() {
    let v = cached();
    let day = 24 * 3600;
    let ok = token(json!({"sub": "a", "aud": AUD, "iat": T, "exp": T + day}));
    assert!(v.verify(&ok, at(T)).is_ok());
    let long = token(json!({"sub": "a", "aud": AUD, "iat": T, "exp": T + day + 1}));
    assert_eq!(v.verify(&long, at(T)), Err(AuthFailure::InvalidClaims));
    // Without `iat` the lifetime counts from now, with the leeway.
    let no_iat = |exp: u64| token(json!({"sub": "a", "aud": AUD, "exp": exp}));
    assert!(v.verify(&no_iat(T + day + 30), at(T)).is_ok());
    assert_eq!(
        v.verify(&no_iat(T + day + 31), at(T)),
        Err(AuthFailure::InvalidClaims)
    );
    // Cached at a later moment, asked about at an earlier one: the verdict is the fresh one.
    let later = no_iat(T + day + 100);
    assert!(v.verify(&later, at(T + 100)).is_ok());
    assert_eq!(v.verify(&later, at(T)), Err(AuthFailure::InvalidClaims));

    // No limit, or another one.
    let unlimited = builder().max_lifetime(None).build().unwrap();
    assert!(unlimited.verify(&long, at(T)).is_ok());
    assert_eq!(unlimited.max_lifetime(), (None, None));
    let hour = builder()
        .max_lifetime(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let two_hours = token(json!({"sub": "a", "aud": AUD, "iat": T, "exp": T + 7200}));
    assert_eq!(
        hour.verify(&two_hours, at(T)),
        Err(AuthFailure::InvalidClaims)
    );
    assert!(v.verify(&two_hours, at(T)).is_ok());

    // `sign` refuses to make a token the verifier would refuse.
    let e = v
        .sign(&TokenRequest::new("a", Duration::from_secs(day + 1)), at(T))
        .unwrap_err();
    assert_eq!(e.setting(), "ttl");
    assert!(e.reason().contains("86400 s"), "{e}");
    let request = TokenRequest {
        audience: vec![AUD.into()],
        ..TokenRequest::new("a", Duration::from_secs(day))
    };
    let signed = v.sign(&request, at(T)).unwrap();
    assert!(v.verify(&signed, at(T)).is_ok());
    let request = TokenRequest {
        ttl: Duration::from_secs(day + 1),
        ..request
    };
    let long = unlimited.sign(&request, at(T)).unwrap();
    assert!(unlimited.verify(&long, at(T)).is_ok());
}

#[cfg(feature = "jwks")]
#[test]
fn jwks_tokens_have_no_lifetime_limit_unless_one_is_set() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

    let private = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let x = URL_SAFE_NO_PAD.encode(private.verifying_key().to_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": x}]});
    let source = || {
        crate::jwks::JwksKeySource::builder()
            .json(jwks.to_string())
            .build()
            .unwrap()
    };
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some("ed".into());
    let key = EncodingKey::from_ed_der(private.to_pkcs8_der().unwrap().as_bytes());
    let week = json!({"sub": "a", "aud": AUD, "iat": T, "exp": T + 7 * 24 * 3600});
    let token = jsonwebtoken::encode(&header, &week, &key).unwrap();

    let default = builder().jwks(source()).build().unwrap();
    assert_eq!(
        default.max_lifetime(),
        (Some(DEFAULT_HS256_MAX_LIFETIME), None)
    );
    assert_eq!(default.verify(&token, at(T)).unwrap().id(), "a");
    let limited = builder()
        .jwks(source())
        .max_lifetime(Some(Duration::from_secs(24 * 3600)))
        .build()
        .unwrap();
    assert_eq!(
        limited.verify(&token, at(T)),
        Err(AuthFailure::InvalidClaims)
    );
    assert_eq!(limited.cached_tokens(), 0);
}

#[test]
fn builder_errors_name_the_setting() {
    let e = builder()
        .cache_size(MAX_CACHE_SIZE + 1)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_cache_size");
    let e = builder().cache_ttl(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "jwt_cache_ttl");
    // A zero TTL is fine when the cache is off.
    assert!(
        builder()
            .cache_size(0)
            .cache_ttl(Duration::ZERO)
            .build()
            .is_ok()
    );
    let e = builder()
        .max_lifetime(Some(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_max_lifetime");
    for bad in [&[][..], &[""][..], &["/a~2b"][..], &["scope", "/~"][..]] {
        let e = builder()
            .scope_claims(bad.iter().copied())
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "jwt_scope_claims", "{bad:?}");
    }
}
