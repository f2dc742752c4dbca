//! The `mcp-security` command line.
//!
//! ```text
//! mcp-security token --sub admin --aud filesystem [--ttl 900] [--scope notes:read]... [--iss URL]
//!                    [--secret-file PATH] [--env-prefix MCP]
//! mcp-security keygen [--prefix mcp-sk-] [--name NAME] [--scope SCOPE]... [--pepper-file PATH]
//! mcp-security keygen --ed25519 --out FILE
//! mcp-security hash-key [--pepper-file PATH]        (reads the key from standard input)
//! mcp-security audit verify <file>... [--key-file PATH] [--public-key PATH] [--anchor PATH]
//!                                     [--allow-rotated-end] [--env-prefix MCP]
//! mcp-security audit report <file>... [the verify options] [--top 10] [--html OUT.html]
//! mcp-security check [--env-prefix MCP] [--env-file FILE] [--config FILE]
//!                    [--format human|json|sarif] [--strict] [--online]
//! mcp-security manifest snapshot URL [--token-file PATH] > tools.lock.json
//! mcp-security manifest verify URL --lock FILE [--token-file PATH]
//! mcp-security ban list|add ADDR [--duration 15m]|remove ADDR [--env-prefix MCP]
//! ```
//!
//! `token` signs an HS256 JWT with the first secret of `MCP_JWT_SECRET` (or `MCP_JWT_SECRET_FILE`,
//! or `--secret-file`) and prints it. `keygen` prints a new API key once, then the entry to put in
//! the key file (only its hash, and `created_at`: now, for the rotation checks); `keygen --ed25519 --out FILE` writes a checkpoint signing key
//! (PKCS#8 PEM, mode 0600) to FILE and prints its public key, base64.
//! `hash-key` prints the hash line of a key read from standard input.
//! `audit verify` checks tamper-evident audit files (in any order: they are sorted into chain
//! order) with the chain key from `--key-file`, or else `MCP_AUDIT_HMAC_KEY` /
//! `MCP_AUDIT_HMAC_KEY_FILE`, or with the signing key's public key from `--public-key` (no
//! secret: see `audit.rs`), and against an anchor file with `--anchor`; it prints `OK: …` and exits 0, or `FAILED: <file>:<line>: …` and
//! exits 1 (2 for usage errors).
//! `audit report` verifies the same way, then prints a summary of the trail (requests, refusals
//! by reason, top principals, tools and client addresses, bans, the time range) and with
//! `--html` writes a self-contained page with charts; it exits 1, after printing the report
//! marked unverified, when the trail does not verify (see `report/mod.rs`).
//! `check` runs the production checks against the configuration (the environment, or one env
//! file) and prints the findings as text, JSON or SARIF 2.1.0; it exits 1 on errors, 2 on
//! warnings with `--strict`, else 0 (see `check.rs`). With `--online` it also fetches the
//! identity provider's metadata and JWK Set as the server would (see `online/mod.rs`).
//! `manifest snapshot` prints a lock file of the server's tool and prompt definitions
//! (`MCP_TOOL_MANIFEST_FILE` for the server), `manifest verify` exits 1 when the server's
//! definitions drifted from one (see `manifest.rs`).
//! `ban` lists, adds or removes bans in the ban list every replica shares through Redis (the
//! servers' `MCP_RATE_LIMIT_REDIS_*` settings; see `ban.rs`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod audit;
mod ban;
mod check;
mod manifest;
mod online;
mod report;

use args::Flags;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mcp_security::auth::api_key::{
    DEFAULT_KEY_PREFIX, KeyHasher, format_key_time, generate_key, hash_line,
};
use mcp_security::auth::jwt::{JwtVerifier, TokenRequest};
use mcp_security::core::config::{Env, Secret, parse_duration};

pub(crate) const USAGE: &str = "usage:
  mcp-security token --sub SUBJECT --aud AUDIENCE [--aud ...] [--ttl 900] [--scope SCOPE]...
                     [--iss ISSUER] [--secret-file PATH] [--env-prefix MCP]
  mcp-security keygen [--prefix mcp-sk-] [--name NAME] [--scope SCOPE]... [--pepper-file PATH]
  mcp-security keygen --ed25519 --out FILE   (audit signing key; prints the public key)
  mcp-security hash-key [--pepper-file PATH]   (the key is read from standard input)
  mcp-security audit verify FILE... [--key-file PATH] [--public-key PATH] [--anchor PATH]
                            [--allow-rotated-end] [--env-prefix MCP]
  mcp-security audit report FILE... [the verify options] [--top 10] [--html OUT.html]
  mcp-security check [--env-prefix MCP] [--env-file FILE] [--config FILE]
                     [--format human|json|sarif] [--strict] [--online]
  mcp-security manifest snapshot URL [--token-file PATH] > tools.lock.json
  mcp-security manifest verify URL --lock FILE [--token-file PATH]
  mcp-security ban list|add ADDR [--duration 15m]|remove ADDR [--env-prefix MCP]
  mcp-security --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("mcp-security {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("token") => Flags::parse(&args[1..], &[]).and_then(|f| token(&f)),
        Some("keygen") => Flags::parse(&args[1..], &["ed25519"]).and_then(|f| {
            if f.has("ed25519") {
                audit::keygen_ed25519(&f)
            } else {
                keygen(&f)
            }
        }),
        Some("hash-key") => Flags::parse(&args[1..], &[]).and_then(|f| hash_key(&f)),
        Some("audit") => match audit::run(&args[1..]) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Some("check") => match check::run(&args[1..]) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Some("manifest") => match manifest::run(&args[1..]) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Some("ban") => match ban::run(&args[1..]) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcp-security: {message}");
            ExitCode::from(2)
        }
    }
}

