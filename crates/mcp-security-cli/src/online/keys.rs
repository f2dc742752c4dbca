//! The keys of a fetched JWK Set: how many the server would use (its own parser decides), and
//! for each key what it is and why it would be skipped (RSA modulus under 2048 bits, a curve
//! other than P-256 / P-384 / Ed25519, a symmetric key, an algorithm that is not allowed…).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_security::auth::JwksKeySource;
use mcp_security::auth::jwks::{MAX_KEYS, MIN_RSA_BITS};
use serde_json::Value;

/// What a JWK Set holds, as the server sees it.
#[derive(Debug, Default)]
pub(crate) struct KeySetReport {
    /// The keys in the document.
    pub(crate) total: usize,
    /// The keys the server's own parser keeps for the allowed algorithms.
    pub(crate) usable: usize,
    /// One phrase per key: `kid "a": RSA 2048 bits, RS256` or `kid "b": skipped: …`.
    pub(crate) keys: Vec<String>,
    /// The RSA keys shorter than [`MIN_RSA_BITS`]: `kid "w" (1024 bits)`.
    pub(crate) weak: Vec<String>,
    /// The `alg` values the keys declare.
    pub(crate) declared_algorithms: Vec<String>,
}

/// Examine `doc`, a JWK Set, for keys usable with the `allowed` algorithms (names).
///
/// # Errors
/// `doc` is not a JWK Set (RFC 7517 §5: an object with a `keys` array).
pub(crate) fn examine(doc: &Value, allowed: &[String]) -> Result<KeySetReport, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK Set (RFC 7517 section 5): no `keys` array")?;
    let mut report = KeySetReport {
        total: keys.len(),
        ..KeySetReport::default()
    };
    for (index, key) in keys.iter().enumerate().take(MAX_KEYS) {
        let label = match key.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("kid {kid:?}"),
            None => format!("key #{}", index + 1),
        };
        if let Some(alg) = key.get("alg").and_then(Value::as_str)
            && !report.declared_algorithms.iter().any(|a| a == alg)
        {
            report.declared_algorithms.push(alg.to_owned());
        }
        let phrase = match describe(key, allowed) {
            Ok(usable) => usable,
            Err(Skip::Weak(bits)) => {
                report.weak.push(format!("{label} ({bits} bits)"));
                format!("skipped: RSA modulus of {bits} bits, under {MIN_RSA_BITS}")
            }
            Err(Skip::Other(why)) => format!("skipped: {why}"),
        };
        report.keys.push(format!("{label}: {phrase}"));
    }
    // The verdict is the server's: its parser, with its rules, on the same document.
    report.usable = JwksKeySource::builder()
        .json(doc.to_string())
        .algorithms(allowed.iter().cloned())
        .build()
        .map_or(0, |source| source.key_count());
    Ok(report)
}

/// Why a key is not used.
enum Skip {
    /// An RSA modulus of this many bits, under [`MIN_RSA_BITS`].
    Weak(usize),
    Other(String),
}

