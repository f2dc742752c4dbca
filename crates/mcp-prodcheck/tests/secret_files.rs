//! Secret files checked for their permissions only (`CheckInput::secret_files`): the Redis
//! password, URL and client-key files get `MCP-FILE-001` when other users can read them, and
//! never `MCP-SECRET-001`, whatever they hold.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use mcp_prodcheck::{CheckInput, RuntimeEnvironment, check};

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcp-prodcheck-secret-files-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The runtime: an unprivileged user in the scratch directory (no `.env` there).
fn runtime(dir: &Scratch) -> RuntimeEnvironment {
    RuntimeEnvironment::new().euid(Some(1000)).cwd(&dir.0)
}

#[test]
fn an_open_redis_password_file_is_flagged_by_name_and_never_judged_for_strength() {
    let dir = Scratch::new("open");
    // A short, low-entropy password: MCP-SECRET-001 would refuse it, were it a secret input.
    let password = dir.file("redis-password", "password", 0o644);
    let key = dir.file(
        "client.key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        0o604,
    );
    let url = dir.file("redis-url", "rediss://u:p@redis.example.com:6380/0", 0o600);
    let mut input = CheckInput::default();
    input.rate_limit_redis_url = Some("rediss://redis.example.com:6380/0".to_owned());
    input.secret_files = vec![
        (
            "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE".to_owned(),
            password.clone(),
        ),
        (
            "MCP_RATE_LIMIT_REDIS_CLIENT_KEY_FILE".to_owned(),
            key.clone(),
        ),
        ("MCP_RATE_LIMIT_REDIS_URL_FILE".to_owned(), url),
    ];
    let report = check(&input, &runtime(&dir));
    assert!(
        !report.ids().contains(&"MCP-SECRET-001"),
        "no strength check on these files: {report}"
    );
    let files: Vec<_> = report
        .findings()
        .iter()
        .filter(|f| f.id() == "MCP-FILE-001")
        .collect();
    assert_eq!(files.len(), 2, "{report}");
    assert_eq!(
        files[0].setting(),
        Some("MCP_RATE_LIMIT_REDIS_PASSWORD_FILE")
    );
    assert_eq!(
        files[0].message(),
        format!(
            "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE: {} has mode 644: other users can read or \
             change a secret",
            password.display()
        )
    );
    assert_eq!(
        files[0].fix(),
        format!(
            "chmod 600 {} (or 640 for the server's group)",
            password.display()
        )
    );
    assert_eq!(
        files[1].setting(),
        Some("MCP_RATE_LIMIT_REDIS_CLIENT_KEY_FILE")
    );
    assert!(files[1].message().contains("mode 604"), "{}", files[1]);
    assert!(
        files[1]
            .fix()
            .starts_with(&format!("chmod 600 {}", key.display()))
    );
    // Never MCP-FILE-004 either: the content is not read, so "cannot be read here" is moot.
    assert!(!report.ids().contains(&"MCP-FILE-004"), "{report}");
}

#[test]
fn owner_only_and_group_read_files_pass() {
    let dir = Scratch::new("closed");
    let mut input = CheckInput::default();
    input.secret_files = vec![
        (
            "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE".to_owned(),
            dir.file("redis-password", "password", 0o600),
        ),
        (
            "MCP_RATE_LIMIT_REDIS_CLIENT_KEY_FILE".to_owned(),
            dir.file("client.key", "pem", 0o640),
        ),
        (
            "MCP_RATE_LIMIT_REDIS_URL_FILE".to_owned(),
            dir.file("redis-url", "redis://127.0.0.1/", 0o400),
        ),
    ];
    let report = check(&input, &runtime(&dir));
    for id in ["MCP-FILE-001", "MCP-FILE-004", "MCP-SECRET-001"] {
        assert!(!report.ids().contains(&id), "{id}: {report}");
    }
    // A missing file has no mode to judge (the server reports it when it reads it).
    input.secret_files = vec![(
        "MCP_RATE_LIMIT_REDIS_PASSWORD_FILE".to_owned(),
        dir.0.join("missing"),
    )];
    let report = check(&input, &runtime(&dir));
    assert!(!report.ids().contains(&"MCP-FILE-001"), "{report}");
}
