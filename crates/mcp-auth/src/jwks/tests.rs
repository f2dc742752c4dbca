use super::fetch::{metadata_urls, parse_max_age};
use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[test]
fn transport_rule() {
    for ok in [
        "https://id.example.com",
        "http://127.0.0.1:8080/jwks",
        "http://127.9.9.9/x",
        "http://[::1]:9/x",
        "http://localhost/x",
        "http://LOCALHOST:1/x",
    ] {
        assert_eq!(check_transport(ok), Ok(()), "{ok}");
    }
    for bad in [
        "http://id.example.com/jwks",
        "http://10.0.0.1/jwks",
        "http://localhost.example.com/x",
        "ftp://127.0.0.1/x",
        "id.example.com",
        "https://id.example.com/#x",
        "http://127.0.0.1@evil.example.com/jwks",
        "http://127.0.0.1.evil.example.com/jwks",
    ] {
        assert!(check_transport(bad).is_err(), "{bad}");
    }
}

#[test]
fn metadata_locations() {
    assert_eq!(
        metadata_urls("https://id.example.com/realms/mcp"),
        [
            "https://id.example.com/realms/mcp/.well-known/openid-configuration",
            "https://id.example.com/.well-known/oauth-authorization-server/realms/mcp",
        ]
    );
    assert_eq!(
        metadata_urls("https://tenant.auth0.com/"),
        [
            "https://tenant.auth0.com/.well-known/openid-configuration",
            "https://tenant.auth0.com/.well-known/oauth-authorization-server",
        ]
    );
}

#[test]
fn cache_control() {
    assert_eq!(
        parse_max_age("public, max-age=600"),
        Some(Duration::from_secs(600))
    );
    assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(parse_max_age("public"), None);
    assert_eq!(parse_max_age("max-age=x"), None);
}

#[test]
fn builder_errors_name_the_setting() {
    let e = JwksKeySource::builder().build().unwrap_err();
    assert_eq!(e.setting(), "jwks_url");
    let e = JwksKeySource::builder()
        .jwks_url("http://id.example.com/jwks")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwks_url");
    assert!(e.reason().contains("https"), "{e}");
    let e = JwksKeySource::builder()
        .discover("http://id.example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_issuer");
    let e = JwksKeySource::builder()
        .jwks_url("https://id.example.com/jwks")
        .algorithms(["HS256"])
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_algorithms");
    let e = JwksKeySource::builder()
        .jwks_url("https://id.example.com/jwks")
        .algorithms(["rs256"])
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwt_algorithms");
    let e = JwksKeySource::builder()
        .jwks_url("https://id.example.com/jwks")
        .discover("https://id.example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwks_url");
    let e = JwksKeySource::builder()
        .json(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwks_json");
    let e = JwksKeySource::builder()
        .file("/nonexistent/jwks.json")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "jwks_file");
}

#[test]
fn keys_are_bound_to_their_type() {
    let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let ed = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"ed"}}"#);
    let small_rsa = format!(
        r#"{{"kty":"RSA","n":"{}","e":"AQAB","kid":"small"}}"#,
        URL_SAFE_NO_PAD.encode([0xffu8; 128])
    );
    let enc = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"enc","use":"enc"}}"#);
    let pinned = format!(
        r#"{{"kty":"RSA","n":"{}","e":"AQAB","kid":"ps","alg":"PS256"}}"#,
        URL_SAFE_NO_PAD.encode([0xffu8; 256])
    );
    let doc = format!(r#"{{"keys":[{ed},{small_rsa},{enc},{pinned},{{"kty":"oct"}},7]}}"#);
    let set = KeySet::parse(doc.as_bytes(), ASYMMETRIC_ALGORITHMS).unwrap();
    assert_eq!(set.len, 2);
    assert_eq!(set.by_kid["ed"][0].algorithms, [Algorithm::EdDSA]);
    assert_eq!(set.by_kid["ps"][0].algorithms, [Algorithm::PS256]);
    assert!(!set.by_kid.contains_key("small") && !set.by_kid.contains_key("enc"));
    // The allow-list narrows further.
    assert!(KeySet::parse(doc.as_bytes(), &[Algorithm::ES256]).is_err());
}

#[test]
fn rsa_algorithms_are_exactly_the_rs_and_ps_ones() {
    let rsa = |alg: &Algorithm| {
        matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    };
    assert!(RSA_ALGORITHMS.iter().all(rsa));
    assert_eq!(
        ASYMMETRIC_ALGORITHMS.iter().filter(|a| rsa(a)).count(),
        RSA_ALGORITHMS.len()
    );
}
