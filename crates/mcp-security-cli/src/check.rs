//! `mcp-security check`: the production checks of `mcp-prodcheck`, for CI and operators.
//!
//! ```text
//! mcp-security check [--env-prefix MCP] [--env-file FILE] [--config FILE]
//!                    [--format human|json|sarif] [--strict] [--online]
//! ```
//!
//! Reads the configuration the server would read — the process environment with the prefix, or
//! with `--env-file` only that file (`KEY=VALUE` lines, `export`, quotes and `#` comments as in
//! Docker Compose env files) — and `--config` as the TOML file (else `<PREFIX>_CONFIG_FILE`).
//! `*_FILE` secrets that cannot be read here are reported as `MCP-FILE-004` (info) and not
//! checked; the server checks them when it starts. Relative paths are relative to the working
//! directory, which is also where `.env` is looked for.
//!
//! With `--online`, the issuer's metadata and JWK Set are then fetched as the server would, and
//! what would go wrong is reported as `MCP-ONLINE-*` findings (see `online/mod.rs`); the human
//! and JSON formats also list every online check with its status.
//!
//! Exit codes: 0 no error; 1 errors; 2 warnings with `--strict` (and usage errors).

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use crate::args::Flags;
use mcp_security::SecurityConfig;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::{Report, RuntimeEnvironment, SarifLocation};

use crate::online::{self, OnlineSettings};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Human,
    Json,
    Sarif,
}

/// Run `check` with the arguments after the command name.
pub(crate) fn run(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args, &["strict", "online"])?;
    flags.only(&[
        "env-prefix",
        "env-file",
        "config",
        "format",
        "strict",
        "online",
    ])?;
    if let Some(other) = flags.positional().first() {
        return Err(format!("check: unexpected argument {other:?}\n{USAGE}"));
    }
    let prefix = flags.one("env-prefix")?.map(str::to_owned);
    let env_file = flags.one("env-file")?.map(str::to_owned);
    let config = flags.one("config")?.map(str::to_owned);
    let format = flags.one("format")?.map(str::to_owned);
    let strict = flags.has("strict");
    let online = flags.has("online");
    let format = match format.as_deref() {
        None | Some("human") => Format::Human,
        Some("json") => Format::Json,
        Some("sarif") => Format::Sarif,
        Some(other) => {
            return Err(format!(
                "--format: expected human, json or sarif, got {other:?}"
            ));
        }
    };
    let prefix = prefix.unwrap_or_else(|| "MCP".to_owned());
    let prefix = prefix.trim_end_matches('_');

    let mut location = None;
    let env = match &env_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--env-file: cannot read {path}: {e}"))?;
            let vars = parse_env_file(&text).map_err(|e| format!("--env-file {path}: {e}"))?;
            let mut loc = SarifLocation::new(path.trim_start_matches("./"));
            for (name, _, line) in &vars {
                loc = loc.line(name.clone(), *line);
                // Findings name `X_FILE` or `X`; point both at the line that sets either.
                if let Some(base) = name.strip_suffix("_FILE") {
                    loc = loc.line(base.to_owned(), *line);
                }
            }
            location = Some(loc);
            Env::from_pairs(prefix, vars.into_iter().map(|(k, v, _)| (k, v)))
        }
        None => {
            if let Some(path) = &config {
                location = Some(SarifLocation::new(path.trim_start_matches("./")));
            }
            Env::new(prefix)
        }
    };
    let mut report = SecurityConfig::check_env(
        &env,
        config.as_deref().map(Path::new),
        &RuntimeEnvironment::current(),
    );
    let online = if online {
        let settings = OnlineSettings::read(&env, prefix, config.as_deref().map(Path::new));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("--online: cannot start the async runtime: {e}"))?;
        let found = runtime.block_on(online::run(&settings));
        let mut findings = report.findings().to_vec();
        findings.extend(found.findings.iter().cloned());
        report = Report::new(report.environment(), findings);
        Some(found)
    } else {
        None
    };
    let text = match format {
        Format::Human => {
            let source = env_file.as_deref().map_or_else(
                || format!("the environment ({prefix}_*)"),
                |f| format!("{f} ({prefix}_*)"),
            );
            let checks = online.as_ref().map(|o| o.human()).unwrap_or_default();
            if report.findings().is_empty() {
                format!(
                    "mcp-security check: {source}, {}: no findings\n{checks}",
                    report.environment().as_str()
                )
            } else {
                format!("mcp-security check: {source}\n{checks}{report}\n")
            }
        }
        Format::Json => {
            let mut json = report.to_json();
            if let Some(o) = &online {
                json["online"] = o.json();
            }
            pretty(&json)?
        }
        Format::Sarif => pretty(&report.to_sarif(location.as_ref()))?,
    };
    crate::emit(&text)?;
    Ok(ExitCode::from(report.exit_code(strict)))
}

const USAGE: &str = "usage: mcp-security check [--env-prefix MCP] [--env-file FILE] \
                     [--config FILE] [--format human|json|sarif] [--strict] [--online]";

fn pretty(value: &serde_json::Value) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| format!("cannot format the report: {e}"))
}

/// `KEY=VALUE` lines: blank lines and `#` comments skipped, an optional `export `, values
/// unquoted (a ` #` starts a comment), in single quotes (literal) or double quotes (`\n`, `\"`,
/// `\\` escapes). Returns (key, value, line number).
fn parse_env_file(text: &str) -> Result<Vec<(String, String, usize)>, String> {
    let mut vars = Vec::new();
    let mut seen = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {line_no}: expected KEY=VALUE"));
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("line {line_no}: invalid variable name {key:?}"));
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.chars();
            loop {
                match chars.next() {
                    None => return Err(format!("line {line_no}: unterminated double quote")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some(c) => out.push(c),
                        None => return Err(format!("line {line_no}: unterminated double quote")),
                    },
                    Some(c) => out.push(c),
                }
            }
            out
        } else if let Some(rest) = value.strip_prefix('\'') {
            rest.split_once('\'')
                .map(|(v, _)| v.to_owned())
                .ok_or_else(|| format!("line {line_no}: unterminated single quote"))?
        } else {
            value
                .split_once(" #")
                .map_or(value, |(v, _)| v)
                .trim_end()
                .to_owned()
        };
        if !seen.insert(key.to_owned()) {
            return Err(format!("line {line_no}: {key} is set twice"));
        }
        vars.push((key.to_owned(), value, line_no));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::parse_env_file;

    #[test]
    fn env_files() {
        let vars = parse_env_file(
            "# comment\n\nexport IQ_ENV=production\nIQ_A = plain value # note\nIQ_B=\"q \\\"x\\\" #1\"\nIQ_C='lit $x'\nIQ_D=\n",
        )
        .unwrap();
        let got: Vec<(&str, &str, usize)> = vars
            .iter()
            .map(|(k, v, l)| (k.as_str(), v.as_str(), *l))
            .collect();
        assert_eq!(
            got,
            [
                ("IQ_ENV", "production", 3),
                ("IQ_A", "plain value", 4),
                ("IQ_B", "q \"x\" #1", 5),
                ("IQ_C", "lit $x", 6),
                ("IQ_D", "", 7),
            ]
        );
        assert!(parse_env_file("NOPE\n").is_err());
        assert!(parse_env_file("A=1\nA=2\n").is_err());
        assert!(parse_env_file("A=\"open\n").is_err());
        assert!(parse_env_file("BAD-NAME=1\n").is_err());
    }
}
