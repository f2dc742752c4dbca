//! `audit verify` (with the chain key, or with the public key of the signing key), the
//! verification `audit report` runs first (see `report/mod.rs`), and `keygen --ed25519` (the key
//! that signs checkpoints).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use mcp_security::audit::chain::AuditKey;
use mcp_security::audit::signing::{PublicKey, SigningKey};
use mcp_security::audit::verify::{VerifyOptions, verify_anchor, verify_files, verify_public};
use mcp_security::core::config::Env;

use crate::args::Flags;
use crate::{USAGE, emit};

/// `audit verify FILE... [--key-file PATH] [--public-key PATH] [--anchor PATH]
/// [--allow-rotated-end] [--env-prefix MCP]`: exit 0 when the trail verifies, 1 when it does
/// not.
///
/// With `--public-key`, the signatures are checked with that key and no chain key is needed
/// (with `--key-file` as well, both checks run). With `--anchor`, the files must also hold
/// every checkpoint the anchor file recorded.
pub(crate) fn run(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("verify") => {}
        Some("report") => return crate::report::run(&args[1..]),
        Some(other) => return Err(format!("unknown audit command {other:?}\n{USAGE}")),
        None => return Err(format!("audit needs a command\n{USAGE}")),
    }
    let flags = Flags::parse(&args[1..], VERIFY_SWITCHES)?;
    flags.only(VERIFY_OPTIONS)?;
    let files = flags.positional();
    if files.is_empty() {
        return Err("audit verify needs at least one file".into());
    }
    let verdict = verify(&flags, files)?;
    emit(&verdict.text)?;
    Ok(if verdict.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The options of `audit verify`, which `audit report` takes too.
pub(crate) const VERIFY_OPTIONS: &[&str] = &[
    "key-file",
    "public-key",
    "anchor",
    "env-prefix",
    "allow-rotated-end",
];

/// The switches among [`VERIFY_OPTIONS`].
pub(crate) const VERIFY_SWITCHES: &[&str] = &["allow-rotated-end"];

/// What `audit verify` found: whether the trail verified, and what it prints (`OK: …` lines
/// and warnings, or the first failure as `FAILED: …`).
pub(crate) struct Verdict {
    /// Every check that ran passed.
    pub(crate) ok: bool,
    /// The verifier's report, one finding a line.
    pub(crate) text: String,
}

/// Run the checks the verify options ask for on `files`. A trail that does not verify is a
/// [`Verdict`] with `ok == false`; `Err` is a usage error (no key, an unreadable key file).
pub(crate) fn verify(flags: &Flags, files: &[String]) -> Result<Verdict, String> {
    let key_file = flags.one("key-file")?;
    let public_key = flags.one("public-key")?;
    let anchor = flags.one("anchor")?;
    let env_prefix = flags.one("env-prefix")?;
    let public = public_key
        .map(|path| {
            PublicKey::from_file(Path::new(path))
                .map_err(|e| format!("--public-key: {}", e.reason()))
        })
        .transpose()?;
    let key = match (key_file, &public) {
        (Some(path), _) => Some(
            AuditKey::from_file(Path::new(path))
                .map_err(|e| format!("--key-file: {}", e.reason()))?,
        ),
        (None, Some(_)) => None,
        (None, None) => {
            let env = Env::new(env_prefix.unwrap_or("MCP"));
            let var = env.var_name("AUDIT_HMAC_KEY");
            let secret = env
                .secret("AUDIT_HMAC_KEY")
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("no key: pass --key-file or --public-key, or set {var} or {var}_FILE")
                })?;
            Some(AuditKey::new(&secret).map_err(|e| format!("{var}: {}", e.reason()))?)
        }
    };
    let options = VerifyOptions::new()
        .now(SystemTime::now())
        .allow_rotated_end(flags.has("allow-rotated-end"));
    let mut text = String::new();
    if let Some(key) = key {
        match verify_files(files, &key, &options) {
            Ok(report) => {
                text.push_str(&format!("{report}\n"));
                for resume in &report.unclean_resumes {
                    text.push_str(&format!("warning: unclean resume: {resume}\n"));
                }
                for note in &report.notices {
                    text.push_str(&format!("note: {note}\n"));
                }
            }
            Err(e) => {
                text.push_str(&format!("FAILED: {e}\n"));
                return Ok(Verdict { ok: false, text });
            }
        }
    }
    if let Some(public) = public {
        match verify_public(files, &public, &options) {
            Ok(report) => {
                text.push_str(&format!("{report}\n"));
                for resume in &report.unclean_resumes {
                    text.push_str(&format!("warning: unclean resume: {resume}\n"));
                }
                for range in &report.unproven {
                    text.push_str(&format!("warning: unproven: {range}\n"));
                }
                for note in &report.notices {
                    text.push_str(&format!("note: {note}\n"));
                }
            }
            Err(e) => {
                text.push_str(&format!("FAILED: {e}\n"));
                return Ok(Verdict { ok: false, text });
            }
        }
    }
    if let Some(anchor) = anchor {
        match verify_anchor(files, Path::new(anchor)) {
            Ok(report) => {
                text.push_str(&format!("{report}\n"));
                for note in &report.notices {
                    text.push_str(&format!("note: {note}\n"));
                }
            }
            Err(e) => {
                text.push_str(&format!("FAILED: {e}\n"));
                return Ok(Verdict { ok: false, text });
            }
        }
    }
    Ok(Verdict { ok: true, text })
}

/// `keygen --ed25519 --out FILE`: a new signing key to FILE (PKCS#8 PEM, mode 0600, never
/// over an existing file); its public key, base64, on standard output.
pub(crate) fn keygen_ed25519(flags: &Flags) -> Result<(), String> {
    flags.only(&["ed25519", "out"])?;
    flags.no_positional()?;
    let out = flags
        .one("out")?
        .ok_or("keygen --ed25519 needs --out FILE (the private key is written there, not shown)")?;
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("--out {out}: the file exists; a key is never overwritten")
        } else {
            format!("--out {out}: {e}")
        }
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("--out {out}: {e}"))?;
    eprintln!(
        "mcp-security: wrote the Ed25519 signing key to {out} (mode 0600): set MCP_AUDIT_SIGNING_KEY_FILE={out}; \
         the public key on standard output verifies the trail: mcp-security audit verify FILE... --public-key KEYFILE"
    );
    emit(&format!("{}\n", key.public_key().to_base64()))
}
