//! The `mcp-security` command line.
//!
//! It will grow the subcommands `token`, `keygen`, `hash-key`, `check` and `audit verify`. Today it
//! prints its version and the subcommands still to come.
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None | Some("--version") | Some("-V") => {
            println!("mcp-security {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "mcp-security: unknown command {other:?}; no subcommands are implemented yet \
                 (planned: token, keygen, hash-key, check, audit verify)"
            );
            ExitCode::from(2)
        }
    }
}
