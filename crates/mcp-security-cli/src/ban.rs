//! `mcp-security ban list|add|remove`: the ban list every replica shares through Redis.
//!
//! ```text
//! mcp-security ban list [--env-prefix MCP]
//! mcp-security ban add ADDR [--duration 15m] [--env-prefix MCP]
//! mcp-security ban remove ADDR [--env-prefix MCP]
//! ```
//!
//! The store is the servers' own: `<prefix>_RATE_LIMIT_REDIS_URL` and the other
//! `RATE_LIMIT_REDIS_*` settings (TLS, credentials, Cluster, Sentinel, key prefix), read from
//! the environment as the server reads them. Every replica applies a change within about a
//! second. `list` prints one `ADDR<TAB>UNTIL (RFC 3339)<TAB>SECONDS LEFT` line per ban; `remove`
//! exits 1 when Redis held no ban for the address.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mcp_security::core::config::{Env, parse_duration};
use mcp_security::ratelimit::redis::RedisStore;

use crate::args::Flags;

const USAGE: &str =
    "usage: mcp-security ban list|add ADDR [--duration 15m]|remove ADDR [--env-prefix MCP]";

/// Run `ban …`; `Err` is a usage or store error (exit 2).
pub(crate) fn run(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args.get(1..).unwrap_or_default(), &[])?;
    let action = args.first().map(String::as_str);
    let allowed: &[&str] = match action {
        Some("add") => &["env-prefix", "duration"],
        _ => &["env-prefix"],
    };
    flags.only(allowed)?;
    let env = Env::new(flags.one("env-prefix")?.unwrap_or("MCP"));
    let store = RedisStore::from_env(&env)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no shared ban list: {} is not set",
                env.var_name("RATE_LIMIT_REDIS_URL")
            )
        })?;
    let addr = || -> Result<IpAddr, String> {
        match flags.positional() {
            [one] => one
                .parse::<IpAddr>()
                .map_err(|_| format!("{one:?} is not an IP address")),
            _ => Err(format!("one address expected\n{USAGE}")),
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    match action {
        Some("list") => {
            flags.no_positional()?;
            let bans = runtime.block_on(store.bans()).map_err(|e| e.to_string())?;
            let now = SystemTime::now();
            let mut out = String::new();
            for (ip, until) in bans {
                let left = until.duration_since(now).unwrap_or_default().as_secs();
                out.push_str(&format!(
                    "{ip}\t{}\t{left}\n",
                    humantime::format_rfc3339_seconds(until)
                ));
            }
            crate::emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("add") => {
            let ip = addr()?;
            let duration = match flags.one("duration")? {
                Some(d) => parse_duration(d).ok_or_else(|| {
                    format!("--duration: {d:?} is not a duration (900s, 15m, 1h)")
                })?,
                None => Duration::from_secs(900),
            };
            let until = SystemTime::now() + duration;
            runtime
                .block_on(store.ban(ip, until))
                .map_err(|e| e.to_string())?;
            crate::emit(&format!(
                "banned {ip} until {}\n",
                humantime::format_rfc3339_seconds(until)
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Some("remove") => {
            let ip = addr()?;
            let removed = runtime
                .block_on(store.unban(ip))
                .map_err(|e| e.to_string())?;
            if removed {
                crate::emit(&format!("unbanned {ip}\n"))?;
                Ok(ExitCode::SUCCESS)
            } else {
                crate::emit(&format!("{ip} was not banned\n"))?;
                Ok(ExitCode::from(1))
            }
        }
        _ => Err(USAGE.to_owned()),
    }
}
