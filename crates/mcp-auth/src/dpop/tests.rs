use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

/// RFC 9449 §4.2, Figure 4: the example proof's key, and §6.1's thumbprint of it.
const RFC_JWK: &str = r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;
const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
/// RFC 9449 §4.2, Figure 4: a proof for `POST https://server.example.com/token` at 1562262616.
const RFC_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
/// RFC 9449 §7.1: an access token and its `ath`.
const RFC_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
const RFC_ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

const URL: &str = "https://mcp.example.com/mcp";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

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

    /// Signs a compact JWS with the header written as given (`jsonwebtoken`'s typed header
    /// would drop members such as a private `d`).
    fn sign_with(&self, typ: &str, jwk: Value, claims: &Value) -> String {
        let alg = serde_json::to_value(self.alg).unwrap();
        let header = json!({ "typ": typ, "alg": alg, "jwk": jwk });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg);
        format!("{input}.{}", signature.unwrap())
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with("dpop+jwt", self.jwk.clone(), claims)
    }

    /// A proof for `POST URL` with `TOKEN` at `iat`.
    fn proof(&self, jti: &str, iat: u64) -> String {
        self.sign(&claims(jti, iat))
    }
}

fn claims(jti: &str, iat: u64) -> Value {
    json!({
        "jti": jti,
        "htm": "POST",
        "htu": URL,
        "iat": iat,
        "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(TOKEN.as_bytes())),
    })
}

fn request<'a>(jkt: &'a str) -> ProofRequest<'a> {
    ProofRequest {
        method: &http::Method::POST,
        url: URL,
        access_token: TOKEN,
        jkt,
    }
}

fn verifier() -> DpopVerifier {
    DpopVerifier::builder().build().unwrap()
}

#[test]
fn rfc_9449_thumbprint_ath_and_example_proof() {
    let jwk: Jwk = serde_json::from_str(RFC_JWK).unwrap();
    assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), RFC_JKT);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(RFC_TOKEN.as_bytes())),
        RFC_ATH
    );
    // The example proof is for the token endpoint and has no `ath`: every check before that
    // one (typ, alg, jwk, signature, htm, htu, iat) passes, and the missing `ath` is what is
    // refused at a resource server.
    let req = ProofRequest {
        method: &http::Method::POST,
        url: "https://server.example.com/token",
        access_token: RFC_TOKEN,
        jkt: RFC_JKT,
    };
    assert_eq!(
        verifier().verify(RFC_PROOF, &req, at(1_562_262_616)),
        Err(DpopError::WrongTokenHash)
    );
    // Its signature covers every byte.
    let mut tampered = RFC_PROOF.to_owned();
    let dot = tampered.rfind('.').unwrap();
    tampered.replace_range(dot + 1..dot + 2, "3");
    assert_eq!(
        verifier().verify(&tampered, &req, at(1_562_262_616)),
        Err(DpopError::BadSignature)
    );
}

#[test]
fn a_good_proof_is_accepted_once() {
    for key in [ClientKey::es256(), ClientKey::ed25519()] {
        let v = verifier();
        let jkt = key.jkt();
        let proof = key.proof("a-1", NOW);
        assert_eq!(v.verify(&proof, &request(&jkt), at(NOW + 3)), Ok(()));
        assert_eq!(
            v.verify(&proof, &request(&jkt), at(NOW + 4)),
            Err(DpopError::Replayed)
        );
        // Another jti from the same key is fine.
        assert_eq!(
            v.verify(&key.proof("a-2", NOW), &request(&jkt), at(NOW + 4)),
            Ok(())
        );
    }
}

#[test]
fn a_proof_for_another_request_or_token_or_key_is_refused() {
    let key = ClientKey::es256();
    let jkt = key.jkt();
    let v = verifier();
    let mut c = claims("m", NOW);
    c["htm"] = json!("GET");
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::WrongMethod)
    );
    let mut c = claims("u", NOW);
    c["htu"] = json!("https://mcp.example.com/other");
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::WrongUrl)
    );
    let mut c = claims("h", NOW);
    c["htu"] = json!("https://evil.example.com/mcp");
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::WrongUrl)
    );
    let mut c = claims("t", NOW);
    c["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(b"another token")));
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::WrongTokenHash)
    );
    let mut c = claims("n", NOW);
    c.as_object_mut().unwrap().remove("ath");
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::WrongTokenHash)
    );
    // Signed by a key the token is not bound to.
    let other = ClientKey::es256();
    assert_eq!(
        v.verify(&other.proof("k", NOW), &request(&jkt), at(NOW)),
        Err(DpopError::WrongKey)
    );
    // Nothing refused above was remembered: the same jtis are still usable.
    assert_eq!(
        v.verify(&key.proof("m", NOW), &request(&jkt), at(NOW)),
        Ok(())
    );
}

