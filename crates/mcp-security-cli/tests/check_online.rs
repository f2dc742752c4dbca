//! `mcp-security check --online` against a stub identity provider on a real loopback socket,
//! run as a user would run the binary.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A 2048-bit RSA modulus (`openssl genrsa 2048`), base64url.
const RSA_2048_N: &str = "0vOgCbqjdH41pdlydr9QvcKzu98cED2bhGHBEUg_-GT-hX-uFAOJctcfV_vtoPqn_O7f8WU7FXX6p_S7OXcjqiOq1ot9NGNiOn5vLjYyAK0eszXVDcn8x9tKvLnZ0vrerwitftDQk_OQmBqL6qZOjsNEOEHj3ifOBga1P0fyU37Q5n409dE3OvjF-16uvhtjkMwv81IqRsJhIOFWmcVH7BvNzYaoLuvX7zmXaVZX6CLA18tlzQvEZyJyZ1qosITpkibHrZbdSDsQabPiqVL-ISoMoP6l6pPuOwJ6FIjKS1TnD6ipYctrj5Wo-o82d6FJKqc28m5cJKv2DqOpO1aYjQ";
/// A 1024-bit RSA modulus (`openssl genrsa 1024`), base64url: too weak.
const RSA_1024_N: &str = "0mEAZULDBSjE0xlMh4YUmw9rGij7ZDqwzguBjinkofwpCdackfGNA0bLq1z89yENXWdiQAglO9FgNxj1wnn_bGgUE_gIa4nYINeWe2f69gC6PUw641L3hxbpCaaZfxozL26713rfTyEIHkINT3aHyQOWnfla0jtpMYvEjshfXYk";
/// RFC 7517 appendix A.1's P-256 public key.
const EC_X: &str = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
const EC_Y: &str = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";

fn good_keys() -> Value {
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": RSA_2048_N, "e": "AQAB"},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": EC_X, "y": EC_Y},
    ]})
}

/// A stub identity provider on 127.0.0.1: RFC 8414 metadata (from `metadata(base)`) and the
/// JWK Set at `/jwks`; every other path answers 404. Returns its base URL and a request count.
fn stub(metadata: impl Fn(&str) -> Value, jwks: Value) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let meta = metadata(&base);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/.well-known/oauth-authorization-server",
                    get(move || async move { Json(meta) }),
                )
                .route("/jwks", get(move || async move { Json(jwks) }))
                .layer(axum::middleware::from_fn(
                    move |req, next: axum::middleware::Next| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async move { next.run(req).await }
                    },
                ));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (base, hits)
}

fn metadata_for(base: &str) -> Value {
    json!({
        "issuer": base,
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "scopes_supported": ["openid", "notes:read", "notes:delete"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

/// Run `check --online` with exactly these variables, in a scratch directory holding a config
/// file whose policy requires `notes:read` and `notes:delete`. Each run has a directory of its
/// own: the tests run in parallel, and a run reading a file another is rewriting would see an
/// empty policy.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-cli-online-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mcp.toml"),
        "[auth.mcp_scopes]\n\"tools/call:delete_note\" = [\"notes:delete\"]\n\n\
         [[auth.path_scopes]]\nprefix = \"/notes\"\nscopes = [\"notes:read\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--online", "--config", "mcp.toml"])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(&dir)
        .output()
        .expect("spawn");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

fn dev_env(issuer: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MCP_ENV", "development".to_owned()),
        ("MCP_JWT_ISSUER", issuer.to_owned()),
        ("MCP_JWT_AUDIENCE", RESOURCE.to_owned()),
        ("MCP_RESOURCE_URL", RESOURCE.to_owned()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The JSON report's online findings, and its online checks as `id: status`.
fn online_parts(json: &Value) -> (Vec<Value>, Vec<String>) {
    let findings = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("MCP-ONLINE-"))
        .cloned()
        .collect();
    let checks = json["online"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["detail"].is_string(), "{c}");
            format!(
                "{}: {}",
                c["id"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            )
        })
        .collect();
    (findings, checks)
}

fn finding<'a>(findings: &'a [Value], id: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {findings:?}"))
}

#[test]
fn a_good_issuer_passes_every_check() {
    let (base, hits) = stub(metadata_for, good_keys());
    let env = dev_env(&base);

    let (code, out, err) = run(&[], &pairs(&env));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("online checks:"), "{out}");
    for id in 2..=10 {
        assert!(
            out.contains(&format!("ok      MCP-ONLINE-{id:03}")),
            "MCP-ONLINE-{id:03}: {out}"
        );
    }
    assert!(
        out.contains(&format!(
            "metadata: {base}/.well-known/oauth-authorization-server (RFC 8414)"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "2 usable key(s): kid \"rsa-1\": RSA 2048 bits, RS256; kid \"ec-1\": EC P-256, ES256"
        ),
        "{out}"
    );
    assert!(!out.contains("failed"), "{out}");

    let (code, out, _) = run(&["--format", "json"], &pairs(&env));
    assert_eq!(code, 0, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["errors"], 0, "{out}");
    let (findings, checks) = online_parts(&json);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        checks,
        (2..=10)
            .map(|id| format!("MCP-ONLINE-{id:03}: ok"))
            .collect::<Vec<_>>()
    );
    assert!(hits.load(Ordering::SeqCst) >= 4, "the stub was asked");

    // The server's own key discovery loads the same keys from the same issuer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let source = mcp_security::auth::JwksKeySource::builder()
            .discover(base.clone())
            .build()
            .unwrap();
        assert!(source.wait_loaded(Duration::from_secs(10)).await);
        assert_eq!(source.key_count(), 2);
    });
}

