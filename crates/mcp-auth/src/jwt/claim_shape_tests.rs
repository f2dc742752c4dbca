//! Scopes as real issuers put them in access tokens: Entra ID, Auth0, Okta, Keycloak; JSON
//! pointers and their escapes; malformed configured claims.

use super::*;
use serde_json::json;

const SECRET: &str = "current-secret-0123456789-abcdefghijklmnop";
const T: u64 = 1_800_000_000;

fn verifier(claims: Option<&[&str]>) -> JwtVerifier {
    let mut b = JwtVerifier::builder().secret(Secret::new(SECRET));
    if let Some(claims) = claims {
        b = b.scope_claims(claims.iter().copied());
    }
    b.build().unwrap()
}

/// The scopes `claims` grant (with `sub`, `iat` and `exp` added), read with `scope_claims`.
fn scopes(
    scope_claims: Option<&[&str]>,
    mut claims: serde_json::Value,
) -> Result<Vec<String>, AuthFailure> {
    let object = claims.as_object_mut().unwrap();
    object.insert("sub".into(), json!("user-1"));
    object.insert("iat".into(), json!(T));
    object.insert("exp".into(), json!(T + 3600));
    let v = verifier(scope_claims);
    let token = v.sign_claims(&claims).unwrap();
    v.verify(&token, UNIX_EPOCH + Duration::from_secs(T))
        .map(|p| p.scopes().iter().map(str::to_owned).collect())
}

#[test]
fn entra_id_v2_scp_string_and_roles() {
    let token = json!({
        "aud": "api://7a1c1b8e-mcp",
        "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        "ver": "2.0",
        "azp": "client-app",
        "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
        "scp": "Notes.Read Notes.Write",
        "roles": ["Notes.Admin"],
    });
    assert_eq!(
        scopes(Some(&["scope", "scp", "roles"]), token.clone()).unwrap(),
        ["Notes.Read", "Notes.Write", "Notes.Admin"]
    );
    // `roles` is not read by default.
    assert_eq!(scopes(None, token).unwrap(), ["Notes.Read", "Notes.Write"]);
}

#[test]
fn auth0_scope_permissions_and_a_namespaced_claim() {
    let token = json!({
        "iss": "https://tenant.eu.auth0.com/",
        "aud": ["https://mcp.example.com/mcp", "https://tenant.eu.auth0.com/userinfo"],
        "azp": "client-app",
        "scope": "openid profile read:notes",
        "permissions": ["read:notes", "write:notes"],
        "https://example.com/roles": ["notes-admin"],
    });
    assert_eq!(
        scopes(
            Some(&["scope", "permissions", "https://example.com/roles"]),
            token.clone()
        )
        .unwrap(),
        [
            "openid",
            "profile",
            "read:notes",
            "write:notes",
            "notes-admin"
        ]
    );
    assert_eq!(
        scopes(None, token).unwrap(),
        ["openid", "profile", "read:notes", "write:notes"]
    );
}

#[test]
fn okta_scp_array() {
    let token = json!({
        "ver": 1,
        "iss": "https://example.okta.com/oauth2/default",
        "aud": "api://default",
        "cid": "0oa1",
        "uid": "00u1",
        "scp": ["openid", "notes:read"],
    });
    assert_eq!(scopes(None, token).unwrap(), ["openid", "notes:read"]);
}

#[test]
fn keycloak_scope_and_realm_roles() {
    let token = json!({
        "iss": "https://id.example.com/realms/mcp",
        "aud": "mcp-server",
        "typ": "Bearer",
        "azp": "mcp-client",
        "scope": "openid profile notes:read",
        "realm_access": {"roles": ["offline_access", "mcp-admin"]},
        "resource_access": {"mcp-server": {"roles": ["tools:call"]}},
        "preferred_username": "alice",
    });
    assert_eq!(
        scopes(
            Some(&[
                "scope",
                "/realm_access/roles",
                "/resource_access/mcp-server/roles"
            ]),
            token.clone()
        )
        .unwrap(),
        [
            "openid",
            "profile",
            "notes:read",
            "offline_access",
            "mcp-admin",
            "tools:call"
        ]
    );
    assert_eq!(
        scopes(None, token).unwrap(),
        ["openid", "profile", "notes:read"]
    );
}

#[test]
fn json_pointers_unescape_and_index() {
    let token = json!({
        "a/b": {"~c": "x y"},
        "groups": ["g0", ["g1a", "g1b"]],
        "realm_access": {"roles": null},
    });
    assert_eq!(
        scopes(
            Some(&[
                "/a~1b/~0c",
                "/groups/1",
                "/groups/01",
                "/groups/9",
                "/realm_access/roles"
            ]),
            token.clone()
        )
        .unwrap(),
        ["x", "y", "g1a", "g1b"]
    );
    // A pointer to a built-in claim is that claim.
    assert_eq!(
        scopes(Some(&["/scp"]), json!({"scp": ["s"]})).unwrap(),
        ["s"]
    );
    // Absent claims grant nothing.
    assert_eq!(
        scopes(Some(&["/nowhere/x", "roles"]), token).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_malformed_configured_claim_refuses_the_token() {
    for (configured, claims) in [
        (&["roles"][..], json!({"roles": 5})),
        (&["roles"][..], json!({"roles": ["a", 1]})),
        (&["roles"][..], json!({"roles": {"a": "b"}})),
        (
            &["/realm_access/roles"][..],
            json!({"realm_access": {"roles": {"x": 1}}}),
        ),
        (
            &["/realm_access/roles"][..],
            json!({"realm_access": {"roles": true}}),
        ),
        (&["scp"][..], json!({"scp": 1.5})),
    ] {
        assert_eq!(
            scopes(Some(configured), claims.clone()),
            Err(AuthFailure::InvalidClaims),
            "{configured:?} {claims}"
        );
    }
    // The same values in claims nobody configured are ignored.
    assert_eq!(
        scopes(
            Some(&["scope"]),
            json!({"scope": "a", "roles": 5, "scp": 1})
        )
        .unwrap(),
        ["a"]
    );
    // A duplicated member a configured pointer starts at is refused, like any duplicated claim.
    let v = verifier(Some(&["/realm_access/roles"]));
    let payload = format!(
        r#"{{"sub":"a","exp":{},"realm_access":{{"roles":["x"]}},"realm_access":{{"roles":["admin"]}}}}"#,
        T + 60
    );
    let token = hand_signed(&payload);
    assert_eq!(
        v.verify(&token, UNIX_EPOCH + Duration::from_secs(T)),
        Err(AuthFailure::InvalidClaims)
    );
}

/// An HS256 token over exactly these payload bytes.
fn hand_signed(payload: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, KeyInit, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
