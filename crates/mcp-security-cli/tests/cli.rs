//! The `mcp-security` binary, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use mcp_security::auth::api_key::{
    ApiKeyStore, KeyHasher, format_key_time, hash_line, parse_key_time, read_key_dates,
};
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
fn keygen_dates_the_entry() {
    let before = SystemTime::now() - std::time::Duration::from_secs(1);
    let (code, out, err) = run(&["keygen", "--name", "dated"], &[], "");
    let after = SystemTime::now();
    assert_eq!(code, 0, "{err}");
    let entry = out
        .split_once("[[keys]]")
        .map(|(_, e)| format!("[[keys]]{e}"))
        .unwrap();
    let line = entry
        .lines()
        .find(|l| l.starts_with("created_at = "))
        .unwrap_or_else(|| panic!("no created_at in {entry}"));
    // `created_at = "2026-12-07T00:00:00Z"`: RFC 3339 in UTC, to the second.
    let value = line
        .strip_prefix("created_at = \"")
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert_eq!(value.len(), 20, "{line}");
    assert!(
        value.ends_with('Z') && value.as_bytes()[10] == b'T',
        "{line}"
    );
    let created = parse_key_time(value).unwrap();
    assert!(before <= created && created <= after, "{line}");
    // The key file reads it back as the key's creation time.
    let dir = std::env::temp_dir().join(format!("mcp-cli-keygen-dated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.toml");
    std::fs::write(&file, &entry).unwrap();
    let dates = read_key_dates(&file).unwrap();
    assert_eq!(dates.len(), 1);
    assert_eq!(dates[0].name, "dated");
    assert_eq!(dates[0].created_at, Some(created));
    assert!(dates[0].enabled);
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
fn token_refuses_a_ttl_the_server_would_refuse() {
    // 24 h is the HS256 default maximum; MCP_JWT_MAX_LIFETIME lowers (or lifts) it.
    let (code, out, err) = run(
        &["token", "--sub", "a", "--aud", "x", "--ttl", "48h"],
        &[("MCP_JWT_SECRET", SECRET)],
        "",
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("maximum token lifetime of 86400 s"), "{err}");
    let (code, out, err) = run(
        &["token", "--sub", "a", "--aud", "x", "--ttl", "2h"],
        &[("MCP_JWT_SECRET", SECRET), ("MCP_JWT_MAX_LIFETIME", "1h")],
        "",
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("maximum token lifetime of 3600 s"), "{err}");
    let (code, out, _) = run(
        &["token", "--sub", "a", "--aud", "x", "--ttl", "48h"],
        &[("MCP_JWT_SECRET", SECRET), ("MCP_JWT_MAX_LIFETIME", "off")],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out.matches('.').count(), 2, "{out}");
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

// ---- audit verify ----

const AUDIT_KEY: &str = "0123456789abcdef0123456789abcdef-audit-cli-test";

/// Run the binary without any audit key in the environment unless given.
fn run_audit(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MCP_AUDIT_HMAC_KEY")
        .env_remove("MCP_AUDIT_HMAC_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

/// Drive a future to completion on this thread (the file sink's writer runs on its own thread).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
}

/// A closed audit file of four lines (start, two checkpoints, close) and its key file.
fn audit_files(name: &str) -> (std::path::PathBuf, String, String) {
    use mcp_security::audit::chain::AuditKey;
    use mcp_security::audit::file::FileSink;
    let dir = std::env::temp_dir().join(format!("mcp-cli-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("audit.key");
    std::fs::write(&key_file, format!("{AUDIT_KEY}\n")).unwrap();
    let log = dir.join("audit.jsonl");
    let key = AuditKey::from_file(&key_file).unwrap();
    let sink = FileSink::builder(&log, key).build().unwrap();
    block_on(sink.checkpoint()).unwrap();
    block_on(sink.checkpoint()).unwrap();
    block_on(sink.close()).unwrap();
    let log_s = log.display().to_string();
    let key_s = key_file.display().to_string();
    (dir, log_s, key_s)
}

#[test]
fn audit_verify_reports_ok() {
    let (dir, log, key) = audit_files("ok");
    let (code, out, err) = run_audit(&["audit", "verify", &log, "--key-file", &key], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("OK: 1 file(s), 4 lines (0 requests, 0 security events, 2 checkpoints), seq 0..=3, closed, head "),
        "{out}"
    );
    // The key from the environment, as the server reads it.
    let (code, out, err) = run_audit(
        &["audit", "verify", &log],
        &[("MCP_AUDIT_HMAC_KEY_FILE", &key)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run_audit(
        &["audit", "verify", &log],
        &[
            ("IQ_AUDIT_HMAC_KEY", AUDIT_KEY),
            ("MCP_AUDIT_HMAC_KEY", "x"),
        ],
    );
    assert_eq!(code, 2, "MCP_ is read by default: {err}");
    let (code, out, err) = run_audit(
        &["audit", "verify", &log, "--env-prefix", "IQ"],
        &[("IQ_AUDIT_HMAC_KEY", AUDIT_KEY)],
    );
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn audit_verify_fails_on_tampering_with_the_line() {
    let (dir, log, key) = audit_files("tamper");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("\"records\":0", "\"records\":9", 1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let (code, out, err) = run_audit(&["audit", "verify", &log, "--key-file", &key], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("FAILED: ") && out.contains("audit.jsonl:2: modified"),
        "{out}"
    );
    // Deleting a line.
    lines.remove(1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = run_audit(&["audit", "verify", &log, "--key-file", &key], &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("audit.jsonl:2: missing: expected seq 1, found 2"),
        "{out}"
    );
    // Cutting the tail.
    std::fs::write(&log, &text[..text.len() - 10]).unwrap();
    let (code, out, _) = run_audit(&["audit", "verify", &log, "--key-file", &key], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("torn tail"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn audit_verify_errors() {
    let (dir, log, key) = audit_files("errors");
    let wrong = dir.join("wrong.key");
    std::fs::write(&wrong, "another key that is long enough, 32+ bytes").unwrap();
    let wrong = wrong.display().to_string();
    let (code, out, _) = run_audit(&["audit", "verify", &log, "--key-file", &wrong], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("wrong key"), "{out}");
    let (code, _, err) = run_audit(&["audit", "verify", &log], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "pass --key-file or --public-key, or set MCP_AUDIT_HMAC_KEY or MCP_AUDIT_HMAC_KEY_FILE"
        ),
        "{err}"
    );
    let (code, _, err) = run_audit(&["audit", "verify", "--key-file", &key], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("at least one file"), "{err}");
    let short = dir.join("short.key");
    std::fs::write(&short, "short").unwrap();
    let (code, _, err) = run_audit(
        &[
            "audit",
            "verify",
            &log,
            "--key-file",
            &short.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("at least 32 bytes") && !err.contains("short\""),
        "{err}"
    );
    let (code, _, err) = run_audit(&["audit", "check"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown audit command"), "{err}");
    let missing = dir.join("missing.jsonl").display().to_string();
    let (code, out, _) = run_audit(&["audit", "verify", &missing, "--key-file", &key], &[]);
    assert_eq!(code, 1);
    assert!(out.starts_with("FAILED: "), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- `mcp-security check` ----

/// Run `check` with exactly these variables (the test process's own environment is cleared),
/// in `dir`.
fn run_check(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("spawn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

fn check_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-cli-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CHECK_KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";

#[test]
fn check_reports_errors_in_every_format() {
    let dir = check_dir("formats");
    let env = [
        ("IQ_ENV", "production"),
        ("IQ_API_KEY", "iqmcp-sk-your-secure-key-here"),
        ("IQ_DEBUG", "true"),
    ];
    let (code, out, err) = run_check(&["--env-prefix", "IQ"], &env, &dir);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("MCP-KEY-003"), "{out}");
    assert!(out.contains("IQ_DEBUG"), "{out}");
    assert!(out.contains("fix: "), "{out}");
    assert!(
        !out.contains("your-secure-key-here"),
        "no secret in the report"
    );

    let (code, out, _) = run_check(&["--env-prefix", "IQ", "--format", "json"], &env, &dir);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["environment"], "production");
    assert!(json["summary"]["errors"].as_u64().unwrap() >= 2);
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "MCP-DEBUG-001" && f["setting"] == "IQ_DEBUG")
    );

    let (code, out, _) = run_check(&["--env-prefix=IQ", "--format=sarif"], &env, &dir);
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        sarif["$schema"]
            .as_str()
            .unwrap()
            .contains("sarif-schema-2.1.0")
    );
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "mcp-security");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| r["id"].is_string()
        && r["shortDescription"]["text"].is_string()
        && r["help"]["text"].is_string()));
    let results = run["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "MCP-KEY-003" && r["level"] == "error")
    );
    assert!(results.iter().all(|r| r["message"]["text"].is_string()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_env_file_sarif_points_at_the_line() {
    let dir = check_dir("env-file");
    std::fs::write(
        dir.join("deploy.env"),
        "# a deployment\nMCP_ENV=production\nMCP_API_KEY=mcp-sk-short\n",
    )
    .unwrap();
    // The process environment is not read with --env-file.
    let (code, out, err) = run_check(
        &["--env-file", "deploy.env", "--format", "sarif"],
        &[("MCP_DEBUG", "true")],
        &dir,
    );
    assert_eq!(code, 1, "{out}{err}");
    let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let short = results
        .iter()
        .find(|r| r["ruleId"] == "MCP-KEY-001")
        .unwrap();
    let location = &short["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "deploy.env");
    assert_eq!(location["region"]["startLine"], 3);
    assert!(!results.iter().any(|r| r["ruleId"] == "MCP-DEBUG-001"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_exit_codes() {
    let dir = check_dir("exit");
    // A clean development configuration: nothing above a warning.
    let dev = [("MCP_ENV", "development"), ("MCP_API_KEY", CHECK_KEY)];
    let (code, out, _) = run_check(&[], &dev, &dir);
    assert_eq!(code, 0, "{out}");
    // A warning: 0, or 2 with --strict.
    let warn = [
        ("MCP_ENV", "development"),
        ("MCP_API_KEY", CHECK_KEY),
        ("MCP_URL_AUTH", "true"),
    ];
    let (code, out, _) = run_check(&[], &warn, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MCP-AUTH-004"), "{out}");
    assert_eq!(run_check(&["--strict"], &warn, &dir).0, 2);
    // A variable that cannot be read: MCP-CONFIG-001, exit 1.
    let (code, out, _) = run_check(&[], &[("MCP_RATE_LIMIT_BURST", "0")], &dir);
    assert_eq!(code, 1);
    assert!(
        out.contains("MCP-CONFIG-001") && out.contains("MCP_RATE_LIMIT_BURST"),
        "{out}"
    );
    // A missing config file is a configuration error too.
    let (code, out, _) = run_check(&["--config", "missing.toml"], &dev, &dir);
    assert_eq!(code, 1);
    assert!(
        out.contains("MCP-CONFIG-001") && out.contains("missing.toml"),
        "{out}"
    );
    // Usage errors: 2, on standard error.
    for bad in [
        &["--format", "xml"][..],
        &["--nope"],
        &["--env-prefix"],
        &["--env-file", "missing.env"],
        &["--strict=yes"],
    ] {
        let (code, out, err) = run_check(bad, &dev, &dir);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert!(err.starts_with("mcp-security: "), "{bad:?}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_passes_every_deployment_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("examples/deployments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "docker-stack",
            "iq-mcp",
            "jwt-servers",
            "superego",
            "tool-registry"
        ]
    );
    for (file, name) in files.iter().zip(&names) {
        let prefix = match name.as_str() {
            "iq-mcp" => "IQ",
            "superego" => "SUPEREGO",
            "tool-registry" => "REGISTRY",
            _ => "MCP",
        };
        let rel = format!("examples/deployments/{name}.env");
        let (code, out, err) = run_check(
            &[
                "--env-prefix",
                prefix,
                "--env-file",
                &rel,
                "--format",
                "json",
            ],
            &[],
            &root,
        );
        assert_eq!(code, 0, "{}: {out}{err}", file.display());
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["environment"], "production", "{name}");
        assert_eq!(json["summary"]["errors"], 0, "{name}: {out}");
        // Only the process (root in some CI containers) may warn, and only secret files that
        // are not mounted here are noted.
        for f in json["findings"].as_array().unwrap() {
            assert!(
                ["MCP-PROC-001", "MCP-FILE-004"].contains(&f["id"].as_str().unwrap()),
                "{name}: {f}"
            );
        }
    }
}

#[test]
fn check_warns_on_old_and_expiring_keys_and_an_old_secret_file() {
    let dir = check_dir("key-age");
    let day = std::time::Duration::from_secs(86_400);
    let now = SystemTime::now();
    let entry = |name: &str, extra: &str| {
        format!(
            "[[keys]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [\"*\"]\n{extra}\n",
            hash_line(&KeyHasher::Sha256, &format!("{CHECK_KEY}-{name}"))
        )
    };
    std::fs::write(
        dir.join("keys.toml"),
        [
            entry("old-bot", "created_at = \"2020-01-01T00:00:00Z\""),
            entry(
                "fresh",
                &format!("created_at = \"{}\"", format_key_time(now - 10 * day)),
            ),
            entry(
                "leaving",
                &format!("expires_at = \"{}\"", format_key_time(now + 3 * day)),
            ),
            entry("legacy", ""),
        ]
        .concat(),
    )
    .unwrap();
    let secret = dir.join("jwt_secret");
    std::fs::write(&secret, "Jq3x9Vt0b8R2mK5nL7pW1zY4cF6hD0sA9gE3uI8oT2k=").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&secret)
        .unwrap()
        .set_modified(now - 45 * day)
        .unwrap();
    #[cfg(unix)]
    for file in ["keys.toml", "jwt_secret"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let env = [
        ("MCP_ENV", "production"),
        ("MCP_API_KEYS_FILE", "keys.toml"),
        ("MCP_JWT_SECRET_FILE", "jwt_secret"),
        ("MCP_JWT_AUDIENCE", "https://mcp.example.com/mcp"),
        ("MCP_CORS_ORIGINS", "https://app.example.com"),
    ];
    let (code, out, err) = run_check(&[], &env, &dir);
    assert_eq!(code, 0, "warnings only: {out}{err}");
    assert!(
        out.contains("warning MCP-KEY-004  the API key \"old-bot\" in MCP_API_KEYS_FILE was created 2020-01-01T00:00:00Z"),
        "{out}"
    );
    assert!(
        out.contains("fix: rotate it: `mcp-security keygen --name old-bot` prints a new key"),
        "{out}"
    );
    assert!(
        out.contains("warning MCP-KEY-005  the API key \"leaving\" in MCP_API_KEYS_FILE expires"),
        "{out}"
    );
    assert!(
        out.contains("warning MCP-JWT-007  the HS256 secret (MCP_JWT_SECRET_FILE) was created"),
        "{out}"
    );
    assert!(out.contains("45 days ago"), "{out}");
    for quiet in ["\"fresh\"", "\"legacy\""] {
        assert!(!out.contains(quiet), "{quiet}: {out}");
    }
    assert_eq!(run_check(&["--strict"], &env, &dir).0, 2);
    let (_, out, _) = run_check(&["--format", "json"], &env, &dir);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let old: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "MCP-KEY-004")
        .collect();
    assert_eq!(old.len(), 1, "{out}");
    assert_eq!(old[0]["severity"], "warning");
    assert_eq!(old[0]["setting"], "MCP_API_KEYS_FILE");

    // A longer period quiets the key; a setting that cannot be read is an error naming it.
    let mut longer = env.to_vec();
    longer.push(("MCP_KEY_MAX_AGE", "3650d"));
    longer.push(("MCP_JWT_SECRET_MAX_AGE", "90d"));
    let (code, out, _) = run_check(&[], &longer, &dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("MCP-KEY-004") && !out.contains("MCP-JWT-007"),
        "{out}"
    );
    let mut bad = env.to_vec();
    bad.push(("MCP_KEY_MAX_AGE", "quarterly"));
    let (code, out, _) = run_check(&[], &bad, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MCP-CONFIG-001") && out.contains("MCP_KEY_MAX_AGE"),
        "{out}"
    );
    assert!(!out.contains("MCP-KEY-004"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}
