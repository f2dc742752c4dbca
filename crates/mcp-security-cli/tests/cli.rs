//! The `mcp-security` binary, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use mcp_security::auth::api_key::{ApiKeyStore, KeyHasher, hash_line};
use mcp_security::auth::jwt::JwtVerifier;
use mcp_security::core::config::Secret;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");
const SECRET: &str = "0123456789abcdef0123456789abcdef-cli-test";

fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MCP_JWT_SECRET")
        .env_remove("MCP_JWT_SECRET_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

#[test]
fn keygen_prints_a_key_once_and_its_hash_entry() {
    let (code, out, err) = run(
        &[
            "keygen",
            "--prefix",
            "iqmcp-sk-",
            "--name",
            "ci",
            "--scope",
            "notes:read",
        ],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let key = lines.next().unwrap();
    assert!(key.starts_with("iqmcp-sk-"));
    assert_eq!(key.len(), "iqmcp-sk-".len() + 43);
    assert_eq!(out.matches(key).count(), 1, "the key is printed once");
    let entry = out
        .split_once("[[keys]]")
        .map(|(_, e)| format!("[[keys]]{e}"))
        .unwrap();
    assert!(entry.contains(&format!(
        "hash = \"{}\"",
        hash_line(&KeyHasher::Sha256, key)
    )));
    assert!(entry.contains("scopes = [\"notes:read\"]"));
    // The entry is a valid key file that accepts the key.
    let dir = std::env::temp_dir().join(format!("mcp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.toml");
    std::fs::write(&file, &entry).unwrap();
    let store = ApiKeyStore::builder().file(&file).build().unwrap();
    let principal = store.verify(key, SystemTime::now()).unwrap();
    assert_eq!(principal.id(), "ci");
    assert!(principal.has_scope("notes:read"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hash_key_reads_stdin() {
    let (code, out, _) = run(&["hash-key"], &[], "abc\n");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let (code, _, err) = run(&["hash-key"], &[], "");
    assert_eq!(code, 2);
    assert_eq!(err, "mcp-security: no key on standard input\n");
}

#[test]
fn token_is_verifiable_with_the_same_secret() {
    let (code, out, err) = run(
        &[
            "token",
            "--sub",
            "admin",
            "--aud",
            "filesystem",
            "--ttl",
            "15m",
            "--scope",
            "notes",
        ],
        &[("MCP_JWT_SECRET", SECRET)],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let verifier = JwtVerifier::builder()
        .secret(Secret::new(SECRET))
        .audience("filesystem")
        .build()
        .unwrap();
    let principal = verifier.verify(out.trim(), SystemTime::now()).unwrap();
    assert_eq!(principal.id(), "admin");
    assert!(principal.has_scope("notes:write"));
    let exp = principal.expires_at().unwrap();
    let ttl = exp.duration_since(SystemTime::now()).unwrap().as_secs();
    assert!((800..=900).contains(&ttl), "ttl {ttl}");
}

#[test]
fn token_errors_name_what_is_missing() {
    let (code, out, err) = run(&["token", "--aud", "x"], &[("MCP_JWT_SECRET", SECRET)], "");
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err, "mcp-security: token needs --sub\n");
    let (code, _, err) = run(&["token", "--sub", "a", "--aud", "x"], &[], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("set MCP_JWT_SECRET or MCP_JWT_SECRET_FILE"),
        "{err}"
    );
    let (code, _, err) = run(
        &["token", "--sub", "a", "--aud", "x"],
        &[("MCP_JWT_SECRET", "short")],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("256 bits") && !err.contains("short\""),
        "{err}"
    );
    let (code, _, err) = run(&["frobnicate"], &[], "");
    assert_eq!(code, 2);
    assert!(
        err.starts_with("mcp-security: unknown command \"frobnicate\""),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    let mut child = Command::new(BIN)
        .args(["keygen"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