/// Write to standard output; a reader that went away early (`| head -n 1`) is not an error.
fn emit(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to standard output: {e}")),
    }
}

fn read_secret_file(path: &str, what: &str) -> Result<Secret, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {path}: {e}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(format!("{what} {path} is empty"));
    }
    Ok(Secret::new(text))
}

fn token(flags: &Flags) -> Result<(), String> {
    flags.only(&[
        "sub",
        "aud",
        "ttl",
        "scope",
        "iss",
        "secret-file",
        "env-prefix",
    ])?;
    flags.no_positional()?;
    let sub = flags.one("sub")?.ok_or("token needs --sub")?;
    let audience: Vec<String> = flags.all("aud").into_iter().map(str::to_owned).collect();
    if audience.is_empty() {
        return Err("token needs --aud (one audience per server)".into());
    }
    let ttl = match flags.one("ttl")? {
        None => Duration::from_secs(900),
        Some(v) => {
            parse_duration(v).ok_or_else(|| format!("--ttl: expected seconds or 15m, got {v:?}"))?
        }
    };
    let env = Env::new(flags.one("env-prefix")?.unwrap_or("MCP"));
    let secrets: Vec<Secret> = match flags.one("secret-file")? {
        Some(path) => vec![read_secret_file(path, "--secret-file")?],
        None => {
            let var = env.var_name("JWT_SECRET");
            let all = env
                .secret("JWT_SECRET")
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("no signing secret: set {var} or {var}_FILE, or pass --secret-file")
                })?;
            all.expose()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect()
        }
    };
    let mut verifier = JwtVerifier::builder();
    for s in secrets {
        verifier = verifier.secret(s);
    }
    // The server refuses tokens longer-lived than JWT_MAX_LIFETIME (24 h for HS256 unless set):
    // so does the signer, rather than printing a token the server will not take.
    if let Some(value) = env.string("JWT_MAX_LIFETIME").map_err(|e| e.to_string())? {
        let max = if value.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            Some(
                env.duration("JWT_MAX_LIFETIME", Duration::ZERO)
                    .map_err(|e| e.to_string())?,
            )
        };
        verifier = verifier.max_lifetime(max);
    }
    let verifier = verifier.build().map_err(|e| e.to_string())?;
    let request = TokenRequest {
        sub: sub.to_owned(),
        audience,
        issuer: flags.one("iss")?.map(str::to_owned),
        ttl,
        scopes: flags.all("scope").into_iter().map(str::to_owned).collect(),
    };
    let token = verifier
        .sign(&request, SystemTime::now())
        .map_err(|e| e.to_string())?;
    emit(&format!("{token}\n"))
}

fn hasher(flags: &Flags) -> Result<KeyHasher, String> {
    Ok(match flags.one("pepper-file")? {
        Some(path) => KeyHasher::HmacSha256(read_secret_file(path, "--pepper-file")?),
        None => KeyHasher::Sha256,
    })
}

fn keygen(flags: &Flags) -> Result<(), String> {
    flags.only(&["prefix", "name", "scope", "pepper-file"])?;
    flags.no_positional()?;
    let prefix = flags.one("prefix")?.unwrap_or(DEFAULT_KEY_PREFIX);
    let name = flags.one("name")?.unwrap_or("my-client");
    let scopes = flags.all("scope");
    let hasher = hasher(flags)?;
    let key = generate_key(prefix).map_err(|e| e.to_string())?;
    let entry = format!(
        "[[keys]]\nname = {}\nhash = {}\nscopes = {}\ncreated_at = {}\nenabled = true",
        serde_json::Value::from(name),
        serde_json::Value::from(hash_line(&hasher, &key)),
        serde_json::Value::from(if scopes.is_empty() { vec!["*"] } else { scopes }),
        // Dates the key for the rotation check (`check`: MCP-KEY-004) and the age gauge.
        serde_json::Value::from(format_key_time(SystemTime::now())),
    );
    emit(&format!(
        "{key}\n\n# The key above is shown once; only its hash goes into the key file:\n{entry}\n"
    ))
}

fn hash_key(flags: &Flags) -> Result<(), String> {
    flags.only(&["pepper-file"])?;
    flags.no_positional()?;
    let hasher = hasher(flags)?;
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the key from standard input: {e}"))?;
    let key = input.trim();
    if key.is_empty() {
        return Err("no key on standard input".into());
    }
    emit(&format!("{}\n", hash_line(&hasher, key)))
}