#[test]
fn iat_must_be_inside_the_window() {
    let key = ClientKey::ed25519();
    let jkt = key.jkt();
    let v = verifier();
    assert_eq!(
        v.verify(&key.proof("old", NOW - 61), &request(&jkt), at(NOW)),
        Err(DpopError::Stale)
    );
    assert_eq!(
        v.verify(&key.proof("future", NOW + 61), &request(&jkt), at(NOW)),
        Err(DpopError::Stale)
    );
    // Ahead of this clock only by the skew allowance, whatever the window.
    assert_eq!(
        v.verify(&key.proof("ahead", NOW + 11), &request(&jkt), at(NOW)),
        Err(DpopError::Stale)
    );
    assert_eq!(
        v.verify(&key.proof("skewed", NOW + 10), &request(&jkt), at(NOW)),
        Ok(())
    );
    assert_eq!(
        v.verify(&key.proof("edge", NOW - 60), &request(&jkt), at(NOW)),
        Ok(())
    );
    let mut c = claims("neg", NOW);
    c["iat"] = json!(-1);
    assert!(matches!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::Malformed(_))
    ));
}

#[test]
fn header_rules() {
    let key = ClientKey::es256();
    let jkt = key.jkt();
    let v = verifier();
    assert_eq!(
        v.verify(
            &key.sign_with("JWT", key.jwk.clone(), &claims("typ", NOW)),
            &request(&jkt),
            at(NOW)
        ),
        Err(DpopError::Malformed("typ is not dpop+jwt"))
    );
    // A private key in the header is refused before anything else is read from it.
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    assert_eq!(
        v.verify(
            &key.sign_with("dpop+jwt", private, &claims("d", NOW)),
            &request(&jkt),
            at(NOW)
        ),
        Err(DpopError::Malformed("jwk holds a private key"))
    );
    // MAC algorithms are never accepted, even with a key in the header.
    let hs = {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(key.jwk.clone()).unwrap());
        jsonwebtoken::encode(
            &header,
            &claims("hs", NOW),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    };
    assert_eq!(
        v.verify(&hs, &request(&jkt), at(NOW)),
        Err(DpopError::UnsupportedAlgorithm)
    );
    // An algorithm that was not allowed.
    let only_es = DpopVerifier::builder()
        .algorithms(["ES256"])
        .unwrap()
        .build()
        .unwrap();
    let ed = ClientKey::ed25519();
    assert_eq!(
        only_es.verify(&ed.proof("ed", NOW), &request(&ed.jkt()), at(NOW)),
        Err(DpopError::UnsupportedAlgorithm)
    );
    assert_eq!(only_es.algs_value(), "ES256");
    assert_eq!(verifier().algs_value(), "ES256 EdDSA RS256 PS256");
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.e30.",
        &"a".repeat(MAX_PROOF_BYTES + 1),
    ] {
        assert!(
            matches!(
                v.verify(junk, &request(&jkt), at(NOW)),
                Err(DpopError::Malformed(_))
            ),
            "{junk:.20}"
        );
    }
}

#[test]
fn htu_is_compared_after_normalization() {
    let key = ClientKey::es256();
    let jkt = key.jkt();
    let v = verifier();
    for (i, htu) in [
        "HTTPS://MCP.example.com:443/mcp",
        "https://mcp.example.com/./mcp?ignored=1#frag",
        "https://mcp.example.com/x/../%6Dcp",
    ]
    .iter()
    .enumerate()
    {
        let mut c = claims(&format!("n{i}"), NOW);
        c["htu"] = json!(htu);
        assert_eq!(
            v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
            Ok(()),
            "{htu}"
        );
    }
    assert_eq!(
        normalize_htu("http://[::1]:80/a%2fb").as_deref(),
        Some("http://[::1]/a%2Fb")
    );
    assert_eq!(
        normalize_htu("https://h:8443").as_deref(),
        Some("https://h:8443/")
    );
    assert_eq!(normalize_htu("ftp://h/"), None);
    assert_eq!(normalize_htu("https://user@h/"), None);
    assert_eq!(normalize_htu("https://h/%zz"), None);
    assert_eq!(normalize_htu("https://h:99999/"), None);
}

