//! `mcp-security check` on the Redis secret files: `RATE_LIMIT_REDIS_PASSWORD_FILE` and
//! `RATE_LIMIT_REDIS_URL_FILE` are checked for their permissions (`MCP-FILE-001`) like every
//! secret file, but a provider's password is never judged for strength (`MCP-SECRET-001`).
#![cfg(all(unix, feature = "redis"))]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use mcp_security::SecurityConfig;
use mcp_security::core::config::Env;
use mcp_security::prodcheck::{Report, RuntimeEnvironment};

const API_KEY: &str = "mcp-sk-3vQ9xK2mW7pL0aZ8cN5bR1tY6uE4iO2sD9fG3hJ7kQ0";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcp-security-redis-files-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(dir: &Scratch, password_mode: u32, url_mode: u32) -> (Report, String, String) {
    // "hunter2" would fail every strength rule, were it judged.
    let password = dir.file("redis-password", "hunter2", password_mode);
    let url = dir.file("redis-url", "redis://127.0.0.1:6379/0", url_mode);
    let env = Env::from_pairs(
        "MCP",
        [
            ("MCP_API_KEY", API_KEY),
            ("MCP_RATE_LIMIT_REDIS_URL_FILE", url.as_str()),
            ("MCP_RATE_LIMIT_REDIS_USERNAME", "mcp-ratelimit"),
            ("MCP_RATE_LIMIT_REDIS_PASSWORD_FILE", password.as_str()),
        ],
    );
    let runtime = RuntimeEnvironment::new().euid(Some(1000)).cwd(&dir.0);
    (
        SecurityConfig::check_env(&env, None, &runtime),
        password,
        url,
    )
}

#[test]
fn open_redis_secret_files_are_flagged_and_the_password_is_not_judged() {
    let dir = Scratch::new("open");
    let (report, password, url) = check(&dir, 0o644, 0o660);
    assert!(
        !report.ids().contains(&"MCP-SECRET-001"),
        "a provider's password is not judged: {report}"
    );
    let files: Vec<_> = report
        .findings()
        .iter()
        .filter(|f| f.id() == "MCP-FILE-001")
        .collect();
    assert_eq!(files.len(), 2, "{report}");
    assert_eq!(files[0].setting(), Some("MCP_RATE_LIMIT_REDIS_URL_FILE"));
    assert!(files[0].message().contains("mode 660"), "{}", files[0]);
    assert!(
        files[0].fix().starts_with(&format!("chmod 600 {url}")),
        "{}",
        files[0]
    );
    assert_eq!(
        files[1].setting(),
        Some("MCP_RATE_LIMIT_REDIS_PASSWORD_FILE")
    );
    assert_eq!(
        files[1].message(),
        format!(
            "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE: {password} has mode 644: other users can read \
             or change a secret"
        )
    );
    assert_eq!(
        files[1].fix(),
        format!("chmod 600 {password} (or 640 for the server's group)")
    );
}

#[test]
fn owner_only_redis_secret_files_pass() {
    let dir = Scratch::new("closed");
    let (report, _, _) = check(&dir, 0o600, 0o640);
    for id in ["MCP-FILE-001", "MCP-SECRET-001", "MCP-CONFIG-001"] {
        assert!(!report.ids().contains(&id), "{id}: {report}");
    }
}