#[test]
fn a_wrong_issuer_in_the_metadata_is_an_error() {
    let (base, _) = stub(
        |base| {
            let mut m = metadata_for(base);
            m["issuer"] = json!("https://login.example.com/");
            m
        },
        good_keys(),
    );
    let env = dev_env(&base);
    let (code, out, err) = run(&["--format", "json"], &pairs(&env));
    assert_eq!(code, 1, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, checks) = online_parts(&json);
    let f = finding(&findings, "MCP-ONLINE-003");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["setting"], "MCP_JWT_ISSUER");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("\"https://login.example.com/\""),
        "{message}"
    );
    assert!(message.contains(&format!("{base:?}")), "{message}");
    assert!(f["fix"].as_str().unwrap().contains("RFC 8414 section 3.3"));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(checks.contains(&"MCP-ONLINE-003: failed".to_owned()));
    assert!(checks.contains(&"MCP-ONLINE-002: ok".to_owned()));

    // SARIF: the result points at its rule in the driver's list.
    let (code, out, _) = run(&["--format", "sarif"], &pairs(&env));
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    let sarif_run = &sarif["runs"][0];
    let result = sarif_run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "MCP-ONLINE-003")
        .unwrap();
    assert_eq!(result["level"], "error");
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(
        sarif_run["tool"]["driver"]["rules"][index]["name"],
        "IssuerMismatch"
    );

    // Human: the finding and its fix.
    let (code, out, _) = run(&[], &pairs(&env));
    assert_eq!(code, 1);
    assert!(out.contains("failed  MCP-ONLINE-003"), "{out}");
    assert!(out.contains("error   MCP-ONLINE-003"), "{out}");
    assert!(out.contains("fix: Set MCP_JWT_ISSUER"), "{out}");
}

#[test]
fn an_unreachable_jwk_set_is_an_error() {
    // The metadata points at a path the issuer does not serve.
    let (base, _) = stub(
        |base| {
            let mut m = metadata_for(base);
            m["jwks_uri"] = json!(format!("{base}/keys-moved"));
            m
        },
        good_keys(),
    );
    let (code, out, err) = run(&["--format", "json"], &pairs(&dev_env(&base)));
    assert_eq!(code, 1, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, checks) = online_parts(&json);
    let f = finding(&findings, "MCP-ONLINE-004");
    assert_eq!(f["severity"], "error");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{base}/keys-moved: answered 404 Not Found")),
        "{message}"
    );
    assert!(checks.contains(&"MCP-ONLINE-004: failed".to_owned()));

    // JWKS_URL on a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let mut env = dev_env(&base);
    env.push(("MCP_JWKS_URL", url.clone()));
    let (code, out, _) = run(&["--format", "json"], &pairs(&env));
    assert_eq!(code, 1, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, _) = online_parts(&json);
    let f = finding(&findings, "MCP-ONLINE-004");
    assert_eq!(f["setting"], "MCP_JWKS_URL");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("JWK Set {url}: request failed")),
        "{message}"
    );
}

#[test]
fn a_weak_rsa_key_is_an_error() {
    let weak = json!({"keys": [
        {"kty": "RSA", "kid": "old", "alg": "RS256", "n": RSA_1024_N, "e": "AQAB"},
    ]});
    let (base, _) = stub(metadata_for, weak);
    let (code, out, err) = run(&["--format", "json"], &pairs(&dev_env(&base)));
    assert_eq!(code, 1, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, checks) = online_parts(&json);
    let weak = finding(&findings, "MCP-ONLINE-006");
    // In development a weak key is a warning; that no key is left is the error.
    assert_eq!(weak["severity"], "warning");
    assert!(
        weak["message"]
            .as_str()
            .unwrap()
            .contains("kid \"old\" (1024 bits)"),
        "{weak}"
    );
    let none = finding(&findings, "MCP-ONLINE-005");
    assert_eq!(none["severity"], "error");
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .contains("RSA modulus of 1024 bits, under 2048"),
        "{none}"
    );
    assert!(checks.contains(&"MCP-ONLINE-005: failed".to_owned()));
    assert!(checks.contains(&"MCP-ONLINE-006: failed".to_owned()));
}