#[test]
fn server_nonces() {
    let key = ClientKey::es256();
    let jkt = key.jkt();
    let v = DpopVerifier::builder()
        .nonce(true)
        .nonce_lifetime(Duration::from_secs(300))
        .build()
        .unwrap();
    assert!(v.requires_nonce());
    let err = v
        .verify(&key.proof("no-nonce", NOW), &request(&jkt), at(NOW))
        .unwrap_err();
    assert_eq!(err, DpopError::UseNonce);
    assert_eq!(err.error_code(), "use_dpop_nonce");
    let nonce = v.nonce(at(NOW)).unwrap();
    let mut c = claims("with-nonce", NOW);
    c["nonce"] = json!(nonce);
    assert_eq!(v.verify(&key.sign(&c), &request(&jkt), at(NOW)), Ok(()));
    // Still good in the next slot; stale after that.
    let mut c = claims("next-slot", NOW + 300);
    c["nonce"] = json!(nonce);
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW + 300)),
        Ok(())
    );
    let mut c = claims("stale", NOW + 600);
    c["nonce"] = json!(nonce);
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW + 600)),
        Err(DpopError::UseNonce)
    );
    // A nonce of another server (another key) is not accepted.
    let other = DpopVerifier::builder().nonce(true).build().unwrap();
    let mut c = claims("foreign", NOW);
    c["nonce"] = json!(other.nonce(at(NOW)).unwrap());
    assert_eq!(
        v.verify(&key.sign(&c), &request(&jkt), at(NOW)),
        Err(DpopError::UseNonce)
    );
    // Replicas sharing a key accept each other's nonces.
    let shared = Secret::new("k".repeat(32));
    let a = DpopVerifier::builder()
        .nonce(true)
        .nonce_key(shared.clone())
        .build()
        .unwrap();
    let b = DpopVerifier::builder()
        .nonce(true)
        .nonce_key(shared)
        .build()
        .unwrap();
    let mut c = claims("shared", NOW);
    c["nonce"] = json!(a.nonce(at(NOW)).unwrap());
    assert_eq!(b.verify(&key.sign(&c), &request(&jkt), at(NOW)), Ok(()));
    assert_eq!(verifier().nonce(at(NOW)), None);
}

#[test]
fn a_full_replay_cache_refuses_rather_than_forgets() {
    let key = ClientKey::ed25519();
    let jkt = key.jkt();
    let v = DpopVerifier::builder().replay_capacity(16).build().unwrap();
    let mut accepted = 0;
    let mut busy = 0;
    for i in 0..64 {
        match v.verify(&key.proof(&format!("j{i}"), NOW), &request(&jkt), at(NOW)) {
            Ok(()) => accepted += 1,
            Err(DpopError::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        accepted >= 1 && busy >= 1,
        "{accepted} accepted, {busy} busy"
    );
    assert!(v.inner.replay.len() <= 16);
    // Once the window has passed, the entries expire and proofs are accepted again.
    assert_eq!(
        v.verify(
            &key.proof("later", NOW + 200),
            &request(&jkt),
            at(NOW + 200)
        ),
        Ok(())
    );
}

#[test]
fn builder_errors_name_the_setting() {
    let setting = |r: Result<DpopVerifier, ConfigError>| r.unwrap_err().setting().to_owned();
    assert_eq!(
        DpopVerifier::builder()
            .algorithms(["HS256"])
            .unwrap_err()
            .setting(),
        "dpop_algorithms"
    );
    assert_eq!(
        setting(
            DpopVerifier::builder()
                .algorithms(Vec::<&str>::new())
                .unwrap()
                .build()
        ),
        "dpop_algorithms"
    );
    assert_eq!(
        setting(DpopVerifier::builder().iat_window(Duration::ZERO).build()),
        "dpop_iat_window"
    );
    assert_eq!(
        setting(DpopVerifier::builder().replay_capacity(0).build()),
        "dpop_replay_capacity"
    );
    assert_eq!(
        setting(
            DpopVerifier::builder()
                .nonce(true)
                .nonce_key(Secret::new("short"))
                .build()
        ),
        "dpop_nonce_key"
    );
    assert_eq!("required".parse::<DpopMode>(), Ok(DpopMode::Required));
    assert_eq!(" Off ".parse::<DpopMode>(), Ok(DpopMode::Off));
    assert!(
        "maybe"
            .parse::<DpopMode>()
            .unwrap_err()
            .contains("off, allowed or required")
    );
    assert_eq!(DpopMode::default(), DpopMode::Allowed);
}
