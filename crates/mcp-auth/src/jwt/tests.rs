use super::header::{is_canonical_b64url, segments};
use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "current-secret-0123456789-abcdefghijklmnop";
const OLD_SECRET: &str = "previous-secret-0123456789-abcdefghijklmno";
const AUD: &str = "https://mcp.example.com/mcp";
const ISS: &str = "https://issuer.example.com";
const T: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T)
}

fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(AUD)
        .build()
        .unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(payload).HMAC-SHA256(secret, signing input)`, with the header
/// and payload bytes exactly as given.
fn hand_token(header: &str, payload: &str, secret: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(mac.finalize().into_bytes()))
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Valid claims at `now` with `extra` merged over them (a `null` removes a claim).
fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "sub": "alice",
        "aud": AUD,
        "iat": T,
        "nbf": T,
        "exp": T + 600,
        "scope": "notes:read",
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn verify_claims(extra: serde_json::Value) -> Result<Principal, AuthFailure> {
    let v = verifier();
    v.verify(&v.sign_claims(&claims(extra)).unwrap(), now())
}

#[test]
fn valid_token_yields_principal() {
    let v = verifier();
    let token = v
        .sign(
            &TokenRequest {
                sub: "alice".into(),
                audience: vec![AUD.into()],
                issuer: None,
                ttl: Duration::from_secs(900),
                scopes: vec!["notes:read".into(), "search".into()],
            },
            now(),
        )
        .unwrap();
    assert!(looks_like_jwt(&token));
    let p = v.verify(&token, now()).unwrap();
    assert_eq!(p.id(), "alice");
    assert_eq!(p.kind(), PrincipalKind::Jwt);
    assert_eq!(
        p.scopes().iter().collect::<Vec<_>>(),
        ["notes:read", "search"]
    );
    assert!(p.has_scope("search:anything"));
    assert!(!p.has_scope("notes:write"));
    assert_eq!(p.audience().collect::<Vec<_>>(), [AUD]);
    assert_eq!(p.expires_at(), Some(now() + Duration::from_secs(900)));
}

#[test]
fn signed_claims_have_the_documented_shape() {
    let v = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .build()
        .unwrap();
    let payload = |req: &TokenRequest| -> serde_json::Value {
        let token = v.sign(req, now()).unwrap();
        let (header, payload, _) = segments(&token).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let mut req = TokenRequest::new("bob", Duration::from_secs(60));
    assert_eq!(
        payload(&req),
        json!({"sub": "bob", "iat": T, "nbf": T, "exp": T + 60})
    );
    req.audience = vec!["a".into()];
    req.issuer = Some(ISS.into());
    req.scopes = vec!["x".into(), "y:z".into()];
    assert_eq!(
        payload(&req),
        json!({"sub": "bob", "aud": "a", "iss": ISS, "iat": T, "nbf": T, "exp": T + 60,
                   "scope": "x y:z"})
    );
    req.audience = vec!["a".into(), "b".into()];
    assert_eq!(payload(&req)["aud"], json!(["a", "b"]));
}

#[test]
fn sign_refuses_bad_requests() {
    let v = verifier();
    let ok = TokenRequest::new("bob", Duration::from_secs(60));
    let setting = |req: TokenRequest| v.sign(&req, now()).unwrap_err().setting().to_owned();
    assert_eq!(
        setting(TokenRequest {
            sub: String::new(),
            ..ok.clone()
        }),
        "sub"
    );
    assert_eq!(
        setting(TokenRequest {
            ttl: Duration::from_millis(999),
            ..ok.clone()
        }),
        "ttl"
    );
    assert_eq!(
        setting(TokenRequest {
            ttl: Duration::MAX,
            ..ok.clone()
        }),
        "ttl"
    );
    assert_eq!(
        setting(TokenRequest {
            scopes: vec!["a b".into()],
            ..ok.clone()
        }),
        "scopes"
    );
    assert_eq!(
        setting(TokenRequest {
            audience: vec![String::new()],
            ..ok.clone()
        }),
        "audience"
    );
    assert_eq!(
        setting(TokenRequest {
            issuer: Some(" ".into()),
            ..ok.clone()
        }),
        "issuer"
    );
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(v.sign(&ok, before_epoch).unwrap_err().setting(), "now");
    assert_eq!(v.sign_claims(&json!([1])).unwrap_err().setting(), "claims");
}

#[test]
fn wrong_secret_is_bad_signature() {
    let other = JwtVerifier::builder()
        .secret(Secret::new("another-secret-0123456789-abcdefghijklmn"))
        .build()
        .unwrap();
    let token = other.sign_claims(&claims(json!({}))).unwrap();
    assert_eq!(
        verifier().verify(&token, now()),
        Err(AuthFailure::BadSignature)
    );
}

#[test]
fn tampered_or_missing_signature_is_bad_signature() {
    let v = verifier();
    let token = v.sign_claims(&claims(json!({}))).unwrap();
    let (header, _, signature) = segments(&token).unwrap();
    let forged = format!(
        "{header}.{}.{signature}",
        b64(claims(json!({"sub": "admin"})).to_string())
    );
    assert_eq!(v.verify(&forged, now()), Err(AuthFailure::BadSignature));
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        v.verify(&format!("{message}."), now()),
        Err(AuthFailure::BadSignature)
    );
    // A signature of the wrong length (a truncated one) is just a bad signature.
    assert_eq!(
        v.verify(&format!("{message}.AAAA"), now()),
        Err(AuthFailure::BadSignature)
    );
}

#[test]
fn rotation_secret_verifies() {
    let rotated = JwtVerifier::builder()
        .secrets([Secret::new(SECRET), Secret::new(OLD_SECRET)])
        .audience(AUD)
        .build()
        .unwrap();
    let before_rotation = JwtVerifier::builder()
        .secret(Secret::new(OLD_SECRET))
        .build()
        .unwrap();
    let old_token = before_rotation.sign_claims(&claims(json!({}))).unwrap();
    assert_eq!(rotated.verify(&old_token, now()).unwrap().id(), "alice");
    let new_token = rotated.sign_claims(&claims(json!({}))).unwrap();
    assert_eq!(rotated.verify(&new_token, now()).unwrap().id(), "alice");
    // The new secret signs: a verifier with only the new secret accepts new tokens, not old.
    assert!(verifier().verify(&new_token, now()).is_ok());
    assert_eq!(
        verifier().verify(&old_token, now()),
        Err(AuthFailure::BadSignature)
    );
}

#[test]
fn claims_are_read_only_once_a_secret_verified_the_signature() {
    // Claims that are not a JSON object: a bad signature is reported as one (the claims are
    // never parsed), a good one with either secret of a rotation reaches the claims.
    let rotated = JwtVerifier::builder()
        .secrets([Secret::new(SECRET), Secret::new(OLD_SECRET)])
        .build()
        .unwrap();
    for payload in ["[1,2]", "not json", r#"{"sub":"a","sub":"b"}"#] {
        let forged = hand_token(HS256, payload, "another-secret-0123456789-abcdefghijklmn");
        assert_eq!(
            rotated.verify(&forged, now()),
            Err(AuthFailure::BadSignature),
            "{payload}"
        );
        for secret in [SECRET, OLD_SECRET] {
            assert_eq!(
                rotated.verify(&hand_token(HS256, payload, secret), now()),
                Err(AuthFailure::InvalidClaims),
                "{payload}"
            );
        }
    }
}

#[test]
fn expiry_with_leeway() {
    assert!(
        verify_claims(json!({"exp": T - 10})).is_ok(),
        "within the 30 s leeway"
    );
    assert_eq!(
        verify_claims(json!({"exp": T - 31})),
        Err(AuthFailure::Expired)
    );
    assert_eq!(
        verify_claims(json!({"exp": T - 30})),
        Err(AuthFailure::Expired),
        "now >= exp + leeway"
    );
    assert_eq!(verify_claims(json!({"exp": 0})), Err(AuthFailure::Expired));

    let strict = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(strict.leeway(), Duration::ZERO);
    let at = |exp: u64| strict.sign_claims(&claims(json!({"exp": exp}))).unwrap();
    assert_eq!(strict.verify(&at(T), now()), Err(AuthFailure::Expired));
    assert!(strict.verify(&at(T + 1), now()).is_ok());
    // Sub-second clocks: at T + 0.5 s a token expiring at T + 1 is still valid.
    let later = now() + Duration::from_millis(500);
    assert!(strict.verify(&at(T + 1), later).is_ok());
}

#[test]
fn not_yet_valid_beyond_leeway() {
    assert_eq!(
        verify_claims(json!({"nbf": T + 31})),
        Err(AuthFailure::NotYetValid)
    );
    assert_eq!(
        verify_claims(json!({"nbf": T + 600})),
        Err(AuthFailure::NotYetValid)
    );
    assert!(verify_claims(json!({"nbf": T + 30})).is_ok());
    assert!(
        verify_claims(json!({"nbf": null})).is_ok(),
        "nbf is optional"
    );
}

#[test]
fn issued_in_future_beyond_leeway() {
    assert_eq!(
        verify_claims(json!({"iat": T + 60})),
        Err(AuthFailure::IssuedInFuture)
    );
    assert!(verify_claims(json!({"iat": T + 20})).is_ok());
    assert!(
        verify_claims(json!({"iat": null})).is_ok(),
        "iat is optional"
    );
}

#[test]
fn exp_is_required_and_an_integer() {
    assert_eq!(
        verify_claims(json!({"exp": null})),
        Err(AuthFailure::InvalidClaims)
    );
    for bad in [
        json!((T + 600).to_string()),
        json!(1.5e9),
        json!(1_800_000_600.0),
        json!(-1),
        json!(true),
        json!([T + 600]),
    ] {
        assert_eq!(
            verify_claims(json!({ "exp": bad })),
            Err(AuthFailure::InvalidClaims),
            "exp = {bad}"
        );
    }
    // nbf and iat have the same type.
    assert_eq!(
        verify_claims(json!({"nbf": "0"})),
        Err(AuthFailure::InvalidClaims)
    );
    assert_eq!(
        verify_claims(json!({"iat": 1.0})),
        Err(AuthFailure::InvalidClaims)
    );
    // Beyond what a SystemTime can hold.
    assert_eq!(
        verify_claims(json!({"exp": u64::MAX})),
        Err(AuthFailure::InvalidClaims)
    );
    // An exponent written in the raw JSON, bypassing serde_json's own number formatting.
    let raw = format!(r#"{{"sub":"alice","aud":"{AUD}","exp":18000006e2}}"#);
    let token = hand_token(HS256, &raw, SECRET);
    assert_eq!(
        verifier().verify(&token, now()),
        Err(AuthFailure::InvalidClaims)
    );
}

#[test]
fn sub_is_required_non_empty_string() {
    for bad in [json!(null), json!(""), json!(42), json!(["alice"])] {
        assert_eq!(
            verify_claims(json!({ "sub": bad })),
            Err(AuthFailure::InvalidClaims),
            "sub = {bad}"
        );
    }
}

#[test]
fn duplicated_claims_are_invalid() {
    let v = verifier();
    for payload in [
        format!(
            r#"{{"sub":"alice","sub":"admin","aud":"{AUD}","exp":{}}}"#,
            T + 600
        ),
        format!(
            r#"{{"sub":"alice","aud":"{AUD}","exp":{},"exp":{}}}"#,
            T - 100,
            T + 600
        ),
        format!(
            r#"{{"sub":"alice","aud":"x","aud":"{AUD}","exp":{}}}"#,
            T + 600
        ),
        format!(
            r#"{{"sub":"alice","aud":"{AUD}","exp":{},"scope":"a","scope":"admin"}}"#,
            T + 600
        ),
        // The same name spelled with an escape is the same member.
        format!(
            r#"{{"sub":"alice","s\u0075b":"admin","aud":"{AUD}","exp":{}}}"#,
            T + 600
        ),
    ] {
        let token = hand_token(HS256, &payload, SECRET);
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::InvalidClaims),
            "{payload}"
        );
    }
    // The hand-built helper itself produces acceptable tokens.
    let fine = format!(
        r#"{{"sub":"alice","aud":"{AUD}","exp":{},"x":1,"x":2}}"#,
        T + 600
    );
    assert!(v.verify(&hand_token(HS256, &fine, SECRET), now()).is_ok());
}

#[test]
fn claims_that_are_not_an_object_are_invalid() {
    let v = verifier();
    let as_array = format!(
        r#"["alice",{},null,null,null,"{AUD}",null,null,null]"#,
        T + 600
    );
    for payload in [
        "[]",
        "\"alice\"",
        "null",
        "{",
        "{\"sub\":\"a\"} x",
        &as_array,
    ] {
        let token = hand_token(HS256, payload, SECRET);
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::InvalidClaims),
            "{payload}"
        );
    }
}

#[test]
fn audience_is_checked() {
    assert_eq!(
        verify_claims(json!({"aud": null})),
        Err(AuthFailure::WrongAudience)
    );
    assert_eq!(
        verify_claims(json!({"aud": "https://other.example.com/mcp"})),
        Err(AuthFailure::WrongAudience)
    );
    assert_eq!(
        verify_claims(json!({"aud": []})),
        Err(AuthFailure::WrongAudience)
    );
    assert_eq!(
        verify_claims(json!({"aud": ""})),
        Err(AuthFailure::WrongAudience)
    );
    assert_eq!(
        verify_claims(json!({"aud": ["a", "b"]})),
        Err(AuthFailure::WrongAudience)
    );
    let p = verify_claims(json!({"aud": ["https://other.example.com", AUD]})).unwrap();
    assert_eq!(
        p.audience().collect::<Vec<_>>(),
        ["https://other.example.com", AUD]
    );
    assert_eq!(
        verify_claims(json!({"aud": 7})),
        Err(AuthFailure::InvalidClaims)
    );
    assert_eq!(
        verify_claims(json!({"aud": [7]})),
        Err(AuthFailure::InvalidClaims)
    );
    // Only a prefix is not the same resource.
    assert_eq!(
        verify_claims(json!({"aud": "https://mcp.example.com"})),
        Err(AuthFailure::WrongAudience)
    );
}

#[test]
fn audience_ignores_one_trailing_slash_either_side() {
    assert!(verify_claims(json!({"aud": format!("{AUD}/")})).is_ok());
    let slashed = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(format!("{AUD}/"))
        .build()
        .unwrap();
    let token = slashed.sign_claims(&claims(json!({}))).unwrap();
    assert!(slashed.verify(&token, now()).is_ok());
    // One slash is ignored on each side, not any number of them.
    let two = slashed
        .sign_claims(&claims(json!({"aud": format!("{AUD}//")})))
        .unwrap();
    assert_eq!(slashed.verify(&two, now()), Err(AuthFailure::WrongAudience));
    assert!(same_resource(AUD, &format!("{AUD}/")));
    assert!(!same_resource("/", ""));
}

#[test]
fn any_audience_of_several_configured() {
    let v = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience("filesystem")
        .audience("memory")
        .build()
        .unwrap();
    assert_eq!(v.audiences().collect::<Vec<_>>(), ["filesystem", "memory"]);
    let token = v.sign_claims(&claims(json!({"aud": "memory"}))).unwrap();
    assert!(v.verify(&token, now()).is_ok());
    let token = v.sign_claims(&claims(json!({"aud": "git"}))).unwrap();
    assert_eq!(v.verify(&token, now()), Err(AuthFailure::WrongAudience));
}

#[test]
fn without_configured_audience_aud_is_recorded_not_checked() {
    let v = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .build()
        .unwrap();
    let p = v
        .verify(
            &v.sign_claims(&claims(json!({"aud": "anything"}))).unwrap(),
            now(),
        )
        .unwrap();
    assert_eq!(p.audience().collect::<Vec<_>>(), ["anything"]);
    let p = v
        .verify(
            &v.sign_claims(&claims(json!({"aud": null}))).unwrap(),
            now(),
        )
        .unwrap();
    assert_eq!(p.audience().count(), 0);
}

#[test]
fn issuer_is_checked_when_configured() {
    let v = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(AUD)
        .issuer(ISS)
        .build()
        .unwrap();
    assert_eq!(v.issuer(), Some(ISS));
    let at = |extra| v.verify(&v.sign_claims(&claims(extra)).unwrap(), now());
    assert!(at(json!({"iss": ISS})).is_ok());
    assert_eq!(at(json!({})), Err(AuthFailure::WrongIssuer), "missing iss");
    assert_eq!(
        at(json!({"iss": "https://evil.example.com"})),
        Err(AuthFailure::WrongIssuer)
    );
    assert_eq!(
        at(json!({"iss": format!("{ISS}/")})),
        Err(AuthFailure::WrongIssuer)
    );
    assert_eq!(at(json!({"iss": 1})), Err(AuthFailure::InvalidClaims));
    // Without a configured issuer, any iss is fine.
    assert!(verify_claims(json!({"iss": "whoever"})).is_ok());
}

#[test]
fn scopes_are_merged_from_scope_scopes_and_permissions() {
    let p = verify_claims(json!({
        "scope": "notes:read  search",
        "scopes": ["files:write", "search"],
        "permissions": ["admin:audit", ""],
    }))
    .unwrap();
    assert_eq!(
        p.scopes().iter().collect::<Vec<_>>(),
        ["notes:read", "search", "files:write", "admin:audit"]
    );
    let p = verify_claims(json!({"scope": null, "permissions": ["a"]})).unwrap();
    assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["a"]);
    let p = verify_claims(json!({"scope": null})).unwrap();
    assert!(p.scopes().is_empty());
    // Each may be a space-separated string or an array of strings; nothing else.
    let p = verify_claims(json!({"scope": ["a"], "scopes": "b c", "scp": "d"})).unwrap();
    assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["a", "d", "b", "c"]);
    for bad in [
        json!({"scope": 5}),
        json!({"scp": {"a": 1}}),
        json!({"scopes": true}),
        json!({"permissions": [1]}),
        json!({"scp": ["a", ["b"]]}),
    ] {
        assert_eq!(verify_claims(bad), Err(AuthFailure::InvalidClaims));
    }
}

#[test]
fn alg_none_in_any_case_is_unsupported() {
    let v = verifier();
    let payload = claims(json!({})).to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = format!("{}.{}.", b64(&header), b64(&payload));
        assert!(looks_like_jwt(&unsigned));
        assert_eq!(
            preparse(&unsigned),
            Err(AuthFailure::UnsupportedAlgorithm),
            "{alg}"
        );
        assert_eq!(
            v.verify(&unsigned, now()),
            Err(AuthFailure::UnsupportedAlgorithm)
        );
        // Signed with our secret all the same: still refused.
        let signed = hand_token(&header, &payload, SECRET);
        assert_eq!(
            v.verify(&signed, now()),
            Err(AuthFailure::UnsupportedAlgorithm)
        );
    }
}

#[test]
fn other_algorithms_are_unsupported() {
    let v = verifier();
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims(json!({})),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        v.verify(&hs384, now()),
        Err(AuthFailure::UnsupportedAlgorithm)
    );
    let payload = claims(json!({})).to_string();
    for header in [
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":""}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
    ] {
        let token = hand_token(header, &payload, SECRET);
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::UnsupportedAlgorithm),
            "{header}"
        );
    }
    // No alg at all is not a JWS header.
    let token = hand_token(r#"{"typ":"JWT"}"#, &payload, SECRET);
    assert_eq!(
        v.verify(&token, now()),
        Err(AuthFailure::MalformedCredential)
    );
}

#[test]
fn crit_header_is_refused() {
    let v = verifier();
    let payload = claims(json!({})).to_string();
    for header in [
        r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
    ] {
        let token = hand_token(header, &payload, SECRET);
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::CriticalHeader),
            "{header}"
        );
    }
}

#[test]
fn typ_must_be_jwt_or_at_jwt() {
    let v = verifier();
    let payload = claims(json!({})).to_string();
    for typ in [
        "JWT",
        "jwt",
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/JWT",
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
        assert!(
            v.verify(&hand_token(&header, &payload, SECRET), now())
                .is_ok(),
            "{typ}"
        );
    }
    assert!(
        v.verify(&hand_token(r#"{"alg":"HS256"}"#, &payload, SECRET), now())
            .is_ok()
    );
    for typ in [
        r#""JWS""#,
        r#""""#,
        r#""JWT ""#,
        r#""application/""#,
        "1",
        "null",
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":{typ}}}"#);
        assert_eq!(
            v.verify(&hand_token(&header, &payload, SECRET), now()),
            Err(AuthFailure::MalformedCredential),
            "{typ}"
        );
    }
}

#[test]
fn duplicated_header_members_are_malformed() {
    let v = verifier();
    let payload = claims(json!({})).to_string();
    for header in [
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ] {
        let token = hand_token(header, &payload, SECRET);
        assert_eq!(
            preparse(&token),
            Err(AuthFailure::MalformedCredential),
            "{header}"
        );
        assert_eq!(
            v.verify(&token, now()),
            Err(AuthFailure::MalformedCredential)
        );
    }
}

#[test]
fn header_jsonwebtoken_refuses_is_malformed() {
    // Passes our preparse (unknown members are fine) but jsonwebtoken's header type wants a
    // string `kid`: the refusal must not be mistaken for a claims error.
    let v = verifier();
    let token = hand_token(
        r#"{"alg":"HS256","kid":5}"#,
        &claims(json!({})).to_string(),
        SECRET,
    );
    assert_eq!(preparse(&token), Ok(()));
    assert_eq!(
        v.verify(&token, now()),
        Err(AuthFailure::MalformedCredential)
    );
    // The header is judged before the signature: signed with another secret, still malformed.
    let forged = hand_token(
        r#"{"alg":"HS256","kid":5}"#,
        &claims(json!({})).to_string(),
        "another-secret-0123456789-abcdefghijklmn",
    );
    assert_eq!(
        v.verify(&forged, now()),
        Err(AuthFailure::MalformedCredential)
    );
    // Unknown members are fine.
    let token = hand_token(
        r#"{"alg":"HS256","kid":"k1","x-custom":{"a":[1,2]}}"#,
        &claims(json!({})).to_string(),
        SECRET,
    );
    assert!(v.verify(&token, now()).is_ok());
}

#[test]
fn token_too_large() {
    let v = verifier();
    let big = "x".repeat(9 * 1024);
    let token = v.sign_claims(&claims(json!({ "pad": big }))).unwrap();
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(preparse(&token), Err(AuthFailure::TokenTooLarge));
    assert_eq!(v.verify(&token, now()), Err(AuthFailure::TokenTooLarge));
    assert_eq!(
        preparse(&"a".repeat(MAX_TOKEN_BYTES + 1)),
        Err(AuthFailure::TokenTooLarge)
    );
    // Right at the limit is fine.
    let base = v.sign_claims(&claims(json!({ "pad": "" }))).unwrap().len();
    // Each 3 bytes of padding add 4 base64 characters.
    let pad = "y".repeat((MAX_TOKEN_BYTES - base) / 4 * 3);
    let token = v.sign_claims(&claims(json!({ "pad": pad }))).unwrap();
    assert!(token.len() <= MAX_TOKEN_BYTES && token.len() > MAX_TOKEN_BYTES - 4);
    assert!(v.verify(&token, now()).is_ok());
}

#[test]
fn garbage_is_malformed() {
    let v = verifier();
    let good = v.sign_claims(&claims(json!({}))).unwrap();
    let (h, p, s) = segments(&good).unwrap();
    let padded_header = base64::engine::general_purpose::URL_SAFE.encode(r#"{"alg":"HS256" }"#);
    assert!(padded_header.ends_with('='));
    let std_alphabet = format!("{h}.+{}.{s}", &p[1..]);
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        format!("{h}.{p}.{s}."),
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        "!!!.b.c".into(),
        format!("{h}.{p}.{s}="),
        format!("{padded_header}.{p}.{s}"),
        std_alphabet,
        format!("{h} .{p}.{s}"),
        format!("{h}.{p}.{s}\n"),
        // Length 1 mod 4 cannot be base64; non-zero trailing bits are not canonical.
        format!("{h}.abcde.{s}"),
        format!("{h}.{p}.{}B", &s[..s.len() - 1]),
        // Header that is not a JSON object, or not JSON.
        format!("{}.{p}.{s}", b64("[]")),
        format!("{}.{p}.{s}", b64("\"HS256\"")),
        format!("{}.{p}.{s}", b64(r#"{"alg":"HS256"} x"#)),
        format!("{}.{p}.{s}", b64(r#"{"alg":"HS256""#)),
        format!("{}.{p}.{s}", b64([0xff, 0xfe, 0x7b, 0x7d])),
        format!(
            "{}.{p}.{s}",
            b64(format!("{}1{}", "[".repeat(200), "]".repeat(200)))
        ),
    ];
    for token in &cases {
        assert_eq!(
            preparse(token),
            Err(AuthFailure::MalformedCredential),
            "{token:?}"
        );
        assert_eq!(
            v.verify(token, now()),
            Err(AuthFailure::MalformedCredential),
            "{token:?}"
        );
    }
}

#[test]
fn deeply_nested_header_member() {
    // serde_json skips an unknown member without recursing, so the preparse accepts it;
    // jsonwebtoken's header type keeps unknown members as values, which stops at serde_json's
    // recursion limit: refused as malformed, without a stack overflow.
    let nested = format!(
        r#"{{"alg":"HS256","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let token = hand_token(&nested, &claims(json!({})).to_string(), SECRET);
    assert_eq!(preparse(&token), Ok(()));
    assert_eq!(
        verifier().verify(&token, now()),
        Err(AuthFailure::MalformedCredential)
    );
}

#[test]
fn preparse_never_panics_on_odd_input() {
    let h = b64(HS256);
    let inputs = [
        "\u{0}.\u{0}.\u{0}".to_owned(),
        "é.é.é".into(),
        "....".into(),
        format!("{h}.{h}.{h}"),
        format!("{}.e30.", b64("{}")),
        format!("{}.e30.", b64(r#"{"alg":{"alg":"HS256"}}"#)),
        format!("{}.e30.", b64("{\"alg\":\"HS256\",\"typ\":\"\u{1F600}\"}")),
        format!("{}.e30.", b64(r#"{"alg":"\ud800"}"#)),
    ];
    for input in &inputs {
        let _ = preparse(input);
        let _ = looks_like_jwt(input);
        let _ = verifier().verify(input, now());
    }
    // Every prefix of a good token.
    let good = verifier().sign_claims(&claims(json!({}))).unwrap();
    for end in 0..good.len() {
        let _ = verifier().verify(&good[..end], now());
    }
}

#[test]
fn canonical_base64_check_agrees_with_the_base64_crate() {
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/."
            .chars()
            .collect();
    let mut checked = 0;
    for &a in &alphabet {
        for &b in &alphabet {
            for prefix in ["", "QUJD", "Q"] {
                for candidate in [
                    format!("{prefix}{a}"),
                    format!("{prefix}{a}{b}"),
                    format!("{prefix}A{a}{b}"),
                ] {
                    assert_eq!(
                        is_canonical_b64url(&candidate),
                        URL_SAFE_NO_PAD.decode(&candidate).is_ok(),
                        "{candidate:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000);
    assert!(is_canonical_b64url(""));
}

#[test]
fn looks_like_jwt_cases() {
    let token = verifier().sign_claims(&claims(json!({}))).unwrap();
    assert!(looks_like_jwt(&token));
    assert!(looks_like_jwt("a.b.c"));
    assert!(looks_like_jwt("a-_.b.c"));
    assert!(
        looks_like_jwt("a.b."),
        "unsigned tokens go to the JWT path to be refused"
    );
    for not in [
        "",
        "mcp_0123456789abcdef",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "..",
        "a.b.c=",
        "a+b.c.d",
        "a/b.c.d",
        "a b.c.d",
        "sk-live.key with.spaces",
    ] {
        assert!(!looks_like_jwt(not), "{not:?}");
    }
}

#[test]
fn builder_errors_name_the_setting_and_hide_the_secret() {
    let err = JwtVerifier::builder().build().unwrap_err();
    assert_eq!(err.setting(), "jwt_secret");

    let short = "s".repeat(MIN_SECRET_BYTES - 1);
    let err = JwtVerifier::builder()
        .secret(Secret::new(short.clone()))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "jwt_secret");
    assert!(err.reason().contains("256 bits"), "{err}");
    assert!(!err.to_string().contains(&short));
    assert_eq!(err.value(), None);

    let err = JwtVerifier::builder()
        .secrets([Secret::new(SECRET), Secret::new(short.clone())])
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "jwt_secret");
    assert!(err.reason().starts_with("secret 2 of 2"), "{err}");
    assert!(!err.to_string().contains(&short) && !err.to_string().contains(SECRET));

    assert!(
        JwtVerifier::builder()
            .secret(Secret::new("s".repeat(MIN_SECRET_BYTES)))
            .build()
            .is_ok(),
        "exactly 32 bytes is enough"
    );

    let err = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience(" ")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "jwt_audience");
    let err = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .issuer("")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "jwt_issuer");
}

#[test]
fn backend_self_test_failure_is_a_config_error() {
    assert_eq!(self_test(SECRET.as_bytes()), Ok(()));
    assert_eq!(guarded_self_test(|| Ok(())), Ok(()));
    let err = guarded_self_test(|| Err("verifying failed".to_owned())).unwrap_err();
    assert_eq!(err.setting(), "jwt_backend");
    assert!(err.reason().contains("rust_crypto") && err.reason().contains("aws_lc_rs"));
    let err = guarded_self_test(|| panic!("no CryptoProvider")).unwrap_err();
    assert_eq!(err.setting(), "jwt_backend");
    assert!(err.reason().contains("panicked"), "{err}");
}

#[test]
fn debug_does_not_print_secrets() {
    let builder = JwtVerifier::builder()
        .secrets([Secret::new(SECRET), Secret::new(OLD_SECRET)])
        .audience(AUD);
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains(OLD_SECRET),
        "{shown}"
    );
    let verifier = builder.build().unwrap();
    let shown = format!("{verifier:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains(OLD_SECRET),
        "{shown}"
    );
    assert!(
        shown.contains("secrets: 2") && shown.contains(AUD),
        "{shown}"
    );
}

#[test]
fn a_binding_the_server_cannot_check_refuses_the_token() {
    // A certificate-bound token (RFC 8705) or one bound by an embedded key: not a bearer token.
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}),
        json!({}),
    ] {
        assert_eq!(
            verify_claims(json!({ "cnf": cnf })).unwrap_err(),
            AuthFailure::InvalidClaims,
            "{cnf}"
        );
    }
    // A DPoP binding is carried to the principal for the layer to check.
    let p = verify_claims(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}))
        .unwrap();
    assert_eq!(
        p.confirmation_jkt(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
}

#[test]
fn a_token_granting_more_than_the_scope_bound_is_refused() {
    let scopes = |n: usize| {
        (0..n)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let p = verify_claims(json!({ "scope": scopes(crate::jwt::MAX_TOKEN_SCOPES) })).unwrap();
    assert_eq!(p.scopes().len(), crate::jwt::MAX_TOKEN_SCOPES);
    assert_eq!(
        verify_claims(json!({ "scope": scopes(crate::jwt::MAX_TOKEN_SCOPES + 1) })).unwrap_err(),
        AuthFailure::InvalidClaims
    );
}