#[test]
fn plain_http_is_not_fetched_in_production() {
    let (base, hits) = stub(metadata_for, good_keys());
    // Production does not fetch plain http, even from loopback, and says so.
    let env = [
        ("MCP_ENV", "production"),
        ("MCP_JWT_ISSUER", base.as_str()),
        ("MCP_JWT_AUDIENCE", RESOURCE),
    ];
    let (code, out, _) = run(&["--format", "json"], &env);
    assert_eq!(code, 1, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, checks) = online_parts(&json);
    let f = finding(&findings, "MCP-ONLINE-002");
    assert_eq!(f["severity"], "error");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("plain http is fetched only from a loopback host in development"),
        "{message}"
    );
    assert!(
        checks.contains(&"MCP-ONLINE-004: skipped".to_owned()),
        "{checks:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was fetched");
}

#[test]
fn scopes_algorithms_audience_and_authorization_servers_warn() {
    let (base, _) = stub(
        |base| {
            let mut m = metadata_for(base);
            m["scopes_supported"] = json!(["openid", "notes:read"]);
            m
        },
        good_keys(),
    );
    let mut env = dev_env(&base);
    env.retain(|(k, _)| *k != "MCP_JWT_AUDIENCE");
    env.push(("MCP_JWT_AUDIENCE", "api://notes".to_owned()));
    env.push(("MCP_JWT_ALGORITHMS", "ES384".to_owned()));
    env.push((
        "MCP_AUTHORIZATION_SERVERS",
        "https://login.example.com".to_owned(),
    ));
    let (code, out, err) = run(&["--format", "json"], &pairs(&env));
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, _) = online_parts(&json);
    // ES384 fits neither key: no usable key (error), and the issuer advertises only RS256.
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(finding(&findings, "MCP-ONLINE-005")["severity"], "error");
    let algs = finding(&findings, "MCP-ONLINE-010");
    assert_eq!(algs["severity"], "warning");
    assert_eq!(algs["setting"], "MCP_JWT_ALGORITHMS");
    assert!(
        algs["message"].as_str().unwrap().contains("only RS256"),
        "{algs}"
    );
    let scopes = finding(&findings, "MCP-ONLINE-009");
    assert_eq!(scopes["severity"], "warning");
    assert!(
        scopes["message"]
            .as_str()
            .unwrap()
            .starts_with("the policy requires notes:delete but"),
        "{scopes}"
    );
    let audience = finding(&findings, "MCP-ONLINE-007");
    assert_eq!(audience["setting"], "MCP_JWT_AUDIENCE");
    assert!(audience["message"].as_str().unwrap().contains(RESOURCE));
    let servers = finding(&findings, "MCP-ONLINE-008");
    assert_eq!(servers["setting"], "MCP_AUTHORIZATION_SERVERS");

    // With ES256 allowed the key set is usable: warnings only, exit 0 (2 with --strict).
    env.retain(|(k, _)| *k != "MCP_JWT_ALGORITHMS");
    env.push(("MCP_JWT_ALGORITHMS", "ES256".to_owned()));
    let (code, out, _) = run(&["--format", "json"], &pairs(&env));
    assert_eq!(code, 0, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, _) = online_parts(&json);
    let mut ids: Vec<&str> = findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "MCP-ONLINE-007",
            "MCP-ONLINE-008",
            "MCP-ONLINE-009",
            "MCP-ONLINE-010"
        ]
    );
    assert_eq!(run(&["--strict"], &pairs(&env)).0, 2);
}

#[test]
fn nothing_to_check_is_one_info_finding() {
    let env = [
        ("MCP_ENV", "development"),
        (
            "MCP_API_KEY",
            "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0",
        ),
    ];
    let (code, out, err) = run(&["--format", "json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, checks) = online_parts(&json);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["id"], "MCP-ONLINE-001");
    assert_eq!(findings[0]["severity"], "info");
    assert!(
        findings[0]["message"]
            .as_str()
            .unwrap()
            .contains("neither MCP_JWT_ISSUER nor MCP_JWKS_URL is set")
    );
    assert_eq!(checks, ["MCP-ONLINE-001: skipped"]);
    // Without --online, no online part.
    let out = Command::new(BIN)
        .args(["check", "--format", "json"])
        .env_clear()
        .envs(env)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.get("online").is_none());
}

#[test]
fn findings_name_the_deployment_variables() {
    let (base, _) = stub(
        |base| {
            let mut m = metadata_for(base);
            m["issuer"] = json!(format!("{base}/"));
            m
        },
        good_keys(),
    );
    let env = [
        ("IQ_ENV", "development"),
        ("IQ_JWT_ISSUER", base.as_str()),
        ("IQ_JWT_AUDIENCE", RESOURCE),
    ];
    let (code, out, err) = run(&["--env-prefix", "IQ", "--format", "json"], &env);
    assert_eq!(code, 1, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let (findings, _) = online_parts(&json);
    let f = finding(&findings, "MCP-ONLINE-003");
    assert_eq!(f["setting"], "IQ_JWT_ISSUER");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.starts_with("Set IQ_JWT_ISSUER to"), "{fix}");
    assert!(!fix.contains("MCP_"), "{fix}");
    // A trailing slash is a different issuer.
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("says issuer \"{base}/\"")),
        "{f}"
    );
}
