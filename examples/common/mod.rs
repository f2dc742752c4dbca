//! What the examples share: logging, the development keys, and the shutdown signal. Each
//! example uses only part of it (`axum_mcp_server` only the shutdown signal).
#![allow(dead_code)]

use mcp_security::SecurityConfigBuilder;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::core::Scopes;
use mcp_security::core::config::{Environment, Secret};
use tracing_subscriber::EnvFilter;

/// Log to stderr (stdout is for the generated keys), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// A key made up for this run, with the principal name and scopes it was given.
pub struct DevKey {
    /// The principal name.
    pub name: &'static str,
    /// The key itself: printed once, never logged.
    pub key: String,
    /// Its scopes.
    pub scopes: &'static [&'static str],
}

/// A demo must still not run open: in development, with authentication required and no
/// credential configured (`MCP_API_KEY`, `MCP_API_KEYS_FILE`, `MCP_JWT_SECRET`, …), add one key
/// per `(name, scopes)` for this run, as `axum_mcp_server` does. In production nothing is added,
/// so the stack refuses to start without a credential.
///
/// # Errors
/// The system random source failed.
pub fn dev_keys(
    mut settings: SecurityConfigBuilder,
    keys: &[(&'static str, &'static [&'static str])],
) -> anyhow::Result<(SecurityConfigBuilder, Vec<DevKey>)> {
    let mut made = Vec::new();
    if settings.current_environment() == Environment::Development
        && settings.requires_auth()
        && !settings.has_credential_source()
    {
        for &(name, scopes) in keys {
            let key = generate_key(DEFAULT_KEY_PREFIX)?;
            settings = settings.named_api_key(name, Secret::new(&key), Scopes::new(scopes));
            made.push(DevKey { name, key, scopes });
        }
    }
    Ok((settings, made))
}

/// Print the generated keys once (stdout, not the log).
pub fn print_dev_keys(keys: &[DevKey]) {
    if keys.is_empty() {
        return;
    }
    println!(
        "\nNo credential configured (MCP_API_KEY, MCP_API_KEYS_FILE, MCP_JWT_SECRET): generated \
         development API keys, valid until this process exits:\n"
    );
    for k in keys {
        println!(
            "  {:<10} scopes {:<28} {}",
            k.name,
            k.scopes.join(" "),
            k.key
        );
    }
    println!();
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