/// `RSA 2048 bits: RS256, PS256`, or why the key is skipped.
fn describe(key: &Value, allowed: &[String]) -> Result<String, Skip> {
    let other = |why: &str| Skip::Other(why.to_owned());
    let member = |name: &str| key.get(name).and_then(Value::as_str);
    if !key.is_object() {
        return Err(other("not a JSON object"));
    }
    if let Some(use_) = member("use")
        && use_ != "sig"
    {
        return Err(Skip::Other(format!(
            "use is {use_:?}, not \"sig\" (not a signing key)"
        )));
    }
    if let Some(ops) = key.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|o| o == "verify")
    {
        return Err(other("key_ops lack \"verify\""));
    }
    let decoded = |name: &str| member(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let (kind, family): (String, &[&str]) = match member("kty").unwrap_or("") {
        "RSA" => {
            let n = decoded("n").ok_or_else(|| other("RSA key without a valid `n`"))?;
            if decoded("e").is_none() {
                return Err(other("RSA key without a valid `e`"));
            }
            let significant: Vec<u8> = n.into_iter().skip_while(|&b| b == 0).collect();
            let bits = significant.first().map_or(0, |&top| {
                (significant.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
            });
            if significant.len() * 8 < MIN_RSA_BITS {
                return Err(Skip::Weak(bits));
            }
            (
                format!("RSA {bits} bits"),
                &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
            )
        }
        "EC" => {
            let (family, size): (&[&str], usize) = match member("crv") {
                Some("P-256") => (&["ES256"], 32),
                Some("P-384") => (&["ES384"], 48),
                Some(crv) => {
                    return Err(Skip::Other(format!(
                        "EC curve {crv} is not accepted (P-256, P-384)"
                    )));
                }
                None => return Err(other("EC key without `crv`")),
            };
            let exact = |c: &str| decoded(c).is_some_and(|b| b.len() == size);
            if !exact("x") || !exact("y") {
                return Err(other("EC key with invalid coordinates"));
            }
            (format!("EC {}", member("crv").unwrap_or_default()), family)
        }
        "OKP" => match member("crv") {
            Some("Ed25519") if decoded("x").is_some_and(|b| b.len() == 32) => {
                ("OKP Ed25519".to_owned(), &["EdDSA"])
            }
            Some("Ed25519") => return Err(other("Ed25519 key with an invalid `x`")),
            Some(crv) => {
                return Err(Skip::Other(format!(
                    "OKP curve {crv} is not accepted (Ed25519)"
                )));
            }
            None => return Err(other("OKP key without `crv`")),
        },
        "oct" => return Err(other("a symmetric key: never used from a JWKS")),
        "" => return Err(other("no `kty`")),
        kty => return Err(Skip::Other(format!("key type {kty} is not supported"))),
    };
    let mut algorithms: Vec<&str> = family
        .iter()
        .copied()
        .filter(|a| allowed.iter().any(|x| x == a))
        .collect();
    if let Some(alg) = member("alg") {
        algorithms.retain(|a| *a == alg);
    }
    if algorithms.is_empty() {
        let declared = member("alg").map_or_else(String::new, |a| format!(" (its alg is {a})"));
        return Err(Skip::Other(format!(
            "{kind}: no allowed algorithm fits{declared}"
        )));
    }
    Ok(format!("{kind}, {}", algorithms.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7517 appendix A.1: a 2048-bit RSA key and a P-256 key.
    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const EC_X: &str = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
    const EC_Y: &str = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";

    fn all() -> Vec<String> {
        ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn usable_weak_and_skipped_keys() {
        let short = URL_SAFE_NO_PAD.encode([0xC1; 128]);
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": RSA_N, "e": "AQAB", "alg": "RS256"},
            {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y},
            {"kty": "RSA", "kid": "weak", "n": short, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "oct", "kid": "mac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "k", "crv": "secp256k1", "x": EC_X, "y": EC_Y},
            "not a key",
        ]});
        let r = examine(&doc, &all()).unwrap();
        assert_eq!(r.total, 7);
        assert_eq!(r.usable, 2);
        assert_eq!(r.keys[0], "kid \"good\": RSA 2048 bits, RS256");
        assert_eq!(r.keys[1], "key #2: EC P-256, ES256");
        assert_eq!(
            r.keys[2],
            "kid \"weak\": skipped: RSA modulus of 1024 bits, under 2048"
        );
        assert_eq!(r.weak, ["kid \"weak\" (1024 bits)"]);
        assert!(r.keys[3].contains("use is \"enc\""), "{}", r.keys[3]);
        assert!(r.keys[4].contains("symmetric"), "{}", r.keys[4]);
        assert!(r.keys[5].contains("secp256k1"), "{}", r.keys[5]);
        assert!(r.keys[6].contains("not a JSON object"), "{}", r.keys[6]);
        assert_eq!(r.declared_algorithms, ["RS256"]);

        // Only ES256 allowed: the RSA key is skipped, the server keeps the EC key.
        let r = examine(&doc, &["ES256".to_owned()]).unwrap();
        assert_eq!(r.usable, 1);
        assert!(r.keys[0].contains("no allowed algorithm fits (its alg is RS256)"));

        // No usable key at all, and documents that are not JWK Sets.
        let r = examine(&json!({"keys": [doc["keys"][2]]}), &all()).unwrap();
        assert_eq!(r.usable, 0);
        assert!(examine(&json!({"issuer": "x"}), &all()).is_err());
        assert!(examine(&json!([1, 2]), &all()).is_err());
    }
}
