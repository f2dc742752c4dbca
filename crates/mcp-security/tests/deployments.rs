//! Every env file in `examples/deployments/` builds the whole stack once its secrets exist: the
//! secret files are created (mode 600, random values) in a scratch directory, the absolute
//! paths of the file are moved there, and the stack is built in production with no finding
//! but the unmountable ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcp_security::auth::api_key::{KeyHasher, generate_key, hash_line};
use mcp_security::core::config::Env;
use mcp_security::prodcheck::{RuntimeEnvironment, Severity};
use mcp_security::{SecurityConfig, SecurityLayer};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[cfg(unix)]
fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn private(_: &Path) {}

fn build(name: &str, prefix: &str, scratch: &Path) -> SecurityLayer {
    let text =
        std::fs::read_to_string(root().join(format!("examples/deployments/{name}.env"))).unwrap();
    let mut vars = parse(&text);
    for (key, value) in vars.iter_mut() {
        if !value.starts_with('/') {
            if key.ends_with("_CONFIG_FILE") {
                *value = root().join(&*value).display().to_string();
            }
            continue;
        }
        let moved = scratch.join(value.trim_start_matches('/'));
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        let secret = || generate_key("k-").unwrap();
        if key.ends_with("API_KEYS_FILE") {
            let entry = format!(
                "[[keys]]\nname = \"ci\"\nhash = \"{}\"\nscopes = [\"*\"]\n",
                hash_line(&KeyHasher::Sha256, &secret())
            );
            std::fs::write(&moved, entry).unwrap();
            private(&moved);
        } else if key.ends_with("_FILE") && !key.ends_with("AUDIT_LOG_FILE") {
            std::fs::write(&moved, secret()).unwrap();
            private(&moved);
        }
        *value = moved.display().to_string();
    }
    // The pepper changes how keys are hashed: the key file entry above is plain SHA-256.
    vars.retain(|k, _| !k.ends_with("API_KEY_PEPPER_FILE"));
    let env = Env::from_pairs(prefix, vars);
    let config = SecurityConfig::builder_from_env(&env)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .build()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let runtime = RuntimeEnvironment::new().euid(Some(1000)).cwd(scratch);
    let report = config.check(&runtime);
    assert!(
        report
            .findings()
            .iter()
            .all(|f| f.severity() < Severity::Warning),
        "{name}: {report}"
    );
    config
        .layer_with(&runtime)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn every_deployment_builds_the_stack() {
    let scratch = std::env::temp_dir().join(format!("mcp-security-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    for (name, prefix) in [
        ("iq-mcp", "IQ"),
        ("superego", "SUPEREGO"),
        ("jwt-servers", "MCP"),
        ("tool-registry", "REGISTRY"),
        ("docker-stack", "MCP"),
    ] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let stack = build(name, prefix, &dir);
        assert!(stack.authenticates(), "{name}");
        assert!(
            stack.summary().contains("incl. file"),
            "{name}: {}",
            stack.summary()
        );
        assert!(
            stack.report().findings().is_empty(),
            "{name}: {}",
            stack.report()
        );
        stack.audit().close().await.unwrap();
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
